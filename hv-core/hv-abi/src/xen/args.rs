//! Hypercall argument structs, x86_64 layouts of Xen's (checked by `tests/xen_headers.rs`).
//! Guest handles (pointers) are `u64` guest-virtual addresses; C's implicit padding is an
//! explicit `_pad` field so each struct is `Pod`. Fields marked "out" are written back by the
//! hypervisor.

use super::DomId;
use bytemuck::{Pod, Zeroable};
use core::mem::{offset_of, size_of};

/// `XENVER_get_features` in/out.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct XenFeatureInfo {
    /// Which 32-bit word of feature bits (only 0 is defined).
    pub submap_idx: u32,
    /// Out: the `XENFEAT_*` bits of that word.
    pub submap: u32,
}

/// `XENMEM_add_to_physmap`: make a special page appear at guest frame `gpfn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct XenAddToPhysmap {
    /// `DOMID_SELF` for the caller.
    pub domid: DomId,
    /// Page count, for `XENMAPSPACE_gmfn_range` only.
    pub size: u16,
    /// A [`super::xenmapspace`] value.
    pub space: u32,
    /// Index in that space (grant frame number; 0 for shared_info).
    pub idx: u64,
    /// Guest frame where it should appear.
    pub gpfn: u64,
}

/// `XENMEM_memory_map`: the caller's e820 map.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct XenMemoryMap {
    /// In: capacity of `buffer` in entries; out: entries written.
    pub nr_entries: u32,
    pub _pad: u32,
    /// Guest address of an array of 20-byte e820 entries (addr u64, size u64, type u32).
    pub buffer: u64,
}

/// `XENMEM_increase_reservation` / `decrease_reservation` / `populate_physmap`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct XenMemoryReservation {
    /// Guest address of an array of `nr_extents` frame numbers.
    pub extent_start: u64,
    pub nr_extents: u64,
    /// Each extent is `2^extent_order` pages.
    pub extent_order: u32,
    /// `XENMEMF_*` flags.
    pub mem_flags: u32,
    pub domid: DomId,
    pub _pad: [u16; 3],
}

/// `HVMOP_set_param` / `HVMOP_get_param`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct XenHvmParam {
    pub domid: DomId,
    pub pad: u16,
    /// A [`super::hvm_param`] index.
    pub index: u32,
    /// In (set) or out (get).
    pub value: u64,
}

/// `HVMOP_pagetable_dying`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct XenHvmPagetableDying {
    pub domid: DomId,
    pub pad: [u16; 3],
    /// Guest-physical address of the top-level page table being torn down.
    pub gpa: u64,
}

/// `HVMOP_set_evtchn_upcall_vector`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct XenHvmEvtchnUpcallVector {
    pub vcpu: u32,
    pub vector: u8,
    pub _pad: [u8; 3],
}

/// `VCPUOP_register_vcpu_info`: move this vCPU's `vcpu_info` to guest frame `mfn` + `offset`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct VcpuRegisterVcpuInfo {
    /// Guest frame number (for HVM: a gfn despite the name).
    pub mfn: u64,
    /// Offset in that page; the 64-byte `vcpu_info` must not cross the page end.
    pub offset: u32,
    pub rsvd: u32,
}

/// `VCPUOP_set_singleshot_timer`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time (ns) to fire at.
    pub timeout_abs_ns: u64,
    /// [`super::vcpuop::SSHOTTMR_FUTURE`] or 0.
    pub flags: u32,
    pub _pad: u32,
}

/// `VCPUOP_set_periodic_timer`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct VcpuSetPeriodicTimer {
    pub period_ns: u64,
}

/// `VCPUOP_register_runstate_memory_area`: where to keep a [`super::VcpuRunstateInfo`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct VcpuRegisterRunstateMemoryArea {
    /// Guest-virtual address of the area (HVM: linear address in the guest's page tables).
    pub addr: u64,
}

/// `VCPUOP_register_vcpu_time_memory_area`: where to keep a copy of the vCPU's
/// [`super::VcpuTimeInfo`].
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct VcpuRegisterTimeMemoryArea {
    pub addr: u64,
}

/// `SCHEDOP_shutdown`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SchedShutdown {
    /// A [`super::shutdown_reason`].
    pub reason: u32,
}

/// `SCHEDOP_poll`: block until one of `ports` is pending or `timeout` (absolute ns, 0 = none).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct SchedPoll {
    /// Guest address of an array of `nr_ports` ports.
    pub ports: u64,
    pub nr_ports: u32,
    pub _pad: u32,
    pub timeout: u64,
}

