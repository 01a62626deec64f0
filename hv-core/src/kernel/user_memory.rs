//! The hypervisor's only way into domain memory: copy helpers over the checks of
//! `crate::user_memory` (host-tested). A pointer from a domain is checked against the caller's
//! own map with the access the domain itself would need, then copied exactly once through the
//! hypervisor's direct map.
use super::Hv;
use super::domain::{Domain, Live};
use crate::arch::paging;
use crate::user_memory::Access;
use bytemuck::Pod;
use core::mem::size_of;
use hv_abi::Error;

/// The live state of the domain in `slot`.
pub(super) fn live(hv: &Hv, slot: usize) -> Result<&Live, Error> {
    hv.domains[slot].as_ref().and_then(Domain::live).ok_or(Error::Srch)
}

/// Checks `[ptr, ptr + len)` against the domain's map for `access`; returns its physical address.
pub(super) fn check(hv: &Hv, slot: usize, ptr: u64, len: u64, access: Access) -> Result<u64, Error> {
    live(hv, slot)?.umap.check(ptr, len, access).map_err(|_| Error::Fault)
}

/// Copies a `T` in from the domain (read access required), once. `T: Pod`: any bytes the domain
/// wrote are a valid `T`.
pub(super) fn copy_in<T: Pod>(hv: &Hv, slot: usize, ptr: u64) -> Result<T, Error> {
    let pa = check(hv, slot, ptr, size_of::<T>() as u64, Access::Read)?;
    let mut v = T::zeroed();
    paging::copy_from_phys(pa, bytemuck::bytes_of_mut(&mut v));
    Ok(v)
}

/// Copies a `T` out to the domain (write access required). `T: Pod`: no padding bytes, so no
/// hypervisor memory leaks through it.
pub(super) fn copy_out_value<T: Pod>(hv: &Hv, slot: usize, ptr: u64, value: &T) -> Result<(), Error> {
    copy_out(hv, slot, ptr, bytemuck::bytes_of(value))
}

/// Copies bytes out to the domain (write access required).
pub(super) fn copy_out(hv: &Hv, slot: usize, ptr: u64, bytes: &[u8]) -> Result<(), Error> {
    let pa = check(hv, slot, ptr, bytes.len() as u64, Access::Write)?;
    paging::copy_to_phys(pa, bytes);
    Ok(())
}
