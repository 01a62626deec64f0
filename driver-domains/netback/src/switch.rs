//! The L2 switch between the uplink and the vifs.
//!
//! Every vif has one MAC, assigned by the toolstack: it is a **static** entry
//! ([`Switch::set_static`]) that never ages and that no frame can move, and the bridge drops
//! (and counts) every frame a vif sends from any other source address (anti-spoofing, as Xen
//! deployments do with `ebtables`/`vif-bridge` rules). Addresses behind the uplink are **learnt**
//! — only from frames the uplink delivers ([`Switch::decide`] learns only on [`UPLINK`]) — into a
//! bounded table ([`TABLE_SIZE`] entries): an entry moves when its MAC is seen again, ages out
//! after [`MAX_AGE_NS`], and a full table replaces its oldest entry. Learning never touches a
//! static MAC, so a flood of forged addresses from outside can only churn the learnt table,
//! never take a vif's traffic or turn unicast into flooding. A frame to a known unicast MAC goes
//! to that port only (and is dropped if that is the port it came from); broadcast, multicast and
//! unknown destinations flood to every other port. Multicast/broadcast (and all-zero) source
//! addresses are never learnt.
//!
//! The entries sit in a `Vec` in the order they were learnt (a replacement takes the replaced
//! entry's slot), as in a plain linear table, and a [`hashbrown::HashMap`] indexes them by MAC:
//! every frame costs a source learn and a destination lookup, which the index keeps flat where a
//! scan grows with the table, while finding the oldest entry (a new address in a full table) is
//! still one scan over the compact `Vec` (`benches/mac_table.rs`; figures in
//! `docs/architecture.md`). The index hashes with foldhash, seeded per table from the TSC, so a
//! DomU cannot precompute addresses that collide; and as the table never holds more than
//! [`TABLE_SIZE`] entries, even a full collision costs no more than the scan it replaced.
use alloc::vec::Vec;
use foldhash::fast::FixedState;
use hashbrown::HashMap;

/// An Ethernet address.
pub type Mac = [u8; 6];

/// A switch port: [`UPLINK`] or a vif's port number.
pub type PortId = u32;

/// The uplink's port (the virtio-net device, when there is one).
pub const UPLINK: PortId = 0;

/// Entries in the MAC table.
pub const TABLE_SIZE: usize = 256;

/// An entry not refreshed for this long is forgotten (Linux bridge's default ageing time).
pub const MAX_AGE_NS: u64 = 300 * 1_000_000_000;

/// Bytes of an Ethernet header (destination, source, type).
pub const ETH_HEADER: usize = 14;

/// Whether `mac` is a group (multicast or broadcast) address.
#[inline]
pub fn is_group(mac: &Mac) -> bool {
    mac[0] & 1 != 0
}

/// The destination and source addresses of a frame (`None` if shorter than an Ethernet header).
#[inline]
pub fn addresses(frame: &[u8]) -> Option<(Mac, Mac)> {
    if frame.len() < ETH_HEADER {
        return None;
    }
    let mut dst = [0; 6];
    let mut src = [0; 6];
    dst.copy_from_slice(&frame[..6]);
    src.copy_from_slice(&frame[6..12]);
    Some((dst, src))
}

/// `xx:xx:xx:xx:xx:xx`.
pub struct MacDisplay<'a>(pub &'a Mac);

impl core::fmt::Display for MacDisplay<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

