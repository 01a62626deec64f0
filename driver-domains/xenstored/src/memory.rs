//! What a domain's store state costs the server in bytes, so that every domain can be given a
//! byte budget ([`crate::Limits::domain_budget`]) and the sum over the domains the server
//! serves fits the memory Dom0 gave it ([`crate::Limits::total_bytes`]).
//!
//! The costs are the bytes the data structures hold (paths, values, names, tokens) plus a fixed
//! overhead per entry for the allocator's and the collections' own bookkeeping. They are an
//! upper estimate, not a measurement: what matters is that every byte a domain can make the
//! server hold grows some domain's charge, and that the charges are returned exactly when the
//! state goes away (tests check the totals come back to their baseline).

use crate::path::last_component;
use crate::tree::Node;
use xenstore::Permissions;

/// Per node: its map entry, the `Node` struct, its children set and its entry in its parent's.
pub const NODE_OVERHEAD: usize = 160;
/// Per permission entry.
pub const PERM_ENTRY: usize = 8;
/// Per path a transaction records (observed generation, overlay entry or change).
pub const TX_ENTRY_OVERHEAD: usize = 64;
/// Per open transaction, before it records anything.
pub const TX_OVERHEAD: usize = 256;
/// Per registered watch.
pub const WATCH_OVERHEAD: usize = 96;

/// A permission list's bytes.
pub fn perms_cost(perms: &Permissions) -> usize {
    perms.len() * PERM_ENTRY
}

/// A node's bytes: its path (the map key), its name in its parent's children, its value and
/// permissions, and the overhead.
pub fn node_cost(path: &[u8], node: &Node) -> usize {
    NODE_OVERHEAD + path.len() + last_component(path).len() + node.value.len() + perms_cost(&node.perms)
}

/// A watch's bytes: the resolved target, the path as given, the token.
pub fn watch_cost(target_len: usize, requested_len: usize, token_len: usize) -> usize {
    WATCH_OVERHEAD + target_len + requested_len + token_len
}
