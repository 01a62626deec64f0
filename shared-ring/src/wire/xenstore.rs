//! The store's wire protocol (`xen/include/public/io/xs_wire.h`, docs/misc/xenstore.txt and
//! xenstore-ring.txt): the shared page with two 1 KiB byte rings, the 16-byte message header
//! and the rules for message payloads and paths. [`StoreRing`] moves bytes over the page with
//! the same hostile-peer checks as the request/response rings.

use core::fmt;

use super::bytes::{put_u32, u32_at};
use crate::shared_memory::SharedMemory;

/// `XENSTORE_RING_SIZE`: bytes in each direction's ring.
pub const RING_SIZE: u32 = 1024;
/// `XENSTORE_PAYLOAD_MAX`.
pub const PAYLOAD_MAX: u32 = 4096;
/// `XENSTORE_ABS_PATH_MAX`.
pub const ABS_PATH_MAX: usize = 3072;
/// `XENSTORE_REL_PATH_MAX`.
pub const REL_PATH_MAX: usize = 2048;
/// Bytes of the message header.
pub const HEADER_SIZE: usize = 16;

/// Offset of `req` (guest → server bytes).
pub const REQ: usize = 0;
/// Offset of `rsp` (server → guest bytes).
pub const RSP: usize = 1024;
/// Offset of `req_cons`.
pub const REQ_CONS: usize = 2048;
/// Offset of `req_prod`.
pub const REQ_PROD: usize = 2052;
/// Offset of `rsp_cons`.
pub const RSP_CONS: usize = 2056;
/// Offset of `rsp_prod`.
pub const RSP_PROD: usize = 2060;
/// Offset of `server_features`.
pub const SERVER_FEATURES: usize = 2064;
/// Offset of `connection`.
pub const CONNECTION: usize = 2068;
/// Offset of `error`.
pub const ERROR: usize = 2072;
/// Offset of `evtchn_port`, appended by Xen 4.19+ (absent from older headers such as
/// Debian 12's, whose struct ends at 2076).
pub const EVTCHN_PORT: usize = 2076;

/// `struct xenstore_domain_interface` as in xs_wire.h (without the newer `evtchn_port`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XenstoreDomainInterface {
    /// Requests to the server.
    pub req: [u8; RING_SIZE as usize],
    /// Replies and watch events.
    pub rsp: [u8; RING_SIZE as usize],
    /// Server's read index into `req`.
    pub req_cons: u32,
    /// Guest's write index into `req`.
    pub req_prod: u32,
    /// Guest's read index into `rsp`.
    pub rsp_cons: u32,
    /// Server's write index into `rsp`.
    pub rsp_prod: u32,
    /// Server feature bits.
    pub server_features: u32,
    /// 0 connected, 1 reconnecting.
    pub connection: u32,
    /// Error code (1 comm, 2 bad index, 3 payload too long).
    pub error: u32,
}

/// `enum xsd_sockmsg_type`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum XsType {
    Control = 0,
    Directory = 1,
    Read = 2,
    GetPerms = 3,
    Watch = 4,
    Unwatch = 5,
    TransactionStart = 6,
    TransactionEnd = 7,
    Introduce = 8,
    Release = 9,
    GetDomainPath = 10,
    Write = 11,
    Mkdir = 12,
    Rm = 13,
    SetPerms = 14,
    WatchEvent = 15,
    Error = 16,
    IsDomainIntroduced = 17,
    Resume = 18,
    SetTarget = 19,
    // 20 was XS_RESTRICT, removed.
    ResetWatches = 21,
    DirectoryPart = 22,
    GetFeature = 23,
    SetFeature = 24,
    GetQuota = 25,
    SetQuota = 26,
}

