//! The contract between hv-core and every domain. `no_std`, host-testable; its one dependency is
//! `bytemuck`, whose `Pod`/`Zeroable` derives prove at compile time that every `#[repr(C)]`
//! argument struct is plain old data (no padding, any bytes valid), which is what lets the
//! hypervisor and the runtime copy them to and from memory without `unsafe`.
//!
//! Hypercalls are made with `syscall`: number in `rax`, arguments in `rdi, rsi, rdx, r10, r8, r9`,
//! result in `rax`. A negative result is `-errno` (see [`Error`]). `rcx` and `r11` are clobbered
//! (the `syscall` instruction uses them); every other register is preserved.
//! `docs/ABI.md` documents each call for humans; this file is the source of truth.
#![no_std]

pub mod layout;
pub mod pci;
pub mod xen;

pub use layout::*;

/// A domain id. Xen's `domid_t`: 16 bits on every interface (grant entries carry it as is; the
/// wider ABI fields and hypercall registers hold it zero-extended). Ids at or above
/// [`DOMID_SELF`] are not domains.
pub type DomId = u16;
/// A grant reference: an index into the granter's grant table (Xen's `grant_ref_t`).
pub type GrantRef = u32;
/// An event-channel port (Xen's `evtchn_port_t`): `1..MAX_PORTS`; 0 is never valid.
pub type Port = u32;

/// Hypercall numbers (`rax`).
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hypercall {
    /// `console_write(ptr, len) -> bytes consumed`. At most [`CONSOLE_WRITE_MAX`] bytes per call.
    ConsoleWrite = 0,
    /// `yield() -> 0`: give up the rest of this time slice.
    Yield = 1,
    /// `block(deadline_ns) -> 0`: sleep until an unmasked event-channel port is pending or system time reaches
    /// `deadline_ns` ([`NO_DEADLINE`] waits for events only). Returns at once if one is pending.
    Block = 2,
    /// `time() -> ns`: system time in nanoseconds since the hypervisor booted.
    Time = 3,
    /// `shutdown(reason)`: ends the calling domain; does not return. See [`ShutdownReason`].
    Shutdown = 4,
    /// `domain_info(out: *mut DomainInfo) -> 0`: the caller's own identity and resources.
    DomainInfo = 5,
    /// `domctl(op, arg0, arg1, arg2) -> op-specific`: domain management, Dom0 only (`EPERM`
    /// otherwise). See [`DomctlOp`].
    Domctl = 6,
    /// `evtchn_op(op, a, b) -> op-specific`: event channels. See [`EvtchnOp`].
    EvtchnOp = 8,
    /// `grant_table_op(op, a, b) -> op-specific`: grant tables. See [`GrantOp`].
    GrantTableOp = 9,
    /// `pci_op(op, a, b, c) -> op-specific`: the caller's assigned PCI devices. See [`PciOp`].
    PciOp = 10,
    /// `control_io(op, a, b) -> op-specific`: the host control channel (the second UART, COM2),
    /// Dom0 only (`EPERM` otherwise). See [`ControlOp`].
    ControlIo = 11,
}

impl Hypercall {
    pub const fn from_u64(n: u64) -> Option<Self> {
        Some(match n {
            0 => Self::ConsoleWrite,
            1 => Self::Yield,
            2 => Self::Block,
            3 => Self::Time,
            4 => Self::Shutdown,
            5 => Self::DomainInfo,
            6 => Self::Domctl,
            8 => Self::EvtchnOp,
            9 => Self::GrantTableOp,
            10 => Self::PciOp,
            11 => Self::ControlIo,
            _ => return None,
        })
    }
}

