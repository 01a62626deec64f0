//! Trap, interrupt and syscall entry. Every entry from ring 3 saves the full register state as a
//! [`TrapFrame`] on the per-CPU hypervisor stack and calls into the kernel, which may replace the
//! frame with another domain's saved state (that is a context switch) before the common exit
//! restores it. Exits use `sysretq` for frames saved by `syscall` (rcx/r11 are dead there) and
//! `iretq` otherwise.
use super::gdt::{IST_DOUBLE_FAULT, IST_MACHINE_CHECK, IST_NMI, KERNEL_CS, USER_CS, USER_DS};
use core::arch::{asm, global_asm};
use core::sync::atomic::{AtomicBool, Ordering};
use x86_64::VirtAddr;
use x86_64::structures::DescriptorTablePointer;

/// Vector number recorded for frames saved by the syscall stub.
pub const SYSCALL_VECTOR: u64 = 0x100;
pub const TIMER_VECTOR: u8 = 0x40;
/// The IOMMU's fault event interrupt.
pub const IOMMU_FAULT_VECTOR: u8 = 0x48;
/// Vectors for device interrupts (MSI-X), one per assigned device function.
pub const DEVICE_VECTOR_BASE: u8 = 0x50;
pub const DEVICE_VECTORS: u8 = 8;
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// Set in `TrapFrame::vector` by the stub of an exception that pushes an error code when the
/// CPU pushed none: an external interrupt arrived on that vector (see `crate::trap`).
pub const VECTOR_NO_ERROR_CODE: u64 = 0x200;

/// Whether `clac` exists (CPUID SMAP): trap entry clears RFLAGS.AC with it, so a domain that
/// set AC does not switch SMAP off for the hypervisor's handlers. Set once at boot.
#[unsafe(no_mangle)]
static HV_SMAP_CLAC: AtomicBool = AtomicBool::new(false);

/// Makes every later trap entry execute `clac` (call once, when SMAP is present).
pub fn enable_clac_on_entry() {
    HV_SMAP_CLAC.store(true, Ordering::Relaxed);
}

/// Saved register state, lowest address first (the stubs push in reverse).
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct TrapFrame {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rbp: u64,
    pub rdi: u64,
    pub rsi: u64,
    pub rdx: u64,
    pub rcx: u64,
    pub rbx: u64,
    pub rax: u64,
    pub vector: u64,
    pub error: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

const _: () = assert!(core::mem::size_of::<TrapFrame>().is_multiple_of(16));

/// RFLAGS bits a domain may control (CF, PF, AF, ZF, SF, DF, OF, TF, AC); IF is always set on
/// return to ring 3 and IOPL stays 0.
const USER_RFLAGS: u64 = 0xcd5 | 0x100 | 0x4_0000;
/// RFLAGS of a fresh ring-3 context: IF and the always-one bit 1.
const INITIAL_RFLAGS: u64 = 0x202;
/// Vector of the page fault (its faulting address is in CR2).
pub const PAGE_FAULT_VECTOR: u8 = 14;
/// Vectors below this are CPU exceptions.
pub const EXCEPTION_VECTORS: u8 = 32;

impl TrapFrame {
    /// A fresh ring-3 context that starts at `rip` with stack `rsp` and `arg` as its first
    /// argument (System V: `rdi`), interrupts on.
    pub fn user_entry(rip: u64, rsp: u64, arg: u64) -> Self {
        TrapFrame {
            rip,
            rsp,
            rdi: arg,
            cs: USER_CS as u64,
            ss: USER_DS as u64,
            rflags: INITIAL_RFLAGS,
            ..TrapFrame::default()
        }
    }

    pub fn from_user(&self) -> bool {
        self.cs & 3 == 3
    }

    /// The hypercall a `syscall` frame carries: the number (`rax`) and the six arguments
    /// (`rdi, rsi, rdx, r10, r8, r9`; `rcx` and `r11` hold the return rip and rflags).
    pub fn hypercall(&self) -> (u64, [u64; 6]) {
        (self.rax, [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9])
    }

    /// Sets the hypercall result (`rax`).
    pub fn set_hypercall_result(&mut self, value: u64) {
        self.rax = value;
    }

    /// Makes the frame safe to return to ring 3: only the flags a domain may control survive
    /// (IF set), and a `syscall` frame whose rip is not canonical goes out through `iretq`
    /// instead of `sysretq`, which would fault in ring 0 (the fault then hits the domain).
    pub fn sanitise_for_user(&mut self) {
        self.rflags = (self.rflags & USER_RFLAGS) | INITIAL_RFLAGS;
        if self.vector == SYSCALL_VECTOR && self.rip >= 0x0000_8000_0000_0000 {
            self.vector = 0;
        }
    }

    /// The page fault this frame records (meaningful when `vector` is [`PAGE_FAULT_VECTOR`]):
    /// the error code decoded and the faulting address from CR2.
    pub fn page_fault(&self) -> PageFault {
        let e = self.error;
        PageFault { addr: fault_address(), write: e & 2 != 0, execute: e & 16 != 0, protection: e & 1 != 0 }
    }
}

/// A decoded page fault.
#[derive(Debug, Clone, Copy)]
pub struct PageFault {
    /// The address accessed (CR2).
    pub addr: u64,
    /// The access was a write / an instruction fetch (else a read).
    pub write: bool,
    pub execute: bool,
    /// A protection violation (else the page was not present).
    pub protection: bool,
}

/// The address of the last page fault (CR2).
pub fn fault_address() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// The name of a CPU exception vector, for crash reports.
pub fn exception_name(v: u8) -> &'static str {
    match v {
        0 => "divide error",
        1 => "debug trap",
        2 => "NMI",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode (MMX/SSE/AVX included: domains are soft-float)",
        7 => "device not available (an x87 instruction: domains are soft-float)",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault (privileged instruction or bad segment)",
        14 => "page fault",
        16 => "x87 floating-point error",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point error",
        21 => "control protection fault",
        _ => "exception",
    }
}

