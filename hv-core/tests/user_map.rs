//! `UserMap::check`, the one check every hypercall pointer goes through, against a page model:
//! a domain's RAM of a few pages at `DOMAIN_BASE`, each page unmapped (a guard page or a hole),
//! read-only or read-write, mapped as runs of regions the way the domain builder adds them.
//! `check(ptr, len, access)` must accept exactly the ranges whose every byte lies in a mapped
//! page that allows the access (any `ptr..=end` inside RAM when `len == 0`), translate them
//! linearly, and refuse everything else: wrap-around, kernel and low addresses, and ranges that
//! cross into an unmapped or (for writes) read-only page.

use hv_abi::layout::DOMAIN_BASE;
use hv_core::user_memory::{Access, Region, UserMap};
use proptest::prelude::*;

const PAGE: u64 = 4096;
/// Where the direct map (the hypervisor's own addresses) starts.
const KERNEL: u64 = 0xffff_8000_0000_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Page {
    Unmapped,
    ReadOnly,
    ReadWrite,
}

#[derive(Debug, Clone)]
struct Model {
    pages: Vec<Page>,
    phys_base: u64,
    /// Where runs of equal pages were cut into separate regions (adjacent regions must be
    /// crossed as if they were one).
    splits: Vec<bool>,
}

impl Model {
    fn size(&self) -> u64 {
        self.pages.len() as u64 * PAGE
    }

    fn map(&self) -> UserMap {
        let mut map = UserMap::new(DOMAIN_BASE, self.phys_base, self.size());
        let mut i = 0;
        while i < self.pages.len() {
            let kind = self.pages[i];
            let mut j = i + 1;
            while j < self.pages.len() && self.pages[j] == kind && !self.splits[j] {
                j += 1;
            }
            if kind != Page::Unmapped {
                let region = Region {
                    start: DOMAIN_BASE + i as u64 * PAGE,
                    end: DOMAIN_BASE + j as u64 * PAGE,
                    writable: kind == Page::ReadWrite,
                    executable: false,
                };
                map.add(region).expect("model regions are disjoint and inside RAM");
            }
            i = j;
        }
        map
    }

    /// What `check` must answer, decided byte range by page.
    fn expect(&self, ptr: u64, len: u64, access: Access) -> Option<u64> {
        let end = ptr.checked_add(len)?;
        if ptr < DOMAIN_BASE || end > DOMAIN_BASE + self.size() {
            return None;
        }
        if len > 0 {
            let first = (ptr - DOMAIN_BASE) / PAGE;
            let last = (end - 1 - DOMAIN_BASE) / PAGE;
            for page in &self.pages[first as usize..=last as usize] {
                let ok = match access {
                    Access::Read => *page != Page::Unmapped,
                    Access::Write => *page == Page::ReadWrite,
                };
                if !ok {
                    return None;
                }
            }
        }
        Some(self.phys_base + (ptr - DOMAIN_BASE))
    }
}

fn page_kind() -> impl Strategy<Value = Page> {
    prop_oneof![1 => Just(Page::Unmapped), 1 => Just(Page::ReadOnly), 2 => Just(Page::ReadWrite)]
}

fn model() -> impl Strategy<Value = Model> {
    (2usize..24)
        .prop_flat_map(|n| {
            (
                prop::collection::vec(page_kind(), n),
                (1u64..1 << 20).prop_map(|frame| frame * PAGE),
                prop::collection::vec(any::<bool>(), n),
            )
        })
        .prop_map(|(pages, phys_base, splits)| Model { pages, phys_base, splits })
}

fn access() -> impl Strategy<Value = Access> {
    prop_oneof![Just(Access::Read), Just(Access::Write)]
}

