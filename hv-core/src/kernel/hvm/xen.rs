//! Xen's HVM hypercalls for HVM domains (Xen's numbers and layouts: `hv_abi::xen`). Arguments
//! are guest-virtual addresses: each structure is copied in once through the guest page walk
//! (a bad address is `-EFAULT`), checked, acted on, and the result copied out. Anything not
//! implemented returns `-ENOSYS`. The operations use the same event channels, grant table,
//! store and console as the paravirtual domains.
use super::super::domain::Domain;
use super::super::{Hv, console, time};
use super::memory::{read, read_value, write_value};
use super::{GRANT_FRAMES, Hvm};
use crate::arch::paging;
use crate::event_channel::{EvtchnError, PortState};
use crate::frames::FRAME_SIZE;
use crate::hvlog;
use core::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use hv_abi::xen::{self, errno, nr};
use hv_abi::{DomId, end};

type XResult = Result<u64, i32>;

/// The Xen version reported (4.17, the version whose interfaces this follows).
pub const XEN_MAJOR: u32 = 4;
pub const XEN_MINOR: u32 = 17;
const EXTRAVERSION: &[u8; 16] = b".0-hv-rust\0\0\0\0\0\0";

/// Xen virq numbers are translated to the event-channel table's: the timer is the same virq
/// the paravirtual domains use; every other Xen virq an HVM guest binds gets a number of its own
/// (`XEN_VIRQ_BASE + virq`) that nothing raises.
pub const XEN_VIRQ_BASE: u32 = 8;

fn hvm(hv: &mut Hv, slot: usize) -> Option<&mut Hvm> {
    hv.domains[slot].as_mut().and_then(Domain::live_mut).and_then(|l| l.hvm.as_deref_mut())
}

fn fault<T>(_: super::memory::BadAddress) -> Result<T, i32> {
    Err(errno::EFAULT)
}

/// Handles the `vmmcall` of the current HVM domain `slot`: number in rax, arguments in rdi,
/// rsi, rdx, r10, r8; the result goes to rax.
pub fn hypercall(hv: &mut Hv, slot: usize) {
    let Some(h) = hvm(hv, slot) else { return };
    let nr = h.vcpu.rax();
    if let Some(n) = usize::try_from(nr).ok().and_then(|n| h.exits.by_hypercall.get_mut(n)) {
        *n = n.saturating_add(1);
    }
    let r = &h.vcpu.regs;
    let args = [r.rdi, r.rsi, r.rdx, r.r10, r.r8];
    let result = if h.vcpu.cpl() != 0 {
        Err(errno::EPERM)
    } else {
        match nr {
            nr::XEN_VERSION => xen_version(hv, slot, args),
            nr::CONSOLE_IO => console_io(hv, slot, args),
            nr::MEMORY_OP => memory_op(hv, slot, args),
            nr::HVM_OP => hvm_op(hv, slot, args),
            nr::VCPU_OP => vcpu_op(hv, slot, args),
            nr::EVENT_CHANNEL_OP => evtchn_op(hv, slot, args),
            nr::GRANT_TABLE_OP => gnttab_op(hv, slot, args),
            nr::SCHED_OP => sched_op(hv, slot, args),
            nr::SET_TIMER_OP => set_timer(hv, slot, args[0]),
            _ => Err(errno::ENOSYS),
        }
    };
    if let Some(h) = hvm(hv, slot) {
        h.vcpu.set_rax(match result {
            Ok(v) => v,
            Err(e) => errno::ret(e),
        });
    }
}

fn set_timer(hv: &mut Hv, slot: usize, deadline: u64) -> XResult {
    let h = hvm(hv, slot).ok_or(errno::ESRCH)?;
    h.timer = (deadline != 0).then_some(deadline);
    Ok(0)
}

fn xen_version(hv: &mut Hv, slot: usize, a: [u64; 5]) -> XResult {
    let h = hvm(hv, slot).ok_or(errno::ESRCH)?;
    match a[0] {
        xen::xenver::VERSION => Ok(((XEN_MAJOR << 16) | XEN_MINOR) as u64),
        xen::xenver::EXTRAVERSION => {
            super::memory::write(h, a[1], EXTRAVERSION).or_else(fault)?;
            Ok(0)
        }
        xen::xenver::GET_FEATURES => {
            let mut fi: xen::XenFeatureInfo = read_value(h, a[1]).or_else(fault)?;
            fi.submap = if fi.submap_idx == 0 { features() } else { 0 };
            write_value(h, a[1], &fi).or_else(fault)?;
            Ok(0)
        }
        xen::xenver::PAGESIZE => Ok(FRAME_SIZE),
        _ => Err(errno::ENOSYS),
    }
}

