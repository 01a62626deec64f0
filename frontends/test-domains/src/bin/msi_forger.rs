//! A driver domain that makes its device raise CPU-exception vectors (issue 13, finding 5).
//! There is no IOMMU yet, so a driver domain's device can DMA anywhere; a DMA write to the
//! local APIC's MSI window (0xfee0_0000) is an interrupt with the written word as its vector.
//! This domain writes a sector whose first words are 0x11 and 0x15 (#AC and #CP: exceptions
//! that push an error code, which an interrupt does not), then has virtio-blk read that sector
//! "into" 0xfee0_0000. The hypervisor must log the stray vectors and carry on: no domain is
//! destroyed for them and the hypervisor does not misread the interrupt frame.
//!
//! The rest of the sector lands on the APIC's register window (each 16-byte register is
//! written four times); it carries the registers' current values (ID 0, TPR 0, LDR 0, DFR all
//! ones, SVR 0x1ff), so the attack changes nothing but the interrupts.
//!
//! With `mode=remap` (issue 17, item 3: behind an IOMMU that remaps interrupts) the sector is
//! read into the remappable-format message of interrupt entry 0x50 instead, the entry of the
//! vector the hypervisor gave the *first* device it assigned, another domain's (topology
//! msi-forge). Each 4-byte word of the write is one message: the first names entry 0x50 from
//! this device's requester id, which the IOMMU must refuse (source-id verification); the others
//! name entries never given (refused as not present) or this device's own, or are
//! compatibility-format words carrying vector 0x11.
#![no_std]
#![no_main]

use core::sync::atomic::Ordering;
use hv_rt::println;
use hv_rt::virtio::{HvConfigAccess, HvHal};
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::PciRoot;

hv_rt::main!(main);

#[path = "../redirecting_hal.rs"]
mod redirecting_hal;
use redirecting_hal::{AT_RUN_TIME, REDIRECT, REDIRECT_TO, RedirectingHal, virtio_blk_function};

/// The HAL that hands the device [`MSI_WINDOW`] or [`FOREIGN_MESSAGE`] (set in `REDIRECT_TO`)
/// for the redirected buffer.
type Redirecting = RedirectingHal<AT_RUN_TIME>;

const MSI_WINDOW: u64 = 0xfee0_0000;
/// The interrupt entry of the first vector the hypervisor hands out (another domain's device).
const FOREIGN_ENTRY: u64 = 0x50;
/// Its remappable-format message address: handle in bits 19:5, format bit 4.
const FOREIGN_MESSAGE: u64 = MSI_WINDOW | FOREIGN_ENTRY << 5 | 1 << 4;
/// The vectors the device raises: #AC (17) and #CP (21).
const VECTORS: [u32; 2] = [0x11, 0x15];
const SECTOR: usize = 2;

/// The sector: MSI data words at offsets 0 and 8 (offsets 4 and 12 address logical
/// destination 0, nobody), then the APIC registers' current values.
fn payload() -> [u8; 512] {
    let mut w = [0u32; 128];
    w[0] = VECTORS[0];
    w[2] = VECTORS[1];
    for (index, value) in [(0x0e, u32::MAX), (0x0f, 0x1ff)] {
        w[index * 4..index * 4 + 4].fill(value);
    }
    let mut out = [0u8; 512];
    for (i, v) in w.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

fn main() {
    let Some(df) = virtio_blk_function() else { return println!("no virtio-blk device assigned") };
    let mut root = PciRoot::new(HvConfigAccess);
    {
        let Ok(t) = PciTransport::new::<HvHal, _>(&mut root, df) else { return println!("virtio transport failed") };
        let Ok(mut blk) = VirtIOBlk::<HvHal, _>::new(t) else { return println!("virtio-blk failed") };
        if let Err(e) = blk.write_blocks(SECTOR, &payload()) {
            return println!("writing the payload: {e:?}");
        }
    }
    let mut buf = [0u8; 512];
    let target = if hv_rt::arg("mode") == Some("remap") {
        println!(
            "payload written; reading it into interrupt entry {FOREIGN_ENTRY:#x}'s message at {FOREIGN_MESSAGE:#x}"
        );
        FOREIGN_MESSAGE
    } else {
        println!("payload written; reading it into the MSI window (vectors {:#x} and {:#x})", VECTORS[0], VECTORS[1]);
        MSI_WINDOW
    };
    REDIRECT_TO.store(target, Ordering::Relaxed);
    let Ok(t) = PciTransport::new::<Redirecting, _>(&mut root, df) else { return println!("virtio transport failed") };
    let Ok(mut blk) = VirtIOBlk::<Redirecting, _>::new(t) else { return println!("virtio-blk failed") };
    REDIRECT.store(buf.as_mut_ptr() as usize, Ordering::Relaxed);
    let r = blk.read_blocks(SECTOR, &mut buf);
    REDIRECT.store(0, Ordering::Relaxed);
    hv_rt::time::sleep_ms(50);
    println!("device DMA to the MSI window done ({r:?}); this domain is still running");
}
