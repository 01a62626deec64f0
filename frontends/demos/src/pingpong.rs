//! The ping/pong test protocol: a checksummed message and its echo over a shared ring.
//! 28-byte requests, 12-byte responses: 128 slots on one page.
use shared_ring::{RingEntry, RingProtocol};

pub const RING_SLOTS: u32 = 128;

/// A request: `seq` and a payload derived from it, with a checksum over both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    pub id: u16,
    pub seq: u32,
    pub payload: [u32; 4],
    pub checksum: u32,
}

/// The answer: the backend's own checksum of what it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pong {
    pub id: u16,
    /// 0 if the request's checksum matched, -1 otherwise.
    pub status: i16,
    pub seq: u32,
    pub checksum: u32,
}

pub fn checksum(seq: u32, payload: &[u32; 4]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for w in core::iter::once(seq).chain(payload.iter().copied()) {
        for b in w.to_le_bytes() {
            h = (h ^ b as u32).wrapping_mul(0x0100_0193);
        }
    }
    h
}

impl Ping {
    pub fn new(seq: u32) -> Self {
        let payload = [seq.wrapping_mul(2654435761), seq ^ 0xdead_beef, seq.rotate_left(13), !seq];
        Self { id: (seq % RING_SLOTS) as u16, seq, payload, checksum: checksum(seq, &payload) }
    }
}

fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}

impl RingEntry for Ping {
    type Bytes = [u8; 28];
    fn from_bytes(b: &Self::Bytes) -> Self {
        let mut payload = [0; 4];
        for (i, w) in payload.iter_mut().enumerate() {
            *w = u32_at(b, 8 + i * 4);
        }
        Self { id: u16::from_le_bytes([b[0], b[1]]), seq: u32_at(b, 4), payload, checksum: u32_at(b, 24) }
    }
    fn to_bytes(&self) -> Self::Bytes {
        let mut b = [0; 28];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[4..8].copy_from_slice(&self.seq.to_le_bytes());
        for (i, w) in self.payload.iter().enumerate() {
            b[8 + i * 4..12 + i * 4].copy_from_slice(&w.to_le_bytes());
        }
        b[24..28].copy_from_slice(&self.checksum.to_le_bytes());
        b
    }
    fn tracking_id(&self) -> Option<u64> {
        Some(self.id as u64)
    }
}

impl RingEntry for Pong {
    type Bytes = [u8; 12];
    fn from_bytes(b: &Self::Bytes) -> Self {
        Self {
            id: u16::from_le_bytes([b[0], b[1]]),
            status: i16::from_le_bytes([b[2], b[3]]),
            seq: u32_at(b, 4),
            checksum: u32_at(b, 8),
        }
    }
    fn to_bytes(&self) -> Self::Bytes {
        let mut b = [0; 12];
        b[0..2].copy_from_slice(&self.id.to_le_bytes());
        b[2..4].copy_from_slice(&self.status.to_le_bytes());
        b[4..8].copy_from_slice(&self.seq.to_le_bytes());
        b[8..12].copy_from_slice(&self.checksum.to_le_bytes());
        b
    }
    fn tracking_id(&self) -> Option<u64> {
        Some(self.id as u64)
    }
}

pub struct PingPong;

impl RingProtocol for PingPong {
    type Request = Ping;
    type Response = Pong;
}
