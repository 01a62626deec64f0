//! The XenbusState handshake (`xen/include/public/io/xenbus.h`), shared by front and back ends.
//!
//! Each end publishes its state as a decimal in `<its directory>/state` and watches the
//! other's. Watches coalesce and states may be skipped, so each end reacts to the peer's
//! *current* state, never to a particular transition: [`backend_next`] and [`frontend_next`]
//! say what to switch to (the caller first does the device work the new state promises, such
//! as mapping the rings before `Connected`), and [`switch_state`] writes it if the move is one
//! the protocol allows. The normal run is Initialising → InitWait (backend) → Initialised
//! (frontend) → Connected (both) → Closing → Closed, and a frontend that wants the device back
//! restarts from Closed → Initialising.
//!
//! [`frontend`] holds what a frontend (or any end waiting on its peer) needs besides: reading
//! the peer's state as a frontend sees it and waiting for it to reach a given state. The
//! backend's counterpart, which runs [`backend_next`] for every device of a driver domain, is
//! the `xenbus-backend` crate (it needs the hypervisor's grant map, so it lives beside the
//! driver domains).

pub mod frontend;

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

pub use shared_ring::wire::xenbus_state::XenbusState;

use crate::client::{ClientError, StoreClient};
use crate::errno::Errno;

/// Why a state operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XenbusError {
    /// The store refused or failed.
    Store(ClientError),
    /// The `state` node does not hold a XenbusState.
    NotAState,
    /// The protocol does not allow this move.
    IllegalTransition {
        /// Current state.
        from: XenbusState,
        /// Requested state.
        to: XenbusState,
    },
    /// The `state` node is gone: the toolstack removed the device.
    Gone,
}

impl fmt::Display for XenbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            XenbusError::Store(e) => write!(f, "{e}"),
            XenbusError::NotAState => write!(f, "state node does not hold a XenbusState"),
            XenbusError::IllegalTransition { from, to } => write!(f, "cannot switch from {from:?} to {to:?}"),
            XenbusError::Gone => write!(f, "the device's state node is gone (removed by the toolstack)"),
        }
    }
}

impl core::error::Error for XenbusError {}

impl From<ClientError> for XenbusError {
    fn from(e: ClientError) -> Self {
        XenbusError::Store(e)
    }
}

/// `<dir>/state`.
/// The first virtual-device number of Xen's `xvd` disks: major 202, 16 minors per disk (xvda is
/// 51712, xvdb 51728, ...).
pub const XVD_FIRST: u32 = 202 << 8;
/// Minors per `xvd` disk (partitions).
pub const XVD_MINORS: u32 = 16;

/// Xen's id of the `index`th device of class `kind` (its directory name under `device/<kind>/`
/// and `backend/<kind>/<frontend>/`): a vbd is named by its virtual-device number, as Xen's
/// toolstack names it and Linux's blkfront expects (`xvda` = 51712); other classes by index.
pub fn device_id(kind: &str, index: u32) -> u32 {
    match kind {
        "vbd" => XVD_FIRST + XVD_MINORS * index.min((u32::MAX - XVD_FIRST) / XVD_MINORS),
        _ => index,
    }
}

pub fn state_path(dir: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(dir.len() + 6);
    path.extend_from_slice(dir);
    path.extend_from_slice(b"/state");
    path
}

/// The state an end publishes under `dir`; a missing node reads as `Unknown` (as Linux's
/// `xenbus_read_driver_state`).
pub fn read_state(client: &mut impl StoreClient, dir: &[u8]) -> Result<XenbusState, XenbusError> {
    match client.read(&state_path(dir)) {
        Ok(text) => XenbusState::parse(&text).map_err(|_| XenbusError::NotAState),
        Err(ClientError::Store(Errno::Enoent)) => Ok(XenbusState::Unknown),
        Err(e) => Err(e.into()),
    }
}

