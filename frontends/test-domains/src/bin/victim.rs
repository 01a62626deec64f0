//! The victim of the attack scenario: grants one page read-only and one read-write to the
//! domain on the other end of its `victim` device, publishes the refs, and once that domain is
//! gone checks its read-only page is intact and ends both grants (which must succeed: the
//! hypervisor released every mapping the attacker held).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::alloc::{Layout, alloc_zeroed};
use alloc::format;
use alloc::string::String;
use hv_rt::store::wait_for_state;
use hv_rt::store::{Store, XenbusState, xenbus};
use hv_rt::{grant, println};
use xenstore::StoreClient;

hv_rt::main!(main);

const PATTERN: u8 = 0xa5;

fn main() {
    if let Err(e) = run() {
        panic!("{e}");
    }
}

fn page() -> Result<*mut u8, String> {
    let layout = Layout::from_size_align(4096, 4096).map_err(|_| "layout")?;
    // SAFETY: non-zero-size layout.
    let p = unsafe { alloc_zeroed(layout) };
    if p.is_null() { Err("out of memory".into()) } else { Ok(p) }
}

fn run() -> Result<(), String> {
    let mut store = Store::connect().map_err(|e| format!("store: {e}"))?;
    let base = format!("/local/domain/{}/backend/victim", hv_rt::domid());
    let fe_dirs = store.directory(base.as_bytes()).map_err(|e| format!("no device: {e}"))?;
    let dir = format!("{base}/{}/0", core::str::from_utf8(fe_dirs.first().ok_or("no peer")?).unwrap_or("?"));
    let peer = store.read_domid(&format!("{dir}/frontend-id")).map_err(|e| format!("{e}"))?;
    let peer_dir = store.read_string(&format!("{dir}/frontend")).map_err(|e| format!("{e}"))?;

    let ro = page()?;
    let rw = page()?;
    // SAFETY: both are our own fresh pages.
    unsafe {
        core::ptr::write_bytes(ro, PATTERN, 4096);
        core::ptr::write_bytes(rw, 0x11, 4096);
    }
    let ro_ref = grant::grant_access(peer, ro as u64, true).map_err(|e| e.name())?;
    let rw_ref = grant::grant_access(peer, rw as u64, false).map_err(|e| e.name())?;
    store.write(format!("{dir}/ro-ref").as_bytes(), format!("{ro_ref}").as_bytes()).map_err(|e| format!("{e}"))?;
    store.write(format!("{dir}/rw-ref").as_bytes(), format!("{rw_ref}").as_bytes()).map_err(|e| format!("{e}"))?;
    xenbus::switch_state(&mut store, dir.as_bytes(), XenbusState::Connected).map_err(|e| format!("{e}"))?;
    println!("granted ref {ro_ref} (read-only) and ref {rw_ref} (read-write) to domain {peer}");

    wait_for_state(&mut store, &peer_dir, 60_000_000_000, |s| s == XenbusState::Closed)?;
    // SAFETY: our own page.
    let intact = unsafe { core::slice::from_raw_parts(ro, 4096) }.iter().all(|&b| b == PATTERN);
    println!("domain {peer} is gone; read-only page {}", if intact { "intact" } else { "MODIFIED" });
    let ended = grant::end_access(ro_ref).is_ok() && grant::end_access(rw_ref).is_ok();
    println!("grants ended: {}", if ended { "yes" } else { "NO (still mapped)" });
    if !intact || !ended {
        return Err("the attacker got through".into());
    }
    Ok(())
}
