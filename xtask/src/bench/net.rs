//! `cargo xtask bench net`: networking through netback, next to a Linux guest on the same QEMU,
//! accelerator and user network.
//!
//! * host → guest HTTP requests/s: `wrk` on the host against the forwarded port, serving DomU
//!   (`httpd` behind netback) vs the Linux guest's server;
//! * guest → host TCP throughput: a stream to a listener on the host (10.0.2.2 in the guest),
//!   timed on the host from the first byte to end of stream, DomU (`netstream`) vs Linux;
//! * DomU ↔ DomU TCP throughput through netback (`netstream` pair), against the Linux guest's
//!   throughput to the host.
//!
//! hv-core boots each of these `runs` times with netback's device behind the IOMMU and `runs`
//! times without ([`super::iommu`]); the Linux guest runs without an IOMMU, as it always did.
//! Prints one table row per measurement and configuration (medians of `runs`): the hv-core
//! figure, the Linux figure, their ratio, the target (at least the Linux figure, judged with the
//! IOMMU on, the default configuration), whether it was met; then each IOMMU-on figure against
//! its IOMMU-off one; throughputs in Gbit/s too; writes the same to `target/bench/net.json`.

use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use xtask::packages;
use xtask::paths::Paths;
use xtask::qemu::{self, Accel, Machine, Media, NetDevice, Spec};
use xtask::step;

use super::iommu::{self, Both, Iommu};
use super::row::{Metric, Reference, Row, Target};
use super::{failed_run as fail, median, print_columns, write_json};
use crate::build::{Prepared, prepare};

/// Bytes of each stream.
const STREAM_BYTES: u64 = 32 * 1024 * 1024;
/// `wrk` duration and connections.
const WRK_SECONDS: u32 = 5;
const WRK_CONNECTIONS: u32 = 4;
/// The port the `bench-net-send` topology's sender aims at (replaced by a free one per run).
const SEND_PORT_IN_TOPOLOGY: &str = "10.0.2.2:5001";

/// Runs `wrk` against 127.0.0.1:`port` once `ready` matches a serial line; returns requests/s
/// and the run.
fn wrk_when_ready(spec: &Spec, port: u16, ready: impl Fn(&str) -> bool) -> Result<(f64, qemu::Run)> {
    client_and_run(spec, ready, move || run_wrk(port))
}

/// Boots `spec` and runs `client` on a thread of its own once `ready` matches a serial line;
/// stops QEMU when the client is done and returns what it gave.
pub(super) fn client_when_ready<T: Send + 'static>(
    spec: &Spec,
    ready: impl Fn(&str) -> bool,
    client: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    client_and_run(spec, ready, client).map(|(t, _)| t)
}

/// [`client_when_ready`], also returning the run (its console).
fn client_and_run<T: Send + 'static>(
    spec: &Spec,
    ready: impl Fn(&str) -> bool,
    client: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<(T, qemu::Run)> {
    let result: Arc<Mutex<Option<Result<T>>>> = Arc::new(Mutex::new(None));
    let mut client = Some(client);
    let shared = result.clone();
    let mut watch = |line: Option<&str>| {
        if let Some(l) = line
            && client.is_some()
            && ready(l)
        {
            let (shared, client) = (shared.clone(), client.take().expect("checked above"));
            std::thread::spawn(move || {
                let r = client();
                *shared.lock().unwrap() = Some(r);
            });
        }
        shared.lock().unwrap().is_some()
    };
    let run = qemu::run_watched(spec, Duration::from_secs(300), &mut watch)?;
    let outcome = result.lock().unwrap().take();
    match outcome {
        Some(r) => Ok((r?, run)),
        None => Err(fail("the server never became ready", &run)),
    }
}

pub(super) fn run_wrk(port: u16) -> Result<f64> {
    let r = run_wrk_once(port);
    if let Ok(v) = &r {
        eprintln!("  {v:.1} requests/s");
    }
    r
}

fn run_wrk_once(port: u16) -> Result<f64> {
    let out = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{WRK_CONNECTIONS}"),
            &format!("-d{WRK_SECONDS}s"),
            "--timeout",
            "5s",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()
        .context("running wrk (package wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let rps = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .with_context(|| {
            format!("no Requests/sec in wrk's output:\n{text}\n{}", String::from_utf8_lossy(&out.stderr))
        })?;
    let errors = text.lines().find(|l| l.contains("Non-2xx") || l.contains("Socket errors"));
    if let Some(e) = errors {
        eprintln!("  wrk: {}", e.trim());
    }
    Ok(rps)
}

/// A host listener that times one stream from its first byte to its end: (bytes, seconds).
struct Sink {
    port: u16,
    done: Arc<Mutex<Option<(u64, f64)>>>,
}

