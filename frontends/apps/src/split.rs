//! Helpers for split drivers: waiting on the store for a peer's XenbusState.
use alloc::format;
use hv_rt::store::{Store, XenbusState, xenbus};
use hv_rt::time;
use hv_store::{ClientError, Errno, StoreClient};

/// The peer's state, or Closed if its directory is gone (the peer domain was destroyed).
pub fn peer_state(store: &mut Store, dir: &str) -> XenbusState {
    match xenbus::read_state(store, dir.as_bytes()) {
        Ok(XenbusState::Unknown) | Err(_) => XenbusState::Closed,
        Ok(s) => s,
    }
}

/// Watches `dir/state` and waits until `done(state)` or `timeout_ns` passes.
pub fn wait_for_state(
    store: &mut Store,
    dir: &str,
    timeout_ns: u64,
    done: impl Fn(XenbusState) -> bool,
) -> Result<XenbusState, &'static str> {
    let path = format!("{dir}/state");
    match store.watch(path.as_bytes(), b"state") {
        // Already watching it (an earlier wait): the watch keeps firing.
        Ok(()) | Err(ClientError::Store(Errno::Eexist)) => {}
        Err(e) => {
            hv_rt::println!("watch {path}: {e}");
            return Err("cannot watch the peer's state");
        }
    }
    let deadline = time::now_ns().saturating_add(timeout_ns);
    loop {
        let s = peer_state(store, dir);
        if done(s) {
            return Ok(s);
        }
        if store.wait_event(deadline).map_err(|_| "store connection failed")?.is_none() {
            return Err("timed out waiting for the peer");
        }
    }
}
