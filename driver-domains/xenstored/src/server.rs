//! The store server: the tree, every domain's connection, and the dispatch of requests.
//!
//! Dom0 owns one [`StoreServer`]. It calls [`StoreServer::introduce`] when a domain is built and
//! [`StoreServer::release`] when it is destroyed, feeds each domain's ring bytes through
//! [`crate::ServerPort::pump`] (or [`StoreServer::receive`] and [`StoreServer::output`]
//! directly), and may make its own requests with [`StoreServer::execute`] as domain 0.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;

use shared_ring::wire::xenstore::{PAYLOAD_MAX, XsType, validate_watch_path};

use crate::connection::{Connection, Incoming, ProtocolViolation};
use crate::path::{domain_path, push_decimal, resolve};
use crate::quota::Limits;
use crate::transaction::{Transaction, TxView, commit};
use crate::tree::{self, Change, Node, NodeMap, Store};
use crate::watch::{SpecialPath, WatchTarget, watch_limit};
use crate::{DOM0, DOMID_FIRST_RESERVED, DomId};
use xenstore::Errno;
use xenstore::Request;
use xenstore::{Access, Permissions};
use xenstore::{Quota, StoreError};

/// A successful reply's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `OK\0`.
    Ok,
    /// A result.
    Data(Vec<u8>),
}

impl Reply {
    /// The payload bytes.
    pub fn payload(&self) -> &[u8] {
        match self {
            Reply::Ok => b"OK\0",
            Reply::Data(data) => data,
        }
    }
}

/// Something only Dom0's runtime can do, asked for over the wire by Dom0's toolstack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostRequest {
    /// `INTRODUCE`: map the domain's store page at `gfn` and bind `port`, then pump it.
    MapRing {
        /// The domain.
        domid: DomId,
        /// Its store page.
        gfn: u64,
        /// Its store event channel.
        port: u32,
    },
    /// `RELEASE`: unmap the domain's store page.
    UnmapRing {
        /// The domain.
        domid: DomId,
    },
}

/// The store and its connections.
#[derive(Debug)]
pub struct StoreServer {
    store: Store,
    connections: BTreeMap<DomId, Connection>,
    introduce_perms: Permissions,
    release_perms: Permissions,
    limits: Limits,
    host_requests: VecDeque<HostRequest>,
}

/// The committed tree or a transaction's view.
enum View<'a> {
    Committed(&'a mut Store),
    Transaction(TxView<'a>),
}

impl NodeMap for View<'_> {
    fn node(&mut self, path: &[u8]) -> Result<Option<&Node>, StoreError> {
        match self {
            View::Committed(store) => store.node(path),
            View::Transaction(view) => view.node(path),
        }
    }
    fn put(&mut self, path: &[u8], node: Node) -> Result<(), StoreError> {
        match self {
            View::Committed(store) => store.put(path, node),
            View::Transaction(view) => view.put(path, node),
        }
    }
    fn delete(&mut self, path: &[u8]) -> Result<(), StoreError> {
        match self {
            View::Committed(store) => store.delete(path),
            View::Transaction(view) => view.delete(path),
        }
    }
    fn owned_by(&self, domid: DomId) -> u32 {
        match self {
            View::Committed(store) => store.owned_by(domid),
            View::Transaction(view) => view.owned_by(domid),
        }
    }
    fn bytes_owned_by(&self, domid: DomId) -> usize {
        match self {
            View::Committed(store) => store.bytes_owned_by(domid),
            View::Transaction(view) => view.bytes_owned_by(domid),
        }
    }
}

/// What a `WATCH`/`UNWATCH` path names.
fn watch_target(domid: DomId, path: &[u8]) -> Result<WatchTarget, StoreError> {
    validate_watch_path(path).map_err(|_| StoreError::InvalidRequest)?;
    match SpecialPath::from_path(path) {
        Some(special) => Ok(WatchTarget::Special(special)),
        // `@releaseDomain/<domid>` needs the watch-depth feature, which this store lacks.
        None if path.first() == Some(&b'@') => Err(StoreError::InvalidRequest),
        None => Ok(WatchTarget::Node(resolve(domid, path)?)),
    }
}

