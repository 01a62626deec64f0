//! Transactions: optimistic, with a private copy-on-write view.
//!
//! A [`Transaction`] records the generation of every committed node it looked at (absent nodes
//! too) and keeps the nodes it changed in an overlay. Operations inside it run on a [`TxView`]
//! (the committed tree seen through the overlay). Commit succeeds only if every node it looked
//! at still has the generation it saw; then the overlay is applied in one step and the watch
//! events collected during the transaction fire. Otherwise the caller gets `EAGAIN` and retries.

use alloc::collections::BTreeMap;
use alloc::vec::Vec;

use crate::memory::{TX_ENTRY_OVERHEAD, TX_OVERHEAD, node_cost, perms_cost};
use crate::quota::Limits;
use crate::tree::{Change, Node, NodeMap, Store};
use crate::{DOM0, DomId};
use xenstore::{Quota, StoreError};

/// One open transaction.
#[derive(Debug, Clone)]
pub struct Transaction {
    /// Committed generation of each node looked at (`None`: it was absent).
    observed: BTreeMap<Vec<u8>, Option<u64>>,
    /// Nodes changed in this transaction (`None`: removed).
    overlay: BTreeMap<Vec<u8>, Option<Node>>,
    /// Change in each owner's node count the overlay would make.
    owned_delta: BTreeMap<DomId, i64>,
    /// Change in each owner's node bytes the overlay would make.
    bytes_delta: BTreeMap<DomId, i64>,
    /// Bytes this transaction holds ([`Transaction::bytes`]).
    bytes: usize,
    /// Most bytes it may hold for the operation under way (`None` for Dom0); the server sets it
    /// from the domain's budget less its other transactions.
    byte_limit: Option<usize>,
    /// Watch events to fire on commit.
    changes: Vec<Change>,
    /// Who opened it.
    domid: DomId,
    /// An operation failed half-way (the size limit): the view may be inconsistent, so the
    /// transaction can only be aborted.
    poisoned: bool,
    /// Most nodes it may look at (`None` for Dom0).
    node_limit: Option<usize>,
    /// A domain its changes name was released since (the commit fails with `EAGAIN`).
    names_released: bool,
}

impl Transaction {
    /// A transaction for `domid`, looking at no more than `node_limit` nodes unless Dom0.
    pub fn new(domid: DomId, node_limit: usize) -> Self {
        Self {
            observed: BTreeMap::new(),
            overlay: BTreeMap::new(),
            owned_delta: BTreeMap::new(),
            bytes_delta: BTreeMap::new(),
            bytes: TX_OVERHEAD,
            byte_limit: None,
            changes: Vec::new(),
            domid,
            poisoned: false,
            node_limit: (domid != DOM0).then_some(node_limit),
            names_released: false,
        }
    }

    /// Domain `domid` was released: if a node this transaction changed names it (as owner or in
    /// an entry), committing would bring it back into the tree after the release stripped it
    /// (a node owned by a domain that is gone, or rights a later domain with that id would
    /// inherit), so the commit fails with `EAGAIN` and the retry sees the domain gone.
    pub(crate) fn forget_domain(&mut self, domid: DomId) {
        let names = |node: &Node| node.perms.owner == domid || node.perms.entries.iter().any(|(d, _)| *d == domid);
        if self.overlay.values().flatten().any(names) {
            self.names_released = true;
        }
    }

    /// Nodes looked at so far.
    pub fn nodes_touched(&self) -> usize {
        self.observed.len()
    }

    /// Bytes it holds: a fixed cost, every path it looked at, every node it changed and every
    /// watch event it will fire.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The most bytes it may hold during the next operation (`None`: no limit, Dom0).
    pub(crate) fn set_byte_limit(&mut self, limit: Option<usize>) {
        self.byte_limit = if self.domid == DOM0 { None } else { limit };
    }

    /// Take `grow` more bytes, or poison the transaction (its view may now be half-changed) and
    /// refuse.
    fn grow(&mut self, grow: usize) -> Result<(), StoreError> {
        let wanted = self.bytes.saturating_add(grow);
        if self.byte_limit.is_some_and(|limit| wanted > limit) {
            self.poisoned = true;
            return Err(StoreError::QuotaExceeded(Quota::Memory));
        }
        self.bytes = wanted;
        Ok(())
    }

    /// Keep the watch events of an operation for the commit. An event equal to one already
    /// kept (the same node written again) is kept once.
    pub(crate) fn record_changes(&mut self, changes: Vec<Change>) -> Result<(), StoreError> {
        for change in changes {
            if self.changes.contains(&change) {
                continue;
            }
            let cost = TX_ENTRY_OVERHEAD
                + change.path.len()
                + perms_cost(&change.perms)
                + change.old_perms.as_ref().map_or(0, perms_cost);
            self.grow(cost)?;
            self.changes.push(change);
        }
        Ok(())
    }

