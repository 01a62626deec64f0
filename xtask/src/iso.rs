//! The GRUB rescue ISO: GRUB loads `hv-core.elf` through multiboot2 and the bundle as `module2`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::packages;

/// `set timeout=0` is mandatory: without it GRUB waits at its menu forever. GRUB prints nothing
/// on the serial line (its console is VGA), so the serial log starts with the hypervisor's first line.
pub const GRUB_CFG: &str = r#"set timeout=0
set default=0
serial --unit=0 --speed=115200
menuentry "hv-core" {
  multiboot2 /boot/hv-core.elf
  module2 /boot/bundle.bin bundle
  boot
}
"#;

/// Stages `boot/hv-core.elf`, `boot/bundle.bin`, `boot/grub/grub.cfg` next to `out` and runs
/// grub-mkrescue with only the modules we need (0.85 MB instead of 9.5 MB, and faster to boot).
pub fn make_iso(hypervisor: &Path, bundle: &Path, out: &Path) -> Result<()> {
    packages::ensure(packages::ISO_TOOLS)?;
    let stage = out.with_extension("stage");
    if stage.exists() {
        std::fs::remove_dir_all(&stage).with_context(|| format!("removing old {}", stage.display()))?;
    }
    std::fs::create_dir_all(stage.join("boot/grub")).with_context(|| format!("creating {}", stage.display()))?;
    std::fs::copy(hypervisor, stage.join("boot/hv-core.elf"))
        .with_context(|| format!("copying {}", hypervisor.display()))?;
    std::fs::copy(bundle, stage.join("boot/bundle.bin")).with_context(|| format!("copying {}", bundle.display()))?;
    std::fs::write(stage.join("boot/grub/grub.cfg"), GRUB_CFG)?;
    let tmp = out.with_extension("iso.tmp");
    let output = Command::new("grub-mkrescue")
        .arg("-o")
        .arg(&tmp)
        .args(["--install-modules=multiboot2 normal iso9660 biosdisk", "--fonts=", "--locales=", "--themes="])
        .arg(&stage)
        .output()
        .context("running grub-mkrescue")?;
    if !output.status.success() || !tmp.is_file() {
        bail!(
            "grub-mkrescue failed ({}):\n{}\n  fix: check that grub-pc-bin, grub-common, xorriso and mtools are installed",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    std::fs::rename(&tmp, out).with_context(|| format!("moving the ISO to {}", out.display()))?;
    std::fs::remove_dir_all(&stage).ok();
    Ok(())
}
