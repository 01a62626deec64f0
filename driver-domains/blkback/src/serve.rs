//! One bounded round of serving a frontend's ring, with many requests in flight on the device.
//!
//! Each vdisk keeps a [`Queue`] of the requests it took from the ring and has not answered yet,
//! in ring order (at most the ring's 32). A round takes new requests (each checked once,
//! [`Vbd::check`]), starts every queued read and write the device has a buffer for, and answers
//! from the front of the queue as far as requests are done: responses go out in request order,
//! so `rsp_prod` always counts a prefix of the requests, which is what lets a restarted blkback
//! resume at `rsp_prod` ([`shared_ring::BackRing::resume`]). A barrier or flush starts nothing
//! after it and runs alone once it is at the front and the device has nothing in flight (every
//! vdisk holds its starts meanwhile, see [`Round::draining`]), so it covers every write
//! acknowledged before it.
//!
//! The device reports finished requests by buffer, in its own order; [`Completions`] keeps each
//! result until the queue holding that buffer answers it, and gives back the buffers of queues
//! that are gone ([`Completions::sweep`]).
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use shared_ring::wire::blkif::{Blkif, BlkifResponse, RSP_OKAY};
use shared_ring::{BackRing, PeerError, PushError, SharedMemory};

use crate::device::{BlockDevice, BufId, DeviceError};
use crate::vbd::{Checked, Vbd, response_operation};
use xenbus_backend::GrantCopier;

/// Requests taken from a frontend's ring per round, so one busy frontend cannot starve the
/// others (the ring itself bounds unanswered requests to 32).
pub const BUDGET: u32 = 32;
/// Requests a queue holds at most: a ring's worth (the ring refuses more unanswered ones).
pub const QUEUE_LIMIT: usize = 32;
/// Bytes a vdisk may start per round while other vdisks have requests queued too (deficit
/// round robin: a bigger request runs, and the vdisk waits as many rounds as it overdrew).
pub const QUANTUM: i64 = 64 * 1024;

/// What the domain tells a vdisk's round about the others.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pass {
    /// Another vdisk drains the device for a flush: start nothing.
    pub hold_starts: bool,
    /// Other vdisks have requests queued too: start at most [`QUANTUM`] bytes (plus the
    /// deficit carried over).
    pub contended: bool,
}

/// What a round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Requests answered.
    pub served: u32,
    /// Of those, answered with an error.
    pub refused: u32,
    /// The frontend must be notified of new responses.
    pub notify: bool,
    /// Requests are waiting in the ring (budget used up, or they arrived during the final check).
    pub more: bool,
    /// A barrier or flush waits at the front of the queue for the device to drain: no vdisk
    /// should start new requests until it ran.
    pub draining: bool,
}

/// The frontend broke the ring: disconnect it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeError {
    Peer(PeerError),
    Push(PushError),
}

impl core::fmt::Display for ServeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ServeError::Peer(e) => write!(f, "{e}"),
            ServeError::Push(e) => write!(f, "{e}"),
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Checked, not started (no buffer yet, or a barrier/flush waiting for the drain).
    Waiting(Checked),
    InFlight(Checked, BufId),
    /// Answered with this status (refused, or done).
    Done(i16),
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    id: u64,
    rsp_op: u8,
    state: State,
}

/// One vdisk's requests taken from the ring and not answered yet, in ring order.
#[derive(Debug, Default)]
pub struct Queue {
    entries: VecDeque<Entry>,
    /// Bytes it may still start this round when contended (negative: overdrawn).
    credit: i64,
}

impl Queue {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether the device is reading or writing buffer `id` for one of these requests.
    pub fn holds(&self, id: BufId) -> bool {
        self.entries.iter().any(|e| matches!(e.state, State::InFlight(_, b) if b == id))
    }

    /// Whether a request waits to start or to run alone.
    pub fn waiting(&self) -> bool {
        self.entries.iter().any(|e| matches!(e.state, State::Waiting(_)))
    }

