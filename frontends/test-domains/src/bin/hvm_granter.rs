//! The paravirtual granter of `topologies/pvh-revoke.toml`, which dies while an HVM guest
//! (`pvh-probe revoke <our domid>`) maps its grants, and its next incarnation, which looks for
//! what the HVM guest wrote through the revoked mappings. Dom0 restarts it in place
//! (`on_crash = "restart"`: same domain id, store home kept) and likely on the same frames (the
//! allocator is first fit and this domain is created last); an incarnation tells which it is by a
//! mark in its store home.
//!
//! Args: `peer=<HVM domid> port=<HVM port> next_port=<HVM port for the next incarnation>`
//! (`timeout_ms`, default 20000, bounds each wait).
//!
//! First incarnation: grants the HVM guest two pages of its heap, writable, each with a marker
//! (refs 8 and 9, the first its runtime hands out, which the HVM guest expects); writes the
//! machine addresses of both pages into its store home (`data/granted`); binds to `port`,
//! notifies and waits for the HVM guest's event (both pages mapped); checks that ending either
//! grant is refused (the hypervisor's busy bits are set while it is mapped); and crashes on
//! purpose with both grants still mapped.
//!
//! Next incarnation: says where its RAM is and whether the old pages lie in it (and at which
//! address of its heap); binds to `next_port`, which the HVM guest allocates only after it wrote
//! its pattern through the revoked mappings; counts the pattern's words in the old pages and in
//! every page of its heap (none may be there: the hypervisor pointed the mappings at the HVM
//! guest's scratch page before it scrubbed and freed these frames); notifies the HVM guest and
//! exits.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::boxed::Box;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use hv_abi::{DOMAIN_BASE, DomId, Error, ShutdownReason};
use hv_rt::time::{now_ns, sleep_ms};
use hv_rt::{evtchn, grant, println};
use xenstore::StoreClient;

hv_rt::main!(main);

/// pvh-probe's `REVOKE_REFS`: the refs the HVM guest maps.
const REFS: [u32; 2] = [8, 9];
/// pvh-probe's `REVOKE_PATTERN_SEED` (both sides print it; the scenario compares them).
const PATTERN_SEED: u64 = 0x5245_564f_4b45_4421;
/// Words in a page.
const WORDS: usize = 512;

