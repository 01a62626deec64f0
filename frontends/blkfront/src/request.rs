//! One request of a transfer, built for what the connection negotiated ([`Limits`]): up to 11
//! data pages go directly in the ring slot (`blkif_request`); more go as `BLKIF_OP_INDIRECT`
//! (`blkif_request_indirect`) with the segment list in indirect pages the frontend grants to
//! the backend (512 segments of 8 bytes per page, from offset 0, blkif.h). Pure: the caller
//! hands in the pages (pool pages for data, page buffers for the list). Host-tested.

use shared_ring::wire::blkif::{
    BlkifRequest, BlkifRequestIndirect, BlkifRequestSlot, BlkifSegment, MAX_INDIRECT_PAGES_PER_REQUEST,
    MAX_SEGMENTS_PER_REQUEST, OP_INDIRECT, OP_READ, OP_WRITE, SEGMENTS_PER_INDIRECT_PAGE,
};

/// Bytes of a page (a segment's frame, an indirect page).
pub const PAGE: usize = 4096;
/// 512-byte sectors.
pub const SECTOR_SIZE: usize = 512;
/// The most segments we put in one indirect request whatever the backend offers: 512 KiB per
/// ring slot, and the list fits one indirect page.
pub const MAX_INDIRECT_SEGMENTS: usize = 128;
/// Bytes of one segment in an indirect page.
const SEGMENT_SIZE: usize = 8;

/// What one connection allows per request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Data pages (segments) one request carries at most.
    pub segments: usize,
}

impl Limits {
    /// No indirect requests: at most 11 segments, in the slot.
    pub const DIRECT: Limits = Limits { segments: MAX_SEGMENTS_PER_REQUEST };

    /// The limits for a backend whose `feature-max-indirect-segments` is `backend_max` (0 when
    /// absent or not a number) and a pool of `pool_pages` data pages: at most the backend's
    /// maximum, [`MAX_INDIRECT_SEGMENTS`], and half the pool (so at least two requests of the
    /// largest size are in flight at once), never fewer than a direct request's 11.
    pub fn negotiate(backend_max: u64, pool_pages: usize) -> Self {
        let offered = usize::try_from(backend_max).unwrap_or(usize::MAX).min(MAX_INDIRECT_SEGMENTS);
        let segments = offered.min(pool_pages / 2);
        if segments > MAX_SEGMENTS_PER_REQUEST { Limits { segments } } else { Limits::DIRECT }
    }

    /// Whether requests past 11 segments go as `BLKIF_OP_INDIRECT`.
    pub fn indirect(&self) -> bool {
        self.segments > MAX_SEGMENTS_PER_REQUEST
    }

    /// Bytes one request carries at most.
    pub fn bytes(&self) -> usize {
        self.segments * PAGE
    }

    /// Indirect pages to keep so that no request waits for one: a request of `segments` data
    /// pages takes [`indirect_pages_for`] of them, and a pool of `pool_pages` holds at most
    /// `pool_pages / 12` requests of more than 11 pages (never more than `slots`).
    pub fn indirect_pages_needed(&self, pool_pages: usize, slots: usize) -> usize {
        if !self.indirect() {
            return 0;
        }
        let requests = (pool_pages / (MAX_SEGMENTS_PER_REQUEST + 1)).min(slots);
        requests * indirect_pages_for(self.segments)
    }
}

/// Indirect pages a request of `segments` data pages needs: none up to 11 (sent directly).
pub fn indirect_pages_for(segments: usize) -> usize {
    if segments <= MAX_SEGMENTS_PER_REQUEST { 0 } else { segments.div_ceil(SEGMENTS_PER_INDIRECT_PAGE) }
}

/// Why a request could not be built (a bug of the caller, never the backend's doing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// `data` does not hold exactly `bytes.div_ceil(4096)` pages, or `bytes` is not whole sectors.
    PagesDoNotMatch { bytes: usize, pages: usize },
    /// More data pages than the connection allows per request.
    TooManySegments { segments: usize, limit: usize },
    /// Not exactly [`indirect_pages_for`] indirect pages.
    IndirectPages { need: usize, have: usize },
    /// Only reads and writes may go indirect.
    NotIndirectable { operation: u8 },
}

/// Where a request goes and what it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// `BLKIF_OP_*` (read, write, flush, barrier).
    pub operation: u8,
    /// Echoed in the response (our slot index).
    pub id: u64,
    /// First sector.
    pub sector: u64,
    /// Data bytes (whole sectors; 0 for a flush).
    pub bytes: usize,
}

