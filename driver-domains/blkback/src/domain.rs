//! The blkback driver domain: serves every `vbd` device the toolstack gave it, each a region of
//! one backing device (a RAM disk of `ram_mib=N` MiB for now).
//!
//! Per device (`/local/domain/<me>/backend/vbd/<fe>/<n>`): parse `params` (a bad one closes
//! that device with a message; the others go on), publish `sectors`, `sector-size`, `info`,
//! `feature-flush-cache`, `feature-barrier`, switch to InitWait; when the frontend is
//! Initialised (or already Connected: skipped states are tolerated) read `ring-ref`,
//! `event-channel`, `protocol`, map the ring, bind the port, switch to Connected. A frontend that
//! goes Closing/Closed or vanishes, or breaks its ring, is torn down (unmap, close) and may
//! reconnect by going back to Initialising. A device whose directory the toolstack removed (its
//! frontend's domain was destroyed) is torn down and forgotten (`vbd <fe>/<n>: removed`).
use crate::device::DeviceError;
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;

use hv_abi::{GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GrantCopy, GrantCopyPtr, gntst};
use hv_rt::store::{Store, XenbusState, xenbus};
use hv_rt::{evtchn, grant, println, time};
use shared_ring::wire::blkif::{Blkif, MAX_SEGMENTS_PER_REQUEST};
use shared_ring::{BackRing, PageMemory};
use xenstore::{ClientError, Errno, StoreClient};

use crate::device::{BlockDevice, RamDisk};
use crate::serve::{BUDGET, serve_round};
use crate::vbd::{GrantCopier, SegmentCopy, Vbd};

const SECOND: u64 = 1_000_000_000;
/// At most this many devices are served (each holds a 44 KiB buffer and a ring mapping).
const MAX_DEVICES: usize = 16;

/// The hypervisor's batched grant copy: one hypercall per request.
struct HvCopier;

fn batch(domid: u32, segs: &[SegmentCopy], local: u64, inbound: bool) -> Result<(), i16> {
    let mut ops = [GrantCopy::default(); MAX_SEGMENTS_PER_REQUEST];
    let n = segs.len().min(MAX_SEGMENTS_PER_REQUEST);
    for (op, s) in ops.iter_mut().zip(segs) {
        let remote =
            GrantCopyPtr { ref_or_addr: u64::from(s.gref), domid: domid as u16, offset: s.page_offset, _pad: 0 };
        let mine = GrantCopyPtr { ref_or_addr: local + s.buf_offset as u64, ..Default::default() };
        *op = if inbound {
            GrantCopy { source: remote, dest: mine, len: s.len, flags: GNTCOPY_SOURCE_GREF, ..Default::default() }
        } else {
            GrantCopy { source: mine, dest: remote, len: s.len, flags: GNTCOPY_DEST_GREF, ..Default::default() }
        };
    }
    grant::copy(&mut ops[..n]).map_err(|_| gntst::GENERAL_ERROR)?;
    match ops[..n].iter().find(|o| o.status != gntst::OKAY) {
        Some(o) => Err(o.status),
        None => Ok(()),
    }
}

impl GrantCopier for HvCopier {
    fn copy_in(&mut self, domid: u32, segs: &[SegmentCopy], buf: &mut [u8]) -> Result<(), i16> {
        // Every segment lies inside `buf` (Vbd packs them into the request's byte count).
        batch(domid, segs, buf.as_mut_ptr() as u64, true)
    }
    fn copy_out(&mut self, domid: u32, segs: &[SegmentCopy], buf: &[u8]) -> Result<(), i16> {
        batch(domid, segs, buf.as_ptr() as u64, false)
    }
}

struct Connection {
    ring: BackRing<Blkif, PageMemory>,
    handle: u32,
    port: u32,
}

struct Device {
    dir: String,
    fe_dir: String,
    name: String,
    vbd: Option<Vbd>,
    conn: Option<Connection>,
    /// Our last published state.
    state: XenbusState,
    /// Refusals logged so far (a hostile frontend must not flood the console).
    logged: u32,
}

/// Refusals logged per device; later ones are only counted.
const MAX_LOGGED: u32 = 64;

fn store_err(e: ClientError) -> String {
    format!("{e}")
}

