//! blkif: the block device protocol (`xen/include/public/io/blkif.h`).
//!
//! A request slot is 112 bytes; its `operation` byte decides which of three C layouts it holds
//! (`blkif_request`, `blkif_request_discard`, `blkif_request_indirect`). The ring therefore
//! carries [`BlkifRequestSlot`] (the raw copy), and [`BlkifRequestSlot::decode`] turns it into a
//! validated [`BlockRequest`].

use core::fmt;

use super::bytes::{put_u16, put_u32, put_u64, u16_at, u32_at, u64_at};
use crate::entry::{RingEntry, RingProtocol};

/// `BLKIF_OP_READ`.
pub const OP_READ: u8 = 0;
/// `BLKIF_OP_WRITE`.
pub const OP_WRITE: u8 = 1;
/// `BLKIF_OP_WRITE_BARRIER`.
pub const OP_WRITE_BARRIER: u8 = 2;
/// `BLKIF_OP_FLUSH_DISKCACHE`.
pub const OP_FLUSH_DISKCACHE: u8 = 3;
/// `BLKIF_OP_RESERVED_1` (never valid here).
pub const OP_RESERVED_1: u8 = 4;
/// `BLKIF_OP_DISCARD`.
pub const OP_DISCARD: u8 = 5;
/// `BLKIF_OP_INDIRECT`.
pub const OP_INDIRECT: u8 = 6;
/// `BLKIF_MAX_SEGMENTS_PER_REQUEST`.
pub const MAX_SEGMENTS_PER_REQUEST: usize = 11;
/// `BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST`.
pub const MAX_INDIRECT_PAGES_PER_REQUEST: usize = 8;
/// Segments one indirect page holds (4096 / sizeof(blkif_request_segment)).
pub const SEGMENTS_PER_INDIRECT_PAGE: usize = 512;
/// Last 512-byte sector index inside a 4 KiB frame.
pub const LAST_SECTOR_IN_PAGE: u8 = 7;
/// `BLKIF_DISCARD_SECURE`.
pub const DISCARD_SECURE: u8 = 1;
/// `BLKIF_RSP_OKAY`.
pub const RSP_OKAY: i16 = 0;
/// `BLKIF_RSP_ERROR`.
pub const RSP_ERROR: i16 = -1;
/// `BLKIF_RSP_EOPNOTSUPP`.
pub const RSP_EOPNOTSUPP: i16 = -2;
/// Bytes of a request slot (`sizeof(blkif_request)`).
pub const REQUEST_SIZE: usize = 112;
/// Bytes of a response (`sizeof(blkif_response)`).
pub const RESPONSE_SIZE: usize = 16;

/// `struct blkif_request_segment` (blkif.h): one granted frame and the inclusive range of
/// 512-byte sectors in it.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkifSegment {
    /// Grant reference of the I/O frame.
    pub gref: u32,
    /// First sector in the frame (inclusive, 0..=7).
    pub first_sect: u8,
    /// Last sector in the frame (inclusive, first_sect..=7).
    pub last_sect: u8,
}

impl BlkifSegment {
    /// Sectors this segment covers (assumes it validated).
    #[inline]
    pub fn sectors(&self) -> u64 {
        u64::from(self.last_sect - self.first_sect) + 1
    }

    #[inline]
    fn decode(b: &[u8]) -> Self {
        Self { gref: u32_at(b, 0), first_sect: b[4], last_sect: b[5] }
    }

    /// One segment as it lies in a slot or an indirect page (8 bytes, unvalidated).
    #[inline]
    pub fn from_raw(b: &[u8; 8]) -> Self {
        Self::decode(b)
    }

    /// The raw image (padding zeroed).
    #[inline]
    pub fn to_raw(&self) -> [u8; 8] {
        let mut b = [0; 8];
        put_u32(&mut b, 0, self.gref);
        b[4] = self.first_sect;
        b[5] = self.last_sect;
        b
    }

