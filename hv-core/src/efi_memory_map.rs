//! The UEFI memory map a loader hands over after ExitBootServices (multiboot2 tag 17: GRUB under
//! UEFI), turned into usable RAM ranges. Plain Rust over the tag's raw bytes, so it is tested on
//! the host and a malformed map is an error, never a panic.
//!
//! Layout (UEFI 2.10 §7.2.3, `EFI_MEMORY_DESCRIPTOR`): every `desc_size` bytes one descriptor,
//! `Type: u32` at 0, `PhysicalStart: u64` at 8, `VirtualStart: u64` at 16, `NumberOfPages: u64`
//! at 24 (4 KiB pages), `Attribute: u64` at 32. `desc_size` may exceed 40 (room for future
//! fields): always step by it.
use alloc::vec::Vec;

/// The bytes every descriptor has at least.
pub const DESC_MIN_SIZE: usize = 40;
/// The only descriptor version UEFI has defined.
pub const DESC_VERSION: u32 = 1;
/// More descriptors than any firmware produces; a bigger count means a corrupt tag.
pub const MAX_DESCRIPTORS: usize = 4096;
const PAGE: u64 = 4096;

/// `EFI_MEMORY_TYPE` values we treat as usable once boot services have exited.
pub mod memory_type {
    pub const LOADER_CODE: u32 = 1;
    pub const LOADER_DATA: u32 = 2;
    pub const BOOT_SERVICES_CODE: u32 = 3;
    pub const BOOT_SERVICES_DATA: u32 = 4;
    pub const CONVENTIONAL: u32 = 7;
}

/// Free for the OS after ExitBootServices: conventional memory, and what the loader and the boot
/// services held (GRUB's own code and data among it: the hypervisor reserves its image, the
/// loader's information and the modules itself). Runtime services, ACPI (reclaim and NVS),
/// MMIO, persistent and unusable memory stay out.
pub fn is_usable(ty: u32) -> bool {
    use memory_type::*;
    matches!(ty, LOADER_CODE | LOADER_DATA | BOOT_SERVICES_CODE | BOOT_SERVICES_DATA | CONVENTIONAL)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EfiMapError {
    /// The tag is shorter than its own `desc_size`/`desc_version` fields.
    Truncated,
    /// `desc_size` is below the 40 bytes of a descriptor or not a multiple of 8.
    BadDescriptorSize(u32),
    /// A descriptor version other than 1.
    BadVersion(u32),
    /// The descriptors do not fill the tag exactly.
    Ragged,
    /// More than [`MAX_DESCRIPTORS`].
    TooManyDescriptors,
    /// A descriptor whose range wraps past 2^64 (`PhysicalStart` + pages × 4 KiB).
    RangeOverflow { start: u64, pages: u64 },
}

impl core::fmt::Display for EfiMapError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated => write!(f, "EFI memory map tag is shorter than its header"),
            Self::BadDescriptorSize(s) => {
                write!(f, "EFI memory map descriptor size {s} (at least 40, a multiple of 8)")
            }
            Self::BadVersion(v) => write!(f, "EFI memory map descriptor version {v} (only 1 is defined)"),
            Self::Ragged => write!(f, "EFI memory map is not a whole number of descriptors"),
            Self::TooManyDescriptors => write!(f, "EFI memory map has more than {MAX_DESCRIPTORS} descriptors"),
            Self::RangeOverflow { start, pages } => {
                write!(f, "EFI memory descriptor at {start:#x} with {pages:#x} pages wraps past 2^64")
            }
        }
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// The usable RAM `[start, end)` of the payload of a multiboot2 EFI memory map tag (the bytes
/// after the tag's type and size: `desc_size: u32`, `desc_version: u32`, then the descriptors),
/// sorted and with touching or overlapping ranges merged.
pub fn usable_ranges(payload: &[u8]) -> Result<Vec<(u64, u64)>, EfiMapError> {
    if payload.len() < 8 {
        return Err(EfiMapError::Truncated);
    }
    let (desc_size, version) = (u32_at(payload, 0), u32_at(payload, 4));
    if (desc_size as usize) < DESC_MIN_SIZE || desc_size % 8 != 0 {
        return Err(EfiMapError::BadDescriptorSize(desc_size));
    }
    if version != DESC_VERSION {
        return Err(EfiMapError::BadVersion(version));
    }
    let descs = &payload[8..];
    let step = desc_size as usize;
    if !descs.len().is_multiple_of(step) {
        return Err(EfiMapError::Ragged);
    }
    if descs.len() / step > MAX_DESCRIPTORS {
        return Err(EfiMapError::TooManyDescriptors);
    }
    let mut ranges = Vec::new();
    for d in descs.chunks_exact(step) {
        let (ty, start, pages) = (u32_at(d, 0), u64_at(d, 8), u64_at(d, 24));
        let end = pages.checked_mul(PAGE).and_then(|len| start.checked_add(len));
        let Some(end) = end else { return Err(EfiMapError::RangeOverflow { start, pages }) };
        if is_usable(ty) && end > start {
            ranges.push((start, end));
        }
    }
    Ok(merge(ranges))
}

