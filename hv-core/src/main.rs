//! The hypervisor binary. On the bare-metal target this is the boot entry (`boot.S`, which calls
//! `hv_core::kernel::hv_main`); built for the host it only explains how to build it properly.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("arch/x86_64/boot.S"), options(att_syntax));

#[cfg(target_os = "none")]
use hv_core as _;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("hv-core is a bare-metal binary: build and boot it with `cargo xtask run`.");
    std::process::exit(2);
}
