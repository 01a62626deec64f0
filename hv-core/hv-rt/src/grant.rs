//! Grant tables, the granting side (this domain's table) and the using side (map, unmap, copy).
//!
//! The table lives in our own memory; the hypervisor reads an entry once per use and sets the
//! busy bits (`READING`/`WRITING`) while a peer maps it, so `end_access` refuses to take back a
//! page that is still mapped. Entries are written domid and frame first, flags last.
use crate::hypercall::{call, raw};
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering};
use hv_abi::{DomId, Error, GrantCopy, GrantEntry, GrantOp, GrantRef, Hypercall, decode_result, gfn_of, gtf};
use spin::Mutex;

/// Grant refs 0..8 are reserved, as in Xen.
pub const FIRST_REF: GrantRef = 8;
/// Entries in our table (one page).
pub const ENTRIES: u32 = 512;

struct Table {
    entries: *mut GrantEntry,
    free: Vec<GrantRef>,
}

// SAFETY: the table pointer is only used under the mutex; the memory is ours for ever.
unsafe impl Send for Table {}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

fn with_table<R>(f: impl FnOnce(&mut Table) -> R) -> Result<R, Error> {
    let mut t = TABLE.lock();
    if t.is_none() {
        let layout = Layout::from_size_align(ENTRIES as usize * 8, 4096).map_err(|_| Error::Inval)?;
        // SAFETY: non-zero size layout.
        let p = unsafe { alloc_zeroed(layout) }.cast::<GrantEntry>();
        if p.is_null() {
            return Err(Error::NoMem);
        }
        // SAFETY: `p` is a zeroed, page-aligned, writable allocation of ENTRIES entries that we
        // never free: the hypervisor may read (and set busy bits in) it for the rest of our life.
        unsafe { call(Hypercall::GrantTableOp, GrantOp::SetupTable as u64, p as u64, ENTRIES as u64, 0) }?;
        *t = Some(Table { entries: p, free: (FIRST_REF..ENTRIES).rev().collect() });
    }
    Ok(f(t.as_mut().expect("initialised above")))
}

/// The flags word of entry `gref`, borrowed from the table.
fn flags(t: &Table, gref: GrantRef) -> &AtomicU16 {
    debug_assert!(gref < ENTRIES);
    // SAFETY: gref < ENTRIES (callers check), so the word lies in the table's allocation, which
    // is never freed; it is 2-aligned and any bit pattern is a valid AtomicU16.
    unsafe { &*((t.entries.add(gref as usize)) as *const AtomicU16) }
}

/// Grants `domid` access to our page at `va` (page-aligned); returns the grant ref.
pub fn grant_access(domid: DomId, va: u64, readonly: bool) -> Result<GrantRef, Error> {
    if !va.is_multiple_of(4096) || domid >= hv_abi::DOMID_SELF_ID {
        return Err(Error::Inval);
    }
    with_table(|t| {
        let gref = t.free.pop().ok_or(Error::NoSpc)?;
        // SAFETY: gref < ENTRIES; domid and frame are written before the flags make the entry
        // valid (the hypervisor reads the entry only after it sees PERMIT_ACCESS).
        unsafe {
            let e = t.entries.add(gref as usize);
            (&raw mut (*e).domid).write_volatile(domid);
            (*(&raw mut (*e).frame).cast::<AtomicU32>()).store(gfn_of(va), Ordering::Release);
        }
        let ro = if readonly { gtf::READONLY } else { 0 };
        flags(t, gref).store(gtf::PERMIT_ACCESS | ro, Ordering::Release);
        Ok(gref)
    })?
}

/// Ends a grant. Fails with `Busy` while the peer still has it mapped.
pub fn end_access(gref: GrantRef) -> Result<(), Error> {
    if !(FIRST_REF..ENTRIES).contains(&gref) {
        return Err(Error::Inval);
    }
    with_table(|t| {
        let f = flags(t, gref);
        let cur = f.load(Ordering::Acquire);
        if cur & (gtf::READING | gtf::WRITING) != 0 {
            return Err(Error::Busy);
        }
        if cur & gtf::TYPE_MASK == 0 {
            return Err(Error::Inval);
        }
        f.compare_exchange(cur, 0, Ordering::AcqRel, Ordering::Acquire).map_err(|_| Error::Busy)?;
        t.free.push(gref);
        Ok(())
    })?
}