impl Sink {
    fn start() -> Result<Self> {
        let l = TcpListener::bind("127.0.0.1:0").context("binding a host listener")?;
        let port = l.local_addr()?.port();
        let done = Arc::new(Mutex::new(None));
        let shared = done.clone();
        std::thread::spawn(move || {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut buf = vec![0u8; 1 << 16];
            let (mut total, mut first) = (0u64, None);
            while let Ok(n) = s.read(&mut buf) {
                if n == 0 {
                    break;
                }
                first.get_or_insert_with(Instant::now);
                total += n as u64;
            }
            let secs = first.map_or(0.0, |t| t.elapsed().as_secs_f64());
            *shared.lock().unwrap() = Some((total, secs));
        });
        Ok(Self { port, done })
    }

    fn mbit_per_s(&self) -> Option<f64> {
        let (bytes, secs) = (*self.done.lock().unwrap())?;
        (bytes >= STREAM_BYTES && secs > 0.0).then(|| bytes as f64 * 8.0 / secs / 1e6)
    }
}

/// Boots `spec` until `sink` has the whole stream; returns its Mbit/s and the run.
fn stream_to_host(spec: &Spec, sink: &Sink) -> Result<(f64, qemu::Run)> {
    let done = sink.done.clone();
    let mut watch = |_: Option<&str>| done.lock().unwrap().is_some();
    let run = qemu::run_watched(spec, Duration::from_secs(300), &mut watch)?;
    let v = sink.mbit_per_s().ok_or_else(|| fail("the host did not receive the whole stream", &run))?;
    eprintln!("  {v:.1} Mbit/s");
    Ok((v, run))
}

/// One row of `net.json`: the shared row's fields, with throughputs in Gbit/s too.
#[derive(Serialize)]
struct NetMetric<'a> {
    #[serde(flatten)]
    row: Metric<'a>,
    gbit_s: Option<f64>,
    reference_gbit_s: Option<f64>,
}

impl<'a> NetMetric<'a> {
    fn of(r: &'a Row) -> Self {
        let gbit = |v: Option<f64>| if r.unit == "Mbit/s" { v.map(|v| v / 1000.0) } else { None };
        Self { row: Metric::of(r), gbit_s: gbit(Some(r.value)), reference_gbit_s: gbit(r.reference.value()) }
    }
}

/// `value unit`, with Gbit/s for a throughput.
fn show_value(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        "-".into()
    } else if unit == "Mbit/s" {
        format!("{v:.1} Mbit/s = {:.3} Gbit/s", v / 1000.0)
    } else {
        format!("{v:.1} {unit}")
    }
}

pub fn run(paths: &Paths, accel: Accel, machine: Machine, runs: usize) -> Result<Vec<Row>> {
    // Before minutes of the Linux reference: the hv-core half needs q35's IOMMU.
    iommu::require_q35(machine, "net")?;
    packages::ensure(&[packages::QEMU, packages::WRK, packages::LINUX_IMAGE, packages::GCC, packages::LIBC_DEV])?;
    let mut linux: BTreeMap<&str, Vec<f64>> = BTreeMap::new();

    // Linux reference.
    let kernel = xtask::linux_guest::find_kernel()?;
    step(format!("Linux network reference: init + virtio-net modules of {}", kernel.display()));
    let initramfs = super::linux_net::build_initramfs(paths, &kernel)?;
    let linux_spec = |mode: &str, forward: bool| -> Result<Spec> {
        let mut s = Spec {
            machine,
            accel,
            ..Spec::new(Media::Direct {
                kernel: kernel.clone(),
                initrd: initramfs.clone(),
                append: Some(format!("console=ttyS0 quiet panic=-1 netref={mode}")),
            })
        };
        let forwards = if forward { vec![(qemu::free_port()?, "10.0.2.15".parse()?, 80)] } else { Vec::new() };
        s.nics = vec![NetDevice { forwards }];
        Ok(s)
    };
    for i in 0..runs {
        step(format!("Linux guest: wrk against its HTTP server, run {}/{runs}", i + 1));
        let s = linux_spec("http", true)?;
        let port = s.nics[0].forwards[0].0;
        linux
            .entry("http_requests_per_s")
            .or_default()
            .push(wrk_when_ready(&s, port, |l| l.starts_with("LINUXNET http listening"))?.0);
        step(format!("Linux guest: {} MiB to the host, run {}/{runs}", STREAM_BYTES >> 20, i + 1));
        let sink = Sink::start()?;
        let s = linux_spec(&format!("send:{}:{STREAM_BYTES}", sink.port), false)?;
        linux.entry("to_host_mbit_s").or_default().push(stream_to_host(&s, &sink)?.0);
    }

    let hv = measure_hv(paths, accel, machine, runs)?;
    let linux_med = |k: &str| linux.get(k).map(|v| median(&mut v.clone()));
    let rows = rows(&hv, linux_med("http_requests_per_s"), linux_med("to_host_mbit_s"));
    print_and_save(paths, &rows, accel, machine, runs)?;
    Ok(rows)
}

