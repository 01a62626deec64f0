//! Driver domains restarted in place under a Linux guest (issue 15): Linux's unmodified
//! xen-blkfront and xen-netfront cannot follow a backend to a new store path, so Dom0 brings a
//! crashed driver domain back under its old domain id and the new instance resumes the rings
//! the frontends still use (docs/design.md, "Restart in place").

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hv_control::DomRef;
use hv_tests::Scenario;
use xtask::control::Client;

#[derive(Default)]
struct Report {
    done: bool,
    error: Option<String>,
    /// curl's (status, body) before and after the netback restart.
    curls: Vec<(u16, String)>,
}

/// blkback is killed while Linux writes and reads back its disk every second, then netback
/// while it serves HTTP: each comes back as the same domain, resumes the connection, and Linux
/// carries on (every round's acknowledged write reads back intact; curl works again).
#[test]
fn linux_carries_on_when_its_driver_domains_crash_and_restart_in_place() {
    let mut s = Scenario::new("linux-restart").at_least(Duration::from_secs(240));
    let socket = s.control_socket();
    let port = s.host_port(80);
    let report = Arc::new(Mutex::new(Report::default()));
    let shared = report.clone();
    let (mut stage, mut rounds_after) = (0, 0);
    let s = s.watch(move |line| {
        let Some(l) = line else { return shared.lock().unwrap().done };
        let kill = |name: &str| {
            let r = Client::connect(&socket)
                .and_then(|mut c| c.ok(&hv_control::Request::Destroy { dom: DomRef::Name(name.into()), crash: true }));
            if let Err(e) = r {
                let mut rep = shared.lock().unwrap();
                rep.error = Some(format!("xl destroy --crash {name}: {e:#}"));
                rep.done = true;
            }
        };
        match stage {
            // Disk busy, network up: kill blkback.
            0 if l.starts_with("[linux] linux-guest: blk round 3 ok") => {
                stage = 1;
                kill("blkback");
            }
            1 if l.starts_with("[blkback]") && l.contains("resumed the connection of a previous instance") => stage = 2,
            // Three more rounds on the new blkback, then fetch a page and kill netback.
            2 if l.starts_with("[linux] linux-guest: blk round ") => {
                rounds_after += 1;
                if rounds_after == 3 {
                    stage = 3;
                    shared.lock().unwrap().curls.push(hv_tests::curl(port, "/", 30));
                    kill("netback");
                }
            }
            3 if l.starts_with("[netback]") && l.contains("resumed the connection of a previous instance") => {
                stage = 4;
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let r = hv_tests::curl(port, "/", 60);
                    let mut rep = shared.lock().unwrap();
                    rep.curls.push(r);
                    rep.done = true;
                });
            }
            _ => {}
        }
        shared.lock().unwrap().done
    });
    let o = s.run();
    let rep = report.lock().unwrap();
    if let Some(e) = &rep.error {
        o.fail(e);
    }
    o.expect_in_order(&[
        "[linux] linux-guest: httpd serving on port 80",
        "[linux] linux-guest: blk round 3 ok",
        "[dom0] blkback (domain *) ended: crash; restarting it (on_crash = restart)",
        "[dom0] blkback restarted as domain * (restart 1)",
        "[blkback] vbd */51712: resumed the connection of a previous instance",
        "[dom0] blkback: 1 frontends reconnected * ms after the crash",
        "[dom0] netback (domain *) ended: crash; restarting it (on_crash = restart)",
        "[dom0] netback restarted as domain * (restart 1)",
        "[netback] vif */0: resumed the connection of a previous instance",
    ]);
    // The restarted driver domains kept their ids (in place).
    let blk = o.domain_id("blkback");
    o.expect_line(&format!("[dom0] blkback restarted as domain {blk} (restart 1)"));
    let net = o.domain_id("netback");
    o.expect_line(&format!("[dom0] netback restarted as domain {net} (restart 1)"));
    o.expect_no_line("[linux] linux-guest: blk round * FAILED");
    o.expect_no_line("[linux] *I/O error*");
    let ok = |c: &(u16, String)| c.0 == 200 && c.1.contains("hello from Linux on xen-netfront");
    if rep.curls.len() != 2 || !rep.curls.iter().all(ok) {
        o.fail(&format!("curl before and after the netback restart: {:?}", rep.curls));
    }
}
