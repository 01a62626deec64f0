//! `cargo xtask bench hv`: hypervisor figures measured in QEMU, next to the Linux reference
//! guest ([`super::linux`]) run in the same QEMU configuration and accelerator (in-QEMU timings
//! measure the emulator as much as us, so the ratio is what matters). Prints a table and writes
//! `target/bench/hv.json`.
//!
//! The reference is part of the benchmark: its packages are installed first (as root; otherwise
//! the bench stops at once with the `sudo apt-get install` line), before minutes of hypervisor
//! runs, and a reference that fails to run fails the bench.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::Serialize;
use xtask::paths::{Paths, show};
use xtask::qemu::{self, Accel, Machine, Media, Spec};
use xtask::{iso, step};

use super::linux::{self, LinuxRef};
use super::{failed_run, fmt_num, median, parse_bench_line, print_columns, write_json};
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

/// Figures per metric: (values, unit).
pub type Samples = BTreeMap<String, (Vec<f64>, String)>;

pub enum Target {
    /// value ≤ factor × reference
    RelativeToReference(f64),
    /// value < limit
    Below(f64),
    /// value ≥ factor × reference (higher is better)
    AtLeast(f64),
}

/// One metric: its median, its reference (what, value) and its target.
pub struct Row {
    pub metric: String,
    pub value: f64,
    pub unit: String,
    pub runs: usize,
    pub reference: Option<(&'static str, f64)>,
    pub target: Option<Target>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.reference.map(|(_, r)| self.value / r).filter(|r| r.is_finite())
    }

    fn target_text(&self) -> Option<String> {
        Some(match self.target.as_ref()? {
            Target::RelativeToReference(f) => format!("<= {f}x ref"),
            Target::Below(l) => format!("< {l} {}", self.unit),
            Target::AtLeast(f) => format!(">= {f}x ref"),
        })
    }

    fn verdict(&self) -> Option<bool> {
        match self.target {
            Some(Target::RelativeToReference(f)) => self.ratio().map(|r| r <= f),
            Some(Target::Below(l)) => Some(self.value < l),
            Some(Target::AtLeast(f)) => self.ratio().map(|r| r >= f),
            None => None,
        }
    }
}

/// The reference and target of a hypervisor metric.
pub(super) fn judge(
    metric: &str,
    linux: Option<&LinuxRef>,
    local_copy_ns: Option<f64>,
    tcg: bool,
) -> (Option<(&'static str, f64)>, Option<Target>) {
    let l = |what: &'static str, f: fn(&LinuxRef) -> f64| linux.map(|l| (what, f(l)));
    match metric {
        "null_hypercall_cycles" => {
            (l("linux null syscall", |l| l.null_syscall_cycles), Some(Target::RelativeToReference(1.0)))
        }
        "null_hypercall_ns" => (l("linux null syscall", |l| l.null_syscall_ns), Some(Target::RelativeToReference(1.0))),
        "domain_create_us" => (None, Some(Target::Below(1000.0))),
        "domain_create_ns" => (None, Some(Target::Below(1_000_000.0))),
        "evtchn_roundtrip_ns" => {
            (l("linux pipe ping-pong", |l| l.pipe_roundtrip_ns), Some(Target::RelativeToReference(0.5)))
        }
        "evtchn_roundtrip_cycles" => {
            (l("linux pipe ping-pong", |l| l.pipe_roundtrip_cycles), Some(Target::RelativeToReference(0.5)))
        }
        "grant_copy_batch32_per_page_ns" => {
            (local_copy_ns.map(|v| ("plain copy in one domain", v)), Some(Target::RelativeToReference(1.5)))
        }
        "boot_direct_ms" => (l("linux boot to init", |l| l.boot_to_init_ms), tcg.then_some(Target::Below(150.0))),
        "boot_iso_ms" => (l("linux boot to init", |l| l.boot_to_init_ms), None),
        _ => (None, None),
    }
}

pub fn run(paths: &Paths, o: Options) -> Result<()> {
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
    let mut rows: Vec<Row> = Vec::new();
    for (metric, (values, unit)) in &mut hv {
        let runs = values.len();
        let (reference, target) = judge(metric, linux.as_ref(), local_copy_ns, tcg);
        rows.push(Row { metric: metric.clone(), value: median(values), unit: unit.clone(), runs, reference, target });
    }
    if let Some(l) = &linux {
        for (metric, value, unit) in [
            ("linux_null_syscall_cycles", l.null_syscall_cycles, "cycles"),
            ("linux_null_syscall_ns", l.null_syscall_ns, "ns"),
            ("linux_pipe_roundtrip_cycles", l.pipe_roundtrip_cycles, "cycles"),
            ("linux_pipe_roundtrip_ns", l.pipe_roundtrip_ns, "ns"),
            ("linux_boot_to_init_ms", l.boot_to_init_ms, "ms"),
        ] {
            let (metric, unit) = (metric.into(), unit.into());
            rows.push(Row { metric, value, unit, runs: linux_runs, reference: None, target: None });
        }
    }

    print_table(&rows, o.accel, o.machine);
    write_json(paths, "hv.json", &report(&rows, o.accel, o.machine, o.runs, linux.as_ref()))?;
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}

/// Boots one benchmark topology and adds its `BENCH` lines to `out`; fails (with the serial log)
/// unless every domain ended as expected and at least `min_lines` figures came out.
pub fn collect_bench_run(spec: &Spec, what: &str, min_lines: usize, out: &mut Samples) -> Result<()> {
    let run = qemu::run_captured(spec, BOOT_TIMEOUT, None)?;
    let found: Vec<_> = run.lines.iter().filter_map(|l| parse_bench_line(l)).collect();
    if run.exit_code != Some(qemu::EXIT_ALL_EXPECTED) || found.len() < min_lines {
        return Err(failed_run(&format!("the {what} topology failed ({} BENCH lines)", found.len()), &run));
    }
    for (metric, value, unit) in found {
        out.entry(metric).or_insert_with(|| (Vec::new(), unit)).0.push(value);
    }
    Ok(())
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

/// The table of [`Row`]s (also `bench blk`'s).
pub fn print_table(rows: &[Row], accel: Accel, machine: Machine) {
    println!(
        "\nhv-core benchmarks: QEMU -machine {} -accel {} (medians; in-QEMU figures are only meaningful as ratios to the reference)\n",
        machine.name(),
        accel.name()
    );
    let head = ["metric", "value", "unit", "reference", "(what)", "ratio", "target", "verdict"];
    let mut table: Vec<[String; 8]> = vec![head.map(String::from)];
    for r in rows {
        let (rv, rn) = r.reference.map_or(("-".into(), ""), |(n, v)| (fmt_num(v), n));
        let verdict = match r.verdict() {
            Some(true) => "met",
            Some(false) => "MISSED",
            // Only when measuring the reference failed (the error follows the table).
            None if r.target.is_some() => "unjudged",
            None => "",
        };
        table.push([
            r.metric.clone(),
            fmt_num(r.value),
            r.unit.clone(),
            rv,
            rn.into(),
            r.ratio().map_or("-".into(), |x| format!("{x:.2}x")),
            r.target_text().unwrap_or("-".into()),
            verdict.into(),
        ]);
    }
    print_columns(&table);
    if rows.iter().any(|r| r.metric == "boot_direct_ms") && accel != Accel::Tcg {
        println!("(the 150 ms boot target is defined for TCG)");
    }
}

/// `hv.json` (and `blk.json`).
#[derive(Serialize)]
pub struct Report<'a> {
    accel: &'static str,
    machine: &'static str,
    runs: usize,
    linux_reference: Option<LinuxReference>,
    metrics: Vec<Metric<'a>>,
}

#[derive(Serialize)]
struct LinuxReference {
    kernel: String,
    null_syscall_cycles: f64,
    null_syscall_ns: f64,
    boot_to_init_ms: f64,
}

#[derive(Serialize)]
struct Metric<'a> {
    metric: &'a str,
    value: f64,
    unit: &'a str,
    runs: usize,
    reference: Option<f64>,
    reference_what: Option<&'static str>,
    ratio: Option<f64>,
    target: Option<String>,
    met: Option<bool>,
}

