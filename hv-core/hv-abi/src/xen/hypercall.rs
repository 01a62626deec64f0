//! Hypercall numbers (`rax` at `vmmcall`) and the sub-operation numbers of the multiplexed calls
//! (their first argument, `rdi`). Values from Xen's public headers (`xen.h`, `version.h`,
//! `memory.h`, `hvm/hvm_op.h`, `hvm/params.h`, `vcpu.h`, `event_channel.h`, `grant_table.h`,
//! `sched.h`, `physdev.h`, `features.h`), checked by `tests/xen_headers.rs`.

/// Hypercall numbers (`__HYPERVISOR_*`).
pub mod nr {
    pub const SET_TRAP_TABLE: u64 = 0;
    pub const MMU_UPDATE: u64 = 1;
    pub const SET_GDT: u64 = 2;
    pub const STACK_SWITCH: u64 = 3;
    pub const SET_CALLBACKS: u64 = 4;
    pub const FPU_TASKSWITCH: u64 = 5;
    /// The pre-3.0.2 form of `sched_op` (argument by value).
    pub const SCHED_OP_COMPAT: u64 = 6;
    pub const PLATFORM_OP: u64 = 7;
    pub const SET_DEBUGREG: u64 = 8;
    pub const GET_DEBUGREG: u64 = 9;
    pub const UPDATE_DESCRIPTOR: u64 = 10;
    /// `memory_op(cmd, arg)`: see [`super::xenmem`].
    pub const MEMORY_OP: u64 = 12;
    /// `multicall(calls, nr)`: a batch of hypercalls.
    pub const MULTICALL: u64 = 13;
    pub const UPDATE_VA_MAPPING: u64 = 14;
    /// `set_timer_op(timeout_abs_ns)`: the one-shot timer of the calling vCPU (0 cancels).
    pub const SET_TIMER_OP: u64 = 15;
    /// The pre-3.0.2 form of `event_channel_op`.
    pub const EVENT_CHANNEL_OP_COMPAT: u64 = 16;
    /// `xen_version(cmd, arg)`: see [`super::xenver`].
    pub const XEN_VERSION: u64 = 17;
    /// `console_io(cmd, count, buffer)`: see [`super::consoleio`].
    pub const CONSOLE_IO: u64 = 18;
    /// The pre-3.0.2 form of `physdev_op`.
    pub const PHYSDEV_OP_COMPAT: u64 = 19;
    /// `grant_table_op(cmd, args, count)`: see [`super::gnttabop`].
    pub const GRANT_TABLE_OP: u64 = 20;
    /// `vm_assist(cmd, type)`: see [`super::vmasst`].
    pub const VM_ASSIST: u64 = 21;
    pub const UPDATE_VA_MAPPING_OTHERDOMAIN: u64 = 22;
    /// PV only; HVM hypercall pages put `ud2` in this slot.
    pub const IRET: u64 = 23;
    /// `vcpu_op(cmd, vcpuid, arg)`: see [`super::vcpuop`].
    pub const VCPU_OP: u64 = 24;
    pub const SET_SEGMENT_BASE: u64 = 25;
    pub const MMUEXT_OP: u64 = 26;
    pub const XSM_OP: u64 = 27;
    pub const NMI_OP: u64 = 28;
    /// `sched_op(cmd, arg)`: see [`super::schedop`].
    pub const SCHED_OP: u64 = 29;
    pub const CALLBACK_OP: u64 = 30;
    pub const XENOPROF_OP: u64 = 31;
    /// `event_channel_op(cmd, arg)`: see [`super::evtchnop`].
    pub const EVENT_CHANNEL_OP: u64 = 32;
    /// `physdev_op(cmd, arg)`: see [`super::physdevop`].
    pub const PHYSDEV_OP: u64 = 33;
    /// `hvm_op(cmd, arg)`: see [`super::hvmop`].
    pub const HVM_OP: u64 = 34;
    pub const SYSCTL: u64 = 35;
    pub const DOMCTL: u64 = 36;
    pub const KEXEC_OP: u64 = 37;
    pub const TMEM_OP: u64 = 38;
    pub const ARGO_OP: u64 = 39;
    pub const XENPMU_OP: u64 = 40;
    pub const DM_OP: u64 = 41;
    pub const HYPFS_OP: u64 = 42;
    /// First of the eight architecture-specific numbers (`arch_0` .. `arch_7` = 48 .. 55).
    pub const ARCH_0: u64 = 48;
    /// x86: `mca` (machine-check architecture), `arch_0`.
    pub const MCA: u64 = ARCH_0;
    /// Slots in a hypercall page (the page holds 128 stubs of 32 bytes).
    pub const HYPERCALL_PAGE_SLOTS: u64 = 128;
    /// Bytes per stub in a hypercall page.
    pub const HYPERCALL_STUB_SIZE: u64 = 32;
}

