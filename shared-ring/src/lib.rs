//! Xen-compatible shared rings and PV wire formats, for both ends of every data path.
//!
//! * [`FrontRing`] / [`BackRing`]: the two halves of a `ring.h` request/response ring on a
//!   shared page (single- or multi-page), with Xen's notification suppression ([`Notify`]) and
//!   batching (push many, publish once). The back end treats the front end as hostile: each
//!   slot is copied out exactly once, and a lying producer index is a [`PeerError`], never a
//!   panic or an unbounded loop; the front end rejects responses to ids it never issued.
//! * [`SharedMemory`]: the only way the rings touch shared memory, implemented by
//!   [`PageMemory`] (real pages), [`CellMemory`] (single-threaded buffers for fuzzing and model
//!   tests) and a loom-checked memory in the loom tests.
//! * [`wire`]: `#[repr(C)]` blkif, netif, grant-table, store and XenbusState formats with
//!   validating decoders.
//!
//! See `docs/shared-ring.md` for the hostile-peer contract and how it is verified.
#![cfg_attr(not(test), no_std)]

mod back;
mod cell_memory;
mod entry;
mod error;
mod front;
mod id_set;
pub mod layout;
mod notify;
mod page_memory;
mod shared_memory;
mod slots;
pub mod wire;

#[cfg(all(test, loom))]
mod loom_tests;
#[cfg(test)]
mod ring_tests;

pub use back::BackRing;
pub use cell_memory::CellMemory;
pub use entry::{EntryBytes, RingEntry, RingProtocol, entry_size};
pub use error::{LayoutError, PeerError, PushError, SharedIndex};
pub use front::FrontRing;
pub use layout::RingLayout;
pub use notify::Notify;
pub use page_memory::PageMemory;
pub use shared_memory::SharedMemory;
pub use wire::blkif::Blkif;
pub use wire::netif::{NetifRx, NetifTx};
