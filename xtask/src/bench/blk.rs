//! `cargo xtask bench blk`: the `bench-blk` topology `runs` times with the IOMMU on and `runs`
//! times with it off ([`super::iommu`]); each figure of a DomU through blkback (`blk_front_*`) is
//! compared with blkback running the same pattern directly on the device (`blk_direct_*`) in
//! the same run, and each IOMMU-on figure with its IOMMU-off one. Prints a table and writes
//! `target/bench/blk.json` (the shape of `hv.json`, without a Linux reference).

use anyhow::Result;
use xtask::paths::Paths;
use xtask::qemu::{Accel, Machine, Media, Spec};
use xtask::step;

use super::hv::collect_bench_run;
use super::iommu::{self, Both, Iommu};
use super::row::{Reference, Row, Samples, Target, print_table, report};
use super::{failed_run, median, write_json};

/// A DomU's throughput through blkback must reach this share of blkback's on the device (judged
/// with the IOMMU on, the default configuration).
const TARGET_SHARE: f64 = 0.8;

pub fn run(paths: &Paths, accel: Accel, machine: Machine, runs: usize) -> Result<Vec<Row>> {
    iommu::require_q35(machine, "blk")?;
    let p = crate::build::prepare(paths, Some("bench-blk"))?;
    let mut out = Both::<Samples>::default();
    for i in 0..runs {
        for variant in Iommu::order(i) {
            let mut spec = Spec {
                machine,
                accel,
                ..Spec::new(Media::Direct { kernel: p.hypervisor(), initrd: p.bundle.clone(), append: None })
            };
            variant.apply(&mut spec);
            spec.disks = xtask::disks::images(&paths.disks_dir("bench-blk"), &p.topology, true)?;
            step(format!("bench-blk topology, {}, run {}/{runs}", variant.name(), i + 1));
            let run = collect_bench_run(&spec, "bench-blk", 6, out.get_mut(variant))?;
            if let Err(e) = variant.confirmed(&run.lines) {
                return Err(failed_run(&e.to_string(), &run));
            }
        }
    }
    let rows = rows(&out);
    print_table(&rows, accel, machine);
    write_json(paths, "blk.json", &report(&rows, accel, machine, runs, None))?;
    Ok(rows)
}

/// The IOMMU-on rows (each `blk_front_<x>` against `blk_direct_<x>`, with the target), the
/// IOMMU-off rows (the same comparison, no target), then each figure on against off.
fn rows(figures: &Both<Samples>) -> Vec<Row> {
    let mut rows = front_vs_direct(&figures.on, Iommu::On);
    rows.extend(front_vs_direct(&figures.off, Iommu::Off));
    rows.extend(iommu::on_vs_off_rows(figures));
    rows
}

/// Medians of one configuration, each `blk_front_<x>` against `blk_direct_<x>`; the target only
/// with the IOMMU on.
fn front_vs_direct(samples: &Samples, variant: Iommu) -> Vec<Row> {
    let (device, of_front) = match variant {
        Iommu::On => ("blkback on the device, IOMMU on", "it is the reference of the blk_front_ figures (IOMMU on)"),
        Iommu::Off => ("blkback on the device, IOMMU off", "it is the reference of the blk_front_ figures (IOMMU off)"),
    };
    let target = (variant == Iommu::On).then_some(Target::AtLeast(TARGET_SHARE));
    let direct = |m: &str| samples.get(m).map(|(v, _)| median(&mut v.clone()));
    let judge = |metric: &str| {
        if metric.starts_with("blk_direct_") {
            return (Reference::Absent(of_front), None);
        }
        let Some(rest) = metric.strip_prefix("blk_front_") else {
            return (Reference::Absent("reported for context, no comparable figure"), None);
        };
        match direct(&format!("blk_direct_{rest}")) {
            Some(v) => (Reference::Measured(device, v), target),
            None => (Reference::Absent("no blk_direct_ figure in this run"), target),
        }
    };
    samples
        .iter()
        .map(|(metric, (values, unit))| {
            let (reference, target) = judge(metric);
            Row::new(variant.label(metric), unit, values.clone(), reference).with_target(target)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures() -> Both<Samples> {
        let mut f = Both::<Samples>::default();
        f.on.insert("blk_front_read_mib_s".into(), (vec![80.0, 90.0, 85.0], "MiB/s".into()));
        f.on.insert("blk_direct_read_mib_s".into(), (vec![100.0], "MiB/s".into()));
        f.off.insert("blk_front_read_mib_s".into(), (vec![95.0, 100.0, 90.0], "MiB/s".into()));
        f.off.insert("blk_direct_read_mib_s".into(), (vec![120.0], "MiB/s".into()));
        f
    }

    #[test]
    fn front_figures_are_judged_against_direct_ones_with_the_iommu_on() {
        let rows = rows(&figures());
        let row = |name: &str| rows.iter().find(|r| r.metric == name).unwrap_or_else(|| panic!("no row {name}"));
        let front = row("blk_front_read_mib_s (IOMMU on)");
        assert_eq!(
            (front.value, front.runs(), front.reference, front.target),
            (85.0, 3, Reference::Measured("blkback on the device, IOMMU on", 100.0), Some(Target::AtLeast(0.8)))
        );
        assert_eq!(front.values, [80.0, 90.0, 85.0], "every run's figure, in run order");
        assert!(row("blk_direct_read_mib_s (IOMMU on)").target.is_none());
        let off = row("blk_front_read_mib_s (IOMMU off)");
        assert_eq!(
            (off.value, off.reference, off.target),
            (95.0, Reference::Measured("blkback on the device, IOMMU off", 120.0), None),
            "the target judges the default configuration only"
        );
    }

    #[test]
    fn every_figure_is_compared_on_against_off() {
        let rows = rows(&figures());
        let names: Vec<&str> = rows.iter().map(|r| r.metric.as_str()).collect();
        assert_eq!(
            names,
            [
                "blk_direct_read_mib_s (IOMMU on)",
                "blk_front_read_mib_s (IOMMU on)",
                "blk_direct_read_mib_s (IOMMU off)",
                "blk_front_read_mib_s (IOMMU off)",
                "blk_direct_read_mib_s: IOMMU on vs off",
                "blk_front_read_mib_s: IOMMU on vs off",
            ]
        );
        let front = &rows[5];
        assert_eq!((front.value, front.reference.value(), front.target), (85.0, Some(95.0), None));
    }
}
