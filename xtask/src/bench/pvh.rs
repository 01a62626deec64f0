//! `cargo xtask bench pvh`: HVM domains (AMD SVM + nested paging, Xen's PVH ABI) in QEMU, each
//! figure next to a reference measured in the same run and QEMU configuration. Writes
//! `target/bench/pvh.json`.
//!
//! Every run (`--runs`, medians reported) boots, one after the other so the figures of one run
//! share the host's conditions:
//!
//! 1. `bench-linux`: Dom0 and Debian's kernel as a 256 MiB PVH DomU whose `/init` powers off at
//!    once. Boot time: QEMU start to the serial line `[linux] linux-guest: init started`.
//! 2. The reference: QEMU boots the same ELF vmlinux (`-kernel` takes QEMU's own PVH entry) and the
//!    same initramfs directly, with the guest's memory, the same machine, accelerator and
//!    firmware, and the DomU's command line with only the Xen console words swapped for
//!    `console=ttyS0` (`pci=off` stays: the same flags on both sides; QEMU's PCI bus is then
//!    left alone, as the DomU has none). Boot time: QEMU start to `linux-guest: init started`.
//!    Target: DomU ≤ 1.5 × reference.
//! 3. `bench-linux-idle`: the same DomU, whose `/init` sleeps `guest.idle_secs` between
//!    `linux-guest: idling` and `linux-guest: idle done` before powering off.
//! 4. `bench-pvh`: `pvh-probe bench`, our PVH test kernel, times 10,000 `xen_version` hypercalls
//!    with rdtsc from an HVM guest.
//! 5. `bench`: the PV null hypercall (as `bench hv` measures it).
//!
//! and then the Linux reference of [`super::linux`] (at most 3 boots) gives the null system call
//! that both hypercalls stand beside (the PV one keeps `bench hv`'s target, ≤ 1× it).
//!
//! VM exits come from the hypervisor's line at a domain's end, `[hv] domain N (linux) VM exits:
//! <total> in <ms> ms of CPU (...)`. During boot: `bench-linux`'s total over its CPU time (boot,
//! `/init` and poweroff). While idle: within one run, the idle guest's total minus the boot
//! guest's (everything but the sleep is the same), over the sleep's wall time as seen on the
//! serial line (from `idling` to `idle done`). The boot's own count varies by a few hundred
//! exits between runs (host interrupts and timer hypercalls follow its CPU time, which follows
//! the host's load), so the idle figure resolves only rates of tens of exits per second; every
//! run's figures are printed under the table to judge the spread. Exact idle counts need the
//! hypervisor to report the counters while the domain lives, which it does not yet.
//!
//! The DomU's boot is also split, to show where time goes: QEMU start to the hypervisor's
//! `domain N (linux) created` line, the hypervisor's own figure for building the domain
//! (copying the kernel and initramfs into it), and the kernel's clock at `Run /init as init
//! process` (dmesg timestamps, on both sides).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use xtask::linux_guest;
use xtask::paths::{Paths, show};
use xtask::qemu::{self, Accel, Machine, Media, Run, Spec};
use xtask::step;

use super::hv;
use super::row::{self, Reference, Row, Samples, Target};
use super::{failed_run, median, write_json};
use crate::build::BOOT_TIMEOUT;

/// The topologies this bench boots (in `topologies/`).
const BOOT_TOPOLOGY: &str = "bench-linux";
const IDLE_TOPOLOGY: &str = "bench-linux-idle";
const PROBE_TOPOLOGY: &str = "bench-pvh";
const PV_TOPOLOGY: &str = "bench";
/// The Linux domain's name in the two Linux topologies.
const LINUX_DOMAIN: &str = "linux";

/// The line of the initramfs' `/init` (xtask/src/linux_guest/init.sh) that ends the boot.
const INIT_MARKER: &str = "linux-guest: init started";
const IDLE_START: &str = "linux-guest: idling ";
const IDLE_DONE: &str = "linux-guest: idle done";
/// The kernel's message just before it runs `/init`.
const RUN_INIT: &str = "Run /init as init process";

/// The DomU's boot may take at most this multiple of the reference's.
const BOOT_TARGET: f64 = 1.5;

