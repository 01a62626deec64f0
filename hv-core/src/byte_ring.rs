//! Bounded byte rings, host-testable:
//! - [`ByteQueue`]: a FIFO (the control channel's receive and transmit rings). Pushing into a
//!   full queue takes what fits; the caller decides whether the rest is dropped (and counts it)
//!   or refused.
//! - [`History`]: the last N bytes of a stream with monotonically increasing byte offsets (a
//!   domain's console output), read from any offset: what is no longer kept is skipped.
use alloc::vec::Vec;

/// A bounded FIFO of bytes.
pub struct ByteQueue {
    buf: Vec<u8>,
    head: usize,
    len: usize,
}

impl ByteQueue {
    /// A queue of `capacity` bytes (allocated at once).
    pub fn new(capacity: usize) -> Self {
        Self { buf: alloc::vec![0; capacity.max(1)], head: 0, len: 0 }
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn free(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Appends as much of `bytes` as fits; returns how many were taken.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.free());
        let cap = self.buf.len();
        let tail = (self.head + self.len) % cap;
        let first = n.min(cap - tail);
        self.buf[tail..tail + first].copy_from_slice(&bytes[..first]);
        self.buf[..n - first].copy_from_slice(&bytes[first..n]);
        self.len += n;
        n
    }

    /// Appends one byte; false if the queue is full.
    pub fn push_byte(&mut self, b: u8) -> bool {
        self.push(&[b]) == 1
    }

    /// Removes up to `out.len()` bytes into `out`; returns how many.
    pub fn pop(&mut self, out: &mut [u8]) -> usize {
        let n = self.peek(out);
        self.consume(n);
        n
    }

    /// Copies up to `out.len()` of the oldest bytes without removing them.
    pub fn peek(&self, out: &mut [u8]) -> usize {
        let n = out.len().min(self.len);
        let cap = self.buf.len();
        let first = n.min(cap - self.head);
        out[..first].copy_from_slice(&self.buf[self.head..self.head + first]);
        out[first..n].copy_from_slice(&self.buf[..n - first]);
        n
    }

    /// Drops the `n` oldest bytes (at most all of them).
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.head = (self.head + n) % self.buf.len();
        self.len -= n;
    }
}

/// The last `capacity` bytes of a stream. Byte `o` of the stream (offsets count from 0 and never
/// repeat) lives at `buf[o % capacity]` while kept. The buffer is allocated on the first write
/// (most of a domain's life it may write nothing); if that allocation fails nothing is kept but
/// offsets still advance.
pub struct History {
    buf: Vec<u8>,
    capacity: usize,
    /// Offset one past the newest byte.
    end: u64,
    /// How many bytes before `end` are kept.
    kept: usize,
}

/// What [`History::read`] found: bytes from offset `start`, in up to two pieces.
#[derive(Debug, PartialEq, Eq)]
pub struct Span<'a> {
    pub start: u64,
    pub first: &'a [u8],
    pub second: &'a [u8],
    pub end: u64,
}

