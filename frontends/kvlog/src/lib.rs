//! kvlog: an append-only key-value log on a block device.
//!
//! # On-disk format (see also `docs/kvlog.md`)
//!
//! All integers little-endian; sectors are 512 bytes.
//!
//! **Sector 0, the header:**
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `"HVKVLOG1"` |
//! | 8 | 4 | format version, 1 |
//! | 12 | 4 | sector size, 512 |
//! | 16 | 8 | FNV-1a 64 of bytes 0..16 |
//! | 24 | 488 | zero |
//!
//! **Records** follow from sector 1, each starting on a sector boundary and padded with zeros to
//! one: a 32-byte record header, the key, the value.
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | record magic `"KVR1"` |
//! | 4 | 2 | key length, 1..=255 |
//! | 6 | 2 | flags, 0 |
//! | 8 | 4 | value length, 0..=16384 |
//! | 12 | 4 | zero |
//! | 16 | 8 | sequence number: 1 for the first record, +1 for each next |
//! | 24 | 8 | FNV-1a 64 over bytes 0..24 of the header, then the key, then the value |
//! | 32 | key length | key |
//! | … | value length | value |
//!
//! An append writes the record's sectors plus one zero sector after it (the end mark) in one
//! write, then flushes, and only then reports the record as stored. Recovery reads from sector
//! 1 and accepts records while the magic, lengths, checksum and the expected sequence number
//! all hold; the first record that fails any check (a torn or corrupt tail, or the end mark) is
//! where the log ends and where the next append goes. The index maps each key to its newest
//! record.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

pub const SECTOR: usize = 512;
pub const MAGIC: &[u8; 8] = b"HVKVLOG1";
pub const VERSION: u32 = 1;
pub const RECORD_MAGIC: &[u8; 4] = b"KVR1";
pub const RECORD_HEADER: usize = 32;
pub const MAX_KEY: usize = 255;
pub const MAX_VALUE: usize = 16384;
/// The first record's sector.
pub const FIRST_RECORD: u64 = 1;

/// What kvlog needs from a disk (blkfront in the DomU, memory in the tests).
pub trait Disk {
    type Error: fmt::Debug;
    /// Size in sectors.
    fn sectors(&self) -> u64;
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), Self::Error>;
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), Self::Error>;
    fn flush(&mut self) -> Result<(), Self::Error>;
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(h: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(h, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}
pub const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error<E> {
    Disk(E),
    /// Sector 0 is neither a kvlog header nor blank.
    NotAKvlog,
    /// The header's magic is right but its checksum or version is not.
    BadHeader,
    /// Key empty or longer than 255 bytes, or value longer than 16 KiB.
    TooLarge,
    /// No room for the record and its end mark.
    Full,
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Disk(e) => write!(f, "disk error: {e:?}"),
            Error::NotAKvlog => f.write_str("the disk holds something else (sector 0 is not a kvlog header)"),
            Error::BadHeader => f.write_str("corrupt kvlog header"),
            Error::TooLarge => f.write_str("key or value too large"),
            Error::Full => f.write_str("the log is full"),
        }
    }
}

/// Where a record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub sector: u64,
    pub seq: u64,
    pub key_len: usize,
    pub value_len: usize,
}

/// What opening found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recovery {
    /// A blank disk was formatted.
    pub formatted: bool,
    /// Valid records found.
    pub records: u64,
    /// Sector where the scan stopped (the next append goes there).
    pub tail: u64,
}

pub struct Kvlog<D: Disk> {
    disk: D,
    index: BTreeMap<Vec<u8>, Location>,
    tail: u64,
    next_seq: u64,
    pub recovery: Recovery,
}

fn header_sector() -> [u8; SECTOR] {
    let mut h = [0; SECTOR];
    h[0..8].copy_from_slice(MAGIC);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&(SECTOR as u32).to_le_bytes());
    let sum = fnv1a64(FNV_OFFSET, &h[0..16]);
    h[16..24].copy_from_slice(&sum.to_le_bytes());
    h
}

/// Sectors a record of these lengths occupies.
pub fn record_sectors(key_len: usize, value_len: usize) -> u64 {
    (RECORD_HEADER + key_len + value_len).div_ceil(SECTOR) as u64
}

/// Encodes a record (whole sectors, zero-padded).
pub fn encode_record(seq: u64, key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut b = vec![0; record_sectors(key.len(), value.len()) as usize * SECTOR];
    b[0..4].copy_from_slice(RECORD_MAGIC);
    b[4..6].copy_from_slice(&(key.len() as u16).to_le_bytes());
    b[8..12].copy_from_slice(&(value.len() as u32).to_le_bytes());
    b[16..24].copy_from_slice(&seq.to_le_bytes());
    let sum = fnv1a64(fnv1a64(fnv1a64(FNV_OFFSET, &b[0..24]), key), value);
    b[24..32].copy_from_slice(&sum.to_le_bytes());
    b[32..32 + key.len()].copy_from_slice(key);
    b[32 + key.len()..32 + key.len() + value.len()].copy_from_slice(value);
    b
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap_or([0; 8]))
}