/// `xen_version` commands (`XENVER_*`).
pub mod xenver {
    /// Returns `major << 16 | minor`; no argument.
    pub const VERSION: u64 = 0;
    /// Writes a 16-byte NUL-padded string (e.g. `".0"`).
    pub const EXTRAVERSION: u64 = 1;
    /// Writes `xen_compile_info` (4 strings: 64+16+32+32 bytes).
    pub const COMPILE_INFO: u64 = 2;
    /// Writes a 1024-byte capabilities string.
    pub const CAPABILITIES: u64 = 3;
    /// Writes a 64-byte changeset string.
    pub const CHANGESET: u64 = 4;
    /// Writes `xen_platform_parameters` (the hypervisor's virtual start).
    pub const PLATFORM_PARAMETERS: u64 = 5;
    /// In/out [`super::XenFeatureInfo`]: one 32-bit word of `XENFEAT_*` bits.
    pub const GET_FEATURES: u64 = 6;
    /// Returns the page size.
    pub const PAGESIZE: u64 = 7;
    /// Writes the 16-byte domain handle (UUID).
    pub const GUEST_HANDLE: u64 = 8;
    /// Writes the 1024-byte hypervisor command line.
    pub const COMMANDLINE: u64 = 9;
    /// Writes the build id.
    pub const BUILD_ID: u64 = 10;
    /// Length of the `extraversion` buffer.
    pub const EXTRAVERSION_LEN: usize = 16;
}

/// `memory_op` commands (`XENMEM_*`).
pub mod xenmem {
    pub const INCREASE_RESERVATION: u64 = 0;
    /// [`super::XenMemoryReservation`]: give frames back (ballooning).
    pub const DECREASE_RESERVATION: u64 = 1;
    pub const MAXIMUM_RAM_PAGE: u64 = 2;
    pub const CURRENT_RESERVATION: u64 = 3;
    pub const MAXIMUM_RESERVATION: u64 = 4;
    pub const MACHPHYS_MFN_LIST: u64 = 5;
    /// [`super::XenMemoryReservation`]: back guest frames with memory.
    pub const POPULATE_PHYSMAP: u64 = 6;
    /// [`super::XenAddToPhysmap`]: place a special page (shared_info, grant frame) at a guest
    /// frame.
    pub const ADD_TO_PHYSMAP: u64 = 7;
    /// [`super::XenMemoryMap`]: the domain's e820 map.
    pub const MEMORY_MAP: u64 = 9;
    pub const MACHINE_MEMORY_MAP: u64 = 10;
    pub const EXCHANGE: u64 = 11;
    pub const MACHPHYS_MAPPING: u64 = 12;
    pub const SET_MEMORY_MAP: u64 = 13;
    pub const MAXIMUM_GPFN: u64 = 14;
    pub const REMOVE_FROM_PHYSMAP: u64 = 15;
    pub const SET_POD_TARGET: u64 = 16;
    pub const GET_POD_TARGET: u64 = 17;
    pub const GET_SHARING_FREED_PAGES: u64 = 18;
    pub const GET_SHARING_SHARED_PAGES: u64 = 19;
    pub const PAGING_OP: u64 = 20;
    pub const ACCESS_OP: u64 = 21;
    pub const SHARING_OP: u64 = 22;
    pub const ADD_TO_PHYSMAP_BATCH: u64 = 23;
    pub const CLAIM_PAGES: u64 = 24;
    pub const MACHPHYS_COMPAT_MFN_LIST: u64 = 25;
    pub const GET_VNUMAINFO: u64 = 26;
    pub const RESERVED_DEVICE_MEMORY_MAP: u64 = 27;
    pub const ACQUIRE_RESOURCE: u64 = 28;
}

