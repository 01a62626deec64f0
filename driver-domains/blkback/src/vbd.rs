//! One virtual block device: a region of the backing device served to one frontend.
//!
//! [`Vbd::check`] takes a request slot the ring copied out of shared memory exactly once and
//! validates it (blkif.h rules via `decode`, then the vdisk's own: sector range, read-only) into
//! a [`Checked`] request. An indirect request's segments are copied once out of its indirect page
//! into a buffer of ours, then validated like a direct request's. Data moves between the
//! frontend's granted pages and a device buffer by one batched grant copy per request
//! ([`GrantCopier`], the one both backends share): [`Vbd::fill`] before a write starts (it
//! reaches the device only after every segment was copied in), [`Vbd::finish`] after a read
//! finished. A write is acknowledged only after the device finished it. The queue that keeps
//! many requests in flight is `serve`'s; [`Vbd::handle`] runs one request to the end.
use core::fmt;

use hv_abi::GrantStatus;
use xenbus_backend::{GrantCopier, OutCopy, Seg};

use shared_ring::wire::blkif::{
    BlkifError, BlkifRequestIndirect, BlkifRequestSlot, BlkifSegment, BlockRequest, MAX_SEGMENTS_PER_REQUEST,
    OP_FLUSH_DISKCACHE, OP_INDIRECT, OP_READ, OP_WRITE, OP_WRITE_BARRIER, RSP_EOPNOTSUPP, RSP_ERROR, RSP_OKAY,
    SEGMENTS_PER_INDIRECT_PAGE,
};

use crate::device::{BlockDevice, BufId, DeviceError, Io};
use crate::params::Region;
use crate::queue::Queue;
use crate::{PAGE_SIZE, SECTOR_SIZE};

/// Segments one indirect request may carry: `feature-max-indirect-segments`.
///
/// 128: a request of up to 512 KiB goes in one ring slot, so a 1 MiB transfer costs two
/// round trips through the hypervisor instead of eight (what each costs under emulation is in
/// docs/blk.md). Linux's blkfront uses at most its `max_indirect_segments` parameter (32 unless
/// the command line says `xen_blkfront.max_indirect_segments=128`, as our Linux guests' does).
/// The list fits one indirect page (512 per page), so one small grant copy reads it; a device
/// buffer (one per request in flight, 16 on virtio-blk) is 512 KiB, which bounds the work per
/// request and makes the pool 8 MiB.
pub const MAX_INDIRECT_SEGMENTS: usize = 128;
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

/// A request checked against blkif.h and the vdisk: everything needed to perform and answer it,
/// copied out of the ring (and the indirect page) once.
#[derive(Debug, Clone, Copy)]
pub struct Checked {
    pub id: u64,
    /// The `operation` of its response.
    pub rsp_op: u8,
    /// READ, WRITE, WRITE_BARRIER or FLUSH_DISKCACHE.
    pub operation: u8,
    /// First sector on the device (the vdisk's start for a request without data).
    pub at: u64,
    /// Sectors it moves.
    pub count: u64,
    indirect: bool,
    nr: usize,
    segs: [Seg; MAX_SEGMENTS],
}

impl Checked {
    /// Barriers and flushes run alone, once everything before them finished (blkback's device
    /// queue then holds nothing); reads and writes go to the queue.
    pub fn runs_alone(&self) -> bool {
        !matches!(self.operation, OP_READ | OP_WRITE)
    }

    /// Bytes of data.
    pub fn bytes(&self) -> usize {
        self.count as usize * SECTOR_SIZE
    }

    /// The device operation of a queued request.
    pub fn io(&self) -> Io {
        if self.operation == OP_READ { Io::Read } else { Io::Write }
    }

    fn segs(&self) -> &[Seg] {
        &self.segs[..self.nr]
    }
}

/// A vdisk served to frontend `frontend`.
pub struct Vbd {
    pub frontend: hv_abi::DomId,
    pub region: Region,
    pub stats: Stats,
    /// The last refusal, for the log.
    pub last_refusal: Option<Refusal>,
    /// Requests taken from the ring and not answered yet.
    pub queue: Queue,
}

impl Vbd {
    pub fn new(frontend: hv_abi::DomId, region: Region) -> Self {
        Self { frontend, region, stats: Stats::default(), last_refusal: None, queue: Queue::new() }
    }

    /// Performs one request to the end and returns the response status (never panics). Nothing
    /// else may be in flight on `dev` (the tests' and the fuzzer's way in; the domain queues
    /// requests with [`crate::serve::serve_round`]).
    pub fn handle(
        &mut self,
        slot: &BlkifRequestSlot,
        dev: &mut impl BlockDevice,
        copier: &mut impl GrantCopier,
    ) -> i16 {
        let result = self.check(slot, copier).and_then(|c| self.perform_alone(&c, dev, copier));
        self.status(result)
    }

