//! Address-space layout of a domain and the `#[repr(C)]` structures shared with the hypervisor.
//!
//! A domain's RAM is one physically contiguous block mapped at [`DOMAIN_BASE`]:
//!
//! | virtual address | content | access |
//! |---|---|---|
//! | `DOMAIN_BASE` | [`StartInfo`] page | read-only |
//! | `DOMAIN_BASE + 0x1000` | [`SharedInfo`] page | read-write |
//! | `DOMAIN_BASE + IMAGE_OFFSET` | the ELF image (domains link here) | per segment |
//! | image end … `stack_bottom - 4 KiB` | heap | read-write, no-exec |
//! | `stack_bottom - 4 KiB` | guard page | unmapped |
//! | `stack_bottom` … `DOMAIN_BASE + memory` | stack ([`STACK_SIZE`]) | read-write, no-exec |
//!
//! Everything else in the address space (the hypervisor included) is inaccessible from ring 3.

use core::sync::atomic::AtomicU64;

/// Where every domain's RAM starts (1 GiB). Domain binaries are linked at
/// `DOMAIN_BASE + IMAGE_OFFSET`.
pub const DOMAIN_BASE: u64 = 0x4000_0000;
/// Highest end of domain RAM (`DOMAIN_BASE + 1 GiB`).
pub const DOMAIN_LIMIT: u64 = 0x8000_0000;
pub const START_INFO_OFFSET: u64 = 0;
pub const SHARED_INFO_OFFSET: u64 = 0x1000;
/// Offset of the ELF image inside domain RAM.
pub const IMAGE_OFFSET: u64 = 0x10000;
pub const STACK_SIZE: u64 = 64 * 1024;
pub const PAGE_SIZE: u64 = 4096;

pub const START_INFO_MAGIC: u64 = 0x6876_2d73_7461_7274; // "hv-start"

/// Flags in [`StartInfo::flags`].
pub mod flags {
    /// The domain may use `domctl` (Dom0).
    pub const PRIVILEGED: u64 = 1 << 0;
}

/// Handed to a domain at entry (pointer in `rdi`); read-only for the domain.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct StartInfo {
    pub magic: u64,
    pub domid: u64,
    pub flags: u64,
    /// Size of the domain's RAM in bytes (starting at `DOMAIN_BASE`).
    pub memory_bytes: u64,
    /// Heap range `[heap_start, heap_end)` (virtual addresses).
    pub heap_start: u64,
    pub heap_end: u64,
    /// Initial `rsp` (top of the stack).
    pub stack_top: u64,
    /// TSC frequency in kHz, for converting `rdtsc` readings (CR4.TSD is clear).
    pub tsc_khz: u64,
    /// TSC value when the hypervisor began creating this domain (for boot-latency measurement).
    pub create_tsc: u64,
    /// Virtual address of the [`SharedInfo`] page.
    pub shared_info: u64,
    pub name: [u8; super::NAME_LEN],
    /// NUL-padded argument string from the topology or `domctl create`.
    pub args: [u8; super::ARGS_LEN],
}

/// Read-write page shared between the hypervisor and one domain.
#[repr(C)]
pub struct SharedInfo {
    /// Pending virq bits ([`super::virq`]); the hypervisor sets bits atomically, the domain clears
    /// them with `virq_take` (or an atomic swap here).
    pub pending_virqs: AtomicU64,
    /// Virqs the domain does not want to be woken by.
    pub masked_virqs: AtomicU64,
}

/// Output of `domain_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct DomainInfo {
    pub domid: u64,
    pub flags: u64,
    pub memory_bytes: u64,
    pub cpu_time_ns: u64,
    pub name: [u8; super::NAME_LEN],
}

/// Argument of `domctl create`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct CreateDomain {
    /// Unique name (NUL-padded).
    pub name: [u8; super::NAME_LEN],
    /// Image name in the boot bundle (NUL-padded).
    pub image: [u8; super::NAME_LEN],
    pub memory_mib: u32,
    /// Length of the meaningful prefix of `args`.
    pub args_len: u32,
    pub args: [u8; super::ARGS_LEN],
}

/// Scheduling state in [`DomainListEntry::state`].
pub mod state {
    pub const RUNNING: u32 = 0;
    pub const RUNNABLE: u32 = 1;
    pub const BLOCKED: u32 = 2;
    pub const PAUSED: u32 = 3;
    /// Ended; see `end` and `end_detail`. Memory is already released; `destroy` reaps the entry.
    pub const DEAD: u32 = 4;
}

/// How a dead domain ended, in [`DomainListEntry::end`].
pub mod end {
    pub const NONE: u32 = 0;
    /// Called `shutdown`; `end_detail` is the [`crate::ShutdownReason`].
    pub const SHUTDOWN: u32 = 1;
    /// Destroyed by the hypervisor for a fault; `end_detail` is the exception vector.
    pub const FAULT: u32 = 2;
    /// Destroyed by `domctl destroy`.
    pub const DESTROYED: u32 = 3;
}

/// One row of `domctl list`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct DomainListEntry {
    pub domid: u32,
    pub state: u32,
    pub end: u32,
    pub end_detail: u32,
    pub memory_bytes: u64,
    pub cpu_time_ns: u64,
    pub name: [u8; super::NAME_LEN],
}

// The layout's invariants, checked at compile time.
const _: () = assert!(IMAGE_OFFSET > SHARED_INFO_OFFSET + PAGE_SIZE - 1);
const _: () = assert!(DOMAIN_BASE + (crate::MAX_DOMAIN_MEMORY_MIB as u64) * 1024 * 1024 <= DOMAIN_LIMIT);
const _: () = assert!(DOMAIN_BASE.is_multiple_of(1 << 30));
const _: () = assert!(core::mem::size_of::<StartInfo>() as u64 <= PAGE_SIZE);

/// Output of `domctl physinfo`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PhysInfo {
    /// 4 KiB frames the allocator manages / has free.
    pub total_frames: u64,
    pub free_frames: u64,
    /// Domains alive, and dead but not yet reaped.
    pub live_domains: u32,
    pub dead_domains: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn layouts_are_stable() {
        // These sizes are ABI: a change breaks every built domain.
        assert_eq!(size_of::<StartInfo>(), 80 + 16 + 256);
        assert!(size_of::<StartInfo>() as u64 <= PAGE_SIZE);
        assert_eq!(offset_of!(StartInfo, name), 80);
        assert_eq!(size_of::<SharedInfo>(), 16);
        assert_eq!(size_of::<CreateDomain>(), 16 + 16 + 8 + 256);
        assert_eq!(size_of::<DomainListEntry>(), 48);
        assert_eq!(size_of::<DomainInfo>(), 48);
        assert_eq!(size_of::<PhysInfo>(), 24);
    }
}
