//! Host tests: a frontend with granted pages and a ring in plain memory, the RAM disk, and every
//! kind of bad request.
use std::cell::Cell;
use std::collections::HashMap;

use hv_abi::GrantStatus;
use shared_ring::wire::blkif::{
    Blkif, BlkifError, BlkifRequest, BlkifRequestIndirect, BlkifRequestSlot, BlkifResponse, BlkifSegment, OP_DISCARD,
    OP_FLUSH_DISKCACHE, OP_INDIRECT, OP_READ, OP_RESERVED_1, OP_WRITE, OP_WRITE_BARRIER, RSP_EOPNOTSUPP, RSP_ERROR,
    RSP_OKAY,
};
use shared_ring::{BackRing, CellMemory, FrontRing, SharedMemory};

use crate::device::{BlockDevice, RAM_DISK_DEPTH, RamDisk};
use crate::params::{Region, parse};
use crate::persistent::{MAX_PERSISTENT_GRANTS, PersistentGrants};
use crate::queue::Completions;
use crate::serve::{Pass, Round, ServeError, serve_round};
use crate::testing::HeldDisk;
use crate::vbd::{MAX_INDIRECT_SEGMENTS, Refusal, Vbd};
use xenbus_backend::{GrantCopier, OutCopy, Seg};

const BACKEND: u32 = 1;
const FE: hv_abi::DomId = 5;

/// The hypervisor's grant copy, reduced to what blkback relies on: a grant must exist, name the
/// backend, and be writable for a copy into it; a bad element fails only itself (and the
/// backend then fails the whole request).
#[derive(Default)]
struct Grants {
    /// gref → (granted to, read-only, page)
    pages: HashMap<u32, (u32, bool, Box<Page>)>,
    batches: usize,
    /// Platform side (persistent grants): handle → gref of live mappings, handles issued.
    mapped: HashMap<u32, u32>,
    issued: u32,
}

/// A granted page (page-aligned, as a mapping must be).
#[repr(align(4096))]
struct Page([u8; 4096]);

impl std::ops::Deref for Page {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl std::ops::DerefMut for Page {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.0
    }
}

// SAFETY: a mapping is the granted page's own memory (boxed, so it does not move); tests never
// drop a page that is mapped (`grant` refuses to replace one).
unsafe impl xenbus_backend::Platform for Grants {
    fn map(&mut self, domid: hv_abi::DomId, gref: u32) -> Result<(u32, u64), hv_abi::Error> {
        assert_eq!(domid, FE);
        // Read-write, like hv-core: the grant must name us and allow writing.
        self.check(gref, 0, 4096, true).map_err(|_| hv_abi::Error::Perm)?;
        self.issued += 1;
        self.mapped.insert(self.issued, gref);
        Ok((self.issued, self.pages.get_mut(&gref).unwrap().2.0.as_mut_ptr() as u64))
    }
    fn unmap(&mut self, handle: u32) -> Result<(), hv_abi::Error> {
        self.mapped.remove(&handle).map(drop).ok_or(hv_abi::Error::Inval)
    }
    fn bind(&mut self, _: hv_abi::DomId, _: u32) -> Result<u32, hv_abi::Error> {
        Err(hv_abi::Error::Inval)
    }
    fn close(&mut self, _: u32) -> Result<(), hv_abi::Error> {
        Err(hv_abi::Error::Inval)
    }
    fn log(&mut self, _: &str) {}
}

impl Grants {
    fn grant(&mut self, gref: u32, to: u32, read_only: bool, fill: u8) {
        assert!(!self.mapped.values().any(|&g| g == gref), "grant {gref} is mapped");
        self.pages.insert(gref, (to, read_only, Box::new(Page([fill; 4096]))));
    }
    /// A granted page holding `segs` as an indirect segment page (the rest zero).
    fn grant_segments(&mut self, gref: u32, to: u32, segs: &[BlkifSegment]) {
        let mut page = Box::new(Page([0; 4096]));
        for (raw, s) in page.0.chunks_exact_mut(8).zip(segs) {
            raw.copy_from_slice(&s.to_raw());
        }
        self.pages.insert(gref, (to, false, page));
    }
    fn check(&self, gref: u32, offset: u16, len: usize, write: bool) -> Result<(), GrantStatus> {
        let Some((to, ro, _)) = self.pages.get(&gref) else { return Err(GrantStatus::BadGntref) };
        if *to != BACKEND || (write && *ro) {
            return Err(GrantStatus::PermissionDenied);
        }
        if usize::from(offset) + len > 4096 {
            return Err(GrantStatus::BadCopyArg);
        }
        Ok(())
    }
}

