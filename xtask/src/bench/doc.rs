//! docs/bench.md: the rows of every benchmark `cargo xtask bench all` ran, in one table (metric,
//! value with its spread over the runs, reference, ratio, target, met), under the conditions they
//! were measured in (date, QEMU, host CPU, accelerator, runs) and how to measure them again.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Result;
use xtask::paths::{Paths, show};
use xtask::qemu::{Accel, Machine};

use super::row::{Reference, Row};
use super::{fmt_num, iommu};

/// Where the page goes, under the workspace root.
pub const PATH: &str = "docs/bench.md";
/// The command the page tells to rerun.
const RERUN: &str = "cargo xtask bench all --runs 3";

/// What the IOMMU rows mean, on a page that has them.
const IOMMU_ROWS: &str = "`(IOMMU on)` and `(IOMMU off)` (`blk`, `net`): the same measurement made in one invocation with \
     the virtio devices behind QEMU's Intel IOMMU (VT-d, every topology's default) and without it; the targets judge \
     the IOMMU-on rows, the default configuration. `: IOMMU on vs off` rows: the IOMMU-on figure against the \
     IOMMU-off one, the cost of DMA remapping (the device's accesses translated through QEMU's emulated IOTLB; the \
     hypervisor maps a driver domain's RAM once, at its start, so no I/O waits for an invalidation). They have no \
     target: the cost is reported, not judged (none is set for it).\n\n";

/// What the figures were measured on.
pub struct Setup {
    pub date: String,
    pub qemu: String,
    pub cpu: String,
    pub accel: &'static str,
    pub machine: &'static str,
    pub runs: usize,
}

impl Setup {
    /// Today's date (UTC), `qemu-system-x86_64 --version` and /proc/cpuinfo's model name.
    pub fn of_host(accel: Accel, machine: Machine, runs: usize) -> Self {
        let qemu = Command::new("qemu-system-x86_64").arg("--version").output();
        let qemu = match qemu {
            Ok(o) if o.status.success() => String::from_utf8_lossy(&o.stdout).lines().next().unwrap_or("").to_owned(),
            Ok(o) => format!("unknown (qemu-system-x86_64 --version: {})", o.status),
            Err(e) => format!("unknown (qemu-system-x86_64 --version: {e})"),
        };
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpu_model(&cpuinfo).unwrap_or("unknown (no model name in /proc/cpuinfo)").to_owned();
        let days = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() / 86_400);
        Self { date: date_of(days), qemu, cpu, accel: accel.name(), machine: machine.name(), runs }
    }
}

/// How one benchmark of `bench all` went.
pub enum Outcome {
    Ran(Vec<Row>),
    /// The error's first line.
    Failed(String),
    /// Left out with `--skip`.
    Skipped,
}

/// Renders the page and writes it to [`PATH`].
pub fn write(paths: &Paths, setup: &Setup, benches: &[(&str, Outcome)]) -> Result<()> {
    let out = paths.root.join(PATH);
    xtask::artifacts::write_atomically(&out, render(setup, benches).as_bytes())?;
    println!("\nwrote {}", show(&out, &paths.root));
    Ok(())
}

