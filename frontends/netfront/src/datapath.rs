//! The data path: both netif rings, their page pools and the smoltcp [`Device`] over them.
//!
//! * tx: a pool of pages granted (read-only) to the backend. [`Device::transmit`] hands out a
//!   token only while a page is free; the token's `consume` lets smoltcp write the frame straight
//!   into the page and pushes `{gref, offset 0, flags 0, id = page index, size}`. A tx response
//!   frees its page (`ERROR`/`DROPPED` are counted, not fatal).
//! * rx: a pool of pages granted (writable) to the backend, all posted as `{id = page index,
//!   gref}`. [`Device::receive`] yields a token for the next completed response; `consume` hands
//!   smoltcp `&page[offset..offset + len]` and the page is posted again when the token drops.
//!
//! Nothing is allocated per packet. Every response is validated (status, flags, length within the
//! page, id in range and outstanding); a violation marks the path broken ([`DataPath::broken`])
//! and the owner reconnects. Requests are made visible at once but the notification decision is
//! batched: call [`DataPath::flush`] after each `Interface::poll` (it publishes and notifies).
//!
//! Generic over the ring memory and the notification function so that the host tests can run two
//! smoltcp stacks over it with a fake backend.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;

use shared_ring::wire::netif::{
    NetifError, NetifRxRequest, NetifTxRequest, NetifTxSlot, RSP_NULL, RSP_OKAY, RXF_EXTRA_INFO, RXF_GSO_PREFIX,
    RXF_MORE_DATA,
};
use shared_ring::{FrontRing, LayoutError, NetifRx, NetifTx, PeerError, SharedMemory};
use smoltcp::phy::{self, Device, DeviceCapabilities, Medium};
use smoltcp::time::Instant;

/// Bytes per pool page.
pub const PAGE: usize = 4096;
/// Largest Ethernet frame (without FCS) either way.
pub const MTU: usize = 1514;
/// Smallest frame: an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// Requests pushed without a notification decision before one is forced.
const BATCH: u32 = 32;

/// A pool page: its grant ref and address (4 KiB, page-aligned, owned by the pool's owner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub gref: u32,
    pub ptr: NonNull<u8>,
}

/// Counters; [`crate::NetFront`] keeps them across reconnections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames the backend accepted (`OKAY`).
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames the backend refused (`ERROR`/`DROPPED`).
    pub tx_errors: u64,
    /// Frames smoltcp produced while no tx page was free (lost; TCP retransmits).
    pub tx_dropped: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Error or empty rx responses (the page is posted again).
    pub rx_errors: u64,
    /// Backend protocol violations (each one ends the connection).
    pub violations: u64,
    /// Connections re-established after the first.
    pub reconnects: u64,
}

impl Stats {
    /// Adds `o`'s counters to ours.
    pub fn add(&mut self, o: &Stats) {
        self.tx_packets += o.tx_packets;
        self.tx_bytes += o.tx_bytes;
        self.tx_errors += o.tx_errors;
        self.tx_dropped += o.tx_dropped;
        self.rx_packets += o.rx_packets;
        self.rx_bytes += o.rx_bytes;
        self.rx_errors += o.rx_errors;
        self.violations += o.violations;
        self.reconnects += o.reconnects;
    }
}

/// What the backend did wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Violation {
    /// Ring indices (responses to nothing, unknown tx id, producer going backwards).
    Ring(PeerError),
    /// A response netif.h forbids (unknown status or flags, data past the page).
    Netif(NetifError),
    /// `NETIF_RSP_NULL` though we never send extra-info slots.
    TxNull,
    /// rx flags we did not negotiate (more_data, extra_info, gso_prefix).
    RxFlags(u16),
    /// An rx response for a buffer that is not posted.
    RxId(u16),
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::Ring(e) => write!(f, "ring: {e}"),
            Violation::Netif(e) => write!(f, "bad response: {e}"),
            Violation::TxNull => f.write_str("NULL tx response without an extra-info slot"),
            Violation::RxFlags(x) => write!(f, "rx response flags {x:#x} not negotiated"),
            Violation::RxId(id) => write!(f, "rx response id {id} is not a posted buffer"),
        }
    }
}

/// Sends a notification on an event-channel port.
pub type Notifier = fn(u32);

struct TxSide<M: SharedMemory> {
    ring: FrontRing<NetifTx, M>,
    pages: Vec<Page>,
    /// Frame size of each page's outstanding request.
    sizes: Vec<u16>,
    free: Vec<u16>,
    /// Where frames go when no page is free (allocated once).
    scratch: Vec<u8>,
    port: u32,
    notify: Notifier,
    stats: Stats,
    broken: Option<Violation>,
}

struct RxSide<M: SharedMemory> {
    ring: FrontRing<NetifRx, M>,
    pages: Vec<Page>,
    posted: Vec<bool>,
    port: u32,
    notify: Notifier,
    stats: Stats,
    broken: Option<Violation>,
}

/// One connection's rings and pools.
pub struct DataPath<M: SharedMemory> {
    tx: TxSide<M>,
    rx: RxSide<M>,
}

