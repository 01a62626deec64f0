//! The netback driver domain: switches frames between the assigned virtio-net device (the
//! uplink; without one, netback switches among the vifs only) and every `vif` device the
//! toolstack gave it.
//!
//! Per device (`/local/domain/<me>/backend/vif/<fe>/<n>`): read `mac` and `params` (`pcap=1`),
//! publish `feature-rx-copy` = 1 and the other features as 0, switch to InitWait; when the
//! frontend is Initialised (or already Connected) read `tx-ring-ref`, `rx-ring-ref`,
//! `event-channel`, map both rings, bind the port, switch to Connected. A frontend that goes
//! Closing/Closed or vanishes, or breaks a ring, is torn down (rings unmapped, port closed, its
//! MACs forgotten by the switch) and may reconnect by going back to Initialising.
//!
//! Console lines (stable; tests grep them):
//! * `netback: uplink virtio-net mac 52:54:00:12:34:56 (interrupts|polling)` or
//!   `netback: no uplink (no virtio-net device); switching among vifs only`
//! * `vif <fe>/<n>: mac <mac>, pcap on|off; InitWait`
//! * `vif <fe>/<n>: connected to domain <fe>: tx ring ref <r>, rx ring ref <r>, port <p>`
//! * `vif <fe>/<n>: tx <n> pkts <n> B, tx errors <n>, rx <n> pkts <n> B, rx drops <n>` every
//!   few seconds while they change, and once more with ` (final)` appended on teardown
//! * `vif <fe>/<n>: disconnected (<why>); rings unmapped: yes|no, port closed`
//! * `vif <fe>/<n>: removed` once the toolstack removed its directory (the frontend's domain
//!   was destroyed): torn down, its frontend no longer watched, the vif forgotten
//! * `uplink: rx <n> pkts <n> B, rx errors <n>, tx <n> pkts <n> B, tx drops <n>` when it changed
//! * `pcap <hex>` (see [`crate::pcap`])
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;

use hv_abi::{GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GrantCopy, GrantCopyPtr, gntst};
use hv_rt::store::{Store, XenbusState, xenbus};
use hv_rt::virtio::NetDevice;
use hv_rt::{evtchn, grant, println, time};
use shared_ring::{BackRing, NetifRx, NetifTx, PageMemory};
use xenstore::{ClientError, Errno, StoreClient};

use crate::bridge::{Bridge, Uplink, UplinkCounters};
use crate::switch::{Mac, MacDisplay, PortId, parse_mac};
use crate::vif::{Counters, GrantCopier, OutCopy, Seg, Vif};

const SECOND: u64 = 1_000_000_000;
/// At most this many vifs are served.
const MAX_VIFS: usize = 32;
/// Refused tx packets logged per vif; later ones are only counted.
const MAX_LOGGED: u32 = 16;
/// Counters are printed at most this often (when they changed).
const STATS_EVERY: u64 = 5 * SECOND;
/// Frames taken from the device per loop iteration.
const UPLINK_RX_BUDGET: usize = 64;
/// How long a frame for the uplink may wait for a free transmit buffer.
const UPLINK_TX_WAIT_NS: u64 = 2_000_000;
/// Grant copy elements per hypercall batch built on the stack.
const CHUNK: usize = 64;

/// The hypervisor's batched grant copy.
struct HvCopier;

fn run_batch(ops: &mut [GrantCopy], status: &mut [i16]) {
    match grant::copy(ops) {
        Ok(()) => {
            for (s, o) in status.iter_mut().zip(ops.iter()) {
                *s = o.status;
            }
        }
        Err(_) => status.iter_mut().for_each(|s| *s = gntst::GENERAL_ERROR),
    }
}

fn remote(domid: u32, gref: u32, offset: u16) -> GrantCopyPtr {
    GrantCopyPtr { ref_or_addr: u64::from(gref), domid: domid as u16, offset, _pad: 0 }
}

fn local(addr: u64) -> GrantCopyPtr {
    GrantCopyPtr { ref_or_addr: addr, ..Default::default() }
}

