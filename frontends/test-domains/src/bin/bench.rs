//! In-domain measurements for `cargo xtask bench`: prints `BENCH <metric> <value> <unit>` lines.
//!
//! `role=create` (default): creation latency and the null hypercall. `role=front` and
//! `role=peer` are the two ends of a `bench` split device: event-channel ping-pong between them,
//! then the peer measures grant copy (single and batches of 32, against a plain in-domain copy)
//! and grant map+unmap.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use hv_abi::{GNTCOPY_SOURCE_GREF, GrantCopy, GrantCopyPtr};
use hv_rt::store::wait_for_state;
use hv_rt::store::{Store, XenbusState, xenbus};
use hv_rt::{evtchn, grant, println, time};
use xenstore::StoreClient;

hv_rt::main!(main);

const SECOND: u64 = 1_000_000_000;
const PAGES: usize = 32;

fn main() {
    let r = match hv_rt::arg("role").unwrap_or("create") {
        "front" => front(),
        "peer" => peer(),
        _ => {
            create_and_null();
            Ok(())
        }
    };
    if let Err(e) = r {
        panic!("{e}");
    }
}

fn report(metric: &str, cycles: u64, n: u64) {
    let per = cycles as f64 / n as f64;
    println!("BENCH {metric}_cycles {per:.1} cycles");
    println!("BENCH {metric}_ns {:.1} ns", time::cycles_to_ns(cycles) as f64 / n as f64);
}

fn create_and_null() {
    let si = hv_rt::start_info();
    let create = hv_rt::entry_tsc().saturating_sub(si.create_tsc);
    println!("BENCH domain_create_cycles {create} cycles");
    println!("BENCH domain_create_us {:.1} us", time::cycles_to_ns(create) as f64 / 1000.0);
    let iters = hv_rt::arg_u64("iters", 200_000);
    for _ in 0..1000 {
        core::hint::black_box(time::now_ns());
    }
    let t0 = time::rdtsc();
    for _ in 0..iters {
        core::hint::black_box(time::now_ns());
    }
    report("null_hypercall", time::rdtsc() - t0, iters);
}

/// Waits for `port`; `deadline` is fixed for a whole measurement so the hypervisor's timer is
/// not re-armed on every wait.
fn wait_port(port: u32, deadline: u64) {
    while !evtchn::clear(port) {
        if time::now_ns() > deadline {
            panic!("the peer stopped answering");
        }
        time::block_until(deadline);
    }
}

fn front() -> Result<(), String> {
    let mut store = Store::connect().map_err(|e| format!("{e}"))?;
    let dir = format!("/local/domain/{}/device/bench/0", hv_rt::domid());
    let be = store.read_domid(&format!("{dir}/backend-id")).map_err(|e| format!("{e}"))?;
    let be_dir = store.read_string(&format!("{dir}/backend")).map_err(|e| format!("{e}"))?;
    let mut pages = grant::GrantedPages::new(be, PAGES).map_err(|e| e.name())?;
    let mut refs = Vec::new();
    while let Some((r, va)) = pages.take() {
        // SAFETY: our own granted page.
        unsafe { core::ptr::write_bytes(va as *mut u8, r as u8, 4096) };
        refs.push(format!("{r}"));
    }
    let port = evtchn::alloc_unbound(be).map_err(|e| e.name())?;
    store.write(format!("{dir}/refs").as_bytes(), refs.join(",").as_bytes()).map_err(|e| format!("{e}"))?;
    store.write(format!("{dir}/event-channel").as_bytes(), format!("{port}").as_bytes()).map_err(|e| format!("{e}"))?;
    xenbus::switch_state(&mut store, dir.as_bytes(), XenbusState::Initialised).map_err(|e| format!("{e}"))?;
    wait_for_state(&mut store, &be_dir, 30 * SECOND, |s| s == XenbusState::Connected)?;

    let n = hv_rt::arg_u64("roundtrips", 20_000);
    let deadline = time::now_ns() + 60 * SECOND;
    for _ in 0..100 {
        evtchn::send(port).map_err(|e| e.name())?;
        wait_port(port, deadline);
    }
    let t0 = time::rdtsc();
    for _ in 0..n {
        let _ = evtchn::send(port);
        wait_port(port, deadline);
    }
    report("evtchn_roundtrip", time::rdtsc() - t0, n);
    // The peer measures grants next; it says when it is done.
    wait_for_state(&mut store, &be_dir, 120 * SECOND, |s| matches!(s, XenbusState::Closing | XenbusState::Closed))?;
    Ok(())
}