/// `XenAddToPhysmap::space` values (`XENMAPSPACE_*`).
pub mod xenmapspace {
    /// The shared_info page (`idx` 0).
    pub const SHARED_INFO: u32 = 0;
    /// Grant-table frame `idx` (or status frame, with [`GRANT_TABLE_STATUS_IDX`]).
    pub const GRANT_TABLE: u32 = 1;
    pub const GMFN: u32 = 2;
    pub const GMFN_RANGE: u32 = 3;
    pub const GMFN_FOREIGN: u32 = 4;
    pub const DEV_MMIO: u32 = 5;
    /// `XENMAPIDX_grant_table_status`: flag in `idx` selecting a v2 status frame.
    pub const GRANT_TABLE_STATUS_IDX: u64 = 0x8000_0000;
}

/// `hvm_op` commands (`HVMOP_*`).
pub mod hvmop {
    /// [`super::XenHvmParam`]: write a parameter ([`super::hvm_param`]).
    pub const SET_PARAM: u64 = 0;
    /// [`super::XenHvmParam`]: read a parameter.
    pub const GET_PARAM: u64 = 1;
    pub const FLUSH_TLBS: u64 = 5;
    /// [`super::XenHvmPagetableDying`]: a hint; Linux probes it once at boot.
    pub const PAGETABLE_DYING: u64 = 9;
    pub const GET_TIME: u64 = 10;
    pub const XENTRACE: u64 = 11;
    pub const SET_MEM_ACCESS: u64 = 12;
    pub const GET_MEM_ACCESS: u64 = 13;
    pub const GET_MEM_TYPE: u64 = 15;
    /// [`super::XenHvmEvtchnUpcallVector`]: per-vCPU LAPIC vector for event upcalls.
    pub const SET_EVTCHN_UPCALL_VECTOR: u64 = 23;
    pub const GUEST_REQUEST_VM_EVENT: u64 = 24;
    pub const ALTP2M: u64 = 25;
}

/// HVM parameter indices (`HVM_PARAM_*`, [`super::XenHvmParam::index`]).
pub mod hvm_param {
    /// How event upcalls are delivered; see [`CALLBACK_TYPE_SHIFT`].
    pub const CALLBACK_IRQ: u32 = 0;
    /// Guest frame of the xenstore ring page.
    pub const STORE_PFN: u32 = 1;
    /// Event-channel port of the xenstore ring.
    pub const STORE_EVTCHN: u32 = 2;
    pub const PAE_ENABLED: u32 = 4;
    pub const IOREQ_PFN: u32 = 5;
    pub const BUFIOREQ_PFN: u32 = 6;
    pub const VIRIDIAN: u32 = 9;
    pub const TIMER_MODE: u32 = 10;
    pub const HPET_ENABLED: u32 = 11;
    pub const IDENT_PT: u32 = 12;
    pub const DM_DOMAIN: u32 = 13;
    pub const ACPI_S_STATE: u32 = 14;
    pub const VM86_TSS: u32 = 15;
    pub const VPT_ALIGN: u32 = 16;
    /// Guest frame of the PV console ring ([`super::XenconsInterface`]).
    pub const CONSOLE_PFN: u32 = 17;
    /// Event-channel port of the PV console.
    pub const CONSOLE_EVTCHN: u32 = 18;
    pub const ACPI_IOPORTS_LOCATION: u32 = 19;
    pub const NESTEDHVM: u32 = 24;
    pub const BUFIOREQ_EVTCHN: u32 = 26;
    pub const PAGING_RING_PFN: u32 = 27;
    pub const MONITOR_RING_PFN: u32 = 28;
    pub const SHARING_RING_PFN: u32 = 29;
    pub const TRIPLE_FAULT_REASON: u32 = 31;
    pub const IOREQ_SERVER_PFN: u32 = 32;
    pub const NR_IOREQ_SERVER_PAGES: u32 = 33;
    pub const VM_GENERATION_ID_ADDR: u32 = 34;
    pub const ALTP2M: u32 = 35;
    pub const X87_FIP_WIDTH: u32 = 36;
    pub const VM86_TSS_SIZED: u32 = 37;
    pub const MCA_CAP: u32 = 38;
    /// `CALLBACK_IRQ` values carry their type in bits 56..63.
    pub const CALLBACK_TYPE_SHIFT: u32 = 56;
    /// Type 0: the low bits are a GSI.
    pub const CALLBACK_TYPE_GSI: u64 = 0;
    /// Type 1: the low bits name a PCI INTx line.
    pub const CALLBACK_TYPE_PCI_INTX: u64 = 1;
    /// Type 2 (x86): the low 8 bits are an IDT vector injected directly (Linux uses 0xf3).
    pub const CALLBACK_TYPE_VECTOR: u64 = 2;
}

