//! netfront: the frontend half of the Xen network split driver (netif) for hv-core DomUs, and
//! the smoltcp device over it. See `docs/net.md`.
//!
//! * [`datapath`]: both rings, the granted page pools and the [`smoltcp::phy::Device`]
//!   (zero-copy tokens over pool pages; every backend response validated). Host-tested.
//! * `front` (bare metal): [`NetFront`]: the store handshake for `vif/<n>`, grants, the event
//!   channel, waiting, and reconnection when the backend goes away or is replaced.
//! * `raw` (bare metal): the handshake alone, with bare rings, for hostile test domains.
//! * [`http`], [`stream`]: pure helpers of the network apps (request parser, test stream and
//!   checksum). Host-tested.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod datapath;
pub mod http;
pub mod stream;

#[cfg(target_os = "none")]
mod front;
#[cfg(target_os = "none")]
pub mod raw;

#[cfg(target_os = "none")]
pub use front::{NetError, NetFront};

pub use datapath::{Stats, Violation};
pub use smoltcp;
