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
/// The read and the write are one transaction, and a missing `state` node is
/// [`XenbusError::Gone`]: the toolstack removed the device (its domain was destroyed), and
/// writing the state would bring a stray node back into the removed directory (as Linux's
/// `xenbus_switch_state`, which checks the node inside its transaction). A transaction that
/// collided with another writer is retried a bounded number of times.
pub fn switch_state(client: &mut impl StoreClient, dir: &[u8], to: XenbusState) -> Result<XenbusState, XenbusError> {
    use crate::request::Request;
    let path = state_path(dir);
    let mut collisions = 0;
    loop {
        let tx = client.transaction_start()?;
        let attempt = (|| {
            let from = match client.request(Request::Read { path: &path }, tx) {
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
            client.request(Request::Write { path: &path, value: to.as_text() }, tx)?;
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

/// What a backend in `own` should switch to, seeing its frontend in `frontend` (Linux
/// blkback/netback `frontend_changed`). `None`: stay.
pub fn backend_next(own: XenbusState, frontend: XenbusState) -> Option<XenbusState> {
    use XenbusState::*;
    let next = match frontend {
        // A (re)starting frontend: be ready for it.
        Initialising if matches!(own, Unknown | Initialising | Closed) => InitWait,
        // Rings published (or the frontend skipped straight to Connected): connect.
        Initialised | Connected if matches!(own, Initialising | InitWait | Initialised) => Connected,
        Closing if !matches!(own, Closing | Closed) => Closing,
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
