//! The bare-metal build (hypervisor + domain images) and the boot bundles.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};

use crate::linux_guest;
use crate::paths::{self, BARE_METAL_TARGET, Paths, show};
use crate::topology::Loaded;

/// The packages `cargo xtask build` compiles for the bare-metal target.
pub const PACKAGES: &[&str] = &["hv-core", "dom0", "blkback", "netback", "demos", "test-domains", "pvh-probe"];

/// Output handling of the cargo subprocess.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// Cargo's progress goes to our stderr (interactive use).
    Inherit,
    /// Captured; shown only in the error when the build fails (test harness).
    Capture,
}

/// `rustup target add x86_64-unknown-none` unless the toolchain already has it
/// (`RUSTUP_AUTO_INSTALL=0` on our machines: rust-toolchain.toml alone does not install it).
pub fn ensure_rust_target(root: &Path) -> Result<()> {
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    DONE.get_or_init(|| ensure_rust_target_uncached(root).map_err(|e| format!("{e:#}")))
        .clone()
        .map_err(anyhow::Error::msg)
}

fn ensure_rust_target_uncached(root: &Path) -> Result<()> {
    // rustc (through the rustup proxy) honours rust-toolchain.toml when run from the root.
    let sysroot = Command::new("rustc").arg("--print").arg("sysroot").current_dir(root).output();
    if let Ok(out) = &sysroot
        && out.status.success()
    {
        let dir =
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("lib/rustlib").join(BARE_METAL_TARGET);
        if dir.is_dir() {
            return Ok(());
        }
    }
    crate::step(format!("rustup target add {BARE_METAL_TARGET}"));
    let status = Command::new("rustup")
        .args(["target", "add", BARE_METAL_TARGET])
        .current_dir(root)
        .status()
        .context("running rustup (is rustup installed and on PATH?)")?;
    if !status.success() {
        bail!("`rustup target add {BARE_METAL_TARGET}` failed ({status})\n  fix: run it by hand in {}", root.display());
    }
    Ok(())
}

/// Builds the hypervisor and every domain image (`cargo build --release --target
/// x86_64-unknown-none -p hv-core -p dom0 -p blkback -p netback -p demos
/// -p test-domains`); returns the output directory.
pub fn build_bare_metal(paths: &Paths, output: Output) -> Result<PathBuf> {
    ensure_rust_target(&paths.root)?;
    let mut cmd = Command::new(paths::cargo());
    cmd.current_dir(&paths.root).args(["build", "--release", "--target", BARE_METAL_TARGET]);
    for p in PACKAGES {
        cmd.args(["-p", p]);
    }
    let shown = format!("cargo build --release --target {BARE_METAL_TARGET} -p {}", PACKAGES.join(" -p "));
    crate::step(format!("building the hypervisor and domain images ({shown})"));
    let (status, log) = match output {
        Output::Inherit => (cmd.status().with_context(|| format!("running {shown}"))?, String::new()),
        Output::Capture => {
            let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("running {shown}"))?;
            (out.status, String::from_utf8_lossy(&out.stderr).into_owned())
        }
    };
    if !status.success() {
        let hint = if log.contains("did not match any packages") || log.contains("failed to load manifest") {
            "\n  hint: a bare-metal crate (one of the PACKAGES in xtask/src/artifacts.rs) does not exist or does not load yet"
        } else {
            ""
        };
        bail!(
            "bare-metal build failed ({status}): {shown}{hint}{}",
            if log.is_empty() { String::new() } else { format!("\n{log}") }
        );
    }
    let dir = paths.bare_metal_dir();
    let hv = Paths::hypervisor_elf_in(&dir);
    if !hv.is_file() {
        bail!("the build succeeded but {} is missing; does hv-core build a binary named hv-core?", hv.display());
    }
    Ok(dir)
}

