//! Both ends over a real store page layout (shared-ring's `CellMemory`): the server's pump and
//! the client's port, including peers that lie about ring indices or never read.

mod common;

use shared_ring::CellMemory;
use shared_ring::SharedMemory;
use shared_ring::wire::xenstore::{
    ERROR, REQ_CONS, REQ_PROD, SERVER_FEATURES, StoreRing, StoreSide, XsType, XsdSockmsg,
};
use xenstore::{BlockingClient, ClientError, ClientPort, Errno, Request, StoreClient};
use xenstored::{Limits, ProtocolViolation, ServerPort, StoreServer};

fn server() -> StoreServer {
    let mut server = StoreServer::new(Limits::default());
    server.introduce(5).unwrap();
    server.introduce(6).unwrap();
    server
}

#[test]
fn client_and_server_talk_over_the_page() {
    let mut page = vec![0u8; 4096];
    let memory = CellMemory::new(&mut page);
    let mut server = server();
    let mut server_port = ServerPort::attach(memory, 5).unwrap();
    assert_eq!(memory.load_acquire(SERVER_FEATURES), 2);
    let mut waits = 0;
    let mut client = BlockingClient::new(ClientPort::attach(memory).unwrap(), || {
        waits += 1;
        server_port.pump(&mut server);
        waits < 1000
    });
    // A request and a reply larger than the 1 KiB rings.
    let big = vec![b'q'; 2000];
    client.write(b"data/big", &big).unwrap();
    assert_eq!(client.read(b"data/big").unwrap(), big);
    client.mkdir(b"data/dir").unwrap();
    assert_eq!(client.directory(b"data").unwrap(), [b"big".to_vec(), b"dir".to_vec()]);
    assert_eq!(client.read(b"/local/domain/6"), Err(ClientError::Store(Errno::Eacces)));
    assert_eq!(client.read(b"data/none"), Err(ClientError::Store(Errno::Enoent)));
    // Watches: the initial event, then one per change.
    client.watch(b"data", b"tok").unwrap();
    client.write(b"data/dir/x", b"1").unwrap();
    let mut events = Vec::new();
    while let Some(e) = client.port.take_event() {
        events.push((e.path, e.token));
    }
    assert_eq!(events, [(b"data".to_vec(), b"tok".to_vec()), (b"data/dir/x".to_vec(), b"tok".to_vec())]);
    // A transaction.
    let tx = client.transaction_start().unwrap();
    client.request(Request::Write { path: b"data/t", value: b"v" }, tx).unwrap();
    client.transaction_end(tx, true).unwrap();
    assert_eq!(client.read(b"data/t").unwrap(), b"v");
    assert_eq!(client.request(Request::Write { path: b"a", value: &[0; 4096] }, 0), Err(ClientError::RequestTooLong));
    drop(client);
    assert_eq!(server.store().get(b"/local/domain/5/data/t").unwrap().value, b"v");
    server.check_invariants().unwrap();
}

