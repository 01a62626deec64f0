//! System time: the TSC, calibrated at boot, in nanoseconds since boot.
use crate::arch::cpu::rdtsc;
use core::sync::atomic::{AtomicU64, Ordering};

static BOOT_TSC: AtomicU64 = AtomicU64::new(0);
static TSC_KHZ: AtomicU64 = AtomicU64::new(1);

pub fn init(tsc_khz: u64) {
    BOOT_TSC.store(rdtsc(), Ordering::Relaxed);
    TSC_KHZ.store(tsc_khz.max(1), Ordering::Relaxed);
}

pub fn tsc_khz() -> u64 {
    TSC_KHZ.load(Ordering::Relaxed)
}

pub fn now_ns() -> u64 {
    tsc_to_ns(rdtsc().saturating_sub(BOOT_TSC.load(Ordering::Relaxed)))
}

pub fn tsc_to_ns(cycles: u64) -> u64 {
    ((cycles as u128 * 1_000_000) / tsc_khz() as u128) as u64
}

/// TSC value at system time `ns` (saturating: `u64::MAX` stays far in the future).
pub fn ns_to_tsc_deadline(ns: u64) -> u64 {
    let cycles = (ns as u128 * tsc_khz() as u128) / 1_000_000;
    (BOOT_TSC.load(Ordering::Relaxed) as u128 + cycles).min(u64::MAX as u128) as u64
}
