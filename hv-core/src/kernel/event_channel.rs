//! Event channels in the kernel: `evtchn_op`, and delivery (setting a port pending in the
//! domain's shared_info page and waking it). The port tables and their rules are
//! `crate::event_channel` (host-tested).
use super::domain::Live;
use super::user_memory::copy_out_value;
use super::{Hv, time};
use crate::arch::paging;
use crate::event_channel::{EvtchnError, PortState};
use core::sync::atomic::Ordering;
use hv_abi::{DOMID_SELF, DomId, Error, EvtchnOp, EvtchnStatus, Port, SHARED_INFO_OFFSET, SharedInfo, evtchn_state};

impl Live {
    /// The domain's shared_info page (event-channel bitmaps), borrowed for as long as the live
    /// domain, which owns the RAM it lies in.
    pub fn shared_info(&self) -> &SharedInfo {
        // SAFETY: the shared_info page is RAM of this live domain, allocated until the domain
        // ends (which needs `&mut` of the domain, so not while this borrow lasts); SharedInfo is
        // atomics only, valid for any bit pattern, and the domain may change them concurrently.
        unsafe { &*(paging::phys_to_virt(self.ram + SHARED_INFO_OFFSET) as *const SharedInfo) }
    }
}

impl Hv {
    /// Sets `port` of domain `dom` pending; wakes the domain if the port is unmasked and it was
    /// blocked (and asks for a reschedule if it should preempt the running domain).
    pub fn set_pending(&mut self, dom: DomId, port: Port) {
        let Some(slot) = self.slot_of(dom) else { return };
        let Some(si) = self.domains[slot].as_ref().and_then(|d| d.live()).map(Live::shared_info) else { return };
        let (word, bit) = ((port / 64) as usize, 1u64 << (port % 64));
        let Some(pending) = si.evtchn_pending.get(word) else { return };
        let was = pending.fetch_or(bit, Ordering::SeqCst);
        let masked = si.evtchn_mask[word].load(Ordering::SeqCst) & bit != 0;
        if was & bit == 0 && !masked && self.sched.is_blocked(slot) && self.sched.wake(slot, time::now_ns()) {
            self.need_resched = true;
        }
    }

    /// Raises `virq` for domain `dom` if it bound the virq to a port.
    pub fn raise_virq(&mut self, dom: DomId, virq: u64) {
        if let Some(port) = self.evtchn.virq_port(dom, virq as u32) {
            self.set_pending(dom, port);
        }
    }

    /// Whether a domain has an unmasked port pending (each word read once).
    pub fn events_pending(&self, slot: usize) -> bool {
        self.domains[slot].as_ref().and_then(|d| d.live()).map(Live::shared_info).is_some_and(|si| {
            si.evtchn_pending
                .iter()
                .zip(&si.evtchn_mask)
                .any(|(p, m)| p.load(Ordering::SeqCst) & !m.load(Ordering::SeqCst) != 0)
        })
    }
}

fn errno(e: EvtchnError) -> Error {
    match e {
        EvtchnError::BadPort | EvtchnError::WrongState | EvtchnError::BadVirq => Error::Inval,
        EvtchnError::NoDomain => Error::Srch,
        EvtchnError::NoFreePort => Error::NoSpc,
        EvtchnError::VirqBound => Error::Exist,
    }
}

/// A domid argument: `DOMID_SELF` or a 16-bit id.
fn domid_arg(arg: u64, me: DomId) -> Result<DomId, Error> {
    match arg {
        DOMID_SELF => Ok(me),
        a if a < DOMID_SELF => Ok(a as DomId),
        _ => Err(Error::Srch),
    }
}

fn port_arg(arg: u64) -> Result<u32, Error> {
    u32::try_from(arg).map_err(|_| Error::Inval)
}

pub fn dispatch(hv: &mut Hv, slot: usize, args: [u64; 6]) -> Result<u64, Error> {
    let me = hv.domains[slot].as_ref().ok_or(Error::Srch)?.id;
    let op = EvtchnOp::from_u64(args[0]).ok_or(Error::NoSys)?;
    match op {
        EvtchnOp::AllocUnbound => {
            let remote = domid_arg(args[1], me)?;
            hv.evtchn.alloc_unbound(me, remote).map(u64::from).map_err(errno)
        }
        EvtchnOp::BindInterdomain => {
            let remote = domid_arg(args[1], me)?;
            let (port, pend) = hv.evtchn.bind_interdomain(me, remote, port_arg(args[2])?).map_err(errno)?;
            hv.set_pending(pend.dom, pend.port);
            Ok(port as u64)
        }
        EvtchnOp::BindVirq => {
            let virq = u32::try_from(args[1]).map_err(|_| Error::Inval)?;
            let dom0_only = matches!(virq as u64, hv_abi::virq::DOM_EXC | hv_abi::virq::CONTROL);
            if dom0_only && !hv.domains[slot].as_ref().is_some_and(|d| d.privileged) {
                return Err(Error::Perm);
            }
            hv.evtchn.bind_virq(me, virq).map(u64::from).map_err(errno)
        }
        EvtchnOp::BindPirq => {
            let bdf = u16::try_from(args[1]).map_err(|_| Error::Inval)?;
            if !hv.pci.iter().any(|d| d.bdf.to_u16() == bdf && d.owner == Some(me)) {
                return Err(Error::Perm);
            }
            hv.evtchn.bind_pirq(me, bdf as u32).map(u64::from).map_err(errno)
        }
        EvtchnOp::Send => {
            if let Some(p) = hv.evtchn.send(me, port_arg(args[1])?).map_err(errno)? {
                hv.set_pending(p.dom, p.port);
            }
            Ok(0)
        }
        EvtchnOp::Close => {
            let port = port_arg(args[1])?;
            hv.evtchn.close(me, port).map_err(errno)?;
            // A closed port must not stay pending.
            if let Some(si) = hv.domains[slot].as_ref().and_then(|d| d.live()).map(Live::shared_info) {
                si.evtchn_pending[(port / 64) as usize].fetch_and(!(1u64 << (port % 64)), Ordering::SeqCst);
            }
            Ok(0)
        }
        EvtchnOp::Unmask => {
            let port = port_arg(args[1])?;
            hv.evtchn.check_port(me, port).map_err(errno)?;
            if let Some(si) = hv.domains[slot].as_ref().and_then(|d| d.live()).map(Live::shared_info) {
                si.evtchn_mask[(port / 64) as usize].fetch_and(!(1u64 << (port % 64)), Ordering::SeqCst);
            }
            Ok(0)
        }
        EvtchnOp::Status => {
            let port = port_arg(args[1])?;
            let st = match hv.evtchn.status(me, port).map_err(errno)? {
                PortState::Free => EvtchnStatus { state: evtchn_state::CLOSED, ..Default::default() },
                PortState::Unbound { remote } => {
                    EvtchnStatus { state: evtchn_state::UNBOUND, remote_dom: remote.into(), ..Default::default() }
                }
                PortState::Interdomain { remote_dom, remote_port } => EvtchnStatus {
                    state: evtchn_state::INTERDOMAIN,
                    remote_dom: remote_dom.into(),
                    remote_port,
                    _pad: 0,
                },
                PortState::Virq(v) => EvtchnStatus { state: evtchn_state::VIRQ, remote_dom: v, ..Default::default() },
                PortState::Pirq(p) => EvtchnStatus { state: evtchn_state::PIRQ, remote_dom: p, ..Default::default() },
            };
            copy_out_value(hv, slot, args[2], &st)?;
            Ok(0)
        }
    }
}
