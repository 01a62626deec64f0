//! The guest-physical layout of a PVH guest: pure arithmetic from sizes to addresses.
//!
//! Guest RAM is backed at guest-physical `0..ram_bytes`; the memory map partitions exactly that
//! range. With `top = min(ram_bytes, 1 GiB)`:
//!
//! | range | memmap type | contents |
//! |---|---|---|
//! | `0 .. 0xA0000` | RAM | free (Linux puts its real-mode trampoline here) |
//! | `0xA0000 .. 0x100000` | reserved | backed by zero pages (Linux scans it for ROMs, EBDA, DMI) |
//! | `0x100000 .. boot_info` | RAM | kernel at its `p_paddr` (16 MiB for Debian), then the initrd at the next 2 MiB boundary after the kernel's end (its `.bss`/`.brk` included), then free |
//! | `boot_info .. acpi` | reserved | `hvm_start_info`, module list, memory map, command line |
//! | `acpi .. special` | ACPI | the [`crate::pvh::acpi`] blob (RSDP first) |
//! | `special .. top` | reserved | special pages (console ring, xenstore ring, ...) |
//! | `top .. ram_bytes` | RAM | only when `ram_bytes` > 1 GiB |
//! | `ram_bytes ..` | none | unbacked: a guest maps grant frames, shared info etc. at addresses it picks above RAM ([`Plan::hole_start`]) |
//!
//! Why: Linux 6.1 reads `hvm_start_info`, the memory map, the module list and the command line
//! early (before it has an allocator) but through its boot page tables, which map only the
//! first 1 GiB; and nothing that the guest must not overwrite may be in RAM. So they, the ACPI
//! tables and the special pages sit in one carved-out area at the top of the low 1 GiB that the
//! memory map does not call RAM. The initrd (module 0) is in RAM, below 4 GiB as Linux's 32-bit
//! `ramdisk_image` needs; Linux reserves it itself. The plan only checks that everything fits;
//! whether the remaining free RAM is enough for the guest is the caller's choice of `ram_bytes`.

use alloc::vec::Vec;
use core::ops::Range;

use super::PAGE_SIZE;
use super::start_info::{HvmMemmapEntry, HvmModlistEntry, HvmStartInfo, memmap_type};

/// End of the low RAM (start of the VGA/ROM window).
pub const LOW_RAM_END: u64 = 0xA_0000;
/// End of the low 1 MiB.
pub const LOW_MEM_END: u64 = 0x10_0000;
/// Linux's boot page tables map only this much: the boot-info area must lie below.
pub const EARLY_MAP_LIMIT: u64 = 1 << 30;
/// Largest guest RAM (stays clear of the 32-bit MMIO area: LAPIC at 0xFEE00000).
pub const MAX_RAM: u64 = 3 << 30;
/// Initrd alignment.
pub const INITRD_ALIGN: u64 = 2 << 20;
/// Longest command line (Linux's x86 `COMMAND_LINE_SIZE` is 2048 including the NUL).
pub const MAX_CMDLINE: u64 = 2047;
/// Most special pages.
pub const MAX_SPECIAL_PAGES: u64 = 64;
/// Largest ACPI blob.
pub const MAX_ACPI: u64 = 64 << 10;

/// A guest-physical range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First byte.
    pub gpa: u64,
    /// Length in bytes.
    pub len: u64,
}

impl Region {
    /// First byte after the region.
    pub fn end(&self) -> u64 {
        self.gpa + self.len
    }
}

/// What to lay out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanInput {
    /// Backed guest RAM, `0..ram_bytes`; page-aligned, at most [`MAX_RAM`].
    pub ram_bytes: u64,
    /// The kernel image's extent ([`crate::pvh::kernel::PvhImage::extent`]).
    pub kernel: Range<u64>,
    /// Command line length without the NUL, at most [`MAX_CMDLINE`].
    pub cmdline_len: u64,
    /// Initrd length (0: no initrd, no module).
    pub initrd_len: u64,
    /// ACPI blob length ([`crate::pvh::acpi::len`]), 36..=[`MAX_ACPI`].
    pub acpi_len: u64,
    /// Number of special pages (console ring, xenstore ring, ...), at most [`MAX_SPECIAL_PAGES`].
    pub special_pages: u64,
}