impl Device {
    fn switch(&mut self, store: &mut Store, to: XenbusState) {
        match xenbus::switch_state(store, self.dir.as_bytes(), to) {
            Ok(_) => self.state = to,
            Err(e) => println!("{}: cannot switch to {to:?}: {e}", self.name),
        }
    }

    fn teardown(&mut self, why: &str) {
        if let Some(c) = self.conn.take() {
            let _ = evtchn::close(c.port);
            let unmapped = grant::unmap(c.handle).is_ok();
            println!(
                "{}: disconnected ({why}); ring unmapped: {}, port closed",
                self.name,
                if unmapped { "yes" } else { "no" }
            );
        }
    }

    fn connect(&mut self, store: &mut Store) -> Result<(), String> {
        let vbd = self.vbd.as_ref().ok_or("no vdisk")?;
        let fe = vbd.frontend;
        let ring_ref = store.read_u32(&format!("{}/ring-ref", self.fe_dir)).map_err(|e| format!("ring-ref: {e}"))?;
        let remote =
            store.read_u32(&format!("{}/event-channel", self.fe_dir)).map_err(|e| format!("event-channel: {e}"))?;
        match store.read_string(&format!("{}/protocol", self.fe_dir)) {
            Ok(p) if p != "x86_64-abi" => return Err(format!("unsupported protocol {p:?}")),
            _ => {}
        }
        let (handle, va) =
            grant::map(fe, ring_ref, false).map_err(|e| format!("map ring ref {ring_ref}: {}", e.name()))?;
        let port = match evtchn::bind_interdomain(fe, remote) {
            Ok(p) => p,
            Err(e) => {
                let _ = grant::unmap(handle);
                return Err(format!("bind port {remote}: {}", e.name()));
            }
        };
        let Some(base) = NonNull::new(va as *mut u8) else { return Err("null mapping".into()) };
        // SAFETY: `va` is the frontend's ring page, mapped read-write for us until we unmap it
        // (or replaced by our own scratch page if the frontend dies); only this ring touches it,
        // through PageMemory's atomic accesses.
        let memory = unsafe { PageMemory::new(base, 4096) };
        let ring = match BackRing::<Blkif, _>::attach(memory) {
            Ok(r) => r,
            Err(e) => {
                let _ = evtchn::close(port);
                let _ = grant::unmap(handle);
                return Err(format!("attach: {e:?}"));
            }
        };
        self.conn = Some(Connection { ring, handle, port });
        println!("{}: connected to domain {fe}: ring ref {ring_ref}, port {port}", self.name);
        Ok(())
    }

    /// Reacts to the frontend's state.
    fn step(&mut self, store: &mut Store) {
        if self.vbd.is_none() {
            return;
        }
        let fe = match xenbus::read_state(store, self.fe_dir.as_bytes()) {
            Ok(s) => s,
            Err(_) => XenbusState::Closed,
        };
        use XenbusState::*;
        match fe {
            Initialised | Connected if self.conn.is_none() && matches!(self.state, InitWait | Initialised) => {
                match self.connect(store) {
                    Ok(()) => self.switch(store, Connected),
                    Err(e) => {
                        println!("{}: cannot connect: {e}", self.name);
                        self.switch(store, Closing);
                        self.switch(store, Closed);
                    }
                }
            }
            Closing | Closed | Unknown if self.state != Closed => {
                self.teardown(&format!("frontend {fe:?}"));
                if self.state != Closing {
                    self.switch(store, Closing);
                }
                self.switch(store, Closed);
            }
            Initialising if self.state == Closed => {
                self.teardown("frontend restarting");
                self.switch(store, InitWait);
                println!("{}: frontend reconnecting; InitWait", self.name);
            }
            _ => {}
        }
    }
}