/// `EVTCHNOP_alloc_unbound`: a port in `dom` that `remote_dom` may bind to.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnAllocUnbound {
    pub dom: DomId,
    pub remote_dom: DomId,
    /// Out.
    pub port: u32,
}

/// `EVTCHNOP_bind_interdomain`: connect a local port to `remote_dom`'s unbound `remote_port`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnBindInterdomain {
    pub remote_dom: DomId,
    pub _pad: u16,
    pub remote_port: u32,
    /// Out.
    pub local_port: u32,
}

/// `EVTCHNOP_bind_virq`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnBindVirq {
    /// A [`super::virq`] number.
    pub virq: u32,
    pub vcpu: u32,
    /// Out.
    pub port: u32,
}

/// `EVTCHNOP_bind_pirq`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnBindPirq {
    pub pirq: u32,
    pub flags: u32,
    /// Out.
    pub port: u32,
}

/// `EVTCHNOP_bind_ipi`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnBindIpi {
    pub vcpu: u32,
    /// Out.
    pub port: u32,
}

/// `EVTCHNOP_close`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnClose {
    pub port: u32,
}

/// `EVTCHNOP_send`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnSend {
    pub port: u32,
}

/// `EVTCHNOP_unmask`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnUnmask {
    pub port: u32,
}

/// `EVTCHNOP_bind_vcpu`: deliver `port` to `vcpu`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnBindVcpu {
    pub port: u32,
    pub vcpu: u32,
}

/// `EVTCHNOP_set_priority` (FIFO ABI).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnSetPriority {
    pub port: u32,
    pub priority: u32,
}

/// `EVTCHNOP_init_control` (FIFO ABI).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnInitControl {
    pub control_gfn: u64,
    pub offset: u32,
    pub vcpu: u32,
    /// Out.
    pub link_bits: u8,
    pub _pad: [u8; 7],
}

/// `EVTCHNOP_expand_array` (FIFO ABI).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnExpandArray {
    pub array_gfn: u64,
}

/// `EVTCHNOP_reset`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnReset {
    pub dom: DomId,
}

/// `EVTCHNOP_status`. The 8-byte union `u` at offset 16 is kept as raw words; read it with the
/// accessors according to `status`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct EvtchnStatus {
    pub dom: DomId,
    pub _pad: u16,
    pub port: u32,
    /// Out: an [`super::evtchnstat`] value.
    pub status: u32,
    /// Out: the vCPU the port notifies.
    pub vcpu: u32,
    /// Out: `unbound.dom` / `interdomain.dom` (low 16 bits of word 0), `pirq` / `virq`
    /// (word 0), `interdomain.port` (word 1).
    pub u: [u32; 2],
}

impl EvtchnStatus {
    /// The peer domain of an unbound or interdomain port.
    pub const fn remote_dom(&self) -> DomId {
        self.u[0] as DomId
    }
    /// The peer port of an interdomain port.
    pub const fn remote_port(&self) -> u32 {
        self.u[1]
    }
    /// The VIRQ (or PIRQ) number.
    pub const fn irq(&self) -> u32 {
        self.u[0]
    }
    /// Fills the union for an unbound or interdomain port.
    pub fn set_remote(&mut self, dom: DomId, port: u32) {
        self.u = [u32::from(dom), port];
    }
}

/// `GNTTABOP_map_grant_ref` element.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GnttabMapGrantRef {
    /// Where to map (for HVM: a guest-physical address).
    pub host_addr: u64,
    /// [`super::gntmap`] bits.
    pub flags: u32,
    /// The granter's grant reference.
    pub gref: u32,
    /// The granter.
    pub dom: DomId,
    /// Out: a [`super::gntst`] code.
    pub status: i16,
    /// Out: the handle to unmap with.
    pub handle: u32,
    /// Out (device maps).
    pub dev_bus_addr: u64,
}

/// `GNTTABOP_unmap_grant_ref` element.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GnttabUnmapGrantRef {
    pub host_addr: u64,
    pub dev_bus_addr: u64,
    pub handle: u32,
    /// Out: a [`super::gntst`] code.
    pub status: i16,
    pub _pad: u16,
}

/// `GNTTABOP_setup_table` (PV guests; HVM guests use `XENMEM_add_to_physmap`).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GnttabSetupTable {
    pub dom: DomId,
    pub _pad0: u16,
    pub nr_frames: u32,
    /// Out.
    pub status: i16,
    pub _pad1: [u16; 3],
    /// Guest address of an array of `nr_frames` frame numbers (out).
    pub frame_list: u64,
}

