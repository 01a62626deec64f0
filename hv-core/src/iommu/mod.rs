//! DMA remapping (Intel VT-d): the plain-logic half. Finding the remapping hardware in ACPI
//! ([`dmar`]), the in-memory structures the hardware walks (root, context and second-level
//! page-table entries, [`entries`]), and the per-domain device address space
//! ([`address_space`]). The registers live in `arch::x86_64::vtd`, the glue in `kernel::iommu`.
//!
//! Device address space of a driver domain: the addresses `hv_rt::pci::dma_address` already
//! hands its devices (the machine addresses of its own contiguous RAM) map one to one onto that
//! RAM, read and write; every other address is unmapped. A device nobody owns has no context
//! entry at all, so its DMA faults.
//!
//! Interrupts ([`interrupts`]): each assigned device may raise only the one vector the
//! hypervisor gave its owner, through an interrupt remapping table entry that only its
//! requester id may use; invalidations go through the queue ([`queue`]).

pub mod address_space;
pub mod dmar;
pub mod entries;
pub mod interrupts;
pub mod queue;
pub mod sdt;
