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

/// An assigned virtio-blk device driven with interrupts: each request is queued, the domain
/// blocks on the device's pirq port until the completion interrupt, then collects the result.
pub struct BlockDisk {
    blk: virtio_drivers::device::blk::VirtIOBlk<HvHal, virtio_drivers::transport::pci::PciTransport>,
    port: u32,
    interrupts: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskError {
    NoDevice,
    Setup,
    Io,
    /// The request's buffer is not a whole number of 512-byte sectors.
    BadLength,
}

impl BlockDisk {
    pub const SECTOR: usize = 512;

    /// Opens our first virtio-blk device (modern or transitional id).
    pub fn open() -> Result<Self, DiskError> {
        use virtio_drivers::transport::pci::PciTransport;
        use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};
        let dev = *devices()
            .iter()
            .find(|d| d.vendor == 0x1af4 && matches!(d.device, 0x1001 | 0x1042))
            .ok_or(DiskError::NoDevice)?;
        let bdf = pci::Bdf::from_u16(dev.bdf);
        let mut root = PciRoot::new(HvConfigAccess);
        let df = DeviceFunction { bus: bdf.bus, device: bdf.dev, function: bdf.func };
        let transport = PciTransport::new::<HvHal, _>(&mut root, df).map_err(|_| DiskError::Setup)?;
        let blk = virtio_drivers::device::blk::VirtIOBlk::new(transport).map_err(|_| DiskError::Setup)?;
        let port = crate::evtchn::bind_pirq(dev.bdf).map_err(|_| DiskError::Setup)?;
        let interrupts = route_queue_interrupt(&dev, 0);
        Ok(Self { blk, port, interrupts })
    }

    /// Capacity in 512-byte sectors.
    pub fn sectors(&self) -> u64 {
        self.blk.capacity()
    }

    pub fn readonly(&self) -> bool {
        self.blk.readonly()
    }

    /// Whether completions arrive as interrupts (else the disk is polled).
    pub fn interrupt_driven(&self) -> bool {
        self.interrupts
    }

    /// Waits until request `token` is done: blocks on the pirq port (or yields when polling).
    fn wait(&mut self, token: u16) {
        let deadline = crate::time::now_ns().saturating_add(10_000_000_000);
        while self.blk.peek_used() != Some(token) {
            if crate::time::now_ns() > deadline {
                return;
            }
            if self.interrupts {
                if !crate::evtchn::clear(self.port) {
                    crate::time::block_until(deadline);
                }
            } else {
                crate::yield_now();
            }
        }
        crate::evtchn::clear(self.port);
    }

    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DiskError> {
        use virtio_drivers::device::blk::{BlkReq, BlkResp};
        if buf.is_empty() || !buf.len().is_multiple_of(Self::SECTOR) {
            return Err(DiskError::BadLength);
        }
        let (mut req, mut resp) = (BlkReq::default(), BlkResp::default());
        // SAFETY: req, buf and resp stay untouched until `complete_read_blocks` below.
        let token =
            unsafe { self.blk.read_blocks_nb(sector as usize, &mut req, buf, &mut resp) }.map_err(|_| DiskError::Io)?;
        self.wait(token);
        // SAFETY: the same buffers as queued.
        unsafe { self.blk.complete_read_blocks(token, &req, buf, &mut resp) }.map_err(|_| DiskError::Io)
    }

    /// Writes; returns once the device reports the write complete.
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), DiskError> {
        use virtio_drivers::device::blk::{BlkReq, BlkResp};
        if buf.is_empty() || !buf.len().is_multiple_of(Self::SECTOR) {
            return Err(DiskError::BadLength);
        }
        let (mut req, mut resp) = (BlkReq::default(), BlkResp::default());
        // SAFETY: req, buf and resp stay untouched until `complete_write_blocks` below.
        let token = unsafe { self.blk.write_blocks_nb(sector as usize, &mut req, buf, &mut resp) }
            .map_err(|_| DiskError::Io)?;
        self.wait(token);
        // SAFETY: the same buffers as queued.
        unsafe { self.blk.complete_write_blocks(token, &req, buf, &mut resp) }.map_err(|_| DiskError::Io)
    }

    /// Flushes the device's write cache (a no-op if it has none).
    pub fn flush(&mut self) -> Result<(), DiskError> {
        self.blk.flush().map_err(|_| DiskError::Io)
    }
}
