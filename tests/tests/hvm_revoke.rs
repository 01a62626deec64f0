//! QEMU scenario for issue 15, item 2's gap: a paravirtual granter dies while an HVM guest maps
//! its grants. The hypervisor revokes the mappings (the guest frames show the HVM guest's own
//! scratch page), the guest keeps running, reads and writes them and unmaps them with clear
//! statuses, and nothing it writes reaches the dead granter's freed frames.

use hv_tests::Scenario;

/// `pvh-probe revoke` (HVM, Xen's `GNTTABOP_map_grant_ref` into guest frames above its RAM) maps
/// two writable grants of `hvm-granter` (paravirtual), which cannot end them while they are
/// mapped (busy bits) and crashes with them mapped. The hypervisor's release line for the
/// granter counts the revoked mappings (the HVM guest's two and Dom0's of the store page); the
/// HVM guest learns of the death from `EVTCHNOP_status` (its port to the granter is unbound
/// again), finds both frames showing a zeroed page instead of the granter's text, writes a
/// pattern through one and reads it back through both (one scratch page behind both frames, not
/// the granter's two frames), and unmaps both (status 0; the same handle again: bad handle).
/// Dom0 restarts the granter in place on its old RAM; the new incarnation, which binds to the
/// HVM guest's second port only after the pattern was written, finds none of it in the old
/// frames or anywhere in its heap.
#[test]
fn a_dying_granter_leaves_an_hvm_mapper_its_scratch_page() {
    let o = Scenario::new("pvh-revoke").run();
    o.expect_clean_finish();
    let hvm = o.domain_id("hvm");
    let peer = o.domain_id("peer");
    // The topology hard-codes both ids (and the ports) in the guests' arguments.
    assert_eq!((hvm, peer), (1, 2), "domain ids follow topology order");
    let text = |i: u32| format!("page {i} of hvm-granter (domain {peer}), grant {}", 8 + i);
    let seed = "0x5245564f4b454421";
    let hvm_lines = o.expect_in_order(&[
        &format!("[hvm] pvh-probe: revoke mode with domain {peer}"),
        &format!("[hvm] pvh-probe: allocated unbound port 3 for domain {peer}; waiting for its grants"),
        &format!("[hvm] pvh-probe: mapped grant 8 of domain {peer} at gfn 0x*: \"{}\"", text(0)),
        &format!("[hvm] pvh-probe: mapped grant 9 of domain {peer} at gfn 0x*: \"{}\"", text(1)),
        &format!("[hvm] pvh-probe: both mapped; telling domain {peer} on port 3 to die without ending its grants"),
        &format!("[hvm] pvh-probe: port 3 is unbound: domain {peer} is gone"),
        // Not the granter's text: a page of zeros (the HVM guest's scratch page).
        "[hvm] pvh-probe: after revocation gfn 0x* (grant 8) reads \"\" (0 non-zero bytes)",
        "[hvm] pvh-probe: after revocation gfn 0x* (grant 9) reads \"\" (0 non-zero bytes)",
        // Written through one frame, seen through the other: both show the same page.
        &format!("[hvm] pvh-probe: wrote pattern {seed} through gfn 0x*: 512 of 512 words read back there, 512 through gfn 0x*"),
        // GNTST_okay for each revoked mapping; the handle is then gone (GNTST_bad_handle).
        "[hvm] pvh-probe: unmapped both revoked mappings: status 0, 0; the first again: -4",
        &format!("[hvm] pvh-probe: allocated port 4 for domain {peer}'s next incarnation; waiting for its event"),
        &format!("[hvm] pvh-probe: event on port 4 from domain {peer}; revoke done, shutting down (poweroff)"),
        "[hv] domain * (hvm) shut down: poweroff",
    ]);
    let peer_lines = o.expect_in_order(&[
        &format!(
            "[peer] hvm-granter: first incarnation (domain {peer}): granted refs 8 and 9 (writable, machine addresses 0x* \
             0x*) to domain {hvm}"
        ),
        &format!("[peer] hvm-granter: bound local port * to port 3 of domain {hvm}; notifying"),
        &format!("[peer] hvm-granter: domain {hvm} has both mapped; ending them now: EBUSY, EBUSY"),
        &format!("[peer] hvm-granter: crashing on purpose with both grants mapped by domain {hvm}"),
        &format!("[hv] domain {peer} (peer) shut down: crash"),
        // Revoked before the granter's RAM was scrubbed and freed: the HVM guest's two and Dom0's
        // mapping of the granter's store page (the hypervisor counts that one too; Dom0 lets go
        // of it only once it has heard of the crash).
        &format!("[hv] domain {peer} (peer) released * KiB and * table frames, revoked 3 mappings of its grants; *"),
        &format!("[dom0] peer (domain {peer}) ended: crash; restarting it (on_crash = restart)"),
        &format!("[peer] hvm-granter: next incarnation (domain {peer}): RAM at 0x*..0x*; the first one's granted pages * are in my heap at 0x* and 0x*"),
        &format!("[peer] hvm-granter: bound local port * to port 4 of domain {hvm}: its pattern is written"),
        &format!(
            "[peer] hvm-granter: pattern {seed}: 0 words (0 non-zero bytes) and 0 words (0 non-zero bytes) in the old \
             granted pages, 0 words in the * pages of my heap"
        ),
        "[dom0] peer ended: exit (expected)",
    ]);
    // The next incarnation has the first one's RAM (first fit, the granter created last), so the
    // frames the HVM guest mapped are really among those it searched.
    let ram_of = |i: usize| -> String {
        let line = &o.lines()[i];
        line.split(" MiB at ").nth(1).and_then(|r| r.split(',').next()).unwrap_or_default().to_owned()
    };
    let created = format!("[hv] domain {peer} (peer) created in * us: 4 MiB at 0x*");
    let first_ram = ram_of(o.expect_line(&created));
    let next_ram = ram_of(o.find_from(peer_lines[6], &created).unwrap_or_else(|| o.fail("no second creation of peer")));
    if first_ram != next_ram {
        o.fail(&format!("the next incarnation's RAM is at {next_ram}, the first one's was at {first_ram}"));
    }
    // Across the two: the granter died before the HVM guest saw its port unbound; the guest
    // wrote its pattern before the next incarnation could bind (and look), and heard from it
    // only after it had looked.
    assert!(peer_lines[5] < hvm_lines[5], "the HVM guest saw the port unbound before the granter was released");
    assert!(hvm_lines[8] < peer_lines[8], "the next incarnation bound before the pattern was written");
    assert!(peer_lines[9] < hvm_lines[11], "the HVM guest heard from the next incarnation before it looked");
    o.expect_no_line("*FAILED*");
    o.expect_no_line("[peer] panic:*");
    o.expect_no_line("[hv] domain * (hvm) crashed*");
    o.expect_no_line("*PANIC*");
}
