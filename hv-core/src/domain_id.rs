//! Domain ids: 16-bit, below `DOMID_SELF` (0x7ff0) because grant entries and the store carry
//! them in 16 bits. Ids are handed out in increasing order and, as in Xen (which wraps at
//! `DOMID_FIRST_RESERVED`), wrap around to 1 once the space is used up, skipping every id a
//! live or dead-but-unreaped domain still holds. 0 is Dom0's and is never handed out again. So a
//! toolstack that creates and destroys domains forever never runs out, and an id comes back only
//! after 32,750 other creations: references to a long-gone domain (a grant entry naming it, a
//! port left unbound for it) are the toolstack's to clean up, as in Xen.

use hv_abi::DomId;

/// One past the largest domain id.
pub const LIMIT: DomId = hv_abi::DOMID_SELF_ID;
/// Where ids restart after wrapping (0 is Dom0's).
pub const FIRST_AFTER_WRAP: DomId = 1;

/// The id to give the next domain: `next` (the one after the last given; 0 at boot) or the
/// first after it, wrapping at [`LIMIT`], that `in_use` does not claim. `None` only if every id
/// is in use. Bounded: it looks at one id more than there are ids in use.
pub fn allocate(next: DomId, in_use: impl Fn(DomId) -> bool) -> Option<DomId> {
    let mut id = if next >= LIMIT { FIRST_AFTER_WRAP } else { next };
    for _ in 0..LIMIT {
        if !in_use(id) {
            return Some(id);
        }
        id = following(id);
    }
    None
}

/// The candidate after `id`.
pub fn following(id: DomId) -> DomId {
    if id + 1 >= LIMIT { FIRST_AFTER_WRAP } else { id + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn ids_increase_then_wrap_past_those_in_use() {
        let none = |_| false;
        assert_eq!(allocate(0, none), Some(0), "dom0");
        assert_eq!(allocate(7, none), Some(7));
        assert_eq!(allocate(LIMIT, none), Some(1));
        assert_eq!(following(LIMIT - 1), 1, "0 is never reused");
        let used: BTreeSet<DomId> = [0, 1, 2, 5, LIMIT - 1].into();
        assert_eq!(allocate(LIMIT - 1, |i| used.contains(&i)), Some(3));
        assert_eq!(allocate(1, |i| used.contains(&i)), Some(3));
        assert_eq!(allocate(1, |_| true), None);
    }

    /// The toolstack an attacker (or a long-running system) is: Dom0 plus a few long-lived
    /// domains, and 100,000 short-lived ones created and destroyed, a few at a time. Ids never
    /// run out (before, creation failed with ENOSPC after 32,751 domains), no id is given twice
    /// while in use, and Dom0's 0 never comes back.
    #[test]
    fn a_toolstack_cycling_domains_never_runs_out() {
        let mut live: BTreeSet<DomId> = BTreeSet::new();
        let mut next = 0;
        let mut create = |live: &mut BTreeSet<DomId>| {
            let id = allocate(next, |i| live.contains(&i)).expect("an id");
            assert!(live.insert(id), "id {id} given twice");
            next = following(id);
            id
        };
        assert_eq!(create(&mut live), 0);
        let long_lived: Vec<_> = (0..5).map(|_| create(&mut live)).collect();
        let mut window = std::collections::VecDeque::new();
        for _ in 0..100_000 {
            let id = create(&mut live);
            assert_ne!(id, 0);
            window.push_back(id);
            if window.len() > 8 {
                live.remove(&window.pop_front().unwrap());
            }
        }
        for id in long_lived {
            assert!(live.contains(&id));
        }
    }
}