pub fn report<'a>(
    rows: &'a [Row],
    accel: Accel,
    machine: Machine,
    runs: usize,
    linux: Option<&LinuxRef>,
) -> Report<'a> {
    Report {
        accel: accel.name(),
        machine: machine.name(),
        runs,
        linux_reference: linux.map(|l| LinuxReference {
            kernel: l.kernel.display().to_string(),
            null_syscall_cycles: l.null_syscall_cycles,
            null_syscall_ns: l.null_syscall_ns,
            boot_to_init_ms: l.boot_to_init_ms,
        }),
        metrics: rows
            .iter()
            .map(|r| Metric {
                metric: &r.metric,
                value: r.value,
                unit: &r.unit,
                runs: r.runs,
                reference: r.reference.map(|(_, v)| v),
                reference_what: r.reference.map(|(n, _)| n),
                ratio: r.ratio(),
                target: r.target_text(),
                met: r.verdict(),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_its_shape() {
        let rows = vec![
            Row {
                metric: "null_hypercall_cycles".into(),
                value: 100.0,
                unit: "cycles".into(),
                runs: 5,
                reference: Some(("linux null syscall", 200.0)),
                target: Some(Target::RelativeToReference(1.0)),
            },
            Row { metric: "x".into(), value: f64::NAN, unit: "ns".into(), runs: 0, reference: None, target: None },
        ];
        let j = serde_json::to_value(report(&rows, Accel::Tcg, Machine::Q35, 5, None)).unwrap();
        assert_eq!(
            j,
            serde_json::json!({
                "accel": "tcg", "machine": "q35", "runs": 5, "linux_reference": null,
                "metrics": [
                    {"metric": "null_hypercall_cycles", "value": 100.0, "unit": "cycles", "runs": 5,
                     "reference": 200.0, "reference_what": "linux null syscall", "ratio": 0.5,
                     "target": "<= 1x ref", "met": true},
                    {"metric": "x", "value": null, "unit": "ns", "runs": 0, "reference": null,
                     "reference_what": null, "ratio": null, "target": null, "met": null}
                ]
            })
        );
    }

    #[test]
    fn hypercall_and_event_figures_are_judged_against_linux() {
        let l = LinuxRef {
            kernel: "/boot/vmlinuz-6.1.0-1-amd64".into(),
            null_syscall_cycles: 200.0,
            null_syscall_ns: 100.0,
            pipe_roundtrip_cycles: 4000.0,
            pipe_roundtrip_ns: 2000.0,
            boot_to_init_ms: 300.0,
        };
        let (r, t) = judge("null_hypercall_cycles", Some(&l), None, true);
        assert_eq!(r, Some(("linux null syscall", 200.0)));
        assert!(matches!(t, Some(Target::RelativeToReference(f)) if f == 1.0));
        assert_eq!(judge("evtchn_roundtrip_ns", Some(&l), None, true).0, Some(("linux pipe ping-pong", 2000.0)));
        assert!(judge("boot_direct_ms", Some(&l), None, false).1.is_none(), "the boot target is for TCG");
        assert!(judge("something_new", Some(&l), None, true).0.is_none());
    }
}
