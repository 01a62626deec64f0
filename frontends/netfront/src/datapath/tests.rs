//! Host tests: two smoltcp stacks over two data paths joined by a fake backend switch, and a
//! hostile backend writing bad responses.
use super::*;
use crate::stream::{Fnv64, StreamGen, expected_checksum};
use core::cell::Cell;
use shared_ring::wire::netif::{NetifRxResponse, NetifRxSlot, NetifTxResponse, RSP_ERROR, TxPacketCheck};
use shared_ring::{BackRing, CellMemory};
use smoltcp::iface::{Config, Interface, SocketSet};
use smoltcp::phy::{RxToken as _, TxToken as _};
use smoltcp::socket::{icmp, tcp};
use smoltcp::wire::{EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, IpAddress, IpCidr, Ipv4Address};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

static NOTIFIES: AtomicU32 = AtomicU32::new(0);
fn notify(_port: u32) {
    NOTIFIES.fetch_add(1, Ordering::Relaxed);
}

fn cells() -> &'static [Cell<u8>] {
    let bytes: &'static mut [u8] = Box::leak(vec![0u8; PAGE].into_boxed_slice());
    Cell::from_mut(bytes).as_slice_of_cells()
}

/// Grant refs → pages, shared by every vif of a test.
#[derive(Default)]
struct Grants {
    pages: HashMap<u32, NonNull<u8>>,
    next: u32,
}

impl Grants {
    fn pool(&mut self, n: usize) -> Vec<Page> {
        (0..n)
            .map(|_| {
                let p: &'static mut [u8] = Box::leak(vec![0u8; PAGE].into_boxed_slice());
                let ptr = NonNull::new(p.as_mut_ptr()).unwrap();
                self.next += 1;
                self.pages.insert(self.next + 100, ptr);
                Page { gref: self.next + 100, ptr }
            })
            .collect()
    }

    fn page(&self, gref: u32) -> Option<&'static mut [u8]> {
        // SAFETY: test pages are leaked 4 KiB buffers; the test is single-threaded and the
        // front end does not hold a reference to a page while the fake backend touches it.
        self.pages.get(&gref).map(|p| unsafe { core::slice::from_raw_parts_mut(p.as_ptr(), PAGE) })
    }
}

struct Vif {
    dp: DataPath<CellMemory<'static>>,
    tx_back: BackRing<NetifTx, CellMemory<'static>>,
    rx_back: BackRing<NetifRx, CellMemory<'static>>,
}

fn vif(g: &mut Grants, ntx: usize, nrx: usize) -> Vif {
    let (t, r) = (cells(), cells());
    let dp = DataPath::new(CellMemory::from_cells(t), CellMemory::from_cells(r), g.pool(ntx), g.pool(nrx), 3, notify)
        .unwrap();
    let tx_back = BackRing::attach(CellMemory::from_cells(t)).unwrap();
    let rx_back = BackRing::attach(CellMemory::from_cells(r)).unwrap();
    Vif { dp, tx_back, rx_back }
}

/// Frames `from` sent, as the fake backend copies them out (each answered OKAY).
fn take_tx(g: &Grants, from: &mut Vif) -> Vec<Vec<u8>> {
    let mut frames = Vec::new();
    while let Some(slot) = from.tx_back.poll_request().unwrap() {
        let req = slot.as_request();
        let ok = TxPacketCheck::first(&req, 18).and_then(|c| c.finish()).is_ok() && req.flags == 0;
        let status = match (ok, g.page(req.gref)) {
            (true, Some(p)) => {
                frames.push(p[req.offset as usize..req.offset as usize + req.size as usize].to_vec());
                RSP_OKAY
            }
            _ => RSP_ERROR,
        };
        from.tx_back.push_response(NetifTxResponse { id: req.id, status }).unwrap();
    }
    let _ = from.tx_back.publish_responses();
    frames
}

/// Delivers frames into `to`'s posted rx buffers; returns how many were dropped (no buffer).
fn deliver(g: &Grants, to: &mut Vif, frames: &[Vec<u8>]) -> usize {
    let mut dropped = 0;
    for f in frames {
        match to.rx_back.poll_request().unwrap() {
            Some(req) => {
                let p = g.page(req.gref).unwrap();
                p[..f.len()].copy_from_slice(f);
                let rsp = NetifRxResponse { id: req.id, offset: 0, flags: 0, status: f.len() as i16 };
                to.rx_back.push_response(NetifRxSlot::Response(rsp)).unwrap();
            }
            None => dropped += 1,
        }
    }
    let _ = to.rx_back.publish_responses();
    dropped
}

