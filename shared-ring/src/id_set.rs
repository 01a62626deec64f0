//! The front end's record of which request ids are outstanding.

use crate::layout::MAX_SLOTS;

const WORDS: usize = MAX_SLOTS as usize / 64;

/// A fixed bitmap of ids `0..MAX_SLOTS`.
#[derive(Clone)]
pub(crate) struct IdSet {
    bits: [u64; WORDS],
}

impl IdSet {
    #[inline]
    pub(crate) const fn new() -> Self {
        Self { bits: [0; WORDS] }
    }

    /// Insert `id` (< MAX_SLOTS); `false` if it was already present.
    #[inline]
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        debug_assert!(id < MAX_SLOTS);
        // `% WORDS` changes nothing for ids below MAX_SLOTS and lets the compiler drop the
        // index check (the caller checked `id < slots <= MAX_SLOTS`, which it cannot see).
        let (word, bit) = (id as usize / 64 % WORDS, 1u64 << (id % 64));
        let fresh = self.bits[word] & bit == 0;
        self.bits[word] |= bit;
        fresh
    }

    /// Remove `id`; `false` if it was absent or out of range.
    #[inline]
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        if id >= u64::from(MAX_SLOTS) {
            return false;
        }
        let (word, bit) = (id as usize / 64, 1u64 << (id % 64));
        let present = self.bits[word] & bit != 0;
        self.bits[word] &= !bit;
        present
    }

    #[inline]
    pub(crate) fn contains(&self, id: u32) -> bool {
        self.bits[id as usize / 64] & (1u64 << (id % 64)) != 0
    }
}
