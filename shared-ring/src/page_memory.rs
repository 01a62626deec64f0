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
        assert!((base.as_ptr() as usize).is_multiple_of(8), "shared area must be 8-byte aligned");
        Self { base, len }
    }

    #[inline]
    fn at(&self, offset: usize) -> *mut u8 {
        // Callers check bounds first; `wrapping_add` keeps this helper itself free of UB.
        self.base.as_ptr().wrapping_add(offset)
    }

    /// Unaligned or odd-sized copies, byte by byte. Out of line: the ring's slot copies are
    /// word-aligned, and keeping byte accesses out of the inlined path lets the compiler keep a
    /// slot copy in registers instead of splitting it into bytes.
    #[inline(never)]
    fn read_bytes(&self, offset: usize, dst: &mut [u8]) {
        check_bounds(offset, dst.len(), self.len);
        for (i, byte) in dst.iter_mut().enumerate() {
            // SAFETY: in bounds (checked above); bytes need no alignment.
            let cell = unsafe { AtomicU8::from_ptr(self.at(offset + i)) };
            *byte = cell.load(Ordering::Relaxed);
        }
    }

    /// The byte-by-byte counterpart of [`read_bytes`](Self::read_bytes).
    #[inline(never)]
    fn write_bytes(&self, offset: usize, src: &[u8]) {
        check_bounds(offset, src.len(), self.len);
        for (i, byte) in src.iter().enumerate() {
            // SAFETY: in bounds (checked above); bytes need no alignment.
            let cell = unsafe { AtomicU8::from_ptr(self.at(offset + i)) };
            cell.store(*byte, Ordering::Relaxed);
        }
    }

    /// The copy behind [`read`](SharedMemory::read) and
    /// [`read_in_bounds`](SharedMemory::read_in_bounds), without the bounds check.
    ///
    /// # Safety
    ///
    /// `offset + dst.len() <= self.len`.
    #[inline]
    unsafe fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        if offset.is_multiple_of(8) && dst.len().is_multiple_of(8) {
            // The ring's slot copies: one relaxed u64 load per word (a plain `mov` on x86).
            for (i, chunk) in dst.chunks_exact_mut(8).enumerate() {
                // SAFETY: in bounds (the caller's promise) and 8-aligned (base 8-aligned, offset
                // and i*8 multiples of 8); the shared area is only ever accessed atomically.
                let word = unsafe { AtomicU64::from_ptr(self.at(offset + i * 8).cast()) };
                chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
            }
        } else if offset.is_multiple_of(4) && dst.len().is_multiple_of(4) {
            for (i, chunk) in dst.chunks_exact_mut(4).enumerate() {
                // SAFETY: as above, with 4-byte alignment.
                let word = unsafe { AtomicU32::from_ptr(self.at(offset + i * 4).cast()) };
                chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_ne_bytes());
            }
        } else {
            self.read_bytes(offset, dst);
        }
    }

    /// The copy behind [`write`](SharedMemory::write) and
    /// [`write_in_bounds`](SharedMemory::write_in_bounds), without the bounds check.
    ///
    /// # Safety
    ///
    /// `offset + src.len() <= self.len`.
    #[inline]
    unsafe fn copy_in(&self, offset: usize, src: &[u8]) {
        if offset.is_multiple_of(8) && src.len().is_multiple_of(8) {
            for (i, chunk) in src.chunks_exact(8).enumerate() {
                // SAFETY: in bounds (the caller's promise) and 8-aligned; only atomic accesses.
                let word = unsafe { AtomicU64::from_ptr(self.at(offset + i * 8).cast()) };
                let value = u64::from_ne_bytes(chunk.try_into().unwrap_or([0; 8]));
                word.store(value, Ordering::Relaxed);
            }
        } else if offset.is_multiple_of(4) && src.len().is_multiple_of(4) {
            for (i, chunk) in src.chunks_exact(4).enumerate() {
                // SAFETY: in bounds (the caller's promise) and 4-aligned; only atomic accesses.
                let word = unsafe { AtomicU32::from_ptr(self.at(offset + i * 4).cast()) };
                let value = u32::from_ne_bytes(chunk.try_into().unwrap_or([0; 4]));
                word.store(value, Ordering::Relaxed);
            }
        } else {
            self.write_bytes(offset, src);
        }
    }

    #[inline]
    fn word(&self, offset: usize) -> &AtomicU32 {
        check_bounds(offset, 4, self.len);
        assert!(offset.is_multiple_of(4), "shared-ring bug: unaligned index offset {offset}");
        // SAFETY: in bounds (checked above), 4-byte aligned (base is 8-aligned, offset % 4 == 0),
        // valid for the lifetime of `self` (contract of `new`) and only ever accessed atomically.
        unsafe { AtomicU32::from_ptr(self.at(offset).cast()) }
    }
}

// SAFETY: index stores are release stores, index loads SeqCst (at least acquire),
// `store_fenced` is a release store followed by a SeqCst fence (a full barrier: no later load
// is satisfied before the store is visible), and slot copies use relaxed atomics only, so
// concurrent peer writes are never undefined behaviour.
unsafe impl SharedMemory for PageMemory {
    #[inline]
    fn len(&self) -> usize {
        self.len
    }

    #[inline]
    fn read(&self, offset: usize, dst: &mut [u8]) {
        check_bounds(offset, dst.len(), self.len);
        // SAFETY: in bounds (checked above).
        unsafe { self.copy_out(offset, dst) }
    }

    #[inline]
    fn write(&self, offset: usize, src: &[u8]) {
        check_bounds(offset, src.len(), self.len);
        // SAFETY: in bounds (checked above).
        unsafe { self.copy_in(offset, src) }
    }

