//! The blkback driver domain: serves every `vbd` device the toolstack gave it, each a region of
//! one backing device (a RAM disk of `ram_mib=N` MiB for now).
//!
//! Per device (`/local/domain/<me>/backend/vbd/<fe>/<n>`): parse `params` (a bad one closes
//! that device with a message; the others go on), publish `sectors`, `sector-size`, `info`,
//! `feature-flush-cache`, `feature-barrier`, switch to InitWait; when the frontend is
//! Initialised (or already Connected: skipped states are tolerated) read `ring-ref`,
//! `event-channel`, `protocol`, map the ring, bind the port, switch to Connected. A frontend that
//! goes Closing is torn down (unmap, close) and answered with Closing, Closed or vanished with
//! Closed; one that breaks its ring is torn down and closed; either may reconnect by going back
//! to Initialising. A device whose directory the toolstack removed (its frontend's domain was
//! destroyed) is torn down and forgotten (`vbd <fe>/<n>: removed`). The handshake is the
//! `xenbus-backend` skeleton's; this file is the vbd's data path and the domain's loop.
use alloc::format;

use hv_rt::store::Store;
use hv_rt::{evtchn, println, time};
use xenbus_backend::Backend;
use xenbus_backend::hv::{Hv, HvCopier};

use hv_rt::virtio::DiskError;

use crate::device::{BlockDevice, BufId, DeviceError, Io, Pool, RamDisk};
use crate::queue::Completions;
use crate::serve::{BUDGET, Pass, serve_round};
use crate::vbd::MAX_REQUEST_BYTES;
use crate::xenbus::{Backing, Vdisk};

const SECOND: u64 = 1_000_000_000;
/// At most this many devices are served (each holds a ring mapping, its queue and up to 56
/// persistently mapped pages).
const MAX_DEVICES: usize = 16;

