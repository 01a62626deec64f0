//! Event channels: ports, notifications, and waiting for them.
use crate::hypercall::{call, raw};
use core::sync::atomic::Ordering;
use hv_abi::{
    DOMID_SELF_ID, DomId, Error, EvtchnOp, EvtchnStatus, Hypercall, MAX_PORTS, Port, SharedInfo, decode_result,
};

/// An `evtchn_op` whose arguments are plain values (every op but `status`, which uses `raw`).
fn op(o: EvtchnOp, a: u64, b: u64) -> Result<u64, Error> {
    debug_assert!(o != EvtchnOp::Status, "status takes a pointer");
    // SAFETY: the ops sent through here take domids, ports, virqs and bdfs: values only.
    unsafe { call(Hypercall::EvtchnOp, o as u64, a, b, 0) }
}

/// A port that `remote` may bind to (publish it in the store for the peer).
pub fn alloc_unbound(remote: DomId) -> Result<Port, Error> {
    op(EvtchnOp::AllocUnbound, remote as u64, 0).map(|p| p as u32)
}

/// Connects to `remote`'s unbound port; the new port starts pending.
pub fn bind_interdomain(remote: DomId, remote_port: u32) -> Result<Port, Error> {
    op(EvtchnOp::BindInterdomain, remote as u64, remote_port as u64).map(|p| p as u32)
}

pub fn bind_virq(virq: u64) -> Result<Port, Error> {
    op(EvtchnOp::BindVirq, virq, 0).map(|p| p as u32)
}

/// A port for the interrupt of one of our assigned PCI devices (`bdf` = bus << 8 | dev << 3 | fn).
pub fn bind_pirq(bdf: u16) -> Result<Port, Error> {
    op(EvtchnOp::BindPirq, bdf as u64, 0).map(|p| p as u32)
}

pub fn send(port: Port) -> Result<(), Error> {
    op(EvtchnOp::Send, port as u64, 0).map(drop)
}

pub fn close(port: Port) -> Result<(), Error> {
    op(EvtchnOp::Close, port as u64, 0).map(drop)
}

pub fn unmask(port: Port) -> Result<(), Error> {
    op(EvtchnOp::Unmask, port as u64, 0).map(drop)
}

pub fn status(port: Port) -> Result<EvtchnStatus, Error> {
    let mut st = EvtchnStatus::default();
    // SAFETY: `st` is writable for the duration of the call.
    let r = unsafe { raw(Hypercall::EvtchnOp, EvtchnOp::Status as u64, port as u64, (&raw mut st) as u64, 0) };
    decode_result(r).map(|_| st)
}

/// The caller's own domid, for `alloc_unbound(SELF)` loopback.
pub const SELF: DomId = DOMID_SELF_ID;

fn shared() -> &'static SharedInfo {
    // SAFETY: the hypervisor maps our shared_info page read-write for our whole life; it holds
    // only atomics.
    unsafe { &*(crate::start_info().shared_info as *const SharedInfo) }
}

/// Takes every pending port (clearing it) and calls `f` for each, lowest first.
pub fn take_pending(mut f: impl FnMut(Port)) {
    for (w, word) in shared().evtchn_pending.iter().enumerate() {
        let mut bits = word.swap(0, Ordering::SeqCst);
        while bits != 0 {
            let b = bits.trailing_zeros();
            bits &= bits - 1;
            f(w as u32 * 64 + b);
        }
    }
}

/// Whether `port` is pending (without clearing it).
pub fn is_pending(port: Port) -> bool {
    (port as usize) < MAX_PORTS
        && shared().evtchn_pending[port as usize / 64].load(Ordering::SeqCst) & (1 << (port % 64)) != 0
}

/// Whether any port other than `port` is pending.
pub fn is_pending_other_than(port: Port) -> bool {
    shared().evtchn_pending.iter().enumerate().any(|(w, word)| {
        let mut bits = word.load(Ordering::SeqCst);
        if port as usize / 64 == w {
            bits &= !(1u64 << (port % 64));
        }
        bits != 0
    })
}

/// Clears `port`'s pending bit; returns whether it was set.
pub fn clear(port: Port) -> bool {
    if port as usize >= MAX_PORTS {
        return false;
    }
    let bit = 1u64 << (port % 64);
    shared().evtchn_pending[port as usize / 64].fetch_and(!bit, Ordering::SeqCst) & bit != 0
}

/// Blocks until `port` is pending or system time reaches `deadline_ns`. Other ports that are
/// pending meanwhile do not end the block: they are masked for its duration (only those the
/// domain had not masked itself), and their pending bits stay set for whoever handles them.
/// (Blocking returns at once while any unmasked port is pending, so a wait for one port
/// would otherwise spin while another, not yet handled, is pending.)
pub fn block_on(port: Port, deadline_ns: u64) {
    let sh = shared();
    let mut masked = [0u64; MAX_PORTS / 64];
    for (w, (pending, mask)) in sh.evtchn_pending.iter().zip(sh.evtchn_mask.iter()).enumerate() {
        let mut bits = pending.load(Ordering::SeqCst) & !mask.load(Ordering::SeqCst);
        if port as usize / 64 == w {
            bits &= !(1u64 << (port % 64));
        }
        if bits != 0 {
            mask.fetch_or(bits, Ordering::SeqCst);
            masked[w] = bits;
        }
    }
    crate::time::block_until(deadline_ns);
    for (mask, bits) in sh.evtchn_mask.iter().zip(masked) {
        if bits != 0 {
            mask.fetch_and(!bits, Ordering::SeqCst);
        }
    }
}

/// Sleeps until some port is pending or system time reaches `deadline_ns`.
pub fn wait_until(deadline_ns: u64) {
    crate::time::block_until(deadline_ns);
}
