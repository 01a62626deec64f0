//! The Linux reference guest of `cargo xtask bench hv`: Debian's kernel booted in the same QEMU
//! configuration with a tiny static init (`linux_init.c`) that times a null system call and a
//! pipe round trip, then powers off.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use xtask::packages::{self, Package};
use xtask::paths::Paths;
use xtask::qemu::{self, Accel, Machine, Media, Spec};

use xtask::cpio;
use xtask::linux_guest::find_kernel;

use super::row::Samples;
use super::{failed_run, median};

/// The init's source.
const INIT_C: &str = include_str!("linux_init.c");
/// Iterations of the timed loop (after 100,000 warm-up calls).
const ITERATIONS: u32 = 1_000_000;
/// Round trips of the pipe ping-pong (after 100 warm-up trips).
const PIPE_TRIPS: u32 = 20_000;

/// What the reference needs on the host: QEMU, Debian's kernel, and gcc with a static libc for
/// the init.
pub const PACKAGES: &[Package] = &[packages::QEMU, packages::LINUX_IMAGE, packages::GCC, packages::LIBC_DEV];

#[derive(Debug, Clone)]
pub struct LinuxRef {
    pub kernel: PathBuf,
    pub null_syscall_cycles: f64,
    pub null_syscall_ns: f64,
    pub pipe_roundtrip_cycles: f64,
    pub pipe_roundtrip_ns: f64,
    /// From QEMU start to the init's first line.
    pub boot_to_init_ms: f64,
    /// Every run's figures, as the `linux_*` metrics of the benches' tables.
    pub samples: Samples,
}

/// Compiles a C init with `gcc -static -O2 [-D...]` into `dir/init`; returns its bytes.
pub fn compile_init(dir: &Path, source: &str, defines: &[(&str, String)]) -> Result<Vec<u8>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let src = dir.join("init.c");
    std::fs::write(&src, source)?;
    let bin = dir.join("init");
    let mut gcc = Command::new("gcc");
    gcc.args(["-static", "-O2"]);
    for (name, value) in defines {
        gcc.arg(format!("-D{name}={value}"));
    }
    let out = gcc.arg("-o").arg(&bin).arg(&src).output().context("running gcc (package gcc)")?;
    if !out.status.success() {
        bail!("gcc -static -O2 {} failed:\n{}", src.display(), String::from_utf8_lossy(&out.stderr));
    }
    std::fs::read(&bin).with_context(|| format!("reading {}", bin.display()))
}

/// The reference ready to boot: its packages installed, Debian's kernel, the initramfs.
pub struct Reference {
    kernel: PathBuf,
    initramfs: PathBuf,
}

impl Reference {
    /// Installs what is missing (as root on Debian; otherwise fails with the `sudo apt-get
    /// install` line), finds the kernel and builds `target/bench/linux-ref/initramfs.cpio`.
    pub fn prepare(paths: &Paths) -> Result<Self> {
        packages::ensure(PACKAGES).context("the Linux reference guest of the benchmark needs these packages")?;
        let kernel = find_kernel()?;
        xtask::step(format!(
            "Linux reference: building the init (gcc -static) and initramfs; kernel {}",
            kernel.display()
        ));
        let dir = paths.bench_dir().join("linux-ref");
        let defines = [("ITERATIONS", ITERATIONS.to_string()), ("PIPE_TRIPS", PIPE_TRIPS.to_string())];
        let init = compile_init(&dir, INIT_C, &defines)?;
        let archive = cpio::newc(&[
            cpio::Entry::Dir { path: "dev", mode: 0o755 },
            // The kernel opens /dev/console of the initramfs for init's stdio; without it init is mute.
            cpio::Entry::CharDev { path: "dev/console", mode: 0o600, major: 5, minor: 1 },
            cpio::Entry::Dir { path: "proc", mode: 0o755 },
            cpio::Entry::File { path: "init", mode: 0o755, data: &init },
        ]);
        let initramfs = dir.join("initramfs.cpio");
        std::fs::write(&initramfs, archive)?;
        Ok(Self { kernel, initramfs })
    }

