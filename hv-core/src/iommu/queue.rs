//! Queued invalidation (VT-d spec §6.5.2): the 128-bit descriptors software puts in the
//! invalidation queue. Interrupt remapping needs it (the interrupt entry cache is invalidated
//! only through the queue), and once the queue is on, register-based invalidation must not be
//! used, so every invalidation goes through here.

/// Descriptors in the queue: one 4 KiB page (IQA.QS = 0: 2^(0 + 8) entries).
pub const DESCRIPTORS: usize = 256;

/// A descriptor: two qwords, low first.
pub type Descriptor = [u64; 2];

/// Context-cache invalidation, global (type 1, granularity 01).
pub fn context_cache_global() -> Descriptor {
    [0x1 | 0b01 << 4, 0]
}

/// IOTLB invalidation, global, draining reads (bit 7) and writes (bit 6) first (type 2,
/// granularity 01).
pub fn iotlb_global() -> Descriptor {
    [0x2 | 0b01 << 4 | 1 << 6 | 1 << 7, 0]
}

/// Interrupt entry cache invalidation, global (type 4, G clear).
pub fn interrupt_entries_global() -> Descriptor {
    [0x4, 0]
}

/// Invalidation wait (type 5) with status write (SW, bit 5): when every descriptor before it
/// has completed, the unit writes `data` to the 4-byte aligned `status` address. No interrupt
/// (IF clear): the hypervisor polls the status word.
pub fn wait(status: u64, data: u32) -> Descriptor {
    [0x5 | 1 << 5 | (data as u64) << 32, status & !3]
}

/// The Invalidation Queue Address register's value for a queue page at `page` (128-bit
/// descriptors, [`DESCRIPTORS`] of them).
pub fn iqa(page: u64) -> u64 {
    page & crate::iommu::entries::ADDR
}

/// The queue tail register's value after `index` descriptors (bits 18:4 hold the index).
pub fn tail(index: usize) -> u64 {
    ((index % DESCRIPTORS) as u64) << 4
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_encode_per_the_spec() {
        assert_eq!(context_cache_global(), [0x11, 0]);
        assert_eq!(iotlb_global(), [0xd2, 0]);
        assert_eq!(interrupt_entries_global(), [0x4, 0]);
        assert_eq!(wait(0x1234_5678, 7), [0x7_0000_0025, 0x1234_5678]);
        assert_eq!(wait(0x1003, 1)[1], 0x1000, "status address is dword aligned");
        assert_eq!(iqa(0xabc_d123), 0xabc_d000);
        assert_eq!(tail(3), 0x30);
        assert_eq!(tail(DESCRIPTORS + 1), 0x10, "the tail wraps with the queue");
    }

    #[test]
    fn no_descriptor_sets_both_status_write_and_interrupt() {
        // IF (bit 4) with SW (bit 5) is legal on hardware but aborts QEMU 7.2's model.
        let w = wait(0x1000, u32::MAX);
        assert_eq!(w[0] & 0xff, 0x25);
    }
}
