//! `cargo xtask bench [WHAT]`: one module per benchmark, and what they share: the median and
//! percentile, the `BENCH` console lines, the table printer and the JSON writer.
//!
//! - [`hv`]: the hypervisor in QEMU against the Linux reference guest ([`linux`]), `hv.json`
//! - [`ring`]: the shared ring against Xen's `ring.h` on the host, `ring.json`
//! - [`blk`]: block I/O through blkback against blkback on the device, `blk.json`
//! - [`net`]: networking through netback against a Linux guest ([`linux_net`]), `net.json`
//! - [`iommu`]: `blk` and `net` measure with the IOMMU on and off, and each figure on against off
//! - [`xl`]: the toolstack (create to Connected, driver-domain crash to reconnected), `xl.json`
//! - [`pvh`]: HVM domains: Linux as a PVH DomU against the same kernel booted directly, the HVM
//!   hypercall round trip, VM exits per second, `pvh.json`
//! - [`linux_io`]: Linux as a PVH DomU on blkback and netback (fio, iperf3, wrk) against the same
//!   kernel on virtio-blk and virtio-net directly, `linux-io.json`
//!
//! In-QEMU timings measure the emulator as much as us, so each figure stands next to a reference
//! measured in the same run and QEMU configuration, and the ratio is what counts. Results go to
//! `target/bench/<name>.json`; every bench hands back its figures as [`row::Row`]s, which
//! `bench all` renders into docs/bench.md ([`doc`]).

mod blk;
mod doc;
mod hv;
mod iommu;
mod linux;
mod linux_io;
mod linux_net;
mod net;
mod pvh;
mod ring;
mod row;
mod xl;

use anyhow::Result;
use serde::Serialize;
use xtask::paths::{Paths, show};

use crate::{ACCEL_HELP, AccelArg, MachineArg};

#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum BenchWhat {
    /// The hypervisor (bench topologies, boot times) against the Linux reference guest, which is
    /// installed first (Debian's linux-image-amd64) or the bench stops with the command to run
    Hv,
    /// Only the Linux reference guest (null syscall, pipe round trip, boot to init)
    Linux,
    /// The shared-ring benchmark on the host, against Xen's ring.h macros
    Ring,
    /// Block I/O from a DomU through blkback, against blkback directly on the device; with the
    /// IOMMU on and off in the same invocation (q35 only), each figure on against off
    Blk,
    /// Networking through netback (HTTP req/s with wrk, TCP throughput), against a Linux guest;
    /// with the IOMMU on and off in the same invocation (q35 only), each figure on against off
    Net,
    /// The toolstack: xl create to the DomU's devices Connected, driver-domain crash to reconnected
    Xl,
    /// HVM domains: Linux as a PVH DomU against the same kernel and initramfs booted directly
    /// (QEMU start to /init), the HVM xen_version round trip beside the PV null hypercall and
    /// Linux's null syscall, VM exits per second during Linux's boot and while it idles
    Pvh,
    /// Linux as a PVH DomU on the Rust blkback and netback against the same kernel and initramfs
    /// booted directly on virtio-blk and virtio-net: fio (1 MiB sequential, 4 KiB random at QD1
    /// and QD16, O_DIRECT), iperf3 guest -> host, wrk against httpd (installs fio and iperf3)
    LinuxIo,
    /// Every benchmark above but `linux` (hv includes it), one after the other (slow); writes
    /// docs/bench.md
    All,
}

#[derive(clap::Args)]
pub struct BenchArgs {
    /// What to benchmark
    #[arg(value_enum, default_value = "hv")]
    what: BenchWhat,
    #[arg(long, value_enum, long_help = ACCEL_HELP)]
    accel: Option<AccelArg>,
    /// QEMU machine type
    #[arg(long, value_enum, default_value = "q35")]
    machine: MachineArg,
    /// Boots per measurement (the median is reported; the Linux references, `net` and `linux-io` take
    /// at most 3)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
    /// With `all`: benchmarks to leave out (docs/bench.md names them as not run)
    #[arg(long, value_enum, value_delimiter = ',')]
    skip: Vec<BenchWhat>,
    /// `linux-io` only: measure only the disk (fio) or only the network (wrk, iperf3)
    #[arg(long, value_enum)]
    only: Option<linux_io::Part>,
}