    /// blkif.h's rule for segment number `segment`: `first_sect <= last_sect <= 7`.
    #[inline]
    pub fn validate(&self, segment: usize) -> Result<(), BlkifError> {
        if self.first_sect > self.last_sect {
            return Err(BlkifError::SectorsReversed {
                segment,
                first_sect: self.first_sect,
                last_sect: self.last_sect,
            });
        }
        if self.last_sect > LAST_SECTOR_IN_PAGE {
            return Err(BlkifError::SectorPastPage { segment, last_sect: self.last_sect });
        }
        Ok(())
    }
}

/// `struct blkif_request` (blkif.h): read, write, write-barrier and flush requests.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkifRequest {
    /// `BLKIF_OP_*`.
    pub operation: u8,
    /// Segments used in `seg`.
    pub nr_segments: u8,
    /// Virtual device handle.
    pub handle: u16,
    /// Private front-end value, echoed in the response.
    pub id: u64,
    /// Start sector (512-byte units).
    pub sector_number: u64,
    /// Data frames.
    pub seg: [BlkifSegment; MAX_SEGMENTS_PER_REQUEST],
}

/// `struct blkif_request_discard` (blkif.h, `BLKIF_OP_DISCARD`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkifRequestDiscard {
    /// `BLKIF_OP_DISCARD`.
    pub operation: u8,
    /// `BLKIF_DISCARD_SECURE` or 0.
    pub flag: u8,
    /// Virtual device handle.
    pub handle: u16,
    /// Private front-end value.
    pub id: u64,
    /// First sector to discard.
    pub sector_number: u64,
    /// Number of contiguous sectors.
    pub nr_sectors: u64,
}

/// `struct blkif_request_indirect` (blkif.h, `BLKIF_OP_INDIRECT`): segments live in granted
/// pages of 512 `blkif_request_segment`s each.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkifRequestIndirect {
    /// `BLKIF_OP_INDIRECT`.
    pub operation: u8,
    /// `BLKIF_OP_READ` or `BLKIF_OP_WRITE`.
    pub indirect_op: u8,
    /// Number of segments across the indirect pages.
    pub nr_segments: u16,
    /// Private front-end value.
    pub id: u64,
    /// Start sector.
    pub sector_number: u64,
    /// Virtual device handle.
    pub handle: u16,
    /// Grant references of the pages holding the segments.
    pub indirect_grefs: [u32; MAX_INDIRECT_PAGES_PER_REQUEST],
}

impl BlkifRequestIndirect {
    /// Indirect pages the request uses (assumes it validated).
    #[inline]
    pub fn pages(&self) -> usize {
        usize::from(self.nr_segments).div_ceil(SEGMENTS_PER_INDIRECT_PAGE)
    }
}

/// `struct blkif_response` (blkif.h).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlkifResponse {
    /// The request's id.
    pub id: u64,
    /// The request's operation.
    pub operation: u8,
    /// `BLKIF_RSP_*`.
    pub status: i16,
}

/// What a front end put in a blkif request slot that the spec forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlkifError {
    /// Operation code not defined by blkif.h (or `BLKIF_OP_RESERVED_1`).
    UnknownOperation { operation: u8 },
    /// More than 11 segments in a direct request.
    TooManySegments { nr_segments: u8 },
    /// A read or write with no segments.
    NoSegments { operation: u8 },
    /// A segment whose first sector comes after its last.
    SectorsReversed { segment: usize, first_sect: u8, last_sect: u8 },
    /// A segment reaching past sector 7 of its 4 KiB frame.
    SectorPastPage { segment: usize, last_sect: u8 },
    /// The request's sector range wraps past 2^64.
    SectorRangeOverflow { sector_number: u64 },
    /// Discard flag bits other than `BLKIF_DISCARD_SECURE`.
    UnknownDiscardFlags { flag: u8 },
    /// A discard of zero sectors.
    EmptyDiscard,
    /// An indirect request whose inner operation is neither read nor write.
    BadIndirectOperation { indirect_op: u8 },
    /// An indirect request with 0 segments or more than 8 pages' worth.
    BadIndirectSegmentCount { nr_segments: u16 },
    /// A response status not defined by blkif.h.
    UnknownStatus { status: i16 },
}