impl StoreServer {
    /// A store with `/local/domain` and Dom0's connection.
    pub fn new(limits: Limits) -> Self {
        let limits = limits.sanitised();
        let mut connections = BTreeMap::new();
        connections.insert(DOM0, Connection::new(DOM0, limits.output_bytes));
        let mut server = Self {
            store: Store::new(),
            connections,
            introduce_perms: Permissions::new(DOM0, Access::None),
            release_perms: Permissions::new(DOM0, Access::None),
            limits,
            host_requests: VecDeque::new(),
        };
        let mut changes = Vec::new();
        let home = domain_path(DOM0);
        let _ = tree::mkdir(&mut server.store, DOM0, &limits, &home, &mut changes);
        server
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The committed tree (read-only).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A domain's connection.
    pub fn connection(&self, domid: DomId) -> Option<&Connection> {
        self.connections.get(&domid)
    }

    /// Introduced domains (Dom0 included).
    pub fn domains(&self) -> impl Iterator<Item = DomId> + '_ {
        self.connections.keys().copied()
    }

    /// Start serving `domid`: create `/local/domain/<domid>` owned by it (an existing home is
    /// handed to it) and fire `@introduceDomain`.
    pub fn introduce(&mut self, domid: DomId) -> Result<(), StoreError> {
        if domid == DOM0 || domid >= DOMID_FIRST_RESERVED {
            return Err(StoreError::InvalidRequest);
        }
        if self.connections.contains_key(&domid) {
            return Err(StoreError::AlreadyExists);
        }
        // Every domain's budget must fit the server's memory: refuse one more than fits.
        if self.connections.len() > self.limits.max_domains() {
            return Err(StoreError::QuotaExceeded(Quota::Memory));
        }
        let home = domain_path(domid);
        let mut changes = Vec::new();
        let limits = self.limits;
        tree::mkdir(&mut self.store, DOM0, &limits, &home, &mut changes)?;
        let perms = match self.store.get(&home) {
            Some(node) if node.perms.owner != DOM0 => node.perms.clone(),
            Some(node) => Permissions { owner: domid, ..node.perms.clone() },
            None => Permissions::new(domid, Access::None),
        };
        if perms.owner == domid {
            tree::set_perms(&mut self.store, DOM0, &limits, &home, perms, &mut changes)?;
        }
        self.connections.insert(domid, Connection::new(domid, limits.output_bytes));
        self.fire(DOM0, &changes);
        self.fire_special(DOM0, SpecialPath::IntroduceDomain);
        self.flush(DOM0);
        Ok(())
    }

    /// Bytes the server holds for `domid` (within [`Limits::domain_budget`] for every domain but
    /// Dom0): the nodes it owns, its transactions and watches, its queued replies and events
    /// and its partly received message.
    pub fn memory_of(&self, domid: DomId) -> usize {
        let nodes = self.store.bytes_owned(domid);
        let Some(conn) = self.connections.get(&domid) else { return nodes };
        nodes
            + conn.transactions.values().map(Transaction::bytes).sum::<usize>()
            + conn.watches.bytes()
            + conn.buffered_bytes()
    }

    /// Bytes the server holds for every domain together (nodes Dom0 owns included).
    pub fn memory(&self) -> usize {
        let domains: usize = self.connections.keys().map(|d| self.memory_of(*d)).sum();
        // Nodes owned by domains without a connection (none after a release: what a released
        // domain owned passes to Dom0).
        let orphaned: usize = self
            .store
            .total_bytes()
            .saturating_sub(self.connections.keys().map(|d| self.store.bytes_owned(*d)).sum::<usize>());
        domains + orphaned
    }

    /// Whether `domid` is being served.
    pub fn is_introduced(&self, domid: DomId) -> bool {
        self.connections.contains_key(&domid)
    }

