//! `cargo xtask fuzz`: the cargo-fuzz targets of every parser of hostile input (`tests/fuzz`),
//! and the short smoke run of every target that is a step of `cargo xtask test`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use xtask::paths::Paths;

use crate::toolchain::{require_cargo_fuzz, require_nightly};

#[derive(clap::Args)]
pub struct FuzzArgs {
    /// Fuzz target name [default: every target, one after the other]
    #[arg(value_parser = clap::builder::PossibleValuesParser::new(FUZZ_TARGETS))]
    target: Option<String>,
    /// How long to fuzz each target, in seconds
    #[arg(long = "time", value_name = "SECONDS", default_value_t = 60)]
    seconds: u64,
}

/// `cargo xtask fuzz [TARGET] [--time SECONDS]`.
pub fn run(paths: &Paths, args: FuzzArgs) -> Result<()> {
    fuzz(&paths.root, args.target.as_deref(), args.seconds)
}

/// The fuzz crate (its own workspace, excluded from the main one; built with `cargo +nightly fuzz`).
pub const FUZZ_DIR: &str = "tests/fuzz";

/// The cargo-fuzz targets in `tests/fuzz/fuzz_targets/`: the ring and the wire decoders
/// (shared-ring), the ELF loader (hv-core), the boot bundle, the firmware's boot tags (EFI memory
/// map, ACPI RSDP), the ACPI tables that lead to the IOMMU (RSDT/XSDT, DMAR), control-channel frames, blkback's requests, netback's tx/rx rounds and its
/// TCP segmenter, and the store server.
pub const FUZZ_TARGETS: [&str; 13] = [
    "ring_protocol",
    "blkif_decode",
    "netif_decode",
    "store_decode",
    "elf_parse",
    "bundle_parse",
    "boot_tags",
    "acpi_dmar",
    "control_frames",
    "blkback_requests",
    "netback_tx",
    "netback_gso",
    "store_server",
];

/// Seconds per target in [`fuzz_smoke`] (13 targets: about a minute in CI, with cargo-fuzz's
/// start-up per target; each target still makes thousands to hundreds of thousands of runs).
const SMOKE_SECONDS: u64 = 4;

/// Seconds one input may take before libFuzzer reports a hang (every target bounds its work
/// per input, so an input this slow is a bug in the code under test).
const INPUT_TIMEOUT_SECONDS: u64 = 20;

/// Run one fuzz target (or all) for `seconds` each, starting from the committed seed corpus
/// (`tests/fuzz/corpus/<target>`, read-only) and growing a scratch corpus under
/// `target/fuzz/corpus/<target>`. Built with debug assertions (`-a`), so an integer overflow
/// in the code under test panics (and is reported) instead of wrapping silently. Prints the
/// executions each target made.
pub fn fuzz(root: &Path, target: Option<&str>, seconds: u64) -> Result<()> {
    let targets: Vec<&str> = match target {
        Some(name) if FUZZ_TARGETS.contains(&name) => vec![name],
        Some(name) => bail!("unknown fuzz target `{name}`; the targets are: {}", FUZZ_TARGETS.join(", ")),
        None => FUZZ_TARGETS.to_vec(),
    };
    require_nightly()?;
    require_cargo_fuzz()?;
    let fuzz_dir = root.join(FUZZ_DIR);
    let target_dir = root.join("target/fuzz");

    println!("building fuzz targets (cargo +nightly fuzz build -a)");
    let status = Command::new("cargo")
        .args(["+nightly", "fuzz", "build", "--debug-assertions", "--target-dir"])
        .arg(&target_dir)
        .current_dir(&fuzz_dir)
        .status()
        .context("run `cargo +nightly fuzz build`")?;
    if !status.success() {
        bail!("`cargo +nightly fuzz build` failed in {}", fuzz_dir.display());
    }

    let mut summary = Vec::new();
    for name in &targets {
        let seeds = fuzz_dir.join("corpus").join(name);
        let scratch = target_dir.join("corpus").join(name);
        std::fs::create_dir_all(&scratch).with_context(|| format!("create {}", scratch.display()))?;
        println!("fuzzing {name} for {seconds} s");
        let started = Instant::now();
        let output = Command::new("cargo")
            .args(["+nightly", "fuzz", "run", "--debug-assertions", "--target-dir"])
            .arg(&target_dir)
            .arg(name)
            .arg(&scratch)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            .arg(format!("-timeout={INPUT_TIMEOUT_SECONDS}"))
            .current_dir(&fuzz_dir)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("run `cargo +nightly fuzz run {name}`"))?;
        let log = String::from_utf8_lossy(&output.stderr);
        if !output.status.success() {
            let tail: Vec<&str> = log.lines().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
            bail!(
                "fuzz target {name} failed (crash input under {}):\n{}",
                fuzz_dir.join("artifacts").join(name).display(),
                tail.join("\n")
            );
        }
        let runs = executions(&log).with_context(|| format!("no `Done N runs` line in the {name} log"))?;
        println!("  {name}: {runs} executions in {:.1} s", started.elapsed().as_secs_f64());
        summary.push((name.to_string(), runs));
    }
    println!("fuzz summary ({seconds} s per target):");
    for (name, runs) in summary {
        println!("  {name:<16} {runs:>12} executions");
    }
    Ok(())
}

/// Every fuzz target for a few seconds (CI).
pub fn fuzz_smoke(root: &Path) -> Result<()> {
    fuzz(root, None, SMOKE_SECONDS)
}

/// libFuzzer's final `Done N runs in S second(s)` line.
fn executions(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|line| line.strip_prefix("Done ")?.split_whitespace().next()?.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_the_fuzz_crate_s_and_executions_are_read_from_the_log() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(FUZZ_DIR).join("fuzz_targets");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".rs").map(str::to_owned))
            .collect();
        on_disk.sort();
        let mut ours = FUZZ_TARGETS.map(String::from).to_vec();
        ours.sort();
        assert_eq!(ours, on_disk, "FUZZ_TARGETS must list {}", dir.display());
        for name in FUZZ_TARGETS {
            let seeds = dir.join("../corpus").join(name);
            let count = std::fs::read_dir(&seeds).map(|d| d.count()).unwrap_or(0);
            assert!(count > 0, "{name} has no committed seeds in {}", seeds.display());
        }
        assert_eq!(executions("#2 INITED\nDone 123456 runs in 5 second(s)\n"), Some(123456));
        assert_eq!(executions("crashed"), None);
    }
}