impl fmt::Display for BlkifError {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BlkifError::UnknownOperation { operation } => write!(f, "unknown blkif operation {operation}"),
            BlkifError::TooManySegments { nr_segments } => {
                write!(f, "request claims {nr_segments} segments, the limit is {MAX_SEGMENTS_PER_REQUEST}")
            }
            BlkifError::NoSegments { operation } => write!(f, "operation {operation} with no segments"),
            BlkifError::SectorsReversed { segment, first_sect, last_sect } => {
                write!(f, "segment {segment}: first sector {first_sect} after last sector {last_sect}")
            }
            BlkifError::SectorPastPage { segment, last_sect } => {
                write!(f, "segment {segment}: last sector {last_sect} is past the page (max 7)")
            }
            BlkifError::SectorRangeOverflow { sector_number } => {
                write!(f, "sector range starting at {sector_number} wraps past 2^64")
            }
            BlkifError::UnknownDiscardFlags { flag } => write!(f, "unknown discard flags {flag:#x}"),
            BlkifError::EmptyDiscard => write!(f, "discard of zero sectors"),
            BlkifError::BadIndirectOperation { indirect_op } => {
                write!(f, "indirect request wraps operation {indirect_op} (only read/write allowed)")
            }
            BlkifError::BadIndirectSegmentCount { nr_segments } => write!(
                f,
                "indirect request claims {nr_segments} segments (1..={})",
                MAX_INDIRECT_PAGES_PER_REQUEST * SEGMENTS_PER_INDIRECT_PAGE
            ),
            BlkifError::UnknownStatus { status } => write!(f, "unknown blkif response status {status}"),
        }
    }
}

impl core::error::Error for BlkifError {}

/// A validated blkif request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockRequest {
    /// Read, write, write-barrier or flush; `seg[..nr_segments]` checked.
    Direct(BlkifRequest),
    /// Discard.
    Discard(BlkifRequestDiscard),
    /// Indirect read or write; the segments in the indirect pages still need validating with
    /// [`BlkifSegment`] rules once mapped.
    Indirect(BlkifRequestIndirect),
}

impl BlockRequest {
    /// The id to echo in the response.
    #[inline]
    pub fn id(&self) -> u64 {
        match self {
            BlockRequest::Direct(r) => r.id,
            BlockRequest::Discard(r) => r.id,
            BlockRequest::Indirect(r) => r.id,
        }
    }
}

/// One blkif request slot, copied out of the ring: 112 raw bytes whose `operation` byte picks
/// the layout. The id is at offset 8 in every layout.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct BlkifRequestSlot {
    bytes: [u8; REQUEST_SIZE],
}

impl fmt::Debug for BlkifRequestSlot {
    #[inline]
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlkifRequestSlot").field("operation", &self.operation()).field("id", &self.id()).finish()
    }
}

impl BlkifRequestSlot {
    /// The raw slot bytes.
    #[inline]
    pub fn from_raw(bytes: [u8; REQUEST_SIZE]) -> Self {
        Self { bytes }
    }

    /// The raw bytes.
    #[inline]
    pub fn as_raw(&self) -> &[u8; REQUEST_SIZE] {
        &self.bytes
    }

    /// The operation byte.
    #[inline]
    pub fn operation(&self) -> u8 {
        self.bytes[0]
    }

    /// The request id (offset 8 in every layout).
    #[inline]
    pub fn id(&self) -> u64 {
        u64_at(&self.bytes, 8)
    }

    /// The slot read as a `blkif_request`, unvalidated.
    #[inline]
    pub fn as_request(&self) -> BlkifRequest {
        let b = &self.bytes;
        let mut seg = [BlkifSegment::default(); MAX_SEGMENTS_PER_REQUEST];
        for (i, s) in seg.iter_mut().enumerate() {
            *s = BlkifSegment::decode(&b[24 + i * 8..]);
        }
        BlkifRequest {
            operation: b[0],
            nr_segments: b[1],
            handle: u16_at(b, 2),
            id: u64_at(b, 8),
            sector_number: u64_at(b, 16),
            seg,
        }
    }

