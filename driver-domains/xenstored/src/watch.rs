//! Watches of one connection and the events waiting to be sent to it.
//!
//! A watch on `P` fires for a change at or below `P` (or exactly at `P` for nodes removed below
//! an `RM` target) that the watcher may read, and once when it is registered. Events wait in a
//! queue bounded in bytes; when it is full, the watch is flagged instead and fires once on its
//! own path when there is room again (a spurious but sufficient event: the watcher re-reads).
//! The protocol allows spurious events, so coalescing never hides a change.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use shared_ring::wire::xenstore::{XsType, XsdSockmsg};

use crate::path::is_at_or_below;
use crate::tree::Change;
use crate::{DOM0, DomId};
use xenstore::{Quota, StoreError};

/// The special watch paths (`@introduceDomain`, `@releaseDomain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialPath {
    /// Fires when a domain is introduced.
    IntroduceDomain,
    /// Fires when a domain is released.
    ReleaseDomain,
}

impl SpecialPath {
    /// The special path named by `raw`, if it is one.
    pub fn from_path(raw: &[u8]) -> Option<Self> {
        match raw {
            b"@introduceDomain" => Some(SpecialPath::IntroduceDomain),
            b"@releaseDomain" => Some(SpecialPath::ReleaseDomain),
            _ => None,
        }
    }

    /// Its text.
    pub fn as_path(self) -> &'static [u8] {
        match self {
            SpecialPath::IntroduceDomain => b"@introduceDomain",
            SpecialPath::ReleaseDomain => b"@releaseDomain",
        }
    }
}

/// What a watch is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchTarget {
    /// A node path (absolute, canonical).
    Node(Vec<u8>),
    /// A special path.
    Special(SpecialPath),
}

/// One registered watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watch {
    /// What it watches.
    pub target: WatchTarget,
    /// The path as the domain gave it: events on a relative watch carry relative paths.
    pub requested: Vec<u8>,
    /// The client's token, echoed in events.
    pub token: Vec<u8>,
    /// Events were lost to a full queue: fire once on `requested` when there is room.
    overflowed: bool,
}

/// A connection's watches and pending events.
#[derive(Debug, Clone, Default)]
pub struct Watches {
    list: Vec<Watch>,
    /// Bytes of the registered watches ([`crate::memory::watch_cost`]).
    bytes: usize,
    queue: VecDeque<Vec<u8>>,
    queued_bytes: usize,
}

impl Watch {
    fn cost(&self) -> usize {
        let target = match &self.target {
            WatchTarget::Node(path) => path.len(),
            WatchTarget::Special(_) => 0,
        };
        crate::memory::watch_cost(target, self.requested.len(), self.token.len())
    }
}

impl Watches {
    /// Bytes of the registered watches (pending events are [`Watches::queued_bytes`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Registered watches.
    pub fn iter(&self) -> impl Iterator<Item = &Watch> {
        self.list.iter()
    }

    /// Number of registered watches.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether none is registered.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Bytes of events waiting.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Register a watch and queue its initial event. `limit` is `None` for Dom0.
    pub fn add(
        &mut self,
        target: WatchTarget,
        requested: &[u8],
        token: &[u8],
        limit: Option<usize>,
        byte_limit: Option<usize>,
        queue_limit: usize,
    ) -> Result<(), StoreError> {
        if self.list.iter().any(|w| w.target == target && w.token == token) {
            return Err(StoreError::AlreadyExists);
        }
        if limit.is_some_and(|limit| self.list.len() >= limit) {
            return Err(StoreError::QuotaExceeded(Quota::Watches));
        }
        let watch = Watch { target, requested: requested.to_vec(), token: token.to_vec(), overflowed: false };
        let cost = watch.cost();
        if byte_limit.is_some_and(|limit| self.bytes + cost > limit) {
            return Err(StoreError::QuotaExceeded(Quota::Memory));
        }
        self.bytes += cost;
        self.list.push(watch);
        let index = self.list.len() - 1;
        let event = requested.to_vec();
        self.queue_event(index, &event, queue_limit);
        Ok(())
    }

