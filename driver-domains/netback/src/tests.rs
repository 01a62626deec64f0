//! Host tests: frontends with rings and granted pages in plain memory, a fake grant copier and
//! uplink, and every kind of bad request.
use std::boxed::Box;
use std::cell::Cell;
use std::collections::HashMap;
use std::vec;
use std::vec::Vec;

use hv_abi::GrantStatus;
use shared_ring::layout::{REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use shared_ring::wire::netif::{
    EXTRA_FLAG_MORE, EXTRA_TYPE_MCAST_ADD, GSO_TYPE_TCPV4, NetifExtraInfo, NetifRxRequest, NetifRxResponse,
    NetifTxRequest, NetifTxResponse, RSP_ERROR, RSP_NULL, RSP_OKAY, TXF_CSUM_BLANK, TXF_DATA_VALIDATED, TXF_EXTRA_INFO,
    TXF_MORE_DATA,
};
use shared_ring::{BackRing, CellMemory, SharedMemory};

use smoltcp::wire::{EthernetFrame, IpAddress, Ipv4Packet, Ipv6Packet, TcpPacket};

use crate::bridge::{Bridge, Round, Uplink};
use crate::gso::{GsoError, GsoKind};
use crate::switch::{Mac, PortId};
use crate::vif::{MAX_FRAME, RX_QUEUE_LEN, TX_PACKETS_PER_ROUND, TxRefusal, Vif};
use xenbus_backend::{GrantCopier, OutCopy, Seg};

type Mem = CellMemory<'static>;

/// The hypervisor's grant copy, reduced to what netback relies on: the grant must exist (per
/// granting domain), be writable for a copy into it, and the range must stay in the page; a
/// bad element fails only itself.
#[derive(Default)]
struct Grants {
    /// (domid, gref) → (read-only, page)
    pages: HashMap<(hv_abi::DomId, u32), (bool, Vec<u8>)>,
    batches_in: usize,
    batches_out: usize,
}

impl Grants {
    fn grant(&mut self, domid: hv_abi::DomId, gref: u32, read_only: bool) {
        self.pages.insert((domid, gref), (read_only, vec![0; 4096]));
    }
    fn page(&mut self, domid: hv_abi::DomId, gref: u32) -> &mut Vec<u8> {
        &mut self.pages.get_mut(&(domid, gref)).expect("granted").1
    }
    fn check(&self, domid: hv_abi::DomId, gref: u32, offset: u16, len: usize, write: bool) -> Result<(), GrantStatus> {
        let Some((ro, _)) = self.pages.get(&(domid, gref)) else { return Err(GrantStatus::BadGntref) };
        if write && *ro {
            return Err(GrantStatus::PermissionDenied);
        }
        if usize::from(offset) + len > 4096 {
            return Err(GrantStatus::BadCopyArg);
        }
        Ok(())
    }
}

impl GrantCopier for Grants {
    fn copy_in(&mut self, domid: hv_abi::DomId, segs: &[Seg], buf: &mut [u8], status: &mut [GrantStatus]) {
        assert_eq!(segs.len(), status.len());
        self.batches_in += 1;
        for (s, st) in segs.iter().zip(status.iter_mut()) {
            *st = match self.check(domid, s.gref, s.offset, usize::from(s.len), false) {
                Ok(()) => {
                    let p = &self.pages[&(domid, s.gref)].1;
                    let (o, n) = (usize::from(s.offset), usize::from(s.len));
                    buf[s.buf_offset..s.buf_offset + n].copy_from_slice(&p[o..o + n]);
                    GrantStatus::Okay
                }
                Err(e) => e,
            };
        }
    }
    fn copy_out(&mut self, domid: hv_abi::DomId, copies: &[OutCopy<'_>], status: &mut [GrantStatus]) {
        assert_eq!(copies.len(), status.len());
        self.batches_out += 1;
        for (c, st) in copies.iter().zip(status.iter_mut()) {
            *st = match self.check(domid, c.gref, c.offset, c.data.len(), true) {
                Ok(()) => {
                    let p = &mut self.pages.get_mut(&(domid, c.gref)).unwrap().1;
                    let o = usize::from(c.offset);
                    p[o..o + c.data.len()].copy_from_slice(c.data);
                    GrantStatus::Okay
                }
                Err(e) => e,
            };
        }
    }
}

#[derive(Default)]
struct FakeUplink {
    sent: Vec<Vec<u8>>,
    full: bool,
}

impl Uplink for FakeUplink {
    fn send(&mut self, frame: &[u8]) -> bool {
        if self.full {
            return false;
        }
        self.sent.push(frame.to_vec());
        true
    }
}

fn page() -> &'static [Cell<u8>] {
    Cell::from_mut(Box::leak(vec![0u8; 4096].into_boxed_slice())).as_slice_of_cells()
}

/// A frontend driving its rings by hand (so it can also write anything it likes).
struct Front {
    domid: hv_abi::DomId,
    mac: Mac,
    tx: Mem,
    rx: Mem,
    tx_prod: u32,
    rx_prod: u32,
    tx_cons: u32,
    rx_cons: u32,
    /// Next tx data gref to use, and rx grefs.
    next_gref: u32,
    next_rx_id: u16,
}

const TX_BASE: u32 = 100;
const RX_BASE: u32 = 1000;

impl Front {
    fn new(domid: hv_abi::DomId, grants: &mut Grants) -> Self {
        let (tx, rx) = (CellMemory::from_cells(page()), CellMemory::from_cells(page()));
        for m in [&tx, &rx] {
            m.store_release(REQ_EVENT, 1);
            m.store_release(RSP_EVENT, 1);
        }
        for g in 0..256 {
            grants.grant(domid, TX_BASE + g, true);
            grants.grant(domid, RX_BASE + g, false);
        }
        let mac = [0x00, 0x16, 0x3e, 0, domid as u8, 0];
        Self { domid, mac, tx, rx, tx_prod: 0, rx_prod: 0, tx_cons: 0, rx_cons: 0, next_gref: 0, next_rx_id: 0 }
    }

    fn vif(&self) -> Vif<Mem> {
        Vif::new(self.domid, BackRing::attach(self.tx).unwrap(), BackRing::attach(self.rx).unwrap())
    }

    fn push_tx_raw(&mut self, bytes: [u8; 12]) {
        self.tx.write(64 + (self.tx_prod % 256) as usize * 12, &bytes);
        self.tx_prod = self.tx_prod.wrapping_add(1);
    }
    fn push_tx(&mut self, r: NetifTxRequest) {
        self.push_tx_raw(r.to_raw());
    }
    fn push_extra(&mut self, e: NetifExtraInfo) {
        let mut b = [0; 12];
        b[..8].copy_from_slice(&e.to_raw());
        self.push_tx_raw(b);
    }
    fn publish_tx(&self) {
        self.tx.store_release(REQ_PROD, self.tx_prod);
    }

    /// Writes `frame` into a fresh granted page and posts one slot for it.
    fn send(&mut self, grants: &mut Grants, frame: &[u8], id: u16) {
        let gref = TX_BASE + self.next_gref % 256;
        self.next_gref += 1;
        grants.page(self.domid, gref)[..frame.len()].copy_from_slice(frame);
        self.push_tx(NetifTxRequest { gref, offset: 0, flags: 0, id, size: frame.len() as u16 });
        self.publish_tx();
    }

    /// Writes `packet` into fresh granted pages, a page per slot (netfront's scatter-gather),
    /// and posts it: the first slot (`NETTXF_csum_blank`, the total size), `extras`, then the
    /// fragments. Returns the ids of its data slots.
    fn send_sg(&mut self, grants: &mut Grants, packet: &[u8], extras: &[NetifExtraInfo], id: u16) -> Vec<u16> {
        let chunks: Vec<&[u8]> = packet.chunks(4096).collect();
        let mut ids = Vec::new();
        for (i, c) in chunks.iter().enumerate() {
            let gref = TX_BASE + self.next_gref % 256;
            self.next_gref += 1;
            grants.page(self.domid, gref)[..c.len()].copy_from_slice(c);
            let more = if i + 1 < chunks.len() { TXF_MORE_DATA } else { 0 };
            let (flags, size) = if i == 0 {
                let extra = if extras.is_empty() { 0 } else { TXF_EXTRA_INFO };
                (TXF_CSUM_BLANK | extra | more, packet.len() as u16)
            } else {
                (more, c.len() as u16)
            };
            let slot_id = id.wrapping_add(i as u16);
            ids.push(slot_id);
            self.push_tx(NetifTxRequest { gref, offset: 0, flags, id: slot_id, size });
            if i == 0 {
                for e in extras {
                    self.push_extra(*e);
                }
            }
        }
        self.publish_tx();
        ids
    }

    fn post_rx(&mut self, n: usize) {
        for _ in 0..n {
            let id = self.next_rx_id;
            self.next_rx_id = self.next_rx_id.wrapping_add(1);
            let r = NetifRxRequest { id, pad: 0, gref: RX_BASE + u32::from(id) % 256 };
            self.rx.write(64 + (self.rx_prod % 256) as usize * 8, &r.to_raw());
            self.rx_prod = self.rx_prod.wrapping_add(1);
        }
        self.rx.store_release(REQ_PROD, self.rx_prod);
    }

    /// Keeps 256 rx buffers posted.
    fn refill_rx(&mut self) {
        let outstanding = self.rx_prod.wrapping_sub(self.rx_cons) as usize;
        self.post_rx(256 - outstanding);
    }

    fn tx_responses(&mut self) -> Vec<NetifTxResponse> {
        let prod = self.tx.load_acquire(RSP_PROD);
        let mut out = Vec::new();
        while self.tx_cons != prod {
            let mut b = [0; 4];
            self.tx.read(64 + (self.tx_cons % 256) as usize * 12, &mut b);
            out.push(NetifTxResponse::from_raw(&b));
            self.tx_cons = self.tx_cons.wrapping_add(1);
        }
        out
    }

    /// Received frames (`Err(status)` for error responses).
    fn received(&mut self, grants: &mut Grants) -> Vec<Result<Vec<u8>, i16>> {
        let prod = self.rx.load_acquire(RSP_PROD);
        let mut out = Vec::new();
        while self.rx_cons != prod {
            let mut b = [0; 8];
            self.rx.read(64 + (self.rx_cons % 256) as usize * 8, &mut b);
            let r = NetifRxResponse::from_raw(&b);
            assert_eq!(r.validate(), Ok(()));
            assert_eq!((r.offset, r.flags), (0, 0));
            if r.status > 0 {
                let gref = RX_BASE + u32::from(r.id) % 256;
                out.push(Ok(grants.page(self.domid, gref)[..r.status as usize].to_vec()));
            } else {
                out.push(Err(r.status));
            }
            self.rx_cons = self.rx_cons.wrapping_add(1);
        }
        out
    }
}

fn frame(dst: Mac, src: Mac, len: usize, tag: u8) -> Vec<u8> {
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&[0x08, 0x00]);
    while f.len() < len {
        f.push(tag.wrapping_add(f.len() as u8));
    }
    f
}