/// Sorts `ranges` and merges the ones that touch or overlap.
pub fn merge(mut ranges: Vec<(u64, u64)>) -> Vec<(u64, u64)> {
    ranges.sort_unstable();
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match out.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => out.push((s, e)),
        }
    }
    out
}

/// Where the hypervisor's RAM ranges came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemorySource {
    /// PVH's `hvm_start_info` memory map (E820 types).
    Pvh,
    /// Multiboot2's memory map (tag 6, E820 types): GRUB on BIOS.
    Multiboot2,
    /// Multiboot2's EFI memory map (tag 17): GRUB on UEFI, after ExitBootServices.
    Efi,
}

impl MemorySource {
    pub fn name(self) -> &'static str {
        match self {
            Self::Pvh => "PVH memory map",
            Self::Multiboot2 => "multiboot2 memory map",
            Self::Efi => "EFI memory map",
        }
    }
}

/// The RAM a multiboot2 boot uses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub ram: Vec<(u64, u64)>,
    pub source: MemorySource,
    /// The EFI map was there but malformed, so the BIOS-style map was used.
    pub efi_error: Option<EfiMapError>,
}

/// The EFI memory map when the loader passed a sound one (it is exact after ExitBootServices:
/// boot services memory counts as RAM), else the BIOS-style map (tag 6). `Err(Some(_))`: only a
/// malformed EFI map; `Err(None)`: no map at all.
pub fn choose(
    efi: Option<Result<Vec<(u64, u64)>, EfiMapError>>,
    bios: Option<Vec<(u64, u64)>>,
) -> Result<Chosen, Option<EfiMapError>> {
    match (efi, bios) {
        (Some(Ok(ram)), _) => Ok(Chosen { ram, source: MemorySource::Efi, efi_error: None }),
        (Some(Err(e)), Some(ram)) => Ok(Chosen { ram, source: MemorySource::Multiboot2, efi_error: Some(e) }),
        (Some(Err(e)), None) => Err(Some(e)),
        (None, Some(ram)) => Ok(Chosen { ram, source: MemorySource::Multiboot2, efi_error: None }),
        (None, None) => Err(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc(ty: u32, start: u64, pages: u64, size: usize) -> Vec<u8> {
        let mut d = vec![0u8; size];
        d[0..4].copy_from_slice(&ty.to_le_bytes());
        d[8..16].copy_from_slice(&start.to_le_bytes());
        d[16..24].copy_from_slice(&0xdead_0000u64.to_le_bytes()); // virtual start: ignored
        d[24..32].copy_from_slice(&pages.to_le_bytes());
        d[32..40].copy_from_slice(&0xfu64.to_le_bytes()); // attributes: ignored
        d
    }

    fn tag(desc_size: u32, version: u32, descs: &[(u32, u64, u64)]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend(desc_size.to_le_bytes());
        t.extend(version.to_le_bytes());
        for &(ty, s, p) in descs {
            t.extend(desc(ty, s, p, desc_size as usize));
        }
        t
    }

    /// The shape of OVMF's map on q35 with 256 MiB after GRUB exited boot services.
    #[test]
    fn ovmf_like_map_gives_the_reusable_ranges_merged() {
        let t = tag(
            48, // OVMF's descriptors are 48 bytes
            1,
            &[
                (7, 0, 0xa0),               // conventional below 640 KiB
                (7, 0x10_0000, 0x700),      // 1 MiB ..
                (2, 0x80_0000, 0x100),      // loader data (GRUB, our image)
                (4, 0x90_0000, 0x200),      // boot services data
                (7, 0xb0_0000, 0xe000),     // ..
                (9, 0xeb0_0000, 0x10),      // ACPI reclaim: stays out
                (10, 0xeb1_0000, 0x10),     // ACPI NVS
                (3, 0xeb2_0000, 0x20),      // boot services code
                (5, 0xfe0_0000, 0x100),     // runtime services code
                (6, 0xff0_0000, 0x100),     // runtime services data
                (11, 0xffc0_0000, 0x400),   // MMIO (flash)
                (0, 0x1_0000_0000, 0x1000), // reserved
            ],
        );
        assert_eq!(usable_ranges(&t), Ok(vec![(0, 0xa_0000), (0x10_0000, 0xeb0_0000), (0xeb2_0000, 0xeb4_0000)]));
    }

    #[test]
    fn only_the_types_free_after_exit_boot_services_are_usable() {
        let usable: Vec<u32> = (0..16).filter(|&t| is_usable(t)).collect();
        assert_eq!(usable, [1, 2, 3, 4, 7]);
        assert!(!is_usable(0x8000_0000)); // OEM types
    }

    #[test]
    fn an_empty_map_is_no_ram_not_an_error() {
        assert_eq!(usable_ranges(&tag(40, 1, &[])), Ok(vec![]));
        assert_eq!(usable_ranges(&tag(40, 1, &[(7, 0x1000, 0)])), Ok(vec![]));
    }

    #[test]
    fn malformed_maps_are_errors() {
        assert_eq!(usable_ranges(&[1, 2, 3]), Err(EfiMapError::Truncated));
        assert_eq!(usable_ranges(&tag(0, 1, &[])), Err(EfiMapError::BadDescriptorSize(0)));
        assert_eq!(usable_ranges(&tag(32, 1, &[])), Err(EfiMapError::BadDescriptorSize(32)));
        assert_eq!(usable_ranges(&tag(44, 1, &[])), Err(EfiMapError::BadDescriptorSize(44)));
        assert_eq!(usable_ranges(&tag(48, 2, &[(7, 0, 1)])), Err(EfiMapError::BadVersion(2)));
        let mut ragged = tag(48, 1, &[(7, 0x10_0000, 1)]);
        ragged.pop();
        assert_eq!(usable_ranges(&ragged), Err(EfiMapError::Ragged));
        assert_eq!(
            usable_ranges(&tag(40, 1, &[(7, u64::MAX - 0xfff, 2)])),
            Err(EfiMapError::RangeOverflow { start: u64::MAX - 0xfff, pages: 2 })
        );
        assert_eq!(
            usable_ranges(&tag(40, 1, &[(7, 0, u64::MAX / 2)])),
            Err(EfiMapError::RangeOverflow { start: 0, pages: u64::MAX / 2 })
        );
        let many: Vec<(u32, u64, u64)> = (0..=MAX_DESCRIPTORS as u64).map(|i| (7, i << 12, 1)).collect();
        assert_eq!(usable_ranges(&tag(40, 1, &many)), Err(EfiMapError::TooManyDescriptors));
    }

    #[test]
    fn unsorted_and_overlapping_descriptors_are_merged() {
        let t = tag(40, 1, &[(7, 0x30_0000, 0x100), (7, 0x10_0000, 0x100), (2, 0x10_8000, 0x10), (7, 0x40_0000, 1)]);
        assert_eq!(usable_ranges(&t), Ok(vec![(0x10_0000, 0x20_0000), (0x30_0000, 0x40_1000)]));
    }

    #[test]
    fn every_error_reads_as_a_sentence() {
        let e = EfiMapError::RangeOverflow { start: 0x1000, pages: 3 };
        assert_eq!(e.to_string(), "EFI memory descriptor at 0x1000 with 0x3 pages wraps past 2^64");
        assert!(EfiMapError::BadVersion(9).to_string().contains("version 9"));
    }

    #[test]
    fn the_efi_map_wins_when_sound_and_the_bios_map_stands_in_otherwise() {
        let (efi, bios) = (vec![(0x10_0000, 0x800_0000)], vec![(0x10_0000, 0x700_0000)]);
        let c = choose(Some(Ok(efi.clone())), Some(bios.clone())).unwrap();
        assert_eq!((c.ram, c.source, c.efi_error), (efi.clone(), MemorySource::Efi, None));
        let c = choose(Some(Ok(efi.clone())), None).unwrap();
        assert_eq!((c.ram, c.source), (efi, MemorySource::Efi));
        let c = choose(Some(Err(EfiMapError::Ragged)), Some(bios.clone())).unwrap();
        assert_eq!((c.ram, c.source, c.efi_error), (bios.clone(), MemorySource::Multiboot2, Some(EfiMapError::Ragged)));
        let c = choose(None, Some(bios.clone())).unwrap();
        assert_eq!((c.ram, c.source, c.efi_error), (bios, MemorySource::Multiboot2, None));
        assert_eq!(choose(Some(Err(EfiMapError::Truncated)), None), Err(Some(EfiMapError::Truncated)));
        assert_eq!(choose(None, None), Err(None));
    }
}
