//! `virtio-drivers` glue for driver domains: a `Hal` over our contiguous RAM (device address =
//! machine address, `StartInfo::ram_phys`; behind an IOMMU exactly these addresses are mapped)
//! and a `ConfigurationAccess` over the `pci_op` hypercalls, which reach only our own devices.
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

/// An assigned virtio-blk device driven with interrupts. Two ways in: [`BlockDisk::read`] and
/// [`BlockDisk::write`] queue one request on the caller's buffer and block on the device's pirq
/// port until it completes (nothing else may be in flight); the queue ([`BlockDisk::start`],
/// [`BlockDisk::poll`]) keeps up to [`BlockDisk::depth`] requests in flight, each in one of the
/// disk's own slots (request header, status byte, data buffer), so no buffer the device uses
/// belongs to anyone else while it does.
pub struct BlockDisk {
    blk: virtio_drivers::device::blk::VirtIOBlk<HvHal, PlatformTransport<virtio_drivers::transport::pci::PciTransport>>,
    port: u32,
    interrupts: bool,
    /// Allocated once (never resized: the device holds addresses into them while in flight).
    slots: Vec<DiskSlot>,
}

/// One queued request's memory.
struct DiskSlot {
    req: virtio_drivers::device::blk::BlkReq,
    resp: virtio_drivers::device::blk::BlkResp,
    buf: alloc::boxed::Box<[u8]>,
    /// While in flight: the virtqueue token, whether it writes, and the bytes it moves.
    in_flight: Option<(u16, bool, usize)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskError {
    NoDevice,
    Setup,
    Io,
    /// The request's buffer is not a whole number of 512-byte sectors.
    BadLength,
    /// Every queue slot (or descriptor) is in use: try again after one finished.
    Busy,
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
        let blk =
            virtio_drivers::device::blk::VirtIOBlk::new(PlatformTransport(transport)).map_err(|_| DiskError::Setup)?;
        let port = crate::evtchn::bind_pirq(dev.bdf).map_err(|_| DiskError::Setup)?;
        let interrupts = route_queue_interrupt(&dev, 0);
        Ok(Self { blk, port, interrupts, slots: Vec::new() })
    }

    /// Requests the queue holds at most (the virtqueue's size: each request is one indirect
    /// descriptor when the device offers them; without, [`BlockDisk::start`] reports `Busy`
    /// once the descriptors run out).
    pub const MAX_DEPTH: usize = 16;

    /// Gives the queue up to `depth` slots (at most [`BlockDisk::MAX_DEPTH`]) of `bytes` each,
    /// as many as the heap holds while leaving `reserve` bytes free for everything else.
    /// Returns the depth; 0 if the queue is in use (or not even one slot fits).
    pub fn with_slots(&mut self, depth: usize, bytes: usize, reserve: usize) -> usize {
        if self.slots.iter().any(|s| s.in_flight.is_some()) {
            return 0;
        }
        self.slots = Vec::new();
        // The reserve is held while the slots are allocated, then let go of.
        let mut held: Vec<u8> = Vec::new();
        if held.try_reserve_exact(reserve).is_err() {
            return 0;
        }
        let mut slots = Vec::new();
        for _ in 0..depth.min(Self::MAX_DEPTH) {
            let mut buf: Vec<u8> = Vec::new();
            if slots.try_reserve(1).is_err() || buf.try_reserve_exact(bytes).is_err() {
                break;
            }
            buf.resize(bytes, 0);
            slots.push(DiskSlot {
                req: Default::default(),
                resp: Default::default(),
                buf: buf.into_boxed_slice(),
                in_flight: None,
            });
        }
        drop(held);
        self.slots = slots;
        self.slots.len()
    }

    /// Slots of the queue.
    pub fn depth(&self) -> usize {
        self.slots.len()
    }

    /// The data buffer of slot `i`, unless the device is using it.
    pub fn slot_buffer(&mut self, i: usize) -> Option<&mut [u8]> {
        self.slots.get_mut(i).filter(|s| s.in_flight.is_none()).map(|s| &mut s.buf[..])
    }

