//! Errors. [`PeerError`] says what the peer did wrong; [`PushError`] and [`LayoutError`] are the
//! local caller's mistakes.

use core::fmt;

/// Which shared index a [`PeerError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedIndex {
    /// `req_prod`, written by the front end.
    RequestProducer,
    /// `rsp_prod`, written by the back end.
    ResponseProducer,
}

/// The peer broke the ring protocol. Once reported, the ring half stays broken and returns the
/// same error from every later call: the caller should disconnect the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerError {
    /// The peer moved its producer index backwards.
    ProducerWentBackwards {
        /// Which index.
        index: SharedIndex,
        /// Value seen before.
        previous: u32,
        /// Value seen now.
        now: u32,
    },
    /// The front end published more requests than the ring has room for
    /// (`RING_REQUEST_PROD_OVERFLOW`: `req_prod - rsp_prod > size`).
    TooManyRequests {
        /// The front end's `req_prod`.
        req_prod: u32,
        /// Responses the back end has produced so far.
        rsp_prod: u32,
        /// Ring size.
        slots: u32,
    },
    /// The back end published responses to requests that were never published
    /// (`RING_RESPONSE_PROD_OVERFLOW`, tightened to the requests actually in flight).
    TooManyResponses {
        /// The back end's `rsp_prod`.
        rsp_prod: u32,
        /// Responses consumed so far.
        rsp_cons: u32,
        /// Requests published and not yet answered.
        in_flight: u32,
    },
    /// The back end answered with an id that has no outstanding request (never issued, or
    /// already answered).
    UnknownResponseId {
        /// The id it sent.
        id: u64,
    },
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PeerError::ProducerWentBackwards { index, previous, now } => {
                let name = match index {
                    SharedIndex::RequestProducer => "req_prod",
                    SharedIndex::ResponseProducer => "rsp_prod",
                };
                write!(f, "peer moved {name} backwards from {previous} to {now}")
            }
            PeerError::TooManyRequests { req_prod, rsp_prod, slots } => write!(
                f,
                "front end set req_prod to {req_prod} with rsp_prod at {rsp_prod}: claims {} \
                 requests in flight on a {slots}-slot ring",
                req_prod.wrapping_sub(rsp_prod)
            ),
            PeerError::TooManyResponses { rsp_prod, rsp_cons, in_flight } => write!(
                f,
                "back end set rsp_prod to {rsp_prod} with rsp_cons at {rsp_cons}: claims {} \
                 responses but only {in_flight} requests are in flight",
                rsp_prod.wrapping_sub(rsp_cons)
            ),
            PeerError::UnknownResponseId { id } => {
                write!(f, "back end answered id {id}, which has no outstanding request")
            }
        }
    }
}

impl core::error::Error for PeerError {}

/// A push the local side should not have attempted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// No free slot: wait for responses first.
    RingFull,
    /// Request ids must be below the ring size.
    IdOutOfRange {
        /// The id.
        id: u64,
        /// Ring size.
        slots: u32,
    },
    /// A request with this id is still outstanding.
    IdInUse {
        /// The id.
        id: u64,
    },
    /// The back end has no consumed request left to answer.
    NoRequestToAnswer,
}

impl fmt::Display for PushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            PushError::RingFull => write!(f, "ring is full"),
            PushError::IdOutOfRange { id, slots } => {
                write!(f, "request id {id} is not below the ring size {slots}")
            }
            PushError::IdInUse { id } => write!(f, "request id {id} is still outstanding"),
            PushError::NoRequestToAnswer => write!(f, "every consumed request is already answered"),
        }
    }
}

impl core::error::Error for PushError {}

/// The shared area cannot hold a ring of this entry type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayoutError {
    /// Not even one slot fits after the header.
    AreaTooSmall {
        /// Bytes available.
        bytes: usize,
        /// Bytes needed for one slot.
        needed: usize,
    },
    /// More slots than [`crate::layout::MAX_SLOTS`].
    TooManySlots {
        /// Slots that would fit.
        slots: u32,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            LayoutError::AreaTooSmall { bytes, needed } => {
                write!(f, "shared area of {bytes} bytes is smaller than the {needed} bytes of one slot")
            }
            LayoutError::TooManySlots { slots } => {
                write!(f, "{slots} slots exceed the supported maximum {}", crate::layout::MAX_SLOTS)
            }
        }
    }
}

impl core::error::Error for LayoutError {}
