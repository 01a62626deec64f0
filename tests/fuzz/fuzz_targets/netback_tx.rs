//! netback's vif against a hostile frontend: a script that writes raw 12-byte tx slots (first
//! slots, `NETTXF_extra_info` chains, `NETTXF_more_data` fragments: whatever the bytes say) and
//! 8-byte rx requests into the two ring pages, rewrites their header words, queues frames for
//! the frontend, and runs `Vif::tx_round` (slot assembly, validation, one batched grant copy
//! through a fake copier) and `Vif::rx_round`. No panic; copies stay inside the granted page and
//! the scratch buffer; every accepted frame is a legal Ethernet frame inside the scratch
//! buffer (or a GSO packet of up to 64 KiB that the segmenter accepts); tx responses answer the data slots in ring order with OKAY/ERROR (NULL for
//! extras); rx responses answer the posted buffers in order with a frame length or ERROR.
#![no_main]

use std::collections::VecDeque;

use fuzz::{FakeGrants, HostileFront, Script, page};
use libfuzzer_sys::fuzz_target;
use netback::gso::Segmenter;
use netback::vif::{MAX_FRAME, MAX_PACKET, MIN_FRAME, SCRATCH_BYTES, TX_PACKETS_PER_ROUND, Vif};
use shared_ring::layout::HEADER_SIZE;
use shared_ring::wire::netif::{NetifRxResponse, NetifTxResponse, RSP_ERROR, RSP_NULL, RSP_OKAY};
use shared_ring::{BackRing, SharedMemory};

const FRONTEND: hv_abi::DomId = 9;
/// Rounds per input (each takes at most 256 slots).
const MAX_ROUNDS: usize = 64;

/// The frontend's view of one ring: what it pushed (ids, in order) and which responses it read.
struct Side<'a> {
    front: HostileFront<'a>,
    pushed: VecDeque<u16>,
    rsp_cons: u32,
    tampered: bool,
}

impl<'a> Side<'a> {
    fn push(&mut self, raw: &[u8], id: u16) {
        self.tampered |= self.pushed.len() >= self.front.slots as usize;
        self.pushed.push_back(id);
        self.front.push(raw);
    }
    /// The responses published since the last look, as raw slot bytes.
    fn responses<const N: usize>(&mut self) -> Vec<[u8; N]> {
        let new = self.front.rsp_prod().wrapping_sub(self.rsp_cons);
        assert!(self.tampered || new <= self.front.slots, "{new} responses at once");
        let mut out = Vec::new();
        for _ in 0..new.min(self.front.slots) {
            let at = HEADER_SIZE + (self.rsp_cons % self.front.slots) as usize * self.front.slot_size;
            let mut raw = [0u8; N];
            self.front.memory.read(at, &mut raw);
            out.push(raw);
            self.rsp_cons = self.rsp_cons.wrapping_add(1);
        }
        out
    }
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script(data);
    let (tx_cells, rx_cells) = (page(), page());
    let mut tx =
        Side { front: HostileFront::new(&tx_cells, 12), pushed: VecDeque::new(), rsp_cons: 0, tampered: false };
    let mut rx = Side { front: HostileFront::new(&rx_cells, 8), pushed: VecDeque::new(), rsp_cons: 0, tampered: false };
    let tx_ring = BackRing::attach(tx.front.memory).unwrap();
    let rx_ring = BackRing::attach(rx.front.memory).unwrap();
    let mut vif = Vif::new(FRONTEND, tx_ring, rx_ring);
    let mut grants = FakeGrants::new(FRONTEND);
    let mut scratch = vec![0u8; SCRATCH_BYTES];
    let mut frames = Vec::new();
    let mut rounds = 0;
    let mut broken = false;

    while let Some(op) = script.byte() {
        match op % 8 {
            0 => {
                let Some(raw) = script.array::<12>() else { break };
                tx.push(&raw, u16::from_le_bytes([raw[8], raw[9]]));
            }
            1 => {
                if rounds == MAX_ROUNDS {
                    break;
                }
                rounds += 1;
                match vif.tx_round(&mut grants, &mut scratch, &mut frames) {
                    Ok(round) => {
                        assert!(round.packets as usize <= TX_PACKETS_PER_ROUND && round.refused <= round.packets);
                        for f in &frames {
                            let (offset, len) = (f.offset, f.len);
                            assert!(offset.checked_add(len).is_some_and(|e| e <= scratch.len()));
                            match f.gso {
                                // Only a GSO packet may be larger than a frame, and it was
                                // checked: it can be cut.
                                Some(gso) => {
                                    assert!((MIN_FRAME..=MAX_PACKET).contains(&len), "GSO packet of {len} bytes");
                                    assert!(Segmenter::new(&scratch[offset..offset + len], gso).is_ok());
                                }
                                None => {
                                    assert!((MIN_FRAME..=MAX_FRAME).contains(&len), "frame of {len} bytes accepted")
                                }
                            }
                        }
                        for (_, r) in &vif.refusals {
                            let _ = r.to_string();
                        }
                    }
                    Err(e) => {
                        let _ = e.to_string();
                        broken = true;
                    }
                }
            }
            2 => {
                let (Some(which), Some(value)) = (script.byte(), script.u32()) else { break };
                tx.front.rewrite_header(which, value);
                tx.tampered = true;
            }
            3 => {
                for raw in tx.responses::<4>() {
                    let r = NetifTxResponse {
                        id: u16::from_le_bytes([raw[0], raw[1]]),
                        status: i16::from_le_bytes([raw[2], raw[3]]),
                    };
                    if tx.tampered || broken {
                        continue;
                    }
                    assert!([RSP_OKAY, RSP_ERROR, RSP_NULL].contains(&r.status), "tx status {}", r.status);
                    let id = tx.pushed.pop_front();
                    if r.status != RSP_NULL {
                        assert_eq!(Some(r.id), id, "tx responses out of ring order");
                    }
                }
            }
            4 => {
                let Some(len) = script.u16() else { break };
                let frame = vec![op; usize::from(len % 1600)];
                let _ = vif.enqueue(&frame);
            }
            5 => {
                let Some(raw) = script.array::<8>() else { break };
                rx.push(&raw, u16::from_le_bytes([raw[0], raw[1]]));
            }
            6 => {
                if rounds == MAX_ROUNDS {
                    break;
                }
                rounds += 1;
                let mut delivered = 0;
                match vif.rx_round(&mut grants, |f| {
                    assert!((MIN_FRAME..=MAX_FRAME).contains(&f.len()));
                    delivered += 1;
                }) {
                    Ok(round) => assert_eq!(round.delivered, delivered),
                    Err(e) => {
                        let _ = e.to_string();
                        broken = true;
                    }
                }
            }
            _ => {
                let (Some(which), Some(value)) = (script.byte(), script.u32()) else { break };
                if which & 0x80 != 0 {
                    rx.front.rewrite_header(which, value);
                    rx.tampered = true;
                } else {
                    for raw in rx.responses::<8>() {
                        let r = NetifRxResponse::from_raw(&raw);
                        if rx.tampered || broken {
                            continue;
                        }
                        assert_eq!(Some(r.id), rx.pushed.pop_front(), "rx responses out of order");
                        assert!(r.offset == 0 && r.flags == 0);
                        assert!(
                            r.status == RSP_ERROR || (MIN_FRAME..=MAX_FRAME).contains(&(r.status as usize)),
                            "rx status {}",
                            r.status
                        );
                    }
                }
            }
        }
    }
});