pub fn run(paths: &Paths, accel: Accel, machine: Machine, runs: usize) -> Result<Vec<Row>> {
    // The null syscall's reference first: missing packages stop us here, with the command to run.
    let linux_ref = super::linux::Reference::prepare(paths)?;
    let boot = crate::build::prepare(paths, Some(BOOT_TOPOLOGY))?;
    let domu = linux_domain(&boot.topology)?;
    let guest = linux_guest::prepare(paths, true)?;
    let mut bundles = vec![boot.bundle.clone()];
    for name in [IDLE_TOPOLOGY, PROBE_TOPOLOGY, PV_TOPOLOGY] {
        let t = xtask::topology::load(&paths.root, Some(name))?;
        if name == IDLE_TOPOLOGY && linux_domain(&t)?.memory_mib != domu.memory_mib {
            bail!("{} and {BOOT_TOPOLOGY} must give the linux domain the same memory_mib", show(&t.path, &paths.root));
        }
        bundles.push(xtask::artifacts::write_bundle(paths, &t, &boot.image_dir)?);
    }
    let on_hv = |bundle: &std::path::PathBuf| Spec {
        machine,
        accel,
        ..Spec::new(Media::Direct { kernel: boot.hypervisor(), initrd: bundle.clone(), append: None })
    };
    let [boot_spec, idle_spec, probe_spec, pv_spec] = [0, 1, 2, 3].map(|i| on_hv(&bundles[i]));
    let direct_spec = Spec {
        machine,
        accel,
        memory: format!("{}M", domu.memory_mib),
        ..Spec::new(Media::Direct {
            kernel: guest.vmlinux.clone(),
            initrd: guest.initramfs.clone(),
            append: Some(reference_cmdline(&domu.cmdline)),
        })
    };

    let mut s = Samples::new();
    for i in 0..runs {
        let n = format!("run {}/{runs}", i + 1);
        step(format!("{BOOT_TOPOLOGY}: Linux as a PVH DomU, QEMU start to {INIT_MARKER:?}, {n}"));
        let run = qemu::run_captured(&boot_spec, BOOT_TIMEOUT, None)?;
        let domu_boot = DomuBoot::read(&run)?;
        add(&mut s, "domu_boot_to_init_ms", ms(domu_boot.init), "ms");
        add(&mut s, "domu_qemu_to_domain_created_ms", ms(domu_boot.created_at), "ms");
        add(&mut s, "domu_domain_build_ms", domu_boot.build_us / 1e3, "ms");
        add(&mut s, "domu_kernel_clock_at_run_init_ms", domu_boot.kernel_at_init_s * 1e3, "ms");
        add(&mut s, "domu_boot_vm_exits", domu_boot.exits.total as f64, "exits");
        add(&mut s, "domu_boot_cpu_ms", domu_boot.exits.cpu_ms as f64, "ms");
        add(&mut s, "domu_boot_vm_exits_per_cpu_s", domu_boot.exits.per_cpu_second(), "exits/s");

        step(format!("reference: the same vmlinux and initramfs booted by QEMU (PVH entry), {n}"));
        let run = qemu::run_captured(&direct_spec, BOOT_TIMEOUT, Some(&|l: &str| l == INIT_MARKER))?;
        let Some(t) = run.time_of(|l| l == INIT_MARKER) else {
            return Err(failed_run(&format!("the directly booted kernel never printed {INIT_MARKER:?}"), &run));
        };
        add(&mut s, "direct_boot_to_init_ms", ms(t), "ms");
        if let Some(k) = kernel_clock_at(&run.lines, RUN_INIT) {
            add(&mut s, "direct_kernel_clock_at_run_init_ms", k * 1e3, "ms");
        }

        step(format!("{IDLE_TOPOLOGY}: the DomU idles before powering off, {n}"));
        let run = qemu::run_captured(&idle_spec, BOOT_TIMEOUT, None)?;
        let (idle_exits, idle_wall) = read_idle(&run)?;
        let delta = idle_exits.total as f64 - domu_boot.exits.total as f64;
        add(&mut s, "domu_idle_vm_exits", delta, "exits");
        add(&mut s, "domu_idle_vm_exits_per_s", delta / idle_wall.as_secs_f64(), "exits/s");

        step(format!("{PROBE_TOPOLOGY}: pvh-probe times xen_version from an HVM guest, {n}"));
        let run = qemu::run_captured(&probe_spec, BOOT_TIMEOUT, None)?;
        let cycles = run.lines.iter().find_map(|l| probe_cycles(l));
        match cycles {
            Some(c) if run.exit_code == Some(qemu::EXIT_ALL_EXPECTED) => {
                add(&mut s, "hvm_xen_version_cycles", c, "cycles")
            }
            _ => return Err(failed_run("pvh-probe printed no \"xen_version <n> cycles/call\" line", &run)),
        }

        step(format!("{PV_TOPOLOGY}: the PV null hypercall, {n}"));
        let mut pv = Samples::new();
        hv::collect_bench_run(&pv_spec, PV_TOPOLOGY, 1, &mut pv)?;
        let Some((values, unit)) = pv.remove("null_hypercall_cycles") else {
            bail!("the {PV_TOPOLOGY} topology printed no BENCH null_hypercall_cycles line");
        };
        for v in values {
            add(&mut s, "null_hypercall_cycles", v, &unit);
        }
    }
    let linux_runs = runs.min(3);
    let linux = linux_ref.measure(accel, machine, linux_runs)?;

    // Every run's figure too: shared hosts make single boots vary widely.
    let per_run: Vec<String> = s
        .iter()
        .map(|(m, (v, _))| format!("  {m}: {}", v.iter().map(|x| super::fmt_num(*x)).collect::<Vec<_>>().join(", ")))
        .collect();
    let value = |m: &str| s.get(m).map(|(v, _)| median(&mut v.clone()));
    let (direct_boot, direct_kernel) = (value("direct_boot_to_init_ms"), value("direct_kernel_clock_at_run_init_ms"));
    let measured = |what, v: Option<f64>| {
        v.map_or(Reference::Absent("the directly booted kernel gave no such figure"), |v| Reference::Measured(what, v))
    };
    let mut rows = row::rows_of(s.clone(), |metric| match metric {
        "domu_boot_to_init_ms" => {
            (measured("direct PVH boot to init", direct_boot), Some(Target::RelativeToReference(BOOT_TARGET)))
        }
        "domu_kernel_clock_at_run_init_ms" => (measured("direct kernel clock at /init", direct_kernel), None),
        "hvm_xen_version_cycles" => (Reference::Measured("linux null syscall", linux.null_syscall_cycles), None),
        "null_hypercall_cycles" => hv::judge(metric, Some(&linux), None, accel == Accel::Tcg),
        m if m.starts_with("direct_") => {
            (Reference::Absent("it is the reference of the domu_ figures: the same kernel booted directly"), None)
        }
        m if m.contains("vm_exits") || m == "domu_boot_cpu_ms" => {
            (Reference::Absent("the directly booted kernel makes no VM exits of ours to count"), None)
        }
        _ => (Reference::Absent("a part of the DomU's boot, reported for context"), None),
    });
    let syscall = linux.samples.get("linux_null_syscall_cycles").cloned();
    rows.push(Row::new(
        "linux_null_syscall_cycles",
        "cycles",
        syscall.map_or(vec![linux.null_syscall_cycles], |(v, _)| v),
        Reference::Absent(hv::LINUX_IS_REFERENCE),
    ));
    row::print_table(&rows, accel, machine);
    println!("(reference command line: {})", reference_cmdline(&domu.cmdline));
    println!("\nper run, in run order:\n{}", per_run.join("\n"));
    write_json(paths, "pvh.json", &row::report(&rows, accel, machine, runs, Some(&linux)))?;
    Ok(rows)
}

