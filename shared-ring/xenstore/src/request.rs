//! Requests as typed values: parsed from a message's payload by the server, encoded by the
//! client. Payload rules follow docs/misc/xenstore.txt: single-argument requests are exactly
//! `arg\0`; `WRITE` is `path\0value` (the value is every byte after the first NUL); `WATCH` and
//! `UNWATCH` are `path\0token\0`; `SET_PERMS` is `path\0perm\0perm\0…`.

use alloc::vec::Vec;

use shared_ring::wire::xenstore::{PAYLOAD_MAX, XsType, XsdSockmsg};

use crate::DomId;
use crate::error::StoreError;
use crate::path::{parse_decimal, push_decimal};
use crate::perms::Permissions;

/// One store request. Paths are as sent (relative or absolute, not yet resolved).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Request<'a> {
    Read {
        path: &'a [u8],
    },
    Write {
        path: &'a [u8],
        value: &'a [u8],
    },
    Mkdir {
        path: &'a [u8],
    },
    Rm {
        path: &'a [u8],
    },
    Directory {
        path: &'a [u8],
    },
    GetPerms {
        path: &'a [u8],
    },
    SetPerms {
        path: &'a [u8],
        perms: Permissions,
    },
    Watch {
        path: &'a [u8],
        token: &'a [u8],
    },
    Unwatch {
        path: &'a [u8],
        token: &'a [u8],
    },
    TransactionStart,
    TransactionEnd {
        commit: bool,
    },
    GetDomainPath {
        domid: DomId,
    },
    /// Dom0 only: a domain's store ring is at `gfn`, signalled on `port`.
    Introduce {
        domid: DomId,
        gfn: u64,
        port: u32,
    },
    /// Dom0 only.
    Release {
        domid: DomId,
    },
    /// Dom0 only.
    IsDomainIntroduced {
        domid: DomId,
    },
    ResetWatches,
}

/// Split off the first NUL-terminated field.
fn field(payload: &[u8]) -> Result<(&[u8], &[u8]), StoreError> {
    let nul = payload.iter().position(|&b| b == 0).ok_or(StoreError::InvalidRequest)?;
    Ok((&payload[..nul], &payload[nul + 1..]))
}

/// Exactly one NUL-terminated argument.
fn one_arg(payload: &[u8]) -> Result<&[u8], StoreError> {
    match field(payload)? {
        (arg, []) => Ok(arg),
        _ => Err(StoreError::InvalidRequest),
    }
}

/// Every NUL-terminated field; the payload must end with a NUL.
fn all_fields(payload: &[u8]) -> Result<Vec<&[u8]>, StoreError> {
    let body = payload.strip_suffix(b"\0").ok_or(StoreError::InvalidRequest)?;
    Ok(body.split(|&b| b == 0).collect())
}

fn domid_arg(payload: &[u8]) -> Result<DomId, StoreError> {
    parse_decimal(one_arg(payload)?, u64::from(DomId::MAX)).map(|d| d as DomId).ok_or(StoreError::InvalidRequest)
}