    /// Queues a read (or write) of the first `len` bytes of slot `i`'s buffer at `sector` and
    /// notifies the device; returns at once. `Busy`: the virtqueue is full, try again later.
    pub fn start(&mut self, i: usize, write: bool, sector: u64, len: usize) -> Result<(), DiskError> {
        use virtio_drivers::Error;
        if len == 0 || !len.is_multiple_of(Self::SECTOR) {
            return Err(DiskError::BadLength);
        }
        let sector = usize::try_from(sector).map_err(|_| DiskError::Io)?;
        let slot = self.slots.get_mut(i).filter(|s| s.in_flight.is_none()).ok_or(DiskError::Busy)?;
        let buf = slot.buf.get_mut(..len).ok_or(DiskError::BadLength)?;
        // SAFETY: the slot's header, buffer and status byte live in `self.slots`, which is not
        // resized while anything is in flight (`with_slots` refuses), and nothing else touches
        // them until `poll` completes this token (`slot_buffer` refuses a slot in flight).
        let token = unsafe {
            if write {
                self.blk.write_blocks_nb(sector, &mut slot.req, buf, &mut slot.resp)
            } else {
                self.blk.read_blocks_nb(sector, &mut slot.req, buf, &mut slot.resp)
            }
        };
        let token = token.map_err(|e| if e == Error::QueueFull { DiskError::Busy } else { DiskError::Io })?;
        slot.in_flight = Some((token, write, len));
        Ok(())
    }

    /// The next request the device finished, by slot, with its result.
    pub fn poll(&mut self) -> Option<(usize, Result<(), DiskError>)> {
        let token = self.blk.peek_used()?;
        let Some(i) = self.slots.iter().position(|s| s.in_flight.is_some_and(|(t, ..)| t == token)) else {
            // Not one of the queue's (a blocking call's, which collects it itself).
            return None;
        };
        let slot = &mut self.slots[i];
        let (_, write, len) = slot.in_flight.take()?;
        let buf = &mut slot.buf[..len];
        // SAFETY: the same header, buffer and status byte `start` queued with this token.
        let result = unsafe {
            if write {
                self.blk.complete_write_blocks(token, &slot.req, buf, &mut slot.resp)
            } else {
                self.blk.complete_read_blocks(token, &slot.req, buf, &mut slot.resp)
            }
        };
        Some((i, result.map_err(|_| DiskError::Io)))
    }

    /// Turns the device's completion interrupts on or off (off: the caller polls with
    /// [`BlockDisk::poll`]).
    pub fn set_interrupts(&mut self, on: bool) {
        if on {
            self.blk.enable_interrupts();
        } else {
            self.blk.disable_interrupts();
        }
    }

