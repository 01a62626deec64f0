//! Helpers the fuzz targets share: reading a fuzz input as a script of operations, a ring page
//! a hostile frontend writes to directly, and a fake grant copier (the hypervisor's grant copy
//! reduced to its checks: the grant exists, is writable for a copy into it, the range stays in
//! the page; a bad element fails only itself).

use std::cell::Cell;

use hv_abi::GrantStatus;
use shared_ring::layout::{HEADER_SIZE, PAGE_SIZE};
use shared_ring::{CellMemory, SharedMemory};
use xenbus_backend::{GrantCopier, OutCopy, Seg};

/// A fuzz input read front to back; every read may run out (`None` ends the script).
pub struct Script<'a>(pub &'a [u8]);

impl<'a> Script<'a> {
    pub fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }
    pub fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    pub fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([self.byte()?, self.byte()?, self.byte()?, self.byte()?]))
    }
    /// Up to `n` bytes (fewer at the end of the input).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    /// Exactly `N` bytes, or `None`.
    pub fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (head, rest) = self.0.split_first_chunk::<N>()?;
        self.0 = rest;
        Some(*head)
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A zeroed 4 KiB page as cells (a ring page or a store page both ends share).
pub fn page() -> Box<[Cell<u8>]> {
    (0..PAGE_SIZE).map(|_| Cell::new(0)).collect()
}

/// The frontend's side of a ring page it writes by hand: request slots and the header words.
pub struct HostileFront<'a> {
    pub memory: CellMemory<'a>,
    pub slot_size: usize,
    pub slots: u32,
    pub req_prod: u32,
}

impl<'a> HostileFront<'a> {
    pub fn new(cells: &'a [Cell<u8>], slot_size: usize) -> Self {
        let memory = CellMemory::from_cells(cells);
        let slots = shared_ring::layout::slots_for(PAGE_SIZE - HEADER_SIZE, slot_size);
        Self { memory, slot_size, slots, req_prod: 0 }
    }
    /// Writes `bytes` (at most one slot) into the next request slot and publishes it.
    pub fn push(&mut self, bytes: &[u8]) {
        let at = HEADER_SIZE + (self.req_prod % self.slots) as usize * self.slot_size;
        let mut slot = vec![0u8; self.slot_size];
        let n = bytes.len().min(self.slot_size);
        slot[..n].copy_from_slice(&bytes[..n]);
        self.memory.write(at, &slot);
        self.req_prod = self.req_prod.wrapping_add(1);
        self.memory.store_release(shared_ring::layout::REQ_PROD, self.req_prod);
    }
    /// Overwrites one header word (req_prod, req_event, rsp_prod, rsp_event) with anything.
    pub fn rewrite_header(&mut self, which: u8, value: u32) {
        let offset = usize::from(which % 4) * 4;
        self.memory.store_release(offset, value);
        if offset == shared_ring::layout::REQ_PROD {
            self.req_prod = value;
        }
    }
    /// The response producer index the backend published.
    pub fn rsp_prod(&self) -> u32 {
        self.memory.load_acquire(shared_ring::layout::RSP_PROD)
    }
}

/// The hypervisor's grant copy over fake grants of one frontend: `gref < GRANTS` exist, odd
/// ones are read-only; every page holds `gref as u8` bytes. It also asserts what a backend must
/// never ask for: a range outside the granted page or outside its own buffer (the hv-rt copier
/// refuses both, but a backend that asks has validated or packed something wrong).
pub struct FakeGrants {
    pub domid: hv_abi::DomId,
    pub pages: Vec<[u8; PAGE_SIZE]>,
    pub batches: usize,
    pub elements: usize,
}

/// Grants the fake frontend made.
pub const GRANTS: u32 = 24;

impl FakeGrants {
    pub fn new(domid: hv_abi::DomId) -> Self {
        Self { domid, pages: (0..GRANTS).map(|g| [g as u8; PAGE_SIZE]).collect(), batches: 0, elements: 0 }
    }
    fn check(&self, gref: u32, offset: u16, len: usize, write: bool) -> Result<usize, GrantStatus> {
        assert!(usize::from(offset) + len <= PAGE_SIZE, "backend asked to copy past the granted page");
        if gref >= GRANTS {
            return Err(GrantStatus::BadGntref);
        }
        if write && gref % 2 == 1 {
            return Err(GrantStatus::PermissionDenied);
        }
        Ok(gref as usize)
    }
}

impl GrantCopier for FakeGrants {
    fn copy_in(&mut self, domid: hv_abi::DomId, segs: &[Seg], buf: &mut [u8], status: &mut [GrantStatus]) {
        assert_eq!(domid, self.domid, "copy from another domain's grants");
        self.batches += 1;
        for (s, st) in segs.iter().zip(status.iter_mut()) {
            self.elements += 1;
            let len = usize::from(s.len);
            assert!(s.buf_offset.checked_add(len).is_some_and(|e| e <= buf.len()), "segment outside the buffer");
            *st = match self.check(s.gref, s.offset, len, false) {
                Ok(g) => {
                    let o = usize::from(s.offset);
                    buf[s.buf_offset..s.buf_offset + len].copy_from_slice(&self.pages[g][o..o + len]);
                    GrantStatus::Okay
                }
                Err(e) => e,
            };
        }
    }
    fn copy_out(&mut self, domid: hv_abi::DomId, copies: &[OutCopy<'_>], status: &mut [GrantStatus]) {
        assert_eq!(domid, self.domid, "copy to another domain's grants");
        self.batches += 1;
        for (c, st) in copies.iter().zip(status.iter_mut()) {
            self.elements += 1;
            *st = match self.check(c.gref, c.offset, c.data.len(), true) {
                Ok(g) => {
                    let o = usize::from(c.offset);
                    self.pages[g][o..o + c.data.len()].copy_from_slice(c.data);
                    GrantStatus::Okay
                }
                Err(e) => e,
            };
        }
    }
}
