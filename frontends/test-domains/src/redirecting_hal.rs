//! The hostile half of a virtio HAL, shared by the test domains that point their own device at
//! memory they must not reach (`dma-escaper`, `msi-forger`; each binary includes this file with
//! `#[path]`, so each has its own [`REDIRECT`]): [`RedirectingHal<TARGET>`] is `HvHal`, except
//! that sharing the one buffer named in [`REDIRECT`] hands the device `TARGET` as its address,
//! or, for `RedirectingHal<AT_RUN_TIME>`, the address in [`REDIRECT_TO`].
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use hv_rt::virtio::HvHal;
use virtio_drivers::transport::pci::bus::DeviceFunction;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// The virtio-blk device assigned to this domain (transitional or modern id), as virtio-drivers
/// names a PCI function.
pub fn virtio_blk_function() -> Option<DeviceFunction> {
    let devices = hv_rt::pci::devices().unwrap_or_default();
    let d = devices.iter().find(|d| d.vendor == 0x1af4 && matches!(d.device, 0x1001 | 0x1042))?;
    let bdf = hv_rt::pci::Bdf::from_u16(d.bdf);
    Some(DeviceFunction { bus: bdf.bus, device: bdf.dev, function: bdf.func })
}

/// The buffer whose device address is replaced (0: none).
pub static REDIRECT: AtomicUsize = AtomicUsize::new(0);

/// `TARGET` of a HAL whose target is chosen at run time: [`REDIRECT_TO`].
pub const AT_RUN_TIME: u64 = u64::MAX;

/// The device address of the redirected buffer for `RedirectingHal<AT_RUN_TIME>`.
pub static REDIRECT_TO: AtomicU64 = AtomicU64::new(0);

/// `HvHal` with one buffer's device address replaced by `TARGET` (or [`REDIRECT_TO`]).
pub struct RedirectingHal<const TARGET: u64>;

// SAFETY: everything but the redirected buffer is HvHal's. The redirected buffer's own memory is
// never handed to the device (the device gets another address instead, reading from it for a
// write request, writing to it for a read request), so the device never touches memory of ours
// we did not share; where its access lands is the hypervisor's (the IOMMU's) to stop.
unsafe impl<const TARGET: u64> Hal for RedirectingHal<TARGET> {
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
            return if TARGET == AT_RUN_TIME { REDIRECT_TO.load(Ordering::Relaxed) } else { TARGET };
        }
        // SAFETY: forwarded.
        unsafe { HvHal::share(buffer, direction) }
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        // SAFETY: forwarded.
        unsafe { HvHal::unshare(paddr, buffer, direction) }
    }
}
