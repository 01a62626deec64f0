//! The guest's ACPI tables, built as one blob to be copied to a guest-physical `base`.
//!
//! | offset | table | notes |
//! |---|---|---|
//! | 0 | RSDP | revision 2, 36 bytes, both checksums, points at the XSDT (no RSDT) |
//! | 0x28 | XSDT | two entries: FADT, MADT |
//! | 8-aligned | FADT | revision 6 (276 bytes), `HW_REDUCED_ACPI`; DSDT and X_DSDT |
//! | 8-aligned | DSDT | header only, no AML |
//! | 8-aligned | MADT | one Processor Local x2APIC entry per vCPU |
//!
//! Choices, for an unmodified Linux 6.1 PVH guest with no emulated legacy hardware:
//!
//! * **FADT**: `HW_REDUCED_ACPI` (flags bit 20) makes Linux skip the PIT/HPET timer setup and
//!   the legacy PIC (`acpi_generic_reduced_hw_init`). IA-PC boot flags: VGA not present
//!   (bit 2), MSI not supported (bit 3, PVH has no MSI), CMOS RTC not present (bit 5); the 8042
//!   bit (1) and legacy-devices bit (0) stay clear, i.e. no 8042 and no ISA devices. Every
//!   PM-block, GPE, reset and sleep register is zero. No FACS (hardware-reduced). The
//!   hypervisor vendor identity is left 0 (optional).
//! * **MADT**: local APIC address 0xFEE00000, flags 0 (no dual 8259), and **only** type-9
//!   Processor Local x2APIC entries (x2APIC id = ACPI UID = vCPU index, enabled). No type-0
//!   Local APIC entries: the vCPU runs in x2APIC mode from reset, and Linux registers a CPU from
//!   *either* entry type; a type-0 and a type-9 entry for the same id would count the CPU twice
//!   on kernels without the 2023 "ignore x2APIC entries with id < 255 when LAPIC entries exist"
//!   fix (and be redundant on kernels with it). Linux accepts a MADT with x2APIC entries only
//!   (it fails only when there are neither), and ids below 255 are valid for every APIC driver.
//!   No I/O APIC entry: the guest gets no I/O APIC.
//! * **DSDT**: empty; there are no devices to describe.

use alloc::vec::Vec;

/// Offset of the RSDP in the blob.
pub const RSDP_OFFSET: u64 = 0;
/// OEM id in every table.
pub const OEM_ID: [u8; 6] = *b"HVRUST";
/// OEM table id in every table.
pub const OEM_TABLE_ID: [u8; 8] = *b"HVRUSTPV";
/// Creator id in every table.
pub const CREATOR_ID: [u8; 4] = *b"HVRS";
/// The local APIC physical address written in the MADT.
pub const LOCAL_APIC_ADDRESS: u32 = 0xFEE0_0000;

/// FADT flag: hardware-reduced ACPI.
pub const FADT_HW_REDUCED_ACPI: u32 = 1 << 20;
/// IA-PC boot architecture flag: no VGA.
pub const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
/// IA-PC boot architecture flag: MSI must not be enabled.
pub const IAPC_MSI_NOT_SUPPORTED: u16 = 1 << 3;
/// IA-PC boot architecture flag: no CMOS RTC.
pub const IAPC_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;

/// Size of the common table header.
pub const HEADER_LEN: usize = 36;
/// FADT revision 6 length.
pub const FADT_LEN: usize = 276;
/// RSDP (revision 2) length.
pub const RSDP_LEN: usize = 36;
/// MADT Processor Local x2APIC structure type.
pub const MADT_TYPE_LOCAL_X2APIC: u8 = 9;
/// Most vCPUs described (ids stay below 255, valid for every Linux APIC driver).
pub const MAX_CPUS: u32 = 255;

/// The RSDP's offset in the blob (it is at `base + rsdp_offset()`).
pub fn rsdp_offset() -> u64 {
    RSDP_OFFSET
}

/// The blob's length for `cpus` vCPUs (without building it).
pub fn len(cpus: u32) -> u64 {
    build(0, cpus).len() as u64
}

