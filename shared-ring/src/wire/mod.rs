//! Wire formats of the Xen PV protocols, as `#[repr(C)]` types with the C layout (x86_64 ABI).
//!
//! Every type has an infallible byte decoding ([`RingEntry::from_bytes`](crate::RingEntry) or
//! `from_bytes`) and a `validate` (or `decode` = both) that rejects what the spec forbids. Byte
//! images are little-endian, built field by field from zeroed buffers (no padding leaks).

pub mod blkif;
pub mod grant_table;
pub mod netif;
pub mod xenbus_state;
pub mod xenstore;

/// Little-endian field access on fixed buffers (offsets are constants, so never out of range).
pub(crate) mod bytes {
    #[inline]
    pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
        u16::from_le_bytes([b[at], b[at + 1]])
    }
    #[inline]
    pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }
    #[inline]
    pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
        let mut word = [0; 8];
        word.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(word)
    }
    #[inline]
    pub(crate) fn put_u16(b: &mut [u8], at: usize, v: u16) {
        b[at..at + 2].copy_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub(crate) fn put_u32(b: &mut [u8], at: usize, v: u32) {
        b[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }
    #[inline]
    pub(crate) fn put_u64(b: &mut [u8], at: usize, v: u64) {
        b[at..at + 8].copy_from_slice(&v.to_le_bytes());
    }
}
