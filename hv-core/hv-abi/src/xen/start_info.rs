//! The PVH boot protocol's `struct hvm_start_info` (`arch-x86/hvm/start_info.h`): a guest
//! entered at its `XEN_ELFNOTE_PHYS32_ENTRY` finds the physical address of this struct in
//! `ebx`. All addresses in it are guest-physical.

use bytemuck::{Pod, Zeroable};
use core::mem::{offset_of, size_of};

/// [`HvmStartInfo::magic`] (`XEN_HVM_START_MAGIC_VALUE`).
pub const HVM_START_MAGIC: u32 = 0x336e_c578;

/// `hvm_start_info` (56 bytes for version 1; version 0 ends at `memmap_paddr`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct HvmStartInfo {
    /// [`HVM_START_MAGIC`].
    pub magic: u32,
    /// 0 or 1; the memmap fields exist from version 1.
    pub version: u32,
    /// `SIF_*` flags (0 for an unprivileged guest).
    pub flags: u32,
    pub nr_modules: u32,
    /// Array of `nr_modules` [`HvmModlistEntry`].
    pub modlist_paddr: u64,
    /// NUL-terminated command line, or 0.
    pub cmdline_paddr: u64,
    /// ACPI RSDP, or 0.
    pub rsdp_paddr: u64,
    /// Array of `memmap_entries` [`HvmMemmapEntry`] (version 1).
    pub memmap_paddr: u64,
    pub memmap_entries: u32,
    pub reserved: u32,
}

/// One module (`hvm_modlist_entry`, 32 bytes); module 0 is Linux's initrd.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct HvmModlistEntry {
    pub paddr: u64,
    pub size: u64,
    pub cmdline_paddr: u64,
    pub reserved: u64,
}

/// One memory-map entry (`hvm_memmap_table_entry`, 24 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct HvmMemmapEntry {
    pub addr: u64,
    pub size: u64,
    /// A [`memmap_type`] value (the e820 numbering).
    pub kind: u32,
    pub reserved: u32,
}

/// [`HvmMemmapEntry::kind`] values (`XEN_HVM_MEMMAP_TYPE_*`).
pub mod memmap_type {
    pub const RAM: u32 = 1;
    pub const RESERVED: u32 = 2;
    pub const ACPI: u32 = 3;
    pub const NVS: u32 = 4;
    pub const UNUSABLE: u32 = 5;
    pub const DISABLED: u32 = 6;
    pub const PMEM: u32 = 7;
}

/// `SIF_*` flags in [`HvmStartInfo::flags`].
pub mod sif {
    /// The domain is privileged (dom0).
    pub const PRIVILEGED: u32 = 1 << 0;
    /// The domain is the initial domain.
    pub const INITDOMAIN: u32 = 1 << 1;
}

const _: () = assert!(size_of::<HvmStartInfo>() == 56);
const _: () = assert!(offset_of!(HvmStartInfo, cmdline_paddr) == 24);
const _: () = assert!(offset_of!(HvmStartInfo, memmap_paddr) == 40);
const _: () = assert!(offset_of!(HvmStartInfo, memmap_entries) == 48);
const _: () = assert!(size_of::<HvmModlistEntry>() == 32);
const _: () = assert!(size_of::<HvmMemmapEntry>() == 24);
