//! QEMU scenarios: each boots a topology from `topologies/` and judges it by QEMU's exit code
//! AND the serial console (line shapes: see the contract in docs / hv-core's console). Domain
//! names are read from the topology files, so renaming a domain there does not break a test.
//! On failure every test prints the whole serial log and QEMU's stderr.

use std::collections::HashSet;

use hv_tests::{Boot, Firmware, Machine, Outcome, Scenario};

fn greet_booted_via(boot: Boot, machine: Machine, firmware: Option<Firmware>, entry: &str) -> Outcome {
    let mut s = Scenario::new("greet").boot(boot).machine(machine);
    if let Some(f) = firmware {
        s = s.firmware(f);
    }
    let o = s.run();
    o.expect_exit(hv_tests::EXIT_ALL_EXPECTED);
    o.expect_line(&format!("[hv] hv-core * booted via {entry}"));
    o.expect_clean_finish();
    o.expect_hellos_finished();
    o
}

#[test]
fn boots_through_grub_iso_on_q35() {
    let o = greet_booted_via(Boot::Iso, Machine::Q35, None, "multiboot2");
    // SeaBIOS GRUB passes a BIOS memory map and the ACPI 1.0 RSDP (tag 14), no EFI tags.
    o.expect_line("[hv] boot: RAM from the multiboot2 memory map (* ranges), ACPI 1.0 RSDP, RSDT at 0x*");
}

/// The same ISO through OVMF: GRUB's EFI image exits boot services and jumps to the same 32-bit
/// entry; the hypervisor takes RAM from the EFI memory map (tag 17) and finds ACPI through the
/// loader's RSDP copy (tags 14/15: no BIOS area to scan under UEFI).
#[test]
fn boots_through_grub_iso_under_uefi_on_q35() {
    let o = greet_booted_via(Boot::Iso, Machine::Q35, Some(Firmware::Uefi), "multiboot2");
    o.expect_line(
        "[hv] boot: UEFI (system table 0x*), RAM from the EFI memory map (* ranges), ACPI 2.0+ RSDP, XSDT at 0x*",
    );
    o.expect_no_line("*(but it reads*");
    // The IOMMU (on by default) is found through the XSDT that UEFI's RSDP leads to.
    o.expect_in_order(&[
        "[hv] iommu: VT-d unit at 0xfed90000 * translating: devices nobody owns have no DMA",
        "[hv] iommu: interrupt remapping on (256 entries at *)*",
    ]);
}

#[test]
fn boots_through_kernel_option_on_q35() {
    greet_booted_via(Boot::Direct, Machine::Q35, Some(Firmware::Qboot), "pvh");
}

#[test]
fn boots_through_kernel_option_on_pc() {
    let o = greet_booted_via(Boot::Direct, Machine::Pc, Some(Firmware::Qboot), "pvh");
    // The pc machine has no Intel IOMMU, so the topology's runs without one, and says so.
    o.expect_line("[hv] iommu: none (no DMAR table): devices of driver domains can DMA anywhere");
}

#[test]
fn boots_through_kernel_option_after_seabios() {
    greet_booted_via(Boot::Direct, Machine::Q35, Some(Firmware::SeaBios), "pvh");
}

#[test]
fn three_domains_greet_with_every_line_attributed() {
    let o = Scenario::new("greet").run();
    o.expect_clean_finish();
    o.expect_every_line_attributed();
    let hellos = o.domains_running("hello");
    if hellos.len() < 3 {
        o.fail(&format!("the greet topology should run three hello domains, it runs {hellos:?}"));
    }
    // Distinct ids, each created by the hypervisor under the same name Dom0 reports.
    let mut ids = HashSet::new();
    for name in &hellos {
        let id = o.domain_id(name);
        if !ids.insert(id) {
            o.fail(&format!("domain id {id} was given twice"));
        }
        o.expect_line(&format!("[hv] domain {id} ({name}) created*"));
    }
    o.expect_hellos_finished();
}

