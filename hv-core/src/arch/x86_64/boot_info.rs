//! Boot information from either loader, copied out into one plain structure before low memory is
//! reused: usable RAM, the boot bundle module, the ACPI root, and what firmware ran.
//!
//! Under GRUB on UEFI the multiboot2 information carries the UEFI memory map (tag 17), the
//! firmware's RSDP (tags 14/15) and its system table (tags 11/12); GRUB has already called
//! ExitBootServices (our header asks for no EFI entry), so the boot services' memory is ours.
//! The tags' bytes are judged by the host-tested parsers in [`crate::efi_memory_map`] and
//! [`crate::acpi_root`].
use alloc::vec::Vec;

use crate::acpi_root::{self, AcpiRoot, RsdpError};
use crate::efi_memory_map::{self, EfiMapError, MemorySource};

pub const PVH_MAGIC: u32 = 0x336e_c578;
pub const MB2_MAGIC: u32 = 0x36d7_6289;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loader {
    Pvh,
    Multiboot2,
}

#[derive(Debug)]
pub struct BootInfo {
    pub loader: Loader,
    /// Usable RAM ranges `[start, end)`.
    pub ram: Vec<(u64, u64)>,
    /// Which map `ram` came from.
    pub memory_source: MemorySource,
    /// An EFI memory map that was passed but could not be used (the BIOS-style map was).
    pub efi_map_error: Option<EfiMapError>,
    /// The boot bundle module `[start, end)`, if one was passed.
    pub bundle: Option<(u64, u64)>,
    /// Memory the loader's structures occupy (reserved until parsed; informational).
    pub info_range: (u64, u64),
    /// The firmware's ACPI root, when the loader passed an RSDP (`Err`: it passed a bad one).
    pub acpi: Option<Result<AcpiRoot, RsdpError>>,
    /// The UEFI system table's address (multiboot2 tags 11/12): booted through UEFI.
    pub efi_system_table: Option<u64>,
}

/// Why the boot information cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootError {
    UnknownProtocol,
    PvhWithoutMemoryMap,
    MalformedMultiboot2,
    NoMemoryMap,
    /// Tag 18: the loader kept UEFI boot services running (the firmware still owns memory).
    BootServicesNotExited,
    EfiMap(EfiMapError),
}

impl core::fmt::Display for BootError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::UnknownProtocol => write!(f, "unknown boot protocol (neither PVH nor multiboot2)"),
            Self::PvhWithoutMemoryMap => write!(f, "PVH start_info without a memory map (version 0)"),
            Self::MalformedMultiboot2 => write!(f, "malformed multiboot2 information"),
            Self::NoMemoryMap => write!(f, "multiboot2 information has neither a memory map nor an EFI memory map"),
            Self::BootServicesNotExited => {
                write!(f, "the loader left UEFI boot services running (multiboot2 tag 18); we need it to exit them")
            }
            Self::EfiMap(e) => write!(f, "{e}"),
        }
    }
}

/// Reads 8/4 bytes at a physical address below 4 GiB (identity-mapped during early boot).
fn rd64(addr: u64) -> u64 {
    // SAFETY: the caller passes addresses inside the loader's info structures, which the boot
    // page tables identity-map; unaligned reads are fine on x86.
    unsafe { (addr as *const u64).read_unaligned() }
}
fn rd32(addr: u64) -> u32 {
    // SAFETY: as in rd64.
    unsafe { (addr as *const u32).read_unaligned() }
}

/// Parses the loader's information. Call before anything allocates frames.
pub fn parse(magic: u32, info: u32) -> Result<BootInfo, BootError> {
    let info = info as u64;
    if magic == MB2_MAGIC {
        return parse_mb2(info);
    }
    if rd32(info) != PVH_MAGIC {
        return Err(BootError::UnknownProtocol);
    }
    // struct hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h)
    let version = rd32(info + 4);
    let nr_modules = rd32(info + 12);
    let modlist = rd64(info + 16);
    let rsdp = rd64(info + 32);
    let memmap = rd64(info + 40);
    let memmap_entries = rd32(info + 48);
    if version < 1 || memmap == 0 {
        return Err(BootError::PvhWithoutMemoryMap);
    }
    let mut ram = Vec::new();
    for i in 0..memmap_entries.min(128) as u64 {
        let e = memmap + i * 24;
        let (addr, size, ty) = (rd64(e), rd64(e + 8), rd32(e + 16));
        if ty == 1 {
            ram.push((addr, addr + size));
        }
    }
    let bundle = (nr_modules > 0).then(|| {
        let (paddr, size) = (rd64(modlist), rd64(modlist + 8));
        (paddr, paddr + size)
    });
    // The RSDP itself, in firmware memory below 4 GiB (the boot map's reach).
    let acpi = (rsdp != 0 && rsdp < (4 << 30) - acpi_root::V2_LEN as u64).then(|| {
        let mut b = [0u8; acpi_root::V2_LEN];
        for (i, byte) in b.iter_mut().enumerate() {
            // SAFETY: below 4 GiB, identity-mapped; a byte read of firmware memory.
            *byte = unsafe { ((rsdp + i as u64) as *const u8).read_volatile() };
        }
        acpi_root::parse(&b)
    });
    Ok(BootInfo {
        loader: Loader::Pvh,
        ram,
        memory_source: MemorySource::Pvh,
        efi_map_error: None,
        bundle,
        info_range: (info, info + 56),
        acpi,
        efi_system_table: None,
    })
}

