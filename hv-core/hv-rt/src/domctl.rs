//! Domain management (`domctl`), for Dom0. Other domains get `EPERM` from every call.
use crate::hypercall::{call, raw};
use alloc::vec;
use alloc::vec::Vec;
use hv_abi::{CreateDomain, DomId, DomainListEntry, DomctlOp, Error, Hypercall, decode_result};

/// A `domctl` whose arguments are plain values (this module's callers pass only such ops).
fn domctl(op: DomctlOp, a: u64, b: u64, c: u64) -> Result<u64, Error> {
    // SAFETY: every op this module sends through here takes values only (domids, codes,
    // selectors); the pointer-taking ops use `raw` with their own SAFETY lines.
    unsafe { call(Hypercall::Domctl, op as u64, a, b, c) }
}

/// Creates a domain from a bundle image and runs it; returns its id.
pub fn create(name: &str, image: &str, memory_mib: u32, args: &str) -> Result<DomId, Error> {
    create_with(name, image, memory_mib, args, 0)
}

/// Creates a domain; `flags` may hold [`hv_abi::CREATE_PAUSED`].
pub fn create_with(name: &str, image: &str, memory_mib: u32, args: &str, flags: u64) -> Result<DomId, Error> {
    create_raw(name, image, "", memory_mib, args, flags)
}

/// Creates a PVH (HVM) domain booting `kernel` with `ramdisk` (may be empty) and `cmdline`;
/// `flags` may hold [`hv_abi::CREATE_PAUSED`].
pub fn create_pvh(
    name: &str,
    kernel: &str,
    ramdisk: &str,
    memory_mib: u32,
    cmdline: &str,
    flags: u64,
) -> Result<DomId, Error> {
    create_raw(name, kernel, ramdisk, memory_mib, cmdline, flags | hv_abi::CREATE_PVH)
}

/// Options of [`create_raw`] beyond the image: a PVH ramdisk, a required domain id.
fn create_raw(name: &str, image: &str, ramdisk: &str, memory_mib: u32, args: &str, flags: u64) -> Result<DomId, Error> {
    create_full(name, image, ramdisk, memory_mib, args, flags, None)
}

/// Creates a domain like [`create_with`] (PV) or [`create_pvh`] (`flags` with
/// [`hv_abi::CREATE_PVH`]), under domain id `domid` when given (Dom0 restarting a driver domain
/// in place).
pub fn create_full(
    name: &str,
    image: &str,
    ramdisk: &str,
    memory_mib: u32,
    args: &str,
    flags: u64,
    domid: Option<DomId>,
) -> Result<DomId, Error> {
    if args.len() > hv_abi::ARGS_LEN
        || name.len() > hv_abi::NAME_LEN
        || image.len() > hv_abi::NAME_LEN
        || ramdisk.len() > hv_abi::NAME_LEN
    {
        return Err(Error::TooBig);
    }
    let mut spec = CreateDomain {
        name: hv_abi::name_to_array(name),
        image: hv_abi::name_to_array(image),
        memory_mib,
        args_len: args.len() as u32,
        args: [0; hv_abi::ARGS_LEN],
        flags,
        ramdisk: hv_abi::name_to_array(ramdisk),
        domid: 0,
        _pad: 0,
    };
    if let Some(id) = domid {
        spec.domid = id as u32;
        spec.flags |= hv_abi::CREATE_DOMID;
    }
    spec.args[..args.len()].copy_from_slice(args.as_bytes());
    // SAFETY: `spec` is a live, readable CreateDomain for the duration of the call.
    let r = unsafe { raw(Hypercall::Domctl, DomctlOp::Create as u64, (&raw const spec) as u64, 0, 0) };
    decode_result(r).and_then(|id| DomId::try_from(id).map_err(|_| Error::Inval))
}

pub fn destroy(domid: DomId) -> Result<(), Error> {
    domctl(DomctlOp::Destroy, domid as u64, 0, 0).map(drop)
}

pub fn pause(domid: DomId) -> Result<(), Error> {
    domctl(DomctlOp::Pause, domid as u64, 0, 0).map(drop)
}

pub fn unpause(domid: DomId) -> Result<(), Error> {
    domctl(DomctlOp::Unpause, domid as u64, 0, 0).map(drop)
}

/// Every domain the hypervisor knows (live, or dead and not yet reaped).
pub fn list() -> Result<Vec<DomainListEntry>, Error> {
    let mut out = vec![DomainListEntry::default(); hv_abi::MAX_DOMAINS];
    // SAFETY: `out` is writable for MAX_DOMAINS entries.
    let r = unsafe { raw(Hypercall::Domctl, DomctlOp::List as u64, out.as_mut_ptr() as u64, out.len() as u64, 0) };
    let n = decode_result(r)? as usize;
    out.truncate(n);
    Ok(out)
}

/// The boot topology (postcard bytes; decode with `hv-bundle`).
pub fn topology() -> Result<Vec<u8>, Error> {
    let len = domctl(DomctlOp::Topology, 0, 0, 0)? as usize;
    let mut buf = vec![0u8; len];
    // SAFETY: `buf` is writable for `len` bytes.
    let r = unsafe { raw(Hypercall::Domctl, DomctlOp::Topology as u64, buf.as_mut_ptr() as u64, len as u64, 0) };
    decode_result(r)?;
    Ok(buf)
}

/// Hypervisor-wide totals (`xl info`): memory, domains, grant entries and mappings, event-channel
/// ports, console history held, control-channel counters, uptime.
pub fn physinfo() -> Result<hv_abi::PhysInfo, Error> {
    let mut info = hv_abi::PhysInfo::default();
    // SAFETY: `info` is writable for the duration of the call.
    let r = unsafe { raw(Hypercall::Domctl, DomctlOp::PhysInfo as u64, (&raw mut info) as u64, 0, 0) };
    decode_result(r).map(|_| info)
}

/// Maps domain `domid`'s store page and connects to its store port (the store server's call).
pub fn store_connect(domid: DomId) -> Result<hv_abi::StoreConnection, Error> {
    let mut c = hv_abi::StoreConnection::default();
    // SAFETY: `c` is writable for the duration of the call.
    let r = unsafe { raw(Hypercall::Domctl, DomctlOp::StoreConnect as u64, domid as u64, (&raw mut c) as u64, 0) };
    decode_result(r).map(|_| c)
}

/// Assigns the first free PCI device matching `sel` to `domid`; returns its address.
pub fn assign_pci(domid: DomId, sel: hv_abi::pci::Selector) -> Result<u16, Error> {
    domctl(DomctlOp::AssignPci, domid as u64, sel.encode(), 0).map(|b| b as u16)
}

/// Powers the machine off (QEMU exits with `((0x10 + code) << 1) | 1`).
pub fn poweroff(code: u8) -> Error {
    match domctl(DomctlOp::Poweroff, code as u64, 0, 0) {
        Err(e) => e,
        Ok(_) => Error::NoSys,
    }
}
