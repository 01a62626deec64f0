//! Dom0: the thin control domain. It reads the topology from the boot bundle, creates every
//! other domain, serves the store, writes the store entries of each split device (as Xen's
//! toolstack does), watches domains end, and applies the topology's policy. It drives no device.
#![no_std]
#![no_main]

extern crate alloc;

mod connect;
mod exercise;
mod store_service;
mod toolstack;
mod xl;

use alloc::vec::Vec;
use hv_abi::DomId;
use hv_abi::{DomainListEntry, ShutdownReason, end, state};
use hv_bundle::restart::{RestartBackoff, RestartDecision};
use hv_bundle::{DomainConfig, Expect, OnFinish, Topology};
use hv_rt::{domctl, evtchn, println, time};
use store_service::StoreService;

hv_rt::main!(main);

/// How a domain ended, as Dom0 classifies it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ending {
    Exited,
    Crashed,
    Destroyed,
    StillRunning,
    FailedToStart,
}

impl Ending {
    fn text(self) -> &'static str {
        match self {
            Ending::Exited => "exit",
            Ending::Crashed => "crash",
            Ending::Destroyed => "destroyed",
            Ending::StillRunning => "still running",
            Ending::FailedToStart => "failed to start",
        }
    }

    fn matches(self, e: Expect) -> bool {
        matches!(
            (self, e),
            (Ending::Exited, Expect::Exit)
                | (Ending::Crashed, Expect::Crash)
                | (Ending::StillRunning, Expect::Forever)
                | (Ending::Destroyed, Expect::Destroyed)
        )
    }
}

fn expect_text(e: Expect) -> &'static str {
    match e {
        Expect::Exit => "exit",
        Expect::Crash => "crash",
        Expect::Forever => "still running",
        Expect::Destroyed => "destroyed",
    }
}

pub struct Tracked {
    pub cfg: DomainConfig,
    pub domid: Option<DomId>,
    pub ending: Option<Ending>,
    /// Instances started by the restart policy so far.
    pub restarts: u32,
    /// Created with `xl create` (forgotten once destroyed).
    pub from_xl: bool,
    /// When it was created (or, for a restarted driver domain, when its crash was seen).
    pub since_ns: u64,
    /// Devices it waits for (see [`connect`]).
    pub waiting: Option<connect::Wait>,
    /// Creation to all its devices Connected, once seen.
    pub connected_after_ns: Option<u64>,
    /// Its recent crashes (`on_crash = "restart"` backs off, then gives up).
    pub backoff: hv_bundle::restart::RestartBackoff,
    /// A restart waiting for its back-off delay to pass (Dom0's clock).
    pub restart_at: Option<u64>,
    /// The id of the instance that crashed, while a delayed restart waits: the new one gets it
    /// back (restart in place, see `toolstack::restart`).
    pub previous_id: Option<DomId>,
}

impl Tracked {
    /// A domain just created (`domid` None: it failed to start); it waits for its devices.
    pub fn new(cfg: DomainConfig, domid: Option<DomId>, since_ns: u64, from_xl: bool) -> Self {
        let waiting = (domid.is_some() && !cfg.devices.is_empty()).then_some(connect::Wait::Create);
        let ending = if domid.is_none() { Some(Ending::FailedToStart) } else { None };
        Self {
            cfg,
            domid,
            ending,
            restarts: 0,
            from_xl,
            since_ns,
            waiting,
            connected_after_ns: None,
            backoff: Default::default(),
            restart_at: None,
            previous_id: None,
        }
    }

    /// Running now (not ended, or running on after its topology finished).
    pub fn is_live(&self) -> bool {
        self.domid.is_some() && matches!(self.ending, None | Some(Ending::StillRunning))
    }
}

fn classify(e: &DomainListEntry) -> Ending {
    match e.end {
        end::SHUTDOWN if e.end_detail == ShutdownReason::Crash as u32 => Ending::Crashed,
        end::SHUTDOWN => Ending::Exited,
        end::FAULT => Ending::Crashed,
        _ => Ending::Destroyed,
    }
}

