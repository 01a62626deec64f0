//! `cargo xtask`: build, image, run, test, bench and fuzz hv-core. See `cargo xtask --help`.

mod bench;
mod bench_net;
mod bench_xl;
mod cpio;
mod linux_net;
mod linux_ref;
mod ring;
#[cfg(has_ring_tasks)]
mod ring_tasks;
mod test_cmd;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use xtask::artifacts::{self, Output};
use xtask::paths::{Paths, show};
use xtask::qemu::{self, Accel, Firmware, Machine, Media, Spec};
use xtask::{iso, step, topology};

const ACCEL_HELP: &str = "Accelerator. Default: hardware KVM only when kvm_intel or kvm_amd is loaded and /dev/kvm opens, \
otherwise TCG. On these development machines /dev/kvm is kvm_pvm, a software backend in which ring-0 code crawls \
(~3,000 cycles per ALU loop iteration) and firmware/GRUB take seconds to tens of seconds, so TCG is the default there \
(see DESIGN.md §7). Under kvm QEMU gets `-cpu host,-arch-capabilities`.";

#[derive(Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, about = "Build, boot, test and benchmark hv-core")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Build the hypervisor, the domain images and the boot bundle (target/bundles/<topology>.bundle)
    Build {
        /// A name in topologies/ (without .toml) or a path to a topology file [default: default]
        topology: Option<String>,
    },
    /// Build the bootable GRUB ISO (target/hv-core.iso) for a topology
    Image {
        /// A name in topologies/ (without .toml) or a path to a topology file [default: default]
        topology: Option<String>,
    },
    /// Build and boot a topology in QEMU with the serial console on this terminal
    Run(RunArgs),
    /// Host unit tests, shared-ring loom/miri/fuzz smoke, then the QEMU scenarios
    Test(TestArgs),
    /// Benchmarks: hypervisor (in QEMU, against a Linux reference guest) or the shared ring (host)
    Bench(BenchArgs),
    /// Xen's xl verbs against the system `cargo xtask run` is running (over its control channel)
    Xl(XlArgs),
    /// Run a shared-ring fuzz target (cargo +nightly fuzz)
    Fuzz {
        /// Fuzz target name (default: every target, as the shared-ring tasks define)
        target: Option<String>,
        /// How long to fuzz, in seconds
        #[arg(long = "time", value_name = "SECONDS", default_value_t = 60)]
        seconds: u64,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum AccelArg {
    Tcg,
    Kvm,
}

#[derive(Clone, Copy, ValueEnum)]
enum MachineArg {
    Q35,
    Pc,
}

#[derive(Clone, Copy, ValueEnum)]
enum FirmwareArg {
    Seabios,
    Qboot,
}

impl From<FirmwareArg> for Firmware {
    fn from(f: FirmwareArg) -> Self {
        match f {
            FirmwareArg::Seabios => Firmware::SeaBios,
            FirmwareArg::Qboot => Firmware::Qboot,
        }
    }
}

impl From<MachineArg> for Machine {
    fn from(m: MachineArg) -> Self {
        match m {
            MachineArg::Q35 => Machine::Q35,
            MachineArg::Pc => Machine::Pc,
        }
    }
}

#[derive(clap::Args)]
struct RunArgs {
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
    /// PC firmware [default: qboot for -kernel (fastest), seabios for --iso (GRUB needs it)]
    #[arg(long, value_enum)]
    firmware: Option<FirmwareArg>,
}

#[derive(clap::Args)]
struct TestArgs {
    /// Accelerator for the QEMU scenarios [default: tcg]
    #[arg(long, value_enum, long_help = ACCEL_HELP)]
    accel: Option<AccelArg>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BenchWhat {
    /// Hypervisor benchmarks plus the Linux reference (the default)
    All,
    /// Only the hypervisor benchmarks (bench topology, boot times)
    Hv,
    /// Only the Linux reference guest (null syscall cost, boot to init)
    Linux,
    /// The shared-ring benchmark on the host
    Ring,
    /// Block I/O from a DomU through blkback, against blkback directly on the device
    Blk,
    /// Networking through netback (HTTP req/s with wrk, TCP throughput), against a Linux guest
    Net,
    /// The toolstack: xl create to the DomU's devices Connected, driver-domain crash to reconnected
    Xl,
}

#[derive(clap::Args)]
struct XlArgs {
    /// The control socket of the running system
    #[arg(long, default_value = "target/run/control.sock")]
    socket: PathBuf,
    #[command(subcommand)]
    verb: XlVerb,
}

#[derive(Subcommand)]
enum XlVerb {
    /// Domains: Name, ID, Mem (MiB), VCPUs, State, Time (s)
    List {
        #[arg(long)]
        json: bool,
    },
    /// Hypervisor totals: memory, domains, grants, event ports, store nodes
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Create a domain from a config file (a topology [[domain]] table at top level); waits
    /// until its vifs and disks are Connected
    Create {
        config: PathBuf,
        /// Return once the domain runs, without waiting for its devices to connect
        #[arg(long)]
        no_wait: bool,
    },
    /// A domain's split devices (vif, vbd): backend and both ends' XenbusStates (4 = Connected)
    Devices { dom: String },
    /// Destroy a domain (by name or id)
    Destroy {
        dom: String,
        /// Treat it as a crash: its on_crash policy applies (a restartable driver domain comes back)
        #[arg(long)]
        crash: bool,
    },
    /// Pause a domain
    Pause { dom: String },
    /// Unpause a domain
    Unpause { dom: String },
    /// A domain's recent console output, then a live tail (Ctrl-C to stop)
    Console {
        dom: String,
        /// Print what is kept and exit instead of following
        #[arg(long)]
        once: bool,
    },
}

#[derive(clap::Args)]
struct BenchArgs {
    /// What to benchmark
    #[arg(value_enum, default_value = "all")]
    what: BenchWhat,
    #[arg(long, value_enum, long_help = ACCEL_HELP)]
    accel: Option<AccelArg>,
    /// QEMU machine type
    #[arg(long, value_enum, default_value = "q35")]
    machine: MachineArg,
    /// Boots per measurement (the median is reported)
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=100))]
    runs: u32,
}

