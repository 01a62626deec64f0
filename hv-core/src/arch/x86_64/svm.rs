//! AMD SVM: turning it on, the VMCB, and one guest run (`VMRUN` to `#VMEXIT`).
//!
//! What an exit means and what to do about it is decided elsewhere: `crate::hvm` (exit decoding,
//! CPUID/MSR/port policy, the guest page walk; host-tested) and `kernel::hvm` (the glue). This
//! file only touches the hardware. QEMU's TCG implements SVM without next-RIP save and without
//! decode assists, so callers advance RIP by the known length of the exiting instruction.
//!
//! A run, in order: CLGI (no interrupt, not even an NMI, until STGI), VMSAVE the host's hidden
//! state (FS/GS/TR/LDTR, KernelGsBase, STAR/LSTAR/CSTAR/SFMASK, SYSENTER: VMRUN does not switch
//! them), VMLOAD the guest's, load the guest's general registers, STI (so a host interrupt is
//! recognised while the guest runs and causes an `INTR` exit), VMRUN. After the exit: store the
//! guest's registers, VMSAVE the guest, VMLOAD the host, CLI, STGI. A host interrupt that caused
//! the exit is still pending in the local APIC; the caller opens an interrupt window for it.
use super::cpu::{MSR_EFER, rdmsr, wrmsr};
use super::paging::{phys_to_virt, zero_phys};
use crate::frames::{FRAME_SIZE, FrameAllocator};
use core::arch::x86_64::__cpuid;
use core::arch::{asm, global_asm};

const MSR_VM_CR: u32 = 0xc001_0114;
const MSR_VM_HSAVE_PA: u32 = 0xc001_0117;
const EFER_SVME: u64 = 1 << 12;
const VM_CR_SVMDIS: u64 = 1 << 4;

/// What the CPU offers (CPUID 0x8000_000A).
#[derive(Debug, Clone, Copy)]
pub struct Support {
    pub asids: u32,
    pub npt: bool,
    pub nrip_save: bool,
}

/// Whether this CPU has SVM with nested paging and firmware left it enabled.
pub fn probe() -> Result<Support, &'static str> {
    let max_ext = __cpuid(0x8000_0000).eax;
    if max_ext < 0x8000_000a || __cpuid(0x8000_0001).ecx & (1 << 2) == 0 {
        return Err("the CPU has no AMD SVM (under QEMU use -cpu max with TCG, or an AMD host with KVM)");
    }
    if rdmsr(MSR_VM_CR) & VM_CR_SVMDIS != 0 {
        return Err("SVM is disabled by firmware (VM_CR.SVMDIS)");
    }
    let l = __cpuid(0x8000_000a);
    let s = Support { asids: l.ebx, npt: l.edx & 1 != 0, nrip_save: l.edx & (1 << 3) != 0 };
    if !s.npt {
        return Err("the CPU's SVM has no nested paging");
    }
    Ok(s)
}

/// The host side of SVM on this CPU: the save area VMRUN uses, a VMCB page for the host's
/// VMSAVE/VMLOAD state, and the I/O and MSR permission maps every guest shares.
pub struct Host {
    /// The host save area VM_HSAVE_PA names; the processor writes it, we only hold it.
    _hsave: u64,
    host_vmcb: u64,
    /// 12 KiB, every port intercepted.
    pub iopm: u64,
    /// 8 KiB, filled by the caller from the MSR policy.
    pub msrpm: u64,
    pub support: Support,
}