struct Net {
    grants: Grants,
    bridge: Bridge<Mem>,
    uplink: FakeUplink,
    captured: Vec<(PortId, Vec<u8>)>,
    now: u64,
}

impl Net {
    fn new(has_uplink: bool) -> Self {
        Self {
            grants: Grants::default(),
            bridge: Bridge::new(has_uplink),
            uplink: FakeUplink::default(),
            captured: Vec::new(),
            now: 0,
        }
    }
    fn add(&mut self, domid: hv_abi::DomId) -> (Front, PortId) {
        let f = Front::new(domid, &mut self.grants);
        let port = self.bridge.add_vif(f.vif(), Some(f.mac));
        (f, port)
    }
    fn round(&mut self) -> Round {
        self.now += 1000;
        let captured = &mut self.captured;
        self.bridge.round(
            &mut self.grants,
            &mut self.uplink,
            &mut |p, f: &[u8]| captured.push((p, f.to_vec())),
            self.now,
        )
    }
}

const UP_MAC: Mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const BCAST: Mac = [0xff; 6];

#[test]
fn frames_flow_between_vifs_and_the_uplink() {
    let mut net = Net::new(true);
    let (mut a, pa) = net.add(5);
    let (mut b, pb) = net.add(6);
    b.post_rx(8);
    a.post_rx(8);
    // A → B: B's MAC is assigned to its port, so only B gets it.
    let f1 = frame(b.mac, a.mac, 60, 1);
    a.send(&mut net.grants, &f1, 7);
    let r = net.round();
    assert!(r.broken.is_empty());
    assert!(r.notify.contains(&pa) && r.notify.contains(&pb));
    assert_eq!(a.tx_responses(), [NetifTxResponse { id: 7, status: RSP_OKAY }]);
    assert_eq!(b.received(&mut net.grants), [Ok(f1.clone())]);
    assert!(net.uplink.sent.is_empty());
    // A → an address nobody has: flooded to B and the uplink.
    let f0 = frame([0x02, 0, 0, 0, 0, 9], a.mac, 60, 9);
    a.send(&mut net.grants, &f0, 8);
    net.round();
    assert_eq!(b.received(&mut net.grants), [Ok(f0.clone())]);
    assert_eq!(net.uplink.sent, std::slice::from_ref(&f0));
    // B → A: only A gets it.
    let f2 = frame(a.mac, b.mac, 1514, 2);
    b.send(&mut net.grants, &f2, 3);
    net.round();
    assert_eq!(a.received(&mut net.grants), [Ok(f2.clone())]);
    assert_eq!(net.uplink.sent.len(), 1);
    // The uplink → A (known) and a broadcast from the uplink to both.
    net.bridge.from_uplink(&frame(a.mac, UP_MAC, 100, 3), net.now);
    net.bridge.from_uplink(&frame(BCAST, UP_MAC, 42, 4), net.now);
    // Bad sizes from the uplink are dropped and counted.
    net.bridge.from_uplink(&[0; 13], net.now);
    net.bridge.from_uplink(&[0; 1515], net.now);
    net.round();
    assert_eq!(a.received(&mut net.grants).len(), 2);
    assert_eq!(b.received(&mut net.grants), [Ok(frame(BCAST, UP_MAC, 42, 4))]);
    // A → uplink MAC (learnt on the uplink port): uplink only.
    a.send(&mut net.grants, &frame(UP_MAC, a.mac, 80, 5), 9);
    net.round();
    assert_eq!(net.uplink.sent.len(), 2);
    assert!(b.received(&mut net.grants).is_empty());
    let ca = net.bridge.vif(pa).unwrap().counters;
    assert_eq!((ca.tx_packets, ca.tx_bytes, ca.rx_packets, ca.rx_bytes), (3, 200, 3, 1514 + 100 + 42));
    let u = net.bridge.uplink;
    assert_eq!((u.rx_packets, u.rx_errors, u.tx_packets), (2, 2, 2));
    assert_eq!(alloc::format!("{ca}"), "tx 3 pkts 200 B, tx errors 0, rx 3 pkts 1656 B, rx drops 0");
    assert_eq!((net.bridge.spoofed(pa), net.bridge.spoofed(pb)), (Some(0), Some(0)));
    // No capture asked for.
    assert!(net.captured.is_empty());
}

