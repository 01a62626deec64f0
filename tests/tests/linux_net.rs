//! Linux's own xen-netfront (Debian's module, unmodified) on the Rust netback driver domain
//! (issue 15), judged by tools nobody here wrote: Linux's ping and busybox httpd inside the
//! guest, curl on the host through QEMU's forward.

use std::sync::{Arc, Mutex};

use hv_tests::Scenario;

/// The Linux guest brings eth0 up on netfront, pings QEMU's gateway through netback, and
/// serves a page that the host fetches with curl. Every checksum-offloaded packet Linux sends
/// is completed by netback (none refused).
#[test]
fn host_curl_reaches_httpd_in_a_linux_domu_through_netback() {
    let s = Scenario::new("linux-net");
    let port = s.host_port(80);
    let fetched: Arc<Mutex<Option<(u16, String)>>> = Arc::default();
    let shared = fetched.clone();
    let mut started = false;
    let s = s.watch(move |line| {
        if let Some(l) = line
            && !started
            && l.starts_with("[linux] linux-guest: httpd serving on port 80")
        {
            started = true;
            let shared = shared.clone();
            std::thread::spawn(move || {
                let r = hv_tests::curl(port, "/", 30);
                *shared.lock().unwrap() = Some(r);
            });
        }
        shared.lock().unwrap().is_some()
    });
    let o = s.run();
    o.expect_in_order(&[
        "[linux] linux-guest: loaded *xen-netfront.ko",
        "[linux] linux-guest: eth0 00:16:3e:* 10.0.2.15/24",
        "[linux] linux-guest: ping 10.0.2.2 ok: *",
        "[linux] linux-guest: httpd serving on port 80",
    ]);
    let got = fetched.lock().unwrap().clone();
    match got {
        Some((200, body)) if body.contains("hello from Linux on xen-netfront and the Rust netback") => {}
        other => o.fail(&format!("curl through netback to the Linux guest: {other:?}")),
    }
    o.expect_no_line("[netback] *refused tx request*");
    o.expect_no_line("*PANIC*");
}
