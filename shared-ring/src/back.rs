//! [`BackRing`]: the back end's half (consumes requests, produces responses).

use core::marker::PhantomData;

use crate::entry::{EntryBytes, RingEntry, RingProtocol};
use crate::error::{LayoutError, PeerError, PushError, SharedIndex};
use crate::layout::{REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD, RingLayout};
use crate::notify::Notify;
use crate::shared_memory::SharedMemory;
use crate::slots::Slots;

/// The back end of a ring (blkback, netback, ...), facing a possibly hostile front end.
///
/// Every request is copied out of its slot exactly once before anything looks at it; a
/// `req_prod` that claims more than `size` unanswered requests or moves backwards breaks the
/// ring with a [`PeerError`] instead of looping or panicking.
pub struct BackRing<P: RingProtocol, M: SharedMemory> {
    memory: M,
    layout: RingLayout,
    /// The slot array (index to slot, the copy in and out).
    slots: Slots<P>,
    /// Next request index to consume.
    req_cons: u32,
    /// Last validated value of the shared `req_prod`.
    req_prod_seen: u32,
    /// Next response index to fill (`rsp_prod_pvt`).
    rsp_prod_pvt: u32,
    /// Last value stored to the shared `rsp_prod` (by a flush or a publish).
    rsp_prod_visible: u32,
    /// `rsp_prod` at the last notification decision (the "old" of the notify rule).
    rsp_prod_decided: u32,
    /// Value this side last stored to `req_event` (and fenced).
    req_event_armed: Option<u32>,
    broken: Option<PeerError>,
    _protocol: PhantomData<fn() -> P>,
}

impl<P: RingProtocol, M: SharedMemory> BackRing<P, M> {
    /// Attach to a ring the front end initialised (`BACK_RING_INIT`).
    #[inline]
    pub fn attach(memory: M) -> Result<Self, LayoutError> {
        Self::attach_at(memory, 0)
    }

    /// Attach where the responses published so far end (`rsp_prod`): on a ring the frontend
    /// just initialised that is index 0, as [`attach`](Self::attach); on a ring a previous
    /// backend served (a driver domain restarted in place) the requests it took but never
    /// answered are served again. `rsp_prod` is the frontend's to corrupt: a bad value only
    /// makes the ring report itself broken.
    #[inline]
    pub fn resume(memory: M) -> Result<Self, LayoutError> {
        let start = memory.load_acquire(crate::layout::RSP_PROD);
        Self::attach_at(memory, start)
    }