#[test]
fn a_batch_is_one_round_trip_and_keeps_its_order() {
    let mut page = vec![0u8; 4096];
    let memory = CellMemory::new(&mut page);
    let mut server = server();
    let mut server_port = ServerPort::attach(memory, 5).unwrap();
    let waits = core::cell::Cell::new(0);
    let mut client = BlockingClient::new(ClientPort::attach(memory).unwrap(), || {
        waits.set(waits.get() + 1);
        server_port.pump(&mut server);
        waits.get() < 1000
    });
    // Writes in order: the last one sees the ones before it in place.
    let nodes: Vec<(Vec<u8>, Vec<u8>)> = (0..4).map(|i| (format!("data/k{i}").into_bytes(), vec![b'0' + i])).collect();
    let refs: Vec<(&[u8], &[u8])> = nodes.iter().map(|(p, v)| (p.as_slice(), v.as_slice())).collect();
    client.write_many(&refs).unwrap();
    assert_eq!(waits.get(), 1, "four writes, one round trip");
    // A missing node fails alone; the others are answered, in order.
    waits.set(0);
    let got = client.read_many(&[b"data/k0", b"data/none", b"data/k3"]);
    assert_eq!(got, [Ok(b"0".to_vec()), Err(ClientError::Store(Errno::Enoent)), Ok(b"3".to_vec())]);
    assert_eq!(waits.get(), 1, "three reads, one round trip");
    // More requests than may be outstanding: a window at a time, every reply in order.
    let paths: Vec<Vec<u8>> = (0..40).map(|i| format!("data/k{}", i % 4).into_bytes()).collect();
    let refs: Vec<&[u8]> = paths.iter().map(Vec::as_slice).collect();
    let got = client.read_many(&refs);
    assert_eq!(got.len(), 40);
    for (i, r) in got.into_iter().enumerate() {
        assert_eq!(r, Ok(vec![b'0' + (i % 4) as u8]));
    }
    // Inside a transaction: nothing shows until it commits.
    let tx = client.transaction_start().unwrap();
    let r = client.batch(&[Request::Write { path: b"data/t1", value: b"a" }, Request::Read { path: b"data/t1" }], tx);
    assert_eq!(r, [Ok(b"OK\0".to_vec()), Ok(b"a".to_vec())]);
    assert_eq!(client.read(b"data/t1"), Err(ClientError::Store(Errno::Enoent)));
    client.transaction_end(tx, false).unwrap();
    assert_eq!(client.read(b"data/t1"), Err(ClientError::Store(Errno::Enoent)));
    drop(client);
    server.check_invariants().unwrap();
}

#[test]
fn server_pump_notifies_only_when_bytes_move() {
    let mut page = vec![0u8; 4096];
    let memory = CellMemory::new(&mut page);
    let mut server = server();
    let mut server_port = ServerPort::attach(memory, 5).unwrap();
    let mut client = ClientPort::attach(memory).unwrap();
    assert!(!server_port.pump(&mut server).notify);
    let id = client.send(&Request::Read { path: b"missing" }, 0).unwrap();
    assert!(client.pump().unwrap());
    let outcome = server_port.pump(&mut server);
    assert!(outcome.notify && !outcome.more && outcome.broken.is_none());
    client.pump().unwrap();
    assert_eq!(client.take_reply(id), Some(Err(ClientError::Store(Errno::Enoent))));
    assert!(!server_port.pump(&mut server).notify);
}

#[test]
fn lying_producer_index_breaks_only_that_domain() {
    let mut page5 = vec![0u8; 4096];
    let mut page6 = vec![0u8; 4096];
    let (m5, m6) = (CellMemory::new(&mut page5), CellMemory::new(&mut page6));
    let mut server = server();
    let mut port5 = ServerPort::attach(m5, 5).unwrap();
    let mut port6 = ServerPort::attach(m6, 6).unwrap();
    // Domain 5 claims 2000 bytes are waiting in a 1024-byte ring.
    m5.store_release(REQ_PROD, m5.load_acquire(REQ_CONS).wrapping_add(2000));
    let outcome = port5.pump(&mut server);
    assert!(matches!(outcome.broken, Some(ProtocolViolation::BadRingIndex { .. })));
    assert!(outcome.notify);
    assert_eq!(m5.load_acquire(ERROR), 2);
    // Further pumps do nothing (and never panic), even if the page is rewritten.
    m5.store_release(REQ_PROD, 5);
    assert!(port5.pump(&mut server).broken.is_some());
    // Domain 6 is served.
    let mut client6 = ClientPort::attach(m6).unwrap();
    let id = client6.send(&Request::Write { path: b"ok", value: b"1" }, 0).unwrap();
    client6.pump().unwrap();
    port6.pump(&mut server);
    client6.pump().unwrap();
    assert_eq!(client6.take_reply(id), Some(Ok(b"OK\0".to_vec())));
    server.release(5).unwrap();
    server.check_invariants().unwrap();
}