/// One side of a [`GnttabCopy`]. Xen's `u` is a union of a `grant_ref_t` (u32) and a
/// `xen_pfn_t` (u64); little-endian, so the grant reference is the low 32 bits of `u`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GnttabCopyPtr {
    /// Grant reference (with the `*_GREF` flag; only the low 32 bits count) or local guest
    /// frame number.
    pub u: u64,
    pub domid: DomId,
    /// Byte offset in the page.
    pub offset: u16,
    pub _pad: u32,
}

impl GnttabCopyPtr {
    /// The grant-reference reading of the union.
    pub const fn gref(&self) -> u32 {
        self.u as u32
    }
    /// The frame-number reading of the union.
    pub const fn gmfn(&self) -> u64 {
        self.u
    }
}

/// `GNTTABOP_copy` element.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GnttabCopy {
    pub source: GnttabCopyPtr,
    pub dest: GnttabCopyPtr,
    /// Bytes; neither side may cross its page end.
    pub len: u16,
    /// [`super::gntcopy`] bits.
    pub flags: u16,
    /// Out: a [`super::gntst`] code.
    pub status: i16,
    pub _pad: u16,
}

/// `GNTTABOP_query_size`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GnttabQuerySize {
    pub dom: DomId,
    pub _pad0: u16,
    /// Out: frames in use / the limit.
    pub nr_frames: u32,
    pub max_nr_frames: u32,
    /// Out.
    pub status: i16,
    pub _pad1: u16,
}

/// `GNTTABOP_set_version`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GnttabSetVersion {
    /// In: 1 or 2; out: the version in force.
    pub version: u32,
}

/// `GNTTABOP_get_version`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GnttabGetVersion {
    pub dom: DomId,
    pub pad: u16,
    /// Out.
    pub version: u32,
}

/// `GNTTABOP_get_status_frames` (v2).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Pod, Zeroable)]
pub struct GnttabGetStatusFrames {
    pub nr_frames: u32,
    pub dom: DomId,
    /// Out.
    pub status: i16,
    pub frame_list: u64,
}

const _: () = assert!(size_of::<XenFeatureInfo>() == 8);
const _: () = assert!(size_of::<XenAddToPhysmap>() == 24 && offset_of!(XenAddToPhysmap, idx) == 8);
const _: () = assert!(size_of::<XenMemoryMap>() == 16);
const _: () = assert!(size_of::<XenMemoryReservation>() == 32 && offset_of!(XenMemoryReservation, domid) == 24);
const _: () = assert!(size_of::<XenHvmParam>() == 16 && offset_of!(XenHvmParam, value) == 8);
const _: () = assert!(size_of::<XenHvmPagetableDying>() == 16);
const _: () = assert!(size_of::<XenHvmEvtchnUpcallVector>() == 8);
const _: () = assert!(size_of::<VcpuRegisterVcpuInfo>() == 16);
const _: () = assert!(size_of::<VcpuSetSingleshotTimer>() == 16);
const _: () = assert!(size_of::<VcpuRegisterRunstateMemoryArea>() == 8);
const _: () = assert!(size_of::<SchedShutdown>() == 4);
const _: () = assert!(size_of::<SchedPoll>() == 24 && offset_of!(SchedPoll, timeout) == 16);
const _: () = assert!(size_of::<EvtchnAllocUnbound>() == 8);
const _: () = assert!(size_of::<EvtchnBindInterdomain>() == 12);
const _: () = assert!(size_of::<EvtchnBindVirq>() == 12);
const _: () = assert!(size_of::<EvtchnStatus>() == 24 && offset_of!(EvtchnStatus, u) == 16);
const _: () = assert!(size_of::<EvtchnInitControl>() == 24);
const _: () = assert!(size_of::<GnttabMapGrantRef>() == 32 && offset_of!(GnttabMapGrantRef, handle) == 20);
const _: () = assert!(size_of::<GnttabUnmapGrantRef>() == 24);
const _: () = assert!(size_of::<GnttabSetupTable>() == 24 && offset_of!(GnttabSetupTable, frame_list) == 16);
const _: () = assert!(size_of::<GnttabCopy>() == 40 && offset_of!(GnttabCopy, status) == 36);
const _: () = assert!(size_of::<GnttabQuerySize>() == 16);
const _: () = assert!(size_of::<GnttabGetStatusFrames>() == 16);