/// Where everything goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Backed guest RAM, `0..ram_bytes`.
    pub ram_bytes: u64,
    /// The kernel's extent (as given).
    pub kernel: Range<u64>,
    /// The initrd, if any (module 0).
    pub initrd: Option<Region>,
    /// The whole carved-out area: boot info, ACPI, special pages.
    pub reserved: Region,
    /// `hvm_start_info` (the guest's `ebx`); the boot-info pages start here.
    pub start_info: u64,
    /// Length of the boot-info pages (page multiple).
    pub boot_info_len: u64,
    /// The module list (room for one entry).
    pub modlist: u64,
    /// The memory map array.
    pub memmap: u64,
    /// The command line, its length including the NUL.
    pub cmdline: Region,
    /// The ACPI blob (page-rounded length).
    pub acpi: Region,
    /// The RSDP.
    pub rsdp: u64,
    /// The special pages.
    pub special: Region,
    /// The memory map: sorted, contiguous, covering exactly `0..ram_bytes`.
    pub memmap_entries: Vec<HvmMemmapEntry>,
    /// First unbacked address: the guest may place mappings (grant frames, shared info) at or
    /// above it; the hypervisor backs them on demand.
    pub hole_start: u64,
}

impl Plan {
    /// Guest-physical address of special page `i`.
    pub fn special_page(&self, i: u64) -> Option<u64> {
        (i < self.special.len / PAGE_SIZE).then(|| self.special.gpa + i * PAGE_SIZE)
    }
}

/// Why no layout exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlanError {
    /// `ram_bytes` is not page-aligned or exceeds [`MAX_RAM`].
    BadRamSize,
    /// The command line is longer than [`MAX_CMDLINE`].
    CmdlineTooLong,
    /// The ACPI length is outside 36..=[`MAX_ACPI`].
    BadAcpiLen,
    /// More than [`MAX_SPECIAL_PAGES`] special pages.
    TooManySpecialPages,
    /// The kernel is not inside RAM between 1 MiB and the reserved area.
    KernelDoesNotFit,
    /// The initrd does not fit between the kernel and the reserved area.
    InitrdDoesNotFit,
    /// The command line given to [`crate::pvh::start_info::build_boot_info`] is not the length
    /// the plan was made for, or contains a NUL byte.
    CmdlineMismatch,
    /// The plan's boot-info fields are inconsistent (a hand-edited [`Plan`]).
    InconsistentPlan,
}

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::BadRamSize => write!(f, "guest RAM size not page-aligned or above {MAX_RAM:#x}"),
            Self::CmdlineTooLong => write!(f, "command line longer than {MAX_CMDLINE} bytes"),
            Self::BadAcpiLen => write!(f, "ACPI blob length out of range"),
            Self::TooManySpecialPages => write!(f, "more than {MAX_SPECIAL_PAGES} special pages"),
            Self::KernelDoesNotFit => write!(f, "kernel does not fit in guest RAM below the reserved area"),
            Self::InitrdDoesNotFit => write!(f, "initrd does not fit in guest RAM after the kernel"),
            Self::CmdlineMismatch => write!(f, "command line differs from the planned length or has a NUL"),
            Self::InconsistentPlan => write!(f, "inconsistent boot-info layout in the plan"),
        }
    }
}

fn page_up(n: u64) -> u64 {
    n.next_multiple_of(PAGE_SIZE)
}

fn entry(addr: u64, end: u64, kind: u32) -> HvmMemmapEntry {
    HvmMemmapEntry { addr, size: end - addr, kind, reserved: 0 }
}

