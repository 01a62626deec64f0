//! `cargo xtask`: build, boot, test, lint, benchmark and fuzz hv-core. See `cargo xtask --help`.
//!
//! One module per command: [`build`] (`build`, `image`), [`run`], [`test`], [`lint`], [`bench`],
//! [`xl`], [`fuzz`], [`linux_guest_cmd`] (`linux-guest`); [`ring_checks`] (loom, Miri) and [`toolchain`] serve them. What the
//! `hv-tests` scenarios share with the commands (topologies, the bare-metal build, bundles, the
//! ISO, QEMU, apt packages, the control-channel client) is the xtask library (`src/lib.rs`).

mod bench;
mod build;
mod fuzz;
mod lint;
mod linux_guest_cmd;
mod ring_checks;
mod run;
mod test;
mod toolchain;
mod xl;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use xtask::paths::Paths;
use xtask::qemu::{Accel, Firmware, Machine};
use xtask::step;

/// `--accel` help, shared by the commands that boot QEMU.
const ACCEL_HELP: &str = "Accelerator. Default: hardware KVM only when kvm_intel or kvm_amd is loaded and /dev/kvm opens, \
otherwise TCG. On these development machines /dev/kvm is kvm_pvm, a software backend in which ring-0 code crawls \
(~3,000 cycles per ALU loop iteration) and firmware/GRUB take seconds to tens of seconds, so TCG is the default there \
(see docs/architecture.md, TCG and KVM). Under kvm QEMU gets `-cpu host,-arch-capabilities`.";

#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about = "Build, boot, test and benchmark hv-core")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the hypervisor, the domain images and the boot bundle (target/bundles/<topology>.bundle)
    Build(build::TopologyArg),
    /// Build the bootable GRUB ISO (target/hv-core.iso, BIOS and UEFI) for a topology
    Image(build::TopologyArg),
    /// Build and boot a topology in QEMU with the serial console on this terminal
    Run(run::RunArgs),
    /// Every check: rustfmt and clippy, host unit tests, shared-ring loom/miri/fuzz smoke, the QEMU scenarios
    #[command(long_about = test::ABOUT)]
    Test(test::TestArgs),
    /// rustfmt --check and clippy -D warnings over the host and bare-metal crates (the first steps of `test`)
    Lint,
    /// Benchmarks: the hypervisor (in QEMU, against a Linux reference guest), the shared ring (host),
    /// block, network, toolstack
    Bench(bench::BenchArgs),
    /// Xen's xl verbs against the system `cargo xtask run` is running (over its control channel)
    Xl(xl::XlArgs),
    /// Run a fuzz target (tests/fuzz: the ring, the wire formats, the ELF loader, the bundle, control frames, both backends, the store server) (cargo +nightly fuzz)
    Fuzz(fuzz::FuzzArgs),
    /// Prepare Debian's kernel as a Xen PVH guest: the ELF vmlinux (with its PVH entry) and a busybox
    /// initramfs, cached in target/linux-guest/
    LinuxGuest(linux_guest_cmd::LinuxGuestArgs),
}

#[derive(Clone, Copy, ValueEnum)]
enum AccelArg {
    Tcg,
    Kvm,
}

impl From<AccelArg> for Accel {
    fn from(a: AccelArg) -> Self {
        match a {
            AccelArg::Tcg => Accel::Tcg,
            AccelArg::Kvm => Accel::Kvm,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum MachineArg {
    Q35,
    Pc,
}

impl From<MachineArg> for Machine {
    fn from(m: MachineArg) -> Self {
        match m {
            MachineArg::Q35 => Machine::Q35,
            MachineArg::Pc => Machine::Pc,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum FirmwareArg {
    Seabios,
    Qboot,
    /// OVMF (package ovmf); with --iso only
    Uefi,
}

impl From<FirmwareArg> for Firmware {
    fn from(f: FirmwareArg) -> Self {
        match f {
            FirmwareArg::Seabios => Firmware::SeaBios,
            FirmwareArg::Qboot => Firmware::Qboot,
            FirmwareArg::Uefi => Firmware::Uefi,
        }
    }
}

/// The `--accel` the user gave, else the detected one (and why, on stderr).
fn choose_accel(arg: Option<AccelArg>) -> Accel {
    match arg {
        Some(a) => a.into(),
        None => {
            let (a, why) = Accel::detect();
            step(format!("accelerator {} ({why}; choose with --accel)", a.name()));
            a
        }
    }
}

fn main() {
    let cli = Cli::parse();
    let paths = Paths::discover();
    let result: Result<()> = match cli.command {
        Cmd::Build(t) => build::build(&paths, t.topology.as_deref()),
        Cmd::Image(t) => build::image(&paths, t.topology.as_deref()),
        Cmd::Run(args) => run::run(&paths, args),
        Cmd::Test(args) => test::run(&paths, args),
        Cmd::Lint => lint::run(&paths),
        Cmd::Bench(args) => bench::run(&paths, args),
        Cmd::Xl(args) => xl::run(&paths, args),
        Cmd::Fuzz(args) => fuzz::run(&paths, args),
        Cmd::LinuxGuest(args) => linux_guest_cmd::run(&paths, args),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
