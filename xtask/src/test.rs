//! `cargo xtask test [FILTER]...`: every check we have, in order, with a summary.
//!
//! 1. lints ([`crate::lint`]): rustfmt --check, clippy -D warnings on the host and bare-metal crates
//! 2. host unit tests: `cargo test --no-fail-fast -p <each default member except hv-tests>`
//! 3. shared-ring: loom, Miri; then the fuzz smoke of every target in `tests/fuzz`
//! 4. bare-metal build and the bundle of every topology
//! 5. QEMU scenarios: `cargo test --no-fail-fast -p hv-tests [-- FILTER...]`, told where the artifacts are
//!    (`HV_ARTIFACTS_DIR`)
//!
//! A failing step does not stop the later ones (a lint failure still lets the scenarios run);
//! the command fails at the end if any step failed. With a FILTER only steps 4 and 5 run, and
//! step 5 runs only the matching scenarios (libtest name filters: a scenario runs when its name
//! contains one of them); the others are listed as skipped.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use xtask::artifacts::{self, Output};
use xtask::paths::{self, ARTIFACTS_ENV, Paths};
use xtask::{step, topology};

use crate::{ACCEL_HELP, AccelArg, fuzz, lint, ring_checks};

/// The package holding the QEMU scenarios.
const SCENARIOS: &str = "hv-tests";
/// Environment variable the scenarios read to pick the accelerator (default tcg).
pub const ACCEL_ENV: &str = "HV_TEST_ACCEL";

pub const ABOUT: &str = "Every check, in order: rustfmt --check and clippy -D warnings (host crates, then the bare-metal \
crates), host unit tests, shared-ring loom and Miri, the fuzz smoke of every hostile-input parser, the bare-metal build with the bundle of every topology, \
and the QEMU scenarios (package hv-tests). A failing step does not stop the later ones; the summary lists every step, \
and a failed lint names the crates or files and the command that fixes them.

With FILTER only the bare-metal build and the matching QEMU scenarios run: a scenario runs when its name contains one \
of the FILTERs (as `cargo test -p hv-tests -- FILTER...`). The lints, host unit tests, loom, Miri and the fuzz smoke \
are skipped (the summary says so): a FILTER is for iterating on scenarios, and the full run is what CI does. A \
FILTER that matches no scenario is an error.";

#[derive(clap::Args)]
pub struct TestArgs {
    /// Run only the QEMU scenarios whose name contains one of these (skips lints, unit tests, loom, Miri, fuzz)
    #[arg(value_name = "FILTER")]
    filters: Vec<String>,
    /// Accelerator for the QEMU scenarios [default: tcg]
    #[arg(long, value_enum, long_help = ACCEL_HELP)]
    accel: Option<AccelArg>,
}

pub enum Verdict {
    Pass,
    Fail(String),
    Skipped(String),
}

struct Outcome {
    name: String,
    verdict: Verdict,
    secs: f64,
}

/// Named steps run one after the other, each timed, with a summary at the end.
pub struct Steps {
    results: Vec<Outcome>,
    started: Instant,
}

impl Steps {
    pub fn new() -> Self {
        Self { results: Vec::new(), started: Instant::now() }
    }

    /// Runs `f` as step `name` (an error is a failure).
    pub fn run(&mut self, name: &str, f: impl FnOnce() -> Result<Verdict>) {
        step(name);
        let t = Instant::now();
        let verdict = f().unwrap_or_else(|e| Verdict::Fail(format!("{e:#}")));
        if let Verdict::Fail(why) = &verdict {
            eprintln!("==> FAILED: {name}: {why}");
        }
        self.results.push(Outcome { name: name.to_owned(), verdict, secs: t.elapsed().as_secs_f64() });
    }

    /// Records step `name` as skipped, and why.
    pub fn skip(&mut self, name: &str, why: &str) {
        self.results.push(Outcome { name: name.to_owned(), verdict: Verdict::Skipped(why.to_owned()), secs: 0.0 });
    }

