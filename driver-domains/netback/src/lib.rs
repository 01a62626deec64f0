//! netback: the backend half of the Xen network split driver (netif). See `docs/net.md`.
#![cfg_attr(not(test), no_std)]

extern crate alloc;
