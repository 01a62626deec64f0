//! Physical frame allocator: a bitmap over 4 KiB frames with first-fit contiguous allocation.
//!
//! Domains get physically contiguous RAM (device address = machine address for driver domains
//! until the IOMMU work), so the allocator's main operation is "n contiguous frames".

use alloc::vec;
use alloc::vec::Vec;

pub const FRAME_SIZE: u64 = 4096;

#[derive(Debug)]
pub struct FrameAllocator {
    /// One bit per frame; 1 = free.
    free: Vec<u64>,
    frames: usize,
    free_count: usize,
    /// First word that may hold a free frame (speeds up single-frame allocation).
    hint: usize,
}

impl FrameAllocator {
    /// An allocator covering physical `[0, limit)` with nothing free yet.
    pub fn new(limit: u64) -> Self {
        let frames = (limit / FRAME_SIZE) as usize;
        Self { free: vec![0; frames.div_ceil(64)], frames, free_count: 0, hint: 0 }
    }

    pub fn total_frames(&self) -> usize {
        self.frames
    }

    pub fn free_frames(&self) -> usize {
        self.free_count
    }

    /// Marks `[start, end)` free (page-aligned inwards). Frames beyond the limit are ignored.
    pub fn add_free(&mut self, start: u64, end: u64) {
        let first = start.div_ceil(FRAME_SIZE) as usize;
        let last = ((end / FRAME_SIZE) as usize).min(self.frames);
        for f in first..last {
            self.set(f, true);
        }
        self.hint = 0;
    }

    /// Marks `[start, end)` used (page-aligned outwards): boot modules, the image, tables.
    pub fn reserve(&mut self, start: u64, end: u64) {
        let first = (start / FRAME_SIZE) as usize;
        let last = (end.div_ceil(FRAME_SIZE) as usize).min(self.frames);
        for f in first..last {
            self.set(f, false);
        }
    }

    fn is_free(&self, f: usize) -> bool {
        self.free[f / 64] & (1 << (f % 64)) != 0
    }

    fn set(&mut self, f: usize, free: bool) {
        let was = self.is_free(f);
        if free && !was {
            self.free[f / 64] |= 1 << (f % 64);
            self.free_count += 1;
        } else if !free && was {
            self.free[f / 64] &= !(1 << (f % 64));
            self.free_count -= 1;
        }
    }

    /// One frame; returns its physical address.
    pub fn alloc(&mut self) -> Option<u64> {
        for w in self.hint..self.free.len() {
            let bits = self.free[w];
            if bits != 0 {
                let f = w * 64 + bits.trailing_zeros() as usize;
                self.set(f, false);
                self.hint = w;
                return Some(f as u64 * FRAME_SIZE);
            }
        }
        None
    }

    /// `count` contiguous frames whose first frame number is a multiple of `align` frames.
    pub fn alloc_contiguous(&mut self, count: usize, align: usize) -> Option<u64> {
        if count == 0 || align == 0 || count > self.free_count {
            return None;
        }
        let mut f = 0usize;
        while f + count <= self.frames {
            // Skip whole used words quickly.
            if f.is_multiple_of(64) && self.free[f / 64] == 0 {
                f += 64;
                continue;
            }
            if !f.is_multiple_of(align) || !self.is_free(f) {
                f += 1;
                continue;
            }
            match (f..f + count).find(|&g| !self.is_free(g)) {
                Some(used) => f = used + 1,
                None => {
                    for g in f..f + count {
                        self.set(g, false);
                    }
                    return Some(f as u64 * FRAME_SIZE);
                }
            }
        }
        None
    }

    /// Returns `count` frames starting at `addr`. Freeing a frame twice is a hypervisor bug.
    pub fn free(&mut self, addr: u64, count: usize) {
        let first = (addr / FRAME_SIZE) as usize;
        for f in first..first + count {
            assert!(f < self.frames && !self.is_free(f), "double free of frame {f:#x}");
            self.set(f, true);
        }
        self.hint = self.hint.min(first / 64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_and_contiguous() {
        let mut a = FrameAllocator::new(1 << 24); // 16 MiB
        a.add_free(0x100000, 0x1000000);
        a.reserve(0x100000, 0x180000);
        assert_eq!(a.free_frames(), (0x1000000 - 0x180000) / 4096);
        let one = a.alloc().unwrap();
        assert_eq!(one, 0x180000);
        let run = a.alloc_contiguous(256, 1).unwrap();
        assert_eq!(run, 0x181000);
        let aligned = a.alloc_contiguous(16, 512).unwrap();
        assert_eq!(aligned % (512 * 4096), 0);
        let before = a.free_frames();
        a.free(run, 256);
        assert_eq!(a.free_frames(), before + 256);
        assert_eq!(a.alloc_contiguous(256, 1), Some(run));
    }

    #[test]
    fn exhaustion_and_fragmentation() {
        let mut a = FrameAllocator::new(64 * 4096);
        a.add_free(0, 64 * 4096);
        let frames: Vec<u64> = (0..64).map(|_| a.alloc().unwrap()).collect();
        assert_eq!(a.alloc(), None);
        // Free every other frame: no run of 2 exists.
        for f in frames.iter().step_by(2) {
            a.free(*f, 1);
        }
        assert_eq!(a.alloc_contiguous(2, 1), None);
        assert!(a.alloc_contiguous(1, 1).is_some());
        assert_eq!(a.alloc_contiguous(0, 1), None);
        assert_eq!(a.alloc_contiguous(1000, 1), None);
    }

    #[test]
    #[should_panic(expected = "double free")]
    fn double_free_is_caught() {
        let mut a = FrameAllocator::new(16 * 4096);
        a.add_free(0, 16 * 4096);
        let f = a.alloc().unwrap();
        a.free(f, 1);
        a.free(f, 1);
    }

    #[test]
    fn unaligned_regions() {
        let mut a = FrameAllocator::new(16 * 4096);
        a.add_free(100, 3 * 4096 + 5); // covers frames 1 and 2 only
        assert_eq!(a.free_frames(), 2);
        a.add_free(0, 1 << 40); // clipped at the limit
        assert_eq!(a.free_frames(), 16);
    }
}
