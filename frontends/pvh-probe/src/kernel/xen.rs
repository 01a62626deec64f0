//! The guest side of the Xen HVM ABI: detection by CPUID and typed hypercall wrappers over
//! `arch::hypercall` (numbers and structs from `hv_abi::xen`).

use core::fmt;

use super::arch::{self, Fault};
use hv_abi::xen::{
    EvtchnAllocUnbound, EvtchnSend, EvtchnStatus, EvtchnUnmask, GnttabMapGrantRef, GnttabUnmapGrantRef, SchedShutdown,
    XenAddToPhysmap, XenFeatureInfo, consoleio, cpuid, errno, evtchnop, gnttabop, nr, schedop, xenmem, xenver,
};

/// A hypercall's outcome: the CPU delivered an exception, or `rax`.
pub type HcResult = Result<u64, Fault>;

/// Finds the Xen CPUID leaves: the first base in 0x40000000..0x40010000 (step 0x100) whose
/// signature is "XenVMMXenVMM" and that has at least the leaves up to base + 2.
pub fn detect() -> Option<u32> {
    (0x4000_0000u32..0x4001_0000).step_by(0x100).find(|&base| {
        let (max, b, c, d) = arch::cpuid(base);
        b == cpuid::SIGNATURE_EBX && c == cpuid::SIGNATURE_ECX && d == cpuid::SIGNATURE_EDX && max >= base + 2
    })
}

/// `hypercall(nr, a1..a5)`.
pub fn call(nr: u64, args: [u64; 5]) -> HcResult {
    arch::hypercall(nr, args[0], args[1], args[2], args[3], args[4])
}

/// The guest-virtual (= physical, identity map) address of a value, as a hypercall argument.
pub fn addr<T>(value: &T) -> u64 {
    value as *const T as u64
}

/// The address of a value the hypervisor writes to (an out or in/out argument).
pub fn addr_mut<T>(value: &mut T) -> u64 {
    value as *mut T as u64
}

/// `console_io(CONSOLEIO_write, len, buf)`.
pub fn console_write(bytes: &[u8]) -> HcResult {
    call(nr::CONSOLE_IO, [consoleio::WRITE, bytes.len() as u64, bytes.as_ptr() as u64, 0, 0])
}

/// `xen_version(XENVER_version)`: `major << 16 | minor`.
pub fn version() -> HcResult {
    call(nr::XEN_VERSION, [xenver::VERSION, 0, 0, 0, 0])
}

/// `xen_version(XENVER_version)` without the fault guard (benchmark loop).
pub fn version_raw() -> u64 {
    arch::hypercall_raw(nr::XEN_VERSION, xenver::VERSION, 0)
}

/// `xen_version(XENVER_extraversion)`: the suffix (e.g. ".0"), NUL-padded; empty on failure.
pub fn extraversion() -> [u8; xenver::EXTRAVERSION_LEN] {
    let mut buf = [0u8; xenver::EXTRAVERSION_LEN];
    let ok = matches!(call(nr::XEN_VERSION, [xenver::EXTRAVERSION, buf.as_mut_ptr() as u64, 0, 0, 0]), Ok(0));
    if !ok {
        buf = [0; xenver::EXTRAVERSION_LEN];
    }
    buf
}

/// `xen_version(XENVER_get_features)` for word 0.
pub fn features() -> Result<u32, Shown> {
    let mut info = XenFeatureInfo { submap_idx: 0, submap: 0 };
    let result = call(nr::XEN_VERSION, [xenver::GET_FEATURES, addr_mut(&mut info), 0, 0, 0]);
    match result {
        Ok(0) => Ok(info.submap),
        other => Err(Shown(other)),
    }
}

/// `sched_op(SCHEDOP_shutdown, &{reason})`: returns only if refused.
pub fn shutdown(reason: u32) -> HcResult {
    let arg = SchedShutdown { reason };
    call(nr::SCHED_OP, [schedop::SHUTDOWN, addr(&arg), 0, 0, 0])
}

/// `sched_op(SCHEDOP_yield)`.
pub fn yield_now() -> HcResult {
    call(nr::SCHED_OP, [schedop::YIELD, 0, 0, 0, 0])
}

