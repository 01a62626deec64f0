//! Address-space layout of a domain and the `#[repr(C)]` structures shared with the hypervisor.
//!
//! A domain's RAM is one physically contiguous block mapped at [`DOMAIN_BASE`]:
//!
//! | virtual address | content | access |
//! |---|---|---|
//! | `DOMAIN_BASE` | [`StartInfo`] page | read-only |
//! | `DOMAIN_BASE + 0x1000` | [`SharedInfo`] page | read-write |
//! | `DOMAIN_BASE + 0x2000` | store ring page (xenstore byte rings) | read-write |
//! | `DOMAIN_BASE + IMAGE_OFFSET` | the ELF image (domains link here) | per segment |
//! | image end … `stack_bottom - 4 KiB` | heap | read-write, no-exec |
//! | `stack_bottom - 4 KiB` | guard page | unmapped |
//! | `stack_bottom` … `DOMAIN_BASE + memory` | stack ([`STACK_SIZE`]) | read-write, no-exec |
//!
//! Grant mappings appear in the window `[MAP_BASE, MAP_BASE + MAX_GRANT_MAPS pages)`, one page per
//! map handle. Everything else in the address space (the hypervisor included) is inaccessible from
//! ring 3.

use crate::DomId;
use bytemuck::{Pod, Zeroable};
use core::sync::atomic::AtomicU64;

/// Where every domain's RAM starts (1 GiB). Domain binaries are linked at
/// `DOMAIN_BASE + IMAGE_OFFSET`.
pub const DOMAIN_BASE: u64 = 0x4000_0000;
/// Highest end of domain RAM (`DOMAIN_BASE + 1 GiB`).
pub const DOMAIN_LIMIT: u64 = 0x8000_0000;
pub const START_INFO_OFFSET: u64 = 0;
pub const SHARED_INFO_OFFSET: u64 = 0x1000;
pub const STORE_RING_OFFSET: u64 = 0x2000;
/// Start of the grant-mapping window (just above the largest possible RAM).
pub const MAP_BASE: u64 = DOMAIN_LIMIT;
/// Where a driver domain sees the memory BARs of its assigned PCI devices (uncached).
pub const PCI_BAR_BASE: u64 = 0xc000_0000;

/// Virtual address of grant map `handle`.
pub const fn map_va(handle: u32) -> u64 {
    MAP_BASE + handle as u64 * PAGE_SIZE
}

/// The frame number a domain puts in a grant entry for its own page at `va`.
pub const fn gfn_of(va: u64) -> u32 {
    ((va - DOMAIN_BASE) / PAGE_SIZE) as u32
}
/// Offset of the ELF image inside domain RAM.
pub const IMAGE_OFFSET: u64 = 0x10000;
pub const STACK_SIZE: u64 = 256 * 1024;
pub const PAGE_SIZE: u64 = 4096;

pub const START_INFO_MAGIC: u64 = 0x6876_2d73_7461_7274; // "hv-start"

/// The version of this contract, in [`StartInfo::abi_version`]: raised whenever a hypercall,
/// structure or layout changes incompatibly, so a domain built against another version stops at
/// entry with a clear message instead of misreading its arguments. Version 1 is the ABI
/// described in `docs/ABI.md` (the first with this field).
pub const ABI_VERSION: u32 = 1;

/// A start_info written by a hypervisor speaking another ABI version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbiMismatch {
    /// What the hypervisor wrote ([`StartInfo::abi_version`]).
    pub hypervisor: u32,
    /// What this build expects ([`ABI_VERSION`]).
    pub domain: u32,
}

impl core::fmt::Display for AbiMismatch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "ABI version mismatch: the hypervisor speaks version {}, this domain was built for version {}; rebuild it against the same hv-abi",
            self.hypervisor, self.domain
        )
    }
}

impl StartInfo {
    /// Checks that the hypervisor that wrote this start_info speaks this build's ABI.
    pub fn check_abi_version(&self) -> Result<(), AbiMismatch> {
        if self.abi_version == ABI_VERSION {
            Ok(())
        } else {
            Err(AbiMismatch { hypervisor: self.abi_version, domain: ABI_VERSION })
        }
    }
}

/// Flags in [`StartInfo::flags`].
pub mod flags {
    /// The domain may use `domctl` (Dom0).
    pub const PRIVILEGED: u64 = 1 << 0;
}

