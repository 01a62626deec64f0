//! A vdisk's `params` store key: `offset_mib=N size_mib=M mode=r|w`, parsed strictly.
//!
//! Every key must appear exactly once, nothing else may appear, numbers are plain decimal, the
//! size is not zero, and the region must lie inside the backing device.
use core::fmt;

/// Sectors per MiB.
pub const SECTORS_PER_MIB: u64 = 2048;

/// A vdisk: a region of the backing device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// First sector on the backing device.
    pub start: u64,
    /// Size in sectors.
    pub sectors: u64,
    pub read_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParamsError {
    /// A word that is not `key=value`.
    NotKeyValue,
    UnknownKey,
    DuplicateKey(&'static str),
    Missing(&'static str),
    BadNumber(&'static str),
    BadMode,
    ZeroSize,
    /// The region ends past the backing device (`end_mib`, `device_mib`).
    PastDevice {
        end_mib: u64,
        device_mib: u64,
    },
}

impl fmt::Display for ParamsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParamsError::NotKeyValue => f.write_str("a word is not key=value"),
            ParamsError::UnknownKey => f.write_str("unknown key (allowed: offset_mib, size_mib, mode)"),
            ParamsError::DuplicateKey(k) => write!(f, "{k} given twice"),
            ParamsError::Missing(k) => write!(f, "{k} missing"),
            ParamsError::BadNumber(k) => write!(f, "{k} is not a decimal number"),
            ParamsError::BadMode => f.write_str("mode must be r or w"),
            ParamsError::ZeroSize => f.write_str("size_mib is 0"),
            ParamsError::PastDevice { end_mib, device_mib } => {
                write!(f, "region ends at {end_mib} MiB, past the {device_mib} MiB backing device")
            }
        }
    }
}

fn number(key: &'static str, v: &str) -> Result<u64, ParamsError> {
    if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ParamsError::BadNumber(key));
    }
    v.parse().map_err(|_| ParamsError::BadNumber(key))
}

/// Parses `params` for a backing device of `device_sectors` sectors.
pub fn parse(params: &str, device_sectors: u64) -> Result<Region, ParamsError> {
    let (mut offset, mut size, mut mode) = (None, None, None);
    for word in params.split_ascii_whitespace() {
        let (k, v) = word.split_once('=').ok_or(ParamsError::NotKeyValue)?;
        let (slot, name) = match k {
            "offset_mib" => (&mut offset, "offset_mib"),
            "size_mib" => (&mut size, "size_mib"),
            "mode" => {
                if mode.is_some() {
                    return Err(ParamsError::DuplicateKey("mode"));
                }
                mode = Some(match v {
                    "r" => true,
                    "w" => false,
                    _ => return Err(ParamsError::BadMode),
                });
                continue;
            }
            _ => return Err(ParamsError::UnknownKey),
        };
        if slot.is_some() {
            return Err(ParamsError::DuplicateKey(name));
        }
        *slot = Some(number(name, v)?);
    }
    let offset = offset.ok_or(ParamsError::Missing("offset_mib"))?;
    let size = size.ok_or(ParamsError::Missing("size_mib"))?;
    let read_only = mode.ok_or(ParamsError::Missing("mode"))?;
    if size == 0 {
        return Err(ParamsError::ZeroSize);
    }
    let device_mib = device_sectors / SECTORS_PER_MIB;
    let end_mib = offset.saturating_add(size);
    if end_mib > device_mib {
        return Err(ParamsError::PastDevice { end_mib, device_mib });
    }
    Ok(Region { start: offset * SECTORS_PER_MIB, sectors: size * SECTORS_PER_MIB, read_only })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: u64 = 32 * SECTORS_PER_MIB;

    #[test]
    fn good_params() {
        assert_eq!(
            parse("offset_mib=4 size_mib=8 mode=w", DEV),
            Ok(Region { start: 4 * 2048, sectors: 8 * 2048, read_only: false })
        );
        assert_eq!(
            parse("  mode=r size_mib=32 offset_mib=0 ", DEV),
            Ok(Region { start: 0, sectors: 32 * 2048, read_only: true })
        );
    }

    #[test]
    fn bad_params() {
        for (p, e) in [
            ("", ParamsError::Missing("offset_mib")),
            ("offset_mib=0 size_mib=1", ParamsError::Missing("mode")),
            ("offset_mib=0 mode=w", ParamsError::Missing("size_mib")),
            ("offset_mib=0 size_mib=1 mode=x", ParamsError::BadMode),
            ("offset_mib=0 size_mib=1 mode=rw", ParamsError::BadMode),
            ("offset_mib=0 size_mib=1 mode=w mode=r", ParamsError::DuplicateKey("mode")),
            ("offset_mib=0 offset_mib=0 size_mib=1 mode=w", ParamsError::DuplicateKey("offset_mib")),
            ("offset_mib=-1 size_mib=1 mode=w", ParamsError::BadNumber("offset_mib")),
            ("offset_mib=0x10 size_mib=1 mode=w", ParamsError::BadNumber("offset_mib")),
            ("offset_mib=0 size_mib= mode=w", ParamsError::BadNumber("size_mib")),
            ("offset_mib=0 size_mib=99999999999999999999 mode=w", ParamsError::BadNumber("size_mib")),
            ("offset_mib=0 size_mib=0 mode=w", ParamsError::ZeroSize),
            ("offset_mib=30 size_mib=3 mode=w", ParamsError::PastDevice { end_mib: 33, device_mib: 32 }),
            ("offset_mib=0 size_mib=1 mode=w extra=1", ParamsError::UnknownKey),
            ("offset_mib=0 size_mib=1 mode=w junk", ParamsError::NotKeyValue),
        ] {
            assert_eq!(parse(p, DEV), Err(e), "{p:?}");
        }
    }
}
