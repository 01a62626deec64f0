//! The control channel between the host (`cargo xtask xl`) and Dom0's toolstack.
//!
//! The transport is a byte stream (COM2, which QEMU exposes as a Unix socket). Every message is
//! an [`Envelope`] encoded with `postcard` and framed with COBS (a `0` byte ends each frame and
//! never occurs inside one), so a reader that starts mid-stream or meets garbage resynchronises
//! at the next `0`. Each envelope carries the protocol [`VERSION`]; a peer answers a request of
//! another version with [`Response::Error`] naming both versions. Requests carry an id that the
//! response echoes.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

/// Protocol version; bump on any change to the types below.
pub const VERSION: u16 = 4;
/// Largest frame either side accepts (encoded bytes, delimiter excluded).
pub const MAX_FRAME: usize = 64 * 1024;

/// A domain named by id or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum DomRef {
    Id(u32),
    Name(String),
}

/// What to do when a domain crashes (faults) or is destroyed by someone other than `xl destroy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum OnCrash {
    /// Leave it dead (Xen's default `destroy`).
    #[default]
    Destroy,
    /// Start a new instance with the same config; its frontends are moved to it.
    Restart,
}

/// A split device in a domain config: the backend domain's name and its `params`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceSpec {
    pub backend: String,
    pub params: String,
}

/// How a domain boots (xl.cfg's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum DomainType {
    /// One of our unikernels: `image` with `args`.
    #[default]
    Pv,
    /// An unmodified kernel (Linux) in a hardware container: `kernel`, `ramdisk`, `cmdline`.
    Pvh,
}

/// `xl create`: a domain to build from images of the boot bundle. Dom0 checks every field
/// (names, lengths, the rules of each [`DomainType`]) before it creates anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainSpec {
    pub name: String,
    pub domain_type: DomainType,
    /// PV: the domain binary's image; empty for PVH.
    pub image: String,
    pub memory_mib: u32,
    /// PV: the argument string; empty for PVH.
    pub args: String,
    /// PVH: the kernel's image (an ELF with a PVH entry, e.g. `linux`).
    pub kernel: Option<String>,
    /// PVH: the initial ramdisk's image (e.g. `linux-initramfs`).
    pub ramdisk: Option<String>,
    /// PVH: the kernel command line.
    pub cmdline: String,
    /// A driver domain (may be given PCI devices, serves backends).
    pub driver: bool,
    pub pci: Vec<String>,
    pub vifs: Vec<DeviceSpec>,
    pub disks: Vec<DeviceSpec>,
    pub on_crash: OnCrash,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Is anyone there (and which version)?
    Ping,
    List,
    Info,
    Create(DomainSpec),
    /// `crash`: treat it as a crash, so the domain's `on_crash` policy applies.
    Destroy {
        dom: DomRef,
        crash: bool,
    },
    Pause(DomRef),
    Unpause(DomRef),
    /// Console output of a domain from byte offset `from` (0: everything still kept).
    Console {
        dom: DomRef,
        from: u64,
    },
    /// The split devices of a domain (as frontend) and their XenbusStates.
    Devices(DomRef),
}

/// Domain states as `xl list` shows them (r running/runnable, b blocked, p paused, d dying).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum State {
    Running,
    Blocked,
    Paused,
    Dying,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRow {
    pub id: u32,
    pub name: String,
    pub memory_mib: u32,
    pub state: State,
    pub cpu_time_ns: u64,
    /// Started again by the restart policy this many times.
    pub restarts: u32,
}

/// One split device of a domain, seen from the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceRow {
    /// `vif` or `vbd`.
    pub kind: String,
    /// Index among the domain's devices of that kind.
    pub index: u32,
    /// The backend domain's name and (while it runs) id.
    pub backend: String,
    pub backend_id: Option<u32>,
    /// XenbusState numbers (4 = Connected; 0 = no state node).
    pub frontend_state: u8,
    pub backend_state: u8,
}

impl DeviceRow {
    /// Both ends Connected.
    pub fn connected(&self) -> bool {
        self.frontend_state == 4 && self.backend_state == 4
    }
}

/// Hypervisor and store totals (`xl info`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Totals {
    pub total_mib: u64,
    pub free_kib: u64,
    pub domains: u32,
    pub grant_maps: u64,
    pub grant_entries: u64,
    pub event_ports: u64,
    pub store_nodes: u64,
    pub store_watches: u64,
    /// Bytes the store server holds for every domain (nodes, transactions, watches, queued
    /// output); returns to its value when a domain is destroyed.
    pub store_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Pong {
        version: u16,
    },
    Ok,
    Error(String),
    List(Vec<DomainRow>),
    Info(Totals),
    Created {
        id: u32,
    },
    /// The domain's devices; `connected_after_ns`: how long after its creation Dom0 saw them
    /// all Connected (Dom0's clock), once it has.
    Devices {
        rows: Vec<DeviceRow>,
        connected_after_ns: Option<u64>,
    },
    /// Bytes `[start, start + data.len())` of the domain's output; `end` is where it is now.
    Console {
        start: u64,
        data: Vec<u8>,
        end: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub version: u16,
    pub id: u32,
    pub body: T,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a valid postcard envelope (garbage, truncation, unknown variant).
    Malformed,
    /// A well-formed envelope header of another protocol version.
    Version { theirs: u16, id: u32 },
}

