//! The node tree and the operations on it.
//!
//! [`Store`] holds the committed nodes, keyed by canonical absolute path, each with its value,
//! permissions, child names and a generation (a store-wide counter stamped on every change, so
//! a transaction can tell whether what it saw is still current). The operations are written
//! once over [`NodeMap`], which both the committed tree and a transaction's private view
//! implement; each returns the [`Change`]s that watches must hear about.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::vec::Vec;

use shared_ring::wire::xenstore::PAYLOAD_MAX;

use crate::memory::{node_cost, perms_cost};
use crate::path::{child, last_component, parent};
use crate::quota::Limits;
use crate::{DOM0, DomId};
use xenstore::{Access, Permissions};
use xenstore::{Quota, StoreError};

/// One node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The value (arbitrary bytes).
    pub value: Vec<u8>,
    /// Who may do what.
    pub perms: Permissions,
    /// Names (last components) of the children.
    pub children: BTreeSet<Vec<u8>>,
    /// Store generation of the node's last change.
    pub generation: u64,
}

impl Node {
    fn new(value: Vec<u8>, perms: Permissions) -> Self {
        Self { value, perms, children: BTreeSet::new(), generation: 0 }
    }
}

/// A modification watches may fire on (docs/misc/xenstore.txt, `WATCH`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The node written, created, removed or re-permissioned.
    pub path: Vec<u8>,
    /// Fire only watches on exactly this path (a node removed below the `RM` target); otherwise
    /// every watch at or above `path`.
    pub exact: bool,
    /// A watcher must be able to read the node under these permissions…
    pub perms: Permissions,
    /// …or under these (the permissions before a `SET_PERMS`).
    pub old_perms: Option<Permissions>,
}

impl Change {
    /// Whether `domid` may hear about this change.
    pub fn visible_to(&self, domid: DomId) -> bool {
        self.perms.access_for(domid).can_read()
            || self.old_perms.as_ref().is_some_and(|p| p.access_for(domid).can_read())
    }
}

/// The nodes as an operation sees them: the committed tree or a transaction's view.
pub(crate) trait NodeMap {
    /// The node at `path`, if any. Fails only when a transaction may not look at more nodes.
    fn node(&mut self, path: &[u8]) -> Result<Option<&Node>, StoreError>;
    /// Insert or replace the node at `path` (the generation is stamped by the map).
    fn put(&mut self, path: &[u8], node: Node) -> Result<(), StoreError>;
    /// Remove the node at `path` (its children must already be gone).
    fn delete(&mut self, path: &[u8]) -> Result<(), StoreError>;
    /// Nodes `domid` owns in this view.
    fn owned_by(&self, domid: DomId) -> u32;
    /// Bytes of the nodes `domid` owns in this view ([`node_cost`]).
    fn bytes_owned_by(&self, domid: DomId) -> usize;
}

/// The committed tree.
#[derive(Debug, Clone)]
pub struct Store {
    nodes: BTreeMap<Vec<u8>, Node>,
    owned: BTreeMap<DomId, u32>,
    owned_bytes: BTreeMap<DomId, usize>,
    generation: u64,
}

impl Default for Store {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// A tree with `/`, `/local`, `/local/domain`, all owned by Dom0 and closed to others.
    pub fn new() -> Self {
        let mut store =
            Self { nodes: BTreeMap::new(), owned: BTreeMap::new(), owned_bytes: BTreeMap::new(), generation: 0 };
        let closed = Permissions::new(DOM0, Access::None);
        store.replace(b"/", Node::new(Vec::new(), closed.clone()));
        for path in [&b"/local"[..], b"/local/domain"] {
            let mut changes = Vec::new();
            let _ = mkdir(&mut store, DOM0, &Limits::default(), path, &mut changes);
        }
        store
    }

    /// The committed node at `path`.
    pub fn get(&self, path: &[u8]) -> Option<&Node> {
        self.nodes.get(path)
    }

