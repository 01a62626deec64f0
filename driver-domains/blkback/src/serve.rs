//! One bounded round of serving a frontend's ring.
use shared_ring::wire::blkif::{Blkif, BlkifResponse};
use shared_ring::{BackRing, PeerError, PushError, SharedMemory};

use crate::device::BlockDevice;
use crate::vbd::{Vbd, response_operation};
use xenbus_backend::GrantCopier;

/// Requests served per frontend per round, so one busy frontend cannot starve the others (the
/// ring itself bounds unanswered requests to 32).
pub const BUDGET: u32 = 32;

/// What a round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub served: u32,
    pub refused: u32,
    /// The frontend must be notified of new responses.
    pub notify: bool,
    /// Requests are waiting (budget used up, or they arrived during the final check).
    pub more: bool,
}

/// The frontend broke the ring: disconnect it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeError {
    Peer(PeerError),
    Push(PushError),
}

impl core::fmt::Display for ServeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ServeError::Peer(e) => write!(f, "{e}"),
            ServeError::Push(e) => write!(f, "{e}"),
        }
    }
}

/// Serves up to `budget` requests, publishes the responses, and re-arms the request event if
/// the ring is empty. `on_refusal` sees each refused request (for logging).
pub fn serve_round<M: SharedMemory>(
    ring: &mut BackRing<Blkif, M>,
    vbd: &mut Vbd,
    dev: &mut impl BlockDevice,
    copier: &mut impl GrantCopier,
    budget: u32,
    mut on_refusal: impl FnMut(&Vbd, u64),
) -> Result<Round, ServeError> {
    let mut round = Round::default();
    while round.served < budget {
        let Some(slot) = ring.poll_request().map_err(ServeError::Peer)? else { break };
        let status = vbd.handle(&slot, dev, copier);
        round.served += 1;
        if status != shared_ring::wire::blkif::RSP_OKAY {
            round.refused += 1;
            on_refusal(vbd, slot.id());
        }
        ring.push_response(BlkifResponse { id: slot.id(), operation: response_operation(&slot), status })
            .map_err(ServeError::Push)?;
    }
    round.notify = round.served > 0 && ring.publish_responses().is_needed();
    round.more =
        if round.served >= budget { true } else { ring.final_check_for_requests().map_err(ServeError::Peer)? };
    Ok(round)
}
