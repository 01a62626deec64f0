//! The store server Dom0 runs: a xenstore-compatible hierarchical key/value service for every
//! domain (Xen's `xenstored`). The protocol both ends speak (requests, errors, paths,
//! permissions, the client side, the XenbusState handshake) is the `xenstore` crate; this crate
//! is what only the server needs, and only Dom0 links it:
//!
//! * [`Store`] — the node tree with Xen permissions and per-owner node counts;
//! * [`StoreServer`] — every domain's [`Connection`] (request reassembly, bounded output),
//!   watches, transactions and quotas ([`Limits`]); dispatches typed requests;
//! * [`ServerPort`] — moves bytes between a domain's shared store page and the server;
//! * [`LocalClient`] — the `xenstore::StoreClient` that calls the server in-process (Dom0's own
//!   requests, tests).
//!
//! Every domain is treated as hostile: see `docs/store.md`.

#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod connection;
mod local_client;
pub mod memory;
mod pump;
mod quota;
mod server;
mod transaction;
mod tree;
mod watch;

pub use connection::{Connection, Incoming, ProtocolViolation};
pub use local_client::LocalClient;
pub use pump::{PumpOutcome, ServerPort};
pub use quota::Limits;
pub use server::{HostRequest, Reply, StoreServer};
pub use transaction::Transaction;
pub use tree::{Change, Node, Store};
pub use watch::{SpecialPath, Watch, WatchTarget, Watches, encode_event};

// The protocol pieces, under the names the server's modules use.
pub use xenstore::{
    Access, ClientError, DOM0, DOMID_FIRST_RESERVED, DomId, Errno, MAX_MESSAGE, Permissions, Quota, Request,
    StoreClient, StoreError, path, xenbus,
};