unsafe extern "C" {
    fn trap_exit() -> !;
    fn syscall_entry();
    static isr_table: [u64; 256];
}

macro_rules! stubs {
    ($handler:path, $syscall:path) => {
        global_asm!(
            ".macro ISR_NOERR n",
            "isr_\\n:",
            "    push 0",
            "    push \\n",
            "    jmp trap_common",
            ".endm",
            // An exception with an error code. The CPU aligns rsp to 16 before pushing the frame
            // in 64-bit mode: with an error code the stack is 16-aligned here, without one it is
            // not, and that is an external interrupt on this vector (marked, error 0).
            ".macro ISR_ERR n",
            "isr_\\n:",
            "    test spl, 8",
            "    jnz 1f",
            "    push \\n",
            "    jmp trap_common",
            "1:",
            "    push 0",
            "    push (\\n | 0x200)",
            "    jmp trap_common",
            ".endm",
            ".section .text.trap, \"ax\"",
            ".irp n, 0,1,2,3,4,5,6,7,9,15,16,18,19,20,22,23,24,25,26,27,28,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49",
            "ISR_NOERR \\n",
            ".endr",
            ".irp n, 50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89",
            "ISR_NOERR \\n",
            ".endr",
            ".irp n, 90,91,92,93,94,95,96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119,120,121,122,123,124,125,126,127,128,129",
            "ISR_NOERR \\n",
            ".endr",
            ".irp n, 130,131,132,133,134,135,136,137,138,139,140,141,142,143,144,145,146,147,148,149,150,151,152,153,154,155,156,157,158,159,160,161,162,163,164,165,166,167,168,169",
            "ISR_NOERR \\n",
            ".endr",
            ".irp n, 170,171,172,173,174,175,176,177,178,179,180,181,182,183,184,185,186,187,188,189,190,191,192,193,194,195,196,197,198,199,200,201,202,203,204,205,206,207,208,209",
            "ISR_NOERR \\n",
            ".endr",
            ".irp n, 210,211,212,213,214,215,216,217,218,219,220,221,222,223,224,225,226,227,228,229,230,231,232,233,234,235,236,237,238,239,240,241,242,243,244,245,246,247,248,249",
            "ISR_NOERR \\n",
            ".endr",
            ".irp n, 250,251,252,253,254,255",
            "ISR_NOERR \\n",
            ".endr",
            ".irp n, 8,10,11,12,13,14,17,21,29,30",
            "ISR_ERR \\n",
            ".endr",
            "trap_common:",
            "    test qword ptr [rsp + 24], 3",
            "    jz 1f",
            "    swapgs",
            // From ring 3: RFLAGS.AC is the domain's (interrupt gates do not clear it) and would
            // switch SMAP off in the handler. `syscall` clears it through SFMASK.
            "    cmp byte ptr [rip + HV_SMAP_CLAC], 0",
            "    je 1f",
            "    clac",
            "1:",
            "    push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
            "    push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
            "    mov rdi, rsp",
            "    cld",
            "    call {handler}",
            ".global trap_exit",
            "trap_exit:",
            "    pop r15", "pop r14", "pop r13", "pop r12", "pop r11", "pop r10", "pop r9", "pop r8",
            "    pop rbp", "pop rdi", "pop rsi", "pop rdx", "pop rcx", "pop rbx", "pop rax",
            "    cmp qword ptr [rsp], 0x100",
            "    je 3f",
            "    test qword ptr [rsp + 24], 3",
            "    jz 2f",
            "    swapgs",
            "2:",
            "    add rsp, 16",
            "    iretq",
            "3:",
            "    mov rcx, [rsp + 16]",
            "    mov r11, [rsp + 32]",
            "    mov rsp, [rsp + 40]",
            "    swapgs",
            "    sysretq",
            ".global syscall_entry",
            "syscall_entry:",
            "    swapgs",
            "    mov gs:[8], rsp",
            "    mov rsp, gs:[0]",
            "    push 0x1b",
            "    push qword ptr gs:[8]",
            "    push r11",
            "    push 0x23",
            "    push rcx",
            "    push 0",
            "    push 0x100",
            "    push rax", "push rbx", "push rcx", "push rdx", "push rsi", "push rdi", "push rbp",
            "    push r8", "push r9", "push r10", "push r11", "push r12", "push r13", "push r14", "push r15",
            "    mov rdi, rsp",
            "    cld",
            "    call {syscall}",
            "    jmp trap_exit",
            ".section .rodata.isr_table, \"a\"",
            ".balign 8",
            ".global isr_table",
            "isr_table:",
            ".irp n, 0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39",
            "    .quad isr_\\n",
            ".endr",
            ".irp n, 40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79",
            "    .quad isr_\\n",
            ".endr",
            ".irp n, 80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100,101,102,103,104,105,106,107,108,109,110,111,112,113,114,115,116,117,118,119",
            "    .quad isr_\\n",
            ".endr",
            ".irp n, 120,121,122,123,124,125,126,127,128,129,130,131,132,133,134,135,136,137,138,139,140,141,142,143,144,145,146,147,148,149,150,151,152,153,154,155,156,157,158,159",
            "    .quad isr_\\n",
            ".endr",
            ".irp n, 160,161,162,163,164,165,166,167,168,169,170,171,172,173,174,175,176,177,178,179,180,181,182,183,184,185,186,187,188,189,190,191,192,193,194,195,196,197,198,199",
            "    .quad isr_\\n",
            ".endr",
            ".irp n, 200,201,202,203,204,205,206,207,208,209,210,211,212,213,214,215,216,217,218,219,220,221,222,223,224,225,226,227,228,229,230,231,232,233,234,235,236,237,238,239",
            "    .quad isr_\\n",
            ".endr",
            ".irp n, 240,241,242,243,244,245,246,247,248,249,250,251,252,253,254,255",
            "    .quad isr_\\n",
            ".endr",
            ".text",
            handler = sym $handler,
            syscall = sym $syscall,
        );
    };
}

