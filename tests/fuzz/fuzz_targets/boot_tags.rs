//! The boot tags GRUB (or any multiboot2 loader) hands the hypervisor from firmware: the UEFI
//! memory map (tag 17's payload, `hv_core::efi_memory_map::usable_ranges`) and an ACPI RSDP
//! (tags 14/15, PVH's `rsdp_paddr`: `hv_core::acpi_root::parse`). The first byte picks the parser,
//! the rest is the payload. Whatever the bytes, no panic; accepted RAM is sorted, disjoint,
//! non-empty and inside the descriptors' reach; an accepted RSDP carries its signature, sound
//! checksums and at least one table address.
#![no_main]

use hv_core::acpi_root;
use hv_core::efi_memory_map::{self, DESC_MIN_SIZE, MAX_DESCRIPTORS};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, payload)) = data.split_first() else { return };
    if selector & 1 == 0 {
        match efi_memory_map::usable_ranges(payload) {
            Ok(ranges) => {
                let descs = (payload.len() - 8) / DESC_MIN_SIZE;
                assert!(ranges.len() <= descs.min(MAX_DESCRIPTORS), "more ranges than descriptors");
                for &(s, e) in &ranges {
                    assert!(s < e, "an empty or inverted range");
                }
                for w in ranges.windows(2) {
                    assert!(w[0].1 < w[1].0, "ranges unsorted, overlapping or touching (not merged)");
                }
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    } else {
        match acpi_root::parse(payload) {
            Ok(root) => {
                assert_eq!(&payload[..8], acpi_root::SIGNATURE);
                assert_eq!(payload[..acpi_root::V1_LEN].iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
                if root.revision >= 2 {
                    assert!(payload.len() >= acpi_root::V2_LEN);
                    assert_eq!(payload[..acpi_root::V2_LEN].iter().fold(0u8, |a, &b| a.wrapping_add(b)), 0);
                } else {
                    assert!(root.xsdt.is_none());
                }
                assert!(root.rsdt != 0 || root.xsdt.is_some());
                assert!(root.root_table() != 0);
            }
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
