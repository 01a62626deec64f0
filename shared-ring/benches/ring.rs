//! `cargo xtask bench ring`: our rings against Xen's `ring.h` macros (compiled from Debian's
//! libxen-dev headers, `c/xen_ring_peer.c`) in the same run, interleaved, several rounds.
//!
//! Two host threads pinned to different CPUs, blkif-sized messages, both ends busy-polling
//! (notification decisions are still made and counted). Modes:
//! * `latency`: one outstanding request; round trip in ns.
//! * `push-each`: every request is made visible as soon as it is pushed, up to `size`
//!   outstanding; messages/s. `ring.h` uses `RING_PUSH_REQUESTS_AND_CHECK_NOTIFY` per request
//!   (a full barrier and a notify decision each). shared-ring uses `flush_requests` per request
//!   (a release store) and one `publish_requests` (barrier + notify decision covering the whole
//!   burst) when the front end stops pushing and turns to its responses.
//! * `batched`: fill every free slot, publish once; messages/s.
//!
//! Back ends: `ring.h` answers every request it finds and then pushes once with
//! `RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`. shared-ring's back end flushes each response as it is
//! written and makes one `publish_responses` decision per batch.
//!
//! Absolute figures swing between runs on shared machines; the same-run ratios are the result.
//! Usage: `cargo bench -p shared-ring --bench ring -- [--json PATH] [--rounds N] [--quick]`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::ffi::c_void;
use std::fmt::Write as _;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use shared_ring::wire::blkif::{BlkifRequest, BlkifRequestSlot, BlkifResponse, BlkifSegment, OP_READ};
use shared_ring::{BackRing, Blkif, FrontRing};
use support::{Library, SharedPages};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Latency = 0,
    PushEach = 1,
    Batched = 2,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Latency => "latency",
            Mode::PushEach => "push-each",
            Mode::Batched => "batched",
        }
    }
    fn unit(self) -> &'static str {
        if self == Mode::Latency { "ns/round-trip" } else { "Mmsg/s" }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Implementation {
    XenRingH,
    SharedRing,
}

type BenchFront = unsafe extern "C" fn(*mut c_void, u32, i32, u64) -> u64;
type BenchBack = unsafe extern "C" fn(*mut c_void, u32, u64) -> u64;
type InitFn = unsafe extern "C" fn(*mut c_void);

struct XenC {
    init: InitFn,
    front: BenchFront,
    back: BenchBack,
}

unsafe extern "C" {
    fn sched_setaffinity(pid: i32, size: usize, mask: *const u64) -> i32;
}

fn pin_to_cpu(cpu: usize) {
    let mut mask = [0u64; 16];
    mask[cpu / 64] |= 1 << (cpu % 64);
    // SAFETY: a valid CPU mask of the size passed; pid 0 is the calling thread.
    let result = unsafe { sched_setaffinity(0, size_of_val(&mask), mask.as_ptr()) };
    if result != 0 {
        eprintln!("warning: could not pin thread to CPU {cpu}");
    }
}

fn rust_front(shared: &SharedPages, mode: Mode, count: u64) -> u64 {
    let mut front = FrontRing::<Blkif, _>::init(shared.memory()).unwrap();
    let slots = u64::from(front.layout().slots());
    let limit = if mode == Mode::Latency { 1 } else { slots as u32 };
    let (mut sent, mut done, mut notifies) = (0u64, 0u64, 0u64);
    let mut request = BlkifRequest { operation: OP_READ, nr_segments: 1, ..Default::default() };
    while done < count {
        let mut pushed = false;
        while sent < count && front.in_flight() < limit {
            request.id = sent % slots;
            request.sector_number = sent;
            request.seg[0] = BlkifSegment { gref: sent as u32, first_sect: 0, last_sect: 7 };
            front.push_request(BlkifRequestSlot::from(&request)).unwrap();
            sent += 1;
            match mode {
                Mode::Latency => notifies += u64::from(front.publish_requests().is_needed()),
                // Visible at once; the notify decision for the burst comes below.
                Mode::PushEach => {
                    front.flush_requests();
                    pushed = true;
                }
                Mode::Batched => pushed = true,
            }
        }
        if pushed {
            // The front end stops producing here: decide (barrier + notify check) for everything
            // pushed since the last decision.
            notifies += u64::from(front.publish_requests().is_needed());
        }
        while let Some(response) = front.poll_response().unwrap() {
            assert_eq!(response.id, done % slots);
            done += 1;
        }
    }
    notifies
}

