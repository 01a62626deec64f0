//! The client side: what a frontend or backend domain runs to talk to the store.
//!
//! [`ClientPort`] is the domain's end of its store page: it queues encoded requests (each with
//! a fresh `req_id`), writes them as the ring has room, and decodes replies and watch events
//! from the bytes the server writes, without trusting them (lengths checked, unsolicited
//! replies dropped, queues bounded). [`StoreClient`] is the blocking request/reply interface the
//! [`crate::xenbus`] helpers use; [`BlockingClient`] implements it over a port plus a "wait for
//! the server" callback supplied by the runtime; Dom0's server crate (`xenstored`) implements it
//! in-process as `LocalClient` (Dom0's own use, tests).

use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;

use shared_ring::SharedMemory;
use shared_ring::wire::xenstore::{HEADER_SIZE, PAYLOAD_MAX, StoreRing, StoreSide, XenstoreError, XsType, XsdSockmsg};

use crate::MAX_MESSAGE;
use crate::errno::Errno;
use crate::perms::Permissions;
use crate::request::Request;

/// Requests a port keeps in flight at most.
pub const MAX_OUTSTANDING: usize = 16;
/// Watch events a port buffers before it starts dropping them (and says so).
pub const MAX_BUFFERED_EVENTS: usize = 256;

/// Why a client request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientError {
    /// The store answered with this error.
    Store(Errno),
    /// The store answered `XS_ERROR` with a name the protocol does not define.
    UnknownErrno,
    /// The request would exceed `XENSTORE_PAYLOAD_MAX`.
    RequestTooLong,
    /// [`MAX_OUTSTANDING`] requests are already waiting for replies.
    TooManyOutstanding,
    /// The server broke the protocol (bad header, bad ring index); the port is dead.
    BrokenServer(XenstoreError),
    /// A reply of the wrong type or shape.
    UnexpectedReply,
    /// The wait callback gave up before the reply came.
    NoReply,
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Store(errno) => write!(f, "store error {errno}"),
            ClientError::UnknownErrno => write!(f, "store error with an unknown name"),
            ClientError::RequestTooLong => write!(f, "request exceeds {PAYLOAD_MAX} payload bytes"),
            ClientError::TooManyOutstanding => write!(f, "{MAX_OUTSTANDING} requests already outstanding"),
            ClientError::BrokenServer(e) => write!(f, "store server broke the protocol: {e}"),
            ClientError::UnexpectedReply => write!(f, "unexpected reply"),
            ClientError::NoReply => write!(f, "gave up waiting for the store"),
        }
    }
}

impl core::error::Error for ClientError {}

/// A watch event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// The changed path (relative if the watch was).
    pub path: Vec<u8>,
    /// The watch's token.
    pub token: Vec<u8>,
}

/// A decoded message from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A reply to request `req_id`: the payload, or the error.
    Reply {
        /// The request it answers.
        req_id: u32,
        /// The reply payload or the store's error.
        result: Result<Vec<u8>, ClientError>,
    },
    /// A watch fired.
    Event(WatchEvent),
}

impl Message {
    /// Decode one complete message (header + payload).
    pub fn decode(header: XsdSockmsg, payload: &[u8]) -> Result<Self, XenstoreError> {
        match header.kind()? {
            XsType::WatchEvent => {
                let body = payload.strip_suffix(b"\0").unwrap_or(payload);
                let mut fields = body.splitn(2, |&b| b == 0);
                let path = fields.next().unwrap_or_default().to_vec();
                let token = fields.next().ok_or(XenstoreError::UnterminatedPath)?.to_vec();
                Ok(Message::Event(WatchEvent { path, token }))
            }
            XsType::Error => {
                let result = Err(Errno::from_name(payload).map_or(ClientError::UnknownErrno, ClientError::Store));
                Ok(Message::Reply { req_id: header.req_id, result })
            }
            _ => Ok(Message::Reply { req_id: header.req_id, result: Ok(payload.to_vec()) }),
        }
    }
}

