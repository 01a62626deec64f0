//! Grant table v1 entries (`xen/include/public/grant_table.h`, `struct grant_entry_v1`).
//!
//! The entry type is the hypervisor's own, [`hv_abi::GrantEntry`]: one type for what a domain
//! writes in its table and what hv-core reads, checked here byte for byte against Xen's header
//! (`tests/xen_headers.rs`). This module gives it and its flags Xen's names.

use hv_abi::gtf;

pub use hv_abi::{GrantEntry as GrantEntryV1, GrantError};

/// `GTF_invalid`.
pub const GTF_INVALID: u16 = gtf::INVALID;
/// `GTF_permit_access`.
pub const GTF_PERMIT_ACCESS: u16 = gtf::PERMIT_ACCESS;
/// `GTF_accept_transfer`.
pub const GTF_ACCEPT_TRANSFER: u16 = gtf::ACCEPT_TRANSFER;
/// `GTF_transitive` (v2 only).
pub const GTF_TRANSITIVE: u16 = gtf::TRANSITIVE;
/// `GTF_type_mask`.
pub const GTF_TYPE_MASK: u16 = gtf::TYPE_MASK;
/// `GTF_readonly`: the grantee may only read.
pub const GTF_READONLY: u16 = gtf::READONLY;
/// `GTF_reading` (set by the hypervisor while mapped for reading).
pub const GTF_READING: u16 = gtf::READING;
/// `GTF_writing` (set by the hypervisor while mapped for writing).
pub const GTF_WRITING: u16 = gtf::WRITING;
/// `GTF_PWT`.
pub const GTF_PWT: u16 = gtf::PWT;
/// `GTF_PCD`.
pub const GTF_PCD: u16 = gtf::PCD;
/// `GTF_PAT`.
pub const GTF_PAT: u16 = gtf::PAT;
/// `GTF_sub_page` (v2 only).
pub const GTF_SUB_PAGE: u16 = gtf::SUB_PAGE;
/// `GTF_transfer_committed` (accept_transfer entries; same bit as readonly).
pub const GTF_TRANSFER_COMMITTED: u16 = gtf::TRANSFER_COMMITTED;
/// `GTF_transfer_completed` (accept_transfer entries; same bit as reading).
pub const GTF_TRANSFER_COMPLETED: u16 = gtf::TRANSFER_COMPLETED;
/// `GNTTAB_NR_RESERVED_ENTRIES`: refs 0..8 are reserved (0 console, 1 xenstore).
pub const NR_RESERVED_ENTRIES: u32 = 8;
/// Entries per 4 KiB grant-table frame.
pub const ENTRIES_PER_FRAME: usize = 4096 / 8;

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
        // One type: what the hypervisor reads is what the ring code builds.
        let same: hv_abi::GrantEntry = e;
        assert_eq!(same, e);
    }
}