    /// Number of nodes (including `/`).
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// Nodes owned by `domid`.
    pub fn owned(&self, domid: DomId) -> u32 {
        self.owned.get(&domid).copied().unwrap_or(0)
    }

    /// Bytes of the nodes owned by `domid`.
    pub fn bytes_owned(&self, domid: DomId) -> usize {
        self.owned_bytes.get(&domid).copied().unwrap_or(0)
    }

    /// Bytes of every node.
    pub fn total_bytes(&self) -> usize {
        self.owned_bytes.values().sum()
    }

    /// Every node, in path order.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &Node)> {
        self.nodes.iter().map(|(p, n)| (p.as_slice(), n))
    }

    /// The generation of the node at `path` (`None` when absent).
    pub(crate) fn generation_of(&self, path: &[u8]) -> Option<u64> {
        self.nodes.get(path).map(|n| n.generation)
    }

    /// Insert or replace a node, stamping a fresh generation and keeping the owner counts.
    pub(crate) fn replace(&mut self, path: &[u8], mut node: Node) {
        self.generation += 1;
        node.generation = self.generation;
        self.count_owner(node.perms.owner, 1, node_cost(path, &node) as isize);
        if let Some(old) = self.nodes.insert(path.to_vec(), node) {
            self.count_owner(old.perms.owner, -1, -(node_cost(path, &old) as isize));
        }
    }

    /// Remove a node (no-op when absent), keeping the owner counts.
    pub(crate) fn remove(&mut self, path: &[u8]) {
        if let Some(old) = self.nodes.remove(path) {
            self.count_owner(old.perms.owner, -1, -(node_cost(path, &old) as isize));
        }
    }

    fn count_owner(&mut self, owner: DomId, delta: i32, bytes: isize) {
        let count = self.owned.entry(owner).or_insert(0);
        *count = count.saturating_add_signed(delta);
        if *count == 0 {
            self.owned.remove(&owner);
        }
        let total = self.owned_bytes.entry(owner).or_insert(0);
        *total = total.saturating_add_signed(bytes);
        if *total == 0 {
            self.owned_bytes.remove(&owner);
        }
    }

    /// After a domain is destroyed: drop it from every permission list; nodes it still owns pass
    /// to Dom0 (XSA-322: a later domain reusing the id must inherit nothing).
    pub(crate) fn forget_domain(&mut self, domid: DomId) {
        // Permission lists shrink: recount the bytes of every node whose list changed.
        let mut recount: Vec<(DomId, isize)> = Vec::new();
        for (path, node) in self.nodes.iter_mut() {
            let old_owner = node.perms.owner;
            let old_cost = node_cost(path, node) as isize;
            if node.perms.forget_domain(domid) {
                self.generation += 1;
                node.generation = self.generation;
                recount.push((old_owner, -old_cost));
                recount.push((node.perms.owner, node_cost(path, node) as isize));
            }
        }
        for (owner, bytes) in recount {
            let (count, bytes) = if bytes < 0 { (-1, bytes) } else { (1, bytes) };
            self.count_owner(owner, count, bytes);
        }
    }

    /// Check the tree's structural invariants (for tests): every node but `/` has a parent
    /// listing it, every listed child exists, owner counts match.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        let mut counted: BTreeMap<DomId, u32> = BTreeMap::new();
        let mut bytes: BTreeMap<DomId, usize> = BTreeMap::new();
        for (path, node) in &self.nodes {
            *counted.entry(node.perms.owner).or_insert(0) += 1;
            *bytes.entry(node.perms.owner).or_insert(0) += node_cost(path, node);
            if let Some(parent_path) = parent(path) {
                let parent_node = self.nodes.get(parent_path).ok_or("node without parent")?;
                if !parent_node.children.contains(last_component(path)) {
                    return Err("parent does not list child");
                }
            } else if path.as_slice() != b"/" {
                return Err("relative path in tree");
            }
            for name in &node.children {
                if !self.nodes.contains_key(&child(path, name)) {
                    return Err("listed child missing");
                }
            }
        }
        if counted != self.owned {
            return Err("owner counts out of step");
        }
        if bytes != self.owned_bytes {
            return Err("owner bytes out of step");
        }
        Ok(())
    }
}