/// Handed to a domain at entry (pointer in `rdi`); read-only for the domain.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
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
    /// Virtual address of the store ring page (`xenstore_domain_interface`).
    pub store_ring: u64,
    /// Event-channel port connected to the store server (Dom0's store has none: it is the server).
    pub store_port: u64,
    /// Machine address of the first byte of RAM (RAM is contiguous): device DMA addresses are
    /// `ram_phys + (va - DOMAIN_BASE)` (behind an IOMMU, exactly the addresses its devices reach).
    pub ram_phys: u64,
    pub name: [u8; super::NAME_LEN],
    /// NUL-padded argument string from the topology or `domctl create`.
    pub args: [u8; super::ARGS_LEN],
    // --- appended fields (every field above keeps its offset) ---
    /// [`ABI_VERSION`] of the hypervisor that built this domain (0 from a hypervisor older than
    /// the field: the page is zeroed).
    pub abi_version: u32,
    pub _pad: u32,
}

/// Read-write page shared between the hypervisor and one domain: the 2-level event-channel
/// bitmaps (one bit per port). The hypervisor sets pending bits atomically; the domain clears
/// them (atomic swap) and owns the mask bits. A port whose pending bit goes 0→1 while unmasked
/// wakes the domain from `block`.
#[repr(C)]
pub struct SharedInfo {
    pub evtchn_pending: [AtomicU64; super::MAX_PORTS / 64],
    pub evtchn_mask: [AtomicU64; super::MAX_PORTS / 64],
}

/// Output of `domain_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct DomainInfo {
    pub domid: u64,
    pub flags: u64,
    pub memory_bytes: u64,
    pub cpu_time_ns: u64,
    pub name: [u8; super::NAME_LEN],
}

/// Argument of `domctl create`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
pub struct CreateDomain {
    /// Unique name (NUL-padded).
    pub name: [u8; super::NAME_LEN],
    /// Image name in the boot bundle (NUL-padded).
    pub image: [u8; super::NAME_LEN],
    pub memory_mib: u32,
    /// Length of the meaningful prefix of `args`.
    pub args_len: u32,
    pub args: [u8; super::ARGS_LEN],
    /// [`CREATE_PAUSED`]: build the domain but do not run it until `unpause` (so the toolstack
    /// can write its store entries first, as Xen's does). [`CREATE_PVH`]: an HVM domain booting
    /// `image` as a PVH kernel with `args` as its command line.
    pub flags: u64,
    /// PVH only: the initramfs image name in the boot bundle (NUL-padded; empty = none).
    pub ramdisk: [u8; super::NAME_LEN],
    /// [`CREATE_DOMID`]: the id the new domain must get (free: no live or unreaped domain holds
    /// it). Dom0 restarts a crashed driver domain under its old id, so its frontends' backend
    /// paths, grants and unbound ports still name it.
    pub domid: u32,
    pub _pad: u32,
}

pub const CREATE_PAUSED: u64 = 1;
/// The domain is an HVM guest OS booted through the PVH entry (Xen's HVM guest ABI).
pub const CREATE_PVH: u64 = 2;
/// The domain gets [`CreateDomain::domid`] (`EEXIST` if it is taken, `EINVAL` if it is not a
/// domain id).
pub const CREATE_DOMID: u64 = 4;

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
#[derive(Debug, Clone, Copy, Default, Pod, Zeroable)]
pub struct DomainListEntry {
    pub domid: u32,
    pub state: u32,
    pub end: u32,
    pub end_detail: u32,
    pub memory_bytes: u64,
    pub cpu_time_ns: u64,
    pub name: [u8; super::NAME_LEN],
}

impl DomainListEntry {
    /// The domain's id (the `u32` field holds a [`crate::DomId`], below `DOMID_SELF_ID`; a
    /// value that is not one reads as `DOMID_SELF_ID`, which names no listed domain).
    pub fn id(&self) -> crate::DomId {
        crate::DomId::try_from(self.domid).unwrap_or(crate::DOMID_SELF_ID)
    }
}

