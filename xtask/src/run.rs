//! `cargo xtask run`: build a topology and boot it in QEMU with the serial console on this
//! terminal, the control channel at `target/run/control.sock` and the topology's disks and NICs.

use anyhow::Result;
use xtask::paths::{Paths, show};
use xtask::qemu::{self, Media, Spec};
use xtask::{iso, step};

use crate::{ACCEL_HELP, AccelArg, FirmwareArg, MachineArg};

#[derive(clap::Args)]
pub struct RunArgs {
    /// A name in topologies/ (without .toml) or a path to a topology file [default: default]
    topology: Option<String>,
    #[arg(long, value_enum, long_help = ACCEL_HELP)]
    accel: Option<AccelArg>,
    /// QEMU machine type
    #[arg(long, value_enum, default_value = "q35")]
    machine: MachineArg,
    /// Boot through the GRUB ISO (multiboot2) instead of `-kernel` (PVH)
    #[arg(long)]
    iso: bool,
    /// Start QEMU's gdb stub on :1234 and wait for gdb before running (-s -S)
    #[arg(long)]
    gdb: bool,
    /// Run without the Intel IOMMU even if the topology has one (the hypervisor then says that
    /// driver domains' devices can DMA anywhere)
    #[arg(long)]
    no_iommu: bool,
    /// PC firmware [default: qboot for -kernel (fastest), seabios for --iso; uefi (OVMF) boots --iso only]
    #[arg(long, value_enum)]
    firmware: Option<FirmwareArg>,
}

pub fn run(paths: &Paths, args: RunArgs) -> Result<()> {
    let p = crate::build::prepare(paths, args.topology.as_deref())?;
    let accel = crate::choose_accel(args.accel);
    let media = if args.iso {
        let out = paths.iso();
        step("grub-mkrescue");
        iso::make_iso(&p.hypervisor(), &p.bundle, &out)?;
        Media::Iso(out)
    } else {
        Media::Direct { kernel: p.hypervisor(), initrd: p.bundle.clone(), append: None }
    };
    let mut spec = Spec { machine: args.machine.into(), accel, gdb: args.gdb, ..Spec::new(media) }
        .with_xl_memory(p.topology.xl_memory_mib);
    spec.iommu = p.topology.iommu && !args.no_iommu && spec.machine == qemu::Machine::Q35;
    if !spec.iommu {
        let why = if args.no_iommu {
            "--no-iommu"
        } else if !p.topology.iommu {
            "the topology says iommu = false"
        } else {
            "the pc machine has no Intel IOMMU; q35 does"
        };
        eprintln!("iommu: off ({why}): driver domains' devices can DMA anywhere in memory");
    }
    if let Some(f) = args.firmware {
        spec.firmware = f.into();
    }
    spec.disks = xtask::disks::images(&paths.disks_dir(p.topology.name()), &p.topology, false)?;
    for d in &spec.disks {
        eprintln!("disk image: {} (kept across runs; delete it for a fresh disk)", show(d, &paths.root));
    }
    spec.nics = qemu::NetDevice::for_topology(&p.topology.nics)?;
    let control = paths.root.join("target/run/control.sock");
    std::fs::create_dir_all(control.parent().expect("has a parent"))?;
    let _ = std::fs::remove_file(&control);
    spec.control = Some(control);
    eprintln!("control channel: target/run/control.sock (in another terminal: cargo xtask xl list)");
    for (host, ip, port) in spec.nics.iter().flat_map(|n| n.forwards.iter()) {
        let hint = if *port == 80 { format!(" (try: curl http://127.0.0.1:{host}/)") } else { String::new() };
        eprintln!("network: 127.0.0.1:{host} forwards to {ip}:{port} in the user network{hint}");
    }
    spec.preflight()?;
    eprintln!("{}", spec.display());
    if args.gdb {
        eprintln!(
            "QEMU waits for gdb; in another terminal run:\n  gdb {} -ex 'target remote :1234'",
            show(&p.hypervisor(), &paths.root)
        );
    }
    eprintln!(
        "booting topology {} via {} on {} under {}; press Ctrl-C to quit",
        p.topology.name(),
        match (args.iso, spec.firmware) {
            (true, qemu::Firmware::Uefi) => "UEFI (OVMF) and GRUB (ISO)",
            (true, _) => "GRUB (ISO)",
            (false, _) => "-kernel (PVH)",
        },
        spec.machine.name(),
        accel.name()
    );
    let status = spec
        .command()
        .current_dir(&paths.root)
        .status()
        .map_err(|e| anyhow::anyhow!("starting {} failed: {e} (package qemu-system-x86)", qemu::QEMU_BINARY))?;
    eprintln!("==> {}", qemu::describe_exit(status.code()));
    if status.code() != Some(qemu::EXIT_ALL_EXPECTED) {
        std::process::exit(1);
    }
    Ok(())
}
