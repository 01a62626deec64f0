//! The ping/pong frontend: sets up a ring with its backend through the store (XenbusState
//! handshake), streams checksummed messages and checks every answer, then keeps streaming until
//! the backend goes away and reports it. Args: `messages=N` (default 1000000), `after=exit` to
//! stop once they are through instead of streaming on.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::alloc::{Layout, alloc_zeroed};
use alloc::format;
use alloc::string::String;
use core::ptr::NonNull;
use demos::pingpong::{Ping, PingPong, checksum};
use hv_rt::store::{Store, XenbusState, xenbus};
use hv_rt::store::{peer_state, wait_for_state};
use hv_rt::{evtchn, grant, println, time};
use shared_ring::{FrontRing, PageMemory};
use xenstore::StoreClient;

hv_rt::main!(main);

const SECOND: u64 = 1_000_000_000;

fn main() {
    if let Err(e) = run() {
        panic!("{e}");
    }
}

fn run() -> Result<(), String> {
    let target = hv_rt::arg_u64("messages", 1_000_000);
    let mut store = Store::connect().map_err(|e| format!("store: {e}"))?;
    let me = hv_rt::domid();
    let dir = format!("/local/domain/{me}/device/pingpong/0");
    let be_dir = store.read_string(&format!("{dir}/backend")).map_err(|e| format!("backend path: {e}"))?;
    let be = store.read_domid(&format!("{dir}/backend-id")).map_err(|e| format!("backend-id: {e}"))?;
    wait_for_state(&mut store, &be_dir, 30 * SECOND, |s| {
        matches!(s, XenbusState::InitWait | XenbusState::Initialised | XenbusState::Connected)
    })?;

    // The ring page, granted to the backend; its event channel.
    let layout = Layout::from_size_align(4096, 4096).map_err(|_| "layout")?;
    // SAFETY: non-zero-size layout.
    let page = unsafe { alloc_zeroed(layout) };
    let base = NonNull::new(page).ok_or("out of memory")?;
    // SAFETY: `page` is our own page for the program's life; the backend maps it through the
    // grant and both ends reach it only through PageMemory's atomic accesses.
    let memory = unsafe { PageMemory::new(base, 4096) };
    let mut ring = FrontRing::<PingPong, _>::init(memory).map_err(|e| format!("ring: {e:?}"))?;
    let gref = grant::grant_access(be, page as u64, false).map_err(|e| format!("grant: {}", e.name()))?;
    let port = evtchn::alloc_unbound(be).map_err(|e| format!("port: {}", e.name()))?;
    store.write(format!("{dir}/ring-ref").as_bytes(), format!("{gref}").as_bytes()).map_err(|e| format!("{e}"))?;
    store.write(format!("{dir}/event-channel").as_bytes(), format!("{port}").as_bytes()).map_err(|e| format!("{e}"))?;
    xenbus::switch_state(&mut store, dir.as_bytes(), XenbusState::Initialised).map_err(|e| format!("{e}"))?;
    wait_for_state(&mut store, &be_dir, 30 * SECOND, |s| s == XenbusState::Connected)?;
    xenbus::switch_state(&mut store, dir.as_bytes(), XenbusState::Connected).map_err(|e| format!("{e}"))?;
    println!("connected to backend domain {be}: ring ref {gref}, port {port}");

    let start = time::now_ns();
    let (mut sent, mut answered, mut bad) = (0u32, 0u64, 0u64);
    let mut reported = false;
    let mut last_progress = time::now_ns();
    loop {
        // Fill the ring, publish once.
        while ring.free_requests() > 0 {
            ring.push_request(Ping::new(sent)).map_err(|e| format!("push: {e:?}"))?;
            sent = sent.wrapping_add(1);
        }
        if ring.publish_requests().is_needed() {
            let _ = evtchn::send(port);
        }
        evtchn::clear(port);
        let mut got = 0;
        loop {
            match ring.poll_response() {
                Ok(Some(r)) => {
                    got += 1;
                    let expect = Ping::new(r.seq);
                    if r.status != 0 || r.checksum != checksum(expect.seq, &expect.payload) || r.id != expect.id {
                        bad += 1;
                    }
                }
                Ok(None) => break,
                Err(e) => return Err(format!("backend broke the ring: {e}")),
            }
        }
        answered += got;
        if got > 0 {
            last_progress = time::now_ns();
        }
        if !reported && answered >= target as u64 {
            let ms = (time::now_ns() - start) / 1_000_000;
            println!("exchanged {answered} messages in {ms} ms, {bad} bad");
            store
                .write(format!("/local/domain/{me}/data/phase").as_bytes(), b"streamed")
                .map_err(|e| format!("{e}"))?;
            reported = true;
            if hv_rt::arg("after") == Some("exit") {
                break;
            }
        }
        // Between batches: has the backend gone away?
        if reported || time::now_ns() - last_progress > SECOND {
            store.poll().map_err(|e| format!("store: {e}"))?;
            while store.take_event().is_some() {}
            let state = peer_state(&mut store, &be_dir);
            if state == XenbusState::Closed || time::now_ns() - last_progress > 10 * SECOND {
                println!("backend state is now {state:?} after {answered} answered messages ({bad} bad)");
                break;
            }
        }
        if got == 0 && !ring.final_check_for_responses().map_err(|e| format!("{e}"))? {
            time::block_until(time::now_ns() + SECOND / 10);
        }
    }

    // Tear down: the backend's mapping is gone with it, so the grant can be ended.
    let _ = evtchn::close(port);
    match grant::end_access(gref) {
        Ok(()) => println!("ring grant ended cleanly"),
        Err(e) => println!("ring grant still busy: {}", e.name()),
    }
    let _ = xenbus::switch_state(&mut store, dir.as_bytes(), XenbusState::Closing);
    let _ = xenbus::switch_state(&mut store, dir.as_bytes(), XenbusState::Closed);
    if bad > 0 {
        return Err(format!("{bad} corrupted messages"));
    }
    println!("goodbye");
    Ok(())
}