// The layout's invariants, checked at compile time.
const _: () = assert!(STORE_RING_OFFSET + PAGE_SIZE <= IMAGE_OFFSET);
const _: () = assert!(core::mem::size_of::<SharedInfo>() as u64 <= PAGE_SIZE);
const _: () = assert!(IMAGE_OFFSET > SHARED_INFO_OFFSET + PAGE_SIZE - 1);
const _: () = assert!(DOMAIN_BASE + (crate::MAX_DOMAIN_MEMORY_MIB as u64) * 1024 * 1024 <= DOMAIN_LIMIT);
const _: () = assert!(DOMAIN_BASE.is_multiple_of(1 << 30));
const _: () = assert!(core::mem::size_of::<StartInfo>() as u64 <= PAGE_SIZE);

/// Output of `domctl physinfo`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PhysInfo {
    /// 4 KiB frames the allocator manages / has free.
    pub total_frames: u64,
    pub free_frames: u64,
    /// Domains alive, and dead but not yet reaped.
    pub live_domains: u32,
    pub dead_domains: u32,
    /// Grant mappings held by all domains.
    pub grant_maps: u64,
    /// Event-channel ports in use by all domains.
    pub event_ports: u64,
    // --- appended fields (the first 40 bytes keep their old layout) ---
    /// Grant entries marked `PERMIT_ACCESS` in all registered grant tables.
    pub grant_entries: u64,
    /// Bytes of console history the hypervisor holds for all domains.
    pub console_bytes: u64,
    /// Control channel: 1 if present; bytes received and transmitted; received bytes dropped
    /// because the receive ring was full.
    pub control_present: u64,
    pub control_rx_bytes: u64,
    pub control_tx_bytes: u64,
    pub control_rx_dropped: u64,
    /// System time (ns since boot).
    pub uptime_ns: u64,
}

/// In/out argument of `domctl console_read`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ConsoleRead {
    /// In: where to copy and how many bytes at most.
    pub buf: u64,
    pub len: u64,
    /// Out: offset of the first byte copied (`> from` when older bytes were overwritten), bytes
    /// copied, and the end offset (one past the newest byte: pass it as `from` to tail).
    pub start: u64,
    pub copied: u64,
    pub end: u64,
}

/// Output of `control_io(status)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ControlStatus {
    /// 1 if the UART (COM2, I/O port 0x2f8) answered the probe, else 0.
    pub present: u32,
    pub _pad: u32,
    /// Bytes taken from the UART / handed to it since boot.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Received bytes dropped because the receive ring was full.
    pub rx_dropped: u64,
    /// Bytes waiting in the receive ring (for `read`) and in the transmit ring.
    pub rx_pending: u64,
    pub tx_pending: u64,
}

/// A grant-table entry, Xen's `struct grant_entry_v1` (`xen/include/public/grant_table.h`,
/// checked byte for byte against it in `shared-ring/tests/xen_headers.rs`, where shared-ring
/// re-exports it as `GrantEntryV1`): written by the granting domain (domid, frame, then flags
/// last), busy bits set by the hypervisor while the grant is mapped.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GrantEntry {
    /// `GTF_*` type and flags ([`gtf`]).
    pub flags: u16,
    /// The domain allowed to use the grant (the grantee).
    pub domid: DomId,
    /// The granted page: [`gfn_of`] of one of the granter's own pages.
    pub frame: u32,
}

/// `GrantEntry::flags` bits (Xen's `GTF_*`).
pub mod gtf {
    /// `GTF_invalid`.
    pub const INVALID: u16 = 0;
    /// `GTF_permit_access`.
    pub const PERMIT_ACCESS: u16 = 1;
    /// `GTF_accept_transfer`.
    pub const ACCEPT_TRANSFER: u16 = 2;
    /// `GTF_transitive` (v2 only).
    pub const TRANSITIVE: u16 = 3;
    /// `GTF_type_mask`.
    pub const TYPE_MASK: u16 = 3;
    /// `GTF_readonly`: the grantee may only read.
    pub const READONLY: u16 = 1 << 2;
    /// Set by the hypervisor while mapped for reading / writing: the granter must not end access.
    pub const READING: u16 = 1 << 3;
    pub const WRITING: u16 = 1 << 4;
    /// `GTF_PWT`, `GTF_PCD`, `GTF_PAT`: cacheability of the mapping.
    pub const PWT: u16 = 1 << 5;
    pub const PCD: u16 = 1 << 6;
    pub const PAT: u16 = 1 << 7;
    /// `GTF_sub_page` (v2 only).
    pub const SUB_PAGE: u16 = 1 << 8;
    /// `GTF_transfer_committed` (accept_transfer entries; same bit as readonly).
    pub const TRANSFER_COMMITTED: u16 = 1 << 2;
    /// `GTF_transfer_completed` (accept_transfer entries; same bit as reading).
    pub const TRANSFER_COMPLETED: u16 = 1 << 3;
}

