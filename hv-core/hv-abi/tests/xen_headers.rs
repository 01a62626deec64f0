//! Byte-for-byte check of `hv_abi::xen` against Xen's own public headers (Debian `libxen-dev`):
//! `c/xen_hvm_layout.c` prints the size of every mirrored struct, the offset of every field and
//! the value of every constant; each must equal ours, and each of ours must appear in its output.
//! The constants' C names come from the table below: the test writes them into a header the C
//! program includes, so a name Xen does not define fails the C build.
#![cfg(not(miri))]

use std::collections::BTreeMap;
use std::mem::offset_of;
use std::path::{Path, PathBuf};
use std::process::Command;

use hv_abi::xen::*;

const XEN_H: &str = "/usr/include/xen/xen.h";

/// Every constant: (Xen's C name, our value).
fn constants() -> Vec<(&'static str, i64)> {
    let mut v: Vec<(&'static str, i64)> = Vec::new();
    macro_rules! c {
        ($($c:ident = $r:expr),* $(,)?) => { $( v.push((stringify!($c), ($r) as i64)); )* };
    }
    c!(
        __HYPERVISOR_set_trap_table = nr::SET_TRAP_TABLE,
        __HYPERVISOR_mmu_update = nr::MMU_UPDATE,
        __HYPERVISOR_set_gdt = nr::SET_GDT,
        __HYPERVISOR_stack_switch = nr::STACK_SWITCH,
        __HYPERVISOR_set_callbacks = nr::SET_CALLBACKS,
        __HYPERVISOR_fpu_taskswitch = nr::FPU_TASKSWITCH,
        __HYPERVISOR_sched_op_compat = nr::SCHED_OP_COMPAT,
        __HYPERVISOR_platform_op = nr::PLATFORM_OP,
        __HYPERVISOR_set_debugreg = nr::SET_DEBUGREG,
        __HYPERVISOR_get_debugreg = nr::GET_DEBUGREG,
        __HYPERVISOR_update_descriptor = nr::UPDATE_DESCRIPTOR,
        __HYPERVISOR_memory_op = nr::MEMORY_OP,
        __HYPERVISOR_multicall = nr::MULTICALL,
        __HYPERVISOR_update_va_mapping = nr::UPDATE_VA_MAPPING,
        __HYPERVISOR_set_timer_op = nr::SET_TIMER_OP,
        __HYPERVISOR_event_channel_op_compat = nr::EVENT_CHANNEL_OP_COMPAT,
        __HYPERVISOR_xen_version = nr::XEN_VERSION,
        __HYPERVISOR_console_io = nr::CONSOLE_IO,
        __HYPERVISOR_physdev_op_compat = nr::PHYSDEV_OP_COMPAT,
        __HYPERVISOR_grant_table_op = nr::GRANT_TABLE_OP,
        __HYPERVISOR_vm_assist = nr::VM_ASSIST,
        __HYPERVISOR_update_va_mapping_otherdomain = nr::UPDATE_VA_MAPPING_OTHERDOMAIN,
        __HYPERVISOR_iret = nr::IRET,
        __HYPERVISOR_vcpu_op = nr::VCPU_OP,
        __HYPERVISOR_set_segment_base = nr::SET_SEGMENT_BASE,
        __HYPERVISOR_mmuext_op = nr::MMUEXT_OP,
        __HYPERVISOR_xsm_op = nr::XSM_OP,
        __HYPERVISOR_nmi_op = nr::NMI_OP,
        __HYPERVISOR_sched_op = nr::SCHED_OP,
        __HYPERVISOR_callback_op = nr::CALLBACK_OP,
        __HYPERVISOR_xenoprof_op = nr::XENOPROF_OP,
        __HYPERVISOR_event_channel_op = nr::EVENT_CHANNEL_OP,
        __HYPERVISOR_physdev_op = nr::PHYSDEV_OP,
        __HYPERVISOR_hvm_op = nr::HVM_OP,
        __HYPERVISOR_sysctl = nr::SYSCTL,
        __HYPERVISOR_domctl = nr::DOMCTL,
        __HYPERVISOR_kexec_op = nr::KEXEC_OP,
        __HYPERVISOR_tmem_op = nr::TMEM_OP,
        __HYPERVISOR_argo_op = nr::ARGO_OP,
        __HYPERVISOR_xenpmu_op = nr::XENPMU_OP,
        __HYPERVISOR_dm_op = nr::DM_OP,
        __HYPERVISOR_hypfs_op = nr::HYPFS_OP,
        __HYPERVISOR_arch_0 = nr::ARCH_0,
        XENVER_version = xenver::VERSION,
        XENVER_extraversion = xenver::EXTRAVERSION,
        XENVER_compile_info = xenver::COMPILE_INFO,
        XENVER_capabilities = xenver::CAPABILITIES,
        XENVER_changeset = xenver::CHANGESET,
        XENVER_platform_parameters = xenver::PLATFORM_PARAMETERS,
        XENVER_get_features = xenver::GET_FEATURES,
        XENVER_pagesize = xenver::PAGESIZE,
        XENVER_guest_handle = xenver::GUEST_HANDLE,
        XENVER_commandline = xenver::COMMANDLINE,
        XENVER_build_id = xenver::BUILD_ID,
        XEN_EXTRAVERSION_LEN = xenver::EXTRAVERSION_LEN,
        XENMEM_increase_reservation = xenmem::INCREASE_RESERVATION,
        XENMEM_decrease_reservation = xenmem::DECREASE_RESERVATION,
        XENMEM_maximum_ram_page = xenmem::MAXIMUM_RAM_PAGE,
        XENMEM_current_reservation = xenmem::CURRENT_RESERVATION,
        XENMEM_maximum_reservation = xenmem::MAXIMUM_RESERVATION,
        XENMEM_machphys_mfn_list = xenmem::MACHPHYS_MFN_LIST,
        XENMEM_populate_physmap = xenmem::POPULATE_PHYSMAP,
        XENMEM_add_to_physmap = xenmem::ADD_TO_PHYSMAP,
        XENMEM_memory_map = xenmem::MEMORY_MAP,
        XENMEM_machine_memory_map = xenmem::MACHINE_MEMORY_MAP,
        XENMEM_exchange = xenmem::EXCHANGE,
        XENMEM_machphys_mapping = xenmem::MACHPHYS_MAPPING,
        XENMEM_set_memory_map = xenmem::SET_MEMORY_MAP,
        XENMEM_maximum_gpfn = xenmem::MAXIMUM_GPFN,
        XENMEM_remove_from_physmap = xenmem::REMOVE_FROM_PHYSMAP,
        XENMEM_set_pod_target = xenmem::SET_POD_TARGET,
        XENMEM_get_pod_target = xenmem::GET_POD_TARGET,
        XENMEM_get_sharing_freed_pages = xenmem::GET_SHARING_FREED_PAGES,
        XENMEM_get_sharing_shared_pages = xenmem::GET_SHARING_SHARED_PAGES,
        XENMEM_paging_op = xenmem::PAGING_OP,
        XENMEM_access_op = xenmem::ACCESS_OP,
        XENMEM_sharing_op = xenmem::SHARING_OP,
        XENMEM_add_to_physmap_batch = xenmem::ADD_TO_PHYSMAP_BATCH,
        XENMEM_claim_pages = xenmem::CLAIM_PAGES,
        XENMEM_machphys_compat_mfn_list = xenmem::MACHPHYS_COMPAT_MFN_LIST,
        XENMEM_get_vnumainfo = xenmem::GET_VNUMAINFO,
        XENMEM_reserved_device_memory_map = xenmem::RESERVED_DEVICE_MEMORY_MAP,
        XENMEM_acquire_resource = xenmem::ACQUIRE_RESOURCE,
        XENMAPSPACE_shared_info = xenmapspace::SHARED_INFO,
        XENMAPSPACE_grant_table = xenmapspace::GRANT_TABLE,
        XENMAPSPACE_gmfn = xenmapspace::GMFN,
        XENMAPSPACE_gmfn_range = xenmapspace::GMFN_RANGE,
        XENMAPSPACE_gmfn_foreign = xenmapspace::GMFN_FOREIGN,
        XENMAPSPACE_dev_mmio = xenmapspace::DEV_MMIO,
        XENMAPIDX_grant_table_status = xenmapspace::GRANT_TABLE_STATUS_IDX,
        HVMOP_set_param = hvmop::SET_PARAM,
        HVMOP_get_param = hvmop::GET_PARAM,
        HVMOP_flush_tlbs = hvmop::FLUSH_TLBS,
        HVMOP_pagetable_dying = hvmop::PAGETABLE_DYING,
        HVMOP_get_time = hvmop::GET_TIME,
        HVMOP_xentrace = hvmop::XENTRACE,
        HVMOP_set_mem_access = hvmop::SET_MEM_ACCESS,
        HVMOP_get_mem_access = hvmop::GET_MEM_ACCESS,
        HVMOP_get_mem_type = hvmop::GET_MEM_TYPE,
        HVMOP_set_evtchn_upcall_vector = hvmop::SET_EVTCHN_UPCALL_VECTOR,
        HVMOP_guest_request_vm_event = hvmop::GUEST_REQUEST_VM_EVENT,
        HVMOP_altp2m = hvmop::ALTP2M,
        HVM_PARAM_CALLBACK_IRQ = hvm_param::CALLBACK_IRQ,
        HVM_PARAM_STORE_PFN = hvm_param::STORE_PFN,
        HVM_PARAM_STORE_EVTCHN = hvm_param::STORE_EVTCHN,
        HVM_PARAM_PAE_ENABLED = hvm_param::PAE_ENABLED,
        HVM_PARAM_IOREQ_PFN = hvm_param::IOREQ_PFN,
        HVM_PARAM_BUFIOREQ_PFN = hvm_param::BUFIOREQ_PFN,
        HVM_PARAM_VIRIDIAN = hvm_param::VIRIDIAN,
        HVM_PARAM_TIMER_MODE = hvm_param::TIMER_MODE,
        HVM_PARAM_HPET_ENABLED = hvm_param::HPET_ENABLED,
        HVM_PARAM_IDENT_PT = hvm_param::IDENT_PT,
        HVM_PARAM_DM_DOMAIN = hvm_param::DM_DOMAIN,
        HVM_PARAM_ACPI_S_STATE = hvm_param::ACPI_S_STATE,
        HVM_PARAM_VM86_TSS = hvm_param::VM86_TSS,
        HVM_PARAM_VPT_ALIGN = hvm_param::VPT_ALIGN,
        HVM_PARAM_CONSOLE_PFN = hvm_param::CONSOLE_PFN,
        HVM_PARAM_CONSOLE_EVTCHN = hvm_param::CONSOLE_EVTCHN,
        HVM_PARAM_ACPI_IOPORTS_LOCATION = hvm_param::ACPI_IOPORTS_LOCATION,
        HVM_PARAM_NESTEDHVM = hvm_param::NESTEDHVM,
        HVM_PARAM_BUFIOREQ_EVTCHN = hvm_param::BUFIOREQ_EVTCHN,
        HVM_PARAM_PAGING_RING_PFN = hvm_param::PAGING_RING_PFN,
        HVM_PARAM_MONITOR_RING_PFN = hvm_param::MONITOR_RING_PFN,
        HVM_PARAM_SHARING_RING_PFN = hvm_param::SHARING_RING_PFN,
        HVM_PARAM_TRIPLE_FAULT_REASON = hvm_param::TRIPLE_FAULT_REASON,
        HVM_PARAM_IOREQ_SERVER_PFN = hvm_param::IOREQ_SERVER_PFN,
        HVM_PARAM_NR_IOREQ_SERVER_PAGES = hvm_param::NR_IOREQ_SERVER_PAGES,
        HVM_PARAM_VM_GENERATION_ID_ADDR = hvm_param::VM_GENERATION_ID_ADDR,
        HVM_PARAM_ALTP2M = hvm_param::ALTP2M,
        HVM_PARAM_X87_FIP_WIDTH = hvm_param::X87_FIP_WIDTH,
        HVM_PARAM_VM86_TSS_SIZED = hvm_param::VM86_TSS_SIZED,
        HVM_PARAM_MCA_CAP = hvm_param::MCA_CAP,
        HVM_PARAM_CALLBACK_TYPE_GSI = hvm_param::CALLBACK_TYPE_GSI,
        HVM_PARAM_CALLBACK_TYPE_PCI_INTX = hvm_param::CALLBACK_TYPE_PCI_INTX,
        HVM_PARAM_CALLBACK_TYPE_VECTOR = hvm_param::CALLBACK_TYPE_VECTOR,
        VCPUOP_initialise = vcpuop::INITIALISE,
        VCPUOP_up = vcpuop::UP,
        VCPUOP_down = vcpuop::DOWN,
        VCPUOP_is_up = vcpuop::IS_UP,
        VCPUOP_get_runstate_info = vcpuop::GET_RUNSTATE_INFO,
        VCPUOP_register_runstate_memory_area = vcpuop::REGISTER_RUNSTATE_MEMORY_AREA,
        VCPUOP_set_periodic_timer = vcpuop::SET_PERIODIC_TIMER,
        VCPUOP_stop_periodic_timer = vcpuop::STOP_PERIODIC_TIMER,
        VCPUOP_set_singleshot_timer = vcpuop::SET_SINGLESHOT_TIMER,
        VCPUOP_stop_singleshot_timer = vcpuop::STOP_SINGLESHOT_TIMER,
        VCPUOP_register_vcpu_info = vcpuop::REGISTER_VCPU_INFO,
        VCPUOP_send_nmi = vcpuop::SEND_NMI,
        VCPUOP_get_physid = vcpuop::GET_PHYSID,
        VCPUOP_register_vcpu_time_memory_area = vcpuop::REGISTER_VCPU_TIME_MEMORY_AREA,
        VCPU_SSHOTTMR_future = vcpuop::SSHOTTMR_FUTURE,
        RUNSTATE_running = runstate::RUNNING,
        RUNSTATE_runnable = runstate::RUNNABLE,
        RUNSTATE_blocked = runstate::BLOCKED,
        RUNSTATE_offline = runstate::OFFLINE,
        XEN_RUNSTATE_UPDATE = runstate::UPDATE,
        EVTCHNOP_bind_interdomain = evtchnop::BIND_INTERDOMAIN,
        EVTCHNOP_bind_virq = evtchnop::BIND_VIRQ,
        EVTCHNOP_bind_pirq = evtchnop::BIND_PIRQ,
        EVTCHNOP_close = evtchnop::CLOSE,
        EVTCHNOP_send = evtchnop::SEND,
        EVTCHNOP_status = evtchnop::STATUS,
        EVTCHNOP_alloc_unbound = evtchnop::ALLOC_UNBOUND,
        EVTCHNOP_bind_ipi = evtchnop::BIND_IPI,
        EVTCHNOP_bind_vcpu = evtchnop::BIND_VCPU,
        EVTCHNOP_unmask = evtchnop::UNMASK,
        EVTCHNOP_reset = evtchnop::RESET,
        EVTCHNOP_init_control = evtchnop::INIT_CONTROL,
        EVTCHNOP_expand_array = evtchnop::EXPAND_ARRAY,
        EVTCHNOP_set_priority = evtchnop::SET_PRIORITY,
        EVTCHNSTAT_closed = evtchnstat::CLOSED,
        EVTCHNSTAT_unbound = evtchnstat::UNBOUND,
        EVTCHNSTAT_interdomain = evtchnstat::INTERDOMAIN,
        EVTCHNSTAT_pirq = evtchnstat::PIRQ,
        EVTCHNSTAT_virq = evtchnstat::VIRQ,
        EVTCHNSTAT_ipi = evtchnstat::IPI,
        EVTCHN_2L_NR_CHANNELS = EVTCHN_2L_NR_CHANNELS,
        GNTTABOP_map_grant_ref = gnttabop::MAP_GRANT_REF,
        GNTTABOP_unmap_grant_ref = gnttabop::UNMAP_GRANT_REF,
        GNTTABOP_setup_table = gnttabop::SETUP_TABLE,
        GNTTABOP_dump_table = gnttabop::DUMP_TABLE,
        GNTTABOP_transfer = gnttabop::TRANSFER,
        GNTTABOP_copy = gnttabop::COPY,
        GNTTABOP_query_size = gnttabop::QUERY_SIZE,
        GNTTABOP_unmap_and_replace = gnttabop::UNMAP_AND_REPLACE,
        GNTTABOP_set_version = gnttabop::SET_VERSION,
        GNTTABOP_get_status_frames = gnttabop::GET_STATUS_FRAMES,
        GNTTABOP_get_version = gnttabop::GET_VERSION,
        GNTTABOP_swap_grant_ref = gnttabop::SWAP_GRANT_REF,
        GNTTABOP_cache_flush = gnttabop::CACHE_FLUSH,
        GNTMAP_device_map = gntmap::DEVICE_MAP,
        GNTMAP_host_map = gntmap::HOST_MAP,
        GNTMAP_readonly = gntmap::READONLY,
        GNTMAP_application_map = gntmap::APPLICATION_MAP,
        GNTMAP_contains_pte = gntmap::CONTAINS_PTE,
        GNTCOPY_source_gref = gntcopy::SOURCE_GREF,
        GNTCOPY_dest_gref = gntcopy::DEST_GREF,
        GNTST_okay = gntst::OKAY,
        GNTST_general_error = gntst::GENERAL_ERROR,
        GNTST_bad_domain = gntst::BAD_DOMAIN,
        GNTST_bad_gntref = gntst::BAD_GNTREF,
        GNTST_bad_handle = gntst::BAD_HANDLE,
        GNTST_bad_virt_addr = gntst::BAD_VIRT_ADDR,
        GNTST_bad_dev_addr = gntst::BAD_DEV_ADDR,
        GNTST_no_device_space = gntst::NO_DEVICE_SPACE,
        GNTST_permission_denied = gntst::PERMISSION_DENIED,
        GNTST_bad_page = gntst::BAD_PAGE,
        GNTST_bad_copy_arg = gntst::BAD_COPY_ARG,
        GNTST_address_too_big = gntst::ADDRESS_TOO_BIG,
        GNTST_eagain = gntst::EAGAIN,
        GNTST_no_space = gntst::NO_SPACE,
        GTF_invalid = gtf::INVALID,
        GTF_permit_access = gtf::PERMIT_ACCESS,
        GTF_accept_transfer = gtf::ACCEPT_TRANSFER,
        GTF_transitive = gtf::TRANSITIVE,
        GTF_type_mask = gtf::TYPE_MASK,
        GTF_readonly = gtf::READONLY,
        GTF_reading = gtf::READING,
        GTF_writing = gtf::WRITING,
        GTF_PWT = gtf::PWT,
        GTF_PCD = gtf::PCD,
        GTF_PAT = gtf::PAT,
        GTF_sub_page = gtf::SUB_PAGE,
        GTF_transfer_committed = gtf::TRANSFER_COMMITTED,
        GTF_transfer_completed = gtf::TRANSFER_COMPLETED,
        SCHEDOP_yield = schedop::YIELD,
        SCHEDOP_block = schedop::BLOCK,
        SCHEDOP_shutdown = schedop::SHUTDOWN,
        SCHEDOP_poll = schedop::POLL,
        SCHEDOP_remote_shutdown = schedop::REMOTE_SHUTDOWN,
        SCHEDOP_shutdown_code = schedop::SHUTDOWN_CODE,
        SCHEDOP_watchdog = schedop::WATCHDOG,
        SCHEDOP_pin_override = schedop::PIN_OVERRIDE,
        SHUTDOWN_poweroff = shutdown_reason::POWEROFF,
        SHUTDOWN_reboot = shutdown_reason::REBOOT,
        SHUTDOWN_suspend = shutdown_reason::SUSPEND,
        SHUTDOWN_crash = shutdown_reason::CRASH,
        SHUTDOWN_watchdog = shutdown_reason::WATCHDOG,
        SHUTDOWN_soft_reset = shutdown_reason::SOFT_RESET,
        SHUTDOWN_MAX = shutdown_reason::MAX,
        CONSOLEIO_write = consoleio::WRITE,
        CONSOLEIO_read = consoleio::READ,
        VMASST_CMD_enable = vmasst::CMD_ENABLE,
        VMASST_CMD_disable = vmasst::CMD_DISABLE,
        VMASST_TYPE_4gb_segments = vmasst::TYPE_4GB_SEGMENTS,
        VMASST_TYPE_4gb_segments_notify = vmasst::TYPE_4GB_SEGMENTS_NOTIFY,
        VMASST_TYPE_writable_pagetables = vmasst::TYPE_WRITABLE_PAGETABLES,
        VMASST_TYPE_pae_extended_cr3 = vmasst::TYPE_PAE_EXTENDED_CR3,
        VMASST_TYPE_architectural_iopl = vmasst::TYPE_ARCHITECTURAL_IOPL,
        VMASST_TYPE_runstate_update_flag = vmasst::TYPE_RUNSTATE_UPDATE_FLAG,
        VMASST_TYPE_m2p_strict = vmasst::TYPE_M2P_STRICT,
        VIRQ_TIMER = virq::TIMER,
        VIRQ_DEBUG = virq::DEBUG,
        VIRQ_CONSOLE = virq::CONSOLE,
        VIRQ_DOM_EXC = virq::DOM_EXC,
        VIRQ_TBUF = virq::TBUF,
        VIRQ_DEBUGGER = virq::DEBUGGER,
        VIRQ_XENOPROF = virq::XENOPROF,
        VIRQ_CON_RING = virq::CON_RING,
        VIRQ_PCPU_STATE = virq::PCPU_STATE,
        VIRQ_MEM_EVENT = virq::MEM_EVENT,
        VIRQ_ARGO = virq::ARGO,
        VIRQ_ENOMEM = virq::ENOMEM,
        VIRQ_XENPMU = virq::XENPMU,
        VIRQ_ARCH_0 = virq::ARCH_0,
        NR_VIRQS = virq::NR,
        PHYSDEVOP_irq_status_query = physdevop::IRQ_STATUS_QUERY,
        PHYSDEVOP_set_iopl = physdevop::SET_IOPL,
        PHYSDEVOP_set_iobitmap = physdevop::SET_IOBITMAP,
        PHYSDEVOP_apic_read = physdevop::APIC_READ,
        PHYSDEVOP_apic_write = physdevop::APIC_WRITE,
        PHYSDEVOP_alloc_irq_vector = physdevop::ALLOC_IRQ_VECTOR,
        PHYSDEVOP_free_irq_vector = physdevop::FREE_IRQ_VECTOR,
        PHYSDEVOP_eoi = physdevop::EOI,
        PHYSDEVOP_map_pirq = physdevop::MAP_PIRQ,
        PHYSDEVOP_unmap_pirq = physdevop::UNMAP_PIRQ,
        PHYSDEVOP_manage_pci_add = physdevop::MANAGE_PCI_ADD,
        PHYSDEVOP_manage_pci_remove = physdevop::MANAGE_PCI_REMOVE,
        PHYSDEVOP_pirq_eoi_gmfn_v1 = physdevop::PIRQ_EOI_GMFN_V1,
        PHYSDEVOP_restore_msi = physdevop::RESTORE_MSI,
        PHYSDEVOP_manage_pci_add_ext = physdevop::MANAGE_PCI_ADD_EXT,
        PHYSDEVOP_setup_gsi = physdevop::SETUP_GSI,
        PHYSDEVOP_get_free_pirq = physdevop::GET_FREE_PIRQ,
        PHYSDEVOP_pci_mmcfg_reserved = physdevop::PCI_MMCFG_RESERVED,
        PHYSDEVOP_pci_device_add = physdevop::PCI_DEVICE_ADD,
        PHYSDEVOP_pci_device_remove = physdevop::PCI_DEVICE_REMOVE,
        PHYSDEVOP_restore_msi_ext = physdevop::RESTORE_MSI_EXT,
        PHYSDEVOP_pirq_eoi_gmfn_v2 = physdevop::PIRQ_EOI_GMFN_V2,
        PHYSDEVOP_dbgp_op = physdevop::DBGP_OP,
        PHYSDEVOP_prepare_msix = physdevop::PREPARE_MSIX,
        PHYSDEVOP_release_msix = physdevop::RELEASE_MSIX,
        XENFEAT_writable_page_tables = xenfeat::WRITABLE_PAGE_TABLES,
        XENFEAT_writable_descriptor_tables = xenfeat::WRITABLE_DESCRIPTOR_TABLES,
        XENFEAT_auto_translated_physmap = xenfeat::AUTO_TRANSLATED_PHYSMAP,
        XENFEAT_supervisor_mode_kernel = xenfeat::SUPERVISOR_MODE_KERNEL,
        XENFEAT_pae_pgdir_above_4gb = xenfeat::PAE_PGDIR_ABOVE_4GB,
        XENFEAT_mmu_pt_update_preserve_ad = xenfeat::MMU_PT_UPDATE_PRESERVE_AD,
        XENFEAT_highmem_assist = xenfeat::HIGHMEM_ASSIST,
        XENFEAT_gnttab_map_avail_bits = xenfeat::GNTTAB_MAP_AVAIL_BITS,
        XENFEAT_hvm_callback_vector = xenfeat::HVM_CALLBACK_VECTOR,
        XENFEAT_hvm_safe_pvclock = xenfeat::HVM_SAFE_PVCLOCK,
        XENFEAT_hvm_pirqs = xenfeat::HVM_PIRQS,
        XENFEAT_dom0 = xenfeat::DOM0,
        XENFEAT_memory_op_vnode_supported = xenfeat::MEMORY_OP_VNODE_SUPPORTED,
        XENFEAT_ARM_SMCCC_supported = xenfeat::ARM_SMCCC_SUPPORTED,
        XENFEAT_linux_rsdp_unrestricted = xenfeat::LINUX_RSDP_UNRESTRICTED,
        XENFEAT_not_direct_mapped = xenfeat::NOT_DIRECT_MAPPED,
        XENFEAT_direct_mapped = xenfeat::DIRECT_MAPPED,
        XENFEAT_NR_SUBMAPS = xenfeat::NR_SUBMAPS,
        XEN_CPUID_FIRST_LEAF = cpuid::BASE,
        XEN_CPUID_SIGNATURE_EBX = cpuid::SIGNATURE_EBX,
        XEN_CPUID_SIGNATURE_ECX = cpuid::SIGNATURE_ECX,
        XEN_CPUID_SIGNATURE_EDX = cpuid::SIGNATURE_EDX,
        XEN_CPUID_MAX_NUM_LEAVES = cpuid::MAX_NUM_LEAVES,
        XEN_HVM_CPUID_APIC_ACCESS_VIRT = cpuid::HVM_APIC_ACCESS_VIRT,
        XEN_HVM_CPUID_X2APIC_VIRT = cpuid::HVM_X2APIC_VIRT,
        XEN_HVM_CPUID_IOMMU_MAPPINGS = cpuid::HVM_IOMMU_MAPPINGS,
        XEN_HVM_CPUID_VCPU_ID_PRESENT = cpuid::HVM_VCPU_ID_PRESENT,
        XEN_HVM_CPUID_DOMID_PRESENT = cpuid::HVM_DOMID_PRESENT,
        XEN_HVM_CPUID_EXT_DEST_ID = cpuid::HVM_EXT_DEST_ID,
        XEN_HVM_CPUID_UPCALL_VECTOR = cpuid::HVM_UPCALL_VECTOR,
        XEN_ELFNOTE_PHYS32_ENTRY = elfnote::PHYS32_ENTRY,
        XEN_HVM_START_MAGIC_VALUE = HVM_START_MAGIC,
        XEN_HVM_MEMMAP_TYPE_RAM = memmap_type::RAM,
        XEN_HVM_MEMMAP_TYPE_RESERVED = memmap_type::RESERVED,
        XEN_HVM_MEMMAP_TYPE_ACPI = memmap_type::ACPI,
        XEN_HVM_MEMMAP_TYPE_NVS = memmap_type::NVS,
        XEN_HVM_MEMMAP_TYPE_UNUSABLE = memmap_type::UNUSABLE,
        XEN_HVM_MEMMAP_TYPE_DISABLED = memmap_type::DISABLED,
        XEN_HVM_MEMMAP_TYPE_PMEM = memmap_type::PMEM,
        SIF_PRIVILEGED = sif::PRIVILEGED,
        SIF_INITDOMAIN = sif::INITDOMAIN,
        XEN_PVCLOCK_TSC_STABLE_BIT = PVCLOCK_TSC_STABLE,
        XEN_PVCLOCK_GUEST_STOPPED = PVCLOCK_GUEST_STOPPED,
        XEN_LEGACY_MAX_VCPUS = LEGACY_MAX_VCPUS,
        DOMID_FIRST_RESERVED = domid::FIRST_RESERVED,
        DOMID_SELF = domid::SELF,
        DOMID_IO = domid::IO,
        DOMID_XEN = domid::XEN,
        DOMID_COW = domid::COW,
        DOMID_INVALID = domid::INVALID,
        DOMID_IDLE = domid::IDLE,
        DOMID_MASK = domid::MASK,
    );
    v
}

fn ours() -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: usize| {
        m.insert(k.to_string(), v as i64);
    };
    macro_rules! size {
        ($c:literal, $t:ty) => {
            put(concat!("size ", $c), size_of::<$t>())
        };
    }
    macro_rules! off {
        ($c:literal, $t:ty, $($f:ident).+ = $($r:ident).+) => {
            put(concat!("offset ", $c, ".", stringify!($($f).+)), offset_of!($t, $($r).+))
        };
        ($c:literal, $t:ty, $($f:ident),+) => {
            $( put(concat!("offset ", $c, ".", stringify!($f)), offset_of!($t, $f)); )+
        };
    }
    size!("vcpu_time_info", VcpuTimeInfo);
    off!(
        "vcpu_time_info",
        VcpuTimeInfo,
        version,
        pad0,
        tsc_timestamp,
        system_time,
        tsc_to_system_mul,
        tsc_shift,
        flags,
        pad1
    );
    size!("arch_vcpu_info", ArchVcpuInfo);
    off!("arch_vcpu_info", ArchVcpuInfo, cr2, pad);
    size!("vcpu_info", VcpuInfo);
    off!("vcpu_info", VcpuInfo, evtchn_upcall_pending, evtchn_upcall_mask, evtchn_pending_sel, arch, time);
    size!("arch_shared_info", ArchSharedInfo);
    off!(
        "arch_shared_info",
        ArchSharedInfo,
        max_pfn,
        pfn_to_mfn_frame_list_list,
        nmi_reason,
        p2m_cr3,
        p2m_vaddr,
        p2m_generation
    );
    size!("shared_info", SharedInfo);
    off!(
        "shared_info",
        SharedInfo,
        vcpu_info,
        evtchn_pending,
        evtchn_mask,
        wc_version,
        wc_sec,
        wc_nsec,
        wc_sec_hi,
        arch
    );
    // The offset constants the hypervisor uses for atomic access, against the same C offsets.
    assert_eq!(SHARED_INFO_SIZE, size_of::<SharedInfo>());
    for (ours, field) in [
        (VCPU_INFO_OFFSET, offset_of!(SharedInfo, vcpu_info)),
        (EVTCHN_PENDING_OFFSET, offset_of!(SharedInfo, evtchn_pending)),
        (EVTCHN_MASK_OFFSET, offset_of!(SharedInfo, evtchn_mask)),
        (WC_VERSION_OFFSET, offset_of!(SharedInfo, wc_version)),
        (WC_SEC_OFFSET, offset_of!(SharedInfo, wc_sec)),
        (WC_NSEC_OFFSET, offset_of!(SharedInfo, wc_nsec)),
        (WC_SEC_HI_OFFSET, offset_of!(SharedInfo, wc_sec_hi)),
        (ARCH_OFFSET, offset_of!(SharedInfo, arch)),
        (VCPU_INFO_TIME, offset_of!(VcpuInfo, time)),
        (VCPU_INFO_PENDING_SEL, offset_of!(VcpuInfo, evtchn_pending_sel)),
        (XENCONS_OUT_PROD_OFFSET, offset_of!(XenconsInterface, out_prod)),
    ] {
        assert_eq!(ours, field);
    }
    put("value shared_info.vcpu_info.len", LEGACY_MAX_VCPUS);
    put("value shared_info.evtchn_pending.len", BITS_PER_WORD);
    size!("vcpu_runstate_info", VcpuRunstateInfo);
    off!("vcpu_runstate_info", VcpuRunstateInfo, state, state_entry_time, time);
    size!("xencons_interface", XenconsInterface);
    off!("xencons_interface", XenconsInterface, in = input);
    off!("xencons_interface", XenconsInterface, out = output);
    off!("xencons_interface", XenconsInterface, in_cons, in_prod, out_cons, out_prod);

    size!("xen_feature_info", XenFeatureInfo);
    off!("xen_feature_info", XenFeatureInfo, submap_idx, submap);
    size!("xen_add_to_physmap", XenAddToPhysmap);
    off!("xen_add_to_physmap", XenAddToPhysmap, domid, size, space, idx, gpfn);
    size!("xen_memory_map", XenMemoryMap);
    off!("xen_memory_map", XenMemoryMap, nr_entries, buffer);
    size!("xen_memory_reservation", XenMemoryReservation);
    off!("xen_memory_reservation", XenMemoryReservation, extent_start, nr_extents, extent_order, mem_flags, domid);
    size!("xen_hvm_param", XenHvmParam);
    off!("xen_hvm_param", XenHvmParam, domid, pad, index, value);
    size!("xen_hvm_pagetable_dying", XenHvmPagetableDying);
    off!("xen_hvm_pagetable_dying", XenHvmPagetableDying, domid, pad, gpa);
    size!("xen_hvm_evtchn_upcall_vector", XenHvmEvtchnUpcallVector);
    off!("xen_hvm_evtchn_upcall_vector", XenHvmEvtchnUpcallVector, vcpu, vector);
    size!("vcpu_register_vcpu_info", VcpuRegisterVcpuInfo);
    off!("vcpu_register_vcpu_info", VcpuRegisterVcpuInfo, mfn, offset, rsvd);
    size!("vcpu_set_singleshot_timer", VcpuSetSingleshotTimer);
    off!("vcpu_set_singleshot_timer", VcpuSetSingleshotTimer, timeout_abs_ns, flags);
    size!("vcpu_set_periodic_timer", VcpuSetPeriodicTimer);
    off!("vcpu_set_periodic_timer", VcpuSetPeriodicTimer, period_ns);
    size!("vcpu_register_runstate_memory_area", VcpuRegisterRunstateMemoryArea);
    off!("vcpu_register_runstate_memory_area", VcpuRegisterRunstateMemoryArea, addr);
    size!("vcpu_register_time_memory_area", VcpuRegisterTimeMemoryArea);
    off!("vcpu_register_time_memory_area", VcpuRegisterTimeMemoryArea, addr);
    size!("sched_shutdown", SchedShutdown);
    off!("sched_shutdown", SchedShutdown, reason);
    size!("sched_poll", SchedPoll);
    off!("sched_poll", SchedPoll, ports, nr_ports, timeout);

    size!("evtchn_alloc_unbound", EvtchnAllocUnbound);
    off!("evtchn_alloc_unbound", EvtchnAllocUnbound, dom, remote_dom, port);
    size!("evtchn_bind_interdomain", EvtchnBindInterdomain);
    off!("evtchn_bind_interdomain", EvtchnBindInterdomain, remote_dom, remote_port, local_port);
    size!("evtchn_bind_virq", EvtchnBindVirq);
    off!("evtchn_bind_virq", EvtchnBindVirq, virq, vcpu, port);
    size!("evtchn_bind_pirq", EvtchnBindPirq);
    off!("evtchn_bind_pirq", EvtchnBindPirq, pirq, flags, port);
    size!("evtchn_bind_ipi", EvtchnBindIpi);
    off!("evtchn_bind_ipi", EvtchnBindIpi, vcpu, port);
    size!("evtchn_close", EvtchnClose);
    off!("evtchn_close", EvtchnClose, port);
    size!("evtchn_send", EvtchnSend);
    off!("evtchn_send", EvtchnSend, port);
    size!("evtchn_unmask", EvtchnUnmask);
    off!("evtchn_unmask", EvtchnUnmask, port);
    size!("evtchn_bind_vcpu", EvtchnBindVcpu);
    off!("evtchn_bind_vcpu", EvtchnBindVcpu, port, vcpu);
    size!("evtchn_set_priority", EvtchnSetPriority);
    off!("evtchn_set_priority", EvtchnSetPriority, port, priority);
    size!("evtchn_init_control", EvtchnInitControl);
    off!("evtchn_init_control", EvtchnInitControl, control_gfn, offset, vcpu, link_bits);
    size!("evtchn_expand_array", EvtchnExpandArray);
    off!("evtchn_expand_array", EvtchnExpandArray, array_gfn);
    size!("evtchn_reset", EvtchnReset);
    off!("evtchn_reset", EvtchnReset, dom);
    size!("evtchn_status", EvtchnStatus);
    off!("evtchn_status", EvtchnStatus, dom, port, status, vcpu, u);
    let union = offset_of!(EvtchnStatus, u);
    put("offset evtchn_status.u.unbound.dom", union);
    put("offset evtchn_status.u.interdomain.dom", union);
    put("offset evtchn_status.u.interdomain.port", union + 4);
    put("offset evtchn_status.u.pirq", union);
    put("offset evtchn_status.u.virq", union);

    size!("grant_entry_v1", GrantEntryV1);
    off!("grant_entry_v1", GrantEntryV1, flags, domid, frame);
    size!("gnttab_map_grant_ref", GnttabMapGrantRef);
    off!("gnttab_map_grant_ref", GnttabMapGrantRef, host_addr, flags, dom, status, handle, dev_bus_addr);
    off!("gnttab_map_grant_ref", GnttabMapGrantRef, ref = gref);
    size!("gnttab_unmap_grant_ref", GnttabUnmapGrantRef);
    off!("gnttab_unmap_grant_ref", GnttabUnmapGrantRef, host_addr, dev_bus_addr, handle, status);
    size!("gnttab_setup_table", GnttabSetupTable);
    off!("gnttab_setup_table", GnttabSetupTable, dom, nr_frames, status, frame_list);
    size!("gnttab_copy_ptr", GnttabCopyPtr);
    off!("gnttab_copy_ptr", GnttabCopyPtr, u, domid, offset);
    off!("gnttab_copy_ptr", GnttabCopyPtr, u.ref = u);
    off!("gnttab_copy_ptr", GnttabCopyPtr, u.gmfn = u);
    size!("gnttab_copy", GnttabCopy);
    off!("gnttab_copy", GnttabCopy, source, dest, len, flags, status);
    size!("gnttab_query_size", GnttabQuerySize);
    off!("gnttab_query_size", GnttabQuerySize, dom, nr_frames, max_nr_frames, status);
    size!("gnttab_set_version", GnttabSetVersion);
    off!("gnttab_set_version", GnttabSetVersion, version);
    size!("gnttab_get_version", GnttabGetVersion);
    off!("gnttab_get_version", GnttabGetVersion, dom, pad, version);
    size!("gnttab_get_status_frames", GnttabGetStatusFrames);
    off!("gnttab_get_status_frames", GnttabGetStatusFrames, nr_frames, dom, status, frame_list);

    size!("hvm_start_info", HvmStartInfo);
    off!(
        "hvm_start_info",
        HvmStartInfo,
        magic,
        version,
        flags,
        nr_modules,
        modlist_paddr,
        cmdline_paddr,
        rsdp_paddr,
        memmap_paddr,
        memmap_entries,
        reserved
    );
    size!("hvm_modlist_entry", HvmModlistEntry);
    off!("hvm_modlist_entry", HvmModlistEntry, paddr, size, cmdline_paddr, reserved);
    size!("hvm_memmap_table_entry", HvmMemmapEntry);
    off!("hvm_memmap_table_entry", HvmMemmapEntry, addr, size, reserved);
    off!("hvm_memmap_table_entry", HvmMemmapEntry, type = kind);

    for (name, value) in constants() {
        m.insert(format!("value {name}"), value);
    }
    // The C program prints every errno in errno.h (Xen's names are XEN_E*).
    for (value, name) in errno::ALL {
        m.insert(format!("value XEN_{name}"), i64::from(value));
    }
    m.insert("value XEN_EWOULDBLOCK".into(), i64::from(errno::EWOULDBLOCK));
    m.insert("value XEN_EDEADLOCK".into(), i64::from(errno::EDEADLOCK));
    m
}