/// The domain images the bare-metal packages build: every `[[bin]]` (explicit or found by
/// cargo) of the packages in [`PACKAGES`] but the hypervisor's, as (package, image), from
/// `cargo metadata --no-deps`.
pub fn domain_images(root: &Path) -> Result<Vec<(String, String)>> {
    let out = Command::new(paths::cargo())
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .current_dir(root)
        .stdin(Stdio::null())
        .output()
        .context("running cargo metadata")?;
    if !out.status.success() {
        bail!("cargo metadata failed ({}):\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).context("parsing cargo metadata's JSON")?;
    let mut images = Vec::new();
    for package in meta["packages"].as_array().context("cargo metadata without packages")? {
        let name = package["name"].as_str().unwrap_or_default();
        if !PACKAGES.contains(&name) || name == paths::HYPERVISOR {
            continue;
        }
        for target in package["targets"].as_array().into_iter().flatten() {
            let is_bin = target["kind"].as_array().is_some_and(|k| k.iter().any(|k| k == "bin"));
            if let (true, Some(bin)) = (is_bin, target["name"].as_str()) {
                images.push((name.to_owned(), bin.to_owned()));
            }
        }
    }
    images.sort();
    Ok(images)
}

/// Reads the images a topology references from `image_dir` (the Linux guest's
/// [`KERNEL_IMAGE`](linux_guest::KERNEL_IMAGE) and [`RAMDISK_IMAGE`](linux_guest::RAMDISK_IMAGE)
/// from [`linux_guest::prepare`] instead), packs the bundle and writes it (atomically) to
/// `target/bundles/<topology>.bundle`. Returns the bundle path.
pub fn write_bundle(paths: &Paths, topology: &Loaded, image_dir: &Path) -> Result<PathBuf> {
    let mut images = Vec::new();
    let mut linux = None;
    // One initramfs per bundle: the `bench linux-io` variant when the topology names it.
    let io_tools = topology.images().iter().any(|i| i == linux_guest::RAMDISK_IO_IMAGE);
    for image in topology.images() {
        if [linux_guest::KERNEL_IMAGE, linux_guest::RAMDISK_IMAGE, linux_guest::RAMDISK_IO_IMAGE].contains(&&*image) {
            if linux.is_none() {
                let prepared = linux_guest::prepare_with(paths, true, io_tools).with_context(|| {
                    format!("{}: preparing the Linux guest's {image:?}", show(&topology.path, &paths.root))
                })?;
                linux = Some(prepared);
            }
            let bytes = linux_guest::image_bytes(linux.as_ref().expect("prepared above"), &image)?;
            images.push((image, bytes));
            continue;
        }
        let file = image_dir.join(&image);
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) => {
                let user = match topology.topology.domains.iter().find(|d| d.images().any(|i| *i == image)) {
                    Some(d) if d.domain_type == hv_bundle::DomainType::Pvh => format!("PVH domain {} uses", d.name),
                    Some(d) => format!("domain {} uses", d.name),
                    None => "images = [...] lists".to_owned(),
                };
                bail!(
                    "{}: {user} image {image:?}, but {} cannot be read ({e})\n  fix: use one of the built images ({}, \
                     or {:?} and {:?} for Debian's Linux) or add a binary named {image:?}",
                    show(&topology.path, &paths.root),
                    file.display(),
                    built_images(image_dir).join(", "),
                    linux_guest::KERNEL_IMAGE,
                    linux_guest::RAMDISK_IMAGE,
                );
            }
        };
        if bytes.get(..4) != Some(b"\x7fELF") {
            bail!("{} is not an ELF file", file.display());
        }
        images.push((image, bytes));
    }
    let bundle = hv_bundle::build(&topology.topology, &images)
        .map_err(|e| anyhow::anyhow!("{}: {e}", show(&topology.path, &paths.root)))?;
    let out = paths.bundle(topology.name());
    write_atomically(&out, &bundle)?;
    Ok(out)
}

/// ELF files in the bare-metal output directory (the image names a topology may use).
pub fn built_images(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_file() && e.path().extension().is_none())
        .filter(|e| std::fs::read(e.path()).map(|b| b.starts_with(b"\x7fELF")).unwrap_or(false))
        .filter_map(|e| e.file_name().to_str().map(str::to_owned))
        .filter(|n| n != paths::HYPERVISOR)
        .collect();
    names.sort();
    names
}