/// XENFEAT bits of submap 0.
pub fn features() -> u32 {
    use xen::xenfeat::*;
    (1 << WRITABLE_PAGE_TABLES)
        | (1 << AUTO_TRANSLATED_PHYSMAP)
        | (1 << HVM_CALLBACK_VECTOR)
        | (1 << HVM_SAFE_PVCLOCK)
        | (1 << SUPERVISOR_MODE_KERNEL)
}

/// Longest `console_io` write taken at once.
const CONSOLE_CHUNK: usize = 4096;

fn console_io(hv: &mut Hv, slot: usize, a: [u64; 5]) -> XResult {
    match a[0] {
        xen::consoleio::WRITE => {
            let h = hvm(hv, slot).ok_or(errno::ESRCH)?;
            let len = (a[1] as usize).min(CONSOLE_CHUNK);
            let mut buf = [0u8; CONSOLE_CHUNK];
            read(h, a[2], &mut buf[..len]).or_else(fault)?;
            console::feed(hv, slot, &buf[..len]);
            Ok(len as u64)
        }
        xen::consoleio::READ => Ok(0),
        _ => Err(errno::ENOSYS),
    }
}

fn memory_op(hv: &mut Hv, slot: usize, a: [u64; 5]) -> XResult {
    match a[0] {
        xen::xenmem::ADD_TO_PHYSMAP => {
            let h = hvm(hv, slot).ok_or(errno::ESRCH)?;
            let x: xen::XenAddToPhysmap = read_value(h, a[1]).or_else(fault)?;
            if x.domid != xen::domid::SELF {
                return Err(errno::EPERM);
            }
            add_to_physmap(hv, slot, x.space, x.idx, x.gpfn)?;
            Ok(0)
        }
        _ => Err(errno::ENOSYS),
    }
}

/// Maps shared_info or a grant-table frame at guest frame `gfn` (where the guest chose). A RAM
/// page there is hidden until the mapping moves (it stays the domain's).
fn add_to_physmap(hv: &mut Hv, slot: usize, space: u32, idx: u64, gfn: u64) -> Result<(), i32> {
    let Hv { domains, frames, .. } = hv;
    let live = domains[slot].as_mut().and_then(Domain::live_mut).ok_or(errno::ESRCH)?;
    let ram = live.ram;
    let h = live.hvm.as_deref_mut().ok_or(errno::ESRCH)?;
    if gfn >= crate::arch::npt::MAX_GPA / FRAME_SIZE {
        return Err(errno::EINVAL);
    }
    let (hpa, old) = match space {
        xen::xenmapspace::SHARED_INFO if idx == 0 => (h.shared_info, h.shared_info_gfn),
        xen::xenmapspace::GRANT_TABLE if idx < GRANT_FRAMES as u64 => {
            (h.grant_frames + idx * FRAME_SIZE, h.grant_gfns[idx as usize])
        }
        xen::xenmapspace::SHARED_INFO | xen::xenmapspace::GRANT_TABLE => return Err(errno::EINVAL),
        _ => return Err(errno::ENOSYS),
    };
    if h.npt.table_frames() > h.base_table_frames + super::EXTRA_TABLE_FRAMES {
        return Err(errno::ENOMEM);
    }
    // A frame already showing a hypervisor page is not reused for another.
    let taken = Some(gfn) == h.shared_info_gfn || h.grant_gfns.contains(&Some(gfn));
    if taken && old != Some(gfn) {
        return Err(errno::EBUSY);
    }
    h.npt.map_range(gfn * FRAME_SIZE, hpa, 1, frames).ok_or(errno::ENOMEM)?;
    if let Some(o) = old
        && o != gfn
    {
        restore_frame(h, ram, o, frames);
    }
    match space {
        xen::xenmapspace::SHARED_INFO => h.shared_info_gfn = Some(gfn),
        _ => h.grant_gfns[idx as usize] = Some(gfn),
    }
    h.vcpu.set_tlb_flush(true);
    Ok(())
}

/// Puts guest frame `gfn` back to what it was before a hypervisor page covered it: RAM below
/// the end of RAM, nothing above.
fn restore_frame(h: &mut Hvm, ram: u64, gfn: u64, frames: &mut crate::frames::FrameAllocator) {
    if gfn < h.ram_pages {
        let _ = h.npt.map_range(gfn * FRAME_SIZE, ram + gfn * FRAME_SIZE, 1, frames);
    } else {
        h.npt.unmap(gfn * FRAME_SIZE);
    }
}

