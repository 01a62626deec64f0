//! [`PageMemory`]: the shared area as a raw pointer to mapped pages (a granted ring page in a
//! domain, or a host allocation in tests and benchmarks).

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering, fence};

use crate::shared_memory::{SharedMemory, check_bounds};

/// Shared memory reached through a raw pointer.
///
/// Every access is an atomic operation on the shared bytes (relaxed for slot contents, so a
/// peer writing the same bytes at the same time is a race on values, never undefined
/// behaviour).
#[derive(Debug)]
pub struct PageMemory {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: `PageMemory` only performs atomic accesses through `base`; `new`'s contract makes the
// area valid for its lifetime, so using it from another thread is as sound as from this one.
unsafe impl Send for PageMemory {}
// SAFETY: as for `Send`: all accesses through a shared reference are atomic.
unsafe impl Sync for PageMemory {}

impl PageMemory {
    /// Wrap `len` bytes at `base`.
    ///
    /// Panics if `base` is not 8-byte aligned.
    ///
    /// # Safety
    ///
    /// `base..base + len` must stay mapped, readable and writable for as long as the returned
    /// value (or a ring built on it) exists, and must never be accessed through a Rust reference
    /// (`&`/`&mut` to its bytes) at the same time; other threads, domains or C code may access
    /// it concurrently.
    pub unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        assert!(base.as_ptr() as usize % 8 == 0, "shared area must be 8-byte aligned");
        Self { base, len }
    }

    fn at(&self, offset: usize) -> *mut u8 {
        // Callers check bounds first; `wrapping_add` keeps this helper itself free of UB.
        self.base.as_ptr().wrapping_add(offset)
    }

    fn word(&self, offset: usize) -> &AtomicU32 {
        check_bounds(offset, 4, self.len);
        assert!(offset % 4 == 0, "shared-ring bug: unaligned index offset {offset}");
        // SAFETY: in bounds (checked above), 4-byte aligned (base is 8-aligned, offset % 4 == 0),
        // valid for the lifetime of `self` (contract of `new`) and only ever accessed atomically.
        unsafe { AtomicU32::from_ptr(self.at(offset).cast()) }
    }
}

// SAFETY: index stores are release stores, index loads acquire loads, `store_fenced` adds a
// SeqCst fence after its release store (`fence(SeqCst)` is a full barrier), and slot copies use
// relaxed atomics only, so concurrent peer writes are never undefined behaviour.
unsafe impl SharedMemory for PageMemory {
    fn len(&self) -> usize {
        self.len
    }

    fn read(&self, offset: usize, dst: &mut [u8]) {
        check_bounds(offset, dst.len(), self.len);
        if offset % 8 == 0 && dst.len() % 8 == 0 {
            for (i, chunk) in dst.chunks_exact_mut(8).enumerate() {
                // SAFETY: in bounds (checked above) and 8-aligned (base 8-aligned, offset and i*8
                // multiples of 8); the shared area is only ever accessed atomically.
                let word = unsafe { AtomicU64::from_ptr(self.at(offset + i * 8).cast()) };
                chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
            }
        } else if offset % 4 == 0 && dst.len() % 4 == 0 {
            for (i, chunk) in dst.chunks_exact_mut(4).enumerate() {
                // SAFETY: as above, with 4-byte alignment.
                let word = unsafe { AtomicU32::from_ptr(self.at(offset + i * 4).cast()) };
                chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
            }
        } else {
            for (i, byte) in dst.iter_mut().enumerate() {
                // SAFETY: in bounds (checked above); bytes need no alignment.
                let cell = unsafe { AtomicU8::from_ptr(self.at(offset + i)) };
                *byte = cell.load(Ordering::Relaxed);
            }
        }
    }

    fn write(&self, offset: usize, src: &[u8]) {
        check_bounds(offset, src.len(), self.len);
        if offset % 8 == 0 && src.len() % 8 == 0 {
            for (i, chunk) in src.chunks_exact(8).enumerate() {
                // SAFETY: in bounds (checked above) and 8-aligned; only atomic accesses.
                let word = unsafe { AtomicU64::from_ptr(self.at(offset + i * 8).cast()) };
                let value = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
                word.store(value, Ordering::Relaxed);
            }
        } else if offset % 4 == 0 && src.len() % 4 == 0 {
            for (i, chunk) in src.chunks_exact(4).enumerate() {
                // SAFETY: in bounds (checked above) and 4-aligned; only atomic accesses.
                let word = unsafe { AtomicU32::from_ptr(self.at(offset + i * 4).cast()) };
                let value = u32::from_ne_bytes(chunk.try_into().unwrap_or([0; 4]));
                word.store(value, Ordering::Relaxed);
            }
        } else {
            for (i, byte) in src.iter().enumerate() {
                // SAFETY: in bounds (checked above); bytes need no alignment.
                let cell = unsafe { AtomicU8::from_ptr(self.at(offset + i)) };
                cell.store(*byte, Ordering::Relaxed);
            }
        }
    }

    fn load_acquire(&self, offset: usize) -> u32 {
        u32::from_le(self.word(offset).load(Ordering::Acquire))
    }

    fn store_release(&self, offset: usize, value: u32) {
        self.word(offset).store(value.to_le(), Ordering::Release);
    }

    fn store_fenced(&self, offset: usize, value: u32) {
        self.word(offset).store(value.to_le(), Ordering::Release);
        fence(Ordering::SeqCst);
    }
}
