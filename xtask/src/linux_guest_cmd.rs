//! `cargo xtask linux-guest`: prepares Debian's kernel as a PVH guest (the ELF vmlinux out of
//! `/boot/vmlinuz-*`, checked for its `XEN_ELFNOTE_PHYS32_ENTRY`, and the busybox initramfs) and
//! prints where they are. Bundles prepare the same files when a topology names `kernel = "linux"`.

use anyhow::Result;
use xtask::linux_guest;
use xtask::paths::{Paths, show};

#[derive(clap::Args)]
pub struct LinuxGuestArgs {
    /// Leave the modules (xen-blkfront, xen-netfront, ext4 and its dependencies) and mke2fs out
    /// of the initramfs (the modules are loaded only with `guest.modules=1` on the kernel command
    /// line)
    #[arg(long)]
    pub no_modules: bool,
}

/// Prepares (or finds in `target/linux-guest/`) the vmlinux and the initramfs and prints them.
pub fn run(paths: &Paths, args: LinuxGuestArgs) -> Result<()> {
    let p = linux_guest::prepare(paths, !args.no_modules)?;
    let size = |f: &std::path::Path| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0);
    let mib = |n: u64| n as f64 / (1024.0 * 1024.0);
    let bz = size(&p.bzimage);
    println!("kernel:    {} ({} bytes, {:.1} MiB), version {}", p.bzimage.display(), bz, mib(bz), p.version);
    let vm = size(&p.vmlinux);
    println!("vmlinux:   {} ({} bytes, {:.1} MiB)", show(&p.vmlinux, &paths.root), vm, mib(vm));
    println!("pvh entry: {:#x} (XEN_ELFNOTE_PHYS32_ENTRY)", p.pvh_entry);
    let rd = size(&p.initramfs);
    println!(
        "initramfs: {} ({} bytes, {:.1} MiB; busybox, /init{})",
        show(&p.initramfs, &paths.root),
        rd,
        mib(rd),
        if p.with_modules { ", xen-blkfront, xen-netfront, ext4 and its modules, mke2fs" } else { "" }
    );
    println!("cmdline:   {} (the default of kernel = \"linux\" domains)", linux_guest::DEFAULT_CMDLINE);
    println!("cache:     {}", if p.cached { "up to date (nothing rebuilt)" } else { "written" });
    Ok(())
}