impl Span<'_> {
    pub fn len(&self) -> usize {
        self.first.len() + self.second.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl History {
    pub const fn new(capacity: usize) -> Self {
        Self { buf: Vec::new(), capacity, end: 0, kept: 0 }
    }

    /// Offset one past the newest byte (total bytes ever written).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Offset of the oldest byte still kept.
    pub fn oldest(&self) -> u64 {
        self.end - self.kept as u64
    }

    /// Bytes kept.
    pub fn kept(&self) -> usize {
        self.kept
    }

    pub fn write(&mut self, bytes: &[u8]) {
        let cap = self.capacity;
        if cap > 0 && self.buf.is_empty() && self.buf.try_reserve_exact(cap).is_ok() {
            self.buf.resize(cap, 0);
        }
        if self.buf.is_empty() {
            self.end += bytes.len() as u64;
            return;
        }
        // Only the last `cap` bytes of a long write can survive it.
        let skip = bytes.len().saturating_sub(cap);
        self.end += skip as u64;
        let bytes = &bytes[skip..];
        let at = (self.end % cap as u64) as usize;
        let first = bytes.len().min(cap - at);
        self.buf[at..at + first].copy_from_slice(&bytes[..first]);
        self.buf[..bytes.len() - first].copy_from_slice(&bytes[first..]);
        self.end += bytes.len() as u64;
        self.kept = (self.kept + bytes.len()).min(cap);
    }

    /// Up to `max` bytes starting at `max(from, oldest)`; empty (with `start = end`) if `from`
    /// is at or past the end.
    pub fn read(&self, from: u64, max: usize) -> Span<'_> {
        let start = from.clamp(self.oldest(), self.end);
        let n = ((self.end - start) as usize).min(max);
        if n == 0 {
            return Span { start, first: &[], second: &[], end: self.end };
        }
        let cap = self.capacity;
        let at = (start % cap as u64) as usize;
        let first = n.min(cap - at);
        Span { start, first: &self.buf[at..at + first], second: &self.buf[..n - first], end: self.end }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_fifo_wraps() {
        let mut q = ByteQueue::new(8);
        assert_eq!(q.push(b"abcde"), 5);
        let mut out = [0u8; 3];
        assert_eq!(q.pop(&mut out), 3);
        assert_eq!(&out, b"abc");
        // Wraps around the end of the buffer.
        assert_eq!(q.push(b"fghij"), 5);
        assert_eq!(q.len(), 7);
        let mut out = [0u8; 16];
        assert_eq!(q.pop(&mut out), 7);
        assert_eq!(&out[..7], b"defghij");
        assert!(q.is_empty());
        assert_eq!(q.pop(&mut out), 0);
    }

    #[test]
    fn queue_full_takes_what_fits() {
        let mut q = ByteQueue::new(4);
        assert_eq!(q.push(b"abcdef"), 4);
        assert_eq!(q.free(), 0);
        assert!(!q.push_byte(b'x'));
        assert_eq!(q.push(b"zz"), 0);
        let mut out = [0u8; 2];
        assert_eq!(q.peek(&mut out), 2);
        assert_eq!(&out, b"ab");
        assert_eq!(q.len(), 4);
        q.consume(3);
        assert!(q.push_byte(b'e'));
        let mut out = [0u8; 4];
        assert_eq!(q.pop(&mut out), 2);
        assert_eq!(&out[..2], b"de");
        q.consume(100);
        assert!(q.is_empty());
    }

    #[test]
    fn queue_matches_a_model() {
        // A deterministic pseudo-random sequence of pushes and pops against a VecDeque.
        let mut q = ByteQueue::new(37);
        let mut model = std::collections::VecDeque::new();
        let mut x = 12345u32;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        let mut counter = 0u8;
        for _ in 0..10_000 {
            let r = next();
            let n = (r % 20) as usize;
            if r & 0x100 != 0 {
                let data: Vec<u8> = (0..n)
                    .map(|_| {
                        counter = counter.wrapping_add(1);
                        counter
                    })
                    .collect();
                let took = q.push(&data);
                assert_eq!(took, n.min(37 - model.len()));
                model.extend(&data[..took]);
            } else {
                let mut out = vec![0u8; n];
                let got = q.pop(&mut out);
                let want: Vec<u8> = model.drain(..n.min(model.len())).collect();
                assert_eq!(&out[..got], &want[..]);
            }
            assert_eq!(q.len(), model.len());
        }
    }

    fn read_all(h: &History, from: u64, max: usize) -> (u64, Vec<u8>, u64) {
        let s = h.read(from, max);
        let mut v = s.first.to_vec();
        v.extend_from_slice(s.second);
        (s.start, v, s.end)
    }

    #[test]
    fn history_keeps_the_last_bytes_with_offsets() {
        let mut h = History::new(8);
        assert_eq!(read_all(&h, 0, 100), (0, vec![], 0));
        h.write(b"hello");
        assert_eq!(read_all(&h, 0, 100), (0, b"hello".to_vec(), 5));
        assert_eq!(read_all(&h, 2, 100), (2, b"llo".to_vec(), 5));
        assert_eq!(read_all(&h, 2, 2), (2, b"ll".to_vec(), 5));
        // At or past the end: nothing, start = end (a tailing client keeps asking from `end`).
        assert_eq!(read_all(&h, 5, 100), (5, vec![], 5));
        assert_eq!(read_all(&h, 99, 100), (5, vec![], 5));
        h.write(b" world");
        // 11 bytes written, 8 kept: offsets 3..11.
        assert_eq!(h.oldest(), 3);
        assert_eq!(read_all(&h, 0, 100), (3, b"lo world".to_vec(), 11));
        assert_eq!(read_all(&h, 6, 100), (6, b"world".to_vec(), 11));
        // A read that wraps around the buffer's end, cut by `max`.
        assert_eq!(read_all(&h, 4, 5), (4, b"o wor".to_vec(), 11));
        assert_eq!(read_all(&h, 0, 0), (3, vec![], 11));
    }

    #[test]
    fn history_long_write_keeps_its_tail() {
        let mut h = History::new(4);
        h.write(b"ab");
        h.write(b"0123456789");
        assert_eq!(h.end(), 12);
        assert_eq!(h.kept(), 4);
        assert_eq!(read_all(&h, 0, 100), (8, b"6789".to_vec(), 12));
        h.write(b"");
        assert_eq!(read_all(&h, 10, 100), (10, b"89".to_vec(), 12));
    }

    #[test]
    fn history_tailing_sees_every_byte_once() {
        let mut h = History::new(16);
        let mut seen = Vec::new();
        let mut from = 0;
        let mut all = Vec::new();
        for i in 0..200u32 {
            let chunk: Vec<u8> = (0..(i % 7) as u8).map(|k| (i as u8).wrapping_mul(3).wrapping_add(k)).collect();
            h.write(&chunk);
            all.extend_from_slice(&chunk);
            // The reader keeps up (reads less than the capacity between writes).
            let (start, bytes, end) = read_all(&h, from, 5);
            assert_eq!(start, from);
            seen.extend_from_slice(&bytes);
            from = start + bytes.len() as u64;
            assert!(from <= end);
            if i % 3 == 0 {
                let (s, b, _) = read_all(&h, from, 100);
                seen.extend_from_slice(&b);
                from = s + b.len() as u64;
            }
        }
        let (s, b, _) = read_all(&h, from, 100);
        assert_eq!(s, from);
        seen.extend_from_slice(&b);
        assert_eq!(seen, all);
    }

    #[test]
    fn history_of_zero_capacity_only_counts() {
        let mut h = History::new(0);
        h.write(b"abc");
        assert_eq!(read_all(&h, 0, 10), (3, vec![], 3));
    }
}