/// Why [`read_u32`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// The store refused or failed (a missing node is `Store(Errno::Enoent)`).
    Store(ClientError),
    /// The node holds something other than a decimal `u32` (a peer's garbage).
    NotANumber {
        /// The node.
        path: String,
        /// Its value (lossy UTF-8, at most [`SHOWN_VALUE`] characters of it).
        value: String,
    },
    /// The node holds a number that names no domain (at or above `DOMID_FIRST_RESERVED`).
    NotADomain {
        /// The node.
        path: String,
        /// The number.
        value: u32,
    },
}

/// Characters of a bad value kept in [`ReadError::NotANumber`].
pub const SHOWN_VALUE: usize = 32;

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Store(e) => write!(f, "{e}"),
            ReadError::NotANumber { path, value } => write!(f, "{path} is not a number: {value:?}"),
            ReadError::NotADomain { path, value } => write!(f, "{path} names no domain: {value}"),
        }
    }
}

impl core::error::Error for ReadError {}

impl From<ClientError> for ReadError {
    fn from(e: ClientError) -> Self {
        ReadError::Store(e)
    }
}

/// Reads `path` as a decimal `u32` (surrounding whitespace allowed, as the peers write it with
/// or without a newline). Anything else is [`ReadError::NotANumber`], never mistaken for a
/// store failure.
pub fn read_u32(client: &mut impl StoreClient, path: &str) -> Result<u32, ReadError> {
    let raw = client.read(path.as_bytes())?;
    parse_u32(path, &raw)
}

/// The value `raw` read from `path` as [`read_u32`] takes it (for values read in a batch).
pub fn parse_u32(path: &str, raw: &[u8]) -> Result<u32, ReadError> {
    let text = String::from_utf8_lossy(raw);
    text.trim().parse().map_err(|_| ReadError::NotANumber {
        path: String::from(path),
        value: text.chars().take(SHOWN_VALUE).collect(),
    })
}

/// Reads `path` as a domain id (as [`read_u32`], then below `DOMID_FIRST_RESERVED`): a peer's
/// `backend-id` or `frontend-id`.
pub fn read_domid(client: &mut impl StoreClient, path: &str) -> Result<crate::DomId, ReadError> {
    let raw = client.read(path.as_bytes())?;
    parse_domid(path, &raw)
}

/// The value `raw` read from `path` as [`read_domid`] takes it (for values read in a batch).
pub fn parse_domid(path: &str, raw: &[u8]) -> Result<crate::DomId, ReadError> {
    let value = parse_u32(path, raw)?;
    match crate::DomId::try_from(value) {
        Ok(id) if id < crate::DOMID_FIRST_RESERVED => Ok(id),
        _ => Err(ReadError::NotADomain { path: String::from(path), value }),
    }
}

/// Whether the toolstack removed the device directory `dir` (its domain was destroyed). Only a
/// definite "no such node" counts; any other store error keeps the device.
pub fn device_removed(client: &mut impl StoreClient, dir: &[u8]) -> bool {
    matches!(client.directory(dir), Err(ClientError::Store(Errno::Enoent)))
}

/// Whether the protocol allows moving from `from` to `to` (staying put is always allowed).
pub fn transition_allowed(from: XenbusState, to: XenbusState) -> bool {
    use XenbusState::*;
    if from == to {
        return true;
    }
    match to {
        Unknown => false,
        Initialising => matches!(from, Unknown | Closed),
        InitWait => matches!(from, Unknown | Initialising | Closed),
        Initialised => matches!(from, Initialising | InitWait),
        Connected => matches!(from, Initialising | InitWait | Initialised | Reconfigured),
        Closing => !matches!(from, Unknown | Closed),
        Closed => true,
        Reconfiguring => from == Connected,
        Reconfigured => from == Reconfiguring,
    }
}

/// Write `to` as this end's state if the move from its current state is allowed; returns the
/// previous state. Writing the same state again is a no-op (no write, no watch event).
///
/// The read and the write are one transaction (three round trips: start, read and write
/// together, end; the end aborts unless the read allowed the write), and a missing `state` node is
/// [`XenbusError::Gone`]: the toolstack removed the device (its domain was destroyed), and
/// writing the state would bring a stray node back into the removed directory (as Linux's
/// `xenbus_switch_state`, which checks the node inside its transaction). A transaction that
/// collided with another writer is retried a bounded number of times.
pub fn switch_state(client: &mut impl StoreClient, dir: &[u8], to: XenbusState) -> Result<XenbusState, XenbusError> {
    switch_state_after(client, &[], dir, to).1
}