/// The page.
pub fn render(setup: &Setup, benches: &[(&str, Outcome)]) -> String {
    let names = |want: fn(&Outcome) -> bool| -> Vec<String> {
        benches.iter().filter(|(_, o)| want(o)).map(|(n, _)| format!("`{n}`")).collect()
    };
    let mut s = String::from("# Benchmarks\n\n");
    s += &format!(
        "Written by `cargo xtask bench all` on {} (do not edit: rerun with `{RERUN}`, which rewrites this page \
         from the figures it measures).\n\n",
        setup.date
    );
    s += &format!("- QEMU: {}\n", setup.qemu);
    s += &format!("- Host CPU: {}\n", setup.cpu);
    s += &format!("- Accelerator: {} (machine {})\n", setup.accel, setup.machine);
    s += &format!(
        "- Runs: {} per measurement (`--runs`; the Linux references, `net` and `linux-io` take at most 3, `ring` \
         runs its own rounds, `xl` times each create cycle and crash of one boot)\n",
        setup.runs
    );
    s += &format!("- Benchmarks: {}\n", names(|o| matches!(o, Outcome::Ran(_))).join(", "));
    let skipped = names(|o| matches!(o, Outcome::Skipped));
    if !skipped.is_empty() {
        s += &format!("- Not run (`--skip`): {}\n", skipped.join(", "));
    }
    for (name, o) in benches {
        if let Outcome::Failed(e) = o {
            s += &format!("- **Failed: `{name}`**: {e} (its figures are missing below)\n");
        }
    }
    s += "\nvalue: the median over the runs, with the spread (min-max) when there were several; ratio: value / \
          reference, both measured in the same run and QEMU configuration (in-QEMU timings measure the emulator as \
          much as us: the ratio is what counts). Each benchmark also writes `target/bench/<name>.json`.\n\n";
    let rows = || benches.iter().filter_map(|(_, o)| if let Outcome::Ran(r) = o { Some(r) } else { None }).flatten();
    if rows().any(|r| r.metric.ends_with(iommu::ON_VS_OFF)) {
        s += IOMMU_ROWS;
    }
    s += "| metric | value | reference | ratio | target | met |\n|---|---|---|---|---|---|\n";
    for (name, o) in benches {
        if let Outcome::Ran(rows) = o {
            for r in rows {
                s += &format!("| {} |\n", cells(name, r).join(" | "));
            }
        }
    }
    s
}

/// A row's six cells.
fn cells(bench: &str, r: &Row) -> [String; 6] {
    let with_unit = |v: f64| if v.is_finite() { format!("{} {}", fmt_num(v), r.unit) } else { "—".into() };
    let value = match (r.runs(), r.spread()) {
        (0, _) => "— (no figure)".into(),
        (_, Some((lo, hi))) => {
            format!("{} (median of {}: {}-{})", with_unit(r.value), r.runs(), fmt_num(lo), fmt_num(hi))
        }
        (n, None) => format!("{} ({n} run{})", with_unit(r.value), if n == 1 { "" } else { "s" }),
    };
    let reference = match r.reference {
        Reference::Measured(what, v) => format!("{} ({what})", with_unit(v)),
        Reference::Absent(why) => format!("— (no reference: {why})"),
    };
    let met = match r.verdict() {
        Some(true) => "met".into(),
        Some(false) => "**missed**".into(),
        None if r.target.is_some() => "unjudged (no reference)".into(),
        None => "—".into(),
    };
    [
        format!("{bench} `{}`", r.metric),
        value,
        reference,
        r.ratio().map_or("—".into(), |x| format!("{x:.2}x")),
        r.target_text().unwrap_or("—".into()),
        met,
    ]
}

/// The `model name` of /proc/cpuinfo's first processor.
fn cpu_model(cpuinfo: &str) -> Option<&str> {
    cpuinfo.lines().find_map(|l| {
        let (key, value) = l.split_once(':')?;
        (key.trim() == "model name").then(|| value.trim())
    })
}

