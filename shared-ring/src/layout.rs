//! The shared ring page, as laid out by Xen's `xen/include/public/io/ring.h`
//! (`DEFINE_RING_TYPES`): a 64-byte header, then a power-of-two array of slots, each the size of
//! the larger of the request and response types.
//!
//! | offset | field       | written by |
//! |--------|-------------|------------|
//! | 0      | `req_prod`  | front end  |
//! | 4      | `req_event` | back end   |
//! | 8      | `rsp_prod`  | back end   |
//! | 12     | `rsp_event` | front end  |
//! | 16     | `pvt` (4 bytes, protocol private) + 44 bytes of padding | front end (zeroed at init) |
//! | 64     | `ring[size]` | both      |

use crate::error::LayoutError;
use crate::shared_memory::SharedMemory;

/// Bytes of a Xen ring page (`XEN_PAGE_SIZE`; rings always use 4 KiB pages).
pub const PAGE_SIZE: usize = 4096;
/// Bytes of the ring header before the first slot.
pub const HEADER_SIZE: usize = 64;
/// Most slots a ring may have here: the front end's outstanding-id set covers this many ids.
/// (Every Xen ring in use fits: blkif order 4 has 512 slots, netif tx/rx 256.)
pub const MAX_SLOTS: u32 = 4096;

/// Offset of `req_prod`.
pub const REQ_PROD: usize = 0;
/// Offset of `req_event`.
pub const REQ_EVENT: usize = 4;
/// Offset of `rsp_prod`.
pub const RSP_PROD: usize = 8;
/// Offset of `rsp_event`.
pub const RSP_EVENT: usize = 12;
/// Offset of the protocol-private `pvt` bytes.
pub const PVT: usize = 16;

/// `__CONST_RING_SIZE`: the largest power of two number of `slot_size`-byte slots that fit in
/// `area_bytes` after the header (0 if none fits).
#[inline]
pub const fn slots_for(area_bytes: usize, slot_size: usize) -> u32 {
    if area_bytes <= HEADER_SIZE || slot_size == 0 {
        return 0;
    }
    let fit = (area_bytes - HEADER_SIZE) / slot_size;
    if fit == 0 {
        return 0;
    }
    let fit = if fit > u32::MAX as usize { u32::MAX } else { fit as u32 };
    1 << (31 - fit.leading_zeros())
}

/// Geometry of one ring: how many slots, how big, where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingLayout {
    slots: u32,
    slot_size: usize,
}

impl RingLayout {
    /// The layout Xen uses for a shared area of `area_bytes` (one page, or `2^order` pages for a
    /// multi-page ring) holding slots of `slot_size` bytes.
    #[inline]
    pub fn for_area(area_bytes: usize, slot_size: usize) -> Result<Self, LayoutError> {
        let slots = slots_for(area_bytes, slot_size);
        if slots == 0 {
            return Err(LayoutError::AreaTooSmall { bytes: area_bytes, needed: HEADER_SIZE + slot_size });
        }
        if slots > MAX_SLOTS {
            return Err(LayoutError::TooManySlots { slots });
        }
        Ok(Self { slots, slot_size })
    }

    /// The layout for `memory`, checked to fit.
    #[inline]
    pub fn for_memory(memory: &impl SharedMemory, slot_size: usize) -> Result<Self, LayoutError> {
        Self::for_area(memory.len(), slot_size)
    }

    /// Number of slots (a power of two).
    #[inline]
    pub fn slots(&self) -> u32 {
        self.slots
    }

    /// Bytes per slot.
    #[inline]
    pub fn slot_size(&self) -> usize {
        self.slot_size
    }

    /// Byte offset of the slot that free-running `index` maps to.
    #[inline]
    pub fn slot_offset(&self, index: u32) -> usize {
        HEADER_SIZE + (index & (self.slots - 1)) as usize * self.slot_size
    }
}

/// `SHARED_RING_INIT`: both producer indices 0, both event thresholds 1, private bytes and
/// padding zeroed. Only the front end initialises a ring.
#[inline]
pub(crate) fn init_header(memory: &impl SharedMemory, start: u32) {
    memory.write(PVT, &[0; HEADER_SIZE - PVT]);
    memory.store_release(REQ_EVENT, start.wrapping_add(1));
    memory.store_release(RSP_EVENT, start.wrapping_add(1));
    memory.store_release(RSP_PROD, start);
    memory.store_release(REQ_PROD, start);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xen_ring_sizes() {
        // Figures from research/xen-abi.md §1.1 (computed from the C headers).
        assert_eq!(slots_for(PAGE_SIZE, 112), 32); // blkif
        assert_eq!(slots_for(PAGE_SIZE, 12), 256); // netif tx
        assert_eq!(slots_for(PAGE_SIZE, 8), 256); // netif rx
        assert_eq!(slots_for(PAGE_SIZE, 16), 128); // netif ctrl
        for (order, slots) in [(1, 64), (2, 128), (3, 256), (4, 512)] {
            assert_eq!(slots_for(PAGE_SIZE << order, 112), slots);
        }
        assert_eq!(slots_for(64, 8), 0);
        assert_eq!(slots_for(72, 8), 1);
    }

    #[test]
    fn layout_rejects_tiny_and_huge_areas() {
        assert_eq!(RingLayout::for_area(100, 112), Err(LayoutError::AreaTooSmall { bytes: 100, needed: 176 }));
        assert_eq!(RingLayout::for_area(PAGE_SIZE * 32, 8), Err(LayoutError::TooManySlots { slots: 8192 }));
        let layout = RingLayout::for_area(PAGE_SIZE, 112).unwrap();
        assert_eq!(layout.slot_offset(0), 64);
        assert_eq!(layout.slot_offset(33), 64 + 112);
        assert_eq!(layout.slot_offset(u32::MAX), 64 + 31 * 112);
    }
}
