//! A driver domain whose device DMAs outside the domain's memory (issue 17, items 2 and 5):
//! behind the IOMMU (the default; never in a topology with `iommu = false`) its virtio-blk
//! device reads sector 0 normally and writes and reads back a marker in sector 1, proving it
//! works through the IOMMU; then, `delay_ms` after this domain started, it is pointed at one
//! `target` outside the domain's memory:
//!
//! - `hv-write` (default): the device reads sector 1 "into" the hypervisor's image at 1 MiB;
//! - `hv-read`: the device writes sector 1 "from" the hypervisor's image (the test then checks
//!   that sector of the host's image holds none of the hypervisor's bytes: QEMU completes the
//!   request with the zeros its blocked read gave the device);
//! - `peer`: the device reads sector 1 into the machine address 2 MiB below this domain's RAM,
//!   which is another domain's RAM when one was created just before (the test checks that);
//! - `unowned`: the device reads sector 1 into [`UNOWNED`], memory no domain owns.
//!
//! A write that landed would carry the marker. The remapping hardware must refuse every one
//! (the domain's device addresses map only its own RAM), the hypervisor must report the fault
//! with the device, the direction and the address and end this domain, and everything else
//! must carry on. Without an IOMMU these accesses would land.
#![no_std]
#![no_main]

use core::sync::atomic::Ordering;
use hv_rt::println;
use hv_rt::time;
use hv_rt::virtio::{HvConfigAccess, PlatformTransport};
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::PciRoot;

hv_rt::main!(main);

#[path = "../redirecting_hal.rs"]
mod redirecting_hal;
use redirecting_hal::{AT_RUN_TIME, REDIRECT, REDIRECT_TO, RedirectingHal, virtio_blk_function};

/// The HAL that hands the device the chosen target for the redirected buffer.
type Redirecting = RedirectingHal<AT_RUN_TIME>;

/// The hypervisor's image (text at 1 MiB): the worst place a device could reach.
const HV_IMAGE: u64 = 0x10_0000;
/// 192 MiB: inside the scenario's 256 MiB of machine memory, far above every domain's RAM
/// (RAM is allocated first-fit from low addresses; the test checks no domain holds it).
const UNOWNED: u64 = 0x0c00_0000;
/// How far below our own RAM the `peer` target lies.
const PEER_BELOW: u64 = 2 << 20;
/// The sector the marker goes to and the attack moves.
const SECTOR: usize = 1;
/// The marker, repeated over the sector (tests/tests/hardening.rs builds the same sector).
const MARKER: &[u8] = b"dma-escaper marker ";

#[derive(Clone, Copy)]
enum Target {
    HvWrite,
    HvRead,
    Peer,
    Unowned,
}

impl Target {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "hv-write" => Self::HvWrite,
            "hv-read" => Self::HvRead,
            "peer" => Self::Peer,
            "unowned" => Self::Unowned,
            _ => return None,
        })
    }

    /// The machine address the device is given.
    fn address(self) -> Option<u64> {
        match self {
            Self::HvWrite | Self::HvRead => Some(HV_IMAGE),
            Self::Peer => hv_rt::start_info().ram_phys.checked_sub(PEER_BELOW),
            Self::Unowned => Some(UNOWNED),
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::HvWrite | Self::HvRead => "the hypervisor's image",
            Self::Peer => "another domain's RAM, 2 MiB below mine",
            Self::Unowned => "memory no domain owns",
        }
    }
}

fn marker() -> [u8; 512] {
    let mut s = [0u8; 512];
    for (b, m) in s.iter_mut().zip(MARKER.iter().cycle()) {
        *b = *m;
    }
    s
}

fn main() {
    let start = time::now_ns();
    let name = hv_rt::arg("target").unwrap_or("hv-write");
    let Some(target) = Target::parse(name) else {
        return println!("unknown target {name:?} (hv-write, hv-read, peer, unowned)");
    };
    let Some(addr) = target.address() else { return println!("no address for target {name}") };
    let Some(df) = virtio_blk_function() else { return println!("no virtio-blk device assigned") };
    let mut root = PciRoot::new(HvConfigAccess);
    let Ok(t) = PciTransport::new::<Redirecting, _>(&mut root, df) else { return println!("virtio transport failed") };
    let Ok(mut blk) = VirtIOBlk::<Redirecting, _>::new(PlatformTransport(t)) else {
        return println!("virtio-blk failed");
    };
    let mut buf = [0u8; 512];
    match blk.read_blocks(0, &mut buf) {
        Ok(()) => println!("read sector 0 into my own memory through the IOMMU"),
        Err(e) => return println!("reading sector 0: {e:?}"),
    }
    let marker = marker();
    if let Err(e) = blk.write_blocks(SECTOR, &marker) {
        return println!("writing the marker: {e:?}");
    }
    match blk.read_blocks(SECTOR, &mut buf) {
        Ok(()) if buf == marker => println!("wrote the marker to sector {SECTOR} and read it back through the IOMMU"),
        r => return println!("reading the marker back: {r:?}, matches: {}", buf == marker),
    }
    let si = hv_rt::start_info();
    println!(
        "target {name} at {addr:#x} ({}); my RAM {:#x}-{:#x}",
        target.what(),
        si.ram_phys,
        si.ram_phys + si.memory_bytes - 1
    );
    time::sleep_ns((start + hv_rt::arg_u64("delay_ms", 0) * 1_000_000).saturating_sub(time::now_ns()));
    REDIRECT_TO.store(addr, Ordering::Relaxed);
    let r = if let Target::HvRead = target {
        println!("now writing sector {SECTOR} from {addr:#x}");
        REDIRECT.store(marker.as_ptr() as usize, Ordering::Relaxed);
        blk.write_blocks(SECTOR, &marker)
    } else {
        println!("now reading sector {SECTOR} into {addr:#x}");
        REDIRECT.store(buf.as_mut_ptr() as usize, Ordering::Relaxed);
        blk.read_blocks(SECTOR, &mut buf)
    };
    REDIRECT.store(0, Ordering::Relaxed);
    // The hypervisor ends this domain at its next fault poll; if it does not, say so.
    time::sleep_ms(500);
    println!("device DMA outside my memory done ({r:?}); this domain is still running");
}
