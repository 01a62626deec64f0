//! One virtual block device: a region of the backing device served to one frontend.
//!
//! [`Vbd::handle`] takes a request slot the ring copied out of shared memory exactly once,
//! validates it (blkif.h rules via `decode`, then the vdisk's own: sector range, read-only) and
//! performs it. An indirect request's segments are copied once out of its indirect page into a
//! buffer of ours, then validated like a direct request's. Data moves between the frontend's
//! granted pages and the backend's own buffer by one batched grant copy per request
//! ([`GrantCopier`], the one both backends share); a write reaches the device only after every
//! segment was copied in, and is acknowledged only after the device completed it.
use alloc::boxed::Box;
use core::fmt;

use hv_abi::GrantStatus;
use xenbus_backend::{GrantCopier, OutCopy, Seg};

use shared_ring::wire::blkif::{
    BlkifError, BlkifRequestIndirect, BlkifRequestSlot, BlkifSegment, BlockRequest, MAX_SEGMENTS_PER_REQUEST,
    OP_FLUSH_DISKCACHE, OP_INDIRECT, OP_READ, OP_WRITE, OP_WRITE_BARRIER, RSP_EOPNOTSUPP, RSP_ERROR, RSP_OKAY,
    SEGMENTS_PER_INDIRECT_PAGE,
};

use crate::device::{BlockDevice, DeviceError};
use crate::params::Region;
use crate::{PAGE_SIZE, SECTOR_SIZE};

/// Segments one indirect request may carry: `feature-max-indirect-segments`.
///
/// 32 is what Linux's blkfront asks for by default (`max_indirect_segments`), so its requests
/// of up to 128 KiB go in one ring slot instead of three; the segments fit in one indirect page
/// (512 per page), so one small grant copy reads them; and the per-vdisk data buffer stays at
/// 128 KiB (16 vdisks: 2 MiB of the domain's heap). Every request is still served to the end
/// before the next one, so the work per request is bounded by this.
pub const MAX_INDIRECT_SEGMENTS: usize = 32;
/// Segments any request the backend accepts can carry.
pub const MAX_SEGMENTS: usize =
    if MAX_INDIRECT_SEGMENTS > MAX_SEGMENTS_PER_REQUEST { MAX_INDIRECT_SEGMENTS } else { MAX_SEGMENTS_PER_REQUEST };
/// Indirect pages a request within [`MAX_INDIRECT_SEGMENTS`] uses.
pub const MAX_INDIRECT_PAGES: usize = MAX_INDIRECT_SEGMENTS.div_ceil(SEGMENTS_PER_INDIRECT_PAGE);
/// Bytes of one segment in an indirect page.
const SEGMENT_SIZE: usize = 8;
/// Bytes one request can carry.
pub const MAX_REQUEST_BYTES: usize = MAX_SEGMENTS * PAGE_SIZE;

/// The `operation` of the response to `slot`: the slot's, except for an indirect request,
/// answered with its inner operation (`indirect_op`), as blkfront checks.
pub fn response_operation(slot: &BlkifRequestSlot) -> u8 {
    match slot.operation() {
        OP_INDIRECT => slot.as_raw()[1],
        op => op,
    }
}

/// Why a request was refused (for the backend's log and the tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Malformed(BlkifError),
    /// Discard: not advertised.
    Unsupported(u8),
    /// An indirect request with more segments than `feature-max-indirect-segments`.
    TooManySegments {
        nr_segments: u16,
        max: usize,
    },
    /// Reading an indirect request's segment page failed (grant copy status).
    IndirectPage(GrantStatus),
    /// Sectors `sector..sector+count` are not inside the vdisk of `size` sectors.
    OutOfRange {
        sector: u64,
        count: u64,
        size: u64,
    },
    /// A write, barrier or flush on a read-only vdisk.
    ReadOnly,
    /// A grant copy element failed with this status.
    Grant(GrantStatus),
    Device(DeviceError),
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Malformed(e) => write!(f, "malformed request: {e}"),
            Refusal::Unsupported(op) => write!(f, "unsupported operation {op}"),
            Refusal::TooManySegments { nr_segments, max } => {
                write!(f, "indirect request with {nr_segments} segments (at most {max})")
            }
            Refusal::IndirectPage(s) => write!(f, "indirect segment page unreadable (status {})", s.as_raw()),
            Refusal::OutOfRange { sector, count, size } => {
                write!(f, "sectors {sector}+{count} outside the vdisk of {size} sectors")
            }
            Refusal::ReadOnly => f.write_str("write to a read-only vdisk"),
            Refusal::Grant(s) => write!(f, "grant copy failed (status {})", s.as_raw()),
            Refusal::Device(e) => write!(f, "{e}"),
        }
    }
}

