//! netif: the network device protocol (`xen/include/public/io/netif.h`).
//!
//! Two rings: tx (guest → backend, 12-byte slots) and rx (backend → guest, 8-byte slots). Both
//! may carry `netif_extra_info` in a slot that follows one flagged `extra_info`; which layout a
//! slot holds depends on the previous slot, so the tx request and rx response ring entries are
//! raw slots ([`NetifTxSlot`], [`NetifRxSlot`]) that the reader interprets in order.

use core::fmt;

use super::bytes::{put_u16, put_u32, u16_at, u32_at};
use crate::entry::{RingEntry, RingProtocol};

/// Page size the offsets refer to.
pub const PAGE_SIZE: u32 = 4096;
/// `XEN_NETIF_NR_SLOTS_MIN`: every backend must accept packets of this many slots.
pub const NR_SLOTS_MIN: u32 = 18;
/// `XEN_NETIF_MAX_TX_SIZE`.
pub const MAX_TX_SIZE: u32 = 0xFFFF;

/// `NETTXF_csum_blank`.
pub const TXF_CSUM_BLANK: u16 = 1 << 0;
/// `NETTXF_data_validated`.
pub const TXF_DATA_VALIDATED: u16 = 1 << 1;
/// `NETTXF_more_data`.
pub const TXF_MORE_DATA: u16 = 1 << 2;
/// `NETTXF_extra_info`.
pub const TXF_EXTRA_INFO: u16 = 1 << 3;
const TXF_ALL: u16 = TXF_CSUM_BLANK | TXF_DATA_VALIDATED | TXF_MORE_DATA | TXF_EXTRA_INFO;

/// `NETRXF_data_validated` (note: bits 0 and 1 are swapped relative to tx).
pub const RXF_DATA_VALIDATED: u16 = 1 << 0;
/// `NETRXF_csum_blank`.
pub const RXF_CSUM_BLANK: u16 = 1 << 1;
/// `NETRXF_more_data`.
pub const RXF_MORE_DATA: u16 = 1 << 2;
/// `NETRXF_extra_info`.
pub const RXF_EXTRA_INFO: u16 = 1 << 3;
/// `NETRXF_gso_prefix` (deprecated).
pub const RXF_GSO_PREFIX: u16 = 1 << 4;
const RXF_ALL: u16 = RXF_DATA_VALIDATED | RXF_CSUM_BLANK | RXF_MORE_DATA | RXF_EXTRA_INFO | RXF_GSO_PREFIX;

/// `NETIF_RSP_DROPPED`.
pub const RSP_DROPPED: i16 = -2;
/// `NETIF_RSP_ERROR`.
pub const RSP_ERROR: i16 = -1;
/// `NETIF_RSP_OKAY`.
pub const RSP_OKAY: i16 = 0;
/// `NETIF_RSP_NULL`: the response to an extra-info slot.
pub const RSP_NULL: i16 = 1;