fn hvm_op(hv: &mut Hv, slot: usize, a: [u64; 5]) -> XResult {
    let h = hvm(hv, slot).ok_or(errno::ESRCH)?;
    match a[0] {
        xen::hvmop::SET_PARAM | xen::hvmop::GET_PARAM => {
            let mut p: xen::XenHvmParam = read_value(h, a[1]).or_else(fault)?;
            if p.domid != xen::domid::SELF {
                return Err(errno::EPERM);
            }
            use xen::hvm_param::*;
            if a[0] == xen::hvmop::SET_PARAM {
                if p.index != CALLBACK_IRQ {
                    return Err(errno::EPERM);
                }
                let kind = p.value >> CALLBACK_TYPE_SHIFT;
                let vector = p.value & 0xff;
                match (p.value, kind) {
                    (0, _) => h.callback_vector = None,
                    (_, CALLBACK_TYPE_VECTOR) if vector >= 0x20 => h.callback_vector = Some(vector as u8),
                    (_, CALLBACK_TYPE_VECTOR) => return Err(errno::EINVAL),
                    _ => return Err(errno::ENOSYS),
                }
                return Ok(0);
            }
            p.value = match p.index {
                CALLBACK_IRQ => {
                    h.callback_vector.map_or(0, |v| (CALLBACK_TYPE_VECTOR << CALLBACK_TYPE_SHIFT) | v as u64)
                }
                STORE_PFN => h.store_gfn,
                STORE_EVTCHN => h.store_port as u64,
                CONSOLE_PFN => h.console_gfn,
                CONSOLE_EVTCHN => h.console_port as u64,
                _ => return Err(errno::EINVAL),
            };
            write_value(h, a[1], &p).or_else(fault)?;
            Ok(0)
        }
        _ => Err(errno::ENOSYS),
    }
}

fn vcpu_op(hv: &mut Hv, slot: usize, a: [u64; 5]) -> XResult {
    let ram = hv.domains[slot].as_ref().and_then(Domain::live).map(|l| l.ram).ok_or(errno::ESRCH)?;
    let h = hvm(hv, slot).ok_or(errno::ESRCH)?;
    if a[1] != 0 {
        return Err(errno::ENOENT);
    }
    use xen::vcpuop::*;
    match a[0] {
        IS_UP => Ok(1),
        REGISTER_VCPU_INFO => {
            let r: xen::VcpuRegisterVcpuInfo = read_value(h, a[2]).or_else(fault)?;
            let size = xen::VCPU_INFO_SIZE as u64;
            if h.vcpu_info_registered {
                return Err(errno::EINVAL);
            }
            if r.offset as u64 + size > FRAME_SIZE || !r.offset.is_multiple_of(8) {
                return Err(errno::EINVAL);
            }
            let page = h.ram_frame(ram, r.mfn).ok_or(errno::EINVAL)?;
            let new = page + r.offset as u64;
            let mut old = [0u8; xen::VCPU_INFO_SIZE];
            paging::copy_from_phys(h.vcpu_info, &mut old);
            paging::copy_to_phys(new, &old);
            h.vcpu_info = new;
            h.vcpu_info_registered = true;
            // Whatever was pending is looked at again from the new place.
            pending_sel(h).store(u64::MAX, Ordering::SeqCst);
            upcall(h).store(1, Ordering::SeqCst);
            Ok(0)
        }
        REGISTER_RUNSTATE_MEMORY_AREA => {
            // Accepted; the area is never updated (no steal time is reported).
            let _: xen::VcpuRegisterRunstateMemoryArea = read_value(h, a[2]).or_else(fault)?;
            Ok(0)
        }
        STOP_PERIODIC_TIMER => Ok(0),
        SET_SINGLESHOT_TIMER => {
            let t: xen::VcpuSetSingleshotTimer = read_value(h, a[2]).or_else(fault)?;
            if t.flags & SSHOTTMR_FUTURE != 0 && t.timeout_abs_ns < time::now_ns() {
                return Err(errno::ETIME);
            }
            h.timer = Some(t.timeout_abs_ns);
            Ok(0)
        }
        STOP_SINGLESHOT_TIMER => {
            h.timer = None;
            Ok(0)
        }
        _ => Err(errno::ENOSYS),
    }
}