/// The segments of `bytes` of data in the pages `data`, in order: every page whole (sectors
/// 0..=7) except a shorter last one.
pub fn segments(bytes: usize, data: &[u32]) -> impl Iterator<Item = BlkifSegment> + '_ {
    data.iter().enumerate().map(move |(i, &gref)| {
        let n = bytes.saturating_sub(i * PAGE).min(PAGE);
        BlkifSegment { gref, first_sect: 0, last_sect: (n / SECTOR_SIZE).saturating_sub(1) as u8 }
    })
}

/// Builds the ring slot for `t` with its data in the pool pages `data` (grant refs), writing the
/// segment list into `indirect` (grant ref and page image each) when it goes indirect.
pub fn build(
    t: Target,
    data: &[u32],
    limits: Limits,
    indirect: &mut [(u32, &mut [u8; PAGE])],
) -> Result<BlkifRequestSlot, BuildError> {
    let n = data.len();
    if !t.bytes.is_multiple_of(SECTOR_SIZE) || n != t.bytes.div_ceil(PAGE) {
        return Err(BuildError::PagesDoNotMatch { bytes: t.bytes, pages: n });
    }
    if n > limits.segments {
        return Err(BuildError::TooManySegments { segments: n, limit: limits.segments });
    }
    let need = indirect_pages_for(n);
    if indirect.len() != need {
        return Err(BuildError::IndirectPages { need, have: indirect.len() });
    }
    if need == 0 {
        let mut r = BlkifRequest {
            operation: t.operation,
            nr_segments: n as u8,
            handle: 0,
            id: t.id,
            sector_number: t.sector,
            ..Default::default()
        };
        for (slot, s) in r.seg.iter_mut().zip(segments(t.bytes, data)) {
            *slot = s;
        }
        return Ok(BlkifRequestSlot::from(&r));
    }
    if !matches!(t.operation, OP_READ | OP_WRITE) {
        return Err(BuildError::NotIndirectable { operation: t.operation });
    }
    // `need <= 8` follows from `n <= limits.segments`, but a hand-made `Limits` could exceed it.
    if need > MAX_INDIRECT_PAGES_PER_REQUEST {
        return Err(BuildError::TooManySegments { segments: n, limit: MAX_INDIRECT_PAGES_PER_REQUEST * 512 });
    }
    let mut r = BlkifRequestIndirect {
        operation: OP_INDIRECT,
        indirect_op: t.operation,
        nr_segments: n as u16,
        id: t.id,
        sector_number: t.sector,
        handle: 0,
        indirect_grefs: [0; MAX_INDIRECT_PAGES_PER_REQUEST],
    };
    for (i, s) in segments(t.bytes, data).enumerate() {
        let (page, at) = (i / SEGMENTS_PER_INDIRECT_PAGE, (i % SEGMENTS_PER_INDIRECT_PAGE) * SEGMENT_SIZE);
        indirect[page].1[at..at + SEGMENT_SIZE].copy_from_slice(&s.to_raw());
    }
    for (gref, (page_gref, _)) in r.indirect_grefs.iter_mut().zip(indirect.iter()) {
        *gref = *page_gref;
    }
    Ok(BlkifRequestSlot::from(&r))
}

