//! The switch with its ports: the uplink (a trait, the virtio-net device in the domain) and the
//! connected vifs. [`Bridge::from_uplink`] takes a frame the device received; [`Bridge::round`]
//! serves every vif once: its tx ring (frames through the switch to the uplink and to other
//! vifs' rx queues), then every rx queue into the posted buffers.
//!
//! Each vif sends only from the MAC the toolstack assigned it ([`Bridge::add_vif`]): a frame
//! with any other source address is dropped before the switch sees it and counted
//! ([`Bridge::spoofed`]); a vif without an assigned MAC can send nothing.
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use shared_ring::SharedMemory;

use crate::gso::Segmenter;
use crate::switch::{Forward, Mac, PortId, Switch, UPLINK, addresses};
use crate::vif::{MAX_FRAME, MIN_FRAME, SCRATCH_BYTES, TxFrame, Vif, VifError};
use xenbus_backend::GrantCopier;

/// The physical side: sends one frame (`false`: not sent, e.g. the device queue is full).
pub trait Uplink {
    fn send(&mut self, frame: &[u8]) -> bool;
}

/// Counters of the uplink. rx is device → netback, tx netback → device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UplinkCounters {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Frames from the device outside `MIN_FRAME..=MAX_FRAME` (dropped).
    pub rx_errors: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Frames the device did not take.
    pub tx_drops: u64,
}

impl fmt::Display for UplinkCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rx {} pkts {} B, rx errors {}, tx {} pkts {} B, tx drops {}",
            self.rx_packets, self.rx_bytes, self.rx_errors, self.tx_packets, self.tx_bytes, self.tx_drops
        )
    }
}

/// What a round did.
#[derive(Debug, Default)]
pub struct Round {
    /// Vifs whose frontend must be notified (each once).
    pub notify: Vec<PortId>,
    /// Vifs whose frontend broke a ring: tear them down and [`Bridge::remove_vif`] them.
    pub broken: Vec<(PortId, VifError)>,
    /// Work is waiting: run another round before sleeping.
    pub more: bool,
}

/// A vif's port: its number, the vif, the MAC it may send from and how many frames it sent
/// from others.
struct VifPort<M: SharedMemory> {
    port: PortId,
    vif: Vif<M>,
    mac: Option<Mac>,
    spoofed: u64,
}

pub struct Bridge<M: SharedMemory> {
    pub switch: Switch,
    pub uplink: UplinkCounters,
    has_uplink: bool,
    vifs: Vec<VifPort<M>>,
    next_port: PortId,
    scratch: Box<[u8]>,
    frames: Vec<TxFrame>,
    /// One segment of a GSO packet being cut.
    segment: Box<[u8]>,
    /// GSO packets accepted from vifs and the frames they became.
    pub gso_packets: u64,
    pub gso_segments: u64,
}

/// Sends `frame` from `ingress` where the switch says.
fn forward<M: SharedMemory, U: Uplink + ?Sized>(
    switch: &mut Switch,
    vifs: &mut [VifPort<M>],
    uplink: Option<(&mut U, &mut UplinkCounters)>,
    ingress: PortId,
    frame: &[u8],
    now_ns: u64,
) {
    let to_uplink = |u: Option<(&mut U, &mut UplinkCounters)>| {
        if let Some((dev, c)) = u {
            let t = crate::prof::now();
            let ok = dev.send(frame);
            crate::prof::add(crate::prof::UPLINK_SEND, t, 1);
            if ok {
                c.tx_packets += 1;
                c.tx_bytes += frame.len() as u64;
            } else {
                c.tx_drops += 1;
            }
        }
    };
    match switch.decide(ingress, frame, now_ns) {
        Forward::Drop => {}
        Forward::Port(UPLINK) => to_uplink(uplink),
        Forward::Port(p) => {
            if let Some(v) = vifs.iter_mut().find(|v| v.port == p) {
                v.vif.enqueue(frame);
            }
        }
        Forward::Flood => {
            if ingress != UPLINK {
                to_uplink(uplink);
            }
            for v in vifs.iter_mut().filter(|v| v.port != ingress) {
                v.vif.enqueue(frame);
            }
        }
    }
}

impl<M: SharedMemory> Bridge<M> {
    /// A bridge with an uplink port (`has_uplink`) or among vifs only.
    pub fn new(has_uplink: bool) -> Self {
        Self {
            switch: Switch::new(),
            uplink: UplinkCounters::default(),
            has_uplink,
            vifs: Vec::new(),
            next_port: UPLINK + 1,
            scratch: vec![0u8; SCRATCH_BYTES].into_boxed_slice(),
            frames: Vec::new(),
            segment: vec![0u8; MAX_FRAME].into_boxed_slice(),
            gso_packets: 0,
            gso_segments: 0,
        }
    }

    /// Connects a vif that may send from `mac` only (the MAC the toolstack assigned it; `None`:
    /// none could be read, so it may send nothing); returns its port. Frames to `mac` go to it
    /// and nowhere else, whatever anyone sends from that address.
    pub fn add_vif(&mut self, vif: Vif<M>, mac: Option<Mac>) -> PortId {
        let port = self.next_port;
        self.next_port = self.next_port.wrapping_add(1).max(UPLINK + 1);
        let mac = mac.filter(|m| self.switch.static_port(m).is_none() && self.switch.set_static(m, port));
        self.vifs.push(VifPort { port, vif, mac, spoofed: 0 });
        port
    }

