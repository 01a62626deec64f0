//! The one door to shared memory.
//!
//! The ring never dereferences a pointer into the shared page itself: every byte it reads or
//! writes goes through [`SharedMemory`]. The same ring code therefore runs on a real granted page
//! ([`crate::PageMemory`]), on a plain single-threaded buffer a fuzzer can scribble on between
//! operations ([`crate::CellMemory`]) and under loom's model checker (`LoomMemory`, `--cfg loom`).

/// Byte-addressed access to memory shared with a peer that may be hostile.
///
/// Offsets are byte offsets from the start of the shared area. The ring only ever passes offsets
/// inside `0..len()` and 4-byte aligned offsets to the index operations; implementations must
/// still check bounds (and panic on a violation, which is a bug in this crate, never something a
/// peer can cause).
///
/// # Safety
///
/// Implementers promise the ordering semantics below. The ring's guarantees to the *peer* (it
/// sees a slot's contents before the index that publishes it) and its freedom from lost
/// wake-ups rest on them:
///
/// * [`store_release`](Self::store_release): every earlier [`write`](Self::write) is visible to a
///   peer that observes the stored value with [`load_acquire`](Self::load_acquire).
/// * [`load_acquire`](Self::load_acquire): every later [`read`](Self::read) sees the peer's
///   writes made before the release store it observed.
/// * [`store_fenced`](Self::store_fenced): a release store followed by a full (store→load)
///   barrier: no later load of this thread is satisfied before the store is visible to the peer
///   (Xen's `idx = v; xen_mb();`).
///
/// `read` and `write` need no ordering of their own but must be free of undefined behaviour
/// even while the peer writes the same bytes concurrently (e.g. relaxed atomics or volatile
/// accesses, never plain Rust references into the shared page).
///
/// [`len`](Self::len) must return the same value for as long as the value exists: the rings
/// check their layout against it once, when they attach, and rely on that check for every slot
/// access after it (see [`read_in_bounds`](Self::read_in_bounds)).
pub unsafe trait SharedMemory {
    /// Size of the shared area in bytes (constant, see the trait's safety section).
    fn len(&self) -> usize;

    /// Whether the area is empty (never true for a usable ring).
    #[inline]
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copy `dst.len()` bytes starting at `offset` out of the shared area.
    fn read(&self, offset: usize, dst: &mut [u8]);

    /// Copy `src` into the shared area at `offset`.
    fn write(&self, offset: usize, src: &[u8]);

    /// [`read`](Self::read) for a range the caller has proven to lie inside the area: the
    /// rings' slot copies, whose bounds follow from the layout checked once at attach. An
    /// implementation may skip its bounds check here; the default keeps it.
    ///
    /// # Safety
    ///
    /// `offset + dst.len() <= self.len()` (without overflow).
    #[inline]
    unsafe fn read_in_bounds(&self, offset: usize, dst: &mut [u8]) {
        self.read(offset, dst)
    }

    /// [`write`](Self::write) for a range the caller has proven to lie inside the area (see
    /// [`read_in_bounds`](Self::read_in_bounds)).
    ///
    /// # Safety
    ///
    /// `offset + src.len() <= self.len()` (without overflow).
    #[inline]
    unsafe fn write_in_bounds(&self, offset: usize, src: &[u8]) {
        self.write(offset, src)
    }

    /// Load the little-endian `u32` at the 4-byte aligned `offset` with acquire ordering.
    fn load_acquire(&self, offset: usize) -> u32;

    /// Store `value` at the 4-byte aligned `offset` with release ordering.
    fn store_release(&self, offset: usize, value: u32);

    /// Store `value` with release ordering, then a full barrier (see the trait's safety section).
    fn store_fenced(&self, offset: usize, value: u32);
}

// SAFETY: forwards every operation to `T`, which upholds the contract.
unsafe impl<T: SharedMemory + ?Sized> SharedMemory for &T {
    #[inline]
    fn len(&self) -> usize {
        (**self).len()
    }
    #[inline]
    fn read(&self, offset: usize, dst: &mut [u8]) {
        (**self).read(offset, dst)
    }
    #[inline]
    fn write(&self, offset: usize, src: &[u8]) {
        (**self).write(offset, src)
    }
    #[inline]
    unsafe fn read_in_bounds(&self, offset: usize, dst: &mut [u8]) {
        // SAFETY: the caller's promise, about the same area.
        unsafe { (**self).read_in_bounds(offset, dst) }
    }
    #[inline]
    unsafe fn write_in_bounds(&self, offset: usize, src: &[u8]) {
        // SAFETY: the caller's promise, about the same area.
        unsafe { (**self).write_in_bounds(offset, src) }
    }
    #[inline]
    fn load_acquire(&self, offset: usize) -> u32 {
        (**self).load_acquire(offset)
    }
    #[inline]
    fn store_release(&self, offset: usize, value: u32) {
        (**self).store_release(offset, value)
    }
    #[inline]
    fn store_fenced(&self, offset: usize, value: u32) {
        (**self).store_fenced(offset, value)
    }
}

/// Panic unless `offset..offset + len` lies inside an area of `size` bytes.
#[inline]
#[track_caller]
pub(crate) fn check_bounds(offset: usize, len: usize, size: usize) {
    // `offset <= size && len <= size - offset` cannot overflow; the panic path is out of line so
    // the hot path is two compares and no argument spills.
    if offset > size || len > size - offset {
        out_of_bounds(offset, len, size);
    }
}

#[cold]
#[inline(never)]
#[track_caller]
fn out_of_bounds(offset: usize, len: usize, size: usize) -> ! {
    panic!("shared-ring bug: access {offset}+{len} outside a {size}-byte shared area")
}