#[test]
fn no_uplink_switches_among_vifs_only() {
    let mut net = Net::new(false);
    let (mut a, _) = net.add(5);
    let (mut b, _) = net.add(6);
    b.post_rx(1);
    a.send(&mut net.grants, &frame(BCAST, a.mac, 60, 1), 0);
    net.round();
    assert_eq!(b.received(&mut net.grants).len(), 1);
    assert!(net.uplink.sent.is_empty());
}

#[test]
fn uplink_full_counts_drops() {
    let mut net = Net::new(true);
    let (mut a, _) = net.add(5);
    net.uplink.full = true;
    a.send(&mut net.grants, &frame(UP_MAC, a.mac, 60, 1), 0);
    net.round();
    assert_eq!(net.bridge.uplink.tx_drops, 1);
    // The frontend's request still succeeded: the frame left its ring.
    assert_eq!(a.tx_responses()[0].status, RSP_OKAY);
}

#[test]
fn multi_slot_packet_with_extra_info() {
    let mut net = Net::new(true);
    let (mut a, _) = net.add(5);
    let (mut b, _) = net.add(6);
    b.post_rx(1);
    let f = frame(BCAST, a.mac, 1000, 9);
    // First fragment: 300 bytes at offset 3796 of gref 100; then 500 at 0 of 101, 200 at 10 of 102.
    net.grants.page(5, 100)[3796..].copy_from_slice(&f[..300]);
    net.grants.page(5, 101)[..500].copy_from_slice(&f[300..800]);
    net.grants.page(5, 102)[10..210].copy_from_slice(&f[800..]);
    a.push_tx(NetifTxRequest { gref: 100, offset: 3796, flags: TXF_MORE_DATA | TXF_EXTRA_INFO, id: 1, size: 1000 });
    let mut mcast =
        NetifExtraInfo { extra_type: EXTRA_TYPE_MCAST_ADD, flags: EXTRA_FLAG_MORE, u: [1, 0, 0x5e, 0, 0, 1] };
    a.push_extra(mcast);
    mcast.flags = 0;
    a.push_extra(mcast);
    a.push_tx(NetifTxRequest { gref: 101, offset: 0, flags: TXF_MORE_DATA | TXF_DATA_VALIDATED, id: 2, size: 500 });
    // Publish only part of the packet: nothing is answered yet.
    a.publish_tx();
    net.round();
    assert!(a.tx_responses().is_empty());
    a.push_tx(NetifTxRequest { gref: 102, offset: 10, flags: 0, id: 3, size: 200 });
    a.publish_tx();
    net.round();
    let rsp: Vec<(u16, i16)> = a.tx_responses().iter().map(|r| (r.id, r.status)).collect();
    assert_eq!(rsp, [(1, RSP_OKAY), (0, RSP_NULL), (0, RSP_NULL), (2, RSP_OKAY), (3, RSP_OKAY)]);
    assert_eq!(b.received(&mut net.grants), [Ok(f)]);
    // One batch of copies for the whole packet.
    assert_eq!(net.grants.batches_in, 1);
}

