//! `cargo xtask bench xl`: the toolstack's timings, on the `bench-xl` topology with its control
//! channel, driven from a host thread with the `xl` client ([`xtask::control::Client`]) while QEMU runs.
//!
//! * `xl create` to Connected: a `guest` DomU with a vif (netback) and a disk (blkback) is
//!   created, waited for until both devices are Connected at both ends, and destroyed,
//!   [`WARMUP`] + [`CYCLES`] times. Two figures per cycle: Dom0's (its clock, from the domain's
//!   creation to the last device Connected, as `wait_connected` returns it) and the host's (wall
//!   clock from sending the create request to the `devices` answer that shows every device
//!   Connected; it includes the control channel, a serial port under QEMU, and the 2 ms polling).
//! * Driver-domain crash to reconnected: a driver domain is destroyed as crashed ([`CRASHES`]
//!   times each); Dom0 restarts it (`on_crash = "restart"`) and prints `<name>: <n> frontends
//!   reconnected <ms> ms after the crash` (its clock, from the crash to every frontend it served
//!   Connected to the new instance), which the host takes from the serial console before the
//!   next kill. netback: with web and a guest (vif + disk) connected, both vifs. blkback: its
//!   frontend is a `kvlog` DomU created for the purpose, appending records while blkback dies
//!   (the first kill waits for its `found <n> records` line: the log is open).
//!   Not the guest's vbd: the guest reads one sector and then keeps no blkfront (it hands the
//!   store connection on to its netfront), and blkfront notices a dead backend only while it
//!   does I/O, so the guest's vbd never reconnects (the new blkback's map of the old grant fails).
//!
//! Prints a table (median, p90, max, target, met: the median under the target) and writes
//! `target/bench/xl.json` (the serial log goes to `target/bench/xl-serial.log`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hv_control::{DeviceSpec, DomRef, DomainSpec, OnCrash, Request};
use serde::Serialize;
use xtask::control::{Client, guest_spec};
use xtask::paths::{Paths, show};
use xtask::qemu::{self, Accel, Machine, Media, NetDevice, Spec};
use xtask::{packages, step};

use super::row::{self, Reference, Target};
use super::{failed_run as fail, median, percentile, print_columns, write_json};

/// Create/destroy cycles not counted (the first ones warm caches and allocators).
const WARMUP: usize = 3;
/// Create/destroy cycles measured.
const CYCLES: usize = 30;
/// Crashes of each driver domain: one fewer than Dom0's restart policy allows in a row (each
/// instance here lives less than `RestartBackoff::STABLE_NS`), or the last one stays down.
const CRASHES: usize = hv_bundle::restart::RestartBackoff::GIVE_UP_AFTER as usize - 1;
/// Targets (ms): create to Connected (stock `xl` takes 1-2.5 s, LightVM 2.3 ms), crash to
/// reconnected.
const CREATE_TARGET_MS: f64 = 10.0;
const RECONNECT_TARGET_MS: f64 = 100.0;
/// How long one create may take to connect, and one crash to reconnect, before the bench fails.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// The whole QEMU run.
const RUN_TIMEOUT: Duration = Duration::from_secs(900);
/// The name of the DomUs the bench creates.
const GUEST: &str = "xlbench";
/// The blkback crashes' frontend: a kvlog DomU on the disk's first 16 MiB (the guests get 8 MiB
/// at 16 MiB), with more records to append than the crashes take.
const KVLOG: &str = "xlbench-kvlog";
const KVLOG_RECORDS: u64 = 6000;

/// Serial lines the host thread waits for: Dom0's connect tracking, and kvlog's line that it
/// opened the log (it appends from then on).
fn is_connect_line(l: &str) -> bool {
    (l.starts_with("[dom0] ")
        && (l.contains(" frontends reconnected ")
            || l.contains(" devices not connected ")
            || l.contains(" restarted as ")))
        || is_kvlog_open(l)
}

fn is_kvlog_open(l: &str) -> bool {
    l.strip_prefix('[').and_then(|r| r.strip_prefix(KVLOG)).is_some_and(|r| r.starts_with("] found "))
}

/// What the host thread measured (ms).
#[derive(Default)]
struct Samples {
    create_reply: Vec<f64>,
    create_dom0: Vec<f64>,
    create_host: Vec<f64>,
    /// Per driver domain: (name, the frontends it served, figures).
    reconnect: Vec<(&'static str, &'static str, Vec<f64>)>,
}

