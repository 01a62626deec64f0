//! The PVH Linux guest's initramfs: a gzip-compressed newc cpio with Debian's static busybox, the
//! applet links the `/init` script ([`INIT_SCRIPT`]) uses, and optionally the Xen block and
//! network frontend modules of the kernel.

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::cpio::{self, Entry};
use crate::packages;

/// The `/init` script (see its header for the `guest.mode=` and `guest.modules=` words).
pub const INIT_SCRIPT: &str = include_str!("init.sh");

/// Where Debian's `busybox-static` installs busybox.
pub const BUSYBOX: &str = "/bin/busybox";

/// The applets linked to busybox in `/bin`: those `/init` runs plus a few for `guest.mode=shell`
/// (which also runs `busybox --install -s /bin` for the rest).
pub const APPLETS: &[&str] = &[
    "sh", "mount", "umount", "uname", "dmesg", "grep", "head", "cat", "insmod", "lsmod", "setsid", "cttyhack", "sleep",
    "poweroff", "reboot", "ls", "ps", "free",
];

/// The frontend modules `guest.modules=1` loads, relative to `/lib/modules/<version>/kernel/`.
pub const MODULES: &[&str] = &["drivers/block/xen-blkfront.ko", "drivers/net/xen-netfront.ko"];

/// A kernel module for the initramfs: its file name (`xen-blkfront.ko`) and uncompressed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub data: Vec<u8>,
}

/// Reads [`MODULES`] of kernel `version` from `modules_root` (`/lib/modules`). Debian 12 ships
/// them as plain `.ko`; a `.ko.xz` (newer Debian) is decompressed here, since busybox's `insmod`
/// loads only what it is given verbatim.
pub fn read_modules(modules_root: &Path, version: &str) -> Result<Vec<Module>> {
    let dir = modules_root.join(version).join("kernel");
    let mut out = Vec::new();
    for m in MODULES {
        let plain = dir.join(m);
        let xz = dir.join(format!("{m}.xz"));
        let data = if let Ok(data) = std::fs::read(&plain) {
            data
        } else if let Ok(compressed) = std::fs::read(&xz) {
            let mut data = Vec::new();
            liblzma::read::XzDecoder::new(&compressed[..])
                .read_to_end(&mut data)
                .with_context(|| format!("decompressing {}", xz.display()))?;
            data
        } else {
            bail!(
                "neither {} nor {} exists (the Xen frontend modules of kernel {version})\n  fix: {}",
                plain.display(),
                xz.display(),
                packages::install_command(&[&format!("linux-image-{version}")])
            );
        };
        if !data.starts_with(b"\x7fELF") {
            bail!("{} is not an ELF kernel module", plain.display());
        }
        let name = Path::new(m).file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        out.push(Module { name, data });
    }
    Ok(out)
}

/// Checks that `busybox` is a static executable (Debian's `busybox` package installs a dynamic one
/// at the same path, which cannot run in an initramfs without a libc).
pub fn check_static(busybox: &[u8]) -> Result<()> {
    let fix = packages::install_command(&[packages::BUSYBOX_STATIC.name]);
    if !busybox.starts_with(b"\x7fELF") || busybox.get(4) != Some(&2) {
        bail!("{BUSYBOX} is not an ELF64 executable\n  fix: {fix}");
    }
    let u = |off: usize, n: usize| -> Option<u64> {
        let b = busybox.get(off..off + n)?;
        Some(b.iter().rev().fold(0u64, |acc, &x| acc << 8 | x as u64))
    };
    let (phoff, phentsize, phnum) = (u(0x20, 8), u(0x36, 2), u(0x38, 2));
    let (Some(phoff), Some(phentsize), Some(phnum)) = (phoff, phentsize, phnum) else {
        bail!("{BUSYBOX}: ELF header truncated\n  fix: {fix}");
    };
    const PT_INTERP: u64 = 3;
    for i in 0..phnum {
        if u((phoff + i * phentsize) as usize, 4) == Some(PT_INTERP) {
            bail!(
                "{BUSYBOX} is dynamically linked (the `busybox` package); the initramfs needs busybox-static\n  fix: {fix}"
            );
        }
    }
    Ok(())
}