stubs!(crate::kernel::trap::trap_handler, crate::kernel::trap::syscall_handler);

#[repr(C)]
#[derive(Clone, Copy)]
struct Gate {
    offset_low: u16,
    selector: u16,
    ist: u8,
    attributes: u8,
    offset_mid: u16,
    offset_high: u32,
    reserved: u32,
}

impl Gate {
    const MISSING: Gate =
        Gate { offset_low: 0, selector: 0, ist: 0, attributes: 0, offset_mid: 0, offset_high: 0, reserved: 0 };

    fn interrupt(handler: u64, ist: Option<u16>) -> Gate {
        Gate {
            offset_low: handler as u16,
            selector: KERNEL_CS,
            ist: ist.map_or(0, |i| i as u8 + 1),
            attributes: 0x8e, // present, DPL 0, 64-bit interrupt gate (IF cleared on entry)
            offset_mid: (handler >> 16) as u16,
            offset_high: (handler >> 32) as u32,
            reserved: 0,
        }
    }
}

/// Hand-built IDT: the x86_64 crate's typed IDT needs the nightly `x86-interrupt` ABI for most
/// of its API; our stubs are plain addresses, so a 256-gate array is simpler and clearer.
#[repr(C, align(16))]
struct Idt([Gate; 256]);

static mut IDT: Idt = Idt([Gate::MISSING; 256]);