impl NodeMap for Store {
    fn node(&mut self, path: &[u8]) -> Result<Option<&Node>, StoreError> {
        Ok(self.nodes.get(path))
    }
    fn put(&mut self, path: &[u8], node: Node) -> Result<(), StoreError> {
        self.replace(path, node);
        Ok(())
    }
    fn delete(&mut self, path: &[u8]) -> Result<(), StoreError> {
        self.remove(path);
        Ok(())
    }
    fn owned_by(&self, domid: DomId) -> u32 {
        self.owned(domid)
    }
    fn bytes_owned_by(&self, domid: DomId) -> usize {
        self.bytes_owned(domid)
    }
}

/// The node at `path` if `actor` may read it. Borrowed: a reply copies only what it sends,
/// never a node's whole child list.
fn readable<'m>(map: &'m mut impl NodeMap, actor: DomId, path: &[u8]) -> Result<&'m Node, StoreError> {
    let node = map.node(path)?.ok_or(StoreError::NotFound)?;
    if !node.perms.access_for(actor).can_read() {
        return Err(StoreError::PermissionDenied);
    }
    Ok(node)
}

/// `READ`: the value.
pub(crate) fn read(map: &mut impl NodeMap, actor: DomId, path: &[u8]) -> Result<Vec<u8>, StoreError> {
    Ok(readable(map, actor, path)?.value.clone())
}

/// `DIRECTORY`: child names, each NUL-terminated. A list longer than one reply may carry is
/// refused before anything is copied.
pub(crate) fn directory(map: &mut impl NodeMap, actor: DomId, path: &[u8]) -> Result<Vec<u8>, StoreError> {
    let node = readable(map, actor, path)?;
    let len: usize = node.children.iter().map(|name| name.len() + 1).sum();
    if len > PAYLOAD_MAX as usize {
        return Err(StoreError::ReplyTooBig);
    }
    let mut out = Vec::with_capacity(len);
    for name in &node.children {
        out.extend_from_slice(name);
        out.push(0);
    }
    Ok(out)
}

/// `GET_PERMS`: the text form.
pub(crate) fn get_perms(map: &mut impl NodeMap, actor: DomId, path: &[u8]) -> Result<Vec<u8>, StoreError> {
    let node = readable(map, actor, path)?;
    let mut out = Vec::new();
    node.perms.encode(&mut out);
    Ok(out)
}

/// Refuse growing the nodes `owner` owns by `grow` bytes past [`Limits::node_bytes`] (Dom0,
/// the toolstack, is exempt as an actor and as an owner).
fn charge(map: &impl NodeMap, actor: DomId, owner: DomId, limits: &Limits, grow: usize) -> Result<(), StoreError> {
    if actor == DOM0 || owner == DOM0 || grow == 0 {
        return Ok(());
    }
    if map.bytes_owned_by(owner).saturating_add(grow) > limits.node_bytes {
        return Err(StoreError::QuotaExceeded(Quota::Memory));
    }
    Ok(())
}

/// `WRITE`: set the value, creating missing ancestors.
pub(crate) fn write(
    map: &mut impl NodeMap,
    actor: DomId,
    limits: &Limits,
    path: &[u8],
    value: &[u8],
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    if actor != DOM0 && value.len() > limits.value_bytes {
        return Err(StoreError::QuotaExceeded(Quota::ValueSize));
    }
    if let Some(existing) = map.node(path)? {
        if !existing.perms.access_for(actor).can_write() {
            return Err(StoreError::PermissionDenied);
        }
        let grow = value.len().saturating_sub(existing.value.len());
        let owner = existing.perms.owner;
        charge(map, actor, owner, limits, grow)?;
        let Some(existing) = map.node(path)? else { return Err(StoreError::NotFound) };
        let mut node = existing.clone();
        node.value = value.to_vec();
        let perms = node.perms.clone();
        map.put(path, node)?;
        changes.push(Change { path: path.to_vec(), exact: false, perms, old_perms: None });
        return Ok(());
    }
    create(map, actor, limits, path, value, changes)
}