fn evtchn_errno(e: EvtchnError) -> i32 {
    match e {
        EvtchnError::BadPort | EvtchnError::WrongState | EvtchnError::BadVirq => errno::EINVAL,
        EvtchnError::NoDomain => errno::ESRCH,
        EvtchnError::NoFreePort => errno::ENOSPC,
        EvtchnError::VirqBound => errno::EEXIST,
    }
}

fn domid_arg(d: DomId, me: DomId) -> Result<DomId, i32> {
    match d {
        xen::domid::SELF => Ok(me),
        d if d < xen::domid::FIRST_RESERVED => Ok(d),
        _ => Err(errno::ESRCH),
    }
}

fn evtchn_op(hv: &mut Hv, slot: usize, a: [u64; 5]) -> XResult {
    use xen::evtchnop::*;
    let me = hv.domains[slot].as_ref().ok_or(errno::ESRCH)?.id;
    let arg = a[1];
    macro_rules! arg {
        ($t:ty) => {{
            let h = hvm(hv, slot).ok_or(errno::ESRCH)?;
            let v: $t = read_value(h, arg).or_else(fault)?;
            v
        }};
    }
    macro_rules! out {
        ($v:expr) => {{
            let h = hvm(hv, slot).ok_or(errno::ESRCH)?;
            write_value(h, arg, &$v).or_else(fault)?;
        }};
    }
    match a[0] {
        ALLOC_UNBOUND => {
            let mut x = arg!(xen::EvtchnAllocUnbound);
            if domid_arg(x.dom, me)? != me {
                return Err(errno::EPERM);
            }
            let remote = domid_arg(x.remote_dom, me)?;
            x.port = hv.evtchn.alloc_unbound(me, remote).map_err(evtchn_errno)?;
            out!(x);
            Ok(0)
        }
        BIND_INTERDOMAIN => {
            let mut x = arg!(xen::EvtchnBindInterdomain);
            let remote = domid_arg(x.remote_dom, me)?;
            let (port, pend) = hv.evtchn.bind_interdomain(me, remote, x.remote_port).map_err(evtchn_errno)?;
            x.local_port = port;
            if let Err(e) = (|| -> Result<(), i32> {
                out!(x);
                Ok(())
            })() {
                let _ = hv.evtchn.close(me, port);
                return Err(e);
            }
            hv.set_pending(pend.dom, pend.port);
            Ok(0)
        }
        BIND_VIRQ => {
            let mut x = arg!(xen::EvtchnBindVirq);
            if x.vcpu != 0 {
                return Err(errno::ENOENT);
            }
            let virq = match x.virq {
                xen::virq::TIMER => hv_abi::virq::TIMER as u32,
                xen::virq::DOM_EXC => return Err(errno::EPERM),
                v if v < 24 => XEN_VIRQ_BASE + v,
                _ => return Err(errno::EINVAL),
            };
            x.port = hv.evtchn.bind_virq(me, virq).map_err(evtchn_errno)?;
            out!(x);
            Ok(0)
        }
        BIND_IPI => {
            let mut x = arg!(xen::EvtchnBindIpi);
            if x.vcpu != 0 {
                return Err(errno::ENOENT);
            }
            x.port = hv.evtchn.bind_ipi(me).map_err(evtchn_errno)?;
            out!(x);
            Ok(0)
        }
        SEND => {
            let x = arg!(xen::EvtchnSend);
            let console = hvm(hv, slot).is_some_and(|h| h.console_port == x.port && x.port != 0);
            if console {
                drain_console(hv, slot);
                hv.set_pending(me, x.port);
                return Ok(0);
            }
            if let Some(p) = hv.evtchn.send(me, x.port).map_err(evtchn_errno)? {
                hv.set_pending(p.dom, p.port);
            }
            Ok(0)
        }
        CLOSE => {
            let x = arg!(xen::EvtchnClose);
            hv.evtchn.close(me, x.port).map_err(evtchn_errno)?;
            if let Some(w) = hv.domains[slot].as_ref().and_then(Domain::live).map(|l| l.event_words()) {
                w.pending[(x.port / 64) as usize].fetch_and(!(1u64 << (x.port % 64)), Ordering::SeqCst);
            }
            Ok(0)
        }
        UNMASK => {
            let x = arg!(xen::EvtchnUnmask);
            hv.evtchn.check_port(me, x.port).map_err(evtchn_errno)?;
            hv.unmask(slot, x.port);
            Ok(0)
        }
        STATUS => {
            let mut x = arg!(xen::EvtchnStatus);
            if domid_arg(x.dom, me)? != me {
                return Err(errno::EPERM);
            }
            let (status, u) = match hv.evtchn.status(me, x.port).map_err(evtchn_errno)? {
                PortState::Free => (xen::evtchnstat::CLOSED, [0, 0]),
                PortState::Unbound { remote } => (xen::evtchnstat::UNBOUND, [remote as u32, 0]),
                PortState::Interdomain { remote_dom, remote_port } => {
                    (xen::evtchnstat::INTERDOMAIN, [remote_dom as u32, remote_port])
                }
                PortState::Virq(v) => (xen::evtchnstat::VIRQ, [xen_virq(v), 0]),
                PortState::Pirq(p) => (xen::evtchnstat::PIRQ, [p, 0]),
                PortState::Ipi => (xen::evtchnstat::IPI, [0, 0]),
            };
            x.status = status;
            x.vcpu = 0;
            x.u = u;
            out!(x);
            Ok(0)
        }
        BIND_VCPU => {
            let x = arg!(xen::EvtchnBindVcpu);
            hv.evtchn.check_port(me, x.port).map_err(evtchn_errno)?;
            if x.vcpu == 0 { Ok(0) } else { Err(errno::ENOENT) }
        }
        _ => Err(errno::ENOSYS),
    }
}