    /// The response status of a request's outcome; a refusal is counted and kept for the log.
    pub fn status(&mut self, result: Result<(), Refusal>) -> i16 {
        match result {
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

    /// Decodes and validates a request copied out of the ring (reading an indirect request's
    /// segment list once): blkif.h's rules, then the vdisk's (sector range, read-only).
    pub fn check(&mut self, slot: &BlkifRequestSlot, copier: &mut impl GrantCopier) -> Result<Checked, Refusal> {
        let mut seg = [BlkifSegment::default(); MAX_SEGMENTS];
        let (operation, sector, nr, indirect) = match slot.decode().map_err(Refusal::Malformed)? {
            BlockRequest::Direct(r) => {
                let nr = usize::from(r.nr_segments);
                seg[..nr].copy_from_slice(&r.seg[..nr]);
                (r.operation, r.sector_number, nr, false)
            }
            BlockRequest::Discard(r) => return Err(Refusal::Unsupported(r.operation)),
            BlockRequest::Indirect(r) => {
                let nr = read_indirect(copier, self.frontend, &r, &mut seg)?;
                (r.indirect_op, r.sector_number, nr, true)
            }
        };
        if !matches!(operation, OP_READ | OP_WRITE | OP_WRITE_BARRIER | OP_FLUSH_DISKCACHE) {
            return Err(Refusal::Unsupported(operation));
        }
        let (segs, count) = segments(&seg[..nr]);
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
        Ok(Checked { id: slot.id(), rsp_op: response_operation(slot), operation, at, count, indirect, nr, segs })
    }

    /// Before a write starts: every segment in from the frontend's pages into `buf` (one batch),
    /// or nothing reaches the device.
    pub fn fill(&mut self, c: &Checked, buf: &mut [u8], copier: &mut impl GrantCopier) -> Result<(), Refusal> {
        if c.count == 0 || c.operation == OP_READ {
            return Ok(());
        }
        let buf = buf.get_mut(..c.bytes()).ok_or(Refusal::Device(DeviceError::OutOfRange))?;
        copy_in(copier, self.frontend, c.segs(), buf).map_err(Refusal::Grant)
    }

    /// After the device finished a queued request with `result`: a read's data out to the
    /// frontend's pages (one batch), and the counters.
    pub fn finish(
        &mut self,
        c: &Checked,
        buf: &[u8],
        result: Result<(), DeviceError>,
        copier: &mut impl GrantCopier,
    ) -> Result<(), Refusal> {
        result.map_err(Refusal::Device)?;
        if c.indirect {
            self.stats.indirect += 1;
        }
        if c.operation == OP_READ {
            let buf = buf.get(..c.bytes()).ok_or(Refusal::Device(DeviceError::OutOfRange))?;
            copy_out(copier, self.frontend, c.segs(), buf).map_err(Refusal::Grant)?;
            self.stats.reads += 1;
            self.stats.sectors_read += c.count;
        } else if c.count > 0 {
            self.stats.writes += 1;
            self.stats.sectors_written += c.count;
        }
        Ok(())
    }

    /// Performs a request with nothing else in flight on `dev`: a barrier makes everything
    /// before it durable first; a flush (and a barrier) makes its own write durable after it.
    pub fn perform_alone(
        &mut self,
        c: &Checked,
        dev: &mut impl BlockDevice,
        copier: &mut impl GrantCopier,
    ) -> Result<(), Refusal> {
        if c.operation == OP_WRITE_BARRIER {
            dev.flush().map_err(Refusal::Device)?;
        }
        if c.count > 0 {
            let id = dev.take().ok_or(Refusal::Device(DeviceError::Io))?;
            let result = self.run_alone(c, id, dev, copier);
            dev.give_back(id);
            result?;
        }
        if c.runs_alone() {
            dev.flush().map_err(Refusal::Device)?;
            self.stats.flushes += 1;
        }
        Ok(())
    }

    fn run_alone(
        &mut self,
        c: &Checked,
        id: BufId,
        dev: &mut impl BlockDevice,
        copier: &mut impl GrantCopier,
    ) -> Result<(), Refusal> {
        let buf = dev.buffer(id).ok_or(Refusal::Device(DeviceError::NotHeld))?;
        self.fill(c, buf, copier)?;
        dev.start(id, c.io(), c.at, c.bytes()).map_err(Refusal::Device)?;
        let result = crate::device::wait_for(dev, id);
        let buf = dev.buffer(id).ok_or(Refusal::Device(DeviceError::NotHeld))?;
        self.finish(c, buf, result, copier)
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
