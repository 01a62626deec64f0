//! `exercise=lifecycle` (Dom0 argument): drives every `domctl` operation against the running
//! system, including the error paths, and checks the answers. Used by the lifecycle scenario.
use crate::store_service::StoreService;
use crate::{Ending, Tracked};
use alloc::format;
use hv_abi::DomId;
use hv_abi::{DomainListEntry, Error, state};
use hv_bundle::Expect;
use hv_rt::{domctl, println, time};

struct Checks {
    failed: usize,
}

impl Checks {
    fn check(&mut self, what: &str, ok: bool) {
        if ok {
            println!("check {what}: ok");
        } else {
            self.failed += 1;
            println!("check {what}: FAILED");
        }
    }
}

fn entry(domid: DomId) -> Option<DomainListEntry> {
    domctl::list().ok()?.into_iter().find(|e| e.id() == domid)
}

/// Runs the exercise; `victim` is a running domain that never blocks. Returns the failures.
pub fn lifecycle(victim: Option<DomId>) -> usize {
    let mut c = Checks { failed: 0 };
    c.check(
        "create with an unknown image -> ENOENT",
        domctl::create("x1", "no-such-image", 2, "") == Err(Error::NoEnt),
    );
    c.check("create with a duplicate name -> EEXIST", domctl::create("dom0", "hello", 2, "") == Err(Error::Exist));
    c.check("create with 0 MiB -> EINVAL", domctl::create("x2", "hello", 0, "") == Err(Error::Inval));
    c.check("create with a bad name -> EINVAL", domctl::create("bad name!", "hello", 2, "") == Err(Error::Inval));
    c.check("create larger than free memory -> ENOMEM", domctl::create("x3", "hello", 512, "") == Err(Error::NoMem));
    c.check("destroy an unknown domain -> ESRCH", domctl::destroy(9999) == Err(Error::Srch));
    c.check("destroy dom0 itself -> EBUSY", domctl::destroy(0) == Err(Error::Busy));
    c.check("pause dom0 itself -> EINVAL", domctl::pause(0) == Err(Error::Inval));

    match victim {
        Some(id) => {
            time::sleep_ms(20);
            c.check("pause a running domain", domctl::pause(id).is_ok());
            let paused = entry(id);
            c.check("list shows it paused", paused.is_some_and(|e| e.state == state::PAUSED));
            time::sleep_ms(40);
            let later = entry(id);
            let frozen = matches!((paused, later), (Some(a), Some(b)) if a.cpu_time_ns == b.cpu_time_ns);
            c.check("a paused domain gets no CPU time", frozen);
            c.check("unpause it", domctl::unpause(id).is_ok());
            time::sleep_ms(40);
            let resumed = matches!((later, entry(id)), (Some(a), Some(b)) if b.cpu_time_ns > a.cpu_time_ns);
            c.check("an unpaused domain runs again", resumed);
        }
        None => c.check("a never-blocking domain to pause exists", false),
    }

    // Create and destroy repeatedly: every frame must come back.
    let before = domctl::physinfo().map(|p| p.free_frames).unwrap_or(0);
    let mut created = 0;
    for i in 0..20 {
        match domctl::create("cycle", "hello", 4, "steps=0") {
            Ok(id) => {
                created += 1;
                // Half are destroyed while alive, half reaped after they exit by themselves.
                if i % 2 == 1 {
                    for _ in 0..100 {
                        if entry(id).is_some_and(|e| e.state == state::DEAD) {
                            break;
                        }
                        time::sleep_ms(1);
                    }
                }
                if domctl::destroy(id).is_err() {
                    println!("cannot destroy cycle domain {id}");
                }
            }
            Err(e) => println!("cycle {i}: create failed: {}", e.name()),
        }
    }
    let after = domctl::physinfo().map(|p| p.free_frames).unwrap_or(1);
    println!("create/destroy x{created}: free frames {before} before, {after} after");
    c.check("20 create/destroy cycles succeed", created == 20);
    c.check("every frame returns to the allocator", before == after && before > 0);
    c.check(
        "no cycle domain is left in the list",
        domctl::list().is_ok_and(|l| l.iter().all(|e| hv_abi::name_from_array(&e.name) != Some("cycle"))),
    );
    println!("lifecycle exercise: {} checks failed", c.failed);
    c.failed
}

