//! The figure every benchmark hands back: [`Row`] (its median and per-run values, its reference
//! and target), the table `bench hv`, `blk`, `pvh` and `linux-io` print, the JSON they write, and
//! what `bench all` renders into docs/bench.md ([`super::doc`]).

use std::collections::BTreeMap;

use serde::Serialize;
use xtask::qemu::{Accel, Machine};

use super::linux::LinuxRef;
use super::{fmt_num, median, print_columns};

/// Figures per metric: (values, unit).
pub type Samples = BTreeMap<String, (Vec<f64>, String)>;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Target {
    /// value ≤ factor × reference
    RelativeToReference(f64),
    /// value < limit
    Below(f64),
    /// value ≥ factor × reference (higher is better)
    AtLeast(f64),
}

/// What a figure is compared with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Reference {
    /// A figure measured in the same run and configuration: what it is, its value.
    Measured(&'static str, f64),
    /// None, and why (docs/bench.md shows the reason in its place).
    Absent(&'static str),
}

impl Reference {
    pub fn value(&self) -> Option<f64> {
        match *self {
            Self::Measured(_, v) => Some(v),
            Self::Absent(_) => None,
        }
    }

    pub fn what(&self) -> Option<&'static str> {
        match *self {
            Self::Measured(w, _) => Some(w),
            Self::Absent(_) => None,
        }
    }
}

/// One metric: the median of its per-run values, its reference and its target.
#[derive(Clone, Debug)]
pub struct Row {
    pub metric: String,
    pub value: f64,
    pub unit: String,
    /// Every run's figure, in run order (the median is `value`).
    pub values: Vec<f64>,
    pub reference: Reference,
    pub target: Option<Target>,
}

impl Row {
    /// The row of `values` (one per run), reported by their median.
    pub fn new(metric: impl Into<String>, unit: impl Into<String>, values: Vec<f64>, reference: Reference) -> Self {
        let value = median(&mut values.clone());
        Self { metric: metric.into(), value, unit: unit.into(), values, reference, target: None }
    }

    pub fn with_target(self, target: Option<Target>) -> Self {
        Self { target, ..self }
    }

    pub fn runs(&self) -> usize {
        self.values.len()
    }

    /// (min, max) over the runs, when there were several.
    pub fn spread(&self) -> Option<(f64, f64)> {
        (self.values.len() > 1).then(|| {
            let min = self.values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = self.values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            (min, max)
        })
    }

    pub fn ratio(&self) -> Option<f64> {
        self.reference.value().map(|r| self.value / r).filter(|r| r.is_finite())
    }

    pub fn target_text(&self) -> Option<String> {
        Some(match self.target.as_ref()? {
            Target::RelativeToReference(f) => format!("<= {f}x ref"),
            Target::Below(l) => format!("< {l} {}", self.unit),
            Target::AtLeast(f) => format!(">= {f}x ref"),
        })
    }

    /// Met or missed; `None` without a target or when the reference it needs is missing.
    pub fn verdict(&self) -> Option<bool> {
        match self.target {
            Some(Target::RelativeToReference(f)) => self.ratio().map(|r| r <= f),
            Some(Target::Below(l)) => Some(self.value < l),
            Some(Target::AtLeast(f)) => self.ratio().map(|r| r >= f),
            None => None,
        }
    }
}

/// `samples` as rows, each judged by `judge(metric)`.
pub fn rows_of(samples: Samples, judge: impl Fn(&str) -> (Reference, Option<Target>)) -> Vec<Row> {
    samples
        .into_iter()
        .map(|(metric, (values, unit))| {
            let (reference, target) = judge(&metric);
            Row::new(metric, unit, values, reference).with_target(target)
        })
        .collect()
}