#[test]
fn crashing_domain_and_intruder_are_destroyed_while_others_finish() {
    let o = Scenario::new("faults").run();
    o.expect_clean_finish();
    for name in o.domains_running("crasher") {
        let id = o.domain_id(&name);
        o.expect_in_order(&[
            &format!("[hv] domain {id} ({name}) crashed: *rip=0x*"),
            &format!("[dom0] {name} ended: * (expected)"),
        ]);
        o.expect_no_line(&format!("[{name}] goodbye"));
    }
    for name in o.domains_running("intruder") {
        let id = o.domain_id(&name);
        o.expect_in_order(&[
            &format!("[{name}] bad pointer hypercall refused: EFAULT"),
            &format!("[hv] domain {id} ({name}) crashed: *"),
            &format!("[dom0] {name} ended: * (expected)"),
        ]);
    }
    o.expect_hellos_finished();
    o.expect_no_line("[hv] domain * (dom0) crashed:*");
}

#[test]
fn spinner_does_not_starve_the_others() {
    let o = Scenario::new("spin").run();
    o.expect_clean_finish();
    o.expect_hellos_finished();
    for name in o.domains_running("spinner") {
        o.expect_line(&format!("[dom0] {name} ended: * (expected)"));
    }
}

#[test]
fn domu_domctl_is_refused() {
    let o = Scenario::new("domctl").run();
    o.expect_clean_finish();
    for name in o.domains_running("domctl-probe") {
        o.expect_line(&format!("[{name}] domctl create refused: EPERM"));
        o.expect_line(&format!("[{name}] domctl list refused: EPERM"));
        o.expect_line(&format!("[dom0] {name} ended: * (expected)"));
    }
    // The probe created nothing: every domain the hypervisor created is one the topology lists.
    let known: Vec<&str> = o.topology.topology.domains.iter().map(|d| d.name.as_str()).collect();
    for l in o.lines().iter().filter(|l| hv_tests::glob("[hv] domain * (*) created*", l)) {
        let name = l.split_once('(').and_then(|(_, r)| r.split_once(')')).map(|(n, _)| n).unwrap_or("");
        if !known.contains(&name) {
            o.fail(&format!("the hypervisor created a domain the topology does not list: {l:?}"));
        }
    }
    o.expect_hellos_finished();
}

#[test]
fn default_topology_comes_up_and_stays_running() {
    let hellos =
        hv_tests::topology("default").domains_with_image("hello").iter().map(|d| d.name.clone()).collect::<Vec<_>>();
    // on_finish = "stay": stop once Dom0 reports the system idle and curl on the host got web's
    // page (through hostfwd, netback and netfront); QEMU must still be running.
    let s = Scenario::new("default");
    let port = s.host_port(80);
    let page: std::sync::Arc<std::sync::Mutex<Option<(u16, String)>>> = Default::default();
    let got = page.clone();
    let (mut idle, mut asked) = (false, false);
    let s = s.watch(move |line| {
        if let Some(l) = line {
            idle |= l == "[dom0] system idle; stop QEMU with Ctrl-C";
            if !asked && l.starts_with("[web] httpd: listening on ") {
                asked = true;
                let got = got.clone();
                std::thread::spawn(move || *got.lock().unwrap() = Some(hv_tests::curl(port, "/", 20)));
            }
        }
        idle && got.lock().unwrap().is_some()
    });
    let o = s.run();
    o.expect_stopped();
    match page.lock().unwrap().clone() {
        Some((200, body)) if body.contains("<html") => {}
        other => o.fail(&format!("curl on the host did not get web's page: {other:?}")),
    }
    o.expect_line("[dom0] all domains running");
    o.expect_hellos_finished();
    // The default system includes the block split driver on the virtio-blk disk.
    o.expect_line("[blkback] blkback serving a virtio-blk disk (interrupts) (* sectors)");
    o.expect_line("[kvlog] kvlog summary: records=20 * bad=0");
    o.expect_line("[dom0] kvlog ended: exit (expected)");
    for name in &hellos {
        o.expect_line(&format!("[dom0] {name} ended: exit (expected)"));
    }
    // The driver domains keep running in an interactive system.
    o.expect_line("[dom0] blkback ended: still running (expected)");
    o.expect_line("[dom0] netback ended: still running (expected)");
    o.expect_no_line("[hv] domain * (blkback) destroyed*");
    o.expect_no_line("[hv] domain * (netback) destroyed*");
    o.expect_no_line("[hv] power off requested*");
}

