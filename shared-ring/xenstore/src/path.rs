//! Node paths: validation (shared-ring's syntax rules), resolution of relative paths under
//! `/local/domain/<id>/`, and the parent/child arithmetic the tree needs. Paths inside the store
//! are always absolute and canonical (validated: no `//`, no trailing `/`, no `.`).

use alloc::vec::Vec;

use shared_ring::wire::xenstore::{ABS_PATH_MAX, validate_path};

use crate::DomId;
use crate::error::StoreError;

/// `/local/domain`, the parent of every domain's home.
pub const LOCAL_DOMAIN: &[u8] = b"/local/domain";

/// `/local/domain/<domid>`.
pub fn domain_path(domid: DomId) -> Vec<u8> {
    let mut path = Vec::with_capacity(LOCAL_DOMAIN.len() + 6);
    path.extend_from_slice(LOCAL_DOMAIN);
    path.push(b'/');
    push_decimal(&mut path, u32::from(domid));
    path
}

/// Append `value` in decimal.
pub fn push_decimal(out: &mut Vec<u8>, value: u32) {
    let mut digits = [0u8; 10];
    let mut n = value;
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Parse a decimal without sign or leading zeros (except `0` itself), at most `max`.
pub fn parse_decimal(text: &[u8], max: u64) -> Option<u64> {
    if text.is_empty() || text.len() > 20 || (text.len() > 1 && text[0] == b'0') {
        return None;
    }
    let mut value: u64 = 0;
    for &c in text {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    (value <= max).then_some(value)
}

/// Validate `raw` and make it absolute for `domid`: relative paths resolve under
/// `/local/domain/<domid>/`. The result is at most `XENSTORE_ABS_PATH_MAX` bytes.
pub fn resolve(domid: DomId, raw: &[u8]) -> Result<Vec<u8>, StoreError> {
    validate_path(raw).map_err(|_| StoreError::InvalidRequest)?;
    if raw.first() == Some(&b'/') {
        return Ok(raw.to_vec());
    }
    let mut path = domain_path(domid);
    path.push(b'/');
    path.extend_from_slice(raw);
    if path.len() > ABS_PATH_MAX {
        return Err(StoreError::InvalidRequest);
    }
    Ok(path)
}

/// The parent of a canonical absolute path; `None` for `/`.
pub fn parent(path: &[u8]) -> Option<&[u8]> {
    if path == b"/" {
        return None;
    }
    let slash = path.iter().rposition(|&c| c == b'/')?;
    Some(if slash == 0 { b"/" } else { &path[..slash] })
}

/// The last component (`c` for `/a/b/c`); empty for `/`.
pub fn last_component(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&c| c == b'/') {
        Some(slash) => &path[slash + 1..],
        None => path,
    }
}

/// `parent/name`.
pub fn child(parent: &[u8], name: &[u8]) -> Vec<u8> {
    let mut path = Vec::with_capacity(parent.len() + 1 + name.len());
    path.extend_from_slice(parent);
    if parent != b"/" {
        path.push(b'/');
    }
    path.extend_from_slice(name);
    path
}

/// Whether `path` is `ancestor` or lies below it (`/a/b` is below `/a`, `/ab` is not).
pub fn is_at_or_below(path: &[u8], ancestor: &[u8]) -> bool {
    if ancestor == b"/" {
        return path.first() == Some(&b'/');
    }
    match path.strip_prefix(ancestor) {
        Some(rest) => rest.is_empty() || rest.first() == Some(&b'/'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_relative_paths_under_the_domain_home() {
        assert_eq!(resolve(7, b"device/vif").unwrap(), b"/local/domain/7/device/vif");
        assert_eq!(resolve(7, b"/tool/x").unwrap(), b"/tool/x");
        assert_eq!(domain_path(0), b"/local/domain/0");
        assert_eq!(domain_path(65535), b"/local/domain/65535");
    }

    #[test]
    fn rejects_traversal_and_malformed_paths() {
        for bad in [
            &b""[..],
            b"..",
            b"/local/domain/1/../2",
            b"/local//domain",
            b"/a/",
            b"a/",
            b"/a\0b",
            b"/a b",
            b"/a\xc3\xa9",
            b"./x",
        ] {
            assert_eq!(resolve(1, bad), Err(StoreError::InvalidRequest), "{bad:?}");
        }
        let long_relative = alloc::vec![b'a'; 2048];
        // 2048 is within REL_PATH_MAX and the result within ABS_PATH_MAX.
        assert!(resolve(1, &long_relative).is_ok());
        let mut too_long = alloc::vec![b'a'; 3073];
        too_long[0] = b'/';
        assert!(resolve(1, &too_long).is_err());
    }

    #[test]
    fn parent_child_and_ancestry() {
        assert_eq!(parent(b"/"), None);
        assert_eq!(parent(b"/a"), Some(&b"/"[..]));
        assert_eq!(parent(b"/a/b/c"), Some(&b"/a/b"[..]));
        assert_eq!(last_component(b"/a/b/c"), b"c");
        assert_eq!(child(b"/", b"a"), b"/a");
        assert_eq!(child(b"/a", b"b"), b"/a/b");
        assert!(is_at_or_below(b"/a/b", b"/a"));
        assert!(is_at_or_below(b"/a", b"/a"));
        assert!(!is_at_or_below(b"/ab", b"/a"));
        assert!(is_at_or_below(b"/ab", b"/"));
        assert!(!is_at_or_below(b"/a", b"/a/b"));
    }

    #[test]
    fn decimals() {
        let mut out = Vec::new();
        push_decimal(&mut out, 4294967295);
        assert_eq!(out, b"4294967295");
        assert_eq!(parse_decimal(b"65535", 65535), Some(65535));
        assert_eq!(parse_decimal(b"65536", 65535), None);
        assert_eq!(parse_decimal(b"0", 1), Some(0));
        for bad in [&b""[..], b"01", b"-1", b"+1", b"1a", b"99999999999999999999999"] {
            assert_eq!(parse_decimal(bad, u64::MAX), None, "{bad:?}");
        }
    }
}