/// One bad packet per kind, each followed by a good one; every slot of a bad packet gets
/// ERROR (extras NULL) and the good packets still go through.
#[test]
fn every_malformed_request_gets_an_error() {
    let mut net = Net::new(true);
    let (mut a, pa) = net.add(5);
    let good = frame(UP_MAC, a.mac, 60, 0);
    net.grants.page(5, 100)[..60].copy_from_slice(&good);
    let req = |id, flags, size| NetifTxRequest { gref: 100, offset: 0, flags, id, size };
    let gso = NetifExtraInfo::gso(1448, GSO_TYPE_TCPV4, 0, false);
    type Case = (&'static str, Vec<Result<NetifTxRequest, NetifExtraInfo>>);
    let cases: Vec<Case> = vec![
        ("unknown flag", vec![Ok(req(1, 1 << 7, 60))]),
        ("offset past page", vec![Ok(NetifTxRequest { offset: 4096, ..req(1, 0, 60) })]),
        ("first fragment past page", vec![Ok(NetifTxRequest { offset: 4090, ..req(1, 0, 60) })]),
        ("too short", vec![Ok(req(1, 0, 13))]),
        ("too long", vec![Ok(req(1, 0, 1515))]),
        ("empty", vec![Ok(req(1, 0, 0))]),
        ("checksum blank on a frame that is not TCP/UDP", vec![Ok(req(1, TXF_CSUM_BLANK, 60))]),
        (
            "fragment past page",
            vec![Ok(req(1, TXF_MORE_DATA, 60)), Ok(NetifTxRequest { offset: 4000, ..req(2, 0, 100) })],
        ),
        ("fragments exceed packet", vec![Ok(req(1, TXF_MORE_DATA, 60)), Ok(req(2, 0, 61))]),
        ("extra on fragment", vec![Ok(req(1, TXF_MORE_DATA, 60)), Ok(req(2, TXF_EXTRA_INFO, 10))]),
        ("gso on a frame that is not TCP", vec![Ok(req(1, TXF_EXTRA_INFO, 60)), Err(gso)]),
        ("bad extra type", vec![Ok(req(1, TXF_EXTRA_INFO, 60)), Err(NetifExtraInfo { extra_type: 0, ..gso })]),
        ("bad extra flags", vec![Ok(req(1, TXF_EXTRA_INFO, 60)), Err(NetifExtraInfo { flags: 4, ..gso })]),
        (
            "too many extras",
            std::iter::once(Ok(req(1, TXF_EXTRA_INFO, 60)))
                .chain((0..5).map(|i| {
                    Err(NetifExtraInfo {
                        extra_type: EXTRA_TYPE_MCAST_ADD,
                        flags: if i < 4 { EXTRA_FLAG_MORE } else { 0 },
                        u: [1, 0, 0x5e, 0, 0, 1],
                    })
                }))
                .collect(),
        ),
        (
            "too many slots",
            std::iter::once(Ok(req(1, TXF_MORE_DATA, 1000)))
                .chain((0..18).map(|i| Ok(req(2 + i, if i < 17 { TXF_MORE_DATA } else { 0 }, 1))))
                .collect(),
        ),
        ("ungranted page", vec![Ok(NetifTxRequest { gref: 9999, ..req(1, 0, 60) })]),
        ("fragment ungranted", vec![Ok(req(1, TXF_MORE_DATA, 60)), Ok(NetifTxRequest { gref: 9999, ..req(2, 0, 10) })]),
    ];
    for (i, (name, slots)) in cases.iter().enumerate() {
        for s in slots {
            match s {
                Ok(r) => a.push_tx(*r),
                Err(e) => a.push_extra(*e),
            }
        }
        a.push_tx(req(500, 0, 60));
        a.publish_tx();
        let r = net.round();
        assert!(r.broken.is_empty(), "{name}");
        let rsp = a.tx_responses();
        assert_eq!(rsp.len(), slots.len() + 1, "{name}: one response per slot");
        for (s, r) in slots.iter().zip(&rsp) {
            match s {
                Ok(q) => assert_eq!((r.id, r.status), (q.id, RSP_ERROR), "{name}"),
                Err(_) => assert_eq!(r.status, RSP_NULL, "{name}"),
            }
        }
        assert_eq!(rsp.last().unwrap(), &NetifTxResponse { id: 500, status: RSP_OKAY }, "{name}");
        let c = net.bridge.vif(pa).unwrap().counters;
        assert_eq!((c.tx_errors, c.tx_packets), (i as u64 + 1, i as u64 + 1), "{name}");
        let refusals = &net.bridge.vif(pa).unwrap().refusals;
        assert_eq!(refusals.len(), 1, "{name}");
        if name.contains("ungranted") {
            assert_eq!(refusals[0], (1, TxRefusal::Grant(GrantStatus::BadGntref)));
        }
    }
    assert_eq!(net.uplink.sent.len(), cases.len());
    assert!(net.uplink.sent.iter().all(|f| *f == good));
}

#[test]
fn rx_copy_failure_answers_error_and_counts_a_drop() {
    let mut net = Net::new(true);
    let (mut a, _) = net.add(5);
    let (mut b, pb) = net.add(6);
    // B's first rx buffer is read-only, the second fine.
    net.grants.grant(6, RX_BASE, true);
    b.post_rx(2);
    let f1 = frame(b.mac, a.mac, 60, 1);
    let f2 = frame(b.mac, a.mac, 61, 2);
    a.send(&mut net.grants, &f1, 0);
    a.send(&mut net.grants, &f2, 1);
    net.round();
    assert_eq!(b.received(&mut net.grants), [Err(RSP_ERROR), Ok(f2)]);
    let c = net.bridge.vif(pb).unwrap().counters;
    assert_eq!((c.rx_packets, c.rx_drops), (1, 1));
}

#[test]
fn rx_queue_is_bounded_and_drains_in_order() {
    let mut net = Net::new(false);
    let (mut a, _) = net.add(5);
    let (mut b, pb) = net.add(6);
    // B never posts buffers; A sends 300 frames to B (in rounds of at most 64).
    for i in 0..300u16 {
        a.send(&mut net.grants, &frame(BCAST, a.mac, 60 + usize::from(i % 100), i as u8), i % 256);
        if i % 50 == 49 {
            net.round();
            a.tx_responses();
        }
    }
    net.round();
    let v = net.bridge.vif(pb).unwrap();
    assert_eq!(v.queued(), RX_QUEUE_LEN);
    assert_eq!(v.counters.rx_drops, 300 - RX_QUEUE_LEN as u64);
    // B posts buffers: the first 256 frames arrive, in order, 64 per round at most.
    let mut got = Vec::new();
    for _ in 0..10 {
        b.post_rx(64);
        net.round();
        got.extend(b.received(&mut net.grants));
    }
    assert_eq!(got.len(), RX_QUEUE_LEN);
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.as_ref().unwrap().len(), 60 + i % 100);
    }
}

