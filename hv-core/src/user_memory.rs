//! Which parts of a domain's address space the domain may read or write, and the checks every
//! hypercall pointer goes through before the hypervisor touches domain memory.
//!
//! The hypervisor never dereferences a domain pointer: it checks `[ptr, ptr + len)` against this
//! map with the access the domain itself would need, translates to a physical address inside the
//! domain's contiguous RAM, and copies through its own direct map, once.

use alloc::vec::Vec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    pub writable: bool,
    pub executable: bool,
}

/// The domain may not access (all of) the range it named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAccessible;

/// A region lies outside RAM, is empty, or overlaps another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadRegion;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// The domain's mapped regions (sorted, non-overlapping) and where its RAM lives physically.
#[derive(Debug, Clone, Default)]
pub struct UserMap {
    regions: Vec<Region>,
    /// Virtual address of the first byte of RAM and its physical address.
    virt_base: u64,
    phys_base: u64,
    size: u64,
}

impl UserMap {
    pub fn new(virt_base: u64, phys_base: u64, size: u64) -> Self {
        Self { regions: Vec::new(), virt_base, phys_base, size }
    }

    /// Adds a region; it must lie inside RAM and not overlap an existing one.
    pub fn add(&mut self, r: Region) -> Result<(), BadRegion> {
        if r.start >= r.end || r.start < self.virt_base || r.end > self.virt_base + self.size {
            return Err(BadRegion);
        }
        if self.regions.iter().any(|o| r.start < o.end && o.start < r.end) {
            return Err(BadRegion);
        }
        let at = self.regions.partition_point(|o| o.start < r.start);
        self.regions.insert(at, r);
        Ok(())
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// Checks that the domain may access every byte of `[ptr, ptr + len)` and returns the
    /// physical address of `ptr`. `len == 0` is allowed anywhere inside RAM.
    pub fn check(&self, ptr: u64, len: u64, access: Access) -> Result<u64, NotAccessible> {
        let end = ptr.checked_add(len).ok_or(NotAccessible)?;
        if ptr < self.virt_base || end > self.virt_base + self.size {
            return Err(NotAccessible);
        }
        let mut at = ptr;
        while at < end {
            let i = self.regions.partition_point(|r| r.end <= at);
            let r = self.regions.get(i).filter(|r| r.start <= at).ok_or(NotAccessible)?;
            if access == Access::Write && !r.writable {
                return Err(NotAccessible);
            }
            at = r.end;
        }
        Ok(self.phys_base + (ptr - self.virt_base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> UserMap {
        let mut m = UserMap::new(0x4000_0000, 0x80_0000, 0x40_0000);
        let r = |s, e, w| Region { start: s, end: e, writable: w, executable: false };
        m.add(r(0x4000_0000, 0x4000_1000, false)).unwrap(); // start_info
        m.add(r(0x4000_1000, 0x4000_2000, true)).unwrap(); // shared_info
        m.add(r(0x4001_0000, 0x4002_0000, false)).unwrap(); // text
        m.add(r(0x4002_0000, 0x4003_0000, true)).unwrap(); // data
        m.add(r(0x4003_0000, 0x4030_0000, true)).unwrap(); // heap (guard at 0x4030_0000)
        m.add(r(0x4030_1000, 0x4040_0000, true)).unwrap(); // stack
        m
    }

    #[test]
    fn allows_what_the_domain_can_touch() {
        let m = map();
        assert_eq!(m.check(0x4000_0000, 8, Access::Read), Ok(0x80_0000));
        assert_eq!(m.check(0x4002_0010, 0x2_0000, Access::Write), Ok(0x82_0010)); // data + heap span
        assert!(m.check(0x4001_0000, 16, Access::Read).is_ok()); // text readable
        assert!(m.check(0x4040_0000, 0, Access::Read).is_ok());
    }

    #[test]
    fn refuses_what_it_cannot() {
        let m = map();
        assert!(m.check(0x4000_0000, 8, Access::Write).is_err()); // start_info is read-only
        assert!(m.check(0x4001_0000, 16, Access::Write).is_err()); // text
        assert!(m.check(0x4000_2000, 8, Access::Read).is_err()); // hole before the image
        assert!(m.check(0x402f_fff0, 0x20, Access::Write).is_err()); // runs into the guard page
        assert!(m.check(0x10_0000, 8, Access::Read).is_err()); // hypervisor
        assert!(m.check(0x403f_fff8, 16, Access::Read).is_err()); // past the end of RAM
        assert!(m.check(u64::MAX - 4, 16, Access::Read).is_err()); // wraps
        assert!(m.check(0xffff_8000_0000_0000, 8, Access::Read).is_err());
    }

    #[test]
    fn rejects_bad_regions() {
        let mut m = map();
        let r = |s, e| Region { start: s, end: e, writable: true, executable: false };
        assert!(m.add(r(0x4000_0800, 0x4000_1800)).is_err());
        assert!(m.add(r(0x3fff_f000, 0x4000_0000)).is_err());
        assert!(m.add(r(0x4000_3000, 0x4000_3000)).is_err());
        assert!(m.add(r(0x4000_3000, 0x4000_4000)).is_ok());
    }
}
