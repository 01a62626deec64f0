//! Toolstack scenarios: `xl` verbs from the host over the control channel (the same client
//! `cargo xtask xl` uses), domains created and destroyed at run time, and driver domains that
//! crash and come back (`on_crash = "restart"`) while their frontends carry on.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hv_control::{DeviceSpec, DomRef, DomainRow, DomainSpec, Totals};
use hv_tests::Scenario;
use xtask::control::{Client, guest_spec};

/// Create/destroy cycles of a DomU with a vif and a disk.
const CYCLES: usize = 1000;

/// What a host-side thread found; `done` ends the run.
#[derive(Default)]
struct Report {
    done: bool,
    error: Option<String>,
    notes: Vec<String>,
}

/// Runs `body` on a thread (with a control client) once every `ready` line was seen; the
/// scenario stops when it returns. Its error, if any, fails the test with the serial log.
fn drive_when(
    s: Scenario,
    socket: std::path::PathBuf,
    ready: &'static [&'static str],
    body: impl FnOnce(&mut Client, &mut Vec<String>) -> Result<(), String> + Send + 'static,
) -> (Scenario, Arc<Mutex<Report>>) {
    let report = Arc::new(Mutex::new(Report::default()));
    let shared = report.clone();
    let mut seen = vec![false; ready.len()];
    let mut body = Some(body);
    let s = s.watch(move |line| {
        if let Some(l) = line {
            for (i, r) in ready.iter().enumerate() {
                seen[i] |= hv_tests::marker(r, l);
            }
        }
        if seen.iter().all(|&s| s)
            && let Some(body) = body.take()
        {
            let shared = shared.clone();
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut notes = Vec::new();
                let r =
                    Client::connect(&socket).map_err(|e| format!("{e:#}")).and_then(|mut c| body(&mut c, &mut notes));
                let mut rep = shared.lock().unwrap();
                rep.error = r.err();
                rep.notes = notes;
                rep.done = true;
            });
        }
        shared.lock().unwrap().done
    });
    (s, report)
}

/// The toolstack topology is up: Dom0 takes xl verbs and both driver domains serve.
const TOOLSTACK_READY: &[&str] = &[
    "[dom0] control channel ready*",
    "[dom0] web: 1 devices connected * ms after create",
    "[blkback] blkback serving a virtio-blk disk*",
];

/// Prints the host side's notes and fails unless it finished without error and the harness
/// stopped QEMU (QEMU had not exited by itself: a hypervisor panic exits it with status 255, a
/// triple fault with 0; judged by the exit status, not by the wording of a panic message).
fn finished_by_the_host(o: &hv_tests::Outcome, report: &Mutex<Report>) {
    let r = report.lock().unwrap();
    for n in &r.notes {
        eprintln!("{n}");
    }
    o.expect_stopped();
    if !r.done {
        o.fail("the host side did not finish");
    }
    if let Some(e) = &r.error {
        o.fail(e);
    }
}

fn names(rows: &[DomainRow]) -> Vec<(u32, String)> {
    rows.iter().map(|r| (r.id, r.name.clone())).collect()
}