    /// Waits up to `ns` for the device's interrupt (or yields once when it is polled).
    pub fn wait_interrupt(&mut self, ns: u64) {
        if self.blk.peek_used().is_some() {
            return;
        }
        if self.interrupts {
            if !crate::evtchn::clear(self.port) {
                crate::time::block_until(crate::time::now_ns().saturating_add(ns));
            }
        } else {
            crate::yield_now();
        }
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

/// Virtqueue size of [`NetDevice`] (rx and tx).
const NET_QUEUE: usize = 64;
/// Bytes of each rx and tx buffer (virtio-net header + a 1514-byte frame fits).
const NET_BUF: usize = 2048;
/// Receive buffers kept posted to the device.
const NET_RX_BUFFERS: usize = NET_QUEUE;
/// Frames in flight to the device at most.
const NET_TX_BUFFERS: usize = NET_QUEUE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetError {
    NoDevice,
    Setup,
    /// Every transmit buffer is in flight: try again after the device used some.
    Busy,
    /// The frame does not fit a buffer (or the caller's buffer is too small for a received one).
    TooLong,
    Io,
}

type NetPci = virtio_drivers::transport::pci::PciTransport;

/// `VIRTIO_RING_F_EVENT_IDX` (virtio 1.x, 6.3).
const RING_EVENT_IDX: u64 = 1 << 29;

/// Where one split virtqueue's rings are, for the notification check.
#[derive(Clone, Copy)]
struct Rings {
    /// Our address of the driver area (`struct virtq_avail`: flags, idx, ring[size], used_event).
    avail: u64,
    /// Our address of the device area (`struct virtq_used`: flags, idx, ring[size] of 8 bytes,
    /// avail_event).
    used: u64,
    size: u32,
    /// The avail index when we last decided whether to notify.
    last: u16,
}

/// What [`BatchedNotify`] and [`NetDevice::flush`] share.
#[derive(Default)]
struct NotifyState {
    /// Bit `q`: queue `q` has buffers the device was not told about.
    pending: u32,
    /// `VIRTIO_RING_F_EVENT_IDX` was negotiated.
    event_idx: bool,
    /// The rx and tx queues' rings (queues 0 and 1).
    rings: [Option<Rings>; 2],
}

/// `VIRTIO_F_ACCESS_PLATFORM` (virtio 1.x, 6): the device sits behind the platform's IOMMU
/// (QEMU's `iommu_platform=on`). virtio-drivers never accepts it, and QEMU then refuses
/// FEATURES_OK and DRIVER_OK (virtio-net stays silent). Our device addresses are what the
/// hypervisor's IOMMU context maps (our RAM, one to one), so we accept it whenever offered.
pub const ACCESS_PLATFORM: u64 = 1 << 33;

/// The features to write: `driver`'s, plus [`ACCESS_PLATFORM`] when the device offers it.
pub fn with_access_platform(driver: u64, offered: u64) -> u64 {
    driver | (offered & ACCESS_PLATFORM)
}

/// Our address of a device address in our RAM (the inverse of [`crate::pci::dma_address`]).
fn ram_va(pa: PhysAddr) -> Option<u64> {
    let si = crate::start_info();
    let off = pa.checked_sub(si.ram_phys)?;
    (off < si.memory_bytes).then(|| hv_abi::DOMAIN_BASE + off)
}

/// [`NetDevice`]'s transport: the PCI transport, shared with the device's owner so that queue
/// notifications are held back and sent once per batch ([`NetDevice::flush`]), and then only
/// when the device asked for one. virtio-drivers notifies the device after every buffer it adds
/// (with `VIRTIO_F_EVENT_IDX` its check asks for a notification whenever the device's
/// `avail_event` is behind, which it stays while the device is busy); each notification is a
/// trapped write that QEMU handles under its global lock (waiting for it while QEMU's I/O thread
/// works through the last batch), and they were the largest cost of every frame netback sent
/// or received.
struct BatchedNotify {
    inner: alloc::rc::Rc<core::cell::RefCell<NetPci>>,
    state: alloc::rc::Rc<core::cell::RefCell<NotifyState>>,
}

impl virtio_drivers::transport::Transport for BatchedNotify {
    fn device_type(&self) -> virtio_drivers::transport::DeviceType {
        self.inner.borrow().device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.inner.borrow_mut().read_device_features()
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        self.state.borrow_mut().event_idx = driver_features & RING_EVENT_IDX != 0;
        let offered = self.inner.borrow_mut().read_device_features();
        self.inner.borrow_mut().write_driver_features(with_access_platform(driver_features, offered))
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.inner.borrow_mut().max_queue_size(queue)
    }
    fn notify(&mut self, queue: u16) {
        self.state.borrow_mut().pending |= 1u32.checked_shl(u32::from(queue)).unwrap_or(0);
    }
    fn get_status(&self) -> virtio_drivers::transport::DeviceStatus {
        self.inner.borrow().get_status()
    }
    fn set_status(&mut self, status: virtio_drivers::transport::DeviceStatus) {
        self.inner.borrow_mut().set_status(status)
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.inner.borrow_mut().set_guest_page_size(guest_page_size)
    }
    fn requires_legacy_layout(&self) -> bool {
        self.inner.borrow().requires_legacy_layout()
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        if let Some(slot) = self.state.borrow_mut().rings.get_mut(usize::from(queue)) {
            *slot = match (ram_va(driver_area), ram_va(device_area)) {
                (Some(avail), Some(used)) => Some(Rings { avail, used, size, last: 0 }),
                _ => None,
            };
        }
        self.inner.borrow_mut().queue_set(queue, size, descriptors, driver_area, device_area)
    }
    fn queue_unset(&mut self, queue: u16) {
        if let Some(slot) = self.state.borrow_mut().rings.get_mut(usize::from(queue)) {
            *slot = None;
        }
        self.inner.borrow_mut().queue_unset(queue)
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.inner.borrow_mut().queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> virtio_drivers::transport::InterruptStatus {
        self.inner.borrow_mut().ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.inner.borrow().read_config_generation()
    }
    fn read_config_space<T: zerocopy::FromBytes + zerocopy::IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<T> {
        self.inner.borrow().read_config_space(offset)
    }
    fn write_config_space<T: zerocopy::IntoBytes + zerocopy::Immutable>(
        &mut self,
        offset: usize,
        value: T,
    ) -> virtio_drivers::Result<()> {
        self.inner.borrow_mut().write_config_space(offset, value)
    }
}

/// A transport that accepts [`ACCESS_PLATFORM`] when the device offers it and is otherwise
/// the one it wraps ([`BlockDisk`]'s; [`NetDevice`]'s `BatchedNotify` does the same itself).
pub struct PlatformTransport<T>(pub T);

impl<T: virtio_drivers::transport::Transport> virtio_drivers::transport::Transport for PlatformTransport<T> {
    fn device_type(&self) -> virtio_drivers::transport::DeviceType {
        self.0.device_type()
    }
    fn read_device_features(&mut self) -> u64 {
        self.0.read_device_features()
    }
    fn write_driver_features(&mut self, driver_features: u64) {
        let offered = self.0.read_device_features();
        self.0.write_driver_features(with_access_platform(driver_features, offered))
    }
    fn max_queue_size(&mut self, queue: u16) -> u32 {
        self.0.max_queue_size(queue)
    }
    fn notify(&mut self, queue: u16) {
        self.0.notify(queue)
    }
    fn get_status(&self) -> virtio_drivers::transport::DeviceStatus {
        self.0.get_status()
    }
    fn set_status(&mut self, status: virtio_drivers::transport::DeviceStatus) {
        self.0.set_status(status)
    }
    fn set_guest_page_size(&mut self, guest_page_size: u32) {
        self.0.set_guest_page_size(guest_page_size)
    }
    fn requires_legacy_layout(&self) -> bool {
        self.0.requires_legacy_layout()
    }
    fn queue_set(
        &mut self,
        queue: u16,
        size: u32,
        descriptors: PhysAddr,
        driver_area: PhysAddr,
        device_area: PhysAddr,
    ) {
        self.0.queue_set(queue, size, descriptors, driver_area, device_area)
    }
    fn queue_unset(&mut self, queue: u16) {
        self.0.queue_unset(queue)
    }
    fn queue_used(&mut self, queue: u16) -> bool {
        self.0.queue_used(queue)
    }
    fn ack_interrupt(&mut self) -> virtio_drivers::transport::InterruptStatus {
        self.0.ack_interrupt()
    }
    fn read_config_generation(&self) -> u32 {
        self.0.read_config_generation()
    }
    fn read_config_space<C: zerocopy::FromBytes + zerocopy::IntoBytes>(
        &self,
        offset: usize,
    ) -> virtio_drivers::Result<C> {
        self.0.read_config_space(offset)
    }
    fn write_config_space<C: zerocopy::IntoBytes + zerocopy::Immutable>(
        &mut self,
        offset: usize,
        value: C,
    ) -> virtio_drivers::Result<()> {
        self.0.write_config_space(offset, value)
    }
}

/// An assigned virtio-net device (our uplink) driven without blocking: [`NetDevice::receive`]
/// copies a received frame out and gives its buffer straight back to the device,
/// [`NetDevice::send`] queues a frame and returns at once (completed transmissions are reclaimed
/// on later calls); the device hears of both at the next [`NetDevice::flush`]. The rx and tx queue interrupts arrive on [`NetDevice::port`].
pub struct NetDevice {
    // Declared first so it is dropped first: dropping it detaches the queues from the device
    // before the buffers below are freed.
    // Boxed (as are the tables below) to keep the domain's stack small.
    net: alloc::boxed::Box<virtio_drivers::device::net::VirtIONetRaw<HvHal, BatchedNotify, NET_QUEUE>>,
    /// The transport `net` drives, for [`NetDevice::flush`]'s notifications.
    transport: alloc::rc::Rc<core::cell::RefCell<NetPci>>,
    /// Queues with buffers added since the last notification, and where their rings are.
    notify: alloc::rc::Rc<core::cell::RefCell<NotifyState>>,
    /// Notifications sent.
    pub notifications: u64,
    port: u32,
    interrupts: bool,
    mac: [u8; 6],
    rx_bufs: Vec<alloc::boxed::Box<[u8]>>,
    /// Which rx buffer each descriptor token holds.
    rx_token: Vec<Option<usize>>,
    tx_bufs: Vec<alloc::boxed::Box<[u8]>>,
    tx_free: Vec<usize>,
    /// The buffer and length each in-flight transmit token holds.
    tx_token: Vec<Option<(usize, usize)>>,
}

impl NetDevice {
    /// Largest frame sent or received (Ethernet header + 1500-byte MTU).
    pub const MAX_FRAME: usize = 1514;

    /// Opens our first virtio-net device (modern or transitional id) and posts its rx buffers.
    pub fn open() -> Result<Self, NetError> {
        use virtio_drivers::transport::pci::PciTransport;
        use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};
        let dev = *devices()
            .iter()
            .find(|d| d.vendor == 0x1af4 && matches!(d.device, 0x1000 | 0x1041))
            .ok_or(NetError::NoDevice)?;
        let bdf = pci::Bdf::from_u16(dev.bdf);
        let mut root = PciRoot::new(HvConfigAccess);
        let df = DeviceFunction { bus: bdf.bus, device: bdf.dev, function: bdf.func };
        let transport = PciTransport::new::<HvHal, _>(&mut root, df).map_err(|_| NetError::Setup)?;
        let shared = alloc::rc::Rc::new(core::cell::RefCell::new(transport));
        let notify = alloc::rc::Rc::new(core::cell::RefCell::new(NotifyState::default()));
        let batched = BatchedNotify { inner: shared.clone(), state: notify.clone() };
        let net = alloc::boxed::Box::new(
            virtio_drivers::device::net::VirtIONetRaw::new(batched).map_err(|_| NetError::Setup)?,
        );
        let port = crate::evtchn::bind_pirq(dev.bdf).map_err(|_| NetError::Setup)?;
        // Queue 0 is receiveq1, queue 1 transmitq1.
        let interrupts = route_queue_interrupt(&dev, 0) & route_queue_interrupt(&dev, 1);
        let mac = net.mac_address();
        let mut d = Self {
            net,
            transport: shared,
            notify,
            notifications: 0,
            port,
            interrupts,
            mac,
            rx_bufs: (0..NET_RX_BUFFERS).map(|_| alloc::vec![0u8; NET_BUF].into_boxed_slice()).collect(),
            rx_token: alloc::vec![None; NET_QUEUE],
            tx_bufs: (0..NET_TX_BUFFERS).map(|_| alloc::vec![0u8; NET_BUF].into_boxed_slice()).collect(),
            tx_free: (0..NET_TX_BUFFERS).collect(),
            tx_token: alloc::vec![None; NET_QUEUE],
        };
        for i in 0..NET_RX_BUFFERS {
            d.post_rx(i)?;
        }
        d.flush();
        Ok(d)
    }

    /// Tells the device about every buffer added since the last call ([`NetDevice::send`] and
    /// [`NetDevice::receive`] add them without notifying): for each queue with new buffers, one
    /// notification, unless the device said (its `avail_event`, with `VIRTIO_RING_F_EVENT_IDX`)
    /// that it does not need one for them: it is still working through the queue and looks at
    /// it again before it waits. Call it after each batch of sends and receives; `send` calls it
    /// itself before it reports [`NetError::Busy`].
    pub fn flush(&mut self) {
        let mut state = self.notify.borrow_mut();
        let pending = core::mem::take(&mut state.pending);
        let event_idx = state.event_idx;
        for queue in 0..2u16 {
            // With event indices the rings say it all (virtio-drivers' own check, which sets
            // `pending`, compares the indices without wrapping: past 65535 it would miss one).
            let needed = match state.rings.get_mut(usize::from(queue)).and_then(Option::as_mut) {
                Some(r) if event_idx => {
                    // The avail index (written by virtio-drivers) before the device's
                    // avail_event is read: a full barrier, as the virtio spec's driver does.
                    core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
                    let event_at = r.used + 4 + 8 * u64::from(r.size);
                    // SAFETY: `avail` and `used` are our addresses of the queue's driver and
                    // device areas (virtio-drivers' allocations in our RAM, handed to the device
                    // by `queue_set` and live until `queue_unset` clears them); both fields are
                    // 2-byte aligned u16s inside them that the driver and the device write
                    // concurrently, hence the volatile reads.
                    let (new, event) = unsafe {
                        (
                            core::ptr::read_volatile((r.avail + 2) as *const u16),
                            core::ptr::read_volatile(event_at as *const u16),
                        )
                    };
                    let old = core::mem::replace(&mut r.last, new);
                    // vring_need_event (virtio 1.x, 2.7.10): the device asked to be notified
                    // when the index passes `event`; did it pass it since the last check?
                    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
                }
                _ => pending & (1 << queue) != 0,
            };
            if needed {
                virtio_drivers::transport::Transport::notify(&mut *self.transport.borrow_mut(), queue);
                self.notifications += 1;
            }
        }
    }

    /// Gives rx buffer `i` to the device.
    fn post_rx(&mut self, i: usize) -> Result<(), NetError> {
        // SAFETY: the buffer is a heap allocation owned by `self` that nothing touches until the
        // device returns its token (`receive`), and `net` is dropped (queues detached) before it.
        let token = unsafe { self.net.receive_begin(&mut self.rx_bufs[i]) }.map_err(|_| NetError::Io)?;
        let slot = self.rx_token.get_mut(usize::from(token)).ok_or(NetError::Io)?;
        *slot = Some(i);
        Ok(())
    }

    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// The event channel port the device's queue interrupts arrive on.
    pub fn port(&self) -> u32 {
        self.port
    }

    /// Whether the queue interrupts were routed (else the device must be polled).
    pub fn interrupt_driven(&self) -> bool {
        self.interrupts
    }

    /// The next received frame, copied into `buf`: `None` if nothing is waiting, else its
    /// length (or an error for a frame that does not fit `buf`, which is dropped). The device's
    /// buffer is posted again either way.
    pub fn receive(&mut self, buf: &mut [u8]) -> Option<Result<usize, NetError>> {
        let token = self.net.poll_receive()?;
        let Some(i) = self.rx_token.get_mut(usize::from(token)).and_then(Option::take) else {
            return Some(Err(NetError::Io));
        };
        // SAFETY: `i` is the buffer posted with this token (rx_token), passed back unchanged.
        let done = unsafe { self.net.receive_complete(token, &mut self.rx_bufs[i]) };
        let result = match done {
            Ok((hdr, len)) => match self.rx_bufs[i].get(hdr..hdr.saturating_add(len)) {
                Some(frame) if frame.len() <= buf.len() => {
                    buf[..frame.len()].copy_from_slice(frame);
                    Ok(frame.len())
                }
                _ => Err(NetError::TooLong),
            },
            Err(_) => Err(NetError::Io),
        };
        if let Err(e) = self.post_rx(i) {
            return Some(Err(e));
        }
        Some(result)
    }

    /// Takes back the buffers of completed transmissions.
    fn reap_tx(&mut self) {
        while let Some(token) = self.net.poll_transmit() {
            let Some((i, len)) = self.tx_token.get_mut(usize::from(token)).and_then(Option::take) else { return };
            // SAFETY: the same buffer and length as queued with this token.
            let _ = unsafe { self.net.transmit_complete(token, &self.tx_bufs[i][..len]) };
            self.tx_free.push(i);
        }
    }

    /// Queues `frame` for transmission and returns without waiting for the device.
    pub fn send(&mut self, frame: &[u8]) -> Result<(), NetError> {
        self.reap_tx();
        if frame.len() > Self::MAX_FRAME {
            return Err(NetError::TooLong);
        }
        let Some(i) = self.tx_free.pop() else {
            // The device must hear of the queued frames to free their buffers.
            self.flush();
            return Err(NetError::Busy);
        };
        let buf = &mut self.tx_bufs[i];
        let hdr = match self.net.fill_buffer_header(buf) {
            Ok(h) if h + frame.len() <= buf.len() => h,
            _ => {
                self.tx_free.push(i);
                return Err(NetError::TooLong);
            }
        };
        buf[hdr..hdr + frame.len()].copy_from_slice(frame);
        let len = hdr + frame.len();
        // SAFETY: the buffer is owned by `self` and untouched until `reap_tx` completes this
        // token (or `net`, dropped first, detaches the queue).
        match unsafe { self.net.transmit_begin(&self.tx_bufs[i][..len]) } {
            Ok(token) => match self.tx_token.get_mut(usize::from(token)) {
                Some(slot) => {
                    *slot = Some((i, len));
                    Ok(())
                }
                None => Err(NetError::Io),
            },
            Err(_) => {
                self.tx_free.push(i);
                self.flush();
                Err(NetError::Busy)
            }
        }
    }
}
