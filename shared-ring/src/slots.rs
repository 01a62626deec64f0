//! The slot array of one attached ring half: a free-running index to its slot, and the one copy
//! of an entry into or out of a slot. Both halves hold a [`Slots`], made from the
//! [`RingLayout`] that `RingLayout::for_memory` checked against their memory at attach.

use core::marker::PhantomData;

use crate::entry::{RingProtocol, entry_size};
use crate::layout::{HEADER_SIZE, RingLayout};
use crate::shared_memory::SharedMemory;

pub(crate) struct Slots<P: RingProtocol> {
    /// `layout.slots() - 1`: free-running index to slot number.
    mask: u32,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: RingProtocol> Slots<P> {
    /// The slots of a ring whose memory `layout` was computed from (`RingLayout::for_memory`
    /// with `P::SLOT_SIZE`): every later `read`/`write` must pass that same memory.
    #[inline]
    pub(crate) fn new(layout: RingLayout) -> Self {
        Self { mask: layout.slots() - 1, _protocol: PhantomData }
    }

    /// Byte offset of the slot for `index`. `P::SLOT_SIZE` is a constant (the layout was built
    /// from it), so this is a mask, a shift-and-add and no multiply by a loaded value; the
    /// compiler also sees that every slot is 8-byte aligned when the slot size is.
    #[inline]
    fn offset(&self, index: u32) -> usize {
        HEADER_SIZE + (index & self.mask) as usize * P::SLOT_SIZE
    }

    /// Copy the slot of `index` out into `dst` (one entry), without a bounds check per copy.
    #[inline]
    pub(crate) fn read<M: SharedMemory>(&self, memory: &M, index: u32, dst: &mut [u8]) {
        const { assert!(entry_size::<P::Request>() <= P::SLOT_SIZE && entry_size::<P::Response>() <= P::SLOT_SIZE) };
        debug_assert!(dst.len() <= P::SLOT_SIZE);
        // SAFETY: the slot lies in the area: `offset` is `HEADER_SIZE + k * SLOT_SIZE` with
        // `k < slots`, `RingLayout::for_memory` checked `HEADER_SIZE + slots * SLOT_SIZE <=
        // memory.len()` at attach for this memory (`new`'s contract; `len` is constant by the
        // trait's contract), and `dst` is one entry, at most `SLOT_SIZE` bytes (asserted at
        // compile time above).
        unsafe { memory.read_in_bounds(self.offset(index), dst) }
    }

    /// Copy one entry's bytes into the slot of `index`, without a bounds check per copy.
    #[inline]
    pub(crate) fn write<M: SharedMemory>(&self, memory: &M, index: u32, src: &[u8]) {
        const { assert!(entry_size::<P::Request>() <= P::SLOT_SIZE && entry_size::<P::Response>() <= P::SLOT_SIZE) };
        debug_assert!(src.len() <= P::SLOT_SIZE);
        // SAFETY: as in `read`; callers pass at most one entry (`encoded_len` is clamped to the
        // entry size), at most `SLOT_SIZE` bytes.
        unsafe { memory.write_in_bounds(self.offset(index), src) }
    }
}
