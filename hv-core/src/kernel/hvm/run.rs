//! Running an HVM vCPU: entry (event injection, FPU), VMRUN, and the exit handlers. The
//! scheduler calls [`run`] when it picks an HVM domain; it returns when the vCPU must give up
//! the CPU (it halted, its slice ended, someone else should run, or the domain ended).
use super::super::domain::Domain;
use super::super::{HV, Hv, console, time};
use super::Hvm;
use crate::arch::svm::{event, switch_fpu};
use crate::arch::trap::wait_for_interrupt_window;
use crate::hvlog;
use crate::hvm::exit::{self, Exit};
use crate::hvm::{cpuid, ioport, msr};
use hv_abi::end;
use spin::MutexGuard;

/// Which HVM slot's x87/SSE state is in the registers.
static mut FPU_OWNER: Option<usize> = None;

const GP: u8 = 13;
const RFLAGS_IF: u64 = 1 << 9;
const UD: u8 = 6;

/// Runs HVM domain `slot` (picked by the scheduler, current) until it must give up the CPU.
pub fn run(mut guard: MutexGuard<'static, Option<Hv>>, slot: usize) -> MutexGuard<'static, Option<Hv>> {
    let Ok(host) = super::host() else { return guard };
    loop {
        let hv = guard.as_mut().expect("hypervisor initialised");
        if hvm_mut(hv, slot).is_none() {
            return guard;
        }
        switch_fpu_to(hv, slot);
        let Some(h) = hvm_mut(hv, slot) else { return guard };
        prepare_entry(h);
        hv.arm_timer();
        let h = hvm_mut(hv, slot).expect("checked above");
        let (code, info1, info2) = h.vcpu.run(host);
        h.exits.total += 1;
        after_exit(h);
        hv.charge(time::now_ns());
        let h = hvm_mut(hv, slot).expect("checked above");
        let exit = exit::decode(code, info1, info2);
        if matches!(exit, Exit::Intr) {
            h.exits.intr += 1;
            // The host interrupt that caused the exit is pending: take it with the lock
            // released (its handler may need the state lock).
            drop(guard);
            wait_for_interrupt_window();
            guard = HV.lock();
            let hv = guard.as_mut().expect("hypervisor initialised");
            hv.armed_deadline = None;
            console::drain_some(console::DRAIN_TICK);
        } else {
            handle(hv, slot, exit);
        }
        let hv = guard.as_mut().expect("hypervisor initialised");
        let now = time::now_ns();
        hv.expire_timers(now);
        hv.poll_control(now);
        if !hv.sched.is_runnable(slot)
            || hv.need_resched
            || hv.sched.slice_expired(now)
            || hv.sched.current() != Some(slot)
        {
            hv.need_resched = false;
            return guard;
        }
    }
}

fn hvm_mut(hv: &mut Hv, slot: usize) -> Option<&mut Hvm> {
    hv.domains[slot].as_mut().and_then(Domain::live_mut).and_then(|l| l.hvm.as_deref_mut())
}

/// Loads this vCPU's x87/SSE state if another guest's is in the registers.
fn switch_fpu_to(hv: &mut Hv, slot: usize) {
    // SAFETY: FPU_OWNER is only touched here, on the one CPU, with the state lock held.
    let owner = unsafe { FPU_OWNER };
    if owner == Some(slot) {
        return;
    }
    let mut save_to = None;
    if let Some(o) = owner
        && o != slot
    {
        save_to = hv.domains[o].as_mut().and_then(Domain::live_mut).and_then(|l| l.hvm.as_deref_mut()).map(|h| {
            let mut s = crate::arch::svm::FpuState::initial();
            core::mem::swap(&mut s, &mut h.vcpu.fpu);
            (o, s)
        });
    }
    let Some(h) = hvm_mut(hv, slot) else { return };
    match save_to {
        Some((o, mut s)) => {
            switch_fpu(Some(&mut s), &h.vcpu.fpu);
            if let Some(oh) = hvm_mut(hv, o) {
                oh.vcpu.fpu = s;
            }
        }
        None => switch_fpu(None, &h.vcpu.fpu),
    }
    // SAFETY: as above.
    unsafe { FPU_OWNER = Some(slot) };
}

/// Forgets FPU ownership of an ending domain (its registers' contents are garbage to the next).
pub fn forget_fpu(slot: usize) {
    // SAFETY: as in `switch_fpu_to`.
    unsafe {
        if FPU_OWNER == Some(slot) {
            FPU_OWNER = None;
        }
    }
}

/// Before VMRUN: re-inject an event whose delivery an exit interrupted, else request the
/// Xen callback vector (an event is pending) or the x2APIC's highest pending vector.
fn prepare_entry(h: &mut Hvm) {
    let interrupted = h.vcpu.exit_int_info();
    if interrupted & event::VALID != 0 {
        h.vcpu.inject(interrupted);
        return;
    }
    if h.vcpu.virq_pending().is_some() {
        return;
    }
    if let Some(v) = h.callback_vector
        && super::xen::upcall_pending(h)
    {
        h.vcpu.request_virq(v);
        h.virq = Some((v, false));
        return;
    }
    if let Some(v) = h.apic.pending() {
        h.vcpu.request_virq(v);
        h.virq = Some((v, true));
    }
}

/// After an exit: a requested virtual interrupt the CPU took is now in service.
fn after_exit(h: &mut Hvm) {
    if let Some((v, apic)) = h.virq
        && h.vcpu.virq_pending().is_none()
    {
        h.virq = None;
        if apic {
            h.apic.acknowledge(v);
        }
    }
}

fn handle(hv: &mut Hv, slot: usize, exit: Exit) {
    let Some(h) = hvm_mut(hv, slot) else { return };
    let len = exit::instruction_length(&exit);
    match exit {
        Exit::Cpuid => {
            h.exits.cpuid += 1;
            let leaf = h.vcpu.rax() as u32;
            let sub = h.vcpu.regs.rcx as u32;
            let cfg = cpuid::CpuidConfig { tsc_khz: time::tsc_khz(), apic_id: 0, vcpu_id: 0 };
            let host = |l: u32, s: u32| {
                let r = core::arch::x86_64::__cpuid_count(l, s);
                [r.eax, r.ebx, r.ecx, r.edx]
            };
            let [a, b, c, d] = cpuid::cpuid(leaf, sub, &host, &cfg);
            h.vcpu.set_rax(a as u64);
            h.vcpu.regs.rbx = b as u64;
            h.vcpu.regs.rcx = c as u64;
            h.vcpu.regs.rdx = d as u64;
            advance(h, len);
        }
        Exit::Msr { write } => {
            h.exits.msr += 1;
            msr_exit(hv, slot, write, len);
        }
        Exit::Io(io) => {
            h.exits.io += 1;
            io_exit(hv, slot, io);
        }
        Exit::Hlt => {
            h.exits.hlt += 1;
            advance(h, len);
            if h.vcpu.rflags() & RFLAGS_IF == 0 {
                // Halted with interrupts off: nothing can wake it. As on Xen, a domain whose
                // vCPUs are all down is powered off (Linux's halt and poweroff end this way).
                if let Some(d) = hv.domains[slot].as_ref() {
                    hvlog!("domain {} ({}) shut down: poweroff (vCPU halted with interrupts off)", d.id, d.name);
                }
                hv.end_domain(slot, end::SHUTDOWN, hv_abi::xen::shutdown_reason::POWEROFF);
                return;
            }
            let idle = !super::xen::upcall_pending(h) && h.apic.pending().is_none() && h.vcpu.virq_pending().is_none();
            if idle {
                hv.sched.block(slot, u64::MAX, time::now_ns());
            }
        }
        Exit::Vmmcall => {
            h.exits.hypercalls += 1;
            advance(h, len);
            super::xen::hypercall(hv, slot);
        }
        Exit::NestedPageFault { gpa, .. } => {
            h.exits.npf += 1;
            let rip = h.vcpu.rip();
            crash(hv, slot, format_args!("accessed guest-physical {gpa:#x}, outside its memory (rip={rip:#x})"));
        }
        Exit::Shutdown => {
            let rip = h.vcpu.rip();
            crash(hv, slot, format_args!("triple fault (shutdown) at rip={rip:#x}"));
        }
        Exit::Invalid => crash(hv, slot, format_args!("VMRUN refused the guest state (invalid VMCB)")),
        // Every SVM instruction, INVD, RDTSCP, MONITOR/MWAIT and XSETBV: not for guests.
        Exit::Vmrun => h.vcpu.inject_exception(UD, None),
        Exit::Other(0x76 | 0x82..=0x87 | 0x8a | 0x8b | 0x8d) => h.vcpu.inject_exception(UD, None),
        Exit::Exception { vector, error_code } => {
            // Only #MC is intercepted; hand it back to the guest.
            h.vcpu.inject_exception(vector, error_code);
        }
        Exit::Intr | Exit::Nmi | Exit::Smi | Exit::Init | Exit::Vintr => {}
        other => {
            crash(hv, slot, format_args!("unexpected exit {other:?}"));
        }
    }
}

/// Completes the intercepted instruction: past it, and out of any interrupt shadow it was in
/// (`sti; hlt` must take the interrupt that ends the `hlt` before the instruction after it).
fn advance(h: &mut Hvm, len: Option<u64>) {
    if let Some(n) = len {
        h.vcpu.set_rip(h.vcpu.rip().wrapping_add(n));
        h.vcpu.clear_interrupt_shadow();
    }
}

fn msr_exit(hv: &mut Hv, slot: usize, write: bool, len: Option<u64>) {
    let Some(h) = hvm_mut(hv, slot) else { return };
    let index = h.vcpu.regs.rcx as u32;
    // The CPU changes EFER.LMA itself when the guest toggles paging.
    h.msr.sync_efer(h.vcpu.vmcb_efer());
    if write {
        let value = (h.vcpu.regs.rdx << 32) | (h.vcpu.rax() & 0xffff_ffff);
        match msr::write(&mut h.msr, index, value) {
            msr::MsrResult::Done | msr::MsrResult::TscWrite(_) | msr::MsrResult::Value(_) | msr::MsrResult::Tsc => {}
            msr::MsrResult::EferChanged { vmcb, .. } => h.vcpu.set_vmcb_efer(vmcb),
            msr::MsrResult::PatChanged(v) => h.vcpu.set_g_pat(v),
            msr::MsrResult::X2Apic(r) => {
                if h.apic.write(r, value).is_err() {
                    return h.vcpu.inject_exception(GP, Some(0));
                }
            }
            msr::MsrResult::HypercallPage { gpa } => {
                if super::xen::install_hypercall_page(h, gpa).is_err() {
                    return h.vcpu.inject_exception(GP, Some(0));
                }
            }
            msr::MsrResult::Gp | msr::MsrResult::Vmcb => return h.vcpu.inject_exception(GP, Some(0)),
        }
    } else {
        let value = match msr::read(&h.msr, index) {
            msr::MsrResult::Value(v) => v,
            msr::MsrResult::X2Apic(r) => match h.apic.read(r) {
                Ok(v) => v,
                Err(_) => return h.vcpu.inject_exception(GP, Some(0)),
            },
            msr::MsrResult::Tsc => crate::arch::cpu::rdtsc(),
            _ => return h.vcpu.inject_exception(GP, Some(0)),
        };
        h.vcpu.set_rax(value & 0xffff_ffff);
        h.vcpu.regs.rdx = value >> 32;
    }
    advance(h, len);
}

fn io_exit(hv: &mut Hv, slot: usize, io: exit::IoExit) {
    let Some(h) = hvm_mut(hv, slot) else { return };
    // Every path below completes the instruction (see `advance`).
    h.vcpu.clear_interrupt_shadow();
    let size = io.size;
    if io.string {
        // String I/O is not emulated (no device needs it); it completes as a no-op.
        h.vcpu.set_rip(io.next_rip);
        return;
    }
    if io.input {
        let v = ioport::read(io.port, size) as u64;
        let mask = match size {
            1 => 0xff,
            2 => 0xffff,
            _ => 0xffff_ffff,
        };
        let rax = if size == 4 { v & mask } else { (h.vcpu.rax() & !mask) | (v & mask) };
        h.vcpu.set_rax(rax);
        h.vcpu.set_rip(io.next_rip);
    } else {
        let value = h.vcpu.rax() as u32;
        h.vcpu.set_rip(io.next_rip);
        if let ioport::IoWrite::DebugConsole(b) = ioport::write(io.port, size, value) {
            console::feed(hv, slot, &[b]);
        }
    }
}

/// Ends the domain with a report naming it; other domains carry on.
pub fn crash(hv: &mut Hv, slot: usize, what: core::fmt::Arguments<'_>) {
    if let Some(d) = hv.domains[slot].as_ref() {
        hvlog!("domain {} ({}) crashed: {what}", d.id, d.name);
    }
    hv.end_domain(slot, end::FAULT, 0);
}
