/* Prints, one "key value" per line, the size of every Xen struct hv_abi::xen mirrors, the
 * offset of each field and the value of each constant, for tests/xen_headers.rs to compare
 * with the Rust definitions. Built with the host C compiler against Debian's libxen-dev. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define __XEN_INTERFACE_VERSION__ 0x00040e00
/* Also the tools-only constants (paging, sharing, ioreq parameters...). */
#define __XEN_TOOLS__ 1
#include <xen/xen.h>
#include <xen/version.h>
#include <xen/memory.h>
#include <xen/features.h>
#include <xen/vcpu.h>
#include <xen/event_channel.h>
#include <xen/grant_table.h>
#include <xen/sched.h>
#include <xen/physdev.h>
#include <xen/elfnote.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/arch-x86/cpuid.h>
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/io/console.h>

#define SIZE(t) printf("size %s %zu\n", #t, sizeof(struct t))
#define OFF(t, f) printf("offset %s.%s %zu\n", #t, #f, offsetof(struct t, f))
#define V(name) printf("value %s %lld\n", #name, (long long)(name))

/* Every errno, including the two Xen keeps internal (EINTR, ERESTART): errno.h's second mode
 * expands a caller-supplied XEN_ERRNO(name, value) once per entry. */
static void print_errnos(void) {
#define __XEN__
#define XEN_ERRNO(name, value) printf("value XEN_%s %d\n", #name, value);
#include <xen/errno.h>
#undef __XEN__
}