fn rust_back(shared: &SharedPages, count: u64) -> u64 {
    let mut back = BackRing::<Blkif, _>::attach(shared.memory()).unwrap();
    let (mut done, mut notifies) = (0u64, 0u64);
    while done < count {
        let mut answered = false;
        while let Some(slot) = back.poll_request().unwrap() {
            let raw = slot.as_raw();
            assert!(raw[1] <= 11);
            back.push_response(BlkifResponse { id: slot.id(), operation: slot.operation(), status: 0 }).unwrap();
            back.flush_responses();
            done += 1;
            answered = true;
        }
        if answered {
            notifies += u64::from(back.publish_responses().is_needed());
        }
    }
    notifies
}

/// One run: both ends on their own CPU; returns elapsed time.
fn run_once(c: &XenC, implementation: Implementation, mode: Mode, pages: usize, count: u64) -> Duration {
    let shared = SharedPages::new(pages * 4096);
    let bytes = shared.len() as u32;
    let base = shared.pointer().as_ptr().cast::<c_void>();
    if implementation == Implementation::XenRingH {
        // SAFETY: a zeroed page-aligned area no thread uses yet.
        unsafe { (c.init)(base) };
    } else {
        // Initialise the shared header the Rust way; the threads attach their own halves.
        let _ = FrontRing::<Blkif, _>::init(shared.memory()).unwrap();
    }
    let start = Barrier::new(2);
    let base_address = base as usize;
    thread::scope(|scope| {
        let back = scope.spawn(|| {
            pin_to_cpu(1);
            start.wait();
            match implementation {
                // SAFETY: the area lives until the scope ends; the C function only touches it.
                Implementation::XenRingH => unsafe { (c.back)(base_address as *mut c_void, bytes, count) },
                Implementation::SharedRing => rust_back(&shared, count),
            }
        });
        pin_to_cpu(0);
        start.wait();
        let begin = Instant::now();
        let front_result = match implementation {
            // SAFETY: as above.
            Implementation::XenRingH => unsafe { (c.front)(base_address as *mut c_void, bytes, mode as i32, count) },
            Implementation::SharedRing => rust_front(&shared, mode, count),
        };
        let back_result = back.join().unwrap();
        let elapsed = begin.elapsed();
        assert!(
            front_result != u64::MAX && back_result != u64::MAX,
            "{implementation:?} {mode:?}: protocol check failed"
        );
        elapsed
    })
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

struct Case {
    mode: Mode,
    xen_pages: usize,
    ours_pages: usize,
    target: f64,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).cloned();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds: usize = value("--rounds").and_then(|r| r.parse().ok()).unwrap_or(if quick { 2 } else { 7 });
    let json_path = value("--json");
    if std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) < 2 {
        eprintln!("warning: fewer than 2 CPUs; busy-polling threads will share one");
    }

    support::require_xen_headers();
    let library = Library::build("xen_ring_peer.c", "xen_ring_peer_bench");
    // SAFETY: the symbols have exactly these C signatures (see xen_ring_peer.c).
    let c = unsafe {
        XenC {
            init: std::mem::transmute::<*mut c_void, InitFn>(library.symbol("xen_ring_init")),
            front: std::mem::transmute::<*mut c_void, BenchFront>(library.symbol("xen_bench_front")),
            back: std::mem::transmute::<*mut c_void, BenchBack>(library.symbol("xen_bench_back")),
        }
    };

    let cases = [
        Case { mode: Mode::Latency, xen_pages: 1, ours_pages: 1, target: 1.0 },
        Case { mode: Mode::PushEach, xen_pages: 1, ours_pages: 1, target: 2.5 },
        Case { mode: Mode::Batched, xen_pages: 1, ours_pages: 1, target: 1.0 },
        Case { mode: Mode::Batched, xen_pages: 1, ours_pages: 4, target: 1.5 },
    ];
    let count = |mode: Mode| -> u64 {
        let base = if mode == Mode::Latency { 100_000 } else { 2_000_000 };
        if quick { base / 10 } else { base }
    };
    // samples[case][impl]: ns per round trip (latency) or Mmsg/s.
    let mut samples = vec![[Vec::new(), Vec::new()]; cases.len()];
    for round in 0..rounds {
        for (i, case) in cases.iter().enumerate() {
            // Alternate which implementation goes first.
            let order = if round % 2 == 0 {
                [Implementation::XenRingH, Implementation::SharedRing]
            } else {
                [Implementation::SharedRing, Implementation::XenRingH]
            };
            for implementation in order {
                let pages = if implementation == Implementation::XenRingH { case.xen_pages } else { case.ours_pages };
                let n = count(case.mode);
                let elapsed = run_once(&c, implementation, case.mode, pages, n).as_secs_f64();
                let figure =
                    if case.mode == Mode::Latency { elapsed * 1e9 / n as f64 } else { n as f64 / elapsed / 1e6 };
                samples[i][implementation as usize].push(figure);
            }
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }

    let mut table = String::new();
    let mut json = String::from("{\n  \"benchmark\": \"ring\",\n  \"message\": \"blkif (112-byte slots)\",\n");
    let _ = writeln!(json, "  \"rounds\": {rounds},\n  \"results\": [");
    let _ = writeln!(
        table,
        "{:<10} {:>6} {:>6} {:>14} {:>14} {:>14} {:>7} {:>7}",
        "mode", "xen pg", "our pg", "unit", "xen ring.h", "shared-ring", "ratio", "target"
    );
    let mut all_met = true;
    for (i, case) in cases.iter().enumerate() {
        let xen = median(&mut samples[i][0].clone());
        let ours = median(&mut samples[i][1].clone());
        // Ratio > 1 means we are better: latency xen/ours, throughput ours/xen.
        let ratio = if case.mode == Mode::Latency { xen / ours } else { ours / xen };
        let met = ratio >= case.target;
        all_met &= met;
        let _ = writeln!(
            table,
            "{:<10} {:>6} {:>6} {:>14} {:>14.2} {:>14.2} {:>6.2}x {:>5.1}x{}",
            case.mode.name(),
            case.xen_pages,
            case.ours_pages,
            case.mode.unit(),
            xen,
            ours,
            ratio,
            case.target,
            if met { "" } else { "  (below target)" }
        );
        let list = |v: &[f64]| v.iter().map(|x| format!("{x:.3}")).collect::<Vec<_>>().join(", ");
        let _ = writeln!(
            json,
            "    {{\"mode\": \"{}\", \"xen_pages\": {}, \"ours_pages\": {}, \"unit\": \"{}\", \"xen_median\": {xen:.3}, \
             \"ours_median\": {ours:.3}, \"ratio\": {ratio:.3}, \"target\": {}, \"met\": {met}, \
             \"xen_samples\": [{}], \"ours_samples\": [{}]}}{}",
            case.mode.name(),
            case.xen_pages,
            case.ours_pages,
            case.mode.unit(),
            case.target,
            list(&samples[i][0]),
            list(&samples[i][1]),
            if i + 1 < cases.len() { "," } else { "" }
        );
    }
    let _ = writeln!(json, "  ],\n  \"all_targets_met\": {all_met}\n}}");
    println!("ring benchmark: medians of {rounds} interleaved rounds (ratio > 1 = shared-ring better)");
    println!(
        "push-each: ring.h = barrier + notify check per request; shared-ring = release store per request \
         (flush_requests), one barrier + notify check per burst (publish_requests)"
    );
    println!(
        "back ends: ring.h pushes responses once per batch; shared-ring flushes each response, one \
         barrier + notify check per batch"
    );
    print!("{table}");
    if let Some(path) = json_path {
        let path = std::path::Path::new(&path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create JSON directory");
        }
        std::fs::write(path, json).expect("write JSON");
        println!("wrote {}", path.display());
    }
}
