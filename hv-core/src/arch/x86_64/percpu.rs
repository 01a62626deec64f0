//! Per-CPU state, reached through GS in the hypervisor. Only CPU 0 exists today; nothing uses a
//! global "current domain", so SMP means more of these, not a rewrite.
use super::cpu::{MSR_GS_BASE, MSR_KERNEL_GS_BASE, wrmsr};

/// The syscall entry stub relies on the first two fields' offsets (0 and 8).
#[repr(C, align(64))]
pub struct PerCpu {
    /// Top of this CPU's hypervisor stack (loaded by the syscall stub; also TSS.RSP0).
    pub kernel_rsp: u64,
    /// Scratch: the domain's rsp while the syscall stub switches stacks.
    pub user_rsp: u64,
    pub cpu_id: u64,
}

const STACK_SIZE: usize = 64 * 1024;

#[repr(C, align(16))]
struct Stack([u8; STACK_SIZE]);

static mut CPU0_STACK: Stack = Stack([0; STACK_SIZE]);
static mut CPU0: PerCpu = PerCpu { kernel_rsp: 0, user_rsp: 0, cpu_id: 0 };

/// Sets up CPU 0's per-CPU block and returns its stack top.
pub fn init_cpu0() -> u64 {
    let top = (&raw const CPU0_STACK) as u64 + STACK_SIZE as u64;
    // SAFETY: runs once on CPU 0 before interrupts or syscalls are enabled; nothing else holds a
    // reference to CPU0 yet.
    unsafe {
        CPU0.kernel_rsp = top;
        wrmsr(MSR_GS_BASE, (&raw const CPU0) as u64);
        wrmsr(MSR_KERNEL_GS_BASE, 0);
    }
    top
}

pub fn kernel_stack_top() -> u64 {
    // SAFETY: written once in init_cpu0 before any reader runs.
    unsafe { CPU0.kernel_rsp }
}