/// `domctl` operations (first argument).
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DomctlOp {
    /// `create(spec: *const CreateDomain) -> domid`. The new domain starts running at once.
    Create = 1,
    /// `destroy(domid) -> 0`: ends a live domain, or reaps a dead one (frees its id).
    Destroy = 2,
    /// `pause(domid) -> 0`: the domain is not scheduled until unpaused.
    Pause = 3,
    /// `unpause(domid) -> 0`.
    Unpause = 4,
    /// `list(out: *mut DomainListEntry, max) -> count`: every domain, live or dead-but-unreaped.
    List = 5,
    /// `topology(buf, len) -> len`: copies the boot topology (postcard, see `hv-bundle`). If `len`
    /// is too small returns `-ERANGE` and writes nothing; call with `len = 0` to learn the size
    /// (returned as a positive value).
    Topology = 6,
    /// `poweroff(code)`: powers the machine off; QEMU exits with `((0x10 + code) << 1) | 1`.
    Poweroff = 7,
    /// `physinfo(out: *mut PhysInfo) -> 0`: hypervisor-wide totals (memory, domains, grants,
    /// event channels).
    PhysInfo = 8,
    /// `store_connect(domid, out: *mut StoreConnection) -> 0`: maps the domain's store ring page
    /// into the caller's grant-mapping window and binds an event channel to the domain's store
    /// port. For the store server (Dom0).
    StoreConnect = 9,
    /// `assign_pci(domid, selector) -> bdf`: gives the first unassigned PCI device matching
    /// `selector` (bit 32 clear: `vendor << 16 | device`; set: `bus << 8 | dev << 3 | fn`) to a
    /// domain: its memory BARs are mapped uncached at `PCI_BAR_BASE`, memory decoding and bus
    /// mastering are enabled. `ENOENT` if no such free device.
    AssignPci = 10,
    /// `console_read(domid, from, io: *mut ConsoleRead) -> copied`: copies a domain's recent
    /// console output (its own bytes, kept in a [`CONSOLE_HISTORY`]-byte ring per domain, live
    /// or dead-unreaped) starting at byte offset `max(from, oldest kept)`. `ENOENT` for an
    /// unknown domid.
    ConsoleRead = 11,
}

impl DomctlOp {
    pub const fn from_u64(n: u64) -> Option<Self> {
        Some(match n {
            1 => Self::Create,
            2 => Self::Destroy,
            3 => Self::Pause,
            4 => Self::Unpause,
            5 => Self::List,
            6 => Self::Topology,
            7 => Self::Poweroff,
            8 => Self::PhysInfo,
            9 => Self::StoreConnect,
            10 => Self::AssignPci,
            11 => Self::ConsoleRead,
            _ => return None,
        })
    }
}

/// Event-channel operations (`evtchn_op` first argument). Semantics follow Xen's 2-level ABI.
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvtchnOp {
    /// `alloc_unbound(remote_dom) -> port`: a port that `remote_dom` (or [`DOMID_SELF`]) may bind.
    AllocUnbound = 1,
    /// `bind_interdomain(remote_dom, remote_port) -> port`: connects to an unbound port that
    /// accepts the caller. The new local port starts pending (covers kicks sent before the bind).
    BindInterdomain = 2,
    /// `bind_virq(virq) -> port`. See [`virq`].
    BindVirq = 3,
    /// `send(port) -> 0`: sets the remote port pending (dropped silently while unbound).
    Send = 4,
    /// `close(port) -> 0`: the remote end becomes unbound again.
    Close = 5,
    /// `unmask(port) -> 0`: clears the mask bit.
    Unmask = 6,
    /// `status(port, out: *mut EvtchnStatus) -> 0`.
    Status = 7,
    /// `bind_pirq(bdf) -> port`: the interrupt of one of the caller's assigned PCI devices
    /// (delivered by MSI-X, which the hypervisor programs). `EPERM` for a device not the caller's.
    BindPirq = 8,
}

impl EvtchnOp {
    pub const fn from_u64(n: u64) -> Option<Self> {
        Some(match n {
            1 => Self::AllocUnbound,
            2 => Self::BindInterdomain,
            3 => Self::BindVirq,
            4 => Self::Send,
            5 => Self::Close,
            6 => Self::Unmask,
            7 => Self::Status,
            8 => Self::BindPirq,
            _ => return None,
        })
    }
}

