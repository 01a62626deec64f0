//! Persistent grants (`feature-persistent`, blkif.h notes 7-9): when both ends say so, the
//! frontend keeps reusing one set of granted pages, so the backend keeps each page it sees mapped
//! (read-write, as note 8 lets it) and moves data with plain copies instead of a grant copy
//! hypercall per request.
//!
//! [`PersistentGrants`] is one vdisk's table gref → mapping, at most [`MAX_PERSISTENT_GRANTS`]
//! entries; [`PersistentGrants::copier`] wraps the grant copier: a segment on a mapped page (or
//! one it can still map) is copied with volatile word loads/stores, every other segment (table
//! full, map refused, odd alignment) goes to the wrapped grant copier in one batch, which reports
//! the real error for bad grants. Nothing a frontend writes into a mapped page is trusted more
//! than what a grant copy brings: the indirect segment list is still copied once into the
//! backend's buffer before it is validated. The mappings are all let go of on disconnect
//! ([`PersistentGrants::unmap_all`], from the skeleton's `release`).
use alloc::collections::BTreeMap;

use hv_abi::{DomId, GrantStatus};
use xenbus_backend::{GrantCopier, OutCopy, Platform, Seg};

use crate::PAGE_SIZE;

/// Pages one vdisk keeps mapped.
///
/// A domain has `MAX_GRANT_MAPS` = 1024 mapping slots for everything (blkback serves at most 16
/// vdisks, each with a ring page): 16 × (56 + 1) = 912 leaves room, so a frontend can never
/// take the slots another vdisk's ring needs. 56 pages (224 KiB) hold the working set of Linux's
/// blkfront for one 128 KiB indirect request in flight plus small ones (it reuses its grants
/// LIFO, as blkif.h recommends when the backend keeps fewer than it offers); pages past the bound
/// are served by grant copy, as before.
pub const MAX_PERSISTENT_GRANTS: usize = 56;

/// Copy elements handled per pass (the fallback batch is built on the stack).
const CHUNK: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mapping {
    handle: u32,
    va: u64,
}

/// Counters (for tests and the log).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PgrantStats {
    /// Pages mapped.
    pub maps: u64,
    /// Segments copied through a mapping.
    pub hits: u64,
    /// Segments left to the grant copier.
    pub fallbacks: u64,
}

/// One vdisk's persistently mapped grants.
#[derive(Debug, Default)]
pub struct PersistentGrants {
    /// The frontend asked for persistent grants (`feature-persistent=1`) and we offered them.
    enabled: bool,
    table: BTreeMap<u32, Mapping>,
    pub stats: PgrantStats,
}

impl PersistentGrants {
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns the mode on or off for the next connection (the table must be empty: call
    /// [`PersistentGrants::unmap_all`] first).
    pub fn set_enabled(&mut self, on: bool) {
        self.enabled = on;
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// Pages mapped now.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// Unmaps every page; `true` if the platform unmapped them all. The table is empty after.
    pub fn unmap_all(&mut self, p: &mut impl Platform) -> bool {
        let mut ok = true;
        for (_, m) in core::mem::take(&mut self.table) {
            ok &= p.unmap(m.handle).is_ok();
        }
        ok
    }

    /// The grant copier for frontend `domid`'s requests: mapped pages first, `inner` for the rest.
    pub fn copier<'a, C: GrantCopier, P: Platform>(
        &'a mut self,
        inner: &'a mut C,
        platform: &'a mut P,
    ) -> PersistentCopier<'a, C, P> {
        PersistentCopier { grants: self, inner, platform }
    }

    /// The mapping of `gref`, made now if there is room; `None`: use a grant copy.
    fn lookup_or_map(&mut self, p: &mut impl Platform, domid: DomId, gref: u32) -> Option<u64> {
        if !self.enabled {
            return None;
        }
        if let Some(m) = self.table.get(&gref) {
            return Some(m.va);
        }
        if self.table.len() >= MAX_PERSISTENT_GRANTS {
            return None;
        }
        let (handle, va) = p.map(domid, gref).ok()?;
        if va == 0 || !va.is_multiple_of(PAGE_SIZE as u64) {
            let _ = p.unmap(handle);
            return None;
        }
        self.table.insert(gref, Mapping { handle, va });
        self.stats.maps += 1;
        Some(va)
    }
}

/// Whether `len` bytes at `offset` of a page can be copied word by word.
fn words(offset: u16, len: usize) -> bool {
    offset.is_multiple_of(8) && len.is_multiple_of(8) && usize::from(offset) + len <= PAGE_SIZE
}

/// [`GrantCopier`] over a vdisk's persistent grants.
pub struct PersistentCopier<'a, C, P> {
    grants: &'a mut PersistentGrants,
    inner: &'a mut C,
    platform: &'a mut P,
}