pub fn run(paths: &Paths, args: BenchArgs) -> Result<()> {
    let runs = args.runs as usize;
    let machine = args.machine.into();
    // The host-only ring bench needs no accelerator.
    let accel = || crate::choose_accel(args.accel);
    if !args.skip.is_empty() && args.what != BenchWhat::All {
        anyhow::bail!("--skip goes with `cargo xtask bench all`");
    }
    match args.what {
        BenchWhat::Hv => hv::run(paths, hv::Options { hv: true, accel: accel(), machine, runs }).map(drop),
        BenchWhat::Linux => hv::run(paths, hv::Options { hv: false, accel: accel(), machine, runs }).map(drop),
        BenchWhat::Ring => ring::run(&paths.root).map(drop),
        BenchWhat::Blk => blk::run(paths, accel(), machine, runs).map(drop),
        BenchWhat::Net => net::run(paths, accel(), machine, runs.min(3)).map(drop),
        BenchWhat::Xl => xl::run(paths, accel(), machine).map(drop),
        BenchWhat::Pvh => pvh::run(paths, accel(), machine, runs).map(drop),
        BenchWhat::LinuxIo => linux_io::run(paths, accel(), machine, runs.min(3), args.only).map(drop),
        BenchWhat::All => {
            let accel = accel();
            type Bench<'a> = &'a dyn Fn() -> Result<Vec<row::Row>>;
            let benches: [(BenchWhat, Bench); 7] = [
                (BenchWhat::Hv, &|| hv::run(paths, hv::Options { hv: true, accel, machine, runs })),
                (BenchWhat::Ring, &|| ring::run(&paths.root)),
                (BenchWhat::Blk, &|| blk::run(paths, accel, machine, runs)),
                (BenchWhat::Net, &|| net::run(paths, accel, machine, runs.min(3))),
                (BenchWhat::Xl, &|| xl::run(paths, accel, machine)),
                (BenchWhat::Pvh, &|| pvh::run(paths, accel, machine, runs)),
                (BenchWhat::LinuxIo, &|| linux_io::run(paths, accel, machine, runs.min(3), args.only)),
            ];
            let mut outcomes = Vec::new();
            for (what, bench) in benches {
                let name = what.name();
                let outcome = if args.skip.contains(&what) {
                    xtask::step(format!("bench {name}: skipped (--skip)"));
                    doc::Outcome::Skipped
                } else {
                    xtask::step(format!("bench {name}"));
                    match bench() {
                        Ok(rows) => doc::Outcome::Ran(rows),
                        Err(e) => {
                            eprintln!("==> bench {name} failed: {e:#}");
                            doc::Outcome::Failed(first_line(&format!("{e:#}")))
                        }
                    }
                };
                outcomes.push((name, outcome));
            }
            doc::write(paths, &doc::Setup::of_host(accel, machine, runs), &outcomes)?;
            let failed: Vec<&str> =
                outcomes.iter().filter(|(_, o)| matches!(o, doc::Outcome::Failed(_))).map(|(n, _)| *n).collect();
            if !failed.is_empty() {
                anyhow::bail!("these benchmarks failed: {} (details above)", failed.join(", "));
            }
            Ok(())
        }
    }
}

impl BenchWhat {
    /// The name on the command line.
    fn name(self) -> &'static str {
        match self {
            Self::Hv => "hv",
            Self::Linux => "linux",
            Self::Ring => "ring",
            Self::Blk => "blk",
            Self::Net => "net",
            Self::Xl => "xl",
            Self::Pvh => "pvh",
            Self::LinuxIo => "linux-io",
            Self::All => "all",
        }
    }
}

/// An error's first line (the rest can be a whole serial log), at most 300 characters.
fn first_line(error: &str) -> String {
    let line = error.lines().next().unwrap_or("");
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}...", &line[..cut]),
        None => line.to_owned(),
    }
}

/// Median (mean of the middle two for even counts); NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// Nearest-rank percentile `p` (0..=100) of sorted `v`; NaN when empty.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `[<domain>] BENCH <metric> <value> <unit>` → (metric, value, unit).
pub fn parse_bench_line(line: &str) -> Option<(String, f64, String)> {
    let rest = line.strip_prefix('[')?.split_once("] ")?.1.strip_prefix("BENCH ")?;
    let mut it = rest.split_whitespace();
    let (metric, value, unit) = (it.next()?, it.next()?.parse().ok()?, it.next().unwrap_or(""));
    Some((metric.to_owned(), value, unit.to_owned()))
}

/// Prints rows of cells as left-aligned columns two spaces apart; the first row is the header.
pub fn print_columns<R: AsRef<[String]>>(rows: &[R]) {
    for line in columns(rows) {
        println!("{line}");
    }
}

fn columns<R: AsRef<[String]>>(rows: &[R]) -> Vec<String> {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, cell) in row.as_ref().iter().enumerate() {
            if widths.len() <= i {
                widths.push(0);
            }
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .as_ref()
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                .collect();
            cells.join("  ").trim_end().to_owned()
        })
        .collect()
}

/// Writes `value` as pretty JSON to `target/bench/<file>` (atomically) and says where.
pub fn write_json(paths: &Paths, file: &str, value: &impl Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    let out = paths.bench_dir().join(file);
    xtask::artifacts::write_atomically(&out, text.as_bytes())?;
    println!("\nwrote {}", show(&out, &paths.root));
    Ok(())
}

/// A figure for a table cell: no decimals from 100 up, two below, `-` when not finite.
pub fn fmt_num(v: f64) -> String {
    if !v.is_finite() {
        "-".into()
    } else if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// A QEMU run that did not give what a benchmark needed: the outcome, command, serial log, stderr.
pub fn failed_run(what: &str, run: &xtask::qemu::Run) -> anyhow::Error {
    anyhow::anyhow!(
        "{what} ({}); command: {}\nserial:\n{}\nstderr:\n{}",
        run.outcome(),
        run.command,
        run.lines.join("\n"),
        run.stderr
    )
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
    fn medians_and_percentiles() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&mut []).is_nan());
        let v: Vec<f64> = (1..=30).map(f64::from).collect();
        assert_eq!(percentile(&v, 90.0), 27.0);
        assert_eq!(percentile(&v, 100.0), 30.0);
        assert_eq!(percentile(&[5.0], 90.0), 5.0);
        assert!(percentile(&[], 90.0).is_nan());
    }

    #[test]
    fn columns_are_aligned() {
        let rows = [["metric", "value"].map(String::from), ["a_long_metric", "1"].map(String::from)];
        assert_eq!(columns(&rows), ["metric         value", "a_long_metric  1"]);
    }

    #[test]
    fn bench_names_are_the_command_line_s() {
        use clap::ValueEnum;
        for w in BenchWhat::value_variants() {
            assert_eq!(w.to_possible_value().unwrap().get_name(), w.name());
        }
        assert_eq!(first_line("a: b\nserial:\n..."), "a: b");
        assert_eq!(first_line(&"x".repeat(400)).len(), 303);
    }

    #[test]
    fn non_finite_figures_are_null_in_json() {
        assert_eq!(serde_json::to_string(&[1.5, f64::NAN, f64::INFINITY]).unwrap(), "[1.5,null,null]");
    }
}