/// `MKDIR`: create an empty node (and missing ancestors); an existing node is left alone.
pub(crate) fn mkdir(
    map: &mut impl NodeMap,
    actor: DomId,
    limits: &Limits,
    path: &[u8],
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    if let Some(existing) = map.node(path)? {
        // Xen answers OK without touching it, but only to a domain that may write it.
        return if existing.perms.access_for(actor).can_write() { Ok(()) } else { Err(StoreError::PermissionDenied) };
    }
    create(map, actor, limits, path, &[], changes)
}

/// Create `path` (absent) with `value`, and any missing ancestors with empty values. New nodes
/// inherit the nearest existing ancestor's permissions (which the actor must be able to write);
/// an unprivileged creator becomes their owner.
fn create(
    map: &mut impl NodeMap,
    actor: DomId,
    limits: &Limits,
    path: &[u8],
    value: &[u8],
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    let mut missing: Vec<&[u8]> = alloc::vec![path];
    let mut ancestor_path = parent(path).ok_or(StoreError::InvalidRequest)?;
    let ancestor = loop {
        match map.node(ancestor_path)? {
            Some(node) => break node.clone(),
            None => {
                missing.push(ancestor_path);
                ancestor_path = parent(ancestor_path).ok_or(StoreError::NotFound)?;
            }
        }
    };
    if !ancestor.perms.access_for(actor).can_write() {
        return Err(StoreError::PermissionDenied);
    }
    let mut perms = ancestor.perms.clone();
    if actor != DOM0 {
        perms.owner = actor;
        let wanted = map.owned_by(actor).saturating_add(missing.len() as u32);
        if wanted > limits.nodes_per_domain {
            return Err(StoreError::QuotaExceeded(Quota::Nodes));
        }
        let new_bytes: usize = missing
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let value_len = if i == 0 { value.len() } else { 0 };
                crate::memory::NODE_OVERHEAD + p.len() + last_component(p).len() + value_len + perms_cost(&perms)
            })
            .sum();
        charge(map, actor, actor, limits, new_bytes)?;
    }
    // Top-down: link each new node into its parent, then insert it.
    let mut parent_node = ancestor;
    let mut parent_path = ancestor_path;
    for (i, &new_path) in missing.iter().enumerate().rev() {
        parent_node.children.insert(last_component(new_path).to_vec());
        map.put(parent_path, parent_node)?;
        let new_value = if i == 0 { value.to_vec() } else { Vec::new() };
        parent_node = Node::new(new_value, perms.clone());
        parent_path = new_path;
    }
    map.put(parent_path, parent_node)?;
    changes.push(Change { path: path.to_vec(), exact: false, perms, old_perms: None });
    Ok(())
}

/// `RM`: remove a node and everything below it. Removing an absent node whose parent exists
/// succeeds (as Xen).
pub(crate) fn rm(
    map: &mut impl NodeMap,
    actor: DomId,
    path: &[u8],
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    let parent_path = parent(path).ok_or(StoreError::InvalidRequest)?;
    let Some(node) = map.node(path)? else {
        return if map.node(parent_path)?.is_some() { Ok(()) } else { Err(StoreError::NotFound) };
    };
    if !node.perms.access_for(actor).can_write() {
        return Err(StoreError::PermissionDenied);
    }
    let top_perms = node.perms.clone();
    // Depth-first, children before parents; the stack holds (path, children expanded).
    let mut stack: Vec<(Vec<u8>, bool)> = alloc::vec![(path.to_vec(), false)];
    while let Some((current, expanded)) = stack.pop() {
        let Some(node) = map.node(&current)? else { continue };
        if expanded {
            let perms = node.perms.clone();
            map.delete(&current)?;
            if current.as_slice() != path {
                changes.push(Change { path: current, exact: true, perms, old_perms: None });
            }
        } else {
            let names: Vec<Vec<u8>> = node.children.iter().cloned().collect();
            stack.push((current.clone(), true));
            stack.extend(names.iter().map(|name| (child(&current, name), false)));
        }
    }
    if let Some(parent_node) = map.node(parent_path)? {
        let mut parent_node = parent_node.clone();
        parent_node.children.remove(last_component(path));
        map.put(parent_path, parent_node)?;
    }
    changes.push(Change { path: path.to_vec(), exact: false, perms: top_perms, old_perms: None });
    Ok(())
}