/// Encodes `body` as one COBS frame, `0`-terminated.
pub fn encode<T: Serialize>(id: u32, body: &T) -> Vec<u8> {
    let env = Envelope { version: VERSION, id, body };
    postcard::to_allocvec_cobs(&env).unwrap_or_default()
}

/// The version and id at the start of a decoded (un-COBSed) envelope.
#[derive(Deserialize)]
struct Header {
    version: u16,
    id: u32,
}

/// Decodes one frame (without its `0` delimiter). Checks the version before the body, so a
/// peer of another version gets a clear error rather than a misparse.
pub fn decode<T: for<'de> Deserialize<'de>>(frame: &[u8]) -> Result<Envelope<T>, DecodeError> {
    if frame.len() > MAX_FRAME {
        return Err(DecodeError::Malformed);
    }
    // postcard decodes COBS in place; the header first (from_bytes ignores what follows it).
    let mut buf: Vec<u8> = frame.to_vec();
    let h = postcard::from_bytes_cobs::<Header>(&mut buf).map_err(|_| DecodeError::Malformed)?;
    if h.version != VERSION {
        return Err(DecodeError::Version { theirs: h.version, id: h.id });
    }
    let mut buf: Vec<u8> = frame.to_vec();
    postcard::from_bytes_cobs::<Envelope<T>>(&mut buf).map_err(|_| DecodeError::Malformed)
}

/// Splits a byte stream into frames: feed bytes, get complete frames. Frames longer than
/// [`MAX_FRAME`] are discarded up to the next delimiter (and counted).
#[derive(Debug, Default)]
pub struct Deframer {
    buf: Vec<u8>,
    overflowing: bool,
    /// Frames dropped for being too long.
    pub dropped: u64,
}