/// Grant-table operations (`grant_table_op` first argument).
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantOp {
    /// `setup_table(va, nr_entries) -> 0`: registers the caller's grant table, an array of
    /// `GrantEntry` in its own writable memory (page-aligned, at most [`MAX_GRANT_ENTRIES`]).
    SetupTable = 1,
    /// `map(granter, ref, flags) -> handle`: maps a page `granter` granted to the caller at
    /// [`map_va`]`(handle)`. `flags`: [`GNTMAP_READONLY`].
    Map = 2,
    /// `unmap(handle) -> 0`.
    Unmap = 3,
    /// `copy(ops: *mut GrantCopy, count) -> 0`: up to [`MAX_GRANT_COPY_BATCH`] copies, each
    /// with its own status written back.
    Copy = 4,
}

impl GrantOp {
    pub const fn from_u64(n: u64) -> Option<Self> {
        Some(match n {
            1 => Self::SetupTable,
            2 => Self::Map,
            3 => Self::Unmap,
            4 => Self::Copy,
            _ => return None,
        })
    }
}

/// `pci_op` operations (driver domains, on their own assigned devices only; `EPERM` otherwise).
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PciOp {
    /// `list(out: *mut PciDeviceInfo, max) -> count`.
    List = 1,
    /// `config_read(bdf, offset) -> u32` (offset 4-aligned, < 256).
    ConfigRead = 2,
    /// `config_write(bdf, offset, value) -> 0`: filtered: BARs may only be sized (all ones, then
    /// the original value), never moved; the expansion ROM and IDs are refused (`EPERM`).
    ConfigWrite = 3,
}

impl PciOp {
    pub const fn from_u64(n: u64) -> Option<Self> {
        Some(match n {
            1 => Self::List,
            2 => Self::ConfigRead,
            3 => Self::ConfigWrite,
            _ => return None,
        })
    }
}

/// `control_io` operations (first argument). Dom0 only.
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlOp {
    /// `read(buf, len) -> count`: up to `len` (at most [`CONTROL_IO_MAX`]) received bytes; 0 if
    /// none. `ENODEV` if the channel is absent.
    Read = 1,
    /// `write(buf, len) -> accepted`: queues up to `len` (at most [`CONTROL_IO_MAX`]) bytes for
    /// transmission; fewer (possibly 0) when the transmit ring is full. `ENODEV` if absent.
    Write = 2,
    /// `status(out: *mut ControlStatus) -> present`: 1 if the channel exists, else 0.
    Status = 3,
}

impl ControlOp {
    pub const fn from_u64(n: u64) -> Option<Self> {
        Some(match n {
            1 => Self::Read,
            2 => Self::Write,
            3 => Self::Status,
            _ => return None,
        })
    }
}

/// Most bytes one `control_io` read or write moves.
pub const CONTROL_IO_MAX: usize = 4096;
/// Bytes of console output the hypervisor keeps per domain for `domctl console_read`.
pub const CONSOLE_HISTORY: usize = 16 * 1024;

/// "This domain" in domid arguments (a hypercall register, hence `u64`; as a [`DomId`]:
/// [`DOMID_SELF_ID`]). Every real domain id is below it.
pub const DOMID_SELF: u64 = DOMID_SELF_ID as u64;
/// [`DOMID_SELF`] as a [`DomId`] (Xen's `DOMID_SELF`).
pub const DOMID_SELF_ID: DomId = 0x7ff0;
/// Event-channel ports per domain (port 0 is never valid).
pub const MAX_PORTS: usize = 1024;
/// Grant entries a domain may register (8 pages of 512).
pub const MAX_GRANT_ENTRIES: usize = 4096;
/// Grant mappings a domain may hold at once (its mapping window).
pub const MAX_GRANT_MAPS: usize = 1024;
/// Most elements in one `grant_table_op(copy)`.
pub const MAX_GRANT_COPY_BATCH: usize = 256;
/// `map` flag: read-only mapping.
pub const GNTMAP_READONLY: u64 = 1;

