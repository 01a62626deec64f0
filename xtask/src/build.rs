//! `cargo xtask build` and `cargo xtask image`, and [`prepare`]: a topology with its images built
//! and its bundle written, which `run` and the benchmarks boot.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use xtask::artifacts::{self, Output};
use xtask::paths::{Paths, show};
use xtask::{iso, step, topology};

/// Default deadline of one QEMU boot in the benchmarks.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(clap::Args)]
pub struct TopologyArg {
    /// A name in topologies/ (without .toml) or a path to a topology file [default: default]
    pub topology: Option<String>,
}

/// A topology with its images built and its bundle written.
pub struct Prepared {
    pub topology: topology::Loaded,
    pub image_dir: PathBuf,
    pub bundle: PathBuf,
}

impl Prepared {
    pub fn hypervisor(&self) -> PathBuf {
        Paths::hypervisor_elf_in(&self.image_dir)
    }
}

/// Loads the topology (first, so a typo fails fast), builds the bare-metal artifacts, writes the bundle.
pub fn prepare(paths: &Paths, topology: Option<&str>) -> Result<Prepared> {
    let topology = topology::load(&paths.root, topology)?;
    let image_dir = artifacts::build_bare_metal(paths, Output::Inherit)?;
    step(format!("bundling topology {} ({} domains)", topology.name(), topology.topology.domains.len()));
    let bundle = artifacts::write_bundle(paths, &topology, &image_dir)?;
    Ok(Prepared { topology, image_dir, bundle })
}

/// `cargo xtask build [TOPOLOGY]`.
pub fn build(paths: &Paths, topology: Option<&str>) -> Result<()> {
    let p = prepare(paths, topology)?;
    println!("hypervisor: {}", show(&p.hypervisor(), &paths.root));
    for image in p.topology.images() {
        println!("image:      {}", show(&p.image_dir.join(&image), &paths.root));
    }
    println!("bundle:     {}", show(&p.bundle, &paths.root));
    Ok(())
}

/// `cargo xtask image [TOPOLOGY]`.
pub fn image(paths: &Paths, topology: Option<&str>) -> Result<()> {
    let p = prepare(paths, topology)?;
    let out = paths.iso();
    step("grub-mkrescue");
    iso::make_iso(&p.hypervisor(), &p.bundle, &out)?;
    println!(
        "ISO: {} (BIOS and UEFI; boot it with: cargo xtask run {} --iso [--firmware uefi])",
        show(&out, &paths.root),
        p.topology.name()
    );
    Ok(())
}
