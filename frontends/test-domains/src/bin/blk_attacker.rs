//! A hostile blkfront: connects its read-only `vbd/1` and read-write `vbd/0` like an honest
//! frontend, then sends every kind of bad request; each must get an error response. Finally it
//! lies about `req_prod`, which must get it disconnected (its backend state goes Closed) while
//! blkback keeps serving the others. Then it sets `data/blk-attacks` = `done` (readable by all)
//! and waits to be stopped.
//!
//! With `flood=1` (`cargo xtask bench linux-io`'s flood run) it skips the lying `req_prod` and
//! floods instead, for as long as it lives: 256 KiB reads of its own vdisk back to back, as many
//! requests in flight as its 64 granted pages allow, with a bad request after every eighth read.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use blkfront::BlkFront;
use hv_rt::store::{Store, XenbusState};
use hv_rt::{evtchn, grant, println, time};
use shared_ring::wire::blkif::{
    BlkifRequest, BlkifRequestSlot, BlkifSegment, OP_FLUSH_DISKCACHE, OP_READ, OP_WRITE, RSP_OKAY,
};
use xenstore::{Access, Permissions, StoreClient};

hv_rt::main!(main);

fn main() {
    if let Err(e) = run() {
        panic!("{e}");
    }
}

fn req(op: u8, sector: u64, segs: &[(u32, u8, u8)]) -> BlkifRequestSlot {
    let mut r =
        BlkifRequest { operation: op, nr_segments: segs.len() as u8, sector_number: sector, ..Default::default() };
    for (s, &(gref, first_sect, last_sect)) in r.seg.iter_mut().zip(segs) {
        *s = BlkifSegment { gref, first_sect, last_sect };
    }
    BlkifRequestSlot::from(&r)
}

/// Sends `slot`; an error response is what we want.
fn attack(f: &mut BlkFront, what: &str, slot: BlkifRequestSlot) -> Result<bool, String> {
    let rsp = f.request_raw(slot).map_err(|e| format!("{what}: {e}"))?;
    if rsp.status == RSP_OKAY {
        println!("{what}: ACCEPTED");
        Ok(false)
    } else {
        println!("{what}: error response ({})", rsp.status);
        Ok(true)
    }
}

/// Granted pages of the flooding connection (several 11-page requests in flight).
const FLOOD_POOL_PAGES: usize = 64;
/// Bytes of each flood read.
const FLOOD_READ: usize = 256 * 1024;

/// Reads its whole vdisk over and over as fast as blkback answers, with a request blkback must
/// refuse after every eighth read; reports its pace every two seconds. Returns only on an error.
fn flood_forever(f: &mut BlkFront, gref: u32) -> Result<(), String> {
    let mut buf = alloc::vec![0u8; FLOOD_READ];
    let span = f.capacity().saturating_sub((FLOOD_READ / 512) as u64).max(1);
    let (mut reads, mut refused) = (0u64, 0u64);
    let mut report = time::now_ns() + 2_000_000_000;
    println!("flooding vbd/0 with {} KiB reads", FLOOD_READ / 1024);
    for i in 0u64.. {
        f.read((i * (FLOOD_READ / 512) as u64) % span, &mut buf).map_err(|e| format!("flood read: {e}"))?;
        reads += 1;
        if i % 8 == 7 {
            let rsp = f.request_raw(req(OP_READ, u64::MAX - 2, &[(gref, 0, 7)])).map_err(|e| format!("{e}"))?;
            refused += u64::from(rsp.status != RSP_OKAY);
        }
        if time::now_ns() >= report {
            println!("flood: {reads} reads of {} KiB, {refused} bad requests refused", FLOOD_READ / 1024);
            report = time::now_ns() + 2_000_000_000;
        }
    }
    Ok(())
}

