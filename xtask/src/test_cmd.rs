//! `cargo xtask test`: every test we have, in order, with a summary.
//!
//! 1. host unit tests: `cargo test -p <each default member except hv-tests>`
//! 2. shared-ring: loom, miri, fuzz smoke (once `ring_tasks.rs` exists)
//! 3. bare-metal build and the bundle of every topology
//! 4. QEMU scenarios: `cargo test -p hv-tests`, told where the artifacts are (`HV_ARTIFACTS_DIR`)

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use xtask::artifacts::{self, Output};
use xtask::paths::{self, ARTIFACTS_ENV, Paths};
use xtask::qemu::Accel;
use xtask::{step, topology};

use crate::ring;

/// The package holding the QEMU scenarios.
const SCENARIOS: &str = "hv-tests";
/// Environment variable the scenarios read to pick the accelerator (default tcg).
pub const ACCEL_ENV: &str = "HV_TEST_ACCEL";

enum Verdict {
    Pass,
    Fail(String),
    Skipped(String),
}

struct Outcome {
    name: String,
    verdict: Verdict,
    secs: f64,
}

fn timed(results: &mut Vec<Outcome>, name: &str, f: impl FnOnce() -> Result<Verdict>) -> bool {
    step(name);
    let t = Instant::now();
    let verdict = f().unwrap_or_else(|e| Verdict::Fail(format!("{e:#}")));
    let ok = !matches!(verdict, Verdict::Fail(_));
    if let Verdict::Fail(why) = &verdict {
        eprintln!("==> FAILED: {name}: {why}");
    }
    results.push(Outcome { name: name.to_owned(), verdict, secs: t.elapsed().as_secs_f64() });
    ok
}

/// Package names of the workspace's default members (read from the root Cargo.toml).
pub fn default_member_packages(root: &Path) -> Result<Vec<String>> {
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).context("reading the root Cargo.toml")?;
    let table: toml::Table = toml::from_str(&manifest).context("parsing the root Cargo.toml")?;
    let members = table
        .get("workspace")
        .and_then(|w| w.get("default-members"))
        .and_then(|m| m.as_array())
        .context("the root Cargo.toml has no workspace.default-members")?;
    let mut names = Vec::new();
    for m in members {
        let dir = m.as_str().context("default-members entries must be strings")?;
        let text = std::fs::read_to_string(root.join(dir).join("Cargo.toml"))
            .with_context(|| format!("reading {dir}/Cargo.toml (listed in default-members)"))?;
        let t: toml::Table = toml::from_str(&text).with_context(|| format!("parsing {dir}/Cargo.toml"))?;
        let name = t.get("package").and_then(|p| p.get("name")).and_then(|n| n.as_str());
        names.push(name.with_context(|| format!("{dir}/Cargo.toml has no package.name"))?.to_owned());
    }
    Ok(names)
}

fn cargo_test(root: &Path, packages: &[String], envs: &[(&str, String)]) -> Result<Verdict> {
    let mut cmd = Command::new(paths::cargo());
    cmd.current_dir(root).arg("test");
    for p in packages {
        cmd.args(["-p", p]);
    }
    cmd.envs(envs.iter().map(|(k, v)| (*k, v)));
    let shown = format!("cargo test -p {}", packages.join(" -p "));
    eprintln!("    {shown}");
    let status = cmd.status().with_context(|| format!("running {shown}"))?;
    Ok(if status.success() { Verdict::Pass } else { Verdict::Fail(format!("{shown}: {status}")) })
}

pub fn run(paths: &Paths, accel: Option<Accel>) -> Result<()> {
    let root = &paths.root;
    let started = Instant::now();
    let mut results = Vec::new();

    let host: Vec<String> = default_member_packages(root)?.into_iter().filter(|p| p != SCENARIOS).collect();
    timed(&mut results, &format!("host unit tests ({})", host.join(", ")), || cargo_test(root, &host, &[]));

    type RingTask = fn(&Path) -> Result<()>;
    let ring_tasks: [(&str, RingTask); 3] = [
        ("shared-ring: loom", ring::loom),
        ("shared-ring: miri", ring::miri),
        ("shared-ring: fuzz smoke", ring::fuzz_smoke),
    ];
    for (name, task) in ring_tasks {
        timed(&mut results, name, || {
            if !ring::AVAILABLE {
                return Ok(Verdict::Skipped("xtask/src/ring_tasks.rs does not exist yet".into()));
            }
            task(root).map(|()| Verdict::Pass)
        });
    }

    let mut image_dir = None;
    timed(&mut results, "bare-metal build and bundles of every topology", || {
        let dir = artifacts::build_bare_metal(paths, Output::Inherit)?;
        let names = topology::available(root);
        if names.is_empty() {
            bail!("there are no topologies in topologies/");
        }
        let mut bad = Vec::new();
        for name in &names {
            match topology::load(root, Some(name)).and_then(|t| artifacts::write_bundle(paths, &t, &dir)) {
                Ok(b) => eprintln!("    {}", paths::show(&b, root)),
                Err(e) => bad.push(format!("{e:#}")),
            }
        }
        image_dir = Some(dir);
        Ok(if bad.is_empty() { Verdict::Pass } else { Verdict::Fail(bad.join("\n")) })
    });

    timed(&mut results, "QEMU scenarios (hv-tests)", || {
        let Some(dir) = &image_dir else {
            return Ok(Verdict::Fail("not run: the bare-metal build failed".into()));
        };
        let mut envs = vec![(ARTIFACTS_ENV, dir.display().to_string())];
        if let Some(a) = accel {
            envs.push((ACCEL_ENV, a.name().to_owned()));
        }
        cargo_test(root, &[SCENARIOS.to_owned()], &envs)
    });

    eprintln!("\n==> summary ({:.0} s)", started.elapsed().as_secs_f64());
    let mut failed = 0;
    for r in &results {
        let (tag, note) = match &r.verdict {
            Verdict::Pass => ("PASS", String::new()),
            Verdict::Fail(why) => {
                failed += 1;
                ("FAIL", format!(" — {}", why.lines().next().unwrap_or("")))
            }
            Verdict::Skipped(why) => ("SKIP", format!(" — {why}")),
        };
        eprintln!("  {tag}  {:<55} {:>6.1} s{note}", r.name, r.secs);
    }
    let skipped = results.iter().filter(|r| matches!(r.verdict, Verdict::Skipped(_))).count();
    let passed = results.len() - failed - skipped;
    if failed == 0 {
        eprintln!("all test steps passed");
    }
    // The plain closing line CI runners read.
    eprintln!("steps: {passed} passed, {failed} failed, {skipped} skipped");
    if failed > 0 {
        bail!("{failed} of {} test steps failed", results.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_default_members() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let names = super::default_member_packages(root).unwrap();
        assert!(names.iter().any(|n| n == "xtask") && names.iter().any(|n| n == "hv-tests"), "{names:?}");
    }
}