impl GrantCopier for Grants {
    fn copy_in(&mut self, domid: hv_abi::DomId, segs: &[Seg], buf: &mut [u8], status: &mut [GrantStatus]) {
        assert_eq!(domid, FE);
        self.batches += 1;
        for (s, st) in segs.iter().zip(status) {
            *st = match self.check(s.gref, s.offset, usize::from(s.len), false) {
                Ok(()) => {
                    let p = &self.pages[&s.gref].2;
                    let o = usize::from(s.offset);
                    buf[s.buf_offset..s.buf_offset + usize::from(s.len)].copy_from_slice(&p[o..o + usize::from(s.len)]);
                    GrantStatus::Okay
                }
                Err(e) => e,
            };
        }
    }
    fn copy_out(&mut self, domid: hv_abi::DomId, copies: &[OutCopy<'_>], status: &mut [GrantStatus]) {
        assert_eq!(domid, FE);
        self.batches += 1;
        for (c, st) in copies.iter().zip(status) {
            *st = match self.check(c.gref, c.offset, c.data.len(), true) {
                Ok(()) => {
                    let p = &mut self.pages.get_mut(&c.gref).unwrap().2;
                    let o = usize::from(c.offset);
                    p[o..o + c.data.len()].copy_from_slice(c.data);
                    GrantStatus::Okay
                }
                Err(e) => e,
            };
        }
    }
}

fn req(op: u8, id: u64, sector: u64, segs: &[(u32, u8, u8)]) -> BlkifRequestSlot {
    let mut r =
        BlkifRequest { operation: op, nr_segments: segs.len() as u8, id, sector_number: sector, ..Default::default() };
    for (s, &(gref, first_sect, last_sect)) in r.seg.iter_mut().zip(segs) {
        *s = BlkifSegment { gref, first_sect, last_sect };
    }
    BlkifRequestSlot::from(&r)
}

fn region(start_mib: u64, mib: u64, read_only: bool) -> Region {
    Region { start: start_mib * 2048, sectors: mib * 2048, read_only }
}

struct Setup<D = RamDisk> {
    disk: D,
    grants: Grants,
    vbd: Vbd,
    done: Completions,
}

impl Setup {
    fn new(r: Region) -> Self {
        Setup::on(RamDisk::with_mib(4), r)
    }
}

impl<D: BlockDevice> Setup<D> {
    fn on(disk: D, r: Region) -> Self {
        let done = Completions::new(disk.depth());
        Self { disk, grants: Grants::default(), vbd: Vbd::new(FE, r), done }
    }
    fn run(&mut self, slot: BlkifRequestSlot) -> i16 {
        self.vbd.handle(&slot, &mut self.disk, &mut self.grants)
    }
    /// One round of the ring, starting requests unless `hold`.
    fn round_with<M: SharedMemory>(
        &mut self,
        back: &mut BackRing<Blkif, M>,
        budget: u32,
        hold: bool,
        on_refusal: impl FnMut(&Vbd, u64),
    ) -> Result<Round, ServeError> {
        let Self { disk, grants, vbd, done } = self;
        serve_round(back, vbd, disk, done, grants, Pass { hold_starts: hold, ..Pass::alone(budget) }, on_refusal)
    }
    fn round<M: SharedMemory>(&mut self, back: &mut BackRing<Blkif, M>, budget: u32) -> Result<Round, ServeError> {
        self.round_with(back, budget, false, |_, _| {})
    }
}

#[test]
fn write_then_read_moves_exactly_the_named_sectors() {
    let mut s = Setup::new(region(1, 2, false));
    s.grants.grant(10, BACKEND, true, 0xaa);
    s.grants.grant(11, BACKEND, true, 0xbb);
    // Sectors 2..=7 of page 10 and 0..=1 of page 11 → vdisk sectors 100..108.
    assert_eq!(s.run(req(OP_WRITE, 1, 100, &[(10, 2, 7), (11, 0, 1)])), RSP_OKAY);
    assert_eq!(s.grants.batches, 1, "one batched copy per request");
    let base = (2048 + 100) * 512;
    assert!(s.disk.bytes()[base..base + 6 * 512].iter().all(|&b| b == 0xaa));
    assert!(s.disk.bytes()[base + 6 * 512..base + 8 * 512].iter().all(|&b| b == 0xbb));
    assert!(s.disk.bytes()[base + 8 * 512..base + 9 * 512].iter().all(|&b| b == 0));
    assert!(s.disk.bytes()[base - 512..base].iter().all(|&b| b == 0));
    s.grants.grant(20, BACKEND, false, 0);
    assert_eq!(s.run(req(OP_READ, 2, 104, &[(20, 1, 4)])), RSP_OKAY);
    let p = &s.grants.pages[&20].2;
    assert!(p[..512].iter().all(|&b| b == 0));
    assert!(p[512..512 * 3].iter().all(|&b| b == 0xaa));
    assert!(p[512 * 3..512 * 5].iter().all(|&b| b == 0xbb));
    assert!(p[512 * 5..].iter().all(|&b| b == 0));
    assert_eq!((s.vbd.stats.reads, s.vbd.stats.writes, s.vbd.stats.sectors_written), (1, 1, 8));
}

#[test]
fn every_bad_request_gets_an_error_and_changes_nothing() {
    let mut s = Setup::new(region(1, 1, false));
    s.grants.grant(10, BACKEND, true, 0x11);
    s.grants.grant(12, 99, false, 0x22); // granted to someone else
    s.grants.grant(13, BACKEND, true, 0x33); // read-only grant: cannot receive read data
    let mut too_many = BlkifRequest { operation: OP_WRITE, nr_segments: 12, id: 9, ..Default::default() };
    too_many.seg[0] = BlkifSegment { gref: 10, first_sect: 0, last_sect: 7 };
    let cases: Vec<(BlkifRequestSlot, i16, &str)> = vec![
        (req(OP_WRITE, 1, 2048, &[(10, 0, 0)]), RSP_ERROR, "first sector past the vdisk"),
        (req(OP_WRITE, 1, 2047, &[(10, 0, 1)]), RSP_ERROR, "straddles the vdisk end"),
        (req(OP_WRITE, 1, u64::MAX - 3, &[(10, 0, 7)]), RSP_ERROR, "wrapping sector"),
        (req(OP_WRITE, 1, 0, &[(10, 0, 8)]), RSP_ERROR, "last_sect > 7"),
        (req(OP_WRITE, 1, 0, &[(10, 5, 2)]), RSP_ERROR, "first_sect > last_sect"),
        (BlkifRequestSlot::from(&too_many), RSP_ERROR, "nr_segments > 11"),
        (req(OP_WRITE, 1, 0, &[]), RSP_ERROR, "write without segments"),
        (req(OP_WRITE, 1, 0, &[(10, 0, 7), (777, 0, 7)]), RSP_ERROR, "bad grant ref in segment 2"),
        (req(OP_WRITE, 1, 0, &[(12, 0, 7)]), RSP_ERROR, "grant not granted to the backend"),
        (req(OP_READ, 1, 0, &[(13, 0, 7)]), RSP_ERROR, "read into a read-only grant"),
        (req(OP_RESERVED_1, 1, 0, &[(10, 0, 7)]), RSP_ERROR, "reserved operation"),
        (BlkifRequestSlot::from_raw([0xff; 112]), RSP_ERROR, "garbage slot"),
        (
            BlkifRequestSlot::from(&shared_ring::wire::blkif::BlkifRequestDiscard {
                operation: OP_DISCARD,
                nr_sectors: 8,
                ..Default::default()
            }),
            RSP_EOPNOTSUPP,
            "discard (not advertised)",
        ),
    ];
    for (slot, status, what) in cases {
        assert_eq!(s.run(slot), status, "{what}");
    }
    assert!(s.disk.bytes().iter().all(|&b| b == 0), "no bad request reached the disk");
    assert_eq!(s.disk.writes, 0);
    assert_eq!(s.vbd.stats.errors, 13);
    assert!(matches!(s.vbd.last_refusal, Some(Refusal::Unsupported(OP_DISCARD))));
}

#[test]
fn read_only_vdisk_refuses_writes_barriers_and_flushes() {
    let mut s = Setup::new(region(0, 1, true));
    s.grants.grant(10, BACKEND, false, 0x44);
    for op in [OP_WRITE, OP_WRITE_BARRIER, OP_FLUSH_DISKCACHE] {
        assert_eq!(s.run(req(op, 1, 0, &[(10, 0, 7)])), RSP_ERROR);
        assert_eq!(s.vbd.last_refusal, Some(Refusal::ReadOnly));
    }
    assert_eq!(s.run(req(OP_FLUSH_DISKCACHE, 1, 0, &[])), RSP_ERROR);
    assert_eq!(s.disk.writes + s.disk.flushes, 0);
    assert_eq!(s.run(req(OP_READ, 2, 0, &[(10, 0, 7)])), RSP_OKAY);
}

#[test]
fn flush_and_barrier_reach_the_device_flush() {
    let mut s = Setup::new(region(0, 1, false));
    s.grants.grant(10, BACKEND, true, 0x55);
    assert_eq!(s.run(req(OP_FLUSH_DISKCACHE, 1, 0, &[])), RSP_OKAY);
    assert_eq!((s.disk.writes, s.disk.flushes), (0, 1));
    assert_eq!(s.run(req(OP_FLUSH_DISKCACHE, 2, 8, &[(10, 0, 7)])), RSP_OKAY);
    assert_eq!((s.disk.writes, s.disk.flushes), (1, 2));
    assert_eq!(s.run(req(OP_WRITE_BARRIER, 3, 16, &[(10, 0, 7)])), RSP_OKAY);
    assert_eq!((s.disk.writes, s.disk.flushes), (2, 4), "flush before and after the barrier write");
    assert!(s.disk.bytes()[8 * 512..24 * 512].iter().all(|&b| b == 0x55));
}

/// Linux's empty flush (no segments) carries sector u64::MAX, the block layer's "no sector":
/// it touches no sector and must not be refused as out of range (blkfront would turn flushes off).
#[test]
fn an_empty_flush_at_sector_max_is_a_flush() {
    // A vdisk that does not start at sector 0: the device address is never computed from MAX.
    let mut s = Setup::new(region(1, 1, false));
    assert_eq!(s.run(req(OP_FLUSH_DISKCACHE, 1, u64::MAX, &[])), RSP_OKAY);
    assert_eq!((s.disk.writes, s.disk.flushes), (0, 1));
    // With data, the range still counts.
    s.grants.grant(10, BACKEND, true, 0x55);
    assert_eq!(s.run(req(OP_FLUSH_DISKCACHE, 2, u64::MAX, &[(10, 0, 7)])), RSP_ERROR);
}

#[test]
fn two_vdisks_on_one_device_stay_apart() {
    let mut disk = RamDisk::with_mib(4);
    let mut grants = Grants::default();
    grants.grant(10, BACKEND, true, 0x66);
    let mut a = Vbd::new(FE, region(0, 1, false));
    let mut b = Vbd::new(FE, region(1, 1, false));
    // a's last sector and b's first.
    assert_eq!(a.handle(&req(OP_WRITE, 1, 2047, &[(10, 0, 0)]), &mut disk, &mut grants), RSP_OKAY);
    assert_eq!(a.handle(&req(OP_WRITE, 1, 2048, &[(10, 0, 0)]), &mut disk, &mut grants), RSP_ERROR);
    grants.grant(10, BACKEND, true, 0x77);
    assert_eq!(b.handle(&req(OP_WRITE, 1, 0, &[(10, 0, 0)]), &mut disk, &mut grants), RSP_OKAY);
    assert!(disk.bytes()[2047 * 512..2048 * 512].iter().all(|&x| x == 0x66));
    assert!(disk.bytes()[2048 * 512..2049 * 512].iter().all(|&x| x == 0x77));
}

#[test]
fn params_feed_regions() {
    let r = parse("offset_mib=1 size_mib=2 mode=r", RamDisk::with_mib(4).capacity()).unwrap();
    assert_eq!(r, region(1, 2, true));
    assert!(parse("offset_mib=3 size_mib=2 mode=r", RamDisk::with_mib(4).capacity()).is_err());
}

fn ring_pair(cells: &[Cell<u8>]) -> (FrontRing<Blkif, CellMemory<'_>>, BackRing<Blkif, CellMemory<'_>>) {
    let front = FrontRing::<Blkif, _>::init(CellMemory::from_cells(cells)).unwrap();
    let back = BackRing::<Blkif, _>::attach(CellMemory::from_cells(cells)).unwrap();
    (front, back)
}

#[test]
fn ring_round_answers_every_request_in_order_within_its_budget() {
    let cells: Vec<Cell<u8>> = (0..4096).map(|_| Cell::new(0)).collect();
    let (mut front, mut back) = ring_pair(&cells);
    let mut s = Setup::new(region(0, 1, false));
    s.grants.grant(10, BACKEND, true, 0x12);
    for id in 0..20u64 {
        let slot =
            if id % 2 == 0 { req(OP_WRITE, id, id * 8, &[(10, 0, 7)]) } else { req(OP_WRITE, id, 4096, &[(10, 0, 7)]) };
        front.push_request(slot).unwrap();
    }
    let _ = front.publish_requests();
    let mut refused_ids = Vec::new();
    let r = s.round_with(&mut back, 8, false, |_, id| refused_ids.push(id)).unwrap();
    assert_eq!((r.served, r.refused, r.more), (8, 4, true));
    let r = s.round_with(&mut back, 32, false, |_, id| refused_ids.push(id)).unwrap();
    assert_eq!((r.served, r.refused, r.more), (12, 6, false));
    assert_eq!(refused_ids, (0..20).filter(|i| i % 2 == 1).collect::<Vec<_>>());
    let mut got: Vec<BlkifResponse> = Vec::new();
    while let Some(rsp) = front.poll_response().unwrap() {
        got.push(rsp);
    }
    assert_eq!(got.len(), 20);
    for (i, rsp) in got.iter().enumerate() {
        assert_eq!(rsp.id, i as u64);
        assert_eq!(rsp.operation, OP_WRITE);
        assert_eq!(rsp.status, if i % 2 == 0 { RSP_OKAY } else { RSP_ERROR });
    }
}

#[test]
fn a_lying_req_prod_breaks_only_that_ring() {
    let cells: Vec<Cell<u8>> = (0..4096).map(|_| Cell::new(0)).collect();
    let (_front, mut back) = ring_pair(&cells);
    let mut s = Setup::new(region(0, 1, false));
    // req_prod (offset 0) claims 1000 requests on a 32-slot ring.
    CellMemory::from_cells(&cells).write(0, &1000u32.to_le_bytes());
    let e = s.round(&mut back, 32).unwrap_err();
    assert!(matches!(e, ServeError::Peer(_)), "{e:?}");
    assert_eq!(s.disk.writes + s.disk.reads, 0);
}

fn indirect(op: u8, id: u64, sector: u64, nr_segments: u16, grefs: &[u32]) -> BlkifRequestSlot {
    let mut r = BlkifRequestIndirect {
        operation: OP_INDIRECT,
        indirect_op: op,
        nr_segments,
        id,
        sector_number: sector,
        ..Default::default()
    };
    r.indirect_grefs[..grefs.len()].copy_from_slice(grefs);
    BlkifRequestSlot::from(&r)
}

/// `n` whole-page segments on grants `first..first+n`.
fn whole_pages(first: u32, n: u32) -> Vec<BlkifSegment> {
    (first..first + n).map(|gref| BlkifSegment { gref, first_sect: 0, last_sect: 7 }).collect()
}

#[test]
fn indirect_requests_carry_more_than_eleven_segments() {
    let mut s = Setup::new(region(1, 2, false));
    // 20 data pages (grants 100..120, page i filled with i), listed in indirect page 50; the
    // last segment only covers sectors 2..=4 of its page.
    for i in 0..20u32 {
        s.grants.grant(100 + i, BACKEND, true, i as u8 + 1);
    }
    let mut segs = whole_pages(100, 20);
    segs[19] = BlkifSegment { gref: 119, first_sect: 2, last_sect: 4 };
    s.grants.grant_segments(50, BACKEND, &segs);
    assert_eq!(s.run(indirect(OP_WRITE, 1, 16, 20, &[50])), RSP_OKAY, "{:?}", s.vbd.last_refusal);
    assert_eq!(s.grants.batches, 2, "one copy of the segment page, one of the data");
    let base = (2048 + 16) * 512;
    for i in 0..19 {
        let page = &s.disk.bytes()[base + i * 4096..base + (i + 1) * 4096];
        assert!(page.iter().all(|&b| b == i as u8 + 1), "page {i}");
    }
    let tail = &s.disk.bytes()[base + 19 * 4096..];
    assert!(tail[..3 * 512].iter().all(|&b| b == 20));
    assert!(tail[3 * 512..4 * 512].iter().all(|&b| b == 0), "nothing past the last sector");
    assert_eq!(s.disk.writes, 1, "one device write for the whole request");
    assert_eq!(s.vbd.stats.sectors_written, 19 * 8 + 3);

    // Read the 32 pages from sector 16 into 32 fresh grants through an indirect page.
    for i in 0..32u32 {
        s.grants.grant(200 + i, BACKEND, false, 0xee);
    }
    s.grants.grant_segments(51, BACKEND, &whole_pages(200, 32));
    assert_eq!(s.run(indirect(OP_READ, 2, 16, 32, &[51])), RSP_OKAY, "{:?}", s.vbd.last_refusal);
    for i in 0..19u32 {
        assert!(s.grants.pages[&(200 + i)].2.iter().all(|&b| b == i as u8 + 1), "page {i}");
    }
    let p = &s.grants.pages[&219].2;
    assert!(p[..3 * 512].iter().all(|&b| b == 20) && p[3 * 512..].iter().all(|&b| b == 0));
    assert!(s.grants.pages[&231].2.iter().all(|&b| b == 0));
    assert_eq!((s.vbd.stats.reads, s.vbd.stats.writes, s.vbd.stats.indirect), (1, 1, 2));
    assert_eq!(s.vbd.stats.sectors_read, 32 * 8);
}

#[test]
fn every_bad_indirect_request_gets_an_error_and_changes_nothing() {
    let mut s = Setup::new(region(1, 1, false));
    for i in 0..40u32 {
        s.grants.grant(100 + i, BACKEND, true, 0x5a);
    }
    let max = MAX_INDIRECT_SEGMENTS as u16;
    s.grants.grant_segments(50, BACKEND, &whole_pages(100, 40));
    s.grants.grant_segments(51, 99, &whole_pages(100, 4)); // granted to someone else
    let mut bad = whole_pages(100, 4);
    bad[2].last_sect = 8;
    s.grants.grant_segments(52, BACKEND, &bad);
    bad[2] = BlkifSegment { gref: 100, first_sect: 6, last_sect: 5 };
    s.grants.grant_segments(53, BACKEND, &bad);
    bad[2] = BlkifSegment { gref: 7777, first_sect: 0, last_sect: 7 };
    s.grants.grant_segments(54, BACKEND, &bad);
    let garbage = BlkifSegment { gref: u32::MAX, first_sect: 0xff, last_sect: 0xff };
    s.grants.grant_segments(55, BACKEND, &[garbage; 4]);
    let cases: Vec<(BlkifRequestSlot, Refusal)> = vec![
        (
            indirect(OP_WRITE, 1, 0, max + 1, &[50]),
            Refusal::TooManySegments { nr_segments: max + 1, max: MAX_INDIRECT_SEGMENTS },
        ),
        (
            indirect(OP_WRITE, 1, 0, 4096, &[50; 8]),
            Refusal::TooManySegments { nr_segments: 4096, max: MAX_INDIRECT_SEGMENTS },
        ),
        (
            indirect(OP_WRITE, 1, 0, 4097, &[50; 8]),
            Refusal::Malformed(BlkifError::BadIndirectSegmentCount { nr_segments: 4097 }),
        ),
        (
            indirect(OP_WRITE, 1, 0, 0, &[50]),
            Refusal::Malformed(BlkifError::BadIndirectSegmentCount { nr_segments: 0 }),
        ),
        (
            indirect(OP_FLUSH_DISKCACHE, 1, 0, 4, &[50]),
            Refusal::Malformed(BlkifError::BadIndirectOperation { indirect_op: OP_FLUSH_DISKCACHE }),
        ),
        (
            indirect(OP_INDIRECT, 1, 0, 4, &[50]),
            Refusal::Malformed(BlkifError::BadIndirectOperation { indirect_op: OP_INDIRECT }),
        ),
        (indirect(OP_WRITE, 1, 0, 4, &[4444]), Refusal::IndirectPage(GrantStatus::BadGntref)),
        (indirect(OP_WRITE, 1, 0, 4, &[51]), Refusal::IndirectPage(GrantStatus::PermissionDenied)),
        (
            indirect(OP_WRITE, 1, 0, 4, &[52]),
            Refusal::Malformed(BlkifError::SectorPastPage { segment: 2, last_sect: 8 }),
        ),
        (
            indirect(OP_WRITE, 1, 0, 4, &[53]),
            Refusal::Malformed(BlkifError::SectorsReversed { segment: 2, first_sect: 6, last_sect: 5 }),
        ),
        (
            indirect(OP_WRITE, 1, 0, 4, &[55]),
            Refusal::Malformed(BlkifError::SectorPastPage { segment: 0, last_sect: 0xff }),
        ),
        (indirect(OP_WRITE, 1, 0, 4, &[54]), Refusal::Grant(GrantStatus::BadGntref)),
        (indirect(OP_WRITE, 1, 2048 - 31, 4, &[50]), Refusal::OutOfRange { sector: 2048 - 31, count: 32, size: 2048 }),
        (
            indirect(OP_WRITE, 1, u64::MAX - 3, 4, &[50]),
            Refusal::Malformed(BlkifError::SectorRangeOverflow { sector_number: u64::MAX - 3 }),
        ),
    ];
    for (slot, refusal) in cases {
        assert_eq!(s.run(slot), RSP_ERROR, "{refusal:?}");
        assert_eq!(s.vbd.last_refusal, Some(refusal));
    }
    assert!(s.disk.bytes().iter().all(|&b| b == 0), "no bad request reached the disk");
    assert_eq!((s.disk.writes, s.disk.reads), (0, 0));
    // The honest request on the same pages goes through; and on a read-only vdisk only reads do.
    assert_eq!(s.run(indirect(OP_WRITE, 2, 2048 - 32, 4, &[50])), RSP_OKAY);
    let mut ro = Setup::new(region(0, 1, true));
    ro.grants = s.grants;
    assert_eq!(ro.run(indirect(OP_WRITE, 3, 0, 4, &[50])), RSP_ERROR);
    assert_eq!(ro.vbd.last_refusal, Some(Refusal::ReadOnly));
    assert_eq!(ro.disk.writes, 0);
}

/// blkfront checks a response's operation against the request's, taking `indirect_op` for an
/// indirect request.
#[test]
fn indirect_responses_carry_the_inner_operation() {
    let cells: Vec<Cell<u8>> = (0..4096).map(|_| Cell::new(0)).collect();
    let (mut front, mut back) = ring_pair(&cells);
    let mut s = Setup::new(region(0, 1, false));
    for i in 0..12u32 {
        s.grants.grant(100 + i, BACKEND, false, 0x42);
    }
    s.grants.grant_segments(50, BACKEND, &whole_pages(100, 12));
    front.push_request(indirect(OP_WRITE, 1, 0, 12, &[50])).unwrap();
    front.push_request(indirect(OP_READ, 2, 0, 12, &[50])).unwrap();
    front.push_request(indirect(OP_READ, 3, 0, 12, &[9999])).unwrap();
    let _ = front.publish_requests();
    let r = s.round(&mut back, 32).unwrap();
    assert_eq!((r.served, r.refused), (3, 1));
    let got: Vec<_> =
        std::iter::from_fn(|| front.poll_response().unwrap()).map(|r| (r.id, r.operation, r.status)).collect();
    assert_eq!(got, [(1, OP_WRITE, RSP_OKAY), (2, OP_READ, RSP_OKAY), (3, OP_READ, RSP_ERROR)]);
}

/// The grants as both the grant copier and the platform that maps them (persistent grants).
struct ViaCell<'a>(&'a std::cell::RefCell<Grants>);

