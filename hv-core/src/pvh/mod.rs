//! Building a Xen PVH guest (an unmodified Linux `vmlinux`): everything the domain builder
//! computes before the guest runs, as plain host-testable Rust.
//!
//! * [`kernel`]: validate the ELF image and find its 32-bit physical entry point
//!   (`XEN_ELFNOTE_PHYS32_ENTRY`).
//! * [`layout`]: where everything goes in guest-physical memory, and the memory map the guest
//!   is told about.
//! * [`acpi`]: the ACPI tables (RSDP, XSDT, FADT, DSDT, MADT) as one blob.
//! * [`start_info`]: `struct hvm_start_info` and friends, and the bytes of the boot-info page.
//!
//! Nothing here touches guest memory: the caller copies the kernel segments, the initrd, the
//! ACPI blob and the boot-info page to the guest-physical addresses the [`layout::Plan`] gives,
//! and starts the vCPU at [`kernel::PvhImage::entry`] with `ebx` = [`layout::Plan::start_info`].

pub mod acpi;
pub mod kernel;
pub mod layout;
pub mod start_info;

/// Guest page size.
pub const PAGE_SIZE: u64 = 4096;