impl XsType {
    /// The type for a wire value, if defined.
    pub fn from_wire(value: u32) -> Option<Self> {
        use XsType::*;
        Some(match value {
            0 => Control,
            1 => Directory,
            2 => Read,
            3 => GetPerms,
            4 => Watch,
            5 => Unwatch,
            6 => TransactionStart,
            7 => TransactionEnd,
            8 => Introduce,
            9 => Release,
            10 => GetDomainPath,
            11 => Write,
            12 => Mkdir,
            13 => Rm,
            14 => SetPerms,
            15 => WatchEvent,
            16 => Error,
            17 => IsDomainIntroduced,
            18 => Resume,
            19 => SetTarget,
            21 => ResetWatches,
            22 => DirectoryPart,
            23 => GetFeature,
            24 => SetFeature,
            25 => GetQuota,
            26 => SetQuota,
            _ => return None,
        })
    }

    /// Whether the payload starts with a NUL-terminated path.
    pub fn takes_path(self) -> bool {
        use XsType::*;
        matches!(self, Directory | Read | GetPerms | Watch | Unwatch | Write | Mkdir | Rm | SetPerms | DirectoryPart)
    }
}

/// `struct xsd_sockmsg`: the header before every payload.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct XsdSockmsg {
    /// `XS_*` (see [`XsType`]).
    pub msg_type: u32,
    /// Request id, echoed in the reply.
    pub req_id: u32,
    /// Transaction id (0 outside transactions).
    pub tx_id: u32,
    /// Payload bytes that follow.
    pub len: u32,
}

/// What a peer sent on the store connection that the protocol forbids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XenstoreError {
    /// Message type not defined (or `XS_INVALID`).
    UnknownType { msg_type: u32 },
    /// Payload longer than `XENSTORE_PAYLOAD_MAX` ("its connection will be immediately killed").
    PayloadTooLong { len: u32 },
    /// Fewer bytes than the header says (not an error on a stream: wait for more).
    Incomplete { needed: usize, available: usize },
    /// A path-taking message whose path is not NUL-terminated.
    UnterminatedPath,
    /// A path that breaks the syntax rules (empty, bad character, `//`, trailing `/`, too long).
    BadPath { reason: &'static str },
    /// The peer's ring index claims more bytes than the 1 KiB ring holds, or moved backwards.
    BadIndex { index: u32, other: u32 },
}

impl fmt::Display for XenstoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            XenstoreError::UnknownType { msg_type } => write!(f, "unknown store message type {msg_type}"),
            XenstoreError::PayloadTooLong { len } => {
                write!(f, "payload of {len} bytes exceeds XENSTORE_PAYLOAD_MAX {PAYLOAD_MAX}")
            }
            XenstoreError::Incomplete { needed, available } => {
                write!(f, "message needs {needed} bytes, {available} available")
            }
            XenstoreError::UnterminatedPath => write!(f, "path is not NUL-terminated"),
            XenstoreError::BadPath { reason } => write!(f, "bad store path: {reason}"),
            XenstoreError::BadIndex { index, other } => {
                write!(f, "peer set a ring index to {index} against {other}: not within the 1024-byte ring")
            }
        }
    }
}

impl core::error::Error for XenstoreError {}

impl XsdSockmsg {
    /// Decode 16 bytes (infallible).
    pub fn from_raw(b: &[u8; HEADER_SIZE]) -> Self {
        Self { msg_type: u32_at(b, 0), req_id: u32_at(b, 4), tx_id: u32_at(b, 8), len: u32_at(b, 12) }
    }

    /// Encode.
    pub fn to_raw(&self) -> [u8; HEADER_SIZE] {
        let mut b = [0; HEADER_SIZE];
        put_u32(&mut b, 0, self.msg_type);
        put_u32(&mut b, 4, self.req_id);
        put_u32(&mut b, 8, self.tx_id);
        put_u32(&mut b, 12, self.len);
        b
    }

    /// Decode and validate: defined type, payload within the limit.
    pub fn decode(b: &[u8; HEADER_SIZE]) -> Result<Self, XenstoreError> {
        let header = Self::from_raw(b);
        header.kind()?;
        if header.len > PAYLOAD_MAX {
            return Err(XenstoreError::PayloadTooLong { len: header.len });
        }
        Ok(header)
    }

