//! `cargo xtask lint`, also the first steps of `cargo xtask test`: rustfmt and clippy, with
//! warnings as errors, over the host crates and the bare-metal ones.
//!
//! - `cargo fmt --all -- --check`
//! - host: `cargo clippy --all-targets -- -D warnings`; without `-p`, cargo takes the workspace's
//!   default members, which are the host crates (`--workspace` would include the bare-metal-only
//!   crates, which do not build for the host)
//! - bare metal: `cargo clippy --release --target x86_64-unknown-none -p <artifacts::PACKAGES>
//!   -- -D warnings`, the packages `cargo xtask build` compiles
//!
//! Both clippy runs pass `--keep-going`, so one run names every crate with warnings. A failure
//! says which crates (or files) and the command that fixes what can be fixed automatically.

use std::io::{BufRead, BufReader, IsTerminal};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use xtask::artifacts::{self, PACKAGES};
use xtask::paths::{self, BARE_METAL_TARGET, Paths};

use crate::test::Steps;
use crate::toolchain::require_component;

/// One lint run: a cargo command and what to run when it fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lint {
    /// The step's name in the summary.
    pub name: &'static str,
    /// Arguments of `cargo`.
    pub args: Vec<String>,
    /// The command that fixes (most of) a failure.
    pub fix: String,
}

impl Lint {
    pub fn shown(&self) -> String {
        format!("cargo {}", self.args.join(" "))
    }

    fn is_clippy(&self) -> bool {
        self.args.first().is_some_and(|a| a == "clippy")
    }
}

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

/// `cargo fmt --all -- --check`.
pub fn rustfmt() -> Lint {
    Lint { name: "rustfmt --check", args: strings(&["fmt", "--all", "--", "--check"]), fix: "cargo fmt --all".into() }
}

/// clippy over the default members (the host crates), every target (tests, benches, examples).
pub fn clippy_host() -> Lint {
    let args = strings(&["clippy", "--all-targets", "--keep-going", "--", "-D", "warnings"]);
    Lint {
        name: "clippy (host crates)",
        args,
        fix: "cargo clippy --all-targets --fix --allow-dirty, then fix the rest by hand".into(),
    }
}

/// clippy over the hypervisor and the domain images, for the bare-metal target.
pub fn clippy_bare_metal() -> Lint {
    let mut args = strings(&["clippy", "--release", "--target", BARE_METAL_TARGET]);
    let mut packages = String::new();
    for p in PACKAGES {
        args.extend(["-p".to_owned(), (*p).to_owned()]);
        packages.push_str(&format!(" -p {p}"));
    }
    args.extend(strings(&["--keep-going", "--", "-D", "warnings"]));
    Lint {
        name: "clippy (bare-metal crates)",
        args,
        fix: format!(
            "cargo clippy --release --target {BARE_METAL_TARGET}{packages} --fix --allow-dirty, then fix the rest by hand"
        ),
    }
}

/// The lints in the order they run (cheapest first).
pub fn all() -> [Lint; 3] {
    [rustfmt(), clippy_host(), clippy_bare_metal()]
}

/// What failed, from the tool's output: clippy's `could not compile `<crate>` (<target>)` lines,
/// rustfmt's `Diff in <file>:<line>:` lines; each named once, in order.
pub fn culprits(output: &str, root: &Path) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in output.lines() {
        let found = if let Some(rest) = line.strip_prefix("error: could not compile `") {
            rest.split_once('`').map(|(krate, rest)| {
                let target = rest.trim_start().strip_prefix('(').and_then(|r| r.split_once(')')).map(|(t, _)| t);
                match target {
                    Some(t) => format!("{krate} ({})", t.replace('"', "")),
                    None => krate.to_owned(),
                }
            })
        } else if let Some(rest) = line.strip_prefix("Diff in ") {
            let file = rest.trim_end_matches(':').rsplit_once(':').map_or(rest, |(f, _)| f);
            Some(paths::show(Path::new(file), root))
        } else {
            None
        };
        if let Some(f) = found
            && !out.contains(&f)
        {
            out.push(f);
        }
    }
    out
}