/// hv-core's figures per configuration: metric key → one value per run.
type Figures = Both<BTreeMap<&'static str, Vec<f64>>>;

/// The three hv-core measurements, `runs` times with the IOMMU on and `runs` times off; each
/// boot's console must show the configuration it was asked for.
fn measure_hv(paths: &Paths, accel: Accel, machine: Machine, runs: usize) -> Result<Figures> {
    let mut hv = Figures::default();
    let http = prepare(paths, Some("bench-net-http"))?;
    let pair = prepare(paths, Some("bench-net-pair"))?;
    let hv_spec = |p: &Prepared, variant: Iommu| -> Result<Spec> {
        let mut s = Spec {
            machine,
            accel,
            ..Spec::new(Media::Direct { kernel: p.hypervisor(), initrd: p.bundle.clone(), append: None })
        };
        s.nics = NetDevice::for_topology(&p.topology.nics)?;
        variant.apply(&mut s);
        Ok(s)
    };
    let confirmed =
        |variant: Iommu, run: &qemu::Run| variant.confirmed(&run.lines).map_err(|e| fail(&e.to_string(), run));
    for i in 0..runs {
        for variant in Iommu::order(i) {
            let (config, figures) = (variant.name(), hv.get_mut(variant));
            step(format!("hv-core, {config}: wrk against the httpd DomU through netback, run {}/{runs}", i + 1));
            let s = hv_spec(&http, variant)?;
            let port = s.nics.iter().find_map(|n| n.host_port(80)).context("bench-net-http forwards no port 80")?;
            let (rps, run) = wrk_when_ready(&s, port, |l| l.contains("httpd: listening"))?;
            confirmed(variant, &run)?;
            figures.entry("http_requests_per_s").or_default().push(rps);

            let mib = STREAM_BYTES >> 20;
            step(format!("hv-core, {config}: {mib} MiB from a DomU to the host, run {}/{runs}", i + 1));
            let sink = Sink::start()?;
            let send = send_topology(paths, sink.port)?;
            let p = prepare(paths, Some(send.to_str().context("non-UTF-8 path")?))?;
            let (mbit, run) = stream_to_host(&hv_spec(&p, variant)?, &sink)?;
            confirmed(variant, &run)?;
            figures.entry("to_host_mbit_s").or_default().push(mbit);

            step(format!("hv-core, {config}: DomU to DomU through netback, run {}/{runs}", i + 1));
            let run = qemu::run_captured(&hv_spec(&pair, variant)?, Duration::from_secs(300), None)?;
            confirmed(variant, &run)?;
            let received = format!("netstream: received {STREAM_BYTES} bytes ");
            let figure = run.lines.iter().find_map(|l| {
                let rest = l.split_once(&received)?.1;
                rest.split_once(" Mbit/s")?.0.rsplit_once('(')?.1.parse::<f64>().ok()
            });
            let ok = run.lines.iter().any(|l| l.contains("netstream: checksum ok"));
            match figure {
                Some(f) if ok => {
                    eprintln!("  {f:.1} Mbit/s");
                    figures.entry("domu_to_domu_mbit_s").or_default().push(f)
                }
                _ => return Err(fail("the DomU pair did not finish with a matching checksum", &run)),
            }
        }
    }
    Ok(hv)
}

/// The rows: each measurement with the IOMMU on against the Linux guest (with the target), the
/// same with the IOMMU off (no target), then each IOMMU-on figure against its IOMMU-off one.
fn rows(hv: &Figures, linux_http: Option<f64>, linux_up: Option<f64>) -> Vec<Row> {
    let against = |what: &'static str, v: Option<f64>| {
        v.map_or(Reference::Absent("the Linux guest gave no such figure"), |v| Reference::Measured(what, v))
    };
    let measurements = [
        ("host -> DomU HTTP", "req/s", "http_requests_per_s", against("Linux guest, no IOMMU", linux_http)),
        ("DomU -> host TCP", "Mbit/s", "to_host_mbit_s", against("Linux guest->host, no IOMMU", linux_up)),
        ("DomU <-> DomU TCP", "Mbit/s", "domu_to_domu_mbit_s", against("Linux guest->host, no IOMMU", linux_up)),
    ];
    let values = |figures: &BTreeMap<&str, Vec<f64>>, key: &str| figures.get(key).cloned().unwrap_or_default();
    let mut rows = Vec::new();
    for (variant, figures) in [(Iommu::On, &hv.on), (Iommu::Off, &hv.off)] {
        let target = (variant == Iommu::On).then_some(Target::AtLeast(1.0));
        for (metric, unit, key, reference) in &measurements {
            rows.push(Row::new(variant.label(metric), *unit, values(figures, key), *reference).with_target(target));
        }
    }
    for (metric, unit, key, _) in &measurements {
        rows.push(iommu::on_vs_off(metric, unit, values(&hv.on, key), &values(&hv.off, key)));
    }
    rows
}

