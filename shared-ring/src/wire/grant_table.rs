//! Grant table v1 entries (`xen/include/public/grant_table.h`, `struct grant_entry_v1`).

use core::fmt;

use super::bytes::{put_u16, put_u32, u16_at, u32_at};

/// `GTF_invalid`.
pub const GTF_INVALID: u16 = 0;
/// `GTF_permit_access`.
pub const GTF_PERMIT_ACCESS: u16 = 1;
/// `GTF_accept_transfer`.
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
/// `GTF_transitive` (v2 only).
pub const GTF_TRANSITIVE: u16 = 3;
/// `GTF_type_mask`.
pub const GTF_TYPE_MASK: u16 = 3;
/// `GTF_readonly`: the grantee may only read.
pub const GTF_READONLY: u16 = 1 << 2;
/// `GTF_reading` (set by Xen while mapped for reading).
pub const GTF_READING: u16 = 1 << 3;
/// `GTF_writing` (set by Xen while mapped for writing).
pub const GTF_WRITING: u16 = 1 << 4;
/// `GTF_PWT`.
pub const GTF_PWT: u16 = 1 << 5;
/// `GTF_PCD`.
pub const GTF_PCD: u16 = 1 << 6;
/// `GTF_PAT`.
pub const GTF_PAT: u16 = 1 << 7;
/// `GTF_sub_page` (v2 only).
pub const GTF_SUB_PAGE: u16 = 1 << 8;
/// `GTF_transfer_committed` (accept_transfer entries; same bit as readonly).
pub const GTF_TRANSFER_COMMITTED: u16 = 1 << 2;
/// `GTF_transfer_completed` (accept_transfer entries; same bit as reading).
pub const GTF_TRANSFER_COMPLETED: u16 = 1 << 3;
/// `GNTTAB_NR_RESERVED_ENTRIES`: refs 0..8 are reserved (0 console, 1 xenstore).
pub const NR_RESERVED_ENTRIES: u32 = 8;
/// Entries per 4 KiB grant-table frame.
pub const ENTRIES_PER_FRAME: usize = 4096 / 8;

/// `struct grant_entry_v1`: what a guest grants to whom.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GrantEntryV1 {
    /// `GTF_*` type and flags.
    pub flags: u16,
    /// The grantee domain.
    pub domid: u16,
    /// The granted frame (GFN).
    pub frame: u32,
}

/// What a guest put in a v1 grant entry that the v1 ABI does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantError {
    /// `GTF_transitive` is a v2-only type.
    TransitiveInV1,
    /// `GTF_sub_page` is a v2-only flag.
    SubPageInV1,
    /// Bits above `GTF_sub_page`.
    UnknownFlags { flags: u16 },
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            GrantError::TransitiveInV1 => write!(f, "transitive grant in a v1 table"),
            GrantError::SubPageInV1 => write!(f, "sub-page grant in a v1 table"),
            GrantError::UnknownFlags { flags } => write!(f, "unknown grant flags {flags:#x}"),
        }
    }
}

impl core::error::Error for GrantError {}

impl GrantEntryV1 {
    /// Decode 8 bytes (infallible).
    pub fn from_raw(b: &[u8; 8]) -> Self {
        Self { flags: u16_at(b, 0), domid: u16_at(b, 2), frame: u32_at(b, 4) }
    }

    /// Encode.
    pub fn to_raw(&self) -> [u8; 8] {
        let mut b = [0; 8];
        put_u16(&mut b, 0, self.flags);
        put_u16(&mut b, 2, self.domid);
        put_u32(&mut b, 4, self.frame);
        b
    }

    /// Decode and validate.
    pub fn decode(b: &[u8; 8]) -> Result<Self, GrantError> {
        let entry = Self::from_raw(b);
        entry.validate()?;
        Ok(entry)
    }

    /// Reject v2-only types and flags and undefined bits.
    pub fn validate(&self) -> Result<(), GrantError> {
        if self.flags & !(GTF_SUB_PAGE | (GTF_SUB_PAGE - 1)) != 0 {
            return Err(GrantError::UnknownFlags { flags: self.flags });
        }
        if self.flags & GTF_TYPE_MASK == GTF_TRANSITIVE {
            return Err(GrantError::TransitiveInV1);
        }
        if self.flags & GTF_SUB_PAGE != 0 {
            return Err(GrantError::SubPageInV1);
        }
        Ok(())
    }

    /// The entry lets `grantee` map or copy its frame (`permit_access` for that domain).
    pub fn permits(&self, grantee: u16) -> bool {
        self.flags & GTF_TYPE_MASK == GTF_PERMIT_ACCESS && self.domid == grantee
    }

    /// The grantee may only read.
    pub fn is_readonly(&self) -> bool {
        self.flags & GTF_READONLY != 0
    }

    /// Xen has the frame mapped (reading or writing): the grant cannot be ended.
    pub fn is_in_use(&self) -> bool {
        self.flags & (GTF_READING | GTF_WRITING) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_entry_layout_and_rules() {
        assert_eq!(size_of::<GrantEntryV1>(), 8);
        let e = GrantEntryV1 { flags: GTF_PERMIT_ACCESS | GTF_READONLY, domid: 3, frame: 0x1234 };
        assert_eq!(e.to_raw(), [5, 0, 3, 0, 0x34, 0x12, 0, 0]);
        assert_eq!(GrantEntryV1::decode(&e.to_raw()), Ok(e));
        assert!(e.permits(3) && !e.permits(4) && e.is_readonly() && !e.is_in_use());
        let t = GrantEntryV1 { flags: GTF_TRANSITIVE, ..e };
        assert_eq!(t.validate(), Err(GrantError::TransitiveInV1));
        let s = GrantEntryV1 { flags: GTF_PERMIT_ACCESS | GTF_SUB_PAGE, ..e };
        assert_eq!(s.validate(), Err(GrantError::SubPageInV1));
        let u = GrantEntryV1 { flags: 1 << 9, ..e };
        assert_eq!(u.validate(), Err(GrantError::UnknownFlags { flags: 1 << 9 }));
        assert!(GrantEntryV1 { flags: GTF_PERMIT_ACCESS | GTF_WRITING, ..e }.is_in_use());
    }
}
