//! `hostile` mode: plays an attacker against the hypervisor's Xen ABI and prints one line per
//! probe, `probe <name>: <result>`. The probes that end the domain (when the hypervisor does
//! its job) come last: `oob` (a read above RAM) only when asked for.

use core::fmt::Write;

use super::xen::{self, Outcome, Shown, addr, addr_mut, call};
use super::{Boot, Console, arch, say, shutdown};
use hv_abi::xen::{
    EvtchnAllocUnbound, EvtchnBindInterdomain, EvtchnSend, EvtchnStatus, EvtchnUnmask, GRANT_ENTRIES_V1_PER_FRAME,
    GnttabCopy, GnttabCopyPtr, GnttabMapGrantRef, GrantEntryV1, SchedShutdown, VcpuRegisterVcpuInfo, XenAddToPhysmap,
    XenHvmParam, XenMemoryReservation, domid, evtchnop, gntcopy, gntmap, gnttabop, gtf, hvm_param, hvmop, nr, schedop,
    vcpuop, xenmapspace, xenmem, xenver,
};
use pvh_probe::Options;

/// Canonical, but not mapped by this kernel's page tables (PML4 entry 128 is empty).
const UNMAPPED: u64 = 0x0000_4000_0000_0000;
/// Non-canonical.
const NON_CANONICAL: u64 = 0x8000_0000_0000_0000;
/// Where a 64-bit kernel's direct map would be; not mapped here either.
const KERNEL_HIGH: u64 = 0xffff_8000_0000_0000;
/// 4 bytes below the end of this kernel's identity map: a struct there straddles into
/// unmapped memory.
const STRADDLE: u64 = (1 << 32) - 4;

/// Argument sets for the "every hypercall number" sweep.
const GARBAGE: [[u64; 5]; 3] = [
    [0x4141_4141_4141_4141, 0x4242_4242_4242_4242, 0x4343_4343_4343_4343, 0x4444_4444_4444_4444, 0x4545_4545_4545_4545],
    [0x1337, UNMAPPED, KERNEL_HIGH, NON_CANONICAL, u64::MAX],
    [u64::MAX, u64::MAX, u64::MAX, u64::MAX, u64::MAX],
];

/// Pointer-taking sub-operations of each multiplexed hypercall. Left out on purpose: those
/// that take no pointer and act on this vCPU (SCHEDOP_block would wait forever with interrupts
/// off, VCPUOP_down/send_nmi would stop or interrupt it).
const SUBOPS: [(&str, u64, &[u64]); 7] = [
    ("xen_version", nr::XEN_VERSION, &[1, 2, 3, 4, 5, 6, 8, 9, 10]),
    (
        "memory_op",
        nr::MEMORY_OP,
        &[0, 1, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28],
    ),
    ("hvm_op", nr::HVM_OP, &[0, 1, 9, 10, 11, 12, 13, 15, 23, 24, 25]),
    ("vcpu_op", nr::VCPU_OP, &[0, 4, 5, 6, 8, 10, 12, 13]),
    ("event_channel_op", nr::EVENT_CHANNEL_OP, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]),
    ("grant_table_op", nr::GRANT_TABLE_OP, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]),
    ("sched_op", nr::SCHED_OP, &[2, 3, 4, 5, 6, 7]),
];

/// A page this domain grants (4 KiB-aligned static; identity map, so address = guest-physical).
#[repr(C, align(4096))]
struct Page([u8; 4096]);
static mut GRANT_PAGE: Page = Page([0; 4096]);

fn probe(console: &mut Console, name: core::fmt::Arguments<'_>, result: impl core::fmt::Display) {
    say!(console, "probe {name}: {result}");
}

pub fn run(console: &mut Console, boot: &Boot, options: &Options) -> ! {
    say!(console, "pvh-probe: hostile mode ({})", pvh_probe::cmdline_text(&boot.cmdline));
    hypercall_sweep(console);
    bad_pointers(console);
    semantic(console);
    msrs(console);
    ports(console);
    if let Some(grantee) = options.grant_to {
        grant(console, boot, grantee);
    }
    for _ in 0..options.hold {
        let _ = xen::yield_now();
    }
    if options.oob {
        out_of_bounds(console, boot);
    }
    say!(console, "pvh-probe: hostile done");
    shutdown(console, hv_abi::xen::shutdown_reason::POWEROFF)
}

