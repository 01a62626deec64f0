//! `cargo xtask bench linux-io`: Debian's Linux as a PVH DomU doing I/O through the Rust driver
//! domains, against the same kernel and initramfs booted directly by QEMU (PVH entry) on the
//! virtio devices themselves, in the same run, QEMU configuration and disk image. Writes
//! `target/bench/linux-io.json`.
//!
//! Both sides boot the `bench linux-io` initramfs ([`linux_guest::RAMDISK_IO_IMAGE`]: fio and
//! iperf3 with their libraries, the virtio-pci block and network drivers beside the Xen
//! frontends) with the DomU's command line, the console words swapped for `console=ttyS0` and
//! `pci=off` dropped (the reference's devices are on PCI).
//!
//! * Disk (`topologies/linux-io/blk.toml`, `guest.mode=fio`): fio on the raw disk, libaio and O_DIRECT,
//!   `guest.fio_secs` each: 1 MiB sequential writes then reads (QD1), 4 KiB random reads at QD1
//!   and QD16. The DomU's xvda is served by blkback on virtio-blk; the reference's vda is the
//!   same 64 MiB image file (created anew, sparse, for each boot) on virtio-blk.
//!   Target: DomU ≥ 0.8 × reference, each.
//! * Disk under a flood (`topologies/linux-io/blk-flood.toml`): the same DomU and fio jobs while
//!   blk-attacker (`flood=1`) floods the same blkback with 256 KiB reads and bad requests from
//!   its own vdisk. Target: each figure ≥ 0.5 × the DomU's own without the flood (same run).
//! * Network (`topologies/linux-io/net.toml`, `guest.mode=net`): the host runs `wrk` against busybox httpd
//!   (requests/s, reported beside the reference, no target), then `iperf3 -R` against the
//!   guest's iperf3 server (the guest sends: guest → host TCP, Mbit/s as the host's client
//!   received it), both through QEMU's hostfwd. Target: DomU ≥ 0.8 × reference.
//!
//! `--only disk` or `--only net` runs one half.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use xtask::linux_guest;
use xtask::packages;
use xtask::paths::Paths;
use xtask::qemu::{self, Accel, Machine, Media, NetDevice, Spec};
use xtask::step;

use super::pvh::{add, linux_domain, reference_cmdline};
use super::row::{Reference, Row, Samples, Target, print_table, report};
use super::{failed_run, median, write_json};

/// The topologies this bench boots, under the workspace root: not in `topologies/` itself, whose
/// every file `cargo xtask test` bundles (these would make CI install fio and iperf3).
const BLK_TOPOLOGY: &str = "topologies/linux-io/blk.toml";
const NET_TOPOLOGY: &str = "topologies/linux-io/net.toml";
/// The disk topology again, with a hostile frontend flooding the same blkback.
const FLOOD_TOPOLOGY: &str = "topologies/linux-io/blk-flood.toml";
/// Under the flood the DomU must keep this share of its own figures without it.
const FLOOD_SHARE: f64 = 0.5;
/// The DomU's figures must reach this share of the reference's.
const TARGET_SHARE: f64 = 0.8;
/// The fio jobs of init.sh's `fio` mode, in its order, with the figure each is judged by.
const FIO_JOBS: &[(&str, FioFigure)] = &[
    ("seqwrite_1m", FioFigure::MibPerS),
    ("seqread_1m", FioFigure::MibPerS),
    ("randread_4k_qd1", FioFigure::Iops),
    ("randread_4k_qd16", FioFigure::Iops),
];
/// The guest's lines.
const FIO_LINE: &str = "linux-guest: fio ";
const POWER_OFF: &str = "linux-guest: powering off";
const HTTP_READY: &str = "linux-guest: httpd serving on port 80";
/// The guest's iperf3 server port (init.sh) and the client's run time.
const IPERF_PORT: u16 = 5201;
const IPERF_SECS: u32 = 5;

/// The half of the bench `--only` keeps.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Part {
    Disk,
    Net,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum FioFigure {
    Iops,
    MibPerS,
}