/// The Xen number of a virq in the table (see [`XEN_VIRQ_BASE`]).
fn xen_virq(v: u32) -> u32 {
    if v == hv_abi::virq::TIMER as u32 { xen::virq::TIMER } else { v.saturating_sub(XEN_VIRQ_BASE) }
}

fn gnttab_op(hv: &mut Hv, slot: usize, a: [u64; 5]) -> XResult {
    let h = hvm(hv, slot).ok_or(errno::ESRCH)?;
    use xen::gnttabop::*;
    match a[0] {
        QUERY_SIZE => {
            if a[2] != 1 {
                return Err(errno::EINVAL);
            }
            let mut q: xen::GnttabQuerySize = read_value(h, a[1]).or_else(fault)?;
            if q.dom != xen::domid::SELF {
                q.status = xen::gntst::PERMISSION_DENIED;
            } else {
                q.nr_frames = GRANT_FRAMES;
                q.max_nr_frames = GRANT_FRAMES;
                q.status = xen::gntst::OKAY;
            }
            write_value(h, a[1], &q).or_else(fault)?;
            Ok(0)
        }
        SET_VERSION => {
            let mut v: xen::GnttabSetVersion = read_value(h, a[1]).or_else(fault)?;
            let asked = v.version;
            v.version = 1;
            write_value(h, a[1], &v).or_else(fault)?;
            if asked == 1 { Ok(0) } else { Err(errno::ENOSYS) }
        }
        GET_VERSION => {
            let mut v: xen::GnttabGetVersion = read_value(h, a[1]).or_else(fault)?;
            v.version = 1;
            write_value(h, a[1], &v).or_else(fault)?;
            Ok(0)
        }
        COPY => gnttab_copy(hv, slot, a[1], a[2]),
        MAP_GRANT_REF => gnttab_map(hv, slot, a[1], a[2]),
        UNMAP_GRANT_REF => gnttab_unmap(hv, slot, a[1], a[2]),
        _ => Err(errno::ENOSYS),
    }
}

/// Grant map and unmap elements an HVM guest may pass in one call (the same bound as copies).
const MAX_GRANT_MAP_BATCH: u64 = hv_abi::MAX_GRANT_COPY_BATCH as u64;