impl Host {
    /// Enables SVM (EFER.SVME) and allocates the host pages. `msr_map` fills the MSR
    /// permission map (2 bits per MSR: see `crate::hvm::msr`).
    pub fn enable(frames: &mut FrameAllocator, msr_map: impl FnOnce(&mut [u8; 8192])) -> Result<Self, &'static str> {
        let support = probe()?;
        let hsave = frames.alloc().ok_or("no memory")?;
        let host_vmcb = frames.alloc().ok_or("no memory")?;
        let iopm = frames.alloc_contiguous(3, 1).ok_or("no memory")?;
        let msrpm = frames.alloc_contiguous(2, 1).ok_or("no memory")?;
        zero_phys(hsave, FRAME_SIZE);
        zero_phys(host_vmcb, FRAME_SIZE);
        // SAFETY: the three IOPM frames and two MSRPM frames were just allocated for this use and
        // are reached through the direct map; nothing else refers to them.
        unsafe {
            core::ptr::write_bytes(phys_to_virt(iopm) as *mut u8, 0xff, 3 * FRAME_SIZE as usize);
            msr_map(&mut *(phys_to_virt(msrpm) as *mut [u8; 8192]));
        }
        // SAFETY: SVME only makes the SVM instructions usable; VM_HSAVE_PA names a frame we own.
        unsafe {
            wrmsr(MSR_EFER, rdmsr(MSR_EFER) | EFER_SVME);
            wrmsr(MSR_VM_HSAVE_PA, hsave);
        }
        Ok(Host { _hsave: hsave, host_vmcb, iopm, msrpm, support })
    }
}

/// The guest's general registers that VMRUN does not switch (RAX, RSP, RIP and RFLAGS live in
/// the VMCB). The offsets are used by the run stub.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GuestRegs {
    pub rbx: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub rbp: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

/// x87/SSE state of a guest (FXSAVE format), switched only between guests: the hypervisor and
/// the paravirtual domains never use those registers (they are soft-float; x87/SSE trap).
#[repr(C, align(16))]
#[derive(Clone, Copy)]
pub struct FpuState(pub [u8; 512]);

