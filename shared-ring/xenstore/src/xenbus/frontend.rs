//! The frontend's side of the handshake: its backend's state as it matters to a frontend, and
//! "wait until the backend reaches one of these states" (also used by any domain that waits on
//! a peer's `state`, such as the demo and test domains). The backend's side is the
//! `xenbus-backend` crate.
//!
//! Generic over [`StoreClient`] and a wait function, so the runtime supplies the blocking (the
//! store's event channel, a deadline) and the host tests supply a peer that moves.

use core::fmt;

use super::{XenbusState, read_state, state_path};
use crate::client::{ClientError, StoreClient};
use crate::errno::Errno;
use crate::request::Request;

/// The peer's state as a waiting end sees it: a missing node (the peer's domain was destroyed,
/// or the toolstack removed the device) and a node that holds no state (garbage) read as
/// `Closed`, so a frontend tears down rather than waits on it.
pub fn peer_state(client: &mut impl StoreClient, dir: &[u8]) -> XenbusState {
    match read_state(client, dir) {
        Ok(XenbusState::Unknown) | Err(_) => XenbusState::Closed,
        Ok(s) => s,
    }
}

/// [`peer_state`] of a `state` node's value as read.
fn state_of(read: Result<alloc::vec::Vec<u8>, ClientError>) -> XenbusState {
    match read.map(|text| XenbusState::parse(&text)) {
        Ok(Ok(XenbusState::Unknown)) | Ok(Err(_)) | Err(_) => XenbusState::Closed,
        Ok(Ok(s)) => s,
    }
}

/// Why [`wait_for_state`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitError {
    /// The watch on the peer's `state` could not be set.
    Watch(ClientError),
    /// The store connection failed while waiting.
    Store(ClientError),
    /// The wait function said time is up; the peer's last state.
    TimedOut(XenbusState),
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::Watch(e) => write!(f, "cannot watch the peer's state: {e}"),
            WaitError::Store(e) => write!(f, "store connection failed: {e}"),
            WaitError::TimedOut(s) => write!(f, "timed out waiting for the peer (state {s:?})"),
        }
    }
}

impl core::error::Error for WaitError {}

/// Watches `<dir>/state` (with `token`; a watch already set with it is fine) and returns the
/// peer's state ([`peer_state`]) as soon as `done(state)`.
///
/// Between looks it calls `wait(client)`, which blocks until something may have changed (a
/// watch event, or a short re-check interval) and returns `Ok(false)` once the caller's
/// deadline passed. Each look is a fresh read, so coalesced watch events and skipped states do
/// not matter; the loop ends when `done` holds, `wait` says time is up, or the store fails.
pub fn wait_for_state<C: StoreClient>(
    client: &mut C,
    dir: &[u8],
    token: &[u8],
    done: impl Fn(XenbusState) -> bool,
    mut wait: impl FnMut(&mut C) -> Result<bool, ClientError>,
) -> Result<XenbusState, WaitError> {
    // The watch and the first look in one round trip (the read comes after the watch, so a
    // change after the read fires the watch).
    let path = state_path(dir);
    let mut replies =
        client.batch(&[Request::Watch { path: &path, token }, Request::Read { path: &path }], 0).into_iter();
    match replies.next().unwrap_or(Err(ClientError::NoReply)) {
        // Already watching it (an earlier wait): the watch keeps firing.
        Ok(_) | Err(ClientError::Store(Errno::Eexist)) => {}
        Err(e) => return Err(WaitError::Watch(e)),
    }
    let mut first = Some(replies.next().unwrap_or(Err(ClientError::NoReply)));
    loop {
        let s = match first.take() {
            Some(read) => state_of(read),
            None => peer_state(client, dir),
        };
        if done(s) {
            return Ok(s);
        }
        if !wait(client).map_err(WaitError::Store)? {
            return Err(WaitError::TimedOut(s));
        }
    }
}