#[test]
fn oversized_header_on_the_ring_is_reported_in_the_page() {
    let mut page = vec![0u8; 4096];
    let memory = CellMemory::new(&mut page);
    let mut server = server();
    let mut port = ServerPort::attach(memory, 5).unwrap();
    let mut guest = StoreRing::attach(memory, StoreSide::Guest).unwrap();
    let header = XsdSockmsg { msg_type: XsType::Write as u32, req_id: 8, tx_id: 0, len: 100_000 };
    guest.write(&header.to_raw()).unwrap();
    guest.write(&[b'x'; 500]).unwrap();
    let outcome = port.pump(&mut server);
    assert_eq!(outcome.broken, Some(ProtocolViolation::PayloadTooLong { len: 100_000 }));
    assert_eq!(memory.load_acquire(ERROR), 3);
    let mut reply = [0u8; 64];
    let n = guest.read(&mut reply).unwrap();
    let decoded = common::decode_all(&reply[..n]);
    assert!(decoded[0].is_error("E2BIG") && decoded[0].req_id == 8);
}

#[test]
fn guest_that_never_reads_replies_fills_its_own_rings_not_dom0() {
    let mut page = vec![0u8; 4096];
    let memory = CellMemory::new(&mut page);
    let limits = Limits::default();
    let mut server = server();
    let mut port = ServerPort::attach(memory, 5).unwrap();
    let mut guest = StoreRing::attach(memory, StoreSide::Guest).unwrap();
    let request = common::msg(XsType::GetDomainPath, 1, 0, b"5\0");
    let stream = request.repeat(10_000);
    let mut offset = 0;
    let mut stalled_rounds = 0;
    while stalled_rounds <= 3 && offset < stream.len() {
        let n = guest.write(&stream[offset..]).unwrap();
        offset += n;
        port.pump(&mut server);
        let conn = server.connection(5).unwrap();
        assert!(conn.buffered_bytes() <= limits.output_bytes + limits.event_queue_bytes);
        stalled_rounds = if n == 0 { stalled_rounds + 1 } else { 0 };
    }
    // The guest's request ring is full and Dom0 stopped taking from it: it accepted only what
    // fits in the bounded output (32-byte replies to 18-byte requests) plus the two rings.
    assert!(stalled_rounds > 3);
    assert_eq!(guest.write(&stream[offset..]), Ok(0));
    let bound = (limits.output_bytes + 1024) / 32 * request.len() + 2 * 1024;
    assert!(offset <= bound, "{offset} > {bound}");
    assert!(server.connection(5).unwrap().output_len() <= limits.output_bytes);
}

#[test]
fn pump_rounds_are_bounded_and_resume() {
    let mut page = vec![0u8; 4096];
    let memory = CellMemory::new(&mut page);
    let mut server = server();
    let mut port = ServerPort::attach(memory, 5).unwrap();
    let mut client = ClientPort::attach(memory).unwrap();
    let ids: Vec<u32> = (0..16).map(|_| client.send(&Request::GetDomainPath { domid: 5 }, 0).unwrap()).collect();
    client.pump().unwrap();
    let first = port.pump(&mut server);
    assert!(first.more, "32 rounds cannot handle 16 split messages");
    let mut calls = 1;
    loop {
        client.pump().unwrap();
        calls += 1;
        if !port.pump(&mut server).more {
            break;
        }
        assert!(calls < 100);
    }
    client.pump().unwrap();
    for id in ids {
        assert_eq!(client.take_reply(id), Some(Ok(b"/local/domain/5\0".to_vec())));
    }
}

#[test]
fn client_refuses_a_lying_server() {
    let mut page = vec![0u8; 4096];
    let memory = CellMemory::new(&mut page);
    let mut server_side = StoreRing::attach(memory, StoreSide::Server).unwrap();
    let mut client = ClientPort::attach(memory).unwrap();
    // An unsolicited reply is dropped; an event is delivered.
    server_side.write(&common::msg(XsType::Read, 999, 0, b"x")).unwrap();
    server_side.write(&xenstored::encode_event(b"/p", b"t")).unwrap();
    client.pump().unwrap();
    assert_eq!(client.take_reply(999), None);
    assert_eq!(client.take_event().unwrap().path, b"/p");
    // A reply header over the payload limit kills the port.
    server_side.write(&XsdSockmsg { msg_type: XsType::Read as u32, req_id: 1, tx_id: 0, len: 5000 }.to_raw()).unwrap();
    assert!(matches!(client.pump(), Err(ClientError::BrokenServer(_))));
    assert!(matches!(client.send(&Request::Read { path: b"a" }, 0), Err(ClientError::BrokenServer(_))));
}
