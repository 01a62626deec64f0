//! The backing device: what blkback needs from a disk, and the RAM disk that provides it today.
//!
//! The trait is synchronous: each call returns once the device has completed the operation, so
//! the backend acknowledges a write only after `write_sectors` (and, for flushes and barriers,
//! `flush`) returned `Ok`. A virtio-blk implementation submits a request to its virtqueue and
//! polls (or blocks on its interrupt's event channel) until the used ring returns it.
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use crate::SECTOR_SIZE;

/// Why a device operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceError {
    /// The sector range is not inside the device, or the buffer is not whole sectors.
    OutOfRange,
    /// The device reported an I/O error.
    Io,
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::OutOfRange => f.write_str("sector range outside the device"),
            DeviceError::Io => f.write_str("device I/O error"),
        }
    }
}

/// A block device of 512-byte sectors.
pub trait BlockDevice {
    /// Size in sectors.
    fn capacity(&self) -> u64;
    /// Reads `buf.len() / 512` sectors starting at `sector` (`buf` is whole sectors).
    fn read_sectors(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DeviceError>;
    /// Writes whole sectors; returns once the device holds the data (volatile cache allowed).
    fn write_sectors(&mut self, sector: u64, buf: &[u8]) -> Result<(), DeviceError>;
    /// Returns once everything written before is durable.
    fn flush(&mut self) -> Result<(), DeviceError>;
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

/// A disk in RAM (contents are lost with the domain). Counts operations for tests and reports.
pub struct RamDisk {
    data: Vec<u8>,
    pub reads: u64,
    pub writes: u64,
    pub flushes: u64,
}

impl RamDisk {
    /// A zeroed disk of `sectors` sectors.
    pub fn new(sectors: u64) -> Self {
        Self { data: vec![0; sectors as usize * SECTOR_SIZE], reads: 0, writes: 0, flushes: 0 }
    }

    /// A zeroed disk of `mib` MiB.
    pub fn with_mib(mib: u64) -> Self {
        Self::new(mib * 2048)
    }

    /// The raw contents (tests).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }
}

impl BlockDevice for RamDisk {
    fn capacity(&self) -> u64 {
        (self.data.len() / SECTOR_SIZE) as u64
    }

    fn read_sectors(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let r = byte_range(self.capacity(), sector, buf.len())?;
        buf.copy_from_slice(&self.data[r]);
        self.reads += 1;
        Ok(())
    }

    fn write_sectors(&mut self, sector: u64, buf: &[u8]) -> Result<(), DeviceError> {
        let r = byte_range(self.capacity(), sector, buf.len())?;
        self.data[r].copy_from_slice(buf);
        self.writes += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DeviceError> {
        self.flushes += 1;
        Ok(())
    }
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
}