#[test]
fn dom0_drives_every_domctl_and_memory_comes_back() {
    let o = Scenario::new("lifecycle").run();
    o.expect_clean_finish();
    for check in [
        "create with an unknown image -> ENOENT",
        "create with a duplicate name -> EEXIST",
        "create larger than free memory -> ENOMEM",
        "destroy dom0 itself -> EBUSY",
        "pause a running domain",
        "list shows it paused",
        "a paused domain gets no CPU time",
        "an unpaused domain runs again",
        "20 create/destroy cycles succeed",
        "every frame returns to the allocator",
        "no cycle domain is left in the list",
    ] {
        o.expect_line(&format!("[dom0] check {check}: ok"));
    }
    o.expect_no_line("[dom0] check *: FAILED");
    o.expect_line("[dom0] lifecycle exercise: 0 checks failed");
}

#[test]
fn faults_are_reported_with_their_cause() {
    let o = Scenario::new("faults").run();
    o.expect_line("[hv] domain * (crasher) crashed: page fault at rip=0x* accessing 0x0 (read, not present*");
    o.expect_line("[hv] domain * (privileged) crashed: general protection fault*");
    o.expect_line("[hv] domain * (intruder) crashed: page fault * accessing 0xffff8* (write, protection violation*");
    o.expect_line("[hv] domain * (intruder-hv) crashed: page fault * accessing 0x100000 (write, protection violation*");
    for refusal in [
        "kernel pointer hypercall refused: EFAULT",
        "wrapping pointer hypercall refused: EFAULT",
        "read-only pointer hypercall refused: EFAULT",
        "unknown hypercall refused: ENOSYS",
    ] {
        o.expect_line(&format!("[intruder] {refusal}"));
    }
    // Each destroyed domain's memory went back to the allocator.
    for name in ["crasher", "privileged", "intruder", "intruder-hv"] {
        o.expect_line(&format!("[hv] domain * ({name}) released * KiB*"));
    }
}

#[test]
fn ping_and_pong_meet_through_the_store_and_survive_the_backend_dying() {
    let o = Scenario::new("pingpong").run();
    o.expect_clean_finish();
    o.expect_in_order(&[
        "[dom0] device pingpong/0: ping (domain *) served by pong (domain *)",
        "[pong] backend for domain * waiting in InitWait",
        "[pong] connected to domain *: ring ref *, port *",
        "[ping] connected to backend domain *: ring ref *, port *",
        "[ping] exchanged * messages in * ms, 0 bad",
        "[dom0] destroying pong (domain *) mid-stream",
        "[hv] domain * (pong) released * revoked 1 mappings of its grants*",
        "[ping] backend state is now Closed after * answered messages (0 bad)",
        "[ping] ring grant ended cleanly",
        "[ping] goodbye",
        "[dom0] ping ended: exit (expected)",
    ]);
    // At least 10^6 messages went through.
    let line = &o.lines()[o.expect_line("[ping] exchanged * messages in * ms, 0 bad")];
    let count: u64 = line.split_whitespace().nth(2).and_then(|n| n.parse().ok()).unwrap_or(0);
    if count < 1_000_000 {
        o.fail(&format!("only {count} messages were exchanged"));
    }
    for counter in ["free frames", "grant mappings", "event-channel ports", "store nodes"] {
        o.expect_line(&format!("[dom0] check {counter} back to baseline (* before, * after): ok"));
    }
}

