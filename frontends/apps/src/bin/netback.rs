//! The network backend driver domain: switches frames between the assigned virtio-net device
//! and every `vif` device the toolstack gave it. The logic is the `netback` crate.
#![no_std]
#![no_main]

hv_rt::main!(netback::domain::main);
