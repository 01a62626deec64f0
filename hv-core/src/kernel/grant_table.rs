//! Grant tables in the kernel: `grant_table_op`, `domctl store_connect`, and the busy bits the
//! hypervisor keeps in a granter's entries while they are mapped (pins), released when a mapper
//! ends and revoked when a granter ends. The checks on an entry, the map-track table and the pin
//! counts are `crate::grant_table` (host-tested). Every entry is read once from the granter's
//! memory, checked, and only then acted on; the busy bits the hypervisor sets are what stops a
//! granter ending access to a page that is still mapped.
use super::Hv;
use super::domain::{Domain, Live};
use super::user_memory::{check, copy_in, copy_out, copy_out_value};
use crate::arch::paging;
use crate::grant_table::{Mapping, check_entry};
use crate::user_memory::Access;
use bytemuck::Zeroable;
use core::mem::size_of;
use core::sync::atomic::{AtomicU16, Ordering};
use hv_abi::{
    DOMAIN_BASE, DomId, Error, GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GNTMAP_READONLY, GrantCopy, GrantEntry, GrantOp,
    GrantRef, GrantStatus, MAX_GRANT_COPY_BATCH, MAX_GRANT_ENTRIES, MAX_GRANT_MAPS, PAGE_SIZE, StoreConnection, gtf,
    map_va,
};

/// Map-track `gref` marking the store page mapped by `store_connect` (not a grant: no pins).
pub const STORE_PAGE_GREF: GrantRef = GrantRef::MAX;

impl Live {
    /// The flags word of entry `gref` in the domain's registered grant table, borrowed for as
    /// long as the live domain, which owns the RAM the table lies in.
    pub fn grant_flags(&self, gref: u32) -> Option<&AtomicU16> {
        let (table, n) = self.grant_table?;
        if gref >= n {
            return None;
        }
        // SAFETY: the table lies in the domain's own RAM (checked at registration), allocated
        // until the domain ends (which needs `&mut` of the domain, so not while this borrow
        // lasts); the flags word is 2-aligned (entries are 8 bytes in a page-aligned table) and
        // any bit pattern is a valid AtomicU16.
        Some(unsafe { &*(paging::phys_to_virt(table + gref as u64 * 8) as *const AtomicU16) })
    }

    /// Entries marked `PERMIT_ACCESS` in the registered grant table.
    pub fn grant_entries_in_use(&self) -> u64 {
        let n = self.grant_table.map_or(0, |(_, n)| n);
        (0..n)
            .filter_map(|gref| self.grant_flags(gref))
            .filter(|f| f.load(Ordering::Relaxed) & gtf::TYPE_MASK == gtf::PERMIT_ACCESS)
            .count() as u64
    }
}

impl Hv {
    /// Points every other domain's mappings of `granter`'s pages at that domain's scratch page.
    pub(super) fn revoke_grants_of(&mut self, granter: DomId) -> usize {
        let loaded = self.loaded_pml4;
        let mut n = 0;
        for d in self.domains.iter_mut().flatten() {
            let Some(l) = d.live_mut() else { continue };
            for h in l.maps.revoke_granter(granter) {
                match (l.maps.get(h).and_then(|m| m.gfn), l.hvm.as_deref_mut()) {
                    // An HVM mapper's guest frame now shows its scratch page.
                    (Some(gfn), Some(hvm)) => {
                        let _ = hvm.npt.map_frame(gfn * PAGE_SIZE, l.scratch, true, &mut self.frames);
                        hvm.vcpu.set_tlb_flush(true);
                    }
                    _ => {
                        let pml4 = l.aspace.pml4;
                        l.aspace.remap_user(hv_abi::map_va(h), l.scratch, pml4 == loaded, &mut self.frames);
                    }
                }
                n += 1;
            }
        }
        n
    }

