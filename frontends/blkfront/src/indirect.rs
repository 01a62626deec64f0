//! The indirect pages: pages of ours granted read-only to the backend, each holding the segment
//! list of one `BLKIF_OP_INDIRECT` request while it is in flight. As many as the data pool can
//! have indirect requests in flight ([`crate::request::Limits::indirect_pages_needed`]), so no
//! request waits for one.
use alloc::alloc::{Layout, alloc_zeroed, dealloc};
use alloc::vec::Vec;

use hv_abi::{DomId, Error};
use hv_rt::grant;

use crate::request::PAGE;

pub(crate) struct IndirectPages {
    peer: DomId,
    all: Vec<(u32, u64)>,
    free: Vec<(u32, u64)>,
}

fn layout() -> Result<Layout, Error> {
    Layout::from_size_align(PAGE, PAGE).map_err(|_| Error::Inval)
}

impl IndirectPages {
    /// Allocates `count` pages and grants them read-only to `peer`.
    pub(crate) fn new(peer: DomId, count: usize) -> Result<Self, Error> {
        let mut pages = Self { peer, all: Vec::with_capacity(count), free: Vec::with_capacity(count) };
        for _ in 0..count {
            // SAFETY: non-zero-size layout.
            let p = unsafe { alloc_zeroed(layout()?) };
            if p.is_null() {
                pages.end_all();
                return Err(Error::NoMem);
            }
            match grant::grant_access(peer, p as u64, true) {
                Ok(gref) => pages.all.push((gref, p as u64)),
                Err(e) => {
                    // SAFETY: allocated just above with the same layout, never granted.
                    unsafe { dealloc(p, layout()?) };
                    pages.end_all();
                    return Err(e);
                }
            }
        }
        pages.free = pages.all.clone();
        Ok(pages)
    }

    pub(crate) fn peer(&self) -> DomId {
        self.peer
    }

    pub(crate) fn len(&self) -> usize {
        self.all.len()
    }

    /// `n` pages (grant ref, address), or none if fewer are free.
    pub(crate) fn take(&mut self, n: usize) -> Option<Vec<(u32, u64)>> {
        let at = self.free.len().checked_sub(n)?;
        Some(self.free.split_off(at))
    }

    pub(crate) fn give_back(&mut self, pages: Vec<(u32, u64)>) {
        for p in pages {
            if self.all.contains(&p) && !self.free.contains(&p) {
                self.free.push(p);
            }
        }
    }

    /// Ends every grant and frees the pages whose grant ended; a page the peer still maps is
    /// left to it (leaked, never reused). Returns how many were left.
    pub(crate) fn end_all(self) -> usize {
        let mut left = 0;
        for (gref, va) in self.all {
            if grant::end_access(gref).is_err() {
                left += 1;
                continue;
            }
            if let Ok(l) = layout() {
                // SAFETY: allocated by `new` with this layout; the grant has ended, so only we
                // reach the page, and it is not in `free` any more (`self` is consumed).
                unsafe { dealloc(va as *mut u8, l) };
            }
        }
        left
    }
}
