//! The paravirtual half of the HVM sharing scenario (`topologies/pvh-share.toml`): an HVM guest
//! (`pvh-probe share <our domid>`) grants us one page read-only and one writable and allocates an
//! unbound port for us; we use them through our native ABI (`hv_rt::grant`, `hv_rt::evtchn`),
//! the same grant table and event channels the HVM guest reaches through Xen's.
//!
//! Args: `peer=<HVM domid> ref=<read-only ref> wref=<writable ref> port=<HVM port>`. Maps the
//! read-only grant and prints what it says, checks it cannot be mapped writable, writes a text
//! through the writable grant, unmaps both, binds to the HVM guest's port, notifies it and waits
//! for its answer. Before writing, it grants the HVM guest one page of its own (writable, with a
//! marker) and names the grant in its text (`; copy grant <ref>`): the HVM guest copies the
//! marker out and a text in with `GNTTABOP_copy`, which we read after its answer and print. The
//! HVM guest may not have set things up yet when we start: mapping and binding are retried until
//! `timeout_ms` (default 20000).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use hv_abi::{DomId, Error};
use hv_rt::time::{now_ns, sleep_ms};
use hv_rt::{evtchn, grant, println};

hv_rt::main!(main);

fn main() {
    if let Err(e) = run() {
        panic!("hvm-peer: {e}");
    }
}

fn required(key: &str) -> Result<u64, String> {
    let value = hv_rt::arg(key).ok_or_else(|| format!("missing argument {key}="))?;
    value.parse().map_err(|_| format!("argument {key}={value} is not a number"))
}

/// Calls `f` until it succeeds or `deadline` (system time, ns) passes.
fn retry<T>(what: &str, deadline: u64, mut f: impl FnMut() -> Result<T, Error>) -> Result<T, String> {
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if now_ns() >= deadline => return Err(format!("{what}: {} (gave up)", e.name())),
            Err(_) => sleep_ms(2),
        }
    }
}

/// The text at `va` up to its first NUL (at most `max` bytes), lossy for invalid UTF-8.
fn text_at(va: u64, max: usize) -> String {
    // SAFETY: `va` is a page the hypervisor mapped for us (`max` <= 4096); the granter may change
    // it concurrently, so it is copied out once with volatile reads.
    let bytes: alloc::vec::Vec<u8> =
        (0..max).map(|i| unsafe { ((va + i as u64) as *const u8).read_volatile() }).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

fn run() -> Result<(), String> {
    let peer = DomId::try_from(required("peer")?).map_err(|_| "peer= is not a domid")?;
    let ro_ref = u32::try_from(required("ref")?).map_err(|_| "ref= out of range")?;
    let rw_ref = u32::try_from(required("wref")?).map_err(|_| "wref= out of range")?;
    let remote_port = u32::try_from(required("port")?).map_err(|_| "port= out of range")?;
    let deadline = now_ns().saturating_add(hv_rt::arg_u64("timeout_ms", 20_000) * 1_000_000);
    println!(
        "hvm-peer: domain {} meets HVM domain {peer}: grants {ro_ref} (read-only) and {rw_ref} (writable), port {remote_port}",
        hv_rt::domid()
    );

    // The read-only page: its marker, read through our own mapping of the HVM guest's frame.
    let (handle, va) = retry("mapping the read-only grant", deadline, || grant::map(peer, ro_ref, true))?;
    let marker = text_at(va, 128);
    println!("hvm-peer: read through grant {ro_ref} of domain {peer}: \"{marker}\"");
    grant::unmap(handle).map_err(|e| format!("unmapping grant {ro_ref}: {}", e.name()))?;
    match grant::map(peer, ro_ref, false) {
        Ok((h, _)) => {
            let _ = grant::unmap(h);
            return Err(format!("grant {ro_ref} is read-only but was mapped writable"));
        }
        Err(e) => println!("hvm-peer: writable mapping of read-only grant {ro_ref} refused: {}", e.name()),
    }

    // A page of ours for the HVM guest's grant copies: the marker in, granted writable.
    let mine = alloc::boxed::Box::new(Page([0; 4096]));
    let mine_va = mine.0.as_ptr() as u64;
    put_text(mine_va, pvh_probe_marker());
    let copy_ref = grant::grant_access(peer, mine_va, false).map_err(|e| format!("granting our page: {}", e.name()))?;

    // The writable page: our text, NUL-terminated, written through the mapping.
    let (handle, va) = retry("mapping the writable grant", deadline, || grant::map(peer, rw_ref, false))?;
    let text = format!("written by hvm-peer, domain {}; copy grant {copy_ref}", hv_rt::domid());
    put_text(va, &text);
    grant::unmap(handle).map_err(|e| format!("unmapping grant {rw_ref}: {}", e.name()))?;
    println!("hvm-peer: wrote \"{text}\" through grant {rw_ref}");

    // The event channel: bind to the HVM guest's unbound port, notify, wait for the answer.
    let port = retry("binding to the HVM guest's port", deadline, || evtchn::bind_interdomain(peer, remote_port))?;
    // A freshly bound port starts pending; that is not the answer.
    evtchn::clear(port);
    println!("hvm-peer: bound local port {port} to port {remote_port} of domain {peer}; notifying");
    evtchn::send(port).map_err(|e| format!("send on port {port}: {}", e.name()))?;
    let deadline = now_ns().saturating_add(hv_rt::arg_u64("timeout_ms", 20_000) * 1_000_000);
    while !evtchn::clear(port) {
        if now_ns() >= deadline {
            return Err(format!("no answer on port {port}"));
        }
        evtchn::wait_until(deadline);
    }
    println!("hvm-peer: answer from the HVM guest on port {port}");
    println!("hvm-peer: our grant {copy_ref} now says \"{}\"", text_at(mine_va, 128));
    grant::end_access(copy_ref).map_err(|e| format!("ending grant {copy_ref}: {}", e.name()))?;
    drop(mine);
    let _ = evtchn::close(port);
    Ok(())
}

/// A page of ours (page-aligned, so a grant covers exactly it).
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// What the page we grant the HVM guest says first (pvh-probe's `PEER_COPY_MARKER`).
fn pvh_probe_marker() -> &'static str {
    "copied out of hvm-peer's page by the HVM guest"
}

/// Writes `text` and a NUL at `va`.
fn put_text(va: u64, text: &str) {
    // SAFETY: `va` is a page mapped for us (ours, or the writable grant just mapped) and the
    // text with its NUL fits in it (callers pass short texts).
    unsafe {
        let p = va as *mut u8;
        for (i, &b) in text.as_bytes().iter().take(4095).chain(&[0]).enumerate() {
            p.add(i).write_volatile(b);
        }
    }
}