fn main() {
    let topo = match domctl::topology().map(|b| Topology::decode(&b)) {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => panic!("topology does not decode: {e}"),
        Err(e) => panic!("cannot read the topology: {}", e.name()),
    };
    println!("topology {}: {} domains", topo.name, topo.domains.len());
    // Domain creations and endings arrive as an event on this port.
    let dom_exc = evtchn::bind_virq(hv_abi::virq::DOM_EXC).unwrap_or_else(|e| panic!("bind DOM_EXC: {}", e.name()));
    let mut store = StoreService::new();
    let baseline = exercise::Counters::read(&store);

    // Domains that take part in a split device are built paused, so their store entries exist
    // before they run.
    let in_devices = |name: &str| {
        topo.domains
            .iter()
            .any(|d| d.devices.iter().any(|v| v.backend == name) || (d.name == name && !d.devices.is_empty()))
    };
    let mut tracked: Vec<Tracked> = Vec::new();
    for cfg in topo.domains.iter().skip(1) {
        let paused = in_devices(&cfg.name) || !cfg.pci.is_empty();
        let flags = if paused { hv_abi::CREATE_PAUSED } else { 0 };
        let since = time::now_ns();
        let t = match toolstack::create(cfg, flags) {
            Ok(id) => {
                if let Err(e) = store.connect(id) {
                    println!("cannot connect {} to the store: {e}", cfg.name);
                }
                for sel in &cfg.pci {
                    match hv_abi::pci::Selector::parse(sel).map(|s| domctl::assign_pci(id, s)) {
                        Some(Ok(bdf)) => {
                            println!("assigned pci {} ({sel}) to {}", hv_abi::pci::Bdf::from_u16(bdf), cfg.name)
                        }
                        Some(Err(e)) => println!("cannot assign pci {sel} to {}: {}", cfg.name, e.name()),
                        None => println!("bad pci selector {sel:?} for {}", cfg.name),
                    }
                }
                println!("started {} as domain {id}", cfg.name);
                Tracked::new(cfg.clone(), Some(id), since, false)
            }
            Err(e) => {
                println!("cannot start {}: {}", cfg.name, e.name());
                Tracked::new(cfg.clone(), None, since, false)
            }
        };
        tracked.push(t);
    }
    let id_of = |tracked: &[Tracked], name: &str| tracked.iter().find(|t| t.cfg.name == name).and_then(|t| t.domid);
    for t in &tracked {
        for (j, dev) in t.cfg.devices.iter().enumerate() {
            let (Some(fe), Some(be)) = (t.domid, id_of(&tracked, &dev.backend)) else { continue };
            let i = toolstack::index_in_kind(&t.cfg.devices, j, |d| &d.kind);
            match toolstack::add_device(&mut store.server, &dev.kind, i, fe, be, &dev.params) {
                Ok(()) => println!(
                    "device {}/{i}: {} (domain {fe}) served by {} (domain {be})",
                    dev.kind, t.cfg.name, dev.backend
                ),
                Err(e) => println!("device {}/{i} of {}: {e}", dev.kind, t.cfg.name),
            }
        }
    }
    for t in tracked.iter().filter(|t| in_devices(&t.cfg.name) || !t.cfg.pci.is_empty()) {
        if let Some(id) = t.domid {
            let _ = domctl::unpause(id);
        }
    }
    println!("all domains running");

    let mut failed_checks = 0;
    let mut killer = None;
    let mut restarter = None;
    match hv_rt::arg("exercise") {
        Some("lifecycle") => {
            let victim = tracked.iter().find(|t| t.cfg.expect == Expect::Forever).and_then(|t| t.domid);
            failed_checks += exercise::lifecycle(victim);
        }
        Some("kill-backend") => killer = exercise::Killer::new(&tracked),
        Some("restart-backend") => restarter = exercise::Restarter::new(&tracked),
        Some(other) => {
            println!("unknown exercise {other:?}");
            failed_checks += 1;
        }
        None => {}
    }

    let mut control = xl::Control::new();
    let mut finished = false;
    let mut more = true;
    loop {
        if !more {
            // Woken by DOM_EXC, a store port, a restart's back-off deadline, or the safety net.
            let safety_net = time::now_ns() + 1_000_000_000;
            let restart_due = tracked.iter().filter_map(|t| t.restart_at).min().unwrap_or(u64::MAX);
            time::block_until(safety_net.min(restart_due));
        }
        restart_due(&mut tracked, &mut store);
        let mut domain_changed = false;
        let mut any_port = false;
        let mut control_fired = false;
        evtchn::take_pending(|port| {
            any_port = true;
            if port == dom_exc {
                domain_changed = true;
            } else if Some(port) == control.port {
                control_fired = true;
            } else {
                store.kick(port);
            }
        });
        more = store.pump();
        // The control channel only when its port fired, it has work left, or on the timed
        // wake-up: a store request from a domain costs Dom0 no control-channel hypercall.
        if control_fired || control.has_work() || !any_port {
            more |= control.poll(&mut tracked, &mut store);
            more |= store.pump();
        }
        connect::check(&mut tracked, &store);
        if let Some(k) = killer.as_mut() {
            k.step(&mut store, &mut tracked);
        }
        if let Some(r) = restarter.as_mut() {
            r.step(&mut store, &mut tracked);
        }
        // Domains end only with DOM_EXC; the timed wake-up (no port) re-checks as a safety net.
        if any_port && !domain_changed {
            continue;
        }
        let Ok(list) = domctl::list() else { continue };
        for e in list.iter().filter(|e| e.state == state::DEAD) {
            if let Err(err) = domctl::destroy(e.id()) {
                println!("cannot reap domain {}: {}", e.id(), err.name());
            }
            let how = tracked.iter().find(|t| t.domid == Some(e.id())).and_then(|t| t.ending).unwrap_or(classify(e));
            handle_death(&mut tracked, &mut store, e.id(), how);
        }
        let waiting = tracked.iter().any(|t| t.ending.is_none() && t.cfg.expect != Expect::Forever);
        if finished || waiting {
            continue;
        }
        // Everything that should end has ended. The ones meant to run forever are still running
        // (as expected); before a power-off they are stopped, in an interactive system they stay.
        for t in tracked.iter_mut().filter(|t| t.ending.is_none()) {
            t.ending = Some(Ending::StillRunning);
            report(t, Ending::StillRunning);
            if let (Some(id), OnFinish::Shutdown) = (t.domid, topo.on_finish) {
                let _ = domctl::destroy(id);
                store.disconnect(id);
            }
        }
        if killer.is_some() {
            failed_checks += exercise::Counters::read(&store).compare(&baseline);
        }
        let good = tracked.iter().filter(|t| t.ending.is_some_and(|e| e.matches(t.cfg.expect))).count();
        let bad = tracked.len() - good + failed_checks;
        println!("all domains finished: {good} as expected, {bad} unexpected");
        finished = true;
        match topo.on_finish {
            OnFinish::Shutdown => {
                let e = domctl::poweroff(if bad == 0 { 0 } else { 1 });
                println!("poweroff failed: {}", e.name());
            }
            OnFinish::Stay => println!("system idle; stop QEMU with Ctrl-C"),
        }
    }
}

