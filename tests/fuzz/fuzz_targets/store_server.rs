//! The store server as a whole, against several hostile domains at once. The input is a script
//! (at most `MAX_OPS` steps): raw bytes on a domain's connection, requests framed as xs_wire
//! messages (any type, the domain's own or made-up transaction ids, paths from a table of
//! interesting ones or from the input, values, tokens, permission lists), bytes through a
//! domain's shared store page with attacker-chosen ring indices (`ServerPort::pump`), reading
//! the server's output whole or in pieces, Dom0's own structured requests, and domains
//! introduced and released. After every step: `StoreServer::check_invariants` holds, every
//! non-Dom0 domain's `memory_of` is within `Limits::domain_budget`, and every message the server
//! sent is a well-formed xs_wire message.
#![no_main]

use std::collections::BTreeMap;

use fuzz::{Script, page};
use libfuzzer_sys::fuzz_target;
use shared_ring::wire::xenstore::{
    HEADER_SIZE, PAYLOAD_MAX, REQ, REQ_CONS, REQ_PROD, RSP_CONS, RSP_PROD, XsType, XsdSockmsg,
};
use shared_ring::{CellMemory, SharedMemory};
use xenstored::{Access, DomId, Limits, Permissions, Request, ServerPort, StoreServer};

const MAX_OPS: usize = 128;
const GUESTS: [DomId; 3] = [1, 2, 3];

/// Small quotas and byte budgets, so an input reaches every limit in a few steps.
fn small_limits() -> Limits {
    Limits {
        nodes_per_domain: 8,
        watches_per_domain: 4,
        transactions_per_domain: 3,
        nodes_per_transaction: 16,
        value_bytes: 64,
        perms_per_node: 3,
        node_bytes: 4096,
        transaction_bytes: 4096,
        watch_bytes: 2048,
        ..Limits::default()
    }
}

const PATHS: [&[u8]; 22] = [
    b"a",
    b"a/b",
    b"a/b/c",
    b"device/vif/0/state",
    b"/",
    b"/local",
    b"/local/domain",
    b"/local/domain/0",
    b"/local/domain/0/backend",
    b"/local/domain/1",
    b"/local/domain/1/a",
    b"/local/domain/2",
    b"/local/domain/2/a/b",
    b"/local/domain/3/c",
    b"@introduceDomain",
    b"@releaseDomain",
    b"@other",
    b"",
    b"//",
    b"a//b",
    b"/local/domain/1/",
    b"x/y/z/w",
];

/// What the test has read of one domain's output stream (parsed message by message).
#[derive(Default)]
struct Reader {
    pending: Vec<u8>,
    /// Output also went through the page (`pump`): the stream seen here has holes.
    holes: bool,
    /// Transaction ids the server handed out.
    txs: Vec<u32>,
}

impl Reader {
    fn take(&mut self, bytes: &[u8]) {
        if self.holes {
            return;
        }
        self.pending.extend_from_slice(bytes);
        while self.pending.len() >= HEADER_SIZE {
            let header = XsdSockmsg::from_raw(self.pending[..HEADER_SIZE].try_into().unwrap());
            assert!(header.len <= PAYLOAD_MAX, "server sent a payload of {} bytes", header.len);
            let kind = XsType::from_wire(header.msg_type).expect("server sent an undefined type");
            let end = HEADER_SIZE + header.len as usize;
            if self.pending.len() < end {
                break;
            }
            let payload = &self.pending[HEADER_SIZE..end];
            if kind == XsType::TransactionStart {
                let text = payload.strip_suffix(b"\0").expect("transaction id is NUL-terminated");
                let id = std::str::from_utf8(text).unwrap().parse::<u32>().expect("transaction id is a number");
                self.txs.push(id);
            }
            if kind == XsType::Error || kind == XsType::WatchEvent {
                assert_eq!(payload.last(), Some(&0), "{kind:?} payload not NUL-terminated");
            }
            self.pending.drain(..end);
        }
    }
}

fn path<'a>(script: &mut Script<'a>) -> Option<Vec<u8>> {
    let pick = script.byte()?;
    if usize::from(pick) < PATHS.len() {
        return Some(PATHS[usize::from(pick)].to_vec());
    }
    if pick >= 0xf0 {
        // A long path: a prefix from the table then `n * 16` bytes.
        let mut p = PATHS[usize::from(pick) % PATHS.len()].to_vec();
        p.resize(p.len() + usize::from(script.byte()?) * 16, b'x');
        return Some(p);
    }
    let len = usize::from(pick % 32);
    Some(script.bytes(len).to_vec())
}