    /// Remove the watch registered on `target` with `token`.
    pub fn remove(&mut self, target: &WatchTarget, token: &[u8]) -> Result<(), StoreError> {
        let index = self.list.iter().position(|w| w.target == *target && w.token == token);
        let removed = self.list.remove(index.ok_or(StoreError::NotFound)?);
        self.bytes -= removed.cost();
        Ok(())
    }

    /// Remove every watch and every pending event.
    pub fn clear(&mut self) {
        self.list.clear();
        self.bytes = 0;
        self.queue.clear();
        self.queued_bytes = 0;
    }

    /// Queue events for every watch of `domid` that `change` concerns.
    pub fn notify(&mut self, domid: DomId, home: &[u8], change: &Change, queue_limit: usize) {
        if !change.visible_to(domid) {
            return;
        }
        for index in 0..self.list.len() {
            let Some(WatchTarget::Node(watched)) = self.list.get(index).map(|w| &w.target) else { continue };
            let fires = if change.exact { change.path == *watched } else { is_at_or_below(&change.path, watched) };
            if !fires {
                continue;
            }
            let relative = self.list.get(index).is_some_and(|w| w.requested.first() != Some(&b'/'));
            let path = if relative { strip_home(&change.path, home) } else { &change.path[..] };
            let path = path.to_vec();
            self.queue_event(index, &path, queue_limit);
        }
    }

    /// Queue events for watches on a special path.
    pub fn notify_special(&mut self, special: SpecialPath, queue_limit: usize) {
        for index in 0..self.list.len() {
            if self.list.get(index).is_some_and(|w| w.target == WatchTarget::Special(special)) {
                self.queue_event(index, special.as_path(), queue_limit);
            }
        }
    }

    fn queue_event(&mut self, index: usize, path: &[u8], queue_limit: usize) {
        let Some(watch) = self.list.get_mut(index) else { return };
        if watch.overflowed {
            return;
        }
        let event = encode_event(path, &watch.token);
        if self.queued_bytes + event.len() > queue_limit {
            watch.overflowed = true;
            return;
        }
        self.queued_bytes += event.len();
        self.queue.push_back(event);
    }

    /// The next event to send if it fits in `room` bytes: queued events first, then one
    /// catch-all event per flagged watch.
    pub fn pop_event(&mut self, room: usize) -> Option<Vec<u8>> {
        if let Some(front) = self.queue.front() {
            if front.len() > room {
                return None;
            }
            let event = self.queue.pop_front()?;
            self.queued_bytes -= event.len();
            return Some(event);
        }
        let watch = self.list.iter_mut().find(|w| w.overflowed)?;
        let event = encode_event(&watch.requested, &watch.token);
        if event.len() > room {
            return None;
        }
        watch.overflowed = false;
        Some(event)
    }
}

fn strip_home<'a>(path: &'a [u8], home: &[u8]) -> &'a [u8] {
    path.strip_prefix(home).and_then(|rest| rest.strip_prefix(b"/")).filter(|rest| !rest.is_empty()).unwrap_or(path)
}

/// `WATCH_EVENT` message: `path\0token\0`, req_id and tx_id 0.
pub fn encode_event(path: &[u8], token: &[u8]) -> Vec<u8> {
    let len = path.len() + token.len() + 2;
    let header = XsdSockmsg { msg_type: XsType::WatchEvent as u32, req_id: 0, tx_id: 0, len: len as u32 };
    let mut out = Vec::with_capacity(16 + len);
    out.extend_from_slice(&header.to_raw());
    out.extend_from_slice(path);
    out.push(0);
    out.extend_from_slice(token);
    out.push(0);
    out
}

