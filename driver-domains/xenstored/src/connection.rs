//! One domain's connection: reassembles requests from the byte stream, holds the replies and
//! events it has not taken yet, its watches and its open transactions.
//!
//! Bytes arrive in whatever pieces the ring delivers. [`Connection::wanted`] says how many more
//! bytes complete the current message (at most one header or one payload), so a caller never
//! takes bytes off the ring that the connection cannot hold: input is bounded by one message,
//! output by [`Limits::output_bytes`](crate::Limits). A header announcing more than
//! `XENSTORE_PAYLOAD_MAX` bytes cannot be skipped safely, so the connection is marked broken
//! (after an `E2BIG` error reply) and reads nothing more.

use alloc::collections::{BTreeMap, VecDeque};
use alloc::vec::Vec;
use core::fmt;

use shared_ring::wire::xenstore::{HEADER_SIZE, PAYLOAD_MAX, XenstoreError, XsType, XsdSockmsg};

use crate::DomId;
use crate::MAX_MESSAGE;
use crate::transaction::Transaction;
use crate::watch::Watches;
use xenstore::Errno;

/// Why a connection stopped being served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProtocolViolation {
    /// A header announced a payload over `XENSTORE_PAYLOAD_MAX` (xenstore.txt: the connection
    /// "will be immediately killed").
    PayloadTooLong {
        /// The announced length.
        len: u32,
    },
    /// The domain moved a ring index outside the ring.
    BadRingIndex {
        /// What shared-ring saw.
        error: XenstoreError,
    },
}

impl fmt::Display for ProtocolViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolViolation::PayloadTooLong { len } => {
                write!(f, "header announced {len} payload bytes (limit {PAYLOAD_MAX})")
            }
            ProtocolViolation::BadRingIndex { error } => write!(f, "{error}"),
        }
    }
}

/// A complete message taken off a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    /// Its header (length already checked).
    pub header: XsdSockmsg,
    /// Its payload.
    pub payload: Vec<u8>,
}

/// One domain's connection state.
#[derive(Debug)]
pub struct Connection {
    domid: DomId,
    input: Vec<u8>,
    output: VecDeque<u8>,
    output_limit: usize,
    pub(crate) watches: Watches,
    pub(crate) transactions: BTreeMap<u32, Transaction>,
    next_transaction: u32,
    broken: Option<ProtocolViolation>,
}

impl Connection {
    /// Watches this connection has registered.
    pub fn watch_count(&self) -> usize {
        self.watches.len()
    }

    /// A fresh connection for `domid` with room for `output_limit` bytes of replies.
    pub fn new(domid: DomId, output_limit: usize) -> Self {
        Self {
            domid,
            input: Vec::new(),
            output: VecDeque::new(),
            output_limit: output_limit.max(2 * MAX_MESSAGE),
            watches: Watches::default(),
            transactions: BTreeMap::new(),
            next_transaction: 1,
            broken: None,
        }
    }

    /// The domain.
    pub fn domid(&self) -> DomId {
        self.domid
    }

    /// Why the connection is no longer served, if it isn't.
    pub fn broken(&self) -> Option<ProtocolViolation> {
        self.broken
    }

    /// Stop serving the connection.
    pub(crate) fn mark_broken(&mut self, why: ProtocolViolation) {
        self.broken.get_or_insert(why);
    }

    fn announced_len(&self) -> Option<usize> {
        let head: &[u8; HEADER_SIZE] = self.input.get(..HEADER_SIZE)?.try_into().ok()?;
        Some(XsdSockmsg::from_raw(head).len as usize)
    }

    /// Bytes still needed to complete the message being assembled (0 when one is complete and
    /// waiting, or the connection is broken).
    pub fn wanted(&self) -> usize {
        if self.broken.is_some() {
            return 0;
        }
        match self.announced_len() {
            None => HEADER_SIZE - self.input.len(),
            Some(len) => (HEADER_SIZE + len).saturating_sub(self.input.len()),
        }
    }

    /// Take as many of `bytes` as the current message needs; returns how many were taken.
    pub fn feed(&mut self, bytes: &[u8]) -> usize {
        let mut taken = 0;
        loop {
            let want = self.wanted().min(bytes.len() - taken);
            if want == 0 {
                return taken;
            }
            self.input.extend_from_slice(&bytes[taken..taken + want]);
            taken += want;
            if self.input.len() == HEADER_SIZE {
                self.check_header();
            }
        }
    }

    fn check_header(&mut self) {
        let Some(head) = self.input.first_chunk::<HEADER_SIZE>() else { return };
        let header = XsdSockmsg::from_raw(head);
        if header.len > PAYLOAD_MAX {
            // The stream cannot be resynchronised. Say why, then stop reading.
            let reply = XsdSockmsg { msg_type: XsType::Error as u32, ..header };
            self.queue_error(reply, Errno::E2big);
            self.input.clear();
            self.mark_broken(ProtocolViolation::PayloadTooLong { len: header.len });
        }
    }

    /// The complete message waiting, if any (its bytes leave the connection).
    pub fn take_message(&mut self) -> Option<Incoming> {
        if self.broken.is_some() || self.input.len() < HEADER_SIZE || self.wanted() != 0 {
            return None;
        }
        let head = self.input.first_chunk::<HEADER_SIZE>()?;
        let header = XsdSockmsg::from_raw(head);
        let payload = self.input.get(HEADER_SIZE..).map(<[u8]>::to_vec).unwrap_or_default();
        self.input.clear();
        Some(Incoming { header, payload })
    }