/// `vcpu_op` commands (`VCPUOP_*`); the second argument is the vCPU id.
pub mod vcpuop {
    pub const INITIALISE: u64 = 0;
    pub const UP: u64 = 1;
    pub const DOWN: u64 = 2;
    pub const IS_UP: u64 = 3;
    pub const GET_RUNSTATE_INFO: u64 = 4;
    /// [`super::VcpuRegisterRunstateMemoryArea`].
    pub const REGISTER_RUNSTATE_MEMORY_AREA: u64 = 5;
    /// [`super::VcpuSetPeriodicTimer`].
    pub const SET_PERIODIC_TIMER: u64 = 6;
    /// No argument.
    pub const STOP_PERIODIC_TIMER: u64 = 7;
    /// [`super::VcpuSetSingleshotTimer`].
    pub const SET_SINGLESHOT_TIMER: u64 = 8;
    /// No argument.
    pub const STOP_SINGLESHOT_TIMER: u64 = 9;
    /// [`super::VcpuRegisterVcpuInfo`].
    pub const REGISTER_VCPU_INFO: u64 = 10;
    pub const SEND_NMI: u64 = 11;
    pub const GET_PHYSID: u64 = 12;
    /// [`super::VcpuRegisterTimeMemoryArea`].
    pub const REGISTER_VCPU_TIME_MEMORY_AREA: u64 = 13;
    /// `VCPU_SSHOTTMR_future`: fail with `-ETIME` if the deadline has already passed.
    pub const SSHOTTMR_FUTURE: u32 = 1;
}

/// `vcpu_runstate_info::state` values (`RUNSTATE_*`).
pub mod runstate {
    pub const RUNNING: i32 = 0;
    pub const RUNNABLE: i32 = 1;
    pub const BLOCKED: i32 = 2;
    pub const OFFLINE: i32 = 3;
    /// `XEN_RUNSTATE_UPDATE`: set in `state_entry_time` while the hypervisor rewrites the area
    /// (only if the guest enabled `VMASST_TYPE_runstate_update_flag`).
    pub const UPDATE: u64 = 1 << 63;
}

/// `event_channel_op` commands (`EVTCHNOP_*`).
pub mod evtchnop {
    pub const BIND_INTERDOMAIN: u64 = 0;
    pub const BIND_VIRQ: u64 = 1;
    pub const BIND_PIRQ: u64 = 2;
    pub const CLOSE: u64 = 3;
    pub const SEND: u64 = 4;
    pub const STATUS: u64 = 5;
    pub const ALLOC_UNBOUND: u64 = 6;
    pub const BIND_IPI: u64 = 7;
    pub const BIND_VCPU: u64 = 8;
    pub const UNMASK: u64 = 9;
    pub const RESET: u64 = 10;
    /// FIFO ABI setup; `-ENOSYS` keeps a guest on the 2-level ABI.
    pub const INIT_CONTROL: u64 = 11;
    pub const EXPAND_ARRAY: u64 = 12;
    pub const SET_PRIORITY: u64 = 13;
}

