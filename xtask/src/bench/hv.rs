//! `cargo xtask bench hv`: hypervisor figures measured in QEMU, next to the Linux reference
//! guest ([`super::linux`]) run in the same QEMU configuration and accelerator (in-QEMU timings
//! measure the emulator as much as us, so the ratio is what matters). Prints a table and writes
//! `target/bench/hv.json`.
//!
//! The reference is part of the benchmark: its packages are installed first (as root; otherwise
//! the bench stops at once with the `sudo apt-get install` line), before minutes of hypervisor
//! runs, and a reference that fails to run fails the bench.

use anyhow::{Result, bail};
use xtask::paths::{Paths, show};
use xtask::qemu::{self, Accel, Machine, Media, Spec};
use xtask::{iso, step};

use super::linux::{self, LinuxRef};
use super::row::{Reference, Row, Samples, Target, print_table, report, rows_of};
use super::{failed_run, median, parse_bench_line, write_json};
use crate::build::BOOT_TIMEOUT;

pub struct Options {
    /// Measure the hypervisor (false: only the Linux reference).
    pub hv: bool,
    pub accel: Accel,
    pub machine: Machine,
    pub runs: usize,
}

/// The line that marks "the default topology is up".
const ALL_RUNNING: &str = "[dom0] all domains running";

/// Why a hypervisor figure has no reference when the Linux reference failed.
const NO_LINUX: &str = "the Linux reference failed in this run";

/// The reference and target of a hypervisor metric.
pub(super) fn judge(
    metric: &str,
    linux: Option<&LinuxRef>,
    local_copy_ns: Option<f64>,
    tcg: bool,
) -> (Reference, Option<Target>) {
    let l = |what: &'static str, f: fn(&LinuxRef) -> f64| {
        linux.map_or(Reference::Absent(NO_LINUX), |l| Reference::Measured(what, f(l)))
    };
    let absolute = Reference::Absent("absolute target");
    match metric {
        "null_hypercall_cycles" => {
            (l("linux null syscall", |l| l.null_syscall_cycles), Some(Target::RelativeToReference(1.0)))
        }
        "null_hypercall_ns" => (l("linux null syscall", |l| l.null_syscall_ns), Some(Target::RelativeToReference(1.0))),
        "domain_create_us" => (absolute, Some(Target::Below(1000.0))),
        "domain_create_ns" => (absolute, Some(Target::Below(1_000_000.0))),
        "evtchn_roundtrip_ns" => {
            (l("linux pipe ping-pong", |l| l.pipe_roundtrip_ns), Some(Target::RelativeToReference(0.5)))
        }
        "evtchn_roundtrip_cycles" => {
            (l("linux pipe ping-pong", |l| l.pipe_roundtrip_cycles), Some(Target::RelativeToReference(0.5)))
        }
        "grant_copy_batch32_per_page_ns" => (
            local_copy_ns.map_or(Reference::Absent("no local_copy_per_page_ns figure in this run"), |v| {
                Reference::Measured("plain copy in one domain", v)
            }),
            Some(Target::RelativeToReference(1.5)),
        ),
        "boot_direct_ms" => (l("linux boot to init", |l| l.boot_to_init_ms), tcg.then_some(Target::Below(150.0))),
        "boot_iso_ms" => (l("linux boot to init", |l| l.boot_to_init_ms), None),
        "local_copy_per_page_ns" => (Reference::Absent("it is the reference of grant_copy_batch32_per_page_ns"), None),
        _ => (Reference::Absent("reported for context, no comparable figure"), None),
    }
}

/// Why the Linux reference's own rows have no reference.
pub(super) const LINUX_IS_REFERENCE: &str = "it is the Linux reference";

pub fn run(paths: &Paths, o: Options) -> Result<Vec<Row>> {
    // The reference first: missing packages stop us here, with the command to run.
    let reference = linux::Reference::prepare(paths)?;
    let mut errors: Vec<String> = Vec::new();
    let mut hv = Samples::new();
    if o.hv
        && let Err(e) = measure_hv(paths, &o, &mut hv)
    {
        errors.push(format!("hypervisor benchmarks: {e:#}"));
    }
    let linux_runs = o.runs.min(3);
    let linux = match reference.measure(o.accel, o.machine, linux_runs) {
        Ok(l) => Some(l),
        Err(e) => {
            errors.push(format!("Linux reference: {e:#}"));
            None
        }
    };

    let tcg = o.accel == Accel::Tcg;
    let local_copy_ns = hv.get_mut("local_copy_per_page_ns").map(|(v, _)| median(v));
    let mut rows = rows_of(hv, |m| judge(m, linux.as_ref(), local_copy_ns, tcg));
    if let Some(l) = &linux {
        rows.extend(rows_of(l.samples.clone(), |_| (Reference::Absent(LINUX_IS_REFERENCE), None)));
    }

    print_table(&rows, o.accel, o.machine);
    write_json(paths, "hv.json", &report(&rows, o.accel, o.machine, o.runs, linux.as_ref()))?;
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(rows)
}

