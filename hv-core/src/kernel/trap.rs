//! Rust side of every entry into the hypervisor: exceptions, interrupts and hypercalls.
use super::domain::leave;
use super::{HV, Hv, hypercall};
use crate::arch::trap::{DEVICE_VECTOR_BASE, DEVICE_VECTORS, SPURIOUS_VECTOR, SYSCALL_VECTOR, TIMER_VECTOR};
use crate::arch::{TrapFrame, apic};
use crate::hvlog;
use hv_abi::end;

/// Flags a domain may control; IF is always set on return to ring 3.
const USER_RFLAGS: u64 = 0xcd5 | 0x100 | 0x4_0000;

pub extern "C" fn trap_handler(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    if !frame.from_user() {
        // Interrupted the hypervisor itself: only the idle loop runs with interrupts on.
        match vector {
            TIMER_VECTOR => apic::eoi(),
            SPURIOUS_VECTOR => {}
            v if (DEVICE_VECTOR_BASE..DEVICE_VECTOR_BASE + DEVICE_VECTORS).contains(&v) => {
                apic::eoi();
                if let Some(hv) = HV.lock().as_mut() {
                    hv.device_interrupt(v);
                }
            }
            _ => panic!(
                "{} in the hypervisor at rip={:#x} error={:#x} cr2={:#x}",
                exception_name(vector),
                frame.rip,
                frame.error,
                cr2()
            ),
        }
        return;
    }
    let mut guard = HV.lock();
    let hv = guard.as_mut().expect("hypervisor initialised");
    match vector {
        TIMER_VECTOR => {
            apic::eoi();
            hv.armed_deadline = None;
            super::log::drain();
        }
        SPURIOUS_VECTOR => {}
        v if v < 32 => domain_fault(hv, frame),
        v if (DEVICE_VECTOR_BASE..DEVICE_VECTOR_BASE + DEVICE_VECTORS).contains(&v) => {
            apic::eoi();
            hv.device_interrupt(v);
        }
        _ => {}
    }
    leave(guard, frame);
    sanitise(frame);
}

pub extern "C" fn syscall_handler(frame: &mut TrapFrame) {
    let mut guard = HV.lock();
    let hv = guard.as_mut().expect("hypervisor initialised");
    hypercall::dispatch(hv, frame);
    // Fast path: a hypercall that changed nothing about scheduling returns straight to its
    // caller. Slice ends and sleeper deadlines are the timer interrupt's business.
    let cur = hv.sched.current();
    if hv.need_resched || !cur.is_some_and(|c| hv.sched.is_runnable(c)) {
        leave(guard, frame);
    } else if super::log::pending() {
        // Queued console output needs a flush deadline even if nothing else would wake us.
        hv.arm_timer();
    }
    sanitise(frame);
}

fn sanitise(frame: &mut TrapFrame) {
    frame.rflags = (frame.rflags & USER_RFLAGS) | 0x202;
    // sysret to a non-canonical rip would fault in ring 0: such frames go out through iretq.
    if frame.vector == SYSCALL_VECTOR && frame.rip >= 0x0000_8000_0000_0000 {
        frame.vector = 0;
    }
}

fn cr2() -> u64 {
    x86_64::registers::control::Cr2::read_raw()
}

/// A domain faulted: report it and destroy it. Other domains are unaffected.
fn domain_fault(hv: &mut Hv, frame: &TrapFrame) {
    let Some(slot) = hv.sched.current() else { return };
    let (id, name) = match hv.domains[slot].as_ref() {
        Some(d) => (d.id, d.name.clone()),
        None => return,
    };
    let vector = frame.vector as u8;
    if vector == 14 {
        let e = frame.error;
        hvlog!(
            "domain {id} ({name}) crashed: page fault at rip={:#x} accessing {:#x} ({} {}{})",
            frame.rip,
            cr2(),
            if e & 2 != 0 {
                "write,"
            } else if e & 16 != 0 {
                "execute,"
            } else {
                "read,"
            },
            if e & 1 != 0 { "protection violation" } else { "not present" },
            if cr2() < hv_abi::DOMAIN_BASE || cr2() >= hv_abi::DOMAIN_LIMIT { ", outside the domain" } else { "" }
        );
    } else {
        hvlog!(
            "domain {id} ({name}) crashed: {} at rip={:#x} error={:#x} rsp={:#x}",
            exception_name(vector),
            frame.rip,
            frame.error,
            frame.rsp
        );
    }
    hv.end_domain(slot, end::FAULT, vector as u32);
}

pub fn exception_name(v: u8) -> &'static str {
    match v {
        0 => "divide error",
        1 => "debug trap",
        2 => "NMI",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
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
