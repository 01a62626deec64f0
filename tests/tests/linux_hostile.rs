//! A Linux guest shares its driver domains with hostile frontends (issue 15): its unmodified
//! xen-blkfront and xen-netfront keep working, correctly, while blk-attacker sends every kind of
//! bad blkif request and net-attacker floods netback's tx ring with malformed requests. (How
//! much throughput Linux keeps under the flood is a benchmark figure, not a test.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hv_tests::Scenario;

#[test]
fn linux_io_stays_correct_while_hostile_frontends_attack_its_backends() {
    let s = Scenario::new("linux-hostile").at_least(Duration::from_secs(180));
    let port = s.host_port(80);
    let fetched: Arc<Mutex<Option<(u16, String)>>> = Arc::default();
    let shared = fetched.clone();
    let done = fetched.clone();
    let (mut flooding, mut rounds_in_flood, mut asked) = (false, 0, false);
    let s = s.watch(move |line| {
        if let Some(l) = line {
            flooding |= l.starts_with("[net-attacker] net-attacker: connected to backend domain");
            if flooding && l.starts_with("[linux] linux-guest: blk round ") {
                rounds_in_flood += 1;
            }
            // Five disk rounds under the flood, then a page through netback.
            if rounds_in_flood >= 5 && !asked {
                asked = true;
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let r = hv_tests::curl(port, "/", 60);
                    *shared.lock().unwrap() = Some(r);
                });
            }
        }
        done.lock().unwrap().is_some()
    });
    let o = s.run();
    o.expect_line("[linux] linux-guest: httpd serving on port 80");
    o.expect_line("[net-attacker] net-attacker: connected to backend domain *, flooding for 600 s");
    // blkback refused the attacker's requests, by name.
    o.expect_line("[blkback] vbd *: request * refused: *");
    let after = o.expect_line("[net-attacker] net-attacker: connected to backend domain *");
    let ok = o.lines()[after..].iter().filter(|l| hv_tests::glob("[linux] linux-guest: blk round * ok", l)).count();
    assert!(ok >= 5, "Linux completed {ok} disk rounds under the flood");
    o.expect_no_line("[linux] linux-guest: blk round * FAILED");
    o.expect_no_line("[linux] *I/O error*");
    // The attacker's requests are refused; none of Linux's.
    let linux = o.domain_id("linux");
    o.expect_no_line(&format!("[netback] vif {linux}/0: refused tx request*"));
    let got = o.lines().len();
    match fetched.lock().unwrap().clone() {
        Some((200, body)) if body.contains("hello from Linux on xen-netfront") => {}
        other => o.fail(&format!("curl to the Linux guest under the flood ({got} lines): {other:?}")),
    }
    o.expect_no_line("*PANIC*");
    o.expect_no_line("[*] panic: *");
}
