//! The two configurations `bench blk` and `bench net` measure in one invocation: the virtio
//! devices behind QEMU's Intel IOMMU (VT-d, the default of every topology) and without it. Each
//! run boots both, checks on the console that the hypervisor really ran each one, and the figures
//! become rows named `(IOMMU on)` and `(IOMMU off)`, plus `: IOMMU on vs off` rows whose value is
//! the IOMMU-on figure and whose reference is the IOMMU-off one (the cost of DMA remapping, the
//! IOTLB as QEMU emulates it). Those have no target: the cost is reported, not judged.

use anyhow::{Result, bail};
use xtask::qemu::{Machine, Spec};

use super::median;
use super::row::{Reference, Row, Samples};

/// The end of every on/off row's name (docs/bench.md explains those rows when it has one).
pub const ON_VS_OFF: &str = ": IOMMU on vs off";

/// The reference of an on/off row.
const OFF_REFERENCE: &str = "IOMMU off, same invocation";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Iommu {
    On,
    Off,
}

impl Iommu {
    /// Both, in the order run `run` (from 0) boots them: on first in even runs, off first in odd
    /// ones, so that neither always boots first (cold caches) or last.
    pub fn order(run: usize) -> [Self; 2] {
        if run.is_multiple_of(2) { [Self::On, Self::Off] } else { [Self::Off, Self::On] }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::On => "IOMMU on",
            Self::Off => "IOMMU off",
        }
    }

    /// `metric (IOMMU on)`: the row of a figure measured in this configuration.
    pub fn label(self, metric: &str) -> String {
        format!("{metric} ({})", self.name())
    }

    /// `spec` in this configuration.
    pub fn apply(self, spec: &mut Spec) {
        spec.iommu = self == Self::On;
    }

    /// Fails unless the hypervisor's console (`lines`) shows it ran in this configuration: with
    /// the IOMMU, a VT-d unit translating and a device in a domain's context; without, no IOMMU.
    pub fn confirmed<S: AsRef<str>>(self, lines: &[S]) -> Result<()> {
        let any = |f: &dyn Fn(&str) -> bool| lines.iter().any(|l| f(l.as_ref()));
        match self {
            Self::On => {
                let unit = any(&|l| l.starts_with("[hv] iommu: VT-d unit at ") && l.contains(") translating"));
                let device = any(&|l| l.starts_with("[hv] iommu: pci ") && l.contains(" device(s) in contexts"));
                if !(unit && device) {
                    bail!(
                        "asked for the IOMMU, but the hypervisor did not say so (no `[hv] iommu: VT-d unit at … \
                         translating` line and `[hv] iommu: pci … device(s) in contexts` line)"
                    );
                }
            }
            Self::Off => {
                if !any(&|l| l.starts_with("[hv] iommu: none (")) {
                    bail!("asked for no IOMMU, but the hypervisor did not say `[hv] iommu: none (…)`");
                }
            }
        }
        Ok(())
    }
}

/// The measurements need the IOMMU on and off; only q35 has one.
pub fn require_q35(machine: Machine, bench: &str) -> Result<()> {
    if machine != Machine::Q35 {
        bail!("bench {bench} measures with the Intel IOMMU on and off, and the pc machine has none: use --machine q35");
    }
    Ok(())
}

/// One figure per configuration.
#[derive(Debug, Default)]
pub struct Both<T> {
    pub on: T,
    pub off: T,
}

impl<T> Both<T> {
    pub fn get_mut(&mut self, v: Iommu) -> &mut T {
        match v {
            Iommu::On => &mut self.on,
            Iommu::Off => &mut self.off,
        }
    }
}

/// `metric: IOMMU on vs off`: the IOMMU-on values (one per run) against the median of the
/// IOMMU-off ones, no target.
pub fn on_vs_off(metric: &str, unit: &str, on: Vec<f64>, off: &[f64]) -> Row {
    let reference = if off.is_empty() {
        Reference::Absent("no IOMMU-off figure in this invocation")
    } else {
        Reference::Measured(OFF_REFERENCE, median(&mut off.to_vec()))
    };
    Row::new(format!("{metric}{ON_VS_OFF}"), unit, on, reference)
}