/// pvh-probe's `revoke_pattern`: word `i` of the pattern the HVM guest writes.
const fn pattern(i: usize) -> u64 {
    PATTERN_SEED ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// A page of ours (page-aligned, so a grant covers exactly it).
#[repr(C, align(4096))]
struct Page([u8; 4096]);

fn main() {
    if let Err(e) = run() {
        panic!("hvm-granter: {e}");
    }
}

fn required(key: &str) -> Result<u64, String> {
    let value = hv_rt::arg(key).ok_or_else(|| format!("missing argument {key}="))?;
    value.parse().map_err(|_| format!("argument {key}={value} is not a number"))
}

/// System time `timeout_ms` from now.
fn deadline() -> u64 {
    now_ns().saturating_add(hv_rt::arg_u64("timeout_ms", 20_000) * 1_000_000)
}

fn run() -> Result<(), String> {
    let peer = DomId::try_from(required("peer")?).map_err(|_| "peer= is not a domid")?;
    let mut store = hv_rt::store::Store::connect().map_err(|e| format!("store: {e}"))?;
    match store.read_string("data/granted") {
        Err(_) => first(&mut store, peer),
        Ok(granted) => next(peer, &granted),
    }
}

/// Binds to `remote_port` of `peer`, retrying until the port exists (or the deadline passes).
/// Gives up at once when `peer` is gone: then each restart of ours would wait in vain, and the
/// crashes in a row make Dom0 give up on us soon.
fn bind(peer: DomId, remote_port: u32) -> Result<u32, String> {
    let deadline = deadline();
    loop {
        match evtchn::bind_interdomain(peer, remote_port) {
            Ok(port) => {
                // A freshly bound port starts pending; that is no event from the peer.
                evtchn::clear(port);
                return Ok(port);
            }
            Err(Error::Srch) => return Err(format!("binding to port {remote_port} of domain {peer}: it is gone")),
            Err(e) if now_ns() >= deadline => {
                return Err(format!("binding to port {remote_port} of domain {peer}: {} (gave up)", e.name()));
            }
            Err(_) => sleep_ms(2),
        }
    }
}

/// The machine address of our page at `va`.
fn machine_address(va: u64) -> u64 {
    hv_rt::start_info().ram_phys + (va - DOMAIN_BASE)
}

fn first(store: &mut hv_rt::store::Store, peer: DomId) -> Result<(), String> {
    let me = hv_rt::domid();
    let port = u32::try_from(required("port")?).map_err(|_| "port= out of range")?;
    let pages: Vec<Box<Page>> = (0..2).map(|_| Box::new(Page([0; 4096]))).collect();
    let mut granted = [0u64; 2];
    for (i, page) in pages.iter().enumerate() {
        let va = page.0.as_ptr() as u64;
        put_text(va, &format!("page {i} of hvm-granter (domain {me}), grant {}", REFS[i]));
        let gref = grant::grant_access(peer, va, false).map_err(|e| format!("granting page {i}: {}", e.name()))?;
        if gref != REFS[i] {
            return Err(format!("page {i} got grant {gref}, the HVM guest expects {}", REFS[i]));
        }
        granted[i] = machine_address(va);
    }
    let record = format!("{:#x} {:#x}", granted[0], granted[1]);
    store.write(b"data/granted", record.as_bytes()).map_err(|e| format!("store write: {e}"))?;
    println!(
        "hvm-granter: first incarnation (domain {me}): granted refs {} and {} (writable, machine addresses {record}) to domain {peer}",
        REFS[0], REFS[1]
    );
    let local = bind(peer, port)?;
    println!("hvm-granter: bound local port {local} to port {port} of domain {peer}; notifying");
    evtchn::send(local).map_err(|e| format!("send on port {local}: {}", e.name()))?;
    let deadline = deadline();
    while !evtchn::clear(local) {
        if now_ns() >= deadline {
            return Err(format!("no event on port {local}"));
        }
        evtchn::wait_until(deadline);
    }
    let ended: Vec<&str> = REFS
        .iter()
        .map(|&r| match grant::end_access(r) {
            Ok(()) => "ended",
            Err(e) => e.name(),
        })
        .collect();
    println!("hvm-granter: domain {peer} has both mapped; ending them now: {}, {}", ended[0], ended[1]);
    if ended.iter().any(|e| *e != Error::Busy.name()) {
        return Err(String::from("a grant in use was ended under its mapper"));
    }
    println!("hvm-granter: crashing on purpose with both grants mapped by domain {peer}");
    hv_rt::shutdown(ShutdownReason::Crash)
}

/// Where machine address `pa` is in our heap, if it is in our RAM and that RAM is heap.
fn heap_va(pa: u64) -> Option<u64> {
    let si = hv_rt::start_info();
    let offset = pa.checked_sub(si.ram_phys).filter(|&o| o < si.memory_bytes)?;
    let va = DOMAIN_BASE + offset;
    (si.heap_start <= va && va + 4096 <= si.heap_end).then_some(va)
}

/// Words of the pattern (each at its own index) in our page at `va`, and its non-zero bytes.
fn look_at(va: u64) -> (usize, usize) {
    let p = va as *const u64;
    let (mut found, mut nonzero) = (0, 0);
    for i in 0..WORDS {
        // SAFETY: `va` is a page-aligned page of our heap (mapped, ours); a volatile read through
        // a raw pointer, no reference is created while the allocator may own the memory.
        let w = unsafe { p.add(i).read_volatile() };
        found += usize::from(w == pattern(i));
        nonzero += w.to_le_bytes().iter().filter(|&&b| b != 0).count();
    }
    (found, nonzero)
}

fn next(peer: DomId, granted: &str) -> Result<(), String> {
    let me = hv_rt::domid();
    let next_port = u32::try_from(required("next_port")?).map_err(|_| "next_port= out of range")?;
    let si = hv_rt::start_info();
    let old: Vec<u64> =
        granted.split(' ').filter_map(|a| u64::from_str_radix(a.trim_start_matches("0x"), 16).ok()).collect();
    if old.len() != 2 {
        return Err(format!("data/granted says {granted:?}, not two addresses"));
    }
    let vas: Vec<Option<u64>> = old.iter().map(|&pa| heap_va(pa)).collect();
    let placed = match (vas.first().copied().flatten(), vas.get(1).copied().flatten()) {
        (Some(a), Some(b)) => format!("are in my heap at {a:#x} and {b:#x}"),
        _ => String::from("are not both in my heap"),
    };
    println!(
        "hvm-granter: next incarnation (domain {me}): RAM at {:#x}..{:#x}; the first one's granted pages ({granted}) {placed}",
        si.ram_phys,
        si.ram_phys + si.memory_bytes
    );
    let local = bind(peer, next_port)?;
    println!("hvm-granter: bound local port {local} to port {next_port} of domain {peer}: its pattern is written");
    let in_old: Vec<String> = vas
        .iter()
        .map(|va| match va.map(look_at) {
            Some((found, nonzero)) => format!("{found} words ({nonzero} non-zero bytes)"),
            None => String::from("not mine"),
        })
        .collect();
    let (heap_start, heap_end) = (si.heap_start.next_multiple_of(4096), si.heap_end & !4095);
    let pages = (heap_end - heap_start) / 4096;
    let in_heap: usize = (0..pages).map(|n| look_at(heap_start + n * 4096).0).sum();
    println!(
        "hvm-granter: pattern {PATTERN_SEED:#018x}: {} and {} in the old granted pages, {in_heap} words in the {pages} pages of my heap",
        in_old[0], in_old[1]
    );
    evtchn::send(local).map_err(|e| format!("send on port {local}: {}", e.name()))?;
    Ok(())
}

/// Writes `text` and a NUL at `va`.
fn put_text(va: u64, text: &str) {
    // SAFETY: `va` is one of our own pages and the text with its NUL fits in it (short texts).
    unsafe {
        let p = va as *mut u8;
        for (i, &b) in text.as_bytes().iter().take(4095).chain(&[0]).enumerate() {
            p.add(i).write_volatile(b);
        }
    }
}