#[test]
fn hostile_domain_gets_an_error_for_every_attack_and_the_victims_finish() {
    let o = Scenario::new("attack").run();
    o.expect_clean_finish();
    o.expect_line("[attacker] mapping grants not granted to us: * attempts, 0 allowed");
    for refusal in [
        "map of a read-only grant for writing refused: EPERM",
        "map of a nonexistent ref refused: ENOENT",
        "map naming the wrong granter refused: ESRCH",
        "unmap of a handle never issued refused: EINVAL",
        "second unmap of the same handle refused: EINVAL",
        "copy past the page end: BAD_COPY_ARG",
        "copy into a read-only grant: PERMISSION_DENIED",
        "copy into memory we do not own: BAD_VIRT_ADDR",
        "legitimate copy in the same batch: okay",
        "mapping one grant repeatedly: 127 mappings, then ENOSPC",
        "send on a port we do not own refused: EINVAL",
        "close a port we do not own refused: EINVAL",
        "bind to a port not offered to us refused: EINVAL",
        "bind the DOM_EXC virq refused: EPERM",
        "allocating ports: * ports, then ENOSPC",
        "store write outside our subtree refused: store error EACCES",
        "store write to dom0's subtree refused: store error EACCES",
        "store write to the victim's backend entries refused: store error EACCES",
        "registering watches: * watches, then store error E2BIG",
        "flooded the store with * bytes of requests without reading a reply",
    ] {
        o.expect_line(&format!("[attacker] {refusal}"));
    }
    o.expect_no_line("[attacker] * ALLOWED*");
    o.expect_in_order(&[
        "[attacker] read-only grant mapped: first byte 0xa5; writing to it",
        "[hv] domain * (attacker) crashed: page fault * (write, protection violation*",
        "[victim] domain * is gone; read-only page intact",
        "[victim] grants ended: yes",
    ]);
    o.expect_line("[ping] exchanged * messages in * ms, 0 bad");
    o.expect_line("[dom0] all domains finished: 4 as expected, 0 unexpected");
}

