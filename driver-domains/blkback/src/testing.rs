//! A device for host tests and the fuzzer: [`HeldDisk`], a RAM disk whose requests move their
//! data at `start` but finish only when the caller says so ([`HeldDisk::release`]), in order or
//! backwards, so the queue meets a device that is slow and out of order.
use alloc::collections::VecDeque;
use alloc::vec::Vec;

use crate::device::{BlockDevice, BufId, DeviceError, Io, RamDisk};

/// A RAM disk whose finished requests wait until released.
pub struct HeldDisk {
    pub inner: RamDisk,
    released: VecDeque<(BufId, Result<(), DeviceError>)>,
    /// Most requests in flight at once.
    pub peak: usize,
}

impl HeldDisk {
    pub fn new(inner: RamDisk) -> Self {
        Self { inner, released: VecDeque::new(), peak: 0 }
    }

    /// Lets every request started so far finish, backwards when `reverse`.
    pub fn release(&mut self, reverse: bool) {
        let mut v: Vec<_> = core::iter::from_fn(|| self.inner.finished()).collect();
        if reverse {
            v.reverse();
        }
        self.released.extend(v);
    }

    /// Whether `id` finished but was not handed back yet (the device's still).
    fn released(&self, id: BufId) -> bool {
        self.released.iter().any(|(b, _)| *b == id)
    }
}

impl BlockDevice for HeldDisk {
    fn capacity(&self) -> u64 {
        self.inner.capacity()
    }
    fn depth(&self) -> usize {
        self.inner.depth()
    }
    fn take(&mut self) -> Option<BufId> {
        self.inner.take()
    }
    fn buffer(&mut self, id: BufId) -> Option<&mut [u8]> {
        if self.released(id) {
            return None;
        }
        self.inner.buffer(id)
    }
    fn start(&mut self, id: BufId, io: Io, sector: u64, len: usize) -> Result<(), DeviceError> {
        if self.released(id) {
            return Err(DeviceError::NotHeld);
        }
        self.inner.start(id, io, sector, len)?;
        self.peak = self.peak.max(self.in_flight());
        Ok(())
    }
    fn finished(&mut self) -> Option<(BufId, Result<(), DeviceError>)> {
        self.released.pop_front()
    }
    fn give_back(&mut self, id: BufId) {
        if !self.released(id) {
            self.inner.give_back(id);
        }
    }
    fn in_flight(&self) -> usize {
        self.inner.in_flight() + self.released.len()
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        if self.in_flight() > 0 {
            // A flush must cover every acknowledged write: the queue never asks with requests
            // in flight, and a test that sees this error caught it doing so.
            return Err(DeviceError::Busy);
        }
        self.inner.flush()
    }
    fn wait(&mut self) {
        self.release(false);
    }
}
