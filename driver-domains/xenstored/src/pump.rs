//! Moving bytes between a domain's store page and the server (server side).
//!
//! [`ServerPort`] wraps shared-ring's [`StoreRing`] (which copies each byte range out of the
//! page once and rejects producer indices that claim more than the 1 KiB ring). One
//! [`ServerPort::pump`] takes at most what the domain's connection can hold, answers what it
//! can, and writes as much queued output as fits; its rounds are bounded so a domain that keeps
//! refilling its ring cannot hold Dom0 (the outcome says whether to come back).

use shared_ring::SharedMemory;
use shared_ring::wire::xenstore::{ERROR, RING_SIZE, SERVER_FEATURES, StoreRing, StoreSide, XenstoreError};

use crate::DomId;
use crate::connection::ProtocolViolation;
use crate::server::StoreServer;

/// `XENSTORE_SERVER_FEATURE_ERROR`: the server reports fatal errors in the page's `error`.
pub const SERVER_FEATURE_ERROR: u32 = 2;
/// `XENSTORE_ERROR_RINGIDX`.
pub const ERROR_RING_INDEX: u32 = 2;
/// `XENSTORE_ERROR_PROTO` (payload too long).
pub const ERROR_PROTOCOL: u32 = 3;

/// Rounds (read, handle, write) one pump call makes at most.
pub const PUMP_ROUNDS: usize = 32;

/// What a pump did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PumpOutcome {
    /// Bytes were consumed or produced: signal the domain's event channel.
    pub notify: bool,
    /// The round budget ran out with work left: pump again later.
    pub more: bool,
    /// The connection is broken and will not be read again.
    pub broken: Option<ProtocolViolation>,
}

/// The server's end of one domain's store page.
pub struct ServerPort<M: SharedMemory + Copy> {
    ring: StoreRing<M>,
    memory: M,
    domid: DomId,
    error_reported: bool,
}

impl<M: SharedMemory + Copy> ServerPort<M> {
    /// Attach to `domid`'s mapped page and advertise the error feature. `None` if the area is
    /// smaller than the interface.
    pub fn attach(memory: M, domid: DomId) -> Option<Self> {
        let ring = StoreRing::attach(memory, StoreSide::Server)?;
        memory.store_release(SERVER_FEATURES, SERVER_FEATURE_ERROR);
        Some(Self { ring, memory, domid, error_reported: false })
    }

    /// The domain served.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// Serve the page: read requests, handle them, write replies and events.
    pub fn pump(&mut self, server: &mut StoreServer) -> PumpOutcome {
        let mut outcome = PumpOutcome::default();
        let mut buf = [0u8; RING_SIZE as usize];
        let mut rounds = 0;
        loop {
            if rounds == PUMP_ROUNDS {
                outcome.more = true;
                break;
            }
            rounds += 1;
            let mut progress = server.handle_pending(self.domid) > 0;
            match self.write_output(server) {
                Ok(0) => {}
                Ok(_) => progress = true,
                Err(error) => {
                    self.fail(server, error, &mut outcome);
                    break;
                }
            }
            let want = server.wanted(self.domid).min(buf.len());
            if want > 0 {
                match self.ring.read(&mut buf[..want]) {
                    Ok(0) => {}
                    Ok(read) => {
                        progress = true;
                        let _ = server.receive(self.domid, &buf[..read]);
                    }
                    Err(error) => {
                        self.fail(server, error, &mut outcome);
                        break;
                    }
                }
            }
            outcome.notify |= progress;
            if !progress {
                break;
            }
        }
        outcome.broken = server.connection(self.domid).and_then(|c| c.broken());
        if let Some(ProtocolViolation::PayloadTooLong { .. }) = outcome.broken {
            self.report(ERROR_PROTOCOL, &mut outcome);
        }
        outcome
    }

    fn write_output(&mut self, server: &mut StoreServer) -> Result<usize, XenstoreError> {
        let (first, second) = server.output(self.domid);
        let mut written = self.ring.write(first)?;
        if written == first.len() && !second.is_empty() {
            written += self.ring.write(second)?;
        }
        server.consume_output(self.domid, written);
        Ok(written)
    }

    fn fail(&mut self, server: &mut StoreServer, error: XenstoreError, outcome: &mut PumpOutcome) {
        server.mark_broken(self.domid, ProtocolViolation::BadRingIndex { error });
        self.report(ERROR_RING_INDEX, outcome);
    }

    fn report(&mut self, code: u32, outcome: &mut PumpOutcome) {
        if !self.error_reported {
            self.error_reported = true;
            self.memory.store_release(ERROR, code);
            outcome.notify = true;
        }
    }
}