pub(super) fn add(s: &mut Samples, metric: &str, value: f64, unit: &str) {
    s.entry(metric.into()).or_insert_with(|| (Vec::new(), unit.into())).0.push(value);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// The PVH Linux domain of a bench topology.
pub(super) fn linux_domain(t: &xtask::topology::Loaded) -> Result<&hv_bundle::DomainConfig> {
    t.topology
        .domains
        .iter()
        .find(|d| d.name == LINUX_DOMAIN && d.kernel.as_deref() == Some(linux_guest::KERNEL_IMAGE))
        .with_context(|| {
            format!(
                "{} has no domain {LINUX_DOMAIN:?} with kernel = {:?}\n  fix: restore it from git (the bench needs it)",
                t.path.display(),
                linux_guest::KERNEL_IMAGE
            )
        })
}

/// The DomU's command line for the directly booted kernel: the console on the first serial port
/// instead of Xen's (hvc0, `earlyprintk=xen`); every other word as it is.
pub fn reference_cmdline(domu: &str) -> String {
    let mut words: Vec<&str> = Vec::new();
    for w in domu.split_whitespace() {
        match w {
            "earlyprintk=xen" => {}
            w if w.starts_with("console=") => {
                if !words.contains(&"console=ttyS0") {
                    words.push("console=ttyS0");
                }
            }
            w => words.push(w),
        }
    }
    if !words.contains(&"console=ttyS0") {
        words.insert(0, "console=ttyS0");
    }
    words.join(" ")
}

/// What one `bench-linux` run shows.
struct DomuBoot {
    init: Duration,
    created_at: Duration,
    build_us: f64,
    kernel_at_init_s: f64,
    exits: VmExits,
}

impl DomuBoot {
    fn read(run: &Run) -> Result<Self> {
        let fail = |what: &str| failed_run(&format!("{BOOT_TOPOLOGY}: {what}"), run);
        if run.exit_code != Some(qemu::EXIT_ALL_EXPECTED) {
            return Err(fail("the run did not end with every domain as expected"));
        }
        let marker = format!("[{LINUX_DOMAIN}] {INIT_MARKER}");
        let init = run.time_of(|l| l == marker).ok_or_else(|| fail(&format!("no {marker:?} line")))?;
        let created = run.lines.iter().position(|l| created_us(l, LINUX_DOMAIN).is_some());
        let created = created.ok_or_else(|| fail("no \"domain N (linux) created in <n> us\" line"))?;
        let kernel_at_init_s =
            kernel_clock_at(&run.lines, RUN_INIT).ok_or_else(|| fail(&format!("no dmesg line {RUN_INIT:?}")))?;
        let exits = vm_exits_of(run, LINUX_DOMAIN).ok_or_else(|| fail("no \"domain N (linux) VM exits:\" line"))?;
        Ok(Self {
            init,
            created_at: run.line_times[created],
            build_us: created_us(&run.lines[created], LINUX_DOMAIN).expect("found above"),
            kernel_at_init_s,
            exits,
        })
    }
}

/// The idle run's VM exits and the sleep's wall time (serial line to serial line).
fn read_idle(run: &Run) -> Result<(VmExits, Duration)> {
    let fail = |what: &str| failed_run(&format!("{IDLE_TOPOLOGY}: {what}"), run);
    if run.exit_code != Some(qemu::EXIT_ALL_EXPECTED) {
        return Err(fail("the run did not end with every domain as expected"));
    }
    let start = format!("[{LINUX_DOMAIN}] {IDLE_START}");
    let done = format!("[{LINUX_DOMAIN}] {IDLE_DONE}");
    let t0 = run.time_of(|l| l.starts_with(&start)).ok_or_else(|| fail(&format!("no {start:?} line")))?;
    let t1 = run
        .time_of(|l| l == done)
        .ok_or_else(|| fail(&format!("no {done:?} line (is guest.mode=idle on the linux domain's cmdline?)")))?;
    let exits = vm_exits_of(run, LINUX_DOMAIN).ok_or_else(|| fail("no \"domain N (linux) VM exits:\" line"))?;
    Ok((exits, t1.saturating_sub(t0)))
}

fn vm_exits_of(run: &Run, domain: &str) -> Option<VmExits> {
    run.lines.iter().find_map(|l| VmExits::parse(l, domain))
}

/// The counters of the hypervisor's `[hv] domain <id> (<name>) VM exits: <total> in <ms> ms of
/// CPU (<n> hypercalls, <n> I/O, <n> MSR, <n> CPUID, <n> HLT, <n> host interrupts, <n> nested
/// page faults)`, printed when an HVM domain ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VmExits {
    pub total: u64,
    pub cpu_ms: u64,
    pub hypercalls: u64,
    pub io: u64,
    pub msr: u64,
    pub cpuid: u64,
    pub hlt: u64,
    pub host_interrupts: u64,
    pub nested_page_faults: u64,
}