fn kvlog_spec() -> DomainSpec {
    DomainSpec {
        name: KVLOG.to_owned(),
        domain_type: hv_control::DomainType::Pv,
        image: "kvlog".to_owned(),
        memory_mib: 8,
        args: format!("put={KVLOG_RECORDS}"),
        kernel: None,
        ramdisk: None,
        cmdline: String::new(),
        driver: false,
        pci: vec![],
        vifs: vec![],
        disks: vec![DeviceSpec { backend: "blkback".to_owned(), params: "offset_mib=0 size_mib=16 mode=w".to_owned() }],
        on_crash: OnCrash::Destroy,
    }
}

/// `xl devices <dom>` as one line: `vif/0 fe 4 be 4 (netback, domain 2), ...`.
fn device_states(c: &mut Client, dom: &str) -> String {
    match c.devices(DomRef::Name(dom.to_owned())) {
        Ok((rows, _)) => rows
            .iter()
            .map(|r| {
                format!(
                    "{}/{} frontend state {} backend state {} ({}, domain {})",
                    r.kind,
                    r.index,
                    r.frontend_state,
                    r.backend_state,
                    r.backend,
                    r.backend_id.map_or("-".into(), |id| id.to_string())
                )
            })
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => format!("(xl devices {dom}: {e:#})"),
    }
}

/// The create/destroy cycles.
fn create_cycles(c: &mut Client, s: &mut Samples) -> Result<()> {
    for i in 0..WARMUP + CYCLES {
        let t0 = Instant::now();
        let id = c.create(guest_spec(GUEST)).with_context(|| format!("cycle {i}: xl create {GUEST}"))?;
        let reply = t0.elapsed();
        let dom0 = c
            .wait_connected(DomRef::Id(id), CONNECT_TIMEOUT)
            .with_context(|| format!("cycle {i}: {GUEST} (domain {id}) after create"))?;
        let host = t0.elapsed();
        c.ok(&Request::Destroy { dom: DomRef::Id(id), crash: false })
            .with_context(|| format!("cycle {i}: xl destroy {id}"))?;
        if (i + 1) % 10 == 0 {
            eprintln!("  {}/{} create cycles done", i + 1, WARMUP + CYCLES);
        }
        if i >= WARMUP {
            s.create_reply.push(reply.as_secs_f64() * 1e3);
            s.create_dom0.push(dom0.as_secs_f64() * 1e3);
            s.create_host.push(host.as_secs_f64() * 1e3);
        }
    }
    Ok(())
}

/// `[dom0] <name>: <n> frontends reconnected <ms> ms after the crash` → (n, ms).
fn parse_reconnected(line: &str, name: &str) -> Option<(usize, f64)> {
    let rest = line.strip_prefix("[dom0] ")?.strip_prefix(name)?.strip_prefix(": ")?;
    let (n, rest) = rest.split_once(" frontends reconnected ")?;
    let ms = rest.strip_suffix(" ms after the crash")?;
    Some((n.parse().ok()?, ms.parse().ok()?))
}