/// `GNTTABOP_map_grant_ref` from an HVM guest: `GNTMAP_host_map` at `host_addr`, a page-aligned
/// guest-physical address above its RAM that shows nothing yet (Linux maps into ballooned-out
/// frames); `GNTMAP_readonly` maps it read-only in the nested tables. `GNTMAP_device_map` is
/// refused (no device address is handed out). Each element is read once; its `status` and
/// `handle` are written back.
fn gnttab_map(hv: &mut Hv, slot: usize, ops: u64, count: u64) -> XResult {
    use xen::gntmap::{DEVICE_MAP, HOST_MAP, READONLY};
    if count > MAX_GRANT_MAP_BATCH {
        return Err(errno::E2BIG);
    }
    let size = core::mem::size_of::<xen::GnttabMapGrantRef>() as u64;
    for i in 0..count {
        let at = ops.checked_add(i * size).ok_or(errno::EFAULT)?;
        let mut op: xen::GnttabMapGrantRef = read_value(hvm(hv, slot).ok_or(errno::ESRCH)?, at).or_else(fault)?;
        let result =
            if op.flags & HOST_MAP == 0 || op.flags & DEVICE_MAP != 0 || !op.host_addr.is_multiple_of(FRAME_SIZE) {
                Err(hv_abi::GrantStatus::GeneralError)
            } else {
                let write = op.flags & READONLY == 0;
                let gfn = op.host_addr / FRAME_SIZE;
                super::super::grant_table::map_for_hvm(hv, slot, u64::from(op.dom), u64::from(op.gref), gfn, write)
            };
        (op.status, op.handle) = match result {
            Ok(handle) => (xen::gntst::OKAY, handle),
            Err(st) => (st.as_raw(), u32::MAX),
        };
        op.dev_bus_addr = 0;
        write_value(hvm(hv, slot).ok_or(errno::ESRCH)?, at, &op).or_else(fault)?;
    }
    Ok(0)
}

/// `GNTTABOP_unmap_grant_ref` from an HVM guest: `handle` at `host_addr` (both as the map gave
/// them); the frame then shows nothing. Per-element `status`.
fn gnttab_unmap(hv: &mut Hv, slot: usize, ops: u64, count: u64) -> XResult {
    if count > MAX_GRANT_MAP_BATCH {
        return Err(errno::E2BIG);
    }
    let size = core::mem::size_of::<xen::GnttabUnmapGrantRef>() as u64;
    for i in 0..count {
        let at = ops.checked_add(i * size).ok_or(errno::EFAULT)?;
        let mut op: xen::GnttabUnmapGrantRef = read_value(hvm(hv, slot).ok_or(errno::ESRCH)?, at).or_else(fault)?;
        let result = if !op.host_addr.is_multiple_of(FRAME_SIZE) {
            Err(hv_abi::GrantStatus::GeneralError)
        } else {
            super::super::grant_table::unmap_for_hvm(hv, slot, u64::from(op.handle), op.host_addr / FRAME_SIZE)
        };
        op.status = result.map_or_else(|st| st.as_raw(), |()| xen::gntst::OKAY);
        write_value(hvm(hv, slot).ok_or(errno::ESRCH)?, at, &op).or_else(fault)?;
    }
    Ok(0)
}

/// `GNTTABOP_copy`: up to [`hv_abi::MAX_GRANT_COPY_BATCH`] elements (more: `-E2BIG`, nothing
/// copied), each read once from guest memory, checked and done in order, its `status` written
/// back. A side is a grant (`GNTCOPY_*_GREF`: checked as for a paravirtual copier) or a frame
/// of the caller's own ordinary RAM (`domid` SELF or its own id), never a page the hypervisor
/// placed there; neither side may cross its page's end.
fn gnttab_copy(hv: &mut Hv, slot: usize, ops: u64, count: u64) -> XResult {
    if count > hv_abi::MAX_GRANT_COPY_BATCH as u64 {
        return Err(errno::E2BIG);
    }
    let me = hv.domains[slot].as_ref().ok_or(errno::ESRCH)?.id;
    let size = core::mem::size_of::<xen::GnttabCopy>() as u64;
    for i in 0..count {
        let at = ops.checked_add(i * size).ok_or(errno::EFAULT)?;
        let op: xen::GnttabCopy = read_value(hvm(hv, slot).ok_or(errno::ESRCH)?, at).or_else(fault)?;
        let status = match copy_element(hv, slot, me, &op) {
            Ok(()) => xen::gntst::OKAY,
            Err(st) => st.as_raw(),
        };
        let h = hvm(hv, slot).ok_or(errno::ESRCH)?;
        write_value(h, at + core::mem::offset_of!(xen::GnttabCopy, status) as u64, &status).or_else(fault)?;
    }
    Ok(0)
}

fn copy_element(hv: &Hv, slot: usize, me: DomId, op: &xen::GnttabCopy) -> Result<(), hv_abi::GrantStatus> {
    let len = u64::from(op.len);
    if len == 0 {
        return Ok(());
    }
    let src = copy_side(hv, slot, me, &op.source, op.flags & xen::gntcopy::SOURCE_GREF != 0, false, len)?;
    let dst = copy_side(hv, slot, me, &op.dest, op.flags & xen::gntcopy::DEST_GREF != 0, true, len)?;
    paging::copy_phys(src, dst, len);
    Ok(())
}