    fn observe(&mut self, base: &Store, path: &[u8]) -> Result<(), StoreError> {
        if self.observed.contains_key(path) {
            return Ok(());
        }
        if self.node_limit.is_some_and(|limit| self.observed.len() >= limit) {
            self.poisoned = true;
            return Err(StoreError::QuotaExceeded(Quota::TransactionSize));
        }
        self.grow(TX_ENTRY_OVERHEAD + path.len())?;
        self.observed.insert(path.to_vec(), base.generation_of(path));
        Ok(())
    }

    /// Put `entry` in the overlay at `path`, accounting its bytes.
    fn set_overlay(&mut self, path: &[u8], entry: Option<Node>) -> Result<(), StoreError> {
        let cost = |e: &Option<Node>| TX_ENTRY_OVERHEAD + path.len() + e.as_ref().map_or(0, |n| node_cost(path, n));
        let new = cost(&entry);
        let old = self.overlay.get(path).map_or(0, cost);
        if new > old {
            self.grow(new - old)?;
        } else {
            self.bytes = self.bytes.saturating_sub(old - new);
        }
        self.overlay.insert(path.to_vec(), entry);
        Ok(())
    }

    fn current(&self, base: &Store, path: &[u8]) -> Option<(DomId, usize)> {
        match self.overlay.get(path) {
            Some(entry) => entry.as_ref().map(|n| (n.perms.owner, node_cost(path, n))),
            None => base.get(path).map(|n| (n.perms.owner, node_cost(path, n))),
        }
    }

    fn count(&mut self, owner: Option<(DomId, usize)>, delta: i64) {
        if let Some((owner, bytes)) = owner {
            *self.owned_delta.entry(owner).or_insert(0) += delta;
            *self.bytes_delta.entry(owner).or_insert(0) += delta * bytes as i64;
        }
    }
}

/// The committed tree as seen from inside a transaction.
pub(crate) struct TxView<'a> {
    pub(crate) base: &'a Store,
    pub(crate) tx: &'a mut Transaction,
}

impl NodeMap for TxView<'_> {
    fn node(&mut self, path: &[u8]) -> Result<Option<&Node>, StoreError> {
        if self.tx.overlay.contains_key(path) {
            return Ok(self.tx.overlay.get(path).and_then(Option::as_ref));
        }
        self.tx.observe(self.base, path)?;
        Ok(self.base.get(path))
    }

    fn put(&mut self, path: &[u8], node: Node) -> Result<(), StoreError> {
        self.tx.observe(self.base, path)?;
        let old = self.tx.current(self.base, path);
        let new = Some((node.perms.owner, node_cost(path, &node)));
        self.tx.set_overlay(path, Some(node))?;
        self.tx.count(old, -1);
        self.tx.count(new, 1);
        Ok(())
    }

    fn delete(&mut self, path: &[u8]) -> Result<(), StoreError> {
        self.tx.observe(self.base, path)?;
        let old = self.tx.current(self.base, path);
        self.tx.set_overlay(path, None)?;
        self.tx.count(old, -1);
        Ok(())
    }

    fn owned_by(&self, domid: DomId) -> u32 {
        let delta = self.tx.owned_delta.get(&domid).copied().unwrap_or(0);
        (i64::from(self.base.owned(domid)) + delta).clamp(0, i64::from(u32::MAX)) as u32
    }

    fn bytes_owned_by(&self, domid: DomId) -> usize {
        let delta = self.tx.bytes_delta.get(&domid).copied().unwrap_or(0);
        (self.base.bytes_owned(domid) as i64 + delta).max(0) as usize
    }
}

