//! The PVH Linux guest's initramfs: a newc cpio with Debian's static busybox, the applet links
//! the `/init` script ([`INIT_SCRIPT`]) uses, and optionally the kernel modules `guest.modules=1`
//! loads (the Xen block and network frontends, ext4 and what it needs) and host programs with
//! their shared libraries ([`PROGRAMS`]: `mke2fs`, which busybox lacks for ext4).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

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
    "poweroff", "reboot", "ls", "ps", "free", "usleep", "mkdir", "seq", "awk", "find", "sed", "sort", "xargs",
    "md5sum", "sync", "cp", "ip", "ping", "httpd", "tail", "dd", "nc", "wc", "tee", "mkfifo", "cut", "date", "df",
];

/// The modules `guest.modules=1` asks for, as `/lib/modules/<version>/modules.dep` names them:
/// the Xen frontends, ext4, and the crc32c driver ext4 asks the crypto API for (by name, not by
/// symbol, so modules.dep does not list it). Their dependencies come from modules.dep.
pub const MODULES: &[&str] = &[
    "kernel/drivers/block/xen-blkfront.ko",
    "kernel/drivers/net/xen-netfront.ko",
    "kernel/crypto/crc32c_generic.ko",
    "kernel/fs/ext4/ext4.ko",
];

/// The modules of the `bench linux-io` variant besides [`MODULES`]: virtio-blk and virtio-net on
/// PCI, for the same kernel and initramfs booted directly by QEMU (the reference). In a DomU they
/// load and find no device.
pub const IO_MODULES: &[&str] =
    &["kernel/drivers/virtio/virtio_pci.ko", "kernel/drivers/block/virtio_blk.ko", "kernel/drivers/net/virtio_net.ko"];

/// Where `/init` finds the module file names in load order (dependencies first).
pub const MODULE_ORDER: &str = "lib/modules/modules.order";

/// Host programs carried with their shared libraries and dynamic loader, each at its host path,
/// with the package that installs each.
pub const PROGRAMS: &[(&str, packages::Package)] = &[("/sbin/mke2fs", packages::E2FSPROGS)];

/// The programs of the `bench linux-io` variant besides [`PROGRAMS`]. fio's libraries (its rbd,
/// gluster, RDMA and pmem engines are linked in) come to about 85 MB, hence a variant of its own.
pub const IO_PROGRAMS: &[(&str, packages::Package)] =
    &[("/usr/bin/fio", packages::FIO), ("/usr/bin/iperf3", packages::IPERF3)];

/// A kernel module for the initramfs: its file name (`xen-blkfront.ko`) and uncompressed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: String,
    pub data: Vec<u8>,
}

/// A host file for the initramfs at the same path (without the leading `/`), executable or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFile {
    pub path: String,
    pub data: Vec<u8>,
}

/// Everything the initramfs carries besides busybox and `/init`: modules in load order and
/// host files.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extras {
    pub modules: Vec<Module>,
    pub files: Vec<HostFile>,
}

/// [`MODULES`] and their dependencies in load order (every module after those it depends on),
/// as paths relative to `/lib/modules/<version>/`, from the text of its `modules.dep`.
pub fn load_order(modules_dep: &str, wanted: &[&str]) -> Result<Vec<String>> {
    // modules.dep names compressed modules with their suffix (`ext4.ko.xz`); we match plain names.
    let plain = |m: &str| m.strip_suffix(".xz").unwrap_or(m).to_owned();
    let mut deps = std::collections::BTreeMap::new();
    for line in modules_dep.lines() {
        if let Some((module, rest)) = line.split_once(':') {
            deps.insert(plain(module.trim()), rest.split_whitespace().map(plain).collect::<Vec<_>>());
        }
    }
    fn visit(
        m: &str,
        deps: &std::collections::BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        out: &mut Vec<String>,
    ) -> Result<()> {
        if out.iter().any(|o| o == m) {
            return Ok(());
        }
        if path.iter().any(|p| p == m) {
            bail!("modules.dep has a dependency cycle: {} -> {m}", path.join(" -> "));
        }
        let Some(ds) = deps.get(m) else { bail!("modules.dep does not list {m}") };
        path.push(m.to_owned());
        for d in ds {
            visit(d, deps, path, out)?;
        }
        path.pop();
        out.push(m.to_owned());
        Ok(())
    }
    let mut out = Vec::new();
    for m in wanted {
        visit(m, &deps, &mut Vec::new(), &mut out)?;
    }
    Ok(out)
}

