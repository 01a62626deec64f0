//! The Linux reference guest of the benchmark: Debian's kernel booted in the same QEMU
//! configuration with a tiny static init that times a null system call, then powers off.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use xtask::packages;
use xtask::paths::Paths;
use xtask::qemu::{self, Accel, Machine, Media, Spec};

use crate::cpio;

/// Iterations of the timed loop (after 100,000 warm-up calls).
const ITERATIONS: u32 = 1_000_000;
/// Round trips of the pipe ping-pong (after 100 warm-up trips).
const PIPE_TRIPS: u32 = 20_000;

const INIT_C: &str = r#"// Linux reference init for `cargo xtask bench`: the cost of a null system call.
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

static double now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e9 + (double)t.tv_nsec;
}

int main(void) {
    const long warmup = 100000, iterations = ITERATIONS;
    printf("LINUXREF init started\n");
    fflush(stdout);
    for (long i = 0; i < warmup; i++) syscall(SYS_getppid);
    double t0 = now_ns();
    uint64_t c0 = __rdtsc();
    for (long i = 0; i < iterations; i++) syscall(SYS_getppid);
    uint64_t c1 = __rdtsc();
    double t1 = now_ns();
    printf("LINUXREF null_syscall_cycles=%.1f null_syscall_ns=%.1f iterations=%ld\n",
           (double)(c1 - c0) / iterations, (t1 - t0) / iterations, iterations);
    fflush(stdout);
    /* Pipe ping-pong between two processes: the reference for an event-channel round trip. */
    int ab[2], ba[2];
    const long trips = PIPE_TRIPS;
    char byte = 'x';
    if (pipe(ab) == 0 && pipe(ba) == 0) {
        pid_t child = fork();
        if (child == 0) {
            for (long i = 0; i < trips + 100; i++) {
                if (read(ab[0], &byte, 1) != 1 || write(ba[1], &byte, 1) != 1) _exit(1);
            }
            _exit(0);
        }
        for (long i = 0; i < 100; i++) {
            if (write(ab[1], &byte, 1) != 1 || read(ba[0], &byte, 1) != 1) break;
        }
        t0 = now_ns();
        c0 = __rdtsc();
        for (long i = 0; i < trips; i++) {
            if (write(ab[1], &byte, 1) != 1 || read(ba[0], &byte, 1) != 1) break;
        }
        c1 = __rdtsc();
        t1 = now_ns();
        printf("LINUXREF pipe_roundtrip_cycles=%.1f pipe_roundtrip_ns=%.1f trips=%ld\n",
               (double)(c1 - c0) / trips, (t1 - t0) / trips, trips);
        fflush(stdout);
    }
    sync();
    reboot(RB_POWER_OFF);
    for (;;) pause();
}
"#;

#[derive(Debug, Clone)]
pub struct LinuxRef {
    pub kernel: PathBuf,
    pub null_syscall_cycles: f64,
    pub null_syscall_ns: f64,
    pub pipe_roundtrip_cycles: f64,
    pub pipe_roundtrip_ns: f64,
    /// From QEMU start to the init's first line.
    pub boot_to_init_ms: f64,
}

/// The newest /boot/vmlinuz-*.
pub fn find_kernel() -> Result<PathBuf> {
    let mut kernels: Vec<PathBuf> = std::fs::read_dir("/boot")
        .context("reading /boot")?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-")))
        .collect();
    kernels.sort_by_key(|k| version_key(k));
    kernels.pop().context("no /boot/vmlinuz-* found\n  fix: sudo apt-get install -y linux-image-amd64")
}

fn version_key(p: &Path) -> Vec<u64> {
    let name = p.file_name().unwrap_or_default().to_string_lossy();
    name.split(|c: char| !c.is_ascii_digit()).filter(|s| !s.is_empty()).map(|s| s.parse().unwrap_or(0)).collect()
}

