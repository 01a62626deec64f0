//! The shared-ring model checks, steps of `cargo xtask test`: loom (publication order of the
//! ring indices) and Miri (the unsafe shared-memory helpers).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::toolchain::ensure_miri;

/// The loom model checks (`--cfg loom`, own target directory so normal builds stay cached).
pub fn loom(root: &Path) -> Result<()> {
    let status = Command::new(xtask::paths::cargo())
        .args(["test", "-p", "shared-ring", "--release", "--lib", "loom_tests"])
        .env("RUSTFLAGS", "--cfg loom")
        .env("CARGO_TARGET_DIR", root.join("target/loom"))
        .current_dir(root)
        .status()
        .context("run the loom tests")?;
    if !status.success() {
        bail!("loom tests failed: RUSTFLAGS='--cfg loom' cargo test -p shared-ring --release --lib loom_tests");
    }
    Ok(())
}

/// `cargo +nightly miri test -p shared-ring` (adds the miri component if it is missing).
pub fn miri(root: &Path) -> Result<()> {
    ensure_miri()?;
    let status = Command::new("cargo")
        .args(["+nightly", "miri", "test", "-p", "shared-ring"])
        .current_dir(root)
        .status()
        .context("run `cargo +nightly miri test -p shared-ring`")?;
    if !status.success() {
        bail!("Miri found a problem (or a test failed) in shared-ring: cargo +nightly miri test -p shared-ring");
    }
    Ok(())
}
