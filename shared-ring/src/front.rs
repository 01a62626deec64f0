//! [`FrontRing`]: the front end's half (produces requests, consumes responses).

use core::marker::PhantomData;

use crate::entry::{EntryBytes, RingEntry, RingProtocol};
use crate::error::{LayoutError, PeerError, PushError, SharedIndex};
use crate::id_set::IdSet;
use crate::layout::{REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD, RingLayout, init_header};
use crate::notify::Notify;
use crate::shared_memory::SharedMemory;

/// The front end of a ring (blkfront, netfront, ...).
///
/// Requests are written with [`push_request`](Self::push_request) and become visible to the back
/// end only at [`publish_requests`](Self::publish_requests), which says whether the back end
/// asked for a notification: push many, publish (and notify) once.
pub struct FrontRing<P: RingProtocol, M: SharedMemory> {
    memory: M,
    layout: RingLayout,
    /// Next request index to fill (`req_prod_pvt`).
    req_prod_pvt: u32,
    /// Last value stored to the shared `req_prod` (the "old" of the notify rule).
    req_prod_published: u32,
    /// Next response index to consume.
    rsp_cons: u32,
    /// Last validated value of the shared `rsp_prod`.
    rsp_prod_seen: u32,
    /// Value this side last stored to `rsp_event` (and fenced), to skip identical re-arms.
    rsp_event_armed: Option<u32>,
    outstanding: IdSet,
    broken: Option<PeerError>,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: RingProtocol, M: SharedMemory> FrontRing<P, M> {
    /// Initialise the shared header (`SHARED_RING_INIT`) and attach at index 0. Only the front
    /// end initialises a ring.
    #[inline]
    pub fn init(memory: M) -> Result<Self, LayoutError> {
        let layout = RingLayout::for_memory(&memory, P::SLOT_SIZE)?;
        init_header(&memory, 0);
        Ok(Self::with_indices(memory, layout, 0))
    }

    /// Attach to an already initialised ring whose indices all stand at `start`, with nothing
    /// outstanding (`FRONT_RING_ATTACH`, for reconnecting).
    #[inline]
    pub fn attach(memory: M, start: u32) -> Result<Self, LayoutError> {
        let layout = RingLayout::for_memory(&memory, P::SLOT_SIZE)?;
        Ok(Self::with_indices(memory, layout, start))
    }

    #[inline]
    fn with_indices(memory: M, layout: RingLayout, start: u32) -> Self {
        Self {
            memory,
            layout,
            req_prod_pvt: start,
            req_prod_published: start,
            rsp_cons: start,
            rsp_prod_seen: start,
            rsp_event_armed: None,
            outstanding: IdSet::new(),
            broken: None,
            _protocol: PhantomData,
        }
    }

    /// The ring geometry.
    #[inline]
    pub fn layout(&self) -> RingLayout {
        self.layout
    }

    /// The shared memory.
    #[inline]
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// Slots free for new requests (`RING_FREE_REQUESTS`).
    #[inline]
    pub fn free_requests(&self) -> u32 {
        self.layout.slots() - self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Requests pushed whose responses have not been consumed yet.
    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.rsp_cons)
    }

