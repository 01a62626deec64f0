//! The GRUB rescue ISO: GRUB loads `hv-core.elf` through multiboot2 and the bundle as `module2`.
//! One hybrid image boots through BIOS (El Torito → i386-pc GRUB) and through UEFI (El Torito's
//! EFI entry, a FAT image holding `efi/boot/bootx64.efi` → x86_64-efi GRUB, which calls
//! ExitBootServices before it jumps to the hypervisor's 32-bit entry).

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

/// The GRUB modules the ISO carries (with their dependencies), for both platforms: the disk
/// drivers (biosdisk; UEFI's disk I/O) are in each platform's core image already.
pub const MODULES: &str = "multiboot2 normal iso9660";

/// Stages `boot/hv-core.elf`, `boot/bundle.bin`, `boot/grub/grub.cfg` next to `out` and runs
/// grub-mkrescue with only the modules we need: 4.5 MB plus the hypervisor and the bundle (20 MB
/// with every module; 0.8 MB for BIOS alone, as nearly 3 MB is the fixed-size FAT image that
/// holds GRUB's EFI binary).
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
        .arg(format!("--install-modules={MODULES}"))
        .args(["--fonts=", "--locales=", "--themes="])
        .arg(&stage)
        .output()
        .context("running grub-mkrescue")?;
    if !output.status.success() || !tmp.is_file() {
        bail!(
            "grub-mkrescue failed ({}):\n{}\n  fix: check that grub-pc-bin, grub-efi-amd64-bin, grub-common, xorriso and mtools are installed",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    std::fs::rename(&tmp, out).with_context(|| format!("moving the ISO to {}", out.display()))?;
    std::fs::remove_dir_all(&stage).ok();
    Ok(())
}