/// Adds the device at `dir` (frontend `fe`, index `n`): params, features, InitWait.
fn add_device(store: &mut Store, dir: String, fe: u32, n: &str, device_sectors: u64) -> Device {
    let name = format!("vbd {fe}/{n}");
    let fe_dir = store.read_string(&format!("{dir}/frontend")).unwrap_or_default();
    let mut d = Device { dir, fe_dir, name, vbd: None, conn: None, state: XenbusState::Initialising, logged: 0 };
    let fe_id = store.read_u32(&format!("{}/frontend-id", d.dir));
    let params = store.read_string(&format!("{}/params", d.dir)).unwrap_or_default();
    let region = match (fe_id, crate::params::parse(&params, device_sectors)) {
        (Ok(id), Ok(r)) if id == fe && !d.fe_dir.is_empty() => r,
        (_, Err(e)) => {
            println!("{}: bad params {params:?}: {e}; device closed", d.name);
            d.switch(store, XenbusState::Closed);
            return d;
        }
        _ => {
            println!("{}: frontend entries missing or inconsistent; device closed", d.name);
            d.switch(store, XenbusState::Closed);
            return d;
        }
    };
    let ro = region.read_only;
    let keys = [
        ("sectors", format!("{}", region.sectors)),
        ("sector-size", format!("{}", crate::SECTOR_SIZE)),
        ("info", format!("{}", if ro { 4 } else { 0 })),
        ("feature-flush-cache", String::from(if ro { "0" } else { "1" })),
        ("feature-barrier", String::from(if ro { "0" } else { "1" })),
    ];
    for (k, v) in keys {
        if let Err(e) = store.write(format!("{}/{k}", d.dir).as_bytes(), v.as_bytes()) {
            println!("{}: cannot publish {k}: {}", d.name, store_err(e));
        }
    }
    let watch = format!("{}/state", d.fe_dir);
    match store.watch(watch.as_bytes(), b"fe") {
        Ok(()) | Err(ClientError::Store(Errno::Eexist)) => {}
        Err(e) => println!("{}: cannot watch {watch}: {e}", d.name),
    }
    println!(
        "{}: {} MiB at {} MiB, {}; InitWait",
        d.name,
        region.sectors / 2048,
        region.start / 2048,
        if ro { "read-only" } else { "read-write" }
    );
    d.vbd = Some(Vbd::new(fe, region));
    d.switch(store, XenbusState::InitWait);
    d
}

/// Drops the devices whose backend directory the toolstack removed: tears down their
/// connection (ring unmapped, port closed) and stops watching their frontend, so a domain
/// created and destroyed a thousand times leaves nothing behind here. Runs before any device
/// writes its state, so nothing is written back into a removed directory.
fn prune(store: &mut Store, devices: &mut Vec<Device>) {
    devices.retain_mut(|d| {
        if !xenbus::device_removed(store, d.dir.as_bytes()) {
            return true;
        }
        d.teardown("device removed by the toolstack");
        if !d.fe_dir.is_empty() {
            let _ = store.unwatch(format!("{}/state", d.fe_dir).as_bytes(), b"fe");
        }
        println!("{}: removed", d.name);
        false
    });
}

/// Finds devices the toolstack added since the last scan and drops the ones it removed.
fn scan(store: &mut Store, base: &str, devices: &mut Vec<Device>, device_sectors: u64) {
    prune(store, devices);
    let Ok(fes) = store.directory(base.as_bytes()) else { return };
    for fe_name in fes {
        let Ok(fe_text) = core::str::from_utf8(&fe_name) else { continue };
        let Ok(fe) = fe_text.parse::<u32>() else { continue };
        let Ok(ns) = store.directory(format!("{base}/{fe}").as_bytes()) else { continue };
        for n in ns {
            let Ok(n) = core::str::from_utf8(&n) else { continue };
            let dir = format!("{base}/{fe}/{n}");
            if devices.iter().any(|d| d.dir == dir) {
                continue;
            }
            if devices.len() >= MAX_DEVICES {
                println!("vbd {fe}/{n}: too many devices (limit {MAX_DEVICES}); ignored");
                continue;
            }
            let d = add_device(store, dir, fe, n, device_sectors);
            devices.push(d);
        }
    }
}

pub fn main() {
    // The virtio-blk device the toolstack assigned to us, if any; else a RAM disk.
    match hv_rt::virtio::BlockDisk::open() {
        Ok(d) => {
            let how = if d.interrupt_driven() { "interrupts" } else { "polling" };
            let what = format!("virtio-blk disk ({how})");
            let mut disk = VirtioDisk(d);
            // `bench=START_MIB` (cargo xtask bench blk): the benchmark patterns directly on the
            // device, in a region no vdisk uses, before serving.
            if let Some(start) = hv_rt::arg("bench").and_then(|s| s.parse::<u64>().ok()) {
                let ops = hv_rt::arg_u64("bench_ops", 2000);
                crate::bench::run(&mut disk, "blk_direct", start * 2048, 8 * 2048, ops);
            }
            serve(&mut disk, &what);
        }
        Err(e) => {
            if e != hv_rt::virtio::DiskError::NoDevice {
                println!("virtio-blk device unusable ({e:?}); falling back to a RAM disk");
            }
            let ram_mib = hv_rt::arg_u64("ram_mib", 32).clamp(1, 256);
            let mut disk = RamDisk::with_mib(ram_mib);
            serve(&mut disk, &format!("RAM disk of {ram_mib} MiB"));
        }
    }
}