    /// Boots the reference `runs` times and reports the medians.
    pub fn measure(&self, accel: Accel, machine: Machine, runs: usize) -> Result<LinuxRef> {
        let spec = Spec {
            machine,
            accel,
            ..Spec::new(Media::Direct {
                kernel: self.kernel.clone(),
                initrd: self.initramfs.clone(),
                append: Some("console=ttyS0 quiet panic=-1".into()),
            })
        };
        let (mut cycles, mut ns, mut boot) = (Vec::new(), Vec::new(), Vec::new());
        let (mut pipe_cycles, mut pipe_ns) = (Vec::new(), Vec::new());
        for i in 0..runs {
            xtask::step(format!(
                "Linux reference run {}/{runs} ({ITERATIONS} iterations of syscall(SYS_getppid))",
                i + 1
            ));
            let run = qemu::run_captured(&spec, Duration::from_secs(300), None)?;
            let result = |prefix: &str| {
                run.lines
                    .iter()
                    .find(|l| l.starts_with(prefix))
                    .ok_or_else(|| failed_run(&format!("the Linux reference printed no {prefix:?} line"), &run))
            };
            let syscall = result("LINUXREF null_syscall_cycles=")?;
            cycles.push(field(syscall, "null_syscall_cycles")?);
            ns.push(field(syscall, "null_syscall_ns")?);
            let pipe = result("LINUXREF pipe_roundtrip_cycles=")?;
            pipe_cycles.push(field(pipe, "pipe_roundtrip_cycles")?);
            pipe_ns.push(field(pipe, "pipe_roundtrip_ns")?);
            if let Some(t) = run.time_of(|l| l == "LINUXREF init started") {
                boot.push(t.as_secs_f64() * 1e3);
            }
        }
        let mut samples = Samples::new();
        for (metric, values, unit) in [
            ("linux_null_syscall_cycles", &cycles, "cycles"),
            ("linux_null_syscall_ns", &ns, "ns"),
            ("linux_pipe_roundtrip_cycles", &pipe_cycles, "cycles"),
            ("linux_pipe_roundtrip_ns", &pipe_ns, "ns"),
            ("linux_boot_to_init_ms", &boot, "ms"),
        ] {
            if !values.is_empty() {
                samples.insert(metric.into(), (values.clone(), unit.into()));
            }
        }
        Ok(LinuxRef {
            kernel: self.kernel.clone(),
            null_syscall_cycles: median(&mut cycles),
            null_syscall_ns: median(&mut ns),
            pipe_roundtrip_cycles: median(&mut pipe_cycles),
            pipe_roundtrip_ns: median(&mut pipe_ns),
            boot_to_init_ms: median(&mut boot),
            samples,
        })
    }
}

/// `key=<number>` in a `LINUXREF ...` line.
fn field(line: &str, key: &str) -> Result<f64> {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no {key}= in {line:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_installs_debian_s_kernel() {
        assert!(PACKAGES.iter().any(|p| p.name == "linux-image-amd64"));
        assert!(PACKAGES.iter().any(|p| p.name == "gcc") && PACKAGES.iter().any(|p| p.name == "libc6-dev"));
    }

    #[test]
    fn reads_the_init_s_lines() {
        let l = "LINUXREF null_syscall_cycles=210.5 null_syscall_ns=98.0 iterations=1000000";
        assert_eq!(field(l, "null_syscall_cycles").unwrap(), 210.5);
        assert_eq!(field(l, "null_syscall_ns").unwrap(), 98.0);
        assert!(field(l, "pipe_roundtrip_ns").is_err());
    }

    /// The C sources are real files: they compile where gcc is installed.
    #[test]
    fn the_inits_compile() {
        if xtask::packages::find_in_path("gcc").is_none() {
            eprintln!("gcc is not installed: compile check skipped");
            return;
        }
        for (name, source) in [("linux_init.c", INIT_C), ("linux_net_init.c", super::super::linux_net::INIT_C)] {
            let out = Command::new("gcc")
                .args(["-fsyntax-only", "-Wall", "-Werror", "-x", "c", "-"])
                .stdin(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .and_then(|mut c| {
                    use std::io::Write;
                    c.stdin.take().unwrap().write_all(source.as_bytes())?;
                    c.wait_with_output()
                })
                .unwrap();
            assert!(out.status.success(), "{name}:\n{}", String::from_utf8_lossy(&out.stderr));
        }
    }
}