/// Builds the tables for a guest with `cpus` vCPUs, to be placed at guest-physical `base`
/// (table pointers are absolute; the 32-bit FADT.DSDT is 0 if the DSDT lies above 4 GiB).
/// `cpus` is clamped to `1..=MAX_CPUS`.
pub fn build(base: u64, cpus: u32) -> Vec<u8> {
    let mut blob = alloc::vec![0u8; RSDP_LEN];
    let xsdt = push_table(&mut blob, xsdt(&[0, 0]));
    let fadt = push_table(&mut blob, table(*b"FACP", 6, FADT_LEN));
    let dsdt = push_table(&mut blob, table(*b"DSDT", 2, HEADER_LEN));
    let madt = push_table(&mut blob, madt(cpus.clamp(1, MAX_CPUS)));
    let at = |offset: usize| base + offset as u64;

    put(&mut blob, xsdt + HEADER_LEN, &at(fadt).to_le_bytes());
    put(&mut blob, xsdt + HEADER_LEN + 8, &at(madt).to_le_bytes());

    let boot_arch = IAPC_VGA_NOT_PRESENT | IAPC_MSI_NOT_SUPPORTED | IAPC_CMOS_RTC_NOT_PRESENT;
    put(&mut blob, fadt + 40, &u32::try_from(at(dsdt)).unwrap_or(0).to_le_bytes()); // DSDT
    put(&mut blob, fadt + 109, &boot_arch.to_le_bytes()); // IAPC_BOOT_ARCH
    put(&mut blob, fadt + 112, &FADT_HW_REDUCED_ACPI.to_le_bytes()); // Flags
    put(&mut blob, fadt + 131, &[0]); // FADT minor version: 6.0
    put(&mut blob, fadt + 140, &at(dsdt).to_le_bytes()); // X_DSDT

    for offset in [xsdt, fadt, dsdt, madt] {
        let len = u32::from_le_bytes(blob[offset + 4..offset + 8].try_into().unwrap()) as usize;
        blob[offset + 9] = checksum(&blob[offset..offset + len]);
    }

    // RSDP: signature, checksum (first 20 bytes), OEM id, revision 2, RSDT address 0, length,
    // XSDT address, extended checksum (all 36 bytes).
    put(&mut blob, 0, b"RSD PTR ");
    put(&mut blob, 9, &OEM_ID);
    put(&mut blob, 15, &[2]);
    put(&mut blob, 20, &(RSDP_LEN as u32).to_le_bytes());
    put(&mut blob, 24, &at(xsdt).to_le_bytes());
    blob[8] = checksum(&blob[..20]);
    blob[32] = checksum(&blob[..RSDP_LEN]);
    blob
}

/// The byte that makes `bytes` sum to zero (mod 256), given that its own slot holds zero.
fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)))
}

fn put(blob: &mut [u8], offset: usize, bytes: &[u8]) {
    blob[offset..offset + bytes.len()].copy_from_slice(bytes);
}

/// Appends `table` at the next 8-byte boundary and returns its offset.
fn push_table(blob: &mut Vec<u8>, table: Vec<u8>) -> usize {
    blob.resize(blob.len().next_multiple_of(8), 0);
    let offset = blob.len();
    blob.extend_from_slice(&table);
    offset
}

/// A zeroed table of `len` bytes with its header filled in (checksum 0 for now).
fn table(signature: [u8; 4], revision: u8, len: usize) -> Vec<u8> {
    let mut t = alloc::vec![0u8; len];
    put(&mut t, 0, &signature);
    put(&mut t, 4, &(len as u32).to_le_bytes());
    t[8] = revision;
    put(&mut t, 10, &OEM_ID);
    put(&mut t, 16, &OEM_TABLE_ID);
    put(&mut t, 24, &1u32.to_le_bytes()); // OEM revision
    put(&mut t, 28, &CREATOR_ID);
    put(&mut t, 32, &1u32.to_le_bytes()); // creator revision
    t
}

fn xsdt(entries: &[u64]) -> Vec<u8> {
    let mut t = table(*b"XSDT", 1, HEADER_LEN + 8 * entries.len());
    for (i, e) in entries.iter().enumerate() {
        put(&mut t, HEADER_LEN + 8 * i, &e.to_le_bytes());
    }
    t
}