    /// The slot read as a `blkif_request_discard`, unvalidated.
    #[inline]
    pub fn as_discard(&self) -> BlkifRequestDiscard {
        let b = &self.bytes;
        BlkifRequestDiscard {
            operation: b[0],
            flag: b[1],
            handle: u16_at(b, 2),
            id: u64_at(b, 8),
            sector_number: u64_at(b, 16),
            nr_sectors: u64_at(b, 24),
        }
    }

    /// The slot read as a `blkif_request_indirect`, unvalidated.
    #[inline]
    pub fn as_indirect(&self) -> BlkifRequestIndirect {
        let b = &self.bytes;
        let mut indirect_grefs = [0; MAX_INDIRECT_PAGES_PER_REQUEST];
        for (i, gref) in indirect_grefs.iter_mut().enumerate() {
            *gref = u32_at(b, 28 + i * 4);
        }
        BlkifRequestIndirect {
            operation: b[0],
            indirect_op: b[1],
            nr_segments: u16_at(b, 2),
            id: u64_at(b, 8),
            sector_number: u64_at(b, 16),
            handle: u16_at(b, 24),
            indirect_grefs,
        }
    }

    /// Validate the slot against blkif.h and return the typed request.
    #[inline]
    pub fn decode(&self) -> Result<BlockRequest, BlkifError> {
        match self.operation() {
            OP_READ | OP_WRITE | OP_WRITE_BARRIER | OP_FLUSH_DISKCACHE => {
                let request = self.as_request();
                request.validate()?;
                Ok(BlockRequest::Direct(request))
            }
            OP_DISCARD => {
                let discard = self.as_discard();
                discard.validate()?;
                Ok(BlockRequest::Discard(discard))
            }
            OP_INDIRECT => {
                let indirect = self.as_indirect();
                indirect.validate()?;
                Ok(BlockRequest::Indirect(indirect))
            }
            operation => Err(BlkifError::UnknownOperation { operation }),
        }
    }
}

impl BlkifRequest {
    /// Check the rules of blkif.h: at most 11 segments (at least one for read/write), each with
    /// `first_sect <= last_sect <= 7`, and a sector range that does not wrap.
    #[inline]
    pub fn validate(&self) -> Result<(), BlkifError> {
        let operation = self.operation;
        if !matches!(operation, OP_READ | OP_WRITE | OP_WRITE_BARRIER | OP_FLUSH_DISKCACHE) {
            return Err(BlkifError::UnknownOperation { operation });
        }
        let nr = usize::from(self.nr_segments);
        if nr > MAX_SEGMENTS_PER_REQUEST {
            return Err(BlkifError::TooManySegments { nr_segments: self.nr_segments });
        }
        if nr == 0 && matches!(operation, OP_READ | OP_WRITE) {
            return Err(BlkifError::NoSegments { operation });
        }
        let mut sectors = 0u64;
        for (segment, s) in self.seg[..nr].iter().enumerate() {
            s.validate(segment)?;
            sectors += s.sectors();
        }
        if self.sector_number.checked_add(sectors).is_none() {
            return Err(BlkifError::SectorRangeOverflow { sector_number: self.sector_number });
        }
        Ok(())
    }
}

impl BlkifRequestDiscard {
    /// Check flag bits, a non-empty and non-wrapping range.
    #[inline]
    pub fn validate(&self) -> Result<(), BlkifError> {
        if self.operation != OP_DISCARD {
            return Err(BlkifError::UnknownOperation { operation: self.operation });
        }
        if self.flag & !DISCARD_SECURE != 0 {
            return Err(BlkifError::UnknownDiscardFlags { flag: self.flag });
        }
        if self.nr_sectors == 0 {
            return Err(BlkifError::EmptyDiscard);
        }
        if self.sector_number.checked_add(self.nr_sectors).is_none() {
            return Err(BlkifError::SectorRangeOverflow { sector_number: self.sector_number });
        }
        Ok(())
    }
}

