//! `virtio-drivers` glue for driver domains: a `Hal` over our contiguous RAM (device address =
//! machine address, `StartInfo::ram_phys`, until an IOMMU is used) and a `ConfigurationAccess`
//! over the `pci_op` hypercalls, which reach only our own devices.
use crate::pci;
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::vec::Vec;
use core::ptr::NonNull;
use spin::Once;
use virtio_drivers::transport::pci::bus::{ConfigurationAccess, DeviceFunction};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

static DEVICES: Once<Vec<hv_abi::PciDeviceInfo>> = Once::new();

fn devices() -> &'static [hv_abi::PciDeviceInfo] {
    DEVICES.call_once(|| pci::devices().unwrap_or_default())
}

pub struct HvHal;

fn layout(pages: usize) -> Layout {
    Layout::from_size_align(pages.max(1) * 4096, 4096).expect("page-aligned layout")
}

// SAFETY: dma_alloc returns zeroed, page-aligned memory from our heap, which lies in our
// physically contiguous RAM, so the address handed to the device is exact; mmio_phys_to_virt
// returns the hypervisor's uncached mapping of our own device's BAR; share translates buffers in
// our RAM (stack and heap alike) without copying.
unsafe impl Hal for HvHal {
    fn dma_alloc(pages: usize, _direction: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        // SAFETY: non-zero-size layout.
        let p = NonNull::new(unsafe { alloc_zeroed(layout(pages)) }).expect("out of memory for DMA");
        (pci::dma_address(p.as_ptr() as u64).unwrap_or(0), p)
    }

    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        // SAFETY: `vaddr` came from `dma_alloc` with the same page count.
        unsafe { dealloc(vaddr.as_ptr(), layout(pages)) };
        0
    }

    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        let va = devices().iter().find_map(|d| pci::bar_va(d, paddr)).unwrap_or(0);
        NonNull::new(va as *mut u8).expect("BAR not mapped into this domain")
    }

    unsafe fn share(buffer: NonNull<[u8]>, _direction: BufferDirection) -> PhysAddr {
        pci::dma_address(buffer.as_ptr().cast::<u8>() as u64).expect("DMA buffer outside our RAM")
    }

    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _direction: BufferDirection) {}
}

/// Config-space access through the hypervisor (our own devices only).
pub struct HvConfigAccess;

fn bdf(df: DeviceFunction) -> pci::Bdf {
    pci::Bdf { bus: df.bus, dev: df.device, func: df.function }
}

impl ConfigurationAccess for HvConfigAccess {
    fn read_word(&self, df: DeviceFunction, offset: u8) -> u32 {
        pci::config_read(bdf(df), offset).unwrap_or(u32::MAX)
    }

    fn write_word(&mut self, df: DeviceFunction, offset: u8, data: u32) {
        let _ = pci::config_write(bdf(df), offset, data);
    }

    unsafe fn unsafe_clone(&self) -> Self {
        HvConfigAccess
    }
}

/// The address of a device's virtio common configuration (capability type 1) in our mapping.
pub fn common_cfg(dev: &hv_abi::PciDeviceInfo) -> Option<u64> {
    let b = pci::Bdf::from_u16(dev.bdf);
    let byte = |off: u8| pci::config_read(b, off & !3).map(|w| (w >> ((off & 3) * 8)) as u8).unwrap_or(0);
    let mut cap = byte(0x34);
    for _ in 0..48 {
        if cap == 0 {
            return None;
        }
        if byte(cap) == 9 && byte(cap + 3) == 1 {
            let bar = byte(cap + 4) as usize;
            let offset = pci::config_read(b, cap + 8).ok()? as u64;
            return pci::bar_va(dev, dev.bars.get(bar)?.phys + offset);
        }
        cap = byte(cap + 1);
    }
    None
}

/// Routes the interrupts of virtqueue `queue` to MSI-X entry 0 (which the hypervisor programs);
/// returns whether the device accepted it.
pub fn route_queue_interrupt(dev: &hv_abi::PciDeviceInfo, queue: u16) -> bool {
    let Some(cfg) = common_cfg(dev) else { return false };
    // SAFETY: `cfg` is the device's common configuration, mapped uncached for us; offsets per
    // the virtio 1.x spec (4.1.4.3): msix_config 0x10, queue_select 0x16, queue_msix_vector 0x1a.
    unsafe {
        ((cfg + 0x10) as *mut u16).write_volatile(0);
        ((cfg + 0x16) as *mut u16).write_volatile(queue);
        ((cfg + 0x1a) as *mut u16).write_volatile(0);
        ((cfg + 0x1a) as *const u16).read_volatile() == 0
    }
}
