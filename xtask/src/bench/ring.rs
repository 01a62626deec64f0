//! `cargo xtask bench ring`: our ring against Xen's `ring.h` macros, on the host, in the same
//! run (`cargo bench -p shared-ring --bench ring`, which prints the table and writes
//! `target/bench/ring.json` itself).

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use xtask::packages;

pub fn run(root: &Path) -> Result<()> {
    // Xen's headers and a C compiler: the reference side is Xen's macros compiled from C.
    packages::ensure(&[packages::LIBXEN_DEV, packages::GCC])?;
    let json = root.join("target/bench/ring.json");
    let status = Command::new(xtask::paths::cargo())
        .args(["bench", "-p", "shared-ring", "--bench", "ring", "--", "--json"])
        .arg(&json)
        .current_dir(root)
        .status()
        .context("run `cargo bench -p shared-ring --bench ring`")?;
    if !status.success() {
        bail!("the ring benchmark failed: cargo bench -p shared-ring --bench ring ({status})");
    }
    Ok(())
}
