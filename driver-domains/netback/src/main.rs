//! The network backend driver domain: switches frames between the assigned virtio-net device
//! and every `vif` device the toolstack gave it. The logic is the `netback` crate.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
hv_rt::main!(netback::domain::main);

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("netback is a driver-domain image for x86_64-unknown-none: build and boot it with `cargo xtask run`.");
    std::process::exit(2);
}