/// Every hypercall number 0..64 (and a few out of range or with high bits set) with garbage.
fn hypercall_sweep(console: &mut Console) {
    let extra = [64u64, 127, 128, 0xffff_ffff, (1 << 32) | nr::XEN_VERSION, u64::MAX];
    for number in (0..64).chain(extra) {
        for (set, args) in GARBAGE.iter().enumerate() {
            // Keep sched_op/vcpu_op garbage from naming a real sub-op by accident: all sets
            // above use sub-op numbers no ABI defines.
            probe(console, format_args!("hypercall-{number:#x}-garbage{set}"), Outcome(call(number, *args)));
        }
    }
}

/// Each pointer-taking sub-op with pointers this guest cannot have meant: expect -EFAULT.
fn bad_pointers(console: &mut Console) {
    let pointers =
        [("unmapped", UNMAPPED), ("noncanonical", NON_CANONICAL), ("kernelhigh", KERNEL_HIGH), ("straddle", STRADDLE)];
    for (name, number, subops) in SUBOPS {
        for &op in subops {
            for (kind, pointer) in pointers {
                let args = match number {
                    nr::VCPU_OP => [op, 0, pointer, 0, 0],
                    nr::GRANT_TABLE_OP => [op, pointer, 1, 0, 0],
                    _ => [op, pointer, 0, 0, 0],
                };
                probe(console, format_args!("{name}-{op}-{kind}"), Outcome(call(number, args)));
            }
        }
    }
    for (kind, pointer) in pointers {
        let result = call(nr::CONSOLE_IO, [hv_abi::xen::consoleio::WRITE, 16, pointer, 0, 0]);
        probe(console, format_args!("console_io-write-{kind}"), Outcome(result));
    }
    let text = b"x";
    let result = call(nr::CONSOLE_IO, [hv_abi::xen::consoleio::WRITE, 1 << 40, text.as_ptr() as u64, 0, 0]);
    probe(console, format_args!("console_io-write-huge-length"), Outcome(result));
    let result = call(nr::MULTICALL, [UNMAPPED, 1, 0, 0, 0]);
    probe(console, format_args!("multicall-unmapped"), Outcome(result));
}