/// [`super::EvtchnStatus::status`] values (`EVTCHNSTAT_*`).
pub mod evtchnstat {
    pub const CLOSED: u32 = 0;
    pub const UNBOUND: u32 = 1;
    pub const INTERDOMAIN: u32 = 2;
    pub const PIRQ: u32 = 3;
    pub const VIRQ: u32 = 4;
    pub const IPI: u32 = 5;
}

/// `grant_table_op` commands (`GNTTABOP_*`); the third argument is an element count.
pub mod gnttabop {
    pub const MAP_GRANT_REF: u64 = 0;
    pub const UNMAP_GRANT_REF: u64 = 1;
    pub const SETUP_TABLE: u64 = 2;
    pub const DUMP_TABLE: u64 = 3;
    pub const TRANSFER: u64 = 4;
    pub const COPY: u64 = 5;
    pub const QUERY_SIZE: u64 = 6;
    pub const UNMAP_AND_REPLACE: u64 = 7;
    pub const SET_VERSION: u64 = 8;
    pub const GET_STATUS_FRAMES: u64 = 9;
    pub const GET_VERSION: u64 = 10;
    pub const SWAP_GRANT_REF: u64 = 11;
    pub const CACHE_FLUSH: u64 = 12;
}

/// `GnttabMapGrantRef::flags` bits (`GNTMAP_*`).
pub mod gntmap {
    pub const DEVICE_MAP: u32 = 1 << 0;
    pub const HOST_MAP: u32 = 1 << 1;
    pub const READONLY: u32 = 1 << 2;
    pub const APPLICATION_MAP: u32 = 1 << 3;
    pub const CONTAINS_PTE: u32 = 1 << 4;
}

/// `GnttabCopy::flags` bits (`GNTCOPY_*`).
pub mod gntcopy {
    /// The source is a grant reference (else a local guest frame).
    pub const SOURCE_GREF: u16 = 1 << 0;
    /// The destination is a grant reference (else a local guest frame).
    pub const DEST_GREF: u16 = 1 << 1;
}

/// Grant operation status codes (`GNTST_*`), the `status` field of the grant argument structs.
/// A superset of [`crate::gntst`], which names only those the native ABI produces.
pub mod gntst {
    pub const OKAY: i16 = 0;
    pub const GENERAL_ERROR: i16 = -1;
    pub const BAD_DOMAIN: i16 = -2;
    pub const BAD_GNTREF: i16 = -3;
    pub const BAD_HANDLE: i16 = -4;
    pub const BAD_VIRT_ADDR: i16 = -5;
    pub const BAD_DEV_ADDR: i16 = -6;
    pub const NO_DEVICE_SPACE: i16 = -7;
    pub const PERMISSION_DENIED: i16 = -8;
    pub const BAD_PAGE: i16 = -9;
    pub const BAD_COPY_ARG: i16 = -10;
    pub const ADDRESS_TOO_BIG: i16 = -11;
    pub const EAGAIN: i16 = -12;
    pub const NO_SPACE: i16 = -13;
}

/// `sched_op` commands (`SCHEDOP_*`).
pub mod schedop {
    pub const YIELD: u64 = 0;
    pub const BLOCK: u64 = 1;
    /// [`super::SchedShutdown`].
    pub const SHUTDOWN: u64 = 2;
    /// [`super::SchedPoll`].
    pub const POLL: u64 = 3;
    pub const REMOTE_SHUTDOWN: u64 = 4;
    pub const SHUTDOWN_CODE: u64 = 5;
    pub const WATCHDOG: u64 = 6;
    pub const PIN_OVERRIDE: u64 = 7;
}

/// [`super::SchedShutdown::reason`] values (`SHUTDOWN_*`).
pub mod shutdown_reason {
    pub const POWEROFF: u32 = 0;
    pub const REBOOT: u32 = 1;
    pub const SUSPEND: u32 = 2;
    pub const CRASH: u32 = 3;
    pub const WATCHDOG: u32 = 4;
    pub const SOFT_RESET: u32 = 5;
    /// The highest defined reason.
    pub const MAX: u32 = SOFT_RESET;
}

