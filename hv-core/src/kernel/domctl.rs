//! `domctl`: domain management for Dom0 (create, destroy, pause, list, topology, physinfo,
//! poweroff; store_connect, assign_pci and console_read are handed to their concept's file). The
//! dispatcher has already refused unprivileged callers.
use super::domain::{Domain, Life, Spec};
use super::user_memory::{copy_in, copy_out, copy_out_value, live};
use super::{Hv, power_off, time};
use crate::hvlog;
use alloc::string::String;
use core::mem::size_of;
use hv_abi::{CreateDomain, DomId, DomainListEntry, DomctlOp, Error, PhysInfo, end, state};

/// `domctl(op, a, b, c)`; the caller is privileged (checked by the dispatcher).
pub(super) fn dispatch(hv: &mut Hv, caller: usize, args: [u64; 6]) -> Result<u64, Error> {
    let op = DomctlOp::from_u64(args[0]).ok_or(Error::NoSys)?;
    match op {
        DomctlOp::Create => {
            let spec: CreateDomain = copy_in(hv, caller, args[1])?;
            let name = hv_abi::name_from_array(&spec.name).ok_or(Error::Inval)?;
            let image = hv_abi::name_from_array(&spec.image).ok_or(Error::Inval)?;
            let args_len = (spec.args_len as usize).min(hv_abi::ARGS_LEN);
            let name = String::from(name);
            let image = String::from(image);
            let paused = spec.flags & hv_abi::CREATE_PAUSED != 0;
            let want = if spec.flags & hv_abi::CREATE_DOMID != 0 {
                Some(DomId::try_from(spec.domid).ok().filter(|&d| d < hv_abi::DOMID_SELF_ID).ok_or(Error::Inval)?)
            } else {
                None
            };
            if spec.flags & hv_abi::CREATE_PVH != 0 {
                let ramdisk = hv_abi::name_from_array(&spec.ramdisk).ok_or(Error::Inval)?;
                let ramdisk = String::from(ramdisk);
                let pvh = super::hvm::build::PvhSpec {
                    name: &name,
                    kernel: &image,
                    ramdisk: (!ramdisk.is_empty()).then_some(ramdisk.as_str()),
                    cmdline: &spec.args[..args_len],
                    memory_mib: spec.memory_mib,
                    paused,
                    domid: want,
                };
                return hv.create_pvh_domain(&pvh).map(u64::from);
            }
            let spec = Spec {
                name: &name,
                image: &image,
                memory_mib: spec.memory_mib,
                args: &spec.args[..args_len],
                privileged: false,
                paused,
                domid: want,
            };
            hv.create_domain(&spec).map(u64::from)
        }
        DomctlOp::Destroy => {
            let target = target_slot(hv, args[1])?;
            if target == caller {
                return Err(Error::Busy);
            }
            let d = hv.domains[target].as_ref().ok_or(Error::Srch)?;
            if d.live().is_some() {
                hvlog!("domain {} ({}) destroyed by dom0", d.id, d.name);
                hv.end_domain(target, end::DESTROYED, 0);
            }
            hv.reap(target);
            Ok(0)
        }
        DomctlOp::Pause | DomctlOp::Unpause => {
            let target = target_slot(hv, args[1])?;
            if target == caller {
                return Err(Error::Inval);
            }
            live(hv, target)?;
            hv.sched.set_paused(target, op == DomctlOp::Pause);
            Ok(0)
        }
        DomctlOp::List => {
            let max = (args[2] as usize).min(hv_abi::MAX_DOMAINS);
            let mut n = 0;
            for (slot, d) in hv.domains.iter().enumerate() {
                let Some(d) = d else { continue };
                if n == max {
                    break;
                }
                let (st, e, detail) = match d.life {
                    Life::Dead { end, detail } => (state::DEAD, end, detail),
                    Life::Alive(_) if hv.sched.current() == Some(slot) => (state::RUNNING, end::NONE, 0),
                    Life::Alive(_) if hv.sched.is_paused(slot) => (state::PAUSED, end::NONE, 0),
                    Life::Alive(_) if hv.sched.is_blocked(slot) => (state::BLOCKED, end::NONE, 0),
                    Life::Alive(_) => (state::RUNNABLE, end::NONE, 0),
                };
                let entry = DomainListEntry {
                    domid: d.id.into(),
                    state: st,
                    end: e,
                    end_detail: detail,
                    memory_bytes: if st == state::DEAD { 0 } else { d.memory_bytes },
                    cpu_time_ns: d.cpu_ns,
                    name: hv_abi::name_to_array(&d.name),
                };
                let at = args[1].checked_add((n * size_of::<DomainListEntry>()) as u64).ok_or(Error::Fault)?;
                copy_out_value(hv, caller, at, &entry)?;
                n += 1;
            }
            Ok(n as u64)
        }
        DomctlOp::Topology => {
            let topo = &hv.bundle.index.topology;
            if args[2] == 0 {
                return Ok(topo.len() as u64);
            }
            if (args[2] as usize) < topo.len() {
                return Err(Error::Range);
            }
            let topo = topo.clone();
            copy_out(hv, caller, args[1], &topo)?;
            Ok(topo.len() as u64)
        }
        DomctlOp::PhysInfo => {
            let live = hv.domains.iter().flatten().filter(|d| d.live().is_some()).count() as u32;
            let all = hv.domains.iter().flatten().count() as u32;
            let grant_maps = hv.domains.iter().flatten().filter_map(Domain::live).map(|l| l.maps.live() as u64).sum();
            let grant_entries = (0..hv.domains.len()).map(|s| hv.grant_entries_in_use(s)).sum();
            let (present, rx, tx, dropped) = hv.control.counters();
            let info = PhysInfo {
                total_frames: hv.frames.total_frames() as u64,
                free_frames: hv.frames.free_frames() as u64,
                live_domains: live,
                dead_domains: all - live,
                grant_maps,
                event_ports: hv.evtchn.ports_in_use() as u64,
                grant_entries,
                console_bytes: hv.domains.iter().flatten().map(|d| d.history.kept() as u64).sum(),
                control_present: present as u64,
                control_rx_bytes: rx,
                control_tx_bytes: tx,
                control_rx_dropped: dropped,
                uptime_ns: time::now_ns(),
            };
            copy_out_value(hv, caller, args[1], &info)?;
            Ok(0)
        }
        DomctlOp::ConsoleRead => super::console::read_history(hv, caller, args[1], args[2], args[3]),
        DomctlOp::StoreConnect => super::grant_table::store_connect(hv, caller, args[1], args[2]),
        DomctlOp::AssignPci => hv.assign_pci(args[1], args[2]),
        DomctlOp::Poweroff => {
            let code = (args[1] & 0xf) as u8;
            hvlog!("power off requested by dom0, code {code}");
            power_off(code)
        }
    }
}

fn target_slot(hv: &Hv, domid: u64) -> Result<usize, Error> {
    DomId::try_from(domid).ok().and_then(|id| hv.slot_of(id)).ok_or(Error::Srch)
}