    /// Stop serving a destroyed domain: drop its connection (watches, transactions, queued
    /// output), remove `/local/domain/<domid>`, strip it from every permission list (what it
    /// owned elsewhere passes to Dom0), and fire `@releaseDomain`.
    pub fn release(&mut self, domid: DomId) -> Result<(), StoreError> {
        if domid == DOM0 {
            return Err(StoreError::InvalidRequest);
        }
        self.connections.remove(&domid).ok_or(StoreError::NotFound)?;
        self.release_nodes(domid)
    }

    /// Removes the nodes of a domain that has no connection any more (its home, its
    /// accounting, its special-path permissions) and fires `@releaseDomain`. `release` is
    /// `drop_connection` then this.
    pub fn release_nodes(&mut self, domid: DomId) -> Result<(), StoreError> {
        if domid == DOM0 || self.connections.contains_key(&domid) {
            return Err(StoreError::InvalidRequest);
        }
        let mut changes = Vec::new();
        match tree::rm(&mut self.store, DOM0, &domain_path(domid), &mut changes) {
            Ok(()) | Err(StoreError::NotFound) => {}
            Err(e) => return Err(e),
        }
        self.store.forget_domain(domid);
        for conn in self.connections.values_mut() {
            for tx in conn.transactions.values_mut() {
                tx.forget_domain(domid);
            }
        }
        self.introduce_perms.forget_domain(domid);
        self.release_perms.forget_domain(domid);
        self.fire(DOM0, &changes);
        self.fire_special(DOM0, SpecialPath::ReleaseDomain);
        self.flush(DOM0);
        Ok(())
    }

    /// Stops serving `domid`'s connection (its watches, transactions and queued output go) but
    /// keeps its nodes and their accounting: the toolstack is restarting the domain in place
    /// under the same id, and its home (a backend's device directories) must outlive the old
    /// instance. `introduce` serves the new one.
    pub fn drop_connection(&mut self, domid: DomId) -> Result<(), StoreError> {
        if domid == DOM0 {
            return Err(StoreError::InvalidRequest);
        }
        self.connections.remove(&domid).ok_or(StoreError::NotFound)?;
        Ok(())
    }

    /// Requests to map or unmap rings that came over the wire (oldest first).
    pub fn take_host_request(&mut self) -> Option<HostRequest> {
        self.host_requests.pop_front()
    }

    /// Bytes `domid`'s connection needs to complete its current message (0 while it has a
    /// complete request it cannot answer yet, or it is broken, or unknown).
    pub fn wanted(&self, domid: DomId) -> usize {
        self.connections.get(&domid).map_or(0, Connection::wanted)
    }

    /// Feed bytes from `domid`'s ring and handle the complete requests while replies fit.
    /// Returns the bytes taken: fewer than offered when the domain's output is full or its
    /// connection broke (the rest must stay in the ring).
    pub fn receive(&mut self, domid: DomId, bytes: &[u8]) -> Result<usize, StoreError> {
        let mut taken = 0;
        loop {
            self.handle_pending(domid);
            let conn = self.connections.get_mut(&domid).ok_or(StoreError::NotFound)?;
            if taken == bytes.len() || conn.wanted() == 0 {
                return Ok(taken);
            }
            taken += conn.feed(&bytes[taken..]);
        }
    }

    /// Handle complete requests waiting on `domid`'s connection while their replies fit.
    pub fn handle_pending(&mut self, domid: DomId) -> usize {
        let mut handled = 0;
        loop {
            let Some(conn) = self.connections.get_mut(&domid) else { return handled };
            conn.flush_events();
            if !conn.can_reply() {
                return handled;
            }
            let Some(message) = conn.take_message() else { return handled };
            self.handle_message(domid, message);
            handled += 1;
        }
    }

    /// Mark `domid`'s connection broken (e.g. its ring indices are bad).
    pub fn mark_broken(&mut self, domid: DomId, why: ProtocolViolation) {
        if let Some(conn) = self.connections.get_mut(&domid) {
            conn.mark_broken(why);
        }
    }