fn madt(cpus: u32) -> Vec<u8> {
    let mut t = table(*b"APIC", 4, HEADER_LEN + 8);
    put(&mut t, HEADER_LEN, &LOCAL_APIC_ADDRESS.to_le_bytes());
    // Flags (offset 40) stay 0: no PC-AT-compatible dual 8259.
    for id in 0..cpus {
        let mut e = [0u8; 16];
        e[0] = MADT_TYPE_LOCAL_X2APIC;
        e[1] = 16;
        put(&mut e, 4, &id.to_le_bytes()); // x2APIC id
        put(&mut e, 8, &1u32.to_le_bytes()); // flags: enabled
        put(&mut e, 12, &id.to_le_bytes()); // ACPI processor UID
        t.extend_from_slice(&e);
    }
    let len = t.len() as u32;
    put(&mut t, 4, &len.to_le_bytes());
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x3ff0_0000;

    fn u32_at(b: &[u8], o: usize) -> u32 {
        u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
    }
    fn u64_at(b: &[u8], o: usize) -> u64 {
        u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
    }
    fn sums_to_zero(b: &[u8]) -> bool {
        b.iter().fold(0u8, |s, &x| s.wrapping_add(x)) == 0
    }

    /// The table at guest-physical `gpa`: checks signature, length bounds and checksum.
    fn table_at<'a>(blob: &'a [u8], gpa: u64, signature: &[u8; 4]) -> &'a [u8] {
        let offset = (gpa - BASE) as usize;
        assert_eq!(&blob[offset..offset + 4], signature);
        let len = u32_at(blob, offset + 4) as usize;
        let t = &blob[offset..offset + len];
        assert!(sums_to_zero(t), "{} checksum", core::str::from_utf8(signature).unwrap());
        assert_eq!(&t[10..16], b"HVRUST");
        t
    }

    /// Follows RSDP → XSDT → tables as an OS does; returns (FADT, MADT, DSDT).
    fn walk(blob: &[u8]) -> (&[u8], &[u8], &[u8]) {
        let rsdp = &blob[rsdp_offset() as usize..][..RSDP_LEN];
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert!(sums_to_zero(&rsdp[..20]) && sums_to_zero(rsdp));
        assert_eq!((rsdp[15], u32_at(rsdp, 16), u32_at(rsdp, 20)), (2, 0, 36));
        let xsdt = table_at(blob, u64_at(rsdp, 24), b"XSDT");
        assert_eq!(xsdt.len(), HEADER_LEN + 16);
        let fadt = table_at(blob, u64_at(xsdt, 36), b"FACP");
        let madt = table_at(blob, u64_at(xsdt, 44), b"APIC");
        assert_eq!(u64::from(u32_at(fadt, 40)), u64_at(fadt, 140), "DSDT and X_DSDT agree");
        let dsdt = table_at(blob, u64_at(fadt, 140), b"DSDT");
        (fadt, madt, dsdt)
    }

    #[test]
    fn tables_parse_back() {
        let blob = build(BASE, 1);
        let (fadt, madt, dsdt) = walk(&blob);
        assert_eq!((fadt.len(), fadt[8], fadt[131]), (FADT_LEN, 6, 0));
        assert_eq!(u32_at(fadt, 112), 1 << 20, "flags: only HW_REDUCED_ACPI");
        let boot_arch = u16::from_le_bytes([fadt[109], fadt[110]]);
        assert_eq!(boot_arch, 0b10_1100, "no VGA, no MSI, no CMOS RTC; 8042 and legacy bits clear");
        assert_eq!(u32_at(fadt, 36), 0, "no FACS");
        assert_eq!(u64_at(fadt, 132), 0, "no X_FACS");
        assert!(fadt[46..109].iter().all(|&b| b == 0), "no SCI, SMI, PM blocks, GPEs, PM timer");
        assert!(fadt[116..129].iter().all(|&b| b == 0), "no reset register");
        assert!(fadt[148..276].iter().all(|&b| b == 0), "no extended PM blocks, sleep registers");
        assert_eq!(dsdt.len(), HEADER_LEN);
        assert_eq!(madt.len(), 44 + 16);
        assert_eq!((u32_at(madt, 36), u32_at(madt, 40)), (0xFEE0_0000, 0));
        assert_eq!(&madt[44..48], &[9, 16, 0, 0]);
        assert_eq!((u32_at(madt, 48), u32_at(madt, 52), u32_at(madt, 56)), (0, 1, 0));
    }

    #[test]
    fn one_x2apic_entry_per_cpu() {
        for cpus in [0, 1, 2, 4, 255, 1000] {
            let blob = build(BASE, cpus);
            let (_, madt, _) = walk(&blob);
            let entries: Vec<_> = madt[44..].chunks(16).collect();
            assert_eq!(entries.len() as u32, cpus.clamp(1, MAX_CPUS));
            for (i, e) in entries.iter().enumerate() {
                assert_eq!((e[0], e[1]), (MADT_TYPE_LOCAL_X2APIC, 16));
                assert_eq!((u32_at(e, 4), u32_at(e, 8), u32_at(e, 12)), (i as u32, 1, i as u32));
            }
            assert_eq!(len(cpus), blob.len() as u64);
        }
    }

    #[test]
    fn pointers_follow_the_base() {
        let a = build(BASE, 1);
        let b = build(0x1_0000_0000, 1);
        assert_eq!(a.len(), b.len());
        assert_eq!(u64_at(&b, 24), u64_at(&a, 24) - BASE + 0x1_0000_0000);
        assert_eq!(u64_at(&a, 24) % 8, 0);
        // Above 4 GiB only X_DSDT can point at the DSDT.
        let high = 0x1_0000_0000;
        let xsdt = (u64_at(&b, 24) - high) as usize;
        let fadt = (u64_at(&b, xsdt + 36) - high) as usize;
        assert_eq!(u32_at(&b, fadt + 40), 0);
        assert_eq!(u64_at(&b, fadt + 140) % 8, 0);
    }
}