/// `topologies/bench-net-send.toml` with the sender aimed at host port `port`.
fn send_topology(paths: &Paths, port: u16) -> Result<PathBuf> {
    let src = paths.root.join("topologies/bench-net-send.toml");
    let text = std::fs::read_to_string(&src).with_context(|| format!("reading {}", src.display()))?;
    if !text.contains(SEND_PORT_IN_TOPOLOGY) {
        bail!("{} no longer aims at {SEND_PORT_IN_TOPOLOGY}", src.display());
    }
    if !text.contains(&format!("bytes={STREAM_BYTES} ")) {
        bail!("{} no longer sends bytes={STREAM_BYTES} (the host waits for that many)", src.display());
    }
    let out = paths.bench_dir().join("bench-net-send.toml");
    std::fs::create_dir_all(paths.bench_dir())?;
    std::fs::write(&out, text.replace(SEND_PORT_IN_TOPOLOGY, &format!("10.0.2.2:{port}")))?;
    Ok(out)
}

fn print_and_save(paths: &Paths, rows: &[Row], accel: Accel, machine: Machine, runs: usize) -> Result<()> {
    println!(
        "\nnetwork benchmarks: QEMU -machine {} -accel {}, user network (slirp), medians of {runs} runs\n\
         host->DomU: wrk -c{WRK_CONNECTIONS} for {WRK_SECONDS} s through hostfwd; DomU->host: {} MiB timed on the host \
         from first byte to end of stream; DomU<->DomU: {} MiB through netback, timed by the receiving DomU\n\
         hv-core with netback's virtio-net device behind QEMU's Intel IOMMU (IOMMU on) and without it (IOMMU off), \
         both in this invocation; the Linux guest without an IOMMU\n",
        machine.name(),
        accel.name(),
        STREAM_BYTES >> 20,
        STREAM_BYTES >> 20,
    );
    let header = ["measurement", "hv-core", "reference", "(what)", "ratio", "target", "met"];
    let mut table: Vec<[String; 7]> = vec![header.map(String::from)];
    for r in rows {
        table.push([
            r.metric.clone(),
            show_value(r.value, &r.unit),
            r.reference.value().map_or("-".into(), |v| show_value(v, &r.unit)),
            r.reference.what().unwrap_or("-").into(),
            r.ratio().map_or("-".into(), |x| format!("{x:.2}x")),
            r.target_text().unwrap_or("-".into()),
            match r.verdict() {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "n/a".into(),
            },
        ]);
    }
    print_columns(&table);
    let metrics: Vec<NetMetric> = rows.iter().map(NetMetric::of).collect();
    write_json(paths, "net.json", &serde_json::json!({ "metrics": metrics }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_judge_the_iommu_on_figures_against_linux_and_compare_them_with_off() {
        let mut hv = Figures::default();
        hv.on.insert("http_requests_per_s", vec![900.0, 1100.0, 1000.0]);
        hv.off.insert("http_requests_per_s", vec![1250.0]);
        hv.on.insert("to_host_mbit_s", vec![400.0]);
        let rows = rows(&hv, Some(800.0), None);
        let names: Vec<&str> = rows.iter().map(|r| r.metric.as_str()).collect();
        assert_eq!(
            names,
            [
                "host -> DomU HTTP (IOMMU on)",
                "DomU -> host TCP (IOMMU on)",
                "DomU <-> DomU TCP (IOMMU on)",
                "host -> DomU HTTP (IOMMU off)",
                "DomU -> host TCP (IOMMU off)",
                "DomU <-> DomU TCP (IOMMU off)",
                "host -> DomU HTTP: IOMMU on vs off",
                "DomU -> host TCP: IOMMU on vs off",
                "DomU <-> DomU TCP: IOMMU on vs off",
            ]
        );
        let http_on = &rows[0];
        assert_eq!(
            (http_on.value, http_on.reference, http_on.target, http_on.verdict()),
            (1000.0, Reference::Measured("Linux guest, no IOMMU", 800.0), Some(Target::AtLeast(1.0)), Some(true))
        );
        let http_off = &rows[3];
        assert_eq!((http_off.value, http_off.target, http_off.ratio()), (1250.0, None, Some(1250.0 / 800.0)));
        let http_cost = &rows[6];
        assert_eq!((http_cost.value, http_cost.reference.value(), http_cost.target), (1000.0, Some(1250.0), None));
        assert_eq!(rows[1].verdict(), None, "no Linux figure: unjudged");
        assert_eq!(rows[7].reference.value(), None, "no IOMMU-off figure");
    }
}
