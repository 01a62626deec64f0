//! The Rust tools beyond the pinned toolchain's compiler that commands need (nightly, Miri,
//! cargo-fuzz, clippy, rustfmt). Each check fails with the command that installs the tool.

use std::process::{Command, Stdio};

use anyhow::{Result, bail};

/// Whether `command` runs and exits 0 (its output is discarded).
pub fn succeeds(command: &mut Command) -> bool {
    command.stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

/// The nightly toolchain (cargo-fuzz and Miri need it).
pub fn require_nightly() -> Result<()> {
    if !succeeds(Command::new("cargo").args(["+nightly", "--version"])) {
        bail!(
            "the nightly toolchain is missing (needed by cargo-fuzz and Miri): run \
             `rustup toolchain install nightly` (RUSTUP_AUTO_INSTALL=0 stops rustup from doing it itself)"
        );
    }
    Ok(())
}

pub fn require_cargo_fuzz() -> Result<()> {
    if !succeeds(Command::new("cargo").args(["+nightly", "fuzz", "--version"])) {
        bail!("cargo-fuzz is not installed: run `cargo install cargo-fuzz --locked`");
    }
    Ok(())
}

/// Miri on nightly, added with rustup when missing.
pub fn ensure_miri() -> Result<()> {
    require_nightly()?;
    if !succeeds(Command::new("cargo").args(["+nightly", "miri", "--version"])) {
        println!("installing the miri component: rustup component add miri --toolchain nightly");
        let added = succeeds(Command::new("rustup").args(["component", "add", "miri", "--toolchain", "nightly"]));
        if !added {
            bail!("Miri is missing and could not be added: run `rustup component add miri --toolchain nightly`");
        }
    }
    Ok(())
}

/// A component of the pinned toolchain (`clippy`, `rustfmt`) whose cargo subcommand
/// (`cargo clippy`, `cargo fmt`) must run in `root`.
pub fn require_component(root: &std::path::Path, component: &str, subcommand: &str) -> Result<()> {
    if !succeeds(Command::new(xtask::paths::cargo()).args([subcommand, "--version"]).current_dir(root)) {
        bail!("`cargo {subcommand}` does not run: run `rustup component add {component}` in {}", root.display());
    }
    Ok(())
}