pub fn run(paths: &Paths, accel: Accel, machine: Machine, runs: usize, only: Option<Part>) -> Result<Vec<Row>> {
    let (disk, network) = (only != Some(Part::Net), only != Some(Part::Disk));
    packages::ensure(&[packages::QEMU, packages::WRK, packages::FIO, packages::IPERF3])
        .context("`cargo xtask bench linux-io` needs these packages")?;
    let topology = |t: &str| paths.root.join(t).to_str().map(String::from).context("the workspace path is not UTF-8");
    let blk = crate::build::prepare(paths, Some(&topology(BLK_TOPOLOGY)?))?;
    let net = crate::build::prepare(paths, Some(&topology(NET_TOPOLOGY)?))?;
    let flood = crate::build::prepare(paths, Some(&topology(FLOOD_TOPOLOGY)?))?;
    // The same files the bundles carry (prepared, and cached, by the bundling above).
    let guest = linux_guest::prepare_with(paths, true, true)?;
    let (blk_domu, net_domu) = (linux_domain(&blk.topology)?, linux_domain(&net.topology)?);
    let on_hv = |p: &crate::build::Prepared| Spec {
        machine,
        accel,
        ..Spec::new(Media::Direct { kernel: p.hypervisor(), initrd: p.bundle.clone(), append: None })
    };
    let direct = |domu: &hv_bundle::DomainConfig, extra: &str| Spec {
        machine,
        accel,
        memory: format!("{}M", domu.memory_mib),
        ..Spec::new(Media::Direct {
            kernel: guest.vmlinux.clone(),
            initrd: guest.initramfs.clone(),
            append: Some(direct_cmdline(&domu.cmdline, extra)),
        })
    };

    let mut s = Samples::new();
    for i in 0..runs {
        let n = format!("run {}/{runs}", i + 1);
        let disk_sides = if disk {
            vec![
                ("domu", on_hv(&blk), &blk),
                ("direct", direct(blk_domu, "guest.disk=vda"), &blk),
                ("flood", on_hv(&flood), &flood),
            ]
        } else {
            vec![]
        };
        for (side, mut spec, prepared) in disk_sides {
            step(format!("{}: fio, {side}, {n}", prepared.topology.name()));
            let dir = paths.disks_dir(prepared.topology.name());
            spec.disks = xtask::disks::images(&dir, &prepared.topology, true)?;
            let stop = |l: &str| l.ends_with(POWER_OFF);
            let run = qemu::run_captured(&spec, Duration::from_secs(600), Some(&stop))?;
            for (job, figure, value) in fio_results(&run)? {
                eprintln!("  {job}: {value:.1} {}", figure.unit());
                add(&mut s, &format!("{side}_fio_{job}_{}", figure.suffix()), value, figure.unit());
            }
        }
        let net_sides = if network { vec![("domu", on_hv(&net)), ("direct", direct(net_domu, ""))] } else { vec![] };
        for (side, spec) in net_sides {
            step(format!("{}: wrk, then iperf3 -R (the guest sends), {side}, {n}", net.topology.name()));
            let mut spec = spec;
            spec.nics = NetDevice::for_topology(&net.topology.nics)?;
            let port = |p| spec.nics.iter().find_map(|n| n.host_port(p)).context("the topology forwards no such port");
            let (http, iperf) = (port(80)?, port(IPERF_PORT)?);
            let ready = |l: &str| l.ends_with(HTTP_READY);
            let (rps, mbit) = super::net::client_when_ready(&spec, ready, move || {
                Ok((super::net::run_wrk(http)?, run_iperf(iperf)?))
            })?;
            add(&mut s, &format!("{side}_http_requests_per_s"), rps, "req/s");
            add(&mut s, &format!("{side}_tcp_to_host_mbit_s"), mbit, "Mbit/s");
        }
    }
    let rows = rows(s);
    print_table(&rows, accel, machine);
    println!(
        "(fio: libaio, O_DIRECT, {} s per job on the raw disk; wrk -c4 for 5 s; iperf3 -R -t {IPERF_SECS}; reference \
         command line: {})",
        fio_secs(&blk_domu.cmdline),
        direct_cmdline(&blk_domu.cmdline, "guest.disk=vda")
    );
    write_json(paths, "linux-io.json", &report(&rows, accel, machine, runs, None))?;
    Ok(rows)
}

/// The DomU's command line for the directly booted kernel: [`reference_cmdline`] without
/// `pci=off` (the reference's disk and network are on PCI), plus `extra`.
fn direct_cmdline(domu: &str, extra: &str) -> String {
    let words = reference_cmdline(domu);
    let mut words: Vec<&str> = words.split_whitespace().filter(|w| *w != "pci=off").collect();
    words.extend(extra.split_whitespace());
    words.join(" ")
}

/// `guest.fio_secs=` of a command line (init.sh's default, 3, without it).
fn fio_secs(cmdline: &str) -> &str {
    cmdline.split_whitespace().find_map(|w| w.strip_prefix("guest.fio_secs=")).unwrap_or("3")
}

impl FioFigure {
    fn unit(self) -> &'static str {
        match self {
            Self::Iops => "IOPS",
            Self::MibPerS => "MiB/s",
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Self::Iops => "iops",
            Self::MibPerS => "mib_s",
        }
    }
}

/// `<job> <IOPS> <KiB/s>` of a `linux-guest: fio ...` line (with or without the hypervisor's
/// `[<domain>] ` before it).
fn fio_line(line: &str) -> Option<(&str, f64, f64)> {
    let rest = &line[line.find(FIO_LINE)? + FIO_LINE.len()..];
    let mut it = rest.split_whitespace();
    let (job, iops, kib) = (it.next()?, it.next()?.parse().ok()?, it.next()?.parse().ok()?);
    it.next().is_none().then_some((job, iops, kib))
}

