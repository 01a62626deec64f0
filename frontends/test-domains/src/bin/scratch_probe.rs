//! Plays the attacker against the per-domain scratch page (issue 13, finding 6). When a granter
//! ends, every mapping of its pages is pointed at the mapper's own scratch page. `role=`:
//! * `granter`: grants one page writable to each domain id in `to=a..b` (refs 8, 9, ... in that
//!   order), then lives `live_ms` and exits.
//! * `mapper`: in its first incarnation (no `data/incarnation` in its store home yet; Dom0
//!   restarts a driver domain in place, same id and store nodes kept) maps `granter`'s grant, waits
//!   for it to end (the mapping now shows its scratch page), fills that page with a secret and
//!   crashes on purpose (`on_crash = "restart"` brings it back). In a later incarnation it maps
//!   `granter2`'s grant for its new id, waits for that granter to end and reads what its own
//!   scratch page holds: it must be zeros, never the previous incarnation's secret. Then it
//!   stays up. `second_id` is the first id `granter2` grants to (ref 8; the next id's grant is
//!   ref 9, ...).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::alloc::{Layout, alloc_zeroed};
use hv_rt::{grant, println, time};

hv_rt::main!(main);

const SECRET: &[u8; 16] = b"SCRATCH-SECRET!!";

fn main() {
    match hv_rt::arg("role").unwrap_or("") {
        "granter" => granter(),
        "mapper" => mapper(),
        r => println!("unknown role {r:?}"),
    }
}

fn granter() {
    let (from, to) = hv_rt::arg("to").and_then(|r| r.split_once("..")).unwrap_or(("0", "0"));
    let (from, to): (hv_abi::DomId, hv_abi::DomId) = (from.parse().unwrap_or(0), to.parse().unwrap_or(0));
    // SAFETY: a non-zero-size, page-aligned layout.
    let page = unsafe { alloc_zeroed(Layout::from_size_align(4096, 4096).expect("layout")) } as u64;
    for id in from..to {
        if let Err(e) = grant::grant_access(id, page, false) {
            println!("grant to {id}: {}", e.name());
        }
    }
    println!("granted a page to domains {from}..{to}");
    time::sleep_ms(hv_rt::arg_u64("live_ms", 100));
}

/// Maps grant `gref` of `granter` and waits until the granter has ended (the hypervisor then
/// points the mapping at our scratch page). Returns the mapping's address.
fn map_until_revoked(granter: hv_abi::DomId, gref: u32) -> Option<u64> {
    let mut mapped = None;
    for _ in 0..200 {
        match grant::map(granter, gref, false) {
            Ok((_, va)) => {
                mapped = Some(va);
                break;
            }
            Err(_) => time::sleep_ms(5),
        }
    }
    let Some(va) = mapped else {
        println!("could not map grant {gref} of domain {granter}");
        return None;
    };
    // The granter ends: mapping its grant again then fails with ESRCH (each probe mapping is
    // unmapped at once).
    for _ in 0..400 {
        time::sleep_ms(5);
        match grant::map(granter, gref, false) {
            Ok((h, _)) => {
                let _ = grant::unmap(h);
            }
            Err(hv_abi::Error::Srch) => return Some(va),
            Err(e) => {
                println!("probing domain {granter}: {}", e.name());
                return None;
            }
        }
    }
    println!("domain {granter} did not end");
    None
}

fn mapper() {
    let me = hv_rt::domid();
    // Which incarnation: the first leaves a mark in its store home, which the restart keeps.
    let mut store = match hv_rt::store::Store::connect() {
        Ok(s) => s,
        Err(e) => return println!("store: {e}"),
    };
    let first = store.read_string("data/incarnation").is_err();
    if let Err(e) = xenstore::StoreClient::write(&mut store, b"data/incarnation", b"1") {
        println!("store write: {e}");
    }
    if first {
        let granter = hv_rt::arg_u64("granter", 0) as hv_abi::DomId;
        let Some(va) = map_until_revoked(granter, 8) else { return };
        // SAFETY: `va` is our mapping, now of our own writable scratch page.
        let page = unsafe { core::slice::from_raw_parts_mut(va as *mut u8, 4096) };
        for chunk in page.chunks_mut(16) {
            chunk.copy_from_slice(SECRET);
        }
        println!("first incarnation (domain {me}): wrote a secret into my scratch page; crashing");
        // SAFETY: deliberately faulting; Dom0 restarts this domain.
        unsafe { core::arch::asm!("ud2") };
    }
    let granter2 = hv_rt::arg_u64("granter2", 0) as hv_abi::DomId;
    let gref = 8 + me.saturating_sub(hv_rt::arg_u64("second_id", 0) as hv_abi::DomId);
    println!("incarnation as domain {me}: mapping grant {gref} of domain {granter2}");
    let Some(va) = map_until_revoked(granter2, u32::from(gref)) else { return };
    // SAFETY: `va` is our mapping, now of our own scratch page.
    let page = unsafe { core::slice::from_raw_parts(va as *const u8, 4096) };
    let secret = page.chunks(16).filter(|c| *c == SECRET).count();
    let nonzero = page.iter().filter(|b| **b != 0).count();
    // The secret may also have landed in our RAM (heap) if the old frame came back as RAM.
    let si = hv_rt::start_info();
    let mut in_heap = 0usize;
    let mut a = si.heap_start;
    while a + 16 <= si.heap_end {
        // SAFETY: the heap range is our mapped RAM.
        if unsafe { core::slice::from_raw_parts(a as *const u8, 16) } == SECRET {
            in_heap += 1;
        }
        a += 16;
    }
    println!(
        "scratch page after revocation: {nonzero} non-zero bytes, {secret} copies of the previous incarnation's secret; {in_heap} copies in my heap"
    );
    // Stay up (`expect = "forever"`): a second crash would restart us again.
    loop {
        time::sleep_ms(1000);
    }
}
