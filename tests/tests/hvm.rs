//! QEMU scenarios for HVM domains (issue 14): guests on AMD SVM with nested paging that speak
//! Xen's HVM ABI, beside the paravirtual unikernels, judged by the serial console.

use hv_tests::Scenario;

/// Our own PVH kernel (`frontends/pvh-probe`) boots through the PVH entry, finds Xen's CPUID
/// leaves, makes hypercalls by `vmmcall` and prints through `console_io`; hostile instances
/// throw garbage at every hypercall, MSR and port, and the ones that read outside their memory,
/// report a crash or triple-fault are ended alone, with a report naming them. A PV domain runs
/// to its end through all of it.
#[test]
fn pvh_guests_run_and_hostile_ones_hurt_nobody() {
    let o = Scenario::new("pvh").run();
    o.expect_clean_finish();
    o.expect_line("[hv] svm: nested paging, * ASIDs*: HVM domains available");
    o.expect_in_order(&[
        "[hv] domain * (probe) created in * us: PVH, 16 MiB at *, kernel pvh-probe entry 0x100000*",
        "[probe] pvh-probe: hello from an HVM guest, Xen 4.17.0-hv-rust",
        "[probe] pvh-probe: Xen CPUID leaves at 0x40000000, xen_version returned 0x40011",
        "[hv] domain * (probe) shut down: poweroff",
        "[hv] domain * (probe) released 16384 KiB and * table frames*",
    ]);
    // Bad guest addresses in every hypercall's arguments are -EFAULT, not a fault anywhere.
    assert!(o.count("[hostile] probe *-unmapped: -EFAULT") >= 10, "unmapped pointers are -EFAULT");
    assert!(o.count("[hostile] probe *-noncanonical: -EFAULT") >= 10, "non-canonical pointers are -EFAULT");
    o.expect_line("[hostile] probe rdmsr-vm_hsave_pa: gp(0x0)");
    o.expect_line("[hostile] probe wrmsr-vm_cr-svmdis-lock: gp(0x0)");
    o.expect_line("[hostile] probe inb-0x42: 0x0");
    o.expect_line("[hostile] probe add_to_physmap-other-domain: -EPERM");
    o.expect_line("[hostile] probe evtchn_alloc_unbound-in-dom0: -EPERM");
    // Placing shared_info all over the guest-physical space costs nested tables: bounded.
    o.expect_line("[hostile] probe add_to_physmap-shared-info-roaming: * of 63 placed, then -ENOMEM");
    o.expect_in_order(&["[hostile] pvh-probe: hostile done", "[hv] domain * (hostile) shut down: poweroff"]);
    o.expect_in_order(&[
        "[oob] probe oob-read-*: reading (the hypervisor should end this domain)",
        "[hv] domain * (oob) crashed: accessed guest-physical 0x*, outside its memory (rip=0x*)",
    ]);
    o.expect_line("[hv] domain * (crasher) shut down: crash (reported by the guest)");
    o.expect_line("[hv] domain * (tripler) crashed: triple fault (shutdown) at rip=0x*");
    o.expect_line("[hello] goodbye*");
    o.expect_no_line("*PANIC*");
}

/// Debian's unmodified kernel boots as a PVH DomU: Xen detected, events through the callback
/// vector, the Xen clock and timer, hvc0 as its console; its `/init` runs and shows the Xen
/// interrupts, then powers off, and its memory is released. The unikernel beside it keeps
/// running meanwhile.
#[test]
fn linux_boots_to_init_and_powers_off_beside_a_unikernel() {
    let o = Scenario::new("linux-boot").run();
    o.expect_clean_finish();
    let created = o.expect_line("[hv] domain * (linux) created in * us: PVH, 256 MiB at *, kernel linux entry 0x*");
    let lines = o.expect_in_order(&[
        "[linux] [*] Linux version 6.1.*",
        "[linux] [*] Hypervisor detected: Xen HVM",
        "[linux] [*] Booting kernel on Xen PVH",
        "[linux] [*] xen:events: Xen HVM callback vector for event delivery is enabled",
        "[linux] [*] printk: console [hvc0] enabled",
        "[linux] [*] clocksource: Switched to clocksource xen",
        "[linux] [*] Run /init as init process",
        "[linux] linux-guest: init started",
        "[linux] linux-guest: kernel 6.1.*",
        "[linux] *xen-percpu*virq*timer0",
        "[linux] *xen-dyn*event*hvc_console",
        "[linux] linux-guest: powering off",
        "[hv] domain * (linux) shut down: poweroff*",
        "[hv] domain * (linux) released 262144 KiB and * table frames*",
    ]);
    let ended = lines[lines.len() - 2];
    // The unikernel ran while Linux booted.
    let hello_steps =
        o.lines()[created..ended].iter().filter(|l| hv_tests::glob("[hello] step */* done at * ms", l)).count();
    assert!(hello_steps >= 1, "hello made no progress while Linux ran");
    o.expect_no_line("[linux] *BUG*");
    o.expect_no_line("[linux] *Oops*");
    o.expect_no_line("*PANIC*");
}

/// A Linux guest that panics reports it (SCHEDOP_shutdown crash) and is ended alone; a second
/// Linux guest and a unikernel finish normally.
#[test]
fn a_panicking_linux_guest_ends_alone() {
    let o = Scenario::new("linux-panic").run();
    o.expect_clean_finish();
    o.expect_in_order(&[
        "[panicker] *Kernel panic - not syncing: sysrq triggered crash*",
        "[hv] domain * (panicker) shut down: crash (reported by the guest)",
    ]);
    o.expect_line("[hv] domain * (calm) shut down: poweroff*");
    o.expect_line("[hello] goodbye*");
    o.expect_no_line("*PANIC*");
}
