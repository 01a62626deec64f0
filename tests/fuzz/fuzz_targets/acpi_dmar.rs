//! The ACPI tables the hypervisor reads to find the IOMMU: the RSDT/XSDT's table list
//! (`hv_core::iommu::sdt::root_entries`) and the DMAR (`hv_core::iommu::dmar::parse`). The first
//! byte picks the parser (bit 0: root table, bit 1: XSDT rather than RSDT), the rest is the
//! table. Whatever the bytes, no panic; an accepted table is signed, checksummed and within its
//! own length; an accepted DMAR has 1..=MAX_UNITS units with page-aligned register bases, its
//! scopes within MAX_SCOPES and paths of whole (device, function) pairs; looking a device up
//! never panics and names an existing unit.
#![no_main]

use hv_abi::pci::Bdf;
use hv_core::iommu::{dmar, sdt};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, table)) = data.split_first() else { return };
    if selector & 1 == 1 {
        let xsdt = selector & 2 != 0;
        match sdt::root_entries(table, xsdt) {
            Ok(entries) => {
                let len = u32::from_le_bytes(table[4..8].try_into().unwrap()) as usize;
                assert!(len >= sdt::HEADER_LEN && len <= table.len());
                assert_eq!(&table[..4], if xsdt { b"XSDT" } else { b"RSDT" });
                assert_eq!(table[..len].iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
                assert_eq!(entries.len(), (len - sdt::HEADER_LEN) / if xsdt { 8 } else { 4 });
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
        return;
    }
    match dmar::parse(table) {
        Ok(d) => {
            assert_eq!(&table[..4], dmar::SIGNATURE);
            assert!(!d.units.is_empty() && d.units.len() <= dmar::MAX_UNITS);
            assert!(d.units.iter().map(|u| u.scopes.len()).sum::<usize>() <= dmar::MAX_SCOPES);
            for u in &d.units {
                assert!(u.register_base != 0 && u.register_base & 0xfff == 0);
            }
            for s in table.iter().take(64) {
                let bdf = Bdf::from_u16(u16::from(*s) << 3 | u16::from(selector >> 1));
                if let Some(i) = d.unit_for(bdf) {
                    assert!(i < d.units.len());
                }
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
