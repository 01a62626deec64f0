//! Boot information from either loader, copied out into one plain structure before low memory is
//! reused: usable RAM, the boot bundle module, the loader's name.
use alloc::vec::Vec;

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
    /// The boot bundle module `[start, end)`, if one was passed.
    pub bundle: Option<(u64, u64)>,
    /// Memory the loader's structures occupy (reserved until parsed; informational).
    pub info_range: (u64, u64),
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
pub fn parse(magic: u32, info: u32) -> Result<BootInfo, &'static str> {
    let info = info as u64;
    if magic == MB2_MAGIC {
        return parse_mb2(info);
    }
    if rd32(info) != PVH_MAGIC {
        return Err("unknown boot protocol (neither PVH nor multiboot2)");
    }
    // struct hvm_start_info (xen/include/public/arch-x86/hvm/start_info.h)
    let version = rd32(info + 4);
    let nr_modules = rd32(info + 12);
    let modlist = rd64(info + 16);
    let memmap = rd64(info + 40);
    let memmap_entries = rd32(info + 48);
    if version < 1 || memmap == 0 {
        return Err("PVH start_info without a memory map (version 0)");
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
    Ok(BootInfo { loader: Loader::Pvh, ram, bundle, info_range: (info, info + 56) })
}

fn parse_mb2(info: u64) -> Result<BootInfo, &'static str> {
    use multiboot2::{BootInformation, BootInformationHeader, MemoryAreaType};
    // SAFETY: GRUB handed us this pointer in EBX with the multiboot2 magic in EAX; the structure
    // is identity-mapped and intact (nothing has been allocated yet).
    let bi = unsafe { BootInformation::load(info as *const BootInformationHeader) }
        .map_err(|_| "malformed multiboot2 information")?;
    let mmap = bi.memory_map_tag().ok_or("multiboot2 information has no memory map")?;
    let ram = mmap
        .memory_areas()
        .iter()
        .filter(|a| a.typ() == MemoryAreaType::Available)
        .map(|a| (a.start_address(), a.end_address()))
        .collect();
    let bundle = bi.module_tags().next().map(|m| (m.start_address() as u64, m.end_address() as u64));
    Ok(BootInfo { loader: Loader::Multiboot2, ram, bundle, info_range: (info, info + bi.total_size() as u64) })
}