/// What a domain put in a v1 grant entry that the v1 ABI does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantError {
    /// `GTF_transitive` is a v2-only type.
    TransitiveInV1,
    /// `GTF_sub_page` is a v2-only flag.
    SubPageInV1,
    /// Bits above `GTF_sub_page`.
    UnknownFlags { flags: u16 },
}

impl core::fmt::Display for GrantError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match *self {
            GrantError::TransitiveInV1 => write!(f, "transitive grant in a v1 table"),
            GrantError::SubPageInV1 => write!(f, "sub-page grant in a v1 table"),
            GrantError::UnknownFlags { flags } => write!(f, "unknown grant flags {flags:#x}"),
        }
    }
}

impl core::error::Error for GrantError {}

impl GrantEntry {
    /// Decodes 8 little-endian bytes (infallible).
    pub fn from_raw(b: &[u8; 8]) -> Self {
        Self {
            flags: u16::from_le_bytes([b[0], b[1]]),
            domid: u16::from_le_bytes([b[2], b[3]]),
            frame: u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        }
    }

    /// Encodes as 8 little-endian bytes.
    pub fn to_raw(&self) -> [u8; 8] {
        let mut b = [0; 8];
        b[0..2].copy_from_slice(&self.flags.to_le_bytes());
        b[2..4].copy_from_slice(&self.domid.to_le_bytes());
        b[4..8].copy_from_slice(&self.frame.to_le_bytes());
        b
    }

    /// Decodes and validates.
    pub fn decode(b: &[u8; 8]) -> Result<Self, GrantError> {
        let entry = Self::from_raw(b);
        entry.validate()?;
        Ok(entry)
    }

    /// Rejects v2-only types and flags and undefined bits.
    pub fn validate(&self) -> Result<(), GrantError> {
        if self.flags & !(gtf::SUB_PAGE | (gtf::SUB_PAGE - 1)) != 0 {
            return Err(GrantError::UnknownFlags { flags: self.flags });
        }
        if self.flags & gtf::TYPE_MASK == gtf::TRANSITIVE {
            return Err(GrantError::TransitiveInV1);
        }
        if self.flags & gtf::SUB_PAGE != 0 {
            return Err(GrantError::SubPageInV1);
        }
        Ok(())
    }

    /// The entry lets `grantee` map or copy its frame (`permit_access` for that domain).
    pub fn permits(&self, grantee: DomId) -> bool {
        self.flags & gtf::TYPE_MASK == gtf::PERMIT_ACCESS && self.domid == grantee
    }

    /// The grantee may only read.
    pub fn is_readonly(&self) -> bool {
        self.flags & gtf::READONLY != 0
    }

    /// The hypervisor has the frame mapped (reading or writing): the grant cannot be ended.
    pub fn is_in_use(&self) -> bool {
        self.flags & (gtf::READING | gtf::WRITING) != 0
    }
}

/// Grant operation status codes (Xen's GNTST_*), per element of `copy`.
pub mod gntst {
    pub const OKAY: i16 = 0;
    pub const GENERAL_ERROR: i16 = -1;
    pub const BAD_DOMAIN: i16 = -2;
    pub const BAD_GNTREF: i16 = -3;
    pub const BAD_HANDLE: i16 = -4;
    pub const BAD_VIRT_ADDR: i16 = -5;
    pub const PERMISSION_DENIED: i16 = -8;
    pub const BAD_PAGE: i16 = -9;
    pub const BAD_COPY_ARG: i16 = -10;
    pub const NO_SPACE: i16 = -13;
}

/// A grant operation's outcome (Xen's `GNTST_*`), typed. On the wire (`GrantCopy::status`) it
/// is the `i16` of [`gntst`]; [`GrantStatus::from_raw`] reads one back, mapping a value the ABI
/// does not define to [`GrantStatus::GeneralError`] (a hostile or buggy peer cannot make up a
/// status the code then has to guess about).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum GrantStatus {
    Okay = gntst::OKAY,
    GeneralError = gntst::GENERAL_ERROR,
    BadDomain = gntst::BAD_DOMAIN,
    BadGntref = gntst::BAD_GNTREF,
    BadHandle = gntst::BAD_HANDLE,
    BadVirtAddr = gntst::BAD_VIRT_ADDR,
    PermissionDenied = gntst::PERMISSION_DENIED,
    BadPage = gntst::BAD_PAGE,
    BadCopyArg = gntst::BAD_COPY_ARG,
    NoSpace = gntst::NO_SPACE,
}