/// Polls `xl info` until it equals `want` (backends tear down asynchronously), up to 10 s.
fn settle_to(c: &mut Client, want: &Totals) -> Result<Totals, String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = c.info().map_err(|e| format!("{e:#}"))?;
        if now == *want || Instant::now() > deadline {
            return Ok(now);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_unchanged(c: &mut Client, what: &str, list0: &[DomainRow], info0: &Totals) -> Result<(), String> {
    let list = c.list().map_err(|e| format!("{e:#}"))?;
    if names(&list) != names(list0) {
        return Err(format!("after {what}, xl list shows {:?}; before it {:?}", names(&list), names(list0)));
    }
    let info = settle_to(c, info0)?;
    if info != *info0 {
        return Err(format!("after {what}, xl info shows {info:?}; before it {info0:?}"));
    }
    Ok(())
}

#[test]
fn a_thousand_create_destroy_cycles_leave_no_trace_and_bad_configs_change_nothing() {
    let mut s = Scenario::new("toolstack").at_least(Duration::from_secs(900));
    let socket = s.control_socket();
    let (s, report) = drive_when(s, socket, TOOLSTACK_READY, |c, notes| {
        let list0 = c.list().map_err(|e| format!("{e:#}"))?;
        let info0 = c.info().map_err(|e| format!("{e:#}"))?;
        notes.push(format!("totals at start: {info0:?}"));
        // Bad configs: each is refused with an error that names the problem, and changes nothing.
        let bad: [(&str, DomainSpec, &str); 5] = [
            (
                "an image not in the bundle",
                DomainSpec { image: "nosuch".into(), ..guest_spec("bad1") },
                "no such image",
            ),
            (
                "a missing backend",
                DomainSpec {
                    vifs: vec![DeviceSpec { backend: "nonexistent".into(), params: String::new() }],
                    ..guest_spec("bad2")
                },
                "backend missing",
            ),
            ("too much memory", DomainSpec { memory_mib: 400, ..guest_spec("bad3") }, "no memory left"),
            ("a bad name", guest_spec("bad name!"), "bad domain name"),
            ("a taken name", guest_spec("web"), "a domain of that name exists"),
        ];
        for (what, spec, expect) in bad {
            match c.create(spec) {
                Ok(id) => return Err(format!("create with {what} succeeded (domain {id})")),
                Err(e) if format!("{e:#}").contains(expect) => notes.push(format!("{what}: {e:#}")),
                Err(e) => return Err(format!("create with {what}: error {e:#} does not say {expect:?}")),
            }
            check_unchanged(c, &format!("create with {what}"), &list0, &info0)?;
        }
        // The cycles: create, wait for both devices Connected (both ends), destroy.
        let mut connect_ms = Vec::with_capacity(CYCLES);
        let t0 = Instant::now();
        for i in 0..CYCLES {
            let id = c.create(guest_spec("cycler")).map_err(|e| format!("cycle {i}: create: {e:#}"))?;
            let after = c
                .wait_connected(DomRef::Id(id), Duration::from_secs(20))
                .map_err(|e| format!("cycle {i} (domain {id}): {e:#}"))?;
            connect_ms.push(after.as_secs_f64() * 1e3);
            c.ok(&hv_control::Request::Destroy { dom: DomRef::Id(id), crash: false })
                .map_err(|e| format!("cycle {i}: destroy {id}: {e:#}"))?;
        }
        connect_ms.sort_by(f64::total_cmp);
        notes.push(format!(
            "{CYCLES} cycles in {:.1} s; create to both devices connected: median {:.1} ms, max {:.1} ms",
            t0.elapsed().as_secs_f64(),
            connect_ms[CYCLES / 2],
            connect_ms[CYCLES - 1]
        ));
        check_unchanged(c, &format!("{CYCLES} create/destroy cycles"), &list0, &info0)?;
        // And the system still works: one more guest connects.
        let id = c.create(guest_spec("last")).map_err(|e| format!("{e:#}"))?;
        c.wait_connected(DomRef::Id(id), Duration::from_secs(20)).map_err(|e| format!("after the cycles: {e:#}"))?;
        Ok(())
    });
    let o = s.run();
    finished_by_the_host(&o, &report);
    // Every guest's devices were torn down in the backends, none left behind.
    if o.count("[blkback] vbd * removed") < CYCLES || o.count("[netback] vif * removed") < CYCLES {
        o.fail("the backends did not drop every destroyed guest's device");
    }
    o.expect_no_line("[dom0] * UNEXPECTED*");
}

#[test]
fn blkback_killed_under_a_write_heavy_kvlog_restarts_and_no_acknowledged_record_is_lost() {
    let dir = std::env::temp_dir().join(format!("hv-blk-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut s = Scenario::new("blk-crash").disks_in(&dir).at_least(Duration::from_secs(180));
    let socket = s.control_socket();
    let report = Arc::new(Mutex::new(Report::default()));
    let shared = report.clone();
    let mut killed = false;
    let s = s.watch(move |line| {
        // Mid-workload: after 300 acknowledged records (of 1500), kill blkback from the host.
        if let Some(l) = line
            && !killed
            && l == "[kvlog] progress: 300 records acknowledged"
        {
            killed = true;
            let r = Client::connect(&socket).and_then(|mut c| {
                c.ok(&hv_control::Request::Destroy { dom: DomRef::Name("blkback".into()), crash: true })
            });
            let mut rep = shared.lock().unwrap();
            rep.error = r.err().map(|e| format!("xl destroy --crash blkback: {e:#}"));
            rep.done = true;
        }
        // The topology powers off by itself once kvlog is done.
        false
    });
    let o = s.run();
    if let Some(e) = &report.lock().unwrap().error {
        o.fail(e);
    }
    if !report.lock().unwrap().done {
        o.fail("kvlog never reported 300 acknowledged records, so blkback was not killed");
    }
    o.expect_clean_finish();
    let at = o.expect_in_order(&[
        "[kvlog] blkfront: vbd connected to backend domain 1: *",
        "[kvlog] progress: 300 records acknowledged",
        "[dom0] blkback (domain 1) ended: crash; restarting it (on_crash = restart)",
        "[dom0] blkback restarted as domain * (restart 1)",
        "[kvlog] blkfront: vbd connected to backend domain *: *",
        // Writes continue after the restart.
        "[kvlog] progress: 1500 records acknowledged",
        "[kvlog] appended 1500 records (seq 1..1500) in * ms, each flushed before acknowledged",
        "[kvlog] verified 1500 records, 0 bad",
    ]);
    // Dom0 saw the frontend Connected again (its line and kvlog's race; both follow the restart).
    let reconnected = o.expect_in_order(&[
        "[dom0] blkback restarted as domain * (restart 1)",
        "[dom0] blkback: 1 frontends reconnected * ms after the crash",
    ]);
    if reconnected[1] > at[6] {
        o.fail("Dom0 saw kvlog reconnected only after kvlog had finished its writes");
    }
    eprintln!("{}", o.lines()[reconnected[1]]);
    // On the host image: every record (each was acknowledged only once flushed) is there.
    let image = std::fs::read(dir.join("disk0.img")).expect("disk image");
    let records = image[..16 << 20].chunks(512).skip(1).filter(|s| s.starts_with(b"KVR1")).count();
    if records != 1500 {
        o.fail(&format!("the host image holds {records} records, expected 1500"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Whether GET / from the host got HTTP 200 within `secs`.
fn curl_ok(port: u16, secs: u32) -> bool {
    hv_tests::curl(port, "/", secs).0 == 200
}

#[test]
fn netback_killed_during_a_host_curl_loop_restarts_and_requests_succeed_again() {
    let mut s = Scenario::new("toolstack").at_least(Duration::from_secs(180));
    let socket = s.control_socket();
    let port = s.host_port(80);
    let ready = &["[dom0] control channel ready*", "[web] httpd: listening on *"];
    let (s, report) = drive_when(s, socket, ready, move |c, notes| {
        // The loop runs before, across and after the kill.
        let mut before = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while before < 5 {
            if Instant::now() > deadline {
                return Err(format!("only {before} requests succeeded before the kill"));
            }
            before += usize::from(curl_ok(port, 5));
        }
        c.ok(&hv_control::Request::Destroy { dom: DomRef::Name("netback".into()), crash: true })
            .map_err(|e| format!("xl destroy --crash netback: {e:#}"))?;
        let killed = Instant::now();
        let (mut failed, mut after) = (0, 0);
        let mut first_ok = None;
        while after < 10 {
            if killed.elapsed() > Duration::from_secs(60) {
                return Err(format!("{after} requests succeeded in the 60 s after the kill ({failed} failed)"));
            }
            if curl_ok(port, 1) {
                after += 1;
                first_ok.get_or_insert(killed.elapsed());
            } else {
                failed += 1;
            }
        }
        notes.push(format!(
            "netback killed: first request succeeded again {:.0} ms after the kill (host clock, {failed} failed in between); 10 more succeeded",
            first_ok.unwrap_or_default().as_secs_f64() * 1e3
        ));
        let list = c.list().map_err(|e| format!("{e:#}"))?;
        match list.iter().find(|r| r.name == "netback") {
            Some(r) if r.restarts == 1 => Ok(()),
            other => Err(format!("xl list after the restart shows netback as {other:?}")),
        }
    });
    let o = s.run();
    let r = report.lock().unwrap();
    for n in &r.notes {
        eprintln!("{n}");
    }
    if let Some(e) = &r.error {
        o.fail(e);
    }
    if !r.done {
        o.fail("the host side did not finish");
    }
    let at = o.expect_in_order(&[
        "[dom0] netback (domain *) ended: crash; restarting it (on_crash = restart)",
        "[dom0] netback restarted as domain * (restart 1)",
        "[dom0] netback: 1 frontends reconnected * ms after the crash",
    ]);
    // The new instance owns the virtio-net device again (its line may come before Dom0's).
    o.expect_in_order(&[
        "[dom0] netback (domain *) ended: crash; restarting it (on_crash = restart)",
        "[netback] netback: uplink virtio-net mac *",
    ]);
    eprintln!("{}", o.lines()[at[2]]);
}

/// Polls `dom`'s console history until it holds `needle` (or `timeout` passes).
fn console_shows(c: &mut Client, dom: DomRef, needle: &str, timeout: Duration) -> Result<String, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let r = c.ok(&hv_control::Request::Console { dom: dom.clone(), from: 0 }).map_err(|e| format!("{e:#}"))?;
        let hv_control::Response::Console { data, .. } = r else { return Err("unexpected answer to console".into()) };
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(line) = text.lines().find(|l| l.contains(needle)) {
            return Ok(line.to_owned());
        }
        if Instant::now() > deadline {
            return Err(format!("no {needle:?} on the console after {timeout:?}; it shows:\n{text}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Issue "no guest can take the system down", finding 1: a DomU that tries every way the audit
/// found to exhaust Dom0's memory through the store (transactions of missing long paths,
/// rewrites, long-path nodes, big watches; before the byte budgets this powered the machine
/// off) gets ENOSPC, Dom0 stays up, an honest `xl create` with a vif and a disk still connects,
/// and once the attacker is destroyed `xl info` (store_bytes included) is back at its baseline.
#[test]
fn a_store_attacker_is_refused_and_honest_domains_still_connect() {
    let mut s = Scenario::new("toolstack").at_least(Duration::from_secs(240));
    let socket = s.control_socket();
    let (s, report) = drive_when(s, socket, TOOLSTACK_READY, |c, notes| {
        let list0 = c.list().map_err(|e| format!("{e:#}"))?;
        let info0 = c.info().map_err(|e| format!("{e:#}"))?;
        notes.push(format!("totals at start: {info0:?}"));
        let attacker = DomainSpec {
            image: "store-attacker".into(),
            args: "rounds=3".into(),
            vifs: vec![],
            disks: vec![],
            ..guest_spec("store-attacker")
        };
        let id = c.create(attacker).map_err(|e| format!("create the attacker: {e:#}"))?;
        let done = console_shows(c, DomRef::Id(id), "store-attacker: done", Duration::from_secs(120))?;
        notes.push(done.clone());
        if !done.contains("Dom0 still answering") || done.contains(" 0 requests refused") {
            return Err(format!("the attacker was not refused: {done}"));
        }
        let during = c.info().map_err(|e| format!("{e:#}"))?;
        notes.push(format!("store_bytes with the attacker: {} (baseline {})", during.store_bytes, info0.store_bytes));
        // An honest guest connects both devices while the attacker is still there.
        let g = c.create(guest_spec("honest")).map_err(|e| format!("create the honest guest: {e:#}"))?;
        let after = c
            .wait_connected(DomRef::Id(g), Duration::from_secs(20))
            .map_err(|e| format!("the honest guest next to the attacker: {e:#}"))?;
        notes.push(format!("honest guest connected {:.1} ms after create", after.as_secs_f64() * 1e3));
        for dom in [g, id] {
            c.ok(&hv_control::Request::Destroy { dom: DomRef::Id(dom), crash: false })
                .map_err(|e| format!("destroy {dom}: {e:#}"))?;
        }
        check_unchanged(c, "the store attack", &list0, &info0)
    });
    let o = s.run();
    finished_by_the_host(&o, &report);
    o.expect_no_line("[dom0] * UNEXPECTED*");
    o.expect_no_line("*memory allocation*failed*");
}

/// The xl-linux topology is up: Dom0 takes xl verbs (nothing else runs).
const XL_LINUX_READY: &[&str] = &["[dom0] control channel ready*", "[dom0] system idle*"];

/// A domain's `xl list` row, if it is listed.
fn row_of(c: &mut Client, name: &str) -> Result<Option<DomainRow>, String> {
    Ok(c.list().map_err(|e| format!("{e:#}"))?.into_iter().find(|r| r.name == name))
}

/// `xl console` of one domain followed from its first byte, as `cargo xtask xl console` does
/// (the hypervisor keeps only the last `CONSOLE_HISTORY` bytes; a Linux boot writes more).
struct Tail {
    dom: DomRef,
    from: u64,
    text: String,
    /// Bytes no longer kept when asked for (a gap in `text`).
    lost: u64,
}

impl Tail {
    fn new(dom: DomRef) -> Self {
        Self { dom, from: 0, text: String::new(), lost: 0 }
    }

    /// Reads what is new; returns where the output ends now.
    fn poll(&mut self, c: &mut Client) -> Result<u64, String> {
        let r = c.ok(&hv_control::Request::Console { dom: self.dom.clone(), from: self.from });
        let hv_control::Response::Console { start, data, end } = r.map_err(|e| format!("xl console: {e:#}"))? else {
            return Err("unexpected answer to console".into());
        };
        self.lost += start.saturating_sub(self.from);
        self.text.push_str(&String::from_utf8_lossy(&data));
        self.from = start + data.len() as u64;
        Ok(end)
    }

    /// Follows the output until a line holds `needle`; returns that line.
    fn wait_for(&mut self, c: &mut Client, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            self.poll(c)?;
            if let Some(line) = self.text.lines().find(|l| l.contains(needle)) {
                return Ok(line.to_owned());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "no {needle:?} on {:?}'s console after {timeout:?}; it shows:\n{}",
                    self.dom, self.text
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn destroy(c: &mut Client, dom: DomRef) -> Result<(), String> {
    c.ok(&hv_control::Request::Destroy { dom: dom.clone(), crash: false })
        .map(drop)
        .map_err(|e| format!("xl destroy {dom:?}: {e:#}"))
}

/// Issue 14, items 5 and 7: `xl create` of a Linux PVH config at run time (the config file goes
/// through the same parser as `cargo xtask xl create`). Bad PVH configs are refused with errors
/// naming the fix and leave nothing behind; the guest boots to its init, `xl pause` stops it
/// (state p, no CPU time, no console output while paused) and `xl unpause` lets it go on, `xl
/// console` shows its boot lines, `xl destroy` ends it and `xl info` is back where it started.
#[test]
fn xl_create_boots_a_linux_pvh_guest_that_pauses_shows_its_console_and_is_destroyed() {
    let mut s = Scenario::new("xl-linux").at_least(Duration::from_secs(300));
    let socket = s.control_socket();
    let (s, report) = drive_when(s, socket, XL_LINUX_READY, |c, notes| {
        let list0 = c.list().map_err(|e| format!("{e:#}"))?;
        let info0 = c.info().map_err(|e| format!("{e:#}"))?;
        notes.push(format!("totals at start: {info0:?}"));
        let linux = xtask::control::linux_spec;
        let bad: [(&str, DomainSpec, &[&str]); 5] = [
            (
                "a kernel the bundle lacks",
                DomainSpec { kernel: Some("vmlinuz".into()), ..linux("bad1", 128, "stay") },
                &["kernel \"vmlinuz\"", "not an image of the running bundle", "linux-initramfs", "pvh-probe"],
            ),
            (
                "a ramdisk the bundle lacks",
                DomainSpec { ramdisk: Some("initrd".into()), ..linux("bad2", 128, "stay") },
                &["ramdisk \"initrd\"", "not an image of the running bundle"],
            ),
            (
                "a PV image as kernel",
                DomainSpec { kernel: Some("dom0".into()), ..linux("bad3", 128, "stay") },
                &["kernel \"dom0\" is not a PVH kernel", "XEN_ELFNOTE_PHYS32_ENTRY"],
            ),
            ("too little memory", linux("bad4", 2, "stay"), &["do not fit in 2 MiB", "more memory"]),
            (
                "PV args on a PVH guest",
                DomainSpec { args: "x=1".into(), ..linux("bad5", 128, "stay") },
                &["takes cmdline", "kernel = \"linux\""],
            ),
        ];
        for (what, spec, expect) in bad {
            match c.create(spec) {
                Ok(id) => return Err(format!("create with {what} succeeded (domain {id})")),
                Err(e) if expect.iter().all(|x| format!("{e:#}").contains(x)) => notes.push(format!("{what}: {e:#}")),
                Err(e) => return Err(format!("create with {what}: error {e:#} does not say all of {expect:?}")),
            }
            check_unchanged(c, &format!("create with {what}"), &list0, &info0)?;
        }

        // The config file, as a user writes it for `cargo xtask xl create`.
        let cfg = std::env::temp_dir().join(format!("hv-xl-linux-{}.cfg", std::process::id()));
        let text = "name = \"linux1\"\ntype = \"pvh\"\nkernel = \"linux\"\nramdisk = \"linux-initramfs\"\n\
                    cmdline = \"console=hvc0 loglevel=7 mitigations=off pci=off guest.mode=stay\"\nmemory_mib = 128\n";
        std::fs::write(&cfg, text).map_err(|e| format!("writing {}: {e}", cfg.display()))?;
        let req = xtask::control::create_request(&cfg).map_err(|e| format!("{e:#}"));
        let _ = std::fs::remove_file(&cfg);
        let hv_control::Request::Create(spec) = req? else { return Err("create_request made no Create".into()) };
        let t0 = Instant::now();
        let id = c.create(spec).map_err(|e| format!("xl create linux1: {e:#}"))?;
        let dom = DomRef::Id(id);
        notes.push(format!("linux1 is domain {id}"));

        // Pause it mid-boot: no CPU time, no console output until unpaused.
        let mut tail = Tail::new(dom.clone());
        tail.wait_for(c, "Linux version 6.1", Duration::from_secs(60))?;
        c.ok(&hv_control::Request::Pause(DomRef::Name("linux1".into()))).map_err(|e| format!("xl pause: {e:#}"))?;
        let paused = row_of(c, "linux1")?.ok_or("linux1 is not in xl list")?;
        if paused.state != hv_control::State::Paused {
            return Err(format!("after xl pause, xl list shows linux1 as {paused:?}"));
        }
        let end0 = tail.poll(c)?;
        std::thread::sleep(Duration::from_millis(1500));
        let (still, end1) = (row_of(c, "linux1")?.ok_or("linux1 vanished while paused")?, tail.poll(c)?);
        if still.state != hv_control::State::Paused || still.cpu_time_ns != paused.cpu_time_ns || end1 != end0 {
            return Err(format!("linux1 ran while paused: {paused:?} then {still:?}, console end {end0} then {end1}"));
        }
        notes.push(format!(
            "paused 1.5 s mid-boot at console byte {end0}, {} ms CPU: nothing moved",
            paused.cpu_time_ns / 1_000_000
        ));
        c.ok(&hv_control::Request::Unpause(dom.clone())).map_err(|e| format!("xl unpause: {e:#}"))?;

        // It boots on to its init and stays.
        let line = tail.wait_for(c, "linux-guest: staying up", Duration::from_secs(120))?;
        notes.push(format!("{line} {:.1} s after xl create (host clock)", t0.elapsed().as_secs_f64()));
        let row = row_of(c, "linux1")?.ok_or("linux1 is not in xl list")?;
        if row.id != id
            || row.memory_mib < 128
            || row.state == hv_control::State::Paused
            || row.cpu_time_ns <= paused.cpu_time_ns
        {
            return Err(format!("xl list shows linux1 as {row:?}"));
        }
        notes.push(format!("xl list: {row:?}"));
        // `xl console` showed the whole boot, in order.
        let mut at = 0;
        for want in [
            "Linux version 6.1",
            "Booting kernel on Xen PVH",
            "printk: console [hvc0] enabled",
            "Run /init as init process",
            "linux-guest: init started",
            "linux-guest: staying up",
        ] {
            match tail.text[at..].find(want) {
                Some(i) => at += i + want.len(),
                None => {
                    return Err(format!("xl console did not show {want:?} after the lines before it:\n{}", tail.text));
                }
            }
        }
        notes.push(format!(
            "xl console: {} bytes of boot lines, {} lost to the history ring",
            tail.text.len(),
            tail.lost
        ));
        if tail.lost != 0 {
            return Err(format!("xl console lost {} bytes while following linux1", tail.lost));
        }

        destroy(c, DomRef::Name("linux1".into()))?;
        if let Some(r) = row_of(c, "linux1")? {
            return Err(format!("after xl destroy, xl list still shows {r:?}"));
        }
        match c.ok(&hv_control::Request::Console { dom: dom.clone(), from: 0 }) {
            Err(e) if format!("{e:#}").contains("unknown domain") => {}
            other => return Err(format!("xl console of the destroyed linux1 answered {other:?}")),
        }
        check_unchanged(c, "a Linux guest's life", &list0, &info0)
    });
    let o = s.run();
    finished_by_the_host(&o, &report);
    o.expect_in_order(&[
        "[hv] domain * (linux1) created in * us: PVH, 128 MiB at *, kernel linux entry 0x*",
        "[dom0] xl create: linux1 is domain *",
        "[linux1] linux-guest: init started",
        "[linux1] linux-guest: staying up",
        "[dom0] xl destroy: linux1 (domain *) destroyed",
    ]);
    o.expect_no_line("[linux1] *BUG*");
    o.expect_no_line("[linux1] *Oops*");
    o.expect_no_line("[dom0] * UNEXPECTED*");
}

/// Linux guests created and destroyed 20 times: most destroyed right after `xl create` (at
/// different points of their boot), every fifth after a full boot to its init. `xl list` and
/// `xl info` (free memory, grants, event ports, store nodes, watches and bytes) end where they
/// started.
#[test]
fn twenty_linux_create_destroy_cycles_leave_xl_info_where_it_started() {
    const LINUX_CYCLES: u64 = 20;
    let mut s = Scenario::new("xl-linux").at_least(Duration::from_secs(300));
    let socket = s.control_socket();
    let (s, report) = drive_when(s, socket, XL_LINUX_READY, |c, notes| {
        let list0 = c.list().map_err(|e| format!("{e:#}"))?;
        let info0 = c.info().map_err(|e| format!("{e:#}"))?;
        notes.push(format!("totals at start: {info0:?}"));
        let t0 = Instant::now();
        let mut booted = 0;
        for i in 0..LINUX_CYCLES {
            let spec = xtask::control::linux_spec("cycler", 128, "stay");
            let id = c.create(spec).map_err(|e| format!("cycle {i}: xl create: {e:#}"))?;
            if i % 5 == 4 {
                console_shows(c, DomRef::Id(id), "linux-guest: init started", Duration::from_secs(120))
                    .map_err(|e| format!("cycle {i} (domain {id}): {e}"))?;
                booted += 1;
            } else {
                // Somewhere in its first 0.3 s of boot.
                std::thread::sleep(Duration::from_millis(i * 20));
            }
            destroy(c, DomRef::Id(id)).map_err(|e| format!("cycle {i}: {e}"))?;
        }
        notes.push(format!(
            "{LINUX_CYCLES} Linux create/destroy cycles ({booted} to init) in {:.1} s",
            t0.elapsed().as_secs_f64()
        ));
        check_unchanged(c, &format!("{LINUX_CYCLES} Linux create/destroy cycles"), &list0, &info0)?;
        // And one more still boots.
        let id = c.create(xtask::control::linux_spec("last", 128, "stay")).map_err(|e| format!("{e:#}"))?;
        console_shows(c, DomRef::Id(id), "linux-guest: init started", Duration::from_secs(120))
            .map_err(|e| format!("after the cycles: {e}"))?;
        Ok(())
    });
    let o = s.run();
    finished_by_the_host(&o, &report);
    if o.count("[dom0] xl destroy: cycler (domain *) destroyed") < LINUX_CYCLES as usize {
        o.fail("not every cycle's guest was destroyed by xl destroy");
    }
    o.expect_no_line("[dom0] * UNEXPECTED*");
}