int main(void) {
    print_errnos();
    SIZE(vcpu_time_info); OFF(vcpu_time_info, version); OFF(vcpu_time_info, pad0);
    OFF(vcpu_time_info, tsc_timestamp); OFF(vcpu_time_info, system_time);
    OFF(vcpu_time_info, tsc_to_system_mul); OFF(vcpu_time_info, tsc_shift);
    OFF(vcpu_time_info, flags); OFF(vcpu_time_info, pad1);
    SIZE(arch_vcpu_info); OFF(arch_vcpu_info, cr2); OFF(arch_vcpu_info, pad);
    SIZE(vcpu_info); OFF(vcpu_info, evtchn_upcall_pending); OFF(vcpu_info, evtchn_upcall_mask);
    OFF(vcpu_info, evtchn_pending_sel); OFF(vcpu_info, arch); OFF(vcpu_info, time);
    SIZE(arch_shared_info); OFF(arch_shared_info, max_pfn); OFF(arch_shared_info, pfn_to_mfn_frame_list_list);
    OFF(arch_shared_info, nmi_reason); OFF(arch_shared_info, p2m_cr3); OFF(arch_shared_info, p2m_vaddr);
    OFF(arch_shared_info, p2m_generation);
    SIZE(shared_info); OFF(shared_info, vcpu_info); OFF(shared_info, evtchn_pending);
    OFF(shared_info, evtchn_mask); OFF(shared_info, wc_version); OFF(shared_info, wc_sec);
    OFF(shared_info, wc_nsec); OFF(shared_info, wc_sec_hi); OFF(shared_info, arch);
    printf("value shared_info.vcpu_info.len %zu\n", sizeof(((struct shared_info *)0)->vcpu_info) / sizeof(struct vcpu_info));
    printf("value shared_info.evtchn_pending.len %zu\n", sizeof(((struct shared_info *)0)->evtchn_pending) / sizeof(xen_ulong_t));
    SIZE(vcpu_runstate_info); OFF(vcpu_runstate_info, state); OFF(vcpu_runstate_info, state_entry_time);
    OFF(vcpu_runstate_info, time);
    SIZE(xencons_interface); OFF(xencons_interface, in); OFF(xencons_interface, out);
    OFF(xencons_interface, in_cons); OFF(xencons_interface, in_prod);
    OFF(xencons_interface, out_cons); OFF(xencons_interface, out_prod);

    SIZE(xen_feature_info); OFF(xen_feature_info, submap_idx); OFF(xen_feature_info, submap);
    SIZE(xen_add_to_physmap); OFF(xen_add_to_physmap, domid); OFF(xen_add_to_physmap, size);
    OFF(xen_add_to_physmap, space); OFF(xen_add_to_physmap, idx); OFF(xen_add_to_physmap, gpfn);
    SIZE(xen_memory_map); OFF(xen_memory_map, nr_entries); OFF(xen_memory_map, buffer);
    SIZE(xen_memory_reservation); OFF(xen_memory_reservation, extent_start);
    OFF(xen_memory_reservation, nr_extents); OFF(xen_memory_reservation, extent_order);
    OFF(xen_memory_reservation, mem_flags); OFF(xen_memory_reservation, domid);
    SIZE(xen_hvm_param); OFF(xen_hvm_param, domid); OFF(xen_hvm_param, pad);
    OFF(xen_hvm_param, index); OFF(xen_hvm_param, value);
    SIZE(xen_hvm_pagetable_dying); OFF(xen_hvm_pagetable_dying, domid); OFF(xen_hvm_pagetable_dying, pad);
    OFF(xen_hvm_pagetable_dying, gpa);
    SIZE(xen_hvm_evtchn_upcall_vector); OFF(xen_hvm_evtchn_upcall_vector, vcpu);
    OFF(xen_hvm_evtchn_upcall_vector, vector);
    SIZE(vcpu_register_vcpu_info); OFF(vcpu_register_vcpu_info, mfn); OFF(vcpu_register_vcpu_info, offset);
    OFF(vcpu_register_vcpu_info, rsvd);
    SIZE(vcpu_set_singleshot_timer); OFF(vcpu_set_singleshot_timer, timeout_abs_ns);
    OFF(vcpu_set_singleshot_timer, flags);
    SIZE(vcpu_set_periodic_timer); OFF(vcpu_set_periodic_timer, period_ns);
    SIZE(vcpu_register_runstate_memory_area); OFF(vcpu_register_runstate_memory_area, addr);
    SIZE(vcpu_register_time_memory_area); OFF(vcpu_register_time_memory_area, addr);
    SIZE(sched_shutdown); OFF(sched_shutdown, reason);
    SIZE(sched_poll); OFF(sched_poll, ports); OFF(sched_poll, nr_ports); OFF(sched_poll, timeout);

    SIZE(evtchn_alloc_unbound); OFF(evtchn_alloc_unbound, dom); OFF(evtchn_alloc_unbound, remote_dom);
    OFF(evtchn_alloc_unbound, port);
    SIZE(evtchn_bind_interdomain); OFF(evtchn_bind_interdomain, remote_dom);
    OFF(evtchn_bind_interdomain, remote_port); OFF(evtchn_bind_interdomain, local_port);
    SIZE(evtchn_bind_virq); OFF(evtchn_bind_virq, virq); OFF(evtchn_bind_virq, vcpu); OFF(evtchn_bind_virq, port);
    SIZE(evtchn_bind_pirq); OFF(evtchn_bind_pirq, pirq); OFF(evtchn_bind_pirq, flags); OFF(evtchn_bind_pirq, port);
    SIZE(evtchn_bind_ipi); OFF(evtchn_bind_ipi, vcpu); OFF(evtchn_bind_ipi, port);
    SIZE(evtchn_close); OFF(evtchn_close, port);
    SIZE(evtchn_send); OFF(evtchn_send, port);
    SIZE(evtchn_unmask); OFF(evtchn_unmask, port);
    SIZE(evtchn_bind_vcpu); OFF(evtchn_bind_vcpu, port); OFF(evtchn_bind_vcpu, vcpu);
    SIZE(evtchn_set_priority); OFF(evtchn_set_priority, port); OFF(evtchn_set_priority, priority);
    SIZE(evtchn_init_control); OFF(evtchn_init_control, control_gfn); OFF(evtchn_init_control, offset);
    OFF(evtchn_init_control, vcpu); OFF(evtchn_init_control, link_bits);
    SIZE(evtchn_expand_array); OFF(evtchn_expand_array, array_gfn);
    SIZE(evtchn_reset); OFF(evtchn_reset, dom);
    SIZE(evtchn_status); OFF(evtchn_status, dom); OFF(evtchn_status, port); OFF(evtchn_status, status);
    OFF(evtchn_status, vcpu); OFF(evtchn_status, u); OFF(evtchn_status, u.unbound.dom);
    OFF(evtchn_status, u.interdomain.dom); OFF(evtchn_status, u.interdomain.port);
    OFF(evtchn_status, u.pirq); OFF(evtchn_status, u.virq);

    SIZE(grant_entry_v1); OFF(grant_entry_v1, flags); OFF(grant_entry_v1, domid); OFF(grant_entry_v1, frame);
    SIZE(gnttab_map_grant_ref); OFF(gnttab_map_grant_ref, host_addr); OFF(gnttab_map_grant_ref, flags);
    OFF(gnttab_map_grant_ref, ref); OFF(gnttab_map_grant_ref, dom); OFF(gnttab_map_grant_ref, status);
    OFF(gnttab_map_grant_ref, handle); OFF(gnttab_map_grant_ref, dev_bus_addr);
    SIZE(gnttab_unmap_grant_ref); OFF(gnttab_unmap_grant_ref, host_addr);
    OFF(gnttab_unmap_grant_ref, dev_bus_addr); OFF(gnttab_unmap_grant_ref, handle);
    OFF(gnttab_unmap_grant_ref, status);
    SIZE(gnttab_setup_table); OFF(gnttab_setup_table, dom); OFF(gnttab_setup_table, nr_frames);
    OFF(gnttab_setup_table, status); OFF(gnttab_setup_table, frame_list);
    SIZE(gnttab_copy_ptr); OFF(gnttab_copy_ptr, u); OFF(gnttab_copy_ptr, u.ref); OFF(gnttab_copy_ptr, u.gmfn);
    OFF(gnttab_copy_ptr, domid); OFF(gnttab_copy_ptr, offset);
    SIZE(gnttab_copy); OFF(gnttab_copy, source); OFF(gnttab_copy, dest); OFF(gnttab_copy, len);
    OFF(gnttab_copy, flags); OFF(gnttab_copy, status);
    SIZE(gnttab_query_size); OFF(gnttab_query_size, dom); OFF(gnttab_query_size, nr_frames);
    OFF(gnttab_query_size, max_nr_frames); OFF(gnttab_query_size, status);
    SIZE(gnttab_set_version); OFF(gnttab_set_version, version);
    SIZE(gnttab_get_version); OFF(gnttab_get_version, dom); OFF(gnttab_get_version, pad);
    OFF(gnttab_get_version, version);
    SIZE(gnttab_get_status_frames); OFF(gnttab_get_status_frames, nr_frames);
    OFF(gnttab_get_status_frames, dom); OFF(gnttab_get_status_frames, status);
    OFF(gnttab_get_status_frames, frame_list);

    SIZE(hvm_start_info); OFF(hvm_start_info, magic); OFF(hvm_start_info, version); OFF(hvm_start_info, flags);
    OFF(hvm_start_info, nr_modules); OFF(hvm_start_info, modlist_paddr); OFF(hvm_start_info, cmdline_paddr);
    OFF(hvm_start_info, rsdp_paddr); OFF(hvm_start_info, memmap_paddr); OFF(hvm_start_info, memmap_entries);
    OFF(hvm_start_info, reserved);
    SIZE(hvm_modlist_entry); OFF(hvm_modlist_entry, paddr); OFF(hvm_modlist_entry, size);
    OFF(hvm_modlist_entry, cmdline_paddr); OFF(hvm_modlist_entry, reserved);
    SIZE(hvm_memmap_table_entry); OFF(hvm_memmap_table_entry, addr); OFF(hvm_memmap_table_entry, size);
    OFF(hvm_memmap_table_entry, type); OFF(hvm_memmap_table_entry, reserved);

#include "xen_hvm_values.h"
    return 0;
}