impl<D: Disk> Kvlog<D> {
    /// Opens the log on `disk`: formats a blank disk (sector 0 all zeros), else checks the
    /// header and rebuilds the index by scanning until the first invalid record.
    pub fn open(mut disk: D) -> Result<Self, Error<D::Error>> {
        let mut h = [0u8; SECTOR];
        disk.read(0, &mut h).map_err(Error::Disk)?;
        let mut formatted = false;
        if h.iter().all(|&b| b == 0) {
            let mut first = vec![0u8; 2 * SECTOR];
            first[..SECTOR].copy_from_slice(&header_sector());
            // Header plus an end mark where the first record goes.
            disk.write(0, &first).map_err(Error::Disk)?;
            disk.flush().map_err(Error::Disk)?;
            formatted = true;
        } else if &h[0..8] != MAGIC {
            return Err(Error::NotAKvlog);
        } else if h[..24] != header_sector()[..24] {
            return Err(Error::BadHeader);
        }
        let mut log = Self {
            disk,
            index: BTreeMap::new(),
            tail: FIRST_RECORD,
            next_seq: 1,
            recovery: Recovery { formatted, records: 0, tail: FIRST_RECORD },
        };
        log.scan().map_err(Error::Disk)?;
        log.recovery.tail = log.tail;
        Ok(log)
    }

    /// Reads records from sector 1 until one does not check out.
    fn scan(&mut self) -> Result<(), D::Error> {
        let total = self.disk.sectors();
        let mut first = [0u8; SECTOR];
        // Each iteration consumes at least one sector: bounded by the disk size.
        while self.tail < total {
            self.disk.read(self.tail, &mut first)?;
            if &first[0..4] != RECORD_MAGIC || first[6..8] != [0, 0] || first[12..16] != [0; 4] {
                break;
            }
            let key_len = usize::from(u16::from_le_bytes([first[4], first[5]]));
            let value_len = u32_at(&first, 8) as usize;
            if key_len == 0 || key_len > MAX_KEY || value_len > MAX_VALUE {
                break;
            }
            let n = record_sectors(key_len, value_len);
            if self.tail + n > total || u64_at(&first, 16) != self.next_seq {
                break;
            }
            let mut rec = vec![0u8; n as usize * SECTOR];
            rec[..SECTOR].copy_from_slice(&first);
            if n > 1 {
                self.disk.read(self.tail + 1, &mut rec[SECTOR..])?;
            }
            let body = &rec[RECORD_HEADER..RECORD_HEADER + key_len + value_len];
            let sum = fnv1a64(fnv1a64(FNV_OFFSET, &rec[0..24]), body);
            if sum != u64_at(&rec, 24) {
                break;
            }
            let key = rec[RECORD_HEADER..RECORD_HEADER + key_len].to_vec();
            self.index.insert(key, Location { sector: self.tail, seq: self.next_seq, key_len, value_len });
            self.tail += n;
            self.next_seq += 1;
            self.recovery.records += 1;
        }
        Ok(())
    }

    /// Appends a record; returns its sequence number once it is durable (written and flushed).
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<u64, Error<D::Error>> {
        if key.is_empty() || key.len() > MAX_KEY || value.len() > MAX_VALUE {
            return Err(Error::TooLarge);
        }
        let mut rec = encode_record(self.next_seq, key, value);
        let n = rec.len() as u64 / SECTOR as u64;
        if self.tail + n + 1 > self.disk.sectors() {
            return Err(Error::Full);
        }
        rec.extend_from_slice(&[0; SECTOR]); // the end mark
        self.disk.write(self.tail, &rec).map_err(Error::Disk)?;
        self.disk.flush().map_err(Error::Disk)?;
        let seq = self.next_seq;
        self.index
            .insert(key.to_vec(), Location { sector: self.tail, seq, key_len: key.len(), value_len: value.len() });
        self.tail += n;
        self.next_seq += 1;
        Ok(seq)
    }

    /// The newest value of `key`, read back from the disk and checked again.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>, Error<D::Error>> {
        let Some(loc) = self.index.get(key).copied() else { return Ok(None) };
        let n = record_sectors(loc.key_len, loc.value_len);
        let mut rec = vec![0u8; n as usize * SECTOR];
        self.disk.read(loc.sector, &mut rec).map_err(Error::Disk)?;
        let body = &rec[RECORD_HEADER..RECORD_HEADER + loc.key_len + loc.value_len];
        let sum = fnv1a64(fnv1a64(FNV_OFFSET, &rec[0..24]), body);
        if sum != u64_at(&rec, 24) || u64_at(&rec, 16) != loc.seq || &body[..loc.key_len] != key {
            return Err(Error::BadHeader);
        }
        Ok(Some(body[loc.key_len..].to_vec()))
    }

    /// Distinct keys.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Records in the log (including superseded ones).
    pub fn records(&self) -> u64 {
        self.next_seq - 1
    }

    /// Sector where the next record goes.
    pub fn tail(&self) -> u64 {
        self.tail
    }

    pub fn keys(&self) -> impl Iterator<Item = &[u8]> {
        self.index.keys().map(Vec::as_slice)
    }

    pub fn disk_mut(&mut self) -> &mut D {
        &mut self.disk
    }

    pub fn into_disk(self) -> D {
        self.disk
    }
}

#[cfg(test)]
mod tests;