impl BlkifRequestIndirect {
    /// Check the inner operation and the segment count.
    #[inline]
    pub fn validate(&self) -> Result<(), BlkifError> {
        if self.operation != OP_INDIRECT {
            return Err(BlkifError::UnknownOperation { operation: self.operation });
        }
        if !matches!(self.indirect_op, OP_READ | OP_WRITE) {
            return Err(BlkifError::BadIndirectOperation { indirect_op: self.indirect_op });
        }
        let nr = usize::from(self.nr_segments);
        if nr == 0 || nr > MAX_INDIRECT_PAGES_PER_REQUEST * SEGMENTS_PER_INDIRECT_PAGE {
            return Err(BlkifError::BadIndirectSegmentCount { nr_segments: self.nr_segments });
        }
        // Each segment covers at most 8 sectors.
        if self.sector_number.checked_add(nr as u64 * 8).is_none() {
            return Err(BlkifError::SectorRangeOverflow { sector_number: self.sector_number });
        }
        Ok(())
    }
}

impl From<&BlkifRequest> for BlkifRequestSlot {
    /// Fields are packed into little-endian 64-bit words (one store each, so the copy into the
    /// ring that follows reads whole words without store-forwarding stalls).
    #[inline]
    fn from(r: &BlkifRequest) -> Self {
        let mut bytes = [0; REQUEST_SIZE];
        let head = u64::from(r.operation) | u64::from(r.nr_segments) << 8 | u64::from(r.handle) << 16;
        bytes[0..8].copy_from_slice(&head.to_le_bytes());
        bytes[8..16].copy_from_slice(&r.id.to_le_bytes());
        bytes[16..24].copy_from_slice(&r.sector_number.to_le_bytes());
        for (i, s) in r.seg.iter().enumerate() {
            let word = u64::from(s.gref) | u64::from(s.first_sect) << 32 | u64::from(s.last_sect) << 40;
            bytes[24 + i * 8..32 + i * 8].copy_from_slice(&word.to_le_bytes());
        }
        Self { bytes }
    }
}

impl From<&BlkifRequestDiscard> for BlkifRequestSlot {
    #[inline]
    fn from(r: &BlkifRequestDiscard) -> Self {
        let mut bytes = [0; REQUEST_SIZE];
        bytes[0] = r.operation;
        bytes[1] = r.flag;
        put_u16(&mut bytes, 2, r.handle);
        put_u64(&mut bytes, 8, r.id);
        put_u64(&mut bytes, 16, r.sector_number);
        put_u64(&mut bytes, 24, r.nr_sectors);
        Self { bytes }
    }
}

impl From<&BlkifRequestIndirect> for BlkifRequestSlot {
    #[inline]
    fn from(r: &BlkifRequestIndirect) -> Self {
        let mut bytes = [0; REQUEST_SIZE];
        bytes[0] = r.operation;
        bytes[1] = r.indirect_op;
        put_u16(&mut bytes, 2, r.nr_segments);
        put_u64(&mut bytes, 8, r.id);
        put_u64(&mut bytes, 16, r.sector_number);
        put_u16(&mut bytes, 24, r.handle);
        for (i, gref) in r.indirect_grefs.iter().enumerate() {
            put_u32(&mut bytes, 28 + i * 4, *gref);
        }
        Self { bytes }
    }
}

impl RingEntry for BlkifRequestSlot {
    type Bytes = [u8; REQUEST_SIZE];
    #[inline]
    fn from_bytes(bytes: &Self::Bytes) -> Self {
        Self { bytes: *bytes }
    }
    #[inline]
    fn to_bytes(&self) -> Self::Bytes {
        self.bytes
    }
    #[inline]
    fn tracking_id(&self) -> Option<u64> {
        Some(self.id())
    }
    /// Only the bytes the layout uses: the header plus `nr_segments` segments for direct
    /// requests (as C front ends fill them), 32 for discard, 60 for indirect.
    #[inline]
    fn encoded_len(&self) -> usize {
        match self.operation() {
            OP_READ | OP_WRITE | OP_WRITE_BARRIER | OP_FLUSH_DISKCACHE => {
                24 + 8 * usize::from(self.bytes[1]).min(MAX_SEGMENTS_PER_REQUEST)
            }
            OP_DISCARD => 32,
            OP_INDIRECT => 64,
            _ => REQUEST_SIZE,
        }
    }
}

