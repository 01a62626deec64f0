//! CPU primitives: port I/O, MSRs, CPUID, TSC, the IDT, and "guarded" instructions that may
//! fault. A guarded instruction publishes a landing address in [`RECOVER`] first; if it raises
//! an exception, the common handler records the vector in [`FAULT`], resumes at the landing
//! address and the primitive returns `Err(Fault)`. Any exception outside a guarded instruction
//! is fatal: `fatal_exception` prints it and shuts the domain down.

use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicU64, Ordering};

/// Landing address for the guarded instruction in progress (0: none).
static RECOVER: AtomicU64 = AtomicU64::new(0);
/// Vector + 1 of the exception a guarded instruction raised (0: none).
static FAULT: AtomicU64 = AtomicU64::new(0);
/// Its error code (0 for vectors without one).
static FAULT_ERROR: AtomicU64 = AtomicU64::new(0);
/// The IDT: 256 gates of 16 bytes (two words each); vectors 0..31 are the exception stubs, the
/// rest not present until [`set_interrupt_gate`] fills one.
static IDT: [AtomicU64; 512] = [const { AtomicU64::new(0) }; 512];
/// Guest-physical (= virtual) address of the `vcpu_info` whose `evtchn_upcall_pending` the
/// event upcall stub clears (0: none yet).
pub static UPCALL_VCPU_INFO: AtomicU64 = AtomicU64::new(0);
/// Event upcalls taken (incremented by the stub).
pub static UPCALLS: AtomicU64 = AtomicU64::new(0);

/// An exception raised by a guarded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    pub vector: u8,
    pub error: u64,
}

impl core::fmt::Display for Fault {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.vector {
            6 => write!(f, "ud"),
            13 => write!(f, "gp({:#x})", self.error),
            14 => write!(f, "pf({:#x})", self.error),
            v => write!(f, "exception {v} ({:#x})", self.error),
        }
    }
}

// The exception stubs, 16 bytes apart from `pvh_isr_base`: push a zero error code for vectors
// where the CPU pushes none, push the vector, go to the common handler.
global_asm!(
    ".macro PVH_ISR vec, has_error",
    ".balign 16",
    ".if \\has_error == 0",
    "push 0",
    ".endif",
    "push \\vec",
    "jmp pvh_isr_common",
    ".endm",
    ".section .text.pvh_isr, \"ax\"",
    ".balign 16",
    ".global pvh_isr_base",
    "pvh_isr_base:",
    "PVH_ISR 0, 0", "PVH_ISR 1, 0", "PVH_ISR 2, 0", "PVH_ISR 3, 0",
    "PVH_ISR 4, 0", "PVH_ISR 5, 0", "PVH_ISR 6, 0", "PVH_ISR 7, 0",
    "PVH_ISR 8, 1", "PVH_ISR 9, 0", "PVH_ISR 10, 1", "PVH_ISR 11, 1",
    "PVH_ISR 12, 1", "PVH_ISR 13, 1", "PVH_ISR 14, 1", "PVH_ISR 15, 0",
    "PVH_ISR 16, 0", "PVH_ISR 17, 1", "PVH_ISR 18, 0", "PVH_ISR 19, 0",
    "PVH_ISR 20, 0", "PVH_ISR 21, 1", "PVH_ISR 22, 0", "PVH_ISR 23, 0",
    "PVH_ISR 24, 0", "PVH_ISR 25, 0", "PVH_ISR 26, 0", "PVH_ISR 27, 0",
    "PVH_ISR 28, 0", "PVH_ISR 29, 1", "PVH_ISR 30, 1", "PVH_ISR 31, 0",
    // Stack: [rsp] vector, +8 error code, +16 rip, +24 cs, +32 rflags, +40 rsp, +48 ss.
    "pvh_isr_common:",
    "push rax",
    "mov rax, qword ptr [rip + {recover}]",
    "test rax, rax",
    "jz 2f",
    // Recoverable: resume at the landing address, record vector + 1 and the error code.
    "mov qword ptr [rsp + 24], rax",
    "mov qword ptr [rip + {recover}], 0",
    "mov rax, qword ptr [rsp + 8]",
    "inc rax",
    "mov qword ptr [rip + {fault}], rax",
    "mov rax, qword ptr [rsp + 16]",
    "mov qword ptr [rip + {error}], rax",
    "pop rax",
    "add rsp, 16",
    "iretq",
    // Fatal: fatal_exception(vector, error, rip, cr2) does not return.
    "2:",
    "mov rdi, qword ptr [rsp + 8]",
    "mov rsi, qword ptr [rsp + 16]",
    "mov rdx, qword ptr [rsp + 24]",
    "mov rcx, cr2",
    "and rsp, -16",
    "call {fatal}",
    "3:",
    "hlt",
    "jmp 3b",
    // The Xen event upcall (callback vector): acknowledge it the way Xen's guests do, by
    // clearing `evtchn_upcall_pending`, count it, and return; the interrupted code scans the
    // pending bitmaps itself. No APIC EOI: the callback vector does not go through the APIC.
    ".balign 16",
    ".global pvh_upcall_entry",
    "pvh_upcall_entry:",
    "push rax",
    "mov rax, qword ptr [rip + {vcpu_info}]",
    "test rax, rax",
    "jz 4f",
    "mov byte ptr [rax], 0",
    "4:",
    "lock inc qword ptr [rip + {upcalls}]",
    "pop rax",
    "iretq",
    ".text",
    vcpu_info = sym UPCALL_VCPU_INFO,
    upcalls = sym UPCALLS,
    recover = sym RECOVER,
    fault = sym FAULT,
    error = sym FAULT_ERROR,
    fatal = sym super::fatal_exception,
);