impl GrantCopier for ViaCell<'_> {
    fn copy_in(&mut self, domid: hv_abi::DomId, segs: &[Seg], buf: &mut [u8], status: &mut [GrantStatus]) {
        self.0.borrow_mut().copy_in(domid, segs, buf, status);
    }
    fn copy_out(&mut self, domid: hv_abi::DomId, copies: &[OutCopy<'_>], status: &mut [GrantStatus]) {
        self.0.borrow_mut().copy_out(domid, copies, status);
    }
}

// SAFETY: delegates to `Grants`' platform.
unsafe impl xenbus_backend::Platform for ViaCell<'_> {
    fn map(&mut self, domid: hv_abi::DomId, gref: u32) -> Result<(u32, u64), hv_abi::Error> {
        xenbus_backend::Platform::map(&mut *self.0.borrow_mut(), domid, gref)
    }
    fn unmap(&mut self, handle: u32) -> Result<(), hv_abi::Error> {
        xenbus_backend::Platform::unmap(&mut *self.0.borrow_mut(), handle)
    }
    fn bind(&mut self, _: hv_abi::DomId, _: u32) -> Result<u32, hv_abi::Error> {
        Err(hv_abi::Error::Inval)
    }
    fn close(&mut self, _: u32) -> Result<(), hv_abi::Error> {
        Err(hv_abi::Error::Inval)
    }
    fn log(&mut self, _: &str) {}
}

