//! Host tooling for hv-core, shared by the `cargo xtask` binary and the `hv-tests` QEMU scenarios.
//!
//! - [`topology`]: `topologies/*.toml` → [`hv_bundle::Topology`], with errors that name the fix.
//! - [`artifacts`]: the bare-metal build (hypervisor + domain images) and the boot bundles.
//! - [`iso`]: the GRUB rescue ISO (multiboot2 + the bundle as `module2`).
//! - [`disks`]: the raw disk images of a topology's `[[disk]]` tables.
//! - [`linux_guest`]: Debian's kernel as a PVH guest: its ELF vmlinux, an initramfs, the cache.
//! - [`cpio`]: the newc archive writer of the initramfs images.
//! - [`qemu`]: QEMU command lines, accelerator choice, and a captured run with a deadline.
//! - [`packages`]: the Debian packages the host needs, installed when running as root.
//! - [`paths`]: where everything lives.
//! - [`control`]: the client of Dom0's toolstack over the control channel (`xl`).

pub mod artifacts;
pub mod control;
pub mod cpio;
pub mod disks;
pub mod iso;
pub mod linux_guest;
pub mod packages;
pub mod paths;
pub mod qemu;
pub mod topology;

/// Prints a progress line for a long step (`==> building ...`) to stderr, so that it shows up
/// even when stdout is a pipe (and in `cargo test` output).
pub fn step(msg: impl std::fmt::Display) {
    eprintln!("==> {msg}");
}
