//! The guest page walker: Xen hypercall arguments are guest-*virtual* addresses, so the
//! hypervisor translates them through the guest's own page tables before touching guest
//! memory.
//!
//! Supported modes: paging off (the guest-physical address is the 32-bit linear address, as in
//! the PVH entry's flat protected mode) and 4-level long-mode paging with 4 KiB, 2 MiB and
//! 1 GiB pages. Legacy 32-bit paging, PAE paging outside long mode, and 5-level paging (LA57,
//! which CPUID hides) are refused with [`WalkError::UnsupportedMode`].
//!
//! Checks: canonical addresses, present bits, reserved bits the walker can know about (PS in a
//! PML4 entry, the low address bits of a large page, NX while EFER.NXE is clear), write
//! permission (enforced for supervisor accesses only when CR0.WP is set), and the user bit for
//! user accesses. Not checked or done: physical-address bits above MAXPHYADDR (a table or page
//! that is not guest RAM fails when it is read: [`WalkError::NotGuestRam`]), NX (data accesses
//! only), SMAP and protection keys (the hypervisor accesses memory on the guest's behalf), and
//! the accessed/dirty bits are **not set**.
//!
//! The work is bounded: four table reads per page, and [`copy_from_guest`] /
//! [`copy_to_guest`] walk once (twice for a write) per 4 KiB page of the copy; callers cap the
//! lengths they accept.

/// Reads guest-physical memory for the walker.
pub trait GuestPhys {
    /// The little-endian 64-bit value at `gpa` (8-byte aligned), or `None` if `gpa` is not
    /// guest RAM.
    fn read_u64(&self, gpa: u64) -> Option<u64>;
}

/// Byte access to guest-physical memory for the copies. A call never crosses a 4 KiB page.
pub trait GuestMemory: GuestPhys {
    /// Fills `buf` from `gpa`, or `None` if that is not guest RAM.
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()>;
    /// Writes `data` at `gpa`, or `None` if that is not guest RAM.
    fn write(&mut self, gpa: u64, data: &[u8]) -> Option<()>;
}

/// The guest registers that decide how a virtual address translates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PagingRegs {
    /// CR0 (PG bit 31, WP bit 16).
    pub cr0: u64,
    /// CR3: the top-level table.
    pub cr3: u64,
    /// CR4 (PAE bit 5, LA57 bit 12).
    pub cr4: u64,
    /// EFER (LMA bit 10, NXE bit 11).
    pub efer: u64,
}

/// The kind of access being translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Access {
    /// A write (needs R/W in every level).
    pub write: bool,
    /// A user-mode access (needs U/S in every level).
    pub user: bool,
}

/// Why an address does not translate (or a copy failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalkError {
    /// The address is not canonical.
    NonCanonical,
    /// The guest's paging mode is not one the walker supports.
    UnsupportedMode,
    /// The entry at `level` (4 = PML4 ... 1 = page table) is not present.
    NotPresent {
        /// The level of the entry.
        level: u8,
    },
    /// The entry at `level` has a reserved bit set.
    Reserved {
        /// The level of the entry.
        level: u8,
    },
    /// The access is not permitted (write to a read-only page, user access to a supervisor
    /// page).
    Protection,
    /// `gpa` (a page table or the data) is not guest RAM.
    NotGuestRam {
        /// The guest-physical address that could not be accessed.
        gpa: u64,
    },
}

const CR0_WP: u64 = 1 << 16;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const CR4_LA57: u64 = 1 << 12;
const EFER_LMA: u64 = 1 << 10;
const EFER_NXE: u64 = 1 << 11;

const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_USER: u64 = 1 << 2;
const PTE_PS: u64 = 1 << 7;
const PTE_NX: u64 = 1 << 63;
/// Physical-address bits 51:12 of an entry (and of CR3).
const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// The size of a guest page, the unit the copies split at.
pub const PAGE_SIZE: u64 = 4096;