/// A vdisk served with persistent grants on.
struct Persistent {
    disk: RamDisk,
    grants: std::cell::RefCell<Grants>,
    vbd: Vbd,
    pg: PersistentGrants,
}

impl Persistent {
    fn new(r: Region) -> Self {
        let mut pg = PersistentGrants::new();
        pg.set_enabled(true);
        Self { disk: RamDisk::with_mib(4), grants: Default::default(), vbd: Vbd::new(FE, r), pg }
    }
    fn run(&mut self, slot: BlkifRequestSlot) -> i16 {
        let (mut inner, mut platform) = (ViaCell(&self.grants), ViaCell(&self.grants));
        let mut copier = self.pg.copier(&mut inner, &mut platform);
        self.vbd.handle(&slot, &mut self.disk, &mut copier)
    }
}

#[test]
fn persistent_grants_map_each_page_once_and_need_no_grant_copy_after() {
    let mut s = Persistent::new(region(1, 1, false));
    s.grants.borrow_mut().grant(10, BACKEND, false, 0xaa);
    s.grants.borrow_mut().grant(11, BACKEND, false, 0);
    for id in 0..3u64 {
        assert_eq!(s.run(req(OP_WRITE, id, id * 8, &[(10, 0, 7)])), RSP_OKAY);
        assert_eq!(s.run(req(OP_READ, id, id * 8 + 1, &[(11, 2, 3)])), RSP_OKAY);
    }
    assert_eq!(s.grants.borrow().batches, 0, "no grant copy once the pages are mapped");
    assert_eq!((s.pg.stats.maps, s.pg.stats.hits, s.pg.stats.fallbacks), (2, 6, 0));
    assert_eq!(s.pg.len(), 2);
    let base = 2048 * 512;
    assert!(s.disk.bytes()[base..base + 24 * 512].iter().all(|&b| b == 0xaa));
    assert!(s.disk.bytes()[base + 24 * 512..].iter().all(|&b| b == 0));
    // The read landed in the frontend's page itself, at sectors 2..=3 only.
    {
        let g = s.grants.borrow();
        let p = &g.pages[&11].2;
        assert!(p[..1024].iter().all(|&b| b == 0) && p[1024..2048].iter().all(|&b| b == 0xaa));
        assert!(p[2048..].iter().all(|&b| b == 0));
    }
    // The frontend rewrites its page: the next write sees the new bytes (no stale copy).
    s.grants.borrow_mut().pages.get_mut(&10).unwrap().2.fill(0x5c);
    assert_eq!(s.run(req(OP_WRITE, 9, 100, &[(10, 0, 0)])), RSP_OKAY);
    assert!(s.disk.bytes()[base + 100 * 512..base + 101 * 512].iter().all(|&b| b == 0x5c));
    // Disconnect: everything is unmapped.
    let mut p = ViaCell(&s.grants);
    assert!(s.pg.unmap_all(&mut p));
    assert!(s.pg.is_empty() && s.grants.borrow().mapped.is_empty());
}

