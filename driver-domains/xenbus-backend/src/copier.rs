//! Batched grant copy between a frontend's granted pages and the backend's own memory: the one
//! way both backends move data (data pages are never mapped).
use hv_abi::DomId;
use hv_abi::GrantStatus;

/// One copy between a frontend's grant `gref` (`len` bytes at `offset` in its page) and
/// `buf_offset` in the backend's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seg {
    pub gref: u32,
    pub offset: u16,
    pub len: u16,
    pub buf_offset: usize,
}

/// One copy of `data` into a frontend's grant `gref` at `offset`.
#[derive(Debug, Clone, Copy)]
pub struct OutCopy<'a> {
    pub gref: u32,
    pub offset: u16,
    pub data: &'a [u8],
}

/// Batched grant copy with frontend `domid` (the hypervisor's `grant_table_op(copy)`). Each
/// element's result goes to the same index of `status` (one entry per element); a failed
/// element fails only itself, and an element the copier refuses to do (a segment outside
/// `buf`) gets [`GrantStatus::BadCopyArg`].
pub trait GrantCopier {
    /// Frontend pages → `buf`.
    fn copy_in(&mut self, domid: DomId, segs: &[Seg], buf: &mut [u8], status: &mut [GrantStatus]);
    /// Backend data → frontend pages.
    fn copy_out(&mut self, domid: DomId, copies: &[OutCopy<'_>], status: &mut [GrantStatus]);
}
