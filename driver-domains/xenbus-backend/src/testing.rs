//! A fake [`Platform`] for host tests of the skeleton and of the device classes plugged into
//! it (built on the host only).
use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use hv_abi::DomId;

use hv_abi::Error;

use crate::platform::Platform;

/// A page as the hypervisor maps it.
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// The hypervisor, reduced to bookkeeping: mappings and ports live until undone, console lines
/// are kept, and chosen grant refs or binds fail.
#[derive(Default)]
pub struct FakeHv {
    /// Handles and ports handed out so far.
    pub issued: u32,
    /// handle → (domid, gref).
    pub mapped: BTreeMap<u32, (DomId, u32)>,
    /// Our bound ports.
    pub bound: BTreeSet<u32>,
    /// Grant refs whose map fails with `ENOENT`.
    pub bad_grefs: BTreeSet<u32>,
    /// Binds fail with `EINVAL`.
    pub fail_bind: bool,
    /// Console lines.
    pub lines: Vec<String>,
}

impl FakeHv {
    /// Whether this exact line was printed.
    pub fn saw(&self, line: &str) -> bool {
        self.lines.iter().any(|l| l == line)
    }
    /// Whether a line starting with `prefix` was printed.
    pub fn saw_prefix(&self, prefix: &str) -> bool {
        self.lines.iter().any(|l| l.starts_with(prefix))
    }
    /// Nothing mapped, nothing bound.
    pub fn holds_nothing(&self) -> bool {
        self.mapped.is_empty() && self.bound.is_empty()
    }
}

// SAFETY: every page handed out is leaked, so it stays valid (and unused by anything else) for
// the rest of the process, longer than until its unmap.
unsafe impl Platform for FakeHv {
    fn map(&mut self, domid: DomId, gref: u32) -> Result<(u32, u64), Error> {
        if self.bad_grefs.contains(&gref) {
            return Err(Error::NoEnt);
        }
        let page: &'static mut Page = Box::leak(Box::new(Page([0; 4096])));
        self.issued += 1;
        self.mapped.insert(self.issued, (domid, gref));
        Ok((self.issued, page.0.as_mut_ptr() as u64))
    }
    fn unmap(&mut self, handle: u32) -> Result<(), Error> {
        self.mapped.remove(&handle).map(drop).ok_or(Error::Inval)
    }
    fn bind(&mut self, _domid: DomId, _remote_port: u32) -> Result<u32, Error> {
        if self.fail_bind {
            return Err(Error::Inval);
        }
        self.issued += 1;
        self.bound.insert(self.issued);
        Ok(self.issued)
    }
    fn close(&mut self, port: u32) -> Result<(), Error> {
        self.bound.remove(&port).then_some(()).ok_or(Error::Inval)
    }
    fn log(&mut self, line: &str) {
        self.lines.push(line.to_string());
    }
}
