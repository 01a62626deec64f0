//! A hostile DomU. Against the grants, ports and store entries of the other domains (a victim
//! that grants it one read-only and one read-write page, and a ping/pong pair streaming next
//! to it) it tries everything it must not be able to do; each attempt must fail with an error.
//! Its last act writes through a read-only grant mapping, which must kill it.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use hv_abi::{GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GrantCopy, GrantCopyPtr, gntst};
use hv_rt::store::wait_for_state;
use hv_rt::store::{Store, XenbusState};
use hv_rt::{evtchn, grant, println};
use xenstore::StoreClient;

hv_rt::main!(main);

fn refused<T>(what: &str, r: Result<T, impl core::fmt::Display>) {
    match r {
        Err(e) => println!("{what} refused: {e}"),
        Ok(_) => println!("{what} ALLOWED: isolation is broken"),
    }
}

struct Named(hv_abi::Error);
impl core::fmt::Display for Named {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0.name())
    }
}
fn n<T>(r: Result<T, hv_abi::Error>) -> Result<T, Named> {
    r.map_err(Named)
}

/// Writes READ requests into our store request ring (bypassing the client), never consuming
/// responses. Returns the bytes the server took.
fn flood_store(store: &Store, me: hv_abi::DomId) -> usize {
    use core::sync::atomic::{AtomicU32, Ordering};
    let page = hv_rt::start_info().store_ring as *mut u8;
    // SAFETY: our own store page; the layout is xenstore_domain_interface (req ring at 0,
    // req_cons at 2048, req_prod at 2052); indices are accessed atomically.
    let (cons, prod) = unsafe { (&*(page.add(2048) as *const AtomicU32), &*(page.add(2052) as *const AtomicU32)) };
    let mut msg = Vec::new();
    let path = format!("/local/domain/{me}/flood");
    msg.extend_from_slice(&2u32.to_le_bytes()); // XS_READ
    msg.extend_from_slice(&0xf100u32.to_le_bytes());
    msg.extend_from_slice(&0u32.to_le_bytes());
    msg.extend_from_slice(&(path.len() as u32 + 1).to_le_bytes());
    msg.extend_from_slice(path.as_bytes());
    msg.push(0);
    let start = cons.load(Ordering::SeqCst);
    let mut stalled = 0;
    for _ in 0..2000 {
        let (c, p) = (cons.load(Ordering::SeqCst), prod.load(Ordering::SeqCst));
        if 1024 - p.wrapping_sub(c) < msg.len() as u32 {
            stalled += 1;
            if stalled > 50 {
                break;
            }
            store.kick();
            hv_rt::yield_now();
            continue;
        }
        stalled = 0;
        for (i, b) in msg.iter().enumerate() {
            // SAFETY: inside the 1 KiB request ring.
            unsafe { page.add((p.wrapping_add(i as u32) % 1024) as usize).write_volatile(*b) };
        }
        prod.store(p.wrapping_add(msg.len() as u32), Ordering::SeqCst);
        store.kick();
    }
    cons.load(Ordering::SeqCst).wrapping_sub(start) as usize
}

fn main() {
    if let Err(e) = run() {
        panic!("{e}");
    }
}