    /// Replies and events waiting for `domid` (two slices, in order).
    pub fn output(&self, domid: DomId) -> (&[u8], &[u8]) {
        self.connections.get(&domid).map_or((&[], &[]), Connection::output)
    }

    /// `count` bytes of `domid`'s output were delivered; more events may now fit.
    pub fn consume_output(&mut self, domid: DomId, count: usize) {
        if let Some(conn) = self.connections.get_mut(&domid) {
            conn.consume_output(count);
            conn.flush_events();
        }
    }

    fn handle_message(&mut self, domid: DomId, message: Incoming) {
        let header = message.header;
        let result = match XsType::from_wire(header.msg_type) {
            None => Err(StoreError::Unsupported),
            Some(kind) => Request::parse(kind, &message.payload).and_then(|r| self.dispatch(domid, header.tx_id, r)),
        };
        let Some(conn) = self.connections.get_mut(&domid) else { return };
        match result {
            Ok(reply) => {
                let kind = XsType::from_wire(header.msg_type).unwrap_or(XsType::Error);
                conn.queue_reply(header, kind, reply.payload());
            }
            Err(error) => conn.queue_error(header, error.errno()),
        }
        conn.flush_events();
    }

    /// Carry out one request for `domid` (inside transaction `tx_id` unless 0). Events for
    /// `domid` itself are queued after the reply would be.
    pub fn execute(&mut self, domid: DomId, tx_id: u32, request: Request<'_>) -> Result<Reply, StoreError> {
        let result = self.dispatch(domid, tx_id, request);
        if let Some(conn) = self.connections.get_mut(&domid) {
            conn.flush_events();
        }
        result
    }