/// Errors, as negative `rax` values. Numbers follow Linux/Xen errno.
#[repr(i64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The caller is not allowed to do this (e.g. a DomU calling `domctl`).
    Perm = 1,
    /// No such image or object.
    NoEnt = 2,
    /// No such domain.
    Srch = 3,
    /// Argument list or payload too large.
    TooBig = 7,
    /// Out of memory (frames or hypervisor heap).
    NoMem = 12,
    /// No such device (the control channel is absent).
    NoDev = 19,
    /// A pointer argument does not lie entirely inside the caller's own memory.
    Fault = 14,
    /// The object is in use or in the wrong state (e.g. destroying Dom0).
    Busy = 16,
    /// Already exists (e.g. a domain name in use).
    Exist = 17,
    /// An argument is malformed.
    Inval = 22,
    /// No slot left (domain table full).
    NoSpc = 28,
    /// A buffer is too small.
    Range = 34,
    /// Unknown hypercall or operation.
    NoSys = 38,
}

impl Error {
    pub const fn from_errno(e: i64) -> Option<Self> {
        Some(match e {
            1 => Self::Perm,
            2 => Self::NoEnt,
            3 => Self::Srch,
            7 => Self::TooBig,
            12 => Self::NoMem,
            19 => Self::NoDev,
            14 => Self::Fault,
            16 => Self::Busy,
            17 => Self::Exist,
            22 => Self::Inval,
            28 => Self::NoSpc,
            34 => Self::Range,
            38 => Self::NoSys,
            _ => return None,
        })
    }

    /// The errno name (`"EPERM"`, ...), for console messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Perm => "EPERM",
            Self::NoEnt => "ENOENT",
            Self::Srch => "ESRCH",
            Self::TooBig => "E2BIG",
            Self::NoMem => "ENOMEM",
            Self::NoDev => "ENODEV",
            Self::Fault => "EFAULT",
            Self::Busy => "EBUSY",
            Self::Exist => "EEXIST",
            Self::Inval => "EINVAL",
            Self::NoSpc => "ENOSPC",
            Self::Range => "ERANGE",
            Self::NoSys => "ENOSYS",
        }
    }

    /// Encodes as the raw `rax` value.
    pub const fn to_raw(self) -> u64 {
        (-(self as i64)) as u64
    }
}

/// Decodes a raw hypercall result: negative values in `-4095..0` are errors.
pub fn decode_result(raw: u64) -> Result<u64, Error> {
    let s = raw as i64;
    if (-4095..0).contains(&s) { Err(Error::from_errno(-s).unwrap_or(Error::NoSys)) } else { Ok(raw) }
}

/// Why a domain ended (`shutdown` argument; also reported by `domctl list`). Values as Xen's
/// `SHUTDOWN_*`.
#[repr(u64)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShutdownReason {
    Poweroff = 0,
    Reboot = 1,
    Suspend = 2,
    /// The domain reports that it crashed (e.g. a Rust panic in the runtime).
    Crash = 3,
}

impl ShutdownReason {
    pub const fn from_u64(n: u64) -> Option<Self> {
        Some(match n {
            0 => Self::Poweroff,
            1 => Self::Reboot,
            2 => Self::Suspend,
            3 => Self::Crash,
            _ => return None,
        })
    }
    pub const fn name(self) -> &'static str {
        match self {
            Self::Poweroff => "poweroff",
            Self::Reboot => "reboot",
            Self::Suspend => "suspend",
            Self::Crash => "crash",
        }
    }
}