/// Hypervisor and store totals that must return to their values once a set of domains is gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    free_frames: u64,
    grant_maps: u64,
    event_ports: u64,
    store_nodes: usize,
}

impl Counters {
    pub fn read(store: &StoreService) -> Self {
        let p = domctl::physinfo().unwrap_or_default();
        Self {
            free_frames: p.free_frames,
            grant_maps: p.grant_maps,
            event_ports: p.event_ports,
            store_nodes: store.node_count(),
        }
    }

    /// Prints one check line per counter; returns how many differ.
    pub fn compare(&self, before: &Counters) -> usize {
        let mut c = Checks { failed: 0 };
        for (what, b, a) in [
            ("free frames", before.free_frames, self.free_frames),
            ("grant mappings", before.grant_maps, self.grant_maps),
            ("event-channel ports", before.event_ports, self.event_ports),
            ("store nodes", before.store_nodes as u64, self.store_nodes as u64),
        ] {
            c.check(&format!("{what} back to baseline ({b} before, {a} after)"), a == b);
        }
        c.failed
    }
}

/// `exercise=kill-backend`: once the frontend reports it has streamed its messages (it writes
/// `data/phase = streamed` in its own store directory), destroy its backend mid-stream.
pub struct Killer {
    frontend: DomId,
    backend: DomId,
    backend_name: alloc::string::String,
    done: bool,
}

impl Killer {
    pub fn new(tracked: &[Tracked]) -> Option<Self> {
        let victim = tracked.iter().find(|t| t.cfg.expect == Expect::Destroyed)?;
        let fe = tracked.iter().find(|t| t.cfg.devices.iter().any(|d| d.backend == victim.cfg.name))?;
        Some(Self { frontend: fe.domid?, backend: victim.domid?, backend_name: victim.cfg.name.clone(), done: false })
    }

    pub fn step(&mut self, store: &mut StoreService, tracked: &mut [Tracked]) {
        if self.done {
            return;
        }
        let path = format!("/local/domain/{}/data/phase", self.frontend);
        let phase = store.server.store().get(path.as_bytes()).map(|n| n.value.clone());
        if phase.as_deref() != Some(b"streamed".as_slice()) {
            return;
        }
        self.done = true;
        println!("destroying {} (domain {}) mid-stream", self.backend_name, self.backend);
        if let Some(t) = tracked.iter_mut().find(|t| t.domid == Some(self.backend)) {
            t.ending = Some(Ending::Destroyed);
        }
        if let Err(e) = domctl::destroy(self.backend) {
            println!("destroy failed: {}", e.name());
        }
        store.disconnect(self.backend);
    }
}

/// `exercise=restart-backend`: once the frontend reports `data/progress` ≥ `restart_at` (Dom0
/// argument, default 300), destroy its backend driver domain and start a new instance with the
/// same image, devices and PCI assignment; the frontend must reconnect and carry on.
pub struct Restarter {
    frontend: DomId,
    backend_name: alloc::string::String,
    at: u64,
    done: bool,
}

impl Restarter {
    pub fn new(tracked: &[Tracked]) -> Option<Self> {
        let fe = tracked.iter().find(|t| !t.cfg.devices.is_empty())?;
        let backend_name = fe.cfg.devices.first()?.backend.clone();
        Some(Self { frontend: fe.domid?, backend_name, at: hv_rt::arg_u64("restart_at", 300), done: false })
    }

    pub fn step(&mut self, store: &mut StoreService, tracked: &mut [Tracked]) {
        if self.done {
            return;
        }
        let path = format!("/local/domain/{}/data/progress", self.frontend);
        let progress = store
            .server
            .store()
            .get(path.as_bytes())
            .and_then(|n| core::str::from_utf8(&n.value).ok().and_then(|v| v.parse::<u64>().ok()))
            .unwrap_or(0);
        if progress < self.at {
            return;
        }
        self.done = true;
        let Some(i) = tracked.iter().position(|t| t.cfg.name == self.backend_name) else { return };
        if let Some(old) = tracked[i].domid {
            println!("restarting {} (domain {old}) with the frontend {progress} records in", self.backend_name);
        }
        match crate::toolstack::restart(tracked, i, store) {
            Ok(new) => println!("started {} again as domain {new}", self.backend_name),
            Err(e) => println!("{e}"),
        }
    }
}