impl Deframer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds `bytes`; calls `frame` with each complete frame (delimiter removed).
    pub fn push(&mut self, bytes: &[u8], mut frame: impl FnMut(&[u8])) {
        for &b in bytes {
            if b == 0 {
                if !self.overflowing && !self.buf.is_empty() {
                    frame(&self.buf);
                }
                self.buf.clear();
                self.overflowing = false;
            } else if self.buf.len() >= MAX_FRAME {
                if !self.overflowing {
                    self.dropped += 1;
                }
                self.overflowing = true;
            } else if !self.overflowing {
                self.buf.push(b);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn spec() -> DomainSpec {
        DomainSpec {
            name: "web".to_string(),
            domain_type: DomainType::Pv,
            image: "httpd".to_string(),
            memory_mib: 8,
            args: "ip=10.0.2.15/24".to_string(),
            kernel: None,
            ramdisk: None,
            cmdline: String::new(),
            driver: false,
            pci: vec![],
            vifs: vec![DeviceSpec { backend: "netback".to_string(), params: String::new() }],
            disks: vec![],
            on_crash: OnCrash::Restart,
        }
    }

    fn linux_spec() -> DomainSpec {
        DomainSpec {
            name: "linux".to_string(),
            domain_type: DomainType::Pvh,
            image: String::new(),
            memory_mib: 128,
            args: String::new(),
            kernel: Some("linux".to_string()),
            ramdisk: Some("linux-initramfs".to_string()),
            cmdline: "console=hvc0 guest.mode=stay".to_string(),
            driver: false,
            pci: vec![],
            vifs: vec![],
            disks: vec![],
            on_crash: OnCrash::Destroy,
        }
    }

    fn frames(bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut d = Deframer::new();
        let mut out = Vec::new();
        d.push(bytes, |f| out.push(f.to_vec()));
        out
    }

    #[test]
    fn requests_and_responses_round_trip_through_frames() {
        let reqs = [
            Request::Ping,
            Request::List,
            Request::Create(spec()),
            Request::Create(linux_spec()),
            Request::Create(DomainSpec { ramdisk: None, ..linux_spec() }),
            Request::Destroy { dom: DomRef::Name("web".into()), crash: true },
            Request::Console { dom: DomRef::Id(3), from: 1 << 40 },
        ];
        let mut stream = Vec::new();
        for (i, r) in reqs.iter().enumerate() {
            stream.extend(encode(i as u32, r));
        }
        let got = frames(&stream);
        assert_eq!(got.len(), reqs.len());
        for (i, (f, r)) in got.iter().zip(&reqs).enumerate() {
            let env = decode::<Request>(f).unwrap();
            assert_eq!((env.id, env.version, &env.body), (i as u32, VERSION, r));
        }
        let resp = Response::Console { start: 5, data: vec![0, 1, 0, 255, 0], end: 10 };
        let f = frames(&encode(9, &resp));
        assert_eq!(decode::<Response>(&f[0]).unwrap().body, resp);
    }

    #[test]
    fn frames_never_contain_the_delimiter_and_long_runs_survive() {
        let resp = Response::Console { start: 0, data: vec![7u8; 1000], end: 1000 };
        let bytes = encode(1, &resp);
        assert_eq!(bytes.iter().filter(|b| **b == 0).count(), 1);
        assert_eq!(*bytes.last().unwrap(), 0);
        let f = frames(&bytes);
        assert_eq!(decode::<Response>(&f[0]).unwrap().body, resp);
    }

    #[test]
    fn garbage_resynchronises_at_the_next_delimiter() {
        let mut stream = vec![0x41, 0x42, 0xff, 0x13, 0];
        stream.extend(encode(7, &Request::Info));
        let got = frames(&stream);
        assert_eq!(got.len(), 2);
        assert_eq!(decode::<Request>(&got[0]), Err(DecodeError::Malformed));
        assert_eq!(decode::<Request>(&got[1]).unwrap().body, Request::Info);
    }

    #[test]
    fn another_version_is_named_not_misparsed() {
        let env = Envelope { version: VERSION + 1, id: 42, body: Request::List };
        let bytes = postcard::to_allocvec_cobs(&env).unwrap();
        let f = frames(&bytes);
        assert_eq!(decode::<Request>(&f[0]), Err(DecodeError::Version { theirs: VERSION + 1, id: 42 }));
    }

    #[test]
    fn oversized_frames_are_dropped_and_counted() {
        let mut d = Deframer::new();
        let mut n = 0;
        d.push(&vec![1u8; MAX_FRAME + 10], |_| n += 1);
        d.push(&[0], |_| n += 1);
        let ok = encode(1, &Request::Ping);
        d.push(&ok, |f| {
            n += 10;
            assert_eq!(decode::<Request>(f).unwrap().body, Request::Ping)
        });
        assert_eq!((n, d.dropped), (10, 1));
    }

    #[test]
    fn a_version_3_create_is_refused_by_version_not_misread() {
        // What a version-3 host sent for `xl create` (no domain_type, kernel, ramdisk, cmdline):
        // the header says 3, so the answer names the versions instead of decoding a PV spec's
        // bytes as a PVH one.
        #[derive(Serialize)]
        struct OldSpec<'a> {
            name: &'a str,
            image: &'a str,
            memory_mib: u32,
            args: &'a str,
            driver: bool,
            pci: Vec<String>,
            vifs: Vec<DeviceSpec>,
            disks: Vec<DeviceSpec>,
            on_crash: OnCrash,
        }
        #[derive(Serialize)]
        enum OldRequest<'a> {
            _Ping,
            _List,
            _Info,
            Create(OldSpec<'a>),
        }
        let old = OldSpec {
            name: "g",
            image: "guest",
            memory_mib: 8,
            args: "",
            driver: false,
            pci: vec![],
            vifs: vec![],
            disks: vec![],
            on_crash: OnCrash::Destroy,
        };
        let env = Envelope { version: 3, id: 5, body: OldRequest::Create(old) };
        let bytes = postcard::to_allocvec_cobs(&env).unwrap();
        assert_eq!(decode::<Request>(&frames(&bytes)[0]), Err(DecodeError::Version { theirs: 3, id: 5 }));
    }

    #[test]
    fn a_pvh_spec_cut_anywhere_is_malformed() {
        let bytes = encode(8, &Request::Create(linux_spec()));
        let frame = &frames(&bytes)[0];
        assert_eq!(decode::<Request>(frame).unwrap().body, Request::Create(linux_spec()));
        for cut in 1..frame.len() {
            assert!(decode::<Request>(&frame[..cut]).is_err(), "a frame cut at {cut} decoded");
        }
    }

    #[test]
    fn truncated_and_arbitrary_frames_are_errors_not_panics() {
        let bytes = encode(3, &Request::Create(spec()));
        for cut in 1..bytes.len() - 1 {
            let _ = decode::<Request>(&bytes[..cut]);
        }
        let mut x = 0x12345678u32;
        for _ in 0..2000 {
            let len = (x % 40) as usize;
            let mut f = Vec::new();
            for _ in 0..len {
                x = x.wrapping_mul(1103515245).wrapping_add(12345);
                f.push(((x >> 16) as u8).max(1));
            }
            let _ = decode::<Request>(&f);
            let _ = decode::<Response>(&f);
        }
    }
}