/// `console_io` commands (`CONSOLEIO_*`): `console_io(cmd, count, buffer)`.
pub mod consoleio {
    pub const WRITE: u64 = 0;
    pub const READ: u64 = 1;
}

/// `vm_assist(cmd, type)` commands and types (`VMASST_*`).
pub mod vmasst {
    pub const CMD_ENABLE: u64 = 0;
    pub const CMD_DISABLE: u64 = 1;
    pub const TYPE_4GB_SEGMENTS: u64 = 0;
    pub const TYPE_4GB_SEGMENTS_NOTIFY: u64 = 1;
    pub const TYPE_WRITABLE_PAGETABLES: u64 = 2;
    pub const TYPE_PAE_EXTENDED_CR3: u64 = 3;
    pub const TYPE_ARCHITECTURAL_IOPL: u64 = 4;
    /// Linux enables this one: [`super::runstate::UPDATE`] marks runstate rewrites.
    pub const TYPE_RUNSTATE_UPDATE_FLAG: u64 = 5;
    pub const TYPE_M2P_STRICT: u64 = 32;
}

/// Virtual interrupt numbers (`VIRQ_*`), [`super::EvtchnBindVirq::virq`].
pub mod virq {
    /// Per vCPU: the timer (singleshot/periodic) fired.
    pub const TIMER: u32 = 0;
    /// Per vCPU: dump debug state.
    pub const DEBUG: u32 = 1;
    /// Global (dom0): emergency console input.
    pub const CONSOLE: u32 = 2;
    /// Global (dom0): a domain hit an exceptional event.
    pub const DOM_EXC: u32 = 3;
    pub const TBUF: u32 = 4;
    pub const DEBUGGER: u32 = 6;
    pub const XENOPROF: u32 = 7;
    pub const CON_RING: u32 = 8;
    pub const PCPU_STATE: u32 = 9;
    pub const MEM_EVENT: u32 = 10;
    pub const ARGO: u32 = 11;
    pub const ENOMEM: u32 = 12;
    pub const XENPMU: u32 = 13;
    /// First architecture-specific VIRQ (`VIRQ_ARCH_0`; 8 of them).
    pub const ARCH_0: u32 = 16;
    /// One past the highest VIRQ number (`NR_VIRQS`).
    pub const NR: u32 = 24;
}

/// `physdev_op` commands (`PHYSDEVOP_*`) an HVM guest may try; all are for passthrough.
pub mod physdevop {
    pub const IRQ_STATUS_QUERY: u64 = 5;
    pub const SET_IOPL: u64 = 6;
    pub const SET_IOBITMAP: u64 = 7;
    pub const APIC_READ: u64 = 8;
    pub const APIC_WRITE: u64 = 9;
    pub const ALLOC_IRQ_VECTOR: u64 = 10;
    pub const FREE_IRQ_VECTOR: u64 = 11;
    pub const EOI: u64 = 12;
    pub const MAP_PIRQ: u64 = 13;
    pub const UNMAP_PIRQ: u64 = 14;
    pub const MANAGE_PCI_ADD: u64 = 15;
    pub const MANAGE_PCI_REMOVE: u64 = 16;
    pub const PIRQ_EOI_GMFN_V1: u64 = 17;
    pub const RESTORE_MSI: u64 = 19;
    pub const MANAGE_PCI_ADD_EXT: u64 = 20;
    pub const SETUP_GSI: u64 = 21;
    pub const GET_FREE_PIRQ: u64 = 23;
    pub const PCI_MMCFG_RESERVED: u64 = 24;
    pub const PCI_DEVICE_ADD: u64 = 25;
    pub const PCI_DEVICE_REMOVE: u64 = 26;
    pub const RESTORE_MSI_EXT: u64 = 27;
    pub const PIRQ_EOI_GMFN_V2: u64 = 28;
    pub const DBGP_OP: u64 = 29;
    pub const PREPARE_MSIX: u64 = 30;
    pub const RELEASE_MSIX: u64 = 31;
}

