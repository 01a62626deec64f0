//! `cargo xtask bench blk`: the `bench-blk` topology `runs` times; each figure of a DomU through
//! blkback (`blk_front_*`) is compared with blkback running the same pattern directly on the
//! device (`blk_direct_*`) in the same run. Prints a table and writes `target/bench/blk.json`
//! (the shape of `hv.json`, without a Linux reference).

use std::collections::BTreeMap;

use anyhow::Result;
use xtask::paths::Paths;
use xtask::qemu::{Accel, Machine, Media, Spec};
use xtask::step;

use super::hv::{Row, Samples, Target, collect_bench_run, print_table, report};
use super::{median, write_json};

/// A DomU's throughput through blkback must reach this share of blkback's on the device.
const TARGET_SHARE: f64 = 0.8;

pub fn run(paths: &Paths, accel: Accel, machine: Machine, runs: usize) -> Result<()> {
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
    write_json(paths, "blk.json", &report(&rows, accel, machine, runs, None))
}

/// Medians, each `blk_front_<x>` against `blk_direct_<x>`.
fn rows(mut samples: Samples) -> Vec<Row> {
    let mut medians: BTreeMap<String, (f64, String, usize)> = BTreeMap::new();
    for (m, (v, unit)) in &mut samples {
        let n = v.len();
        medians.insert(m.clone(), (median(v), unit.clone(), n));
    }
    let mut rows = Vec::new();
    for (metric, (value, unit, n)) in &medians {
        let reference = metric
            .strip_prefix("blk_front_")
            .and_then(|rest| medians.get(&format!("blk_direct_{rest}")))
            .map(|(v, _, _)| ("blkback on the device", *v));
        let target = reference.is_some().then_some(Target::AtLeast(TARGET_SHARE));
        rows.push(Row { metric: metric.clone(), value: *value, unit: unit.clone(), runs: *n, reference, target });
    }
    rows
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
        assert_eq!((front.value, front.runs, front.reference), (85.0, 3, Some(("blkback on the device", 100.0))));
        assert!(rows.iter().find(|r| r.metric == "blk_direct_read_mib_s").unwrap().target.is_none());
    }
}