/// `YYYY-MM-DD` of a day counted from 1970-01-01 (the proleptic Gregorian calendar).
fn date_of(days: u64) -> String {
    // Howard Hinnant's civil_from_days, for days on or after the epoch.
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::row::Target;

    fn setup() -> Setup {
        Setup {
            date: "2026-12-03".into(),
            qemu: "QEMU emulator version 7.2.19".into(),
            cpu: "AMD EPYC 7B13".into(),
            accel: "tcg",
            machine: "q35",
            runs: 3,
        }
    }

    fn table(page: &str) -> Vec<&str> {
        page.lines().filter(|l| l.starts_with("| ")).collect()
    }

    #[test]
    fn renders_one_row_per_figure_with_ratio_verdict_and_spread() {
        let hv = vec![
            Row::new(
                "null_hypercall_cycles",
                "cycles",
                vec![500.0, 300.0, 400.0],
                Reference::Measured("linux null syscall", 800.0),
            )
            .with_target(Some(Target::RelativeToReference(1.0))),
            Row::new("evtchn_roundtrip_ns", "ns", vec![3000.0], Reference::Measured("linux pipe ping-pong", 2000.0))
                .with_target(Some(Target::RelativeToReference(0.5))),
            Row::new("domain_create_us", "us", vec![700.0, 900.0], Reference::Absent("absolute target"))
                .with_target(Some(Target::Below(1000.0))),
        ];
        let net = vec![
            Row::new("DomU -> host TCP", "Mbit/s", vec![], Reference::Absent("the Linux guest gave no such figure"))
                .with_target(Some(Target::AtLeast(1.0))),
        ];
        let page = render(&setup(), &[("hv", Outcome::Ran(hv)), ("net", Outcome::Ran(net))]);
        assert_eq!(
            table(&page),
            [
                "| metric | value | reference | ratio | target | met |",
                "| hv `null_hypercall_cycles` | 400 cycles (median of 3: 300-500) | 800 cycles (linux null syscall) | 0.50x | <= 1x ref | met |",
                "| hv `evtchn_roundtrip_ns` | 3000 ns (1 run) | 2000 ns (linux pipe ping-pong) | 1.50x | <= 0.5x ref | **missed** |",
                "| hv `domain_create_us` | 800 us (median of 2: 700-900) | — (no reference: absolute target) | — | < 1000 us | met |",
                "| net `DomU -> host TCP` | — (no figure) | — (no reference: the Linux guest gave no such figure) | — | >= 1x ref | unjudged (no reference) |",
            ]
        );
        assert!(!page.contains("n/a"));
        for fact in
            ["on 2026-12-03", "QEMU emulator version 7.2.19", "AMD EPYC 7B13", "tcg (machine q35)", "Runs: 3", RERUN]
        {
            assert!(page.contains(fact), "the page does not say {fact:?}:\n{page}");
        }
        assert!(!page.contains("Failed") && !page.contains("Not run"));
        assert!(!page.contains("IOMMU"), "no IOMMU rows, no word about them");
    }

    #[test]
    fn a_page_with_iommu_on_vs_off_rows_says_what_they_are() {
        let on = vec![1000.0, 900.0];
        let blk = vec![
            Row::new("blk_front_seqread_mbps (IOMMU on)", "MB/s", on.clone(), Reference::Absent("x")),
            iommu::on_vs_off("blk_front_seqread_mbps", "MB/s", on, &[1250.0]),
        ];
        let page = render(&setup(), &[("blk", Outcome::Ran(blk))]);
        assert!(page.contains(IOMMU_ROWS), "{page}");
        assert_eq!(
            table(&page)[2],
            "| blk `blk_front_seqread_mbps: IOMMU on vs off` | 950 MB/s (median of 2: 900-1000) | 1250 MB/s (IOMMU off, same invocation) | 0.76x | — | — |"
        );
    }

    #[test]
    fn names_failed_and_skipped_benchmarks_and_keeps_the_others() {
        let ring = vec![Row::new("ring latency", "ns", vec![1.0], Reference::Measured("Xen ring.h", 2.0))];
        let page = render(
            &setup(),
            &[
                ("hv", Outcome::Failed("the bench topology failed (0 BENCH lines)".into())),
                ("ring", Outcome::Ran(ring)),
                ("xl", Outcome::Skipped),
            ],
        );
        assert!(page.contains("- **Failed: `hv`**: the bench topology failed (0 BENCH lines)"), "{page}");
        assert!(page.contains("- Not run (`--skip`): `xl`"), "{page}");
        assert!(page.contains("- Benchmarks: `ring`\n"), "{page}");
        assert_eq!(table(&page).len(), 2, "the header and ring's row");
    }

    #[test]
    fn reads_the_host() {
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13 64-Core Processor\n\
                       processor\t: 1\nmodel name\t: other\n";
        assert_eq!(cpu_model(cpuinfo), Some("AMD EPYC 7B13 64-Core Processor"));
        assert_eq!(cpu_model("processor : 0\n"), None);
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(11_016), "2000-02-29");
        assert_eq!(date_of(20_790), "2026-12-03");
    }
}