fn iface(v: &mut Vif, n: u8) -> Interface {
    let mac = EthernetAddress([2, 0, 0, 0, 0, n]);
    let mut cfg = Config::new(HardwareAddress::Ethernet(mac));
    cfg.random_seed = n as u64;
    let mut i = Interface::new(cfg, &mut v.dp, smoltcp::time::Instant::ZERO);
    i.update_ip_addrs(|a| a.push(IpCidr::new(IpAddress::v4(10, 0, 0, n), 24)).unwrap());
    i
}

#[test]
fn tcp_stream_between_two_stacks() {
    let mut g = Grants::default();
    let (mut a, mut b) = (vif(&mut g, 128, 128), vif(&mut g, 128, 128));
    let (mut ia, mut ib) = (iface(&mut a, 1), iface(&mut b, 2));
    let mut sa = SocketSet::new(vec![]);
    let mut sb = SocketSet::new(vec![]);
    let buf = || tcp::SocketBuffer::new(vec![0; 65536]);
    let ha = sa.add(tcp::Socket::new(buf(), buf()));
    let hb = sb.add(tcp::Socket::new(buf(), buf()));
    sb.get_mut::<tcp::Socket>(hb).listen(5001).unwrap();
    sa.get_mut::<tcp::Socket>(ha).connect(ia.context(), (Ipv4Address::new(10, 0, 0, 2), 5001), 49152).unwrap();

    const LEN: u64 = 3 << 20;
    let (mut stream, mut sent, mut got, mut hash) = (StreamGen::new(42), 0u64, 0u64, Fnv64::new());
    let mut now = smoltcp::time::Instant::ZERO;
    for _ in 0..200_000 {
        ia.poll(now, &mut a.dp, &mut sa);
        a.dp.flush();
        let s = sa.get_mut::<tcp::Socket>(ha);
        if s.can_send() && sent < LEN {
            let n = s
                .send(|w| {
                    let n = w.len().min((LEN - sent) as usize);
                    stream.fill(&mut w[..n]);
                    (n, n)
                })
                .unwrap();
            sent += n as u64;
        }
        let fa = take_tx(&g, &mut a);
        assert_eq!(deliver(&g, &mut b, &fa), 0);
        ib.poll(now, &mut b.dp, &mut sb);
        b.dp.flush();
        let r = sb.get_mut::<tcp::Socket>(hb);
        while r.can_recv() {
            got += r
                .recv(|d| {
                    hash.update(d);
                    (d.len(), d.len() as u64)
                })
                .unwrap();
        }
        let fb = take_tx(&g, &mut b);
        assert_eq!(deliver(&g, &mut a, &fb), 0);
        if got == LEN {
            break;
        }
        now += smoltcp::time::Duration::from_millis(1);
    }
    assert_eq!(got, LEN);
    assert_eq!(hash.value(), expected_checksum(42, LEN));
    let (sa, sb) = (a.dp.stats(), b.dp.stats());
    assert!(sa.tx_packets > 2000 && sb.rx_packets > 2000 && sa.rx_packets > 10, "{sa:?} {sb:?}");
    assert!(sb.rx_packets >= sa.tx_packets && sb.rx_bytes >= sa.tx_bytes, "tx counted once answered");
    for v in [&a, &b] {
        let s = v.dp.stats();
        assert_eq!((s.tx_errors, s.rx_errors, s.violations), (0, 0, 0));
        assert!(v.dp.broken().is_none());
    }
    assert!(b.dp.stats().rx_bytes > LEN);
}

