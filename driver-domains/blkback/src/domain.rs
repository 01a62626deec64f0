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
use crate::device::DeviceError;
use alloc::format;

use hv_rt::store::Store;
use hv_rt::{evtchn, println, time};
use xenbus_backend::Backend;
use xenbus_backend::hv::{Hv, HvCopier};

use crate::device::{BlockDevice, RamDisk};
use crate::serve::{BUDGET, serve_round};
use crate::xenbus::Vdisk;

const SECOND: u64 = 1_000_000_000;
/// At most this many devices are served (each holds a 44 KiB buffer and a ring mapping).
const MAX_DEVICES: usize = 16;

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
    let mut backend: Backend<Vdisk> = Backend::new(hv_rt::domid(), MAX_DEVICES);
    let mut sectors = disk.capacity();
    println!("blkback serving a {what} ({sectors} sectors)");
    // New devices appear under our backend directory.
    if let Err(e) = backend.watch(&mut store) {
        println!("cannot watch {}: {e}", backend.base());
    }
    backend.scan(&mut store, &mut Hv, &mut sectors);
    let mut copier = HvCopier;
    let mut next_check = 0;
    let mut watch_fired = false;
    loop {
        evtchn::take_pending(|_| {});
        // Store: watch events mean some state changed; also re-check every second.
        let changed = store.take_events() | core::mem::take(&mut watch_fired);
        if changed || time::now_ns() >= next_check {
            backend.refresh(&mut store, &mut Hv, &mut sectors);
            next_check = time::now_ns() + SECOND;
        }
        let mut more = false;
        for d in backend.devices_mut() {
            let result = {
                let Some(c) = d.connected() else { continue };
                let Vdisk { vbd, ring, pgrants } = &mut *c.path;
                let Some(ring) = ring.as_mut() else { continue };
                let (name, refusals) = (c.name, c.refusals);
                let mut platform = Hv;
                let mut copier = pgrants.copier(&mut copier, &mut platform);
                let round = serve_round(ring, vbd, disk, &mut copier, BUDGET, |v, id| {
                    if let Some(r) = v.last_refusal {
                        refusals.log(&mut Hv, name, format_args!("request {id:#x} refused: {r}"));
                    }
                });
                round.map(|r| (r, c.port))
            };
            match result {
                Ok((round, port)) => {
                    if round.notify {
                        let _ = evtchn::send(port);
                    }
                    more |= round.more;
                }
                Err(e) => {
                    println!("{}: frontend broke the ring: {e}; disconnecting it", d.name());
                    d.close(&mut store, &mut Hv, &mut sectors, "broken ring");
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