/// Compiles `c/xen_hvm_layout.c` (with the generated constants header) and returns its output.
fn run_c_program() -> String {
    assert!(
        Path::new(XEN_H).exists(),
        "{XEN_H} is missing: the Xen public headers are needed to check the ABI. \
         Install them with `apt-get install libxen-dev`."
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("hv-abi-xen");
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let header: String = constants().iter().map(|(name, _)| format!("    V({name});\n")).collect();
    std::fs::write(dir.join("xen_hvm_values.h"), header).expect("write header");
    let program = dir.join(format!("xen_hvm_layout-{}", std::process::id()));
    let target = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let compiler = cc::Build::new()
        .cargo_metadata(false)
        .cargo_warnings(false)
        .target(&target)
        .host(&target)
        .opt_level(0)
        .debug(false)
        .try_get_compiler()
        .unwrap_or_else(|e| panic!("no C compiler found ({e}); install one with `apt-get install gcc`"));
    let mut command: Command = compiler.to_command();
    command.args(["-std=gnu11", "-Wall", "-Werror"]).arg("-I").arg(&dir).arg("-o").arg(&program);
    command.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("c/xen_hvm_layout.c"));
    let result = command.output().expect("run the C compiler");
    assert!(result.status.success(), "C compile failed:\n{}", String::from_utf8_lossy(&result.stderr));
    let output = Command::new(&program).output().expect("run xen_hvm_layout");
    assert!(output.status.success());
    let _ = std::fs::remove_file(&program);
    String::from_utf8(output.stdout).expect("utf-8")
}