/// One request's reply in a [`StoreClient::batch`].
pub type Reply = Result<Vec<u8>, ClientError>;

/// [`switch_state`], with `before` sent (outside the transaction, in order) in the same round
/// trip as the transaction's start: a peer's keys published, or the ones an end reads, cost no
/// round trip of their own. Returns their replies and the switch's result. (`before`'s writes
/// happen whatever the switch does, as they would one request after the other.)
pub fn switch_state_after(
    client: &mut impl StoreClient,
    before: &[crate::request::Request<'_>],
    dir: &[u8],
    to: XenbusState,
) -> (Vec<Reply>, Result<XenbusState, XenbusError>) {
    let mut requests = before.to_vec();
    requests.push(crate::request::Request::TransactionStart);
    let mut replies = client.batch(&requests, 0);
    let start = replies.pop().unwrap_or(Err(ClientError::NoReply)).and_then(crate::client::transaction_id);
    (replies, switch_state_in(client, dir, to, start))
}

/// [`switch_state`] in a transaction the caller started (`started`: its `TRANSACTION_START`
/// reply, sent in a batch with the caller's other requests); the transaction is ended here
/// whatever happens (a collision retries with a transaction of its own).
pub fn switch_state_in(
    client: &mut impl StoreClient,
    dir: &[u8],
    to: XenbusState,
    started: Result<u32, ClientError>,
) -> Result<XenbusState, XenbusError> {
    use crate::request::Request;
    let path = state_path(dir);
    let mut collisions = 0;
    let mut first = Some(started);
    loop {
        let tx = match first.take() {
            Some(started) => started?,
            None => client.transaction_start()?,
        };
        // The read and the write go together (one round trip, [`StoreClient::batch`]); the
        // write stays inside the transaction, which commits only if the read allows it.
        let mut replies = client
            .batch(&[Request::Read { path: &path }, Request::Write { path: &path, value: to.as_text() }], tx)
            .into_iter();
        let (read, write) = (replies.next(), replies.next());
        let attempt = (|| {
            let from = match read.unwrap_or(Err(ClientError::UnexpectedReply)) {
                Ok(text) => XenbusState::parse(&text).map_err(|_| XenbusError::NotAState)?,
                Err(ClientError::Store(Errno::Enoent)) => return Err(XenbusError::Gone),
                Err(e) => return Err(e.into()),
            };
            if from == to {
                return Ok((from, false));
            }
            if !transition_allowed(from, to) {
                return Err(XenbusError::IllegalTransition { from, to });
            }
            write.unwrap_or(Err(ClientError::UnexpectedReply))?;
            Ok((from, true))
        })();
        match attempt {
            Ok((from, wrote)) => match client.transaction_end(tx, wrote) {
                Ok(()) => return Ok(from),
                Err(ClientError::Store(Errno::Eagain)) if collisions < MAX_COLLISIONS => collisions += 1,
                Err(e) => return Err(e.into()),
            },
            Err(e) => {
                let _ = client.transaction_end(tx, false);
                return Err(e);
            }
        }
    }
}

/// Retries of a state switch whose transaction collided with another writer.
const MAX_COLLISIONS: u32 = 16;

/// What a backend in `own` should switch to, seeing its frontend in `frontend`, as Linux's
/// blkback and netback (`frontend_changed`) do. `None`: stay.
///
/// The caller does the device work the result promises: connect the rings before `Connected`,
/// tear them down before `Closing`, `Closed` or `InitWait`. A frontend that goes Closing is
/// answered with Closing (the backend waits for the frontend's Closed before it closes, so the
/// frontend knows the backend let go of its rings once it sees Closing); Closed or a vanished
/// frontend closes the backend. A frontend seen Initialising while the backend is still Closing
/// went Closed and restarted between two looks (coalesced watches): the backend closes first,
/// and the next call says InitWait. Call again after each switch until it says `None` (at most
/// two moves follow from one frontend state).
pub fn backend_next(own: XenbusState, frontend: XenbusState) -> Option<XenbusState> {
    use XenbusState::*;
    let next = match frontend {
        // A (re)starting frontend: be ready for it.
        Initialising if matches!(own, Unknown | Initialising | Closed) => InitWait,
        // It closed and restarted while we were Closing: close first.
        Initialising if own == Closing => Closed,
        // Rings published (or the frontend skipped straight to Connected): connect.
        Initialised | Connected if matches!(own, Initialising | InitWait | Initialised) => Connected,
        Closing if !matches!(own, Unknown | Closing | Closed) => Closing,
        // Frontend closed or vanished.
        Closed | Unknown if own != Closed => Closed,
        _ => return None,
    };
    (next != own).then_some(next)
}

/// What a frontend in `own` should switch to, seeing its backend in `backend`.
/// `want_connected`: whether it wants the device (a closed frontend that does reconnects).
pub fn frontend_next(own: XenbusState, backend: XenbusState, want_connected: bool) -> Option<XenbusState> {
    use XenbusState::*;
    let next = match backend {
        // The backend is ready for our rings: publish them, then say so.
        InitWait if own == Initialising => Initialised,
        Connected if matches!(own, Initialising | Initialised) => Connected,
        Closing | Unknown if own != Closed => Closed,
        Closed if own != Closed => Closed,
        Closed if want_connected => Initialising,
        _ => return None,
    };
    (next != own).then_some(next)
}

#[cfg(test)]
mod tests {
    #[test]
    fn vbds_are_named_by_virtual_device_number() {
        assert_eq!(super::device_id("vbd", 0), 51712, "xvda");
        assert_eq!(super::device_id("vbd", 1), 51728, "xvdb");
        assert_eq!(super::device_id("vif", 3), 3);
        assert!(super::device_id("vbd", u32::MAX) >= 51712, "no overflow");
    }

    use super::*;
    use XenbusState::*;

    /// Runs `backend_next` until it settles, as the backend skeleton does.
    fn settle(mut own: XenbusState, frontend: XenbusState) -> XenbusState {
        for _ in 0..4 {
            match backend_next(own, frontend) {
                Some(next) => {
                    assert!(transition_allowed(own, next), "{own:?} -> {next:?}");
                    own = next;
                }
                None => return own,
            }
        }
        panic!("no rest from {own:?} seeing {frontend:?}");
    }

    /// Linux's xen-blkback and xen-netback (`frontend_changed`): a frontend's Closing is
    /// answered with Closing, its Closed (or its vanishing) with Closed.
    #[test]
    fn the_backend_answers_closing_with_closing_and_closes_on_closed() {
        for own in [InitWait, Initialised, Connected] {
            assert_eq!(backend_next(own, Closing), Some(Closing), "{own:?}");
            assert_eq!(backend_next(own, Closed), Some(Closed), "{own:?}");
            assert_eq!(backend_next(own, Unknown), Some(Closed), "{own:?}");
        }
        assert_eq!(backend_next(Closing, Closing), None);
        assert_eq!(backend_next(Closing, Closed), Some(Closed));
        assert_eq!(backend_next(Closed, Closing), None);
    }

    #[test]
    fn every_frontend_state_settles_the_backend_in_a_few_legal_moves() {
        let all =
            [Unknown, Initialising, InitWait, Initialised, Connected, Closing, Closed, Reconfiguring, Reconfigured];
        for own in all {
            for fe in all {
                settle(own, fe);
            }
        }
        // A restart seen while still Closing (the frontend's Closed was missed): Closed, then
        // InitWait.
        assert_eq!(backend_next(Closing, Initialising), Some(Closed));
        assert_eq!(settle(Closing, Initialising), InitWait);
        assert_eq!(settle(Closed, Initialising), InitWait);
        assert_eq!(settle(InitWait, Connected), Connected);
    }
}
