/* Prints the size of every PVH start-of-day struct hv-core mirrors, the offset of every field
 * and the constants, one "name value" per line, for tests/xen_start_info.rs to compare with the
 * Rust types in hv-core/src/pvh/start_info.rs. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/elfnote.h>

#define SIZE(t) printf("size %s %zu\n", #t, sizeof(struct t))
#define OFF(t, f) printf("offset %s.%s %zu\n", #t, #f, offsetof(struct t, f))
#define VALUE(v) printf("value %s %lld\n", #v, (long long)(v))

int main(void) {
    SIZE(hvm_start_info);
    OFF(hvm_start_info, magic); OFF(hvm_start_info, version); OFF(hvm_start_info, flags);
    OFF(hvm_start_info, nr_modules); OFF(hvm_start_info, modlist_paddr); OFF(hvm_start_info, cmdline_paddr);
    OFF(hvm_start_info, rsdp_paddr); OFF(hvm_start_info, memmap_paddr); OFF(hvm_start_info, memmap_entries);
    OFF(hvm_start_info, reserved);
    SIZE(hvm_modlist_entry);
    OFF(hvm_modlist_entry, paddr); OFF(hvm_modlist_entry, size); OFF(hvm_modlist_entry, cmdline_paddr);
    OFF(hvm_modlist_entry, reserved);
    SIZE(hvm_memmap_table_entry);
    OFF(hvm_memmap_table_entry, addr); OFF(hvm_memmap_table_entry, size); OFF(hvm_memmap_table_entry, type);
    OFF(hvm_memmap_table_entry, reserved);
    VALUE(XEN_HVM_START_MAGIC_VALUE);
    VALUE(XEN_HVM_MEMMAP_TYPE_RAM); VALUE(XEN_HVM_MEMMAP_TYPE_RESERVED); VALUE(XEN_HVM_MEMMAP_TYPE_ACPI);
    VALUE(XEN_HVM_MEMMAP_TYPE_NVS); VALUE(XEN_HVM_MEMMAP_TYPE_UNUSABLE); VALUE(XEN_HVM_MEMMAP_TYPE_DISABLED);
    VALUE(XEN_HVM_MEMMAP_TYPE_PMEM);
    VALUE(XEN_ELFNOTE_PHYS32_ENTRY);
    return 0;
}