/// Reads `wanted` (e.g. [`MODULES`]) of kernel `version` from `modules_root` (`/lib/modules`) with
/// their dependencies, in load order. Debian 12 ships them as plain `.ko`; a `.ko.xz` (newer Debian)
/// is decompressed here, since busybox's `insmod` loads only what it is given verbatim.
pub fn read_modules(modules_root: &Path, version: &str, wanted: &[&str]) -> Result<Vec<Module>> {
    let dir = modules_root.join(version);
    let fix = packages::install_command(&[&format!("linux-image-{version}")]);
    let dep_file = dir.join("modules.dep");
    let dep_text = std::fs::read_to_string(&dep_file).with_context(|| {
        format!("reading {} (the module dependencies of kernel {version})\n  fix: {fix}", dep_file.display())
    })?;
    let order = load_order(&dep_text, wanted).with_context(|| format!("{}\n  fix: {fix}", dep_file.display()))?;
    let mut out = Vec::new();
    for m in &order {
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
                "neither {} nor {} exists (a module of kernel {version} the guest loads)\n  fix: {fix}",
                plain.display(),
                xz.display(),
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

/// The absolute paths of the shared libraries and the dynamic loader in `ldd`'s output, in order
/// (`linux-vdso.so.1`, which the kernel provides, is left out). A library `ldd` could not find
/// is an error naming it.
pub fn ldd_paths(ldd_output: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for line in ldd_output.lines().map(str::trim) {
        let target = match line.split_once("=>") {
            Some((lib, rest)) => {
                let rest = rest.trim();
                if rest.starts_with("not found") {
                    bail!("the shared library {} is not installed", lib.trim());
                }
                rest
            }
            None => line,
        };
        if let Some(path) = target.split_whitespace().next().filter(|p| p.starts_with('/')) {
            out.push(path.to_owned());
        }
    }
    Ok(out)
}

/// Each of `programs` (absolute host paths) and what `ldd` says it loads, read from the host
/// (through symlinks) for the same paths in the initramfs. A missing one names its package.
pub fn read_programs(programs: &[(&str, packages::Package)]) -> Result<Vec<HostFile>> {
    let mut paths: Vec<String> = Vec::new();
    for (program, package) in programs {
        let fix = packages::install_command(&[package.name]);
        if !Path::new(program).is_file() {
            bail!("{program} does not exist ({})\n  fix: {fix}", package.why);
        }
        let out = Command::new("ldd")
            .arg(program)
            .output()
            .with_context(|| format!("running ldd {program}\n  fix: {}", packages::install_command(&["libc-bin"])))?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("ldd {program} failed ({}): {}{}", out.status, text, String::from_utf8_lossy(&out.stderr));
        }
        let libs = ldd_paths(&text).with_context(|| format!("{program} cannot run\n  fix: {fix}"))?;
        for p in std::iter::once((*program).to_owned()).chain(libs) {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
    }
    paths
        .into_iter()
        .map(|p| {
            let data = std::fs::read(&p).with_context(|| format!("reading {p}"))?;
            Ok(HostFile { path: p.trim_start_matches('/').to_owned(), data })
        })
        .collect()
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

/// The newc archive (uncompressed; see [`gzip`]): `/bin/busybox` and its [`APPLETS`] links,
/// `/init` ([`INIT_SCRIPT`]), `/dev/console` (the kernel opens it for init before devtmpfs is
/// mounted), `/proc`, `/sys`, `/tmp`, `/mnt`, the modules under `/lib/modules/` with
/// [`MODULE_ORDER`], and the host files at their paths (their directories created first: the
/// kernel's unpacker does not make missing parents).
pub fn build_initramfs(busybox: &[u8], extras: &Extras) -> Result<Vec<u8>> {
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
        Entry::Dir { path: "mnt", mode: 0o755 },
        Entry::Dir { path: "lib", mode: 0o755 },
        Entry::Dir { path: "lib/modules", mode: 0o755 },
        Entry::File { path: "init", mode: 0o755, data: INIT_SCRIPT.as_bytes() },
    ]);
    let module_paths: Vec<String> = extras.modules.iter().map(|m| format!("lib/modules/{}", m.name)).collect();
    for (m, path) in extras.modules.iter().zip(&module_paths) {
        entries.push(Entry::File { path, mode: 0o644, data: &m.data });
    }
    let order: String = extras.modules.iter().map(|m| format!("{}\n", m.name)).collect();
    entries.push(Entry::File { path: MODULE_ORDER, mode: 0o644, data: order.as_bytes() });
    let present: BTreeSet<&str> = ["bin", "dev", "proc", "sys", "tmp", "mnt", "lib", "lib/modules"].into();
    let dirs: BTreeSet<&str> = extras
        .files
        .iter()
        .flat_map(|f| Path::new(&f.path).ancestors().skip(1).filter_map(|a| a.to_str()).filter(|a| !a.is_empty()))
        .filter(|d| !present.contains(d))
        .collect();
    // BTreeSet order puts every parent before its children.
    entries.extend(dirs.iter().map(|path| Entry::Dir { path, mode: 0o755 }));
    for f in &extras.files {
        entries.push(Entry::File { path: &f.path, mode: 0o755, data: &f.data });
    }
    Ok(cpio::newc(&entries))
}

/// gzip at the best compression (what the kernel unpacks).
pub fn gzip(archive: &[u8]) -> Result<Vec<u8>> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(archive)?;
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
    fn the_archive_holds_busybox_init_links_dirs_modules_and_host_files() {
        let busybox = fake_busybox(false);
        let extras = Extras {
            modules: vec![
                Module { name: "jbd2.ko".into(), data: b"\x7fELFjbd2".to_vec() },
                Module { name: "ext4.ko".into(), data: b"\x7fELFext4".to_vec() },
            ],
            files: vec![
                HostFile { path: "sbin/mke2fs".into(), data: b"mkfs".to_vec() },
                HostFile { path: "lib/x86_64-linux-gnu/libc.so.6".into(), data: b"libc".to_vec() },
            ],
        };
        let cpio = build_initramfs(&busybox, &extras).unwrap();
        let m = members(&cpio);
        let get = |n: &str| m.iter().find(|(name, ..)| name == n).unwrap_or_else(|| panic!("no {n} in {m:?}"));
        let index = |n: &str| m.iter().position(|(name, ..)| name == n).unwrap_or_else(|| panic!("no {n}"));
        assert_eq!(get("bin/busybox").2, busybox);
        assert_eq!(get("bin/sh").1 & 0o170000, 0o120000, "bin/sh is a symlink");
        assert_eq!(get("bin/sh").2, b"busybox");
        assert_eq!(get("init").2, INIT_SCRIPT.as_bytes());
        assert_eq!(get("init").1, 0o100755);
        assert_eq!(get("dev/console").1, 0o020600);
        for d in ["proc", "sys", "dev", "tmp", "mnt", "lib/modules", "sbin", "lib/x86_64-linux-gnu"] {
            assert_eq!(get(d).1 & 0o170000, 0o040000, "{d} is a directory");
        }
        assert_eq!(m.iter().filter(|(n, ..)| n == "lib").count(), 1, "lib/ once, though a host file is under it");
        assert!(index("lib") < index("lib/x86_64-linux-gnu"));
        assert!(index("lib/x86_64-linux-gnu") < index("lib/x86_64-linux-gnu/libc.so.6"), "parents first");
        assert!(index("sbin") < index("sbin/mke2fs"));
        assert_eq!(get("lib/modules/ext4.ko").2, b"\x7fELFext4");
        assert_eq!(get(MODULE_ORDER).2, b"jbd2.ko\next4.ko\n", "load order kept");
        assert_eq!(get("sbin/mke2fs").2, b"mkfs");
        assert_eq!(get("sbin/mke2fs").1, 0o100755);
        assert_eq!(m.last().unwrap().0, "TRAILER!!!");
        let without = build_initramfs(&busybox, &Extras::default()).unwrap();
        assert_eq!(members(&without).iter().find(|(n, ..)| n == MODULE_ORDER).unwrap().2, b"");
        assert!(without.len() < cpio.len());
        let mut back = Vec::new();
        flate2::read::GzDecoder::new(&gzip(&cpio).unwrap()[..]).read_to_end(&mut back).unwrap();
        assert_eq!(back, cpio);
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
        for mode in [
            "panic)",
            "shell)",
            "stay)",
            "poweroff)",
            "disk-write)",
            "disk-verify)",
            "net)",
            "stream)",
            "demo)",
            "blk-loop)",
            "idle)",
        ] {
            assert!(INIT_SCRIPT.contains(mode), "init.sh lacks the {mode} case");
        }
        for applet in [
            "mount", "umount", "uname", "dmesg", "grep", "head", "cat", "insmod", "setsid", "cttyhack", "sleep",
            "usleep", "mkdir", "seq", "awk", "find", "sed", "sort", "xargs", "md5sum", "sync", "cp", "ip", "ping",
            "httpd", "tail", "dd",
        ] {
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
        let e = format!("{:#}", build_initramfs(&fake_busybox(true), &Extras::default()).unwrap_err());
        assert!(e.contains("dynamically linked") && e.contains("apt-get install -y busybox-static"), "{e}");
        let e = format!("{:#}", check_static(b"#!/bin/sh\n").unwrap_err());
        assert!(e.contains("not an ELF64") && e.contains("busybox-static"), "{e}");
    }

    #[test]
    fn modules_come_in_dependency_order_plain_or_decompressed_from_xz() {
        let root = std::env::temp_dir().join(format!("xtask-modules-{}", std::process::id()));
        let dir = root.join("6.1.0-9-amd64");
        let e = format!("{:#}", read_modules(&root, "6.1.0-9-amd64", MODULES).unwrap_err());
        assert!(e.contains("modules.dep") && e.contains("linux-image-6.1.0-9-amd64"), "{e}");
        std::fs::create_dir_all(&dir).unwrap();
        // As Debian writes it: ext4's dependencies listed, the crc32c driver not (crypto API).
        std::fs::write(
            dir.join("modules.dep"),
            "kernel/drivers/block/xen-blkfront.ko:\nkernel/drivers/net/xen-netfront.ko.xz:\n\
             kernel/crypto/crc32c_generic.ko:\nkernel/fs/mbcache.ko:\n\
             kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko\n\
             kernel/fs/jbd2/jbd2.ko:\nkernel/lib/crc16.ko:\n",
        )
        .unwrap();
        let files = [
            "kernel/drivers/block/xen-blkfront.ko",
            "kernel/crypto/crc32c_generic.ko",
            "kernel/fs/mbcache.ko",
            "kernel/fs/ext4/ext4.ko",
            "kernel/fs/jbd2/jbd2.ko",
            "kernel/lib/crc16.ko",
        ];
        for f in files {
            std::fs::create_dir_all(dir.join(f).parent().unwrap()).unwrap();
            std::fs::write(dir.join(f), format!("\x7fELF{f}")).unwrap();
        }
        let e = format!("{:#}", read_modules(&root, "6.1.0-9-amd64", MODULES).unwrap_err());
        assert!(e.contains("xen-netfront.ko") && e.contains("linux-image-6.1.0-9-amd64"), "{e}");
        let mut xz = liblzma::write::XzEncoder::new(Vec::new(), 6);
        xz.write_all(b"\x7fELFnet").unwrap();
        std::fs::create_dir_all(dir.join("kernel/drivers/net")).unwrap();
        std::fs::write(dir.join("kernel/drivers/net/xen-netfront.ko.xz"), xz.finish().unwrap()).unwrap();
        let m = read_modules(&root, "6.1.0-9-amd64", MODULES).unwrap();
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            ["xen-blkfront.ko", "xen-netfront.ko", "crc32c_generic.ko", "crc16.ko", "mbcache.ko", "jbd2.ko", "ext4.ko"]
        );
        assert_eq!(m[1].data, b"\x7fELFnet");
        assert_eq!(m[6].data, b"\x7fELFkernel/fs/ext4/ext4.ko");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_load_order_puts_dependencies_first_and_refuses_unknown_modules_and_cycles() {
        let dep = "a.ko: b.ko c.ko\nc.ko: b.ko\nb.ko:\nx.ko: y.ko\ny.ko: x.ko\n";
        assert_eq!(load_order(dep, &["a.ko"]).unwrap(), ["b.ko", "c.ko", "a.ko"]);
        assert_eq!(load_order(dep, &["c.ko", "a.ko"]).unwrap(), ["b.ko", "c.ko", "a.ko"], "each module once");
        let e = format!("{:#}", load_order(dep, &["z.ko"]).unwrap_err());
        assert!(e.contains("does not list z.ko"), "{e}");
        let e = format!("{:#}", load_order(dep, &["x.ko"]).unwrap_err());
        assert!(e.contains("cycle"), "{e}");
    }

    #[test]
    fn ldd_output_gives_the_libraries_and_the_loader() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                   \tlibext2fs.so.2 => /lib/x86_64-linux-gnu/libext2fs.so.2 (0x00007f01)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f02)\n\
                   \t/lib64/ld-linux-x86-64.so.2 (0x00007f03)\n";
        assert_eq!(
            ldd_paths(out).unwrap(),
            ["/lib/x86_64-linux-gnu/libext2fs.so.2", "/lib/x86_64-linux-gnu/libc.so.6", "/lib64/ld-linux-x86-64.so.2"]
        );
        let e = format!("{:#}", ldd_paths("\tlibe2p.so.2 => not found\n").unwrap_err());
        assert!(e.contains("libe2p.so.2"), "{e}");
    }

    #[test]
    fn a_missing_program_names_its_package() {
        let e = format!("{:#}", read_programs(&[("/nonexistent/sbin/mke2fs", packages::E2FSPROGS)]).unwrap_err());
        assert!(e.contains("/nonexistent/sbin/mke2fs") && e.contains("apt-get install -y e2fsprogs"), "{e}");
        let e = format!("{:#}", read_programs(&[("/nonexistent/bin/fio", packages::FIO)]).unwrap_err());
        assert!(e.contains("/nonexistent/bin/fio") && e.contains("apt-get install -y fio"), "{e}");
    }

    /// The host's mke2fs (e2fsprogs, in every Debian base system and in .ci/run's list) comes
    /// with its libraries and the loader its PT_INTERP names, each once.
    #[test]
    fn mke2fs_comes_with_its_libraries_and_loader() {
        let files = read_programs(PROGRAMS).unwrap_or_else(|e| panic!("{e:#}"));
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths[0], "sbin/mke2fs");
        for lib in ["libext2fs.so.2", "libc.so.6", "ld-linux-x86-64.so.2"] {
            assert_eq!(paths.iter().filter(|p| p.ends_with(lib)).count(), 1, "{lib} once in {paths:?}");
        }
        assert!(files.iter().all(|f| f.data.starts_with(b"\x7fELF")), "{paths:?}");
    }
}
