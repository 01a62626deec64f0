//! The parts of a transfer not issued yet: byte ranges of the caller's buffer. A request takes
//! its range from the front, cut at the connection's limit when it is issued, and a request
//! that must be issued again (its backend left before answering) puts its range back, to be
//! cut anew for the next connection, whose limit may differ. Host-tested.
//!
//! Bounded: the ranges are disjoint and kept merged, and every range but the last one came back
//! from a request in flight (at most a ring's worth), so there are at most 33 of them.
// A list holding one range is what this module means, not a list of the range's numbers.
#![allow(clippy::single_range_in_vec_init)]

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

/// A transfer's unissued byte ranges, in order, disjoint and merged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    ranges: Vec<Range<usize>>,
}

impl Pending {
    /// A transfer of `len` bytes; 0 is one request without data (a flush).
    pub fn new(len: usize) -> Self {
        Self { ranges: vec![0..len] }
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The bytes the next request would carry, at most `max`.
    pub fn next_len(&self, max: usize) -> Option<usize> {
        self.ranges.first().map(|r| r.len().min(max))
    }

    /// The next request's range: the first `max` bytes (at most) of the first range.
    pub fn take(&mut self, max: usize) -> Option<Range<usize>> {
        let first = self.ranges.first_mut()?;
        let end = first.start + first.len().min(max);
        let taken = first.start..end;
        first.start = end;
        if first.start == first.end {
            self.ranges.remove(0);
        }
        Some(taken)
    }

    /// A range taken earlier goes back (merged with its neighbours).
    pub fn put_back(&mut self, r: Range<usize>) {
        let at = self.ranges.partition_point(|x| x.start < r.start);
        if r.is_empty() {
            // Only a request without data has an empty range; it is its transfer's only one.
            self.ranges.insert(at, r);
            return;
        }
        let joins_prev = at > 0 && self.ranges[at - 1].end == r.start;
        let joins_next = self.ranges.get(at).is_some_and(|n| n.start == r.end);
        match (joins_prev, joins_next) {
            (true, true) => {
                self.ranges[at - 1].end = self.ranges[at].end;
                self.ranges.remove(at);
            }
            (true, false) => self.ranges[at - 1].end = r.end,
            (false, true) => self.ranges[at].start = r.start,
            (false, false) => self.ranges.insert(at, r),
        }
    }

    /// The ranges (for tests and debugging).
    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: usize = 4096;

    #[test]
    fn a_transfer_is_cut_at_the_limit_in_order() {
        let mut p = Pending::new(100 * K + 512);
        assert_eq!(p.next_len(32 * K), Some(32 * K));
        assert_eq!(p.take(32 * K), Some(0..32 * K));
        assert_eq!(p.take(32 * K), Some(32 * K..64 * K));
        assert_eq!(p.take(32 * K), Some(64 * K..96 * K));
        assert_eq!(p.next_len(32 * K), Some(4 * K + 512));
        assert_eq!(p.take(32 * K), Some(96 * K..100 * K + 512));
        assert!(p.is_empty());
        assert_eq!(p.take(32 * K), None);
        assert_eq!(p.next_len(32 * K), None);
    }

    #[test]
    fn a_flush_is_one_request_without_data() {
        let mut p = Pending::new(0);
        assert_eq!(p.next_len(11 * K), Some(0));
        assert_eq!(p.take(11 * K), Some(0..0));
        assert!(p.is_empty());
        // Its backend left before answering: it goes again.
        p.put_back(0..0);
        assert_eq!(p.take(11 * K), Some(0..0));
        assert!(p.is_empty());
    }

    #[test]
    fn requests_put_back_are_cut_again_for_a_smaller_limit() {
        // Four 128-segment requests in flight, the second answered, then the backend left; the
        // new one offers no indirect requests (11 pages).
        let mut p = Pending::new(600 * K);
        let taken: Vec<_> = (0..4).map(|_| p.take(128 * K).expect("range")).collect();
        assert_eq!(p.ranges(), &[512 * K..600 * K]);
        for r in [&taken[3], &taken[0], &taken[2]] {
            p.put_back(r.clone());
        }
        // The third and fourth merged with the rest; the first stays apart (the second is done).
        assert_eq!(p.ranges(), &[0..128 * K, 256 * K..600 * K]);
        let mut again = Vec::new();
        while let Some(r) = p.take(11 * K) {
            assert!(r.len() <= 11 * K);
            again.push(r);
        }
        // Everything but the answered range, in order, each request inside one hole.
        assert_eq!(again.first(), Some(&(0..11 * K)));
        assert_eq!(again[11], 121 * K..128 * K);
        assert_eq!(again[12], 256 * K..267 * K);
        assert_eq!(again.last(), Some(&(597 * K..600 * K)));
        assert_eq!(again.len(), 12 + 32);
        let total: usize = again.iter().map(|r| r.len()).sum();
        assert_eq!(total, 600 * K - 128 * K);
    }

    #[test]
    fn a_bigger_limit_joins_what_smaller_requests_left() {
        let mut p = Pending::new(44 * K);
        let a = p.take(11 * K).expect("a");
        let b = p.take(11 * K).expect("b");
        let c = p.take(11 * K).expect("c");
        p.put_back(b);
        p.put_back(a);
        p.put_back(c);
        assert_eq!(p.ranges(), &[0..44 * K]);
        assert_eq!(p.take(128 * K), Some(0..44 * K));
        assert!(p.is_empty());
    }

    #[test]
    fn ranges_stay_few_however_requests_come_back() {
        // 32 requests in flight, every other one answered: 16 holes plus the rest.
        let mut p = Pending::new(1000 * K);
        let taken: Vec<_> = (0..32).map(|_| p.take(8 * K).expect("range")).collect();
        for r in taken.iter().step_by(2) {
            p.put_back(r.clone());
        }
        assert_eq!(p.ranges().len(), 17);
        for r in taken.iter().skip(1).step_by(2) {
            p.put_back(r.clone());
        }
        assert_eq!(p.ranges(), &[0..1000 * K]);
    }
}