fn main() {
    let cli = Cli::parse();
    let paths = Paths::discover();
    let result = match cli.command {
        Cmd::Build { topology } => cmd_build(&paths, topology.as_deref()),
        Cmd::Image { topology } => cmd_image(&paths, topology.as_deref()),
        Cmd::Run(args) => cmd_run(&paths, args),
        Cmd::Test(args) => test_cmd::run(&paths, args.accel.map(accel_of)),
        Cmd::Bench(args) => match args.what {
            BenchWhat::Ring => ring::bench_ring(&paths.root),
            BenchWhat::Blk => bench::run_blk(&paths, choose_accel(args.accel), args.machine.into(), args.runs as usize),
            BenchWhat::Net => {
                bench_net::run(&paths, choose_accel(args.accel), args.machine.into(), (args.runs as usize).min(3))
            }
            BenchWhat::Xl => bench_xl::run(&paths, choose_accel(args.accel), args.machine.into()),
            what => bench::run(
                &paths,
                bench::Options {
                    hv: what != BenchWhat::Linux,
                    linux: what != BenchWhat::Hv,
                    accel: choose_accel(args.accel),
                    machine: args.machine.into(),
                    runs: args.runs as usize,
                },
            ),
        },
        Cmd::Xl(a) => {
            let socket = if a.socket.is_absolute() { a.socket.clone() } else { paths.root.join(&a.socket) };
            xtask::xl::run(
                &socket,
                match a.verb {
                    XlVerb::List { json } => xtask::xl::Verb::List { json },
                    XlVerb::Info { json } => xtask::xl::Verb::Info { json },
                    XlVerb::Create { config, no_wait } => xtask::xl::Verb::Create { config, wait: !no_wait },
                    XlVerb::Devices { dom } => xtask::xl::Verb::Devices { dom },
                    XlVerb::Destroy { dom, crash } => xtask::xl::Verb::Destroy { dom, crash },
                    XlVerb::Pause { dom } => xtask::xl::Verb::Pause { dom },
                    XlVerb::Unpause { dom } => xtask::xl::Verb::Unpause { dom },
                    XlVerb::Console { dom, once } => xtask::xl::Verb::Console { dom, once },
                },
            )
        }
        Cmd::Fuzz { target, seconds } => ring::fuzz(&paths.root, target.as_deref(), seconds),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn accel_of(a: AccelArg) -> Accel {
    match a {
        AccelArg::Tcg => Accel::Tcg,
        AccelArg::Kvm => Accel::Kvm,
    }
}

fn choose_accel(arg: Option<AccelArg>) -> Accel {
    match arg {
        Some(a) => accel_of(a),
        None => {
            let (a, why) = Accel::detect();
            step(format!("accelerator {} ({why}; choose with --accel)", a.name()));
            a
        }
    }
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

fn cmd_build(paths: &Paths, topology: Option<&str>) -> Result<()> {
    let p = prepare(paths, topology)?;
    println!("hypervisor: {}", show(&p.hypervisor(), &paths.root));
    for image in p.topology.images() {
        println!("image:      {}", show(&p.image_dir.join(&image), &paths.root));
    }
    println!("bundle:     {}", show(&p.bundle, &paths.root));
    Ok(())
}

fn cmd_image(paths: &Paths, topology: Option<&str>) -> Result<()> {
    let p = prepare(paths, topology)?;
    let out = paths.iso();
    step("grub-mkrescue");
    iso::make_iso(&p.hypervisor(), &p.bundle, &out)?;
    println!("ISO: {} (boot it with: cargo xtask run {} --iso)", show(&out, &paths.root), p.topology.name());
    Ok(())
}

fn cmd_run(paths: &Paths, args: RunArgs) -> Result<()> {
    let p = prepare(paths, args.topology.as_deref())?;
    let accel = choose_accel(args.accel);
    let media = if args.iso {
        let out = paths.iso();
        step("grub-mkrescue");
        iso::make_iso(&p.hypervisor(), &p.bundle, &out)?;
        Media::Iso(out)
    } else {
        Media::Direct { kernel: p.hypervisor(), initrd: p.bundle.clone(), append: None }
    };
    let mut spec = Spec { machine: args.machine.into(), accel, gdb: args.gdb, ..Spec::new(media) };
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
        if args.iso { "GRUB (ISO)" } else { "-kernel (PVH)" },
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

/// Default deadline of one QEMU boot in the benchmark and test steps.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
