//! Interrupt remapping (VT-d spec §5.1, §9.10): the interrupt remapping table the hardware
//! reads for every remappable-format MSI, and the MSI messages that name its entries.
//!
//! The hypervisor gives each assigned device one vector (`DEVICE_VECTOR_BASE..`); the table
//! entry with the vector's own number as its index holds that vector, the boot CPU as its
//! destination, and the device's requester id as the only source allowed to use it. The device
//! is programmed with a remappable-format message naming that index. A device that writes any
//! other message is refused by the hardware: a compatibility-format one (the hypervisor leaves
//! GSTS.CFIS clear), an index whose entry is not present, or another device's entry (source-id
//! verification).

/// Entries in the table: one per possible vector, so an entry's index is its vector.
pub const ENTRIES: usize = 256;
/// IRTA.S: the table holds 2^(S + 1) entries.
pub const SIZE_FIELD: u64 = 7;
const _: () = assert!(1 << (SIZE_FIELD + 1) == ENTRIES);

/// The Interrupt Remapping Table Address register's value (§10.4.29) for a table at `table`
/// (4 KiB aligned) of [`ENTRIES`] entries, xAPIC mode (EIME clear).
pub fn irta(table: u64) -> u64 {
    (table & crate::iommu::entries::ADDR) | SIZE_FIELD
}

/// An interrupt remapping table entry (§9.10, remapped format): present, fault processing on,
/// physical destination `apic_id` (xAPIC: bits 47:40), edge, fixed delivery of `vector`; only
/// requests whose source id is `sid` (all 16 bits compared: SVT = 01, SQ = 00) may use it.
pub fn irte(vector: u8, apic_id: u8, sid: u16) -> [u64; 2] {
    let lo = 1 | (vector as u64) << 16 | (apic_id as u64) << 40;
    let hi = sid as u64 | 0b01 << 18;
    [lo, hi]
}

/// The MSI address of a remappable-format message naming entry `handle` (§5.1.5.2): the
/// interrupt window, handle[14:0] in bits 19:5, format bit 4 set, SHV (bit 3) clear,
/// handle[15] in bit 2. Its data word is 0 (no subhandle).
pub fn remappable_msi_address(handle: u16) -> u32 {
    0xfee0_0000 | ((handle as u32) & 0x7fff) << 5 | 1 << 4 | ((handle as u32) >> 15 & 1) << 2
}

/// What an interrupt-remapping fault reason (§7.1.3, 0x20–0x27) means.
pub fn reason_text(reason: u8) -> Option<&'static str> {
    Some(match reason {
        0x20 => "malformed remappable-format request",
        0x21 => "interrupt index beyond the table (no such entry)",
        0x22 => "interrupt entry not present (no vector was given there)",
        0x23 => "interrupt table unreadable",
        0x24 => "reserved bits set in the interrupt entry",
        0x25 => "compatibility-format interrupt blocked",
        0x26 => "source-id verification failed (another device's interrupt entry)",
        0x27 => "posted-interrupt failure",
        _ => return None,
    })
}

/// The interrupt index of an interrupt-remapping fault record (FI bits 63:48 of its low
/// qword), or `None` for a DMA fault.
pub fn fault_index(reason: u8, lo: u64) -> Option<u16> {
    reason_text(reason).map(|_| (lo >> 48) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_and_messages_encode_per_the_spec() {
        // Vector 0x50 to APIC 0, only from 00:03.0 (source id 0x18).
        assert_eq!(irte(0x50, 0, 0x18), [0x0050_0001, 0x4_0018]);
        assert_eq!(irte(0xff, 0x12, 0xffff), [0x1200_00ff_0001, 0x4_ffff]);
        assert_eq!(remappable_msi_address(0), 0xfee0_0010);
        assert_eq!(remappable_msi_address(0x50), 0xfee0_0a10);
        assert_eq!(remappable_msi_address(0x7fff), 0xfeef_fff0);
        assert_eq!(remappable_msi_address(0x8000), 0xfee0_0014, "handle bit 15 goes to address bit 2");
        assert_eq!(irta(0x1234_5000), 0x1234_5007);
        assert_eq!(irta(0x1234_5fff), 0x1234_5007, "low bits never leak into the size");
    }

    #[test]
    fn a_remappable_message_never_looks_like_a_compatibility_one() {
        for h in [0u16, 1, 0x57, 0x7fff, 0xffff] {
            let a = remappable_msi_address(h);
            assert_eq!(a >> 20, 0xfee, "inside the interrupt window");
            assert_ne!(a & 1 << 4, 0, "format bit set");
            assert_eq!(a & 1 << 3, 0, "no subhandle");
        }
    }

    #[test]
    fn interrupt_faults_are_told_apart_from_dma_faults() {
        assert_eq!(fault_index(0x26, 0x0057_0000_0000_0000), Some(0x57));
        assert_eq!(fault_index(0x7, 0x0057_0000_0000_0000), None, "a DMA fault's address is not an index");
        assert_eq!(reason_text(0x25), Some("compatibility-format interrupt blocked"));
        assert_eq!(reason_text(0x5), None);
    }
}
