//! hv-core: a bare-metal x86_64 hypervisor for paravirtual unikernel domains.
//!
//! The plain-Rust logic (scheduling policy, frame allocator, ELF validation, console line
//! discipline, user-pointer checks, the PVH guest builder) is compiled and tested on the host;
//! the arch code and the kernel proper exist only for the bare-metal target.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod acpi_root;
pub mod byte_ring;
pub mod console;
pub mod domain_id;
pub mod efi_memory_map;
pub mod elf;
pub mod event_channel;
pub mod frames;
pub mod grant_table;
pub mod hvm;
pub mod iommu;
pub mod pci;
pub mod pvh;
pub mod sched;
pub mod trap;
pub mod user_memory;

#[cfg(target_os = "none")]
pub mod arch;
#[cfg(target_os = "none")]
pub mod kernel;