/// The gzip-compressed newc archive: `/bin/busybox` and its [`APPLETS`] links, `/init`
/// ([`INIT_SCRIPT`]), `/dev/console` (the kernel opens it for init before devtmpfs is mounted),
/// `/proc`, `/sys`, `/tmp`, and `modules` under `/lib/modules/`.
pub fn build_initramfs(busybox: &[u8], modules: &[Module]) -> Result<Vec<u8>> {
    check_static(busybox)?;
    let mut entries =
        vec![Entry::Dir { path: "bin", mode: 0o755 }, Entry::File { path: "bin/busybox", mode: 0o755, data: busybox }];
    let links: Vec<String> = APPLETS.iter().map(|a| format!("bin/{a}")).collect();
    entries.extend(links.iter().map(|path| Entry::Symlink { path, target: "busybox" }));
    entries.extend([
        Entry::Dir { path: "dev", mode: 0o755 },
        Entry::CharDev { path: "dev/console", mode: 0o600, major: 5, minor: 1 },
        Entry::Dir { path: "proc", mode: 0o755 },
        Entry::Dir { path: "sys", mode: 0o755 },
        Entry::Dir { path: "tmp", mode: 0o1777 },
        Entry::Dir { path: "lib", mode: 0o755 },
        Entry::Dir { path: "lib/modules", mode: 0o755 },
        Entry::File { path: "init", mode: 0o755, data: INIT_SCRIPT.as_bytes() },
    ]);
    let module_paths: Vec<String> = modules.iter().map(|m| format!("lib/modules/{}", m.name)).collect();
    for (m, path) in modules.iter().zip(&module_paths) {
        entries.push(Entry::File { path, mode: 0o644, data: &m.data });
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&cpio::newc(&entries))?;
    Ok(gz.finish()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The members of a newc archive: (name, mode, data).
    fn members(archive: &[u8]) -> Vec<(String, u32, Vec<u8>)> {
        let field = |rec: &[u8], i: usize| {
            u32::from_str_radix(std::str::from_utf8(&rec[6 + 8 * i..14 + 8 * i]).unwrap(), 16).unwrap()
        };
        let mut out = Vec::new();
        let mut off = 0;
        while off < archive.len() {
            let rec = &archive[off..];
            assert_eq!(&rec[..6], b"070701");
            let (mode, size, namesize) = (field(rec, 1), field(rec, 6) as usize, field(rec, 11) as usize);
            let name = std::str::from_utf8(&rec[110..110 + namesize - 1]).unwrap().to_owned();
            let data_off = (110 + namesize).next_multiple_of(4);
            out.push((name, mode, rec[data_off..data_off + size].to_vec()));
            off += (data_off + size).next_multiple_of(4);
        }
        out
    }

    /// A fake static busybox: an ELF64 header with one PT_LOAD, or a PT_INTERP when `dynamic`.
    fn fake_busybox(dynamic: bool) -> Vec<u8> {
        let mut b = vec![0u8; 64 + 56];
        b[..4].copy_from_slice(b"\x7fELF");
        b[4] = 2;
        b[5] = 1;
        b[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        b[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        b[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes());
        b[64..68].copy_from_slice(&(if dynamic { 3u32 } else { 1 }).to_le_bytes());
        b
    }

    #[test]
    fn the_archive_holds_busybox_init_links_dirs_and_modules() {
        let busybox = fake_busybox(false);
        let modules = vec![Module { name: "xen-blkfront.ko".into(), data: b"\x7fELFblk".to_vec() }];
        let gz = build_initramfs(&busybox, &modules).unwrap();
        let mut cpio = Vec::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_end(&mut cpio).unwrap();
        let m = members(&cpio);
        let get = |n: &str| m.iter().find(|(name, ..)| name == n).unwrap_or_else(|| panic!("no {n} in {m:?}"));
        assert_eq!(get("bin/busybox").2, busybox);
        assert_eq!(get("bin/sh").1 & 0o170000, 0o120000, "bin/sh is a symlink");
        assert_eq!(get("bin/sh").2, b"busybox");
        assert_eq!(get("init").2, INIT_SCRIPT.as_bytes());
        assert_eq!(get("init").1, 0o100755);
        assert_eq!(get("dev/console").1, 0o020600);
        for d in ["proc", "sys", "dev", "tmp", "lib/modules"] {
            assert_eq!(get(d).1 & 0o170000, 0o040000, "{d} is a directory");
        }
        assert_eq!(get("lib/modules/xen-blkfront.ko").2, b"\x7fELFblk");
        assert_eq!(m.last().unwrap().0, "TRAILER!!!");
        let without = build_initramfs(&busybox, &[]).unwrap();
        assert!(without.len() < gz.len() + 64);
    }

    #[test]
    fn the_init_script_handles_every_mode_and_uses_only_linked_applets() {
        assert!(INIT_SCRIPT.starts_with("#!/bin/sh\n"));
        for needle in [
            "linux-guest: init started",
            "linux-guest: powering off",
            "guest.mode=",
            "guest.modules=",
            "guest.idle_secs=",
            "idle)",
            "poweroff -f",
            "echo c > /proc/sysrq-trigger",
            "echo 1 > /proc/sys/kernel/sysrq",
            "mount -t devtmpfs",
            "uname -r",
            "/proc/interrupts",
        ] {
            assert!(INIT_SCRIPT.contains(needle), "init.sh lacks {needle:?}");
        }
        for mode in ["panic)", "shell)", "stay)", "poweroff)"] {
            assert!(INIT_SCRIPT.contains(mode), "init.sh lacks the {mode} case");
        }
        for applet in ["mount", "uname", "dmesg", "grep", "head", "cat", "insmod", "setsid", "cttyhack", "sleep"] {
            assert!(APPLETS.contains(&applet), "{applet} is used by init.sh but not linked");
        }
    }

    /// `sh -n` parses the script where a shell exists (every Debian host has one).
    #[test]
    fn the_init_script_parses() {
        let sh = packages::find_in_path("sh").expect("a POSIX sh on PATH");
        let dir = std::env::temp_dir().join(format!("xtask-init-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("init.sh");
        std::fs::write(&file, INIT_SCRIPT).unwrap();
        let out = std::process::Command::new(sh).arg("-n").arg(&file).output().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    #[test]
    fn a_dynamic_busybox_is_refused_with_the_fix() {
        let e = format!("{:#}", build_initramfs(&fake_busybox(true), &[]).unwrap_err());
        assert!(e.contains("dynamically linked") && e.contains("apt-get install -y busybox-static"), "{e}");
        let e = format!("{:#}", check_static(b"#!/bin/sh\n").unwrap_err());
        assert!(e.contains("not an ELF64") && e.contains("busybox-static"), "{e}");
    }

    #[test]
    fn modules_are_read_plain_or_decompressed_from_xz() {
        let root = std::env::temp_dir().join(format!("xtask-modules-{}", std::process::id()));
        let kernel = root.join("6.1.0-9-amd64/kernel");
        std::fs::create_dir_all(kernel.join("drivers/block")).unwrap();
        std::fs::create_dir_all(kernel.join("drivers/net")).unwrap();
        std::fs::write(kernel.join("drivers/block/xen-blkfront.ko"), b"\x7fELFblk").unwrap();
        let e = format!("{:#}", read_modules(&root, "6.1.0-9-amd64").unwrap_err());
        assert!(e.contains("xen-netfront.ko") && e.contains("linux-image-6.1.0-9-amd64"), "{e}");
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(b"\x7fELFnet").unwrap();
        std::fs::write(kernel.join("drivers/net/xen-netfront.ko.xz"), xz.finish().unwrap()).unwrap();
        let m = read_modules(&root, "6.1.0-9-amd64").unwrap();
        assert_eq!(
            m,
            [
                Module { name: "xen-blkfront.ko".into(), data: b"\x7fELFblk".to_vec() },
                Module { name: "xen-netfront.ko".into(), data: b"\x7fELFnet".to_vec() },
            ]
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