/// Maps `granter`'s grant `gref`; returns (handle, address).
pub fn map(granter: DomId, gref: GrantRef, readonly: bool) -> Result<(u32, u64), Error> {
    let flags = if readonly { hv_abi::GNTMAP_READONLY } else { 0 };
    // SAFETY: `map` takes values only (a domid, a ref, flags).
    let h = unsafe { call(Hypercall::GrantTableOp, GrantOp::Map as u64, granter as u64, gref as u64, flags) }? as u32;
    Ok((h, hv_abi::map_va(h)))
}

pub fn unmap(handle: u32) -> Result<(), Error> {
    // SAFETY: `unmap` takes a handle, a value.
    unsafe { call(Hypercall::GrantTableOp, GrantOp::Unmap as u64, handle as u64, 0, 0) }.map(drop)
}

/// Runs a batch of copies; each element's `status` says how it went.
pub fn copy(ops: &mut [GrantCopy]) -> Result<(), Error> {
    for chunk in ops.chunks_mut(hv_abi::MAX_GRANT_COPY_BATCH) {
        // SAFETY: `chunk` is a writable slice of GrantCopy for the duration of the call.
        let r = unsafe {
            raw(Hypercall::GrantTableOp, GrantOp::Copy as u64, chunk.as_mut_ptr() as u64, chunk.len() as u64, 0)
        };
        decode_result(r)?;
    }
    Ok(())
}

fn page_layout() -> Result<Layout, Error> {
    Layout::from_size_align(4096, 4096).map_err(|_| Error::Inval)
}

/// Pages granted once to one peer and reused, instead of granting and ending access per use.
pub struct GrantedPages {
    peer: DomId,
    free: Vec<(GrantRef, u64)>,
    all: Vec<(GrantRef, u64)>,
}

impl GrantedPages {
    /// Allocates and grants `count` writable pages to `peer`.
    pub fn new(peer: DomId, count: usize) -> Result<Self, Error> {
        let mut pages = Self { peer, free: Vec::with_capacity(count), all: Vec::with_capacity(count) };
        let layout = page_layout()?;
        for _ in 0..count {
            // SAFETY: non-zero size layout.
            let p = unsafe { alloc_zeroed(layout) };
            if p.is_null() {
                pages.end_all();
                return Err(Error::NoMem);
            }
            match grant_access(peer, p as u64, false) {
                Ok(r) => {
                    pages.all.push((r, p as u64));
                    pages.free.push((r, p as u64));
                }
                Err(e) => {
                    // SAFETY: allocated just above with `layout`, never granted.
                    unsafe { dealloc(p, layout) };
                    pages.end_all();
                    return Err(e);
                }
            }
        }
        Ok(pages)
    }

    pub fn peer(&self) -> DomId {
        self.peer
    }

    /// A granted page: (grant ref, address).
    pub fn take(&mut self) -> Option<(GrantRef, u64)> {
        self.free.pop()
    }

    pub fn give_back(&mut self, page: (GrantRef, u64)) {
        if self.all.contains(&page) && !self.free.contains(&page) {
            self.free.push(page);
        }
    }

    /// Ends every grant and frees the pages that are back in the pool and whose grant ended. A
    /// page the peer still maps, or one still taken out, stays allocated and is never reused (a
    /// backend that keeps crashing cannot make its frontend leak a pool per restart). Returns
    /// how many grants could not be ended.
    pub fn end_all(self) -> usize {
        let layout = page_layout();
        let mut busy = 0;
        for &(r, va) in &self.all {
            if end_access(r).is_err() {
                busy += 1;
                continue;
            }
            if let Ok(l) = layout
                && self.free.contains(&(r, va))
            {
                // SAFETY: `new` allocated `va` with this layout; its grant has ended, so the peer
                // cannot reach it, and it is in the free list, so no caller holds it.
                unsafe { dealloc(va as *mut u8, l) };
            }
        }
        busy
    }
}