/// Feature bit numbers (`XENFEAT_*`) in the word `XENVER_get_features` returns for
/// `submap_idx` 0: bit `n` set means feature `n` is offered.
pub mod xenfeat {
    pub const WRITABLE_PAGE_TABLES: u32 = 0;
    pub const WRITABLE_DESCRIPTOR_TABLES: u32 = 1;
    /// Guest-physical addresses are translated by the hypervisor (every HVM/PVH guest).
    pub const AUTO_TRANSLATED_PHYSMAP: u32 = 2;
    pub const SUPERVISOR_MODE_KERNEL: u32 = 3;
    pub const PAE_PGDIR_ABOVE_4GB: u32 = 4;
    pub const MMU_PT_UPDATE_PRESERVE_AD: u32 = 5;
    pub const HIGHMEM_ASSIST: u32 = 6;
    pub const GNTTAB_MAP_AVAIL_BITS: u32 = 7;
    /// `HVM_PARAM_CALLBACK_IRQ` accepts the vector type.
    pub const HVM_CALLBACK_VECTOR: u32 = 8;
    /// `vcpu_info.time` is safe to use as the clock source (Linux requires it for PVH).
    pub const HVM_SAFE_PVCLOCK: u32 = 9;
    pub const HVM_PIRQS: u32 = 10;
    pub const DOM0: u32 = 11;
    pub const MEMORY_OP_VNODE_SUPPORTED: u32 = 13;
    pub const ARM_SMCCC_SUPPORTED: u32 = 14;
    pub const LINUX_RSDP_UNRESTRICTED: u32 = 15;
    pub const NOT_DIRECT_MAPPED: u32 = 16;
    pub const DIRECT_MAPPED: u32 = 17;
    /// Number of 32-bit feature words (`XENFEAT_NR_SUBMAPS`).
    pub const NR_SUBMAPS: u32 = 1;
}

/// The Xen CPUID leaves (`arch-x86/cpuid.h`).
pub mod cpuid {
    /// The first Xen leaf: EAX = last leaf, EBX/ECX/EDX = `"XenVMMXenVMM"`. Xen may also place
    /// its leaves at 0x40000100 (etc.) when another hypervisor interface occupies this one.
    pub const BASE: u32 = 0x4000_0000;
    /// `"XenV"` in EBX.
    pub const SIGNATURE_EBX: u32 = 0x566e_6558;
    /// `"MMXe"` in ECX.
    pub const SIGNATURE_ECX: u32 = 0x6558_4d4d;
    /// `"nVMM"` in EDX.
    pub const SIGNATURE_EDX: u32 = 0x4d4d_566e;
    /// The signature as the 12 bytes EBX, ECX, EDX spell.
    pub const SIGNATURE: &[u8; 12] = b"XenVMMXenVMM";
    /// Leaves after `BASE` Xen defines (`XEN_CPUID_MAX_NUM_LEAVES`).
    pub const MAX_NUM_LEAVES: u32 = 5;
    /// Leaf `BASE + 4`, EAX bits (`XEN_HVM_CPUID_*`).
    pub const HVM_APIC_ACCESS_VIRT: u32 = 1 << 0;
    pub const HVM_X2APIC_VIRT: u32 = 1 << 1;
    pub const HVM_IOMMU_MAPPINGS: u32 = 1 << 2;
    /// EBX holds the vCPU id.
    pub const HVM_VCPU_ID_PRESENT: u32 = 1 << 3;
    /// ECX holds the domain id.
    pub const HVM_DOMID_PRESENT: u32 = 1 << 4;
    pub const HVM_EXT_DEST_ID: u32 = 1 << 5;
    /// `HVMOP_set_evtchn_upcall_vector` is available.
    pub const HVM_UPCALL_VECTOR: u32 = 1 << 6;
}

/// ELF note types in the `"Xen"` note namespace (`elfnote.h`) a PVH loader reads.
pub mod elfnote {
    /// Descriptor: the 32-bit physical entry point (PVH).
    pub const PHYS32_ENTRY: u32 = 18;
    /// The note's name field (with its NUL).
    pub const NAME: &[u8; 4] = b"Xen\0";
}
