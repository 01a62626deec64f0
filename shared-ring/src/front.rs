//! [`FrontRing`]: the front end's half (produces requests, consumes responses).

use core::marker::PhantomData;

use crate::entry::{EntryBytes, RingEntry, RingProtocol};
use crate::error::{LayoutError, PeerError, PushError, SharedIndex};
use crate::id_set::IdSet;
use crate::layout::{REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD, RingLayout, init_header};
use crate::notify::Notify;
use crate::shared_memory::SharedMemory;
use crate::slots::Slots;

/// The front end of a ring (blkfront, netfront, ...).
///
/// Requests are written with [`push_request`](Self::push_request) and become visible to the back
/// end at [`publish_requests`](Self::publish_requests), which says whether the back end asked for
/// a notification: push many, publish (and notify) once. [`flush_requests`](Self::flush_requests)
/// makes them visible earlier without a barrier or a decision; the next `publish_requests`
/// decides for everything flushed since the last decision (see `docs/shared-ring.md`).
pub struct FrontRing<P: RingProtocol, M: SharedMemory> {
    memory: M,
    layout: RingLayout,
    /// The slot array (index to slot, the copy in and out).
    slots: Slots<P>,
    /// Next request index to fill (`req_prod_pvt`).
    req_prod_pvt: u32,
    /// Last value stored to the shared `req_prod` (by a flush or a publish).
    req_prod_visible: u32,
    /// `req_prod` at the last notification decision (the "old" of the notify rule).
    req_prod_decided: u32,
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
            slots: Slots::new(layout),
            req_prod_pvt: start,
            req_prod_visible: start,
            req_prod_decided: start,
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