/// Most bytes one `console_write` consumes.
pub const CONSOLE_WRITE_MAX: usize = 4096;
/// `block` deadline meaning "no timeout".
pub const NO_DEADLINE: u64 = u64::MAX;
/// Longest domain name in bytes (names are NUL-padded in the fixed arrays below).
pub const NAME_LEN: usize = 16;
/// Longest `args` string handed to a domain.
pub const ARGS_LEN: usize = 256;
/// Most domains the hypervisor holds at once (live and dead-unreaped).
pub const MAX_DOMAINS: usize = 64;
/// Most memory one domain may have.
pub const MAX_DOMAIN_MEMORY_MIB: u32 = 512;

/// Virtual IRQs a domain can bind to a port with `evtchn_op(bind_virq)`.
pub mod virq {
    /// A domain was created or ended. Dom0 only.
    pub const DOM_EXC: u64 = 0;
    /// The domain's `block` deadline passed.
    pub const TIMER: u64 = 1;
    /// Bytes arrived on the control channel (`control_io read` them). Dom0 only.
    pub const CONTROL: u64 = 2;
    pub const COUNT: u64 = 3;
}

/// Copies `s` into a NUL-padded name array, truncating at [`NAME_LEN`] bytes.
pub fn name_to_array(s: &str) -> [u8; NAME_LEN] {
    let mut a = [0u8; NAME_LEN];
    let n = s.len().min(NAME_LEN);
    a[..n].copy_from_slice(&s.as_bytes()[..n]);
    a
}

/// The text of a NUL-padded name array; `None` if it is not UTF-8.
pub fn name_from_array(a: &[u8]) -> Option<&str> {
    let n = a.iter().position(|&b| b == 0).unwrap_or(a.len());
    core::str::from_utf8(&a[..n]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_roundtrip() {
        for n in 0..16 {
            if let Some(h) = Hypercall::from_u64(n) {
                assert_eq!(h as u64, n);
            }
            if let Some(op) = DomctlOp::from_u64(n) {
                assert_eq!(op as u64, n);
            }
            if let Some(r) = ShutdownReason::from_u64(n) {
                assert_eq!(r as u64, n);
            }
            if let Some(op) = EvtchnOp::from_u64(n) {
                assert_eq!(op as u64, n);
            }
            if let Some(op) = GrantOp::from_u64(n) {
                assert_eq!(op as u64, n);
            }
            if let Some(op) = ControlOp::from_u64(n) {
                assert_eq!(op as u64, n);
            }
            if let Some(op) = PciOp::from_u64(n) {
                assert_eq!(op as u64, n);
            }
        }
        assert_eq!(Hypercall::from_u64(11), Some(Hypercall::ControlIo));
        assert_eq!(DomctlOp::from_u64(11), Some(DomctlOp::ConsoleRead));
        // 7 was `virq_take`, replaced by event channels: it must stay unknown.
        assert_eq!(Hypercall::from_u64(7), None);
        assert_eq!(Hypercall::from_u64(12), None);
        assert_eq!(DomctlOp::from_u64(0), None);
        assert_eq!(ControlOp::from_u64(0), None);
    }

    #[test]
    fn results_decode() {
        assert_eq!(decode_result(5), Ok(5));
        assert_eq!(decode_result(Error::Perm.to_raw()), Err(Error::Perm));
        assert_eq!(decode_result(Error::Fault.to_raw()), Err(Error::Fault));
        // Large positive values (addresses, times) are not errors.
        assert_eq!(decode_result(u64::MAX - 5000), Ok(u64::MAX - 5000));
        for e in 1..40 {
            if let Some(err) = Error::from_errno(e) {
                assert_eq!(err as i64, e);
                assert!(err.name().starts_with('E'));
            }
        }
    }

    #[test]
    fn names() {
        let a = name_to_array("hello");
        assert_eq!(name_from_array(&a), Some("hello"));
        let a = name_to_array("0123456789abcdefXYZ");
        assert_eq!(name_from_array(&a), Some("0123456789abcdef"));
        assert_eq!(name_from_array(&[0xff, 0]), None);
    }
}