impl<C: GrantCopier, P: Platform> GrantCopier for PersistentCopier<'_, C, P> {
    fn copy_in(&mut self, domid: DomId, segs: &[Seg], buf: &mut [u8], status: &mut [GrantStatus]) {
        for (segs, status) in segs.chunks(CHUNK).zip(status.chunks_mut(CHUNK)) {
            let mut rest = [Seg { gref: 0, offset: 0, len: 0, buf_offset: 0 }; CHUNK];
            let mut at = [0usize; CHUNK];
            let mut n = 0;
            for (i, (s, st)) in segs.iter().zip(status.iter_mut()).enumerate() {
                let len = usize::from(s.len);
                let dst = s.buf_offset.checked_add(len).and_then(|end| buf.get_mut(s.buf_offset..end));
                let va = match &dst {
                    Some(_) if words(s.offset, len) => self.grants.lookup_or_map(self.platform, domid, s.gref),
                    _ => None,
                };
                match (va, dst) {
                    (Some(va), Some(dst)) => {
                        // SAFETY: `va` is a page the platform mapped for us (Platform::map's
                        // contract) and keeps mapped until `unmap_all`, which needs `&mut` of
                        // the table we borrow; `offset + len` is inside the page (`words`), and
                        // the loads are aligned (page-aligned `va`, offset a multiple of 8).
                        unsafe { load(va + u64::from(s.offset), dst) };
                        self.grants.stats.hits += 1;
                        *st = GrantStatus::Okay;
                    }
                    _ => {
                        rest[n] = *s;
                        at[n] = i;
                        n += 1;
                    }
                }
            }
            self.fallback_in(domid, &rest[..n], &at[..n], buf, status);
        }
    }

    fn copy_out(&mut self, domid: DomId, copies: &[OutCopy<'_>], status: &mut [GrantStatus]) {
        for (copies, status) in copies.chunks(CHUNK).zip(status.chunks_mut(CHUNK)) {
            let mut rest = [OutCopy { gref: 0, offset: 0, data: &[] }; CHUNK];
            let mut at = [0usize; CHUNK];
            let mut n = 0;
            for (i, (c, st)) in copies.iter().zip(status.iter_mut()).enumerate() {
                let va = if words(c.offset, c.data.len()) {
                    self.grants.lookup_or_map(self.platform, domid, c.gref)
                } else {
                    None
                };
                match va {
                    Some(va) => {
                        // SAFETY: as in `copy_in`.
                        unsafe { store(va + u64::from(c.offset), c.data) };
                        self.grants.stats.hits += 1;
                        *st = GrantStatus::Okay;
                    }
                    None => {
                        rest[n] = *c;
                        at[n] = i;
                        n += 1;
                    }
                }
            }
            if n > 0 {
                self.grants.stats.fallbacks += n as u64;
                let mut st = [GrantStatus::GeneralError; CHUNK];
                self.inner.copy_out(domid, &rest[..n], &mut st[..n]);
                for (&i, s) in at[..n].iter().zip(&st[..n]) {
                    status[i] = *s;
                }
            }
        }
    }
}

impl<C: GrantCopier, P: Platform> PersistentCopier<'_, C, P> {
    fn fallback_in(&mut self, domid: DomId, rest: &[Seg], at: &[usize], buf: &mut [u8], status: &mut [GrantStatus]) {
        if rest.is_empty() {
            return;
        }
        self.grants.stats.fallbacks += rest.len() as u64;
        let mut st = [GrantStatus::GeneralError; CHUNK];
        self.inner.copy_in(domid, rest, buf, &mut st[..rest.len()]);
        for (&i, s) in at.iter().zip(&st) {
            status[i] = *s;
        }
    }
}

/// Copies `dst.len()` bytes (a multiple of 8) from the frontend's page at `src`, one volatile
/// 8-byte load at a time (the frontend may write the page meanwhile: we get some bytes, never
/// undefined behaviour, and nothing is validated in place).
///
/// # Safety
///
/// `src..src + dst.len()` must be mapped readable and 8-aligned.
unsafe fn load(src: u64, dst: &mut [u8]) {
    for (i, d) in dst.chunks_exact_mut(8).enumerate() {
        // SAFETY: inside the range the caller vouches for, aligned.
        let w = unsafe { core::ptr::read_volatile((src as usize as *const u64).add(i)) };
        d.copy_from_slice(&w.to_ne_bytes());
    }
}

/// Copies `src` (a multiple of 8 bytes) into the frontend's page at `dst`, 8 bytes at a time.
///
/// # Safety
///
/// `dst..dst + src.len()` must be mapped writable and 8-aligned.
unsafe fn store(dst: u64, src: &[u8]) {
    for (i, s) in src.chunks_exact(8).enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(s);
        // SAFETY: inside the range the caller vouches for, aligned.
        unsafe { core::ptr::write_volatile((dst as usize as *mut u64).add(i), u64::from_ne_bytes(w)) };
    }
}
