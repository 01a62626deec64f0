//! `cargo xtask bench ring`: our ring against Xen's `ring.h` macros, on the host, in the same
//! run (`cargo bench -p shared-ring --bench ring`, which prints the table and writes
//! `target/bench/ring.json` itself; its rows are read back from there).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use xtask::packages;

use super::row::{Reference, Row, Target};

pub fn run(root: &Path) -> Result<Vec<Row>> {
    // Xen's headers and a C compiler: the reference side is Xen's macros compiled from C.
    packages::ensure(&[packages::LIBXEN_DEV, packages::GCC])?;
    let json = root.join("target/bench/ring.json");
    // A stale file must not pass for this run's.
    let _ = std::fs::remove_file(&json);
    let status = Command::new(xtask::paths::cargo())
        .args(["bench", "-p", "shared-ring", "--bench", "ring", "--", "--json"])
        .arg(&json)
        .current_dir(root)
        .status()
        .context("run `cargo bench -p shared-ring --bench ring`")?;
    if !status.success() {
        bail!("the ring benchmark failed: cargo bench -p shared-ring --bench ring ({status})");
    }
    let text = std::fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
    rows(&text).with_context(|| format!("reading {}", json.display()))
}

/// The rows of `ring.json`: shared-ring's figure (every round's) against ring.h's median.
fn rows(json: &str) -> Result<Vec<Row>> {
    let v: Value = serde_json::from_str(json)?;
    let results = v.get("results").and_then(Value::as_array).context("no \"results\" array")?;
    let mut rows = Vec::new();
    for r in results {
        let text = |k: &str| r.get(k).and_then(Value::as_str).with_context(|| format!("no {k:?} in {r}"));
        let num = |k: &str| r.get(k).and_then(Value::as_f64).with_context(|| format!("no {k:?} in {r}"));
        let (mode, unit, copy) = (text("mode")?, text("unit")?, text("xen_copy")?);
        let ours: Vec<f64> = r
            .get("ours_samples")
            .and_then(Value::as_array)
            .with_context(|| format!("no \"ours_samples\" in {r}"))?
            .iter()
            .filter_map(Value::as_f64)
            .collect();
        let whole = copy == "whole";
        let what = if whole { "Xen ring.h, same run" } else { "Xen ring.h loading 3 fields, no copy-once" };
        let metric = format!("{mode}, ours {} pg vs ring.h {} pg", num("ours_pages")?, num("xen_pages")?);
        let metric = if whole { metric } else { format!("{metric}, ring.h fields only") };
        // The bench's targets are on "higher is better" ratios: ring.h/ours for latency.
        let target = r
            .get("target")
            .and_then(Value::as_f64)
            .map(|t| if mode == "latency" { Target::RelativeToReference(1.0 / t) } else { Target::AtLeast(t) });
        rows.push(Row::new(metric, unit, ours, Reference::Measured(what, num("xen_median")?)).with_target(target));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_bench_s_json() {
        let json = r#"{"benchmark": "ring", "rounds": 2, "results": [
            {"mode": "latency", "xen_copy": "whole", "xen_pages": 1, "ours_pages": 1, "unit": "ns/round-trip",
             "xen_median": 200.000, "ours_median": 150.000, "ratio": 1.333, "target": 1.0, "met": true,
             "xen_samples": [190.0, 210.0], "ours_samples": [140.000, 160.000]},
            {"mode": "batched", "xen_copy": "fields*", "xen_pages": 1, "ours_pages": 4, "unit": "Mmsg/s",
             "xen_median": 10.0, "ours_median": 12.0, "ratio": 1.2, "target": null, "met": true,
             "xen_samples": [10.0], "ours_samples": [12.0]}
        ], "all_targets_met": true}"#;
        let rows = rows(json).unwrap();
        assert_eq!(rows[0].metric, "latency, ours 1 pg vs ring.h 1 pg");
        assert_eq!((rows[0].value, rows[0].spread()), (150.0, Some((140.0, 160.0))));
        assert_eq!(rows[0].reference, Reference::Measured("Xen ring.h, same run", 200.0));
        assert_eq!((rows[0].target, rows[0].verdict()), (Some(Target::RelativeToReference(1.0)), Some(true)));
        assert_eq!(rows[1].metric, "batched, ours 4 pg vs ring.h 1 pg, ring.h fields only");
        assert_eq!((rows[1].target, rows[1].ratio()), (None, Some(1.2)));
        assert!(super::rows("{}").is_err());
    }
}