/// Kills `name` as crashed `CRASHES` times; each time waits for Dom0's reconnected line (read
/// from `lines`, which the watch closure fills) and for the `frontends` to be Connected again.
fn crash_cycles(
    c: &mut Client,
    lines: &Mutex<Vec<String>>,
    name: &'static str,
    frontends: &[&str],
) -> Result<Vec<f64>> {
    let mut figures = Vec::with_capacity(CRASHES);
    for k in 0..CRASHES {
        let running: Vec<String> = c.list()?.into_iter().map(|r| r.name).collect();
        if let Some(gone) = frontends.iter().find(|f| !running.iter().any(|r| r == *f)) {
            bail!("crash {}/{CRASHES} of {name}: {gone} is no longer running (domains: {running:?})", k + 1);
        }
        let seen = lines.lock().unwrap().len();
        c.ok(&Request::Destroy { dom: DomRef::Name(name.into()), crash: true })
            .with_context(|| format!("crash {}/{CRASHES}: xl destroy --crash {name}", k + 1))?;
        let sent = Instant::now();
        let (n, ms) = loop {
            let new: Vec<String> = lines.lock().unwrap()[seen..].to_vec();
            if let Some(hit) = new.iter().find_map(|l| parse_reconnected(l, name)) {
                break hit;
            }
            if let Some(l) = new.iter().find(|l| l.starts_with(&format!("[dom0] {name}: devices not connected "))) {
                bail!("crash {}/{CRASHES} of {name}: Dom0 gave up: {l}", k + 1);
            }
            if sent.elapsed() > CONNECT_TIMEOUT {
                let states: Vec<String> = frontends.iter().map(|f| format!("{f}: {}", device_states(c, f))).collect();
                bail!(
                    "crash {}/{CRASHES} of {name}: no \"{name}: <n> frontends reconnected\" line from Dom0 within {} s \
                     (Dom0 said: {:?}); devices now: {}",
                    k + 1,
                    CONNECT_TIMEOUT.as_secs(),
                    new,
                    states.join("; ")
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if n != frontends.len() {
            bail!(
                "crash {}/{CRASHES} of {name}: Dom0 reconnected {n} frontends, expected {} ({frontends:?})",
                k + 1,
                frontends.len()
            );
        }
        for &dom in frontends {
            c.wait_connected(DomRef::Name(dom.into()), CONNECT_TIMEOUT)
                .with_context(|| format!("crash {}/{CRASHES} of {name}: {dom}", k + 1))?;
        }
        eprintln!("  {name} crash {}/{CRASHES}: {n} frontends reconnected {ms:.1} ms after the crash", k + 1);
        figures.push(ms);
    }
    Ok(figures)
}

/// The host thread's work, once the system is up.
fn drive(socket: &std::path::Path, lines: &Mutex<Vec<String>>) -> Result<Samples> {
    let mut c = Client::connect(socket)?;
    let mut s = Samples::default();
    let names: Vec<String> = c.list()?.into_iter().map(|r| r.name).collect();
    for want in ["blkback", "netback", "web"] {
        if !names.iter().any(|n| n == want) {
            bail!("xl list shows no {want} (domains: {names:?})");
        }
    }
    step(format!("create {GUEST} (vif + disk), wait for Connected, destroy: {WARMUP} + {CYCLES} times"));
    create_cycles(&mut c, &mut s)?;

    // netback serves web's vif and the guest's.
    let id = c.create(guest_spec(GUEST)).context("xl create (for the netback crashes)")?;
    c.wait_connected(DomRef::Id(id), CONNECT_TIMEOUT).with_context(|| format!("{GUEST} (domain {id})"))?;
    c.wait_connected(DomRef::Name("web".into()), CONNECT_TIMEOUT).context("web")?;
    step(format!("netback destroyed as crashed, restarted by Dom0, {CRASHES} times (frontends: web, {GUEST})"));
    let f = crash_cycles(&mut c, lines, "netback", &["web", GUEST])?;
    s.reconnect.push(("netback", "web + guest vifs", f));
    c.ok(&Request::Destroy { dom: DomRef::Id(id), crash: false }).context("xl destroy (after the netback crashes)")?;

    // blkback serves a kvlog DomU, appending records from the first crash on.
    let id = c.create(kvlog_spec()).context("xl create kvlog (for the blkback crashes)")?;
    c.wait_connected(DomRef::Id(id), CONNECT_TIMEOUT).with_context(|| format!("{KVLOG} (domain {id})"))?;
    let t0 = Instant::now();
    while !lines.lock().unwrap().iter().any(|l| is_kvlog_open(l)) {
        if t0.elapsed() > CONNECT_TIMEOUT {
            bail!(
                "{KVLOG} did not open its log within {} s (no \"[{KVLOG}] found ...\" line)",
                CONNECT_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    step(format!("blkback destroyed as crashed, restarted by Dom0, {CRASHES} times (frontend: {KVLOG}, appending)"));
    let f = crash_cycles(&mut c, lines, "blkback", &[KVLOG])?;
    s.reconnect.push(("blkback", "kvlog vbd, appending", f));
    c.ok(&Request::Destroy { dom: DomRef::Id(id), crash: false }).context("xl destroy kvlog")?;
    Ok(s)
}

struct Row {
    metric: String,
    clock: &'static str,
    values: Vec<f64>,
    target_ms: Option<f64>,
}

impl Row {
    fn sorted(&self) -> Vec<f64> {
        let mut v = self.values.clone();
        v.sort_by(f64::total_cmp);
        v
    }

    fn median(&self) -> f64 {
        median(&mut self.values.clone())
    }

    fn met(&self) -> Option<bool> {
        self.target_ms.map(|t| self.median() < t)
    }

    /// As the shared row of docs/bench.md: the median of every cycle, judged the same way.
    fn shared(&self) -> row::Row {
        let why = match self.target_ms {
            Some(_) if self.metric.starts_with("xl create") => {
                "absolute target; stock xl takes 1-2.5 s, LightVM 2.3 ms"
            }
            Some(_) => "absolute target",
            None => "reported for context, no comparable figure",
        };
        row::Row::new(
            format!("{} ({} clock)", self.metric, self.clock),
            "ms",
            self.values.clone(),
            Reference::Absent(why),
        )
        .with_target(self.target_ms.map(Target::Below))
    }
}

pub fn run(paths: &Paths, accel: Accel, machine: Machine) -> Result<Vec<row::Row>> {
    packages::ensure(&[packages::QEMU])?;
    let p = crate::build::prepare(paths, Some("bench-xl"))?;
    let mut spec = Spec {
        machine,
        accel,
        ..Spec::new(Media::Direct { kernel: p.hypervisor(), initrd: p.bundle.clone(), append: None })
    };
    spec.disks = xtask::disks::images(&paths.disks_dir("bench-xl"), &p.topology, true)?;
    spec.nics = NetDevice::for_topology(&p.topology.nics)?;
    let socket = paths.bench_dir().join("xl-control.sock");
    std::fs::create_dir_all(paths.bench_dir())?;
    let _ = std::fs::remove_file(&socket);
    spec.control = Some(socket.clone());

    let lines: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let result: Arc<Mutex<Option<Result<Samples>>>> = Arc::new(Mutex::new(None));
    let ready = ["[dom0] control channel ready", "[dom0] web: 1 devices connected "];
    let mut seen = [false; 2];
    let mut started = false;
    let mut watch = |line: Option<&str>| {
        if let Some(l) = line {
            if is_connect_line(l) {
                lines.lock().unwrap().push(l.to_owned());
            }
            for (s, r) in seen.iter_mut().zip(ready) {
                *s |= l.starts_with(r);
            }
        }
        if !started && seen.iter().all(|&s| s) {
            started = true;
            let (lines, result, socket) = (lines.clone(), result.clone(), socket.clone());
            std::thread::spawn(move || {
                let r = drive(&socket, &lines);
                *result.lock().unwrap() = Some(r);
            });
        }
        result.lock().unwrap().is_some()
    };
    step(format!("booting bench-xl under {} (control channel {})", accel.name(), show(&socket, &paths.root)));
    let run = qemu::run_watched(&spec, RUN_TIMEOUT, &mut watch)?;
    let _ = std::fs::remove_file(&socket);
    let log = paths.bench_dir().join("xl-serial.log");
    std::fs::write(&log, run.lines.join("\n") + "\n").with_context(|| format!("writing {}", log.display()))?;
    eprintln!("serial log: {}", show(&log, &paths.root));
    let s = match result.lock().unwrap().take() {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Err(fail(&format!("{e:#}"), &run)),
        None => {
            return Err(fail(
                "the system never got ready (Dom0's \"control channel ready\" and \"web: 1 devices connected\")",
                &run,
            ));
        }
    };

    let mut rows = vec![
        Row {
            metric: "xl create -> vif+vbd Connected".into(),
            clock: "Dom0",
            values: s.create_dom0,
            target_ms: Some(CREATE_TARGET_MS),
        },
        Row {
            metric: "xl create -> vif+vbd Connected".into(),
            clock: "host",
            values: s.create_host,
            target_ms: Some(CREATE_TARGET_MS),
        },
        Row { metric: "xl create reply".into(), clock: "host", values: s.create_reply, target_ms: None },
    ];
    for (name, frontends, values) in s.reconnect {
        rows.push(Row {
            metric: format!("{name} crash -> reconnected ({frontends})"),
            clock: "Dom0",
            values,
            target_ms: Some(RECONNECT_TARGET_MS),
        });
    }
    print_and_save(paths, &rows, accel, machine)?;
    Ok(rows.iter().map(Row::shared).collect())
}

/// One row of `xl.json` (milliseconds).
#[derive(Serialize)]
struct XlMetric<'a> {
    metric: &'a str,
    clock: &'static str,
    unit: &'static str,
    n: usize,
    median: f64,
    p90: f64,
    max: f64,
    target_below: Option<f64>,
    met: Option<bool>,
    values: &'a [f64],
}

impl<'a> XlMetric<'a> {
    fn of(r: &'a Row) -> Self {
        let sorted = r.sorted();
        Self {
            metric: &r.metric,
            clock: r.clock,
            unit: "ms",
            n: r.values.len(),
            median: r.median(),
            p90: percentile(&sorted, 90.0),
            max: sorted.last().copied().unwrap_or(f64::NAN),
            target_below: r.target_ms,
            met: r.met(),
            values: &r.values,
        }
    }
}

fn fmt_ms(v: f64) -> String {
    if v.is_finite() { format!("{v:.1} ms") } else { "-".into() }
}

fn print_and_save(paths: &Paths, rows: &[Row], accel: Accel, machine: Machine) -> Result<()> {
    println!(
        "\nxl benchmarks: QEMU -machine {} -accel {}, topology bench-xl; create: {CYCLES} cycles after {WARMUP} \
         warm-up (guest DomU with a vif on netback and a disk on blkback, destroyed after each); crash: {CRASHES} \
         per driver domain (xl destroy --crash, on_crash = restart). Dom0 = Dom0's clock (from the domain's \
         creation / the crash); host = wall clock from sending the request over the control channel. met: median \
         under the target. References: stock xl 1-2.5 s, LightVM 2.3 ms (create to connected).\n",
        machine.name(),
        accel.name(),
    );
    let header = ["measurement", "clock", "n", "median", "p90", "max", "target", "met"];
    let mut table: Vec<[String; 8]> = vec![header.map(String::from)];
    for r in rows {
        let sorted = r.sorted();
        table.push([
            r.metric.clone(),
            r.clock.into(),
            r.values.len().to_string(),
            fmt_ms(r.median()),
            fmt_ms(percentile(&sorted, 90.0)),
            fmt_ms(sorted.last().copied().unwrap_or(f64::NAN)),
            r.target_ms.map_or("-".into(), |t| format!("< {t} ms")),
            match r.met() {
                Some(true) => "yes".into(),
                Some(false) => "NO".into(),
                None => "-".into(),
            },
        ]);
    }
    print_columns(&table);

    let metrics: Vec<XlMetric> = rows.iter().map(XlMetric::of).collect();
    let report = serde_json::json!({
        "accel": accel.name(),
        "machine": machine.name(),
        "create_cycles": CYCLES,
        "create_warmup": WARMUP,
        "crashes_per_driver_domain": CRASHES,
        "metrics": metrics,
    });
    write_json(paths, "xl.json", &report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_reconnected_lines() {
        let l = "[dom0] blkback: 1 frontends reconnected 12.3 ms after the crash";
        assert_eq!(parse_reconnected(l, "blkback"), Some((1, 12.3)));
        assert_eq!(parse_reconnected(l, "netback"), None);
        assert_eq!(
            parse_reconnected("[dom0] netback: 2 frontends reconnected 7.0 ms after the crash", "netback"),
            Some((2, 7.0))
        );
        assert_eq!(parse_reconnected("[dom0] web: 1 devices connected 3.1 ms after create", "web"), None);
        assert!(is_connect_line(l));
        assert!(is_connect_line("[xlbench-kvlog] found 0 records (0 keys) at start; log ends at sector 1"));
        assert!(!is_connect_line("[xlbench-kvlog] disk: 32768 sectors (16 MiB), read-write"));
    }

    #[test]
    fn shared_rows_keep_every_cycle_and_the_verdict() {
        let r = Row {
            metric: "xl create reply".into(),
            clock: "host",
            values: vec![3.0, 12.0, 4.0],
            target_ms: Some(10.0),
        };
        let s = r.shared();
        assert_eq!((s.metric.as_str(), s.value, s.spread()), ("xl create reply (host clock)", 4.0, Some((3.0, 12.0))));
        assert_eq!((s.verdict(), r.met()), (Some(true), Some(true)));
        assert!(matches!(s.reference, Reference::Absent(why) if why.contains("LightVM")));
    }
}