/// `XENMEM_add_to_physmap(space, idx, gpfn)` for this domain.
pub fn add_to_physmap(space: u32, idx: u64, gpfn: u64) -> HcResult {
    let arg = XenAddToPhysmap { domid: hv_abi::xen::domid::SELF, size: 0, space, idx, gpfn };
    call(nr::MEMORY_OP, [xenmem::ADD_TO_PHYSMAP, addr(&arg), 0, 0, 0])
}

/// `EVTCHNOP_alloc_unbound` for `peer`, yielding while the peer does not exist (`-ESRCH`), at
/// most `max_yields` times. On failure, the last outcome.
pub fn alloc_unbound(peer: u16, max_yields: u32) -> Result<u32, Outcome> {
    let mut yields = 0;
    loop {
        let mut alloc = EvtchnAllocUnbound { dom: hv_abi::xen::domid::SELF, remote_dom: peer, port: 0 };
        let result = call(nr::EVENT_CHANNEL_OP, [evtchnop::ALLOC_UNBOUND, addr_mut(&mut alloc), 0, 0, 0]);
        match result.map(errno::result) {
            Ok(Ok(0)) => return Ok(alloc.port),
            Ok(Err(errno::ESRCH)) if yields < max_yields => {
                yields += 1;
                let _ = yield_now();
            }
            _ => return Err(Outcome(result)),
        }
    }
}

/// `EVTCHNOP_send(port)`.
pub fn send(port: u32) -> HcResult {
    let send = EvtchnSend { port };
    call(nr::EVENT_CHANNEL_OP, [evtchnop::SEND, addr(&send), 0, 0, 0])
}

/// `EVTCHNOP_unmask(port)`.
pub fn unmask(port: u32) -> HcResult {
    let unmask = EvtchnUnmask { port };
    call(nr::EVENT_CHANNEL_OP, [evtchnop::UNMASK, addr(&unmask), 0, 0, 0])
}

/// `EVTCHNOP_status` of our own `port`.
pub fn status(port: u32) -> Result<EvtchnStatus, Outcome> {
    let mut st = EvtchnStatus { dom: hv_abi::xen::domid::SELF, port, ..Default::default() };
    match call(nr::EVENT_CHANNEL_OP, [evtchnop::STATUS, addr_mut(&mut st), 0, 0, 0]) {
        Ok(0) => Ok(st),
        other => Err(Outcome(other)),
    }
}

/// One `GNTTABOP_map_grant_ref` element; returns (status, handle), `i16::MIN` if the call
/// itself failed.
pub fn map_grant(peer: u16, gref: u32, host_addr: u64, flags: u32) -> (i16, u32) {
    let mut op = GnttabMapGrantRef { host_addr, flags, gref, dom: peer, status: 1, ..Default::default() };
    let result = call(nr::GRANT_TABLE_OP, [gnttabop::MAP_GRANT_REF, addr_mut(&mut op), 1, 0, 0]);
    if result != Ok(0) {
        return (i16::MIN, 0);
    }
    (op.status, op.handle)
}

/// One `GNTTABOP_unmap_grant_ref` element; returns its status (`i16::MIN` if the call itself
/// failed).
pub fn unmap_grant(host_addr: u64, handle: u32) -> i16 {
    let mut op = GnttabUnmapGrantRef { host_addr, handle, status: 1, ..Default::default() };
    let result = call(nr::GRANT_TABLE_OP, [gnttabop::UNMAP_GRANT_REF, addr_mut(&mut op), 1, 0, 0]);
    if result != Ok(0) {
        return i16::MIN;
    }
    op.status
}

/// Displays a hypercall outcome: `0`, `0x40011`, `-EFAULT`, `-errno 200`, `ud`, `gp(0x0)`.
pub struct Outcome(pub HcResult);

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Err(fault) => write!(f, "{fault}"),
            Ok(rax) => match errno::result(rax) {
                Ok(0) => write!(f, "0"),
                Ok(v) => write!(f, "{v:#x}"),
                Err(e) => match errno::name(e) {
                    Some(name) => write!(f, "-{name}"),
                    None => write!(f, "-errno {e}"),
                },
            },
        }
    }
}

/// Displays a value-or-fault of a non-hypercall probe: the value in hex, or the fault.
pub struct Shown(pub Result<u64, Fault>);

impl fmt::Display for Shown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Ok(v) => write!(f, "{v:#x}"),
            Err(fault) => write!(f, "{fault}"),
        }
    }
}