impl FpuState {
    /// The state after FNINIT with SSE exceptions masked (FCW 0x37F, MXCSR 0x1F80).
    pub fn initial() -> Self {
        let mut s = [0u8; 512];
        s[0..2].copy_from_slice(&0x037fu16.to_le_bytes());
        s[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        s[28..32].copy_from_slice(&0xffffu32.to_le_bytes()); // MXCSR_MASK
        FpuState(s)
    }
}

/// Saves the live x87/SSE registers into `to` and loads `from`.
pub fn switch_fpu(to: Option<&mut FpuState>, from: &FpuState) {
    use x86_64::registers::control::{Cr0, Cr0Flags, Cr4, Cr4Flags};
    let (cr0, cr4) = (Cr0::read(), Cr4::read());
    // SAFETY: clearing EM/TS and setting OSFXSR only for the duration of FXSAVE/FXRSTOR, on this
    // CPU with interrupts off; both areas are 16-byte aligned 512-byte buffers we own; the saved
    // image was produced by FXSAVE or `FpuState::initial` (valid MXCSR).
    unsafe {
        Cr0::write((cr0 - Cr0Flags::EMULATE_COPROCESSOR) - Cr0Flags::TASK_SWITCHED);
        Cr4::write(cr4 | Cr4Flags::OSFXSR);
        if let Some(to) = to {
            asm!("fxsave64 [{}]", in(reg) to.0.as_mut_ptr(), options(nostack));
        }
        asm!("fxrstor64 [{}]", in(reg) from.0.as_ptr(), options(nostack));
        Cr4::write(cr4);
        Cr0::write(cr0);
    }
}

/// VMCB field offsets (AMD APM vol. 2, appendix B). Control area first, save area at 0x400.
mod off {
    pub const INTERCEPT_CR: usize = 0x000;
    pub const INTERCEPT_EXCEPTIONS: usize = 0x008;
    pub const INTERCEPT_MISC1: usize = 0x00c;
    pub const INTERCEPT_MISC2: usize = 0x010;
    pub const IOPM_BASE: usize = 0x040;
    pub const MSRPM_BASE: usize = 0x048;
    pub const TSC_OFFSET: usize = 0x050;
    pub const ASID: usize = 0x058;
    pub const TLB_CONTROL: usize = 0x05c;
    pub const VINTR: usize = 0x060;
    pub const INTERRUPT_SHADOW: usize = 0x068;
    pub const EXIT_CODE: usize = 0x070;
    pub const EXIT_INFO1: usize = 0x078;
    pub const EXIT_INFO2: usize = 0x080;
    pub const EXIT_INT_INFO: usize = 0x088;
    pub const NP_ENABLE: usize = 0x090;
    pub const EVENT_INJ: usize = 0x0a8;
    pub const N_CR3: usize = 0x0b0;
    pub const ES: usize = 0x400;
    pub const CS: usize = 0x410;
    pub const SS: usize = 0x420;
    pub const DS: usize = 0x430;
    pub const FS: usize = 0x440;
    pub const GS: usize = 0x450;
    pub const GDTR: usize = 0x460;
    pub const LDTR: usize = 0x470;
    pub const IDTR: usize = 0x480;
    pub const TR: usize = 0x490;
    pub const CPL: usize = 0x4cb;
    pub const EFER: usize = 0x4d0;
    pub const CR4: usize = 0x548;
    pub const CR3: usize = 0x550;
    pub const CR0: usize = 0x558;
    pub const DR7: usize = 0x560;
    pub const DR6: usize = 0x568;
    pub const RFLAGS: usize = 0x570;
    pub const RIP: usize = 0x578;
    pub const RSP: usize = 0x5d8;
    pub const RAX: usize = 0x5f8;
    pub const G_PAT: usize = 0x668;
}

/// Intercept bits of the first miscellaneous vector (VMCB 0x00C).
mod misc1 {
    pub const INTR: u32 = 1 << 0;
    pub const NMI: u32 = 1 << 1;
    pub const SMI: u32 = 1 << 2;
    pub const INIT: u32 = 1 << 3;
    pub const CPUID: u32 = 1 << 18;
    pub const INVD: u32 = 1 << 22;
    pub const HLT: u32 = 1 << 24;
    pub const IOIO: u32 = 1 << 27;
    pub const MSR: u32 = 1 << 28;
    pub const TASK_SWITCH: u32 = 1 << 29;
    pub const SHUTDOWN: u32 = 1 << 31;
}

/// Second vector (VMCB 0x010): every SVM instruction (a guest must not run nested guests or
/// touch the host's hidden state), and XSETBV (XSAVE is hidden from guests).
mod misc2 {
    pub const VMRUN: u32 = 1 << 0;
    pub const VMMCALL: u32 = 1 << 1;
    pub const VMLOAD: u32 = 1 << 2;
    pub const VMSAVE: u32 = 1 << 3;
    pub const STGI: u32 = 1 << 4;
    pub const CLGI: u32 = 1 << 5;
    pub const SKINIT: u32 = 1 << 6;
    pub const RDTSCP: u32 = 1 << 7;
    pub const MONITOR: u32 = 1 << 10;
    pub const MWAIT: u32 = 1 << 11;
    pub const XSETBV: u32 = 1 << 13;
}

/// Event-injection / exit-interrupt-info format.
pub mod event {
    pub const VALID: u64 = 1 << 31;
    pub const ERROR_VALID: u64 = 1 << 11;
    pub const TYPE_INTR: u64 = 0 << 8;
    pub const TYPE_EXCEPTION: u64 = 3 << 8;
}

const V_IRQ: u64 = 1 << 8;
const V_IGN_TPR: u64 = 1 << 20;
const V_INTR_MASKING: u64 = 1 << 24;

/// A segment as the VMCB stores it.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub selector: u16,
    /// Descriptor bits 40..47 and 52..55 packed into 12 bits.
    pub attrib: u16,
    pub limit: u32,
    pub base: u64,
}

/// One guest vCPU: its VMCB frame, the registers VMRUN does not switch, and its FPU state.
pub struct Vcpu {
    vmcb: u64,
    pub regs: GuestRegs,
    pub fpu: FpuState,
}

