//! `cargo xtask bench blk`: the `bench-blk` topology `runs` times; each figure of a DomU through
//! blkback (`blk_front_*`) is compared with blkback running the same pattern directly on the
//! device (`blk_direct_*`) in the same run. Prints a table and writes `target/bench/blk.json`
//! (the shape of `hv.json`, without a Linux reference).

use anyhow::Result;
use xtask::paths::Paths;
use xtask::qemu::{Accel, Machine, Media, Spec};
use xtask::step;

use super::hv::collect_bench_run;
use super::row::{Reference, Row, Samples, Target, print_table, report, rows_of};
use super::{median, write_json};

/// A DomU's throughput through blkback must reach this share of blkback's on the device.
const TARGET_SHARE: f64 = 0.8;

pub fn run(paths: &Paths, accel: Accel, machine: Machine, runs: usize) -> Result<Vec<Row>> {
    let p = crate::build::prepare(paths, Some("bench-blk"))?;
    let mut out = Samples::new();
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
    let rows = rows(out);
    print_table(&rows, accel, machine);
    write_json(paths, "blk.json", &report(&rows, accel, machine, runs, None))?;
    Ok(rows)
}

/// Medians, each `blk_front_<x>` against `blk_direct_<x>`.
fn rows(samples: Samples) -> Vec<Row> {
    let direct = |m: &str| samples.get(m).map(|(v, _)| median(&mut v.clone()));
    rows_of(samples.clone(), |metric| {
        if metric.starts_with("blk_direct_") {
            return (Reference::Absent("it is the reference of the blk_front_ figures"), None);
        }
        let Some(rest) = metric.strip_prefix("blk_front_") else {
            return (Reference::Absent("reported for context, no comparable figure"), None);
        };
        match direct(&format!("blk_direct_{rest}")) {
            Some(v) => (Reference::Measured("blkback on the device", v), Some(Target::AtLeast(TARGET_SHARE))),
            None => (Reference::Absent("no blk_direct_ figure in this run"), Some(Target::AtLeast(TARGET_SHARE))),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn front_figures_are_judged_against_direct_ones() {
        let mut s = Samples::new();
        s.insert("blk_front_read_mib_s".into(), (vec![80.0, 90.0, 85.0], "MiB/s".into()));
        s.insert("blk_direct_read_mib_s".into(), (vec![100.0], "MiB/s".into()));
        let rows = rows(s);
        let front = rows.iter().find(|r| r.metric == "blk_front_read_mib_s").unwrap();
        assert_eq!(
            (front.value, front.runs(), front.reference),
            (85.0, 3, Reference::Measured("blkback on the device", 100.0))
        );
        assert_eq!(front.values, [80.0, 90.0, 85.0], "every run's figure, in run order");
        assert!(rows.iter().find(|r| r.metric == "blk_direct_read_mib_s").unwrap().target.is_none());
    }
}