    fn dispatch(&mut self, domid: DomId, tx_id: u32, request: Request<'_>) -> Result<Reply, StoreError> {
        if !self.connections.contains_key(&domid) {
            return Err(StoreError::NotFound);
        }
        let reply = match request {
            Request::Read { path } => {
                let path = resolve(domid, path)?;
                Reply::Data(self.with_view(domid, tx_id, |map, _, _| tree::read(map, domid, &path))?)
            }
            Request::Directory { path } => {
                let path = resolve(domid, path)?;
                Reply::Data(self.with_view(domid, tx_id, |map, _, _| tree::directory(map, domid, &path))?)
            }
            Request::GetPerms { path } => match SpecialPath::from_path(path) {
                Some(special) => {
                    let perms = self.special_perms(special);
                    if !perms.access_for(domid).can_read() {
                        return Err(StoreError::PermissionDenied);
                    }
                    let mut out = Vec::new();
                    perms.encode(&mut out);
                    Reply::Data(out)
                }
                None => {
                    let path = resolve(domid, path)?;
                    Reply::Data(self.with_view(domid, tx_id, |map, _, _| tree::get_perms(map, domid, &path))?)
                }
            },
            Request::Write { path, value } => {
                let path = resolve(domid, path)?;
                self.with_view(domid, tx_id, |map, limits, changes| {
                    tree::write(map, domid, limits, &path, value, changes)
                })?;
                Reply::Ok
            }
            Request::Mkdir { path } => {
                let path = resolve(domid, path)?;
                self.with_view(domid, tx_id, |map, limits, changes| tree::mkdir(map, domid, limits, &path, changes))?;
                Reply::Ok
            }
            Request::Rm { path } => {
                let path = resolve(domid, path)?;
                self.with_view(domid, tx_id, |map, _, changes| tree::rm(map, domid, &path, changes))?;
                Reply::Ok
            }
            Request::SetPerms { path, perms } => match SpecialPath::from_path(path) {
                Some(special) => {
                    if domid != DOM0 {
                        return Err(StoreError::PermissionDenied);
                    }
                    match special {
                        SpecialPath::IntroduceDomain => self.introduce_perms = perms,
                        SpecialPath::ReleaseDomain => self.release_perms = perms,
                    }
                    Reply::Ok
                }
                None => {
                    // Only Dom0 may change an owner (`tree::set_perms`), and only to itself or a
                    // domain the store serves: a node owned by a domain that does not exist
                    // would count against no budget, and the domain that later gets that id
                    // would inherit it (XSA-322). Xen answers ENOENT for such a domain.
                    if domid == DOM0 && perms.owner != DOM0 && !self.connections.contains_key(&perms.owner) {
                        return Err(StoreError::NotFound);
                    }
                    let path = resolve(domid, path)?;
                    self.with_view(domid, tx_id, |map, limits, changes| {
                        tree::set_perms(map, domid, limits, &path, perms, changes)
                    })?;
                    Reply::Ok
                }
            },
            Request::Watch { path, token } => {
                let target = watch_target(domid, path)?;
                let limits = self.limits;
                let conn = self.connections.get_mut(&domid).ok_or(StoreError::NotFound)?;
                let limit = watch_limit(domid, limits.watches_per_domain);
                let byte_limit = watch_limit(domid, limits.watch_bytes);
                conn.watches.add(target, path, token, limit, byte_limit, limits.event_queue_bytes)?;
                Reply::Ok
            }
            Request::Unwatch { path, token } => {
                let target = watch_target(domid, path)?;
                let conn = self.connections.get_mut(&domid).ok_or(StoreError::NotFound)?;
                conn.watches.remove(&target, token)?;
                Reply::Ok
            }
            Request::TransactionStart => {
                if tx_id != 0 {
                    return Err(StoreError::NestedTransaction);
                }
                let limits = self.limits;
                let conn = self.connections.get_mut(&domid).ok_or(StoreError::NotFound)?;
                if domid != DOM0 && conn.transactions.len() >= limits.transactions_per_domain {
                    return Err(StoreError::QuotaExceeded(Quota::Transactions));
                }
                let held: usize = conn.transactions.values().map(Transaction::bytes).sum();
                if domid != DOM0 && held + crate::memory::TX_OVERHEAD > limits.transaction_bytes {
                    return Err(StoreError::QuotaExceeded(Quota::Memory));
                }
                let id = conn.allocate_transaction_id();
                conn.transactions.insert(id, Transaction::new(domid, limits.nodes_per_transaction));
                let mut out = Vec::new();
                push_decimal(&mut out, id);
                out.push(0);
                Reply::Data(out)
            }
            Request::TransactionEnd { commit: apply } => {
                let conn = self.connections.get_mut(&domid).ok_or(StoreError::NotFound)?;
                let tx = conn.transactions.remove(&tx_id).ok_or(StoreError::NotFound)?;
                if apply {
                    let changes = commit(&mut self.store, tx, &self.limits)?;
                    self.fire(domid, &changes);
                }
                Reply::Ok
            }
            Request::GetDomainPath { domid: target } => {
                let mut out = domain_path(target);
                out.push(0);
                Reply::Data(out)
            }
            Request::Introduce { domid: target, gfn, port } => {
                self.require_dom0(domid)?;
                self.introduce(target)?;
                self.host_requests.push_back(HostRequest::MapRing { domid: target, gfn, port });
                Reply::Ok
            }
            Request::Release { domid: target } => {
                self.require_dom0(domid)?;
                self.release(target)?;
                self.host_requests.push_back(HostRequest::UnmapRing { domid: target });
                Reply::Ok
            }
            Request::IsDomainIntroduced { domid: target } => {
                self.require_dom0(domid)?;
                Reply::Data(if self.is_introduced(target) { b"T\0".to_vec() } else { b"F\0".to_vec() })
            }
            Request::ResetWatches => {
                let conn = self.connections.get_mut(&domid).ok_or(StoreError::NotFound)?;
                conn.watches.clear();
                conn.transactions.clear();
                Reply::Ok
            }
        };
        if reply.payload().len() > PAYLOAD_MAX as usize {
            return Err(StoreError::ReplyTooBig);
        }
        Ok(reply)
    }

    fn flush(&mut self, domid: DomId) {
        if let Some(conn) = self.connections.get_mut(&domid) {
            conn.flush_events();
        }
    }