pub fn init() {
    // SAFETY: `isr_table` is the read-only address table emitted by the stubs above.
    let table = unsafe { &isr_table };
    // Every vector has a gate: a device can raise any vector (an MSI it forges where nothing
    // remaps interrupts), and a missing gate would turn that into a #GP in whoever runs.
    for v in 0..=255u8 {
        let i = v as usize;
        // Double fault, NMI and machine check run on known-good stacks of their own.
        let ist = match v {
            8 => Some(IST_DOUBLE_FAULT),
            2 => Some(IST_NMI),
            18 => Some(IST_MACHINE_CHECK),
            _ => None,
        };
        // SAFETY: runs once at boot on CPU 0 before interrupts are enabled; nothing else touches
        // the IDT.
        unsafe { IDT.0[v as usize] = Gate::interrupt(table[i], ist) };
    }
    let ptr = DescriptorTablePointer {
        limit: (core::mem::size_of::<Idt>() - 1) as u16,
        base: VirtAddr::new((&raw const IDT) as u64),
    };
    // SAFETY: the IDT is static and every present gate points at a stub above.
    unsafe { x86_64::instructions::tables::lidt(&ptr) };
}

pub fn syscall_entry_addr() -> u64 {
    syscall_entry as *const () as u64
}

/// Leaves the hypervisor into the context in `frame` (first entry into a domain).
///
/// # Safety
/// `frame` must describe a valid ring-3 context in the currently loaded address space.
pub unsafe fn enter(frame: &TrapFrame, stack_top: u64) -> ! {
    let dst = (stack_top - core::mem::size_of::<TrapFrame>() as u64) as *mut TrapFrame;
    // SAFETY: `dst` is the top of this CPU's hypervisor stack, which nothing else uses now (we
    // never return to the caller); `trap_exit` pops exactly a TrapFrame from there.
    unsafe {
        dst.write(*frame);
        asm!("mov rsp, {0}", "jmp {1}", in(reg) dst, sym trap_exit, options(noreturn));
    }
}

/// Whether RFLAGS.AC is set now (it must never be inside the hypervisor).
pub fn alignment_check_flag() -> bool {
    x86_64::registers::rflags::read().contains(x86_64::registers::rflags::RFlags::ALIGNMENT_CHECK)
}

/// Waits for an interrupt with interrupts enabled, then disables them again.
pub fn wait_for_interrupt() {
    x86_64::instructions::interrupts::enable_and_hlt();
    x86_64::instructions::interrupts::disable();
}

/// Opens a one-instruction interrupt window (a pending interrupt is taken now), then disables
/// interrupts again. Used after an HVM guest exited for a host interrupt.
pub fn wait_for_interrupt_window() {
    // SAFETY: the caller holds no lock an interrupt handler takes; the handlers run on this stack
    // and return here.
    unsafe { asm!("sti", "nop", "cli", options(nomem, nostack)) }
}
