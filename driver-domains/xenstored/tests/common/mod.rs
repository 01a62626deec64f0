//! Helpers shared by the integration tests: drive a domain's connection over the wire format.
#![allow(dead_code)]

use shared_ring::wire::xenstore::{XsType, XsdSockmsg};
use xenstored::{DomId, StoreServer};

/// One decoded message the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Out {
    pub kind: u32,
    pub req_id: u32,
    pub tx_id: u32,
    pub payload: Vec<u8>,
}

impl Out {
    pub fn is_error(&self, name: &str) -> bool {
        self.kind == XsType::Error as u32 && self.payload == [name.as_bytes(), b"\0"].concat()
    }
    pub fn is_event(&self, path: &[u8], token: &[u8]) -> bool {
        self.kind == XsType::WatchEvent as u32 && self.payload == [path, b"\0", token, b"\0"].concat()
    }
}

/// Encode a request.
pub fn msg(kind: XsType, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let header = XsdSockmsg { msg_type: kind as u32, req_id, tx_id, len: payload.len() as u32 };
    let mut out = header.to_raw().to_vec();
    out.extend_from_slice(payload);
    out
}

/// `a\0b\0…` from fields.
pub fn fields(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p);
        out.push(0);
    }
    out
}

/// Take and decode everything the server queued for `domid`.
pub fn drain(server: &mut StoreServer, domid: DomId) -> Vec<Out> {
    let mut bytes = Vec::new();
    loop {
        let (a, b) = server.output(domid);
        if a.is_empty() && b.is_empty() {
            break;
        }
        bytes.extend_from_slice(a);
        bytes.extend_from_slice(b);
        let n = a.len() + b.len();
        server.consume_output(domid, n);
    }
    decode_all(&bytes)
}

pub fn decode_all(mut bytes: &[u8]) -> Vec<Out> {
    let mut out = Vec::new();
    while bytes.len() >= 16 {
        let header = XsdSockmsg::from_raw(bytes[..16].try_into().unwrap());
        let end = 16 + header.len as usize;
        assert!(bytes.len() >= end, "truncated message from the server");
        out.push(Out {
            kind: header.msg_type,
            req_id: header.req_id,
            tx_id: header.tx_id,
            payload: bytes[16..end].to_vec(),
        });
        bytes = &bytes[end..];
    }
    assert!(bytes.is_empty(), "trailing bytes from the server");
    out
}

/// Send one request and return everything the server sent back (reply first, then events).
pub fn call(server: &mut StoreServer, domid: DomId, kind: XsType, tx_id: u32, payload: &[u8]) -> Vec<Out> {
    let bytes = msg(kind, 77, tx_id, payload);
    assert_eq!(server.receive(domid, &bytes), Ok(bytes.len()));
    drain(server, domid)
}

/// Send one request and return its reply payload, or the error name.
pub fn ask(
    server: &mut StoreServer,
    domid: DomId,
    kind: XsType,
    tx_id: u32,
    payload: &[u8],
) -> Result<Vec<u8>, String> {
    let out = call(server, domid, kind, tx_id, payload);
    let reply = out.iter().find(|o| o.kind != XsType::WatchEvent as u32).expect("no reply").clone();
    assert_eq!(reply.req_id, 77);
    assert_eq!(reply.tx_id, tx_id);
    if reply.kind == XsType::Error as u32 {
        Err(String::from_utf8(reply.payload.strip_suffix(b"\0").unwrap().to_vec()).unwrap())
    } else {
        assert_eq!(reply.kind, kind as u32);
        Ok(reply.payload)
    }
}

pub fn write(server: &mut StoreServer, domid: DomId, path: &[u8], value: &[u8]) -> Result<Vec<u8>, String> {
    ask(server, domid, XsType::Write, 0, &[path, b"\0", value].concat())
}

pub fn read(server: &mut StoreServer, domid: DomId, path: &[u8]) -> Result<Vec<u8>, String> {
    ask(server, domid, XsType::Read, 0, &fields(&[path]))
}

pub fn ok() -> Result<Vec<u8>, String> {
    Ok(b"OK\0".to_vec())
}

pub fn err(name: &str) -> Result<Vec<u8>, String> {
    Err(name.to_string())
}