    /// The message type.
    pub fn kind(&self) -> Result<XsType, XenstoreError> {
        XsType::from_wire(self.msg_type).ok_or(XenstoreError::UnknownType { msg_type: self.msg_type })
    }
}

/// A decoded message borrowing its payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct XsMessage<'a> {
    /// The header.
    pub header: XsdSockmsg,
    /// The type.
    pub kind: XsType,
    /// `header.len` payload bytes.
    pub payload: &'a [u8],
}

impl<'a> XsMessage<'a> {
    /// Decode one message from the front of `bytes`; returns it and the rest. Path-taking
    /// messages get their path checked.
    pub fn parse(bytes: &'a [u8]) -> Result<(Self, &'a [u8]), XenstoreError> {
        let Some((head, rest)) = bytes.split_first_chunk::<HEADER_SIZE>() else {
            return Err(XenstoreError::Incomplete { needed: HEADER_SIZE, available: bytes.len() });
        };
        let header = XsdSockmsg::decode(head)?;
        let kind = header.kind()?;
        let len = header.len as usize;
        if rest.len() < len {
            return Err(XenstoreError::Incomplete { needed: HEADER_SIZE + len, available: bytes.len() });
        }
        let (payload, rest) = rest.split_at(len);
        let message = Self { header, kind, payload };
        if kind.takes_path() {
            let path = message.fields().next().ok_or(XenstoreError::UnterminatedPath)?;
            if !payload.contains(&0) {
                return Err(XenstoreError::UnterminatedPath);
            }
            if kind == XsType::Watch || kind == XsType::Unwatch {
                validate_watch_path(path)?;
            } else {
                validate_path(path)?;
            }
        }
        Ok((message, rest))
    }

    /// The NUL-terminated fields of the payload (a trailing unterminated part is included).
    pub fn fields(&self) -> impl Iterator<Item = &'a [u8]> {
        let payload = self.payload;
        let body = payload.strip_suffix(b"\0").unwrap_or(payload);
        body.split(|b| *b == 0).filter(move |_| !payload.is_empty())
    }
}

/// Check a node path: absolute (`/...`, at most 3072 bytes) or relative (at most 2048),
/// characters `[A-Za-z0-9-/_@]`, no `//`, no trailing `/` (except the root `/`).
pub fn validate_path(path: &[u8]) -> Result<(), XenstoreError> {
    let bad = |reason| Err(XenstoreError::BadPath { reason });
    if path.is_empty() {
        return bad("empty");
    }
    let limit = if path[0] == b'/' { ABS_PATH_MAX } else { REL_PATH_MAX };
    if path.len() > limit {
        return bad("too long");
    }
    if !path.iter().all(|c| c.is_ascii_alphanumeric() || b"-/_@".contains(c)) {
        return bad("character outside [A-Za-z0-9-/_@]");
    }
    if path.windows(2).any(|w| w == b"//") {
        return bad("contains //");
    }
    if path.len() > 1 && path.ends_with(b"/") {
        return bad("trailing /");
    }
    Ok(())
}

/// Watch paths may also be the special `@introduceDomain` / `@releaseDomain[/<domid>]`.
pub fn validate_watch_path(path: &[u8]) -> Result<(), XenstoreError> {
    if path.first() == Some(&b'@') {
        let ok = path == b"@introduceDomain"
            || path == b"@releaseDomain"
            || path
                .strip_prefix(b"@releaseDomain/")
                .is_some_and(|d| !d.is_empty() && d.len() <= 5 && d.iter().all(u8::is_ascii_digit));
        return if ok { Ok(()) } else { Err(XenstoreError::BadPath { reason: "unknown special path" }) };
    }
    validate_path(path)
}

/// Which end of the store page this side is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreSide {
    /// A domain: writes `req`, reads `rsp`.
    Guest,
    /// The store server: reads `req`, writes `rsp`.
    Server,
}