/// Multiboot2 tag types read by number (the multiboot2 specification, §3.6).
mod tag {
    pub const EFI32_SYSTEM_TABLE: u32 = 11;
    pub const EFI64_SYSTEM_TABLE: u32 = 12;
    pub const ACPI_OLD_RSDP: u32 = 14;
    pub const ACPI_NEW_RSDP: u32 = 15;
    pub const EFI_MEMORY_MAP: u32 = 17;
    pub const EFI_BOOT_SERVICES_NOT_EXITED: u32 = 18;
}

fn parse_mb2(info: u64) -> Result<BootInfo, BootError> {
    use multiboot2::{BootInformation, BootInformationHeader, MemoryAreaType};
    // SAFETY: GRUB handed us this pointer in EBX with the multiboot2 magic in EAX; the structure
    // is identity-mapped and intact (nothing has been allocated yet).
    let bi = unsafe { BootInformation::load(info as *const BootInformationHeader) }
        .map_err(|_| BootError::MalformedMultiboot2)?;
    // The crate validated the tag chain; the EFI and ACPI tags' payloads are judged here.
    let (mut efi_map, mut old_rsdp, mut new_rsdp, mut efi_system_table) = (None, None, None, None);
    for t in bi.tags() {
        let p = t.payload();
        match t.header().typ.get() {
            tag::EFI_BOOT_SERVICES_NOT_EXITED => return Err(BootError::BootServicesNotExited),
            tag::EFI_MEMORY_MAP => efi_map = Some(efi_memory_map::usable_ranges(p)),
            tag::ACPI_OLD_RSDP => old_rsdp = Some(acpi_root::parse(p)),
            tag::ACPI_NEW_RSDP => new_rsdp = Some(acpi_root::parse(p)),
            tag::EFI32_SYSTEM_TABLE if p.len() >= 4 => {
                efi_system_table = Some(u32::from_le_bytes(p[..4].try_into().expect("4 bytes")) as u64)
            }
            tag::EFI64_SYSTEM_TABLE if p.len() >= 8 => {
                efi_system_table = Some(u64::from_le_bytes(p[..8].try_into().expect("8 bytes")))
            }
            _ => {}
        }
    }
    let bios_map = bi.memory_map_tag().map(|m| {
        m.memory_areas()
            .iter()
            .filter(|a| a.typ() == MemoryAreaType::Available)
            .map(|a| (a.start_address(), a.end_address()))
            .collect::<Vec<_>>()
    });
    let chosen = efi_memory_map::choose(efi_map, bios_map).map_err(|e| match e {
        Some(e) => BootError::EfiMap(e),
        None => BootError::NoMemoryMap,
    })?;
    // The ACPI 2.0 RSDP when it is sound, else the 1.0 one.
    let acpi = match (new_rsdp, old_rsdp) {
        (Some(Ok(r)), _) => Some(Ok(r)),
        (new, None) => new,
        (_, old) => old,
    };
    let bundle = bi.module_tags().next().map(|m| (m.start_address() as u64, m.end_address() as u64));
    Ok(BootInfo {
        loader: Loader::Multiboot2,
        ram: chosen.ram,
        memory_source: chosen.source,
        efi_map_error: chosen.efi_error,
        bundle,
        info_range: (info, info + bi.total_size() as u64),
        acpi,
        efi_system_table,
    })
}

impl BootInfo {
    /// One line for the console: the firmware, where RAM came from, where ACPI's root table is
    /// (with the signature found there, so a wrong pointer shows).
    pub fn summary(&self) -> alloc::string::String {
        use core::fmt::Write;
        let mut s = alloc::string::String::new();
        if let Some(st) = self.efi_system_table {
            let _ = write!(s, "UEFI (system table {st:#x}), ");
        }
        let _ = write!(s, "RAM from the {} ({} ranges)", self.memory_source.name(), self.ram.len());
        if let Some(e) = self.efi_map_error {
            let _ = write!(s, " because the EFI memory map is unusable: {e}");
        }
        match self.acpi {
            None => s.push_str(", no ACPI RSDP from the loader"),
            Some(Err(e)) => {
                let _ = write!(s, ", ACPI unusable: {e}");
            }
            Some(Ok(r)) => {
                let (name, at) = if r.xsdt.is_some() { ("XSDT", r.root_table()) } else { ("RSDT", r.root_table()) };
                let _ = write!(s, ", ACPI {} RSDP, {name} at {at:#x}", if r.revision >= 2 { "2.0+" } else { "1.0" });
                match table_signature(at) {
                    Some(sig) if sig == name.as_bytes() => {}
                    Some(sig) => {
                        let _ = write!(s, " (but it reads {:?})", core::str::from_utf8(&sig).unwrap_or("????"));
                    }
                    None => s.push_str(" (above 4 GiB: not checked)"),
                }
            }
        }
        s
    }
}

/// The 4-byte signature of the ACPI table at `paddr`, when the early identity map reaches it.
fn table_signature(paddr: u64) -> Option<[u8; 4]> {
    (paddr < (4 << 30) - 4).then(|| rd32(paddr).to_le_bytes())
}
