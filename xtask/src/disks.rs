//! Raw disk images for a topology's `[[disk]]` tables.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::topology::Loaded;

/// The images of `topology` under `dir` (`<name>.img`), created (sparse, zero-filled) when
/// missing or when `fresh`; existing ones are kept, so data persists across runs.
pub fn images(dir: &Path, topology: &Loaded, fresh: bool) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut out = Vec::new();
    for d in &topology.disks {
        let path = dir.join(format!("{}.img", d.name));
        if fresh || !path.exists() {
            let f = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
            f.set_len(d.size_mib as u64 * 1024 * 1024).with_context(|| format!("sizing {}", path.display()))?;
        }
        out.push(path);
    }
    Ok(out)
}