#[test]
fn persistent_grants_are_bounded_and_fall_back_to_grant_copy() {
    let mut s = Persistent::new(region(0, 1, false));
    let n = MAX_PERSISTENT_GRANTS as u32 + 8;
    for g in 0..n {
        s.grants.borrow_mut().grant(100 + g, BACKEND, false, g as u8);
    }
    for g in 0..n {
        assert_eq!(s.run(req(OP_WRITE, 1, u64::from(g) * 8, &[(100 + g, 0, 7)])), RSP_OKAY);
    }
    assert_eq!(s.pg.len(), MAX_PERSISTENT_GRANTS);
    assert_eq!(s.grants.borrow().mapped.len(), MAX_PERSISTENT_GRANTS);
    assert_eq!(s.pg.stats.fallbacks, 8);
    assert_eq!(s.grants.borrow().batches, 8, "the pages past the bound went by grant copy");
    for g in 0..n as usize {
        assert!(s.disk.bytes()[g * 4096..(g + 1) * 4096].iter().all(|&b| b == g as u8), "page {g}");
    }
}

#[test]
fn persistent_grants_refuse_what_grant_copy_refuses() {
    let mut s = Persistent::new(region(0, 1, false));
    s.grants.borrow_mut().grant(10, BACKEND, false, 0x11);
    s.grants.borrow_mut().grant(12, 99, false, 0x22); // granted to someone else
    s.grants.borrow_mut().grant(13, BACKEND, true, 0x33); // read-only: not mappable, copy works
    assert_eq!(s.run(req(OP_WRITE, 1, 0, &[(10, 0, 7), (777, 0, 7)])), RSP_ERROR);
    assert_eq!(s.vbd.last_refusal, Some(Refusal::Grant(GrantStatus::BadGntref)));
    assert_eq!(s.run(req(OP_WRITE, 2, 0, &[(12, 0, 7)])), RSP_ERROR);
    assert_eq!(s.vbd.last_refusal, Some(Refusal::Grant(GrantStatus::PermissionDenied)));
    assert_eq!(s.run(req(OP_READ, 3, 0, &[(13, 0, 7)])), RSP_ERROR, "read into a read-only grant");
    assert_eq!(s.disk.writes, 0, "nothing reached the disk");
    assert_eq!(s.pg.len(), 1, "only the good page is mapped");
    // A read-only grant still serves writes, by grant copy.
    assert_eq!(s.run(req(OP_WRITE, 4, 0, &[(13, 0, 7)])), RSP_OKAY);
    assert!(s.disk.bytes()[..4096].iter().all(|&b| b == 0x33));
    // Indirect: the segment page is mapped, and its list is still copied once and validated.
    for i in 0..16u32 {
        s.grants.borrow_mut().grant(200 + i, BACKEND, false, 0x77);
    }
    let mut segs = whole_pages(200, 16);
    s.grants.borrow_mut().grant_segments(50, BACKEND, &segs);
    assert_eq!(s.run(indirect(OP_WRITE, 5, 64, 16, &[50])), RSP_OKAY);
    assert!(s.disk.bytes()[64 * 512..(64 + 128) * 512].iter().all(|&b| b == 0x77));
    segs[3].last_sect = 9;
    let mut g = s.grants.borrow_mut();
    g.pages.get_mut(&50).unwrap().2[3 * 8..4 * 8].copy_from_slice(&segs[3].to_raw());
    drop(g);
    assert_eq!(s.run(indirect(OP_WRITE, 6, 64, 16, &[50])), RSP_ERROR);
    assert_eq!(s.vbd.last_refusal, Some(Refusal::Malformed(BlkifError::SectorPastPage { segment: 3, last_sect: 9 })));
    // Off: nothing is mapped.
    let mut off = Persistent::new(region(0, 1, false));
    off.pg.set_enabled(false);
    off.grants.borrow_mut().grant(10, BACKEND, false, 0x11);
    assert_eq!(off.run(req(OP_WRITE, 1, 0, &[(10, 0, 7)])), RSP_OKAY);
    assert_eq!((off.pg.len(), off.grants.borrow().batches), (0, 1));
}

