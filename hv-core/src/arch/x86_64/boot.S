/* 32-bit entry for both boot paths, then long mode with a temporary 4 GiB identity map
   (also aliased at the direct-map base 0xffff800000000000), then hv_main(magic, info).
   PVH (QEMU -kernel): EBX = hvm_start_info (its magic is in the struct).
   Multiboot2 (GRUB):   EAX = 0x36d76289, EBX = multiboot2 information. */

.section .multiboot2_header, "a"
.balign 8
mb2_start:
    .long 0xe85250d6
    .long 0
    .long mb2_end - mb2_start
    .long 0x100000000 - (0xe85250d6 + (mb2_end - mb2_start))
    .short 0
    .short 0
    .long 8
mb2_end:

.section .note.Xen, "a", @note
.balign 4
    .long 4
    .long 4
    .long 18            /* XEN_ELFNOTE_PHYS32_ENTRY */
    .asciz "Xen"
    .balign 4
    .long _start32

.section .boot.text, "ax"
.code32
.global _start32
_start32:
    cli
    cld
    mov %eax, %ebp
    mov %ebx, %esi
    /* zero .bss (page tables and stacks live there) */
    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb
    /* PML4[0] and PML4[256] -> boot_pdpt */
    mov $boot_pdpt, %eax
    or $3, %eax
    mov %eax, boot_pml4
    mov %eax, boot_pml4 + 256 * 8
    /* boot_pdpt[0..4] -> boot_pd + i * 4096 */
    mov $boot_pd, %eax
    or $3, %eax
    mov %eax, boot_pdpt
    add $4096, %eax
    mov %eax, boot_pdpt + 8
    add $4096, %eax
    mov %eax, boot_pdpt + 16
    add $4096, %eax
    mov %eax, boot_pdpt + 24
    /* 2048 2 MiB pages: 0 .. 4 GiB */
    xor %ecx, %ecx
1:  mov %ecx, %eax
    shl $21, %eax
    or $0x83, %eax
    mov %eax, boot_pd(, %ecx, 8)
    inc %ecx
    cmp $2048, %ecx
    jne 1b
    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $0x20, %eax          /* PAE */
    mov %eax, %cr4
    mov $0xc0000080, %ecx   /* EFER */
    rdmsr
    or $0x100, %eax         /* LME */
    wrmsr
    mov %cr0, %eax
    or $0x80010001, %eax    /* PG | WP | PE */
    mov %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $start64

.code64
start64:
    mov $0x10, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %eax, %eax
    mov %ax, %fs
    mov %ax, %gs
    mov $boot_stack_top, %rsp
    mov %ebp, %edi
    mov %esi, %esi
    call hv_main
2:  hlt
    jmp 2b

.section .rodata
.balign 8
boot_gdt:
    .quad 0
    .quad 0x00af9a000000ffff    /* 0x08: 64-bit code */
    .quad 0x00cf92000000ffff    /* 0x10: data */
boot_gdt_end:
boot_gdt_ptr:
    .short boot_gdt_end - boot_gdt - 1
    .long boot_gdt

.section .bss
.balign 4096
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4096 * 4
boot_stack: .skip 65536
boot_stack_top:
