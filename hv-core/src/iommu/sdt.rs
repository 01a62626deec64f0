//! ACPI system description tables: the common header and the RSDT/XSDT's list of table
//! addresses (ACPI 6.5 §5.2.6–5.2.8). Plain Rust over bytes the caller read from firmware
//! memory; a short, unsigned or badly checksummed table is an error, never a panic.

use alloc::vec::Vec;

/// Length of the common header (signature, length, revision, checksum, OEM fields).
pub const HEADER_LEN: usize = 36;
/// Longest table read (a DMAR or root table beyond this is refused as hostile or broken).
pub const MAX_TABLE_LEN: u32 = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SdtError {
    /// Fewer bytes than the header or the table's own `Length` says.
    Truncated {
        len: usize,
        need: usize,
    },
    /// `Length` below the header or above [`MAX_TABLE_LEN`].
    BadLength(u32),
    BadSignature {
        want: [u8; 4],
        got: [u8; 4],
    },
    BadChecksum,
}

impl core::fmt::Display for SdtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = |b: &[u8; 4]| {
            b.iter().map(|&c| if c.is_ascii_graphic() { c as char } else { '?' }).collect::<alloc::string::String>()
        };
        match self {
            Self::Truncated { len, need } => write!(f, "ACPI table is {len} bytes, needs {need}"),
            Self::BadLength(l) => write!(f, "ACPI table length {l} is below {HEADER_LEN} or above {MAX_TABLE_LEN}"),
            Self::BadSignature { want, got } => write!(f, "ACPI table signature {:?}, expected {:?}", s(got), s(want)),
            Self::BadChecksum => write!(f, "ACPI table checksum does not sum to 0"),
        }
    }
}

/// The `Length` field of a header in `b` (its first 36 bytes), checked against the bounds.
pub fn table_len(b: &[u8]) -> Result<u32, SdtError> {
    if b.len() < HEADER_LEN {
        return Err(SdtError::Truncated { len: b.len(), need: HEADER_LEN });
    }
    let len = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
    if (len as usize) < HEADER_LEN || len > MAX_TABLE_LEN {
        return Err(SdtError::BadLength(len));
    }
    Ok(len)
}

/// Checks a whole table (`b` holds at least its `Length` bytes; the rest is ignored) and
/// returns exactly its bytes.
pub fn check<'a>(b: &'a [u8], signature: &[u8; 4]) -> Result<&'a [u8], SdtError> {
    let len = table_len(b)? as usize;
    if b.len() < len {
        return Err(SdtError::Truncated { len: b.len(), need: len });
    }
    let got: [u8; 4] = [b[0], b[1], b[2], b[3]];
    if &got != signature {
        return Err(SdtError::BadSignature { want: *signature, got });
    }
    let t = &b[..len];
    if t.iter().fold(0u8, |a, &x| a.wrapping_add(x)) != 0 {
        return Err(SdtError::BadChecksum);
    }
    Ok(t)
}

/// The table addresses an RSDT (4-byte entries) or XSDT (8-byte entries) lists. A trailing
/// partial entry is ignored.
pub fn root_entries(b: &[u8], xsdt: bool) -> Result<Vec<u64>, SdtError> {
    let t = check(b, if xsdt { b"XSDT" } else { b"RSDT" })?;
    let body = &t[HEADER_LEN..];
    Ok(if xsdt {
        body.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()
    } else {
        body.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap_or([0; 4])) as u64).collect()
    })
}

/// Builds a table with a correct checksum (tests and fuzz seeds).
pub fn make_table(signature: &[u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let mut t = alloc::vec![0u8; HEADER_LEN];
    t[..4].copy_from_slice(signature);
    t[4..8].copy_from_slice(&((HEADER_LEN + body.len()) as u32).to_le_bytes());
    t[8] = revision;
    t[10..16].copy_from_slice(b"BOCHS ");
    t[16..24].copy_from_slice(b"BXPC    ");
    t.extend_from_slice(body);
    let sum = t.iter().fold(0u8, |a, &x| a.wrapping_add(x));
    t[9] = 0u8.wrapping_sub(sum);
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rsdt_and_xsdt_list_their_tables() {
        let body: Vec<u8> = [0x1000u32, 0x2000].iter().flat_map(|a| a.to_le_bytes()).collect();
        assert_eq!(root_entries(&make_table(b"RSDT", 1, &body), false).unwrap(), [0x1000, 0x2000]);
        let body: Vec<u8> = [0x1_0000_1000u64].iter().flat_map(|a| a.to_le_bytes()).collect();
        let mut x = make_table(b"XSDT", 1, &body);
        assert_eq!(root_entries(&x, true).unwrap(), [0x1_0000_1000]);
        x.extend([0xff; 8]); // bytes past Length are not the table's
        assert_eq!(root_entries(&x, true).unwrap(), [0x1_0000_1000]);
    }

    #[test]
    fn damaged_tables_are_errors() {
        let t = make_table(b"RSDT", 1, &[0; 8]);
        assert_eq!(root_entries(&t[..20], false), Err(SdtError::Truncated { len: 20, need: 36 }));
        assert_eq!(root_entries(&t[..40], false), Err(SdtError::Truncated { len: 40, need: 44 }));
        assert!(matches!(root_entries(&t, true), Err(SdtError::BadSignature { .. })));
        let mut bad = t.clone();
        bad[40] = 1;
        assert_eq!(root_entries(&bad, false), Err(SdtError::BadChecksum));
        let mut bad = t.clone();
        bad[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(root_entries(&bad, false), Err(SdtError::BadLength(u32::MAX)));
        let mut bad = t;
        bad[4..8].copy_from_slice(&3u32.to_le_bytes());
        assert_eq!(root_entries(&bad, false), Err(SdtError::BadLength(3)));
    }
}