/// Parses `xx:xx:xx:xx:xx:xx` (hex digits of either case).
pub fn parse_mac(s: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 2 || !p.bytes().all(|c| c.is_ascii_hexdigit()) {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// To this port only.
    Port(PortId),
    /// To every port except the ingress port.
    Flood,
    /// Nowhere (the destination is on the ingress port, or the frame is too short).
    Drop,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    mac: Mac,
    port: PortId,
    seen_ns: u64,
}

/// A slot in [`Switch::entries`].
type Slot = u16;
const _: () = assert!(TABLE_SIZE <= Slot::MAX as usize + 1);

/// The MAC table.
#[derive(Debug)]
pub struct Switch {
    /// The entries, oldest learnt first; a replacement takes the replaced entry's slot.
    entries: Vec<Entry>,
    /// Each entry's slot, by MAC.
    index: HashMap<Mac, Slot, FixedState>,
    /// The vifs' assigned MACs (never aged, never moved by learning).
    statics: HashMap<Mac, PortId, FixedState>,
}

impl Default for Switch {
    fn default() -> Self {
        Self::new()
    }
}

/// A seed for one table's hasher: the time stamp counter when the table is made (the domain's
/// image and addresses are the same every boot; the moment netback starts is not).
fn table_seed() -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: rdtsc only reads the time stamp counter (allowed in ring 3: hv-core leaves CR4.TSD
    // clear, as `StartInfo::tsc_khz` documents).
    let seed = unsafe { core::arch::x86_64::_rdtsc() };
    #[cfg(not(target_arch = "x86_64"))]
    let seed = 0x9e37_79b9_7f4a_7c15;
    seed
}

impl Switch {
    pub fn new() -> Self {
        let seed = table_seed();
        Self {
            entries: Vec::with_capacity(TABLE_SIZE),
            index: HashMap::with_capacity_and_hasher(TABLE_SIZE, FixedState::with_seed(seed)),
            statics: HashMap::with_hasher(FixedState::with_seed(seed.rotate_left(17))),
        }
    }

    /// Assigns `mac` to `port` for good (a vif's MAC): frames to it go to `port`, and learning
    /// cannot move it. A learnt entry for it is dropped. A group or zero address is not
    /// assigned (`false`).
    pub fn set_static(&mut self, mac: &Mac, port: PortId) -> bool {
        if is_group(mac) || *mac == [0; 6] {
            return false;
        }
        if self.index.contains_key(mac) {
            self.entries.retain(|e| e.mac != *mac);
            self.reindex();
        }
        self.statics.insert(*mac, port);
        true
    }

    /// The port `mac` is assigned to, if it is a static entry.
    pub fn static_port(&self, mac: &Mac) -> Option<PortId> {
        self.statics.get(mac).copied()
    }

    fn reindex(&mut self) {
        self.index.clear();
        self.index.extend(self.entries.iter().enumerate().map(|(slot, e)| (e.mac, slot as Slot)));
    }

    /// Learnt entries currently in the table (aged ones included until they are replaced).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Records that `src` was seen on `port` at `now_ns`.
    ///
    /// A new address in a full table replaces the least recently seen entry (among equally old
    /// ones, the one in the lowest slot: the choice never depends on the hasher's seed).
    pub fn learn(&mut self, src: &Mac, port: PortId, now_ns: u64) {
        if is_group(src) || *src == [0; 6] || self.statics.contains_key(src) {
            return;
        }
        if let Some(&slot) = self.index.get(src) {
            let e = &mut self.entries[slot as usize];
            e.port = port;
            e.seen_ns = now_ns;
            return;
        }
        let entry = Entry { mac: *src, port, seen_ns: now_ns };
        if self.entries.len() < TABLE_SIZE {
            self.index.insert(*src, self.entries.len() as Slot);
            self.entries.push(entry);
        } else if let Some((slot, oldest)) = self.entries.iter_mut().enumerate().min_by_key(|(_, e)| e.seen_ns) {
            self.index.remove(&oldest.mac);
            self.index.insert(*src, slot as Slot);
            *oldest = entry;
        }
    }

    /// The port `dst` is assigned to, or was last seen on unless that is too long ago.
    pub fn lookup(&self, dst: &Mac, now_ns: u64) -> Option<PortId> {
        if let Some(&port) = self.statics.get(dst) {
            return Some(port);
        }
        let e = &self.entries[*self.index.get(dst)? as usize];
        (now_ns.saturating_sub(e.seen_ns) <= MAX_AGE_NS).then_some(e.port)
    }

    /// Forgets every address of `port`, assigned or learnt (its vif went away).
    pub fn forget_port(&mut self, port: PortId) {
        self.statics.retain(|_, p| *p != port);
        let before = self.entries.len();
        self.entries.retain(|e| e.port != port);
        if self.entries.len() != before {
            self.reindex();
        }
    }

    /// Says where a frame that came in on `ingress` goes, learning its source if it came from
    /// the uplink (a vif's source was checked against its assigned MAC by the bridge).
    pub fn decide(&mut self, ingress: PortId, frame: &[u8], now_ns: u64) -> Forward {
        let Some((dst, src)) = addresses(frame) else { return Forward::Drop };
        if ingress == UPLINK {
            self.learn(&src, ingress, now_ns);
        }
        if is_group(&dst) {
            return Forward::Flood;
        }
        match self.lookup(&dst, now_ns) {
            Some(p) if p == ingress => Forward::Drop,
            Some(p) => Forward::Port(p),
            None => Forward::Flood,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: Mac, src: Mac) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&dst);
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0x08, 0x00]);
        f.extend_from_slice(&[0; 46]);
        f
    }

    const A: Mac = [0x00, 0x16, 0x3e, 0, 1, 0];
    const B: Mac = [0x00, 0x16, 0x3e, 0, 2, 0];
    const BCAST: Mac = [0xff; 6];
    const MCAST: Mac = [0x01, 0x00, 0x5e, 0, 0, 1];

    const OUTSIDE: Mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
    const OTHER: Mac = [0x52, 0x54, 0, 0x12, 0x34, 0x57];

    #[test]
    fn learns_from_the_uplink_and_forwards() {
        let mut s = Switch::new();
        s.set_static(&A, 1);
        s.set_static(&B, 2);
        // Vifs reach each other by their assigned MACs.
        assert_eq!(s.decide(1, &frame(B, A), 0), Forward::Port(2));
        assert_eq!(s.decide(2, &frame(A, B), 1), Forward::Port(1));
        // Unknown destination: flood; nothing is learnt from a vif.
        assert_eq!(s.decide(1, &frame(OUTSIDE, A), 2), Forward::Flood);
        assert!(s.is_empty());
        // The uplink's sources are learnt.
        assert_eq!(s.decide(UPLINK, &frame(A, OUTSIDE), 3), Forward::Port(1));
        assert_eq!(s.lookup(&OUTSIDE, 3), Some(UPLINK));
        assert_eq!(s.decide(1, &frame(OUTSIDE, A), 4), Forward::Port(UPLINK));
        // Broadcast and multicast always flood.
        assert_eq!(s.decide(1, &frame(BCAST, A), 5), Forward::Flood);
        assert_eq!(s.decide(1, &frame(MCAST, A), 5), Forward::Flood);
        // A destination on the ingress port is not reflected.
        assert_eq!(s.decide(UPLINK, &frame(OUTSIDE, OTHER), 6), Forward::Drop);
        // Too short to be a frame.
        assert_eq!(s.decide(1, &[0; 13], 7), Forward::Drop);
    }

    #[test]
    fn an_assigned_mac_cannot_be_moved_by_learning() {
        let mut s = Switch::new();
        s.set_static(&A, 1);
        // A frame from outside claiming the vif's address does not take its traffic.
        s.decide(UPLINK, &frame(BCAST, A), 0);
        assert_eq!(s.lookup(&A, 0), Some(1));
        s.learn(&A, 7, 1);
        assert_eq!(s.lookup(&A, 1), Some(1));
        // Assigned entries never age.
        assert_eq!(s.lookup(&A, 10 * MAX_AGE_NS), Some(1));
        // Group and zero addresses are never assigned.
        assert!(!s.set_static(&BCAST, 3) && !s.set_static(&[0; 6], 3));
        s.forget_port(1);
        assert_eq!(s.lookup(&A, 2), None);
    }

    #[test]
    fn a_flood_of_forged_sources_from_outside_leaves_unicast_to_vifs_intact() {
        let mut s = Switch::new();
        s.set_static(&A, 1);
        s.set_static(&B, 2);
        for i in 0..10 * TABLE_SIZE as u64 {
            let b = i.to_be_bytes();
            s.decide(UPLINK, &frame(BCAST, [0x02, b[3], b[4], b[5], b[6], b[7]]), i);
            assert!(s.len() <= TABLE_SIZE);
        }
        assert_eq!(s.decide(2, &frame(A, B), 0), Forward::Port(1));
        assert_eq!(s.decide(UPLINK, &frame(B, OUTSIDE), 0), Forward::Port(2));
    }

    #[test]
    fn never_learns_group_or_zero_sources() {
        let mut s = Switch::new();
        s.decide(1, &frame(A, BCAST), 0);
        s.decide(1, &frame(A, MCAST), 0);
        s.decide(1, &frame(A, [0; 6]), 0);
        assert!(s.is_empty());
    }

    #[test]
    fn entries_age_out() {
        let mut s = Switch::new();
        s.learn(&A, 3, 10);
        assert_eq!(s.lookup(&A, 10 + MAX_AGE_NS), Some(3));
        assert_eq!(s.lookup(&A, 11 + MAX_AGE_NS), None);
        assert_eq!(s.decide(1, &frame(A, B), 11 + MAX_AGE_NS), Forward::Flood);
    }

    #[test]
    fn table_is_bounded_and_replaces_the_oldest() {
        let mut s = Switch::new();
        for i in 0..10 * TABLE_SIZE as u64 {
            let b = i.to_be_bytes();
            s.learn(&[0x02, b[3], b[4], b[5], b[6], b[7]], 1, i);
            assert!(s.len() <= TABLE_SIZE);
        }
        // The newest survive, the oldest were replaced.
        let newest = 10 * TABLE_SIZE as u64 - 1;
        let b = newest.to_be_bytes();
        assert_eq!(s.lookup(&[0x02, b[3], b[4], b[5], b[6], b[7]], newest), Some(1));
        assert_eq!(s.lookup(&[0x02, 0, 0, 0, 0, 0], newest), None);
        s.forget_port(1);
        assert!(s.is_empty());
    }

    #[test]
    fn equally_old_entries_are_replaced_in_learning_order() {
        // Every table has its own hasher seed; which entry goes must not depend on it.
        for _ in 0..4 {
            let mut s = Switch::new();
            for i in (0..TABLE_SIZE).rev() {
                s.learn(&[0x02, 0, 0, 0, 1, i as u8], 1, 7);
            }
            let last = (TABLE_SIZE - 1) as u8;
            s.learn(&[0x02, 0, 0, 0, 2, 0], 2, 8);
            assert_eq!(s.len(), TABLE_SIZE);
            assert_eq!(s.lookup(&[0x02, 0, 0, 0, 1, last], 8), None);
            assert_eq!(s.lookup(&[0x02, 0, 0, 0, 1, last - 1], 8), Some(1));
            assert_eq!(s.lookup(&[0x02, 0, 0, 0, 2, 0], 8), Some(2));
            s.learn(&[0x02, 0, 0, 0, 2, 1], 2, 8);
            assert_eq!(s.lookup(&[0x02, 0, 0, 0, 1, last - 1], 8), None);
        }
    }

    #[test]
    fn forgetting_a_port_keeps_the_others_reachable() {
        let mut s = Switch::new();
        for i in 0..40u8 {
            s.learn(&[0x02, 0, 0, 0, 0, i], 1 + (i % 3) as PortId, i as u64);
        }
        s.forget_port(2);
        assert_eq!(s.len(), 27);
        for i in 0..40u8 {
            let want = (i % 3 != 1).then_some(1 + (i % 3) as PortId);
            assert_eq!(s.lookup(&[0x02, 0, 0, 0, 0, i], 40), want);
        }
        s.learn(&[0x02, 0, 0, 0, 0, 1], 5, 41);
        s.learn(&[0x02, 0, 0, 0, 0, 3], 6, 41);
        assert_eq!(s.lookup(&[0x02, 0, 0, 0, 0, 1], 41), Some(5));
        assert_eq!(s.lookup(&[0x02, 0, 0, 0, 0, 3], 41), Some(6));
        assert_eq!(s.lookup(&[0x02, 0, 0, 0, 0, 4], 41), None);
    }

    #[test]
    fn macs_parse_and_print() {
        assert_eq!(parse_mac("00:16:3e:00:05:00"), Some([0, 0x16, 0x3e, 0, 5, 0]));
        assert_eq!(parse_mac("52:54:00:12:34:5A"), Some([0x52, 0x54, 0, 0x12, 0x34, 0x5a]));
        assert_eq!(parse_mac("52:54:00:12:34"), None);
        assert_eq!(parse_mac("52:54:00:12:34:56:78"), None);
        assert_eq!(parse_mac("52:54:00:12:34:567"), None);
        assert_eq!(parse_mac("52:54:00:12::56"), None);
        assert_eq!(parse_mac("52:54:00:12:+3:56"), None);
        assert_eq!(alloc::format!("{}", MacDisplay(&[0x52, 0x54, 0, 0x12, 0x34, 0x56])), "52:54:00:12:34:56");
    }
}
