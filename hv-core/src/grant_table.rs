//! Grant tables (Xen v1 entries): the checks on a copied-out entry, the mapper's map-track table,
//! and per-grant pin counts. Plain logic; the kernel reads entries from the granter's memory once,
//! applies these checks, and sets/clears the busy bits.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;
use hv_abi::{DomId, GrantEntry, GrantRef, GrantStatus, gtf};

/// Most simultaneous mappings of one grant of one kind (as Xen's 7-bit pin counters).
pub const MAX_PINS: u16 = 127;

/// Checks a copied-out grant entry for use by `caller`. Returns the granted frame number.
///
/// `granter_pages` bounds the frame; `page_ok(frame, write)` says whether the granter itself may
/// access that page that way (a domain cannot grant what it cannot touch: its read-only
/// start_info, unmapped guard pages...).
pub fn check_entry(
    e: GrantEntry,
    caller: DomId,
    write: bool,
    granter_pages: u32,
    page_ok: impl Fn(u32, bool) -> bool,
) -> Result<u32, GrantStatus> {
    if e.flags & gtf::TYPE_MASK != gtf::PERMIT_ACCESS {
        return Err(GrantStatus::BadGntref);
    }
    if e.domid != caller {
        return Err(GrantStatus::PermissionDenied);
    }
    if write && e.flags & gtf::READONLY != 0 {
        return Err(GrantStatus::PermissionDenied);
    }
    if e.frame >= granter_pages || !page_ok(e.frame, write) {
        return Err(GrantStatus::BadPage);
    }
    Ok(e.frame)
}

/// One mapping held by a mapper (a map handle).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub granter: DomId,
    pub gref: GrantRef,
    pub writable: bool,
    /// The granter went away: the slot now maps the mapper's scratch page.
    pub revoked: bool,
    /// Where an HVM mapper placed it (a guest frame number); `None`: the paravirtual map window
    /// slot of its handle.
    pub gfn: Option<u64>,
}

/// A mapper's handles (bounded).
#[derive(Debug, Default)]
pub struct MapTrack {
    slots: Vec<Option<Mapping>>,
    live: usize,
}

impl MapTrack {
    pub fn insert(&mut self, m: Mapping, max: usize) -> Result<u32, GrantStatus> {
        let slot = match self.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None if self.slots.len() < max => {
                self.slots.push(None);
                self.slots.len() - 1
            }
            None => return Err(GrantStatus::NoSpace),
        };
        self.slots[slot] = Some(m);
        self.live += 1;
        Ok(slot as u32)
    }

    pub fn get(&self, handle: u32) -> Option<Mapping> {
        self.slots.get(handle as usize).copied().flatten()
    }

    pub fn remove(&mut self, handle: u32) -> Option<Mapping> {
        let m = self.slots.get_mut(handle as usize)?.take()?;
        self.live -= 1;
        Some(m)
    }

    /// Marks every mapping of `granter`'s grants revoked; returns their handles.
    pub fn revoke_granter(&mut self, granter: DomId) -> Vec<u32> {
        let mut v = Vec::new();
        for (i, s) in self.slots.iter_mut().enumerate() {
            if let Some(m) = s
                && m.granter == granter
                && !m.revoked
            {
                m.revoked = true;
                v.push(i as u32);
            }
        }
        v
    }

    pub fn live(&self) -> usize {
        self.live
    }

    /// Every live mapping (for teardown).
    pub fn iter(&self) -> impl Iterator<Item = (u32, Mapping)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, m)| m.map(|m| (i as u32, m)))
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Pin {
    readers: u16,
    writers: u16,
}

/// Pin counts per (granter, ref): which busy bits must be set in the granter's entry.
#[derive(Debug, Default)]
pub struct Pins {
    pins: BTreeMap<(DomId, GrantRef), Pin>,
}

impl Pins {
    /// Counts one more mapping; returns the busy bits the entry must carry now.
    pub fn pin(&mut self, granter: DomId, gref: GrantRef, writable: bool) -> Result<u16, GrantStatus> {
        let p = self.pins.entry((granter, gref)).or_default();
        let c = if writable { &mut p.writers } else { &mut p.readers };
        if *c >= MAX_PINS {
            return Err(GrantStatus::NoSpace);
        }
        *c += 1;
        Ok(Self::bits(*p))
    }

