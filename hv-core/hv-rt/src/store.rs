//! The store client: this domain's end of its store ring (page and port from start_info),
//! blocking requests, watches, and the XenbusState helpers (re-exported from `xenstore`), with
//! the split drivers' "wait for the peer's state".
use crate::{evtchn, time};
use alloc::vec::Vec;
use core::ptr::NonNull;
use shared_ring::PageMemory;
use xenstore::{BlockingClient, ClientError, ClientPort, StoreClient, WatchEvent};

pub use shared_ring::wire::xenbus_state::XenbusState;
pub use xenstore::xenbus;
use xenstore::xenbus::ReadError;

/// How long one store request may take before the client gives up.
const REPLY_TIMEOUT_NS: u64 = 5_000_000_000;

/// Notifies the store server and waits for its answer (or the timeout).
fn wait_for_server() -> bool {
    let port = crate::start_info().store_port as u32;
    let _ = evtchn::send(port);
    let deadline = time::now_ns().saturating_add(REPLY_TIMEOUT_NS);
    loop {
        if evtchn::clear(port) {
            return true;
        }
        let now = time::now_ns();
        if now >= deadline {
            return false;
        }
        // Other pending ports are the caller's business: they stay pending, and do not end
        // the block (blocking would return at once, and yielding would spin).
        evtchn::block_on(port, deadline);
    }
}

type Client = BlockingClient<PageMemory, fn() -> bool>;

/// This domain's connection to the store.
pub struct Store {
    client: Client,
}

impl Store {
    /// Attaches to the store page named in start_info.
    pub fn connect() -> Result<Self, ClientError> {
        let si = crate::start_info();
        let base = NonNull::new(si.store_ring as *mut u8).ok_or(ClientError::NoReply)?;
        // SAFETY: the hypervisor maps the store page read-write for our whole life; only the
        // store client touches it, through PageMemory's atomic accesses.
        let memory = unsafe { PageMemory::new(base, 4096) };
        let port = ClientPort::attach(memory).ok_or(ClientError::NoReply)?;
        Ok(Self { client: BlockingClient::new(port, wait_for_server as fn() -> bool) })
    }

    /// Processes whatever the server sent (non-blocking); watch events queue up.
    pub fn poll(&mut self) -> Result<(), ClientError> {
        evtchn::clear(crate::start_info().store_port as u32);
        self.client.port.pump().map(drop)
    }

    /// The next queued watch event, if any (call `poll` first).
    pub fn take_event(&mut self) -> Option<WatchEvent> {
        self.client.port.take_event()
    }

    /// Polls and drops every queued watch event; returns whether there was any (for loops that
    /// only need to know that something changed, including events that arrived while they made
    /// requests, whose port notification those requests already consumed).
    pub fn take_events(&mut self) -> bool {
        let _ = self.poll();
        let mut any = false;
        while self.take_event().is_some() {
            any = true;
        }
        any
    }

    /// Waits until a watch event arrives or `deadline_ns` passes.
    pub fn wait_event(&mut self, deadline_ns: u64) -> Result<Option<WatchEvent>, ClientError> {
        loop {
            self.poll()?;
            if let Some(e) = self.take_event() {
                return Ok(Some(e));
            }
            if time::now_ns() >= deadline_ns {
                return Ok(None);
            }
            evtchn::block_on(crate::start_info().store_port as u32, deadline_ns);
        }
    }

    /// The raw client port, to send requests without waiting for their replies (tests that
    /// play a hostile domain use this).
    pub fn raw_port(&mut self) -> &mut ClientPort<PageMemory> {
        &mut self.client.port
    }

    /// Notifies the store server that requests are waiting.
    pub fn kick(&self) {
        let _ = evtchn::send(crate::start_info().store_port as u32);
    }

    /// Reads a node as text.
    pub fn read_string(&mut self, path: &str) -> Result<alloc::string::String, ClientError> {
        let v = self.client.read(path.as_bytes())?;
        Ok(alloc::string::String::from_utf8_lossy(&v).into_owned())
    }

    /// Reads a node as a decimal number; a value that is not one is
    /// [`ReadError::NotANumber`] (naming the path and the value), not a store failure.
    pub fn read_u32(&mut self, path: &str) -> Result<u32, ReadError> {
        xenbus::read_u32(self, path)
    }

    /// Reads a node as a domain id (a peer's `backend-id`/`frontend-id`); a number that names
    /// no domain is [`ReadError::NotADomain`].
    pub fn read_domid(&mut self, path: &str) -> Result<hv_abi::DomId, ReadError> {
        xenbus::read_domid(self, path)
    }

    /// Waits for a watch event until `deadline_ns`: whether one came (the wait function of
    /// [`xenbus::frontend::wait_for_state`]).
    pub fn wait_until(&mut self, deadline_ns: u64) -> Result<bool, ClientError> {
        self.wait_event(deadline_ns).map(|e| e.is_some())
    }
}

impl StoreClient for Store {
    fn request(&mut self, request: xenstore::Request<'_>, tx_id: u32) -> Result<Vec<u8>, ClientError> {
        self.client.request(request, tx_id)
    }

    /// Pipelined: one round trip for up to `MAX_OUTSTANDING` requests.
    fn batch(&mut self, requests: &[xenstore::Request<'_>], tx_id: u32) -> Vec<Result<Vec<u8>, ClientError>> {
        self.client.batch(requests, tx_id)
    }
}

/// The peer's state, or Closed if its directory is gone (the peer domain was destroyed) or
/// holds no state ([`xenbus::frontend::peer_state`]).
pub fn peer_state(store: &mut Store, dir: &str) -> XenbusState {
    xenbus::frontend::peer_state(store, dir.as_bytes())
}

/// Watches `dir/state` and waits until `done(state)` or `timeout_ns` passes
/// ([`xenbus::frontend::wait_for_state`]).
pub fn wait_for_state(
    store: &mut Store,
    dir: &str,
    timeout_ns: u64,
    done: impl Fn(XenbusState) -> bool,
) -> Result<XenbusState, &'static str> {
    use xenbus::frontend::WaitError;
    let deadline = time::now_ns().saturating_add(timeout_ns);
    match xenbus::frontend::wait_for_state(store, dir.as_bytes(), b"state", done, |s| s.wait_until(deadline)) {
        Ok(s) => Ok(s),
        Err(WaitError::Watch(e)) => {
            crate::println!("watch {dir}/state: {e}");
            Err("cannot watch the peer's state")
        }
        Err(WaitError::Store(_)) => Err("store connection failed"),
        Err(WaitError::TimedOut(_)) => Err("timed out waiting for the peer"),
    }
}