impl<'a> Request<'a> {
    /// Decode the payload of a `kind` message. Types that are not requests (`WATCH_EVENT`,
    /// `ERROR`) are `InvalidRequest`; types this store does not implement are `Unsupported`.
    pub fn parse(kind: XsType, payload: &'a [u8]) -> Result<Self, StoreError> {
        Ok(match kind {
            XsType::Read => Request::Read { path: one_arg(payload)? },
            XsType::Mkdir => Request::Mkdir { path: one_arg(payload)? },
            XsType::Rm => Request::Rm { path: one_arg(payload)? },
            XsType::Directory => Request::Directory { path: one_arg(payload)? },
            XsType::GetPerms => Request::GetPerms { path: one_arg(payload)? },
            XsType::Write => {
                let (path, value) = field(payload)?;
                Request::Write { path, value }
            }
            XsType::SetPerms => {
                let fields = all_fields(payload)?;
                let (path, perms) = fields.split_first().ok_or(StoreError::InvalidRequest)?;
                Request::SetPerms { path, perms: Permissions::parse(perms.iter().copied())? }
            }
            XsType::Watch | XsType::Unwatch => {
                // `path\0token\0`, optionally followed by a depth (ignored).
                let fields = all_fields(payload)?;
                let (&path, &token) = (
                    fields.first().ok_or(StoreError::InvalidRequest)?,
                    fields.get(1).ok_or(StoreError::InvalidRequest)?,
                );
                if fields.len() > 3 {
                    return Err(StoreError::InvalidRequest);
                }
                if kind == XsType::Watch { Request::Watch { path, token } } else { Request::Unwatch { path, token } }
            }
            XsType::TransactionStart => Request::TransactionStart,
            XsType::TransactionEnd => match payload {
                b"T" | b"T\0" => Request::TransactionEnd { commit: true },
                b"F" | b"F\0" => Request::TransactionEnd { commit: false },
                _ => return Err(StoreError::InvalidRequest),
            },
            XsType::GetDomainPath => Request::GetDomainPath { domid: domid_arg(payload)? },
            XsType::Release => Request::Release { domid: domid_arg(payload)? },
            XsType::IsDomainIntroduced => Request::IsDomainIntroduced { domid: domid_arg(payload)? },
            XsType::Introduce => {
                let fields = all_fields(payload)?;
                let [domid, gfn, port] = fields.as_slice() else { return Err(StoreError::InvalidRequest) };
                let domid = parse_decimal(domid, u64::from(DomId::MAX)).ok_or(StoreError::InvalidRequest)?;
                let gfn = parse_decimal(gfn, u64::MAX).ok_or(StoreError::InvalidRequest)?;
                let port = parse_decimal(port, u64::from(u32::MAX)).ok_or(StoreError::InvalidRequest)?;
                Request::Introduce { domid: domid as DomId, gfn, port: port as u32 }
            }
            XsType::ResetWatches => Request::ResetWatches,
            XsType::WatchEvent | XsType::Error => return Err(StoreError::InvalidRequest),
            XsType::Control
            | XsType::Resume
            | XsType::SetTarget
            | XsType::DirectoryPart
            | XsType::GetFeature
            | XsType::SetFeature
            | XsType::GetQuota
            | XsType::SetQuota => return Err(StoreError::Unsupported),
        })
    }

    /// The message type.
    pub fn kind(&self) -> XsType {
        match self {
            Request::Read { .. } => XsType::Read,
            Request::Write { .. } => XsType::Write,
            Request::Mkdir { .. } => XsType::Mkdir,
            Request::Rm { .. } => XsType::Rm,
            Request::Directory { .. } => XsType::Directory,
            Request::GetPerms { .. } => XsType::GetPerms,
            Request::SetPerms { .. } => XsType::SetPerms,
            Request::Watch { .. } => XsType::Watch,
            Request::Unwatch { .. } => XsType::Unwatch,
            Request::TransactionStart => XsType::TransactionStart,
            Request::TransactionEnd { .. } => XsType::TransactionEnd,
            Request::GetDomainPath { .. } => XsType::GetDomainPath,
            Request::Introduce { .. } => XsType::Introduce,
            Request::Release { .. } => XsType::Release,
            Request::IsDomainIntroduced { .. } => XsType::IsDomainIntroduced,
            Request::ResetWatches => XsType::ResetWatches,
        }
    }

    /// The payload bytes.
    pub fn payload(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let nul_terminated = |out: &mut Vec<u8>, s: &[u8]| {
            out.extend_from_slice(s);
            out.push(0);
        };
        match self {
            Request::Read { path }
            | Request::Mkdir { path }
            | Request::Rm { path }
            | Request::Directory { path }
            | Request::GetPerms { path } => nul_terminated(&mut out, path),
            Request::Write { path, value } => {
                nul_terminated(&mut out, path);
                out.extend_from_slice(value);
            }
            Request::SetPerms { path, perms } => {
                nul_terminated(&mut out, path);
                perms.encode(&mut out);
            }
            Request::Watch { path, token } | Request::Unwatch { path, token } => {
                nul_terminated(&mut out, path);
                nul_terminated(&mut out, token);
            }
            Request::TransactionStart => out.push(0),
            Request::TransactionEnd { commit } => nul_terminated(&mut out, if *commit { b"T" } else { b"F" }),
            Request::GetDomainPath { domid } | Request::Release { domid } | Request::IsDomainIntroduced { domid } => {
                push_decimal(&mut out, u32::from(*domid));
                out.push(0);
            }
            Request::Introduce { domid, gfn, port } => {
                push_decimal(&mut out, u32::from(*domid));
                out.push(0);
                push_u64(&mut out, *gfn);
                out.push(0);
                push_decimal(&mut out, *port);
                out.push(0);
            }
            Request::ResetWatches => {}
        }
        out
    }

    /// The whole message (header + payload). `None` if the payload exceeds
    /// `XENSTORE_PAYLOAD_MAX`.
    pub fn encode(&self, req_id: u32, tx_id: u32) -> Option<Vec<u8>> {
        let payload = self.payload();
        if payload.len() > PAYLOAD_MAX as usize {
            return None;
        }
        let header = XsdSockmsg { msg_type: self.kind() as u32, req_id, tx_id, len: payload.len() as u32 };
        let mut out = Vec::with_capacity(16 + payload.len());
        out.extend_from_slice(&header.to_raw());
        out.extend_from_slice(&payload);
        Some(out)
    }
}

fn push_u64(out: &mut Vec<u8>, value: u64) {
    let high = value / 1_000_000_000;
    if high > 0 {
        push_u64(out, high);
        let low = (value % 1_000_000_000) as u32;
        let mut digits = Vec::new();
        push_decimal(&mut digits, low);
        out.extend(core::iter::repeat_n(b'0', 9 - digits.len()));
        out.extend_from_slice(&digits);
    } else {
        push_decimal(out, value as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::perms::Access;

    #[test]
    fn every_request_round_trips_through_its_encoding() {
        let perms = Permissions::new(3, Access::None).with(0, Access::Read);
        let requests = [
            Request::Read { path: b"/a" },
            Request::Write { path: b"a/b", value: b"v\0with nul" },
            Request::Write { path: b"a", value: b"" },
            Request::Mkdir { path: b"/m" },
            Request::Rm { path: b"/m" },
            Request::Directory { path: b"/" },
            Request::GetPerms { path: b"x" },
            Request::SetPerms { path: b"x", perms },
            Request::Watch { path: b"@releaseDomain", token: b"tok" },
            Request::Unwatch { path: b"/w", token: b"" },
            Request::TransactionStart,
            Request::TransactionEnd { commit: true },
            Request::TransactionEnd { commit: false },
            Request::GetDomainPath { domid: 65535 },
            Request::Introduce { domid: 9, gfn: 12_345_678_901_234, port: 7 },
            Request::Release { domid: 9 },
            Request::IsDomainIntroduced { domid: 0 },
            Request::ResetWatches,
        ];
        for request in requests {
            let bytes = request.encode(1, 0).unwrap();
            let header = XsdSockmsg::decode(bytes[..16].try_into().unwrap()).unwrap();
            assert_eq!(Request::parse(header.kind().unwrap(), &bytes[16..]), Ok(request.clone()));
        }
    }

    #[test]
    fn rejects_malformed_payloads() {
        let cases: [(XsType, &[u8]); 12] = [
            (XsType::Read, b"/a"),
            (XsType::Read, b"/a\0extra\0"),
            (XsType::Read, b""),
            (XsType::Write, b"/a"),
            (XsType::Watch, b"/a\0"),
            (XsType::Watch, b"/a\0t"),
            (XsType::SetPerms, b"/a\0"),
            (XsType::SetPerms, b"/a\0q1\0"),
            (XsType::TransactionEnd, b"X\0"),
            (XsType::GetDomainPath, b"-1\0"),
            (XsType::Introduce, b"1\x002\x00"),
            (XsType::WatchEvent, b"/a\0t\0"),
        ];
        for (kind, payload) in cases {
            assert_eq!(Request::parse(kind, payload), Err(StoreError::InvalidRequest), "{kind:?} {payload:?}");
        }
        assert_eq!(Request::parse(XsType::SetQuota, b""), Err(StoreError::Unsupported));
        assert!(Request::Write { path: b"/a", value: &[0; 4096] }.encode(1, 0).is_none());
    }
}