fn guest(b: u8) -> DomId {
    GUESTS[usize::from(b) % GUESTS.len()]
}

fn domain(b: u8) -> DomId {
    if b.is_multiple_of(8) { 0 } else { guest(b) }
}

fn access(b: u8) -> Access {
    [Access::None, Access::Read, Access::Write, Access::Both][usize::from(b % 4)]
}

fn frame(kind: u32, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let header = XsdSockmsg { msg_type: kind, req_id, tx_id, len: payload.len() as u32 };
    let mut out = header.to_raw().to_vec();
    out.extend_from_slice(payload);
    out
}

fn check(server: &StoreServer) {
    if let Err(e) = server.check_invariants() {
        panic!("invariant broken: {e}");
    }
    let budget = server.limits().domain_budget();
    for d in server.domains().filter(|&d| d != 0) {
        let held = server.memory_of(d);
        assert!(held <= budget, "domain {d} holds {held} bytes, budget {budget}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script(data);
    let limits = if script.byte().unwrap_or(0) & 1 == 0 { small_limits() } else { Limits::default() };
    let mut server = StoreServer::new(limits);
    server.introduce(1).unwrap();
    server.introduce(2).unwrap();
    let mut readers: BTreeMap<DomId, Reader> = BTreeMap::new();
    let pages: Vec<_> = GUESTS.iter().map(|_| page()).collect();
    let memories: Vec<CellMemory<'_>> = pages.iter().map(|p| CellMemory::from_cells(p)).collect();
    let mut ports: Vec<ServerPort<CellMemory<'_>>> =
        GUESTS.iter().zip(&memories).map(|(&d, &m)| ServerPort::attach(m, d).unwrap()).collect();
    check(&server);

    // `FUZZ_TRACE=1 target crash-file` prints each step (triage).
    let trace = std::env::var_os("FUZZ_TRACE").is_some();
    for _ in 0..MAX_OPS {
        let Some(op) = script.byte() else { break };
        if trace {
            eprintln!("op {} (kind {}), {} bytes left", op, op % 9, script.0.len());
        }
        match op % 9 {
            0 => {
                // Raw bytes on a connection.
                let Some(d) = script.byte().map(domain) else { break };
                let Some(n) = script.byte() else { break };
                let bytes = script.bytes(usize::from(n));
                let _ = server.receive(d, bytes);
            }
            1 | 2 => {
                // A framed request: any type, a path, maybe a second field.
                let (Some(d), Some(kind), Some(tx), Some(req_id)) =
                    (script.byte().map(domain), script.byte(), script.byte(), script.byte())
                else {
                    break;
                };
                let reader = readers.entry(d).or_default();
                let tx_id = match tx % 4 {
                    0 | 1 => 0,
                    2 => reader.txs.get(usize::from(tx / 4) % reader.txs.len().max(1)).copied().unwrap_or(0),
                    _ => u32::from(tx),
                };
                let Some(mut payload) = path(&mut script) else { break };
                payload.push(0);
                let Some(second) = script.byte() else { break };
                match second % 4 {
                    0 => {}
                    1 => payload.extend_from_slice(script.bytes(usize::from(second / 4))),
                    2 => {
                        payload.extend_from_slice(script.bytes(usize::from(second / 4)));
                        payload.push(0);
                    }
                    _ => {
                        // A permission list: `<letter><domid>` entries.
                        for _ in 0..(second / 4) % 6 {
                            let Some(b) = script.byte() else { break };
                            payload.push(b"nrwbx"[usize::from(b % 5)]);
                            payload.extend_from_slice(domain(b >> 3).to_string().as_bytes());
                            payload.push(0);
                        }
                    }
                }
                let msg = frame(u32::from(kind % 28), u32::from(req_id), tx_id, &payload);
                let _ = server.receive(d, &msg);
            }
            3 => {
                // Read the whole output.
                let Some(d) = script.byte().map(domain) else { break };
                loop {
                    let (a, b) = server.output(d);
                    if a.is_empty() && b.is_empty() {
                        break;
                    }
                    let bytes = [a, b].concat();
                    if trace {
                        eprintln!("  output of {d}: {:?}", String::from_utf8_lossy(&bytes));
                    }
                    readers.entry(d).or_default().take(&bytes);
                    server.consume_output(d, bytes.len());
                }
            }
            4 => {
                // Read part of the output (a slow reader).
                let (Some(d), Some(n)) = (script.byte().map(domain), script.byte()) else { break };
                let (a, b) = server.output(d);
                let bytes: Vec<u8> = a.iter().chain(b).copied().take(usize::from(n)).collect();
                readers.entry(d).or_default().take(&bytes);
                server.consume_output(d, bytes.len());
            }
            5 => {
                // The shared page: indices and request bytes as the domain likes, then a pump.
                let Some(b) = script.byte() else { break };
                let i = usize::from(b) % GUESTS.len();
                let memory = memories[i];
                let Some(n) = script.byte() else { break };
                let bytes = script.bytes(usize::from(n));
                let prod = memory.load_acquire(REQ_PROD);
                for (k, &byte) in bytes.iter().enumerate() {
                    memory.write(REQ + (prod as usize + k) % 1024, &[byte]);
                }
                memory.store_release(REQ_PROD, prod.wrapping_add(bytes.len() as u32));
                if b & 0x80 != 0 {
                    let (Some(which), Some(value)) = (script.byte(), script.u32()) else { break };
                    memory.store_release([REQ_CONS, REQ_PROD, RSP_CONS][usize::from(which % 3)], value);
                }
                // The guest consumed all the output there was.
                let rsp_prod = memory.load_acquire(RSP_PROD);
                if b & 0x40 != 0 {
                    memory.store_release(RSP_CONS, rsp_prod);
                }
                let _ = ports[i].pump(&mut server);
                readers.entry(GUESTS[i]).or_default().holes = true;
            }
            6 => {
                let Some(b) = script.byte() else { break };
                let d = guest(b);
                if b & 0x80 != 0 {
                    if server.release(d).is_ok() {
                        readers.remove(&d);
                        assert!(server.connection(d).is_none());
                        assert_eq!(server.memory_of(d), 0, "a released domain still holds memory");
                        let home = xenstored::path::domain_path(d);
                        for (p, node) in server.store().iter() {
                            assert_ne!(node.perms.owner, d, "released domain still owns {p:?}");
                            assert!(node.perms.entries.iter().all(|(e, _)| *e != d), "released domain named in {p:?}");
                            assert!(!xenstored::path::is_at_or_below(p, &home), "{p:?} survived release");
                        }
                    }
                } else if server.introduce(d).is_ok() {
                    readers.remove(&d);
                }
            }
            7 => {
                // Dom0's own structured requests (the toolstack).
                let (Some(kind), Some(b)) = (script.byte(), script.byte()) else { break };
                let Some(p) = path(&mut script) else { break };
                let value = script.bytes(usize::from(b % 16)).to_vec();
                let request = match kind % 6 {
                    0 => Request::Write { path: &p, value: &value },
                    1 => Request::Mkdir { path: &p },
                    2 => Request::Rm { path: &p },
                    3 => {
                        let mut perms = Permissions::new(guest(b), access(b >> 2));
                        if b & 0x40 != 0 {
                            perms.entries.push((guest(b >> 4), access(b >> 5)));
                        }
                        Request::SetPerms { path: &p, perms }
                    }
                    4 => Request::Watch { path: &p, token: &value },
                    _ => Request::Directory { path: &p },
                };
                let _ = server.execute(0, 0, request);
            }
            _ => {
                // A domain's message arriving in pieces: a header now, the payload later.
                let (Some(d), Some(len)) = (script.byte().map(domain), script.u16()) else { break };
                let header = XsdSockmsg { msg_type: XsType::Write as u32, req_id: 1, tx_id: 0, len: u32::from(len) };
                let _ = server.receive(d, &header.to_raw());
                let body = script.bytes(usize::from(len % 512));
                let _ = server.receive(d, body);
            }
        }
        while server.take_host_request().is_some() {}
        if trace {
            eprintln!(
                "  domains {:?}, invariants {:?}",
                server.domains().collect::<Vec<_>>(),
                server.check_invariants()
            );
        }
        check(&server);
    }
});
