//! The hostile half of a virtio HAL, shared by the test domains that point their own device at
//! memory they must not reach (`dma-escaper`, `msi-forger`; each binary includes this file with
//! `#[path]`, so each has its own [`REDIRECT`]): [`RedirectingHal<TARGET>`] is `HvHal`, except
//! that sharing the one buffer named in [`REDIRECT`] hands the device `TARGET` as its address.
use core::ptr::NonNull;
use core::sync::atomic::{AtomicUsize, Ordering};
use hv_rt::virtio::HvHal;
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

/// The buffer whose device address is replaced (0: none).
pub static REDIRECT: AtomicUsize = AtomicUsize::new(0);

/// `HvHal` with one buffer's device address replaced by `TARGET`.
pub struct RedirectingHal<const TARGET: u64>;

// SAFETY: everything but the redirected buffer is HvHal's; the redirected buffer is only ever
// given to the device to write into (a read request), so our own memory is never read from an
// address we did not share, and where the device's write lands is the hypervisor's to stop.
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
            return TARGET;
        }
        // SAFETY: forwarded.
        unsafe { HvHal::share(buffer, direction) }
    }

    unsafe fn unshare(paddr: PhysAddr, buffer: NonNull<[u8]>, direction: BufferDirection) {
        // SAFETY: forwarded.
        unsafe { HvHal::unshare(paddr, buffer, direction) }
    }
}
