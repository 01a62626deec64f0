//! The deterministic test stream of `netstream` and its checksum.
//!
//! The stream is the little-endian bytes of a xorshift64* sequence seeded with the `seed`
//! argument, so the sender and the receiver can both compute the expected checksum of a
//! stream of any length. The checksum is 64-bit FNV-1a over the bytes.

/// Byte generator for the deterministic stream.
#[derive(Debug, Clone)]
pub struct StreamGen {
    state: u64,
    word: [u8; 8],
    used: usize,
}

impl StreamGen {
    pub fn new(seed: u64) -> Self {
        // Mix the seed so that small seeds differ at once; never zero (xorshift's fixed point).
        let state = (seed ^ 0x9E37_79B9_7F4A_7C15).wrapping_mul(0xBF58_476D_1CE4_E5B9) | 1;
        Self { state, word: [0; 8], used: 8 }
    }

    fn next_word(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Fills `buf` with the next bytes of the stream.
    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut i = 0;
        // Finish the current word.
        while i < buf.len() && self.used < 8 {
            buf[i] = self.word[self.used];
            self.used += 1;
            i += 1;
        }
        // Whole words.
        while buf.len() - i >= 8 {
            let w = self.next_word().to_le_bytes();
            buf[i..i + 8].copy_from_slice(&w);
            i += 8;
        }
        // Start a new word for the tail.
        if i < buf.len() {
            self.word = self.next_word().to_le_bytes();
            self.used = 0;
            while i < buf.len() {
                buf[i] = self.word[self.used];
                self.used += 1;
                i += 1;
            }
        }
    }
}

/// 64-bit FNV-1a.
#[derive(Debug, Clone, Copy)]
pub struct Fnv64(u64);

impl Default for Fnv64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv64 {
    pub const fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }

    pub fn value(&self) -> u64 {
        self.0
    }
}

/// Checksum of the first `len` bytes of the stream seeded with `seed`.
pub fn expected_checksum(seed: u64, len: u64) -> u64 {
    let mut g = StreamGen::new(seed);
    let mut h = Fnv64::new();
    let mut buf = [0u8; 4096];
    let mut left = len;
    while left > 0 {
        let n = left.min(buf.len() as u64) as usize;
        g.fill(&mut buf[..n]);
        h.update(&buf[..n]);
        left -= n as u64;
    }
    h.value()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_known_values() {
        let mut h = Fnv64::new();
        assert_eq!(h.value(), 0xcbf29ce484222325);
        h.update(b"a");
        assert_eq!(h.value(), 0xaf63dc4c8601ec8c);
        let mut h = Fnv64::new();
        h.update(b"foobar");
        assert_eq!(h.value(), 0x85944171f73967e8);
    }

    #[test]
    fn stream_is_independent_of_chunking() {
        let mut whole = vec![0u8; 10_000];
        StreamGen::new(7).fill(&mut whole);
        for chunk in [1usize, 3, 7, 8, 9, 1000, 1460] {
            let mut g = StreamGen::new(7);
            let mut got = vec![0u8; 10_000];
            for c in got.chunks_mut(chunk) {
                g.fill(c);
            }
            assert_eq!(got, whole, "chunk {chunk}");
        }
        let mut h = Fnv64::new();
        h.update(&whole);
        assert_eq!(h.value(), expected_checksum(7, 10_000));
    }

    #[test]
    fn seeds_differ_and_stream_is_not_trivial() {
        let mut a = [0u8; 64];
        let mut b = [0u8; 64];
        StreamGen::new(0).fill(&mut a);
        StreamGen::new(1).fill(&mut b);
        assert_ne!(a, b);
        assert!(a.iter().any(|&x| x != 0));
        assert_ne!(expected_checksum(1, 1 << 20), expected_checksum(1, (1 << 20) - 1));
        assert_eq!(expected_checksum(5, 0), Fnv64::new().value());
    }
}