/// Boots one benchmark topology and adds its `BENCH` lines to `out`; fails (with the serial log)
/// unless every domain ended as expected and at least `min_lines` figures came out; returns the run.
pub fn collect_bench_run(spec: &Spec, what: &str, min_lines: usize, out: &mut Samples) -> Result<qemu::Run> {
    let run = qemu::run_captured(spec, BOOT_TIMEOUT, None)?;
    let found: Vec<_> = run.lines.iter().filter_map(|l| parse_bench_line(l)).collect();
    if run.exit_code != Some(qemu::EXIT_ALL_EXPECTED) || found.len() < min_lines {
        return Err(failed_run(&format!("the {what} topology failed ({} BENCH lines)", found.len()), &run));
    }
    for (metric, value, unit) in found {
        out.entry(metric).or_insert_with(|| (Vec::new(), unit)).0.push(value);
    }
    Ok(run)
}

fn measure_hv(paths: &Paths, o: &Options, out: &mut Samples) -> Result<()> {
    let bench = crate::build::prepare(paths, Some("bench"))?;
    step("bundling topology default");
    let default = xtask::topology::load(&paths.root, Some("default"))?;
    let default_bundle = xtask::artifacts::write_bundle(paths, &default, &bench.image_dir)?;
    let iso_path = paths.topology_iso("default");
    step("grub-mkrescue (default topology)");
    iso::make_iso(&bench.hypervisor(), &default_bundle, &iso_path)?;

    let spec = |media| Spec { machine: o.machine, accel: o.accel, ..Spec::new(media) };
    // Each topology measures alone: domains measuring wall time must not share the CPU with
    // others (`bench`: creation and null hypercall; `bench-io`: event channels and grants).
    let io = xtask::topology::load(&paths.root, Some("bench-io"))?;
    let io_bundle = xtask::artifacts::write_bundle(paths, &io, &bench.image_dir)?;
    let runs = [bench.bundle.clone(), io_bundle].into_iter().flat_map(|b| (0..o.runs).map(move |i| (b.clone(), i)));
    for (bundle, i) in runs {
        let bench_spec = spec(Media::Direct { kernel: bench.hypervisor(), initrd: bundle.clone(), append: None });
        step(format!("{}, run {}/{}", show(&bundle, &paths.root), i + 1, o.runs));
        collect_bench_run(&bench_spec, "bench", 1, out)?;
    }

    let direct = spec(Media::Direct { kernel: bench.hypervisor(), initrd: default_bundle, append: None });
    let via_iso = spec(Media::Iso(iso_path));
    for (metric, spec) in [("boot_direct_ms", &direct), ("boot_iso_ms", &via_iso)] {
        for i in 0..o.runs {
            step(format!("default topology up ({metric}), run {}/{}", i + 1, o.runs));
            let run = qemu::run_captured(spec, BOOT_TIMEOUT, Some(&|l: &str| l == ALL_RUNNING))?;
            let Some(t) = run.time_of(|l| l == ALL_RUNNING) else {
                return Err(failed_run(&format!("the default topology never printed {ALL_RUNNING:?}"), &run));
            };
            out.entry(metric.into()).or_insert_with(|| (Vec::new(), "ms".into())).0.push(t.as_secs_f64() * 1e3);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypercall_and_event_figures_are_judged_against_linux() {
        let l = LinuxRef {
            kernel: "/boot/vmlinuz-6.1.0-1-amd64".into(),
            null_syscall_cycles: 200.0,
            null_syscall_ns: 100.0,
            pipe_roundtrip_cycles: 4000.0,
            pipe_roundtrip_ns: 2000.0,
            boot_to_init_ms: 300.0,
            samples: Samples::new(),
        };
        let (r, t) = judge("null_hypercall_cycles", Some(&l), None, true);
        assert_eq!(r, Reference::Measured("linux null syscall", 200.0));
        assert!(matches!(t, Some(Target::RelativeToReference(f)) if f == 1.0));
        assert_eq!(
            judge("evtchn_roundtrip_ns", Some(&l), None, true).0,
            Reference::Measured("linux pipe ping-pong", 2000.0)
        );
        assert_eq!(judge("null_hypercall_ns", None, None, true).0, Reference::Absent(NO_LINUX));
        assert!(judge("boot_direct_ms", Some(&l), None, false).1.is_none(), "the boot target is for TCG");
        assert!(matches!(judge("something_new", Some(&l), None, true), (Reference::Absent(_), None)));
    }
}
