//! Hypercall dispatch. Every argument from a domain is untrusted: pointers are checked against
//! the caller's own memory map with the access the domain itself would need, and the data is
//! copied in (or out) exactly once through the hypervisor's direct map.
use super::user_memory::copy_out_value;
use super::{Hv, time};
use crate::arch::TrapFrame;
use crate::hvlog;
use hv_abi::{DomainInfo, Error, Hypercall, ShutdownReason, end};

pub fn dispatch(hv: &mut Hv, frame: &mut TrapFrame) {
    let Some(slot) = hv.sched.current() else { return };
    let (nr, args) = frame.hypercall();
    let result = match Hypercall::from_u64(nr) {
        Some(Hypercall::ConsoleWrite) => super::console::write(hv, slot, args[0], args[1]),
        Some(Hypercall::Yield) => {
            hv.need_resched = true;
            Ok(0)
        }
        Some(Hypercall::Block) => {
            if !hv.events_pending(slot) {
                hv.sched.block(slot, args[0], time::now_ns());
            }
            Ok(0)
        }
        Some(Hypercall::Time) => Ok(time::now_ns()),
        Some(Hypercall::Shutdown) => match ShutdownReason::from_u64(args[0]) {
            Some(reason) => {
                if let Some(d) = hv.domains[slot].as_ref() {
                    hvlog!("domain {} ({}) shut down: {}", d.id, d.name, reason.name());
                }
                hv.end_domain(slot, end::SHUTDOWN, reason as u32);
                Ok(0)
            }
            None => Err(Error::Inval),
        },
        Some(Hypercall::DomainInfo) => domain_info(hv, slot, args[0]),
        Some(Hypercall::Domctl) => {
            if hv.domains[slot].as_ref().is_some_and(|d| d.privileged) {
                super::domctl::dispatch(hv, slot, args)
            } else {
                Err(Error::Perm)
            }
        }
        Some(Hypercall::EvtchnOp) => super::event_channel::dispatch(hv, slot, args),
        Some(Hypercall::GrantTableOp) => super::grant_table::dispatch(hv, slot, args),
        Some(Hypercall::PciOp) => super::pci::dispatch(hv, slot, args),
        Some(Hypercall::ControlIo) => super::control::dispatch(hv, slot, args),
        None => Err(Error::NoSys),
    };
    frame.set_hypercall_result(match result {
        Ok(v) => v,
        Err(e) => e.to_raw(),
    });
}

fn domain_info(hv: &mut Hv, slot: usize, ptr: u64) -> Result<u64, Error> {
    let d = hv.domains[slot].as_ref().ok_or(Error::Srch)?;
    let info = DomainInfo {
        domid: d.id as u64,
        flags: if d.privileged { hv_abi::flags::PRIVILEGED } else { 0 },
        memory_bytes: d.memory_bytes,
        cpu_time_ns: d.cpu_ns,
        name: hv_abi::name_to_array(&d.name),
    };
    copy_out_value(hv, slot, ptr, &info)?;
    Ok(0)
}