#[test]
fn tx_work_per_round_is_bounded() {
    let mut net = Net::new(true);
    let (mut a, pa) = net.add(5);
    for i in 0..200u16 {
        a.send(&mut net.grants, &frame(UP_MAC, a.mac, 60, 0), i);
    }
    let r = net.round();
    assert!(r.more);
    assert_eq!(a.tx_responses().len(), TX_PACKETS_PER_ROUND);
    let mut rounds = 1;
    while net.round().more {
        rounds += 1;
        assert!(rounds < 10);
    }
    assert_eq!(net.bridge.vif(pa).unwrap().counters.tx_packets, 200);
    assert_eq!(a.tx_responses().len(), 200 - TX_PACKETS_PER_ROUND);
}

/// A flooding, malformed vif and a vif that never posts rx buffers do not keep two good vifs
/// from talking.
#[test]
fn hostile_and_deaf_vifs_do_not_disturb_good_ones() {
    let mut net = Net::new(true);
    let (mut a, pa) = net.add(5);
    let (mut b, pb) = net.add(6);
    let (mut flood, pf) = net.add(7);
    let (mut deaf, pd) = net.add(8);
    // Everyone announces itself once so the switch learns them.
    for (f, id) in [(&mut a, 0), (&mut b, 0), (&mut deaf, 0)] {
        let fr = frame(UP_MAC, f.mac, 60, 0);
        let g = &mut net.grants;
        f.send(g, &fr, id);
    }
    net.round();
    for f in [&mut a, &mut b, &mut deaf] {
        f.tx_responses();
    }
    let mut sent_ab = 0;
    let mut got_b = 0;
    let mut got_a = 0;
    for round in 0..50u32 {
        // The flooder fills its ring: malformed slots, frames to the deaf vif, broadcasts.
        for i in 0..200u32 {
            match i % 4 {
                0 => flood.push_tx_raw([0xff; 12]),
                1 => flood.push_tx(NetifTxRequest { gref: 7777, offset: 0, flags: 0, id: 1, size: 60 }),
                2 => {
                    let fr = frame(deaf.mac, flood.mac, 60, 0);
                    let g = &mut net.grants;
                    flood.send(g, &fr, 2);
                }
                _ => {
                    let fr = frame(BCAST, flood.mac, 60, 0);
                    let g = &mut net.grants;
                    flood.send(g, &fr, 3);
                }
            }
            if flood.tx_prod.wrapping_sub(flood.tx_cons) >= 256 {
                break;
            }
        }
        flood.publish_tx();
        // A and B exchange two unicast frames each per round and keep rx buffers posted.
        for k in 0..2u16 {
            let fab = frame(b.mac, a.mac, 100, (round * 2 + u32::from(k)) as u8);
            a.send(&mut net.grants, &fab, k);
            let fba = frame(a.mac, b.mac, 100, 7);
            b.send(&mut net.grants, &fba, k);
            sent_ab += 1;
        }
        // Good frontends keep their rx ring full of buffers.
        a.refill_rx();
        b.refill_rx();
        for _ in 0..2 {
            let r = net.round();
            assert!(r.broken.is_empty());
            flood.tx_responses();
            a.tx_responses();
            b.tx_responses();
            let unicast = |f: &Result<Vec<u8>, i16>, to: Mac, from: Mac| {
                f.as_ref().is_ok_and(|f| f[..6] == to && f[6..12] == from)
            };
            got_b += b.received(&mut net.grants).iter().filter(|f| unicast(f, b.mac, a.mac)).count();
            got_a += a.received(&mut net.grants).iter().filter(|f| unicast(f, a.mac, b.mac)).count();
            a.refill_rx();
            b.refill_rx();
        }
    }
    assert_eq!(got_b, sent_ab);
    assert_eq!(got_a, sent_ab);
    let c = |p| net.bridge.vif(p).unwrap().counters;
    assert_eq!(c(pa).rx_drops, 0);
    assert_eq!(c(pb).rx_drops, 0);
    assert!(c(pf).tx_errors > 1000, "{:?}", c(pf));
    assert!(c(pd).rx_drops > 0 && net.bridge.vif(pd).unwrap().queued() == RX_QUEUE_LEN);
}