#[test]
fn a_driver_domain_owns_its_pci_device_and_nothing_else() {
    let dir = std::env::temp_dir().join(format!("hv-pci-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Scenario::new("pci").disks_in(&dir).run();
    o.expect_clean_finish();
    // Behind the IOMMU (the default) the virtio-blk device is modern-only (1af4:1042); the
    // topology's selector 1af4:1001 names it all the same.
    o.expect_line("[hv] pci * 1af4:1042 class 010000, * KiB of memory BARs");
    o.expect_line("[dom0] assigned pci * (1af4:1001) to owner");
    o.expect_in_order(&[
        "[owner] device * 1af4:1042 class 010000",
        "[owner] config read: vendor 1af4 device 1042",
        "[owner] config write to the device id refused: EPERM",
        "[owner] bar* sizing: * bytes (expected *), restored ok",
        "[owner] moving a BAR refused: EPERM",
        "[owner] virtio common cfg through bar*: device features (low word) 0x*",
    ]);
    // Sizing answers the BAR's real size.
    let l = &o.lines()[o.expect_line("[owner] bar* sizing: * bytes (expected *), restored ok")];
    let after =
        |key: &str| l.split_once(key).and_then(|(_, r)| r.split(|c: char| !c.is_ascii_digit()).find(|w| !w.is_empty()));
    let (got, want) = (after("sizing: "), after("(expected "));
    if got.is_none() || got != want {
        o.fail(&format!("BAR sizing read back the wrong size: {l:?}"));
    }
    o.expect_line("[owner] config read of the host bridge refused: EPERM");
    o.expect_line("[outsider] config read of the host bridge refused: EPERM");
    o.expect_line("[outsider] no devices assigned");
    o.expect_no_line("* ALLOWED*");
    o.expect_no_line("[owner] virtio common cfg through bar*: device features (low word) 0x00000000");
    // The driver domain drove the device with virtio-drivers; its completion interrupt reached it
    // as an event (MSI-X programmed by the hypervisor), and the sector is on the host's image.
    o.expect_in_order(&[
        "[owner] virtio-blk: 32768 sectors",
        "[owner] queue interrupt routed to MSI-X: true",
        "[owner] virtio-blk read back sector 1: matches (Ok(())); completion interrupt delivered on the pirq port",
    ]);
    let image = std::fs::read(dir.join("disk0.img")).expect("disk image");
    let expected = b"hv-core pci-probe wrote this sector through virtio-blk";
    if &image[512..512 + expected.len()] != expected {
        o.fail("the sector the driver domain wrote is not in the host's disk image");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kvlog_persists_records_on_blkback_over_the_blkif_ring() {
    let o = Scenario::new("blk").run();
    o.expect_clean_finish();
    o.expect_in_order(&[
        "[dom0] device vbd/0: kvlog (domain *) served by blkback (domain *)",
        "[blkback] vbd */51712: 8 MiB at 0 MiB, read-write; InitWait",
        "[blkback] vbd */51712: connected to domain *: ring ref *, port *",
        "[kvlog] blkfront: vbd connected to backend domain *: 16384 sectors, read-write, ring ref *, port *, indirect requests of up to 32 segments",
        "[kvlog] disk: 16384 sectors (8 MiB), read-write",
        "[kvlog] found 0 records (0 keys) at start, formatted a blank disk; log ends at sector 1",
        "[kvlog] appended 300 records (seq 1..300) in * ms, each flushed before acknowledged",
        "[kvlog] rescanned: 300 records, 300 keys, log ends at sector *",
        "[kvlog] verified 300 records, 0 bad",
        "[kvlog] kvlog summary: records=300 keys=300 bad=0",
        "[dom0] kvlog ended: exit (expected)",
        "[dom0] blkback ended: still running (expected)",
    ]);
    o.expect_no_line("[blkback] * refused:*");
}

#[test]
fn blkback_refuses_every_attack_and_the_honest_disk_stays_intact() {
    let dir = std::env::temp_dir().join(format!("hv-blk-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Scenario::new("blk-hostile").disks_in(&dir).run();
    o.expect_clean_finish();
    o.expect_line("[blkback] blkback serving a virtio-blk disk (interrupts) (65536 sectors)");
    o.expect_line("[blkback] vbd */51744: bad params \"offset_mib=30 size_mib=8 mode=w\": region ends at 38 MiB, past the 32 MiB backing device; device closed");
    for attack in [
        "write to the read-only vdisk",
        "flush of the read-only vdisk",
        "write just past the vdisk end",
        "write straddling the vdisk end",
        "read far past the vdisk end",
        "write at a wrapping sector",
        "last_sect 8",
        "first_sect after last_sect",
        "nr_segments 12",
        "read without segments",
        "bad grant ref",
        "grant given to dom0, not the backend",
        "read into a read-only grant",
        "reserved operation 4",
        "indirect request",
        "garbage slot",
    ] {
        o.expect_line(&format!("[blk-attacker] {attack}: error response (*)"));
    }
    o.expect_no_line("[blk-attacker] *ACCEPTED*");
    o.expect_in_order(&[
        "[blk-attacker] own vdisk of 8192 sectors works: yes",
        "[blk-attacker] bad requests: 16 refused of 16",
        "[blkback] vbd */51712: frontend broke the ring: *; disconnecting it",
        "[blk-attacker] lying req_prod: backend state now Closed",
        "[blk-attacker] all attacks done",
        "[kvlog] after the attack: rescanned 200 records, re-verified 200 records, 0 bad",
        "[kvlog] kvlog summary: records=200 keys=200 bad=0",
    ]);
    o.expect_line("[kvlog] verified 200 records, 0 bad");
    o.expect_line("[blk-attacker] read of the read-only vdisk: served");
    o.expect_line("[blkback] vbd */51712: request * refused: sectors 8192+1 outside the vdisk of 8192 sectors");
    o.expect_no_line("[kvlog] blkfront: * reconnecting");
    o.expect_line("[dom0] blk-attacker ended: still running (expected)");
    o.expect_line("[dom0] all domains finished: 3 as expected, 0 unexpected");
    // From the host: kvlog's vdisk (the first 8 MiB) holds its 200 records; the read-only vdisk
    // (12..16 MiB) and everything past the vdisks were never written.
    let image = std::fs::read(dir.join("disk0.img")).expect("disk image");
    let honest = &image[..8 << 20];
    let records = honest.chunks(512).skip(1).filter(|s| s.starts_with(b"KVR1")).count();
    if &honest[..8] != b"HVKVLOG1" || records != 200 {
        o.fail(&format!("the honest vdisk in the host image holds {records} records, expected 200"));
    }
    if image[12 << 20..].iter().any(|&b| b != 0) {
        o.fail("something was written to the read-only vdisk or past the vdisks");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// kvlog on blkback on the real disk, booted twice on the same image. The first boot has the
/// virtio-blk device behind the Intel IOMMU (issue 17, item 2: the default): the hypervisor turns
/// translation on, gives the device a context mapping exactly blkback's RAM, every record reaches
/// the disk (blkback hands its device the addresses it always did), and destroying blkback clears
/// the context before its memory is freed. The second boot runs without an IOMMU (`--no-iommu`)
/// and says what that means; it finds every record the first acknowledged.
#[test]
fn kvlog_records_persist_across_reboots_on_the_real_disk() {
    let dir = std::env::temp_dir().join(format!("hv-blk-disk-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = Scenario::new("blk-disk").disks_in(&dir).run();
    first.expect_clean_finish();
    first.expect_in_order(&[
        "[hv] iommu: VT-d unit at 0xfed90000 (version *, 3-level tables, *) translating: devices nobody owns have no DMA",
        "[hv] iommu: pci 00:01.0 in domain 1's context (DID 1): device addresses * (its RAM), nothing else; 1 device(s) in contexts",
        "[hv] pci 00:01.0 1af4:1042 assigned to domain 1",
        "[blkback] blkback serving a virtio-blk disk (interrupts) (* sectors)",
        "[kvlog] found 0 records (0 keys) at start, formatted a blank disk*",
        "[kvlog] appended 100 records (seq 1..100) in * ms, each flushed before acknowledged",
        "[kvlog] verified 100 records, 0 bad",
        "[hv] domain 1 (blkback) destroyed by dom0",
        "[hv] iommu: domain 1's 1 device context(s) cleared and invalidated",
        "[hv] domain 1 (blkback) released *",
    ]);
    first.expect_no_line("[hv] iommu: DMA fault*");
    // 512 KiB in one transfer: blkfront sends it as indirect requests (32 segments each with
    // kvlog's 64-page pool), blkback serves them.
    first.expect_in_order(&[
        "[kvlog] blkfront: vbd connected to backend domain 1: * indirect requests of up to 32 segments",
        "[kvlog] bulk: 512 KiB written and read back at sector 15360 in one transfer each: match",
    ]);
    // Same disk image, new QEMU without the IOMMU: the transitional device (1af4:1001) is the
    // one the topology names, and every acknowledged record is there.
    let second = Scenario::new("blk-disk").without_iommu().disks_in(&dir).run();
    second.expect_clean_finish();
    second.expect_line("[hv] iommu: none (no DMAR table): devices of driver domains can DMA anywhere");
    second.expect_line("[hv] pci 00:01.0 1af4:1001 assigned to domain 1");
    second.expect_in_order(&[
        "[kvlog] found 100 records (100 keys) at start*",
        "[kvlog] appended 100 records (seq 101..200) in * ms, each flushed before acknowledged",
        "[kvlog] rescanned: 200 records*",
        "[kvlog] verified 100 records, 0 bad",
    ]);
    // From the host: the vdisk starts 4 MiB into the image (params offset_mib=4); sector 0 holds
    // the log header, records start at sector 1, each on a sector boundary (docs/kvlog.md).
    let image = std::fs::read(dir.join("disk0.img")).expect("disk image");
    let vdisk = &image[4 << 20..12 << 20];
    if &vdisk[..8] != b"HVKVLOG1" {
        second.fail("no kvlog header where the vdisk starts in the host image");
    }
    let records = vdisk.chunks(512).skip(1).filter(|s| s.starts_with(b"KVR1")).count();
    if records != 200 {
        second.fail(&format!("the host image holds {records} records, expected 200"));
    }
    // The bulk region: the vdisk's last 512 KiB, as kvlog's `bulk_byte` says.
    let bulk = &image[(12 << 20) - (512 << 10)..12 << 20];
    if let Some(j) = (0..bulk.len()).find(|&j| bulk[j] != ((j / 4096) as u8).wrapping_mul(31) ^ j as u8 ^ 0x5a) {
        second.fail(&format!("the bulk region in the host image differs at byte {j}"));
    }
    second.expect_line("[kvlog] bulk: 512 KiB written and read back at sector 15360 in one transfer each: match");
    if image[..4 << 20].iter().any(|&b| b != 0) || image[12 << 20..].iter().any(|&b| b != 0) {
        second.fail("data was written outside the vdisk's region of the disk");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn blkfront_reconnects_when_its_backend_restarts_and_no_acknowledged_write_is_lost() {
    let dir = std::env::temp_dir().join(format!("hv-blk-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let o = Scenario::new("blk-restart").disks_in(&dir).run();
    o.expect_clean_finish();
    o.expect_in_order(&[
        "[kvlog] blkfront: vbd connected to backend domain 1: *",
        "[dom0] restarting blkback (domain 1) with the frontend * records in",
        "[dom0] started blkback again as domain *",
        "[kvlog] blkfront: backend went * with requests in flight; reconnecting",
        // The new backend's limits are negotiated again.
        "[kvlog] blkfront: vbd connected to backend domain *: *, indirect requests of up to 32 segments",
        "[kvlog] appended 600 records (seq 1..600) in * ms, each flushed before acknowledged",
        "[kvlog] verified 600 records, 0 bad",
    ]);
    // Behind the IOMMU (the default): the old blkback's device context is cleared and
    // invalidated before its memory is freed, and the new blkback gets a context built afresh
    // over its own RAM (often the same frames, freed and taken again).
    o.expect_in_order(&[
        "[hv] iommu: pci 00:01.0 in domain 1's context (DID 1): device addresses * (its RAM), nothing else; 1 device(s) in contexts",
        "[dom0] restarting blkback (domain 1) with the frontend * records in",
        "[hv] iommu: domain 1's 1 device context(s) cleared and invalidated",
        "[hv] domain 1 (blkback) released *",
        "[hv] iommu: pci 00:01.0 in domain *'s context (DID 1): device addresses * (its RAM), nothing else; 1 device(s) in contexts",
        "[dom0] started blkback again as domain *",
    ]);
    o.expect_no_line("[hv] iommu: DMA fault*");
    let image = std::fs::read(dir.join("disk0.img")).expect("disk image");
    let records = image[..16 << 20].chunks(512).skip(1).filter(|s| s.starts_with(b"KVR1")).count();
    if records != 600 {
        o.fail(&format!("the host image holds {records} records, expected 600"));
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A driver domain that crashes right after every start (`on_crash = "restart"`): Dom0 restarts
/// it after a growing delay and, after five crashes in a row, leaves it down with a report
/// instead of restarting it forever; the rest of the system finishes normally.
#[test]
fn a_crash_looping_driver_domain_backs_off_then_stays_down() {
    let o = Scenario::new("crash-loop").run();
    o.expect_clean_finish();
    o.expect_in_order(&[
        "[dom0] flaky (domain *) ended: crash; restarting it (on_crash = restart)",
        "[dom0] flaky (domain *) ended: crash; 2 crashes in a row, restarting it in 100 ms*",
        "[dom0] flaky (domain *) ended: crash; 3 crashes in a row, restarting it in 200 ms*",
        "[dom0] flaky (domain *) ended: crash; 4 crashes in a row, restarting it in 400 ms*",
        "[dom0] flaky (domain *) ended: crash; it crashed 5 times in a row, each within 10 s of starting: staying down*",
    ]);
    if o.count("[dom0] flaky restarted as domain *") != 4 {
        o.fail("flaky was not restarted exactly four times");
    }
    o.expect_line("[hello] hello from domain *");
}
