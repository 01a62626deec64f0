//! The backend half of a xenbus split driver, written once for every device class (blkback's
//! `vbd`, netback's `vif`), as Linux's xenbus backend core serves xen-blkback and xen-netback.
//!
//! * [`Backend`] — the device set of one class under `/local/domain/<me>/backend/<kind>`:
//!   finds the devices the toolstack adds, forgets the ones it removes, and runs each device's
//!   handshake with [`xenstore::xenbus::backend_next`] (the tested transition function).
//! * [`Device`] — one device: its store paths, its published state, its connection (mapped
//!   ring pages and bound port, undone on any error), its [`RefusalLog`] (at most
//!   [`MAX_LOGGED_REFUSALS`] lines).
//! * [`DataPath`] — what a device class plugs in: its store keys and its data path (blkback's
//!   vbd and ring, netback's vif on the bridge).
//! * [`Platform`] — the hypervisor calls a backend makes (map, unmap, bind, close) and its
//!   console; `hv::Hv` on bare metal, a fake in the host tests.
//! * [`GrantCopier`] — batched grant copy between a frontend's granted pages and the backend's
//!   own memory, one status per element; `hv::HvCopier` on bare metal.
//! * `testing::FakeHv` (host only) — a bookkeeping [`Platform`] for host tests.
//!
//! Everything read from the store is the frontend's or the toolstack's and is treated as
//! hostile: bad values close the device with a message, nothing panics, every loop is bounded.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

mod backend;
mod copier;
mod device;
mod platform;
mod refusals;

#[cfg(target_os = "none")]
pub mod hv;
#[cfg(not(target_os = "none"))]
pub mod testing;

pub use backend::Backend;
pub use copier::{GrantCopier, OutCopy, Seg};
pub use device::{Connected, DataPath, Device, Info, RingKey};
pub use platform::Platform;
pub use refusals::{MAX_LOGGED_REFUSALS, RefusalLog};

use alloc::string::String;
use xenstore::{ClientError, StoreClient};

/// Reads a node as text (lossy UTF-8).
pub fn read_string(client: &mut impl StoreClient, path: &str) -> Result<String, ClientError> {
    client.read(path.as_bytes()).map(|v| String::from_utf8_lossy(&v).into_owned())
}
