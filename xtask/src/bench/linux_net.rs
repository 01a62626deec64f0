//! The Linux reference guest of `cargo xtask bench net`: Debian's kernel in the same QEMU
//! configuration (virtio-net on the user network, same forwards), with a tiny static init that
//! loads the virtio-net modules, configures eth0 as 10.0.2.15/24 via 10.0.2.2, and then either
//! serves the same kind of page as the `httpd` DomU (`netref=http`) or sends a stream to the host
//! (`netref=send:PORT:BYTES`, to 10.0.2.2:PORT, which slirp maps to the host's 127.0.0.1:PORT).
//! The init is `linux_net_init.c`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xtask::paths::Paths;

use xtask::cpio;
use xtask::linux_guest::kernel_version;

/// The init's source.
pub const INIT_C: &str = include_str!("linux_net_init.c");

/// The kernel modules the init loads, in dependency order (Debian builds virtio-net as modules).
const MODULES: &[&str] = &[
    "drivers/virtio/virtio_ring.ko",
    "drivers/virtio/virtio.ko",
    "drivers/virtio/virtio_pci_legacy_dev.ko",
    "drivers/virtio/virtio_pci_modern_dev.ko",
    "drivers/virtio/virtio_pci.ko",
    "net/core/failover.ko",
    "drivers/net/net_failover.ko",
    "drivers/net/virtio_net.ko",
];

/// Compiles the init and packs `target/bench/linux-net/initramfs.cpio` with the modules of
/// `kernel` (`/lib/modules/<version>/kernel/...`, uncompressed as Debian 12 ships them).
pub fn build_initramfs(paths: &Paths, kernel: &Path) -> Result<PathBuf> {
    let version = kernel_version(kernel)?;
    let dir = paths.bench_dir().join("linux-net");
    let init = super::linux::compile_init(&dir, INIT_C, &[])?;
    let mut modules = Vec::new();
    for m in MODULES {
        let path = Path::new("/lib/modules").join(version).join("kernel").join(m);
        let data = std::fs::read(&path).with_context(|| {
            format!(
                "reading {} (the kernel's virtio-net modules)\n  fix: apt-get install linux-image-{version}",
                path.display()
            )
        })?;
        let name = Path::new(m).file_name().and_then(|n| n.to_str()).unwrap_or_default();
        modules.push((format!("m/{name}"), data));
    }
    let mut entries = vec![
        cpio::Entry::Dir { path: "dev", mode: 0o755 },
        cpio::Entry::CharDev { path: "dev/console", mode: 0o600, major: 5, minor: 1 },
        cpio::Entry::Dir { path: "proc", mode: 0o755 },
        cpio::Entry::Dir { path: "m", mode: 0o755 },
        cpio::Entry::File { path: "init", mode: 0o755, data: &init },
    ];
    for (path, data) in &modules {
        entries.push(cpio::Entry::File { path, mode: 0o644, data });
    }
    let cpio_path = dir.join("initramfs.cpio");
    std::fs::write(&cpio_path, cpio::newc(&entries))?;
    Ok(cpio_path)
}