    /// Requests on the device.
    pub fn in_flight(&self) -> usize {
        self.entries.iter().filter(|e| matches!(e.state, State::InFlight(..))).count()
    }

    /// Forgets every request (the ring is gone). Buffers in flight stay the device's until they
    /// finish; [`Completions::sweep`] then gives them back.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

/// The results of finished device requests, by buffer, until their queue answers them.
#[derive(Debug)]
pub struct Completions {
    done: Vec<Option<Result<(), DeviceError>>>,
}

impl Completions {
    /// For a device of `depth` buffers.
    pub fn new(depth: usize) -> Self {
        Self { done: vec![None; depth] }
    }

    /// Takes every finished request from the device.
    pub fn collect(&mut self, dev: &mut impl BlockDevice) {
        while let Some((id, result)) = dev.finished() {
            match self.done.get_mut(usize::from(id.0)) {
                Some(slot) => *slot = Some(result),
                None => dev.give_back(id),
            }
        }
    }

    fn take(&mut self, id: BufId) -> Option<Result<(), DeviceError>> {
        self.done.get_mut(usize::from(id.0)).and_then(Option::take)
    }

    /// Whether a result waits that no round claimed yet.
    pub fn unclaimed(&self) -> bool {
        self.done.iter().any(Option::is_some)
    }

    /// Gives back every finished buffer no queue waits for (its vdisk was disconnected or
    /// removed while the device still used the buffer).
    pub fn sweep<'a>(&mut self, dev: &mut impl BlockDevice, queues: impl Iterator<Item = &'a Queue> + Clone) {
        for (i, slot) in self.done.iter_mut().enumerate() {
            let id = BufId(i as u16);
            if slot.is_some() && !queues.clone().any(|q| q.holds(id)) {
                *slot = None;
                dev.give_back(id);
            }
        }
    }
}

/// Serves one round of a vdisk's ring: takes up to `budget` requests (while the queue has room),
/// starts what the device can take (nothing while another vdisk drains the device for a flush;
/// at most a quantum of bytes while other vdisks wait too, see [`Pass`]), answers from the front of the queue as far as requests are done, publishes the
/// responses and re-arms the request event if the ring is empty. `on_refusal` sees each refused
/// request (for logging).
#[allow(clippy::too_many_arguments)]
pub fn serve_round<M: SharedMemory>(
    ring: &mut BackRing<Blkif, M>,
    vbd: &mut Vbd,
    queue: &mut Queue,
    dev: &mut impl BlockDevice,
    done: &mut Completions,
    copier: &mut impl GrantCopier,
    budget: u32,
    pass: Pass,
    mut on_refusal: impl FnMut(&Vbd, u64),
) -> Result<Round, ServeError> {
    let mut round = Round::default();
    queue.credit = if pass.contended { (queue.credit + QUANTUM).min(QUANTUM) } else { QUANTUM };
    let mut taken = 0;
    while taken < budget && queue.len() < QUEUE_LIMIT {
        let Some(slot) = ring.poll_request().map_err(ServeError::Peer)? else { break };
        taken += 1;
        let state = match vbd.check(&slot, copier) {
            Ok(c) => State::Waiting(c),
            Err(r) => State::Done(answer(vbd, slot.id(), Err(r), &mut on_refusal)),
        };
        queue.entries.push_back(Entry { id: slot.id(), rsp_op: response_operation(&slot), state });
    }
    // Start what can start, answer from the front what is done; again while answers free
    // buffers (or end a drain). Each pass answers one request at least, or it is the last.
    loop {
        if !pass.hold_starts {
            start(vbd, queue, dev, copier, pass.contended, &mut on_refusal);
        }
        done.collect(dev);
        let served = round.served;
        answer_front(ring, vbd, queue, dev, done, copier, &mut on_refusal, &mut round)?;
        if round.served == served {
            break;
        }
    }
    round.notify = round.served > 0 && ring.publish_responses().is_needed();
    round.more = if taken >= budget {
        true
    } else if queue.len() >= QUEUE_LIMIT {
        false
    } else {
        ring.final_check_for_requests().map_err(ServeError::Peer)?
    };
    Ok(round)
}