    /// One mapping of (granter, gref) went away: update the busy bits in the granter's entry.
    pub fn release_pin(&mut self, granter: DomId, gref: GrantRef, writable: bool) {
        if gref == STORE_PAGE_GREF {
            return;
        }
        let bits = self.pins.unpin(granter, gref, writable);
        if let Some(flags) = self.slot_of(granter).and_then(|g| self.grant_flags(g, gref)) {
            flags.fetch_and(!(gtf::READING | gtf::WRITING) | bits, Ordering::SeqCst);
        }
    }

    /// The flags word of entry `gref` in the registered grant table of the live domain in `slot`.
    pub fn grant_flags(&self, slot: usize, gref: u32) -> Option<&AtomicU16> {
        self.domains[slot].as_ref()?.live()?.grant_flags(gref)
    }

    /// Entries marked `PERMIT_ACCESS` in a live domain's registered grant table.
    pub fn grant_entries_in_use(&self, slot: usize) -> u64 {
        self.domains[slot].as_ref().and_then(Domain::live).map_or(0, Live::grant_entries_in_use)
    }
}

/// Map/unmap report errno values; the finer status is what `copy` reports per element.
fn errno(st: GrantStatus) -> Error {
    match st {
        GrantStatus::BadDomain => Error::Srch,
        GrantStatus::BadGntref => Error::NoEnt,
        GrantStatus::PermissionDenied => Error::Perm,
        GrantStatus::BadPage | GrantStatus::BadVirtAddr => Error::Fault,
        GrantStatus::NoSpace => Error::NoSpc,
        GrantStatus::BadHandle | GrantStatus::BadCopyArg => Error::Inval,
        GrantStatus::Okay | GrantStatus::GeneralError => Error::Inval,
    }
}

pub fn dispatch(hv: &mut Hv, slot: usize, args: [u64; 6]) -> Result<u64, Error> {
    match GrantOp::from_u64(args[0]).ok_or(Error::NoSys)? {
        GrantOp::SetupTable => setup_table(hv, slot, args[1], args[2]),
        GrantOp::Map => map(hv, slot, args[1], args[2], args[3]).map_err(errno),
        GrantOp::Unmap => unmap(hv, slot, args[1]).map_err(errno),
        GrantOp::Copy => copy(hv, slot, args[1], args[2]),
    }
}

fn setup_table(hv: &mut Hv, slot: usize, va: u64, entries: u64) -> Result<u64, Error> {
    if entries == 0 || entries > MAX_GRANT_ENTRIES as u64 || !va.is_multiple_of(PAGE_SIZE) {
        return Err(Error::Inval);
    }
    let pa = check(hv, slot, va, entries * 8, Access::Write)?;
    let d = hv.domains[slot].as_ref().ok_or(Error::Srch)?;
    // Moving the table while grants from it are mapped would strand their busy bits.
    if hv
        .domains
        .iter()
        .flatten()
        .filter_map(Domain::live)
        .any(|l| l.maps.iter().any(|(_, m)| m.granter == d.id && !m.revoked && m.gref != STORE_PAGE_GREF))
    {
        return Err(Error::Busy);
    }
    let l = hv.domains[slot].as_mut().and_then(Domain::live_mut).ok_or(Error::Srch)?;
    l.grant_table = Some((pa, entries as u32));
    Ok(0)
}

/// Finds a granter's live slot and reads entry `gref` once.
fn read_entry(hv: &Hv, granter: u64, gref: u64) -> Result<(usize, GrantRef, GrantEntry), GrantStatus> {
    let id = DomId::try_from(granter).map_err(|_| GrantStatus::BadDomain)?;
    let g = hv.slot_of(id).ok_or(GrantStatus::BadDomain)?;
    let (table, n) = hv.domains[g]
        .as_ref()
        .and_then(Domain::live)
        .ok_or(GrantStatus::BadDomain)?
        .grant_table
        .ok_or(GrantStatus::BadDomain)?;
    let gref = u32::try_from(gref).ok().filter(|&r| r < n).ok_or(GrantStatus::BadGntref)?;
    // Entry `gref` lies inside the registered table, in the granter's RAM (checked at
    // registration): one copy, then only the copy is looked at.
    let mut e = GrantEntry::zeroed();
    paging::copy_from_phys(table + gref as u64 * size_of::<GrantEntry>() as u64, bytemuck::bytes_of_mut(&mut e));
    Ok((g, gref, e))
}

