//! QEMU scenarios for the hypervisor's hardening (issue 13): each plays an attacker against
//! the hypervisor from inside a domain and judges by the serial console, like
//! `tests/tests/scenarios.rs`.

use hv_tests::Scenario;

/// Finding 3: a driver domain writes to its device's capabilities (MSI-X control and table
/// pointer, a virtio vendor-specific capability, the last dword of config space). Every write
/// is refused with EPERM, and the device still works afterwards.
#[test]
fn a_driver_domain_cannot_write_its_devices_capabilities() {
    let dir = std::env::temp_dir().join(format!("hv-pci-caps-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Scenario::new("pci").disks_in(&dir).run();
    o.expect_clean_finish();
    o.expect_in_order(&[
        "[owner] device * 1af4:1001 class 010000",
        "[owner] config write to the MSI-X control refused: EPERM",
        "[owner] config write to the MSI-X table pointer refused: EPERM",
        "[owner] config write to a virtio capability refused: EPERM",
        "[owner] config write to the last dword (0xfc) refused: EPERM",
        "[owner] virtio-blk read back sector 1: matches (Ok(())); completion interrupt delivered on the pirq port",
    ]);
    o.expect_no_line("* ALLOWED*");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Finding 5: domains are soft-float and the hypervisor keeps no FPU state, so an x87 or SSE
/// instruction stops the domain with a report; a second domain never reads the first one's x87
/// registers. A domain that sets RFLAGS.AC keeps it, while every trap handler runs with AC
/// clear (the hypervisor reports an entry that found it set).
#[test]
fn fpu_use_is_stopped_and_ac_does_not_reach_the_handlers() {
    let o = Scenario::new("traps").run();
    o.expect_clean_finish();
    o.expect_line("[hv] domain * (x87-writer) crashed: device not available (an x87 instruction*");
    o.expect_line("[hv] domain * (x87-reader) crashed: device not available (an x87 instruction*");
    o.expect_line("[hv] domain * (sse) crashed: invalid opcode*");
    o.expect_no_line("*state not switched per domain*");
    o.expect_no_line("[x87-reader] read x87 st0*");
    o.expect_line("[ac] after * yields, RFLAGS.AC is still set");
    o.expect_no_line("[hv] RFLAGS.AC was set in a trap handler*");
    o.expect_hellos_finished();
}

/// Finding 3 with plain MSI: q35's AHCI controller has an MSI capability and no MSI-X. The
/// hypervisor programs the message itself; the owner's writes to the capability are refused.
#[test]
fn a_driver_domain_cannot_aim_its_devices_msi() {
    let o = Scenario::new("pci-msi").run();
    o.expect_clean_finish();
    o.expect_line("[hv] pci 00:1f.2 * assigned to domain *");
    o.expect_in_order(&[
        "[msi-owner] device 00:1f.2 *",
        "[msi-owner] config write to the MSI control refused: EPERM",
        "[msi-owner] config write to the MSI address refused: EPERM",
        "[msi-owner] config write to the MSI data refused: EPERM",
        "[msi-owner] MSI after the attack: address 0xfee00000, enabled",
        "[msi-owner] config write to the last dword (0xfc) refused: EPERM",
    ]);
    o.expect_no_line("* ALLOWED*");
}