    /// Whether a complete message is waiting.
    pub fn has_message(&self) -> bool {
        self.broken.is_none() && self.input.len() >= HEADER_SIZE && self.wanted() == 0
    }

    /// Room left in the output queue.
    pub fn output_room(&self) -> usize {
        self.output_limit.saturating_sub(self.output.len())
    }

    /// Whether one maximal reply fits (the condition for handling the next request).
    pub fn can_reply(&self) -> bool {
        self.output_room() >= MAX_MESSAGE
    }

    /// Queue a reply of `kind` with `payload`, echoing the request's ids.
    pub(crate) fn queue_reply(&mut self, request: XsdSockmsg, kind: XsType, payload: &[u8]) {
        let header = XsdSockmsg { msg_type: kind as u32, len: payload.len() as u32, ..request };
        self.output.extend(header.to_raw());
        self.output.extend(payload);
    }

    /// Queue an `XS_ERROR` reply.
    pub(crate) fn queue_error(&mut self, request: XsdSockmsg, errno: Errno) {
        let mut payload = Vec::with_capacity(12);
        payload.extend_from_slice(errno.name().as_bytes());
        payload.push(0);
        self.queue_reply(request, XsType::Error, &payload);
    }

    /// Move pending watch events into the output while they fit.
    pub(crate) fn flush_events(&mut self) {
        while let Some(event) = self.watches.pop_event(self.output_room()) {
            self.output.extend(event);
        }
    }

    /// Bytes waiting to be sent, as at most two slices (in order).
    pub fn output(&self) -> (&[u8], &[u8]) {
        self.output.as_slices()
    }

    /// Bytes waiting to be sent.
    pub fn output_len(&self) -> usize {
        self.output.len()
    }

    /// Drop the first `count` output bytes (they were sent).
    pub fn consume_output(&mut self, count: usize) {
        self.output.drain(..count.min(self.output.len()));
    }

    /// A fresh transaction id (never 0, never one in use).
    pub(crate) fn allocate_transaction_id(&mut self) -> u32 {
        loop {
            let id = self.next_transaction;
            self.next_transaction = self.next_transaction.wrapping_add(1).max(1);
            if !self.transactions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Bytes this connection holds on Dom0's side (input, output, queued events).
    pub fn buffered_bytes(&self) -> usize {
        self.input.len() + self.output.len() + self.watches.queued_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(kind: XsType, req_id: u32, payload: &[u8]) -> Vec<u8> {
        let header = XsdSockmsg { msg_type: kind as u32, req_id, tx_id: 0, len: payload.len() as u32 };
        let mut out = header.to_raw().to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn reassembles_messages_split_at_every_byte() {
        let bytes = message(XsType::Read, 9, b"/a/b\0");
        let mut conn = Connection::new(1, 0);
        for (i, b) in bytes.iter().enumerate() {
            assert!(!conn.has_message(), "complete after {i} bytes");
            assert_eq!(conn.feed(core::slice::from_ref(b)), 1);
        }
        let got = conn.take_message().unwrap();
        assert_eq!(got.header.req_id, 9);
        assert_eq!(got.payload, b"/a/b\0");
        assert_eq!(conn.wanted(), HEADER_SIZE);
    }

    #[test]
    fn takes_one_message_at_a_time_from_a_batch() {
        let mut bytes = message(XsType::Read, 1, b"/a\0");
        bytes.extend(message(XsType::Read, 2, b""));
        bytes.extend(message(XsType::Read, 3, b"/c\0"));
        let mut conn = Connection::new(1, 0);
        let mut at = 0;
        let mut ids = Vec::new();
        while at < bytes.len() {
            at += conn.feed(&bytes[at..]);
            let got = conn.take_message().unwrap();
            ids.push(got.header.req_id);
        }
        assert_eq!(ids, [1, 2, 3]);
    }

    #[test]
    fn oversized_header_breaks_the_connection_after_an_error_reply() {
        let mut bytes = XsdSockmsg { msg_type: 2, req_id: 5, tx_id: 0, len: 4097 }.to_raw().to_vec();
        bytes.extend([0u8; 100]);
        let mut conn = Connection::new(1, 0);
        assert_eq!(conn.feed(&bytes), HEADER_SIZE);
        assert_eq!(conn.broken(), Some(ProtocolViolation::PayloadTooLong { len: 4097 }));
        assert_eq!(conn.wanted(), 0);
        assert_eq!(conn.feed(&bytes), 0);
        assert!(conn.take_message().is_none());
        let (a, b) = conn.output();
        let out: Vec<u8> = a.iter().chain(b).copied().collect();
        let header = XsdSockmsg::from_raw(out[..16].try_into().unwrap());
        assert_eq!((header.msg_type, header.req_id), (XsType::Error as u32, 5));
        assert_eq!(&out[16..], b"E2BIG\0");
    }

    #[test]
    fn transaction_ids_skip_zero_and_ids_in_use() {
        let mut conn = Connection::new(1, 0);
        conn.next_transaction = u32::MAX;
        assert_eq!(conn.allocate_transaction_id(), u32::MAX);
        conn.transactions.insert(1, Transaction::new(1, 10));
        assert_eq!(conn.allocate_transaction_id(), 2);
    }
}