/// Well-formed arguments that ask for something a DomU must not get.
fn semantic(console: &mut Console) {
    let physmap = |space: u32, idx: u64, gpfn: u64, domid: u16| {
        let arg = XenAddToPhysmap { domid, size: 0, space, idx, gpfn };
        Outcome(call(nr::MEMORY_OP, [xenmem::ADD_TO_PHYSMAP, addr(&arg), 0, 0, 0]))
    };
    probe(console, format_args!("add_to_physmap-bad-space"), physmap(99, 0, 0x7_0000, domid::SELF));
    probe(
        console,
        format_args!("add_to_physmap-grant-idx-huge"),
        physmap(xenmapspace::GRANT_TABLE, 0xffff_ffff, 0x7_0000, domid::SELF),
    );
    probe(
        console,
        format_args!("add_to_physmap-shared-info-gpfn-huge"),
        physmap(xenmapspace::SHARED_INFO, 0, 1 << 40, domid::SELF),
    );
    probe(console, format_args!("add_to_physmap-other-domain"), physmap(xenmapspace::SHARED_INFO, 0, 0x7_0000, 0));
    // Moving shared_info across the guest-physical space 63 times, 1 GiB apart: each new place
    // needs nested tables of its own; the hypervisor bounds them (ENOMEM once spent).
    let (mut placed, mut last) = (0, None);
    for i in 1..=64u64 {
        let arg =
            XenAddToPhysmap { domid: domid::SELF, size: 0, space: xenmapspace::SHARED_INFO, idx: 0, gpfn: i << 18 };
        match call(nr::MEMORY_OP, [xenmem::ADD_TO_PHYSMAP, addr(&arg), 0, 0, 0]) {
            Ok(0) => placed += 1,
            r => {
                last.get_or_insert(r);
            }
        }
    }
    match last {
        Some(r) => probe(
            console,
            format_args!("add_to_physmap-shared-info-roaming"),
            format_args!("{placed} of 63 placed, then {}", Outcome(r)),
        ),
        None => {
            probe(console, format_args!("add_to_physmap-shared-info-roaming"), format_args!("{placed} of 63 placed"))
        }
    }
    probe(
        console,
        format_args!("add_to_physmap-gmfn-foreign"),
        physmap(xenmapspace::GMFN_FOREIGN, 0, 0x7_0000, domid::SELF),
    );

    let reservation =
        XenMemoryReservation { extent_start: UNMAPPED, nr_extents: u64::MAX, domid: domid::SELF, ..Default::default() };
    for (name, op) in
        [("decrease_reservation", xenmem::DECREASE_RESERVATION), ("populate_physmap", xenmem::POPULATE_PHYSMAP)]
    {
        let result = call(nr::MEMORY_OP, [op, addr(&reservation), 0, 0, 0]);
        probe(console, format_args!("{name}-huge-unmapped"), Outcome(result));
    }

    for (name, param) in
        [("store_pfn", hvm_param::STORE_PFN), ("console_pfn", hvm_param::CONSOLE_PFN), ("index-huge", 0xffff)]
    {
        let mut arg = XenHvmParam { domid: 0, pad: 0, index: param, value: 0 };
        let result = call(nr::HVM_OP, [hvmop::GET_PARAM, addr_mut(&mut arg), 0, 0, 0]);
        probe(
            console,
            format_args!("hvm_get_param-dom0-{name}"),
            format_args!("{} value {:#x}", Outcome(result), arg.value),
        );
    }
    let mut arg = XenHvmParam { domid: domid::SELF, pad: 0, index: hvm_param::STORE_PFN, value: 0x100 };
    probe(
        console,
        format_args!("hvm_set_param-self-store_pfn"),
        Outcome(call(nr::HVM_OP, [hvmop::SET_PARAM, addr_mut(&mut arg), 0, 0, 0])),
    );

    let mut alloc = EvtchnAllocUnbound { dom: 0, remote_dom: domid::SELF, port: 0 };
    probe(
        console,
        format_args!("evtchn_alloc_unbound-in-dom0"),
        Outcome(call(nr::EVENT_CHANNEL_OP, [evtchnop::ALLOC_UNBOUND, addr_mut(&mut alloc), 0, 0, 0])),
    );
    let mut bind = EvtchnBindInterdomain { remote_dom: 0, _pad: 0, remote_port: 1, local_port: 0 };
    probe(
        console,
        format_args!("evtchn_bind_interdomain-dom0-port1"),
        Outcome(call(nr::EVENT_CHANNEL_OP, [evtchnop::BIND_INTERDOMAIN, addr_mut(&mut bind), 0, 0, 0])),
    );
    let mut status = EvtchnStatus { dom: 0, port: 1, ..Default::default() };
    probe(
        console,
        format_args!("evtchn_status-dom0-port1"),
        Outcome(call(nr::EVENT_CHANNEL_OP, [evtchnop::STATUS, addr_mut(&mut status), 0, 0, 0])),
    );
    for port in [0u32, 4095, 4096, 0xffff_ffff] {
        let send = EvtchnSend { port };
        probe(
            console,
            format_args!("evtchn_send-port-{port:#x}"),
            Outcome(call(nr::EVENT_CHANNEL_OP, [evtchnop::SEND, addr(&send), 0, 0, 0])),
        );
        let unmask = EvtchnUnmask { port };
        probe(
            console,
            format_args!("evtchn_unmask-port-{port:#x}"),
            Outcome(call(nr::EVENT_CHANNEL_OP, [evtchnop::UNMASK, addr(&unmask), 0, 0, 0])),
        );
    }

    let mut map =
        GnttabMapGrantRef { host_addr: 0x7000_0000, flags: gntmap::HOST_MAP, gref: 0, dom: 0, ..Default::default() };
    let result = call(nr::GRANT_TABLE_OP, [gnttabop::MAP_GRANT_REF, addr_mut(&mut map), 1, 0, 0]);
    probe(console, format_args!("gnttab_map-dom0-ref0"), format_args!("{} status {}", Outcome(result), map.status));
    let mut map = GnttabMapGrantRef {
        host_addr: 0x7000_0000,
        flags: gntmap::HOST_MAP,
        gref: 0,
        dom: domid::SELF,
        ..Default::default()
    };
    let result = call(nr::GRANT_TABLE_OP, [gnttabop::MAP_GRANT_REF, addr_mut(&mut map), 1, 0, 0]);
    probe(console, format_args!("gnttab_map-self-ref0"), format_args!("{} status {}", Outcome(result), map.status));
    let own_frame = (&raw const GRANT_PAGE as u64) >> 12;
    let mut copy = GnttabCopy {
        source: GnttabCopyPtr { u: 0, domid: 0, offset: 0, _pad: 0 },
        dest: GnttabCopyPtr { u: own_frame, domid: domid::SELF, offset: 0, _pad: 0 },
        len: 4096,
        flags: gntcopy::SOURCE_GREF,
        ..Default::default()
    };
    let result = call(nr::GRANT_TABLE_OP, [gnttabop::COPY, addr_mut(&mut copy), 1, 0, 0]);
    probe(
        console,
        format_args!("gnttab_copy-from-dom0-ref0"),
        format_args!("{} status {}", Outcome(result), copy.status),
    );
    copy.source = GnttabCopyPtr { u: own_frame, domid: domid::SELF, offset: 4000, _pad: 0 };
    copy.dest = GnttabCopyPtr { u: 0, domid: 0, offset: 0, _pad: 0 };
    copy.flags = gntcopy::DEST_GREF;
    copy.len = 200;
    let result = call(nr::GRANT_TABLE_OP, [gnttabop::COPY, addr_mut(&mut copy), 1, 0, 0]);
    probe(
        console,
        format_args!("gnttab_copy-crossing-page-to-dom0"),
        format_args!("{} status {}", Outcome(result), copy.status),
    );
    let result = call(nr::GRANT_TABLE_OP, [gnttabop::COPY, addr_mut(&mut copy), u64::MAX, 0, 0]);
    probe(console, format_args!("gnttab_copy-count-huge"), Outcome(result));

    let info = VcpuRegisterVcpuInfo { mfn: own_frame, offset: 4090, rsvd: 0 };
    probe(
        console,
        format_args!("register_vcpu_info-crossing-page"),
        Outcome(call(nr::VCPU_OP, [vcpuop::REGISTER_VCPU_INFO, 0, addr(&info), 0, 0])),
    );
    let info = VcpuRegisterVcpuInfo { mfn: 1 << 40, offset: 0, rsvd: 0 };
    probe(
        console,
        format_args!("register_vcpu_info-gfn-huge"),
        Outcome(call(nr::VCPU_OP, [vcpuop::REGISTER_VCPU_INFO, 0, addr(&info), 0, 0])),
    );
    probe(console, format_args!("vcpu_op-vcpu-1000"), Outcome(call(nr::VCPU_OP, [vcpuop::IS_UP, 1000, 0, 0, 0])));
    probe(console, format_args!("vcpu_op-vcpu-huge"), Outcome(call(nr::VCPU_OP, [vcpuop::IS_UP, u64::MAX, 0, 0, 0])));
    probe(
        console,
        format_args!("xen_version-pagesize"),
        Outcome(call(nr::XEN_VERSION, [xenver::PAGESIZE, 0, 0, 0, 0])),
    );
    let remote = [0u16, 0, 0, 0];
    probe(
        console,
        format_args!("sched_remote_shutdown-dom0"),
        Outcome(call(nr::SCHED_OP, [schedop::REMOTE_SHUTDOWN, addr(&remote), 0, 0, 0])),
    );
    let bad_reason = SchedShutdown { reason: 99 };
    probe(
        console,
        format_args!("sched_shutdown-reason-99"),
        Outcome(call(nr::SCHED_OP, [schedop::SHUTDOWN, addr(&bad_reason), 0, 0, 0])),
    );
}

