//! [`CellMemory`]: a single-threaded shared area over `&[Cell<u8>]`.
//!
//! Fuzzers and model tests drive both halves of a ring (and an attacker rewriting the page
//! between operations) from one thread; `Cell` lets all of them hold the buffer at once without
//! any `unsafe`.

use core::cell::Cell;

use crate::shared_memory::{SharedMemory, check_bounds};

/// Shared memory backed by a caller-owned byte buffer, for single-threaded use.
#[derive(Debug, Clone, Copy)]
pub struct CellMemory<'a> {
    bytes: &'a [Cell<u8>],
}

impl<'a> CellMemory<'a> {
    /// Use `bytes` as the shared area.
    #[inline]
    pub fn new(bytes: &'a mut [u8]) -> Self {
        Self { bytes: Cell::from_mut(bytes).as_slice_of_cells() }
    }

    /// Use an existing slice of cells (so a test can keep a second view to play the attacker).
    #[inline]
    pub fn from_cells(bytes: &'a [Cell<u8>]) -> Self {
        Self { bytes }
    }

    /// The underlying cells.
    #[inline]
    pub fn cells(&self) -> &'a [Cell<u8>] {
        self.bytes
    }
}

// SAFETY: a `CellMemory` is `!Sync`, so every access happens on one thread in program order:
// release/acquire/fence semantics hold trivially.
unsafe impl SharedMemory for CellMemory<'_> {
    #[inline]
    fn len(&self) -> usize {
        self.bytes.len()
    }

    #[inline]
    fn read(&self, offset: usize, dst: &mut [u8]) {
        check_bounds(offset, dst.len(), self.bytes.len());
        for (byte, cell) in dst.iter_mut().zip(&self.bytes[offset..]) {
            *byte = cell.get();
        }
    }

    #[inline]
    fn write(&self, offset: usize, src: &[u8]) {
        check_bounds(offset, src.len(), self.bytes.len());
        for (byte, cell) in src.iter().zip(&self.bytes[offset..]) {
            cell.set(*byte);
        }
    }

    #[inline]
    fn load_acquire(&self, offset: usize) -> u32 {
        let mut word = [0; 4];
        self.read(offset, &mut word);
        u32::from_le_bytes(word)
    }

    #[inline]
    fn store_release(&self, offset: usize, value: u32) {
        self.write(offset, &value.to_le_bytes());
    }

    #[inline]
    fn store_fenced(&self, offset: usize, value: u32) {
        self.store_release(offset, value);
    }
}