/// `SET_PERMS`: only the owner (or Dom0) may; only Dom0 may change the owner.
pub(crate) fn set_perms(
    map: &mut impl NodeMap,
    actor: DomId,
    limits: &Limits,
    path: &[u8],
    perms: Permissions,
    changes: &mut Vec<Change>,
) -> Result<(), StoreError> {
    let node = map.node(path)?.ok_or(StoreError::NotFound)?;
    if actor != DOM0 {
        if node.perms.owner != actor {
            return Err(StoreError::PermissionDenied);
        }
        if perms.owner != node.perms.owner {
            return Err(StoreError::OwnerChangeDenied);
        }
        if perms.len() > limits.perms_per_node {
            return Err(StoreError::QuotaExceeded(Quota::PermissionsPerNode));
        }
    }
    let grow = perms_cost(&perms).saturating_sub(perms_cost(&node.perms));
    let owner = node.perms.owner;
    charge(map, actor, owner, limits, grow)?;
    let Some(node) = map.node(path)? else { return Err(StoreError::NotFound) };
    let mut node = node.clone();
    let old_perms = core::mem::replace(&mut node.perms, perms.clone());
    map.put(path, node)?;
    changes.push(Change { path: path.to_vec(), exact: false, perms, old_perms: Some(old_perms) });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_domain(domid: DomId) -> Store {
        let mut store = Store::new();
        let mut changes = Vec::new();
        let home = crate::path::domain_path(domid);
        mkdir(&mut store, DOM0, &Limits::default(), &home, &mut changes).unwrap();
        set_perms(&mut store, DOM0, &Limits::default(), &home, Permissions::new(domid, Access::None), &mut changes)
            .unwrap();
        store
    }

    #[test]
    fn write_creates_parents_inheriting_perms_owned_by_the_writer() {
        let mut store = store_with_domain(3);
        let mut changes = Vec::new();
        write(&mut store, 3, &Limits::default(), b"/local/domain/3/a/b/c", b"v", &mut changes).unwrap();
        assert_eq!(read(&mut store, 3, b"/local/domain/3/a/b/c").unwrap(), b"v");
        assert_eq!(read(&mut store, 3, b"/local/domain/3/a").unwrap(), b"");
        assert_eq!(store.get(b"/local/domain/3/a/b").unwrap().perms, Permissions::new(3, Access::None));
        assert_eq!(store.owned(3), 4);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].path, b"/local/domain/3/a/b/c");
        store.check_invariants().unwrap();
    }

    #[test]
    fn dom0_created_nodes_keep_the_inherited_owner() {
        let mut store = store_with_domain(3);
        let mut changes = Vec::new();
        write(&mut store, DOM0, &Limits::default(), b"/local/domain/3/x", b"1", &mut changes).unwrap();
        assert_eq!(store.get(b"/local/domain/3/x").unwrap().perms.owner, 3);
    }

    #[test]
    fn domains_cannot_write_or_read_outside_their_home() {
        let mut store = store_with_domain(3);
        let mut store4 = store_with_domain(4);
        let mut changes = Vec::new();
        let limits = Limits::default();
        for path in [&b"/local/domain/4/x"[..], b"/x", b"/local/y", b"/local/domain/5"] {
            assert_eq!(write(&mut store, 3, &limits, path, b"v", &mut changes), Err(StoreError::PermissionDenied));
            assert_eq!(mkdir(&mut store, 3, &limits, path, &mut changes), Err(StoreError::PermissionDenied));
        }
        assert_eq!(read(&mut store, 3, b"/local/domain"), Err(StoreError::PermissionDenied));
        assert_eq!(directory(&mut store, 3, b"/"), Err(StoreError::PermissionDenied));
        assert_eq!(rm(&mut store, 3, b"/local", &mut changes), Err(StoreError::PermissionDenied));
        assert_eq!(read(&mut store4, 3, b"/local/domain/4"), Err(StoreError::PermissionDenied));
        assert!(changes.is_empty());
    }

    #[test]
    fn granted_access_lets_another_domain_read_and_write() {
        let mut store = store_with_domain(3);
        let limits = Limits::default();
        let mut changes = Vec::new();
        write(&mut store, 3, &limits, b"/local/domain/3/shared", b"v", &mut changes).unwrap();
        assert_eq!(read(&mut store, 4, b"/local/domain/3/shared"), Err(StoreError::PermissionDenied));
        let perms = Permissions::new(3, Access::None).with(4, Access::Read);
        set_perms(&mut store, 3, &limits, b"/local/domain/3/shared", perms, &mut changes).unwrap();
        assert_eq!(read(&mut store, 4, b"/local/domain/3/shared").unwrap(), b"v");
        assert_eq!(
            write(&mut store, 4, &limits, b"/local/domain/3/shared", b"w", &mut changes),
            Err(StoreError::PermissionDenied)
        );
        let perms = Permissions::new(3, Access::None).with(4, Access::Both);
        set_perms(&mut store, 3, &limits, b"/local/domain/3/shared", perms, &mut changes).unwrap();
        write(&mut store, 4, &limits, b"/local/domain/3/shared/sub", b"w", &mut changes).unwrap();
        // Domain 4 created it, so domain 4 owns it (and pays for it).
        assert_eq!(store.get(b"/local/domain/3/shared/sub").unwrap().perms.owner, 4);
        assert_eq!(store.owned(4), 1);
    }

    #[test]
    fn set_perms_only_by_owner_and_owner_change_only_by_dom0() {
        let mut store = store_with_domain(3);
        let limits = Limits::default();
        let mut changes = Vec::new();
        write(&mut store, 3, &limits, b"/local/domain/3/n", b"", &mut changes).unwrap();
        let path = b"/local/domain/3/n";
        let grant = Permissions::new(3, Access::Both);
        set_perms(&mut store, 3, &limits, path, grant, &mut changes).unwrap();
        // Domain 4 can write it now, but does not own it.
        assert_eq!(
            set_perms(&mut store, 4, &limits, path, Permissions::new(3, Access::None), &mut changes),
            Err(StoreError::PermissionDenied)
        );
        assert_eq!(
            set_perms(&mut store, 3, &limits, path, Permissions::new(4, Access::None), &mut changes),
            Err(StoreError::OwnerChangeDenied)
        );
        let many = (0..5).fold(Permissions::new(3, Access::None), |p, d| p.with(d + 10, Access::Read));
        assert_eq!(
            set_perms(&mut store, 3, &limits, path, many, &mut changes),
            Err(StoreError::QuotaExceeded(Quota::PermissionsPerNode))
        );
        set_perms(&mut store, DOM0, &limits, path, Permissions::new(4, Access::None), &mut changes).unwrap();
        assert_eq!(store.owned(4), 1);
        assert_eq!(get_perms(&mut store, 4, path).unwrap(), b"n4\0");
        assert_eq!(
            set_perms(
                &mut store,
                3,
                &limits,
                b"/local/domain/3/missing",
                Permissions::new(3, Access::None),
                &mut changes
            ),
            Err(StoreError::NotFound)
        );
        store.check_invariants().unwrap();
    }

    #[test]
    fn rm_is_recursive_and_reports_every_removed_node() {
        let mut store = store_with_domain(3);
        let limits = Limits::default();
        let mut changes = Vec::new();
        for p in [&b"/local/domain/3/d/a"[..], b"/local/domain/3/d/b/c", b"/local/domain/3/e"] {
            write(&mut store, 3, &limits, p, b"x", &mut changes).unwrap();
        }
        let before = store.node_count();
        changes.clear();
        rm(&mut store, 3, b"/local/domain/3/d", &mut changes).unwrap();
        assert_eq!(store.node_count(), before - 4);
        assert_eq!(directory(&mut store, 3, b"/local/domain/3").unwrap(), b"e\0");
        let mut paths: Vec<(&[u8], bool)> = changes.iter().map(|c| (c.path.as_slice(), c.exact)).collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                (&b"/local/domain/3/d"[..], false),
                (b"/local/domain/3/d/a", true),
                (b"/local/domain/3/d/b", true),
                (b"/local/domain/3/d/b/c", true)
            ]
        );
        // Absent node with a parent: fine. Absent parent: ENOENT. Root: EINVAL.
        assert_eq!(rm(&mut store, 3, b"/local/domain/3/d", &mut changes), Ok(()));
        assert_eq!(rm(&mut store, 3, b"/local/domain/3/d/a", &mut changes), Err(StoreError::NotFound));
        assert_eq!(rm(&mut store, DOM0, b"/", &mut changes), Err(StoreError::InvalidRequest));
        assert_eq!(store.owned(3), 2);
        store.check_invariants().unwrap();
    }

    #[test]
    fn node_quota_and_value_size() {
        let mut store = store_with_domain(3);
        let limits = Limits { nodes_per_domain: 5, value_bytes: 8, ..Limits::default() };
        let mut changes = Vec::new();
        // The home counts: 1 owned.
        write(&mut store, 3, &limits, b"/local/domain/3/a/b/c", b"", &mut changes).unwrap();
        assert_eq!(
            write(&mut store, 3, &limits, b"/local/domain/3/x/y", b"", &mut changes),
            Err(StoreError::QuotaExceeded(Quota::Nodes))
        );
        write(&mut store, 3, &limits, b"/local/domain/3/x", b"12345678", &mut changes).unwrap();
        assert_eq!(
            write(&mut store, 3, &limits, b"/local/domain/3/x", b"123456789", &mut changes),
            Err(StoreError::QuotaExceeded(Quota::ValueSize))
        );
        assert_eq!(store.owned(3), 5);
        // Dom0 is exempt.
        write(&mut store, DOM0, &limits, b"/local/domain/3/big", &[0u8; 100], &mut changes).unwrap();
    }

    #[test]
    fn mkdir_keeps_existing_nodes() {
        let mut store = store_with_domain(3);
        let limits = Limits::default();
        let mut changes = Vec::new();
        write(&mut store, 3, &limits, b"/local/domain/3/a", b"keep", &mut changes).unwrap();
        changes.clear();
        mkdir(&mut store, 3, &limits, b"/local/domain/3/a", &mut changes).unwrap();
        assert_eq!(read(&mut store, 3, b"/local/domain/3/a").unwrap(), b"keep");
        assert!(changes.is_empty());
        assert_eq!(read(&mut store, 3, b"/local/domain/3/none"), Err(StoreError::NotFound));
    }

    #[test]
    fn forgetting_a_domain_hands_its_nodes_to_dom0() {
        let mut store = store_with_domain(3);
        let limits = Limits::default();
        let mut changes = Vec::new();
        let perms = Permissions::new(3, Access::None).with(4, Access::Both);
        set_perms(&mut store, DOM0, &limits, b"/local/domain/3", perms, &mut changes).unwrap();
        store.forget_domain(4);
        assert_eq!(store.get(b"/local/domain/3").unwrap().perms, Permissions::new(3, Access::None));
        store.forget_domain(3);
        assert_eq!(store.owned(3), 0);
        assert_eq!(store.get(b"/local/domain/3").unwrap().perms.owner, 0);
        store.check_invariants().unwrap();
    }
}
