//! Rust side of every entry into the hypervisor: exceptions, interrupts and hypercalls. The x86
//! details (which registers carry what, what a frame may hold on return to ring 3, CR2) are the
//! arch module's; this file decides what happens.
use super::sched::leave;
use super::{HV, Hv, console, hypercall};
use crate::arch::trap::{
    DEVICE_VECTOR_BASE, DEVICE_VECTORS, EXCEPTION_VECTORS, IOMMU_FAULT_VECTOR, PAGE_FAULT_VECTOR, SPURIOUS_VECTOR,
    TIMER_VECTOR, VECTOR_NO_ERROR_CODE, alignment_check_flag, exception_name, fault_address,
};
use crate::arch::{TrapFrame, apic};
use crate::hvlog;
use crate::trap::{Entry, NMI_VECTOR, TrapAction, classify};
use core::sync::atomic::{AtomicU64, Ordering};
use hv_abi::end;

/// NMIs taken (they may arrive with any lock held, so the handler only counts them; the timer
/// path reports them).
static NMIS: AtomicU64 = AtomicU64::new(0);
static NMIS_REPORTED: AtomicU64 = AtomicU64::new(0);
/// Stray vectors ignored, and how many of them were logged (the first few only).
static STRAYS: AtomicU64 = AtomicU64::new(0);
const STRAYS_LOGGED: u64 = 16;
/// Entries from ring 3 that found RFLAGS.AC still set in the handler (must stay 0).
static AC_SEEN: AtomicU64 = AtomicU64::new(0);

pub extern "C" fn trap_handler(frame: &mut TrapFrame) {
    let vector = frame.vector as u8;
    if vector == NMI_VECTOR && frame.vector & VECTOR_NO_ERROR_CODE == 0 {
        // Non-maskable: it may have interrupted code holding the state or console lock.
        NMIS.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let from_user = frame.from_user();
    if from_user && alignment_check_flag() && AC_SEEN.fetch_add(1, Ordering::Relaxed) == 0 {
        hvlog!("RFLAGS.AC was set in a trap handler entered from ring 3 (SMAP off)");
    }
    let action = classify(Entry {
        vector,
        from_user,
        in_service: vector < EXCEPTION_VECTORS && apic::in_service(vector),
        missing_error_code: frame.vector & VECTOR_NO_ERROR_CODE != 0,
        kernel_vector: vector == TIMER_VECTOR
            || vector == IOMMU_FAULT_VECTOR
            || (DEVICE_VECTOR_BASE..DEVICE_VECTOR_BASE + DEVICE_VECTORS).contains(&vector),
    });
    if action == TrapAction::Stray {
        // A delivered (or forged) interrupt is in service until its EOI: without one, every
        // vector of its priority class and below stays blocked.
        let delivered = apic::in_service(vector);
        if delivered {
            apic::eoi();
        }
        // A true spurious interrupt (never in service) is the APIC's normal business.
        let n = if vector == SPURIOUS_VECTOR && !delivered {
            STRAYS_LOGGED
        } else {
            STRAYS.fetch_add(1, Ordering::Relaxed)
        };
        if n < STRAYS_LOGGED {
            hvlog!(
                "stray vector {vector:#x} ignored (raised by a device, the legacy PIC or the platform: no domain's fault){}",
                if n + 1 == STRAYS_LOGGED { "; further ones are counted silently" } else { "" }
            );
        }
        if !from_user {
            return;
        }
    }
    if !from_user {
        // Interrupted the hypervisor itself: only the idle loop runs with interrupts on.
        match vector {
            TIMER_VECTOR => apic::eoi(),
            IOMMU_FAULT_VECTOR => {
                apic::eoi();
                if let Some(hv) = HV.lock().as_mut() {
                    hv.iommu_fault_event();
                }
            }
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
    match action {
        TrapAction::DomainFault => domain_fault(hv, frame),
        TrapAction::Fatal => {
            panic!("{} while domain code ran at rip={:#x} error={:#x}", exception_name(vector), frame.rip, frame.error)
        }
        TrapAction::Stray => {}
        TrapAction::Interrupt => match vector {
            TIMER_VECTOR => {
                apic::eoi();
                hv.armed_deadline = None;
                report_nmis();
                console::drain_some(console::DRAIN_TICK);
            }
            v if (DEVICE_VECTOR_BASE..DEVICE_VECTOR_BASE + DEVICE_VECTORS).contains(&v) => {
                apic::eoi();
                hv.device_interrupt(v);
            }
            IOMMU_FAULT_VECTOR => {
                apic::eoi();
                hv.iommu_fault_event();
            }
            _ => {}
        },
    }
    leave(guard, frame);
    frame.sanitise_for_user();
}

/// Logs NMIs taken since the last report (called from the timer path, where logging is safe).
fn report_nmis() {
    let n = NMIS.load(Ordering::Relaxed);
    let before = NMIS_REPORTED.swap(n, Ordering::Relaxed);
    if n != before {
        hvlog!("{} NMI(s) ignored ({n} since boot)", n - before);
    }
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