#[test]
fn a_broken_ring_disconnects_only_that_vif() {
    let mut net = Net::new(false);
    let (mut a, _) = net.add(5);
    let (mut b, _) = net.add(6);
    let (bad, pbad) = net.add(7);
    bad.tx.store_release(REQ_PROD, 1000);
    b.post_rx(1);
    a.send(&mut net.grants, &frame(BCAST, a.mac, 60, 0), 0);
    let r = net.round();
    assert_eq!(r.broken.len(), 1);
    assert_eq!(r.broken[0].0, pbad);
    assert_eq!(b.received(&mut net.grants).len(), 1);
    assert!(net.bridge.remove_vif(pbad).is_some());
    assert_eq!(net.bridge.ports().count(), 2);
    // The rx ring breaks the same way (when a frame waits for it).
    let (bad2, pbad2) = net.add(9);
    bad2.rx.store_release(REQ_PROD, 5000);
    a.send(&mut net.grants, &frame(BCAST, a.mac, 60, 0), 1);
    let r = net.round();
    assert_eq!(r.broken.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [pbad2]);
}

#[test]
fn captured_vifs_report_both_directions() {
    let mut net = Net::new(false);
    let (mut a, pa) = net.add(5);
    let (mut b, _) = net.add(6);
    net.bridge.vif_mut(pa).unwrap().capture = true;
    a.post_rx(1);
    b.post_rx(1);
    let f1 = frame(b.mac, a.mac, 60, 1);
    a.send(&mut net.grants, &f1, 0);
    net.round();
    let f2 = frame(a.mac, b.mac, 70, 2);
    b.send(&mut net.grants, &f2, 0);
    net.round();
    assert_eq!(net.captured, [(pa, f1), (pa, f2)]);
}

#[test]
fn removed_vifs_are_forgotten_by_the_switch() {
    let mut net = Net::new(true);
    let (mut a, pa) = net.add(5);
    a.send(&mut net.grants, &frame(UP_MAC, a.mac, 60, 0), 0);
    net.round();
    assert_eq!(net.bridge.switch.lookup(&a.mac, net.now), Some(pa));
    assert_eq!(net.bridge.switch.static_port(&a.mac), Some(pa));
    net.bridge.remove_vif(pa);
    assert_eq!(net.bridge.switch.lookup(&a.mac, net.now), None);
    // A frame for it from the uplink goes nowhere (and does not panic).
    net.bridge.from_uplink(&frame(a.mac, UP_MAC, 60, 0), net.now);
    net.round();
}

/// xorshift64*: deterministic noise without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// Arbitrary slot contents (biased towards plausible flags and sizes) never panic, and every
/// published slot gets exactly one response of a defined status, in order.
#[test]
fn arbitrary_slots_never_panic() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..200 {
        let mut net = Net::new(true);
        let (mut a, pa) = net.add(5);
        let (mut b, _) = net.add(6);
        for g in 0..8 {
            let p = net.grants.page(5, TX_BASE + g);
            for byte in p.iter_mut() {
                *byte = rng.next() as u8;
            }
        }
        let mut published = 0u32;
        let mut answered = 0u32;
        for _ in 0..20 {
            let n = rng.next() % 40;
            for _ in 0..n {
                if a.tx_prod.wrapping_sub(a.tx_cons) >= 256 {
                    break;
                }
                let x = rng.next();
                let raw = if x.is_multiple_of(3) {
                    let mut b = [0u8; 12];
                    b[..8].copy_from_slice(&rng.next().to_le_bytes());
                    b[8..].copy_from_slice(&(rng.next() as u32).to_le_bytes());
                    b
                } else {
                    NetifTxRequest {
                        gref: TX_BASE + (rng.next() % 10) as u32,
                        offset: (rng.next() % 4200) as u16,
                        flags: (rng.next() % 32) as u16,
                        id: rng.next() as u16,
                        size: (rng.next() % 2000) as u16,
                    }
                    .to_raw()
                };
                a.push_tx_raw(raw);
                published += 1;
            }
            a.publish_tx();
            b.post_rx((rng.next() % 4) as usize);
            let r = net.round();
            assert!(r.broken.is_empty());
            for rsp in a.tx_responses() {
                assert!(matches!(rsp.status, RSP_OKAY | RSP_ERROR | RSP_NULL), "{rsp:?}");
                answered += 1;
            }
            b.received(&mut net.grants);
        }
        // Everything but a packet still being assembled is answered.
        assert!(published - answered <= 18 + 4, "{published} {answered}");
        let c = net.bridge.vif(pa).unwrap().counters;
        assert!(c.tx_packets + c.tx_errors > 0);
    }
}

#[test]
fn params_ask_for_capture() {
    assert!(crate::wants_capture("pcap=1"));
    assert!(crate::wants_capture("mac=00:16:3e:00:00:01 pcap=1"));
    assert!(!crate::wants_capture("pcap=0"));
    assert!(!crate::wants_capture("xpcap=1"));
    assert!(!crate::wants_capture(""));
}

/// Anti-spoofing: a DomU sending from its victim's MAC gets none of the victim's traffic (its
/// forged frames are dropped and counted), and a flood of forged sources, from a vif or from
/// outside, leaves unicast delivery to every vif intact.
#[test]
fn a_vif_sending_from_another_mac_is_dropped_and_steals_nothing() {
    let mut net = Net::new(true);
    let (mut victim, pv) = net.add(5);
    let (mut spoofer, ps) = net.add(6);
    let (mut peer, _) = net.add(7);
    victim.post_rx(64);
    spoofer.post_rx(64);
    peer.post_rx(64);
    // The spoofer claims the victim's address, then floods forged sources.
    spoofer.send(&mut net.grants, &frame(BCAST, victim.mac, 60, 1), 0);
    net.round();
    for i in 0..600u32 {
        let b = i.to_be_bytes();
        spoofer.send(&mut net.grants, &frame(BCAST, [0x02, 0xee, b[0], b[1], b[2], b[3]], 60, 2), (i % 200) as u16);
        if i % 50 == 49 {
            for _ in 0..4 {
                net.round();
            }
            spoofer.tx_responses();
        }
    }
    net.round();
    assert_eq!(net.bridge.spoofed(ps), Some(601));
    assert_eq!(net.bridge.spoofed(pv), Some(0));
    // None of the forged frames reached anyone.
    assert!(victim.received(&mut net.grants).is_empty() && peer.received(&mut net.grants).is_empty());
    assert!(net.uplink.sent.is_empty());
    // The learnt table holds nothing of the spoofer's.
    assert!(net.bridge.switch.is_empty());
    // The peer and the outside still reach the victim, and only the victim.
    let to_victim = frame(victim.mac, peer.mac, 100, 3);
    peer.send(&mut net.grants, &to_victim, 0);
    net.bridge.from_uplink(&frame(victim.mac, UP_MAC, 90, 4), net.now);
    net.round();
    assert_eq!(victim.received(&mut net.grants).len(), 2);
    assert!(spoofer.received(&mut net.grants).is_empty());
    // A flood of forged sources from outside, the victim's address among them, moves nothing.
    net.bridge.from_uplink(&frame(BCAST, victim.mac, 60, 5), net.now);
    for i in 0..1000u32 {
        let b = i.to_be_bytes();
        net.bridge.from_uplink(&frame(BCAST, [0x02, 0xdd, b[0], b[1], b[2], b[3]], 60, 6), net.now);
        if i % 50 == 49 {
            net.round();
            victim.received(&mut net.grants);
            spoofer.received(&mut net.grants);
            peer.received(&mut net.grants);
            victim.refill_rx();
            spoofer.refill_rx();
            peer.refill_rx();
        }
    }
    net.round();
    victim.received(&mut net.grants);
    spoofer.received(&mut net.grants);
    let to_victim = frame(victim.mac, peer.mac, 100, 7);
    peer.send(&mut net.grants, &to_victim, 1);
    net.round();
    assert_eq!(victim.received(&mut net.grants), [Ok(to_victim)]);
    assert!(spoofer.received(&mut net.grants).is_empty());
    assert_eq!(net.bridge.switch.static_port(&victim.mac), Some(pv));
}

#[test]
fn a_vif_without_an_assigned_mac_sends_nothing() {
    let mut net = Net::new(true);
    let f = Front::new(5, &mut net.grants);
    let mut a = f;
    let pa = net.bridge.add_vif(a.vif(), None);
    a.send(&mut net.grants, &frame(BCAST, a.mac, 60, 1), 0);
    net.round();
    assert!(net.uplink.sent.is_empty());
    assert_eq!(net.bridge.spoofed(pa), Some(1));
    // Its request is still answered (the frame was taken off its ring).
    assert_eq!(a.tx_responses().len(), 1);
}

fn gso_extra(kind: GsoKind, mss: u16) -> NetifExtraInfo {
    let t = if kind == GsoKind::TcpV4 { GSO_TYPE_TCPV4 } else { shared_ring::wire::netif::GSO_TYPE_TCPV6 };
    NetifExtraInfo::gso(mss, t, 0, false)
}

/// Linux's netfront with `feature-sg` and `feature-gso-tcpv4/6`: a TCP packet of many pages with
/// a GSO extra reaches the uplink and another vif as MSS-sized frames with correct checksums;
/// every data slot gets OKAY, the extra NULL; one batch of grant copies for the packet.
#[test]
fn a_scatter_gather_gso_packet_reaches_the_uplink_and_vifs_as_segments() {
    for (kind, mss) in [(GsoKind::TcpV4, 1448), (GsoKind::TcpV6, 1428)] {
        let mut net = Net::new(true);
        let (mut a, pa) = net.add(5);
        let (mut b, _) = net.add(6);
        b.post_rx(64);
        // To an address nobody has: flooded to the uplink and B.
        let packet = crate::gso::test_packet(kind, a.mac, [0x02, 0, 0, 0, 0, 9], 20_000);
        let ids = a.send_sg(&mut net.grants, &packet, &[gso_extra(kind, mss)], 40);
        assert_eq!(ids.len(), packet.len().div_ceil(4096));
        let r = net.round();
        assert!(r.broken.is_empty());
        let mut want: Vec<(u16, i16)> = vec![(40, RSP_OKAY), (0, RSP_NULL)];
        want.extend(ids[1..].iter().map(|id| (*id, RSP_OKAY)));
        let got: Vec<(u16, i16)> = a.tx_responses().iter().map(|r| (r.id, r.status)).collect();
        assert_eq!(got, want, "{kind:?}");
        assert_eq!(net.grants.batches_in, 1);
        let segments = 20_000usize.div_ceil(usize::from(mss));
        assert_eq!(net.uplink.sent.len(), segments, "{kind:?}");
        let at_b: Vec<Vec<u8>> = b.received(&mut net.grants).into_iter().map(|f| f.unwrap()).collect();
        assert_eq!(at_b, net.uplink.sent, "{kind:?}: B got the same segments");
        for s in &net.uplink.sent {
            assert!(s.len() <= MAX_FRAME);
            let eth = EthernetFrame::new_checked(&s[..]).unwrap();
            let (src, dst, tcp) = match kind {
                GsoKind::TcpV4 => {
                    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                    assert!(ip.verify_checksum());
                    (IpAddress::Ipv4(ip.src_addr()), IpAddress::Ipv4(ip.dst_addr()), &eth.payload()[20..])
                }
                GsoKind::TcpV6 => {
                    let ip = Ipv6Packet::new_checked(eth.payload()).unwrap();
                    (IpAddress::Ipv6(ip.src_addr()), IpAddress::Ipv6(ip.dst_addr()), &eth.payload()[40..])
                }
            };
            assert!(TcpPacket::new_checked(tcp).unwrap().verify_checksum(&src, &dst));
        }
        let c = net.bridge.vif(pa).unwrap().counters;
        assert_eq!((c.tx_packets, c.tx_bytes, c.tx_errors), (1, packet.len() as u64, 0));
        assert_eq!((net.bridge.gso_packets, net.bridge.gso_segments), (1, segments as u64));
    }
}

