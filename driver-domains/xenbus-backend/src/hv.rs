//! The skeleton on hv-core: the hypervisor's grant map/unmap, event channels and grant copy,
//! and the console.
use hv_abi::DomId;
use hv_abi::{Error, GNTCOPY_DEST_GREF, GNTCOPY_SOURCE_GREF, GrantCopy, GrantCopyPtr, GrantStatus};
use hv_rt::{evtchn, grant};

use crate::copier::{GrantCopier, OutCopy, Seg};
use crate::platform::Platform;

/// This domain's hypervisor and console.
pub struct Hv;

// SAFETY: `grant::map` returns the page it mapped read-write into our address space; it stays
// mapped until `grant::unmap` of its handle (a frontend that dies leaves a scratch page in its
// place, never an unmapped hole), and nothing else of ours uses that address.
unsafe impl Platform for Hv {
    fn map(&mut self, domid: DomId, gref: u32) -> Result<(u32, u64), Error> {
        grant::map(domid, gref, false)
    }
    fn unmap(&mut self, handle: u32) -> Result<(), Error> {
        grant::unmap(handle)
    }
    fn bind(&mut self, domid: DomId, remote_port: u32) -> Result<u32, Error> {
        evtchn::bind_interdomain(domid, remote_port)
    }
    fn close(&mut self, port: u32) -> Result<(), Error> {
        evtchn::close(port)
    }
    fn log(&mut self, line: &str) {
        hv_rt::println!("{line}");
    }
}

/// Grant copy elements per hypercall (built on the stack).
const CHUNK: usize = 64;

/// The hypervisor's batched grant copy: one hypercall per [`CHUNK`] elements.
pub struct HvCopier;

fn run_batch(ops: &mut [GrantCopy], status: &mut [GrantStatus]) {
    match grant::copy(ops) {
        Ok(()) => {
            for (s, o) in status.iter_mut().zip(ops.iter()) {
                *s = GrantStatus::from_raw(o.status);
            }
        }
        Err(_) => status.iter_mut().for_each(|s| *s = GrantStatus::GeneralError),
    }
}

fn remote(domid: DomId, gref: u32, offset: u16) -> GrantCopyPtr {
    GrantCopyPtr { ref_or_addr: u64::from(gref), domid, offset, _pad: 0 }
}

fn local(addr: u64) -> GrantCopyPtr {
    GrantCopyPtr { ref_or_addr: addr, ..Default::default() }
}

impl GrantCopier for HvCopier {
    fn copy_in(&mut self, domid: DomId, segs: &[Seg], buf: &mut [u8], status: &mut [GrantStatus]) {
        let base = buf.as_mut_ptr() as u64;
        let inside = |s: &Seg| s.buf_offset.checked_add(usize::from(s.len)).is_some_and(|end| end <= buf.len());
        for (segs, status) in segs.chunks(CHUNK).zip(status.chunks_mut(CHUNK)) {
            let mut ops = [GrantCopy::default(); CHUNK];
            for (op, s) in ops.iter_mut().zip(segs) {
                // Never let a copy land outside `buf` (the callers pack segments inside it;
                // checked anyway): such an element copies nothing and fails below.
                let len = if inside(s) { s.len } else { 0 };
                *op = GrantCopy {
                    source: remote(domid, s.gref, s.offset),
                    dest: local(base + s.buf_offset as u64),
                    len,
                    flags: GNTCOPY_SOURCE_GREF,
                    ..Default::default()
                };
            }
            let n = segs.len().min(status.len());
            run_batch(&mut ops[..n], status);
            for (st, s) in status.iter_mut().zip(segs) {
                if !inside(s) {
                    *st = GrantStatus::BadCopyArg;
                }
            }
        }
    }

    fn copy_out(&mut self, domid: DomId, copies: &[OutCopy<'_>], status: &mut [GrantStatus]) {
        for (copies, status) in copies.chunks(CHUNK).zip(status.chunks_mut(CHUNK)) {
            let mut ops = [GrantCopy::default(); CHUNK];
            for (op, c) in ops.iter_mut().zip(copies) {
                *op = GrantCopy {
                    source: local(c.data.as_ptr() as u64),
                    dest: remote(domid, c.gref, c.offset),
                    len: c.data.len().min(4096) as u16,
                    flags: GNTCOPY_DEST_GREF,
                    ..Default::default()
                };
            }
            let n = copies.len().min(status.len());
            run_batch(&mut ops[..n], status);
        }
    }
}