fn is_canonical(va: u64) -> bool {
    (((va << 16) as i64) >> 16) as u64 == va
}

/// Translates `gva` to a guest-physical address for `access`.
pub fn translate(mem: &impl GuestPhys, regs: &PagingRegs, gva: u64, access: Access) -> Result<u64, WalkError> {
    if regs.cr0 & CR0_PG == 0 {
        return Ok(gva & 0xFFFF_FFFF);
    }
    if regs.efer & EFER_LMA == 0 || regs.cr4 & CR4_PAE == 0 || regs.cr4 & CR4_LA57 != 0 {
        return Err(WalkError::UnsupportedMode);
    }
    if !is_canonical(gva) {
        return Err(WalkError::NonCanonical);
    }
    let nxe = regs.efer & EFER_NXE != 0;
    let mut table = regs.cr3 & ADDR_MASK;
    let mut writable = true;
    let mut user = true;
    for level in (1..=4u8).rev() {
        let shift = 12 + 9 * u32::from(level - 1);
        let entry_gpa = table + ((gva >> shift) & 0x1FF) * 8;
        let e = mem.read_u64(entry_gpa).ok_or(WalkError::NotGuestRam { gpa: entry_gpa })?;
        if e & PTE_PRESENT == 0 {
            return Err(WalkError::NotPresent { level });
        }
        if !nxe && e & PTE_NX != 0 {
            return Err(WalkError::Reserved { level });
        }
        writable &= e & PTE_WRITABLE != 0;
        user &= e & PTE_USER != 0;
        let leaf = level == 1 || e & PTE_PS != 0;
        if !leaf {
            table = e & ADDR_MASK;
            continue;
        }
        let page_mask = (1u64 << shift) - 1;
        if level == 4 {
            return Err(WalkError::Reserved { level });
        }
        // A large page's address bits below its size are reserved, except bit 12 (PAT).
        if level > 1 && e & page_mask & ADDR_MASK & !(1 << 12) != 0 {
            return Err(WalkError::Reserved { level });
        }
        if access.user && !user {
            return Err(WalkError::Protection);
        }
        if access.write && !writable && (access.user || regs.cr0 & CR0_WP != 0) {
            return Err(WalkError::Protection);
        }
        return Ok((e & ADDR_MASK & !page_mask) | (gva & page_mask));
    }
    unreachable!("level 1 is always a leaf")
}

/// Calls `f(gva, offset, len)` for each piece of `[gva, gva + len)` that stays in one page.
fn for_each_page(
    gva: u64,
    len: usize,
    mut f: impl FnMut(u64, usize, usize) -> Result<(), WalkError>,
) -> Result<(), WalkError> {
    let mut done = 0;
    while done < len {
        let va = gva.wrapping_add(done as u64);
        let room = (PAGE_SIZE - (va & (PAGE_SIZE - 1))) as usize;
        let n = room.min(len - done);
        f(va, done, n)?;
        done += n;
    }
    Ok(())
}

/// Copies `buf.len()` bytes from guest-virtual `gva` (a supervisor read). On error `buf` may
/// be partly filled.
pub fn copy_from_guest(mem: &impl GuestMemory, regs: &PagingRegs, gva: u64, buf: &mut [u8]) -> Result<(), WalkError> {
    let len = buf.len();
    for_each_page(gva, len, |va, off, n| {
        let gpa = translate(mem, regs, va, Access::default())?;
        mem.read(gpa, &mut buf[off..off + n]).ok_or(WalkError::NotGuestRam { gpa })
    })
}