/// Compiles the init and packs `target/bench/linux-ref/initramfs.cpio`.
fn build_initramfs(paths: &Paths) -> Result<PathBuf> {
    let dir = paths.bench_dir().join("linux-ref");
    std::fs::create_dir_all(&dir)?;
    let src = dir.join("init.c");
    std::fs::write(
        &src,
        INIT_C.replace("ITERATIONS", &ITERATIONS.to_string()).replace("PIPE_TRIPS", &PIPE_TRIPS.to_string()),
    )?;
    let bin = dir.join("init");
    let out = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&bin).arg(&src).output().context("running gcc")?;
    if !out.status.success() {
        bail!("gcc -static -O2 {} failed:\n{}", src.display(), String::from_utf8_lossy(&out.stderr));
    }
    let init = std::fs::read(&bin)?;
    let archive = cpio::newc(&[
        cpio::Entry::Dir { path: "dev", mode: 0o755 },
        // The kernel opens /dev/console of the initramfs for init's stdio; without it init is mute.
        cpio::Entry::CharDev { path: "dev/console", mode: 0o600, major: 5, minor: 1 },
        cpio::Entry::Dir { path: "proc", mode: 0o755 },
        cpio::Entry::File { path: "init", mode: 0o755, data: &init },
    ]);
    let cpio_path = dir.join("initramfs.cpio");
    std::fs::write(&cpio_path, archive)?;
    Ok(cpio_path)
}

/// Boots the reference once per `runs` and reports the medians.
pub fn measure(paths: &Paths, accel: Accel, machine: Machine, runs: usize) -> Result<LinuxRef> {
    packages::ensure(&[packages::QEMU, packages::LINUX_IMAGE, packages::GCC, packages::LIBC_DEV])?;
    let kernel = find_kernel()?;
    xtask::step(format!("Linux reference: building the init (gcc -static) and initramfs; kernel {}", kernel.display()));
    let initramfs = build_initramfs(paths)?;
    let spec = Spec {
        machine,
        accel,
        ..Spec::new(Media::Direct {
            kernel: kernel.clone(),
            initrd: initramfs,
            append: Some("console=ttyS0 quiet panic=-1".into()),
        })
    };
    let (mut cycles, mut ns, mut boot) = (Vec::new(), Vec::new(), Vec::new());
    let (mut pipe_cycles, mut pipe_ns) = (Vec::new(), Vec::new());
    for i in 0..runs {
        xtask::step(format!(
            "Linux reference run {}/{runs} ({} iterations of syscall(SYS_getppid))",
            i + 1,
            ITERATIONS
        ));
        let run = qemu::run_captured(&spec, Duration::from_secs(300), None)?;
        let line = run.lines.iter().find(|l| l.starts_with("LINUXREF null_syscall_cycles="));
        let Some(line) = line else {
            bail!(
                "the Linux reference printed no result ({}); command: {}\nserial:\n{}\nstderr:\n{}",
                run.outcome(),
                run.command,
                run.lines.join("\n"),
                run.stderr
            );
        };
        let value = |key: &str| -> Result<f64> {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("no {key}= in {line:?}"))
        };
        cycles.push(value("null_syscall_cycles")?);
        ns.push(value("null_syscall_ns")?);
        let pipe = run.lines.iter().find(|l| l.starts_with("LINUXREF pipe_roundtrip_cycles="));
        let Some(pipe) = pipe else {
            bail!("the Linux reference printed no pipe result; serial:\n{}", run.lines.join("\n"));
        };
        let pv = |key: &str| -> Result<f64> {
            pipe.split_whitespace()
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse().ok())
                .with_context(|| format!("no {key}= in {pipe:?}"))
        };
        pipe_cycles.push(pv("pipe_roundtrip_cycles")?);
        pipe_ns.push(pv("pipe_roundtrip_ns")?);
        if let Some(t) = run.time_of(|l| l == "LINUXREF init started") {
            boot.push(t.as_secs_f64() * 1e3);
        }
    }
    Ok(LinuxRef {
        kernel,
        null_syscall_cycles: crate::bench::median(&mut cycles),
        null_syscall_ns: crate::bench::median(&mut ns),
        pipe_roundtrip_cycles: crate::bench::median(&mut pipe_cycles),
        pipe_roundtrip_ns: crate::bench::median(&mut pipe_ns),
        boot_to_init_ms: if boot.is_empty() { f64::NAN } else { crate::bench::median(&mut boot) },
    })
}