    fn require_dom0(&self, domid: DomId) -> Result<(), StoreError> {
        if domid == DOM0 { Ok(()) } else { Err(StoreError::PermissionDenied) }
    }

    fn special_perms(&self, special: SpecialPath) -> &Permissions {
        match special {
            SpecialPath::IntroduceDomain => &self.introduce_perms,
            SpecialPath::ReleaseDomain => &self.release_perms,
        }
    }

    /// Run `op` on the committed tree (firing its changes) or inside transaction `tx_id`
    /// (keeping them for the commit).
    fn with_view<R>(
        &mut self,
        domid: DomId,
        tx_id: u32,
        op: impl FnOnce(&mut View<'_>, &Limits, &mut Vec<Change>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let limits = self.limits;
        let mut changes = Vec::new();
        if tx_id == 0 {
            let result = op(&mut View::Committed(&mut self.store), &limits, &mut changes);
            self.fire(domid, &changes);
            return result;
        }
        let conn = self.connections.get_mut(&domid).ok_or(StoreError::NotFound)?;
        if !conn.transactions.contains_key(&tx_id) {
            return Err(StoreError::NotFound);
        }
        // The domain's transactions share one byte budget.
        let others: usize = conn.transactions.iter().filter(|(id, _)| **id != tx_id).map(|(_, t)| t.bytes()).sum();
        let tx = conn.transactions.get_mut(&tx_id).ok_or(StoreError::NotFound)?;
        tx.set_byte_limit(Some(limits.transaction_bytes.saturating_sub(others)));
        let result = op(&mut View::Transaction(TxView { base: &self.store, tx }), &limits, &mut changes);
        let recorded = tx.record_changes(changes);
        result.and_then(|r| recorded.map(|()| r))
    }

    /// Queue watch events for `changes` on every connection; all but the actor's are flushed
    /// to output now (the actor's follow its reply).
    fn fire(&mut self, actor: DomId, changes: &[Change]) {
        if changes.is_empty() {
            return;
        }
        let queue_limit = self.limits.event_queue_bytes;
        for conn in self.connections.values_mut() {
            if conn.watches.is_empty() {
                continue;
            }
            let home = domain_path(conn.domid());
            for change in changes {
                conn.watches.notify(conn.domid(), &home, change, queue_limit);
            }
            if conn.domid() != actor {
                conn.flush_events();
            }
        }
    }

    fn fire_special(&mut self, actor: DomId, special: SpecialPath) {
        let queue_limit = self.limits.event_queue_bytes;
        let perms = self.special_perms(special).clone();
        for conn in self.connections.values_mut() {
            if perms.access_for(conn.domid()).can_read() {
                conn.watches.notify_special(special, queue_limit);
                if conn.domid() != actor {
                    conn.flush_events();
                }
            }
        }
    }

    /// Check what must always hold (for tests): the tree is consistent, and no domain owns
    /// more nodes or holds more watches/transactions/buffered bytes than its limits allow,
    /// counting only what it could have created itself.
    pub fn check_invariants(&self) -> Result<(), &'static str> {
        self.store.check_invariants()?;
        for conn in self.connections.values() {
            if conn.domid() == DOM0 {
                continue;
            }
            if conn.watches.len() > self.limits.watches_per_domain {
                return Err("watch quota exceeded");
            }
            if conn.transactions.len() > self.limits.transactions_per_domain {
                return Err("transaction quota exceeded");
            }
            if conn.output_len() > self.limits.output_bytes {
                return Err("output over its bound");
            }
            if conn.watches.queued_bytes() > self.limits.event_queue_bytes {
                return Err("event queue over its bound");
            }
        }
        for (_, node) in self.store.iter() {
            let owner = node.perms.owner;
            if owner != DOM0 && !self.connections.contains_key(&owner) {
                return Err("node owned by a domain that is gone");
            }
        }
        Ok(())
    }

    /// The errno a request would get, for logging (`None` on success).
    pub fn errno_of(result: &Result<Reply, StoreError>) -> Option<Errno> {
        result.as_ref().err().map(|e| e.errno())
    }
}
