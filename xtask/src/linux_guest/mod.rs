//! Debian's Linux kernel as a Xen PVH guest of the hypervisor: the host side.
//!
//! - [`find_kernel`]: the newest `/boot/vmlinuz-*` (also the benchmarks' Linux reference guests).
//! - [`vmlinux`]: the ELF `vmlinux` out of the bzImage (PVH loads an ELF, not a bzImage), its
//!   `XEN_ELFNOTE_PHYS32_ENTRY`, and its segments' zero tails left out of the file.
//! - [`initramfs`]: busybox, a shell-script `/init` and optionally the modules (Xen frontends,
//!   ext4) and the host's `mke2fs` with its libraries.
//! - [`prepare`]: both, cached under `target/linux-guest/` per kernel file (name, size, mtime),
//!   for `cargo xtask linux-guest` and for bundles whose topology names `kernel = "linux"` or
//!   `ramdisk = "linux-initramfs"`.

pub mod initramfs;
pub mod vmlinux;

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use anyhow::{Context, Result, bail};

pub use initramfs::build_initramfs;
pub use vmlinux::{extract_vmlinux, pvh_entry, trim_zero_tails};

use crate::artifacts::write_atomically;
use crate::packages::{self, Package};
use crate::paths::Paths;

/// The bundle image name of the prepared kernel (`kernel = "linux"` in a topology).
pub const KERNEL_IMAGE: &str = "linux";
/// The bundle image name of the prepared initramfs (`ramdisk = "linux-initramfs"`).
pub const RAMDISK_IMAGE: &str = "linux-initramfs";
/// The bundle image name of the `bench linux-io` initramfs (`ramdisk = "linux-initrd-io"`): the
/// modules initramfs plus the virtio-pci block and network drivers ([`initramfs::IO_MODULES`])
/// and fio and iperf3 with their libraries ([`initramfs::IO_PROGRAMS`], about 85 MB).
pub const RAMDISK_IO_IMAGE: &str = "linux-initrd-io";
/// The kernel command line of a `kernel = "linux"` domain that gives no `cmdline`: the console
/// on Xen's PV console (hvc0), early messages through the hypervisor's console hypercall, and
/// no PCI (a PVH DomU has none: without `pci=off` Linux's early AMD aperture check probes every
/// bus, device and function through ports 0xcf8/0xcfc, 33,000 exits that cost 1.2 s under TCG),
/// and blkfront's requests up to blkback's 128 indirect segments (512 KiB; its default is 32).
pub const DEFAULT_CMDLINE: &str =
    "console=hvc0 earlyprintk=xen loglevel=7 mitigations=off pci=off xen_blkfront.max_indirect_segments=128";

/// The cached kernel's file name (not `vmlinux`, the name of the untrimmed ELF in older caches,
/// which must not be picked up).
const VMLINUX_FILE: &str = "vmlinux-trimmed";

/// What preparing the guest needs on the host: Debian's kernel, a static busybox and e2fsprogs.
pub const PACKAGES: &[Package] = &[packages::LINUX_IMAGE, packages::BUSYBOX_STATIC, packages::E2FSPROGS];

/// The newest /boot/vmlinuz-*.
pub fn find_kernel() -> Result<PathBuf> {
    newest_kernel(Path::new("/boot"))?.with_context(|| {
        format!("no /boot/vmlinuz-* found\n  fix: {}", packages::install_command(&[packages::LINUX_IMAGE.name]))
    })
}

/// The `vmlinuz-*` in `boot` with the highest version (compared number by number).
pub fn newest_kernel(boot: &Path) -> Result<Option<PathBuf>> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir(boot)
        .with_context(|| format!("reading {}", boot.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .collect();
    kernels.sort_by_key(|k| version_key(k));
    Ok(kernels.pop())
}

fn version_key(p: &Path) -> Vec<u64> {
    let name = p.file_name().unwrap_or_default().to_string_lossy();
    name.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap_or(0)).collect()
}

/// `6.1.0-57-amd64` of `/boot/vmlinuz-6.1.0-57-amd64`: the name of its `/lib/modules` directory.
pub fn kernel_version(kernel: &Path) -> Result<&str> {
    kernel
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("vmlinuz-"))
        .filter(|v| !v.is_empty())
        .with_context(|| format!("{} is not named vmlinuz-<version>", kernel.display()))
}