/// Every job of [`FIO_JOBS`] with its figure, from a run's lines; an error with the run when
/// one is missing or failed.
fn fio_results(run: &qemu::Run) -> Result<Vec<(&'static str, FioFigure, f64)>> {
    let mut out = Vec::new();
    for &(job, figure) in FIO_JOBS {
        let found = run.lines.iter().filter_map(|l| fio_line(l)).find(|(j, ..)| *j == job);
        let Some((_, iops, kib)) = found else {
            return Err(failed_run(&format!("no {FIO_LINE}{job} line (fio failed or the disk did not appear)"), run));
        };
        let value = match figure {
            FioFigure::Iops => iops,
            FioFigure::MibPerS => kib / 1024.0,
        };
        if value <= 0.0 {
            return Err(failed_run(&format!("fio job {job} did no I/O"), run));
        }
        out.push((job, figure, value));
    }
    Ok(out)
}

/// `iperf3 -c 127.0.0.1 -p <port> -R -t IPERF_SECS -J`: the guest sends; Mbit/s the host received.
/// One retry, as the guest's server starts in the background.
fn run_iperf(port: u16) -> Result<f64> {
    let once = || -> Result<f64> {
        let out = std::process::Command::new("iperf3")
            .args(["-c", "127.0.0.1", "-p", &port.to_string(), "-R", "-t", &IPERF_SECS.to_string(), "-J"])
            .output()
            .with_context(|| {
                format!("running iperf3\n  fix: {}", packages::install_command(&[packages::IPERF3.name]))
            })?;
        iperf_mbit(&String::from_utf8_lossy(&out.stdout))
    };
    let v = once().or_else(|e| {
        eprintln!("  iperf3: {e:#}; retrying in 2 s");
        std::thread::sleep(Duration::from_secs(2));
        once()
    })?;
    eprintln!("  {v:.1} Mbit/s");
    Ok(v)
}

/// `end.sum_received.bits_per_second` of iperf3's JSON, in Mbit/s.
fn iperf_mbit(json: &str) -> Result<f64> {
    let v: serde_json::Value = serde_json::from_str(json).with_context(|| format!("iperf3 -J printed {json:?}"))?;
    if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
        bail!("iperf3: {e}");
    }
    let bps = v.pointer("/end/sum_received/bits_per_second").and_then(|b| b.as_f64());
    bps.map(|b| b / 1e6).filter(|m| *m > 0.0).context("iperf3's JSON has no end.sum_received.bits_per_second")
}

