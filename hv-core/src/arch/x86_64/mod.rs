//! x86_64: descriptor tables, trap and syscall entry, local APIC timer, paging, serial, CPU setup.
pub mod apic;
pub mod boot_info;
pub mod cpu;
pub mod gdt;
pub mod npt;
pub mod paging;
pub mod pci_config;
pub mod percpu;
pub mod serial;
pub mod svm;
pub mod trap;
pub mod uart;
pub mod vtd;

pub use trap::TrapFrame;