/// One side of an HVM guest's grant copy, as a physical address valid for `len` bytes.
fn copy_side(
    hv: &Hv,
    slot: usize,
    me: DomId,
    side: &xen::GnttabCopyPtr,
    gref: bool,
    write: bool,
    len: u64,
) -> Result<u64, hv_abi::GrantStatus> {
    use hv_abi::GrantStatus;
    if gref {
        return super::super::grant_table::granted_bytes(
            hv,
            me,
            u64::from(side.domid),
            u64::from(side.gref()),
            side.offset,
            len,
            write,
        );
    }
    if u64::from(side.offset) + len > FRAME_SIZE {
        return Err(GrantStatus::BadCopyArg);
    }
    if side.domid != xen::domid::SELF && side.domid != me {
        return Err(GrantStatus::BadDomain);
    }
    let l = hv.domains[slot].as_ref().and_then(Domain::live).ok_or(GrantStatus::GeneralError)?;
    let h = l.hvm.as_deref().ok_or(GrantStatus::GeneralError)?;
    let frame = h.ram_frame(l.ram, side.gmfn()).ok_or(GrantStatus::BadCopyArg)?;
    Ok(frame + u64::from(side.offset))
}

fn sched_op(hv: &mut Hv, slot: usize, a: [u64; 5]) -> XResult {
    use xen::schedop::*;
    match a[0] {
        YIELD => {
            drain_console(hv, slot);
            hv.need_resched = true;
            Ok(0)
        }
        BLOCK => {
            let h = hvm(hv, slot).ok_or(errno::ESRCH)?;
            if !upcall_pending(h) {
                hv.sched.block(slot, u64::MAX, time::now_ns());
            }
            Ok(0)
        }
        SHUTDOWN => {
            let h = hvm(hv, slot).ok_or(errno::ESRCH)?;
            let s: xen::SchedShutdown = read_value(h, a[1]).or_else(fault)?;
            drain_console(hv, slot);
            let (id, name) = hv.domains[slot].as_ref().map(|d| (d.id, d.name.clone())).ok_or(errno::ESRCH)?;
            use xen::shutdown_reason::*;
            let (how, why) = match s.reason {
                POWEROFF => (end::SHUTDOWN, "poweroff"),
                REBOOT => (end::SHUTDOWN, "reboot"),
                CRASH => (end::FAULT, "crash (reported by the guest)"),
                WATCHDOG => (end::FAULT, "watchdog"),
                SUSPEND | SOFT_RESET => return Err(errno::ENOSYS),
                _ => return Err(errno::EINVAL),
            };
            hvlog!("domain {id} ({name}) shut down: {why}");
            hv.end_domain(slot, how, s.reason);
            Ok(0)
        }
        SHUTDOWN_CODE => Ok(0),
        _ => Err(errno::ENOSYS),
    }
}

/// Moves what the guest wrote to its console ring (`struct xencons_interface`) to the console.
pub fn drain_console(hv: &mut Hv, slot: usize) {
    let Some(l) = hv.domains[slot].as_ref().and_then(Domain::live) else { return };
    let Some(h) = l.hvm.as_deref() else { return };
    let page = l.ram + h.console_gfn * FRAME_SIZE;
    let mut idx = [0u8; 8];
    paging::copy_from_phys(page + xen::XENCONS_OUT_CONS_OFFSET as u64, &mut idx);
    let cons = u32::from_le_bytes([idx[0], idx[1], idx[2], idx[3]]);
    let prod = u32::from_le_bytes([idx[4], idx[5], idx[6], idx[7]]);
    let n = (prod.wrapping_sub(cons) as usize).min(xen::XENCONS_OUT_SIZE);
    if n == 0 {
        return;
    }
    let mut ring = [0u8; xen::XENCONS_OUT_SIZE];
    paging::copy_from_phys(page + xen::XENCONS_OUT_OFFSET as u64, &mut ring);
    let mut out = [0u8; xen::XENCONS_OUT_SIZE];
    for (i, b) in out[..n].iter_mut().enumerate() {
        *b = ring[(cons as usize + i) % xen::XENCONS_OUT_SIZE];
    }
    // Consumed up to what the guest produced, even if it claimed more than fits.
    paging::copy_to_phys(page + xen::XENCONS_OUT_CONS_OFFSET as u64, &prod.to_le_bytes());
    console::feed(hv, slot, &out[..n]);
}

