//! blkfront: the frontend half of the Xen block split driver (blkif) for hv-core DomUs. See
//! `docs/blk.md`.
//!
//! [`BlkFront::connect`] finds device `vbd/<n>` in the store, waits for the backend's InitWait,
//! shares a one-page ring and an event channel (`ring-ref`, `event-channel`, `protocol` =
//! `x86_64-abi`), goes Initialised, waits for the backend's Connected and reads the disk's
//! `sectors`, `sector-size`, `info`, `feature-flush-cache`/`feature-barrier` and
//! `feature-max-indirect-segments`.
//!
//! [`BlkFront::read`] / [`BlkFront::write`] split a transfer into requests and keep as many in
//! flight as the ring (32 slots) and the granted-page pool allow. A request carries up to 11
//! pages in its ring slot, or, when the backend offers indirect requests, up to
//! [`request::Limits::negotiate`]'s limit (at most 128 pages, 512 KiB) as `BLKIF_OP_INDIRECT`
//! with its segment list in an indirect page granted read-only to the backend. Data goes
//! through the pool (`hv_rt::grant::GrantedPages`: granted once to the backend, reused by every
//! request; the backend grant-copies to and from them). [`BlkFront::flush`] sends
//! `BLKIF_OP_FLUSH_DISKCACHE` (or a barrier) and returns once the backend acknowledged it.
//!
//! If the backend goes Closing/Closed or vanishes while requests are in flight, the frontend
//! goes Closing, waits for the backend to let go of the ring (it answers Closing or is Closed),
//! tears its ring down, goes Closed, then Initialising, waits for a (new) backend's InitWait,
//! sets up a new ring and issues every unanswered request's range again, cut for what the new
//! backend offers. Waiting on the backend's state is `xenstore::xenbus::frontend`'s.
//!
//! * [`request`]: one request built for the negotiated limits (direct or indirect; the
//!   segment list cut into indirect pages). Host-tested.
//! * [`pending`]: a transfer's byte ranges not issued yet, cut per request, put back when a
//!   request must be issued again. Host-tested.
//! * `front` (bare metal): [`BlkFront`], the store handshake, reconnection.
//! * `transfer` (bare metal): read, write, flush: issuing requests and collecting responses.
//! * `indirect` (bare metal): the pool of indirect pages.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::string::String;
use core::fmt;

use shared_ring::PeerError;

pub mod pending;
pub mod request;

#[cfg(target_os = "none")]
mod front;
#[cfg(target_os = "none")]
mod indirect;
#[cfg(target_os = "none")]
mod transfer;

#[cfg(target_os = "none")]
pub use front::{BlkFront, MAX_POOL_PAGES};

pub use request::SECTOR_SIZE;
/// Slots of a one-page blkif ring; request ids are slot indices.
pub const RING_SLOTS: usize = 32;

/// What the backend published about the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskInfo {
    pub sectors: u64,
    pub sector_size: u32,
    pub read_only: bool,
    pub flush: bool,
    pub barrier: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlkError {
    /// Store, grant or event-channel trouble while (re)connecting.
    Setup(String),
    /// The backend answered a request with an error status.
    Io { operation: u8, sector: u64, status: i16 },
    /// Buffer not whole sectors, or the range is past the disk.
    BadRange,
    /// A write to a read-only disk.
    ReadOnly,
    /// No response for 30 s.
    Timeout,
    /// The backend broke the ring.
    Broken(PeerError),
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlkError::Setup(s) => f.write_str(s),
            BlkError::Io { operation, sector, status } => {
                write!(f, "operation {operation} at sector {sector} failed with status {status}")
            }
            BlkError::BadRange => f.write_str("range not whole sectors inside the disk"),
            BlkError::ReadOnly => f.write_str("the disk is read-only"),
            BlkError::Timeout => f.write_str("the backend stopped answering"),
            BlkError::Broken(e) => write!(f, "the backend broke the ring: {e}"),
        }
    }
}
