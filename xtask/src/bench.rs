//! `cargo xtask bench`: hypervisor figures measured in QEMU, next to a Linux reference guest run
//! in the same QEMU configuration and accelerator (in-QEMU timings measure the emulator as much
//! as us, so the ratio is what matters). Prints a table and writes `target/bench/hv.json`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Result, bail};
use xtask::paths::{Paths, show};
use xtask::qemu::{self, Accel, Machine, Media, Spec};
use xtask::{iso, json_str, step};

use crate::linux_ref::{self, LinuxRef};

pub struct Options {
    pub hv: bool,
    pub linux: bool,
    pub accel: Accel,
    pub machine: Machine,
    pub runs: usize,
}

/// The line that marks "the default topology is up".
const ALL_RUNNING: &str = "[dom0] all domains running";

/// Median (mean of the middle two for even counts); NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// `[<domain>] BENCH <metric> <value> <unit>` → (metric, value, unit).
pub fn parse_bench_line(line: &str) -> Option<(String, f64, String)> {
    let rest = line.strip_prefix('[')?.split_once("] ")?.1.strip_prefix("BENCH ")?;
    let mut it = rest.split_whitespace();
    let (metric, value, unit) = (it.next()?, it.next()?.parse().ok()?, it.next().unwrap_or(""));
    Some((metric.to_owned(), value, unit.to_owned()))
}

enum Target {
    /// value ≤ factor × reference
    RelativeToReference(f64),
    /// value < limit
    Below(f64),
    /// value ≥ factor × reference (higher is better)
    AtLeast(f64),
}

struct Row {
    metric: String,
    value: f64,
    unit: String,
    runs: usize,
    reference: Option<(&'static str, f64)>,
    target: Option<Target>,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        self.reference.map(|(_, r)| self.value / r).filter(|r| r.is_finite())
    }

