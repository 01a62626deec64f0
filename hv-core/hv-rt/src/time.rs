//! Time and blocking.
use hv_abi::{Hypercall, NO_DEADLINE};

pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc is allowed in ring 3 here (CR4.TSD clear) and has no memory effects.
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// System time in ns since the hypervisor booted.
pub fn now_ns() -> u64 {
    // SAFETY: `time` takes no arguments.
    unsafe { crate::hypercall::call(Hypercall::Time, 0, 0, 0, 0) }.unwrap_or(0)
}

/// TSC cycles to nanoseconds using the hypervisor's calibration.
pub fn cycles_to_ns(cycles: u64) -> u64 {
    (cycles as u128 * 1_000_000 / crate::start_info().tsc_khz.max(1) as u128) as u64
}

/// Blocks until an unmasked event-channel port is pending or system time reaches `deadline_ns`.
pub fn block_until(deadline_ns: u64) {
    // SAFETY: `block` takes a deadline, a value.
    let _ = unsafe { crate::hypercall::call(Hypercall::Block, deadline_ns, 0, 0, 0) };
}

/// Blocks until an unmasked event-channel port is pending.
pub fn block() {
    block_until(NO_DEADLINE);
}

/// Sleeps at least `ns` nanoseconds (events that arrive meanwhile are left pending).
pub fn sleep_ns(ns: u64) {
    let deadline = now_ns().saturating_add(ns);
    // Bounded: each round either reaches the deadline or was woken by an event we leave pending
    // (block returns at once while one is pending, so fall back to yielding).
    for _ in 0..1000 {
        if now_ns() >= deadline {
            return;
        }
        block_until(deadline);
    }
    while now_ns() < deadline {
        crate::yield_now();
    }
}

pub fn sleep_ms(ms: u64) {
    sleep_ns(ms * 1_000_000);
}