#[test]
fn every_size_offset_and_constant_matches_xens_headers() {
    let theirs: BTreeMap<String, i64> = run_c_program()
        .lines()
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').expect("`key value` lines");
            (key.to_string(), value.parse().expect("integer"))
        })
        .collect();
    let ours = ours();
    let mut mismatches = Vec::new();
    for (key, value) in &theirs {
        match ours.get(key) {
            Some(ours) if ours == value => {}
            Some(ours) => mismatches.push(format!("{key}: Xen {value}, ours {ours}")),
            None => mismatches.push(format!("{key}: Xen {value}, ours missing")),
        }
    }
    for key in ours.keys().filter(|k| !theirs.contains_key(*k)) {
        mismatches.push(format!("{key}: ours only, not printed by xen_hvm_layout.c"));
    }
    assert!(mismatches.is_empty(), "layout differences:\n{}", mismatches.join("\n"));
    assert!(theirs.len() > 500, "only {} facts checked", theirs.len());
}

#[test]
fn errno_round_trips_through_rax() {
    assert_eq!(errno::ret(errno::EFAULT), (-14i64) as u64);
    assert_eq!(errno::result(errno::ret(errno::ENOSYS)), Err(errno::ENOSYS));
    assert_eq!(errno::result(0x0004_0011), Ok(0x0004_0011));
    assert_eq!(errno::result(u64::MAX - 5000), Ok(u64::MAX - 5000));
    assert_eq!(errno::name(errno::EFAULT), Some("EFAULT"));
    assert_eq!(errno::name(1000), None);
}

#[test]
fn pvclock_formula() {
    let t = VcpuTimeInfo {
        tsc_timestamp: 1000,
        system_time: 5,
        tsc_to_system_mul: 1 << 31,
        tsc_shift: 1,
        ..Default::default()
    };
    // (2000 - 1000) << 1 = 2000 ticks, * 0.5 = 1000 ns, + 5.
    assert_eq!(t.system_time_at(2000), 1005);
    let t = VcpuTimeInfo { tsc_shift: -1, tsc_to_system_mul: u32::MAX, ..t };
    assert_eq!(t.system_time_at(3000), 5 + ((1000u64 * u64::from(u32::MAX)) >> 32));
}