/// What SG and GSO let a hostile frontend try: a packet larger than a frame without GSO, two GSO
/// extras, an MSS that makes frames larger than the MTU, an MSS that makes too many frames, a
/// GSO type that does not match the packet, a SYN to segment. Each is refused (ERROR on every
/// data slot, NULL on extras), nothing of it leaves, and the good packet after it goes through.
#[test]
fn hostile_scatter_gather_and_gso_packets_are_refused() {
    let mut net = Net::new(true);
    let (mut a, pa) = net.add(5);
    let v4 = crate::gso::test_packet(GsoKind::TcpV4, a.mac, UP_MAC, 20_000);
    let mut syn = v4.clone();
    syn[34 + 13] |= 0x02;
    let gso = |mss| gso_extra(GsoKind::TcpV4, mss);
    let more = |e: NetifExtraInfo| NetifExtraInfo { flags: EXTRA_FLAG_MORE, ..e };
    type Case<'a> = (&'a str, &'a [u8], Vec<NetifExtraInfo>, fn(&TxRefusal) -> bool);
    let cases: Vec<Case> = vec![
        ("larger than a frame without GSO", &v4[..3000], vec![], |r| matches!(r, TxRefusal::FrameSize(3000))),
        ("two GSO extras", &v4, vec![more(gso(1448)), gso(1448)], |r| *r == TxRefusal::DuplicateGso),
        ("MSS beyond the MTU", &v4, vec![gso(1449)], |r| matches!(r, TxRefusal::Gso(GsoError::SegmentTooBig { .. }))),
        ("too many segments", &v4, vec![gso(100)], |r| matches!(r, TxRefusal::Gso(GsoError::TooManySegments(_)))),
        ("TCPV6 on IPv4", &v4, vec![gso_extra(GsoKind::TcpV6, 1448)], |r| *r == TxRefusal::Gso(GsoError::NotIp)),
        ("SYN", &syn, vec![gso(1448)], |r| *r == TxRefusal::Gso(GsoError::BadTcpFlags)),
    ];
    let good = frame(UP_MAC, a.mac, 60, 0);
    for (i, (name, packet, extras, why)) in cases.iter().enumerate() {
        let ids = a.send_sg(&mut net.grants, packet, extras, 100);
        a.send(&mut net.grants, &good, 500);
        let r = net.round();
        assert!(r.broken.is_empty(), "{name}");
        let rsp = a.tx_responses();
        assert_eq!(rsp.len(), ids.len() + extras.len() + 1, "{name}: one response per slot");
        assert!(rsp[..rsp.len() - 1].iter().all(|r| r.status == RSP_ERROR || r.status == RSP_NULL), "{name}");
        assert_eq!(rsp.iter().filter(|r| r.status == RSP_NULL).count(), extras.len(), "{name}");
        assert_eq!(rsp.last().unwrap(), &NetifTxResponse { id: 500, status: RSP_OKAY }, "{name}");
        let refusals = &net.bridge.vif(pa).unwrap().refusals;
        assert!(refusals.len() == 1 && why(&refusals[0].1), "{name}: {refusals:?}");
        assert_eq!(net.uplink.sent.len(), i + 1, "{name}: only the good frame left");
    }
    assert!(net.uplink.sent.iter().all(|f| *f == good));
}

/// A frontend that fills its ring with 64 KiB GSO packets: a round takes only what its scratch
/// buffer holds (four such packets) and says more is waiting; every packet is served in the end.
#[test]
fn a_flood_of_64k_gso_packets_is_served_a_bounded_number_per_round() {
    let mut net = Net::new(true);
    let (mut a, _) = net.add(5);
    let packet = crate::gso::test_packet(GsoKind::TcpV4, a.mac, UP_MAC, 65535 - 66);
    assert_eq!(packet.len(), 65535);
    let per_packet = (65535 - 66usize).div_ceil(1448);
    // 13 packets of 17 slots each (+ the extra): 234 of the ring's 256 slots.
    for p in 0..13u16 {
        a.send_sg(&mut net.grants, &packet, &[gso_extra(GsoKind::TcpV4, 1448)], p * 20);
    }
    let mut rounds = 0;
    let mut served = 0;
    loop {
        let before = net.uplink.sent.len();
        let r = net.round();
        rounds += 1;
        let sent = net.uplink.sent.len() - before;
        assert!(sent <= crate::vif::TX_FRAMES_PER_ROUND + crate::gso::MAX_SEGMENTS);
        assert!(sent <= 4 * per_packet, "round {rounds}: {sent} frames");
        served += sent / per_packet;
        if !r.more {
            break;
        }
        assert!(rounds < 10);
    }
    assert_eq!(served, 13);
    assert_eq!(rounds, 4);
    assert_eq!(net.uplink.sent.len(), 13 * per_packet);
}

/// A captured vif's GSO packet is recorded as the segments it becomes; a GSO packet from a
/// forged source MAC is neither cut nor sent (it counts as spoofed).
#[test]
fn gso_packets_are_captured_as_segments_and_forged_ones_are_not_cut() {
    let mut net = Net::new(true);
    let (mut a, pa) = net.add(5);
    net.bridge.vif_mut(pa).unwrap().capture = true;
    let packet = crate::gso::test_packet(GsoKind::TcpV4, a.mac, UP_MAC, 5000);
    a.send_sg(&mut net.grants, &packet, &[gso_extra(GsoKind::TcpV4, 1448)], 1);
    net.round();
    assert_eq!(net.uplink.sent.len(), 4);
    let captured: Vec<Vec<u8>> = net.captured.iter().map(|(_, f)| f.clone()).collect();
    assert_eq!(captured, net.uplink.sent);
    let forged = crate::gso::test_packet(GsoKind::TcpV4, [0x00, 0x16, 0x3e, 0, 9, 9], UP_MAC, 5000);
    a.send_sg(&mut net.grants, &forged, &[gso_extra(GsoKind::TcpV4, 1448)], 10);
    net.round();
    assert_eq!(net.uplink.sent.len(), 4);
    assert_eq!(net.bridge.spoofed(pa), Some(1));
    assert_eq!(net.bridge.gso_packets, 1);
}