/// Byte-stream access to the store page for one side.
pub struct StoreRing<M: SharedMemory> {
    memory: M,
    out_data: usize,
    out_prod: usize,
    out_cons: usize,
    in_data: usize,
    in_prod: usize,
    in_cons: usize,
    /// Our private copy of our producer index.
    produced: u32,
    /// Our private copy of our consumer index.
    consumed: u32,
    /// Last validated peer consumer index (of our output).
    peer_consumed: u32,
    broken: Option<XenstoreError>,
}

impl<M: SharedMemory> StoreRing<M> {
    /// Attach to an initialised page (indices need not start at zero). `None` if the area is
    /// smaller than the interface.
    pub fn attach(memory: M, side: StoreSide) -> Option<Self> {
        if memory.len() < size_of::<XenstoreDomainInterface>() {
            return None;
        }
        let (out_data, out_prod, out_cons, in_data, in_prod, in_cons) = match side {
            StoreSide::Guest => (REQ, REQ_PROD, REQ_CONS, RSP, RSP_PROD, RSP_CONS),
            StoreSide::Server => (RSP, RSP_PROD, RSP_CONS, REQ, REQ_PROD, REQ_CONS),
        };
        let produced = memory.load_acquire(out_prod);
        let consumed = memory.load_acquire(in_cons);
        let mut ring = Self {
            memory,
            out_data,
            out_prod,
            out_cons,
            in_data,
            in_prod,
            in_cons,
            produced,
            consumed,
            peer_consumed: 0,
            broken: None,
        };
        ring.peer_consumed = ring.produced.wrapping_sub(RING_SIZE);
        Some(ring)
    }