    /// Counts one mapping fewer; returns the busy bits the entry must still carry.
    pub fn unpin(&mut self, granter: DomId, gref: GrantRef, writable: bool) -> u16 {
        let Some(p) = self.pins.get_mut(&(granter, gref)) else { return 0 };
        let c = if writable { &mut p.writers } else { &mut p.readers };
        *c = c.saturating_sub(1);
        let bits = Self::bits(*p);
        if bits == 0 {
            self.pins.remove(&(granter, gref));
        }
        bits
    }

    fn bits(p: Pin) -> u16 {
        // A writable mapping reads too.
        let mut b = 0;
        if p.readers + p.writers > 0 {
            b |= gtf::READING;
        }
        if p.writers > 0 {
            b |= gtf::WRITING;
        }
        b
    }

    /// Forgets every pin on `granter`'s grants (the granter is gone).
    pub fn drop_granter(&mut self, granter: DomId) {
        self.pins.retain(|(g, _), _| *g != granter);
    }

    pub fn is_pinned(&self, granter: DomId, gref: GrantRef) -> bool {
        self.pins.contains_key(&(granter, gref))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(flags: u16, domid: u16, frame: u32) -> GrantEntry {
        GrantEntry { flags, domid, frame }
    }

    #[test]
    fn entry_checks() {
        let ok = |_, _| true;
        let rw = entry(gtf::PERMIT_ACCESS, 5, 10);
        assert_eq!(check_entry(rw, 5, true, 100, ok), Ok(10));
        assert_eq!(check_entry(rw, 6, false, 100, ok), Err(GrantStatus::PermissionDenied), "granted to someone else");
        let ro = entry(gtf::PERMIT_ACCESS | gtf::READONLY, 5, 10);
        assert_eq!(check_entry(ro, 5, false, 100, ok), Ok(10));
        assert_eq!(check_entry(ro, 5, true, 100, ok), Err(GrantStatus::PermissionDenied), "write through read-only");
        assert_eq!(check_entry(entry(0, 5, 10), 5, false, 100, ok), Err(GrantStatus::BadGntref), "invalid type");
        assert_eq!(check_entry(entry(2, 5, 10), 5, false, 100, ok), Err(GrantStatus::BadGntref), "accept_transfer");
        assert_eq!(
            check_entry(entry(1, 5, 100), 5, false, 100, ok),
            Err(GrantStatus::BadPage),
            "frame past the granter's RAM"
        );
        assert_eq!(
            check_entry(rw, 5, true, 100, |f, w| f != 10 || !w),
            Err(GrantStatus::BadPage),
            "page the granter can't write"
        );
    }

    #[test]
    fn map_track_is_bounded_and_reuses_slots() {
        let m = Mapping { granter: 1, gref: 3, writable: true, revoked: false, gfn: None };
        let mut t = MapTrack::default();
        for i in 0..4 {
            assert_eq!(t.insert(m, 4), Ok(i));
        }
        assert_eq!(t.insert(m, 4), Err(GrantStatus::NoSpace));
        assert_eq!(t.remove(2), Some(m));
        assert_eq!(t.remove(2), None, "double unmap");
        assert_eq!(t.remove(99), None);
        assert_eq!(t.insert(m, 4), Ok(2));
        assert_eq!(t.live(), 4);
        let other = Mapping { granter: 2, ..m };
        t.remove(0);
        t.insert(other, 4).unwrap();
        assert_eq!(t.revoke_granter(1), vec![1, 2, 3]);
        assert!(t.get(1).unwrap().revoked && !t.get(0).unwrap().revoked);
    }

    #[test]
    fn pins_track_busy_bits() {
        let mut p = Pins::default();
        assert_eq!(p.pin(1, 7, false), Ok(gtf::READING));
        assert_eq!(p.pin(1, 7, true), Ok(gtf::READING | gtf::WRITING));
        assert_eq!(p.unpin(1, 7, true), gtf::READING);
        assert!(p.is_pinned(1, 7));
        assert_eq!(p.unpin(1, 7, false), 0);
        assert!(!p.is_pinned(1, 7));
        for _ in 0..MAX_PINS {
            p.pin(1, 8, false).unwrap();
        }
        assert_eq!(p.pin(1, 8, false), Err(GrantStatus::NoSpace));
        p.drop_granter(1);
        assert!(!p.is_pinned(1, 8));
    }
}
