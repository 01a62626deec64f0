//! The Debian packages the host tooling needs. Missing ones are installed with `apt-get` when we
//! run as root on Debian; otherwise we stop with the exact `sudo apt-get install` to run.

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

use anyhow::{Result, bail};

/// How to tell that a package is installed.
#[derive(Debug, Clone, Copy)]
pub enum Probe {
    /// An executable on `PATH`.
    Command(&'static str),
    /// A file that the package ships.
    File(&'static str),
    /// Some file in a directory whose name starts with the prefix.
    FileWithPrefix(&'static str, &'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct Package {
    pub name: &'static str,
    pub probe: Probe,
    pub why: &'static str,
}

pub const QEMU: Package =
    Package { name: "qemu-system-x86", probe: Probe::Command("qemu-system-x86_64"), why: "boots the hypervisor" };
pub const GRUB_COMMON: Package =
    Package { name: "grub-common", probe: Probe::Command("grub-mkrescue"), why: "grub-mkrescue builds the ISO" };
pub const GRUB_PC_BIN: Package = Package {
    name: "grub-pc-bin",
    probe: Probe::File("/usr/lib/grub/i386-pc/moddep.lst"),
    why: "the BIOS GRUB modules for the ISO",
};
pub const GRUB_EFI_AMD64_BIN: Package = Package {
    name: "grub-efi-amd64-bin",
    probe: Probe::File("/usr/lib/grub/x86_64-efi/moddep.lst"),
    why: "the UEFI GRUB modules for the ISO (it boots through BIOS and UEFI)",
};
pub const OVMF: Package =
    Package { name: "ovmf", probe: Probe::File(crate::qemu::OVMF_FD), why: "UEFI firmware for QEMU (--firmware uefi)" };
pub const XORRISO: Package =
    Package { name: "xorriso", probe: Probe::Command("xorriso"), why: "grub-mkrescue writes the ISO with it" };
pub const MTOOLS: Package =
    Package { name: "mtools", probe: Probe::Command("mformat"), why: "grub-mkrescue's EFI image tools" };
pub const LIBXEN_DEV: Package = Package {
    name: "libxen-dev",
    probe: Probe::File("/usr/include/xen/io/ring.h"),
    why: "Xen's public headers, to check ring layouts byte for byte",
};
pub const LINUX_IMAGE: Package = Package {
    name: "linux-image-amd64",
    probe: Probe::FileWithPrefix("/boot", "vmlinuz-"),
    why: "the Linux reference guest of the benchmark",
};
pub const BUSYBOX_STATIC: Package = Package {
    name: "busybox-static",
    probe: Probe::File("/bin/busybox"),
    why: "the shell and tools of the PVH Linux guest's initramfs (a static binary: no libc in there)",
};
pub const E2FSPROGS: Package = Package {
    name: "e2fsprogs",
    probe: Probe::File("/sbin/mke2fs"),
    why: "mke2fs for the PVH Linux guest's initramfs; e2fsck and debugfs check its disk from the host",
};
pub const GCC: Package = Package { name: "gcc", probe: Probe::Command("gcc"), why: "builds the Linux reference init" };
pub const LIBC_DEV: Package = Package {
    name: "libc6-dev",
    probe: Probe::File("/usr/lib/x86_64-linux-gnu/libc.a"),
    why: "static linking of the Linux reference init",
};

pub const CURL: Package =
    Package { name: "curl", probe: Probe::Command("curl"), why: "fetches pages from DomUs through QEMU's hostfwd" };
pub const TSHARK: Package =
    Package { name: "tshark", probe: Probe::Command("tshark"), why: "parses the pcap streams netback captures" };
pub const WRK: Package = Package {
    name: "wrk",
    probe: Probe::Command("wrk"),
    why: "the HTTP load generator of `cargo xtask bench net` and `bench linux-io`",
};
pub const FIO: Package = Package {
    name: "fio",
    probe: Probe::File("/usr/bin/fio"),
    why: "the disk benchmark the Linux guest of `cargo xtask bench linux-io` runs (carried with its libraries)",
};
pub const IPERF3: Package = Package {
    name: "iperf3",
    probe: Probe::File("/usr/bin/iperf3"),
    why: "TCP throughput of `cargo xtask bench linux-io`: the server in the Linux guest, the client on the host",
};

/// Everything the ISO needs.
pub const ISO_TOOLS: &[Package] = &[GRUB_COMMON, GRUB_PC_BIN, GRUB_EFI_AMD64_BIN, XORRISO, MTOOLS];

pub fn is_installed(p: &Package) -> bool {
    match p.probe {
        Probe::Command(c) => find_in_path(c).is_some(),
        Probe::File(f) => Path::new(f).exists(),
        Probe::FileWithPrefix(dir, prefix) => std::fs::read_dir(dir)
            .map(|rd| rd.flatten().any(|e| e.file_name().to_string_lossy().starts_with(prefix)))
            .unwrap_or(false),
    }
}

pub fn find_in_path(cmd: &str) -> Option<std::path::PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?).map(|d| d.join(cmd)).find(|p| p.is_file())
}

/// True when the effective user is root (read from /proc, no libc needed).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(2) == Some("0")))
        .unwrap_or(false)
}

fn is_debian() -> bool {
    Path::new("/etc/debian_version").exists() && find_in_path("apt-get").is_some()
}

/// The command that installs `names` (what we tell a user who is not root).
pub fn install_command(names: &[&str]) -> String {
    format!("sudo apt-get install -y {}", names.join(" "))
}

static APT: Mutex<bool> = Mutex::new(false); // serialises apt; true once `apt-get update` ran

/// Makes sure every package is installed (installing missing ones as root on Debian).
pub fn ensure(packages: &[Package]) -> Result<()> {
    let missing: Vec<&Package> = packages.iter().filter(|p| !is_installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|p| p.name).collect();
    let reasons: Vec<String> = missing.iter().map(|p| format!("{} ({})", p.name, p.why)).collect();
    if !(is_root() && is_debian()) {
        bail!("missing system packages: {}\n  fix: {}", reasons.join(", "), install_command(&names));
    }
    let mut updated = APT.lock().unwrap_or_else(|e| e.into_inner());
    // Another thread may have installed them while we waited for the lock.
    let missing: Vec<&str> = missing.iter().filter(|p| !is_installed(p)).map(|p| p.name).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !*updated {
        crate::step("apt-get update");
        apt(&["update"])?;
        *updated = true;
    }
    crate::step(format!("apt-get install -y {}", missing.join(" ")));
    // With recommends: qemu-system-x86 recommends ipxe-qemu, whose option ROMs virtio NICs need.
    let mut args = vec!["install", "-y"];
    args.extend(&missing);
    apt(&args)?;
    if let Some(p) = packages.iter().find(|p| !is_installed(p)) {
        bail!("apt-get installed {} but {:?} is still missing; check the apt output above", p.name, p.probe);
    }
    Ok(())
}

fn apt(args: &[&str]) -> Result<()> {
    let status = Command::new("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive").status()?;
    if !status.success() {
        bail!("apt-get {} failed ({status})", args.join(" "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_install_command_names_every_package() {
        assert_eq!(install_command(&["linux-image-amd64", "gcc"]), "sudo apt-get install -y linux-image-amd64 gcc");
        assert!(matches!(LINUX_IMAGE.probe, Probe::FileWithPrefix("/boot", "vmlinuz-")));
    }
}
