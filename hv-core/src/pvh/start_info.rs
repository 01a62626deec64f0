//! The PVH start-of-day structures (`xen/include/public/arch-x86/hvm/start_info.h`, version 1)
//! and the boot-info page built from a [`Plan`].
//!
//! The page holds, in this order: `hvm_start_info` (56 bytes), the module list (one entry, the
//! initrd, or none), the memory map, and the NUL-terminated kernel command line. Every field is
//! 8-byte aligned. The page lies in a range the memory map marks reserved, so the guest cannot
//! reuse it before it has read it (see [`crate::pvh::layout`]).

use alloc::vec::Vec;

use super::layout::{Plan, PlanError};

// The structures themselves are the ABI's (one home: `hv_abi::xen`, checked against Xen's
// header there); this file builds them.
pub use hv_abi::xen::{HVM_START_MAGIC, HvmMemmapEntry, HvmModlistEntry, HvmStartInfo, memmap_type};

/// The structure version we produce (adds the memory map).
pub const HVM_START_VERSION: u32 = 1;

/// The boot-info page(s): copy `bytes` to guest-physical `gpa`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootInfoPages {
    /// Where the bytes go (= [`Plan::start_info`]).
    pub gpa: u64,
    /// `hvm_start_info`, module list, memory map, command line; page-rounded length.
    pub bytes: Vec<u8>,
}

/// Builds the boot-info page for `plan`: `cmdline` (without NUL; it must be the length the plan
/// was made for and contain no NUL byte) and the initrd module if the plan placed one.
pub fn build_boot_info(plan: &Plan, cmdline: &[u8]) -> Result<BootInfoPages, PlanError> {
    if cmdline.len() as u64 != plan.cmdline.len.saturating_sub(1) || cmdline.contains(&0) {
        return Err(PlanError::CmdlineMismatch);
    }
    let base = plan.start_info;
    let mut bytes = alloc::vec![0u8; usize::try_from(plan.boot_info_len).map_err(|_| PlanError::InconsistentPlan)?];
    let modules: Vec<HvmModlistEntry> = plan
        .initrd
        .iter()
        .map(|r| HvmModlistEntry { paddr: r.gpa, size: r.len, cmdline_paddr: 0, reserved: 0 })
        .collect();
    let info = HvmStartInfo {
        magic: HVM_START_MAGIC,
        version: HVM_START_VERSION,
        flags: 0,
        nr_modules: modules.len() as u32,
        modlist_paddr: if modules.is_empty() { 0 } else { plan.modlist },
        cmdline_paddr: plan.cmdline.gpa,
        rsdp_paddr: plan.rsdp,
        memmap_paddr: plan.memmap,
        memmap_entries: u32::try_from(plan.memmap_entries.len()).map_err(|_| PlanError::InconsistentPlan)?,
        reserved: 0,
    };
    // Copies `src` to guest-physical `gpa`, which must lie inside the page(s).
    let mut put = |gpa: u64, src: &[u8]| {
        let at = usize::try_from(gpa.checked_sub(base)?).ok()?;
        bytes.get_mut(at..at.checked_add(src.len())?)?.copy_from_slice(src);
        Some(())
    };
    put(base, bytemuck::bytes_of(&info))
        .and_then(|()| put(plan.modlist, bytemuck::cast_slice(&modules)))
        .and_then(|()| put(plan.memmap, bytemuck::cast_slice(&plan.memmap_entries)))
        // Including the NUL: the page starts zeroed, and this also checks that it fits.
        .and_then(|()| put(plan.cmdline.gpa, &[cmdline, &[0]].concat()))
        .ok_or(PlanError::InconsistentPlan)?;
    Ok(BootInfoPages { gpa: base, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pvh::layout::{PlanInput, plan};

    const MIB: u64 = 1 << 20;
    const CMDLINE: &[u8] = b"console=hvc0 earlyprintk=xen rdinit=/init";

    fn a_plan(initrd_len: u64) -> Plan {
        plan(&PlanInput {
            ram_bytes: 256 * MIB,
            kernel: 16 * MIB..0x4a0_0000,
            cmdline_len: CMDLINE.len() as u64,
            initrd_len,
            acpi_len: crate::pvh::acpi::len(1),
            special_pages: 2,
        })
        .unwrap()
    }

    /// Reads a `T` at guest-physical `gpa` out of the page.
    fn read<T: bytemuck::Pod>(page: &BootInfoPages, gpa: u64) -> T {
        let at = (gpa - page.gpa) as usize;
        bytemuck::pod_read_unaligned(&page.bytes[at..at + size_of::<T>()])
    }

    #[test]
    fn sizes_match_the_abi() {
        assert_eq!(size_of::<HvmStartInfo>(), 56);
        assert_eq!(size_of::<HvmModlistEntry>(), 32);
        assert_eq!(size_of::<HvmMemmapEntry>(), 24);
    }

    #[test]
    fn boot_info_parses_back() {
        let plan = a_plan(20 * MIB);
        let page = build_boot_info(&plan, CMDLINE).unwrap();
        assert_eq!(page.gpa, plan.start_info);
        assert_eq!(page.bytes.len() as u64, plan.boot_info_len);
        let info: HvmStartInfo = read(&page, page.gpa);
        assert_eq!((info.magic, info.version, info.flags, info.reserved), (0x336e_c578, 1, 0, 0));
        assert_eq!(info.rsdp_paddr, plan.acpi.gpa);
        // The guest finds everything through the addresses in the structure, as Linux does.
        assert_eq!(info.nr_modules, 1);
        let module: HvmModlistEntry = read(&page, info.modlist_paddr);
        assert_eq!((module.paddr, module.size, module.cmdline_paddr), (74 * MIB, 20 * MIB, 0));
        let memmap: Vec<HvmMemmapEntry> =
            (0..u64::from(info.memmap_entries)).map(|i| read(&page, info.memmap_paddr + 24 * i)).collect();
        assert_eq!(memmap, plan.memmap_entries);
        let at = (info.cmdline_paddr - page.gpa) as usize;
        let cmdline = &page.bytes[at..];
        assert_eq!(&cmdline[..CMDLINE.len()], CMDLINE);
        assert_eq!(cmdline[CMDLINE.len()], 0);
        // Everything the guest reads is in the page and below 1 GiB.
        assert!(page.gpa + page.bytes.len() as u64 <= 1 << 30);
    }

    #[test]
    fn no_initrd_means_no_module() {
        let plan = a_plan(0);
        let page = build_boot_info(&plan, CMDLINE).unwrap();
        let info: HvmStartInfo = read(&page, page.gpa);
        assert_eq!((info.nr_modules, info.modlist_paddr), (0, 0));
        assert!(page.bytes[56..88].iter().all(|&b| b == 0));
    }

    #[test]
    fn rejects_a_different_command_line_or_a_broken_plan() {
        let plan = a_plan(0);
        assert_eq!(build_boot_info(&plan, b"short"), Err(PlanError::CmdlineMismatch));
        let mut with_nul = CMDLINE.to_vec();
        with_nul[3] = 0;
        assert_eq!(build_boot_info(&plan, &with_nul), Err(PlanError::CmdlineMismatch));
        let mut broken = plan.clone();
        broken.cmdline.gpa = broken.start_info + broken.boot_info_len - 4;
        assert_eq!(build_boot_info(&broken, CMDLINE), Err(PlanError::InconsistentPlan));
        let mut broken = plan;
        broken.memmap = 0;
        assert_eq!(build_boot_info(&broken, CMDLINE), Err(PlanError::InconsistentPlan));
    }
}
