//! Page tables: the hypervisor's own (its image mapped W^X, every physical byte in a direct map
//! at [`DIRECT_MAP`]) and one address space per domain (the hypervisor half shared, domain RAM
//! mapped user-accessible at `hv_abi::DOMAIN_BASE`).
use crate::frames::{FRAME_SIZE, FrameAllocator};
use alloc::vec::Vec;
use core::arch::asm;

pub const DIRECT_MAP: u64 = 0xffff_8000_0000_0000;

pub(super) const P: u64 = 1;
pub(super) const W: u64 = 1 << 1;
pub(super) const U: u64 = 1 << 2;
const PWT: u64 = 1 << 3;
const PCD: u64 = 1 << 4;
const HUGE: u64 = 1 << 7;
const NX: u64 = 1 << 63;
pub(super) const ADDR: u64 = 0x000f_ffff_ffff_f000;

static mut NX_BIT: u64 = 0;

fn nx() -> u64 {
    // SAFETY: written once in `build_kernel_tables` before any other reader.
    unsafe { NX_BIT }
}

pub fn phys_to_virt(phys: u64) -> u64 {
    DIRECT_MAP + phys
}

// Page-table entries are read and written by value, one at a time, through the direct map: no
// reference into a table frame escapes, since the frames are scrubbed and freed with their
// address space.

/// Entry `index` (0..512) of the page table in frame `table`.
pub(super) fn entry(table: u64, index: usize) -> u64 {
    assert!(index < 512);
    // SAFETY: `table` is a page-table frame this module allocated (or the shared kernel tables),
    // live while its address space is; the direct map covers it; index < 512 stays inside the
    // frame; the hypervisor is single-threaded with interrupts off here.
    unsafe { (phys_to_virt(table) as *const u64).add(index).read_volatile() }
}

/// Sets entry `index` (0..512) of the page table in frame `table`.
pub(super) fn set_entry(table: u64, index: usize, value: u64) {
    assert!(index < 512);
    // SAFETY: as in `entry`.
    unsafe { (phys_to_virt(table) as *mut u64).add(index).write_volatile(value) }
}

pub(super) fn index(va: u64, shift: u64) -> usize {
    ((va >> shift) & 511) as usize
}

pub(super) fn zeroed_frame(alloc: &mut FrameAllocator) -> Option<u64> {
    let f = alloc.alloc()?;
    zero_phys(f, FRAME_SIZE);
    Some(f)
}

/// Walks to the level-1 entry for `va`, creating tables (recorded in `owned`) as needed, and
/// sets it to `value`.
fn set_leaf(
    pml4: u64,
    va: u64,
    value: u64,
    user: bool,
    alloc: &mut FrameAllocator,
    owned: &mut Vec<u64>,
) -> Option<()> {
    let t = walk_to_table(pml4, va, user, alloc, owned)?;
    set_entry(t, index(va, 12), value);
    Some(())
}

/// Walks to the page table (level 1) covering `va`; returns its physical address.
pub(super) fn walk_to_table(
    pml4: u64,
    va: u64,
    user: bool,
    alloc: &mut FrameAllocator,
    owned: &mut Vec<u64>,
) -> Option<u64> {
    let mut t = pml4;
    for shift in [39u64, 30, 21] {
        let mut e = entry(t, index(va, shift));
        if e & P == 0 {
            let f = zeroed_frame(alloc)?;
            owned.push(f);
            e = f | P | W | if user { U } else { 0 };
            set_entry(t, index(va, shift), e);
        }
        debug_assert!(e & HUGE == 0, "walk through a huge page");
        t = e & ADDR;
    }
    Some(t)
}

unsafe extern "C" {
    static __image_start: u8;
    static __text_end: u8;
    static __rodata_end: u8;
    static __image_end: u8;
}

pub fn image_range() -> (u64, u64) {
    // Linker-script symbols: only their addresses are used.
    ((&raw const __image_start) as u64, (&raw const __image_end) as u64)
}

/// The hypervisor's tables; `low_pd` (the image mapping) is shared into every address space.
pub struct KernelTables {
    pub pml4: u64,
    low_pd: u64,
}

