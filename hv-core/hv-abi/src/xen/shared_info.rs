//! The pages the hypervisor and an HVM guest share: the shared_info page (per-vCPU event and
//! time state, the 2-level event-channel bitmaps, the wallclock), the per-vCPU runstate area and
//! the PV console ring. x86_64 layouts, checked against Xen's headers by `tests/xen_headers.rs`.
//!
//! The structs are plain data (`Pod`) for building, copying and testing. The hypervisor reads
//! and writes a live page concurrently with the guest, so it should go through the `*_OFFSET`
//! constants with atomics (e.g. `AtomicU64` on the bitmap words) rather than through `&mut`
//! references to these structs.

use bytemuck::{Pod, Zeroable};

/// vCPUs with a `vcpu_info` slot in shared_info (`XEN_LEGACY_MAX_VCPUS`); later vCPUs need
/// `VCPUOP_register_vcpu_info`.
pub const LEGACY_MAX_VCPUS: usize = 32;
/// Bits per selector/bitmap word (`xen_ulong_t` is 64-bit on x86_64).
pub const BITS_PER_WORD: usize = 64;
/// Event-channel ports of the 2-level ABI (`EVTCHN_2L_NR_CHANNELS`): 64 words of 64 bits.
pub const EVTCHN_2L_NR_CHANNELS: usize = BITS_PER_WORD * BITS_PER_WORD;

/// `vcpu_time_info::flags`: the TSC is synchronised across vCPUs (`XEN_PVCLOCK_TSC_STABLE_BIT`).
pub const PVCLOCK_TSC_STABLE: u8 = 1 << 0;
/// `vcpu_time_info::flags`: the vCPU was stopped by the host (`XEN_PVCLOCK_GUEST_STOPPED`).
pub const PVCLOCK_GUEST_STOPPED: u8 = 1 << 1;

/// Xen's `struct vcpu_time_info` (32 bytes), the pvclock record. Guest time in ns is
/// `system_time + (((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32)` (a
/// negative `tsc_shift` shifts right). `version` is odd while the hypervisor updates the record.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct VcpuTimeInfo {
    pub version: u32,
    pub pad0: u32,
    /// TSC value at the last update.
    pub tsc_timestamp: u64,
    /// System time (ns since the domain's time base) at the last update.
    pub system_time: u64,
    /// 32.32 fixed-point multiplier from (shifted) TSC ticks to ns.
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
    /// `PVCLOCK_*` bits.
    pub flags: u8,
    pub pad1: [u8; 2],
}

impl VcpuTimeInfo {
    /// System time in ns at TSC value `tsc`, by the record's formula.
    pub const fn system_time_at(&self, tsc: u64) -> u64 {
        let delta = tsc.wrapping_sub(self.tsc_timestamp);
        let delta = if self.tsc_shift >= 0 { delta << self.tsc_shift } else { delta >> -self.tsc_shift };
        let scaled = ((delta as u128 * self.tsc_to_system_mul as u128) >> 32) as u64;
        self.system_time.wrapping_add(scaled)
    }
}

/// Xen's x86 `struct arch_vcpu_info` (16 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ArchVcpuInfo {
    /// PV guests' fault address; unused for HVM.
    pub cr2: u64,
    pub pad: u64,
}

/// Xen's `struct vcpu_info` (64 bytes): one per vCPU, in shared_info or wherever the guest
/// registered it (`VCPUOP_register_vcpu_info`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct VcpuInfo {
    /// Set by the hypervisor when an event is pending for this vCPU; cleared by the guest.
    pub evtchn_upcall_pending: u8,
    /// Non-zero: no upcall is delivered (PV guests; HVM guests mask with RFLAGS.IF).
    pub evtchn_upcall_mask: u8,
    pub pad0: [u8; 6],
    /// Bit `i` set: word `i` of `evtchn_pending` may have a pending, unmasked port.
    pub evtchn_pending_sel: u64,
    pub arch: ArchVcpuInfo,
    pub time: VcpuTimeInfo,
}

