//! The store: a xenstore-compatible hierarchical key/value service that Dom0 serves to every
//! domain, plus the client side that frontends and backends use to talk to it.
//!
//! Server side (linked into Dom0, no hypervisor API):
//! * [`Store`] — the node tree with Xen permissions ([`Permissions`]) and per-owner node counts;
//! * [`StoreServer`] — every domain's [`Connection`] (request reassembly, bounded output),
//!   watches, transactions and quotas ([`Limits`]); dispatches typed [`Request`]s;
//! * [`ServerPort`] — moves bytes between a domain's shared store page and the server.
//!
//! Client side (DomUs):
//! * [`ClientPort`] — encodes requests, decodes replies and watch events over the page;
//! * [`StoreClient`] — the blocking read/write interface, with [`BlockingClient`] (ring) and
//!   [`LocalClient`] (in-process, e.g. Dom0's own use and tests);
//! * [`xenbus`] — the XenbusState handshake for front and back ends.
//!
//! Every domain is treated as hostile: see `docs/store.md`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod client;
mod connection;
mod errno;
mod error;
pub mod path;
mod perms;
mod pump;
mod quota;
mod request;
mod server;
mod transaction;
mod tree;
mod watch;
pub mod xenbus;

pub use client::{BlockingClient, ClientError, ClientPort, LocalClient, Message, StoreClient, WatchEvent};
pub use connection::{Connection, Incoming, ProtocolViolation};
pub use errno::Errno;
pub use error::{Quota, StoreError};
pub use perms::{Access, Permissions};
pub use pump::{PumpOutcome, ServerPort};
pub use quota::{Limits, MAX_MESSAGE};
pub use request::Request;
pub use server::{HostRequest, Reply, StoreServer};
pub use transaction::Transaction;
pub use tree::{Change, Node, Store};
pub use watch::{SpecialPath, Watch, WatchTarget, Watches, encode_event};

/// A domain id (`domid_t`).
pub type DomId = u16;

/// The privileged control domain.
pub const DOM0: DomId = 0;

/// `DOMID_FIRST_RESERVED`: ids from here on name no real domain.
pub const DOMID_FIRST_RESERVED: DomId = 0x7FF0;