/// Writes through a temporary file and a rename, so a concurrent reader never sees half a file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("output path has no parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = dir.join(format!(
        ".{}.{}.{:?}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy(),
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundles_only_referenced_images_and_explains_missing_ones() {
        let root = std::env::temp_dir().join(format!("xtask-bundle-{}", std::process::id()));
        let images = root.join("images");
        std::fs::create_dir_all(&images).unwrap();
        std::fs::create_dir_all(root.join("topologies")).unwrap();
        for (name, len) in [("dom0", 100), ("hello", 3000), ("spinner", 50)] {
            let mut elf = b"\x7fELF".to_vec();
            elf.resize(len, name.len() as u8);
            std::fs::write(images.join(name), elf).unwrap();
        }
        let toml = "on_finish = \"shutdown\"\n[[domain]]\nname = \"dom0\"\nimage = \"dom0\"\nmemory_mib = 4\nkind = \"dom0\"\n\
                    [[domain]]\nname = \"h1\"\nimage = \"hello\"\nmemory_mib = 4\n[[domain]]\nname = \"h2\"\nimage = \"hello\"\nmemory_mib = 4\n";
        std::fs::write(root.join("topologies/t.toml"), toml).unwrap();
        let paths = Paths { root: root.clone(), target: root.join("target") };
        let topo = crate::topology::load(&root, Some("t")).unwrap();
        let out = write_bundle(&paths, &topo, &images).unwrap();
        assert_eq!(out, root.join("target/bundles/t.bundle"));
        let raw = std::fs::read(&out).unwrap();
        let b = hv_bundle::Bundle::parse(&raw).unwrap();
        assert_eq!(b.topology().unwrap(), topo.topology);
        let names: Vec<&str> = b.index.images.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["dom0", "hello"], "spinner is not referenced, hello is packed once");
        assert_eq!(b.image("hello").unwrap().len(), 3000);

        std::fs::write(root.join("topologies/u.toml"), toml.replace("\"hello\"", "\"helo\"")).unwrap();
        let topo = crate::topology::load(&root, Some("u")).unwrap();
        let e = format!("{:#}", write_bundle(&paths, &topo, &images).unwrap_err());
        assert!(e.contains("topologies/u.toml") && e.contains("\"helo\"") && e.contains("dom0, hello, spinner"), "{e}");

        // A PVH domain's kernel is an image like the others (here a stand-in for pvh-probe).
        let mut elf = b"\x7fELF".to_vec();
        elf.resize(777, 7);
        std::fs::write(images.join("pvh-probe"), elf).unwrap();
        let pvh = "\n[[domain]]\nname = \"p\"\ntype = \"pvh\"\nkernel = \"pvh-probe\"\nmemory_mib = 16\n";
        std::fs::write(root.join("topologies/v.toml"), format!("{toml}{pvh}")).unwrap();
        let topo = crate::topology::load(&root, Some("v")).unwrap();
        let raw = std::fs::read(write_bundle(&paths, &topo, &images).unwrap()).unwrap();
        let b = hv_bundle::Bundle::parse(&raw).unwrap();
        assert_eq!(b.topology().unwrap().domains[3].kernel.as_deref(), Some("pvh-probe"));
        assert_eq!(b.image("pvh-probe").unwrap().len(), 777);
        std::fs::write(root.join("topologies/w.toml"), format!("{toml}{}", pvh.replace("pvh-probe", "pvh-prob")))
            .unwrap();
        let topo = crate::topology::load(&root, Some("w")).unwrap();
        let e = format!("{:#}", write_bundle(&paths, &topo, &images).unwrap_err());
        assert!(e.contains("PVH domain p uses image \"pvh-prob\"") && e.contains("\"linux\""), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn domain_images_are_the_bins_of_the_image_packages() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let images = domain_images(root).unwrap();
        for (package, image) in [("dom0", "dom0"), ("demos", "hello"), ("test-domains", "attacker")] {
            assert!(images.contains(&(package.into(), image.into())), "{images:?}");
        }
        assert!(images.iter().all(|(p, _)| p != "hv-core" && PACKAGES.contains(&p.as_str())), "{images:?}");
    }
}