/// The shared held-completion device, with a 4 MiB RAM disk underneath.
fn slow_disk() -> HeldDisk {
    HeldDisk::new(RamDisk::with_mib(4))
}

fn responses(front: &mut FrontRing<Blkif, CellMemory<'_>>) -> Vec<(u64, u8, i16)> {
    std::iter::from_fn(|| front.poll_response().unwrap()).map(|r| (r.id, r.operation, r.status)).collect()
}

#[test]
fn requests_run_side_by_side_and_are_answered_in_ring_order() {
    let cells: Vec<Cell<u8>> = (0..4096).map(|_| Cell::new(0)).collect();
    let (mut front, mut back) = ring_pair(&cells);
    let mut s = Setup::on(slow_disk(), region(0, 1, false));
    for i in 0..6u32 {
        s.grants.grant(10 + i, BACKEND, false, 0x30 + i as u8);
    }
    // Six writes of one page each, to six places; the pool has four buffers.
    for i in 0..6u64 {
        front.push_request(req(OP_WRITE, i, i * 8, &[(10 + i as u32, 0, 7)])).unwrap();
    }
    let _ = front.publish_requests();
    let r = s.round(&mut back, 32).unwrap();
    assert_eq!((r.served, s.disk.peak), (0, RAM_DISK_DEPTH), "nothing is answered before the device finished");
    assert!(responses(&mut front).is_empty());
    // The device finishes them backwards: still answered 0, 1, 2, 3, and the last two start.
    s.disk.release(true);
    let r = s.round(&mut back, 32).unwrap();
    assert_eq!(r.served, 4);
    assert_eq!(responses(&mut front), (0..4).map(|i| (i, OP_WRITE, RSP_OKAY)).collect::<Vec<_>>());
    assert_eq!(s.disk.inner.in_flight(), 2);
    s.disk.release(true);
    assert_eq!(s.round(&mut back, 32).unwrap().served, 2);
    assert_eq!(responses(&mut front), [(4, OP_WRITE, RSP_OKAY), (5, OP_WRITE, RSP_OKAY)]);
    for i in 0..6usize {
        assert!(s.disk.inner.bytes()[i * 4096..(i + 1) * 4096].iter().all(|&b| b == 0x30 + i as u8), "page {i}");
    }
    assert_eq!((s.disk.in_flight(), s.vbd.queue.len()), (0, 0));
    assert_eq!(core::iter::from_fn(|| s.disk.take()).count(), RAM_DISK_DEPTH, "every buffer went back");
}