impl GrantStatus {
    /// Every status, for tables and tests.
    pub const ALL: [GrantStatus; 10] = [
        Self::Okay,
        Self::GeneralError,
        Self::BadDomain,
        Self::BadGntref,
        Self::BadHandle,
        Self::BadVirtAddr,
        Self::PermissionDenied,
        Self::BadPage,
        Self::BadCopyArg,
        Self::NoSpace,
    ];

    /// The wire value.
    pub const fn as_raw(self) -> i16 {
        self as i16
    }

    /// Reads a wire value; one the ABI does not define is a general error.
    pub fn from_raw(raw: i16) -> Self {
        Self::ALL.into_iter().find(|s| s.as_raw() == raw).unwrap_or(Self::GeneralError)
    }

    /// Whether the operation succeeded.
    pub const fn is_ok(self) -> bool {
        matches!(self, Self::Okay)
    }

    /// Xen's name (`GNTST_okay`, ...), for logs.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Okay => "GNTST_okay",
            Self::GeneralError => "GNTST_general_error",
            Self::BadDomain => "GNTST_bad_domain",
            Self::BadGntref => "GNTST_bad_gntref",
            Self::BadHandle => "GNTST_bad_handle",
            Self::BadVirtAddr => "GNTST_bad_virt_addr",
            Self::PermissionDenied => "GNTST_permission_denied",
            Self::BadPage => "GNTST_bad_page",
            Self::BadCopyArg => "GNTST_bad_copy_arg",
            Self::NoSpace => "GNTST_no_space",
        }
    }
}

impl core::fmt::Display for GrantStatus {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// One side of a [`GrantCopy`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GrantCopyPtr {
    /// A grant ref (with the `*_GREF` flag) or a virtual address in the caller's own memory.
    pub ref_or_addr: u64,
    /// The granter (gref sides); ignored for local addresses.
    pub domid: u16,
    /// Offset inside the granted page (gref sides).
    pub offset: u16,
    pub _pad: u32,
}

/// One element of `grant_table_op(copy)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GrantCopy {
    pub source: GrantCopyPtr,
    pub dest: GrantCopyPtr,
    pub len: u16,
    /// [`GNTCOPY_SOURCE_GREF`] / [`GNTCOPY_DEST_GREF`].
    pub flags: u16,
    /// Out: a [`gntst`] code.
    pub status: i16,
    pub _pad: u16,
}

pub const GNTCOPY_SOURCE_GREF: u16 = 1;
pub const GNTCOPY_DEST_GREF: u16 = 2;

/// Output of `evtchn_op(status)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnStatus {
    /// [`evtchn_state`] value.
    pub state: u32,
    /// Unbound: the domain allowed to bind; interdomain: the peer domain; virq: the virq.
    pub remote_dom: u32,
    /// Interdomain: the peer's port.
    pub remote_port: u32,
    pub _pad: u32,
}

/// [`EvtchnStatus::state`] values (Xen's EVTCHNSTAT_*).
pub mod evtchn_state {
    pub const CLOSED: u32 = 0;
    pub const UNBOUND: u32 = 1;
    pub const INTERDOMAIN: u32 = 2;
    pub const PIRQ: u32 = 3;
    pub const VIRQ: u32 = 4;
}

/// One BAR of an assigned PCI device.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PciBarInfo {
    pub phys: u64,
    pub size: u64,
    /// Where it is mapped in the caller (memory BARs), 0 if not.
    pub va: u64,
    /// 0 none, 1 I/O, 2 32-bit memory, 3 64-bit memory.
    pub kind: u32,
    pub _pad: u32,
}

/// One row of `pci_op(list)`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct PciDeviceInfo {
    /// `bus << 8 | dev << 3 | fn`.
    pub bdf: u16,
    pub vendor: u16,
    pub device: u16,
    pub _pad: u16,
    /// Class code, subclass, programming interface.
    pub class: u32,
    pub _pad2: u32,
    pub bars: [PciBarInfo; 6],
}

