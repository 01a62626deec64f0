//! Bridge to the shared-ring tasks (`ring_tasks.rs`, owned by the shared-ring engineer). Until that
//! file exists, xtask still builds and these say so.

use std::path::Path;

use anyhow::Result;

/// Whether `src/ring_tasks.rs` was present when xtask was compiled.
pub const AVAILABLE: bool = cfg!(has_ring_tasks);

#[cfg(has_ring_tasks)]
mod imp {
    pub use crate::ring_tasks::{bench_ring, fuzz, fuzz_smoke, loom, miri};
}

#[cfg(not(has_ring_tasks))]
mod imp {
    use std::path::Path;

    use anyhow::{Result, bail};

    fn missing() -> Result<()> {
        bail!("the shared-ring tasks are not wired yet (xtask/src/ring_tasks.rs does not exist)")
    }
    pub fn bench_ring(_: &Path) -> Result<()> {
        missing()
    }
    pub fn fuzz(_: &Path, _: Option<&str>, _: u64) -> Result<()> {
        missing()
    }
    pub fn fuzz_smoke(_: &Path) -> Result<()> {
        missing()
    }
    pub fn loom(_: &Path) -> Result<()> {
        missing()
    }
    pub fn miri(_: &Path) -> Result<()> {
        missing()
    }
}

pub fn bench_ring(root: &Path) -> Result<()> {
    imp::bench_ring(root)
}
pub fn fuzz(root: &Path, target: Option<&str>, seconds: u64) -> Result<()> {
    imp::fuzz(root, target, seconds)
}
pub fn fuzz_smoke(root: &Path) -> Result<()> {
    imp::fuzz_smoke(root)
}
pub fn loom(root: &Path) -> Result<()> {
    imp::loom(root)
}
pub fn miri(root: &Path) -> Result<()> {
    imp::miri(root)
}