/// Pointers a domain would try: inside or just around its RAM (near page boundaries above
/// all), low addresses, the hypervisor's, and the top of the address space.
fn pointer(size: u64) -> impl Strategy<Value = u64> {
    let pages = size / PAGE;
    prop_oneof![
        4 => (0..=size + 2 * PAGE).prop_map(|o| DOMAIN_BASE + o),
        4 => (0..=pages + 1, -64i64..64).prop_map(|(p, d)| (DOMAIN_BASE + p * PAGE).wrapping_add_signed(d)),
        1 => 0..DOMAIN_BASE,
        1 => KERNEL..=u64::MAX,
        1 => (0u64..4096).prop_map(|d| u64::MAX - d),
    ]
}

fn length(size: u64) -> impl Strategy<Value = u64> {
    prop_oneof![
        3 => 0u64..64,
        3 => 0..=size + PAGE,
        1 => PAGE - 64..PAGE + 64,
        1 => any::<u64>(),
        1 => (0u64..64).prop_map(|d| u64::MAX - d),
    ]
}

fn case() -> impl Strategy<Value = (Model, u64, u64, Access)> {
    model().prop_flat_map(|m| {
        let size = m.size();
        (Just(m), pointer(size), length(size), access())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    /// `check` accepts exactly what the page model allows, and translates linearly.
    #[test]
    fn check_agrees_with_the_page_model((m, ptr, len, access) in case()) {
        let map = m.map();
        prop_assert_eq!(map.check(ptr, len, access).ok(), m.expect(ptr, len, access), "ptr {:#x} len {:#x} {:?} pages {:?}", ptr, len, access, m.pages);
    }

    /// A range that wraps around the address space is refused, whatever its start.
    #[test]
    fn wrap_around_is_refused(m in model(), ptr in any::<u64>(), extra in 1u64..1 << 20, access in access()) {
        let len = (u64::MAX - ptr).saturating_add(extra);
        prop_assume!(ptr.checked_add(len).is_none());
        prop_assert!(m.map().check(ptr, len, access).is_err());
    }

    /// Hypervisor addresses (the direct map, the image) and anything below the domain's RAM or
    /// past its end are refused, even for an empty range.
    #[test]
    fn addresses_outside_the_domain_are_refused(
        m in model(),
        ptr in prop_oneof![KERNEL..=u64::MAX, 0..DOMAIN_BASE, (1u64..1 << 40).prop_map(|o| DOMAIN_BASE + 24 * PAGE + o)],
        len in 0u64..2 * PAGE,
        access in access(),
    ) {
        prop_assume!(ptr < DOMAIN_BASE || ptr > DOMAIN_BASE + m.size());
        prop_assert!(m.map().check(ptr, len, access).is_err());
    }

    /// A range that starts in an accessible page and runs into an unmapped page is refused; one
    /// that runs into a read-only page is refused for writes and allowed for reads.
    #[test]
    fn crossing_into_an_unmapped_or_read_only_page_is_refused(
        m in model(),
        at in any::<prop::sample::Index>(),
        back in 1u64..=PAGE,
        into in 1u64..=PAGE,
    ) {
        let pairs: Vec<usize> = (0..m.pages.len() - 1)
            .filter(|&i| m.pages[i] == Page::ReadWrite && m.pages[i + 1] != Page::ReadWrite)
            .collect();
        prop_assume!(!pairs.is_empty());
        let i = pairs[at.index(pairs.len())];
        let boundary = DOMAIN_BASE + (i as u64 + 1) * PAGE;
        let (ptr, len) = (boundary - back, back + into);
        let map = m.map();
        prop_assert!(map.check(ptr, len, Access::Write).is_err());
        prop_assert!(map.check(ptr, back, Access::Write).is_ok(), "the part before the boundary is fine");
        let read = map.check(ptr, len, Access::Read);
        match m.pages[i + 1] {
            Page::Unmapped => prop_assert!(read.is_err()),
            _ => prop_assert_eq!(read.ok(), Some(m.phys_base + (ptr - DOMAIN_BASE))),
        }
    }
}