fn upcall(h: &Hvm) -> &AtomicU8 {
    // SAFETY: `vcpu_info` is a host-physical address inside a frame this domain owns (its
    // shared_info frame or a checked page of its RAM), live as long as the domain; byte access.
    unsafe { &*(paging::phys_to_virt(h.vcpu_info + xen::VCPU_INFO_UPCALL_PENDING as u64) as *const AtomicU8) }
}

fn pending_sel(h: &Hvm) -> &AtomicU64 {
    // SAFETY: as in `upcall`; registration requires 8-byte alignment of the vcpu_info.
    unsafe { &*(paging::phys_to_virt(h.vcpu_info + xen::VCPU_INFO_PENDING_SEL as u64) as *const AtomicU64) }
}

/// Whether the guest has an event upcall pending (`vcpu_info.evtchn_upcall_pending`).
pub fn upcall_pending(h: &Hvm) -> bool {
    upcall(h).load(Ordering::SeqCst) != 0
}

/// Marks event word `word` pending for the vCPU (Xen's 2-level delivery): selector bit, then
/// the upcall flag. Returns whether the upcall flag was newly set.
pub fn mark_pending(h: &Hvm, word: u32) -> bool {
    pending_sel(h).fetch_or(1 << (word % 64), Ordering::SeqCst);
    upcall(h).swap(1, Ordering::SeqCst) == 0
}

/// Writes the hypercall page at guest-physical `gpa` (the MSR named by CPUID 0x40000002): 32
/// bytes per hypercall, `mov eax, nr; vmmcall; ret`; the `iret` slot is `ud2`.
pub fn install_hypercall_page(h: &mut Hvm, gpa: u64) -> Result<(), super::memory::BadAddress> {
    if !gpa.is_multiple_of(FRAME_SIZE) {
        return Err(super::memory::BadAddress);
    }
    let hpa = h.npt.translate(gpa).ok_or(super::memory::BadAddress)?;
    let gfn = gpa / FRAME_SIZE;
    if gfn >= h.ram_pages || Some(gfn) == h.shared_info_gfn || h.grant_gfns.contains(&Some(gfn)) {
        return Err(super::memory::BadAddress);
    }
    let mut page = [0xccu8; FRAME_SIZE as usize];
    for i in 0..(FRAME_SIZE as usize / 32) {
        let s = &mut page[i * 32..i * 32 + 32];
        if i as u64 == nr::IRET {
            s[..2].copy_from_slice(&[0x0f, 0x0b]);
            continue;
        }
        s[0] = 0xb8;
        s[1..5].copy_from_slice(&(i as u32).to_le_bytes());
        s[5..8].copy_from_slice(&[0x0f, 0x01, 0xd9]);
        s[8] = 0xc3;
    }
    paging::copy_to_phys(hpa, &page);
    Ok(())
}

/// The pvclock parameters for a TSC of `tsc_khz`: `ns = ((tsc << shift) * mul) >> 32`
/// (a negative shift shifts right).
pub fn pvclock_scale(tsc_khz: u64) -> (u32, i8) {
    let tsc_hz = tsc_khz.max(1) * 1000;
    let mut shift: i8 = 0;
    let mut base = tsc_hz;
    // mul = 1e9 * 2^32 / (tsc_hz * 2^shift) must fit in 32 bits and keep 31 bits of precision:
    // tsc_hz * 2^shift in (1e9, 2e9].
    while base <= 1_000_000_000 {
        base <<= 1;
        shift += 1;
    }
    while base > 2_000_000_000 {
        base >>= 1;
        shift -= 1;
    }
    let mul = ((1_000_000_000u128 << 32) / base as u128).min(u32::MAX as u128) as u32;
    (mul, shift)
}

/// The vCPU's time info, written into its vcpu_info (version even = stable).
pub fn write_time_info(h: &Hvm) {
    let now_tsc = crate::arch::cpu::rdtsc();
    let now = time::now_ns();
    let (mul, shift) = pvclock_scale(time::tsc_khz());
    let t = xen::VcpuTimeInfo {
        version: 2,
        pad0: 0,
        tsc_timestamp: now_tsc,
        system_time: now,
        tsc_to_system_mul: mul,
        tsc_shift: shift,
        flags: xen::PVCLOCK_TSC_STABLE,
        pad1: [0; 2],
    };
    paging::copy_to_phys(h.vcpu_info + xen::VCPU_INFO_TIME as u64, bytemuck::bytes_of(&t));
}