/// The prepared guest: where its files are and what the kernel's ELF says.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The bzImage it came from (`/boot/vmlinuz-<version>`).
    pub bzimage: PathBuf,
    /// The kernel's version (`6.1.0-57-amd64`).
    pub version: String,
    /// The ELF kernel (`target/linux-guest/<key>/vmlinux-trimmed`: zero tails left out, see
    /// [`vmlinux::trim_zero_tails`]).
    pub vmlinux: PathBuf,
    /// Its `XEN_ELFNOTE_PHYS32_ENTRY`.
    pub pvh_entry: u64,
    /// The gzip-compressed cpio.
    pub initramfs: PathBuf,
    /// Whether the initramfs carries the modules (Xen frontends, ext4) and mke2fs.
    pub with_modules: bool,
    /// Whether it is the `bench linux-io` variant ([`RAMDISK_IO_IMAGE`]).
    pub io_tools: bool,
    /// Whether the vmlinux and the initramfs both came from the cache.
    pub cached: bool,
}

/// `target/linux-guest/<file name>-<size>-<mtime>`: one directory per kernel file, so an upgraded
/// or reinstalled kernel is extracted anew.
pub fn cache_dir(paths: &Paths, kernel: &Path) -> Result<PathBuf> {
    let meta = std::fs::metadata(kernel).with_context(|| format!("reading {}", kernel.display()))?;
    let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_secs());
    let name = kernel.file_name().unwrap_or_default().to_string_lossy();
    Ok(paths.target.join("linux-guest").join(format!("{name}-{}-{mtime}", meta.len())))
}