/// Runs one lint with its output on our stderr; fails naming the culprits and the fix.
pub fn check(root: &Path, lint: &Lint) -> Result<()> {
    if lint.is_clippy() {
        require_component(root, "clippy", "clippy")?;
    } else {
        require_component(root, "rustfmt", "fmt")?;
    }
    if lint.args.iter().any(|a| a == BARE_METAL_TARGET) {
        artifacts::ensure_rust_target(root)?;
    }
    let shown = lint.shown();
    eprintln!("    {shown}");
    let mut args = lint.args.clone();
    if lint.is_clippy() && std::io::stderr().is_terminal() {
        // Piped, cargo would drop its colours. `--color` is cargo's: it goes before the `--`
        // that starts clippy-driver's arguments.
        let at = args.iter().position(|a| a == "--").unwrap_or(args.len());
        args.insert(at, "--color=always".into());
    }
    let mut cmd = Command::new(paths::cargo());
    cmd.current_dir(root).args(&args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().with_context(|| format!("running {shown}"))?;
    // rustfmt writes its diffs to stdout, cargo and clippy to stderr: echo both, keep both.
    let stdout = child.stdout.take().expect("piped");
    let out_thread = std::thread::spawn(move || echo(BufReader::new(stdout)));
    let err_text = echo(BufReader::new(child.stderr.take().expect("piped")));
    let out_text = out_thread.join().unwrap_or_default();
    let status = child.wait().with_context(|| format!("waiting for {shown}"))?;
    if status.success() {
        return Ok(());
    }
    let plain = strip_ansi(&format!("{out_text}\n{err_text}"));
    let names = culprits(&plain, root);
    let what = if lint.is_clippy() { "warnings in" } else { "unformatted:" };
    if names.is_empty() {
        bail!("{shown} failed ({status}) — fix: {}", lint.fix);
    }
    bail!("{what} {} — fix: {}", names.join(", "), lint.fix);
}

/// Copies every line to our stderr and returns the text.
fn echo(r: impl BufRead) -> String {
    let mut all = String::new();
    for line in r.lines().map_while(Result::ok) {
        eprintln!("{line}");
        all.push_str(&line);
        all.push('\n');
    }
    all
}

/// `s` without ANSI colour sequences (`ESC [ ... letter`).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `cargo xtask lint`: every lint, then a summary.
pub fn run(paths: &Paths) -> Result<()> {
    let mut steps = Steps::new();
    for lint in all() {
        steps.run(lint.name, || check(&paths.root, &lint).map(|()| crate::test::Verdict::Pass));
    }
    steps.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lint_commands() {
        assert_eq!(rustfmt().shown(), "cargo fmt --all -- --check");
        assert_eq!(clippy_host().shown(), "cargo clippy --all-targets --keep-going -- -D warnings");
        let bare = clippy_bare_metal().shown();
        assert_eq!(
            bare,
            "cargo clippy --release --target x86_64-unknown-none -p hv-core -p dom0 -p blkback -p netback -p demos \
             -p test-domains -p pvh-probe --keep-going -- -D warnings"
        );
        for p in PACKAGES {
            assert!(bare.contains(&format!(" -p {p} ")), "{p} is built, so it is linted");
            assert!(clippy_bare_metal().fix.contains(&format!(" -p {p} ")));
        }
    }

    #[test]
    fn culprits_are_named_once() {
        let root = Path::new("/w");
        let clippy = "warning: unused variable\n\
                      error: could not compile `dom0` (bin \"dom0\") due to 2 previous errors\n\
                      error: could not compile `hv-core` (lib) due to 1 previous error; 3 warnings emitted\n\
                      error: could not compile `dom0` (bin \"dom0\") due to 2 previous errors\n";
        assert_eq!(culprits(clippy, root), ["dom0 (bin dom0)", "hv-core (lib)"]);
        let fmt = "Diff in /w/xtask/src/main.rs:12:\n-a\n+b\nDiff in /w/xtask/src/main.rs:40:\nDiff in /w/tests/src/lib.rs:3:\n";
        assert_eq!(culprits(fmt, root), ["xtask/src/main.rs", "tests/src/lib.rs"]);
        assert_eq!(strip_ansi("\x1b[1m\x1b[31merror\x1b[0m: x"), "error: x");
    }
}
