//! A driver domain whose device DMAs outside the domain's memory (issue 17, item 2): behind
//! the IOMMU (topology `iommu = true`) its virtio-blk device reads one sector normally, then is
//! told to read the next one "into" the hypervisor's own image at 1 MiB. The remapping hardware
//! must refuse the write (the domain's device addresses map only its own RAM), the hypervisor
//! must report the fault with the device and the address and end this domain, and everything
//! else must carry on. Without an IOMMU this would overwrite the hypervisor: run it only in
//! topologies with `iommu = true` (`dma-escape`).
#![no_std]
#![no_main]

use core::sync::atomic::Ordering;
use hv_rt::pci;
use hv_rt::println;
use hv_rt::virtio::HvConfigAccess;
use virtio_drivers::device::blk::VirtIOBlk;
use virtio_drivers::transport::pci::PciTransport;
use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};

hv_rt::main!(main);

#[path = "../redirecting_hal.rs"]
mod redirecting_hal;
use redirecting_hal::{REDIRECT, RedirectingHal};

/// The HAL that hands the device TARGET for the redirected buffer.
type Redirecting = RedirectingHal<TARGET>;

/// The hypervisor's image (text at 1 MiB): the worst place a device could write.
const TARGET: u64 = 0x10_0000;

fn main() {
    let devices = pci::devices().unwrap_or_default();
    let Some(d) = devices.iter().find(|d| d.vendor == 0x1af4 && matches!(d.device, 0x1001 | 0x1042)) else {
        return println!("no virtio-blk device assigned");
    };
    let bdf = pci::Bdf::from_u16(d.bdf);
    let df = DeviceFunction { bus: bdf.bus, device: bdf.dev, function: bdf.func };
    let mut root = PciRoot::new(HvConfigAccess);
    let Ok(t) = PciTransport::new::<Redirecting, _>(&mut root, df) else { return println!("virtio transport failed") };
    let Ok(mut blk) = VirtIOBlk::<Redirecting, _>::new(t) else { return println!("virtio-blk failed") };
    let mut buf = [0u8; 512];
    match blk.read_blocks(0, &mut buf) {
        Ok(()) => println!("read sector 0 into my own memory through the IOMMU"),
        Err(e) => return println!("reading sector 0: {e:?}"),
    }
    println!("now reading sector 1 into the hypervisor's image at {TARGET:#x}");
    REDIRECT.store(buf.as_mut_ptr() as usize, Ordering::Relaxed);
    let r = blk.read_blocks(1, &mut buf);
    REDIRECT.store(0, Ordering::Relaxed);
    // The hypervisor ends this domain at its next fault poll; if it does not, say so.
    hv_rt::time::sleep_ms(500);
    println!("device DMA outside my memory done ({r:?}); this domain is still running");
}
