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
        // Behind the IOMMU (the default) QEMU's virtio devices are modern-only: 1af4:1042.
        "[owner] device * 1af4:1042 class 010000",
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
        // Behind the IOMMU (the default) the message is the remappable-format one naming the
        // interrupt entry of the device's vector (0xfee00000 | 0x50 << 5 | format bit 4).
        "[hv] iommu: pci 00:1f.2 may raise vector 0x50 (interrupt entry 80, source 00:1f.2 only)",
        "[msi-owner] device 00:1f.2 *",
        "[msi-owner] config write to the MSI control refused: EPERM",
        "[msi-owner] config write to the MSI address refused: EPERM",
        "[msi-owner] config write to the MSI data refused: EPERM",
        "[msi-owner] MSI after the attack: address 0xfee00a10, enabled",
        "[msi-owner] config write to the last dword (0xfc) refused: EPERM",
    ]);
    o.expect_no_line("* ALLOWED*");
}

/// Finding 4: a domain writes 4096 newlines in one `console_write`, then floods full lines for a
/// second. The hypercall no longer writes to the UART (it returns in microseconds), the flood is
/// rate-limited with a visible drop count, and the honest domains' lines are all there.
#[test]
fn a_console_flood_is_throttled_and_the_others_print_every_line() {
    let o = Scenario::new("console-flood").run();
    o.expect_clean_finish();
    let done =
        &o.lines()[o.expect_line("[flood] flood done: the 4096-newline write took * us; * more writes of 200 bytes")];
    let took_us: u64 = done
        .split("took ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| o.fail(&format!("no duration in {done:?}")));
    // One call is bounded: at most 8 KiB of output (910 empty `[flood] ` lines of 9 bytes), not 4096
    // lines. (The time it took is printed, not judged: QEMU under a loaded host is noisy; the
    // old hypervisor took 38 ms, this one 2-10 ms.)
    let empty = o.lines().iter().filter(|l| l.as_str() == "[flood] ").count();
    if empty > 910 {
        o.fail(&format!("one console_write of 4096 newlines became {empty} lines"));
    }
    let dropped = &o.lines()[o.expect_line("[hv] flood: * bytes of console output dropped")];
    let flood_bytes: usize = o.lines().iter().filter(|l| l.starts_with("[flood]")).map(|l| l.len() + 1).sum();
    eprintln!(
        "console flood: the newline write took {took_us} us, {empty} lines; {flood_bytes} bytes of flood output; {dropped}"
    );
    // Burst (128 KiB) plus the rate (32 KiB/s) over the flood's 1.3 s, with room to spare.
    if flood_bytes > 256 * 1024 {
        o.fail(&format!("the flooding domain put {flood_bytes} bytes on the console"));
    }
    for good in ["good1", "good2"] {
        o.expect_line(&format!("[{good}] hello from domain *"));
        let steps = o.count(&format!("[{good}] step */20 done at * ms"));
        if steps != 20 {
            o.fail(&format!("{good} printed {steps} of its 20 step lines"));
        }
        o.expect_line(&format!("[{good}] goodbye*"));
    }
    o.expect_no_line("[hv] good*: * bytes of console output dropped");
}

/// Finding 6: a domain whose grant mapping was revoked writes a secret into its scratch page
/// (which the revoked mapping now shows) and crashes; Dom0 restarts it and the new incarnation
/// gets the same frame as its scratch page. It must read zeros, not the secret.
#[test]
fn a_scratch_page_carries_nothing_to_its_next_owner() {
    let o = Scenario::new("scratch").run();
    o.expect_clean_finish();
    o.expect_in_order(&[
        "[mapper] first incarnation (domain 1): wrote a secret into my scratch page; crashing",
        "[dom0] mapper (domain 1) ended: crash; restarting it*",
        "[mapper] incarnation as domain *: mapping grant * of domain 3",
        "[mapper] scratch page after revocation: 0 non-zero bytes, 0 copies of the previous incarnation's secret; 0 copies in my heap",
    ]);
}

/// Finding 5, stray vectors: a driver domain makes its device DMA into the local APIC's MSI
/// window (the topology has no IOMMU), raising vectors 0x11 (#AC) and 0x15 (#CP) as interrupts
/// while domains run. The hypervisor recognises them as interrupts (no error code on the stack,
/// in service at the APIC), logs and ignores them; no domain is destroyed for them.
#[test]
fn stray_exception_vectors_from_a_device_destroy_nobody() {
    let o = Scenario::new("stray-vector").run();
    o.expect_clean_finish();
    o.expect_in_order(&[
        "[forger] payload written; reading it into the MSI window (vectors 0x11 and 0x15)",
        "[forger] device DMA to the MSI window done (*); this domain is still running",
    ]);
    o.expect_line("[hv] stray vector 0x11 ignored*");
    o.expect_line("[hv] stray vector 0x15 ignored*");
    o.expect_no_line("[hv] domain * crashed*");
    o.expect_hellos_finished();
}

/// Issue 17, item 2: behind the Intel IOMMU a driver domain's device reaches its own memory
/// (a normal read works) and nothing else: its write into the hypervisor's image at 1 MiB
/// faults, the hypervisor reports the device and the address and ends the domain, tears its
/// context down before freeing its memory, and the other domains finish.
#[test]
fn a_driver_domains_device_cannot_dma_outside_its_memory_behind_the_iommu() {
    let o = Scenario::new("dma-escape").run();
    o.expect_clean_finish();
    o.expect_in_order(&[
        "[hv] iommu: VT-d unit at 0xfed90000 * translating: devices nobody owns have no DMA",
        "[hv] iommu: pci 00:01.0 in domain 1's context (DID 1): device addresses * (its RAM), nothing else; 1 device(s) in contexts",
        "[escaper] read sector 0 into my own memory through the IOMMU",
        "[hv] iommu: DMA fault: domain 1's device pci 00:01.0 write at 0x100000: *",
        "[hv] domain 1 (escaper) crashed: its device made a DMA access outside its memory",
        "[hv] iommu: domain 1's 1 device context(s) cleared and invalidated",
        "[hv] domain 1 (escaper) released *",
        "[dom0] escaper ended: crash (expected)",
    ]);
    o.expect_no_line("[escaper] device DMA outside my memory done*");
    o.expect_hellos_finished();
}

/// Issue 17, item 3: forged interrupts behind an IOMMU that remaps them (topology msi-forge).
/// `holder` owns a device it never uses (vector 0x50, interrupt entry 0x50, usable only by its
/// device); `forger` has its own device write a 512-byte sector into entry 0x50's
/// remappable-format message address. Every 4-byte word of that write is one message: they name
/// entry 0x50 from the wrong requester, entries nobody was given (refused as not present),
/// entries past the table (refused), and compatibility-format messages carrying vector 0xff,
/// whose forgery used to leave the vector in service at the APIC and block every interrupt.
///
/// What QEMU 7.2's intel-iommu model does differs from the hardware in two ways (its
/// `vtd_mem_ir_write`/`vtd_interrupt_remap_msi`): a DMA write into the interrupt window carries
/// no requester id, so source-id verification is skipped and the message naming entry 0x50
/// reaches the holder as one interrupt; and compatibility-format messages pass although GSTS.CFIS
/// is clear. Refusals are reported on QEMU's stderr, not in fault records (those came in QEMU
/// 8.2). This test holds the hypervisor to what it controls: the entries nobody was given are
/// refused, the forged 0xff is stray (EOI'd, logged) and blocks nothing, the holder's device
/// raised at most the one interrupt the burst names, and everybody finishes.
#[test]
fn forged_interrupts_behind_interrupt_remapping_reach_no_vector_nobody_was_given() {
    let o = Scenario::new("msi-forge").run();
    o.expect_clean_finish();
    o.expect_in_order(&[
        "[hv] iommu: interrupt remapping on (256 entries at *): a device raises only its owner's vector; compatibility-format interrupts blocked (CFIS clear)",
        "[hv] iommu: pci 00:01.0 may raise vector 0x50 (interrupt entry 80, source 00:01.0 only)",
        "[hv] iommu: pci 00:02.0 may raise vector 0x51 (interrupt entry 81, source 00:02.0 only)",
        "[forger] payload written; reading it into interrupt entry 0x50's message at 0xfee00a10",
        "[forger] device DMA to the MSI window done (Ok(())); this domain is still running",
    ]);
    // Entries never given and handles past the table: the IOMMU refused them.
    for refusal in ["detected non-present IRTE", "index too large"] {
        if !o.run.stderr.contains(refusal) {
            o.fail(&format!("QEMU's IOMMU did not report a refused message ({refusal:?})"));
        }
    }
    o.expect_line("[hv] stray vector 0xff ignored *");
    o.expect_line("[holder] step 20/20 done at * ms");
    let raised = o.expect_line("[hv] pci 00:01.0 taken back from domain 1: it raised * interrupts");
    let n: u64 = o.lines()[raised]
        .split("raised ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| o.fail("no interrupt count"));
    if n > 1 {
        o.fail(&format!("the holder's idle device raised {n} interrupts; the forgery names its entry once"));
    }
    o.expect_line("[dom0] all domains finished: 2 as expected, 0 unexpected");
}