impl<M: SharedMemory> TxSide<M> {
    fn publish(&mut self) {
        if self.ring.publish_requests().is_needed() {
            (self.notify)(self.port);
        }
    }

    /// Frees the pages of answered requests.
    fn reap(&mut self) {
        while self.broken.is_none() {
            let r = match self.ring.poll_response() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    self.broken = Some(Violation::Ring(e));
                    break;
                }
            };
            if let Err(e) = r.validate() {
                self.broken = Some(Violation::Netif(e));
                break;
            }
            if r.status == RSP_NULL {
                self.broken = Some(Violation::TxNull);
                break;
            }
            // The ring checked that the id is outstanding, and we only issue page indices.
            let id = r.id as usize;
            if id >= self.pages.len() {
                self.broken = Some(Violation::Ring(PeerError::UnknownResponseId { id: r.id.into() }));
                break;
            }
            self.free.push(r.id);
            if r.status == RSP_OKAY {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += u64::from(self.sizes[id]);
            } else {
                self.stats.tx_errors += 1;
            }
        }
    }

    fn free_pages(&mut self) -> usize {
        if self.free.is_empty() {
            self.reap();
        }
        if self.broken.is_some() { 0 } else { self.free.len() }
    }

    fn send<R, F: FnOnce(&mut [u8]) -> R>(&mut self, len: usize, f: F) -> R {
        let id = if (MIN_FRAME..=MTU).contains(&len) && self.free_pages() > 0 { self.free.pop() } else { None };
        let Some(id) = id else {
            self.stats.tx_dropped += 1;
            if self.scratch.len() < len {
                self.scratch.resize(len, 0); // only for a frame larger than the MTU: never
            }
            return f(&mut self.scratch[..len]);
        };
        let page = self.pages[id as usize];
        // SAFETY: a pool page (4 KiB, len <= MTU) that is free: no request of ours refers to it,
        // so the backend has no reason to read it now, and nothing else in this domain uses it.
        let buf = unsafe { core::slice::from_raw_parts_mut(page.ptr.as_ptr(), len) };
        let r = f(buf);
        let req = NetifTxRequest { gref: page.gref, offset: 0, flags: 0, id, size: len as u16 };
        match self.ring.push_request(NetifTxSlot::Request(req)) {
            Ok(()) => {
                self.sizes[id as usize] = len as u16;
                self.ring.flush_requests();
                if self.ring.undecided() >= BATCH {
                    self.publish();
                }
            }
            Err(_) => {
                // Cannot happen (fewer pages than slots, ids unique); lose the frame.
                self.free.push(id);
                self.stats.tx_dropped += 1;
            }
        }
        r
    }
}

impl<M: SharedMemory> RxSide<M> {
    fn publish(&mut self) {
        if self.ring.publish_requests().is_needed() {
            (self.notify)(self.port);
        }
    }

    fn post(&mut self, id: u16) {
        let req = NetifRxRequest { id, pad: 0, gref: self.pages[id as usize].gref };
        if self.ring.push_request(req).is_ok() {
            self.posted[id as usize] = true;
            self.ring.flush_requests();
            if self.ring.undecided() >= BATCH {
                self.publish();
            }
        }
        // A full ring cannot happen (fewer buffers than slots; each response was consumed
        // before its buffer is posted again).
    }

    /// The next received frame: (buffer id, offset, length).
    fn next(&mut self) -> Option<(u16, usize, usize)> {
        while self.broken.is_none() {
            let slot = match self.ring.poll_response() {
                Ok(Some(s)) => s,
                Ok(None) => return None,
                Err(e) => {
                    self.broken = Some(Violation::Ring(e));
                    return None;
                }
            };
            let r = slot.as_response();
            if let Err(e) = r.validate() {
                self.broken = Some(Violation::Netif(e));
                return None;
            }
            if r.flags & (RXF_MORE_DATA | RXF_EXTRA_INFO | RXF_GSO_PREFIX) != 0 {
                self.broken = Some(Violation::RxFlags(r.flags));
                return None;
            }
            if !self.posted.get(r.id as usize).copied().unwrap_or(false) {
                self.broken = Some(Violation::RxId(r.id));
                return None;
            }
            self.posted[r.id as usize] = false;
            // validate() checked offset + status <= 4096 for a positive status.
            if r.status < MIN_FRAME as i16 {
                self.stats.rx_errors += 1;
                self.post(r.id);
                continue;
            }
            return Some((r.id, r.offset as usize, r.status as usize));
        }
        None
    }
}