fn peer() -> Result<(), String> {
    let mut store = Store::connect().map_err(|e| format!("{e}"))?;
    let base = format!("/local/domain/{}/backend/bench", hv_rt::domid());
    let fes = store.directory(base.as_bytes()).map_err(|e| format!("{e}"))?;
    let dir = format!("{base}/{}/0", core::str::from_utf8(fes.first().ok_or("no frontend")?).unwrap_or("?"));
    let fe = store.read_domid(&format!("{dir}/frontend-id")).map_err(|e| format!("{e}"))?;
    let fe_dir = store.read_string(&format!("{dir}/frontend")).map_err(|e| format!("{e}"))?;
    xenbus::switch_state(&mut store, dir.as_bytes(), XenbusState::InitWait).map_err(|e| format!("{e}"))?;
    wait_for_state(&mut store, &fe_dir, 30 * SECOND, |s| s == XenbusState::Initialised)?;
    let refs: Vec<u32> = store
        .read_string(&format!("{fe_dir}/refs"))
        .map_err(|e| format!("{e}"))?
        .split(',')
        .filter_map(|r| r.parse().ok())
        .collect();
    let remote = store.read_u32(&format!("{fe_dir}/event-channel")).map_err(|e| format!("{e}"))?;
    let port = evtchn::bind_interdomain(fe, remote).map_err(|e| e.name())?;
    evtchn::clear(port); // a fresh binding starts pending
    xenbus::switch_state(&mut store, dir.as_bytes(), XenbusState::Connected).map_err(|e| format!("{e}"))?;

    let n = hv_rt::arg_u64("roundtrips", 20_000);
    let deadline = time::now_ns() + 60 * SECOND;
    for _ in 0..n + 100 {
        wait_port(port, deadline);
        let _ = evtchn::send(port);
    }

    // Grant copy: one page per call, then batches of 32, against a plain copy of the same bytes.
    let m = hv_rt::arg_u64("copies", 8192);
    let mut buf: Vec<u8> = alloc::vec![0u8; PAGES * 4096];
    let op = |i: usize, dst: u64| GrantCopy {
        source: GrantCopyPtr { ref_or_addr: refs[i % refs.len()] as u64, domid: fe as u16, offset: 0, _pad: 0 },
        dest: GrantCopyPtr { ref_or_addr: dst, domid: 0, offset: 0, _pad: 0 },
        len: 4096,
        flags: GNTCOPY_SOURCE_GREF,
        ..Default::default()
    };
    let base_addr = buf.as_mut_ptr() as u64;
    let t0 = time::rdtsc();
    for i in 0..m as usize {
        let mut one = [op(i, base_addr)];
        grant::copy(&mut one).map_err(|e| e.name())?;
    }
    report("grant_copy_single_per_page", time::rdtsc() - t0, m);
    let mut batch: Vec<GrantCopy> = (0..PAGES).map(|i| op(i, base_addr + (i * 4096) as u64)).collect();
    let t0 = time::rdtsc();
    for _ in 0..m as usize / PAGES {
        grant::copy(&mut batch).map_err(|e| e.name())?;
    }
    let cycles = time::rdtsc() - t0;
    if batch.iter().any(|o| o.status != 0) || buf[4096] != refs[1] as u8 {
        return Err("grant copy produced wrong data".into());
    }
    report("grant_copy_batch32_per_page", cycles, m);
    println!("BENCH grant_copy_batch32_gbps {:.3} GB/s", (m * 4096) as f64 / time::cycles_to_ns(cycles) as f64);
    let src: Vec<u8> = alloc::vec![7u8; PAGES * 4096];
    let t0 = time::rdtsc();
    for i in 0..m as usize {
        let k = (i % PAGES) * 4096;
        buf[k..k + 4096].copy_from_slice(core::hint::black_box(&src[k..k + 4096]));
    }
    report("local_copy_per_page", time::rdtsc() - t0, m);

    // Map + unmap of one grant.
    let t0 = time::rdtsc();
    for _ in 0..m {
        let (h, _) = grant::map(fe, refs[0], true).map_err(|e| e.name())?;
        grant::unmap(h).map_err(|e| e.name())?;
    }
    report("grant_map_unmap", time::rdtsc() - t0, m);
    xenbus::switch_state(&mut store, dir.as_bytes(), XenbusState::Closing).map_err(|e| format!("{e}"))?;
    Ok(())
}
