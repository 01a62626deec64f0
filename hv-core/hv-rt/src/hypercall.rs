//! Raw hypercalls: `syscall` with the number in rax and arguments in rdi, rsi, rdx, r10, r8, r9.
//!
//! These are `unsafe`: an argument may be a pointer, and although the hypervisor checks every
//! pointer against our own memory, a wrong one can still make it overwrite (or read) memory of
//! ours that Rust thinks is something else. The safe typed wrappers in the other modules call
//! them with pointers they own, each with a `SAFETY` line saying why the pointer is valid.
use core::arch::asm;
use hv_abi::{Error, Hypercall, decode_result};

/// Makes hypercall `nr` and returns the raw `rax`.
///
/// # Safety
/// Every pointer argument must be valid for what the hypercall does with it (readable, or
/// writable, for the whole length the call documents in `docs/ABI.md`), and nothing else may
/// use that memory during the call. Value arguments have no requirement.
#[inline(always)]
pub unsafe fn raw(nr: Hypercall, a0: u64, a1: u64, a2: u64, a3: u64) -> u64 {
    let ret: u64;
    // SAFETY: the hypervisor preserves every register except rax (result), rcx and r11 (used by
    // syscall/sysret); it touches our memory only as the call's documented arguments allow,
    // which the caller vouched for.
    unsafe {
        asm!("syscall",
            inlateout("rax") nr as u64 => ret,
            in("rdi") a0, in("rsi") a1, in("rdx") a2, in("r10") a3,
            lateout("rcx") _, lateout("r11") _,
            options(nostack));
    }
    ret
}

/// [`raw`] with the result decoded (`-errno` becomes an [`Error`]).
///
/// # Safety
/// As for [`raw`].
#[inline(always)]
pub unsafe fn call(nr: Hypercall, a0: u64, a1: u64, a2: u64, a3: u64) -> Result<u64, Error> {
    // SAFETY: forwarded to the caller.
    decode_result(unsafe { raw(nr, a0, a1, a2, a3) })
}

/// A hypercall by raw number with no arguments (to probe unknown numbers).
///
/// # Safety
/// As for [`raw`]: an unknown number takes no arguments, but a known one may read or write
/// through whatever the argument registers happen to hold.
pub unsafe fn raw_number(nr: u64) -> u64 {
    let ret: u64;
    // SAFETY: as in `raw`.
    unsafe { asm!("syscall", inlateout("rax") nr => ret, lateout("rcx") _, lateout("r11") _, options(nostack)) };
    ret
}
