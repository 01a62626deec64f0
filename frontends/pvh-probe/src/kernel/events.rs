//! Event delivery the Xen way, for the modes that talk to a peer: the callback vector, the
//! 2-level pending scan over `shared_info`, and waiting for one port.

use core::sync::atomic::{AtomicU64, Ordering};

use super::arch;
use super::xen::{self, addr_mut, call};
use hv_abi::xen::{BITS_PER_WORD, EVTCHN_MASK_OFFSET, EVTCHN_PENDING_OFFSET, VCPU_INFO_PENDING_SEL, vcpu_info_offset};
use hv_abi::xen::{XenHvmParam, hvm_param, hvmop, nr};
use pvh_probe::CALLBACK_VECTOR;

/// A word of shared_info at `offset`, as an atomic (the hypervisor changes it concurrently).
pub fn shared_word(shared_info: u64, offset: usize) -> &'static AtomicU64 {
    // SAFETY: shared_info is mapped at `shared_info` (identity map, below 4 GiB, checked by the
    // modes before they map it) for the rest of this domain's life; the offsets used are
    // 8-aligned words inside the page; any bit pattern is a valid AtomicU64.
    unsafe { &*((shared_info + offset as u64) as *const AtomicU64) }
}

/// Events on [`CALLBACK_VECTOR`]: the upcall stub for vcpu_info 0 of the shared_info page at
/// `shared_info`, then `HVM_PARAM_CALLBACK_IRQ` (vector type). Ports still need unmasking.
pub fn enable_upcalls(shared_info: u64) -> xen::HcResult {
    arch::install_upcall(CALLBACK_VECTOR, shared_info + vcpu_info_offset(0) as u64);
    let mut param = XenHvmParam {
        domid: hv_abi::xen::domid::SELF,
        pad: 0,
        index: hvm_param::CALLBACK_IRQ,
        value: (hvm_param::CALLBACK_TYPE_VECTOR << hvm_param::CALLBACK_TYPE_SHIFT) | CALLBACK_VECTOR as u64,
    };
    call(nr::HVM_OP, [hvmop::SET_PARAM, addr_mut(&mut param), 0, 0, 0])
}

/// Takes the pending, unmasked ports (Xen's 2-level scan: selector word, then bitmap words),
/// clearing each one's pending bit, and calls `f` for each.
pub fn take_pending(shared_info: u64, mut f: impl FnMut(u32)) {
    let selector = shared_word(shared_info, vcpu_info_offset(0) + VCPU_INFO_PENDING_SEL).swap(0, Ordering::SeqCst);
    let mut pending = [0u64; BITS_PER_WORD];
    let mut mask = [0u64; BITS_PER_WORD];
    for w in 0..BITS_PER_WORD {
        pending[w] = shared_word(shared_info, EVTCHN_PENDING_OFFSET + w * 8).load(Ordering::SeqCst);
        mask[w] = shared_word(shared_info, EVTCHN_MASK_OFFSET + w * 8).load(Ordering::SeqCst);
    }
    let mut ports = [0u32; 16];
    let n = pvh_probe::pending_ports(selector, &pending, &mask, &mut ports);
    for &port in &ports[..n] {
        let word = port as usize / BITS_PER_WORD;
        shared_word(shared_info, EVTCHN_PENDING_OFFSET + word * 8).fetch_and(!(1 << (port % 64)), Ordering::SeqCst);
        f(port);
    }
}

/// Sleeps (`sti; hlt`) until an event on `port` arrives; returns how many events on other
/// ports were taken meanwhile.
pub fn wait_for(shared_info: u64, port: u32) -> u32 {
    let mut others = 0;
    loop {
        let mut ours = false;
        take_pending(shared_info, |p| {
            if p == port {
                ours = true;
            } else {
                others += 1;
            }
        });
        if ours {
            return others;
        }
        arch::wait_for_interrupt();
    }
}