/// Lays out a guest.
pub fn plan(p: &PlanInput) -> Result<Plan, PlanError> {
    if !p.ram_bytes.is_multiple_of(PAGE_SIZE) || p.ram_bytes > MAX_RAM {
        return Err(PlanError::BadRamSize);
    }
    if p.cmdline_len > MAX_CMDLINE {
        return Err(PlanError::CmdlineTooLong);
    }
    if !(36..=MAX_ACPI).contains(&p.acpi_len) {
        return Err(PlanError::BadAcpiLen);
    }
    if p.special_pages > MAX_SPECIAL_PAGES {
        return Err(PlanError::TooManySpecialPages);
    }
    // All sizes are now bounded: no arithmetic below can overflow.
    let top = p.ram_bytes.min(EARLY_MAP_LIMIT);
    let special_len = p.special_pages * PAGE_SIZE;
    let acpi_len = page_up(p.acpi_len);
    let entries = 5 + u64::from(p.special_pages != 0) + u64::from(p.ram_bytes > top);
    let modlist_off = size_of::<HvmStartInfo>() as u64;
    let memmap_off = modlist_off + size_of::<HvmModlistEntry>() as u64;
    let cmdline_off = memmap_off + entries * size_of::<HvmMemmapEntry>() as u64;
    let boot_info_len = page_up(cmdline_off + p.cmdline_len + 1);
    let area_len = boot_info_len + acpi_len + special_len;
    let Some(start_info) = top.checked_sub(area_len).filter(|&a| a >= LOW_MEM_END) else {
        return Err(PlanError::KernelDoesNotFit);
    };
    let acpi = Region { gpa: start_info + boot_info_len, len: acpi_len };
    let special = Region { gpa: acpi.end(), len: special_len };

    let k = &p.kernel;
    if k.start < LOW_MEM_END || k.start > k.end || k.end > start_info {
        return Err(PlanError::KernelDoesNotFit);
    }
    let initrd = if p.initrd_len == 0 {
        None
    } else {
        // k.end ≤ start_info < 1 GiB, so rounding up cannot overflow.
        let gpa = k.end.next_multiple_of(INITRD_ALIGN);
        match gpa.checked_add(p.initrd_len) {
            Some(end) if end <= start_info => Some(Region { gpa, len: p.initrd_len }),
            _ => return Err(PlanError::InitrdDoesNotFit),
        }
    };

    use memmap_type::{ACPI, RAM, RESERVED};
    let mut memmap_entries = alloc::vec![
        entry(0, LOW_RAM_END, RAM),
        entry(LOW_RAM_END, LOW_MEM_END, RESERVED),
        entry(LOW_MEM_END, start_info, RAM),
        entry(start_info, acpi.gpa, RESERVED),
        entry(acpi.gpa, acpi.end(), ACPI),
    ];
    if special.len != 0 {
        memmap_entries.push(entry(special.gpa, special.end(), RESERVED));
    }
    if p.ram_bytes > top {
        memmap_entries.push(entry(top, p.ram_bytes, RAM));
    }
    debug_assert_eq!(memmap_entries.len() as u64, entries);

    Ok(Plan {
        ram_bytes: p.ram_bytes,
        kernel: k.clone(),
        initrd,
        reserved: Region { gpa: start_info, len: area_len },
        start_info,
        boot_info_len,
        modlist: start_info + modlist_off,
        memmap: start_info + memmap_off,
        cmdline: Region { gpa: start_info + cmdline_off, len: p.cmdline_len + 1 },
        acpi,
        rsdp: acpi.gpa + super::acpi::rsdp_offset(),
        special,
        memmap_entries,
        hole_start: p.ram_bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    /// A Debian-like kernel (16 MiB .. 74 MiB) or a small one.
    fn input(ram_mib: u64, kernel: Range<u64>, initrd_len: u64) -> PlanInput {
        PlanInput {
            ram_bytes: ram_mib * MIB,
            kernel,
            cmdline_len: 40,
            initrd_len,
            acpi_len: crate::pvh::acpi::len(1),
            special_pages: 2,
        }
    }

    /// Every invariant the guest relies on.
    fn check(p: &PlanInput, plan: &Plan) {
        // The memory map is sorted, contiguous, exactly covers 0..ram_bytes, and only RAM,
        // reserved and ACPI types appear.
        let m = &plan.memmap_entries;
        assert_eq!(m[0].addr, 0);
        assert!(m.windows(2).all(|w| w[0].addr + w[0].size == w[1].addr));
        assert_eq!(m.last().map(|e| e.addr + e.size), Some(p.ram_bytes));
        assert!(m.iter().all(|e| e.size > 0 && e.reserved == 0 && (1..=3).contains(&e.kind)));
        assert!(m.windows(2).all(|w| w[0].kind != w[1].kind), "neighbours merged");
        let kind_of = |r: Range<u64>| -> Option<u32> {
            m.iter().find(|e| e.addr <= r.start && r.end <= e.addr + e.size).map(|e| e.kind)
        };
        use memmap_type::*;
        // The kernel and initrd are in RAM, nothing the guest must keep is.
        assert_eq!(kind_of(plan.kernel.clone()), Some(RAM));
        if let Some(i) = plan.initrd {
            assert_eq!(kind_of(i.gpa..i.end()), Some(RAM));
            assert!(i.gpa >= plan.kernel.end && i.gpa.is_multiple_of(INITRD_ALIGN));
            assert!(i.end() <= 1 << 32 && i.len == p.initrd_len);
        }
        assert_eq!(kind_of(plan.start_info..plan.start_info + plan.boot_info_len), Some(RESERVED));
        assert_eq!(kind_of(plan.acpi.gpa..plan.acpi.end()), Some(ACPI));
        if p.special_pages > 0 {
            assert_eq!(kind_of(plan.special.gpa..plan.special.end()), Some(RESERVED));
        }
        assert_eq!(kind_of(LOW_RAM_END..LOW_MEM_END), Some(RESERVED));
        assert_eq!(kind_of(0..LOW_RAM_END), Some(RAM));
        // Page-aligned, in order, inside the carved-out area, below 1 GiB.
        let area = [Region { gpa: plan.start_info, len: plan.boot_info_len }, plan.acpi, plan.special];
        assert_eq!(area[0].gpa, plan.reserved.gpa);
        assert_eq!(area[2].end(), plan.reserved.end());
        for r in area {
            assert!(r.gpa.is_multiple_of(PAGE_SIZE) && r.len.is_multiple_of(PAGE_SIZE));
            assert!(r.end() <= EARLY_MAP_LIMIT && r.end() <= p.ram_bytes);
        }
        assert!(area.windows(2).all(|w| w[0].end() == w[1].gpa));
        assert!(plan.acpi.len >= p.acpi_len && plan.rsdp == plan.acpi.gpa);
        assert_eq!(plan.special.len, p.special_pages * PAGE_SIZE);
        // The boot-info fields are in order inside their pages.
        let info_end = plan.start_info + plan.boot_info_len;
        assert!(plan.start_info + 56 <= plan.modlist && plan.modlist + 32 <= plan.memmap);
        assert!(plan.memmap + 24 * m.len() as u64 <= plan.cmdline.gpa && plan.cmdline.end() <= info_end);
        assert_eq!(plan.cmdline.len, p.cmdline_len + 1);
        assert_eq!(plan.hole_start, p.ram_bytes);
    }

    #[test]
    fn lays_out_common_sizes() {
        for ram in [64, 128, 256, 512, 1024] {
            for initrd in [0, 1, 5 * MIB + 3, 30 * MIB] {
                let p = input(ram, 16 * MIB..20 * MIB + 0x123, initrd);
                let plan = plan(&p).unwrap_or_else(|e| panic!("{ram} MiB, initrd {initrd}: {e}"));
                check(&p, &plan);
                assert_eq!(plan.reserved.end(), ram * MIB);
                assert_eq!(plan.initrd.map(|i| i.gpa), (initrd > 0).then_some(22 * MIB));
                assert_eq!(plan.memmap_entries.len(), 6);
            }
        }
    }

    #[test]
    fn debian_kernel_with_a_large_initrd() {
        // Debian 6.1's vmlinux occupies 16 MiB .. 0x4a00000 (74 MiB, see kernel.rs).
        let p = input(512, 16 * MIB..0x4a0_0000, 300 * MIB);
        let layout = plan(&p).unwrap();
        check(&p, &layout);
        assert_eq!(layout.initrd, Some(Region { gpa: 74 * MIB, len: 300 * MIB }));
        assert_eq!(plan(&input(128, 16 * MIB..0x4a0_0000, 60 * MIB)), Err(PlanError::InitrdDoesNotFit));
        assert_eq!(plan(&input(64, 16 * MIB..0x4a0_0000, 0)), Err(PlanError::KernelDoesNotFit));
    }

    #[test]
    fn ram_above_one_gib_stays_ram_after_the_area() {
        let p = input(2048, 16 * MIB..0x4a0_0000, 100 * MIB);
        let plan = plan(&p).unwrap();
        check(&p, &plan);
        assert_eq!(plan.reserved.end(), EARLY_MAP_LIMIT);
        let last = plan.memmap_entries.last().unwrap();
        assert_eq!((last.addr, last.size, last.kind), (EARLY_MAP_LIMIT, EARLY_MAP_LIMIT, memmap_type::RAM));
    }

    #[test]
    fn no_special_pages_and_a_maximal_command_line() {
        let mut p = input(128, 16 * MIB..17 * MIB, 0);
        p.special_pages = 0;
        p.cmdline_len = MAX_CMDLINE;
        let plan = plan(&p).unwrap();
        check(&p, &plan);
        assert_eq!(plan.boot_info_len, PAGE_SIZE);
        assert_eq!(plan.special_page(0), None);
        assert_eq!(plan.memmap_entries.len(), 5);
    }

    #[test]
    fn rejects_what_does_not_fit() {
        let ok = input(64, 16 * MIB..20 * MIB, 0);
        let with = |f: &dyn Fn(&mut PlanInput)| {
            let mut p = ok.clone();
            f(&mut p);
            plan(&p)
        };
        assert!(with(&|_| ()).is_ok());
        assert_eq!(with(&|p| p.ram_bytes += 1), Err(PlanError::BadRamSize));
        assert_eq!(with(&|p| p.ram_bytes = MAX_RAM + PAGE_SIZE), Err(PlanError::BadRamSize));
        assert_eq!(with(&|p| p.cmdline_len = MAX_CMDLINE + 1), Err(PlanError::CmdlineTooLong));
        assert_eq!(with(&|p| p.acpi_len = 0), Err(PlanError::BadAcpiLen));
        assert_eq!(with(&|p| p.acpi_len = MAX_ACPI + 1), Err(PlanError::BadAcpiLen));
        assert_eq!(with(&|p| p.special_pages = MAX_SPECIAL_PAGES + 1), Err(PlanError::TooManySpecialPages));
        assert_eq!(with(&|p| p.kernel = 0x1000..0x2000), Err(PlanError::KernelDoesNotFit));
        let reversed = Range { start: 20 * MIB, end: 16 * MIB };
        assert_eq!(with(&|p| p.kernel = reversed.clone()), Err(PlanError::KernelDoesNotFit));
        assert_eq!(with(&|p| p.kernel = 16 * MIB..64 * MIB), Err(PlanError::KernelDoesNotFit));
        assert_eq!(with(&|p| p.ram_bytes = 16 * MIB), Err(PlanError::KernelDoesNotFit));
        assert_eq!(with(&|p| p.ram_bytes = 4 * PAGE_SIZE), Err(PlanError::KernelDoesNotFit));
        assert_eq!(with(&|p| p.ram_bytes = 0), Err(PlanError::KernelDoesNotFit));
        assert_eq!(with(&|p| p.initrd_len = 44 * MIB), Err(PlanError::InitrdDoesNotFit));
        assert_eq!(with(&|p| p.initrd_len = u64::MAX), Err(PlanError::InitrdDoesNotFit));
        // The largest initrd that fits ends exactly at the reserved area.
        let area = plan(&ok).unwrap().reserved.gpa;
        let largest = with(&|p| p.initrd_len = area - 20 * MIB).unwrap();
        assert_eq!(largest.initrd.map(|i| i.end()), Some(area));
    }

    #[test]
    fn special_pages_are_numbered_from_the_bottom() {
        let plan = plan(&input(256, 16 * MIB..20 * MIB, 0)).unwrap();
        assert_eq!(plan.special_page(0), Some(256 * MIB - 2 * PAGE_SIZE));
        assert_eq!(plan.special_page(1), Some(256 * MIB - PAGE_SIZE));
        assert_eq!(plan.special_page(2), None);
    }
}