/// Builds and loads the hypervisor's page tables. `ram_end` bounds the direct map (at least
/// 4 GiB so the local APIC and other MMIO are reachable, uncached above 3 GiB).
pub fn build_kernel_tables(alloc: &mut FrameAllocator, ram_end: u64, use_nx: bool) -> Option<KernelTables> {
    // SAFETY: single writer during early boot.
    unsafe { NX_BIT = if use_nx { NX } else { 0 } };
    let mut owned = Vec::new(); // hypervisor tables live forever
    let pml4 = zeroed_frame(alloc)?;
    // Image: text RX, rodata R, data/bss RW; nothing else in the low half (page 0 included).
    // Linker-script symbols: only their addresses are used.
    let (text_end, rodata_end) = ((&raw const __text_end) as u64, (&raw const __rodata_end) as u64);
    let (start, end) = image_range();
    let mut va = start & !0xfff;
    while va < end {
        let flags = if va < text_end {
            P
        } else if va < rodata_end {
            P | nx()
        } else {
            P | W | nx()
        };
        set_leaf(pml4, va, va | flags, false, alloc, &mut owned)?;
        va += FRAME_SIZE;
    }
    assert!(end <= 1 << 30, "hypervisor image must end below 1 GiB");
    let low_pdpt = entry(pml4, 0) & ADDR;
    let low_pd = entry(low_pdpt, 0) & ADDR;
    // Direct map with 2 MiB pages.
    let limit = ram_end.max(1 << 32).next_multiple_of(1 << 30);
    let dm_pdpt = zeroed_frame(alloc)?;
    set_entry(pml4, 256, dm_pdpt | P | W);
    for gib in 0..limit >> 30 {
        let pd = zeroed_frame(alloc)?;
        set_entry(dm_pdpt, gib as usize, pd | P | W);
        for i in 0..512u64 {
            let pa = (gib << 30) | (i << 21);
            let cache = if (0xc000_0000..0x1_0000_0000).contains(&pa) { PCD | PWT } else { 0 };
            set_entry(pd, i as usize, pa | P | W | HUGE | cache | nx());
        }
    }
    load(pml4);
    Some(KernelTables { pml4, low_pd })
}

fn flush(va: u64) {
    // SAFETY: invlpg only drops a TLB entry.
    unsafe { asm!("invlpg [{}]", in(reg) va, options(nostack, preserves_flags)) };
}

/// Loads an address space (flushes the TLB).
pub fn load(pml4: u64) {
    // SAFETY: every PML4 we build maps the hypervisor (image, stack, direct map) identically, so
    // execution continues seamlessly.
    unsafe { asm!("mov cr3, {}", in(reg) pml4, options(nostack, preserves_flags)) };
}

/// A domain's address space. Owns its table frames (not the domain's RAM).
pub struct AddressSpace {
    pub pml4: u64,
    tables: Vec<u64>,
}

impl AddressSpace {
    pub fn new(kernel: &KernelTables, alloc: &mut FrameAllocator) -> Option<Self> {
        let pml4 = zeroed_frame(alloc)?;
        let mut me = Self { pml4, tables: alloc::vec![pml4] };
        let pdpt = match zeroed_frame(alloc) {
            Some(f) => f,
            None => {
                me.free(alloc);
                return None;
            }
        };
        me.tables.push(pdpt);
        for i in 256..512 {
            set_entry(pml4, i, entry(kernel.pml4, i));
        }
        set_entry(pml4, 0, pdpt | P | W | U);
        // The hypervisor image (supervisor-only) stays mapped so traps can run.
        set_entry(pdpt, 0, kernel.low_pd | P | W);
        Some(me)
    }

    /// Maps one user page.
    pub fn map_user(
        &mut self,
        va: u64,
        pa: u64,
        writable: bool,
        executable: bool,
        alloc: &mut FrameAllocator,
    ) -> Option<()> {
        assert!(va >> 30 != 0 && va < 1 << 47, "user mapping outside the user half");
        let write = if writable { W } else { 0 };
        let exec = if executable { 0 } else { nx() };
        set_leaf(self.pml4, va, pa | P | U | write | exec, true, alloc, &mut self.tables)
    }

    /// Maps `pages` consecutive user pages from `va` to `pa`, walking once per page table
    /// rather than once per page.
    pub fn map_user_range(
        &mut self,
        va: u64,
        pa: u64,
        pages: u64,
        writable: bool,
        executable: bool,
        alloc: &mut FrameAllocator,
    ) -> Option<()> {
        assert!(va >> 30 != 0 && va.checked_add(pages * FRAME_SIZE).is_some_and(|e| e <= 1 << 47));
        let flags = P | U | if writable { W } else { 0 } | if executable { 0 } else { nx() };
        let mut done = 0;
        while done < pages {
            let v = va + done * FRAME_SIZE;
            let pt = walk_to_table(self.pml4, v, true, alloc, &mut self.tables)?;
            let first = index(v, 12);
            let n = (512 - first as u64).min(pages - done);
            for k in 0..n {
                set_entry(pt, first + k as usize, (pa + (done + k) * FRAME_SIZE) | flags);
            }
            done += n;
        }
        Some(())
    }

    /// Maps one page of device memory (an assigned device's BAR): user read-write, uncached,
    /// no-exec.
    pub fn map_device(&mut self, va: u64, pa: u64, alloc: &mut FrameAllocator) -> Option<()> {
        set_leaf(self.pml4, va, pa | P | U | W | PCD | PWT | nx(), true, alloc, &mut self.tables)
    }

