//! Raw hypercalls: `syscall` with the number in rax and arguments in rdi, rsi, rdx, r10, r8, r9.
use core::arch::asm;
use hv_abi::{Error, Hypercall, decode_result};

/// # Safety
/// Pointer arguments must be valid for what the hypercall does with them (the hypervisor checks
/// them too, but a wrong pointer can still overwrite the caller's own memory).
#[inline(always)]
pub unsafe fn raw(nr: Hypercall, a0: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let ret: u64;
    // SAFETY: the hypervisor preserves every register except rax (result), rcx and r11 (used by
    // syscall/sysret); it touches our memory only as the call's documented arguments allow.
    unsafe {
        asm!("syscall",
            inlateout("rax") nr as u64 => ret,
            in("rdi") a0, in("rsi") a1, in("rdx") a2, in("r10") a3,
            lateout("rcx") _, lateout("r11") _,
            options(nostack));
    }
    ret
}

/// A hypercall whose arguments are plain values (no pointers).
#[inline(always)]
pub fn call(nr: Hypercall, a0: u64, a1: u64, a2: u64, a3: u64) -> Result<u64, Error> {
    // SAFETY: callers of `call` pass no pointers.
    decode_result(unsafe { raw(nr, a0, a1, a2, a3) })
}

/// A hypercall by raw number with no arguments (to probe unknown numbers).
///
/// # Safety
/// As for [`raw`].
pub unsafe fn raw_number(nr: u64) -> u64 {
    let ret: u64;
    // SAFETY: as in `raw`.
    unsafe { asm!("syscall", inlateout("rax") nr => ret, lateout("rcx") _, lateout("r11") _, options(nostack)) };
    ret
}