/// `XEN_NETIF_EXTRA_TYPE_GSO`.
pub const EXTRA_TYPE_GSO: u8 = 1;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_ADD`.
pub const EXTRA_TYPE_MCAST_ADD: u8 = 2;
/// `XEN_NETIF_EXTRA_TYPE_MCAST_DEL`.
pub const EXTRA_TYPE_MCAST_DEL: u8 = 3;
/// `XEN_NETIF_EXTRA_TYPE_HASH`.
pub const EXTRA_TYPE_HASH: u8 = 4;
/// `XEN_NETIF_EXTRA_FLAG_MORE`: another extra-info slot follows.
pub const EXTRA_FLAG_MORE: u8 = 1 << 0;
/// `XEN_NETIF_GSO_TYPE_TCPV4`.
pub const GSO_TYPE_TCPV4: u8 = 1;
/// `XEN_NETIF_GSO_TYPE_TCPV6`.
pub const GSO_TYPE_TCPV6: u8 = 2;

/// `struct netif_tx_request` (netif.h). In the first slot of a packet `size` is the whole
/// packet's size; in later slots it is that fragment's size.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetifTxRequest {
    /// Grant of the data page.
    pub gref: u32,
    /// Offset of the data in the page.
    pub offset: u16,
    /// `NETTXF_*`.
    pub flags: u16,
    /// Echoed in the response.
    pub id: u16,
    /// Packet size (first slot) or fragment size.
    pub size: u16,
}

/// `struct netif_tx_response` (netif.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetifTxResponse {
    /// The request's id (meaningless when `status` is `NETIF_RSP_NULL`).
    pub id: u16,
    /// `NETIF_RSP_*`.
    pub status: i16,
}

/// `struct netif_rx_request` (netif.h): a page the guest offers for received data.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetifRxRequest {
    /// Echoed in the response.
    pub id: u16,
    /// Padding.
    pub pad: u16,
    /// Grant of the page.
    pub gref: u32,
}

/// `struct netif_rx_response` (netif.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetifRxResponse {
    /// The request's id.
    pub id: u16,
    /// Offset of the data in the page.
    pub offset: u16,
    /// `NETRXF_*`.
    pub flags: u16,
    /// Bytes received (> 0) or `NETIF_RSP_*` (< 0).
    pub status: i16,
}

/// `struct netif_extra_info` (netif.h): `type`, `flags`, then a 6-byte union (gso, mcast, hash).
#[repr(C, align(2))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetifExtraInfo {
    /// `XEN_NETIF_EXTRA_TYPE_*`.
    pub extra_type: u8,
    /// `XEN_NETIF_EXTRA_FLAG_*`.
    pub flags: u8,
    /// The union `u`, as bytes.
    pub u: [u8; 6],
}

/// A validated extra-info slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraInfo {
    /// Segmentation offload: MSS, `XEN_NETIF_GSO_TYPE_*`, feature bits.
    Gso { size: u16, gso_type: u8, features: u16 },
    /// Add a multicast address.
    McastAdd([u8; 6]),
    /// Remove a multicast address.
    McastDel([u8; 6]),
    /// Packet hash.
    Hash { hash_type: u8, algorithm: u8, value: [u8; 4] },
}

/// What a peer put in a netif slot that the spec forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetifError {
    /// Flag bits netif.h does not define.
    UnknownFlags { flags: u16 },
    /// Data would run past the end of its 4 KiB page.
    PastPage { offset: u16, size: u32 },
    /// The fragments after the first add up to more than the packet size in the first slot.
    FragmentsExceedPacket { packet: u32, fragments: u32 },
    /// More slots in one packet than the backend accepts.
    TooManySlots { slots: u32, limit: u32 },
    /// A response status netif.h does not define.
    UnknownStatus { status: i16 },
    /// Extra-info type 0 (`NONE`, "never used") or beyond `XEN_NETIF_EXTRA_TYPE_MAX`.
    UnknownExtraType { extra_type: u8 },
    /// Extra-info flag bits other than `MORE`.
    UnknownExtraFlags { flags: u8 },
    /// GSO extra info with an unknown GSO type or a zero MSS.
    BadGso { gso_type: u8, size: u16 },
}

impl fmt::Display for NetifError {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            NetifError::UnknownFlags { flags } => write!(f, "unknown netif flags {flags:#x}"),
            NetifError::PastPage { offset, size } => {
                write!(f, "offset {offset} + size {size} runs past the 4096-byte page")
            }
            NetifError::FragmentsExceedPacket { packet, fragments } => {
                write!(f, "fragments total {fragments} bytes but the packet is {packet} bytes")
            }
            NetifError::TooManySlots { slots, limit } => write!(f, "packet uses {slots} slots (limit {limit})"),
            NetifError::UnknownStatus { status } => write!(f, "unknown netif status {status}"),
            NetifError::UnknownExtraType { extra_type } => write!(f, "unknown extra-info type {extra_type}"),
            NetifError::UnknownExtraFlags { flags } => write!(f, "unknown extra-info flags {flags:#x}"),
            NetifError::BadGso { gso_type, size } => write!(f, "bad GSO info: type {gso_type}, size {size}"),
        }
    }
}

impl core::error::Error for NetifError {}

impl NetifTxRequest {
    /// Decode 12 bytes (infallible).
    #[inline]
    pub fn from_raw(b: &[u8; 12]) -> Self {
        Self { gref: u32_at(b, 0), offset: u16_at(b, 4), flags: u16_at(b, 6), id: u16_at(b, 8), size: u16_at(b, 10) }
    }

    /// Encode.
    #[inline]
    pub fn to_raw(&self) -> [u8; 12] {
        let mut b = [0; 12];
        put_u32(&mut b, 0, self.gref);
        put_u32(&mut b, 4, u32::from(self.offset) | u32::from(self.flags) << 16);
        put_u32(&mut b, 8, u32::from(self.id) | u32::from(self.size) << 16);
        b
    }

    /// Per-slot checks: known flags and, for a non-first slot, `offset + size` inside the page.
    /// (The first slot's fragment size is only known once the packet is complete: use
    /// [`TxPacketCheck`].)
    #[inline]
    pub fn validate(&self, first_slot: bool) -> Result<(), NetifError> {
        if self.flags & !TXF_ALL != 0 {
            return Err(NetifError::UnknownFlags { flags: self.flags });
        }
        if u32::from(self.offset) >= PAGE_SIZE
            || (!first_slot && u32::from(self.offset) + u32::from(self.size) > PAGE_SIZE)
        {
            return Err(NetifError::PastPage { offset: self.offset, size: u32::from(self.size) });
        }
        Ok(())
    }
}

/// Summary of a validated tx packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxPacket {
    /// Total bytes.
    pub size: u32,
    /// Bytes in the first slot's page.
    pub first_fragment: u32,
    /// Data slots used.
    pub slots: u32,
}

/// Validates one tx packet slot by slot: first slot, then each `more_data` slot, then
/// [`finish`](Self::finish) (which checks the first fragment once its size is known).
#[derive(Debug, Clone, Copy)]
pub struct TxPacketCheck {
    first: NetifTxRequest,
    fragments: u32,
    slots: u32,
    slot_limit: u32,
}

impl TxPacketCheck {
    /// Start with the packet's first slot; reject packets of more than `slot_limit` slots
    /// (at least [`NR_SLOTS_MIN`]).
    #[inline]
    pub fn first(first: &NetifTxRequest, slot_limit: u32) -> Result<Self, NetifError> {
        first.validate(true)?;
        Ok(Self { first: *first, fragments: 0, slots: 1, slot_limit: slot_limit.max(NR_SLOTS_MIN) })
    }

    /// Add a following slot.
    #[inline]
    pub fn next(&mut self, slot: &NetifTxRequest) -> Result<(), NetifError> {
        slot.validate(false)?;
        self.slots += 1;
        if self.slots > self.slot_limit {
            return Err(NetifError::TooManySlots { slots: self.slots, limit: self.slot_limit });
        }
        self.fragments += u32::from(slot.size);
        let packet = u32::from(self.first.size);
        if self.fragments > packet {
            return Err(NetifError::FragmentsExceedPacket { packet, fragments: self.fragments });
        }
        Ok(())
    }

    /// Finish: the first slot's own fragment (packet size minus the rest) must fit its page.
    #[inline]
    pub fn finish(self) -> Result<TxPacket, NetifError> {
        let size = u32::from(self.first.size);
        let first_fragment = size - self.fragments;
        if u32::from(self.first.offset) + first_fragment > PAGE_SIZE {
            return Err(NetifError::PastPage { offset: self.first.offset, size: first_fragment });
        }
        Ok(TxPacket { size, first_fragment, slots: self.slots })
    }
}

impl NetifTxResponse {
    /// Decode (infallible).
    #[inline]
    pub fn from_raw(b: &[u8; 4]) -> Self {
        Self { id: u16_at(b, 0), status: u16_at(b, 2) as i16 }
    }
    /// Encode.
    #[inline]
    pub fn to_raw(&self) -> [u8; 4] {
        (u32::from(self.id) | u32::from(self.status as u16) << 16).to_le_bytes()
    }
    /// Status must be one of `NETIF_RSP_*`.
    #[inline]
    pub fn validate(&self) -> Result<(), NetifError> {
        match self.status {
            RSP_DROPPED | RSP_ERROR | RSP_OKAY | RSP_NULL => Ok(()),
            status => Err(NetifError::UnknownStatus { status }),
        }
    }
}

impl NetifRxRequest {
    /// Decode (infallible).
    #[inline]
    pub fn from_raw(b: &[u8; 8]) -> Self {
        Self { id: u16_at(b, 0), pad: u16_at(b, 2), gref: u32_at(b, 4) }
    }
    /// Encode (padding zeroed).
    #[inline]
    pub fn to_raw(&self) -> [u8; 8] {
        let mut b = [0; 8];
        put_u16(&mut b, 0, self.id);
        put_u32(&mut b, 4, self.gref);
        b
    }
}

impl NetifRxResponse {
    /// Decode (infallible).
    #[inline]
    pub fn from_raw(b: &[u8; 8]) -> Self {
        Self { id: u16_at(b, 0), offset: u16_at(b, 2), flags: u16_at(b, 4), status: u16_at(b, 6) as i16 }
    }
    /// Encode.
    #[inline]
    pub fn to_raw(&self) -> [u8; 8] {
        let mut b = [0; 8];
        put_u32(&mut b, 0, u32::from(self.id) | u32::from(self.offset) << 16);
        put_u32(&mut b, 4, u32::from(self.flags) | u32::from(self.status as u16) << 16);
        b
    }
    /// Known flags; a status that is a byte count (> 0, data inside the page) or an error.
    #[inline]
    pub fn validate(&self) -> Result<(), NetifError> {
        if self.flags & !RXF_ALL != 0 {
            return Err(NetifError::UnknownFlags { flags: self.flags });
        }
        if self.status < RSP_DROPPED {
            return Err(NetifError::UnknownStatus { status: self.status });
        }
        if self.status > 0 && u32::from(self.offset) + self.status as u32 > PAGE_SIZE {
            return Err(NetifError::PastPage { offset: self.offset, size: self.status as u32 });
        }
        Ok(())
    }
}

impl NetifExtraInfo {
    /// Decode the first 8 bytes of a slot (infallible).
    #[inline]
    pub fn from_raw(b: &[u8]) -> Self {
        let mut u = [0; 6];
        u.copy_from_slice(&b[2..8]);
        Self { extra_type: b[0], flags: b[1], u }
    }
    /// Encode.
    #[inline]
    pub fn to_raw(&self) -> [u8; 8] {
        let mut b = [0; 8];
        b[0] = self.extra_type;
        b[1] = self.flags;
        b[2..].copy_from_slice(&self.u);
        b
    }
    /// Whether another extra-info slot follows.
    #[inline]
    pub fn more(&self) -> bool {
        self.flags & EXTRA_FLAG_MORE != 0
    }
    /// Build a GSO extra-info slot.
    #[inline]
    pub fn gso(size: u16, gso_type: u8, features: u16, more: bool) -> Self {
        let mut u = [0; 6];
        put_u16(&mut u, 0, size);
        u[2] = gso_type;
        put_u16(&mut u, 4, features);
        Self { extra_type: EXTRA_TYPE_GSO, flags: if more { EXTRA_FLAG_MORE } else { 0 }, u }
    }
    /// Validate and interpret.
    #[inline]
    pub fn decode(&self) -> Result<ExtraInfo, NetifError> {
        if self.flags & !EXTRA_FLAG_MORE != 0 {
            return Err(NetifError::UnknownExtraFlags { flags: self.flags });
        }
        let u = &self.u;
        match self.extra_type {
            EXTRA_TYPE_GSO => {
                let (size, gso_type, features) = (u16_at(u, 0), u[2], u16_at(u, 4));
                if !matches!(gso_type, GSO_TYPE_TCPV4 | GSO_TYPE_TCPV6) || size == 0 {
                    return Err(NetifError::BadGso { gso_type, size });
                }
                Ok(ExtraInfo::Gso { size, gso_type, features })
            }
            EXTRA_TYPE_MCAST_ADD => Ok(ExtraInfo::McastAdd(*u)),
            EXTRA_TYPE_MCAST_DEL => Ok(ExtraInfo::McastDel(*u)),
            EXTRA_TYPE_HASH => {
                Ok(ExtraInfo::Hash { hash_type: u[0], algorithm: u[1], value: [u[2], u[3], u[4], u[5]] })
            }
            extra_type => Err(NetifError::UnknownExtraType { extra_type }),
        }
    }
}

/// A tx request slot: a `netif_tx_request`, or a `netif_extra_info` when the previous slot had
/// `NETTXF_extra_info` (or was an extra with `MORE`). Read from the ring it is always
/// `Request(raw)`; the back end calls [`NetifTxSlot::as_extra`] on slots the packet says are
/// extras.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetifTxSlot {
    /// A data slot.
    Request(NetifTxRequest),
    /// An extra-info slot.
    Extra(NetifExtraInfo),
}

impl NetifTxSlot {
    /// The slot as a data request.
    #[inline]
    pub fn as_request(&self) -> NetifTxRequest {
        NetifTxRequest::from_raw(&self.to_bytes())
    }
    /// The slot as extra info.
    #[inline]
    pub fn as_extra(&self) -> NetifExtraInfo {
        NetifExtraInfo::from_raw(&self.to_bytes())
    }
}

impl RingEntry for NetifTxSlot {
    type Bytes = [u8; 12];
    #[inline]
    fn from_bytes(bytes: &Self::Bytes) -> Self {
        NetifTxSlot::Request(NetifTxRequest::from_raw(bytes))
    }
    #[inline]
    fn to_bytes(&self) -> Self::Bytes {
        match self {
            NetifTxSlot::Request(r) => r.to_raw(),
            NetifTxSlot::Extra(e) => {
                let mut b = [0; 12];
                b[..8].copy_from_slice(&e.to_raw());
                b
            }
        }
    }
    #[inline]
    fn tracking_id(&self) -> Option<u64> {
        match self {
            NetifTxSlot::Request(r) => Some(u64::from(r.id)),
            NetifTxSlot::Extra(_) => None,
        }
    }
}

impl RingEntry for NetifTxResponse {
    type Bytes = [u8; 4];
    #[inline]
    fn from_bytes(bytes: &Self::Bytes) -> Self {
        Self::from_raw(bytes)
    }
    #[inline]
    fn to_bytes(&self) -> Self::Bytes {
        self.to_raw()
    }
    /// `NETIF_RSP_NULL` answers an extra-info slot and carries no meaningful id.
    #[inline]
    fn tracking_id(&self) -> Option<u64> {
        (self.status != RSP_NULL).then_some(u64::from(self.id))
    }
}

/// An rx response slot: a `netif_rx_response`, or extra info after one flagged
/// `NETRXF_extra_info`. Rx responses sit in their request's slot and Linux netfront matches them
/// by position, so the ring does not track rx ids; the front end checks `id` against its slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetifRxSlot {
    /// A data response.
    Response(NetifRxResponse),
    /// An extra-info slot.
    Extra(NetifExtraInfo),
}

impl NetifRxSlot {
    /// The slot as a response.
    #[inline]
    pub fn as_response(&self) -> NetifRxResponse {
        NetifRxResponse::from_raw(&self.to_bytes())
    }
    /// The slot as extra info.
    #[inline]
    pub fn as_extra(&self) -> NetifExtraInfo {
        NetifExtraInfo::from_raw(&self.to_bytes())
    }
}

impl RingEntry for NetifRxSlot {
    type Bytes = [u8; 8];
    #[inline]
    fn from_bytes(bytes: &Self::Bytes) -> Self {
        NetifRxSlot::Response(NetifRxResponse::from_raw(bytes))
    }
    #[inline]
    fn to_bytes(&self) -> Self::Bytes {
        match self {
            NetifRxSlot::Response(r) => r.to_raw(),
            NetifRxSlot::Extra(e) => e.to_raw(),
        }
    }
}

impl RingEntry for NetifRxRequest {
    type Bytes = [u8; 8];
    #[inline]
    fn from_bytes(bytes: &Self::Bytes) -> Self {
        Self::from_raw(bytes)
    }
    #[inline]
    fn to_bytes(&self) -> Self::Bytes {
        self.to_raw()
    }
}

/// The netif tx ring (`DEFINE_RING_TYPES(netif_tx, ...)`): 256 slots of 12 bytes.
#[derive(Debug)]
pub enum NetifTx {}

impl RingProtocol for NetifTx {
    type Request = NetifTxSlot;
    type Response = NetifTxResponse;
}

/// The netif rx ring (`DEFINE_RING_TYPES(netif_rx, ...)`): 256 slots of 8 bytes.
#[derive(Debug)]
pub enum NetifRx {}

impl RingProtocol for NetifRx {
    type Request = NetifRxRequest;
    type Response = NetifRxSlot;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_c_abi() {
        assert_eq!(size_of::<NetifTxRequest>(), 12);
        assert_eq!(size_of::<NetifTxResponse>(), 4);
        assert_eq!(size_of::<NetifRxRequest>(), 8);
        assert_eq!(size_of::<NetifRxResponse>(), 8);
        assert_eq!(size_of::<NetifExtraInfo>(), 8);
        assert_eq!(<NetifTx as RingProtocol>::SLOT_SIZE, 12);
        assert_eq!(<NetifRx as RingProtocol>::SLOT_SIZE, 8);
    }

    #[test]
    fn tx_packet_checks() {
        let slot = |offset, size, flags| NetifTxRequest { gref: 1, offset, flags, id: 0, size };
        // 3000-byte packet: first page holds 1000 bytes at offset 3096, then 2000 bytes.
        let mut check = TxPacketCheck::first(&slot(3096, 3000, TXF_MORE_DATA), 18).unwrap();
        check.next(&slot(0, 2000, 0)).unwrap();
        assert_eq!(check.finish(), Ok(TxPacket { size: 3000, first_fragment: 1000, slots: 2 }));
        // First fragment past the page.
        let check = TxPacketCheck::first(&slot(4000, 200, 0), 18).unwrap();
        assert_eq!(check.finish(), Err(NetifError::PastPage { offset: 4000, size: 200 }));
        // A later fragment past the page.
        let mut check = TxPacketCheck::first(&slot(0, 5000, TXF_MORE_DATA), 18).unwrap();
        assert_eq!(check.next(&slot(100, 4000, 0)), Err(NetifError::PastPage { offset: 100, size: 4000 }));
        // Fragments larger than the packet.
        let mut check = TxPacketCheck::first(&slot(0, 100, TXF_MORE_DATA), 18).unwrap();
        assert_eq!(
            check.next(&slot(0, 101, 0)),
            Err(NetifError::FragmentsExceedPacket { packet: 100, fragments: 101 })
        );
        // Too many slots.
        let mut check = TxPacketCheck::first(&slot(0, 60000, TXF_MORE_DATA), 18).unwrap();
        for _ in 0..17 {
            check.next(&slot(0, 1, TXF_MORE_DATA)).unwrap();
        }
        assert_eq!(check.next(&slot(0, 1, 0)), Err(NetifError::TooManySlots { slots: 19, limit: 18 }));
        assert_eq!(slot(0, 1, 1 << 9).validate(true), Err(NetifError::UnknownFlags { flags: 1 << 9 }));
    }

    #[test]
    fn extra_info_and_responses() {
        let gso = NetifExtraInfo::gso(1448, GSO_TYPE_TCPV4, 0, true);
        assert!(gso.more());
        let slot = NetifTxSlot::Extra(gso);
        let back = NetifTxSlot::from_bytes(&slot.to_bytes());
        assert_eq!(back.as_extra().decode(), Ok(ExtraInfo::Gso { size: 1448, gso_type: 1, features: 0 }));
        assert_eq!(slot.tracking_id(), None);
        assert_eq!(
            NetifExtraInfo { extra_type: 0, ..gso }.decode(),
            Err(NetifError::UnknownExtraType { extra_type: 0 })
        );
        assert_eq!(
            NetifExtraInfo { extra_type: 5, ..gso }.decode(),
            Err(NetifError::UnknownExtraType { extra_type: 5 })
        );
        assert_eq!(NetifExtraInfo { flags: 2, ..gso }.decode(), Err(NetifError::UnknownExtraFlags { flags: 2 }));
        assert_eq!(NetifExtraInfo::gso(0, 1, 0, false).decode(), Err(NetifError::BadGso { gso_type: 1, size: 0 }));
        let null = NetifTxResponse { id: 9, status: RSP_NULL };
        assert_eq!(null.tracking_id(), None);
        assert_eq!(NetifTxResponse { id: 9, status: 0 }.tracking_id(), Some(9));
        assert_eq!(NetifTxResponse { id: 9, status: 2 }.validate(), Err(NetifError::UnknownStatus { status: 2 }));
        let rx = NetifRxResponse { id: 1, offset: 4000, flags: 0, status: 97 };
        assert_eq!(rx.validate(), Err(NetifError::PastPage { offset: 4000, size: 97 }));
        assert_eq!(NetifRxResponse { status: 96, ..rx }.validate(), Ok(()));
        assert_eq!(NetifRxResponse { status: -3, ..rx }.validate(), Err(NetifError::UnknownStatus { status: -3 }));
        assert_eq!(NetifRxResponse::from_raw(&rx.to_raw()), rx);
    }
}
