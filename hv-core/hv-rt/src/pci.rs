//! The PCI devices assigned to this (driver) domain: their list, where their memory BARs are
//! mapped, and filtered config-space access.
use crate::hypercall::{call, raw};
use alloc::vec;
use alloc::vec::Vec;
use hv_abi::{Error, Hypercall, PciDeviceInfo, PciOp, decode_result};

pub use hv_abi::pci::Bdf;

/// Every device assigned to us.
pub fn devices() -> Result<Vec<PciDeviceInfo>, Error> {
    let mut out = vec![PciDeviceInfo::default(); 16];
    // SAFETY: `out` is writable for 16 entries.
    let r = unsafe { raw(Hypercall::PciOp, PciOp::List as u64, out.as_mut_ptr() as u64, out.len() as u64, 0) };
    let n = decode_result(r)? as usize;
    out.truncate(n.min(16));
    Ok(out)
}

pub fn config_read(bdf: Bdf, offset: u8) -> Result<u32, Error> {
    // SAFETY: config_read takes values only.
    unsafe { call(Hypercall::PciOp, PciOp::ConfigRead as u64, bdf.to_u16() as u64, offset as u64, 0) }.map(|v| v as u32)
}

pub fn config_write(bdf: Bdf, offset: u8, value: u32) -> Result<(), Error> {
    // SAFETY: config_write takes values only.
    unsafe { call(Hypercall::PciOp, PciOp::ConfigWrite as u64, bdf.to_u16() as u64, offset as u64, value as u64) }
        .map(drop)
}

/// Translates a BAR's physical address (as the device's config space says) to where it is
/// mapped in this domain.
pub fn bar_va(dev: &PciDeviceInfo, phys: u64) -> Option<u64> {
    dev.bars.iter().find(|b| b.va != 0 && (b.phys..b.phys + b.size).contains(&phys)).map(|b| b.va + (phys - b.phys))
}

/// The machine address of one of our own virtual addresses in RAM (for device DMA).
pub fn dma_address(va: u64) -> Option<u64> {
    let si = crate::start_info();
    let off = va.checked_sub(hv_abi::DOMAIN_BASE)?;
    (off < si.memory_bytes).then(|| si.ram_phys + off)
}
