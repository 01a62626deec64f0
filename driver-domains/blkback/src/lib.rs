//! blkback: the backend half of the Xen block split driver (blkif), for hv-core driver domains.
//!
//! * [`params`]: a vdisk's `params` store key (`offset_mib=N size_mib=M mode=r|w`), parsed
//!   strictly into a [`params::Region`] of the backing device.
//! * [`device`]: the backing-device trait ([`device::BlockDevice`]: a queue of requests in
//!   flight, each in one of the device's own buffers) and the RAM disk that implements it.
//! * [`vbd`]: one virtual block device: validates every request against blkif.h and the vdisk
//!   (operation, segments, sector range, read-only) and moves data with batched grant copies
//!   through the [`xenbus_backend::GrantCopier`] trait shared with netback (data pages are
//!   mapped only as persistent grants, below).
//! * [`persistent`]: persistent grants (`feature-persistent`): a bounded table of mapped
//!   frontend pages per vdisk, copied with plain loads and stores, grant copy for the rest.
//! * [`queue`]: a vdisk's requests between ring and device (in ring order) and the device's
//!   completions by buffer.
//! * [`serve`]: one bounded round of a frontend's ring: the vdisk's queue (many requests in
//!   flight, answered in ring order; barriers and flushes run alone).
//! * [`testing`]: a device whose requests finish when a test or fuzz input says so.
//! * [`xenbus`]: the vbd device class plugged into the `xenbus-backend` skeleton (params,
//!   published keys, protocol check, ring attach).
//! * `domain` (bare metal only): the driver domain itself: the skeleton on the hypervisor
//!   (store handshake, ring mapping, event channels, teardown and reconnection) with the vbds'
//!   data path, and the domain's loop. See `docs/blk.md`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod device;
pub mod params;
pub mod persistent;
pub mod queue;
pub mod serve;
pub mod testing;
pub mod vbd;
pub mod xenbus;

#[cfg(target_os = "none")]
pub mod bench;
#[cfg(target_os = "none")]
pub mod domain;

/// Bytes per sector on the wire and on every backing device (`sector-size`).
pub const SECTOR_SIZE: usize = 512;
/// Bytes per granted page.
pub const PAGE_SIZE: usize = 4096;
/// Sectors per page.
pub const SECTORS_PER_PAGE: u64 = (PAGE_SIZE / SECTOR_SIZE) as u64;

#[cfg(test)]
mod tests;