impl VmExits {
    /// The line's counters when it is the VM exits line of domain `name`.
    pub fn parse(line: &str, name: &str) -> Option<Self> {
        let rest = line.strip_prefix("[hv] domain ")?;
        let (id, rest) = rest.split_once(' ')?;
        id.parse::<u32>().ok()?;
        let rest = rest.strip_prefix('(')?.strip_prefix(name)?.strip_prefix(") VM exits: ")?;
        let (total, rest) = rest.split_once(" in ")?;
        let (cpu_ms, rest) = rest.split_once(" ms of CPU (")?;
        let mut e = Self { total: total.parse().ok()?, cpu_ms: cpu_ms.parse().ok()?, ..Self::default() };
        for part in rest.strip_suffix(')')?.split(", ") {
            let (n, what) = part.split_once(' ')?;
            let n: u64 = n.parse().ok()?;
            *match what {
                "hypercalls" => &mut e.hypercalls,
                "I/O" => &mut e.io,
                "MSR" => &mut e.msr,
                "CPUID" => &mut e.cpuid,
                "HLT" => &mut e.hlt,
                "host interrupts" => &mut e.host_interrupts,
                "nested page faults" => &mut e.nested_page_faults,
                _ => return None,
            } = n;
        }
        Some(e)
    }

    /// Exits per second of the domain's CPU time; NaN without CPU time.
    pub fn per_cpu_second(&self) -> f64 {
        if self.cpu_ms == 0 { f64::NAN } else { self.total as f64 * 1e3 / self.cpu_ms as f64 }
    }
}