/// Fills the IDT (interrupt gates, kernel code segment 0x08, DPL 0) and loads it.
pub fn install_idt() {
    let base: u64;
    // SAFETY: takes the address of the stub block; no memory is accessed.
    unsafe { asm!("lea {}, [rip + pvh_isr_base]", out(reg) base, options(nomem, nostack, preserves_flags)) };
    for vector in 0..32 {
        write_gate(vector, base + vector as u64 * 16);
    }
    load_idt(IDT.as_ptr() as u64, (IDT.len() * 8 - 1) as u16);
}

/// An interrupt gate (kernel code segment 0x08, DPL 0) for `vector` to `handler`.
fn write_gate(vector: usize, handler: u64) {
    let low = (handler & 0xffff) | (0x08 << 16) | (0x8e00 << 32) | ((handler >> 16) & 0xffff) << 48;
    IDT[vector * 2].store(low, Ordering::Relaxed);
    IDT[vector * 2 + 1].store(handler >> 32, Ordering::Relaxed);
}

/// Points `vector` (an interrupt, 32..=255) at the event upcall stub, which clears
/// `evtchn_upcall_pending` of the vcpu_info at `vcpu_info` and counts the upcall in [`UPCALLS`].
pub fn install_upcall(vector: u8, vcpu_info: u64) {
    assert!(vector >= 32, "vectors below 32 are exceptions");
    UPCALL_VCPU_INFO.store(vcpu_info, Ordering::SeqCst);
    let handler: u64;
    // SAFETY: takes the address of the stub; no memory is accessed.
    unsafe { asm!("lea {}, [rip + pvh_upcall_entry]", out(reg) handler, options(nomem, nostack, preserves_flags)) };
    write_gate(vector as usize, handler);
}

/// `sti; hlt; cli`: waits with interrupts enabled for the next one (the `sti` shadow keeps an
/// interrupt that is already pending from slipping in before the `hlt`), then disables them
/// again.
pub fn wait_for_interrupt() {
    // SAFETY: interrupts are only enabled for the `hlt`; the only gates beside the exception
    // stubs are the ones `install_upcall` set, whose stub preserves every register. Not
    // `nomem`: the stub writes memory the caller reads afterwards.
    unsafe { asm!("sti", "hlt", "cli", options(nostack)) };
}

/// `lidt` of a table at `base` with `limit`.
pub fn load_idt(base: u64, limit: u16) {
    #[repr(C, packed)]
    struct Pointer {
        limit: u16,
        base: u64,
    }
    let pointer = Pointer { limit, base };
    // SAFETY: loads the IDT register only; the table (ours, static) or an empty limit is what the
    // callers intend (an empty IDT on purpose in the triple-fault mode).
    unsafe { asm!("lidt [{}]", in(reg) &pointer, options(readonly, nostack, preserves_flags)) };
}

fn take_fault() -> Option<Fault> {
    match FAULT.swap(0, Ordering::SeqCst) {
        0 => None,
        v => Some(Fault { vector: (v - 1) as u8, error: FAULT_ERROR.load(Ordering::SeqCst) }),
    }
}

/// Runs one guarded instruction (`$insn`) with the given operands.
macro_rules! guarded {
    ($insn:literal, $($operands:tt)*) => {{
        FAULT.store(0, Ordering::SeqCst);
        // SAFETY: the instruction touches only the registers named and, for I/O and MSRs,
        // device/CPU state, never Rust-visible memory; a fault resumes at the landing label
        // with RECOVER cleared by the handler.
        unsafe {
            asm!(
                "lea {landing}, [rip + 2f]",
                "mov qword ptr [rip + {recover}], {landing}",
                $insn,
                "2:",
                "mov qword ptr [rip + {recover}], 0",
                landing = out(reg) _,
                recover = sym RECOVER,
                $($operands)*
            )
        };
        take_fault()
    }};
}

