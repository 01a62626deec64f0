//! Where the workspace, its target directory and the build outputs live.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Target triple of the hypervisor and the domains.
pub const BARE_METAL_TARGET: &str = "x86_64-unknown-none";
/// Binary name of the hypervisor.
pub const HYPERVISOR: &str = "hv-core";
/// Set by `cargo xtask test` (or a user) to a directory holding already built bare-metal ELFs
/// (`hv-core`, `dom0`, `hello`, ...); the `hv-tests` harness then skips the cargo build.
pub const ARTIFACTS_ENV: &str = "HV_ARTIFACTS_DIR";

#[derive(Debug, Clone)]
pub struct Paths {
    /// The workspace root (holds `Cargo.toml`, `topologies/`).
    pub root: PathBuf,
    /// Cargo's target directory (`$CARGO_TARGET_DIR` or `<root>/target`).
    pub target: PathBuf,
}

impl Paths {
    /// The workspace this xtask was compiled in.
    pub fn discover() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask lives in the workspace").to_path_buf();
        Self::at(root)
    }

    pub fn at(root: PathBuf) -> Self {
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) if !t.is_empty() => root.join(t),
            _ => root.join("target"),
        };
        Self { root, target }
    }

    /// Where `cargo build --release --target x86_64-unknown-none` puts the ELFs.
    pub fn bare_metal_dir(&self) -> PathBuf {
        self.target.join(BARE_METAL_TARGET).join("release")
    }

    pub fn hypervisor_elf_in(dir: &Path) -> PathBuf {
        dir.join(HYPERVISOR)
    }

    pub fn topologies_dir(&self) -> PathBuf {
        self.root.join("topologies")
    }

    /// `target/bundles/<topology>.bundle`.
    pub fn bundle(&self, topology: &str) -> PathBuf {
        self.target.join("bundles").join(format!("{topology}.bundle"))
    }

    /// The ISO `cargo xtask image` writes.
    pub fn iso(&self) -> PathBuf {
        self.target.join("hv-core.iso")
    }

    /// Per-topology ISOs for the test scenarios and the benchmark (so parallel users don't race).
    pub fn topology_iso(&self, topology: &str) -> PathBuf {
        self.target.join("iso").join(format!("{topology}.iso"))
    }

    pub fn bench_dir(&self) -> PathBuf {
        self.target.join("bench")
    }

    /// Disk images of a topology for `cargo xtask run` (kept across runs).
    pub fn disks_dir(&self, topology: &str) -> PathBuf {
        self.target.join("disks").join(topology)
    }
}

/// The cargo binary running us (`$CARGO`), or `cargo` from `PATH`.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Path relative to `base` when it is inside it (for readable messages).
pub fn show(path: &Path, base: &Path) -> String {
    path.strip_prefix(base).unwrap_or(path).display().to_string()
}
