//! What went wrong with a request, in terms of what the requester did; each maps to the errno
//! name the wire carries ([`StoreError::errno`]).

use core::fmt;

use crate::errno::Errno;

/// A per-domain resource limit (see [`crate::Limits`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quota {
    /// Nodes owned by the domain.
    Nodes,
    /// Watches registered by the domain.
    Watches,
    /// Transactions open at once.
    Transactions,
    /// Nodes read or written inside one transaction.
    TransactionSize,
    /// Bytes of one node's value.
    ValueSize,
    /// Entries in one node's permission list.
    PermissionsPerNode,
    /// Bytes of the server's memory the domain's nodes, transactions or watches take, or (when
    /// introducing a domain) the server's memory for one more domain.
    Memory,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreError {
    /// The payload was malformed: bad path syntax, missing or extra NUL-separated fields, a bad
    /// number or permission string, `rm /`. (`EINVAL`)
    InvalidRequest,
    /// The node exists but the requester may not read/write it, or an unprivileged domain asked
    /// for a Dom0-only operation. (`EACCES`)
    PermissionDenied,
    /// An unprivileged domain tried to give a node to another owner. (`EPERM`)
    OwnerChangeDenied,
    /// No such node, watch, transaction or domain. (`ENOENT`)
    NotFound,
    /// The watch (path, token) or the domain already exists. (`EEXIST`)
    AlreadyExists,
    /// A per-domain limit was hit: `E2BIG` for watches (as C xenstored), `ENOSPC` otherwise.
    QuotaExceeded(Quota),
    /// The reply would exceed `XENSTORE_PAYLOAD_MAX` (a directory with too many children). (`E2BIG`)
    ReplyTooBig,
    /// The transaction conflicted with a change made since it started; retry it. (`EAGAIN`)
    Conflict,
    /// `TRANSACTION_START` inside a transaction. (`EBUSY`)
    NestedTransaction,
    /// A message type this store does not implement. (`ENOSYS`)
    Unsupported,
}

impl StoreError {
    /// The wire error name.
    pub fn errno(self) -> Errno {
        match self {
            StoreError::InvalidRequest => Errno::Einval,
            StoreError::PermissionDenied => Errno::Eacces,
            StoreError::OwnerChangeDenied => Errno::Eperm,
            StoreError::NotFound => Errno::Enoent,
            StoreError::AlreadyExists => Errno::Eexist,
            StoreError::QuotaExceeded(Quota::Watches) => Errno::E2big,
            StoreError::QuotaExceeded(_) => Errno::Enospc,
            StoreError::ReplyTooBig => Errno::E2big,
            StoreError::Conflict => Errno::Eagain,
            StoreError::NestedTransaction => Errno::Ebusy,
            StoreError::Unsupported => Errno::Enosys,
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            StoreError::InvalidRequest => "malformed request",
            StoreError::PermissionDenied => "permission denied",
            StoreError::OwnerChangeDenied => "only Dom0 may change a node's owner",
            StoreError::NotFound => "not found",
            StoreError::AlreadyExists => "already exists",
            StoreError::QuotaExceeded(Quota::Nodes) => "node quota exceeded",
            StoreError::QuotaExceeded(Quota::Watches) => "watch quota exceeded",
            StoreError::QuotaExceeded(Quota::Transactions) => "too many open transactions",
            StoreError::QuotaExceeded(Quota::TransactionSize) => "transaction touches too many nodes",
            StoreError::QuotaExceeded(Quota::ValueSize) => "value too large",
            StoreError::QuotaExceeded(Quota::PermissionsPerNode) => "too many permission entries",
            StoreError::QuotaExceeded(Quota::Memory) => "store memory quota exceeded",
            StoreError::ReplyTooBig => "reply would exceed the 4096-byte payload limit",
            StoreError::Conflict => "transaction conflicted, retry",
            StoreError::NestedTransaction => "transaction already open on this request",
            StoreError::Unsupported => "operation not supported",
        };
        write!(f, "{what} ({})", self.errno())
    }
}

impl core::error::Error for StoreError {}