    /// Prints the summary; fails when a step failed.
    pub fn finish(self) -> Result<()> {
        eprintln!("\n==> summary ({:.0} s)", self.started.elapsed().as_secs_f64());
        let mut failed = 0;
        for r in &self.results {
            let (tag, note) = match &r.verdict {
                Verdict::Pass => ("PASS", String::new()),
                Verdict::Fail(why) => {
                    failed += 1;
                    ("FAIL", format!(" — {}", why.lines().next().unwrap_or("")))
                }
                Verdict::Skipped(why) => ("SKIP", format!(" — {why}")),
            };
            let secs = if matches!(r.verdict, Verdict::Skipped(_)) { "-".into() } else { format!("{:.1} s", r.secs) };
            eprintln!("  {tag}  {:<55} {secs:>8}{note}", r.name);
        }
        let skipped = self.results.iter().filter(|r| matches!(r.verdict, Verdict::Skipped(_))).count();
        let passed = self.results.len() - failed - skipped;
        if failed == 0 {
            eprintln!("all steps that ran passed");
        }
        // The plain closing line CI runners read.
        eprintln!("steps: {passed} passed, {failed} failed, {skipped} skipped");
        if failed > 0 {
            bail!("{failed} of {} steps failed", self.results.len());
        }
        Ok(())
    }
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

/// `cargo test --no-fail-fast -p <packages> [-- <test_args>]`: every test binary runs even when
/// an earlier one failed (a failing README check must not hide the QEMU scenarios' results).
fn cargo_test(root: &Path, packages: &[String], test_args: &[String], envs: &[(&str, String)]) -> Result<Verdict> {
    let mut cmd = Command::new(paths::cargo());
    cmd.current_dir(root).args(["test", "--no-fail-fast"]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let mut shown = format!("cargo test --no-fail-fast -p {}", packages.join(" -p "));
    if !test_args.is_empty() {
        cmd.arg("--").args(test_args);
        shown.push_str(&format!(" -- {}", test_args.join(" ")));
    }
    cmd.envs(envs.iter().map(|(k, v)| (*k, v)));
    eprintln!("    {shown}");
    let status = cmd.status().with_context(|| format!("running {shown}"))?;
    Ok(if status.success() { Verdict::Pass } else { Verdict::Fail(format!("{shown}: {status}")) })
}

/// The names of the scenarios `cargo test -p hv-tests -- --list <filters>` lists (this compiles
/// the scenarios first).
fn scenarios_matching(root: &Path, filters: &[String]) -> Result<Vec<String>> {
    let out = Command::new(paths::cargo())
        .current_dir(root)
        .args(["test", "-p", SCENARIOS, "--", "--list"])
        .args(filters)
        .stdin(Stdio::null())
        .output()
        .context("running cargo test -p hv-tests -- --list")?;
    if !out.status.success() {
        bail!(
            "cargo test -p {SCENARIOS} -- --list failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    Ok(listed_tests(&String::from_utf8_lossy(&out.stdout)))
}

/// libtest's `--list` output (`<name>: test` lines) → the names.
fn listed_tests(list: &str) -> Vec<String> {
    list.lines().filter_map(|l| l.strip_suffix(": test")).map(str::to_owned).collect()
}

pub fn run(paths: &Paths, args: TestArgs) -> Result<()> {
    let root = &paths.root;
    let filtered = !args.filters.is_empty();
    let skip_why = "a FILTER selects QEMU scenarios only";
    let mut steps = Steps::new();

    for l in lint::all() {
        if filtered {
            steps.skip(l.name, skip_why);
        } else {
            steps.run(l.name, || lint::check(root, &l).map(|()| Verdict::Pass));
        }
    }

    let host: Vec<String> = default_member_packages(root)?.into_iter().filter(|p| p != SCENARIOS).collect();
    let name = format!("host unit tests ({} default members)", host.len());
    if filtered {
        steps.skip(&name, skip_why);
    } else {
        steps.run(&name, || cargo_test(root, &host, &[], &[]));
    }

    type RingTask = fn(&Path) -> Result<()>;
    let ring_tasks: [(&str, RingTask); 3] = [
        ("shared-ring: loom", ring_checks::loom),
        ("shared-ring: miri", ring_checks::miri),
        ("fuzz smoke (every target in tests/fuzz)", fuzz::fuzz_smoke),
    ];
    for (name, task) in ring_tasks {
        if filtered {
            steps.skip(name, skip_why);
        } else {
            steps.run(name, || task(root).map(|()| Verdict::Pass));
        }
    }

    let mut image_dir = None;
    steps.run("bare-metal build and bundles of every topology", || {
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

    let name = if filtered {
        format!("QEMU scenarios ({SCENARIOS}) matching {}", args.filters.join(" or "))
    } else {
        format!("QEMU scenarios ({SCENARIOS})")
    };
    steps.run(&name, || {
        let Some(dir) = &image_dir else {
            return Ok(Verdict::Fail("not run: the bare-metal build failed".into()));
        };
        if filtered {
            let matching = scenarios_matching(root, &args.filters)?;
            if matching.is_empty() {
                bail!(
                    "no scenario's name contains {} (list them: cargo test -p {SCENARIOS} -- --list)",
                    args.filters.join(" or ")
                );
            }
            eprintln!("    {} matching: {}", matching.len(), matching.join(", "));
        }
        let mut envs = vec![(ARTIFACTS_ENV, dir.display().to_string())];
        if let Some(a) = args.accel {
            envs.push((ACCEL_ENV, xtask::qemu::Accel::from(a).name().to_owned()));
        }
        cargo_test(root, &[SCENARIOS.to_owned()], &args.filters, &envs)
    });

    steps.finish()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    #[test]
    fn reads_default_members() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let names = super::default_member_packages(root).unwrap();
        assert!(names.iter().any(|n| n == "xtask") && names.iter().any(|n| n == "hv-tests"), "{names:?}");
    }

    #[test]
    fn reads_libtest_lists() {
        let list = "ping_and_pong_meet: test\nother: test\n\n2 tests, 0 benchmarks\nglob: test\n";
        assert_eq!(super::listed_tests(list), ["ping_and_pong_meet", "other", "glob"]);
    }

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        test: super::TestArgs,
    }

    #[test]
    fn filters_are_positional_and_optional() {
        let a = Cli::parse_from(["test", "ping_and_pong", "--accel", "tcg", "net"]).test;
        assert_eq!(a.filters, ["ping_and_pong", "net"]);
        assert!(Cli::parse_from(["test"]).test.filters.is_empty());
    }
}