/// Domain `id` is gone (reaped): stop serving its store connection, report how it ended, and
/// apply its `on_crash` policy: a restartable domain that crashed (or was killed by anyone but
/// `xl destroy`) comes back with the same devices.
pub fn handle_death(tracked: &mut alloc::vec::Vec<Tracked>, store: &mut StoreService, id: DomId, how: Ending) {
    let Some(i) = tracked.iter().position(|t| t.domid == Some(id)) else {
        store.disconnect(id);
        return;
    };
    let restart =
        tracked[i].cfg.on_crash == hv_bundle::OnCrash::Restart && matches!(how, Ending::Crashed | Ending::Destroyed);
    // A domain that comes back is restarted in place: its store nodes (a driver domain's backend
    // directories) stay for the new instance.
    if restart {
        store.disconnect_keeping_nodes(id);
    } else {
        store.disconnect(id);
    }
    if !restart {
        tracked[i].ending = Some(how);
        report(&tracked[i], how);
        if tracked[i].from_xl {
            toolstack::remove_devices_of(store, id, tracked);
            tracked.remove(i);
        }
        return;
    }
    let name = tracked[i].cfg.name.clone();
    let ran_ns = time::now_ns().saturating_sub(tracked[i].since_ns);
    match tracked[i].backoff.on_crash(ran_ns) {
        RestartDecision::After { delay_ns: 0, .. } => {
            println!("{name} (domain {id}) ended: {}; restarting it (on_crash = restart)", how.text());
            restart_now(tracked, i, store, how);
        }
        RestartDecision::After { delay_ns, in_a_row } => {
            println!(
                "{name} (domain {id}) ended: {}; {in_a_row} crashes in a row, restarting it in {} ms (on_crash = restart)",
                how.text(),
                delay_ns / 1_000_000
            );
            tracked[i].previous_id = tracked[i].domid.take();
            tracked[i].restart_at = Some(time::now_ns().saturating_add(delay_ns));
        }
        RestartDecision::GiveUp { in_a_row } => {
            println!(
                "{name} (domain {id}) ended: {}; it crashed {in_a_row} times in a row, each within {} s of starting: staying down (on_crash = restart gives up)",
                how.text(),
                RestartBackoff::STABLE_NS / 1_000_000_000
            );
            tracked[i].ending = Some(how);
            // Staying down: nothing will use its nodes again.
            store.release_nodes(id);
        }
    }
}

fn restart_now(tracked: &mut [Tracked], i: usize, store: &mut StoreService, how: Ending) {
    let name = tracked[i].cfg.name.clone();
    match toolstack::restart(tracked, i, store) {
        Ok(new) => println!("{name} restarted as domain {new} (restart {})", tracked[i].restarts),
        Err(e) => {
            println!("{name}: restart failed: {e}");
            tracked[i].ending = Some(how);
        }
    }
}

/// Starts the restarts whose back-off delay has passed.
fn restart_due(tracked: &mut [Tracked], store: &mut StoreService) {
    let now = time::now_ns();
    while let Some(i) = tracked.iter().position(|t| t.restart_at.is_some_and(|at| at <= now)) {
        tracked[i].restart_at = None;
        restart_now(tracked, i, store, Ending::Crashed);
    }
}

fn report(t: &Tracked, how: Ending) {
    if how.matches(t.cfg.expect) {
        println!("{} ended: {} (expected)", t.cfg.name, how.text());
    } else {
        println!("{} ended: {} (UNEXPECTED, expected {})", t.cfg.name, how.text(), expect_text(t.cfg.expect));
    }
}