impl BlkifResponse {
    /// Decode a response image (infallible).
    #[inline]
    pub fn from_raw(b: &[u8; RESPONSE_SIZE]) -> Self {
        Self { id: u64_at(b, 0), operation: b[8], status: u16_at(b, 10) as i16 }
    }

    /// Encode with zeroed padding (bytes 9 and 12..16 stay 0: XSA-216).
    #[inline]
    pub fn to_raw(&self) -> [u8; RESPONSE_SIZE] {
        let mut b = [0; RESPONSE_SIZE];
        put_u64(&mut b, 0, self.id);
        put_u64(&mut b, 8, u64::from(self.operation) | u64::from(self.status as u16) << 16);
        b
    }

    /// Check the status is one blkif.h defines.
    #[inline]
    pub fn validate(&self) -> Result<(), BlkifError> {
        match self.status {
            RSP_OKAY | RSP_ERROR | RSP_EOPNOTSUPP => Ok(()),
            status => Err(BlkifError::UnknownStatus { status }),
        }
    }

    /// Decode and validate.
    #[inline]
    pub fn decode(b: &[u8; RESPONSE_SIZE]) -> Result<Self, BlkifError> {
        let response = Self::from_raw(b);
        response.validate()?;
        Ok(response)
    }
}

impl RingEntry for BlkifResponse {
    type Bytes = [u8; RESPONSE_SIZE];
    #[inline]
    fn from_bytes(bytes: &Self::Bytes) -> Self {
        Self::from_raw(bytes)
    }
    #[inline]
    fn to_bytes(&self) -> Self::Bytes {
        self.to_raw()
    }
    #[inline]
    fn tracking_id(&self) -> Option<u64> {
        Some(self.id)
    }
}

/// The blkif ring (`DEFINE_RING_TYPES(blkif, ...)`): 32 slots per page.
#[derive(Debug)]
pub enum Blkif {}

impl RingProtocol for Blkif {
    type Request = BlkifRequestSlot;
    type Response = BlkifResponse;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[inline]
    fn read(nr: u8) -> BlkifRequest {
        let mut r =
            BlkifRequest { operation: OP_READ, nr_segments: nr, id: 7, sector_number: 100, ..Default::default() };
        for (i, s) in r.seg.iter_mut().enumerate() {
            *s = BlkifSegment { gref: 100 + i as u32, first_sect: 0, last_sect: 7 };
        }
        r
    }

    #[test]
    fn sizes_match_the_c_abi() {
        assert_eq!(size_of::<BlkifSegment>(), 8);
        assert_eq!(size_of::<BlkifRequest>(), 112);
        assert_eq!(size_of::<BlkifRequestDiscard>(), 32);
        assert_eq!(size_of::<BlkifRequestIndirect>(), 64);
        assert_eq!(size_of::<BlkifResponse>(), 16);
        assert_eq!(<Blkif as RingProtocol>::SLOT_SIZE, 112);
    }

    #[test]
    fn request_round_trips_through_the_slot() {
        let r = read(11);
        let slot = BlkifRequestSlot::from(&r);
        assert_eq!(slot.as_request(), r);
        assert_eq!(slot.decode(), Ok(BlockRequest::Direct(r)));
        assert_eq!(slot.id(), 7);
        // Padding bytes 4..8 are zero.
        assert_eq!(&slot.as_raw()[4..8], &[0; 4]);
        let d =
            BlkifRequestDiscard { operation: OP_DISCARD, flag: 1, handle: 3, id: 9, sector_number: 8, nr_sectors: 16 };
        assert_eq!(BlkifRequestSlot::from(&d).decode(), Ok(BlockRequest::Discard(d)));
        let i = BlkifRequestIndirect {
            operation: OP_INDIRECT,
            indirect_op: OP_WRITE,
            nr_segments: 513,
            id: 11,
            sector_number: 0,
            handle: 2,
            indirect_grefs: [1, 2, 3, 4, 5, 6, 7, 8],
        };
        let decoded = BlkifRequestSlot::from(&i).decode();
        assert_eq!(decoded, Ok(BlockRequest::Indirect(i)));
        assert_eq!(i.pages(), 2);
        let s = BlkifSegment { gref: 0x0102_0304, first_sect: 3, last_sect: 6 };
        assert_eq!(s.to_raw(), [4, 3, 2, 1, 3, 6, 0, 0]);
        assert_eq!(BlkifSegment::from_raw(&s.to_raw()), s);
        assert_eq!(s.validate(0), Ok(()));
        let s = BlkifSegment { gref: 1, first_sect: 7, last_sect: 8 };
        assert_eq!(s.validate(9), Err(BlkifError::SectorPastPage { segment: 9, last_sect: 8 }));
    }

