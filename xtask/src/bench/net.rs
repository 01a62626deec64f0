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
//! Prints one table row per measurement (medians of `runs`): the hv-core figure, the Linux
//! figure, their ratio, the target (at least the Linux figure), whether it was met, and
//! throughputs in Gbit/s too; writes the same to `target/bench/net.json`.

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

/// Runs `wrk` against 127.0.0.1:`port` once `ready` matches a serial line; returns requests/s.
fn wrk_when_ready(spec: &Spec, port: u16, ready: impl Fn(&str) -> bool) -> Result<f64> {
    client_when_ready(spec, ready, move || run_wrk(port))
}

/// Boots `spec` and runs `client` on a thread of its own once `ready` matches a serial line;
/// stops QEMU when the client is done and returns what it gave.
pub(super) fn client_when_ready<T: Send + 'static>(
    spec: &Spec,
    ready: impl Fn(&str) -> bool,
    client: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
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
    match result.lock().unwrap().take() {
        Some(r) => r,
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

/// Boots `spec` until `sink` has the whole stream; returns its Mbit/s.
fn stream_to_host(spec: &Spec, sink: &Sink) -> Result<f64> {
    let done = sink.done.clone();
    let mut watch = |_: Option<&str>| done.lock().unwrap().is_some();
    let run = qemu::run_watched(spec, Duration::from_secs(300), &mut watch)?;
    let v = sink.mbit_per_s().ok_or_else(|| fail("the host did not receive the whole stream", &run))?;
    eprintln!("  {v:.1} Mbit/s");
    Ok(v)
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
    packages::ensure(&[packages::QEMU, packages::WRK, packages::LINUX_IMAGE, packages::GCC, packages::LIBC_DEV])?;
    let mut hv: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
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
            .push(wrk_when_ready(&s, port, |l| l.starts_with("LINUXNET http listening"))?);
        step(format!("Linux guest: {} MiB to the host, run {}/{runs}", STREAM_BYTES >> 20, i + 1));
        let sink = Sink::start()?;
        let s = linux_spec(&format!("send:{}:{STREAM_BYTES}", sink.port), false)?;
        linux.entry("to_host_mbit_s").or_default().push(stream_to_host(&s, &sink)?);
    }

    // hv-core.
    let http = prepare(paths, Some("bench-net-http"))?;
    let pair = prepare(paths, Some("bench-net-pair"))?;
    let hv_spec = |p: &Prepared| -> Result<Spec> {
        let mut s = Spec {
            machine,
            accel,
            ..Spec::new(Media::Direct { kernel: p.hypervisor(), initrd: p.bundle.clone(), append: None })
        };
        s.nics = NetDevice::for_topology(&p.topology.nics)?;
        Ok(s)
    };
    for i in 0..runs {
        step(format!("hv-core: wrk against the httpd DomU through netback, run {}/{runs}", i + 1));
        let s = hv_spec(&http)?;
        let port = s.nics.iter().find_map(|n| n.host_port(80)).context("bench-net-http forwards no port 80")?;
        hv.entry("http_requests_per_s")
            .or_default()
            .push(wrk_when_ready(&s, port, |l| l.contains("httpd: listening"))?);

        step(format!("hv-core: {} MiB from a DomU to the host, run {}/{runs}", STREAM_BYTES >> 20, i + 1));
        let sink = Sink::start()?;
        let send = send_topology(paths, sink.port)?;
        let p = prepare(paths, Some(send.to_str().context("non-UTF-8 path")?))?;
        hv.entry("to_host_mbit_s").or_default().push(stream_to_host(&hv_spec(&p)?, &sink)?);

        step(format!("hv-core: DomU to DomU through netback, run {}/{runs}", i + 1));
        let run = qemu::run_captured(&hv_spec(&pair)?, Duration::from_secs(300), None)?;
        let received = format!("netstream: received {STREAM_BYTES} bytes ");
        let figure = run.lines.iter().find_map(|l| {
            let rest = l.split_once(&received)?.1;
            rest.split_once(" Mbit/s")?.0.rsplit_once('(')?.1.parse::<f64>().ok()
        });
        let ok = run.lines.iter().any(|l| l.contains("netstream: checksum ok"));
        match figure {
            Some(f) if ok => {
                eprintln!("  {f:.1} Mbit/s");
                hv.entry("domu_to_domu_mbit_s").or_default().push(f)
            }
            _ => return Err(fail("the DomU pair did not finish with a matching checksum", &run)),
        }
    }

    let linux_med = |k: &str| linux.get(k).map(|v| median(&mut v.clone()));
    let (linux_http, linux_up) = (linux_med("http_requests_per_s"), linux_med("to_host_mbit_s"));
    let against = |what: &'static str, v: Option<f64>| {
        v.map_or(Reference::Absent("the Linux guest gave no such figure"), |v| Reference::Measured(what, v))
    };
    let row = |metric: &str, unit: &str, key: &str, reference: Reference| {
        let values = hv.get(key).cloned().unwrap_or_default();
        Row::new(metric, unit, values, reference).with_target(Some(Target::AtLeast(1.0)))
    };
    let rows = vec![
        row("host -> DomU HTTP", "req/s", "http_requests_per_s", against("Linux guest", linux_http)),
        row("DomU -> host TCP", "Mbit/s", "to_host_mbit_s", against("Linux guest->host", linux_up)),
        row("DomU <-> DomU TCP", "Mbit/s", "domu_to_domu_mbit_s", against("Linux guest->host", linux_up)),
    ];
    print_and_save(paths, &rows, accel, machine, runs)?;
    Ok(rows)
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
         from first byte to end of stream; DomU<->DomU: {} MiB through netback, timed by the receiving DomU\n",
        machine.name(),
        accel.name(),
        STREAM_BYTES >> 20,
        STREAM_BYTES >> 20,
    );
    let header = ["measurement", "hv-core", "Linux", "(Linux figure)", "ratio", "target", "met"];
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