pub fn main() {
    // The virtio-blk device the toolstack assigned to us, if any; else a RAM disk.
    match hv_rt::virtio::BlockDisk::open() {
        Ok(d) => {
            let how = if d.interrupt_driven() { "interrupts" } else { "polling" };
            let what = format!("virtio-blk disk ({how})");
            let mut disk = VirtioDisk::new(d);
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
        self.disk.read(sector, buf).is_ok()
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> bool {
        self.disk.write(sector, buf).is_ok()
    }
}

/// The assigned virtio-blk device as a queue: up to [`QUEUE_DEPTH`] requests in flight, each in
/// one of the disk's own slots; a request is reported finished only once its completion
/// arrived, so acknowledged writes are on the device. The pool's bookkeeping checks every move.
///
/// While requests are in flight and the backend has nothing else to do it polls the used ring
/// with the device's interrupts off, yielding the CPU between looks ([`BlockDevice::idle`]):
/// on one CPU every completion interrupt that arrives while a guest runs is a VM exit (a full
/// TLB flush under emulation), and the guest that waits for the data usually halts anyway, so
/// the poll costs nobody anything. A device that has not finished anything for [`POLL_NS`]
/// gets its interrupts back and the domain blocks on them.
struct VirtioDisk {
    disk: hv_rt::virtio::BlockDisk,
    pool: Pool,
    /// Since when the domain polls without a request having finished.
    polling_since: Option<u64>,
}

/// How long blkback polls a device that finishes nothing before it waits for its interrupt.
const POLL_NS: u64 = 5_000_000;

/// Requests blkback keeps in flight on a virtio-blk device (the virtqueue's size), each with a
/// buffer of one whole request (128 KiB): 2 MiB of the domain's heap.
const QUEUE_DEPTH: usize = hv_rt::virtio::BlockDisk::MAX_DEPTH;
/// Heap kept free when the request buffers are allocated (vdisks, rings, store client).
const HEAP_RESERVE: usize = 2 << 20;
/// How long one [`BlockDevice::wait`] blocks for the device's interrupt.
const WAIT_NS: u64 = SECOND;

impl VirtioDisk {
    fn new(mut disk: hv_rt::virtio::BlockDisk) -> Self {
        let depth = disk.with_slots(QUEUE_DEPTH, MAX_REQUEST_BYTES, HEAP_RESERVE);
        if depth < QUEUE_DEPTH {
            println!(
                "virtio-blk queue: {depth} of {QUEUE_DEPTH} request buffers fit the heap (give the domain more memory)"
            );
        }
        Self { disk, pool: Pool::new(depth), polling_since: None }
    }
}

impl BlockDevice for VirtioDisk {
    fn capacity(&self) -> u64 {
        self.disk.sectors()
    }
    fn depth(&self) -> usize {
        self.pool.depth()
    }
    fn take(&mut self) -> Option<BufId> {
        self.pool.take()
    }
    fn buffer(&mut self, id: BufId) -> Option<&mut [u8]> {
        if !self.pool.is_held(id) {
            return None;
        }
        self.disk.slot_buffer(usize::from(id.0))
    }
    fn start(&mut self, id: BufId, io: Io, sector: u64, len: usize) -> Result<(), DeviceError> {
        if !self.pool.is_held(id) {
            return Err(DeviceError::NotHeld);
        }
        crate::device::byte_range(self.capacity(), sector, len)?;
        self.disk.start(usize::from(id.0), io == Io::Write, sector, len).map_err(|e| match e {
            DiskError::Busy => DeviceError::Busy,
            DiskError::BadLength => DeviceError::OutOfRange,
            _ => DeviceError::Io,
        })?;
        self.pool.start(id)
    }
    fn finished(&mut self) -> Option<(BufId, Result<(), DeviceError>)> {
        let (i, result) = self.disk.poll()?;
        self.polling_since = None;
        let id = BufId(i as u16);
        // In flight since `start`: the slot and the pool moved together.
        let _ = self.pool.finish(id);
        Some((id, result.map_err(|_| DeviceError::Io)))
    }
    fn give_back(&mut self, id: BufId) {
        self.pool.give_back(id);
    }
    fn in_flight(&self) -> usize {
        self.pool.in_flight()
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        self.disk.flush().map_err(|_| DeviceError::Io)
    }
    fn wait(&mut self) {
        self.disk.set_interrupts(true);
        self.disk.wait_interrupt(WAIT_NS);
    }
    fn idle(&mut self) {
        let now = time::now_ns();
        let since = *self.polling_since.get_or_insert(now);
        if now.saturating_sub(since) < POLL_NS {
            self.disk.set_interrupts(false);
            hv_rt::yield_now();
        } else {
            self.wait();
        }
    }
}

/// Serves every vbd on `disk` until the domain is destroyed.
pub fn serve(disk: &mut impl BlockDevice, what: &str) {
    let mut store = match Store::connect() {
        Ok(s) => s,
        Err(e) => panic!("store: {e}"),
    };
    let mut backend: Backend<Vdisk> = Backend::new(hv_rt::domid(), MAX_DEVICES);
    // Persistent grants cost more than they save here (docs/blk.md § Persistent grants): off
    // unless the domain's arguments say `persistent=1`.
    let persistent = hv_rt::arg_u64("persistent", 0) == 1;
    let mut sectors = Backing { sectors: disk.capacity(), persistent };
    println!("blkback serving a {what} ({} sectors)", sectors.sectors);
    if persistent {
        println!("persistent grants offered");
    }
    // New devices appear under our backend directory.
    if let Err(e) = backend.watch(&mut store) {
        println!("cannot watch {}: {e}", backend.base());
    }
    backend.scan(&mut store, &mut Hv, &mut sectors);
    let mut copier = HvCopier;
    let mut done = Completions::new(disk.depth());
    let mut next_check = 0;
    let mut watch_fired = false;
    // A barrier or flush waits for the device to drain: nobody starts new requests meanwhile.
    let mut draining = false;
    // Vdisks that had requests queued after their last round: more than one means they share.
    let mut busy = 0usize;
    loop {
        evtchn::take_pending(|_| {});
        // Store: watch events mean some state changed; also re-check every second.
        let changed = store.take_events() | core::mem::take(&mut watch_fired);
        if changed || time::now_ns() >= next_check {
            backend.refresh(&mut store, &mut Hv, &mut sectors);
            next_check = time::now_ns() + SECOND;
        }
        let mut more = false;
        let pass = Pass { budget: BUDGET, hold_starts: core::mem::take(&mut draining), contended: busy > 1 };
        busy = 0;
        for d in backend.devices_mut() {
            let result = {
                let Some(c) = d.connected() else { continue };
                let Vdisk { vbd, ring, pgrants, .. } = &mut *c.path;
                let Some(ring) = ring.as_mut() else { continue };
                let (name, refusals) = (c.name, c.refusals);
                let mut platform = Hv;
                let mut copier = pgrants.copier(&mut copier, &mut platform);
                let round = serve_round(ring, vbd, disk, &mut done, &mut copier, pass, |v, id| {
                    if let Some(r) = v.last_refusal {
                        refusals.log(&mut Hv, name, format_args!("request {id:#x} refused: {r}"));
                    }
                });
                round.map(|r| (r, c.port, vbd.queue.waiting(), !vbd.queue.is_empty()))
            };
            match result {
                Ok((round, port, waiting, queued)) => {
                    busy += usize::from(queued);
                    if round.notify {
                        let _ = evtchn::send(port);
                    }
                    more |= round.more;
                    draining |= round.draining;
                    // Requests wait for a buffer another vdisk gave back after this one's round.
                    more |= waiting && !round.draining && disk.in_flight() < disk.depth();
                }
                Err(e) => {
                    println!("{}: frontend broke the ring: {e}; disconnecting it", d.name());
                    d.close(&mut store, &mut Hv, &mut sectors, "broken ring");
                }
            }
        }
        // Buffers of vdisks that went away while the device still used them.
        if done.unclaimed() {
            done.sweep(disk, backend.devices().iter().filter_map(|d| d.path()).map(|v| &v.vbd.queue));
        }
        // Watch events that arrived while we were making store requests are queued in the
        // client and their port is already cleared: look at them now, not after a second.
        watch_fired = store.take_events();
        if !more && !watch_fired {
            // Requests in flight: the device polls or waits for its interrupt (an event,
            // which also ends the block).
            if disk.in_flight() > 0 {
                disk.idle();
            } else {
                time::block_until(time::now_ns().saturating_add(SECOND).min(next_check.max(time::now_ns() + 1)));
            }
        }
    }
}
