//! Per-domain limits. Dom0 is exempt from the ownership ones (nodes, watches, transactions,
//! sizes); the connection buffers are bounded for every domain, Dom0 included, because they
//! are Dom0's own memory.

use xenstore::MAX_MESSAGE;

/// The limits the store enforces. [`Limits::default`] follows C xenstored's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Nodes a domain may own (xenstored: 1000).
    pub nodes_per_domain: u32,
    /// Watches a domain may register (xenstored: 128).
    pub watches_per_domain: usize,
    /// Transactions a domain may hold open (xenstored: 10).
    pub transactions_per_domain: usize,
    /// Distinct nodes one transaction may read or write (xenstored: 1024).
    pub nodes_per_transaction: usize,
    /// Bytes of one node's value written by a domain (xenstored's node size: 2048).
    pub value_bytes: usize,
    /// Entries in a permission list set by a domain (xenstored: 5).
    pub perms_per_node: usize,
    /// Replies and events queued for a domain that has not read them. While less than one
    /// maximal message fits, the domain's further requests wait in its ring.
    pub output_bytes: usize,
    /// Watch events waiting for room in the output; beyond this, events coalesce into one
    /// event on the watch's own path.
    pub event_queue_bytes: usize,
    /// Bytes of the nodes a domain owns ([`crate::memory::node_cost`]), whoever wrote them.
    pub node_bytes: usize,
    /// Bytes of a domain's open transactions together: what each recorded (paths it looked
    /// at, nodes it changed, watch events to fire) and a fixed cost per transaction.
    pub transaction_bytes: usize,
    /// Bytes of a domain's registered watches.
    pub watch_bytes: usize,
    /// The server's memory for every domain's budget together (Dom0 sets it from its heap);
    /// a domain is introduced only while its budget still fits ([`Limits::max_domains`]).
    pub total_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            nodes_per_domain: 1000,
            watches_per_domain: 128,
            transactions_per_domain: 10,
            nodes_per_transaction: 1024,
            value_bytes: 2048,
            perms_per_node: 5,
            output_bytes: 32 * 1024,
            event_queue_bytes: 16 * 1024,
            node_bytes: 64 * 1024,
            transaction_bytes: 32 * 1024,
            watch_bytes: 32 * 1024,
            total_bytes: usize::MAX,
        }
    }
}

impl Limits {
    /// The most memory one domain can make the server hold: its nodes, transactions, watches,
    /// queued replies and events, and one message being reassembled.
    pub fn domain_budget(&self) -> usize {
        let s = self.sanitised();
        s.node_bytes + s.transaction_bytes + s.watch_bytes + s.output_bytes + s.event_queue_bytes + MAX_MESSAGE
    }

    /// Domains (besides Dom0) whose budgets fit [`Limits::total_bytes`].
    pub fn max_domains(&self) -> usize {
        self.total_bytes / self.domain_budget().max(1)
    }

    /// The limits with the buffers raised to at least one maximal message each (so every reply
    /// can always be queued once the output has drained).
    pub fn sanitised(self) -> Self {
        Self {
            output_bytes: self.output_bytes.max(2 * MAX_MESSAGE),
            event_queue_bytes: self.event_queue_bytes.max(MAX_MESSAGE),
            ..self
        }
    }
}
