//! Nested page tables (SVM NPT): an HVM domain's guest-physical → host-physical map. The same
//! four-level format as the hypervisor's own tables; every entry carries U (the CPU treats
//! nested walks as user accesses).
use super::paging::{ADDR, P, U, W, entry, index, set_entry, walk_to_table, zero_phys};
use crate::frames::{FRAME_SIZE, FrameAllocator};
use alloc::vec::Vec;

/// Highest guest-physical address (exclusive) any HVM domain may have mapped: RAM plus the pages
/// a guest asks to have placed above it (shared_info, grant frames).
pub const MAX_GPA: u64 = 1 << 36;

pub struct NestedTables {
    pub root: u64,
    tables: Vec<u64>,
}

impl NestedTables {
    pub fn new(frames: &mut FrameAllocator) -> Option<Self> {
        let root = super::paging::zeroed_frame(frames)?;
        Some(NestedTables { root, tables: alloc::vec![root] })
    }

    /// Maps `pages` guest frames from `gpa` to host frames from `hpa`, read-write.
    pub fn map_range(&mut self, gpa: u64, hpa: u64, pages: u64, frames: &mut FrameAllocator) -> Option<()> {
        if gpa.checked_add(pages * FRAME_SIZE)? > MAX_GPA {
            return None;
        }
        let mut done = 0;
        while done < pages {
            let g = gpa + done * FRAME_SIZE;
            let pt = walk_to_table(self.root, g, true, frames, &mut self.tables)?;
            let first = index(g, 12);
            let n = (512 - first as u64).min(pages - done);
            for k in 0..n {
                set_entry(pt, first + k as usize, (hpa + (done + k) * FRAME_SIZE) | P | W | U);
            }
            done += n;
        }
        Some(())
    }

    /// Maps one guest frame `gpa` to host frame `hpa`, read-only unless `writable` (a grant
    /// mapping).
    pub fn map_frame(&mut self, gpa: u64, hpa: u64, writable: bool, frames: &mut FrameAllocator) -> Option<()> {
        if gpa >= MAX_GPA {
            return None;
        }
        let pt = walk_to_table(self.root, gpa, true, frames, &mut self.tables)?;
        set_entry(pt, index(gpa, 12), hpa | P | U | if writable { W } else { 0 });
        Some(())
    }

    /// The host frame behind guest frame `gpa` (page-aligned result), if mapped.
    pub fn translate(&self, gpa: u64) -> Option<u64> {
        if gpa >= MAX_GPA {
            return None;
        }
        let mut t = self.root;
        for shift in [39u64, 30, 21, 12] {
            let e = entry(t, index(gpa, shift));
            if e & P == 0 {
                return None;
            }
            t = e & ADDR;
        }
        Some(t)
    }

    /// Removes the mapping of guest frame `gpa` (tables stay). The caller flushes the guest's
    /// TLB (ASID) before the guest runs again.
    pub fn unmap(&mut self, gpa: u64) {
        if gpa >= MAX_GPA {
            return;
        }
        let mut t = self.root;
        for shift in [39u64, 30, 21] {
            let e = entry(t, index(gpa, shift));
            if e & P == 0 {
                return;
            }
            t = e & ADDR;
        }
        set_entry(t, index(gpa, 12), 0);
    }

    pub fn table_frames(&self) -> usize {
        self.tables.len()
    }

    /// Scrubs and returns every table frame.
    pub fn free(self, frames: &mut FrameAllocator) {
        for f in self.tables {
            zero_phys(f, FRAME_SIZE);
            frames.free(f, 1);
        }
    }
}