/// A domain's end of its store page.
pub struct ClientPort<M: SharedMemory> {
    ring: StoreRing<M>,
    outgoing: VecDeque<u8>,
    input: Vec<u8>,
    next_req_id: u32,
    outstanding: Vec<u32>,
    replies: Vec<(u32, Result<Vec<u8>, ClientError>)>,
    events: VecDeque<WatchEvent>,
    events_lost: bool,
    broken: Option<XenstoreError>,
}

impl<M: SharedMemory> ClientPort<M> {
    /// Attach to the domain's store page. `None` if the area is too small.
    pub fn attach(memory: M) -> Option<Self> {
        Some(Self {
            ring: StoreRing::attach(memory, StoreSide::Guest)?,
            outgoing: VecDeque::new(),
            input: Vec::new(),
            next_req_id: 1,
            outstanding: Vec::new(),
            replies: Vec::new(),
            events: VecDeque::new(),
            events_lost: false,
            broken: None,
        })
    }

    /// Queue a request; returns its `req_id`. Call [`Self::pump`] to send it.
    pub fn send(&mut self, request: &Request<'_>, tx_id: u32) -> Result<u32, ClientError> {
        if let Some(e) = self.broken {
            return Err(ClientError::BrokenServer(e));
        }
        if self.outstanding.len() >= MAX_OUTSTANDING {
            return Err(ClientError::TooManyOutstanding);
        }
        let req_id = self.next_req_id;
        let bytes = request.encode(req_id, tx_id).ok_or(ClientError::RequestTooLong)?;
        self.next_req_id = self.next_req_id.wrapping_add(1);
        self.outgoing.extend(bytes);
        self.outstanding.push(req_id);
        Ok(req_id)
    }

    /// Write queued requests and decode whatever the server wrote. Returns whether anything
    /// moved (then notify the server).
    pub fn pump(&mut self) -> Result<bool, ClientError> {
        if let Some(e) = self.broken {
            return Err(ClientError::BrokenServer(e));
        }
        let mut moved = false;
        let (first, second) = self.outgoing.as_slices();
        let mut result = self.ring.write(first);
        if let Ok(written) = result
            && written == first.len()
            && !second.is_empty()
        {
            result = self.ring.write(second).map(|more| written + more);
        }
        let written = result.map_err(|e| self.fail(e))?;
        self.outgoing.drain(..written);
        moved |= written > 0;
        // Read at most one message's worth at a time, exactly up to its end.
        loop {
            let want = match self.input.first_chunk::<HEADER_SIZE>() {
                None => HEADER_SIZE - self.input.len(),
                Some(head) => {
                    let header = XsdSockmsg::decode(head).map_err(|e| self.fail(e))?;
                    HEADER_SIZE + header.len as usize - self.input.len()
                }
            };
            if want == 0 {
                self.deliver()?;
                continue;
            }
            let mut buf = [0u8; MAX_MESSAGE];
            let read = self.ring.read(&mut buf[..want]).map_err(|e| self.fail(e))?;
            if read == 0 {
                return Ok(moved);
            }
            moved = true;
            self.input.extend_from_slice(&buf[..read]);
        }
    }

    fn fail(&mut self, error: XenstoreError) -> ClientError {
        self.broken = Some(error);
        ClientError::BrokenServer(error)
    }

    fn deliver(&mut self) -> Result<(), ClientError> {
        let Some(head) = self.input.first_chunk::<HEADER_SIZE>() else { return Ok(()) };
        let header = XsdSockmsg::from_raw(head);
        let message = Message::decode(header, &self.input[HEADER_SIZE..]).map_err(|e| self.fail(e))?;
        self.input.clear();
        match message {
            Message::Reply { req_id, result } => {
                // Only replies to requests in flight; anything else is dropped.
                if let Some(at) = self.outstanding.iter().position(|&id| id == req_id) {
                    self.outstanding.swap_remove(at);
                    self.replies.push((req_id, result));
                }
            }
            Message::Event(event) => {
                if self.events.len() < MAX_BUFFERED_EVENTS {
                    self.events.push_back(event);
                } else {
                    self.events_lost = true;
                }
            }
        }
        Ok(())
    }