/// `rdmsr`, guarded.
pub fn rdmsr(msr: u32) -> Result<u64, Fault> {
    let (lo, hi): (u32, u32);
    match guarded!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nostack)) {
        Some(f) => Err(f),
        None => Ok(u64::from(hi) << 32 | u64::from(lo)),
    }
}

/// `wrmsr`, guarded.
pub fn wrmsr(msr: u32, value: u64) -> Result<(), Fault> {
    let (lo, hi) = (value as u32, (value >> 32) as u32);
    guarded!("wrmsr", in("ecx") msr, in("eax") lo, in("edx") hi, options(nostack)).map_or(Ok(()), Err)
}

/// `in al, dx`, guarded.
pub fn inb(port: u16) -> Result<u8, Fault> {
    let value: u8;
    match guarded!("in al, dx", in("dx") port, out("al") value, options(nostack)) {
        Some(f) => Err(f),
        None => Ok(value),
    }
}

/// `in eax, dx`, guarded.
pub fn inl(port: u16) -> Result<u32, Fault> {
    let value: u32;
    match guarded!("in eax, dx", in("dx") port, out("eax") value, options(nostack)) {
        Some(f) => Err(f),
        None => Ok(value),
    }
}

/// `out dx, al`, guarded.
pub fn outb(port: u16, value: u8) -> Result<(), Fault> {
    guarded!("out dx, al", in("dx") port, in("al") value, options(nostack)).map_or(Ok(()), Err)
}

/// `out dx, eax`, guarded.
pub fn outl(port: u16, value: u32) -> Result<(), Fault> {
    guarded!("out dx, eax", in("dx") port, in("eax") value, options(nostack)).map_or(Ok(()), Err)
}

/// A 64-bit load from `address` (identity-mapped guest-physical), guarded.
pub fn read_u64(address: u64) -> Result<u64, Fault> {
    let value: u64;
    match guarded!("mov {value}, qword ptr [{address}]", address = in(reg) address, value = out(reg) value, options(nostack, readonly))
    {
        Some(f) => Err(f),
        None => Ok(value),
    }
}

/// `ud2`, guarded (proves the recovery path).
pub fn ud2() -> Result<(), Fault> {
    guarded!("ud2", options(nostack)).map_or(Ok(()), Err)
}

/// A hypercall by `vmmcall`, guarded (a hypervisor that does not handle it injects #UD):
/// `rax` = number, arguments in `rdi, rsi, rdx, r10, r8`, result in `rax`. The argument
/// registers are treated as clobbered (Xen's debug builds scribble on them).
pub fn hypercall(nr: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> Result<u64, Fault> {
    let ret: u64;
    match guarded!(
        "vmmcall",
        inlateout("rax") nr => ret,
        inlateout("rdi") a1 => _,
        inlateout("rsi") a2 => _,
        inlateout("rdx") a3 => _,
        inlateout("r10") a4 => _,
        inlateout("r8") a5 => _,
        options(nostack)
    ) {
        Some(f) => Err(f),
        None => Ok(ret),
    }
}

/// A hypercall without the guard, for timing.
pub fn hypercall_raw(nr: u64, a1: u64, a2: u64) -> u64 {
    let ret: u64;
    // SAFETY: the hypervisor reads or writes only memory the arguments point at, which the
    // callers own; a fault here is fatal (reported by the exception handler).
    unsafe {
        asm!(
            "vmmcall",
            inlateout("rax") nr => ret,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            lateout("rdx") _,
            lateout("r10") _,
            lateout("r8") _,
            options(nostack)
        )
    };
    ret
}

/// `out dx, al` for the debug console and the exit device (no guard: used by the fatal path).
pub fn outb_raw(port: u16, value: u8) {
    // SAFETY: port output has no effect on Rust-visible memory.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags)) };
}

/// `cpuid` leaf `leaf`, subleaf 0: (eax, ebx, ecx, edx).
pub fn cpuid(leaf: u32) -> (u32, u32, u32, u32) {
    let r = core::arch::x86_64::__cpuid_count(leaf, 0);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// The TSC, ordered after earlier instructions.
pub fn rdtsc() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: reads the time-stamp counter; no memory access.
    unsafe { asm!("lfence", "rdtsc", out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags)) };
    u64::from(hi) << 32 | u64::from(lo)
}

/// Stops this vCPU for good (interrupts stay off).
pub fn halt_forever() -> ! {
    loop {
        // SAFETY: `cli; hlt` only stops the CPU.
        unsafe { asm!("cli", "hlt", options(nomem, nostack)) };
    }
}

/// Loads an empty IDT and executes `ud2` then `int3`: the #UD cannot be delivered, nor the
/// #DF that follows, so the CPU shuts down (triple fault).
pub fn triple_fault() -> ! {
    load_idt(0, 0);
    // SAFETY: deliberately raises exceptions with no IDT; nothing after this runs.
    unsafe { asm!("ud2", "int3", options(nomem, nostack)) };
    halt_forever()
}