/// Xen's x86_64 `struct arch_shared_info` (48 bytes): PV p2m bookkeeping, unused by HVM.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct ArchSharedInfo {
    pub max_pfn: u64,
    pub pfn_to_mfn_frame_list_list: u64,
    pub nmi_reason: u64,
    pub p2m_cr3: u64,
    pub p2m_vaddr: u64,
    pub p2m_generation: u64,
}

/// Xen's x86_64 `struct shared_info` (3136 bytes at the start of a 4 KiB page), as plain
/// fields. See the module docs for concurrent access; the offsets below are the same layout.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; LEGACY_MAX_VCPUS],
    /// Port `p` pending: bit `p % 64` of word `p / 64`.
    pub evtchn_pending: [u64; BITS_PER_WORD],
    /// Port `p` masked: bit `p % 64` of word `p / 64`.
    pub evtchn_mask: [u64; BITS_PER_WORD],
    /// Odd while the wallclock fields are rewritten (like [`VcpuTimeInfo::version`]).
    pub wc_version: u32,
    /// Wallclock at system time 0: seconds (low 32 bits) and ns since the Unix epoch.
    pub wc_sec: u32,
    pub wc_nsec: u32,
    /// High 32 bits of the wallclock seconds.
    pub wc_sec_hi: u32,
    pub arch: ArchSharedInfo,
}

impl Default for SharedInfo {
    fn default() -> Self {
        Zeroable::zeroed()
    }
}

/// Byte offset of `vcpu_info[vcpu]` in shared_info.
pub const fn vcpu_info_offset(vcpu: usize) -> usize {
    VCPU_INFO_OFFSET + vcpu * VCPU_INFO_SIZE
}

/// Byte offset of the bitmap word holding `port`'s pending bit (its bit is `port % 64`).
pub const fn evtchn_pending_word_offset(port: u32) -> usize {
    EVTCHN_PENDING_OFFSET + (port as usize / BITS_PER_WORD) * 8
}

/// Byte offset of the bitmap word holding `port`'s mask bit (its bit is `port % 64`).
pub const fn evtchn_mask_word_offset(port: u32) -> usize {
    EVTCHN_MASK_OFFSET + (port as usize / BITS_PER_WORD) * 8
}

/// `sizeof(struct vcpu_info)`.
pub const VCPU_INFO_SIZE: usize = 64;
/// Offsets inside `vcpu_info`.
pub const VCPU_INFO_UPCALL_PENDING: usize = 0;
pub const VCPU_INFO_UPCALL_MASK: usize = 1;
pub const VCPU_INFO_PENDING_SEL: usize = 8;
pub const VCPU_INFO_ARCH: usize = 16;
pub const VCPU_INFO_TIME: usize = 32;
/// `sizeof(struct vcpu_time_info)`.
pub const VCPU_TIME_INFO_SIZE: usize = 32;
/// Offsets inside `shared_info`.
pub const VCPU_INFO_OFFSET: usize = 0;
pub const EVTCHN_PENDING_OFFSET: usize = 0x800;
pub const EVTCHN_MASK_OFFSET: usize = 0xa00;
pub const WC_VERSION_OFFSET: usize = 0xc00;
pub const WC_SEC_OFFSET: usize = 0xc04;
pub const WC_NSEC_OFFSET: usize = 0xc08;
pub const WC_SEC_HI_OFFSET: usize = 0xc0c;
pub const ARCH_OFFSET: usize = 0xc10;
/// `sizeof(struct shared_info)` on x86_64.
pub const SHARED_INFO_SIZE: usize = 0xc40;

/// Xen's `struct vcpu_runstate_info` (48 bytes), the area `VCPUOP_register_runstate_memory_area`
/// registers: time spent in each [`super::runstate`] state.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct VcpuRunstateInfo {
    /// The current `runstate::*`.
    pub state: i32,
    /// Implicit padding in the C struct, explicit here.
    pub _pad: u32,
    /// System time (ns) the current state was entered, with [`super::runstate::UPDATE`] set
    /// during an update.
    pub state_entry_time: u64,
    /// ns spent running, runnable, blocked, offline.
    pub time: [u64; 4],
}

