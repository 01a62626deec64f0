//! The store protocol as both ends speak it: what a frontend, a backend and Dom0's server
//! (`xenstored`) share, the way `xs_wire.h` and libxenstore sit between Xen's domains and its
//! daemon. The byte layout of a message is `shared_ring::wire::xenstore`; this crate gives it
//! meaning:
//!
//! * [`Request`] — every request type, parsed strictly from a message or encoded into one;
//! * [`Errno`] — Xen's error names on the wire; [`StoreError`] — why the store refused;
//! * [`path`] — path syntax and the decimals in it; [`Permissions`] — Xen's permission lists;
//! * [`ClientPort`] — a domain's end of its store page (requests out, replies and watch events
//!   in, nothing trusted); [`StoreClient`] — the blocking request/reply interface, with
//!   [`BlockingClient`] over a port (Dom0's `LocalClient` is the in-process one);
//! * [`xenbus`] — the XenbusState handshake for front and back ends (states, the checked
//!   switch, the transition functions, [`xenbus::read_u32`]), with [`xenbus::frontend`]: wait
//!   for the peer's state.
//!
//! Nothing here knows the server's tree, quotas or watches: a DomU image that links this crate
//! links no store server (`cargo tree -p <image>` shows it).
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod client;
mod errno;
mod error;
pub mod path;
mod perms;
mod request;
pub mod xenbus;

pub use client::{BlockingClient, ClientError, ClientPort, Message, StoreClient, WatchEvent, transaction_id};
pub use errno::Errno;
pub use error::{Quota, StoreError};
pub use perms::{Access, Permissions};
pub use request::Request;

use shared_ring::wire::xenstore::{HEADER_SIZE, PAYLOAD_MAX};

/// Bytes of the largest message on the wire: header plus `XENSTORE_PAYLOAD_MAX`.
pub const MAX_MESSAGE: usize = HEADER_SIZE + PAYLOAD_MAX as usize;

/// A domain id (`domid_t`).
pub type DomId = u16;

/// The privileged control domain.
pub const DOM0: DomId = 0;

/// `DOMID_FIRST_RESERVED`: ids from here on name no real domain.
pub const DOMID_FIRST_RESERVED: DomId = 0x7FF0;