    #[inline]
    unsafe fn read_in_bounds(&self, offset: usize, dst: &mut [u8]) {
        debug_assert!(offset <= self.len && dst.len() <= self.len - offset, "shared-ring bug: unproven bound");
        // SAFETY: in bounds (the caller's promise).
        unsafe { self.copy_out(offset, dst) }
    }

    #[inline]
    unsafe fn write_in_bounds(&self, offset: usize, src: &[u8]) {
        debug_assert!(offset <= self.len && src.len() <= self.len - offset, "shared-ring bug: unproven bound");
        // SAFETY: in bounds (the caller's promise).
        unsafe { self.copy_in(offset, src) }
    }

    #[inline]
    fn load_acquire(&self, offset: usize) -> u32 {
        // SeqCst (stronger than the acquire the trait asks for; on x86 a plain `mov`, on Arm64
        // `ldar`). The notify/final-check pairs are a store-buffering pattern in which each side
        // stores, runs `store_fenced`'s SeqCst fence, then loads: the Rust memory model forbids
        // both loads from missing the other side's store.
        u32::from_le(self.word(offset).load(Ordering::SeqCst))
    }

    #[inline]
    fn store_release(&self, offset: usize, value: u32) {
        self.word(offset).store(value.to_le(), Ordering::Release);
    }

    #[inline]
    fn store_fenced(&self, offset: usize, value: u32) {
        // A release store, then a SeqCst fence: x86 `mov` + `lock or $0` on the stack, which is
        // Xen's own `idx = v; xen_mb()` (xenctrl.h's `lock addl $0, -32(%rsp)`), and what the
        // loom model (`LoomMemory`) checks. It replaced a SeqCst swap (`xchg` on the index): a
        // locked RMW on the shared header line is likely to ask for that line only after the
        // earlier slot stores have drained, serialising two cache-line transfers that a plain
        // store lets overlap (docs/shared-ring.md, "Benchmark").
        self.word(offset).store(value.to_le(), Ordering::Release);
        fence(Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::thread;
    use std::vec::Vec;

    use super::*;
    use crate::wire::blkif::{Blkif, BlkifRequest, BlkifRequestSlot, BlkifResponse, OP_WRITE};
    use crate::{BackRing, FrontRing};

    /// Both halves on real memory in two threads (under Miri this checks the raw-pointer
    /// atomics for undefined behaviour and data races).
    #[test]
    fn two_threads_over_page_memory() {
        let messages: u64 = if cfg!(miri) { 100 } else { 100_000 };
        let page: Vec<AtomicU64> = (0..crate::layout::PAGE_SIZE / 8).map(|_| AtomicU64::new(0)).collect();
        let base = NonNull::new(page.as_ptr() as *mut u8).unwrap();
        // SAFETY: `page` outlives both rings (the scope joins before it is dropped) and is only
        // accessed through atomics.
        let (front_memory, back_memory) = unsafe {
            (PageMemory::new(base, crate::layout::PAGE_SIZE), PageMemory::new(base, crate::layout::PAGE_SIZE))
        };
        let mut front = FrontRing::<Blkif, _>::init(front_memory).unwrap();
        thread::scope(|scope| {
            scope.spawn(move || {
                let mut back = BackRing::<Blkif, _>::attach(back_memory).unwrap();
                let mut answered = 0;
                while answered < messages {
                    while let Some(slot) = back.poll_request().unwrap() {
                        let request = slot.as_request();
                        assert_eq!(request.sector_number, answered);
                        back.push_response(BlkifResponse { id: request.id, operation: OP_WRITE, status: 0 }).unwrap();
                        answered += 1;
                    }
                    let _ = back.publish_responses();
                    thread::yield_now();
                }
            });
            let (mut sent, mut received) = (0u64, 0u64);
            while received < messages {
                while sent < messages && front.free_requests() > 0 {
                    let request = BlkifRequest {
                        operation: OP_WRITE,
                        nr_segments: 1,
                        id: sent % 32,
                        sector_number: sent,
                        ..Default::default()
                    };
                    front.push_request(BlkifRequestSlot::from(&request)).unwrap();
                    sent += 1;
                }
                let _ = front.publish_requests();
                while let Some(response) = front.poll_response().unwrap() {
                    assert_eq!(response.id, received % 32);
                    received += 1;
                }
                thread::yield_now();
            }
        });
        drop(page);
    }

    #[test]
    fn unaligned_and_odd_sized_copies() {
        let mut words = [0u64; 4];
        let base = NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `words` outlives `memory` and is not otherwise touched while it lives.
        let memory = unsafe { PageMemory::new(base, 32) };
        memory.write(3, &[1, 2, 3, 4, 5]);
        memory.write(8, &[9; 8]);
        memory.write(20, &[7; 4]);
        let mut out = [0u8; 32];
        memory.read(0, &mut out);
        assert_eq!(&out[..8], &[0, 0, 0, 1, 2, 3, 4, 5]);
        assert_eq!(&out[8..16], &[9; 8]);
        assert_eq!(&out[20..24], &[7; 4]);
        memory.store_fenced(24, 0xdead_beef);
        assert_eq!(memory.load_acquire(24), 0xdead_beef);
    }

    #[test]
    #[should_panic(expected = "outside a 32-byte shared area")]
    fn out_of_bounds_is_a_panic_not_ub() {
        let mut words = [0u64; 4];
        let base = NonNull::new(words.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: as above.
        let memory = unsafe { PageMemory::new(base, 32) };
        memory.read(30, &mut [0; 4]);
    }
}
