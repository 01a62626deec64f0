//! The netback driver domain: switches frames between the assigned virtio-net device (the
//! uplink; without one, netback switches among the vifs only) and every `vif` device the
//! toolstack gave it.
//!
//! Per device (`/local/domain/<me>/backend/vif/<fe>/<n>`): read `mac` and `params` (`pcap=1`),
//! publish the features (`crate::xenbus`: rx-copy, scatter-gather, GSO for TCP over IPv4 and
//! IPv6), switch to InitWait; when the frontend is Initialised (or already Connected) read
//! `tx-ring-ref`, `rx-ring-ref`, `event-channel`, map both rings, bind the port, switch to
//! Connected. A frontend that goes
//! Closing is torn down (rings unmapped, port closed, its MACs forgotten by the switch) and
//! answered with Closing, Closed or vanished with Closed; one that breaks a ring is torn down
//! and closed; either may reconnect by going back to Initialising. The handshake is the
//! `xenbus-backend` skeleton's; this file is the vif's data path and the domain's loop.
//!
//! Console lines (stable; tests grep them):
//! * `netback: uplink virtio-net mac 52:54:00:12:34:56 (interrupts|polling)` or
//!   `netback: no uplink (no virtio-net device); switching among vifs only`
//! * `vif <fe>/<n>: mac <mac>, pcap on|off; InitWait`
//! * `vif <fe>/<n>: connected to domain <fe>: tx ring ref <r>, rx ring ref <r>, port <p>`
//! * `vif <fe>/<n>: tx <n> pkts <n> B, tx errors <n>, rx <n> pkts <n> B, rx drops <n>` every
//!   few seconds while they change, and once more with ` (final)` appended on teardown
//! * `vif <fe>/<n>: <n> frames from forged source MACs dropped` (anti-spoofing: a vif sends only
//!   from its assigned MAC) every few seconds while it changes, and with ` (final)` on teardown
//! * `vif <fe>/<n>: disconnected (<why>); rings unmapped: yes|no, port closed`
//! * `vif <fe>/<n>: removed` once the toolstack removed its directory (the frontend's domain
//!   was destroyed): torn down, its frontend no longer watched, the vif forgotten
//! * `vif <fe>/<n>: refused tx request <id>: <why>`, the first
//!   [`xenbus_backend::MAX_LOGGED_REFUSALS`] per vif, then
//!   `vif <fe>/<n>: further refusals are only counted`
//! * `uplink: rx <n> pkts <n> B, rx errors <n>, tx <n> pkts <n> B, tx drops <n>` when it changed
//! * `pcap <hex>` (see [`crate::pcap`])
use alloc::format;
use alloc::string::String;
use alloc::vec;

use hv_rt::store::{Store, XenbusState, xenbus};
use hv_rt::virtio::NetDevice;
use hv_rt::{evtchn, println, time};
use xenbus_backend::hv::{Hv, HvCopier};
use xenbus_backend::{Backend, Device};

use crate::bridge::{Bridge, Uplink, UplinkCounters};
use crate::switch::{MacDisplay, PortId};
use crate::xenbus::{Shared, VifPath};

const SECOND: u64 = 1_000_000_000;
/// At most this many vifs are served.
const MAX_VIFS: usize = 32;
/// Counters are printed at most this often (when they changed).
const STATS_EVERY: u64 = 5 * SECOND;
/// Frames taken from the device per loop iteration.
const UPLINK_RX_BUDGET: usize = 64;
/// How long a frame for the uplink may wait for a free transmit buffer.
const UPLINK_TX_WAIT_NS: u64 = 2_000_000;

/// The virtio-net device as the bridge's uplink.
struct VirtioUplink(NetDevice);

impl Uplink for VirtioUplink {
    fn send(&mut self, frame: &[u8]) -> bool {
        // Every transmit buffer in flight: QEMU frees them as it goes, so wait a little (bounded)
        // rather than drop the frame at once.
        let deadline = time::now_ns().saturating_add(UPLINK_TX_WAIT_NS);
        loop {
            match self.0.send(frame) {
                Ok(()) => return true,
                Err(hv_rt::virtio::NetError::Busy) if time::now_ns() < deadline => core::hint::spin_loop(),
                Err(_) => return false,
            }
        }
    }
}

/// No device: the bridge never sends to it.
struct NoUplink;

impl Uplink for NoUplink {
    fn send(&mut self, _frame: &[u8]) -> bool {
        false
    }
}

pub fn main() {
    let mut device = match NetDevice::open() {
        Ok(d) => {
            let how = if d.interrupt_driven() { "interrupts" } else { "polling" };
            println!("netback: uplink virtio-net mac {} ({how})", MacDisplay(&d.mac()));
            Some(VirtioUplink(d))
        }
        Err(hv_rt::virtio::NetError::NoDevice) => {
            println!("netback: no uplink (no virtio-net device); switching among vifs only");
            None
        }
        Err(e) => {
            println!("netback: virtio-net device unusable ({e:?}); no uplink, switching among vifs only");
            None
        }
    };
    serve(&mut device);
}