#[test]
fn pings_are_answered_automatically() {
    let mut g = Grants::default();
    let (mut a, mut b) = (vif(&mut g, 16, 16), vif(&mut g, 16, 16));
    let (mut ia, mut ib) = (iface(&mut a, 1), iface(&mut b, 2));
    let mut sa = SocketSet::new(vec![]);
    let mut sb = SocketSet::new(vec![]);
    let meta = || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 1024]);
    let h = sa.add(icmp::Socket::new(meta(), meta()));
    sa.get_mut::<icmp::Socket>(h).bind(icmp::Endpoint::Ident(7)).unwrap();
    let repr = Icmpv4Repr::EchoRequest { ident: 7, seq_no: 1, data: b"hello" };
    let s = sa.get_mut::<icmp::Socket>(h);
    let buf = s.send(repr.buffer_len(), IpAddress::v4(10, 0, 0, 2)).unwrap();
    repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &Default::default());
    let mut now = smoltcp::time::Instant::ZERO;
    let mut replied = false;
    for _ in 0..100 {
        ia.poll(now, &mut a.dp, &mut sa);
        a.dp.flush();
        let f = take_tx(&g, &mut a);
        deliver(&g, &mut b, &f);
        ib.poll(now, &mut b.dp, &mut sb);
        let f = take_tx(&g, &mut b);
        deliver(&g, &mut a, &f);
        let s = sa.get_mut::<icmp::Socket>(h);
        if s.can_recv() {
            let (data, from) = s.recv().unwrap();
            let p = Icmpv4Packet::new_checked(data).unwrap();
            let r = Icmpv4Repr::parse(&p, &Default::default()).unwrap();
            assert_eq!(r, Icmpv4Repr::EchoReply { ident: 7, seq_no: 1, data: b"hello" });
            assert_eq!(from, IpAddress::v4(10, 0, 0, 2));
            replied = true;
            break;
        }
        now += smoltcp::time::Duration::from_millis(10);
    }
    assert!(replied);
}

fn send_frame(v: &mut Vif, len: usize) -> bool {
    match v.dp.transmit(smoltcp::time::Instant::ZERO) {
        Some(t) => {
            t.consume(len, |b| b.fill(0xab));
            true
        }
        None => false,
    }
}

#[test]
fn tx_pool_exhaustion_and_errors() {
    let mut g = Grants::default();
    let mut v = vif(&mut g, 4, 4);
    for _ in 0..4 {
        assert!(send_frame(&mut v, 60));
    }
    assert!(!send_frame(&mut v, 60), "no page left");
    v.dp.flush();
    // The backend refuses two and accepts two.
    for i in 0..4 {
        let req = v.tx_back.poll_request().unwrap().unwrap().as_request();
        assert_eq!((req.size, req.offset, req.flags), (60, 0, 0));
        let status = if i < 2 { RSP_ERROR } else { RSP_OKAY };
        v.tx_back.push_response(NetifTxResponse { id: req.id, status }).unwrap();
    }
    let _ = v.tx_back.publish_responses();
    assert_eq!(v.dp.tx_free(), 4);
    let s = v.dp.stats();
    assert_eq!((s.tx_packets, s.tx_errors, s.tx_bytes), (2, 2, 120));
    assert!(v.dp.broken().is_none());
    // A reply token from receive() while the pool is empty loses the frame, without harm.
    for _ in 0..4 {
        assert!(send_frame(&mut v, 60));
    }
    deliver(&g, &mut v, &[vec![1; 60]]);
    let (rx, tx) = v.dp.receive(smoltcp::time::Instant::ZERO).unwrap();
    assert_eq!(rx.consume(|d| d.len()), 60);
    tx.consume(100, |b| b.fill(1));
    assert_eq!(v.dp.stats().tx_dropped, 1);
    assert_eq!(v.dp.rx_posted(), 4, "the rx page went back");
}

#[test]
fn rx_error_status_reposts_the_buffer() {
    let mut g = Grants::default();
    let mut v = vif(&mut g, 4, 4);
    for status in [-1i16, -2, 0, 5] {
        let req = v.rx_back.poll_request().unwrap().unwrap();
        let rsp = NetifRxResponse { id: req.id, offset: 0, flags: 0, status };
        v.rx_back.push_response(NetifRxSlot::Response(rsp)).unwrap();
    }
    let _ = v.rx_back.publish_responses();
    assert!(v.dp.receive(smoltcp::time::Instant::ZERO).is_none());
    assert_eq!(v.dp.stats().rx_errors, 4);
    assert_eq!(v.dp.rx_posted(), 4);
    assert!(v.dp.broken().is_none());
    v.dp.flush();
    let mut n = 0;
    while v.rx_back.poll_request().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 4, "reposted buffers are visible to the backend");
}

/// A backend that writes `rsp` into the next rx response slot (after answering nothing else).
fn hostile_rx(rsp: NetifRxResponse) -> Vif {
    let mut g = Grants::default();
    let mut v = vif(&mut g, 4, 4);
    let _ = v.rx_back.poll_request().unwrap().unwrap();
    v.rx_back.push_response(NetifRxSlot::Response(rsp)).unwrap();
    let _ = v.rx_back.publish_responses();
    v
}

