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
#![no_std]
#![no_main]

use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use hv_rt::pci;
use hv_rt::println;
use hv_rt::virtio::{HvConfigAccess, HvHal};
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

hv_rt::main!(main);

const MSI_WINDOW: u64 = 0xfee0_0000;
/// The vectors the device raises: #AC (17) and #CP (21).
const VECTORS: [u32; 2] = [0x11, 0x15];
const SECTOR: usize = 2;

/// The buffer whose DMA address is redirected to the MSI window.
static REDIRECT: AtomicUsize = AtomicUsize::new(0);

/// `HvHal`, except that sharing the one buffer in `REDIRECT` hands the device the MSI window.
struct RedirectingHal;

// SAFETY: everything but the redirected buffer is HvHal's; the redirected buffer is only ever
// given to the device to write (a read request), and the device's write lands on the APIC, not
// on memory anyone owns.
unsafe impl Hal for RedirectingHal {
    fn dma_alloc(pages: usize, direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        HvHal::dma_alloc(pages, direction)
    }

    unsafe fn dma_dealloc(paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: forwarded.
        unsafe { HvHal::dma_dealloc(paddr, vaddr, pages) }
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, size: usize) -> NonNull<u8> {
        // SAFETY: forwarded.
        unsafe { HvHal::mmio_phys_to_virt(paddr, size) }
    }

    unsafe fn share(buffer: NonNull<[u8]>, direction: BufferDirection) -> PhysAddr {
        if buffer.as_ptr().cast::<u8>() as usize == REDIRECT.load(Ordering::Relaxed) {
            return MSI_WINDOW;
        }
        // SAFETY: forwarded.
        unsafe { HvHal::share(buffer, direction) }
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        // SAFETY: forwarded.
        unsafe { HvHal::unshare(paddr, buffer, direction) }
    }
}

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
    let devices = pci::devices().unwrap_or_default();
    let Some(d) = devices.iter().find(|d| d.vendor == 0x1af4 && matches!(d.device, 0x1001 | 0x1042)) else {
        return println!("no virtio-blk device assigned");
    };
    let bdf = pci::Bdf::from_u16(d.bdf);
    let df = DeviceFunction { bus: bdf.bus, device: bdf.dev, function: bdf.func };
    let mut root = PciRoot::new(HvConfigAccess);
    {
        let Ok(t) = PciTransport::new::<HvHal, _>(&mut root, df) else { return println!("virtio transport failed") };
        let Ok(mut blk) = VirtIOBlk::<HvHal, _>::new(t) else { return println!("virtio-blk failed") };
        if let Err(e) = blk.write_blocks(SECTOR, &payload()) {
            return println!("writing the payload: {e:?}");
        }
    }
    println!("payload written; reading it into the MSI window (vectors {:#x} and {:#x})", VECTORS[0], VECTORS[1]);
    let Ok(t) = PciTransport::new::<RedirectingHal, _>(&mut root, df) else {
        return println!("virtio transport failed");
    };
    let Ok(mut blk) = VirtIOBlk::<RedirectingHal, _>::new(t) else { return println!("virtio-blk failed") };
    let mut buf = [0u8; 512];
    REDIRECT.store(buf.as_mut_ptr() as usize, Ordering::Relaxed);
    let r = blk.read_blocks(SECTOR, &mut buf);
    REDIRECT.store(0, Ordering::Relaxed);
    hv_rt::time::sleep_ms(50);
    println!("device DMA to the MSI window done ({r:?}); this domain is still running");
}