impl GrantCopier for HvCopier {
    fn copy_in(&mut self, domid: u32, segs: &[Seg], buf: &mut [u8], status: &mut [i16]) {
        let base = buf.as_mut_ptr() as u64;
        for (segs, status) in segs.chunks(CHUNK).zip(status.chunks_mut(CHUNK)) {
            let mut ops = [GrantCopy::default(); CHUNK];
            for (op, s) in ops.iter_mut().zip(segs) {
                // Never let a copy land outside `buf` (the caller guarantees it; checked anyway).
                let inside = s.buf_offset.checked_add(usize::from(s.len)).is_some_and(|end| end <= buf.len());
                let len = if inside { s.len } else { 0 };
                *op = GrantCopy {
                    source: remote(domid, s.gref, s.offset),
                    dest: local(base + s.buf_offset as u64),
                    len,
                    flags: GNTCOPY_SOURCE_GREF,
                    ..Default::default()
                };
            }
            let n = segs.len();
            run_batch(&mut ops[..n], status);
            for (st, s) in status.iter_mut().zip(segs) {
                if s.buf_offset.checked_add(usize::from(s.len)).is_none_or(|end| end > buf.len()) {
                    *st = gntst::BAD_COPY_ARG;
                }
            }
        }
    }

    fn copy_out(&mut self, domid: u32, copies: &[OutCopy<'_>], status: &mut [i16]) {
        for (copies, status) in copies.chunks(CHUNK).zip(status.chunks_mut(CHUNK)) {
            let mut ops = [GrantCopy::default(); CHUNK];
            for (op, c) in ops.iter_mut().zip(copies) {
                *op = GrantCopy {
                    source: local(c.data.as_ptr() as u64),
                    dest: remote(domid, c.gref, c.offset),
                    len: c.data.len().min(4096) as u16,
                    flags: GNTCOPY_DEST_GREF,
                    ..Default::default()
                };
            }
            let n = copies.len();
            run_batch(&mut ops[..n], status);
        }
    }
}

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

struct Connection {
    tx_handle: u32,
    rx_handle: u32,
    port: u32,
    bridge_port: PortId,
}

struct Device {
    dir: String,
    fe_dir: String,
    name: String,
    fe: u32,
    /// The MAC the toolstack assigned (the only source address the vif may send from).
    mac: Option<Mac>,
    /// The frontend entries are consistent (else the device is closed for good).
    usable: bool,
    capture: bool,
    conn: Option<Connection>,
    /// Our last published state.
    state: XenbusState,
    logged: u32,
    printed: Counters,
}

type Net = Bridge<PageMemory>;

struct Pcap {
    header_written: bool,
}

impl Pcap {
    fn start(&mut self) {
        if !self.header_written {
            self.header_written = true;
            crate::pcap::hex_lines(&[&crate::pcap::global_header()], |l| println!("pcap {l}"));
        }
    }
}

impl Device {
    fn switch(&mut self, store: &mut Store, to: XenbusState) {
        match xenbus::switch_state(store, self.dir.as_bytes(), to) {
            Ok(_) => self.state = to,
            Err(e) => println!("{}: cannot switch to {to:?}: {e}", self.name),
        }
    }

    fn print_counters(&mut self, c: Counters, suffix: &str) {
        println!("{}: {c}{suffix}", self.name);
        self.printed = c;
    }

    fn teardown(&mut self, net: &mut Net, why: &str) {
        let Some(c) = self.conn.take() else { return };
        // The rings go first: they point into the mappings.
        let counters = net.remove_vif(c.bridge_port).map(|v| v.counters);
        let _ = evtchn::close(c.port);
        let unmapped = grant::unmap(c.tx_handle).is_ok() & grant::unmap(c.rx_handle).is_ok();
        println!(
            "{}: disconnected ({why}); rings unmapped: {}, port closed",
            self.name,
            if unmapped { "yes" } else { "no" }
        );
        if let Some(counters) = counters {
            self.print_counters(counters, " (final)");
        }
    }