#[test]
fn a_flush_waits_for_the_writes_before_it_and_holds_back_those_after() {
    let cells: Vec<Cell<u8>> = (0..4096).map(|_| Cell::new(0)).collect();
    let (mut front, mut back) = ring_pair(&cells);
    let mut s = Setup::on(slow_disk(), region(0, 1, false));
    s.grants.grant(10, BACKEND, false, 0x11);
    front.push_request(req(OP_WRITE, 1, 0, &[(10, 0, 7)])).unwrap();
    front.push_request(req(OP_WRITE, 2, 8, &[(10, 0, 7)])).unwrap();
    front.push_request(req(OP_FLUSH_DISKCACHE, 3, 0, &[])).unwrap();
    front.push_request(req(OP_WRITE, 4, 16, &[(10, 0, 7)])).unwrap();
    let _ = front.publish_requests();
    let r = s.round(&mut back, 32).unwrap();
    // The two writes run; the flush is not at the front yet, the write after it does not start.
    assert_eq!((r.served, s.disk.inner.writes, s.disk.inner.flushes), (0, 2, 0));
    s.disk.release(false);
    let r = s.round(&mut back, 32).unwrap();
    // Both writes answered, then the flush ran alone (SlowDisk asserts it), then the last write.
    assert_eq!((r.served, s.disk.inner.flushes, s.disk.inner.writes), (3, 1, 3));
    s.disk.release(false);
    assert_eq!(s.round(&mut back, 32).unwrap().served, 1);
    let got = responses(&mut front);
    assert_eq!(got.iter().map(|r| (r.0, r.2)).collect::<Vec<_>>(), [(1, 0), (2, 0), (3, 0), (4, 0)]);
}