/// Size of the console's input ring (`in`, hypervisor/backend to guest).
pub const XENCONS_IN_SIZE: usize = 1024;
/// Size of the console's output ring (`out`, guest to backend).
pub const XENCONS_OUT_SIZE: usize = 2048;

/// Xen's `struct xencons_interface` (`io/console.h`, 3088 bytes without the optional trailing
/// `connection` word newer headers add): the PV console page, two byte rings with free-running
/// `u32` indices (masked with size - 1).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
pub struct XenconsInterface {
    pub input: [u8; XENCONS_IN_SIZE],
    pub output: [u8; XENCONS_OUT_SIZE],
    pub in_cons: u32,
    pub in_prod: u32,
    pub out_cons: u32,
    pub out_prod: u32,
}

/// Offsets inside the console page.
pub const XENCONS_IN_OFFSET: usize = 0;
pub const XENCONS_OUT_OFFSET: usize = 1024;
pub const XENCONS_IN_CONS_OFFSET: usize = 3072;
pub const XENCONS_IN_PROD_OFFSET: usize = 3076;
pub const XENCONS_OUT_CONS_OFFSET: usize = 3080;
pub const XENCONS_OUT_PROD_OFFSET: usize = 3084;

use core::mem::{offset_of, size_of};
const _: () = assert!(size_of::<VcpuTimeInfo>() == VCPU_TIME_INFO_SIZE);
const _: () = assert!(size_of::<VcpuInfo>() == VCPU_INFO_SIZE);
const _: () = assert!(offset_of!(VcpuInfo, evtchn_upcall_mask) == VCPU_INFO_UPCALL_MASK);
const _: () = assert!(offset_of!(VcpuInfo, evtchn_pending_sel) == VCPU_INFO_PENDING_SEL);
const _: () = assert!(offset_of!(VcpuInfo, arch) == VCPU_INFO_ARCH);
const _: () = assert!(offset_of!(VcpuInfo, time) == VCPU_INFO_TIME);
const _: () = assert!(offset_of!(SharedInfo, evtchn_pending) == EVTCHN_PENDING_OFFSET);
const _: () = assert!(offset_of!(SharedInfo, evtchn_mask) == EVTCHN_MASK_OFFSET);
const _: () = assert!(offset_of!(SharedInfo, wc_version) == WC_VERSION_OFFSET);
const _: () = assert!(offset_of!(SharedInfo, wc_sec) == WC_SEC_OFFSET);
const _: () = assert!(offset_of!(SharedInfo, wc_nsec) == WC_NSEC_OFFSET);
const _: () = assert!(offset_of!(SharedInfo, wc_sec_hi) == WC_SEC_HI_OFFSET);
const _: () = assert!(offset_of!(SharedInfo, arch) == ARCH_OFFSET);
const _: () = assert!(size_of::<SharedInfo>() == SHARED_INFO_SIZE);
const _: () = assert!(SHARED_INFO_SIZE <= super::XEN_PAGE_SIZE);
const _: () = assert!(size_of::<VcpuRunstateInfo>() == 48);
const _: () = assert!(offset_of!(XenconsInterface, output) == XENCONS_OUT_OFFSET);
const _: () = assert!(offset_of!(XenconsInterface, in_cons) == XENCONS_IN_CONS_OFFSET);
const _: () = assert!(offset_of!(XenconsInterface, in_prod) == XENCONS_IN_PROD_OFFSET);
const _: () = assert!(offset_of!(XenconsInterface, out_cons) == XENCONS_OUT_CONS_OFFSET);
const _: () = assert!(offset_of!(XenconsInterface, out_prod) == XENCONS_OUT_PROD_OFFSET);
const _: () = assert!(size_of::<XenconsInterface>() == 3088);