impl Vcpu {
    /// A VMCB with the intercepts every guest gets, nested paging rooted at `ncr3`, ASID
    /// `asid` (never 0), the shared permission maps and no TSC offset.
    pub fn new(frames: &mut FrameAllocator, host: &Host, asid: u32, ncr3: u64) -> Option<Self> {
        let vmcb = frames.alloc()?;
        zero_phys(vmcb, FRAME_SIZE);
        let v = Vcpu { vmcb, regs: GuestRegs::default(), fpu: FpuState::initial() };
        // Exceptions: #MC (18) stays with the host; the rest belong to the guest.
        v.w32(off::INTERCEPT_EXCEPTIONS, 1 << 18);
        v.w32(
            off::INTERCEPT_MISC1,
            misc1::INTR
                | misc1::NMI
                | misc1::SMI
                | misc1::INIT
                | misc1::CPUID
                | misc1::INVD
                | misc1::HLT
                | misc1::IOIO
                | misc1::MSR
                | misc1::TASK_SWITCH
                | misc1::SHUTDOWN,
        );
        v.w32(
            off::INTERCEPT_MISC2,
            misc2::VMRUN
                | misc2::VMMCALL
                | misc2::VMLOAD
                | misc2::VMSAVE
                | misc2::STGI
                | misc2::CLGI
                | misc2::SKINIT
                | misc2::RDTSCP
                | misc2::MONITOR
                | misc2::MWAIT
                | misc2::XSETBV,
        );
        v.w32(off::INTERCEPT_CR, 0);
        v.w64(off::IOPM_BASE, host.iopm);
        v.w64(off::MSRPM_BASE, host.msrpm);
        v.w64(off::TSC_OFFSET, 0);
        v.w32(off::ASID, asid);
        v.w8(off::TLB_CONTROL, 1); // flush this ASID at the first run
        v.w64(off::VINTR, V_INTR_MASKING);
        v.w64(off::NP_ENABLE, 1);
        v.w64(off::N_CR3, ncr3);
        v.w64(off::G_PAT, 0x0007_0406_0007_0406);
        v.w64(off::DR7, 0x400);
        v.w64(off::DR6, 0xffff_0ff0);
        Some(v)
    }

    /// Sets the vCPU to the PVH entry state: 32-bit protected mode, paging off, flat segments,
    /// `rip` the entry and `rbx` the start_info address.
    pub fn set_pvh_entry(&mut self, rip: u64, rbx: u64) {
        let code = Segment { selector: 0x08, attrib: 0xc9b, limit: 0xffff_ffff, base: 0 };
        let data = Segment { selector: 0x10, attrib: 0xc93, limit: 0xffff_ffff, base: 0 };
        for o in [off::DS, off::ES, off::SS, off::FS, off::GS] {
            self.set_segment(o, data);
        }
        self.set_segment(off::CS, code);
        self.set_segment(off::TR, Segment { selector: 0x18, attrib: 0x08b, limit: 0x67, base: 0 });
        self.set_segment(off::LDTR, Segment { selector: 0, attrib: 0x082, limit: 0xffff, base: 0 });
        self.set_segment(off::GDTR, Segment { selector: 0, attrib: 0, limit: 0xffff, base: 0 });
        self.set_segment(off::IDTR, Segment { selector: 0, attrib: 0, limit: 0xffff, base: 0 });
        self.w8(off::CPL, 0);
        self.w64(off::CR0, 0x11); // PE | ET
        self.w64(off::CR3, 0);
        self.w64(off::CR4, 0);
        self.w64(off::EFER, EFER_SVME);
        self.w64(off::RFLAGS, 0x2);
        self.w64(off::RIP, rip);
        self.w64(off::RSP, 0);
        self.w64(off::RAX, 0);
        self.regs = GuestRegs { rbx, ..GuestRegs::default() };
    }

    fn set_segment(&self, o: usize, s: Segment) {
        self.w16(o, s.selector);
        self.w16(o + 2, s.attrib);
        self.w32(o + 4, s.limit);
        self.w64(o + 8, s.base);
    }