/// Output of `domctl store_connect`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct StoreConnection {
    /// The caller's port bound to the domain's store port.
    pub port: u32,
    /// Grant-map handle of the domain's store page (unmap it when the domain is gone).
    pub map_handle: u32,
    /// Where the page is mapped ([`map_va`] of the handle).
    pub va: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of};

    #[test]
    fn grant_status_round_trips_and_unknown_values_are_general_errors() {
        for s in GrantStatus::ALL {
            assert_eq!(GrantStatus::from_raw(s.as_raw()), s);
        }
        assert_eq!(GrantStatus::from_raw(gntst::BAD_COPY_ARG), GrantStatus::BadCopyArg);
        for raw in [-6, -7, -11, -12, -14, 1, i16::MIN, i16::MAX] {
            assert_eq!(GrantStatus::from_raw(raw), GrantStatus::GeneralError, "{raw}");
        }
        assert!(GrantStatus::Okay.is_ok() && !GrantStatus::NoSpace.is_ok());
    }

    #[test]
    fn abi_version_is_checked() {
        let mut si = StartInfo::zeroed();
        assert_eq!(si.check_abi_version(), Err(AbiMismatch { hypervisor: 0, domain: ABI_VERSION }));
        si.abi_version = ABI_VERSION;
        assert_eq!(si.check_abi_version(), Ok(()));
        si.abi_version = ABI_VERSION + 1;
        let e = si.check_abi_version().unwrap_err();
        assert_eq!(e.hypervisor, ABI_VERSION + 1);
        let mut msg = [0u8; 200];
        let mut w = Buf(&mut msg, 0);
        core::fmt::write(&mut w, format_args!("{e}")).unwrap();
        let text = core::str::from_utf8(&w.0[..w.1]).unwrap();
        assert!(text.starts_with("ABI version mismatch: the hypervisor speaks version 2"), "{text}");
    }

    struct Buf<'a>(&'a mut [u8], usize);
    impl core::fmt::Write for Buf<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let end = self.1 + s.len();
            self.0.get_mut(self.1..end).ok_or(core::fmt::Error)?.copy_from_slice(s.as_bytes());
            self.1 = end;
            Ok(())
        }
    }

    #[test]
    fn grant_entry_bytes_are_xens() {
        let e = GrantEntry { flags: gtf::PERMIT_ACCESS | gtf::READONLY, domid: 3, frame: 0x1234 };
        assert_eq!(e.to_raw(), [5, 0, 3, 0, 0x34, 0x12, 0, 0]);
        // The in-memory image (what a domain's table holds) is the wire image.
        assert_eq!(bytemuck::bytes_of(&e), &e.to_raw());
        assert_eq!(GrantEntry::from_raw(&e.to_raw()), e);
    }

    #[test]
    fn layouts_are_stable() {
        // These sizes are ABI: a change breaks every built domain.
        assert_eq!(size_of::<StartInfo>(), 104 + 16 + 256 + 8);
        assert_eq!(offset_of!(StartInfo, name), 104);
        // The store and console-era fields keep their offsets; the version is appended.
        assert_eq!(offset_of!(StartInfo, store_ring), 80);
        assert_eq!(offset_of!(StartInfo, store_port), 88);
        assert_eq!(offset_of!(StartInfo, ram_phys), 96);
        assert_eq!(offset_of!(StartInfo, args), 120);
        assert_eq!(offset_of!(StartInfo, abi_version), 376);
        assert_eq!(size_of::<PciDeviceInfo>(), 16 + 6 * 32);
        assert_eq!(size_of::<SharedInfo>(), 256);
        assert_eq!(size_of::<GrantEntry>(), 8);
        assert_eq!(size_of::<GrantCopy>(), 40);
        assert_eq!(size_of::<EvtchnStatus>(), 16);
        assert_eq!(size_of::<StoreConnection>(), 16);
        assert_eq!(size_of::<CreateDomain>(), 16 + 16 + 8 + 256 + 8 + 16 + 8);
        assert_eq!(size_of::<DomainListEntry>(), 48);
        assert_eq!(size_of::<DomainInfo>(), 48);
        assert_eq!(size_of::<PhysInfo>(), 96);
        assert_eq!(offset_of!(PhysInfo, event_ports), 32);
        assert_eq!(size_of::<ConsoleRead>(), 40);
        assert_eq!(size_of::<ControlStatus>(), 48);
    }
}