    fn connect(&mut self, store: &mut Store, net: &mut Net, pcap: &mut Pcap) -> Result<(), String> {
        let fe = self.fe;
        let read = |store: &mut Store, key: &str| {
            store.read_u32(&format!("{}/{key}", self.fe_dir)).map_err(|e| format!("{key}: {e}"))
        };
        let tx_ref = read(store, "tx-ring-ref")?;
        let rx_ref = read(store, "rx-ring-ref")?;
        let remote_port = read(store, "event-channel")?;
        // We only copy into the frontend's buffers (no page flipping).
        if let Ok(v) = store.read_string(&format!("{}/request-rx-copy", self.fe_dir))
            && v.trim() != "1"
        {
            return Err(format!("request-rx-copy = {v:?} (only rx-copy is supported)"));
        }
        let (tx_handle, tx_va) =
            grant::map(fe, tx_ref, false).map_err(|e| format!("map tx ring {tx_ref}: {}", e.name()))?;
        let (rx_handle, rx_va) = match grant::map(fe, rx_ref, false) {
            Ok(m) => m,
            Err(e) => {
                let _ = grant::unmap(tx_handle);
                return Err(format!("map rx ring {rx_ref}: {}", e.name()));
            }
        };
        let undo = |port: Option<u32>| {
            if let Some(p) = port {
                let _ = evtchn::close(p);
            }
            let _ = grant::unmap(tx_handle);
            let _ = grant::unmap(rx_handle);
        };
        let port = match evtchn::bind_interdomain(fe, remote_port) {
            Ok(p) => p,
            Err(e) => {
                undo(None);
                return Err(format!("bind port {remote_port}: {}", e.name()));
            }
        };
        let (Some(tx_base), Some(rx_base)) = (NonNull::new(tx_va as *mut u8), NonNull::new(rx_va as *mut u8)) else {
            undo(Some(port));
            return Err("null mapping".into());
        };
        // SAFETY: each address is one of the frontend's ring pages, mapped read-write for us
        // until we unmap it (in `teardown`, after the ring is dropped), or replaced by a scratch
        // page if the frontend dies; only its ring touches it, through PageMemory's atomics.
        let (tx_mem, rx_mem) = unsafe { (PageMemory::new(tx_base, 4096), PageMemory::new(rx_base, 4096)) };
        let rings =
            BackRing::<NetifTx, _>::attach(tx_mem).and_then(|tx| Ok((tx, BackRing::<NetifRx, _>::attach(rx_mem)?)));
        let (tx, rx) = match rings {
            Ok(r) => r,
            Err(e) => {
                undo(Some(port));
                return Err(format!("attach: {e:?}"));
            }
        };
        let mut vif = Vif::new(fe, tx, rx);
        vif.capture = self.capture;
        if self.capture {
            pcap.start();
        }
        let bridge_port = net.add_vif(vif, self.mac);
        self.conn = Some(Connection { tx_handle, rx_handle, port, bridge_port });
        self.printed = Counters::default();
        println!("{}: connected to domain {fe}: tx ring ref {tx_ref}, rx ring ref {rx_ref}, port {port}", self.name);
        Ok(())
    }