/// The watch limit for `domid` (`None`: Dom0, unlimited).
pub(crate) fn watch_limit(domid: DomId, limit: usize) -> Option<usize> {
    (domid != DOM0).then_some(limit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenstore::{Access, Permissions};

    fn change(path: &[u8], exact: bool, perms: Permissions) -> Change {
        Change { path: path.to_vec(), exact, perms, old_perms: None }
    }

    fn drain(w: &mut Watches) -> Vec<Vec<u8>> {
        core::iter::from_fn(|| w.pop_event(usize::MAX)).map(|e| e[16..].to_vec()).collect()
    }

    #[test]
    fn fires_initially_then_on_changes_at_or_below() {
        let mut w = Watches::default();
        let target = WatchTarget::Node(b"/local/domain/3/device".to_vec());
        w.add(target, b"device", b"tok", Some(128), None, 4096).unwrap();
        assert_eq!(drain(&mut w), [b"device\0tok\0".to_vec()]);
        let open = Permissions::new(3, Access::None);
        w.notify(3, b"/local/domain/3", &change(b"/local/domain/3/device/vif/0", false, open.clone()), 4096);
        w.notify(3, b"/local/domain/3", &change(b"/local/domain/3/devices", false, open.clone()), 4096);
        w.notify(3, b"/local/domain/3", &change(b"/local/domain/3", false, open.clone()), 4096);
        assert_eq!(drain(&mut w), [b"device/vif/0\0tok\0".to_vec()]);
        // Exact events only hit watches on exactly that path.
        w.notify(3, b"/local/domain/3", &change(b"/local/domain/3/device/x", true, open.clone()), 4096);
        w.notify(3, b"/local/domain/3", &change(b"/local/domain/3/device", true, open), 4096);
        assert_eq!(drain(&mut w), [b"device\0tok\0".to_vec()]);
    }

    #[test]
    fn no_events_for_unreadable_nodes() {
        let mut w = Watches::default();
        w.add(WatchTarget::Node(b"/".to_vec()), b"/", b"t", Some(128), None, 4096).unwrap();
        drain(&mut w);
        w.notify(
            4,
            b"/local/domain/4",
            &change(b"/local/domain/3/secret", false, Permissions::new(3, Access::None)),
            4096,
        );
        assert!(drain(&mut w).is_empty());
        let readable = Permissions::new(3, Access::None).with(4, Access::Read);
        w.notify(4, b"/local/domain/4", &change(b"/local/domain/3/shared", false, readable), 4096);
        assert_eq!(drain(&mut w), [b"/local/domain/3/shared\0t\0".to_vec()]);
    }

    #[test]
    fn duplicate_and_quota() {
        let mut w = Watches::default();
        w.add(WatchTarget::Node(b"/a".to_vec()), b"/a", b"t", Some(2), None, 4096).unwrap();
        assert_eq!(
            w.add(WatchTarget::Node(b"/a".to_vec()), b"/a", b"t", Some(2), None, 4096),
            Err(StoreError::AlreadyExists)
        );
        w.add(WatchTarget::Node(b"/a".to_vec()), b"/a", b"u", Some(2), None, 4096).unwrap();
        assert_eq!(
            w.add(WatchTarget::Node(b"/b".to_vec()), b"/b", b"t", Some(2), None, 4096),
            Err(StoreError::QuotaExceeded(Quota::Watches))
        );
        let a = WatchTarget::Node(b"/a".to_vec());
        assert_eq!(w.remove(&a, b"x"), Err(StoreError::NotFound));
        w.remove(&a, b"t").unwrap();
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn full_queue_coalesces_into_one_event_on_the_watched_path() {
        let mut w = Watches::default();
        let limit = 100;
        w.add(WatchTarget::Node(b"/a".to_vec()), b"/a", b"t", Some(128), None, limit).unwrap();
        let perms = Permissions::new(0, Access::None);
        for i in 0..50u8 {
            w.notify(0, b"/local/domain/0", &change(&[b'/', b'a', b'/', b'a' + (i % 26)], false, perms.clone()), limit);
            assert!(w.queued_bytes() <= limit);
        }
        let events = drain(&mut w);
        // Initial event + what fitted, then exactly one catch-all on /a.
        assert_eq!(events.last().unwrap(), b"/a\0t\0");
        assert!(events.len() < 10);
        assert!(drain(&mut w).is_empty());
    }

    #[test]
    fn pop_respects_room() {
        let mut w = Watches::default();
        w.add(WatchTarget::Special(SpecialPath::ReleaseDomain), b"@releaseDomain", b"t", None, None, 4096).unwrap();
        assert_eq!(w.pop_event(10), None);
        assert!(w.pop_event(100).is_some());
        w.notify_special(SpecialPath::ReleaseDomain, 4096);
        w.notify_special(SpecialPath::IntroduceDomain, 4096);
        assert_eq!(drain(&mut w), [b"@releaseDomain\0t\0".to_vec()]);
    }
}
