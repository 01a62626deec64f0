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

/// Issue 17, items 2 and 5: behind the Intel IOMMU a hostile driver domain's device reaches its
/// own memory (a normal read and a marker written and read back work) and nothing else. Four
/// attackers, each with its own virtio-blk device, aim it at the hypervisor's image (a write,
/// then a read), at memory no domain owns and at another domain's RAM: each access faults, the
/// hypervisor reports the device, the direction and the page and ends that attacker alone (its
/// context torn down before its memory is freed), the victim finds its pattern intact from its
/// own side after every attack, the sector the device was to fill from the hypervisor's image
/// holds none of its bytes on the host (zeros: QEMU completes the request with what its blocked
/// read gave the device), and `good` finishes.
#[test]
fn a_driver_domains_device_cannot_dma_outside_its_memory_behind_the_iommu() {
    let dir = std::env::temp_dir().join(format!("hv-dma-escape-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Scenario::new("dma-escape").disks_in(&dir).run();
    o.expect_clean_finish();
    o.expect_line("[hv] iommu: VT-d unit at 0xfed90000 * translating: devices nobody owns have no DMA");
    let rams = domain_rams(&o);
    let ram_of = |name: &str| {
        rams.iter().find(|r| r.0 == name).map(|r| (r.1, r.2)).unwrap_or_else(|| o.fail(&format!("no RAM for {name}")))
    };
    let owner_of = |at: u64| rams.iter().find(|r| (r.1..r.2).contains(&at)).map(|r| r.0.clone());
    // (domain, its device: disk N is pci 00:0N.0 and goes to the Nth domain with a pci device,
    // its target, what the device does at the target)
    let attacks = [
        ("hv-writer", "00:01.0", "hv-write", "write"),
        ("hv-reader", "00:02.0", "hv-read", "read"),
        ("unowned-writer", "00:03.0", "unowned", "write"),
        ("peer-writer", "00:04.0", "peer", "write"),
    ];
    let mut fault_lines = Vec::new();
    for (name, bdf, target, access) in attacks {
        let id = o.domain_id(name);
        let (ram, ram_end) = ram_of(name);
        let at = o.expect_line(&format!("[{name}] target {target} at 0x* (*); my RAM *"));
        let addr =
            hex_after(&o.lines()[at], " at ").unwrap_or_else(|| o.fail(&format!("no address in line {}", at + 1)));
        match target {
            "hv-write" | "hv-read" => check(&o, addr == 0x10_0000, &format!("{name} aims at {addr:#x}, not 1 MiB")),
            "unowned" => {
                check(&o, owner_of(addr).is_none(), &format!("{addr:#x} is {:?}'s RAM", owner_of(addr)));
                let top = rams.iter().map(|r| r.2).max().unwrap_or(0);
                check(&o, addr >= top, &format!("{addr:#x} is not above every domain's RAM (up to {top:#x})"));
                let memory = machine_memory(&o);
                check(&o, addr + 4096 <= memory, &format!("{addr:#x} is outside machine memory ({memory:#x})"));
            }
            _ => check_peer_premise(&o, addr, ram, owner_of(addr).as_deref(), ram_of("victim")),
        }
        let (verb, preposition) = if access == "read" { ("writing", "from") } else { ("reading", "into") };
        let fault =
            // Reported as it happens: the unit's fault event interrupt, not the next poll.
            format!(
                "[hv] iommu: DMA fault: domain {id}'s device pci {bdf} {access} at {:#x}: * (reason *; found by fault event)",
                addr & !0xfff
            );
        o.expect_in_order(&[
            &format!(
                "[hv] iommu: pci {bdf} in domain {id}'s context (DID *): device addresses {ram:#x}-{:#x} (its RAM), nothing else; *",
                ram_end - 1
            ),
            &format!("[hv] pci {bdf} 1af4:1042 assigned to domain {id}"),
            &format!("[dom0] assigned pci {bdf} (1af4:1001) to {name}"),
            &format!("[{name}] read sector 0 into my own memory through the IOMMU"),
            &format!("[{name}] wrote the marker to sector 1 and read it back through the IOMMU"),
            &format!("[{name}] target {target} at {addr:#x} (*); my RAM {ram:#x}-{:#x}", ram_end - 1),
            &format!("[{name}] now {verb} sector 1 {preposition} {addr:#x}"),
            &fault,
            &format!("[hv] domain {id} ({name}) crashed: its device made a DMA access outside its memory"),
            &format!("[hv] iommu: domain {id}'s 1 device context(s) cleared and invalidated"),
            &format!("[hv] domain {id} ({name}) released *"),
            &format!("[dom0] {name} ended: crash (expected)"),
            "[victim] pattern intact at * ms: * KiB checked, 0 words changed",
        ]);
        o.expect_no_line(&format!("[{name}] device DMA outside my memory done*"));
        fault_lines.push(fault);
    }
    // Every fault recorded is one of the four, none was lost, and only the attackers ended badly.
    for (i, l) in o.lines().iter().enumerate().filter(|(_, l)| l.starts_with("[hv] iommu: DMA fault:")) {
        check(
            &o,
            fault_lines.iter().any(|f| hv_tests::marker(f, l)),
            &format!("line {}: unexpected fault {l:?}", i + 1),
        );
    }
    o.expect_no_line("[hv] iommu: * fault records overflowed*");
    check(&o, o.count("[hv] domain * crashed:*") == attacks.len(), "a domain other than the attackers crashed");
    o.expect_in_order(&["[victim] pattern intact at *", "[dom0] victim ended: exit (expected)"]);
    o.expect_hellos_finished();
    // The device never carried the hypervisor's image to the disk. QEMU completes the write with
    // what its blocked read produced (zeros), so sector 1 holds zeros or still the marker; never
    // the hypervisor's bytes at 1 MiB (taken from its ELF: neither zeros nor the marker).
    let image = std::fs::read(dir.join("hv-read.img")).unwrap_or_else(|e| o.fail(&format!("reading hv-read.img: {e}")));
    let sector = image.get(512..1024).unwrap_or_else(|| o.fail("hv-read.img has no sector 1"));
    let marker: Vec<u8> = b"dma-escaper marker ".iter().copied().cycle().take(512).collect();
    let hv = hv_image_bytes(0x10_0000, 512);
    check(&o, hv != [0; 512] && hv != marker, "the hypervisor's first 512 bytes at 1 MiB are zeros or the marker");
    let zeros = sector == [0; 512];
    check(
        &o,
        zeros || sector == marker,
        &format!("hv-read.img's sector 1 is neither zeros nor the marker: {sector:02x?}"),
    );
    eprintln!("hv-read.img's sector 1 after the blocked read: {}", if zeros { "zeros" } else { "the marker" });
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `peer` attack's premise: the target is 2 MiB below the attacker's RAM, inside the victim's
/// RAM (by the hypervisor's creation lines) and inside the range it filled with its pattern (by
/// its own line), with the whole sector the device would write.
#[track_caller]
fn check_peer_premise(o: &hv_tests::Outcome, addr: u64, ram: u64, owner: Option<&str>, victim: (u64, u64)) {
    check(o, addr + (2 << 20) == ram, &format!("the peer target {addr:#x} is not 2 MiB below its RAM at {ram:#x}"));
    check(o, owner == Some("victim"), &format!("the peer target {addr:#x} is {owner:?}'s RAM, not victim's"));
    let line =
        &o.lines()[o.expect_line("[victim] pattern over machine 0x*-0x* (* KiB of my * KiB); checking it at * ms")];
    let range = line.split_once("machine ").and_then(|(_, r)| r.split_once('-'));
    let (from, to) = range.map_or((None, None), |(f, t)| (hex_after(f, ""), hex_after(t, "")));
    let inside =
        matches!((from, to), (Some(f), Some(t)) if victim.0 <= f && f <= addr && addr + 511 <= t && t < victim.1);
    check(
        o,
        inside,
        &format!("the peer target {addr:#x} is not inside the victim's pattern in its RAM {victim:x?}: {line:?}"),
    );
}

/// Every domain's RAM `(name, start, end)` from `[hv] domain N (name) created in X us: M MiB at 0x...`.
fn domain_rams(o: &hv_tests::Outcome) -> Vec<(String, u64, u64)> {
    let mut out = Vec::new();
    for l in o.lines().iter().filter(|l| hv_tests::glob("[hv] domain * (*) created in * us: * MiB at 0x*", l)) {
        let name = l.split_once(" (").and_then(|(_, r)| r.split_once(") ")).map(|(n, _)| n.to_owned());
        let mib: Option<u64> = l.split_once(" us: ").and_then(|(_, r)| r.split(' ').next()?.parse().ok());
        match (name, mib, hex_after(l, " MiB at ")) {
            (Some(n), Some(m), Some(at)) => out.push((n, at, at + (m << 20))),
            _ => o.fail(&format!("cannot read the RAM in {l:?}")),
        }
    }
    out
}

/// `len` bytes of the hypervisor's image at physical address `at`, from its ELF's load segments.
fn hv_image_bytes(at: u64, len: usize) -> Vec<u8> {
    let path = xtask::paths::Paths::hypervisor_elf_in(&hv_tests::image_dir());
    let elf = std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let int = |o: usize, n: usize| elf[o..o + n].iter().rev().fold(0u64, |v, b| v << 8 | u64::from(*b));
    let (phoff, phentsize, phnum) = (int(0x20, 8) as usize, int(0x36, 2) as usize, int(0x38, 2) as usize);
    for p in (0..phnum).map(|i| phoff + i * phentsize) {
        let (offset, paddr, filesz) = (int(p + 8, 8), int(p + 0x18, 8), int(p + 0x20, 8));
        if int(p, 4) == 1 && paddr <= at && at + len as u64 <= paddr + filesz {
            let start = (offset + at - paddr) as usize;
            return elf[start..start + len].to_vec();
        }
    }
    panic!("{} loads nothing at {at:#x}", path.display());
}

/// The machine memory QEMU was given (`-m <N>M`).
fn machine_memory(o: &hv_tests::Outcome) -> u64 {
    let m = o.run.command.split_once(" -m ").and_then(|(_, r)| r.split_once("M ")).and_then(|(n, _)| n.parse().ok());
    m.map(|mib: u64| mib << 20).unwrap_or_else(|| o.fail("no -m <N>M in the QEMU command"))
}

/// The hexadecimal number right after the first `key` in `line`.
fn hex_after(line: &str, key: &str) -> Option<u64> {
    let digits = line.split_once(key)?.1.strip_prefix("0x")?;
    let end = digits.find(|c: char| !c.is_ascii_hexdigit()).unwrap_or(digits.len());
    u64::from_str_radix(&digits[..end], 16).ok()
}

#[track_caller]
fn check(o: &hv_tests::Outcome, ok: bool, why: &str) {
    if !ok {
        o.fail(why);
    }
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
