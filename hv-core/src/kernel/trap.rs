//! Rust side of every entry into the hypervisor: exceptions, interrupts and hypercalls. The x86
//! details (which registers carry what, what a frame may hold on return to ring 3, CR2) are the
//! arch module's; this file decides what happens.
use super::sched::leave;
use super::{HV, Hv, console, hypercall};
use crate::arch::trap::{
    DEVICE_VECTOR_BASE, DEVICE_VECTORS, EXCEPTION_VECTORS, PAGE_FAULT_VECTOR, SPURIOUS_VECTOR, TIMER_VECTOR,
    exception_name, fault_address,
};
use crate::arch::{TrapFrame, apic};
use crate::hvlog;
use hv_abi::end;

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
                fault_address()
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
            console::drain();
        }
        SPURIOUS_VECTOR => {}
        v if v < EXCEPTION_VECTORS => domain_fault(hv, frame),
        v if (DEVICE_VECTOR_BASE..DEVICE_VECTOR_BASE + DEVICE_VECTORS).contains(&v) => {
            apic::eoi();
            hv.device_interrupt(v);
        }
        _ => {}
    }
    leave(guard, frame);
    frame.sanitise_for_user();
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
    } else if console::pending() {
        // Queued console output needs a flush deadline even if nothing else would wake us.
        hv.arm_timer();
    }
    frame.sanitise_for_user();
}

/// A domain faulted: report it and destroy it. Other domains are unaffected.
fn domain_fault(hv: &mut Hv, frame: &TrapFrame) {
    let Some(slot) = hv.sched.current() else { return };
    let (id, name) = match hv.domains[slot].as_ref() {
        Some(d) => (d.id, d.name.clone()),
        None => return,
    };
    let vector = frame.vector as u8;
    if vector == PAGE_FAULT_VECTOR {
        let pf = frame.page_fault();
        hvlog!(
            "domain {id} ({name}) crashed: page fault at rip={:#x} accessing {:#x} ({} {}{})",
            frame.rip,
            pf.addr,
            if pf.write {
                "write,"
            } else if pf.execute {
                "execute,"
            } else {
                "read,"
            },
            if pf.protection { "protection violation" } else { "not present" },
            if pf.addr < hv_abi::DOMAIN_BASE || pf.addr >= hv_abi::DOMAIN_LIMIT { ", outside the domain" } else { "" }
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
