//! The backing device: what blkback needs from a disk, and the RAM disk that provides it in tests
//! and when no virtio-blk device is assigned.
//!
//! The device is a queue: blkback keeps up to [`BlockDevice::depth`] requests in flight, each in
//! one of the device's own buffers (a pool of [`MAX_REQUEST_BYTES`] each), so the buffers a
//! device is reading or writing never belong to anyone else. A buffer moves
//! Free → [`take`](BlockDevice::take) → Held (the caller fills or reads it) →
//! [`start`](BlockDevice::start) → InFlight → [`finished`](BlockDevice::finished) → Held →
//! [`give_back`](BlockDevice::give_back) → Free. Requests may finish in any order. A write is
//! acknowledged to the frontend only after `finished` reported it `Ok`; a flush
//! ([`flush`](BlockDevice::flush)) is issued only when nothing is in flight, so it covers every
//! write acknowledged before it.
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::SECTOR_SIZE;
use crate::vbd::MAX_REQUEST_BYTES;

/// Why a device operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceError {
    /// The sector range is not inside the device, or the length is not whole sectors.
    OutOfRange,
    /// The device reported an I/O error (or did not answer).
    Io,
    /// The buffer is not one the caller holds.
    NotHeld,
    /// The device's queue is full: start it again after a request finished.
    Busy,
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::OutOfRange => f.write_str("sector range outside the device"),
            DeviceError::Io => f.write_str("device I/O error"),
            DeviceError::NotHeld => f.write_str("buffer not held by the caller"),
            DeviceError::Busy => f.write_str("device queue full"),
        }
    }
}

/// A buffer of a device's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct BufId(pub u16);

/// What a started request does with its buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Io {
    /// Device → buffer.
    Read,
    /// Buffer → device.
    Write,
}

/// A block device of 512-byte sectors with a queue of requests in flight.
pub trait BlockDevice {
    /// Size in sectors.
    fn capacity(&self) -> u64;
    /// Buffers in the pool: at most this many requests are in flight.
    fn depth(&self) -> usize;
    /// A free buffer of [`MAX_REQUEST_BYTES`], now held by the caller; `None` if all are taken.
    fn take(&mut self) -> Option<BufId>;
    /// The bytes of a held buffer (`None` for a buffer the caller does not hold).
    fn buffer(&mut self, id: BufId) -> Option<&mut [u8]>;
    /// Starts `io` on the first `len` bytes of held buffer `id` at `sector`. On error the buffer
    /// stays held; `Busy` means the same request can start later.
    fn start(&mut self, id: BufId, io: Io, sector: u64, len: usize) -> Result<(), DeviceError>;
    /// A request that finished since the last call (its buffer is held again), if any.
    fn finished(&mut self) -> Option<(BufId, Result<(), DeviceError>)>;
    /// Returns a held buffer to the pool.
    fn give_back(&mut self, id: BufId);
    /// Requests started and not yet returned by `finished`.
    fn in_flight(&self) -> usize;
    /// Returns once everything written (and finished) before is durable. Only called with
    /// nothing in flight.
    fn flush(&mut self) -> Result<(), DeviceError>;
    /// Waits, for a bounded time, until a request in flight may have finished (a device that
    /// finishes requests at once does nothing).
    fn wait(&mut self);
    /// The backend has nothing else to do while requests are in flight: by default
    /// [`wait`](BlockDevice::wait); a device may poll instead (giving the CPU away meanwhile).
    fn idle(&mut self) {
        self.wait();
    }
}

/// Times [`wait_for`] waits before it gives a request up.
pub const WAIT_ROUNDS: u32 = 10;

/// Waits until started request `id` finished (nothing else in flight) and returns its result;
/// `Io` if the device does not answer within [`WAIT_ROUNDS`] waits (the buffer then stays the
/// device's). Any other buffer that finishes goes back to the pool.
pub fn wait_for(dev: &mut impl BlockDevice, id: BufId) -> Result<(), DeviceError> {
    for _ in 0..WAIT_ROUNDS {
        while let Some((b, result)) = dev.finished() {
            if b == id {
                return result;
            }
            dev.give_back(b);
        }
        dev.wait();
    }
    Err(DeviceError::Io)
}