/// [`on_vs_off`] for each metric of either configuration, in name order.
pub fn on_vs_off_rows(figures: &Both<Samples>) -> Vec<Row> {
    let mut metrics: Vec<&String> = figures.on.keys().chain(figures.off.keys()).collect();
    metrics.sort();
    metrics.dedup();
    let values = |s: &Samples, m: &str| s.get(m).map_or(Vec::new(), |(v, _)| v.clone());
    metrics
        .into_iter()
        .map(|m| {
            let unit = figures.on.get(m).or(figures.off.get(m)).map_or("", |(_, u)| u.as_str());
            on_vs_off(m, unit, values(&figures.on, m), &values(&figures.off, m))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_alternate_which_configuration_boots_first() {
        assert_eq!(Iommu::order(0), [Iommu::On, Iommu::Off]);
        assert_eq!(Iommu::order(1), [Iommu::Off, Iommu::On]);
        assert_eq!(Iommu::order(2), Iommu::order(0));
        assert_eq!(Iommu::On.label("blk_front_seqread_mbps"), "blk_front_seqread_mbps (IOMMU on)");
        let mut spec = Spec::new(xtask::qemu::Media::Iso("x.iso".into()));
        Iommu::On.apply(&mut spec);
        assert!(spec.iommu);
        Iommu::Off.apply(&mut spec);
        assert!(!spec.iommu);
    }

    #[test]
    fn the_console_must_show_the_configuration() {
        let on = [
            "[hv] iommu: VT-d unit at 0xfed90000 (version 1.0, 3-level tables, 256 domain ids, coherent walks) translating: devices nobody owns have no DMA",
            "[hv] iommu: pci 00:01.0 in domain 1's context (DID 1): device addresses 0x0-0xfff (its RAM), nothing else; 1 device(s) in contexts",
        ];
        let off = ["[hv] iommu: none (no DMAR table): devices of driver domains can DMA anywhere"];
        assert!(Iommu::On.confirmed(&on).is_ok());
        assert!(Iommu::Off.confirmed(&off).is_ok());
        assert!(Iommu::On.confirmed(&off).is_err());
        assert!(Iommu::Off.confirmed(&on).is_err());
        let unit_only = &on[..1];
        let e = Iommu::On.confirmed(unit_only).unwrap_err().to_string();
        assert!(e.contains("device(s) in contexts"), "a unit without a device in a context is not enough: {e}");
        assert!(require_q35(Machine::Pc, "blk").unwrap_err().to_string().contains("--machine q35"));
        assert!(require_q35(Machine::Q35, "blk").is_ok());
    }

    #[test]
    fn on_vs_off_rows_take_the_off_median_as_reference() {
        let mut figures = Both::<Samples>::default();
        figures.on.insert("read".into(), (vec![80.0, 90.0, 70.0], "MB/s".into()));
        figures.off.insert("read".into(), (vec![100.0, 120.0, 110.0], "MB/s".into()));
        figures.on.insert("only_on".into(), (vec![1.0], "ns".into()));
        figures.off.insert("only_off".into(), (vec![2.0], "ns".into()));
        let rows = on_vs_off_rows(&figures);
        let names: Vec<&str> = rows.iter().map(|r| r.metric.as_str()).collect();
        assert_eq!(names, ["only_off: IOMMU on vs off", "only_on: IOMMU on vs off", "read: IOMMU on vs off"]);
        let read = &rows[2];
        assert_eq!((read.value, read.values.as_slice()), (80.0, &[80.0, 90.0, 70.0][..]));
        assert_eq!(read.reference, Reference::Measured(OFF_REFERENCE, 110.0));
        assert_eq!((read.unit.as_str(), read.ratio().map(|r| (r * 100.0).round())), ("MB/s", Some(73.0)));
        assert!(read.target.is_none(), "the cost is reported, not judged");
        assert_eq!((rows[0].runs(), rows[0].unit.as_str()), (0, "ns"), "no IOMMU-on figure: an empty row");
        assert_eq!(rows[1].reference, Reference::Absent("no IOMMU-off figure in this invocation"));
    }
}
