//! Dom0: the thin control domain. It reads the topology from the boot bundle, creates every
//! other domain, watches them end, and applies the topology's policy. It drives no device.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec::Vec;
use hv_abi::{DomainListEntry, ShutdownReason, end, state};
use hv_bundle::{DomainConfig, Expect, OnFinish, Topology};
use hv_rt::{domctl, println, time};

mod exercise;

hv_rt::main!(main);

/// How a domain ended, as Dom0 classifies it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Ending {
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

struct Tracked {
    cfg: DomainConfig,
    domid: Option<u32>,
    ending: Option<Ending>,
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
    let dom_exc =
        hv_rt::evtchn::bind_virq(hv_abi::virq::DOM_EXC).unwrap_or_else(|e| panic!("bind DOM_EXC: {}", e.name()));

    let mut tracked: Vec<Tracked> = Vec::new();
    for cfg in topo.domains.iter().skip(1) {
        let t = match domctl::create(&cfg.name, &cfg.image, cfg.memory_mib, &cfg.args) {
            Ok(id) => {
                println!("started {} as domain {id}", cfg.name);
                Tracked { cfg: cfg.clone(), domid: Some(id), ending: None }
            }
            Err(e) => {
                println!("cannot start {}: {}", cfg.name, e.name());
                Tracked { cfg: cfg.clone(), domid: None, ending: Some(Ending::FailedToStart) }
            }
        };
        tracked.push(t);
    }
    println!("all domains running");
    let failed_checks = match hv_rt::arg("exercise") {
        Some("lifecycle") => {
            let victim = tracked.iter().find(|t| t.cfg.expect == Expect::Forever).and_then(|t| t.domid);
            exercise::lifecycle(victim)
        }
        Some(other) => {
            println!("unknown exercise {other:?}");
            1
        }
        None => 0,
    };

    let mut finished = false;
    loop {
        // Woken by DOM_EXC when a domain ends; the deadline is only a safety net.
        time::block_until(time::now_ns() + 1_000_000_000);
        hv_rt::evtchn::clear(dom_exc);
        let Ok(list) = domctl::list() else { continue };
        for e in list.iter().filter(|e| e.state == state::DEAD) {
            let Some(t) = tracked.iter_mut().find(|t| t.domid == Some(e.domid)) else {
                let _ = domctl::destroy(e.domid);
                continue;
            };
            let how = classify(e);
            t.ending = Some(how);
            report(t, how);
            if let Err(err) = domctl::destroy(e.domid) {
                println!("cannot reap domain {}: {}", e.domid, err.name());
            }
        }
        let waiting = tracked.iter().any(|t| t.ending.is_none() && t.cfg.expect != Expect::Forever);
        if finished || waiting {
            continue;
        }
        // Everything that should end has ended: stop the ones meant to run forever.
        for t in tracked.iter_mut().filter(|t| t.ending.is_none()) {
            t.ending = Some(Ending::StillRunning);
            report(t, Ending::StillRunning);
            if let Some(id) = t.domid {
                let _ = domctl::destroy(id);
            }
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

fn report(t: &Tracked, how: Ending) {
    if how.matches(t.cfg.expect) {
        println!("{} ended: {} (expected)", t.cfg.name, how.text());
    } else {
        println!("{} ended: {} (UNEXPECTED, expected {})", t.cfg.name, how.text(), expect_text(t.cfg.expect));
    }
}