/// Checks a granted page for `caller` and returns its physical address.
fn granted_page(hv: &Hv, g: usize, e: GrantEntry, caller: DomId, write: bool) -> Result<u64, GrantStatus> {
    let gd = hv.domains[g].as_ref().ok_or(GrantStatus::BadDomain)?;
    let gl = gd.live().ok_or(GrantStatus::BadDomain)?;
    // A paravirtual granter names pages of its RAM by index (its own memory map decides which
    // it may grant); an HVM granter names guest frames, which must be its ordinary RAM.
    let frame = check_entry(e, caller, write, gd.pages(), |f, w| match gl.hvm.as_deref() {
        Some(h) => h.ram_frame(gl.ram, f as u64).is_some(),
        None => {
            let access = if w { Access::Write } else { Access::Read };
            gl.umap.check(DOMAIN_BASE + f as u64 * PAGE_SIZE, PAGE_SIZE, access).is_ok()
        }
    })?;
    Ok(gl.ram + frame as u64 * PAGE_SIZE)
}

fn map(hv: &mut Hv, slot: usize, granter: u64, gref: u64, flags: u64) -> Result<u64, GrantStatus> {
    let me = hv.domains[slot].as_ref().ok_or(GrantStatus::GeneralError)?.id;
    let write = flags & GNTMAP_READONLY == 0;
    let (g, gref, e) = read_entry(hv, granter, gref)?;
    if g == slot {
        return Err(GrantStatus::BadDomain);
    }
    let pa = granted_page(hv, g, e, me, write)?;
    let granter = hv.domains[g].as_ref().ok_or(GrantStatus::BadDomain)?.id;
    let bits = hv.pins.pin(granter, gref, write)?;
    let m = Mapping { granter, gref, writable: write, revoked: false, gfn: None };
    let l = hv.domains[slot].as_mut().and_then(Domain::live_mut).ok_or(GrantStatus::GeneralError)?;
    let handle = match l.maps.insert(m, MAX_GRANT_MAPS) {
        Ok(h) => h,
        Err(st) => {
            hv.release_pin(granter, gref, write);
            return Err(st);
        }
    };
    if l.aspace.map_user(map_va(handle), pa, write, false, &mut hv.frames).is_none() {
        l.maps.remove(handle);
        hv.release_pin(granter, gref, write);
        return Err(GrantStatus::NoSpace);
    }
    if let Some(f) = hv.grant_flags(g, gref) {
        f.fetch_or(bits, Ordering::SeqCst);
    }
    Ok(handle as u64)
}

fn unmap(hv: &mut Hv, slot: usize, handle: u64) -> Result<u64, GrantStatus> {
    let handle = u32::try_from(handle).map_err(|_| GrantStatus::BadHandle)?;
    let loaded = hv.loaded_pml4;
    let l = hv.domains[slot].as_mut().and_then(Domain::live_mut).ok_or(GrantStatus::GeneralError)?;
    let m = l.maps.remove(handle).ok_or(GrantStatus::BadHandle)?;
    let pml4 = l.aspace.pml4;
    l.aspace.unmap_user(map_va(handle), pml4 == loaded);
    if !m.revoked {
        hv.release_pin(m.granter, m.gref, m.writable);
    }
    Ok(0)
}