    /// Requests pushed but not yet published.
    #[inline]
    pub fn unpublished(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.req_prod_published)
    }

    /// The error the back end caused, if any.
    #[inline]
    pub fn broken(&self) -> Option<PeerError> {
        self.broken
    }

    /// Write `request` into the next free slot. It is not visible to the back end until
    /// [`publish_requests`](Self::publish_requests).
    #[inline]
    pub fn push_request(&mut self, request: P::Request) -> Result<(), PushError> {
        if self.free_requests() == 0 {
            return Err(PushError::RingFull);
        }
        if let Some(id) = request.tracking_id() {
            let slots = self.layout.slots();
            if id >= u64::from(slots) {
                return Err(PushError::IdOutOfRange { id, slots });
            }
            if !self.outstanding.insert(id as u32) {
                return Err(PushError::IdInUse { id });
            }
        }
        let bytes = request.to_bytes();
        let len = request.encoded_len().min(bytes.as_ref().len());
        self.memory.write(self.layout.slot_offset(self.req_prod_pvt), &bytes.as_ref()[..len]);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Make every pushed request visible (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`) and say whether
    /// the back end asked to be notified.
    #[inline]
    pub fn publish_requests(&mut self) -> Notify {
        let old = self.req_prod_published;
        let new = self.req_prod_pvt;
        if old == new {
            return Notify::NotNeeded;
        }
        self.memory.store_fenced(REQ_PROD, new);
        self.req_prod_published = new;
        Notify::decide(old, new, self.memory.load_acquire(REQ_EVENT))
    }

    /// Push one request and publish it at once.
    #[inline]
    pub fn push_and_publish(&mut self, request: P::Request) -> Result<Notify, PushError> {
        self.push_request(request)?;
        Ok(self.publish_requests())
    }

    /// Take the next response, if the back end has published one. The slot is copied out once
    /// and decoded from the copy.
    #[inline]
    pub fn poll_response(&mut self) -> Result<Option<P::Response>, PeerError> {
        if !self.has_unconsumed_responses()? {
            return Ok(None);
        }
        let mut bytes = <P::Response as RingEntry>::Bytes::ZEROED;
        self.memory.read(self.layout.slot_offset(self.rsp_cons), bytes.as_mut());
        let response = P::Response::from_bytes(&bytes);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        if let Some(id) = response.tracking_id()
            && !self.outstanding.remove(id)
        {
            return Err(self.fail(PeerError::UnknownResponseId { id }));
        }
        Ok(Some(response))
    }

    /// Whether a response is waiting (re-reading `rsp_prod` only when everything seen so far
    /// has been consumed).
    #[inline]
    pub fn has_unconsumed_responses(&mut self) -> Result<bool, PeerError> {
        if let Some(error) = self.broken {
            return Err(error);
        }
        if self.rsp_cons == self.rsp_prod_seen {
            self.refresh_rsp_prod()?;
        }
        Ok(self.rsp_cons != self.rsp_prod_seen)
    }

    /// `RING_FINAL_CHECK_FOR_RESPONSES`: call before sleeping. If nothing is waiting, ask the
    /// back end to notify on the next response (`rsp_event = rsp_cons + 1`, then a full barrier)
    /// and look again, so a response published meanwhile is never missed. `Ok(false)` means it
    /// is safe to sleep until the event channel fires.
    #[inline]
    pub fn final_check_for_responses(&mut self) -> Result<bool, PeerError> {
        if self.has_unconsumed_responses()? {
            return Ok(true);
        }
        let threshold = self.rsp_cons.wrapping_add(1);
        if self.rsp_event_armed != Some(threshold) {
            // An earlier identical store was already followed by a full barrier.
            self.memory.store_fenced(RSP_EVENT, threshold);
            self.rsp_event_armed = Some(threshold);
        }
        self.refresh_rsp_prod()?;
        Ok(self.rsp_cons != self.rsp_prod_seen)
    }

    #[inline]
    fn refresh_rsp_prod(&mut self) -> Result<(), PeerError> {
        let now = self.memory.load_acquire(RSP_PROD);
        if (now.wrapping_sub(self.rsp_prod_seen) as i32) < 0 {
            return Err(self.fail(PeerError::ProducerWentBackwards {
                index: SharedIndex::ResponseProducer,
                previous: self.rsp_prod_seen,
                now,
            }));
        }
        let in_flight = self.req_prod_published.wrapping_sub(self.rsp_cons);
        if now.wrapping_sub(self.rsp_cons) > in_flight {
            return Err(self.fail(PeerError::TooManyResponses {
                rsp_prod: now,
                rsp_cons: self.rsp_cons,
                in_flight,
            }));
        }
        self.rsp_prod_seen = now;
        Ok(())
    }

    #[inline]
    fn fail(&mut self, error: PeerError) -> PeerError {
        self.broken = Some(error);
        error
    }

    /// Whether request id `id` is outstanding.
    #[inline]
    pub fn is_outstanding(&self, id: u32) -> bool {
        id < self.layout.slots() && self.outstanding.contains(id)
    }
}