/// Answers the requests at the front of the queue that are done (a barrier or flush at the front
/// runs once the device drained), in ring order.
#[allow(clippy::too_many_arguments)]
fn answer_front<M: SharedMemory>(
    ring: &mut BackRing<Blkif, M>,
    vbd: &mut Vbd,
    queue: &mut Queue,
    dev: &mut impl BlockDevice,
    done: &mut Completions,
    copier: &mut impl GrantCopier,
    on_refusal: &mut impl FnMut(&Vbd, u64),
    round: &mut Round,
) -> Result<(), ServeError> {
    while let Some(e) = queue.entries.front_mut() {
        let status = match e.state {
            State::Done(status) => status,
            State::InFlight(c, id) => {
                let Some(result) = done.take(id) else { break };
                let result = match dev.buffer(id) {
                    Some(buf) => vbd.finish(&c, buf, result, copier),
                    None => Err(crate::vbd::Refusal::Device(DeviceError::NotHeld)),
                };
                dev.give_back(id);
                answer(vbd, e.id, result, on_refusal)
            }
            State::Waiting(c) if c.runs_alone() => {
                if dev.in_flight() > 0 {
                    round.draining = true;
                    break;
                }
                let result = vbd.perform_alone(&c, dev, copier);
                answer(vbd, e.id, result, on_refusal)
            }
            // A read or write waiting for a buffer.
            State::Waiting(_) => break,
        };
        let (id, operation) = (e.id, e.rsp_op);
        queue.entries.pop_front();
        ring.push_response(BlkifResponse { id, operation, status }).map_err(ServeError::Push)?;
        round.served += 1;
        round.refused += u32::from(status != RSP_OKAY);
    }
    Ok(())
}

/// Starts queued reads and writes in order while the device has buffers, up to the first
/// barrier or flush (nothing after one starts before it ran).
fn start(
    vbd: &mut Vbd,
    queue: &mut Queue,
    dev: &mut impl BlockDevice,
    copier: &mut impl GrantCopier,
    contended: bool,
    on_refusal: &mut impl FnMut(&Vbd, u64),
) {
    for e in queue.entries.iter_mut() {
        if contended && queue.credit <= 0 {
            break;
        }
        let c = match e.state {
            State::Waiting(c) if c.runs_alone() => break,
            State::Waiting(c) => c,
            _ => continue,
        };
        let Some(id) = dev.take() else { break };
        let filled = match dev.buffer(id) {
            Some(buf) => vbd.fill(&c, buf, copier),
            None => Err(crate::vbd::Refusal::Device(DeviceError::NotHeld)),
        };
        let started = filled.and_then(|()| dev.start(id, c.io(), c.at, c.bytes()).map_err(crate::vbd::Refusal::Device));
        e.state = match started {
            Ok(()) => {
                queue.credit -= c.bytes() as i64;
                State::InFlight(c, id)
            }
            Err(crate::vbd::Refusal::Device(DeviceError::Busy)) => {
                // The device's own queue is full: this one starts after something finished.
                dev.give_back(id);
                break;
            }
            Err(r) => {
                dev.give_back(id);
                State::Done(answer(vbd, e.id, Err(r), on_refusal))
            }
        };
    }
}

/// The status of a request's outcome; a refusal is counted and logged.
fn answer(
    vbd: &mut Vbd,
    id: u64,
    result: Result<(), crate::vbd::Refusal>,
    on_refusal: &mut impl FnMut(&Vbd, u64),
) -> i16 {
    let refused = result.is_err();
    let status = vbd.status(result);
    if refused {
        on_refusal(vbd, id);
    }
    status
}