/// Byte range of `len` bytes at `sector`, if whole sectors inside a device of `capacity` sectors.
pub fn byte_range(capacity: u64, sector: u64, len: usize) -> Result<core::ops::Range<usize>, DeviceError> {
    if !len.is_multiple_of(SECTOR_SIZE) {
        return Err(DeviceError::OutOfRange);
    }
    let end = sector.checked_add((len / SECTOR_SIZE) as u64).ok_or(DeviceError::OutOfRange)?;
    if end > capacity {
        return Err(DeviceError::OutOfRange);
    }
    let start = usize::try_from(sector).map_err(|_| DeviceError::OutOfRange)? * SECTOR_SIZE;
    Ok(start..start + len)
}

/// Where each buffer of a pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufState {
    Free,
    Held,
    InFlight,
}

/// The bookkeeping of a buffer pool, shared by every device: which buffer is where, checked on
/// each move, so a caller that mixes up ids gets an error instead of a buffer the device is
/// still using.
#[derive(Debug)]
pub struct Pool {
    state: Vec<BufState>,
}

impl Pool {
    pub fn new(depth: usize) -> Self {
        Self { state: vec![BufState::Free; depth.clamp(1, usize::from(u16::MAX))] }
    }
    pub fn depth(&self) -> usize {
        self.state.len()
    }
    pub fn state(&self, id: BufId) -> Option<BufState> {
        self.state.get(usize::from(id.0)).copied()
    }
    pub fn take(&mut self) -> Option<BufId> {
        let i = self.state.iter().position(|s| *s == BufState::Free)?;
        self.state[i] = BufState::Held;
        Some(BufId(i as u16))
    }
    /// Held → in flight.
    pub fn start(&mut self, id: BufId) -> Result<(), DeviceError> {
        self.change(id, BufState::Held, BufState::InFlight)
    }
    /// In flight → held.
    pub fn finish(&mut self, id: BufId) -> Result<(), DeviceError> {
        self.change(id, BufState::InFlight, BufState::Held)
    }
    /// Held → free (anything else is ignored: a buffer in flight stays the device's).
    pub fn give_back(&mut self, id: BufId) {
        let _ = self.change(id, BufState::Held, BufState::Free);
    }
    pub fn in_flight(&self) -> usize {
        self.state.iter().filter(|s| **s == BufState::InFlight).count()
    }
    pub fn is_held(&self, id: BufId) -> bool {
        self.state(id) == Some(BufState::Held)
    }
    fn change(&mut self, id: BufId, from: BufState, to: BufState) -> Result<(), DeviceError> {
        match self.state.get_mut(usize::from(id.0)) {
            Some(s) if *s == from => {
                *s = to;
                Ok(())
            }
            _ => Err(DeviceError::NotHeld),
        }
    }
}

/// A disk in RAM (contents are lost with the domain). A started request is performed at once
/// and reported by `finished` in start order. Counts operations for tests and reports.
pub struct RamDisk {
    data: Vec<u8>,
    pool: Pool,
    bufs: Vec<Box<[u8]>>,
    done: VecDeque<(BufId, Result<(), DeviceError>)>,
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
}

/// Buffers of a [`RamDisk`]'s pool.
pub const RAM_DISK_DEPTH: usize = 4;

impl RamDisk {
    /// A zeroed disk of `sectors` sectors.
    pub fn new(sectors: u64) -> Self {
        Self {
            data: vec![0; sectors as usize * SECTOR_SIZE],
            pool: Pool::new(RAM_DISK_DEPTH),
            bufs: (0..RAM_DISK_DEPTH).map(|_| vec![0u8; MAX_REQUEST_BYTES].into_boxed_slice()).collect(),
            done: VecDeque::new(),
            reads: 0,
            writes: 0,
            flushes: 0,
        }
    }

    /// A zeroed disk of `mib` MiB.
    pub fn with_mib(mib: u64) -> Self {
        Self::new(mib * 2048)
    }

    /// The raw contents (tests).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// Reads sectors straight into `buf` (tests, benchmarks).
    pub fn read_sectors(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let r = byte_range(self.capacity(), sector, buf.len())?;
        buf.copy_from_slice(&self.data[r]);
        self.reads += 1;
        Ok(())
    }

    /// Writes sectors straight from `buf` (tests, benchmarks).
    pub fn write_sectors(&mut self, sector: u64, buf: &[u8]) -> Result<(), DeviceError> {
        let r = byte_range(self.capacity(), sector, buf.len())?;
        self.data[r].copy_from_slice(buf);
        self.writes += 1;
        Ok(())
    }
}

