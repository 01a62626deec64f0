//! One bounded round of serving a frontend's ring, with many requests in flight on the device.
//!
//! Each vdisk keeps a [`Queue`](crate::queue::Queue) of the requests it took from the ring and has not answered yet,
//! in ring order (at most the ring's 32). A round takes new requests (each checked once,
//! [`Vbd::check`]), starts every queued read and write the device has a buffer for, and answers
//! from the front of the queue as far as requests are done: responses go out in request order,
//! so `rsp_prod` always counts a prefix of the requests, which is what lets a restarted blkback
//! resume at `rsp_prod` ([`shared_ring::BackRing::resume`]). A barrier or flush starts nothing
//! after it and runs alone once it is at the front and the device has nothing in flight (every
//! vdisk holds its starts meanwhile, see [`Round::draining`]), so it covers every write
//! acknowledged before it.
//!
//! The queue and the device's completions are `queue`'s.
use shared_ring::wire::blkif::{Blkif, BlkifResponse, RSP_OKAY};
use shared_ring::{BackRing, PeerError, PushError, SharedMemory};

use crate::device::{BlockDevice, DeviceError};
use crate::queue::{Completions, Entry, Queue, State};
use crate::vbd::{Vbd, response_operation};
use xenbus_backend::GrantCopier;

/// Requests taken from a frontend's ring per round, so one busy frontend cannot starve the
/// others (the ring itself bounds unanswered requests to 32).
pub const BUDGET: u32 = 32;
/// Requests a queue holds at most: a ring's worth (the ring refuses more unanswered ones).
pub const QUEUE_LIMIT: usize = 32;
/// Bytes a vdisk may start per round while other vdisks have requests queued too (deficit
/// round robin: a bigger request runs, and the vdisk waits as many rounds as it overdrew).
pub const QUANTUM: i64 = 64 * 1024;

/// What the domain tells a vdisk's round: its budget, and about the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    /// Requests it may take from the ring ([`BUDGET`] in the domain).
    pub budget: u32,
    /// Another vdisk drains the device for a flush: start nothing.
    pub hold_starts: bool,
    /// Other vdisks have requests queued too: start at most [`QUANTUM`] bytes (plus the
    /// deficit carried over).
    pub contended: bool,
}

impl Pass {
    /// A round on its own: the whole budget, nothing held, nobody to share with.
    pub fn alone(budget: u32) -> Self {
        Self { budget, hold_starts: false, contended: false }
    }
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

/// Serves one round of a vdisk's ring: takes up to `budget` requests (while the queue has room),
/// starts what the device can take (nothing while another vdisk drains the device for a flush;
/// at most a quantum of bytes while other vdisks wait too, see [`Pass`]), answers from the front of the queue as far as requests are done, publishes the
/// responses and re-arms the request event if the ring is empty. `on_refusal` sees each refused
/// request (for logging).
pub fn serve_round<M: SharedMemory>(
    ring: &mut BackRing<Blkif, M>,
    vbd: &mut Vbd,
    dev: &mut impl BlockDevice,
    done: &mut Completions,
    copier: &mut impl GrantCopier,
    pass: Pass,
    mut on_refusal: impl FnMut(&Vbd, u64),
) -> Result<Round, ServeError> {
    let mut queue = core::mem::take(&mut vbd.queue);
    let result = serve_queue(ring, vbd, &mut queue, dev, done, copier, pass, &mut on_refusal);
    vbd.queue = queue;
    result
}

#[allow(clippy::too_many_arguments)]
fn serve_queue<M: SharedMemory>(
    ring: &mut BackRing<Blkif, M>,
    vbd: &mut Vbd,
    queue: &mut Queue,
    dev: &mut impl BlockDevice,
    done: &mut Completions,
    copier: &mut impl GrantCopier,
    pass: Pass,
    mut on_refusal: impl FnMut(&Vbd, u64),
) -> Result<Round, ServeError> {
    let budget = pass.budget;
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