/// The table of [`Row`]s (`bench hv`, `blk`, `pvh`, `linux-io`).
pub fn print_table(rows: &[Row], accel: Accel, machine: Machine) {
    println!(
        "\nhv-core benchmarks: QEMU -machine {} -accel {} (medians; in-QEMU figures are only meaningful as ratios to the reference)\n",
        machine.name(),
        accel.name()
    );
    let head = ["metric", "value", "unit", "runs", "reference", "(what)", "ratio", "target", "verdict"];
    let mut table: Vec<[String; 9]> = vec![head.map(String::from)];
    for r in rows {
        let (rv, rn) = match r.reference {
            Reference::Measured(n, v) => (fmt_num(v), n),
            Reference::Absent(_) => ("-".into(), ""),
        };
        let verdict = match r.verdict() {
            Some(true) => "met",
            Some(false) => "MISSED",
            // Only when measuring the reference failed (the error follows the table).
            None if r.target.is_some() => "unjudged",
            None => "",
        };
        let runs = match r.spread() {
            Some((lo, hi)) => format!("{} ({}-{})", r.runs(), fmt_num(lo), fmt_num(hi)),
            None => r.runs().to_string(),
        };
        table.push([
            r.metric.clone(),
            fmt_num(r.value),
            r.unit.clone(),
            runs,
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

/// `hv.json` (and `blk.json`, `pvh.json`, `linux-io.json`).
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

/// One row in JSON (also `net.json`'s).
#[derive(Serialize)]
pub struct Metric<'a> {
    metric: &'a str,
    value: f64,
    unit: &'a str,
    runs: usize,
    values: &'a [f64],
    reference: Option<f64>,
    reference_what: Option<&'static str>,
    no_reference_because: Option<&'static str>,
    ratio: Option<f64>,
    target: Option<String>,
    met: Option<bool>,
}

impl<'a> Metric<'a> {
    pub fn of(r: &'a Row) -> Self {
        Metric {
            metric: &r.metric,
            value: r.value,
            unit: &r.unit,
            runs: r.runs(),
            values: &r.values,
            reference: r.reference.value(),
            reference_what: r.reference.what(),
            no_reference_because: match r.reference {
                Reference::Absent(why) => Some(why),
                Reference::Measured(..) => None,
            },
            ratio: r.ratio(),
            target: r.target_text(),
            met: r.verdict(),
        }
    }
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
        metrics: rows.iter().map(Metric::of).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_keeps_its_shape() {
        let rows = vec![
            Row::new(
                "null_hypercall_cycles",
                "cycles",
                vec![90.0, 100.0, 120.0],
                Reference::Measured("linux null syscall", 200.0),
            )
            .with_target(Some(Target::RelativeToReference(1.0))),
            Row::new("x", "ns", vec![], Reference::Absent("reported for context")),
        ];
        let j = serde_json::to_value(report(&rows, Accel::Tcg, Machine::Q35, 5, None)).unwrap();
        assert_eq!(
            j,
            serde_json::json!({
                "accel": "tcg", "machine": "q35", "runs": 5, "linux_reference": null,
                "metrics": [
                    {"metric": "null_hypercall_cycles", "value": 100.0, "unit": "cycles", "runs": 3,
                     "values": [90.0, 100.0, 120.0], "reference": 200.0, "reference_what": "linux null syscall",
                     "no_reference_because": null, "ratio": 0.5, "target": "<= 1x ref", "met": true},
                    {"metric": "x", "value": null, "unit": "ns", "runs": 0, "values": [], "reference": null,
                     "reference_what": null, "no_reference_because": "reported for context", "ratio": null,
                     "target": null, "met": null}
                ]
            })
        );
    }

    #[test]
    fn rows_judge_and_spread() {
        let r = |values: Vec<f64>, reference, target| Row::new("m", "ms", values, reference).with_target(target);
        let at_least = r(vec![70.0, 90.0], Reference::Measured("ref", 100.0), Some(Target::AtLeast(0.8)));
        assert_eq!((at_least.value, at_least.spread(), at_least.verdict()), (80.0, Some((70.0, 90.0)), Some(true)));
        let below = r(vec![12.0], Reference::Absent("absolute"), Some(Target::Below(10.0)));
        assert_eq!((below.spread(), below.verdict(), below.ratio()), (None, Some(false), None));
        let unjudged = r(vec![1.0], Reference::Absent("failed"), Some(Target::RelativeToReference(1.0)));
        assert_eq!(unjudged.verdict(), None, "a relative target without its reference is not judged");
    }
}