impl Refusal {
    /// The blkif response status for it.
    pub fn status(&self) -> i16 {
        match self {
            Refusal::Unsupported(_) => RSP_EOPNOTSUPP,
            _ => RSP_ERROR,
        }
    }
}

/// Counters of one vdisk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub reads: u64,
    pub writes: u64,
    /// Reads and writes that came as indirect requests (also counted in `reads`/`writes`).
    pub indirect: u64,
    pub flushes: u64,
    pub errors: u64,
    pub sectors_read: u64,
    pub sectors_written: u64,
}

/// A vdisk served to frontend `frontend`.
pub struct Vbd {
    pub frontend: hv_abi::DomId,
    pub region: Region,
    pub stats: Stats,
    /// The last refusal, for the log.
    pub last_refusal: Option<Refusal>,
    buf: Box<[u8]>,
}

impl Vbd {
    pub fn new(frontend: hv_abi::DomId, region: Region) -> Self {
        Self {
            frontend,
            region,
            stats: Stats::default(),
            last_refusal: None,
            buf: alloc::vec![0; MAX_REQUEST_BYTES].into_boxed_slice(),
        }
    }

    /// Performs one request and returns the response status (never panics).
    pub fn handle(
        &mut self,
        slot: &BlkifRequestSlot,
        dev: &mut impl BlockDevice,
        copier: &mut impl GrantCopier,
    ) -> i16 {
        match self.perform(slot, dev, copier) {
            Ok(()) => {
                self.last_refusal = None;
                RSP_OKAY
            }
            Err(r) => {
                self.stats.errors += 1;
                self.last_refusal = Some(r);
                r.status()
            }
        }
    }

    fn perform(
        &mut self,
        slot: &BlkifRequestSlot,
        dev: &mut impl BlockDevice,
        copier: &mut impl GrantCopier,
    ) -> Result<(), Refusal> {
        let mut seg = [BlkifSegment::default(); MAX_SEGMENTS];
        let (operation, sector, nr) = match slot.decode().map_err(Refusal::Malformed)? {
            BlockRequest::Direct(r) => {
                let nr = usize::from(r.nr_segments);
                seg[..nr].copy_from_slice(&r.seg[..nr]);
                (r.operation, r.sector_number, nr)
            }
            BlockRequest::Discard(r) => return Err(Refusal::Unsupported(r.operation)),
            BlockRequest::Indirect(r) => {
                let nr = read_indirect(copier, self.frontend, &r, &mut seg)?;
                self.stats.indirect += 1;
                (r.indirect_op, r.sector_number, nr)
            }
        };
        let (segs, count) = segments(&seg[..nr]);
        let segs = &segs[..nr];
        let size = self.region.sectors;
        // A request without data (Linux's empty flush carries sector u64::MAX, the block layer's
        // "no sector") touches no sector: only requests with data are range-checked, as Xen's
        // blkback does.
        if count > 0 && sector.checked_add(count).is_none_or(|end| end > size) {
            return Err(Refusal::OutOfRange { sector, count, size });
        }
        if operation != OP_READ && self.region.read_only {
            return Err(Refusal::ReadOnly);
        }
        // In range (checked above) whenever there is data; a request without data has no sector.
        let at = if count > 0 { self.region.start + sector } else { self.region.start };
        let bytes = count as usize * SECTOR_SIZE;
        let buf = &mut self.buf[..bytes];
        match operation {
            OP_READ => {
                dev.read_sectors(at, buf).map_err(Refusal::Device)?;
                copy_out(copier, self.frontend, segs, buf).map_err(Refusal::Grant)?;
                self.stats.reads += 1;
                self.stats.sectors_read += count;
            }
            OP_WRITE | OP_WRITE_BARRIER | OP_FLUSH_DISKCACHE => {
                // Barrier: everything before it completes first (our device calls are
                // synchronous, so earlier writes are done; make them durable too).
                if operation == OP_WRITE_BARRIER {
                    dev.flush().map_err(Refusal::Device)?;
                }
                if count > 0 {
                    // All segments in, or nothing reaches the device.
                    copy_in(copier, self.frontend, segs, buf).map_err(Refusal::Grant)?;
                    dev.write_sectors(at, buf).map_err(Refusal::Device)?;
                    self.stats.writes += 1;
                    self.stats.sectors_written += count;
                }
                if operation != OP_WRITE {
                    dev.flush().map_err(Refusal::Device)?;
                    self.stats.flushes += 1;
                }
            }
            op => return Err(Refusal::Unsupported(op)),
        }
        Ok(())
    }
}