impl crate::bench::PatternDisk for VirtioDisk {
    fn sectors(&self) -> u64 {
        self.capacity()
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> bool {
        self.read_sectors(sector, buf).is_ok()
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> bool {
        self.write_sectors(sector, buf).is_ok()
    }
}

/// The assigned virtio-blk device: every call returns only once the device completed the
/// request (its completion interrupt arrived), so acknowledged writes are on the device.
struct VirtioDisk(hv_rt::virtio::BlockDisk);

impl BlockDevice for VirtioDisk {
    fn capacity(&self) -> u64 {
        self.0.sectors()
    }
    fn read_sectors(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        crate::device::byte_range(self.capacity(), sector, buf.len())?;
        self.0.read(sector, buf).map_err(|_| DeviceError::Io)
    }
    fn write_sectors(&mut self, sector: u64, buf: &[u8]) -> Result<(), DeviceError> {
        crate::device::byte_range(self.capacity(), sector, buf.len())?;
        self.0.write(sector, buf).map_err(|_| DeviceError::Io)
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.0.flush().map_err(|_| DeviceError::Io)
    }
}

/// Serves every vbd on `disk` until the domain is destroyed.
pub fn serve(disk: &mut impl BlockDevice, what: &str) {
    let mut store = match Store::connect() {
        Ok(s) => s,
        Err(e) => panic!("store: {e}"),
    };
    let base = format!("/local/domain/{}/backend/vbd", hv_rt::domid());
    let sectors = disk.capacity();
    println!("blkback serving a {what} ({sectors} sectors)");
    let mut devices: Vec<Device> = Vec::new();
    // New devices appear under our backend directory.
    if let Err(e) = store.watch(base.as_bytes(), b"be") {
        println!("cannot watch {base}: {e}");
    }
    scan(&mut store, &base, &mut devices, sectors);
    let mut copier = HvCopier;
    let mut next_check = 0;
    let mut watch_fired = false;
    loop {
        evtchn::take_pending(|_| {});
        // Store: watch events mean some state changed; also re-check every second.
        let changed = store.take_events() | core::mem::take(&mut watch_fired);
        if changed || time::now_ns() >= next_check {
            scan(&mut store, &base, &mut devices, sectors);
            for d in devices.iter_mut() {
                d.step(&mut store);
            }
            next_check = time::now_ns() + SECOND;
        }
        let mut more = false;
        for d in devices.iter_mut() {
            let (Some(conn), Some(vbd)) = (d.conn.as_mut(), d.vbd.as_mut()) else { continue };
            let (name, logged) = (&d.name, &mut d.logged);
            let result = serve_round(&mut conn.ring, vbd, disk, &mut copier, BUDGET, |v, id| {
                if let Some(r) = v.last_refusal
                    && *logged < MAX_LOGGED
                {
                    *logged += 1;
                    println!("{name}: request {id:#x} refused: {r}");
                }
            });
            match result {
                Ok(round) => {
                    if round.notify {
                        let _ = evtchn::send(conn.port);
                    }
                    more |= round.more;
                }
                Err(e) => {
                    println!("{}: frontend broke the ring: {e}; disconnecting it", d.name);
                    d.teardown("broken ring");
                    d.switch(&mut store, XenbusState::Closing);
                    d.switch(&mut store, XenbusState::Closed);
                }
            }
        }
        // Watch events that arrived while we were making store requests are queued in the
        // client and their port is already cleared: look at them now, not after a second.
        watch_fired = store.take_events();
        if !more && !watch_fired {
            time::block_until(time::now_ns().saturating_add(SECOND).min(next_check.max(time::now_ns() + 1)));
        }
    }
}