/// `<n>` of `[hv] domain <id> (<name>) created in <n> us: ...`.
fn created_us(line: &str, name: &str) -> Option<f64> {
    let rest = line.strip_prefix("[hv] domain ")?.split_once(' ')?.1;
    let rest = rest.strip_prefix('(')?.strip_prefix(name)?.strip_prefix(") created in ")?;
    rest.split_once(" us")?.0.parse().ok()
}

/// `<n>` of pvh-probe's `[<domain>] pvh-probe: xen_version <n> cycles/call`.
pub fn probe_cycles(line: &str) -> Option<f64> {
    let rest = line.strip_prefix('[')?.split_once("] ")?.1;
    rest.strip_prefix("pvh-probe: xen_version ")?.strip_suffix(" cycles/call")?.parse().ok()
}

/// The kernel's timestamp (seconds) of the first console line `[ <s>] <message>`, with or
/// without the hypervisor's `[<domain>] ` before it.
pub fn kernel_clock_at(lines: &[String], message: &str) -> Option<f64> {
    let tail = format!("] {message}");
    lines.iter().find_map(|l| {
        let head = &l[..l.find(&tail)?];
        head[head.rfind('[')? + 1..].trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXITS: &str = "[hv] domain 1 (linux) VM exits: 5222 in 3165 ms of CPU (1427 hypercalls, 44 I/O, 122 MSR, \
                         689 CPUID, 12 HLT, 2928 host interrupts, 0 nested page faults)";

    #[test]
    fn reads_the_vm_exits_line() {
        let e = VmExits::parse(EXITS, "linux").unwrap();
        assert_eq!(
            e,
            VmExits {
                total: 5222,
                cpu_ms: 3165,
                hypercalls: 1427,
                io: 44,
                msr: 122,
                cpuid: 689,
                hlt: 12,
                host_interrupts: 2928,
                nested_page_faults: 0
            }
        );
        assert!((e.per_cpu_second() - 5222.0 / 3.165).abs() < 1e-6);
        assert_eq!(VmExits::parse(EXITS, "linu"), None, "another domain's line");
        assert_eq!(VmExits::parse(EXITS, "probe"), None);
        assert_eq!(VmExits::parse(&EXITS.replace("12 HLT", "12 PAUSE"), "linux"), None, "an unknown counter");
        assert_eq!(VmExits::parse(&EXITS.replace("5222", "lots"), "linux"), None);
        assert_eq!(VmExits::parse(&EXITS[..EXITS.len() - 1], "linux"), None, "cut short");
        assert_eq!(VmExits::parse("[linux] domain 1 (linux) VM exits: 1 in 1 ms of CPU ()", "linux"), None);
        assert!(VmExits { cpu_ms: 0, ..e }.per_cpu_second().is_nan());
    }

    #[test]
    fn reads_the_probe_line() {
        assert_eq!(probe_cycles("[probe] pvh-probe: xen_version 1843 cycles/call"), Some(1843.0));
        assert_eq!(probe_cycles("[probe] pvh-probe: bench done, shutting down (poweroff)"), None);
        assert_eq!(probe_cycles("pvh-probe: xen_version 1843 cycles/call"), None, "not through the hypervisor");
        assert_eq!(probe_cycles("[probe] pvh-probe: xen_version many cycles/call"), None);
    }

    #[test]
    fn reads_creation_and_kernel_clock() {
        let created = "[hv] domain 1 (linux) created in 81234 us: PVH, 256 MiB at 0x2000000, kernel linux entry \
                       0x1000000, initrd 3000 KiB, 12 nested table frames";
        assert_eq!(created_us(created, "linux"), Some(81234.0));
        assert_eq!(created_us(created, "probe"), None);
        let lines = [
            "[linux] [    0.000000] Linux version 6.1.0",
            "[linux] [    1.234567] Run /init as init process",
            "[    2.500000] Run /init as init process",
        ]
        .map(String::from);
        assert_eq!(kernel_clock_at(&lines, RUN_INIT), Some(1.234567));
        assert_eq!(kernel_clock_at(&lines[2..], RUN_INIT), Some(2.5));
        assert_eq!(kernel_clock_at(&lines[..1], RUN_INIT), None);
    }

    #[test]
    fn the_reference_keeps_the_domu_s_words_but_the_console() {
        let domu = "console=hvc0 earlyprintk=xen loglevel=7 mitigations=off pci=off guest.mode=poweroff";
        assert_eq!(reference_cmdline(domu), "console=ttyS0 loglevel=7 mitigations=off pci=off guest.mode=poweroff");
        assert_eq!(reference_cmdline("quiet"), "console=ttyS0 quiet");
        assert_eq!(reference_cmdline("console=hvc0 console=tty0 x"), "console=ttyS0 x");
    }

    #[test]
    fn the_init_script_prints_the_lines_the_bench_waits_for() {
        let script = linux_guest::initramfs::INIT_SCRIPT;
        for line in [INIT_MARKER, IDLE_START, IDLE_DONE] {
            assert!(script.contains(&format!("echo \"{line}")), "init.sh does not print {line:?}");
        }
        assert!(script.contains("guest.idle_secs=*)"), "init.sh does not read guest.idle_secs=");
    }

    /// The topologies the bench boots exist and say what it reads.
    #[test]
    fn the_bench_topologies_fit() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let boot = xtask::topology::load(root, Some(BOOT_TOPOLOGY)).unwrap();
        let idle = xtask::topology::load(root, Some(IDLE_TOPOLOGY)).unwrap();
        let (b, i) = (linux_domain(&boot).unwrap(), linux_domain(&idle).unwrap());
        assert!(b.cmdline.contains("guest.mode=poweroff"), "{}", b.cmdline);
        assert!(i.cmdline.contains("guest.mode=idle") && i.cmdline.contains("guest.idle_secs="), "{}", i.cmdline);
        assert_eq!(b.memory_mib, i.memory_mib);
        let linux = xtask::topology::load(root, Some("linux-boot")).unwrap();
        assert_eq!(linux_domain(&linux).unwrap().cmdline, b.cmdline, "the same cmdline as topologies/linux-boot.toml");
        let probe = xtask::topology::load(root, Some(PROBE_TOPOLOGY)).unwrap();
        assert!(probe.topology.domains.iter().any(|d| d.cmdline == "bench"));
    }
}
