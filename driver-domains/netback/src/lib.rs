//! netback: the backend half of the Xen network split driver (netif), for hv-core driver
//! domains. See `docs/net.md`.
//!
//! * [`switch`]: the L2 learning switch (bounded MAC table, ageing, flooding rules).
//! * [`vif`]: one vif's tx and rx rings: slot-by-slot packet assembly and validation, batched
//!   grant copies through the [`xenbus_backend::GrantCopier`] trait (shared with blkback), a
//!   bounded rx queue, counters.
//! * [`bridge`]: the switch with its ports (uplink trait + vifs), one bounded round at a time.
//! * [`gso`]: TCP segmentation of frontends' GSO packets (up to 64 KiB) into frames.
//! * [`checksum`]: completing checksums frontends left blank.
//! * [`prof`]: cycle counts per phase of the domain's loop (the `prof` feature).
//! * [`pcap`]: the pcap file format as console hex lines.
//! * [`xenbus`]: the vif device class plugged into the `xenbus-backend` skeleton (published
//!   features, rx-copy check, a vif on the bridge per connection).
//! * `domain` (bare metal only): the driver domain itself: the virtio-net uplink, the skeleton
//!   on the hypervisor (store handshake, ring mapping, event channels, teardown and
//!   reconnection) with the vifs' data path, and the domain's loop.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod bridge;
pub mod checksum;
pub mod gso;
pub mod pcap;
pub mod prof;
pub mod switch;
pub mod vif;
pub mod xenbus;

#[cfg(target_os = "none")]
pub mod domain;

/// Whether a vif's `params` ask for a capture (`pcap=1` among its whitespace-separated words).
pub fn wants_capture(params: &str) -> bool {
    params.split_whitespace().any(|w| w == "pcap=1")
}

#[cfg(test)]
mod tests;
