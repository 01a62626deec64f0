//! VT-d in-memory structures (spec §9), legacy translation mode: a 4 KiB root table of 256
//! 128-bit root entries (one per bus) pointing at 4 KiB context tables of 256 128-bit context
//! entries (one per device.function), each pointing at second-level page tables (§9.8, like
//! x86 page tables: 512 entries of 64 bits per level, bit 0 read, bit 1 write).

/// A root entry (§9.1): present, context-table pointer in bits 12-63 of the low qword.
pub fn root_entry(context_table: u64) -> [u64; 2] {
    [(context_table & ADDR) | 1, 0]
}

/// Address bits of a table pointer or page frame (bits 12-51).
pub const ADDR: u64 = 0x000f_ffff_ffff_f000;

/// Second-level paging depth, from the address width the unit supports (CAP.SAGAW).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Levels {
    /// 39-bit device addresses (SAGAW bit 1, AW = 1).
    Three,
    /// 48-bit device addresses (SAGAW bit 2, AW = 2).
    Four,
}

impl Levels {
    /// The deepest walk the unit supports (fewer levels would limit device addresses to 512
    /// GiB; both reach every machine address the hypervisor manages). `None`: neither.
    pub fn from_sagaw(sagaw: u8) -> Option<Self> {
        if sagaw & 0b100 != 0 {
            Some(Self::Four)
        } else if sagaw & 0b010 != 0 {
            Some(Self::Three)
        } else {
            None
        }
    }

    pub fn count(self) -> u32 {
        match self {
            Self::Three => 3,
            Self::Four => 4,
        }
    }

    /// The context entry's AW field.
    pub fn aw(self) -> u64 {
        match self {
            Self::Three => 1,
            Self::Four => 2,
        }
    }

    /// One past the highest device address the walk translates.
    pub fn limit(self) -> u64 {
        1 << (12 + 9 * self.count())
    }
}

/// A context entry (§9.3): present, translation type 00 (untranslated requests go through the
/// second-level tables at `sl_root`; translated requests and ATS are refused), fault
/// processing enabled, address width for `levels`, domain id `did`.
pub fn context_entry(sl_root: u64, levels: Levels, did: u16) -> [u64; 2] {
    [(sl_root & ADDR) | 1, levels.aw() | (did as u64) << 8]
}

/// Second-level entry bits.
pub const SL_READ: u64 = 1 << 0;
pub const SL_WRITE: u64 = 1 << 1;

/// A second-level entry pointing at the next table (read and write allowed through it; the
/// leaf decides).
pub fn sl_table(next: u64) -> u64 {
    (next & ADDR) | SL_READ | SL_WRITE
}

/// A 4 KiB second-level leaf mapping `frame` read-write.
pub fn sl_page(frame: u64) -> u64 {
    (frame & ADDR) | SL_READ | SL_WRITE
}

/// Index into the table at `level` (1 = leaf) for device address `iova`.
pub fn sl_index(iova: u64, level: u32) -> usize {
    ((iova >> (12 + 9 * (level - 1))) & 511) as usize
}

/// Source id of a request (the requester's bus/device/function) as fault records give it.
pub fn bdf_of_source(sid: u16) -> hv_abi::pci::Bdf {
    hv_abi::pci::Bdf::from_u16(sid)
}

/// A primary fault record (§10.4.14), decoded from its two qwords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultRecord {
    /// Requester id (bus << 8 | dev << 3 | func).
    pub source: u16,
    /// The faulting page's device address (bits 12-63 of the low qword).
    pub address: u64,
    /// Fault reason (§7.1.3, e.g. 0x2: context entry not present, 0x5/0x6: write/read not
    /// permitted by the second-level entry, 0x4..0x7 second-level walk faults).
    pub reason: u8,
    /// A read (else a write).
    pub read: bool,
    /// The low qword as recorded (an interrupt fault's index is in its bits 63:48).
    pub raw_lo: u64,
}

impl FaultRecord {
    /// `None` when the record's F bit (127) is clear (no fault recorded there).
    pub fn decode(lo: u64, hi: u64) -> Option<Self> {
        (hi >> 63 != 0).then_some(Self {
            source: hi as u16,
            address: lo & !0xfff,
            reason: (hi >> 32) as u8,
            // T1 (bit 126): 0 = write, 1 = read (or AtomicOp).
            read: (hi >> 62) & 1 != 0,
            raw_lo: lo,
        })
    }
}

/// What a fault reason code means (spec Appendix A, the ones a second-level-only setup gives).
pub fn reason_text(reason: u8) -> &'static str {
    match reason {
        0x1 => "root entry not present",
        0x2 => "context entry not present (the device is nobody's)",
        0x3 => "invalid context entry",
        0x4 => "address beyond the domain's address width",
        0x5 => "write not permitted",
        0x6 => "read not permitted",
        0x7 => "second-level table not present (address outside the domain's memory)",
        0xa..=0xc => "reserved bits set in a second-level entry",
        _ => "other remapping fault",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_encode_per_the_spec() {
        assert_eq!(root_entry(0x1234_5000), [0x1234_5001, 0]);
        assert_eq!(root_entry(0x1234_5fff), [0x1234_5001, 0], "low bits never leak into flags");
        assert_eq!(context_entry(0x8000, Levels::Three, 7), [0x8001, 0x701]);
        assert_eq!(context_entry(0x8000, Levels::Four, 0xffff), [0x8001, 0xff_ff02]);
        assert_eq!(sl_page(0xabc_d000), 0xabc_d003);
        assert_eq!(sl_table(0x7000), 0x7003);
        assert_eq!(sl_index(0x4020_1000, 1), 0x001);
        assert_eq!(sl_index(0x4020_1000, 2), 0x001);
        assert_eq!(sl_index(0x4020_1000, 3), 0x001);
        assert_eq!(sl_index(0x80_0000_0000, 4), 1);
    }

    #[test]
    fn levels_follow_sagaw() {
        assert_eq!(Levels::from_sagaw(0b0010), Some(Levels::Three)); // QEMU's default (aw-bits=39)
        assert_eq!(Levels::from_sagaw(0b0110), Some(Levels::Four));
        assert_eq!(Levels::from_sagaw(0b0001), None, "2-level (30-bit) only");
        assert_eq!(Levels::Three.limit(), 1 << 39);
        assert_eq!(Levels::Four.limit(), 1 << 48);
    }

    #[test]
    fn fault_records_decode() {
        // Device 00:03.0 wrote to 0x1234_5678: second-level table not present.
        let hi = 1 << 63 | 0x7u64 << 32 | 0x18;
        let f = FaultRecord::decode(0x1234_5000, hi).unwrap();
        assert_eq!(f, FaultRecord { source: 0x18, address: 0x1234_5000, reason: 7, read: false, raw_lo: 0x1234_5000 });
        assert_eq!(bdf_of_source(f.source), hv_abi::pci::Bdf { bus: 0, dev: 3, func: 0 });
        assert!(FaultRecord::decode(0x1000, 1 << 62 | 1 << 63).unwrap().read);
        assert_eq!(FaultRecord::decode(0x1000, 0x7u64 << 32), None, "F clear: no record");
        assert_eq!(reason_text(2), "context entry not present (the device is nobody's)");
    }
}