/// MSRs a guest must not read or write; `gp` is the expected answer for most.
fn msrs(console: &mut Console) {
    for (name, msr) in [
        ("vm_cr", 0xc001_0114u32),
        ("vm_hsave_pa", 0xc001_0117),
        ("apic_base", 0x1b),
        ("feature_control", 0x3a),
        ("efer", 0xc000_0080),
        ("smm_base", 0xc001_0111),
        ("unknown", 0xdead_beef),
    ] {
        probe(console, format_args!("rdmsr-{name}"), Shown(arch::rdmsr(msr)));
    }
    for (name, msr, value) in [
        ("vm_cr-svmdis-lock", 0xc001_0114u32, 0x18u64),
        ("vm_hsave_pa", 0xc001_0117, 0x1000),
        ("apic_base-move", 0x1b, 0xfed0_0900),
        ("feature_control", 0x3a, 0),
        ("smm_base", 0xc001_0111, 0x1000),
        ("unknown", 0xdead_beef, 1),
    ] {
        probe(console, format_args!("wrmsr-{name}"), Shown(arch::wrmsr(msr, value).map(|()| 0)));
    }
}

/// I/O ports: reads of ports nobody emulates should come back all ones.
fn ports(console: &mut Console) {
    for port in [0x42u16, 0x60, 0x3f8, 0x3fd, 0x80, 0xe9, 0x2f8, 0x64, 0x70, 0x71, 0xcf9] {
        probe(console, format_args!("inb-{port:#x}"), Shown(arch::inb(port).map(u64::from)));
    }
    probe(console, format_args!("inl-0xcf8"), Shown(arch::inl(0xcf8).map(u64::from)));
    probe(console, format_args!("outl-0xcf8-bus0-dev0"), Shown(arch::outl(0xcf8, 0x8000_0000).map(|()| 0)));
    probe(console, format_args!("inl-0xcfc"), Shown(arch::inl(0xcfc).map(u64::from)));
    for (port, value) in [(0x80u16, 0x55u8), (0x3f8, b'!'), (0xe9, b'!'), (0x70, 0x8f)] {
        probe(console, format_args!("outb-{port:#x}-{value:#x}"), Shown(arch::outb(port, value).map(|()| 0)));
    }
    // The keyboard controller's "pulse reset line": harmless if the hypervisor intercepts port
    // 0x64, a machine reset if it passed the port through. On plain QEMU (no hypervisor in
    // between) it would just reset the VM, so only under the Xen ABI.
    if xen::detect().is_some() {
        probe(console, format_args!("outb-0x64-0xfe"), Shown(arch::outb(0x64, 0xfe).map(|()| 0)));
    }
}

