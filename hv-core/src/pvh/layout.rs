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