/// Maps grant `gref` of domain `granter` for HVM domain `slot` at its guest frame `gfn`, which
/// must lie above its RAM, below [`crate::arch::npt::MAX_GPA`], and show nothing yet (not a
/// page the hypervisor placed, not another mapping); read-only unless `write`. Returns the
/// handle. The nested tables it may need are bounded with the guest's other placements.
pub(super) fn map_for_hvm(
    hv: &mut Hv,
    slot: usize,
    granter: u64,
    gref: u64,
    gfn: u64,
    write: bool,
) -> Result<u32, GrantStatus> {
    let me = hv.domains[slot].as_ref().ok_or(GrantStatus::GeneralError)?.id;
    let (g, gref, e) = read_entry(hv, granter, gref)?;
    if g == slot {
        return Err(GrantStatus::BadDomain);
    }
    {
        let l = hv.domains[slot].as_ref().and_then(Domain::live).ok_or(GrantStatus::GeneralError)?;
        let h = l.hvm.as_deref().ok_or(GrantStatus::GeneralError)?;
        let free = gfn >= h.ram_pages
            && gfn < crate::arch::npt::MAX_GPA / PAGE_SIZE
            && h.npt.translate(gfn * PAGE_SIZE).is_none()
            && h.npt.table_frames() <= h.base_table_frames + super::hvm::EXTRA_TABLE_FRAMES;
        if !free {
            return Err(GrantStatus::GeneralError);
        }
    }
    let pa = granted_page(hv, g, e, me, write)?;
    let granter = hv.domains[g].as_ref().ok_or(GrantStatus::BadDomain)?.id;
    let bits = hv.pins.pin(granter, gref, write)?;
    let m = Mapping { granter, gref, writable: write, revoked: false, gfn: Some(gfn) };
    let Hv { domains, frames, .. } = hv;
    let l = domains[slot].as_mut().and_then(Domain::live_mut).ok_or(GrantStatus::GeneralError)?;
    let handle = l.maps.insert(m, MAX_GRANT_MAPS);
    let mapped = match (handle, l.hvm.as_deref_mut()) {
        (Ok(handle), Some(h)) => {
            let done = h.npt.map_frame(gfn * PAGE_SIZE, pa, write, frames);
            h.vcpu.set_tlb_flush(true);
            if done.is_none() {
                l.maps.remove(handle);
            }
            done.map(|()| handle).ok_or(GrantStatus::NoSpace)
        }
        (Ok(handle), None) => {
            l.maps.remove(handle);
            Err(GrantStatus::GeneralError)
        }
        (Err(st), _) => Err(st),
    };
    match mapped {
        Ok(handle) => {
            if let Some(f) = hv.grant_flags(g, gref) {
                f.fetch_or(bits, Ordering::SeqCst);
            }
            Ok(handle)
        }
        Err(st) => {
            hv.release_pin(granter, gref, write);
            Err(st)
        }
    }
}

/// Unmaps HVM domain `slot`'s grant mapping `handle`, which must be the one at guest frame
/// `gfn`; the frame then shows nothing.
pub(super) fn unmap_for_hvm(hv: &mut Hv, slot: usize, handle: u64, gfn: u64) -> Result<(), GrantStatus> {
    let handle = u32::try_from(handle).map_err(|_| GrantStatus::BadHandle)?;
    let l = hv.domains[slot].as_mut().and_then(Domain::live_mut).ok_or(GrantStatus::GeneralError)?;
    let m = l.maps.get(handle).ok_or(GrantStatus::BadHandle)?;
    if m.gfn != Some(gfn) {
        return Err(GrantStatus::GeneralError);
    }
    let h = l.hvm.as_deref_mut().ok_or(GrantStatus::GeneralError)?;
    l.maps.remove(handle);
    h.npt.unmap(gfn * PAGE_SIZE);
    h.vcpu.set_tlb_flush(true);
    if !m.revoked {
        hv.release_pin(m.granter, m.gref, m.writable);
    }
    Ok(())
}

/// The physical address of `len` bytes at `offset` in the page domain `granter` granted to `me`
/// as `gref` (for writing if `write`): one side of a grant copy, for paravirtual and HVM callers
/// alike.
pub(super) fn granted_bytes(
    hv: &Hv,
    me: DomId,
    granter: u64,
    gref: u64,
    offset: u16,
    len: u64,
    write: bool,
) -> Result<u64, GrantStatus> {
    if offset as u64 + len > PAGE_SIZE {
        return Err(GrantStatus::BadCopyArg);
    }
    let (g, _, e) = read_entry(hv, granter, gref)?;
    Ok(granted_page(hv, g, e, me, write)? + offset as u64)
}

