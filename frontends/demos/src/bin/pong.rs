//! The ping/pong backend: finds its device in the store, maps the frontend's ring, and answers
//! every request with its own checksum of it, until it is destroyed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use core::ptr::NonNull;
use demos::pingpong::{PingPong, Pong, checksum};
use hv_rt::store::wait_for_state;
use hv_rt::store::{Store, XenbusState, xenbus};
use hv_rt::{evtchn, grant, println, time};
use shared_ring::{BackRing, PageMemory};
use xenstore::StoreClient;

hv_rt::main!(main);

const SECOND: u64 = 1_000_000_000;

fn main() {
    if let Err(e) = serve() {
        panic!("{e}");
    }
}

fn serve() -> Result<(), alloc::string::String> {
    let mut store = Store::connect().map_err(|e| format!("store: {e}"))?;
    let base = format!("/local/domain/{}/backend/pingpong", hv_rt::domid());
    // The toolstack wrote our device entries before we started.
    let fe_dirs = store.directory(base.as_bytes()).map_err(|e| format!("no pingpong devices: {e}"))?;
    let fe_name = fe_dirs.first().ok_or("no pingpong frontend")?;
    let dir = format!("{base}/{}/0", core::str::from_utf8(fe_name).unwrap_or("?"));
    let fe_dir = store.read_string(&format!("{dir}/frontend")).map_err(|e| format!("frontend path: {e}"))?;
    let fe = store.read_domid(&format!("{dir}/frontend-id")).map_err(|e| format!("frontend-id: {e}"))?;
    xenbus::switch_state(&mut store, dir.as_bytes(), XenbusState::InitWait).map_err(|e| format!("InitWait: {e}"))?;
    println!("backend for domain {fe} waiting in InitWait");

    wait_for_state(&mut store, &fe_dir, 30 * SECOND, |s| {
        matches!(s, XenbusState::Initialised | XenbusState::Connected)
    })?;
    let ring_ref = store.read_u32(&format!("{fe_dir}/ring-ref")).map_err(|e| format!("ring-ref: {e}"))?;
    let remote_port = store.read_u32(&format!("{fe_dir}/event-channel")).map_err(|e| format!("event-channel: {e}"))?;
    let (_handle, va) = grant::map(fe, ring_ref, false).map_err(|e| format!("map ring: {}", e.name()))?;
    let port = evtchn::bind_interdomain(fe, remote_port).map_err(|e| format!("bind: {}", e.name()))?;
    // SAFETY: `va` is the frontend's ring page, mapped read-write for us until we unmap it (or
    // replaced by our own scratch page if the frontend dies); only this ring touches it.
    let memory = unsafe { PageMemory::new(NonNull::new(va as *mut u8).ok_or("null mapping")?, 4096) };
    let mut ring = BackRing::<PingPong, _>::attach(memory).map_err(|e| format!("attach: {e:?}"))?;
    // Said before the switch that lets the frontend go, so the two lines come in causal order.
    println!("connected to domain {fe}: ring ref {ring_ref}, port {port}");
    xenbus::switch_state(&mut store, dir.as_bytes(), XenbusState::Connected).map_err(|e| format!("Connected: {e}"))?;

    let mut served: u64 = 0;
    let mut bad: u64 = 0;
    loop {
        evtchn::clear(port);
        loop {
            match ring.poll_request() {
                Ok(Some(req)) => {
                    let sum = checksum(req.seq, &req.payload);
                    let status = if sum == req.checksum { 0 } else { -1 };
                    bad += (status != 0) as u64;
                    served += 1;
                    if ring.push_response(Pong { id: req.id, status, seq: req.seq, checksum: sum }).is_err() {
                        return Err(format!("cannot answer request {}", req.id));
                    }
                }
                Ok(None) => break,
                Err(e) => return broken(&mut store, &fe_dir, fe, &format!("after {served} requests: {e}")),
            }
        }
        if ring.publish_responses().is_needed() {
            let _ = evtchn::send(port);
        }
        match ring.final_check_for_requests() {
            Ok(true) => continue,
            Ok(false) => time::block_until(time::now_ns() + SECOND),
            Err(e) => return broken(&mut store, &fe_dir, fe, &format!("after {served} requests ({bad} bad): {e}")),
        }
    }
}

/// The ring stopped making sense. A frontend that closed or whose domain ended (its ring page
/// is then our scratch page) is not an error: say so and idle until destroyed. Anything else is
/// a broken frontend.
fn broken(store: &mut Store, fe_dir: &str, fe: hv_abi::DomId, what: &str) -> Result<(), alloc::string::String> {
    let state = xenbus::read_state(store, fe_dir.as_bytes()).unwrap_or(XenbusState::Unknown);
    if !matches!(state, XenbusState::Closing | XenbusState::Closed | XenbusState::Unknown) {
        return Err(format!("frontend broke the ring {what}"));
    }
    println!("frontend domain {fe} went away ({state:?}) {what}; idle");
    loop {
        time::block_until(time::now_ns() + 60 * SECOND);
    }
}