/// The `operation` a response to a request built with `operation` and `indirect` pages may
/// carry: the request's own; for an indirect one its inner operation (what blkback and Xen's
/// blkback answer) or `BLKIF_OP_INDIRECT` (Linux's blkfront accepts both too).
pub fn response_matches(operation: u8, indirect: bool, answered: u8) -> bool {
    answered == operation || (indirect && answered == OP_INDIRECT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::boxed::Box;
    use alloc::vec::Vec;
    use shared_ring::wire::blkif::{BlockRequest, OP_FLUSH_DISKCACHE, OP_WRITE_BARRIER};

    fn target(operation: u8, bytes: usize) -> Target {
        Target { operation, id: 5, sector: 1000, bytes }
    }

    fn grefs(n: usize) -> Vec<u32> {
        (0..n as u32).map(|i| 100 + i).collect()
    }

    /// `n` indirect page images (zeroed), grant refs 900, 901, ...
    fn pages(n: usize) -> Vec<(u32, Box<[u8; PAGE]>)> {
        (0..n as u32).map(|i| (900 + i, Box::new([0u8; PAGE]))).collect()
    }

    fn build_with(t: Target, data: &[u32], limits: Limits, pages: &mut [(u32, Box<[u8; PAGE]>)]) -> BlkifRequestSlot {
        let mut refs: Vec<(u32, &mut [u8; PAGE])> = pages.iter_mut().map(|(g, p)| (*g, &mut **p)).collect();
        build(t, data, limits, &mut refs).expect("builds")
    }

    /// Segment `i` as written in the indirect pages.
    fn listed(pages: &[(u32, Box<[u8; PAGE]>)], i: usize) -> BlkifSegment {
        let (page, at) = (i / 512, (i % 512) * 8);
        BlkifSegment::from_raw(pages[page].1[at..at + 8].try_into().expect("8 bytes"))
    }

    #[test]
    fn negotiation_takes_the_smallest_limit_and_falls_back_to_direct() {
        // Absent or 0: direct requests, as before.
        assert_eq!(Limits::negotiate(0, 64), Limits::DIRECT);
        assert!(!Limits::DIRECT.indirect());
        // blkback's 128 with kvlog's 64-page pool: half the pool.
        assert_eq!(Limits::negotiate(128, 64), Limits { segments: 32 });
        assert!(Limits::negotiate(128, 64).indirect());
        // A big pool: our own 128 caps it, whatever the backend claims.
        assert_eq!(Limits::negotiate(128, 512), Limits { segments: 128 });
        assert_eq!(Limits::negotiate(u64::MAX, 512), Limits { segments: 128 });
        assert_eq!(Limits::negotiate(4096, 300), Limits { segments: 128 });
        // A backend offering little.
        assert_eq!(Limits::negotiate(16, 512), Limits { segments: 16 });
        assert_eq!(Limits::negotiate(12, 512), Limits { segments: 12 });
        // 11 or fewer is no better than a direct request; so is a pool too small to halve.
        assert_eq!(Limits::negotiate(11, 512), Limits::DIRECT);
        assert_eq!(Limits::negotiate(3, 512), Limits::DIRECT);
        assert_eq!(Limits::negotiate(128, 11), Limits::DIRECT);
        assert_eq!(Limits::negotiate(128, 23), Limits::DIRECT);
        assert_eq!(Limits::negotiate(128, 24), Limits { segments: 12 });
        assert_eq!(Limits { segments: 32 }.bytes(), 128 * 1024);
    }

    #[test]
    fn indirect_pages_are_enough_for_every_request_the_pool_can_hold() {
        assert_eq!(indirect_pages_for(0), 0);
        assert_eq!(indirect_pages_for(11), 0);
        assert_eq!(indirect_pages_for(12), 1);
        assert_eq!(indirect_pages_for(512), 1);
        assert_eq!(indirect_pages_for(513), 2);
        assert_eq!(Limits::DIRECT.indirect_pages_needed(512, 32), 0);
        // 64 pages hold at most five requests of 12 or more.
        assert_eq!(Limits::negotiate(128, 64).indirect_pages_needed(64, 32), 5);
        // Never more than a ring's worth of requests.
        assert_eq!(Limits::negotiate(128, 480).indirect_pages_needed(480, 32), 32);
        assert_eq!(Limits { segments: 600 }.indirect_pages_needed(1200, 32), 2 * 32);
    }

    #[test]
    fn up_to_eleven_pages_go_directly_in_the_slot() {
        let limits = Limits::negotiate(128, 256);
        for (bytes, nr) in [(512, 1), (4096, 1), (4608, 2), (11 * 4096 - 512, 11), (11 * 4096, 11)] {
            let data = grefs(nr);
            let slot = build_with(target(OP_WRITE, bytes), &data, limits, &mut []);
            let Ok(BlockRequest::Direct(r)) = slot.decode() else { panic!("{bytes} bytes: not direct") };
            assert_eq!((r.operation, r.id, r.sector_number, usize::from(r.nr_segments)), (OP_WRITE, 5, 1000, nr));
            for (i, s) in r.seg[..nr].iter().enumerate() {
                let last = if i + 1 < nr { 7 } else { ((bytes - i * 4096) / 512 - 1) as u8 };
                assert_eq!(*s, BlkifSegment { gref: 100 + i as u32, first_sect: 0, last_sect: last });
            }
        }
        // A flush carries nothing.
        let slot = build_with(target(OP_FLUSH_DISKCACHE, 0), &[], limits, &mut []);
        let Ok(BlockRequest::Direct(r)) = slot.decode() else { panic!("flush: not direct") };
        assert_eq!((r.operation, r.nr_segments), (OP_FLUSH_DISKCACHE, 0));
    }

    #[test]
    fn more_than_eleven_pages_go_indirect_with_the_list_in_the_granted_page() {
        let limits = Limits::negotiate(128, 256);
        let bytes = 16 * 4096 - 1024; // the last page holds 6 sectors
        let data = grefs(16);
        let mut pages = pages(1);
        let slot = build_with(target(OP_READ, bytes), &data, limits, &mut pages);
        let Ok(BlockRequest::Indirect(r)) = slot.decode() else { panic!("not indirect") };
        assert_eq!(
            (r.operation, r.indirect_op, r.nr_segments, r.id, r.sector_number),
            (OP_INDIRECT, OP_READ, 16, 5, 1000)
        );
        assert_eq!(r.indirect_grefs, [900, 0, 0, 0, 0, 0, 0, 0]);
        for i in 0..15 {
            assert_eq!(listed(&pages, i), BlkifSegment { gref: 100 + i as u32, first_sect: 0, last_sect: 7 });
        }
        assert_eq!(listed(&pages, 15), BlkifSegment { gref: 115, first_sect: 0, last_sect: 5 });
        // Nothing past the list was written.
        assert!(pages[0].1[16 * 8..].iter().all(|&b| b == 0));
        // The full frontend limit: 128 segments in one page.
        let data = grefs(128);
        let mut pages = self::pages(1);
        let slot = build_with(target(OP_WRITE, 128 * 4096), &data, limits, &mut pages);
        let Ok(BlockRequest::Indirect(r)) = slot.decode() else { panic!("not indirect") };
        assert_eq!((r.indirect_op, r.nr_segments, r.pages()), (OP_WRITE, 128, 1));
        assert_eq!(listed(&pages, 127), BlkifSegment { gref: 227, first_sect: 0, last_sect: 7 });
    }

    #[test]
    fn a_list_longer_than_a_page_is_cut_into_pages_of_512() {
        let limits = Limits { segments: 1100 };
        let data = grefs(1100);
        let mut pages = pages(3);
        let slot = build_with(target(OP_WRITE, 1100 * 4096), &data, limits, &mut pages);
        let Ok(BlockRequest::Indirect(r)) = slot.decode() else { panic!("not indirect") };
        assert_eq!((r.nr_segments, r.pages()), (1100, 3));
        assert_eq!(r.indirect_grefs, [900, 901, 902, 0, 0, 0, 0, 0]);
        // Segment 512 opens the second page at offset 0, 1024 the third.
        assert_eq!(listed(&pages, 511).gref, 611);
        assert_eq!(BlkifSegment::from_raw(pages[1].1[..8].try_into().expect("8")).gref, 612);
        assert_eq!(BlkifSegment::from_raw(pages[2].1[..8].try_into().expect("8")).gref, 1124);
        assert_eq!(listed(&pages, 1099).gref, 1199);
        assert!(pages[2].1[(1100 - 1024) * 8..].iter().all(|&b| b == 0));
    }

    #[test]
    fn what_does_not_fit_the_limits_is_refused() {
        let direct = Limits::DIRECT;
        let mut none: [(u32, &mut [u8; PAGE]); 0] = [];
        // Past the connection's limit: 12 pages without indirect, 33 with 32.
        assert_eq!(
            build(target(OP_READ, 12 * 4096), &grefs(12), direct, &mut none),
            Err(BuildError::TooManySegments { segments: 12, limit: 11 })
        );
        let mut page = [0u8; PAGE];
        assert_eq!(
            build(target(OP_READ, 33 * 4096), &grefs(33), Limits { segments: 32 }, &mut [(900, &mut page)]),
            Err(BuildError::TooManySegments { segments: 33, limit: 32 })
        );
        // Pages that do not match the byte count; bytes that are not whole sectors.
        assert_eq!(
            build(target(OP_READ, 8192), &grefs(1), direct, &mut none),
            Err(BuildError::PagesDoNotMatch { bytes: 8192, pages: 1 })
        );
        assert_eq!(
            build(target(OP_READ, 100), &grefs(1), direct, &mut none),
            Err(BuildError::PagesDoNotMatch { bytes: 100, pages: 1 })
        );
        // An indirect request needs exactly its list's pages; a direct one none.
        let limits = Limits { segments: 128 };
        assert_eq!(
            build(target(OP_READ, 20 * 4096), &grefs(20), limits, &mut none),
            Err(BuildError::IndirectPages { need: 1, have: 0 })
        );
        let mut page = [0u8; PAGE];
        assert_eq!(
            build(target(OP_READ, 4096), &grefs(1), limits, &mut [(900, &mut page)]),
            Err(BuildError::IndirectPages { need: 0, have: 1 })
        );
        // Only reads and writes go indirect (a barrier with data stays at 11 pages).
        assert_eq!(
            build(target(OP_WRITE_BARRIER, 20 * 4096), &grefs(20), limits, &mut [(900, &mut page)]),
            Err(BuildError::NotIndirectable { operation: OP_WRITE_BARRIER })
        );
    }

    #[test]
    fn responses_to_indirect_requests_may_carry_either_operation() {
        assert!(response_matches(OP_READ, false, OP_READ));
        assert!(!response_matches(OP_READ, false, OP_INDIRECT));
        assert!(!response_matches(OP_READ, false, OP_WRITE));
        assert!(response_matches(OP_WRITE, true, OP_WRITE));
        assert!(response_matches(OP_WRITE, true, OP_INDIRECT));
        assert!(!response_matches(OP_WRITE, true, OP_READ));
    }
}