    /// Creates the page tables for `pages` user pages from `va` without mapping anything, so
    /// later `map_user` calls in that range need no memory.
    pub fn prepare_user_range(&mut self, va: u64, pages: u64, alloc: &mut FrameAllocator) -> Option<()> {
        for i in (0..pages).step_by(512) {
            walk_to_table(self.pml4, va + i * FRAME_SIZE, true, alloc, &mut self.tables)?;
        }
        Some(())
    }

    /// Removes one user mapping (the page-table frames stay) and flushes it from the TLB if
    /// this address space is loaded.
    pub fn unmap_user(&mut self, va: u64, loaded: bool) {
        let mut t = self.pml4;
        for shift in [39u64, 30, 21] {
            let e = entry(t, index(va, shift));
            if e & P == 0 {
                return;
            }
            t = e & ADDR;
        }
        set_entry(t, index(va, 12), 0);
        if loaded {
            flush(va);
        }
    }

    /// Points an existing user mapping at another frame (writable, no-exec) and flushes it.
    pub fn remap_user(&mut self, va: u64, pa: u64, loaded: bool, alloc: &mut FrameAllocator) {
        if self.map_user(va, pa, true, false, alloc).is_some() && loaded {
            flush(va);
        }
    }

    /// Frames used by this address space's tables.
    pub fn table_frames(&self) -> usize {
        self.tables.len()
    }

    /// Scrubs and returns every table frame. The caller must not have it loaded.
    pub fn free(self, alloc: &mut FrameAllocator) {
        for f in self.tables {
            zero_phys(f, FRAME_SIZE);
            alloc.free(f, 1);
        }
    }
}

// Bulk copies and fills use plain 8-byte loops rather than `memcpy`/`memset`, which compile to
// `rep movs`/`rep stos` here: under TCG those run one iteration per translated-block exit and were
// measured at about 140 MB/s, which made domain creation and scrubbing dominate the hypervisor's
// time. Volatile accesses keep the compiler from turning the loops back into those calls.

/// Copies bytes into physical memory through the direct map.
pub fn copy_to_phys(pa: u64, src: &[u8]) {
    let dst = phys_to_virt(pa) as *mut u8;
    let words = src.len() / 8;
    // SAFETY: callers pass ranges they validated to lie inside memory they own (domain RAM or
    // hypervisor frames); the direct map covers all RAM; unaligned accesses are fine on x86.
    unsafe {
        for i in 0..words {
            let w = src.as_ptr().add(i * 8).cast::<u64>().read_unaligned();
            dst.add(i * 8).cast::<u64>().write_volatile(w);
        }
        for (i, b) in src.iter().enumerate().skip(words * 8) {
            dst.add(i).write_volatile(*b);
        }
    }
}

/// Copies bytes out of physical memory through the direct map.
pub fn copy_from_phys(pa: u64, dst: &mut [u8]) {
    // SAFETY: as in `copy_to_phys`.
    unsafe { core::ptr::copy_nonoverlapping(phys_to_virt(pa) as *const u8, dst.as_mut_ptr(), dst.len()) }
}

/// Copies `len` bytes between physical ranges (they may be the same page; memmove semantics).
pub fn copy_phys(src: u64, dst: u64, len: u64) {
    let (s, d) = (phys_to_virt(src) as *const u8, phys_to_virt(dst) as *mut u8);
    // SAFETY: callers validated both ranges to lie in RAM the operation may touch; the direct
    // map covers all RAM.
    unsafe {
        if src < dst + len && dst < src + len {
            core::ptr::copy(s, d, len as usize);
            return;
        }
        let words = (len / 8) as usize;
        for i in 0..words {
            d.add(i * 8).cast::<u64>().write_volatile(s.add(i * 8).cast::<u64>().read_unaligned());
        }
        for i in words * 8..len as usize {
            d.add(i).write_volatile(s.add(i).read());
        }
    }
}

/// Zeroes physical memory through the direct map.
pub fn zero_phys(pa: u64, len: u64) {
    let dst = phys_to_virt(pa) as *mut u8;
    let words = (len / 8) as usize;
    // SAFETY: as in `copy_to_phys`.
    unsafe {
        for i in 0..words {
            dst.add(i * 8).cast::<u64>().write_volatile(0);
        }
        for i in words * 8..len as usize {
            dst.add(i).write_volatile(0);
        }
    }
}

/// A physical range as a byte slice (for reading the boot bundle in place).
///
/// # Safety
/// The range must be RAM that nothing writes while the slice lives.
pub unsafe fn phys_slice(pa: u64, len: u64) -> &'static [u8] {
    // SAFETY: forwarded to the caller.
    unsafe { core::slice::from_raw_parts(phys_to_virt(pa) as *const u8, len as usize) }
}