/// Maps grant frame 0 above RAM, grants `GRANT_PAGE` (with a marker in it) to `grantee`.
fn grant(console: &mut Console, boot: &Boot, grantee: u16) {
    // 16 MiB above RAM: above any special pages the builder put right after it.
    let gpfn = pvh_probe::free_frame_above_ram(boot.memmap(), 16 << 20);
    let arg = XenAddToPhysmap { domid: domid::SELF, size: 0, space: xenmapspace::GRANT_TABLE, idx: 0, gpfn };
    let result = call(nr::MEMORY_OP, [xenmem::ADD_TO_PHYSMAP, addr(&arg), 0, 0, 0]);
    probe(console, format_args!("grant-table-frame0-at-gpfn-{gpfn:#x}"), Outcome(result));
    if !matches!(result, Ok(0)) || gpfn >= (1 << 32) >> 12 {
        say!(console, "pvh-probe: grant: no grant table frame, skipping");
        return;
    }
    let tsc = arch::rdtsc();
    let page = &raw mut GRANT_PAGE;
    let mut text = [0u8; 64];
    let mut len = 0;
    let mut w = Fmt(&mut text, &mut len);
    let _ = write!(w, "pvh-probe grant marker {tsc:016x}");
    let text = &text[..len];
    // SAFETY: GRANT_PAGE is only touched here (single vCPU, no interrupts) and by the
    // hypervisor on behalf of the grantee; raw pointer writes, no reference is created.
    unsafe { core::ptr::copy_nonoverlapping(text.as_ptr(), page.cast::<u8>(), text.len()) };
    let frame = (&raw const GRANT_PAGE as u64) >> 12;
    // Linux keeps refs 0..8 for the toolstack; use the first free one.
    let gref = 8usize;
    const _: () = assert!(8 < GRANT_ENTRIES_V1_PER_FRAME);
    let table = (gpfn << 12) as *mut GrantEntryV1;
    let entry = GrantEntryV1 { flags: 0, domid: grantee, frame: frame as u32 };
    // SAFETY: the hypervisor just placed grant frame 0 at `gpfn`, which the boot page tables
    // identity-map (checked below 4 GiB above); domid and frame go in first, flags last, as the
    // grant protocol requires, with volatile writes the compiler keeps in order.
    unsafe {
        let slot = table.add(gref);
        core::ptr::write_volatile(&raw mut (*slot).domid, entry.domid);
        core::ptr::write_volatile(&raw mut (*slot).frame, entry.frame);
        core::sync::atomic::compiler_fence(core::sync::atomic::Ordering::SeqCst);
        core::ptr::write_volatile(&raw mut (*slot).flags, gtf::PERMIT_ACCESS);
    }
    say!(
        console,
        "grant ref {gref} page {frame:#x} to domain {grantee}: {}",
        core::str::from_utf8(text).unwrap_or("?")
    );
}

/// A `core::fmt::Write` into a byte array (for the marker text).
struct Fmt<'a>(&'a mut [u8; 64], &'a mut usize);

impl Write for Fmt<'_> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        for &b in s.as_bytes() {
            if *self.1 < self.0.len() {
                self.0[*self.1] = b;
                *self.1 += 1;
            }
        }
        Ok(())
    }
}

/// Reads guest-physical memory 16 MiB past the end of RAM: the hypervisor should end the domain.
fn out_of_bounds(console: &mut Console, boot: &Boot) {
    let target = pvh_probe::ram_end(boot.memmap()) + (16 << 20);
    say!(console, "probe oob-read-{target:#x}: reading (the hypervisor should end this domain)");
    let result = if target < (1 << 32) { arch::read_u64(target) } else { Ok(u64::MAX) };
    probe(console, format_args!("oob-read-{target:#x}"), format_args!("survived, read {}", Shown(result)));
}