    /// Attach with every index at `start` (`BACK_RING_ATTACH`, for reconnecting).
    #[inline]
    pub fn attach_at(memory: M, start: u32) -> Result<Self, LayoutError> {
        let layout = RingLayout::for_memory(&memory, P::SLOT_SIZE)?;
        Ok(Self {
            memory,
            layout,
            slots: Slots::new(layout),
            req_cons: start,
            req_prod_seen: start,
            rsp_prod_pvt: start,
            rsp_prod_visible: start,
            rsp_prod_decided: start,
            req_event_armed: None,
            broken: None,
            _protocol: PhantomData,
        })
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

    /// Requests consumed but not yet answered.
    #[inline]
    pub fn unanswered(&self) -> u32 {
        self.req_cons.wrapping_sub(self.rsp_prod_pvt)
    }

    /// The error the front end caused, if any.
    #[inline]
    pub fn broken(&self) -> Option<PeerError> {
        self.broken
    }

    /// Take the next request, if the front end has published one: a private copy, decoded from
    /// that copy. Validate it with the wire type's `validate` before acting on it.
    ///
    /// When every request seen so far has been taken this reads `req_prod` again, so the call
    /// that ends a `while let` loop costs a load of the shared index. A loop over one snapshot
    /// ([`unconsumed_requests`](Self::unconsumed_requests), then
    /// [`take_request`](Self::take_request) until `None`) reads it once per batch, as ring.h's
    /// `rp = req_prod; xen_rmb(); while (req_cons != rp)` does.
    #[inline]
    pub fn poll_request(&mut self) -> Result<Option<P::Request>, PeerError> {
        if self.req_cons == self.req_prod_seen {
            if let Some(error) = self.broken {
                return Err(error);
            }
            self.refresh_req_prod()?;
        }
        self.take_request()
    }

    /// Whether a request is waiting (re-reading `req_prod` only when everything seen so far has
    /// been consumed).
    #[inline]
    pub fn has_unconsumed_requests(&mut self) -> Result<bool, PeerError> {
        Ok(self.unconsumed_requests()? != 0)
    }

    /// How many requests are waiting (`RING_HAS_UNCONSUMED_REQUESTS`): those seen but not yet
    /// taken, after re-reading `req_prod` (one acquire load, validated) if every request seen
    /// so far has been taken. [`take_request`](Self::take_request) then takes exactly that
    /// many without touching the shared index.
    #[inline]
    pub fn unconsumed_requests(&mut self) -> Result<u32, PeerError> {
        // Requests already seen are waiting: never the case once broken (`fail` empties the
        // seen range), so `broken` is only checked when `req_prod` must be read again.
        if self.req_cons == self.req_prod_seen {
            if let Some(error) = self.broken {
                return Err(error);
            }
            self.refresh_req_prod()?;
        }
        Ok(self.req_prod_seen.wrapping_sub(self.req_cons))
    }

    /// Take the next of the requests already seen (counted by
    /// [`unconsumed_requests`](Self::unconsumed_requests), or by the last
    /// [`poll_request`](Self::poll_request) or final check), without reading `req_prod`:
    /// `Ok(None)` once they are all taken. Each slot is copied out exactly once, as by
    /// `poll_request`. The bound was validated when the index was read (at most `size`
    /// unanswered requests), so a loop of these runs at most `size` times per batch.
    #[inline]
    pub fn take_request(&mut self) -> Result<Option<P::Request>, PeerError> {
        if self.req_cons == self.req_prod_seen {
            return match self.broken {
                Some(error) => Err(error),
                None => Ok(None),
            };
        }
        let mut bytes = <P::Request as RingEntry>::Bytes::ZEROED;
        self.slots.read(&self.memory, self.req_cons, bytes.as_mut());
        self.req_cons = self.req_cons.wrapping_add(1);
        Ok(Some(P::Request::from_bytes(&bytes)))
    }

    /// Write the response to the oldest unanswered request into its slot. Not visible to the
    /// front end until [`publish_responses`](Self::publish_responses).
    #[inline]
    pub fn push_response(&mut self, response: P::Response) -> Result<(), PushError> {
        if self.unanswered() == 0 {
            return Err(PushError::NoRequestToAnswer);
        }
        let bytes = response.to_bytes();
        let len = response.encoded_len().min(bytes.as_ref().len());
        self.slots.write(&self.memory, self.rsp_prod_pvt, &bytes.as_ref()[..len]);
        self.rsp_prod_pvt = self.rsp_prod_pvt.wrapping_add(1);
        Ok(())
    }

    /// Make every pushed response visible (`RING_PUSH_RESPONSES_AND_CHECK_NOTIFY`) and say
    /// whether the front end asked to be notified. The decision covers every response pushed
    /// since the previous decision, including those [`flush_responses`](Self::flush_responses)
    /// already made visible.
    #[inline]
    pub fn publish_responses(&mut self) -> Notify {
        let old = self.rsp_prod_decided;
        let new = self.rsp_prod_pvt;
        if old == new {
            return Notify::NotNeeded;
        }
        // Stored again (and fenced) even if a flush already stored `new`: the notify check needs
        // this store ordered before its load of `rsp_event`.
        self.memory.store_fenced(RSP_PROD, new);
        self.rsp_prod_visible = new;
        self.rsp_prod_decided = new;
        Notify::decide(old, new, self.memory.load_acquire(RSP_EVENT))
    }

    /// Make every pushed response visible to the front end now, with a release store of
    /// `rsp_prod` only: no barrier and no notification decision. The decision is deferred to
    /// the next [`publish_responses`](Self::publish_responses), which must come before this side
    /// stops producing (see [`FrontRing::flush_requests`](crate::FrontRing::flush_requests)).
    #[inline]
    pub fn flush_responses(&mut self) {
        if self.rsp_prod_visible != self.rsp_prod_pvt {
            self.memory.store_release(RSP_PROD, self.rsp_prod_pvt);
            self.rsp_prod_visible = self.rsp_prod_pvt;
        }
    }

    /// Responses pushed but not yet visible to the front end (neither flushed nor published).
    #[inline]
    pub fn unpublished(&self) -> u32 {
        self.rsp_prod_pvt.wrapping_sub(self.rsp_prod_visible)
    }

    /// Responses pushed since the last notification decision (flushed or not): while this is
    /// non-zero, [`publish_responses`](Self::publish_responses) must be called before this side
    /// waits for anything.
    #[inline]
    pub fn undecided(&self) -> u32 {
        self.rsp_prod_pvt.wrapping_sub(self.rsp_prod_decided)
    }

    /// `RING_FINAL_CHECK_FOR_REQUESTS`: call before sleeping. If nothing is waiting, ask the
    /// front end to notify on the next request (`req_event = req_cons + 1`, then a full barrier)
    /// and look again. `Ok(false)` means it is safe to sleep until the event channel fires.
    #[inline]
    pub fn final_check_for_requests(&mut self) -> Result<bool, PeerError> {
        if self.has_unconsumed_requests()? {
            return Ok(true);
        }
        let threshold = self.req_cons.wrapping_add(1);
        if self.req_event_armed != Some(threshold) {
            // An earlier identical store was already followed by a full barrier.
            self.memory.store_fenced(REQ_EVENT, threshold);
            self.req_event_armed = Some(threshold);
        }
        self.refresh_req_prod()?;
        Ok(self.req_cons != self.req_prod_seen)
    }

    /// Read `req_prod` (acquire) and check it. Called only when every request seen has been
    /// taken (`req_cons == req_prod_seen`), so one comparison covers both rules: the new
    /// requests must fit in the slots not holding an unanswered request
    /// (`RING_REQUEST_PROD_OVERFLOW`: `req_prod - rsp_prod_pvt <= size`), and an index that
    /// moved backwards wraps to a huge count that fails the same test.
    #[inline]
    fn refresh_req_prod(&mut self) -> Result<(), PeerError> {
        debug_assert_eq!(self.req_cons, self.req_prod_seen);
        let now = self.memory.load_acquire(REQ_PROD);
        // `unanswered() <= size` always holds: every request taken was validated this way.
        let room = self.layout.slots() - self.unanswered();
        if now.wrapping_sub(self.req_cons) > room {
            let error = bad_req_prod(now, self.req_prod_seen, self.rsp_prod_pvt, self.layout.slots());
            return Err(self.fail(error));
        }
        self.req_prod_seen = now;
        Ok(())
    }

    /// Record a broken peer. Emptying the seen range sends every later poll to the slow path,
    /// which returns the error: the fast path (entries already seen) needs no check of `broken`.
    #[inline]
    fn fail(&mut self, error: PeerError) -> PeerError {
        self.broken = Some(error);
        self.req_prod_seen = self.req_cons;
        error
    }
}

/// Which rule a rejected `req_prod` broke. Out of line and given values, not the ring: a
/// reference to the ring escaping into a call would keep its fields in memory on the hot path.
#[cold]
#[inline(never)]
fn bad_req_prod(now: u32, seen: u32, rsp_prod_pvt: u32, slots: u32) -> PeerError {
    if (now.wrapping_sub(seen) as i32) < 0 {
        PeerError::ProducerWentBackwards { index: SharedIndex::RequestProducer, previous: seen, now }
    } else {
        // RING_REQUEST_PROD_OVERFLOW: each published request needs a slot for its response.
        PeerError::TooManyRequests { req_prod: now, rsp_prod: rsp_prod_pvt, slots }
    }
}
