//! The block backend driver domain: serves every `vbd` device the toolstack gave it from one
//! backing device (a RAM disk of `ram_mib=N` MiB for now). The logic is the `blkback` crate.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
hv_rt::main!(blkback::domain::main);

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("blkback is a driver-domain image for x86_64-unknown-none: build and boot it with `cargo xtask run`.");
    std::process::exit(2);
}