    fn target_text(&self) -> String {
        match self.target {
            Some(Target::RelativeToReference(f)) => format!("<= {f}x ref"),
            Some(Target::Below(l)) => format!("< {l} {}", self.unit),
            Some(Target::AtLeast(f)) => format!(">= {f}x ref"),
            None => "-".into(),
        }
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

pub fn run(paths: &Paths, o: Options) -> Result<()> {
    let mut errors: Vec<String> = Vec::new();
    let mut hv: BTreeMap<String, (Vec<f64>, String)> = BTreeMap::new();
    if o.hv
        && let Err(e) = measure_hv(paths, &o, &mut hv)
    {
        errors.push(format!("hypervisor benchmarks: {e:#}"));
    }
    let mut linux: Option<LinuxRef> = None;
    if o.linux {
        match linux_ref::measure(paths, o.accel, o.machine, o.runs.min(3)) {
            Ok(l) => linux = Some(l),
            Err(e) => errors.push(format!("Linux reference: {e:#}")),
        }
    }

    let tcg = o.accel == Accel::Tcg;
    let local_copy_ns = hv.get_mut("local_copy_per_page_ns").map(|(v, _)| median(v));
    let mut rows: Vec<Row> = Vec::new();
    for (metric, (values, unit)) in &mut hv {
        let n = values.len();
        let value = median(values);
        let (reference, target) = match metric.as_str() {
            "null_hypercall_cycles" => (
                linux.as_ref().map(|l| ("linux null syscall", l.null_syscall_cycles)),
                Some(Target::RelativeToReference(1.0)),
            ),
            "null_hypercall_ns" => (
                linux.as_ref().map(|l| ("linux null syscall", l.null_syscall_ns)),
                Some(Target::RelativeToReference(1.0)),
            ),
            "domain_create_us" => (None, Some(Target::Below(1000.0))),
            "evtchn_roundtrip_ns" => (
                linux.as_ref().map(|l| ("linux pipe ping-pong", l.pipe_roundtrip_ns)),
                Some(Target::RelativeToReference(0.5)),
            ),
            "evtchn_roundtrip_cycles" => (
                linux.as_ref().map(|l| ("linux pipe ping-pong", l.pipe_roundtrip_cycles)),
                Some(Target::RelativeToReference(0.5)),
            ),
            "grant_copy_batch32_per_page_ns" => {
                (local_copy_ns.map(|v| ("plain copy in one domain", v)), Some(Target::RelativeToReference(1.5)))
            }
            "domain_create_ns" => (None, Some(Target::Below(1_000_000.0))),
            "boot_direct_ms" => {
                (linux.as_ref().map(|l| ("linux boot to init", l.boot_to_init_ms)), tcg.then_some(Target::Below(150.0)))
            }
            "boot_iso_ms" => (linux.as_ref().map(|l| ("linux boot to init", l.boot_to_init_ms)), None),
            _ => (None, None),
        };
        rows.push(Row { metric: metric.clone(), value, unit: unit.clone(), runs: n, reference, target });
    }
    if let Some(l) = &linux {
        for (metric, value, unit) in [
            ("linux_null_syscall_cycles", l.null_syscall_cycles, "cycles"),
            ("linux_null_syscall_ns", l.null_syscall_ns, "ns"),
            ("linux_pipe_roundtrip_cycles", l.pipe_roundtrip_cycles, "cycles"),
            ("linux_pipe_roundtrip_ns", l.pipe_roundtrip_ns, "ns"),
            ("linux_boot_to_init_ms", l.boot_to_init_ms, "ms"),
        ] {
            rows.push(Row {
                metric: metric.into(),
                value,
                unit: unit.into(),
                runs: o.runs.min(3),
                reference: None,
                target: None,
            });
        }
    }

    print_table(&rows, &o);
    let json = to_json(&rows, &o, linux.as_ref());
    let out = paths.bench_dir().join("hv.json");
    xtask::artifacts::write_atomically(&out, json.as_bytes())?;
    println!("\nwrote {}", show(&out, &paths.root));
    if !errors.is_empty() {
        bail!("{}", errors.join("\n"));
    }
    Ok(())
}

/// Boots one benchmark topology and adds its `BENCH` lines to `out`; fails (with the serial log)
/// unless every domain ended as expected and at least `min_lines` figures came out.
fn collect_bench_run(
    spec: &Spec,
    what: &str,
    min_lines: usize,
    out: &mut BTreeMap<String, (Vec<f64>, String)>,
) -> Result<()> {
    let run = qemu::run_captured(spec, crate::BOOT_TIMEOUT, None)?;
    let found: Vec<_> = run.lines.iter().filter_map(|l| parse_bench_line(l)).collect();
    if run.exit_code != Some(qemu::EXIT_ALL_EXPECTED) || found.len() < min_lines {
        bail!(
            "the {what} topology failed ({}; {} BENCH lines); command: {}\nserial:\n{}\nstderr:\n{}",
            run.outcome(),
            found.len(),
            run.command,
            run.lines.join("\n"),
            run.stderr
        );
    }
    for (metric, value, unit) in found {
        out.entry(metric).or_insert_with(|| (Vec::new(), unit)).0.push(value);
    }
    Ok(())
}

/// `cargo xtask bench blk`: the `bench-blk` topology `runs` times; each DomU-through-blkback
/// figure is compared with blkback running the same pattern directly on the device, same run.
pub fn run_blk(paths: &Paths, accel: Accel, machine: Machine, runs: usize) -> Result<()> {
    let p = crate::prepare(paths, Some("bench-blk"))?;
    let mut out: BTreeMap<String, (Vec<f64>, String)> = BTreeMap::new();
    for i in 0..runs {
        let mut spec = Spec {
            machine,
            accel,
            ..Spec::new(Media::Direct { kernel: p.hypervisor(), initrd: p.bundle.clone(), append: None })
        };
        spec.disks = xtask::disks::images(&paths.disks_dir("bench-blk"), &p.topology, true)?;
        step(format!("bench-blk topology, run {}/{runs}", i + 1));
        collect_bench_run(&spec, "bench-blk", 6, &mut out)?;
    }
    let mut medians: BTreeMap<String, (f64, String, usize)> = BTreeMap::new();
    for (m, (v, unit)) in &mut out {
        let n = v.len();
        medians.insert(m.clone(), (median(v), unit.clone(), n));
    }
    let mut rows = Vec::new();
    for (metric, (value, unit, n)) in &medians {
        let reference = metric
            .strip_prefix("blk_front_")
            .and_then(|rest| medians.get(&format!("blk_direct_{rest}")))
            .map(|(v, _, _)| ("blkback on the device", *v));
        let target = reference.is_some().then_some(Target::AtLeast(0.8));
        rows.push(Row { metric: metric.clone(), value: *value, unit: unit.clone(), runs: *n, reference, target });
    }
    let o = Options { hv: true, linux: false, accel, machine, runs };
    print_table(&rows, &o);
    let json = to_json(&rows, &o, None);
    let path = paths.bench_dir().join("blk.json");
    xtask::artifacts::write_atomically(&path, json.as_bytes())?;
    println!("\nwrote {}", show(&path, &paths.root));
    Ok(())
}

fn measure_hv(paths: &Paths, o: &Options, out: &mut BTreeMap<String, (Vec<f64>, String)>) -> Result<()> {
    let bench = crate::prepare(paths, Some("bench"))?;
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
            let run = qemu::run_captured(spec, crate::BOOT_TIMEOUT, Some(&|l: &str| l == ALL_RUNNING))?;
            let Some(t) = run.time_of(|l| l == ALL_RUNNING) else {
                bail!(
                    "the default topology never printed {ALL_RUNNING:?} ({}); command: {}\nserial:\n{}\nstderr:\n{}",
                    run.outcome(),
                    run.command,
                    run.lines.join("\n"),
                    run.stderr
                );
            };
            out.entry(metric.into()).or_insert_with(|| (Vec::new(), "ms".into())).0.push(t.as_secs_f64() * 1e3);
        }
    }
    Ok(())
}

fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn print_table(rows: &[Row], o: &Options) {
    println!(
        "\nhv-core benchmarks: QEMU -machine {} -accel {} (medians; in-QEMU figures are only meaningful as ratios to the reference)\n",
        o.machine.name(),
        o.accel.name()
    );
    let head = ["metric", "value", "unit", "reference", "(what)", "ratio", "target", "verdict"];
    println!(
        "{:<28} {:>12} {:<7} {:>12}  {:<20} {:>7}  {:<16} {}",
        head[0], head[1], head[2], head[3], head[4], head[5], head[6], head[7]
    );
    for r in rows {
        let (rv, rn) = r.reference.map(|(n, v)| (fmt_num(v), n)).unwrap_or(("-".into(), ""));
        let ratio = r.ratio().map(|x| format!("{x:.2}x")).unwrap_or("-".into());
        let verdict = match r.verdict() {
            Some(true) => "met",
            Some(false) => "MISSED",
            None if r.target.is_some() => "n/a (no reference)",
            None => "",
        };
        println!(
            "{:<28} {:>12} {:<7} {:>12}  {:<20} {:>7}  {:<16} {}",
            r.metric,
            fmt_num(r.value),
            r.unit,
            rv,
            rn,
            ratio,
            r.target_text(),
            verdict
        );
    }
    if rows.iter().any(|r| r.metric == "boot_direct_ms") && o.accel != Accel::Tcg {
        println!("(the 150 ms boot target is defined for TCG)");
    }
}

fn json_num(v: f64) -> String {
    if v.is_finite() { format!("{v}") } else { "null".into() }
}

fn to_json(rows: &[Row], o: &Options, linux: Option<&LinuxRef>) -> String {
    let mut s = String::from("{\n");
    let _ = writeln!(
        s,
        "  \"accel\": {},\n  \"machine\": {},\n  \"runs\": {},",
        json_str(o.accel.name()),
        json_str(o.machine.name()),
        o.runs
    );
    match linux {
        Some(l) => {
            let _ = writeln!(
                s,
                "  \"linux_reference\": {{\"kernel\": {}, \"null_syscall_cycles\": {}, \"null_syscall_ns\": {}, \"boot_to_init_ms\": {}}},",
                json_str(&l.kernel.display().to_string()),
                json_num(l.null_syscall_cycles),
                json_num(l.null_syscall_ns),
                json_num(l.boot_to_init_ms)
            );
        }
        None => s.push_str("  \"linux_reference\": null,\n"),
    }
    s.push_str("  \"metrics\": [\n");
    for (i, r) in rows.iter().enumerate() {
        let _ = write!(
            s,
            "    {{\"metric\": {}, \"value\": {}, \"unit\": {}, \"runs\": {}, \"reference\": {}, \"reference_what\": {}, \"ratio\": {}, \"target\": {}, \"met\": {}}}",
            json_str(&r.metric),
            json_num(r.value),
            json_str(&r.unit),
            r.runs,
            r.reference.map(|(_, v)| json_num(v)).unwrap_or("null".into()),
            r.reference.map(|(n, _)| json_str(n)).unwrap_or("null".into()),
            r.ratio().map(json_num).unwrap_or("null".into()),
            if r.target.is_some() { json_str(&r.target_text()) } else { "null".into() },
            r.verdict().map(|b| b.to_string()).unwrap_or("null".into()),
        );
        s.push_str(if i + 1 < rows.len() { ",\n" } else { "\n" });
    }
    s.push_str("  ]\n}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bench_lines() {
        assert_eq!(
            parse_bench_line("[bench] BENCH null_hypercall_cycles 123.4 cycles"),
            Some(("null_hypercall_cycles".into(), 123.4, "cycles".into()))
        );
        assert_eq!(parse_bench_line("[b2] BENCH domain_create_us 5 us").unwrap().1, 5.0);
        assert_eq!(parse_bench_line("[bench] hello"), None);
        assert_eq!(parse_bench_line("BENCH x 1 ns"), None);
        assert_eq!(parse_bench_line("[bench] BENCH x notanumber ns"), None);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
    }

    #[test]
    fn json_is_well_formed_enough() {
        let o = Options { hv: true, linux: true, accel: Accel::Tcg, machine: Machine::Q35, runs: 5 };
        let rows = vec![Row {
            metric: "null_hypercall_cycles".into(),
            value: 100.0,
            unit: "cycles".into(),
            runs: 5,
            reference: Some(("linux null syscall", 200.0)),
            target: Some(Target::RelativeToReference(1.0)),
        }];
        let j = to_json(&rows, &o, None);
        assert!(
            j.contains("\"ratio\": 0.5") && j.contains("\"met\": true") && j.contains("\"linux_reference\": null"),
            "{j}"
        );
        assert_eq!(j.matches('{').count(), j.matches('}').count());
        assert_eq!(json_str("a\"b\n"), "\"a\\\"b\\u000a\"");
    }
}