/// Copies `data` to guest-virtual `gva` (a supervisor write). Every page is translated and
/// checked for write permission before the first byte is written, so a translation failure
/// writes nothing. (A page that translates but whose guest-physical address then refuses the
/// write, i.e. is not RAM, can still leave the earlier pages written.)
pub fn copy_to_guest(mem: &mut impl GuestMemory, regs: &PagingRegs, gva: u64, data: &[u8]) -> Result<(), WalkError> {
    let access = Access { write: true, user: false };
    for_each_page(gva, data.len(), |va, _, _| translate(mem, regs, va, access).map(|_| ()))?;
    for_each_page(gva, data.len(), |va, off, n| {
        let gpa = translate(mem, regs, va, access)?;
        mem.write(gpa, &data[off..off + n]).ok_or(WalkError::NotGuestRam { gpa })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// Guest RAM as a set of 4 KiB pages; everything else is not RAM.
    #[derive(Default)]
    struct Mem {
        pages: HashMap<u64, Box<[u8; 4096]>>,
        next_table: u64,
    }

    impl GuestPhys for Mem {
        fn read_u64(&self, gpa: u64) -> Option<u64> {
            let p = self.pages.get(&(gpa & !0xFFF))?;
            let o = (gpa & 0xFFF) as usize;
            Some(u64::from_le_bytes(p[o..o + 8].try_into().unwrap()))
        }
    }

    impl GuestMemory for Mem {
        fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()> {
            let p = self.pages.get(&(gpa & !0xFFF))?;
            let o = (gpa & 0xFFF) as usize;
            assert!(o + buf.len() <= 4096, "crosses a page");
            buf.copy_from_slice(&p[o..o + buf.len()]);
            Some(())
        }
        fn write(&mut self, gpa: u64, data: &[u8]) -> Option<()> {
            let p = self.pages.get_mut(&(gpa & !0xFFF))?;
            let o = (gpa & 0xFFF) as usize;
            assert!(o + data.len() <= 4096, "crosses a page");
            p[o..o + data.len()].copy_from_slice(data);
            Some(())
        }
    }

    const CR3: u64 = 0x10_0000;
    const RW: u64 = PTE_PRESENT | PTE_WRITABLE;
    const RWU: u64 = RW | PTE_USER;

    impl Mem {
        fn new() -> Self {
            let mut m = Mem { next_table: CR3, ..Default::default() };
            m.alloc_table();
            m
        }
        fn alloc_table(&mut self) -> u64 {
            let t = self.next_table;
            self.next_table += 0x1000;
            self.pages.insert(t, Box::new([0; 4096]));
            t
        }
        fn ram(&mut self, gpa: u64) {
            self.pages.entry(gpa & !0xFFF).or_insert(Box::new([0; 4096]));
        }
        fn set(&mut self, gpa: u64, v: u64) {
            self.write(gpa, &v.to_le_bytes()).unwrap();
        }
        /// Maps `gva` to `gpa` with a leaf at `level` (1: 4K, 2: 2M, 3: 1G); intermediate
        /// entries get `RWU`, the leaf `flags`.
        fn map(&mut self, gva: u64, gpa: u64, level: u8, flags: u64) {
            let mut table = CR3;
            for l in (level + 1..=4).rev() {
                let slot = table + ((gva >> (12 + 9 * (l as u32 - 1))) & 0x1FF) * 8;
                let e = self.read_u64(slot).unwrap();
                table = if e & PTE_PRESENT != 0 {
                    e & ADDR_MASK
                } else {
                    let t = self.alloc_table();
                    self.set(slot, t | RWU);
                    t
                };
            }
            let slot = table + ((gva >> (12 + 9 * (level as u32 - 1))) & 0x1FF) * 8;
            let ps = if level > 1 { PTE_PS } else { 0 };
            self.set(slot, gpa | flags | ps);
        }
        /// The address of the entry for `gva` at `level`.
        fn slot(&self, gva: u64, level: u8) -> u64 {
            let mut table = CR3;
            for l in (level + 1..=4).rev() {
                let slot = table + ((gva >> (12 + 9 * (l as u32 - 1))) & 0x1FF) * 8;
                table = self.read_u64(slot).unwrap() & ADDR_MASK;
            }
            table + ((gva >> (12 + 9 * (level as u32 - 1))) & 0x1FF) * 8
        }
    }

    fn long_mode() -> PagingRegs {
        PagingRegs { cr0: CR0_PG | CR0_WP | 1, cr3: CR3, cr4: CR4_PAE, efer: EFER_LMA | (1 << 8) | EFER_NXE }
    }

    const R: Access = Access { write: false, user: false };
    const W: Access = Access { write: true, user: false };
    const UR: Access = Access { write: false, user: true };
    const UW: Access = Access { write: true, user: true };

    #[test]
    fn four_k_two_m_one_g_pages() {
        let mut m = Mem::new();
        let regs = long_mode();
        m.map(0xFFFF_8880_0000_1000, 0x5000, 1, RW);
        m.map(0xFFFF_8880_0020_0000, 0x4000_0000, 2, RW);
        m.map(0xFFFF_FFFF_8000_0000, 0x8000_0000, 3, RW);
        let t = |va| translate(&m, &regs, va, R);
        assert_eq!(t(0xFFFF_8880_0000_1234), Ok(0x5234));
        assert_eq!(t(0xFFFF_8880_0021_2345), Ok(0x4001_2345));
        assert_eq!(t(0xFFFF_FFFF_8123_4567), Ok(0x8123_4567));
        // The PAT bit (12) of a large page is not part of the address.
        m.map(0x4000_0000, 0x20_0000 | (1 << 12), 2, RW);
        assert_eq!(translate(&m, &regs, 0x4000_0010, R), Ok(0x20_0010));
    }

    #[test]
    fn not_present_at_each_level() {
        let mut m = Mem::new();
        let regs = long_mode();
        let va = 0x7F00_1234_5000;
        assert_eq!(translate(&m, &regs, va, R), Err(WalkError::NotPresent { level: 4 }));
        m.map(va, 0x9000, 1, RW);
        for level in 1..=4 {
            let mut m2 = Mem::new();
            m2.map(va, 0x9000, 1, RW);
            let slot = m2.slot(va, level);
            let e = m2.read_u64(slot).unwrap();
            m2.set(slot, e & !PTE_PRESENT);
            assert_eq!(translate(&m2, &regs, va, R), Err(WalkError::NotPresent { level }));
        }
        assert_eq!(translate(&m, &regs, va, R), Ok(0x9000));
    }

    #[test]
    fn non_canonical() {
        let m = Mem::new();
        let regs = long_mode();
        for va in [0x0000_8000_0000_0000, 0xFFFF_7FFF_FFFF_FFFF, 0x1234_0000_0000_0000] {
            assert_eq!(translate(&m, &regs, va, R), Err(WalkError::NonCanonical));
        }
    }

    #[test]
    fn write_protection() {
        let mut m = Mem::new();
        let mut regs = long_mode();
        m.map(0x1000, 0x9000, 1, PTE_PRESENT | PTE_USER);
        assert_eq!(translate(&m, &regs, 0x1000, R), Ok(0x9000));
        assert_eq!(translate(&m, &regs, 0x1000, W), Err(WalkError::Protection));
        assert_eq!(translate(&m, &regs, 0x1000, UW), Err(WalkError::Protection));
        regs.cr0 &= !CR0_WP;
        assert_eq!(translate(&m, &regs, 0x1000, W), Ok(0x9000), "WP=0");
        assert_eq!(translate(&m, &regs, 0x1000, UW), Err(WalkError::Protection));
        // Read-only at an upper level also counts.
        regs.cr0 |= CR0_WP;
        m.map(0x40_0000_0000, 0xA000, 1, RW);
        let slot = m.slot(0x40_0000_0000, 3);
        let e = m.read_u64(slot).unwrap();
        m.set(slot, e & !PTE_WRITABLE);
        assert_eq!(translate(&m, &regs, 0x40_0000_0000, W), Err(WalkError::Protection));
    }

    #[test]
    fn user_and_supervisor() {
        let mut m = Mem::new();
        let regs = long_mode();
        m.map(0x1000, 0x9000, 1, RW);
        m.map(0x2000, 0xA000, 1, RWU);
        assert_eq!(translate(&m, &regs, 0x1000, UR), Err(WalkError::Protection));
        assert_eq!(translate(&m, &regs, 0x1000, R), Ok(0x9000));
        assert_eq!(translate(&m, &regs, 0x2000, UR), Ok(0xA000));
        assert_eq!(translate(&m, &regs, 0x2000, UW), Ok(0xA000));
        assert_eq!(translate(&m, &regs, 0x2000, R), Ok(0xA000), "no SMAP check");
    }

    #[test]
    fn reserved_bits() {
        let mut m = Mem::new();
        let mut regs = long_mode();
        // 2 MiB page with a misaligned address.
        m.map(0x20_0000, 0x40_2000, 2, RW);
        assert_eq!(translate(&m, &regs, 0x20_0000, R), Err(WalkError::Reserved { level: 2 }));
        // 1 GiB page with bit 20 set.
        m.map(0x4000_0000, 0x4010_0000, 3, RW);
        assert_eq!(translate(&m, &regs, 0x4000_0000, R), Err(WalkError::Reserved { level: 3 }));
        // PS in a PML4 entry.
        let mut m2 = Mem::new();
        m2.set(CR3, 0x20_0000 | RW | PTE_PS);
        assert_eq!(translate(&m2, &regs, 0x1000, R), Err(WalkError::Reserved { level: 4 }));
        // NX while EFER.NXE is clear.
        m.map(0x3000, 0x9000, 1, RW | PTE_NX);
        assert_eq!(translate(&m, &regs, 0x3000, R), Ok(0x9000));
        regs.efer &= !EFER_NXE;
        assert_eq!(translate(&m, &regs, 0x3000, R), Err(WalkError::Reserved { level: 1 }));
    }

    #[test]
    fn tables_outside_ram() {
        let mut m = Mem::new();
        let mut regs = long_mode();
        m.set(CR3, 0xDEAD_0000 | RWU);
        assert_eq!(translate(&m, &regs, 0x1000, R), Err(WalkError::NotGuestRam { gpa: 0xDEAD_0000 }));
        regs.cr3 = 0x7777_0000;
        assert_eq!(translate(&m, &regs, 0x1000, R), Err(WalkError::NotGuestRam { gpa: 0x7777_0000 }));
    }

    #[test]
    fn paging_off_is_identity_truncated_to_32_bits() {
        let m = Mem::new();
        let regs = PagingRegs { cr0: 1, cr3: 0, cr4: 0, efer: 0 };
        assert_eq!(translate(&m, &regs, 0x12_3456, W), Ok(0x12_3456));
        assert_eq!(translate(&m, &regs, 0x1_0000_1000, UW), Ok(0x1000));
    }

    #[test]
    fn unsupported_modes() {
        let m = Mem::new();
        let legacy = PagingRegs { cr0: CR0_PG | 1, cr3: CR3, cr4: 0, efer: 0 };
        let pae32 = PagingRegs { cr4: CR4_PAE, ..legacy };
        let la57 = PagingRegs { cr4: CR4_PAE | CR4_LA57, ..long_mode() };
        for regs in [legacy, pae32, la57] {
            assert_eq!(translate(&m, &regs, 0x1000, R), Err(WalkError::UnsupportedMode));
        }
    }

    #[test]
    fn copies_split_at_pages() {
        let mut m = Mem::new();
        let regs = long_mode();
        // Two adjacent virtual pages backed by non-adjacent physical pages.
        m.map(0x1000, 0x9000, 1, RW);
        m.map(0x2000, 0x5000, 1, RW);
        m.ram(0x9000);
        m.ram(0x5000);
        let data: Vec<u8> = (0..200u8).collect();
        copy_to_guest(&mut m, &regs, 0x1FA0, &data).unwrap();
        let mut back = [0u8; 200];
        copy_from_guest(&m, &regs, 0x1FA0, &mut back).unwrap();
        assert_eq!(&back[..], &data[..]);
        let mut tail = [0u8; 8];
        m.read(0x5000, &mut tail).unwrap();
        assert_eq!(tail, [96, 97, 98, 99, 100, 101, 102, 103]);
        let mut empty = [0u8; 0];
        copy_from_guest(&m, &regs, 0xFFFF_0000_0000_0000 - 1, &mut empty).unwrap();
    }

    #[test]
    fn copy_to_guest_writes_nothing_if_a_later_page_faults() {
        let mut m = Mem::new();
        let regs = long_mode();
        m.map(0x1000, 0x9000, 1, RW);
        m.ram(0x9000);
        let data = [0xAAu8; 64];
        assert_eq!(copy_to_guest(&mut m, &regs, 0x1FE0, &data), Err(WalkError::NotPresent { level: 1 }));
        let mut page = [0u8; 4096];
        m.read(0x9000, &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 0), "nothing written");
        // A read-only second page is also found before writing.
        m.map(0x2000, 0x5000, 1, PTE_PRESENT);
        m.ram(0x5000);
        assert_eq!(copy_to_guest(&mut m, &regs, 0x1FE0, &data), Err(WalkError::Protection));
        m.read(0x9000, &mut page).unwrap();
        assert!(page.iter().all(|&b| b == 0), "nothing written");
        // Reading across the same boundary fails on the second page.
        let mut buf = [0u8; 64];
        assert_eq!(copy_from_guest(&m, &regs, 0x1FE0, &mut buf), Ok(()));
        assert_eq!(copy_from_guest(&m, &regs, 0x2FE0, &mut buf), Err(WalkError::NotPresent { level: 1 }));
    }

    #[test]
    fn data_page_outside_ram() {
        let mut m = Mem::new();
        let regs = long_mode();
        m.map(0x1000, 0xFEE0_0000, 1, RW);
        let mut buf = [0u8; 4];
        assert_eq!(copy_from_guest(&m, &regs, 0x1000, &mut buf), Err(WalkError::NotGuestRam { gpa: 0xFEE0_0000 }));
    }

    /// Guest RAM is 8 pages at 0; entries are random, half of them squeezed to point inside
    /// RAM so that walks go deep.
    fn random_mem(words: &[(u64, bool)]) -> Mem {
        let mut m = Mem::default();
        for p in 0..8u64 {
            m.pages.insert(p * 0x1000, Box::new([0; 4096]));
        }
        for (i, &(v, squeeze)) in words.iter().enumerate() {
            let v = if squeeze { (v & !ADDR_MASK) | ((v >> 12) & 0xF) << 12 } else { v };
            m.set((i as u64 * 8) % 0x8000, v);
        }
        m
    }

    proptest! {
        #[test]
        fn random_page_tables_never_panic(
            words in prop::collection::vec((any::<u64>(), any::<bool>()), 0..4096),
            cr0 in any::<u64>(),
            cr3 in 0u64..0x9000,
            cr4 in any::<u64>(),
            efer in any::<u64>(),
            gva in any::<u64>(),
            write in any::<bool>(),
            user in any::<bool>(),
            len in 0usize..10_000,
        ) {
            let mut m = random_mem(&words);
            let regs = PagingRegs { cr0, cr3, cr4, efer };
            let _ = translate(&m, &regs, gva, Access { write, user });
            let mut buf = vec![0u8; len];
            let _ = copy_from_guest(&m, &regs, gva, &mut buf);
            let _ = copy_to_guest(&mut m, &regs, gva, &buf);
            // Long-mode regs make deep walks likely.
            let regs = PagingRegs { cr3, ..long_mode() };
            let _ = translate(&m, &regs, gva, Access { write, user });
            let _ = copy_to_guest(&mut m, &regs, gva, &buf);
        }
    }
}
