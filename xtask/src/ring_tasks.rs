//! `cargo xtask` tasks for the `shared-ring` crate: fuzzing, the ring benchmark, loom and Miri.
//!
//! Each task checks its tools first and fails with the command that fixes a missing one.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// The cargo-fuzz targets in `shared-ring/fuzz/fuzz_targets/`.
pub const FUZZ_TARGETS: [&str; 4] = ["ring_protocol", "blkif_decode", "netif_decode", "store_decode"];

/// Seconds per target in [`fuzz_smoke`].
const SMOKE_SECONDS: u64 = 5;

/// Run one fuzz target (or all) for `seconds` each, starting from the committed seed corpus
/// (`shared-ring/fuzz/corpus/<target>`, read-only) and growing a scratch corpus under
/// `target/fuzz/corpus/<target>`. Prints the executions each target made.
pub fn fuzz(root: &Path, target: Option<&str>, seconds: u64) -> Result<()> {
    let targets: Vec<&str> = match target {
        Some(name) if FUZZ_TARGETS.contains(&name) => vec![name],
        Some(name) => bail!("unknown fuzz target `{name}`; the targets are: {}", FUZZ_TARGETS.join(", ")),
        None => FUZZ_TARGETS.to_vec(),
    };
    require_nightly()?;
    require_cargo_fuzz()?;
    let fuzz_dir = root.join("shared-ring/fuzz");
    let target_dir = root.join("target/fuzz");

    println!("building fuzz targets (cargo +nightly fuzz build)");
    let status = Command::new("cargo")
        .args(["+nightly", "fuzz", "build", "--target-dir"])
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
            .args(["+nightly", "fuzz", "run", "--target-dir"])
            .arg(&target_dir)
            .arg(name)
            .arg(&scratch)
            .arg(&seeds)
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
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

/// `cargo xtask bench ring`: our rings against Xen's ring.h macros in the same run; prints the
/// table and writes `target/bench/ring.json`.
pub fn bench_ring(root: &Path) -> Result<()> {
    require_xen_headers()?;
    let json = root.join("target/bench/ring.json");
    let status = Command::new("cargo")
        .args(["bench", "-p", "shared-ring", "--bench", "ring", "--", "--json"])
        .arg(&json)
        .current_dir(root)
        .status()
        .context("run `cargo bench -p shared-ring --bench ring`")?;
    if !status.success() {
        bail!("ring benchmark failed");
    }
    Ok(())
}

/// The loom model checks (`--cfg loom`, own target directory so normal builds stay cached).
pub fn loom(root: &Path) -> Result<()> {
    let status = Command::new("cargo")
        .args(["test", "-p", "shared-ring", "--release", "--lib", "loom_tests"])
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", root.join("target/loom"))
        .current_dir(root)
        .status()
        .context("run the loom tests")?;
    if !status.success() {
        bail!("loom tests failed");
    }
    Ok(())
}

/// `cargo +nightly miri test -p shared-ring` (adds the miri component if it is missing).
pub fn miri(root: &Path) -> Result<()> {
    require_nightly()?;
    if !succeeds(Command::new("cargo").args(["+nightly", "miri", "--version"])) {
        println!("installing the miri component: rustup component add miri --toolchain nightly");
        let added = succeeds(Command::new("rustup").args(["component", "add", "miri", "--toolchain", "nightly"]));
        if !added {
            bail!("Miri is missing and could not be added: run `rustup component add miri --toolchain nightly`");
        }
    }
    let status = Command::new("cargo")
        .args(["+nightly", "miri", "test", "-p", "shared-ring"])
        .current_dir(root)
        .status()
        .context("run `cargo +nightly miri test -p shared-ring`")?;
    if !status.success() {
        bail!("Miri found a problem (or a test failed) in shared-ring");
    }
    Ok(())
}

fn require_nightly() -> Result<()> {
    if !succeeds(Command::new("cargo").args(["+nightly", "--version"])) {
        bail!(
            "the nightly toolchain is missing (needed by cargo-fuzz and Miri): run \
             `rustup toolchain install nightly` (RUSTUP_AUTO_INSTALL=0 stops rustup from doing it itself)"
        );
    }
    Ok(())
}

fn require_cargo_fuzz() -> Result<()> {
    if !succeeds(Command::new("cargo").args(["+nightly", "fuzz", "--version"])) {
        bail!("cargo-fuzz is not installed: run `cargo install cargo-fuzz --locked`");
    }
    Ok(())
}

fn require_xen_headers() -> Result<()> {
    let ring_h = PathBuf::from("/usr/include/xen/io/ring.h");
    if !ring_h.exists() {
        bail!("{} is missing (Xen's public headers): run `apt-get install libxen-dev`", ring_h.display());
    }
    if !succeeds(Command::new("cc").arg("--version")) {
        bail!("no C compiler (`cc`) found: run `apt-get install gcc`");
    }
    Ok(())
}

fn succeeds(command: &mut Command) -> bool {
    command.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// libFuzzer's final `Done N runs in S second(s)` line.
fn executions(log: &str) -> Option<u64> {
    log.lines().rev().find_map(|line| line.strip_prefix("Done ")?.split_whitespace().next()?.parse().ok())
}
