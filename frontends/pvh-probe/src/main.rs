//! `pvh-probe`: a minimal x86_64 kernel booted through the PVH protocol (the way Linux boots as a
//! Xen PVH guest) that talks to the hypervisor with Xen's HVM ABI. On the bare-metal target the
//! entry is `boot.S` (32-bit PVH entry to 64-bit), which calls `kernel::pvh_probe_main`; built
//! for the host this binary only explains how to build it properly.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(target_os = "none")]
core::arch::global_asm!(include_str!("boot.S"), options(att_syntax));

#[cfg(target_os = "none")]
mod kernel;

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!(
        "pvh-probe is a bare-metal PVH kernel: build it with \
         `cargo build --release --target x86_64-unknown-none -p pvh-probe` and boot the ELF as an HVM guest \
         (or `qemu-system-x86_64 -kernel <elf> -append selftest -debugcon stdio ...`)."
    );
    std::process::exit(2);
}
