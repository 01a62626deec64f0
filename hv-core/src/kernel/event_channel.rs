//! Event channels in the kernel: `evtchn_op`, and delivery (setting a port pending in the
//! domain's shared_info page and waking it). The port tables and their rules are
//! `crate::event_channel` (host-tested).
use super::domain::Live;
use super::user_memory::copy_out_value;
use super::{Hv, time};
use crate::arch::paging;
use crate::event_channel::{EvtchnError, PortState};
use core::mem::offset_of;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering;
use hv_abi::xen;
use hv_abi::{DOMID_SELF, DomId, Error, EvtchnOp, EvtchnStatus, Port, SHARED_INFO_OFFSET, SharedInfo, evtchn_state};

/// A domain's event-channel bitmaps: in its own shared_info page (paravirtual layout) or in
/// Xen's shared_info (HVM), first `MAX_PORTS` ports.
pub struct EventWords<'a> {
    pub pending: &'a [AtomicU64; hv_abi::MAX_PORTS / 64],
    pub mask: &'a [AtomicU64; hv_abi::MAX_PORTS / 64],
}

impl Live {
    /// The domain's event bitmaps, borrowed for as long as the live domain, which owns the
    /// frame they lie in.
    pub fn event_words(&self) -> EventWords<'_> {
        let (pending, mask) = match &self.hvm {
            Some(h) => {
                (h.shared_info + xen::EVTCHN_PENDING_OFFSET as u64, h.shared_info + xen::EVTCHN_MASK_OFFSET as u64)
            }
            None => {
                let base = self.ram + SHARED_INFO_OFFSET;
                (
                    base + offset_of!(SharedInfo, evtchn_pending) as u64,
                    base + offset_of!(SharedInfo, evtchn_mask) as u64,
                )
            }
        };
        // SAFETY: both arrays lie inside a frame of this live domain (its shared_info page, or
        // the hypervisor frame that is its Xen shared_info), allocated until the domain ends
        // (which needs `&mut` of the domain, so not while this borrow lasts); atomics are valid
        // for any bit pattern, and the domain may change them concurrently.
        unsafe {
            EventWords {
                pending: &*(paging::phys_to_virt(pending) as *const [AtomicU64; hv_abi::MAX_PORTS / 64]),
                mask: &*(paging::phys_to_virt(mask) as *const [AtomicU64; hv_abi::MAX_PORTS / 64]),
            }
        }
    }
}

impl Hv {
    /// Sets `port` of domain `dom` pending; wakes the domain if the port is unmasked and it was
    /// blocked (and asks for a reschedule if it should preempt the running domain). For an HVM
    /// domain the vCPU's upcall is raised as well (Xen's 2-level delivery).
    pub fn set_pending(&mut self, dom: DomId, port: Port) {
        let Some(slot) = self.slot_of(dom) else { return };
        let Some(l) = self.domains[slot].as_ref().and_then(|d| d.live()) else { return };
        let w = l.event_words();
        let (word, bit) = ((port / 64) as usize, 1u64 << (port % 64));
        let Some(pending) = w.pending.get(word) else { return };
        let was = pending.fetch_or(bit, Ordering::SeqCst);
        let masked = w.mask[word].load(Ordering::SeqCst) & bit != 0;
        if was & bit == 0 && !masked {
            if let Some(h) = l.hvm.as_deref() {
                super::hvm::xen::mark_pending(h, word as u32);
            }
            if self.sched.is_blocked(slot) && self.sched.wake(slot, time::now_ns()) {
                self.need_resched = true;
            }
        }
    }

    /// Clears a port's mask bit; a port pending under the mask is delivered now (HVM: the
    /// upcall is raised, as Xen's unmask does).
    pub fn unmask(&mut self, slot: usize, port: Port) {
        let Some(l) = self.domains[slot].as_ref().and_then(|d| d.live()) else { return };
        let w = l.event_words();
        let (word, bit) = ((port / 64) as usize, 1u64 << (port % 64));
        let Some(mask) = w.mask.get(word) else { return };
        mask.fetch_and(!bit, Ordering::SeqCst);
        if w.pending[word].load(Ordering::SeqCst) & bit != 0
            && let Some(h) = l.hvm.as_deref()
        {
            super::hvm::xen::mark_pending(h, word as u32);
            if self.sched.is_blocked(slot) && self.sched.wake(slot, time::now_ns()) {
                self.need_resched = true;
            }
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
        self.domains[slot].as_ref().and_then(|d| d.live()).map(Live::event_words).is_some_and(|w| {
            w.pending.iter().zip(w.mask).any(|(p, m)| p.load(Ordering::SeqCst) & !m.load(Ordering::SeqCst) != 0)
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
            let virq = u32::try_from(args[1]).ok().filter(|&v| (v as u64) < hv_abi::virq::COUNT).ok_or(Error::Inval)?;
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
            if let Some(w) = hv.domains[slot].as_ref().and_then(|d| d.live()).map(Live::event_words) {
                w.pending[(port / 64) as usize].fetch_and(!(1u64 << (port % 64)), Ordering::SeqCst);
            }
            Ok(0)
        }
        EvtchnOp::Unmask => {
            let port = port_arg(args[1])?;
            hv.evtchn.check_port(me, port).map_err(errno)?;
            hv.unmask(slot, port);
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
                PortState::Ipi => EvtchnStatus { state: evtchn_state::CLOSED, ..Default::default() },
            };
            copy_out_value(hv, slot, args[2], &st)?;
            Ok(0)
        }
    }
}