#[test]
fn a_flush_at_the_front_reports_draining_while_the_device_is_busy() {
    // Two vdisks on one device: the first's write is in flight when the second's flush comes.
    let cells_a: Vec<Cell<u8>> = (0..4096).map(|_| Cell::new(0)).collect();
    let cells_b: Vec<Cell<u8>> = (0..4096).map(|_| Cell::new(0)).collect();
    let (mut front_a, mut back_a) = ring_pair(&cells_a);
    let (mut front_b, mut back_b) = ring_pair(&cells_b);
    let mut s = Setup::on(slow_disk(), region(0, 1, false));
    let mut vbd_b = Vbd::new(FE, region(1, 1, false));
    s.grants.grant(10, BACKEND, false, 0x22);
    front_a.push_request(req(OP_WRITE, 1, 0, &[(10, 0, 7)])).unwrap();
    let _ = front_a.publish_requests();
    assert_eq!(s.round(&mut back_a, 32).unwrap().served, 0);
    front_b.push_request(req(OP_FLUSH_DISKCACHE, 7, 0, &[])).unwrap();
    front_b.push_request(req(OP_WRITE, 8, 0, &[(10, 0, 7)])).unwrap();
    let _ = front_b.publish_requests();
    let round_b = |s: &mut Setup<HeldDisk>, vbd: &mut Vbd, back: &mut BackRing<Blkif, CellMemory<'_>>| {
        serve_round(back, vbd, &mut s.disk, &mut s.done, &mut s.grants, Pass::alone(32), |_, _| {}).unwrap()
    };
    let r = round_b(&mut s, &mut vbd_b, &mut back_b);
    assert!(r.draining && r.served == 0);
    assert_eq!(s.disk.inner.flushes, 0);
    // Held: the first vdisk's new request does not start while the flush waits.
    front_a.push_request(req(OP_WRITE, 2, 8, &[(10, 0, 7)])).unwrap();
    let _ = front_a.publish_requests();
    s.disk.release(false);
    let r = s.round_with(&mut back_a, 32, true, |_, _| {}).unwrap();
    assert_eq!((r.served, s.disk.inner.writes), (1, 1));
    let r = round_b(&mut s, &mut vbd_b, &mut back_b);
    assert_eq!((r.served, s.disk.inner.flushes), (1, 1), "the flush ran once the device drained");
    assert_eq!(responses(&mut front_b)[0], (7, OP_FLUSH_DISKCACHE, RSP_OKAY));
}

#[test]
fn a_disconnect_with_requests_in_flight_gives_their_buffers_back_when_they_finish() {
    let cells: Vec<Cell<u8>> = (0..4096).map(|_| Cell::new(0)).collect();
    let (mut front, mut back) = ring_pair(&cells);
    let mut s = Setup::on(slow_disk(), region(0, 1, false));
    s.grants.grant(10, BACKEND, true, 0);
    for i in 0..3u64 {
        front.push_request(req(OP_READ, i, i * 8, &[(10, 0, 7)])).unwrap();
    }
    let _ = front.publish_requests();
    s.round(&mut back, 32).unwrap();
    assert_eq!(s.disk.in_flight(), 3);
    // The frontend goes away: its queue is forgotten, the device still reads into 3 buffers.
    s.vbd.queue.clear();
    assert_eq!(core::iter::from_fn(|| s.disk.take()).count(), RAM_DISK_DEPTH - 3);
    s.disk.release(false);
    s.done.collect(&mut s.disk);
    assert!(s.done.unclaimed());
    s.done.sweep(&mut s.disk, std::iter::empty());
    assert!(!s.done.unclaimed());
    assert_eq!(core::iter::from_fn(|| s.disk.take()).count(), 3, "the three buffers are free again");
}

#[test]
fn a_contended_vdisk_starts_a_quantum_of_bytes_per_round_and_repays_what_it_overdrew() {
    let cells: Vec<Cell<u8>> = (0..4096).map(|_| Cell::new(0)).collect();
    let (mut front, mut back) = ring_pair(&cells);
    let mut s = Setup::on(slow_disk(), region(0, 1, false));
    for i in 0..11u32 {
        s.grants.grant(10 + i, BACKEND, true, 0);
    }
    // Three reads of 44 KiB (11 pages) each: 132 KiB, more than the 64 KiB quantum.
    let segs: Vec<(u32, u8, u8)> = (0..11).map(|i| (10 + i, 0, 7)).collect();
    for id in 0..3u64 {
        front.push_request(req(OP_READ, id, id * 88, &segs)).unwrap();
    }
    let _ = front.publish_requests();
    let contended = Pass { contended: true, ..Pass::alone(32) };
    let round = |s: &mut Setup<HeldDisk>, back: &mut BackRing<Blkif, CellMemory<'_>>| {
        let Setup { disk, grants, vbd, done } = s;
        serve_round(back, vbd, disk, done, grants, contended, |_, _| {}).unwrap()
    };
    // 44 KiB fits the quantum, the second overdraws it (88 of 64 KiB), the third waits.
    round(&mut s, &mut back);
    assert_eq!(s.disk.in_flight(), 2);
    // Next round: 64 - 24 = 40 KiB of credit, so the third starts.
    s.disk.release(false);
    let r = round(&mut s, &mut back);
    assert_eq!((r.served, s.disk.inner.in_flight()), (2, 1));
    // Uncontended, the same three start at once.
    let mut alone = Setup::on(slow_disk(), region(0, 1, false));
    alone.grants = std::mem::take(&mut s.grants);
    let (mut front, mut back) = ring_pair(&cells);
    for id in 0..3u64 {
        front.push_request(req(OP_READ, id, id * 88, &segs)).unwrap();
    }
    let _ = front.publish_requests();
    alone.round(&mut back, 32).unwrap();
    assert_eq!(alone.disk.in_flight(), 3);
}