#[test]
fn bad_rx_responses_break_the_path_without_panicking() {
    let cases = [
        (NetifRxResponse { id: 9, offset: 0, flags: 0, status: 60 }, "id out of range"),
        (NetifRxResponse { id: 0, offset: 4000, flags: 0, status: 200 }, "past the page"),
        (NetifRxResponse { id: 0, offset: 0, flags: RXF_MORE_DATA, status: 60 }, "more_data"),
        (NetifRxResponse { id: 0, offset: 0, flags: RXF_EXTRA_INFO, status: 60 }, "extra_info"),
        (NetifRxResponse { id: 0, offset: 0, flags: 1 << 7, status: 60 }, "unknown flag"),
        (NetifRxResponse { id: 0, offset: 0, flags: 0, status: -9 }, "unknown status"),
    ];
    for (rsp, what) in cases {
        let mut v = hostile_rx(rsp);
        // ids are handed out from 0 upwards; id 0 is posted, 9 is not.
        assert!(v.dp.receive(smoltcp::time::Instant::ZERO).is_none(), "{what}");
        assert!(v.dp.broken().is_some(), "{what}");
        assert!(v.dp.transmit(smoltcp::time::Instant::ZERO).is_none(), "{what}");
        assert!(v.dp.final_check(), "{what}");
        assert_eq!(v.dp.stats().violations, 1);
    }
    // The same buffer answered twice.
    let mut g = Grants::default();
    let mut v = vif(&mut g, 4, 4);
    let req = v.rx_back.poll_request().unwrap().unwrap();
    let _ = v.rx_back.poll_request().unwrap().unwrap();
    for _ in 0..2 {
        let rsp = NetifRxResponse { id: req.id, offset: 0, flags: 0, status: 60 };
        v.rx_back.push_response(NetifRxSlot::Response(rsp)).unwrap();
    }
    let _ = v.rx_back.publish_responses();
    let (rx, _) = v.dp.receive(smoltcp::time::Instant::ZERO).unwrap();
    // Still held by the token: not posted.
    drop(rx);
    // Reposted now, so the duplicate is accepted as a response to the new post... unless the
    // backend answered before seeing it: the ring bounds responses by requests either way.
    let _ = v.dp.receive(smoltcp::time::Instant::ZERO);
    // Flood: more responses than requests.
    let mut g = Grants::default();
    let mut v = vif(&mut g, 4, 4);
    let mem = v.rx_back.memory();
    mem.store_release(shared_ring::layout::RSP_PROD, 50);
    assert!(v.dp.receive(smoltcp::time::Instant::ZERO).is_none());
    assert!(matches!(v.dp.broken(), Some(Violation::Ring(_))));
}

#[test]
fn bad_tx_responses_break_the_path_without_panicking() {
    type Make = fn(u16) -> NetifTxResponse;
    let cases: [(Make, &str); 4] = [
        (|id| NetifTxResponse { id: id + 1, status: RSP_OKAY }, "id not outstanding"),
        (|_| NetifTxResponse { id: 300, status: RSP_OKAY }, "id out of range"),
        (|id| NetifTxResponse { id, status: RSP_NULL }, "NULL"),
        (|id| NetifTxResponse { id, status: 7 }, "unknown status"),
    ];
    for (make, what) in cases {
        let mut g = Grants::default();
        let mut v = vif(&mut g, 4, 4);
        assert!(send_frame(&mut v, 60));
        v.dp.flush();
        let req = v.tx_back.poll_request().unwrap().unwrap().as_request();
        v.tx_back.push_response(make(req.id)).unwrap();
        let _ = v.tx_back.publish_responses();
        v.dp.tx_free();
        assert!(v.dp.broken().is_some(), "{what}");
        assert!(v.dp.transmit(smoltcp::time::Instant::ZERO).is_none(), "{what}");
        assert!(v.dp.receive(smoltcp::time::Instant::ZERO).is_none(), "{what}");
    }
}

#[test]
fn rx_flood_with_no_room_drops_at_the_backend() {
    let mut g = Grants::default();
    let mut v = vif(&mut g, 4, 8);
    let frames: Vec<Vec<u8>> = (0..20).map(|i| vec![i as u8; 64]).collect();
    assert_eq!(deliver(&g, &mut v, &frames), 12);
    let mut n = 0;
    while let Some((rx, _)) = v.dp.receive(smoltcp::time::Instant::ZERO) {
        assert_eq!(rx.consume(|d| d[0]), n);
        n += 1;
    }
    assert_eq!(n, 8);
    assert_eq!(v.dp.stats().rx_packets, 8);
    assert_eq!(v.dp.rx_posted(), 8);
}