    /// Reacts to the frontend's state.
    fn step(&mut self, store: &mut Store, net: &mut Net, pcap: &mut Pcap) {
        if !self.usable {
            return;
        }
        let fe = xenbus::read_state(store, self.fe_dir.as_bytes()).unwrap_or(XenbusState::Closed);
        use XenbusState::*;
        match fe {
            Initialised | Connected if self.conn.is_none() && matches!(self.state, InitWait | Initialised) => {
                match self.connect(store, net, pcap) {
                    Ok(()) => self.switch(store, Connected),
                    Err(e) => {
                        println!("{}: cannot connect: {e}", self.name);
                        self.switch(store, Closing);
                        self.switch(store, Closed);
                    }
                }
            }
            Closing | Closed | Unknown if self.state != Closed => {
                self.teardown(net, &format!("frontend {fe:?}"));
                if self.state != Closing {
                    self.switch(store, Closing);
                }
                self.switch(store, Closed);
            }
            Initialising if self.state == Closed => {
                self.teardown(net, "frontend restarting");
                self.switch(store, InitWait);
                println!("{}: frontend reconnecting; InitWait", self.name);
            }
            _ => {}
        }
    }
}

/// Adds the device at `dir` (frontend `fe`, index `n`): features, InitWait.
fn add_device(store: &mut Store, dir: String, fe: u32, n: &str) -> Device {
    let name = format!("vif {fe}/{n}");
    let fe_dir = store.read_string(&format!("{dir}/frontend")).unwrap_or_default();
    let params = store.read_string(&format!("{dir}/params")).unwrap_or_default();
    let mut d = Device {
        dir,
        fe_dir,
        name,
        fe,
        mac: None,
        usable: false,
        capture: crate::wants_capture(&params),
        conn: None,
        state: XenbusState::Initialising,
        logged: 0,
        printed: Counters::default(),
    };
    let fe_id = store.read_u32(&format!("{}/frontend-id", d.dir));
    if fe_id.ok() != Some(fe) || d.fe_dir.is_empty() {
        println!("{}: frontend entries missing or inconsistent; device closed", d.name);
        d.switch(store, XenbusState::Closed);
        return d;
    }
    let mac: Option<Mac> = store.read_string(&format!("{}/mac", d.dir)).ok().and_then(|m| parse_mac(&m));
    d.mac = mac;
    let keys = [
        ("feature-rx-copy", "1"),
        ("feature-rx-flip", "0"),
        ("feature-sg", "0"),
        ("feature-gso-tcpv4", "0"),
        ("feature-split-event-channels", "0"),
    ];
    for (k, v) in keys {
        if let Err(e) = store.write(format!("{}/{k}", d.dir).as_bytes(), v.as_bytes()) {
            println!("{}: cannot publish {k}: {e}", d.name);
        }
    }
    let watch = format!("{}/state", d.fe_dir);
    match store.watch(watch.as_bytes(), b"fe") {
        Ok(()) | Err(ClientError::Store(Errno::Eexist)) => {}
        Err(e) => println!("{}: cannot watch {watch}: {e}", d.name),
    }
    let mac_text = match &mac {
        Some(m) => format!("{}", MacDisplay(m)),
        None => String::from("unknown"),
    };
    println!("{}: mac {mac_text}, pcap {}; InitWait", d.name, if d.capture { "on" } else { "off" });
    d.usable = true;
    d.switch(store, XenbusState::InitWait);
    d
}

/// Drops the vifs whose backend directory the toolstack removed: tears down their connection
/// (rings unmapped, port closed, MACs forgotten) and stops watching their frontend, so a
/// domain created and destroyed a thousand times leaves nothing behind here. Runs before any
/// device writes its state, so nothing is written back into a removed directory.
fn prune(store: &mut Store, devices: &mut Vec<Device>, net: &mut Net) {
    devices.retain_mut(|d| {
        if !xenbus::device_removed(store, d.dir.as_bytes()) {
            return true;
        }
        d.teardown(net, "device removed by the toolstack");
        if !d.fe_dir.is_empty() {
            let _ = store.unwatch(format!("{}/state", d.fe_dir).as_bytes(), b"fe");
        }
        println!("{}: removed", d.name);
        false
    });
}

/// Finds devices the toolstack added since the last scan and drops the ones it removed.
fn scan(store: &mut Store, base: &str, devices: &mut Vec<Device>, net: &mut Net) {
    prune(store, devices, net);
    let Ok(fes) = store.directory(base.as_bytes()) else { return };
    for fe_name in fes {
        let Some(fe) = core::str::from_utf8(&fe_name).ok().and_then(|t| t.parse::<u32>().ok()) else { continue };
        let Ok(ns) = store.directory(format!("{base}/{fe}").as_bytes()) else { continue };
        for n in ns {
            let Ok(n) = core::str::from_utf8(&n) else { continue };
            let dir = format!("{base}/{fe}/{n}");
            if devices.iter().any(|d| d.dir == dir) {
                continue;
            }
            if devices.len() >= MAX_VIFS {
                println!("vif {fe}/{n}: too many devices (limit {MAX_VIFS}); ignored");
                continue;
            }
            devices.push(add_device(store, dir, fe, n));
        }
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
    let base = format!("/local/domain/{}/backend/vif", hv_rt::domid());
    let mut net: Net = Bridge::new(device.is_some());
    let polling = device.as_ref().is_some_and(|d| !d.0.interrupt_driven());
    let mut devices: Vec<Device> = Vec::new();
    let mut pcap = Pcap { header_written: false };
    if let Err(e) = store.watch(base.as_bytes(), b"be") {
        println!("cannot watch {base}: {e}");
    }
    scan(&mut store, &base, &mut devices, &mut net);
    let mut copier = HvCopier;
    let mut frame = alloc::vec![0u8; 2048];
    let mut next_check = 0;
    let mut watch_fired = false;
    let mut next_stats = time::now_ns() + STATS_EVERY;
    let mut uplink_printed = UplinkCounters::default();
    loop {
        evtchn::take_pending(|_| {});
        let changed = store.take_events() | core::mem::take(&mut watch_fired);
        let now = time::now_ns();
        if changed || now >= next_check {
            scan(&mut store, &base, &mut devices, &mut net);
            for d in devices.iter_mut() {
                d.step(&mut store, &mut net, &mut pcap);
            }
            next_check = time::now_ns() + SECOND;
        }
        // The uplink's received frames, a bounded number per iteration.
        let mut more = false;
        if let Some(dev) = device.as_mut() {
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
        }
        let round = {
            let mut capture = |_: PortId, f: &[u8]| crate::pcap::record_lines(now, f, |l| println!("pcap {l}"));
            match device.as_mut() {
                Some(d) => net.round(&mut copier, d, &mut capture, now),
                None => net.round(&mut copier, &mut NoUplink, &mut capture, now),
            }
        };
        more |= round.more;
        for port in &round.notify {
            if let Some(c) = devices.iter().filter_map(|d| d.conn.as_ref()).find(|c| c.bridge_port == *port) {
                let _ = evtchn::send(c.port);
            }
        }
        for (port, e) in &round.broken {
            if let Some(d) = devices.iter_mut().find(|d| d.conn.as_ref().is_some_and(|c| c.bridge_port == *port)) {
                // A frontend that died leaves a zeroed page in place of its rings (its indices
                // "move backwards"): report that as it is, not as an attack.
                let fe = xenbus::read_state(&mut store, d.fe_dir.as_bytes()).unwrap_or(XenbusState::Closed);
                if matches!(fe, XenbusState::Closing | XenbusState::Closed | XenbusState::Unknown) {
                    d.teardown(&mut net, &format!("frontend {fe:?}"));
                } else {
                    println!("{}: frontend broke a ring: {e}; disconnecting it", d.name);
                    d.teardown(&mut net, "broken ring");
                }
                d.switch(&mut store, XenbusState::Closing);
                d.switch(&mut store, XenbusState::Closed);
            }
        }
        // Refusals, a few per vif (a hostile frontend must not flood the console).
        for d in devices.iter_mut() {
            let Some(c) = d.conn.as_ref() else { continue };
            let Some(v) = net.vif_mut(c.bridge_port) else { continue };
            for (id, r) in v.refusals.drain(..) {
                if d.logged < MAX_LOGGED {
                    d.logged += 1;
                    println!("{}: refused tx request {id:#x}: {r}", d.name);
                    if d.logged == MAX_LOGGED {
                        println!("{}: further refusals are only counted", d.name);
                    }
                }
            }
        }
        let now = time::now_ns();
        if now >= next_stats {
            next_stats = now + STATS_EVERY;
            for d in devices.iter_mut() {
                let Some(c) = d.conn.as_ref() else { continue };
                let Some(counters) = net.vif(c.bridge_port).map(|v| v.counters) else { continue };
                if counters != d.printed {
                    d.print_counters(counters, "");
                }
            }
            if net.uplink != uplink_printed {
                uplink_printed = net.uplink;
                println!("uplink: {uplink_printed}");
            }
        }
        // Watch events that arrived while we were making store requests are queued in the
        // client and their port is already cleared: look at them now, not after a second.
        watch_fired = store.take_events();
        if !more && !watch_fired {
            if polling && device.is_some() {
                // No interrupts from the device: look again soon.
                time::block_until(now.saturating_add(SECOND / 1000).min(next_check));
            } else {
                time::block_until(next_check.min(next_stats).max(now + 1));
            }
        }
    }
}