/// Medians, each `domu_<x>` against `direct_<x>`: fio and TCP judged (≥ [`TARGET_SHARE`]), HTTP
/// only reported beside its reference.
fn rows(samples: Samples) -> Vec<Row> {
    let mut rows = Vec::new();
    for (key, (values, unit)) in &samples {
        if let Some(job) = key.strip_prefix("flood_") {
            // Judged against the DomU's own figure without the flood.
            let reference = samples
                .get(&format!("domu_{job}"))
                .map_or(Reference::Absent("the DomU gave no such figure without the flood"), |(v, _)| {
                    Reference::Measured("the DomU without the flood", median(&mut v.clone()))
                });
            rows.push(
                Row::new(format!("linux_flood_{job}"), unit.clone(), values.clone(), reference)
                    .with_target(Some(Target::AtLeast(FLOOD_SHARE))),
            );
            continue;
        }
        let Some(key) = key.strip_prefix("domu_") else { continue };
        let what = if key.starts_with("fio_") { "Linux on virtio-blk" } else { "Linux on virtio-net" };
        let reference = samples
            .get(&format!("direct_{key}"))
            .map_or(Reference::Absent("the directly booted kernel gave no such figure"), |(v, _)| {
                Reference::Measured(what, median(&mut v.clone()))
            });
        let judged = !key.starts_with("http_");
        rows.push(
            Row::new(format!("linux_domu_{key}"), unit.clone(), values.clone(), reference)
                .with_target(judged.then_some(Target::AtLeast(TARGET_SHARE))),
        );
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fio_lines() {
        assert_eq!(
            fio_line("[linux] linux-guest: fio randread_4k_qd1 812 3248"),
            Some(("randread_4k_qd1", 812.0, 3248.0))
        );
        assert_eq!(fio_line("linux-guest: fio seqread_1m 55 56320"), Some(("seqread_1m", 55.0, 56320.0)));
        assert_eq!(fio_line("linux-guest: fio seqread_1m FAILED: fio: no such file"), None);
        assert_eq!(fio_line("linux-guest: fio seqread_1m 1 2 3"), None);
        assert_eq!(fio_line("linux-guest: mode fio"), None);
    }

    #[test]
    fn reads_iperf_json() {
        let ok = r#"{"start":{},"end":{"sum_sent":{"bits_per_second":2e8},"sum_received":{"bits_per_second":1.5e8}}}"#;
        assert_eq!(iperf_mbit(ok).unwrap(), 150.0);
        let e = format!("{:#}", iperf_mbit(r#"{"error":"unable to connect to server"}"#).unwrap_err());
        assert!(e.contains("unable to connect"), "{e}");
        assert!(iperf_mbit("not json").is_err());
        assert!(iperf_mbit(r#"{"end":{}}"#).is_err());
    }

    #[test]
    fn the_reference_cmdline_drops_pci_off_and_names_the_disk() {
        let domu = "console=hvc0 loglevel=4 mitigations=off pci=off guest.modules=1 guest.mode=fio";
        assert_eq!(
            direct_cmdline(domu, "guest.disk=vda"),
            "console=ttyS0 loglevel=4 mitigations=off guest.modules=1 guest.mode=fio guest.disk=vda"
        );
        assert_eq!(fio_secs("a guest.fio_secs=5 b"), "5");
        assert_eq!(fio_secs("a"), "3");
    }

    #[test]
    fn domu_figures_are_judged_against_direct_ones_but_http() {
        let mut s = Samples::new();
        s.insert("domu_fio_seqread_1m_mib_s".into(), (vec![80.0, 90.0, 85.0], "MiB/s".into()));
        s.insert("direct_fio_seqread_1m_mib_s".into(), (vec![100.0], "MiB/s".into()));
        s.insert("domu_http_requests_per_s".into(), (vec![500.0], "req/s".into()));
        s.insert("direct_http_requests_per_s".into(), (vec![1000.0], "req/s".into()));
        let rows = rows(s);
        assert_eq!(rows.len(), 2, "one row per DomU figure");
        let fio = rows.iter().find(|r| r.metric == "linux_domu_fio_seqread_1m_mib_s").unwrap();
        assert_eq!(
            (fio.value, fio.runs(), fio.reference),
            (85.0, 3, Reference::Measured("Linux on virtio-blk", 100.0))
        );
        assert!(matches!(fio.target, Some(Target::AtLeast(f)) if f == TARGET_SHARE));
        let http = rows.iter().find(|r| r.metric == "linux_domu_http_requests_per_s").unwrap();
        assert!(http.target.is_none() && http.reference == Reference::Measured("Linux on virtio-net", 1000.0));
    }

    /// init.sh runs the jobs the bench reads and prints the lines it waits for; the topologies
    /// boot the io initramfs in the modes the bench drives.
    #[test]
    fn the_init_script_and_topologies_fit() {
        let script = linux_guest::initramfs::INIT_SCRIPT;
        for (job, _) in FIO_JOBS {
            assert!(script.contains(&format!("{job}:")), "init.sh runs no fio job {job}");
        }
        for line in [FIO_LINE.trim_end(), POWER_OFF, HTTP_READY] {
            assert!(script.contains(line), "init.sh does not print {line:?}");
        }
        assert!(script.contains(&format!("iperf3 -s -p {IPERF_PORT}")));
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        for (name, mode) in
            [(BLK_TOPOLOGY, "guest.mode=fio"), (NET_TOPOLOGY, "guest.mode=net"), (FLOOD_TOPOLOGY, "guest.mode=fio")]
        {
            let t = xtask::topology::load(root, Some(root.join(name).to_str().unwrap())).unwrap();
            let d = linux_domain(&t).unwrap();
            assert!(d.cmdline.contains(mode) && d.cmdline.contains("guest.modules=1"), "{name}: {}", d.cmdline);
            assert_eq!(d.ramdisk.as_deref(), Some(linux_guest::RAMDISK_IO_IMAGE), "{name}");
        }
        // The flood run changes nothing on the DomU's side.
        let load = |name: &str| xtask::topology::load(root, Some(root.join(name).to_str().unwrap())).unwrap();
        let (blk, flood) = (load(BLK_TOPOLOGY), load(FLOOD_TOPOLOGY));
        let (a, b) = (linux_domain(&blk).unwrap(), linux_domain(&flood).unwrap());
        assert_eq!((&a.cmdline, a.memory_mib, &a.devices), (&b.cmdline, b.memory_mib, &b.devices));
        assert!(flood.topology.domains.iter().any(|d| d.args.contains("flood=1")), "no flooding domain");
        let net = xtask::topology::load(root, Some(root.join(NET_TOPOLOGY).to_str().unwrap())).unwrap();
        let ports: Vec<u16> = net.nics.iter().flat_map(|n| n.forwards.iter().map(|f| f.guest_port)).collect();
        assert_eq!(ports, [80, IPERF_PORT]);
    }
}
