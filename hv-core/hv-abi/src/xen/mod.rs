//! Xen's HVM/PVH guest ABI as plain Rust data: the numbers and layouts an unmodified Linux
//! (running as a Xen PVH guest) uses when it talks to the hypervisor, for the hypervisor's HVM
//! support and for guests written here (`frontends/pvh-probe`).
//!
//! This is a separate namespace from the crate root: the native ABI of this hypervisor
//! ([`crate::Hypercall`] etc., made with `syscall`) uses its own numbers. Here:
//!
//! - Hypercalls are made with `vmmcall` (AMD) or `vmcall` (Intel) directly, or by calling slot
//!   `nr * 32` of a hypercall page: number in `rax` ([`nr`]), arguments in
//!   `rdi, rsi, rdx, r10, r8`, result in `rax`. A result in `[-4095, -1]` is `-errno`
//!   ([`errno`]).
//! - Pointer arguments are guest-virtual addresses (the guest's own page tables).
//! - Sub-operation numbers are modules named after Xen's prefixes ([`xenver`], [`xenmem`],
//!   [`hvmop`], [`vcpuop`], [`evtchnop`], [`gnttabop`], [`schedop`], ...).
//! - Structs are `#[repr(C)]`, `Pod`, with Xen's exact x86_64 size and field offsets; each is
//!   compared byte for byte with the C headers by `tests/xen_headers.rs`.
//!
//! Grant entries (v1) are the crate's [`crate::GrantEntry`], re-exported here as
//! [`GrantEntryV1`] with its flag bits as [`gtf`]. The xenstore ring page layout lives in
//! `shared-ring` (`shared_ring::wire::xenstore`), not here.

mod args;
pub mod errno;
mod hypercall;
mod shared_info;
mod start_info;

pub use args::*;
pub use hypercall::*;
pub use shared_info::*;
pub use start_info::*;

/// A v1 grant-table entry (`struct grant_entry_v1`, 8 bytes): `flags` u16, `domid` u16,
/// `frame` u32. The same type as the native ABI's.
pub use crate::layout::GrantEntry as GrantEntryV1;
/// `GTF_*` grant entry flags (same values as Xen's).
pub use crate::layout::gtf;

/// Xen's `domid_t`.
pub type DomId = u16;

/// The page size of every Xen interface (4 KiB), whatever the guest uses.
pub const XEN_PAGE_SIZE: usize = 4096;
/// `log2(XEN_PAGE_SIZE)`.
pub const XEN_PAGE_SHIFT: u32 = 12;
/// v1 grant entries per grant-table frame.
pub const GRANT_ENTRIES_V1_PER_FRAME: usize = XEN_PAGE_SIZE / core::mem::size_of::<GrantEntryV1>();

/// Special domain ids (`DOMID_*`).
pub mod domid {
    use super::DomId;
    /// The first id that is not a real domain.
    pub const FIRST_RESERVED: DomId = 0x7ff0;
    /// The caller.
    pub const SELF: DomId = 0x7ff0;
    pub const IO: DomId = 0x7ff1;
    pub const XEN: DomId = 0x7ff2;
    pub const COW: DomId = 0x7ff3;
    pub const INVALID: DomId = 0x7ff4;
    pub const IDLE: DomId = 0x7fff;
    pub const MASK: DomId = 0x7fff;
}

const _: () = assert!(core::mem::size_of::<GrantEntryV1>() == 8);
const _: () = assert!(GRANT_ENTRIES_V1_PER_FRAME == 512);
const _: () = assert!(1 << XEN_PAGE_SHIFT == XEN_PAGE_SIZE);
