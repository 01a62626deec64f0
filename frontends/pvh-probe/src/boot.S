/* pvh-probe boot path: PVH 32-bit entry to 64-bit Rust.
 *
 * On entry (the PVH protocol): 32-bit protected mode, paging off, flat CS/DS/ES/SS, interrupts
 * off, no usable stack, EBX = physical address of struct hvm_start_info.
 *
 * Steps: zero .bss; build page tables that identity-map the first 4 GiB with 2 MiB pages
 * (1 PML4 entry -> 1 PDPT with 4 entries -> 4 page directories); load our own GDT; enable
 * CR4.PAE, EFER.LME, then CR0.PG (which activates long mode); far-jump to a 64-bit code
 * segment; load data segments and the stack; call pvh_probe_main(start_info_paddr). */

/* The PVH entry note: namesz 4, descsz 4, type 18 (XEN_ELFNOTE_PHYS32_ENTRY), "Xen\0", entry. */
.section .note.Xen, "a", @note
.balign 4
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .balign 4
    .long pvh_start32

.section .boot.text, "ax"
.code32
.global pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %esi                  /* keep start_info across the setup */

    /* Zero .bss (page tables and the stack live there). */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb

    /* PML4[0] -> PDPT (present | writable). */
    mov $pvh_pdpt, %eax
    or $3, %eax
    mov %eax, pvh_pml4

    /* PDPT[i] -> PD i, for i in 0..4. */
    mov $pvh_pd, %eax
    or $3, %eax
    xor %ecx, %ecx
1:  mov %eax, pvh_pdpt(, %ecx, 8)
    add $4096, %eax
    inc %ecx
    cmp $4, %ecx
    jne 1b

    /* 2048 PD entries, entry i maps [i * 2 MiB, (i + 1) * 2 MiB): present | writable | PS.
       The high dword of every entry stays 0 (addresses below 4 GiB). */
    xor %ecx, %ecx
2:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, pvh_pd(, %ecx, 8)
    inc %ecx
    cmp $2048, %ecx
    jne 2b

    lgdt pvh_gdt_ptr

    mov $pvh_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax                  /* CR4.PAE */
    mov %eax, %cr4
    mov $0xc0000080, %ecx           /* IA32_EFER */
    rdmsr
    or $0x100, %eax                 /* EFER.LME */
    wrmsr
    mov %cr0, %eax
    or $0x80000001, %eax            /* CR0.PG | CR0.PE: long mode becomes active */
    mov %eax, %cr0
    ljmp $0x08, $pvh_start64

.code64
pvh_start64:
    mov $0x10, %eax
    mov %eax, %ds
    mov %eax, %es
    mov %eax, %ss
    xor %eax, %eax
    mov %eax, %fs
    mov %eax, %gs
    mov $pvh_stack_top, %rsp
    mov %esi, %edi                  /* zero-extends: rdi = start_info physical address */
    call pvh_probe_main
3:  cli
    hlt
    jmp 3b

.section .rodata
.balign 8
pvh_gdt:
    .quad 0                         /* null */
    .quad 0x00af9a000000ffff        /* 0x08: 64-bit code, DPL 0 */
    .quad 0x00cf92000000ffff        /* 0x10: data, DPL 0 */
pvh_gdt_end:
pvh_gdt_ptr:
    .short pvh_gdt_end - pvh_gdt - 1
    .long pvh_gdt

.section .bss
.balign 4096
pvh_pml4:       .skip 4096
pvh_pdpt:       .skip 4096
pvh_pd:         .skip 4096 * 4
pvh_stack:      .skip 65536
pvh_stack_top:
