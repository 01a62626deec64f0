//! One vif: the backend's end of a frontend's tx and rx rings.
//!
//! **tx** (frontend → backend): [`Vif::tx_round`] takes each slot the ring copied out of shared
//! memory exactly once, groups the slots into packets (first slot, extra-info slots after a
//! `NETTXF_extra_info`, then `NETTXF_more_data` fragments) and validates each packet with
//! shared-ring's [`TxPacketCheck`] plus the backend's own rules (frame size: 1514 bytes, up to
//! 64 KiB for a packet with a GSO extra, which must also pass [`Segmenter::new`]; a checksum
//! left blank must be completable). The data of every valid packet of the round moves into the
//! backend's scratch buffer by one batched grant copy ([`GrantCopier::copy_in`]). Every data
//! slot gets `OKAY` or `ERROR`, every extra-info slot `NULL`, in ring order. At most
//! [`TX_PACKETS_PER_ROUND`] packets, [`TX_SLOTS_PER_ROUND`] slots, packets that become
//! [`TX_FRAMES_PER_ROUND`] frames and what fits [`SCRATCH_BYTES`] per round, so a flooding
//! frontend cannot starve the others; a packet whose slots are not all published yet waits (its
//! responses too) for the next round.
//!
//! **rx** (backend → frontend): frames for the vif wait in a bounded queue
//! ([`RX_QUEUE_LEN`]; more are dropped and counted). [`Vif::rx_round`] pairs queued frames with
//! the rx requests the frontend posted and copies them (one batch) to offset 0 of each granted
//! page; the response is `{id, offset 0, flags 0, status = length}`, or `ERROR` (frame dropped,
//! counted) if the copy failed. Rx requests are only taken from the ring when a frame is waiting
//! for them, so responses always follow request order.
use alloc::collections::VecDeque;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use hv_abi::GrantStatus;
use shared_ring::wire::netif::{
    ExtraInfo, GSO_TYPE_TCPV6, MAX_TX_SIZE, NR_SLOTS_MIN, NetifError, NetifRxResponse, NetifRxSlot, NetifTxRequest,
    NetifTxResponse, NetifTxSlot, RSP_ERROR, RSP_NULL, RSP_OKAY, TXF_CSUM_BLANK, TXF_EXTRA_INFO, TXF_MORE_DATA,
    TxPacketCheck,
};
use shared_ring::{BackRing, NetifRx, NetifTx, PeerError, PushError, SharedMemory};
use xenbus_backend::{GrantCopier, OutCopy, Seg};

use crate::gso::{Gso, GsoError, GsoKind, Segmenter};

/// A frame (or GSO packet) a tx round accepted: its place in the scratch buffer and, for a GSO
/// packet (already checked by [`Segmenter::new`]), how to cut it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxFrame {
    pub offset: usize,
    pub len: usize,
    pub gso: Option<Gso>,
}

/// Frames waiting for a vif's rx buffers; more are dropped.
pub const RX_QUEUE_LEN: usize = 256;
/// Packets taken from a vif's tx ring per round.
pub const TX_PACKETS_PER_ROUND: usize = 64;
/// Slots taken from a vif's tx ring per round (a packet may span several).
pub const TX_SLOTS_PER_ROUND: u32 = 256;
/// Frames delivered to a vif per round.
pub const RX_PER_ROUND: usize = 64;
/// Smallest frame accepted: an Ethernet header.
pub const MIN_FRAME: usize = 14;
/// Largest frame accepted without GSO, and largest frame netback sends anywhere: 1500-byte MTU
/// plus the Ethernet header (no VLAN tags).
pub const MAX_FRAME: usize = 1514;
/// Largest tx packet (netif's `XEN_NETIF_MAX_TX_SIZE`: the first slot's 16-bit size): only a
/// GSO packet may exceed [`MAX_FRAME`]; it is cut into frames of at most that ([`crate::gso`]).
pub const MAX_PACKET: usize = MAX_TX_SIZE as usize;
/// Frames the packets of one tx round may become (a GSO packet counts as its segments, at most
/// [`crate::gso::MAX_SEGMENTS`]): the round ends once this many are reached.
pub const TX_FRAMES_PER_ROUND: usize = 256;
/// Data slots one packet may use.
pub const SLOT_LIMIT: u32 = NR_SLOTS_MIN;
/// Extra-info slots one packet may carry (netif.h defines four types).
pub const MAX_EXTRAS: u32 = 4;
/// Bytes of the scratch buffer [`Vif::tx_round`] needs: packets are packed into it and a round
/// takes no new packet once less than [`MAX_PACKET`] bytes are left, so a round holds at least
/// four 64 KiB GSO packets, or [`TX_PACKETS_PER_ROUND`] full-size ones.
pub const SCRATCH_BYTES: usize = 4 * (MAX_PACKET + 1);

/// Why a tx packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxRefusal {
    /// A slot or the packet broke netif.h's rules.
    Malformed(NetifError),
    /// An extra-info slot netif.h does not define.
    BadExtra(NetifError),
    /// A second GSO extra-info slot on one packet.
    DuplicateGso,
    /// A GSO packet that cannot be segmented.
    Gso(GsoError),
    /// `NETTXF_csum_blank` on a frame whose checksum cannot be completed (not TCP/UDP over IP,
    /// or malformed).
    ChecksumBlank(crate::checksum::ChecksumError),
    /// More than [`MAX_EXTRAS`] extra-info slots.
    TooManyExtras,
    /// `NETTXF_extra_info` on a slot other than the first.
    ExtraOnFragment,
    /// Frame size outside `MIN_FRAME..=MAX_FRAME`.
    FrameSize(u32),
    /// A grant copy element failed with this status.
    Grant(GrantStatus),
}

impl fmt::Display for TxRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TxRefusal::Malformed(e) => write!(f, "malformed: {e}"),
            TxRefusal::BadExtra(e) => write!(f, "bad extra info: {e}"),
            TxRefusal::DuplicateGso => f.write_str("two GSO extra-info slots"),
            TxRefusal::Gso(e) => write!(f, "GSO packet refused: {e}"),
            TxRefusal::ChecksumBlank(e) => write!(f, "checksum offload on a frame it cannot apply to: {e:?}"),
            TxRefusal::TooManyExtras => write!(f, "more than {MAX_EXTRAS} extra-info slots"),
            TxRefusal::ExtraOnFragment => f.write_str("extra info flagged on a fragment"),
            TxRefusal::FrameSize(n) => {
                write!(f, "frame of {n} bytes (allowed {MIN_FRAME}..={MAX_FRAME}, larger only with GSO)")
            }
            TxRefusal::Grant(s) => write!(f, "grant copy failed (status {})", s.as_raw()),
        }
    }
}

/// The frontend broke a ring: disconnect it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VifError {
    Peer(PeerError),
    Push(PushError),
}

impl fmt::Display for VifError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VifError::Peer(e) => write!(f, "{e}"),
            VifError::Push(e) => write!(f, "{e}"),
        }
    }
}

impl From<PeerError> for VifError {
    fn from(e: PeerError) -> Self {
        VifError::Peer(e)
    }
}

impl From<PushError> for VifError {
    fn from(e: PushError) -> Self {
        VifError::Push(e)
    }
}

/// Counters of one vif. tx is frontend → backend, rx backend → frontend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Refused tx packets.
    pub tx_errors: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Frames for this vif dropped: its queue was full, or the copy into its buffer failed.
    pub rx_drops: u64,
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "tx {} pkts {} B, tx errors {}, rx {} pkts {} B, rx drops {}",
            self.tx_packets, self.tx_bytes, self.tx_errors, self.rx_packets, self.rx_bytes, self.rx_drops
        )
    }
}

/// A tx response not yet pushed, in ring order.
#[derive(Debug, Clone, Copy)]
struct Staged {
    id: u16,
    status: i16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    First,
    Extra,
    Data,
}

/// A tx packet being assembled from its slots.
#[derive(Debug)]
struct Packet {
    first: NetifTxRequest,
    check: Option<TxPacketCheck>,
    /// The data slots after the first (at most `SLOT_LIMIT - 1`).
    fragments: Vec<NetifTxRequest>,
    error: Option<TxRefusal>,
    extras: u32,
    gso: Option<Gso>,
    /// Index of its first slot's response in `staged`.
    staged_from: usize,
}

impl Packet {
    fn fail(&mut self, r: TxRefusal) {
        if self.error.is_none() {
            self.error = Some(r);
        }
    }
}

/// What one tx round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxRound {
    /// Packets completed (accepted or refused).
    pub packets: u32,
    pub refused: u32,
    /// The frontend must be notified of new responses.
    pub notify: bool,
    /// Work is waiting (budget used up, or requests arrived during the final check).
    pub more: bool,
}

/// What one rx round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RxRound {
    pub delivered: u32,
    pub failed: u32,
    pub notify: bool,
    /// Frames and posted buffers are both waiting.
    pub more: bool,
}

/// A connected vif.
pub struct Vif<M: SharedMemory> {
    /// The frontend domain.
    pub domid: hv_abi::DomId,
    pub tx: BackRing<NetifTx, M>,
    pub rx: BackRing<NetifRx, M>,
    pub counters: Counters,
    /// Capture this vif's frames (`pcap=1`).
    pub capture: bool,
    /// Refusals of the last tx round, with the id of each packet's first slot.
    pub refusals: Vec<(u16, TxRefusal)>,
    rx_queue: VecDeque<Vec<u8>>,
    expect: Expect,
    packet: Option<Packet>,
    staged: Vec<Staged>,
}

/// A completed, valid packet of this round: its frame's place in the scratch buffer and its
/// copies' place in the round's batch.
struct Ready {
    /// The frontend left the TCP/UDP checksum to us (`NETTXF_csum_blank`).
    csum_blank: bool,
    gso: Option<Gso>,
    staged_from: usize,
    staged_to: usize,
    first_id: u16,
    buf_offset: usize,
    len: usize,
    segs: core::ops::Range<usize>,
}

impl<M: SharedMemory> Vif<M> {
    pub fn new(domid: hv_abi::DomId, tx: BackRing<NetifTx, M>, rx: BackRing<NetifRx, M>) -> Self {
        Self {
            domid,
            tx,
            rx,
            counters: Counters::default(),
            capture: false,
            refusals: Vec::new(),
            rx_queue: VecDeque::new(),
            expect: Expect::First,
            packet: None,
            staged: Vec::new(),
        }
    }

    /// Frames waiting for rx buffers.
    pub fn queued(&self) -> usize {
        self.rx_queue.len()
    }