/// Resolves one side of a copy to a physical address valid for `len` bytes.
fn copy_side(
    hv: &Hv,
    slot: usize,
    me: DomId,
    side: hv_abi::GrantCopyPtr,
    gref: bool,
    write: bool,
    len: u64,
) -> Result<u64, GrantStatus> {
    if gref {
        granted_bytes(hv, me, side.domid as u64, side.ref_or_addr, side.offset, len, write)
    } else {
        let access = if write { Access::Write } else { Access::Read };
        let l = hv.domains[slot].as_ref().and_then(Domain::live).ok_or(GrantStatus::GeneralError)?;
        l.umap.check(side.ref_or_addr, len, access).map_err(|_| GrantStatus::BadVirtAddr)
    }
}

fn copy(hv: &mut Hv, slot: usize, ops: u64, count: u64) -> Result<u64, Error> {
    if count > MAX_GRANT_COPY_BATCH as u64 {
        return Err(Error::TooBig);
    }
    let me = hv.domains[slot].as_ref().ok_or(Error::Srch)?.id;
    let size = core::mem::size_of::<GrantCopy>() as u64;
    // The whole array must be ours and writable before anything is copied.
    check(hv, slot, ops, count * size, Access::Write)?;
    for i in 0..count {
        let at = ops + i * size;
        let op: GrantCopy = copy_in(hv, slot, at)?;
        let len = op.len as u64;
        let status = if len == 0 {
            GrantStatus::Okay
        } else {
            let src = copy_side(hv, slot, me, op.source, op.flags & GNTCOPY_SOURCE_GREF != 0, false, len);
            let dst = copy_side(hv, slot, me, op.dest, op.flags & GNTCOPY_DEST_GREF != 0, true, len);
            match (src, dst) {
                (Ok(s), Ok(d)) => {
                    paging::copy_phys(s, d, len);
                    GrantStatus::Okay
                }
                (Err(e), _) | (_, Err(e)) => e,
            }
        };
        copy_out(hv, slot, at + core::mem::offset_of!(GrantCopy, status) as u64, &status.as_raw().to_le_bytes())?;
    }
    Ok(0)
}

/// Maps domain `target`'s store page into the caller's window and connects an event channel to
/// its store port.
pub fn store_connect(hv: &mut Hv, caller: usize, target: u64, out: u64) -> Result<u64, Error> {
    let me = hv.domains[caller].as_ref().ok_or(Error::Srch)?.id;
    let t = DomId::try_from(target).ok().and_then(|id| hv.slot_of(id)).ok_or(Error::Srch)?;
    if t == caller {
        return Err(Error::Inval);
    }
    let td = hv.domains[t].as_ref().ok_or(Error::Srch)?;
    let (tid, tring) = (td.id, td.live().ok_or(Error::Srch)?.store_ring_phys());
    // The domain's store port is the one still unbound for us (created with the domain).
    let store_port = (1..hv_abi::MAX_PORTS as u32)
        .find(|&p| hv.evtchn.status(tid, p) == Ok(crate::event_channel::PortState::Unbound { remote: me }))
        .ok_or(Error::Busy)?;
    let (port, pend) = hv.evtchn.bind_interdomain(me, tid, store_port).map_err(|_| Error::Busy)?;
    let m = Mapping { granter: tid, gref: STORE_PAGE_GREF, writable: true, revoked: false, gfn: None };
    let l = hv.domains[caller].as_mut().and_then(Domain::live_mut).ok_or(Error::Srch)?;
    let Ok(handle) = l.maps.insert(m, MAX_GRANT_MAPS) else {
        let _ = hv.evtchn.close(me, port);
        return Err(Error::NoSpc);
    };
    if l.aspace.map_user(map_va(handle), tring, true, false, &mut hv.frames).is_none() {
        l.maps.remove(handle);
        let _ = hv.evtchn.close(me, port);
        return Err(Error::NoMem);
    }
    hv.set_pending(pend.dom, pend.port);
    let conn = StoreConnection { port, map_handle: handle, va: map_va(handle) };
    copy_out_value(hv, caller, out, &conn)?;
    Ok(0)
}
