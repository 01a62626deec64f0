//! A driver domain's device address space: second-level page tables that map its RAM's
//! machine addresses one to one (the addresses `hv_rt::pci::dma_address` gives its devices)
//! and nothing else. Built and torn down through [`TableMemory`], so the same code runs on
//! physical frames in the hypervisor and on a map in host tests.

use super::entries::{self, Levels, sl_index, sl_page, sl_table};
use alloc::vec::Vec;

/// Page-table frames: allocated zeroed, read and written one 64-bit entry at a time.
pub trait TableMemory {
    /// A zeroed 4 KiB frame, or `None` when memory is exhausted.
    fn alloc_zeroed(&mut self) -> Option<u64>;
    fn read(&self, table: u64, index: usize) -> u64;
    fn write(&mut self, table: u64, index: usize, value: u64);
}

/// The tables of one domain's device address space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpace {
    /// Top-level table (what context entries point at).
    pub root: u64,
    pub levels: Levels,
    /// Every table frame, the root first (freed with the space).
    pub frames: Vec<u64>,
    /// The mapped device addresses `[start, end)` (= the machine addresses of the domain's RAM).
    pub range: (u64, u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpaceError {
    /// The RAM range is empty, not page-aligned, or beyond what `levels` can address.
    BadRange {
        start: u64,
        end: u64,
    },
    NoMemory,
}

/// Builds the tables mapping `[start, end)` (machine addresses of a domain's RAM, page-aligned)
/// identically, read-write, with 4 KiB leaves. On failure the frames already taken come back
/// with the error (the caller frees them).
pub fn build(
    mem: &mut impl TableMemory,
    levels: Levels,
    start: u64,
    end: u64,
) -> Result<DeviceSpace, (SpaceError, Vec<u64>)> {
    if start >= end || start & 0xfff != 0 || end & 0xfff != 0 || end > levels.limit() {
        return Err((SpaceError::BadRange { start, end }, Vec::new()));
    }
    let Some(root) = mem.alloc_zeroed() else { return Err((SpaceError::NoMemory, Vec::new())) };
    let mut frames = alloc::vec![root];
    let mut page = start;
    while page < end {
        let mut table = root;
        for level in (2..=levels.count()).rev() {
            let i = sl_index(page, level);
            let e = mem.read(table, i);
            table = if e & (entries::SL_READ | entries::SL_WRITE) != 0 {
                e & entries::ADDR
            } else {
                let Some(next) = mem.alloc_zeroed() else { return Err((SpaceError::NoMemory, frames)) };
                frames.push(next);
                mem.write(table, i, sl_table(next));
                next
            };
        }
        mem.write(table, sl_index(page, 1), sl_page(page));
        page += 4096;
    }
    Ok(DeviceSpace { root, levels, frames, range: (start, end) })
}

/// Walks the tables as the hardware would: the machine address `iova` reaches and whether a
/// write is allowed, or `None` (a fault).
pub fn translate(mem: &impl TableMemory, space: &DeviceSpace, iova: u64) -> Option<(u64, bool)> {
    if iova >= space.levels.limit() {
        return None;
    }
    let mut table = space.root;
    let mut writable = true;
    for level in (1..=space.levels.count()).rev() {
        let e = mem.read(table, sl_index(iova, level));
        if e & (entries::SL_READ | entries::SL_WRITE) == 0 {
            return None;
        }
        writable &= e & entries::SL_WRITE != 0;
        table = e & entries::ADDR;
    }
    Some((table | (iova & 0xfff), writable))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Frames from 0x100_0000 up, entries in a map.
    #[derive(Default)]
    struct Fake {
        next: u64,
        budget: Option<usize>,
        entries: HashMap<(u64, usize), u64>,
    }

    impl TableMemory for Fake {
        fn alloc_zeroed(&mut self) -> Option<u64> {
            if let Some(b) = self.budget.as_mut() {
                *b = b.checked_sub(1)?;
            }
            self.next += 4096;
            Some(0x100_0000 + self.next)
        }
        fn read(&self, table: u64, index: usize) -> u64 {
            assert!(index < 512);
            self.entries.get(&(table, index)).copied().unwrap_or(0)
        }
        fn write(&mut self, table: u64, index: usize, value: u64) {
            assert!(index < 512);
            self.entries.insert((table, index), value);
        }
    }

    #[test]
    fn maps_exactly_the_domains_ram() {
        // A 16 MiB driver domain low in memory (3 levels), and one straddling 1 GiB (4 levels).
        for (start, levels) in [(0x0260_0000u64, Levels::Three), (0x3ff0_0000, Levels::Four)] {
            let end = start + (16 << 20);
            let mut m = Fake::default();
            let s = build(&mut m, levels, start, end).unwrap();
            assert_eq!(s.frames[0], s.root);
            for iova in (start..end).step_by(4096 * 17).chain([start, end - 1]) {
                assert_eq!(translate(&m, &s, iova), Some((iova, true)), "{iova:#x} is the domain's own");
            }
            for outside in [0, start - 1, start - 4096, end, end + 4096, 0xfed9_0000, 1 << 38, u64::MAX] {
                assert_eq!(translate(&m, &s, outside), None, "{outside:#x} is not the domain's");
            }
            // 4096 leaves fill 8 leaf tables (9 when the range is not 2 MiB-aligned); above
            // them one table per level, two for the level-2 tables when 1 GiB is straddled.
            let expected = if start == 0x3ff0_0000 { 1 + 1 + 2 + 9 } else { 1 + 1 + 8 };
            assert_eq!(s.frames.len(), expected);
        }
    }

    #[test]
    fn bad_ranges_and_exhaustion_are_errors() {
        let mut m = Fake::default();
        for (s, e) in [(0x1000u64, 0x1000u64), (0x1001, 0x3000), (0x1000, 0x2001), (0, 1 << 39 | 0x1000)] {
            assert!(matches!(build(&mut m, Levels::Three, s, e), Err((SpaceError::BadRange { .. }, _))));
        }
        let mut m = Fake { budget: Some(3), ..Default::default() };
        let Err((SpaceError::NoMemory, taken)) = build(&mut m, Levels::Three, 0, 8 << 20) else { panic!() };
        assert_eq!(taken.len(), 3, "every frame taken is handed back to be freed");
    }
}
