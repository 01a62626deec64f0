//! pcap (libpcap file format, v2.4, microsecond timestamps, LINKTYPE_ETHERNET) on the console.
//!
//! The capture is written as `pcap <hex>` console lines. Every line is a chunk of at most
//! [`BYTES_PER_LINE`] bytes of the pcap file in lower-case hex (two digits per byte, no
//! separators), so a line stays under the hypervisor's console line limit (200 characters,
//! `hv-core/src/console.rs`; `"pcap "` + 192 hex digits = 197). The first line is the 24-byte
//! global header on its own; each record (16-byte record header + frame) starts on a new line and
//! takes as many lines as it needs. The host rebuilds the file by decoding the hex of every
//! `pcap` line in order and concatenating the bytes. A netback instance writes the global header
//! once (before its first record); a later instance (backend restart) writes it again, so a host
//! that sees the 24-byte header line again starts a new file (or skips the line).
use core::fmt::Write;

/// `TCPDUMP_MAGIC`, microsecond timestamps.
pub const MAGIC: u32 = 0xa1b2_c3d4;
/// Bytes kept per packet.
pub const SNAPLEN: u32 = 65535;
/// `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// Bytes of the file encoded per console line.
pub const BYTES_PER_LINE: usize = 96;
/// The console line prefix (followed by the hex).
pub const PREFIX: &str = "pcap ";

/// The 24-byte global header (little-endian, as written by a little-endian host).
pub fn global_header() -> [u8; 24] {
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..6].copy_from_slice(&2u16.to_le_bytes());
    h[6..8].copy_from_slice(&4u16.to_le_bytes());
    // thiszone = 0, sigfigs = 0
    h[16..20].copy_from_slice(&SNAPLEN.to_le_bytes());
    h[20..24].copy_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
    h
}

/// The 16-byte record header of a `len`-byte frame captured at `ts_ns` (ns since boot).
pub fn record_header(ts_ns: u64, len: usize) -> [u8; 16] {
    let sec = (ts_ns / 1_000_000_000) as u32;
    let usec = ((ts_ns % 1_000_000_000) / 1000) as u32;
    let len = len.min(u32::MAX as usize) as u32;
    let mut h = [0u8; 16];
    h[0..4].copy_from_slice(&sec.to_le_bytes());
    h[4..8].copy_from_slice(&usec.to_le_bytes());
    h[8..12].copy_from_slice(&len.min(SNAPLEN).to_le_bytes());
    h[12..16].copy_from_slice(&len.to_le_bytes());
    h
}

/// A fixed buffer for one console line's hex.
struct Line {
    buf: [u8; BYTES_PER_LINE * 2],
    len: usize,
}

impl Line {
    fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever stored.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl Write for Line {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

/// Encodes the concatenation of `parts` as hex lines of at most [`BYTES_PER_LINE`] bytes each
/// (without the prefix) and calls `emit` for each line. Nothing is allocated.
pub fn hex_lines(parts: &[&[u8]], mut emit: impl FnMut(&str)) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut line = Line { buf: [0; BYTES_PER_LINE * 2], len: 0 };
    for b in parts.iter().flat_map(|p| p.iter()) {
        if line.len == line.buf.len() {
            emit(line.as_str());
            line.len = 0;
        }
        line.buf[line.len] = DIGITS[usize::from(b >> 4)];
        line.buf[line.len + 1] = DIGITS[usize::from(b & 15)];
        line.len += 2;
    }
    if line.len > 0 {
        emit(line.as_str());
    }
}

/// The lines (without prefix) of one record.
pub fn record_lines(ts_ns: u64, frame: &[u8], emit: impl FnMut(&str)) {
    let h = record_header(ts_ns, frame.len());
    hex_lines(&[&h, frame], emit);
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;
    use alloc::vec::Vec;

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
    }

    #[test]
    fn global_header_bytes() {
        assert_eq!(
            global_header(),
            [
                0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0 //
            ]
        );
        let mut lines = Vec::new();
        hex_lines(&[&global_header()], |l| lines.push(String::from(l)));
        assert_eq!(lines, ["d4c3b2a1020004000000000000000000ffff000001000000"]);
    }

    #[test]
    fn record_header_bytes() {
        // 3.000123456 s, 60-byte frame.
        let h = record_header(3_000_123_456, 60);
        assert_eq!(h, [3, 0, 0, 0, 0x7b, 0, 0, 0, 60, 0, 0, 0, 60, 0, 0, 0]);
        // Longer than snaplen: incl_len capped, orig_len kept.
        let h = record_header(0, 70000);
        assert_eq!(&h[8..], &[0xff, 0xff, 0, 0, 0x70, 0x11, 1, 0]);
    }

    #[test]
    fn records_split_into_bounded_lines_that_concatenate_back() {
        let frame: Vec<u8> = (0..1514u32).map(|i| (i * 7) as u8).collect();
        let mut lines = Vec::new();
        record_lines(42_000_001_000, &frame, |l| lines.push(String::from(l)));
        assert_eq!(lines.len(), (16 + 1514usize).div_ceil(BYTES_PER_LINE));
        assert!(lines.iter().all(|l| l.len() <= 2 * BYTES_PER_LINE && PREFIX.len() + l.len() < 200));
        let bytes: Vec<u8> = lines.iter().flat_map(|l| unhex(l)).collect();
        assert_eq!(&bytes[..16], &record_header(42_000_001_000, 1514));
        assert_eq!(&bytes[16..], &frame[..]);
        // A short record is one line.
        let mut lines = Vec::new();
        record_lines(0, &[0xab; 14], |l| lines.push(String::from(l)));
        assert_eq!(lines, [alloc::format!("{}{}", "00000000000000000e0000000e000000", "ab".repeat(14))]);
    }
}