impl<M: SharedMemory> DataPath<M> {
    /// Initialises both rings (front side) and posts every rx page. At most 255 pages per pool
    /// are used (ids are ring slots; one slot stays free).
    pub fn new(
        tx_ring: M,
        rx_ring: M,
        mut tx_pages: Vec<Page>,
        mut rx_pages: Vec<Page>,
        port: u32,
        notify: Notifier,
    ) -> Result<Self, LayoutError> {
        let tx_ring = FrontRing::<NetifTx, M>::init(tx_ring)?;
        let rx_ring = FrontRing::<NetifRx, M>::init(rx_ring)?;
        tx_pages.truncate(tx_ring.layout().slots() as usize - 1);
        rx_pages.truncate(rx_ring.layout().slots() as usize - 1);
        let ntx = tx_pages.len();
        let nrx = rx_pages.len();
        let tx = TxSide {
            ring: tx_ring,
            pages: tx_pages,
            sizes: vec![0; ntx],
            free: (0..ntx as u16).rev().collect(),
            scratch: vec![0; PAGE],
            port,
            notify,
            stats: Stats::default(),
            broken: None,
        };
        let mut rx = RxSide {
            ring: rx_ring,
            pages: rx_pages,
            posted: vec![false; nrx],
            port,
            notify,
            stats: Stats::default(),
            broken: None,
        };
        for id in 0..nrx as u16 {
            rx.post(id);
        }
        rx.publish();
        Ok(Self { tx, rx })
    }

    /// Publishes pushed requests on both rings and notifies the backend if it asked.
    pub fn flush(&mut self) {
        self.tx.publish();
        self.rx.publish();
    }

    /// The first protocol violation seen, if any.
    pub fn broken(&self) -> Option<Violation> {
        self.rx.broken.or(self.tx.broken)
    }

    pub fn stats(&self) -> Stats {
        let mut s = self.tx.stats;
        s.add(&self.rx.stats);
        s.violations = u64::from(self.broken().is_some());
        s
    }

    /// Free tx pages (after collecting tx responses).
    pub fn tx_free(&mut self) -> usize {
        self.tx.reap();
        self.tx.free_pages()
    }

    /// Call before sleeping on the event channel: publishes, then re-arms the response events
    /// (rx always; tx only when no tx page is free, so tx completions do not wake us otherwise)
    /// and says whether anything is ready now (then do not sleep).
    pub fn final_check(&mut self) -> bool {
        self.flush();
        if self.broken().is_some() {
            return true;
        }
        let rx = match self.rx.ring.final_check_for_responses() {
            Ok(x) => x,
            Err(e) => {
                self.rx.broken = Some(Violation::Ring(e));
                return true;
            }
        };
        let tx = self.tx.free.is_empty()
            && match self.tx.ring.final_check_for_responses() {
                Ok(x) => x,
                Err(e) => {
                    self.tx.broken = Some(Violation::Ring(e));
                    return true;
                }
            };
        rx || tx
    }

    /// Gives the pools back (to end their grants).
    pub fn into_pages(self) -> (Vec<Page>, Vec<Page>) {
        (self.tx.pages, self.rx.pages)
    }

    /// rx buffers currently posted.
    pub fn rx_posted(&self) -> usize {
        self.rx.posted.iter().filter(|p| **p).count()
    }
}

/// A received frame; its page is posted again when the token drops.
pub struct RxToken<'a, M: SharedMemory> {
    side: &'a mut RxSide<M>,
    id: u16,
    offset: usize,
    len: usize,
}

impl<M: SharedMemory> phy::RxToken for RxToken<'_, M> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        let page = self.side.pages[self.id as usize];
        self.side.stats.rx_packets += 1;
        self.side.stats.rx_bytes += self.len as u64;
        // SAFETY: offset + len <= 4096 (validated) inside a pool page that is not posted: the
        // backend was done writing it when it responded. A misbehaving backend can still copy
        // into it (the grant stays valid); that can only garble the bytes, which smoltcp parses
        // as untrusted input anyway.
        let buf = unsafe { core::slice::from_raw_parts(page.ptr.as_ptr().add(self.offset), self.len) };
        f(buf)
    }
}

impl<M: SharedMemory> Drop for RxToken<'_, M> {
    fn drop(&mut self) {
        self.side.post(self.id);
    }
}

/// Room for one frame: a tx page if one is free when smoltcp writes, else the frame is dropped.
pub struct TxToken<'a, M: SharedMemory> {
    side: &'a mut TxSide<M>,
}

impl<M: SharedMemory> phy::TxToken for TxToken<'_, M> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        self.side.send(len, f)
    }
}

/// The device capabilities netfront offers: Ethernet, 1514-byte frames, software checksums.
pub fn capabilities(burst: usize) -> DeviceCapabilities {
    let mut caps = DeviceCapabilities::default();
    caps.medium = Medium::Ethernet;
    caps.max_transmission_unit = MTU;
    caps.max_burst_size = Some(burst.max(1));
    caps
}

impl<M: SharedMemory> Device for DataPath<M> {
    type RxToken<'a>
        = RxToken<'a, M>
    where
        Self: 'a;
    type TxToken<'a>
        = TxToken<'a, M>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        if self.tx.broken.is_some() {
            return None;
        }
        let (id, offset, len) = self.rx.next()?;
        Some((RxToken { side: &mut self.rx, id, offset, len }, TxToken { side: &mut self.tx }))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        if self.rx.broken.is_some() || self.tx.free_pages() == 0 {
            return None;
        }
        Some(TxToken { side: &mut self.tx })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        capabilities(self.tx.pages.len())
    }
}

#[cfg(test)]
mod tests;