    /// Disconnects a vif (its addresses are forgotten); returns it for its counters.
    pub fn remove_vif(&mut self, port: PortId) -> Option<Vif<M>> {
        let i = self.vifs.iter().position(|v| v.port == port)?;
        self.switch.forget_port(port);
        Some(self.vifs.remove(i).vif)
    }

    pub fn vif(&self, port: PortId) -> Option<&Vif<M>> {
        self.vifs.iter().find(|v| v.port == port).map(|v| &v.vif)
    }

    pub fn vif_mut(&mut self, port: PortId) -> Option<&mut Vif<M>> {
        self.vifs.iter_mut().find(|v| v.port == port).map(|v| &mut v.vif)
    }

    /// Frames the vif on `port` sent from a source MAC other than its own (dropped).
    pub fn spoofed(&self, port: PortId) -> Option<u64> {
        self.vifs.iter().find(|v| v.port == port).map(|v| v.spoofed)
    }

    pub fn ports(&self) -> impl Iterator<Item = PortId> + '_ {
        self.vifs.iter().map(|v| v.port)
    }

    /// A frame the uplink received.
    pub fn from_uplink(&mut self, frame: &[u8], now_ns: u64) {
        if !(MIN_FRAME..=MAX_FRAME).contains(&frame.len()) {
            self.uplink.rx_errors += 1;
            return;
        }
        self.uplink.rx_packets += 1;
        self.uplink.rx_bytes += frame.len() as u64;
        forward::<M, dyn Uplink>(&mut self.switch, &mut self.vifs, None, UPLINK, frame, now_ns);
    }

    /// Serves every vif once (bounded work each). `capture` sees every frame taken from or
    /// delivered to a vif whose `capture` is set.
    pub fn round(
        &mut self,
        copier: &mut impl GrantCopier,
        uplink: &mut dyn Uplink,
        capture: &mut impl FnMut(PortId, &[u8]),
        now_ns: u64,
    ) -> Round {
        let mut out = Round::default();
        for i in 0..self.vifs.len() {
            let port = self.vifs[i].port;
            let mac = self.vifs[i].mac;
            if out.broken.iter().any(|(p, _)| *p == port) {
                continue;
            }
            let vif = &mut self.vifs[i].vif;
            let t = crate::prof::now();
            let r = vif.tx_round(copier, &mut self.scratch, &mut self.frames);
            crate::prof::add(crate::prof::TX_ROUND, t, self.frames.len() as u64);
            match r {
                Ok(r) => {
                    out.more |= r.more;
                    if r.notify {
                        out.notify.push(port);
                    }
                }
                Err(e) => {
                    out.broken.push((port, e));
                    continue;
                }
            }
            let captured = vif.capture;
            for f in &self.frames {
                let Some(frame) = self.scratch.get(f.offset..f.offset + f.len) else { continue };
                // A frame is captured as the vif sent it, a GSO packet as the segments it becomes.
                if captured && f.gso.is_none() {
                    capture(port, frame);
                }
                // Anti-spoofing: only the vif's own source address gets through.
                if mac.is_none() || addresses(frame).map(|(_, src)| src) != mac {
                    self.vifs[i].spoofed += 1;
                    continue;
                }
                let Some(gso) = f.gso else {
                    let up = if self.has_uplink { Some((&mut *uplink, &mut self.uplink)) } else { None };
                    forward(&mut self.switch, &mut self.vifs, up, port, frame, now_ns);
                    continue;
                };
                // A GSO packet (checked by the vif's round): cut, and each segment switched.
                let Ok(cut) = Segmenter::new(frame, gso) else { continue };
                self.gso_packets += 1;
                for s in 0..cut.segments() {
                    let t = crate::prof::now();
                    let Some(len) = cut.write(s, &mut self.segment) else { break };
                    crate::prof::add(crate::prof::SEGMENT, t, 1);
                    let segment = &self.segment[..len];
                    self.gso_segments += 1;
                    if captured {
                        capture(port, segment);
                    }
                    let up = if self.has_uplink { Some((&mut *uplink, &mut self.uplink)) } else { None };
                    forward(&mut self.switch, &mut self.vifs, up, port, segment, now_ns);
                }
            }
        }
        for VifPort { port, vif, .. } in self.vifs.iter_mut() {
            if out.broken.iter().any(|(p, _)| p == port) {
                continue;
            }
            let captured = vif.capture;
            let port = *port;
            let t = crate::prof::now();
            let r = vif.rx_round(copier, |f| {
                if captured {
                    capture(port, f)
                }
            });
            crate::prof::add(crate::prof::RX_ROUND, t, r.as_ref().map_or(0, |r| r.delivered as u64));
            match r {
                Ok(r) => {
                    out.more |= r.more;
                    if r.notify && !out.notify.contains(&port) {
                        out.notify.push(port);
                    }
                }
                Err(e) => out.broken.push((port, e)),
            }
        }
        out
    }
}