    #[test]
    fn rejects_what_the_spec_forbids() {
        let slot = |r: &BlkifRequest| BlkifRequestSlot::from(r).decode();
        assert_eq!(slot(&read(12)), Err(BlkifError::TooManySegments { nr_segments: 12 }));
        assert_eq!(slot(&read(0)), Err(BlkifError::NoSegments { operation: OP_READ }));
        let mut r = read(2);
        r.seg[1] = BlkifSegment { gref: 1, first_sect: 5, last_sect: 4 };
        assert_eq!(slot(&r), Err(BlkifError::SectorsReversed { segment: 1, first_sect: 5, last_sect: 4 }));
        r.seg[1] = BlkifSegment { gref: 1, first_sect: 0, last_sect: 8 };
        assert_eq!(slot(&r), Err(BlkifError::SectorPastPage { segment: 1, last_sect: 8 }));
        // Segments beyond nr_segments are not looked at.
        let mut r = read(1);
        r.seg[5].last_sect = 200;
        assert!(slot(&r).is_ok());
        r.sector_number = u64::MAX - 3;
        assert_eq!(slot(&r), Err(BlkifError::SectorRangeOverflow { sector_number: u64::MAX - 3 }));
        let mut r = read(1);
        r.operation = OP_RESERVED_1;
        assert_eq!(slot(&r), Err(BlkifError::UnknownOperation { operation: 4 }));
        r.operation = 200;
        assert_eq!(slot(&r), Err(BlkifError::UnknownOperation { operation: 200 }));
        // Flush may carry no data.
        let mut r = read(0);
        r.operation = OP_FLUSH_DISKCACHE;
        assert!(slot(&r).is_ok());

        let d = BlkifRequestDiscard { operation: OP_DISCARD, flag: 2, nr_sectors: 1, ..Default::default() };
        assert_eq!(BlkifRequestSlot::from(&d).decode(), Err(BlkifError::UnknownDiscardFlags { flag: 2 }));
        let d = BlkifRequestDiscard { operation: OP_DISCARD, ..Default::default() };
        assert_eq!(BlkifRequestSlot::from(&d).decode(), Err(BlkifError::EmptyDiscard));
        let i = BlkifRequestIndirect {
            operation: OP_INDIRECT,
            indirect_op: OP_DISCARD,
            nr_segments: 1,
            ..Default::default()
        };
        assert_eq!(BlkifRequestSlot::from(&i).decode(), Err(BlkifError::BadIndirectOperation { indirect_op: 5 }));
        let i = BlkifRequestIndirect {
            operation: OP_INDIRECT,
            indirect_op: OP_READ,
            nr_segments: 4097,
            ..Default::default()
        };
        assert_eq!(BlkifRequestSlot::from(&i).decode(), Err(BlkifError::BadIndirectSegmentCount { nr_segments: 4097 }));
    }

    #[test]
    fn response_encoding_zeroes_padding_and_checks_status() {
        let r = BlkifResponse { id: u64::MAX, operation: 0xff, status: RSP_EOPNOTSUPP };
        let raw = r.to_raw();
        assert_eq!(raw[9], 0);
        assert_eq!(&raw[12..], &[0; 4]);
        assert_eq!(BlkifResponse::decode(&raw), Ok(r));
        let bad = BlkifResponse { status: 5, ..r }.to_raw();
        assert_eq!(BlkifResponse::decode(&bad), Err(BlkifError::UnknownStatus { status: 5 }));
    }
}