    /// Runs the guest until its next #VMEXIT; returns the exit code and the two info words.
    pub fn run(&mut self, host: &Host) -> (u64, u64, u64) {
        // SAFETY: `self.vmcb` is this vCPU's VMCB (a frame we own, set up by `new`), the host
        // VMCB and save area were set up by `Host::enable` on this CPU, and `regs` is a live
        // GuestRegs the stub reads and writes at the offsets of its definition. The stub
        // preserves every callee-saved register and the host's hidden state.
        unsafe { hv_svm_run(self.vmcb, &mut self.regs, host.host_vmcb) };
        (self.r64(off::EXIT_CODE), self.r64(off::EXIT_INFO1), self.r64(off::EXIT_INFO2))
    }

    // --- guest state the kernel reads and changes ---
    pub fn rip(&self) -> u64 {
        self.r64(off::RIP)
    }
    pub fn set_rip(&self, v: u64) {
        self.w64(off::RIP, v)
    }
    pub fn rax(&self) -> u64 {
        self.r64(off::RAX)
    }
    pub fn set_rax(&self, v: u64) {
        self.w64(off::RAX, v)
    }
    pub fn rflags(&self) -> u64 {
        self.r64(off::RFLAGS)
    }
    pub fn cpl(&self) -> u8 {
        self.r8(off::CPL)
    }
    pub fn cr0(&self) -> u64 {
        self.r64(off::CR0)
    }
    pub fn cr3(&self) -> u64 {
        self.r64(off::CR3)
    }
    pub fn cr4(&self) -> u64 {
        self.r64(off::CR4)
    }
    /// The guest's EFER as it sees it (without SVME, which the VMCB must always carry).
    pub fn efer(&self) -> u64 {
        self.r64(off::EFER) & !EFER_SVME
    }
    /// EFER as the VMCB holds it (SVME included).
    pub fn vmcb_efer(&self) -> u64 {
        self.r64(off::EFER)
    }
    pub fn set_vmcb_efer(&self, v: u64) {
        self.w64(off::EFER, v | EFER_SVME)
    }
    pub fn set_g_pat(&self, v: u64) {
        self.w64(off::G_PAT, v)
    }
    pub fn exit_int_info(&self) -> u64 {
        self.r64(off::EXIT_INT_INFO)
    }
    /// Ends an interrupt shadow: for when the hypervisor completes the intercepted instruction
    /// (the shadow covered that instruction only, not the next one).
    pub fn clear_interrupt_shadow(&self) {
        self.w64(off::INTERRUPT_SHADOW, self.r64(off::INTERRUPT_SHADOW) & !1)
    }
    pub fn set_tlb_flush(&self, flush: bool) {
        self.w8(off::TLB_CONTROL, flush as u8)
    }

    /// Queues an event for delivery at the next VMRUN (exception, interrupt).
    pub fn inject(&self, raw: u64) {
        self.w64(off::EVENT_INJ, raw)
    }
    /// Queues exception `vector` (with an error code when given).
    pub fn inject_exception(&self, vector: u8, error: Option<u32>) {
        let mut e = event::VALID | event::TYPE_EXCEPTION | vector as u64;
        if let Some(code) = error {
            e |= event::ERROR_VALID | (code as u64) << 32;
        }
        self.inject(e)
    }

    /// Requests a virtual interrupt (`V_IRQ`) with `vector`, delivered when the guest has
    /// interrupts enabled; the CPU clears the request when it delivers it.
    pub fn request_virq(&self, vector: u8) {
        self.w64(off::VINTR, V_INTR_MASKING | V_IGN_TPR | V_IRQ | (0xf << 16) | (vector as u64) << 32);
    }
    /// The vector of a virtual interrupt still waiting for delivery, if any.
    pub fn virq_pending(&self) -> Option<u8> {
        let v = self.r64(off::VINTR);
        (v & V_IRQ != 0).then_some((v >> 32) as u8)
    }