    /// Requests pushed but not yet visible to the back end (neither flushed nor published).
    #[inline]
    pub fn unpublished(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.req_prod_visible)
    }

    /// Requests pushed since the last notification decision (flushed or not): while this is
    /// non-zero, [`publish_requests`](Self::publish_requests) must be called before this side
    /// waits for anything.
    #[inline]
    pub fn undecided(&self) -> u32 {
        self.req_prod_pvt.wrapping_sub(self.req_prod_decided)
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
        self.slots.write(&self.memory, self.req_prod_pvt, &bytes.as_ref()[..len]);
        self.req_prod_pvt = self.req_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Make every pushed request visible (`RING_PUSH_REQUESTS_AND_CHECK_NOTIFY`) and say whether
    /// the back end asked to be notified. The decision covers every request pushed since the
    /// previous decision, including those [`flush_requests`](Self::flush_requests) already made
    /// visible.
    #[inline]
    pub fn publish_requests(&mut self) -> Notify {
        let old = self.req_prod_decided;
        let new = self.req_prod_pvt;
        if old == new {
            return Notify::NotNeeded;
        }
        // Stored again (and fenced) even if a flush already stored `new`: the notify check needs
        // this store ordered before its load of `req_event`.
        self.memory.store_fenced(REQ_PROD, new);
        self.req_prod_visible = new;
        self.req_prod_decided = new;
        Notify::decide(old, new, self.memory.load_acquire(REQ_EVENT))
    }

    /// Make every pushed request visible to the back end now, with a release store of
    /// `req_prod` only: no barrier and no notification decision (`RING_PUSH_REQUESTS` without
    /// its later check). A polling back end sees the requests at once.
    ///
    /// The decision is deferred, not dropped: a back end that went to sleep is only woken by
    /// the next [`publish_requests`](Self::publish_requests), which decides for the whole range
    /// pushed since the previous decision. Call it before this side stops producing: before it
    /// waits for responses, sleeps, or returns to an event loop. Until then a sleeping back end
    /// may stay asleep with requests visible to it.
    #[inline]
    pub fn flush_requests(&mut self) {
        if self.req_prod_visible != self.req_prod_pvt {
            self.memory.store_release(REQ_PROD, self.req_prod_pvt);
            self.req_prod_visible = self.req_prod_pvt;
        }
    }

    /// Push one request and publish it at once.
    #[inline]
    pub fn push_and_publish(&mut self, request: P::Request) -> Result<Notify, PushError> {
        self.push_request(request)?;
        Ok(self.publish_requests())
    }

    /// Take the next response, if the back end has published one. The slot is copied out once
    /// and decoded from the copy.
    ///
    /// When every response seen so far has been taken this reads `rsp_prod` again; a loop over
    /// one snapshot ([`unconsumed_responses`](Self::unconsumed_responses), then
    /// [`take_response`](Self::take_response) until `None`) reads it once per batch.
    #[inline]
    pub fn poll_response(&mut self) -> Result<Option<P::Response>, PeerError> {
        if self.rsp_cons == self.rsp_prod_seen {
            if let Some(error) = self.broken {
                return Err(error);
            }
            self.refresh_rsp_prod()?;
        }
        self.take_response()
    }

    /// Whether a response is waiting (re-reading `rsp_prod` only when everything seen so far
    /// has been consumed).
    #[inline]
    pub fn has_unconsumed_responses(&mut self) -> Result<bool, PeerError> {
        Ok(self.unconsumed_responses()? != 0)
    }

    /// How many responses are waiting (`RING_HAS_UNCONSUMED_RESPONSES`): those seen but not yet
    /// taken, after re-reading `rsp_prod` (one acquire load, validated) if every response seen
    /// so far has been taken. [`take_response`](Self::take_response) then takes them without
    /// touching the shared index.
    #[inline]
    pub fn unconsumed_responses(&mut self) -> Result<u32, PeerError> {
        // Responses already seen are waiting: never the case once broken (`fail` empties the
        // seen range), so `broken` is only checked when `rsp_prod` must be read again.
        if self.rsp_cons == self.rsp_prod_seen {
            if let Some(error) = self.broken {
                return Err(error);
            }
            self.refresh_rsp_prod()?;
        }
        Ok(self.rsp_prod_seen.wrapping_sub(self.rsp_cons))
    }

    /// Take the next of the responses already seen (counted by
    /// [`unconsumed_responses`](Self::unconsumed_responses), or by the last
    /// [`poll_response`](Self::poll_response) or final check), without reading `rsp_prod`:
    /// `Ok(None)` once they are all taken. Copied out once and id-checked as by
    /// `poll_response`.
    #[inline]
    pub fn take_response(&mut self) -> Result<Option<P::Response>, PeerError> {
        if self.rsp_cons == self.rsp_prod_seen {
            return match self.broken {
                Some(error) => Err(error),
                None => Ok(None),
            };
        }
        let mut bytes = <P::Response as RingEntry>::Bytes::ZEROED;
        self.slots.read(&self.memory, self.rsp_cons, bytes.as_mut());
        let response = P::Response::from_bytes(&bytes);
        self.rsp_cons = self.rsp_cons.wrapping_add(1);
        if let Some(id) = response.tracking_id()
            && !self.outstanding.remove(id)
        {
            return Err(self.fail(PeerError::UnknownResponseId { id }));
        }
        Ok(Some(response))
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

    /// Read `rsp_prod` (acquire) and check it. Called only when every response seen has been
    /// taken (`rsp_cons == rsp_prod_seen`), so one comparison covers both rules: responses may
    /// answer only requests the back end could see (flushed or published), and an index that
    /// moved backwards wraps to a huge count that fails the same test.
    #[inline]
    fn refresh_rsp_prod(&mut self) -> Result<(), PeerError> {
        debug_assert_eq!(self.rsp_cons, self.rsp_prod_seen);
        let now = self.memory.load_acquire(RSP_PROD);
        let in_flight = self.req_prod_visible.wrapping_sub(self.rsp_cons);
        if now.wrapping_sub(self.rsp_cons) > in_flight {
            let error = bad_rsp_prod(now, self.rsp_prod_seen, self.rsp_cons, in_flight);
            return Err(self.fail(error));
        }
        self.rsp_prod_seen = now;
        Ok(())
    }

    /// Record a broken peer. Emptying the seen range sends every later poll to the slow path,
    /// which returns the error: the fast path (entries already seen) needs no check of `broken`.
    #[inline]
    fn fail(&mut self, error: PeerError) -> PeerError {
        self.broken = Some(error);
        self.rsp_prod_seen = self.rsp_cons;
        error
    }

    /// Whether request id `id` is outstanding.
    #[inline]
    pub fn is_outstanding(&self, id: u32) -> bool {
        id < self.layout.slots() && self.outstanding.contains(id)
    }
}

/// Which rule a rejected `rsp_prod` broke. Out of line and given values, not the ring: a
/// reference to the ring escaping into a call would keep its fields in memory on the hot path.
#[cold]
#[inline(never)]
fn bad_rsp_prod(now: u32, seen: u32, rsp_cons: u32, in_flight: u32) -> PeerError {
    if (now.wrapping_sub(seen) as i32) < 0 {
        PeerError::ProducerWentBackwards { index: SharedIndex::ResponseProducer, previous: seen, now }
    } else {
        PeerError::TooManyResponses { rsp_prod: now, rsp_cons, in_flight }
    }
}