fn run() -> Result<(), String> {
    let me = hv_rt::domid();
    let mut store = Store::connect().map_err(|e| format!("store: {e}"))?;
    let dir = format!("/local/domain/{me}/device/victim/0");
    let victim = store.read_domid(&format!("{dir}/backend-id")).map_err(|e| format!("{e}"))?;
    let vdir = store.read_string(&format!("{dir}/backend")).map_err(|e| format!("{e}"))?;
    wait_for_state(&mut store, &vdir, 30_000_000_000, |s| s == XenbusState::Connected)?;
    let ro_ref = store.read_u32(&format!("{vdir}/ro-ref")).map_err(|e| format!("{e}"))?;
    let rw_ref = store.read_u32(&format!("{vdir}/rw-ref")).map_err(|e| format!("{e}"))?;
    println!("victim is domain {victim}: ro ref {ro_ref}, rw ref {rw_ref}");

    // --- Grants ---
    // Grants that are not ours: every other domain's refs 8..16.
    let mut attempts = 0;
    let mut allowed = 0;
    for dom in 0..8u16 {
        for gref in 8..16u32 {
            if dom == victim && (gref == ro_ref || gref == rw_ref) || dom == me {
                continue;
            }
            attempts += 1;
            if let Ok((h, _)) = grant::map(dom, gref, true) {
                allowed += 1;
                let _ = grant::unmap(h);
            }
        }
    }
    println!("mapping grants not granted to us: {attempts} attempts, {allowed} allowed");
    refused("map of a read-only grant for writing", n(grant::map(victim, ro_ref, false)));
    refused("map of a nonexistent ref", n(grant::map(victim, 4000, true)));
    refused("map of a ref beyond the table", n(grant::map(victim, 100_000, true)));
    refused("map naming the wrong granter", n(grant::map(0, rw_ref, false)));
    refused("unmap of a handle never issued", n(grant::unmap(777)));

    // The read-write grant really works (so the refusals above are meaningful).
    let (h, va) = grant::map(victim, rw_ref, false).map_err(|e| e.name())?;
    // SAFETY: `va` is the victim's page mapped read-write for us.
    let first = unsafe { (va as *const u8).read_volatile() };
    println!("read-write grant mapped: first byte {first:#x}");
    grant::unmap(h).map_err(|e| e.name())?;
    refused("second unmap of the same handle", n(grant::unmap(h)));

    // Copies: past the page end, into a read-only grant, from memory that is not ours.
    let mut buf = [0u8; 256];
    let local = |addr: u64| GrantCopyPtr { ref_or_addr: addr, domid: 0, offset: 0, _pad: 0 };
    let gside =
        |gref: u32, offset: u16| GrantCopyPtr { ref_or_addr: gref as u64, domid: victim as u16, offset, _pad: 0 };
    let mut ops = [
        GrantCopy {
            source: gside(rw_ref, 4000),
            dest: local(buf.as_mut_ptr() as u64),
            len: 200,
            flags: GNTCOPY_SOURCE_GREF,
            ..Default::default()
        },
        GrantCopy {
            source: local(buf.as_ptr() as u64),
            dest: gside(ro_ref, 0),
            len: 16,
            flags: GNTCOPY_DEST_GREF,
            ..Default::default()
        },
        GrantCopy {
            source: gside(rw_ref, 0),
            dest: local(0x10_0000),
            len: 16,
            flags: GNTCOPY_SOURCE_GREF,
            ..Default::default()
        },
        GrantCopy {
            source: gside(rw_ref, 0),
            dest: local(buf.as_mut_ptr() as u64),
            len: 16,
            flags: GNTCOPY_SOURCE_GREF,
            ..Default::default()
        },
    ];
    grant::copy(&mut ops).map_err(|e| e.name())?;
    let st = |s: i16| match s {
        gntst::OKAY => "okay",
        gntst::BAD_COPY_ARG => "BAD_COPY_ARG",
        gntst::PERMISSION_DENIED => "PERMISSION_DENIED",
        gntst::BAD_VIRT_ADDR => "BAD_VIRT_ADDR",
        _ => "other error",
    };
    println!("copy past the page end: {}", st(ops[0].status));
    println!("copy into a read-only grant: {}", st(ops[1].status));
    println!("copy into memory we do not own: {}", st(ops[2].status));
    println!("legitimate copy in the same batch: {}", st(ops[3].status));
    // Exhaust mappings of one grant (per-grant pin limit) and the handle table.
    let mut handles = Vec::new();
    let limit = loop {
        match grant::map(victim, rw_ref, true) {
            Ok((h, _)) => handles.push(h),
            Err(e) => break e,
        }
        if handles.len() > 5000 {
            return Err("no mapping limit".into());
        }
    };
    println!("mapping one grant repeatedly: {} mappings, then {}", handles.len(), limit.name());
    for h in handles {
        let _ = grant::unmap(h);
    }

    // --- Event channels ---
    refused("send on a port we do not own", n(evtchn::send(40)));
    refused("close a port we do not own", n(evtchn::close(41)));
    refused("send on port 0", n(evtchn::send(0)));
    refused("bind to a port not offered to us", n(evtchn::bind_interdomain(victim, 1)));
    refused("bind the DOM_EXC virq", n(evtchn::bind_virq(hv_abi::virq::DOM_EXC)));
    let mut ports = Vec::new();
    let exhausted = loop {
        match evtchn::alloc_unbound(victim) {
            Ok(p) => ports.push(p),
            Err(e) => break e,
        }
        if ports.len() > 5000 {
            return Err("no port limit".into());
        }
    };
    println!("allocating ports: {} ports, then {}", ports.len(), exhausted.name());
    for p in ports {
        let _ = evtchn::close(p);
    }

    // --- Store ---
    refused("store write outside our subtree", store.write(format!("/local/domain/{victim}/evil").as_bytes(), b"x"));
    refused("store write to dom0's subtree", store.write(b"/local/domain/0/evil", b"x"));
    refused("store write to the victim's backend entries", store.write(format!("{vdir}/state").as_bytes(), b"4"));
    refused("store read of a path that is not ours", store.read(b"/local/domain/0"));
    let mut watches = 0;
    let werr = loop {
        match store.watch(format!("/local/domain/{me}/w{watches}").as_bytes(), b"t") {
            Ok(()) => watches += 1,
            Err(e) => break e,
        }
        if watches > 5000 {
            return Err("no watch quota".into());
        }
    };
    println!("registering watches: {watches} watches, then {werr}");
    // Flood the store with requests and never read a reply: written straight into the request
    // ring, leaving the response ring untouched. The server must stop taking requests once our
    // replies fill what it is willing to queue, while everyone else is served as usual.
    let written = flood_store(&store, me);
    println!("flooded the store with {written} bytes of requests without reading a reply");

    // Last: a write through a read-only mapping must fault and end us.
    let (_h, ro_va) = grant::map(victim, ro_ref, true).map_err(|e| e.name())?;
    // SAFETY: `ro_va` is the victim's page, mapped read-only for us: reading is fine.
    let seen = unsafe { (ro_va as *const u8).read_volatile() };
    println!("read-only grant mapped: first byte {seen:#x}; writing to it");
    // SAFETY: deliberately writing a read-only mapping; the hypervisor destroys this domain.
    unsafe { (ro_va as *mut u8).write_volatile(0) };
    println!("write through a read-only grant went through: isolation is broken");
    Ok(())
}
