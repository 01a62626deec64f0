//! netfront: the frontend half of the Xen network split driver (netif). See `docs/net.md`.
#![no_std]

extern crate alloc;