/// Apply `tx` to `store` if nothing it looked at has changed since; returns the watch events to
/// fire. The creator's node quota is checked again against the tree as it is now.
pub(crate) fn commit(store: &mut Store, tx: Transaction, limits: &Limits) -> Result<Vec<Change>, StoreError> {
    if tx.poisoned {
        return Err(StoreError::QuotaExceeded(Quota::TransactionSize));
    }
    let stale = tx.observed.iter().any(|(path, generation)| store.generation_of(path) != *generation);
    if stale || tx.names_released {
        return Err(StoreError::Conflict);
    }
    if tx.domid != DOM0 {
        let delta = tx.owned_delta.get(&tx.domid).copied().unwrap_or(0);
        if i64::from(store.owned(tx.domid)) + delta > i64::from(limits.nodes_per_domain) {
            return Err(StoreError::QuotaExceeded(Quota::Nodes));
        }
        let bytes = tx.bytes_delta.get(&tx.domid).copied().unwrap_or(0);
        if bytes > 0 && store.bytes_owned(tx.domid) as i64 + bytes > limits.node_bytes as i64 {
            return Err(StoreError::QuotaExceeded(Quota::Memory));
        }
    }
    for (path, entry) in tx.overlay {
        match entry {
            Some(node) => store.replace(&path, node),
            None => store.remove(&path),
        }
    }
    Ok(tx.changes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::{directory, mkdir, read, rm, write};

    fn base() -> Store {
        let mut store = Store::new();
        let mut changes = Vec::new();
        write(&mut store, DOM0, &Limits::default(), b"/t/a", b"1", &mut changes).unwrap();
        write(&mut store, DOM0, &Limits::default(), b"/t/b", b"2", &mut changes).unwrap();
        store
    }

    fn in_tx<R>(store: &Store, tx: &mut Transaction, f: impl FnOnce(&mut TxView<'_>) -> R) -> R {
        f(&mut TxView { base: store, tx })
    }

    #[test]
    fn private_view_until_commit_then_atomic() {
        let mut store = base();
        let limits = Limits::default();
        let mut tx = Transaction::new(DOM0, 1024);
        let mut changes = Vec::new();
        in_tx(&store, &mut tx, |v| {
            write(v, DOM0, &limits, b"/t/a", b"10", &mut changes).unwrap();
            write(v, DOM0, &limits, b"/t/c/d", b"new", &mut changes).unwrap();
            rm(v, DOM0, b"/t/b", &mut changes).unwrap();
            assert_eq!(read(v, DOM0, b"/t/a").unwrap(), b"10");
            assert_eq!(read(v, DOM0, b"/t/b"), Err(StoreError::NotFound));
            assert_eq!(directory(v, DOM0, b"/t").unwrap(), b"a\0c\0");
        });
        tx.record_changes(changes).unwrap();
        // Outside, nothing changed yet.
        assert_eq!(store.get(b"/t/a").unwrap().value, b"1");
        assert!(store.get(b"/t/c").is_none());
        let fired = commit(&mut store, tx, &Limits::default()).unwrap();
        assert_eq!(fired.len(), 3);
        assert_eq!(store.get(b"/t/a").unwrap().value, b"10");
        assert_eq!(store.get(b"/t/c/d").unwrap().value, b"new");
        assert!(store.get(b"/t/b").is_none());
        store.check_invariants().unwrap();
    }

    #[test]
    fn conflicting_change_gives_eagain_and_leaves_the_tree_alone() {
        let mut store = base();
        let limits = Limits::default();
        let mut tx = Transaction::new(DOM0, 1024);
        let mut changes = Vec::new();
        in_tx(&store, &mut tx, |v| {
            assert_eq!(read(v, DOM0, b"/t/a").unwrap(), b"1");
            write(v, DOM0, &limits, b"/t/b", b"from tx", &mut changes).unwrap();
        });
        write(&mut store, DOM0, &limits, b"/t/a", b"outside", &mut changes).unwrap();
        assert_eq!(commit(&mut store, tx, &Limits::default()), Err(StoreError::Conflict));
        assert_eq!(store.get(b"/t/b").unwrap().value, b"2");
    }

    #[test]
    fn creation_of_a_node_the_transaction_saw_absent_conflicts() {
        let mut store = base();
        let limits = Limits::default();
        let mut tx = Transaction::new(DOM0, 1024);
        let mut changes = Vec::new();
        in_tx(&store, &mut tx, |v| assert_eq!(read(v, DOM0, b"/t/new"), Err(StoreError::NotFound)));
        mkdir(&mut store, DOM0, &limits, b"/t/new", &mut changes).unwrap();
        assert_eq!(commit(&mut store, tx, &Limits::default()), Err(StoreError::Conflict));
    }

    #[test]
    fn unrelated_changes_do_not_conflict() {
        let mut store = base();
        let limits = Limits::default();
        let mut tx = Transaction::new(DOM0, 1024);
        let mut changes = Vec::new();
        in_tx(&store, &mut tx, |v| write(v, DOM0, &limits, b"/t/a", b"tx", &mut changes).unwrap());
        write(&mut store, DOM0, &limits, b"/t/b", b"other", &mut changes).unwrap();
        commit(&mut store, tx, &Limits::default()).unwrap();
        assert_eq!(store.get(b"/t/a").unwrap().value, b"tx");
        assert_eq!(store.get(b"/t/b").unwrap().value, b"other");
    }

    #[test]
    fn transaction_size_is_bounded_for_domains() {
        let mut store = base();
        let limits = Limits::default();
        let mut changes = Vec::new();
        write(&mut store, DOM0, &limits, b"/open", b"", &mut changes).unwrap();
        let mut tx = Transaction::new(5, 3);
        in_tx(&store, &mut tx, |v| {
            assert_eq!(read(v, 5, b"/t/a"), Err(StoreError::PermissionDenied));
            read(v, 5, b"/x1").unwrap_err();
            read(v, 5, b"/x2").unwrap_err();
            assert_eq!(read(v, 5, b"/x3"), Err(StoreError::QuotaExceeded(Quota::TransactionSize)));
        });
        assert_eq!(tx.nodes_touched(), 3);
        let mut store2 = store.clone();
        assert_eq!(commit(&mut store2, tx, &Limits::default()), Err(StoreError::QuotaExceeded(Quota::TransactionSize)));
    }
}