/// An indirect request's segments: the count checked against [`MAX_INDIRECT_SEGMENTS`], the
/// `nr_segments * 8` bytes of its indirect pages copied once into a buffer of ours (one batched
/// grant copy), then each segment decoded from that copy and validated. Returns the count.
fn read_indirect(
    copier: &mut impl GrantCopier,
    domid: hv_abi::DomId,
    r: &BlkifRequestIndirect,
    out: &mut [BlkifSegment; MAX_SEGMENTS],
) -> Result<usize, Refusal> {
    let nr = usize::from(r.nr_segments);
    if nr > MAX_INDIRECT_SEGMENTS {
        return Err(Refusal::TooManySegments { nr_segments: r.nr_segments, max: MAX_INDIRECT_SEGMENTS });
    }
    let mut raw = [0u8; MAX_INDIRECT_SEGMENTS * SEGMENT_SIZE];
    let raw = &mut raw[..nr * SEGMENT_SIZE];
    let per_page = SEGMENTS_PER_INDIRECT_PAGE * SEGMENT_SIZE;
    let mut pages = [Seg { gref: 0, offset: 0, len: 0, buf_offset: 0 }; MAX_INDIRECT_PAGES];
    let n = r.pages();
    for (i, (p, &gref)) in pages.iter_mut().zip(&r.indirect_grefs).take(n).enumerate() {
        let buf_offset = i * per_page;
        let len = (raw.len() - buf_offset).min(per_page);
        // Segments start at the beginning of each indirect page.
        *p = Seg { gref, offset: 0, len: len as u16, buf_offset };
    }
    let mut status = [GrantStatus::GeneralError; MAX_INDIRECT_PAGES];
    copier.copy_in(domid, &pages[..n], raw, &mut status[..n]);
    first_failure(&status[..n]).map_err(Refusal::IndirectPage)?;
    for (i, (o, b)) in out.iter_mut().zip(raw.chunks_exact(SEGMENT_SIZE)).enumerate() {
        let mut s = [0u8; SEGMENT_SIZE];
        s.copy_from_slice(b);
        *o = BlkifSegment::from_raw(&s);
        o.validate(i).map_err(Refusal::Malformed)?;
    }
    Ok(nr)
}

/// One batch: every segment in from the frontend's pages, or the first failure.
fn copy_in(
    copier: &mut impl GrantCopier,
    domid: hv_abi::DomId,
    segs: &[Seg],
    buf: &mut [u8],
) -> Result<(), GrantStatus> {
    // An element the copier does not report on counts as failed.
    let mut status = [GrantStatus::GeneralError; MAX_SEGMENTS];
    let status = &mut status[..segs.len().min(MAX_SEGMENTS)];
    copier.copy_in(domid, segs, buf, status);
    first_failure(status)
}

/// One batch: every segment out to the frontend's pages, or the first failure.
fn copy_out(copier: &mut impl GrantCopier, domid: hv_abi::DomId, segs: &[Seg], buf: &[u8]) -> Result<(), GrantStatus> {
    let mut copies = [OutCopy { gref: 0, offset: 0, data: &[] }; MAX_SEGMENTS];
    let n = segs.len().min(MAX_SEGMENTS);
    for (c, s) in copies.iter_mut().zip(segs) {
        // Segments are packed inside `buf` (see `segments`); checked anyway.
        let data = s.buf_offset.checked_add(usize::from(s.len)).and_then(|end| buf.get(s.buf_offset..end));
        *c = OutCopy { gref: s.gref, offset: s.offset, data: data.ok_or(GrantStatus::BadCopyArg)? };
    }
    let mut status = [GrantStatus::GeneralError; MAX_SEGMENTS];
    copier.copy_out(domid, &copies[..n], &mut status[..n]);
    first_failure(&status[..n])
}

fn first_failure(status: &[GrantStatus]) -> Result<(), GrantStatus> {
    status.iter().copied().find(|s| !s.is_ok()).map_or(Ok(()), Err)
}

/// The copies of a request's validated segments, packed into the buffer, and its sectors.
fn segments(seg: &[BlkifSegment]) -> ([Seg; MAX_SEGMENTS], u64) {
    let mut out = [Seg { gref: 0, offset: 0, len: 0, buf_offset: 0 }; MAX_SEGMENTS];
    let mut sectors = 0u64;
    for (o, s) in out.iter_mut().zip(seg) {
        let n = s.sectors();
        *o = Seg {
            gref: s.gref,
            offset: u16::from(s.first_sect) * SECTOR_SIZE as u16,
            len: (n as usize * SECTOR_SIZE) as u16,
            buf_offset: sectors as usize * SECTOR_SIZE,
        };
        sectors += n;
    }
    (out, sectors)
}