impl BlockDevice for RamDisk {
    fn capacity(&self) -> u64 {
        (self.data.len() / SECTOR_SIZE) as u64
    }

    fn depth(&self) -> usize {
        self.pool.depth()
    }

    fn take(&mut self) -> Option<BufId> {
        self.pool.take()
    }

    fn buffer(&mut self, id: BufId) -> Option<&mut [u8]> {
        if !self.pool.is_held(id) {
            return None;
        }
        self.bufs.get_mut(usize::from(id.0)).map(|b| &mut b[..])
    }

    fn start(&mut self, id: BufId, io: Io, sector: u64, len: usize) -> Result<(), DeviceError> {
        if !self.pool.is_held(id) {
            return Err(DeviceError::NotHeld);
        }
        let range = byte_range(self.capacity(), sector, len)?;
        let buf = self.bufs.get_mut(usize::from(id.0)).ok_or(DeviceError::NotHeld)?;
        let buf = buf.get_mut(..len).ok_or(DeviceError::OutOfRange)?;
        match io {
            Io::Read => {
                buf.copy_from_slice(&self.data[range]);
                self.reads += 1;
            }
            Io::Write => {
                self.data[range].copy_from_slice(buf);
                self.writes += 1;
            }
        }
        self.pool.start(id)?;
        self.done.push_back((id, Ok(())));
        Ok(())
    }

    fn finished(&mut self) -> Option<(BufId, Result<(), DeviceError>)> {
        let (id, result) = self.done.pop_front()?;
        // In flight since `start`; nothing else moves it.
        let _ = self.pool.finish(id);
        Some((id, result))
    }

    fn give_back(&mut self, id: BufId) {
        self.pool.give_back(id);
    }

    fn in_flight(&self) -> usize {
        self.pool.in_flight()
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        self.flushes += 1;
        Ok(())
    }

    fn wait(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ram_disk_bounds_and_round_trip() {
        let mut d = RamDisk::new(16);
        assert_eq!(d.capacity(), 16);
        d.write_sectors(15, &[7; 512]).unwrap();
        let mut b = [0; 512];
        d.read_sectors(15, &mut b).unwrap();
        assert_eq!(b, [7; 512]);
        assert_eq!(d.write_sectors(16, &[0; 512]), Err(DeviceError::OutOfRange));
        assert_eq!(d.write_sectors(15, &[0; 1024]), Err(DeviceError::OutOfRange));
        assert_eq!(d.read_sectors(0, &mut [0; 100]), Err(DeviceError::OutOfRange));
        assert_eq!(d.read_sectors(u64::MAX, &mut [0; 512]), Err(DeviceError::OutOfRange));
    }

    #[test]
    fn a_buffer_moves_only_along_its_states() {
        let mut d = RamDisk::new(64);
        let ids: Vec<BufId> = core::iter::from_fn(|| d.take()).collect();
        assert_eq!(ids.len(), RAM_DISK_DEPTH, "the pool bounds the buffers in use");
        let (a, b) = (ids[0], ids[1]);
        d.buffer(a).unwrap()[..512].fill(9);
        d.start(a, Io::Write, 3, 512).unwrap();
        // In flight (until `finished` reports it): neither lent out nor started again.
        assert_eq!(d.in_flight(), 1);
        assert!(d.buffer(a).is_none());
        assert_eq!(d.start(a, Io::Write, 3, 512), Err(DeviceError::NotHeld));
        d.give_back(a);
        assert_eq!(d.finished(), Some((a, Ok(()))));
        assert_eq!((d.in_flight(), d.finished()), (0, None));
        // A bad range leaves the buffer held; an id the caller does not hold is refused.
        assert_eq!(d.start(b, Io::Read, 64, 512), Err(DeviceError::OutOfRange));
        assert!(d.buffer(b).is_some());
        assert_eq!(d.start(BufId(99), Io::Read, 0, 512), Err(DeviceError::NotHeld));
        d.start(b, Io::Read, 3, 512).unwrap();
        assert_eq!(wait_for(&mut d, b), Ok(()));
        assert_eq!(&d.buffer(b).unwrap()[..512], &[9; 512][..]);
        for id in ids {
            d.give_back(id);
        }
        assert_eq!(core::iter::from_fn(|| d.take()).count(), RAM_DISK_DEPTH);
    }
}