    /// Copy as much of `data` as fits into the outgoing ring and publish it. Returns the bytes
    /// written (0 when the ring is full).
    pub fn write(&mut self, data: &[u8]) -> Result<usize, XenstoreError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let cons = self.memory.load_acquire(self.out_cons);
        let used = self.produced.wrapping_sub(cons);
        if used > RING_SIZE || (cons.wrapping_sub(self.peer_consumed) as i32) < 0 {
            let e = XenstoreError::BadIndex { index: cons, other: self.produced };
            self.broken = Some(e);
            return Err(e);
        }
        self.peer_consumed = cons;
        let mut written = 0;
        let space = (RING_SIZE - used) as usize;
        while written < data.len().min(space) {
            let at = (self.produced % RING_SIZE) as usize;
            let chunk = (RING_SIZE as usize - at).min(data.len().min(space) - written);
            self.memory.write(self.out_data + at, &data[written..written + chunk]);
            written += chunk;
            self.produced = self.produced.wrapping_add(chunk as u32);
        }
        if written > 0 {
            self.memory.store_release(self.out_prod, self.produced);
        }
        Ok(written)
    }

    /// Copy available incoming bytes into `buf` (copied once, then released to the peer).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, XenstoreError> {
        if let Some(e) = self.broken {
            return Err(e);
        }
        let prod = self.memory.load_acquire(self.in_prod);
        let available = prod.wrapping_sub(self.consumed);
        if available > RING_SIZE {
            let e = XenstoreError::BadIndex { index: prod, other: self.consumed };
            self.broken = Some(e);
            return Err(e);
        }
        let mut read = 0;
        let want = buf.len().min(available as usize);
        while read < want {
            let at = (self.consumed % RING_SIZE) as usize;
            let chunk = (RING_SIZE as usize - at).min(want - read);
            self.memory.read(self.in_data + at, &mut buf[read..read + chunk]);
            read += chunk;
            self.consumed = self.consumed.wrapping_add(chunk as u32);
        }
        if read > 0 {
            self.memory.store_release(self.in_cons, self.consumed);
        }
        Ok(read)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CellMemory;

    #[test]
    fn interface_layout() {
        assert_eq!(size_of::<XenstoreDomainInterface>(), 2076);
        assert_eq!(core::mem::offset_of!(XenstoreDomainInterface, req_cons), REQ_CONS);
        assert_eq!(core::mem::offset_of!(XenstoreDomainInterface, error), ERROR);
        assert_eq!(size_of::<XsdSockmsg>(), 16);
    }

    #[test]
    fn parses_messages_and_rejects_bad_ones() {
        let mut buf = [0u8; 64];
        let payload = b"/local/domain/1/device\0value";
        let header = XsdSockmsg { msg_type: XsType::Write as u32, req_id: 7, tx_id: 0, len: payload.len() as u32 };
        buf[..16].copy_from_slice(&header.to_raw());
        buf[16..16 + payload.len()].copy_from_slice(payload);
        let total = 16 + payload.len();
        let (message, rest) = XsMessage::parse(&buf[..total + 3]).unwrap();
        assert_eq!(message.kind, XsType::Write);
        assert_eq!(rest.len(), 3);
        let mut fields = message.fields();
        assert_eq!(fields.next(), Some(&b"/local/domain/1/device"[..]));
        assert_eq!(fields.next(), Some(&b"value"[..]));
        assert_eq!(fields.next(), None);
        assert_eq!(
            XsMessage::parse(&buf[..total - 1]),
            Err(XenstoreError::Incomplete { needed: total, available: total - 1 })
        );
        let too_long = XsdSockmsg { len: 4097, ..header };
        assert_eq!(XsdSockmsg::decode(&too_long.to_raw()), Err(XenstoreError::PayloadTooLong { len: 4097 }));
        for t in [20, 27, 0xffff] {
            let bad = XsdSockmsg { msg_type: t, ..header };
            assert_eq!(XsdSockmsg::decode(&bad.to_raw()), Err(XenstoreError::UnknownType { msg_type: t }));
        }
        for bad in [&b""[..], b"/a//b", b"/a/", b"/a b", b"a\xff"] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
        assert!(validate_path(b"/").is_ok());
        assert!(validate_path(b"device/vbd/768/state").is_ok());
        assert!(validate_watch_path(b"@releaseDomain/12").is_ok());
        assert!(validate_watch_path(b"@bogus").is_err());
    }

    #[test]
    fn byte_ring_moves_data_and_rejects_lying_indices() {
        let mut page = [0u8; 4096];
        // Indices need not start at zero: start near the wrap.
        page[REQ_PROD..REQ_PROD + 4].copy_from_slice(&(u32::MAX - 10).to_le_bytes());
        page[REQ_CONS..REQ_CONS + 4].copy_from_slice(&(u32::MAX - 10).to_le_bytes());
        let memory = CellMemory::new(&mut page);
        let mut guest = StoreRing::attach(memory, StoreSide::Guest).unwrap();
        let mut server = StoreRing::attach(memory, StoreSide::Server).unwrap();
        let data: [u8; 1500] = core::array::from_fn(|i| i as u8);
        assert_eq!(guest.write(&data), Ok(1024));
        assert_eq!(guest.write(&data), Ok(0));
        let mut got = [0u8; 700];
        assert_eq!(server.read(&mut got), Ok(700));
        assert_eq!(&got[..], &data[..700]);
        assert_eq!(guest.write(&data[1024..]), Ok(476));
        let mut rest = [0u8; 1000];
        assert_eq!(server.read(&mut rest), Ok(800));
        assert_eq!(&rest[..324], &data[700..1024]);
        assert_eq!(&rest[324..800], &data[1024..]);
        // The server claims to have consumed bytes that were never written.
        memory.store_release(REQ_CONS, memory.load_acquire(REQ_PROD).wrapping_add(5));
        assert!(matches!(guest.write(b"x"), Err(XenstoreError::BadIndex { .. })));
        assert!(matches!(guest.write(b"x"), Err(XenstoreError::BadIndex { .. })));
        // The guest claims 2000 bytes are waiting.
        memory.store_release(REQ_PROD, memory.load_acquire(REQ_CONS).wrapping_add(2000));
        assert!(matches!(server.read(&mut rest), Err(XenstoreError::BadIndex { .. })));
    }
}