    /// Queues a frame for the frontend; a full queue drops it (counted), as it does a frame
    /// outside `MIN_FRAME..=MAX_FRAME`.
    pub fn enqueue(&mut self, frame: &[u8]) -> bool {
        if self.rx_queue.len() >= RX_QUEUE_LEN || !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
            self.counters.rx_drops += 1;
            return false;
        }
        self.rx_queue.push_back(frame.to_vec());
        true
    }

    /// Takes one slot into the packet being assembled; returns the packet once its last slot
    /// arrived.
    fn feed(&mut self, slot: NetifTxSlot) -> Option<Packet> {
        match (self.expect, self.packet.as_mut()) {
            (Expect::Extra, Some(p)) => {
                let extra = slot.as_extra();
                self.staged.push(Staged { id: 0, status: RSP_NULL });
                p.extras += 1;
                if p.extras > MAX_EXTRAS {
                    p.fail(TxRefusal::TooManyExtras);
                }
                match extra.decode() {
                    Ok(ExtraInfo::Gso { .. }) if p.gso.is_some() => p.fail(TxRefusal::DuplicateGso),
                    // `decode` admits TCPV4 and TCPV6 with a nonzero size only.
                    Ok(ExtraInfo::Gso { size, gso_type, .. }) => {
                        let kind = if gso_type == GSO_TYPE_TCPV6 { GsoKind::TcpV6 } else { GsoKind::TcpV4 };
                        p.gso = Some(Gso { kind, mss: size });
                    }
                    // Multicast filter updates and hashes: accepted and ignored (nothing offered
                    // depends on them).
                    Ok(_) => {}
                    Err(e) => p.fail(TxRefusal::BadExtra(e)),
                }
                if extra.more() {
                    None
                } else if p.first.flags & TXF_MORE_DATA != 0 {
                    self.expect = Expect::Data;
                    None
                } else {
                    self.finish()
                }
            }
            (Expect::Data, Some(p)) => {
                let req = slot.as_request();
                self.staged.push(Staged { id: req.id, status: RSP_ERROR });
                if req.flags & TXF_EXTRA_INFO != 0 {
                    p.fail(TxRefusal::ExtraOnFragment);
                }
                if p.error.is_none() {
                    match p.check.as_mut().map(|c| c.next(&req)) {
                        Some(Ok(())) => p.fragments.push(req),
                        Some(Err(e)) => p.fail(TxRefusal::Malformed(e)),
                        None => {}
                    }
                }
                if req.flags & TXF_MORE_DATA != 0 { None } else { self.finish() }
            }
            _ => {
                let req = slot.as_request();
                let staged_from = self.staged.len();
                self.staged.push(Staged { id: req.id, status: RSP_ERROR });
                let mut p = Packet {
                    first: req,
                    check: None,
                    fragments: Vec::new(),
                    error: None,
                    extras: 0,
                    gso: None,
                    staged_from,
                };
                match TxPacketCheck::first(&req, SLOT_LIMIT) {
                    Ok(c) => p.check = Some(c),
                    Err(e) => p.fail(TxRefusal::Malformed(e)),
                }
                self.packet = Some(p);
                if req.flags & TXF_EXTRA_INFO != 0 {
                    self.expect = Expect::Extra;
                    None
                } else if req.flags & TXF_MORE_DATA != 0 {
                    self.expect = Expect::Data;
                    None
                } else {
                    self.finish()
                }
            }
        }
    }

    fn finish(&mut self) -> Option<Packet> {
        self.expect = Expect::First;
        self.packet.take()
    }

    /// Serves up to [`TX_PACKETS_PER_ROUND`] packets (and [`TX_SLOTS_PER_ROUND`] slots, and
    /// packets that become [`TX_FRAMES_PER_ROUND`] frames): valid packets land in `scratch`
    /// (at least [`SCRATCH_BYTES`]; a smaller one takes nothing) and their places in `frames`;
    /// responses are pushed and published. Never panics on ring content; `Err` means the
    /// frontend broke the ring.
    pub fn tx_round(
        &mut self,
        copier: &mut impl GrantCopier,
        scratch: &mut [u8],
        frames: &mut Vec<TxFrame>,
    ) -> Result<TxRound, VifError> {
        frames.clear();
        self.refusals.clear();
        let mut round = TxRound::default();
        let mut ready: Vec<Ready> = Vec::new();
        let mut segs: Vec<Seg> = Vec::new();
        let mut slots = 0;
        // Scratch bytes taken, and frames the round's packets become (at most).
        let mut used = 0;
        let mut frames_out = 0;
        let mut exhausted = false;
        while !exhausted {
            if round.packets as usize >= TX_PACKETS_PER_ROUND
                || slots >= TX_SLOTS_PER_ROUND
                || frames_out >= TX_FRAMES_PER_ROUND
                || used + MAX_PACKET > scratch.len()
            {
                exhausted = true;
                break;
            }
            let Some(slot) = self.tx.poll_request()? else { break };
            slots += 1;
            let Some(mut p) = self.feed(slot) else { continue };
            round.packets += 1;
            let staged_to = self.staged.len();
            let plan = match (p.error, p.check) {
                (Some(e), _) => Err(e),
                (None, Some(c)) => c.finish().map_err(TxRefusal::Malformed),
                // `check` is None only with an error set.
                (None, None) => Err(TxRefusal::Malformed(NetifError::UnknownFlags { flags: p.first.flags })),
            };
            let max = if p.gso.is_some() { MAX_PACKET } else { MAX_FRAME };
            let plan = plan.and_then(|pkt| {
                let len = pkt.size as usize;
                if (MIN_FRAME..=max).contains(&len) { Ok(pkt) } else { Err(TxRefusal::FrameSize(pkt.size)) }
            });
            match plan {
                Ok(pkt) => {
                    // The loop's guard left MAX_PACKET bytes for it.
                    let base = used;
                    used += pkt.size as usize;
                    frames_out += p.gso.map_or(1, |g| (pkt.size as usize).div_ceil(usize::from(g.mss.max(1))));
                    let from = segs.len();
                    let mut at = base;
                    // Sizes are bounded by MAX_PACKET here, so the u16 conversions are exact.
                    let first = Seg {
                        gref: p.first.gref,
                        offset: p.first.offset,
                        len: pkt.first_fragment as u16,
                        buf_offset: at,
                    };
                    at += usize::from(first.len);
                    if first.len > 0 {
                        segs.push(first);
                    }
                    for f in p.fragments.drain(..) {
                        if f.size > 0 {
                            segs.push(Seg { gref: f.gref, offset: f.offset, len: f.size, buf_offset: at });
                            at += usize::from(f.size);
                        }
                    }
                    ready.push(Ready {
                        csum_blank: p.first.flags & TXF_CSUM_BLANK != 0,
                        gso: p.gso,
                        staged_from: p.staged_from,
                        staged_to,
                        first_id: p.first.id,
                        buf_offset: base,
                        len: pkt.size as usize,
                        segs: from..segs.len(),
                    });
                }
                Err(r) => {
                    // Every response of the packet stays ERROR (NULL for extras).
                    round.refused += 1;
                    self.counters.tx_errors += 1;
                    self.refusals.push((p.first.id, r));
                }
            }
        }
        // An element the copier does not report on counts as failed.
        let mut status = vec![GrantStatus::GeneralError; segs.len()];
        if !segs.is_empty() {
            let t = crate::prof::now();
            copier.copy_in(self.domid, &segs, scratch, &mut status);
            crate::prof::add(crate::prof::TX_COPY, t, segs.len() as u64);
        }
        for r in &ready {
            let failed = status.get(r.segs.clone()).unwrap_or_default().iter().copied().find(|s| !s.is_ok());
            let frame = &mut scratch[r.buf_offset..r.buf_offset + r.len];
            let completed = match failed {
                // Every segment gets its checksums when it is cut (the bridge): only check here
                // that it can be cut.
                None if r.gso.is_some() => {
                    r.gso.map_or(Ok(()), |g| Segmenter::new(frame, g).map(|_| ()).map_err(TxRefusal::Gso))
                }
                None if r.csum_blank => crate::checksum::fill(frame).map_err(TxRefusal::ChecksumBlank),
                None => Ok(()),
                Some(s) => Err(TxRefusal::Grant(s)),
            };
            let code = match completed {
                Ok(()) => {
                    self.counters.tx_packets += 1;
                    self.counters.tx_bytes += r.len as u64;
                    frames.push(TxFrame { offset: r.buf_offset, len: r.len, gso: r.gso });
                    RSP_OKAY
                }
                Err(refusal) => {
                    round.refused += 1;
                    self.counters.tx_errors += 1;
                    self.refusals.push((r.first_id, refusal));
                    RSP_ERROR
                }
            };
            for st in &mut self.staged[r.staged_from..r.staged_to] {
                if st.status != RSP_NULL {
                    st.status = code;
                }
            }
        }
        // Responses go out in ring order, up to the packet still being assembled (if it is
        // valid so far; a refused one's responses are already final).
        let keep_from = match &self.packet {
            Some(p) if p.error.is_none() => p.staged_from,
            _ => self.staged.len(),
        };
        for st in self.staged.drain(..keep_from) {
            self.tx.push_response(NetifTxResponse { id: st.id, status: st.status })?;
        }
        if let Some(p) = self.packet.as_mut() {
            p.staged_from = p.staged_from.saturating_sub(keep_from);
        }
        round.notify = self.tx.publish_responses().is_needed();
        round.more = exhausted || self.tx.final_check_for_requests()?;
        Ok(round)
    }

    /// Delivers up to [`RX_PER_ROUND`] queued frames into posted rx buffers; `delivered` sees
    /// each frame that reached the frontend.
    pub fn rx_round(
        &mut self,
        copier: &mut impl GrantCopier,
        mut delivered: impl FnMut(&[u8]),
    ) -> Result<RxRound, VifError> {
        let mut round = RxRound::default();
        let want = self.rx_queue.len().min(RX_PER_ROUND);
        let mut requests = Vec::with_capacity(want);
        while requests.len() < want {
            match self.rx.poll_request()? {
                Some(r) => requests.push(r),
                None => break,
            }
        }
        if !requests.is_empty() {
            let copies: Vec<OutCopy<'_>> = requests
                .iter()
                .zip(self.rx_queue.iter())
                .map(|(r, f)| OutCopy { gref: r.gref, offset: 0, data: f })
                .collect();
            let mut status = vec![GrantStatus::GeneralError; copies.len()];
            let t = crate::prof::now();
            copier.copy_out(self.domid, &copies, &mut status);
            crate::prof::add(crate::prof::RX_COPY, t, copies.len() as u64);
            drop(copies);
            for (r, s) in requests.iter().zip(status) {
                let Some(frame) = self.rx_queue.pop_front() else { break };
                let code = if s.is_ok() {
                    self.counters.rx_packets += 1;
                    self.counters.rx_bytes += frame.len() as u64;
                    round.delivered += 1;
                    delivered(&frame);
                    // Frames are at most MAX_FRAME bytes.
                    frame.len() as i16
                } else {
                    self.counters.rx_drops += 1;
                    round.failed += 1;
                    RSP_ERROR
                };
                let rsp = NetifRxResponse { id: r.id, offset: 0, flags: 0, status: code };
                self.rx.push_response(NetifRxSlot::Response(rsp))?;
            }
            round.notify = self.rx.publish_responses().is_needed();
        }
        round.more = if self.rx_queue.is_empty() {
            false
        } else if requests.len() >= RX_PER_ROUND {
            true
        } else {
            // Frames wait: ask to be notified when the frontend posts buffers.
            self.rx.final_check_for_requests()?
        };
        Ok(round)
    }
}