fn serve(device: &mut Option<VirtioUplink>) {
    let mut store = match Store::connect() {
        Ok(s) => s,
        Err(e) => panic!("store: {e}"),
    };
    let mut backend: Backend<VifPath> = Backend::new(hv_rt::domid(), MAX_VIFS);
    let mut shared = Shared::new(Bridge::new(device.is_some()), |line| println!("{line}"));
    let polling = device.as_ref().is_some_and(|d| !d.0.interrupt_driven());
    if let Err(e) = backend.watch(&mut store) {
        println!("cannot watch {}: {e}", backend.base());
    }
    backend.scan(&mut store, &mut Hv, &mut shared);
    let mut copier = HvCopier;
    let mut frame = vec![0u8; 2048];
    let mut next_check = 0;
    let mut watch_fired = false;
    let mut next_stats = time::now_ns() + STATS_EVERY;
    let mut uplink_printed = UplinkCounters::default();
    loop {
        let t_loop = crate::prof::now();
        evtchn::take_pending(|_| {});
        let changed = store.take_events() | core::mem::take(&mut watch_fired);
        let now = time::now_ns();
        if changed || now >= next_check {
            let t = crate::prof::now();
            backend.refresh(&mut store, &mut Hv, &mut shared);
            crate::prof::add(crate::prof::REFRESH, t, 0);
            next_check = time::now_ns() + SECOND;
        }
        let net = &mut shared.net;
        // The uplink's received frames, a bounded number per iteration.
        let mut more = false;
        if let Some(dev) = device.as_mut() {
            let t = crate::prof::now();
            let mut n = 0;
            while n < UPLINK_RX_BUDGET {
                match dev.0.receive(&mut frame) {
                    None => break,
                    Some(Ok(len)) => net.from_uplink(&frame[..len], now),
                    Some(Err(_)) => net.uplink.rx_errors += 1,
                }
                n += 1;
            }
            more |= n >= UPLINK_RX_BUDGET;
            // The buffers just given back, in one notification.
            dev.0.flush();
            crate::prof::add(crate::prof::UPLINK_RX, t, n as u64);
        }
        let round = {
            let mut capture = |_: PortId, f: &[u8]| crate::pcap::record_lines(now, f, |l| println!("pcap {l}"));
            match device.as_mut() {
                Some(d) => net.round(&mut copier, d, &mut capture, now),
                None => net.round(&mut copier, &mut NoUplink, &mut capture, now),
            }
        };
        more |= round.more;
        // The round's frames for the device, in one notification.
        if let Some(d) = device.as_mut() {
            let t = crate::prof::now();
            d.0.flush();
            crate::prof::add(crate::prof::FLUSH, t, 0);
        }
        let on_port = |d: &Device<VifPath>, port: PortId| d.path().is_some_and(|v| v.bridge_port == Some(port));
        let t = crate::prof::now();
        for port in &round.notify {
            if let Some(p) = backend.devices().iter().find(|d| on_port(d, *port)).and_then(|d| d.port()) {
                let _ = evtchn::send(p);
            }
        }
        crate::prof::add(crate::prof::NOTIFY, t, round.notify.len() as u64);
        for (port, e) in &round.broken {
            if let Some(d) = backend.devices_mut().iter_mut().find(|d| on_port(d, *port)) {
                // A frontend that died leaves a zeroed page in place of its rings (its indices
                // "move backwards"): report that as it is, not as an attack.
                let fe = xenbus::read_state(&mut store, d.info().fe_dir.as_bytes()).unwrap_or(XenbusState::Closed);
                let why = if matches!(fe, XenbusState::Closing | XenbusState::Closed | XenbusState::Unknown) {
                    format!("frontend {fe:?}")
                } else {
                    println!("{}: frontend broke a ring: {e}; disconnecting it", d.name());
                    String::from("broken ring")
                };
                d.close(&mut store, &mut Hv, &mut shared, &why);
            }
        }
        // Refusals, a few per vif (a hostile frontend must not flood the console).
        for d in backend.devices_mut() {
            let Some(c) = d.connected() else { continue };
            let Some(v) = c.path.bridge_port.and_then(|p| shared.net.vif_mut(p)) else { continue };
            for (id, r) in v.refusals.drain(..) {
                c.refusals.log(&mut Hv, c.name, format_args!("refused tx request {id:#x}: {r}"));
            }
        }
        let now = time::now_ns();
        if now >= next_stats {
            next_stats = now + STATS_EVERY;
            for d in backend.devices_mut() {
                let Some(c) = d.connected() else { continue };
                let Some(counters) = c.path.bridge_port.and_then(|p| shared.net.vif(p)).map(|v| v.counters) else {
                    continue;
                };
                if counters != c.path.printed {
                    c.path.print_counters(shared.log, counters, "");
                }
                let spoofed = c.path.bridge_port.and_then(|p| shared.net.spoofed(p)).unwrap_or(0);
                if spoofed != c.path.printed_spoofed {
                    c.path.print_spoofed(shared.log, spoofed, "");
                }
            }
            crate::prof::report(|a| println!("{a}"));
            if shared.net.uplink != uplink_printed {
                uplink_printed = shared.net.uplink;
                println!("uplink: {uplink_printed}");
            }
        }
        // Watch events that arrived while we were making store requests are queued in the
        // client and their port is already cleared: look at them now, not after a second.
        watch_fired = store.take_events();
        crate::prof::add(crate::prof::LOOP, t_loop, 0);
        if !more && !watch_fired {
            let t = crate::prof::now();
            if polling && device.is_some() {
                // No interrupts from the device: look again soon.
                time::block_until(now.saturating_add(SECOND / 1000).min(next_check));
            } else {
                time::block_until(next_check.min(next_stats).max(now + 1));
            }
            crate::prof::add(crate::prof::SLEEP, t, 0);
        }
    }
}
