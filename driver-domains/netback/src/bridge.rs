//! The switch with its ports: the uplink (a trait, the virtio-net device in the domain) and the
//! connected vifs. [`Bridge::from_uplink`] takes a frame the device received; [`Bridge::round`]
//! serves every vif once: its tx ring (frames through the switch to the uplink and to other
//! vifs' rx queues), then every rx queue into the posted buffers.
use alloc::boxed::Box;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use shared_ring::SharedMemory;

use crate::switch::{Forward, PortId, Switch, UPLINK};
use crate::vif::{MAX_FRAME, MIN_FRAME, SCRATCH_BYTES, Vif, VifError};
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

pub struct Bridge<M: SharedMemory> {
    pub switch: Switch,
    pub uplink: UplinkCounters,
    has_uplink: bool,
    vifs: Vec<(PortId, Vif<M>)>,
    next_port: PortId,
    scratch: Box<[u8]>,
    frames: Vec<(usize, usize)>,
}

/// Sends `frame` from `ingress` where the switch says.
fn forward<M: SharedMemory, U: Uplink + ?Sized>(
    switch: &mut Switch,
    vifs: &mut [(PortId, Vif<M>)],
    uplink: Option<(&mut U, &mut UplinkCounters)>,
    ingress: PortId,
    frame: &[u8],
    now_ns: u64,
) {
    let to_uplink = |u: Option<(&mut U, &mut UplinkCounters)>| {
        if let Some((dev, c)) = u {
            if dev.send(frame) {
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
            if let Some((_, v)) = vifs.iter_mut().find(|(q, _)| *q == p) {
                v.enqueue(frame);
            }
        }
        Forward::Flood => {
            if ingress != UPLINK {
                to_uplink(uplink);
            }
            for (_, v) in vifs.iter_mut().filter(|(q, _)| *q != ingress) {
                v.enqueue(frame);
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
        }
    }

    /// Connects a vif; returns its port.
    pub fn add_vif(&mut self, vif: Vif<M>) -> PortId {
        let port = self.next_port;
        self.next_port = self.next_port.wrapping_add(1).max(UPLINK + 1);
        self.vifs.push((port, vif));
        port
    }

    /// Disconnects a vif (its learnt addresses are forgotten); returns it for its counters.
    pub fn remove_vif(&mut self, port: PortId) -> Option<Vif<M>> {
        let i = self.vifs.iter().position(|(p, _)| *p == port)?;
        self.switch.forget_port(port);
        Some(self.vifs.remove(i).1)
    }

    pub fn vif(&self, port: PortId) -> Option<&Vif<M>> {
        self.vifs.iter().find(|(p, _)| *p == port).map(|(_, v)| v)
    }

    pub fn vif_mut(&mut self, port: PortId) -> Option<&mut Vif<M>> {
        self.vifs.iter_mut().find(|(p, _)| *p == port).map(|(_, v)| v)
    }

    pub fn ports(&self) -> impl Iterator<Item = PortId> + '_ {
        self.vifs.iter().map(|(p, _)| *p)
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
            let port = self.vifs[i].0;
            if out.broken.iter().any(|(p, _)| *p == port) {
                continue;
            }
            let vif = &mut self.vifs[i].1;
            match vif.tx_round(copier, &mut self.scratch, &mut self.frames) {
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
            for &(at, len) in &self.frames {
                let frame = &self.scratch[at..at + len];
                if captured {
                    capture(port, frame);
                }
                let up = if self.has_uplink { Some((&mut *uplink, &mut self.uplink)) } else { None };
                forward(&mut self.switch, &mut self.vifs, up, port, frame, now_ns);
            }
        }
        for (port, vif) in self.vifs.iter_mut() {
            if out.broken.iter().any(|(p, _)| p == port) {
                continue;
            }
            let captured = vif.capture;
            let port = *port;
            match vif.rx_round(copier, |f| {
                if captured {
                    capture(port, f)
                }
            }) {
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
