//! A vdisk's requests between the ring and the device: the [`Queue`] of requests taken from the
//! ring and not answered yet, in ring order (at most the ring's 32), and the [`Completions`] the
//! device reported by buffer, in its own order, until the queue holding that buffer answers
//! them (buffers of queues that are gone go back with [`Completions::sweep`]). `serve` moves
//! requests along.
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;

use crate::device::{BlockDevice, BufId, DeviceError};
use crate::vbd::Checked;

#[derive(Debug, Clone, Copy)]
pub(crate) enum State {
    /// Checked, not started (no buffer yet, or a barrier/flush waiting for the drain).
    Waiting(Checked),
    InFlight(Checked, BufId),
    /// Answered with this status (refused, or done).
    Done(i16),
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry {
    pub(crate) id: u64,
    pub(crate) rsp_op: u8,
    pub(crate) state: State,
}

/// One vdisk's requests taken from the ring and not answered yet, in ring order.
#[derive(Debug, Default)]
pub struct Queue {
    pub(crate) entries: VecDeque<Entry>,
    /// Bytes it may still start this round when contended (negative: overdrawn).
    pub(crate) credit: i64,
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

    pub(crate) fn take(&mut self, id: BufId) -> Option<Result<(), DeviceError>> {
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
