//! CPU feature detection and control-register setup.
use core::arch::x86_64::{__cpuid, __cpuid_count, _rdtsc};
use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
use x86_64::registers::model_specific::Msr;

pub const MSR_EFER: u32 = 0xc000_0080;
pub const MSR_STAR: u32 = 0xc000_0081;
pub const MSR_LSTAR: u32 = 0xc000_0082;
pub const MSR_SFMASK: u32 = 0xc000_0084;
pub const MSR_GS_BASE: u32 = 0xc000_0101;
pub const MSR_KERNEL_GS_BASE: u32 = 0xc000_0102;

#[derive(Debug, Clone, Copy, Default)]
pub struct Features {
    pub nx: bool,
    pub smep: bool,
    pub smap: bool,
    pub umip: bool,
    pub invariant_tsc: bool,
}

pub fn features() -> Features {
    // CPUID is always available in long mode.
    let max_ext = __cpuid(0x8000_0000).eax;
    let max = __cpuid(0).eax;
    let ext1 = if max_ext >= 0x8000_0001 { __cpuid(0x8000_0001).edx } else { 0 };
    let leaf7 = if max >= 7 { __cpuid_count(7, 0) } else { __cpuid(0) };
    let (ebx7, ecx7) = if max >= 7 { (leaf7.ebx, leaf7.ecx) } else { (0, 0) };
    let apm = if max_ext >= 0x8000_0007 { __cpuid(0x8000_0007).edx } else { 0 };
    Features {
        nx: ext1 & (1 << 20) != 0,
        smep: ebx7 & (1 << 7) != 0,
        smap: ebx7 & (1 << 20) != 0,
        umip: ecx7 & (1 << 2) != 0,
        invariant_tsc: apm & (1 << 8) != 0,
    }
}

pub fn rdmsr(msr: u32) -> u64 {
    // SAFETY: only called with architectural MSRs that exist on every x86_64 CPU we boot on.
    unsafe { Msr::new(msr).read() }
}

/// # Safety
/// Writing an MSR changes CPU behaviour; the caller names the MSR and a value valid for it.
pub unsafe fn wrmsr(msr: u32, value: u64) {
    // SAFETY: forwarded to the caller.
    unsafe { Msr::new(msr).write(value) }
}

pub fn rdtsc() -> u64 {
    // SAFETY: rdtsc has no memory effects.
    unsafe { _rdtsc() }
}

/// Turns on NX (EFER.NXE) before any page table uses bit 63.
pub fn enable_nx(f: &Features) {
    if f.nx {
        // SAFETY: setting NXE only makes bit 63 of page-table entries meaningful.
        unsafe { wrmsr(MSR_EFER, rdmsr(MSR_EFER) | (1 << 11)) };
    }
}

/// SMEP, SMAP and UMIP: the hypervisor can neither run nor touch user pages, and ring 3 cannot
/// read descriptor-table addresses. Call once the hypervisor no longer needs user mappings.
pub fn enable_protections(f: &Features) {
    let mut flags = Cr4::read();
    if f.smep {
        flags |= Cr4Flags::SUPERVISOR_MODE_EXECUTION_PROTECTION;
    }
    if f.smap {
        flags |= Cr4Flags::SUPERVISOR_MODE_ACCESS_PREVENTION;
    }
    if f.umip {
        flags |= Cr4Flags::USER_MODE_INSTRUCTION_PREVENTION;
    }
    // Domains may read the TSC (their clock); they may not touch FS/GS base registers directly.
    flags.remove(Cr4Flags::TIMESTAMP_DISABLE | Cr4Flags::FSGSBASE);
    // SAFETY: these bits only restrict what code may do; nothing in the hypervisor relies on
    // touching user pages (all domain memory is reached through the direct map).
    unsafe { Cr4::write(flags) };
}

/// Domains (and the hypervisor) are soft-float and the hypervisor keeps no FPU state per domain,
/// so x87/MMX/SSE/AVX must trap rather than run on registers another domain left behind:
/// CR0.EM makes x87 instructions raise #NM and MMX/SSE raise #UD; CR4.OSFXSR and OSXSAVE stay
/// clear so SSE and AVX raise #UD too. The domain is then stopped with a report.
pub fn disable_fpu() {
    let mut cr0 = Cr0::read();
    cr0.insert(Cr0Flags::EMULATE_COPROCESSOR);
    cr0.remove(Cr0Flags::TASK_SWITCHED | Cr0Flags::MONITOR_COPROCESSOR);
    let mut cr4 = Cr4::read();
    cr4.remove(Cr4Flags::OSFXSR | Cr4Flags::OSXMMEXCPT_ENABLE | Cr4Flags::OSXSAVE);
    // SAFETY: nothing in the hypervisor uses x87/SSE (soft-float target); these bits only make
    // such instructions trap.
    unsafe {
        Cr0::write(cr0);
        Cr4::write(cr4);
    }
}

pub fn halt_forever() -> ! {
    loop {
        x86_64::instructions::interrupts::disable();
        x86_64::instructions::hlt();
    }
}