    fn ptr(&self, o: usize) -> u64 {
        debug_assert!(o < FRAME_SIZE as usize);
        phys_to_virt(self.vmcb) + o as u64
    }
    fn r64(&self, o: usize) -> u64 {
        // SAFETY: an in-frame offset of this vCPU's VMCB, a frame it owns (direct map).
        unsafe { (self.ptr(o) as *const u64).read_volatile() }
    }
    fn r8(&self, o: usize) -> u8 {
        // SAFETY: as in `r64`.
        unsafe { (self.ptr(o) as *const u8).read_volatile() }
    }
    fn w64(&self, o: usize, v: u64) {
        // SAFETY: as in `r64`; the guest is not running while the hypervisor runs (one CPU).
        unsafe { (self.ptr(o) as *mut u64).write_volatile(v) }
    }
    fn w32(&self, o: usize, v: u32) {
        // SAFETY: as in `w64`.
        unsafe { (self.ptr(o) as *mut u32).write_volatile(v) }
    }
    fn w16(&self, o: usize, v: u16) {
        // SAFETY: as in `w64`.
        unsafe { (self.ptr(o) as *mut u16).write_volatile(v) }
    }
    fn w8(&self, o: usize, v: u8) {
        // SAFETY: as in `w64`.
        unsafe { (self.ptr(o) as *mut u8).write_volatile(v) }
    }

    /// Scrubs and returns the VMCB frame.
    pub fn free(self, frames: &mut FrameAllocator) {
        zero_phys(self.vmcb, FRAME_SIZE);
        frames.free(self.vmcb, 1);
    }
}

unsafe extern "C" {
    /// The run stub below: (guest VMCB, guest registers, host VMCB).
    fn hv_svm_run(vmcb: u64, regs: *mut GuestRegs, host_vmcb: u64);
}

global_asm!(
    ".section .text.svm, \"ax\"",
    ".global hv_svm_run",
    "hv_svm_run:",
    "    push rbx",
    "    push rbp",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    push rsi", // [rsp+16]: guest registers
    "    push rdi", // [rsp+8]: guest VMCB
    "    push rdx", // [rsp]: host VMCB
    "    clgi",
    // IF=1 so that host interrupts end the guest's run (GIF=0 holds them until VMRUN). Not
    // right before VMRUN: QEMU's TCG carries the STI interrupt shadow over VMRUN into the
    // guest's first instruction, which then cannot take the virtual interrupt requested for it
    // (e.g. the event that ends its `sti; hlt`) until it enables interrupts again.
    "    sti",
    "    mov rax, rdx",
    "    vmsave rax",
    "    mov rax, rdi",
    "    vmload rax",
    "    mov rbx, [rsi + 0]",
    "    mov rcx, [rsi + 8]",
    "    mov rdx, [rsi + 16]",
    "    mov rdi, [rsi + 32]",
    "    mov rbp, [rsi + 40]",
    "    mov r8, [rsi + 48]",
    "    mov r9, [rsi + 56]",
    "    mov r10, [rsi + 64]",
    "    mov r11, [rsi + 72]",
    "    mov r12, [rsi + 80]",
    "    mov r13, [rsi + 88]",
    "    mov r14, [rsi + 96]",
    "    mov r15, [rsi + 104]",
    "    mov rsi, [rsi + 24]",
    "    vmrun rax",
    // #VMEXIT: rax and rsp are the host's again (rax = guest VMCB), GIF = 0.
    "    cli",
    "    vmsave rax",
    "    mov rax, [rsp + 16]",
    "    mov [rax + 0], rbx",
    "    mov [rax + 8], rcx",
    "    mov [rax + 16], rdx",
    "    mov [rax + 24], rsi",
    "    mov [rax + 32], rdi",
    "    mov [rax + 40], rbp",
    "    mov [rax + 48], r8",
    "    mov [rax + 56], r9",
    "    mov [rax + 64], r10",
    "    mov [rax + 72], r11",
    "    mov [rax + 80], r12",
    "    mov [rax + 88], r13",
    "    mov [rax + 96], r14",
    "    mov [rax + 104], r15",
    "    mov rax, [rsp]",
    "    vmload rax",
    "    stgi",
    "    add rsp, 24",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbp",
    "    pop rbx",
    "    ret",
    ".text",
);

const _: () = assert!(core::mem::offset_of!(GuestRegs, rsi) == 24 && core::mem::offset_of!(GuestRegs, r15) == 104);