    /// The reply to `req_id`, once it has arrived.
    pub fn take_reply(&mut self, req_id: u32) -> Option<Result<Vec<u8>, ClientError>> {
        let at = self.replies.iter().position(|(id, _)| *id == req_id)?;
        Some(self.replies.swap_remove(at).1)
    }

    /// The oldest undelivered watch event.
    pub fn take_event(&mut self) -> Option<WatchEvent> {
        self.events.pop_front()
    }

    /// Whether events were dropped because too many were waiting (clears the flag): re-read
    /// everything watched.
    pub fn take_events_lost(&mut self) -> bool {
        core::mem::take(&mut self.events_lost)
    }
}

/// Blocking store access, as the xenbus helpers need it.
pub trait StoreClient {
    /// Send `request` (inside `tx_id` unless 0) and wait for the reply payload.
    fn request(&mut self, request: Request<'_>, tx_id: u32) -> Result<Vec<u8>, ClientError>;

    /// Sends `requests` (each inside `tx_id` unless 0) and returns their replies in order.
    ///
    /// The default makes one request after the other; a client over a ring
    /// ([`BlockingClient`]) sends up to [`MAX_OUTSTANDING`] of them before it waits, so a batch
    /// costs one round trip to the server instead of one per request. The server handles a
    /// domain's requests in the order they were sent (`xs_wire.h`: each has its own `req_id`;
    /// Linux's xenbus driver keeps several in flight too), so a batch of writes lands in order,
    /// and a watch on the last one fires after the others are in the store. Each request gets
    /// its own reply: one that fails does not stop the others.
    fn batch(&mut self, requests: &[Request<'_>], tx_id: u32) -> Vec<Result<Vec<u8>, ClientError>> {
        requests.iter().map(|r| self.request(r.clone(), tx_id)).collect()
    }

    /// `READ` of every path in one [`StoreClient::batch`].
    fn read_many(&mut self, paths: &[&[u8]]) -> Vec<Result<Vec<u8>, ClientError>> {
        let requests: Vec<Request<'_>> = paths.iter().map(|&path| Request::Read { path }).collect();
        self.batch(&requests, 0)
    }

    /// `WRITE` of every (path, value) in one [`StoreClient::batch`], in order; the first
    /// failure, if any (the writes after it were still made).
    fn write_many(&mut self, nodes: &[(&[u8], &[u8])]) -> Result<(), ClientError> {
        let requests: Vec<Request<'_>> = nodes.iter().map(|&(path, value)| Request::Write { path, value }).collect();
        self.batch(&requests, 0).into_iter().find_map(Result::err).map_or(Ok(()), Err)
    }

    /// `READ`.
    fn read(&mut self, path: &[u8]) -> Result<Vec<u8>, ClientError> {
        self.request(Request::Read { path }, 0)
    }
    /// `WRITE`.
    fn write(&mut self, path: &[u8], value: &[u8]) -> Result<(), ClientError> {
        self.request(Request::Write { path, value }, 0).map(drop)
    }
    /// `MKDIR`.
    fn mkdir(&mut self, path: &[u8]) -> Result<(), ClientError> {
        self.request(Request::Mkdir { path }, 0).map(drop)
    }
    /// `RM`.
    fn rm(&mut self, path: &[u8]) -> Result<(), ClientError> {
        self.request(Request::Rm { path }, 0).map(drop)
    }
    /// `DIRECTORY`: the child names.
    fn directory(&mut self, path: &[u8]) -> Result<Vec<Vec<u8>>, ClientError> {
        let reply = self.request(Request::Directory { path }, 0)?;
        let body = reply.strip_suffix(b"\0").unwrap_or(&reply);
        Ok(if body.is_empty() { Vec::new() } else { body.split(|&b| b == 0).map(<[u8]>::to_vec).collect() })
    }
    /// `SET_PERMS`.
    fn set_perms(&mut self, path: &[u8], perms: Permissions) -> Result<(), ClientError> {
        self.request(Request::SetPerms { path, perms }, 0).map(drop)
    }
    /// `WATCH`.
    fn watch(&mut self, path: &[u8], token: &[u8]) -> Result<(), ClientError> {
        self.request(Request::Watch { path, token }, 0).map(drop)
    }
    /// `UNWATCH`.
    fn unwatch(&mut self, path: &[u8], token: &[u8]) -> Result<(), ClientError> {
        self.request(Request::Unwatch { path, token }, 0).map(drop)
    }
    /// `TRANSACTION_START`: the transaction id.
    fn transaction_start(&mut self) -> Result<u32, ClientError> {
        transaction_id(self.request(Request::TransactionStart, 0)?)
    }
    /// `TRANSACTION_END`.
    fn transaction_end(&mut self, tx_id: u32, commit: bool) -> Result<(), ClientError> {
        self.request(Request::TransactionEnd { commit }, tx_id).map(drop)
    }
}

/// The transaction id in a `TRANSACTION_START` reply (a decimal, not 0).
pub fn transaction_id(reply: Vec<u8>) -> Result<u32, ClientError> {
    let digits = reply.strip_suffix(b"\0").unwrap_or(&reply);
    crate::path::parse_decimal(digits, u64::from(u32::MAX))
        .filter(|&id| id != 0)
        .map(|id| id as u32)
        .ok_or(ClientError::UnexpectedReply)
}

/// [`StoreClient`] over a [`ClientPort`]; `wait` is called whenever the reply has not arrived
/// yet: it should notify the server and block until the store's event channel fires, and
/// return `false` to give up.
pub struct BlockingClient<M: SharedMemory, W: FnMut() -> bool> {
    /// The port (watch events can be taken from it between requests).
    pub port: ClientPort<M>,
    wait: W,
}

impl<M: SharedMemory, W: FnMut() -> bool> BlockingClient<M, W> {
    /// Wrap a port.
    pub fn new(port: ClientPort<M>, wait: W) -> Self {
        Self { port, wait }
    }
}

impl<M: SharedMemory, W: FnMut() -> bool> StoreClient for BlockingClient<M, W> {
    fn request(&mut self, request: Request<'_>, tx_id: u32) -> Result<Vec<u8>, ClientError> {
        let req_id = self.port.send(&request, tx_id)?;
        loop {
            self.port.pump()?;
            if let Some(reply) = self.port.take_reply(req_id) {
                return reply;
            }
            if !(self.wait)() {
                return Err(ClientError::NoReply);
            }
        }
    }

    fn batch(&mut self, requests: &[Request<'_>], tx_id: u32) -> Vec<Result<Vec<u8>, ClientError>> {
        let mut results = Vec::with_capacity(requests.len());
        // At most MAX_OUTSTANDING in flight (fewer if other requests are): a window at a time.
        for window in requests.chunks(MAX_OUTSTANDING) {
            let ids: Vec<Result<u32, ClientError>> = window.iter().map(|r| self.port.send(r, tx_id)).collect();
            let mut replies: Vec<Option<Result<Vec<u8>, ClientError>>> =
                ids.iter().map(|id| id.as_ref().err().map(|e| Err(*e))).collect();
            loop {
                if let Err(e) = self.port.pump() {
                    for r in replies.iter_mut().filter(|r| r.is_none()) {
                        *r = Some(Err(e));
                    }
                    break;
                }
                for (slot, id) in replies.iter_mut().zip(&ids) {
                    if slot.is_none()
                        && let Ok(id) = id
                    {
                        *slot = self.port.take_reply(*id);
                    }
                }
                if replies.iter().all(Option::is_some) {
                    break;
                }
                if !(self.wait)() {
                    for r in replies.iter_mut().filter(|r| r.is_none()) {
                        *r = Some(Err(ClientError::NoReply));
                    }
                    break;
                }
            }
            results.extend(replies.into_iter().map(|r| r.unwrap_or(Err(ClientError::NoReply))));
        }
        results
    }
}