fn run() -> Result<(), String> {
    let me = hv_rt::domid();
    let store = Store::connect().map_err(|e| format!("store: {e}"))?;
    let mut refused = 0;
    let mut total = 0;

    // The read-only vdisk first.
    let mut ro = BlkFront::connect(store, 1, 11).map_err(|e| format!("vbd/1: {e}"))?;
    let page = ro.take_page().ok_or("no page")?;
    for (what, slot) in [
        ("write to the read-only vdisk", req(OP_WRITE, 0, &[(page.0, 0, 7)])),
        ("flush of the read-only vdisk", req(OP_FLUSH_DISKCACHE, 0, &[])),
    ] {
        total += 1;
        refused += attack(&mut ro, what, slot)? as u32;
    }
    let status = ro.request_raw(req(OP_READ, 0, &[(page.0, 0, 7)])).map_err(|e| format!("{e}"))?.status;
    println!("read of the read-only vdisk: {}", if status == RSP_OKAY { "served" } else { "REFUSED" });
    let store = ro.into_store();

    let flood = hv_rt::arg_u64("flood", 0) == 1;
    let pool = if flood { FLOOD_POOL_PAGES } else { 11 };
    let mut f = BlkFront::connect(store, 0, pool).map_err(|e| format!("vbd/0: {e}"))?;
    let cap = f.capacity();
    // An honest write and read of our own vdisk work.
    let mine = [0x5au8; 4096];
    f.write(cap - 8, &mine).map_err(|e| format!("own write: {e}"))?;
    let mut back = [0u8; 4096];
    f.read(cap - 8, &mut back).map_err(|e| format!("own read: {e}"))?;
    println!("own vdisk of {cap} sectors works: {}", if back == mine { "yes" } else { "NO" });

    let (gref, _va) = f.take_page().ok_or("no page")?;
    // A page granted to Dom0, not to the backend; a read-only grant to the backend.
    let (be, layout) = (f.backend(), alloc::alloc::Layout::from_size_align(4096, 4096).map_err(|_| "layout")?);
    // SAFETY: non-zero-size layout; the pages are ours for the program's life.
    let (p1, p2) = unsafe { (alloc::alloc::alloc_zeroed(layout), alloc::alloc::alloc_zeroed(layout)) };
    let to_dom0 = grant::grant_access(0, p1 as u64, false).map_err(|e| format!("grant: {}", e.name()))?;
    let ro_grant = grant::grant_access(be, p2 as u64, true).map_err(|e| format!("grant: {}", e.name()))?;
    let mut too_many = BlkifRequest { operation: OP_WRITE, nr_segments: 12, ..Default::default() };
    too_many.seg = [BlkifSegment { gref, first_sect: 0, last_sect: 7 }; 11];
    let mut garbage = [0u8; 112];
    let mut x: u32 = 0x1234_5678;
    for b in garbage.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    garbage[0] = 0xee;
    let attacks = [
        ("write just past the vdisk end", req(OP_WRITE, cap, &[(gref, 0, 0)])),
        ("write straddling the vdisk end", req(OP_WRITE, cap - 4, &[(gref, 0, 7)])),
        ("read far past the vdisk end", req(OP_READ, cap + 2048 * 8, &[(gref, 0, 7)])),
        ("write at a wrapping sector", req(OP_WRITE, u64::MAX - 2, &[(gref, 0, 7)])),
        ("last_sect 8", req(OP_WRITE, 0, &[(gref, 0, 8)])),
        ("first_sect after last_sect", req(OP_WRITE, 0, &[(gref, 6, 2)])),
        ("nr_segments 12", BlkifRequestSlot::from(&too_many)),
        ("read without segments", req(OP_READ, 0, &[])),
        ("bad grant ref", req(OP_WRITE, 0, &[(gref, 0, 7), (3999, 0, 7)])),
        ("grant given to dom0, not the backend", req(OP_WRITE, 0, &[(to_dom0, 0, 7)])),
        ("read into a read-only grant", req(OP_READ, 0, &[(ro_grant, 0, 7)])),
        ("reserved operation 4", req(4, 0, &[(gref, 0, 7)])),
        ("indirect request", req(6, 0, &[(gref, 0, 7)])),
        ("garbage slot", BlkifRequestSlot::from_raw(garbage)),
    ];
    for (what, slot) in attacks {
        total += 1;
        refused += attack(&mut f, what, slot)? as u32;
    }
    println!("bad requests: {refused} refused of {total}");
    if flood {
        return flood_forever(&mut f, gref);
    }

    // A lying req_prod: claims 1000 requests on a 32-slot ring.
    let (ring_page, _, port) = f.ring_parts().ok_or("no ring")?;
    // SAFETY: our own ring page (4 KiB, aligned); req_prod is its first 32-bit word, which the
    // backend only reads.
    unsafe {
        core::ptr::write_volatile(
            ring_page as *mut u32,
            core::ptr::read_volatile(ring_page as *const u32).wrapping_add(1000),
        )
    };
    let _ = evtchn::send(port);
    let deadline = time::now_ns() + 10_000_000_000;
    let mut state = f.backend_state();
    while state == XenbusState::Connected && time::now_ns() < deadline {
        time::sleep_ms(50);
        state = f.backend_state();
    }
    println!("lying req_prod: backend state now {state:?}");

    let done = format!("/local/domain/{me}/data/blk-attacks");
    let s = f.store();
    s.write(done.as_bytes(), b"done").map_err(|e| format!("{e}"))?;
    s.set_perms(done.as_bytes(), Permissions::new(me as u16, Access::Read)).map_err(|e| format!("{e}"))?;
    println!("all attacks done");
    // Stay alive so the key stays readable (a domain's store entries go with it); Dom0 stops
    // us once the honest DomU has finished.
    loop {
        time::sleep_ms(1000);
    }
}