/// FNV-1a over the uncompressed archive, naming its cache file: any change of what goes in (the
/// script, busybox, the module list and files, the host programs and libraries) is a new file.
fn initramfs_key(archive: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in archive {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Installs what is missing (as root on Debian; otherwise fails with the `sudo apt-get install`
/// line), finds the newest kernel, extracts its vmlinux and builds the initramfs (with the Xen
/// frontend modules when `with_modules`), reusing `target/linux-guest/` when it is up to date.
pub fn prepare(paths: &Paths, with_modules: bool) -> Result<Prepared> {
    prepare_with(paths, with_modules, false)
}

/// [`prepare`], and with `io_tools` the `bench linux-io` variant of the initramfs (modules too).
pub fn prepare_with(paths: &Paths, with_modules: bool, io_tools: bool) -> Result<Prepared> {
    packages::ensure(PACKAGES).context("the PVH Linux guest needs these packages")?;
    if io_tools {
        packages::ensure(&[packages::FIO, packages::IPERF3])
            .context("the Linux guest of `cargo xtask bench linux-io` carries fio and iperf3")?;
    }
    let with_modules = with_modules || io_tools;
    let bzimage = find_kernel()?;
    let version = kernel_version(&bzimage)?.to_owned();
    let dir = cache_dir(paths, &bzimage)?;
    let vmlinux = dir.join(VMLINUX_FILE);
    let mut cached = true;
    let pvh_entry = match std::fs::read(&vmlinux).ok().and_then(|elf| vmlinux::pvh_entry(&elf).ok()) {
        Some(entry) => entry,
        None => {
            cached = false;
            crate::step(format!("extracting the ELF vmlinux from {}", bzimage.display()));
            let raw = std::fs::read(&bzimage).with_context(|| format!("reading {}", bzimage.display()))?;
            let elf = extract_vmlinux(&raw).and_then(|elf| trim_zero_tails(&elf));
            let elf = elf.with_context(|| format!("{}", bzimage.display()))?;
            write_atomically(&vmlinux, &elf)?;
            vmlinux::pvh_entry(&elf)?
        }
    };
    let busybox = std::fs::read(initramfs::BUSYBOX).with_context(|| format!("reading {}", initramfs::BUSYBOX))?;
    let extras = if with_modules {
        let (mut modules, mut programs) = (initramfs::MODULES.to_vec(), initramfs::PROGRAMS.to_vec());
        if io_tools {
            modules.extend(initramfs::IO_MODULES);
            programs.extend(initramfs::IO_PROGRAMS);
        }
        initramfs::Extras {
            modules: initramfs::read_modules(Path::new("/lib/modules"), &version, &modules)?,
            files: initramfs::read_programs(&programs)?,
        }
    } else {
        initramfs::Extras::default()
    };
    let archive = build_initramfs(&busybox, &extras)?;
    let initramfs = dir.join(format!("initramfs-{}.cpio.gz", initramfs_key(&archive)));
    if !initramfs.is_file() {
        cached = false;
        crate::step(format!(
            "building the initramfs (busybox, /init{})",
            match (with_modules, io_tools) {
                (_, true) => ", modules, mke2fs, fio, iperf3",
                (true, false) => ", modules, mke2fs",
                (false, false) => "",
            }
        ));
        write_atomically(&initramfs, &initramfs::gzip(&archive)?)?;
    }
    Ok(Prepared { bzimage, version, vmlinux, pvh_entry, initramfs, with_modules, io_tools, cached })
}

/// The bytes of a prepared image by its bundle name ([`KERNEL_IMAGE`], or the initramfs the guest
/// was prepared with: [`RAMDISK_IO_IMAGE`] when `io_tools`, [`RAMDISK_IMAGE`] otherwise).
pub fn image_bytes(prepared: &Prepared, name: &str) -> Result<Vec<u8>> {
    let file = match name {
        KERNEL_IMAGE => &prepared.vmlinux,
        RAMDISK_IMAGE if !prepared.io_tools => &prepared.initramfs,
        RAMDISK_IO_IMAGE if prepared.io_tools => &prepared.initramfs,
        RAMDISK_IMAGE | RAMDISK_IO_IMAGE => {
            bail!("{name:?} asked of a Linux guest prepared with io_tools = {}", prepared.io_tools)
        }
        other => {
            bail!("{other:?} is not an image of the Linux guest ({KERNEL_IMAGE}, {RAMDISK_IMAGE}, {RAMDISK_IO_IMAGE})")
        }
    };
    std::fs::read(file).with_context(|| format!("reading {}", file.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newest_kernel_by_version() {
        let dir = std::env::temp_dir().join(format!("xtask-boot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(newest_kernel(&dir).unwrap(), None, "an empty /boot: find_kernel says what to install");
        for k in ["vmlinuz-6.1.0-9-amd64", "vmlinuz-6.1.0-28-amd64", "config-6.1.0-30-amd64"] {
            std::fs::write(dir.join(k), b"").unwrap();
        }
        assert_eq!(newest_kernel(&dir).unwrap(), Some(dir.join("vmlinuz-6.1.0-28-amd64")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn kernel_versions_come_from_the_file_name() {
        assert_eq!(kernel_version(Path::new("/boot/vmlinuz-6.1.0-57-amd64")).unwrap(), "6.1.0-57-amd64");
        let e = format!("{:#}", kernel_version(Path::new("/boot/bzImage")).unwrap_err());
        assert!(e.contains("vmlinuz-<version>"), "{e}");
    }

    #[test]
    fn the_cache_key_follows_the_kernel_file_and_the_initramfs_inputs() {
        let root = std::env::temp_dir().join(format!("xtask-lgcache-{}", std::process::id()));
        std::fs::create_dir_all(&root).unwrap();
        let kernel = root.join("vmlinuz-6.1.0-9-amd64");
        std::fs::write(&kernel, b"12345").unwrap();
        let paths = Paths { root: root.clone(), target: root.join("target") };
        let dir = cache_dir(&paths, &kernel).unwrap();
        let name = dir.file_name().unwrap().to_str().unwrap().to_owned();
        assert!(dir.starts_with(root.join("target/linux-guest")), "{dir:?}");
        assert!(name.starts_with("vmlinuz-6.1.0-9-amd64-5-"), "{name}");
        std::fs::write(&kernel, b"123456").unwrap();
        assert_ne!(cache_dir(&paths, &kernel).unwrap(), dir, "a changed kernel gets a new directory");
        assert_eq!(initramfs_key(b"070701a"), initramfs_key(b"070701a"));
        assert_ne!(initramfs_key(b"070701a"), initramfs_key(b"070701b"), "any content change is a new file");
        assert_ne!(initramfs_key(b"070701a"), initramfs_key(b"070701a\0"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_guest_needs_the_kernel_a_static_busybox_and_e2fsprogs() {
        assert!(PACKAGES.iter().any(|p| p.name == "linux-image-amd64"));
        assert!(PACKAGES.iter().any(|p| p.name == "busybox-static"));
        assert!(PACKAGES.iter().any(|p| p.name == "e2fsprogs"));
        for name in [KERNEL_IMAGE, RAMDISK_IMAGE, RAMDISK_IO_IMAGE] {
            assert!(name.len() <= hv_bundle::MAX_NAME_LEN, "{name}");
        }
    }
}
