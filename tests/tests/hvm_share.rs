//! QEMU scenario for issue 14's "HVM domains use the same event channels, grant tables and store
//! as the paravirtual domains" and issue 15's "grant copy and map work between any pair of PV and
//! HVM domains": an HVM guest speaking Xen's ABI and a unikernel speaking ours share a port and three
//! grants, judged by both sides' console lines.

use hv_tests::Scenario;

/// `pvh-probe share` (HVM, Xen's `EVTCHNOP_*` and v1 grant entries in its mapped grant frame)
/// and `hvm-peer` (paravirtual, `hv_rt::grant` and `hv_rt::evtchn`): the peer reads the marker
/// through the read-only grant (and cannot map it writable), writes through the writable one and
/// notifies the HVM guest's port; the HVM guest takes the event on its callback vector, sees the
/// text in its own page, copies the marker out of the page the peer granted it and its own text
/// in with `GNTTABOP_copy` (a bad reference, a frame outside its RAM and a page overrun are each
/// refused with their own status), maps that page above its RAM with `GNTTABOP_map_grant_ref`,
/// writes through the mapping, unmaps, maps it read-only and reads it back (a mapping over its
/// RAM, an unaligned address and an unknown handle are each refused), answers on the port, finds
/// both grants released and ends them; the peer then finds the mapped write in its page and can
/// end its grant (no mapping left).
#[test]
fn an_hvm_guest_and_a_unikernel_share_a_port_and_grants() {
    let o = Scenario::new("pvh-share").run();
    o.expect_clean_finish();
    let hvm = o.domain_id("hvm");
    let peer = o.domain_id("peer");
    // The topology hard-codes both ids (and the port) in the guests' arguments.
    assert_eq!((hvm, peer), (1, 2), "domain ids follow topology order");
    let marker = "hello from the HVM guest through a read-only grant";
    let text = format!("written by hvm-peer, domain {peer}; copy grant *");
    // Each side in its own order.
    o.expect_in_order(&[
        &format!("[hvm] pvh-probe: share mode with domain {peer}"),
        // The first port the HVM guest allocates follows the store (1) and console (2) ports.
        &format!("[hvm] pvh-probe: allocated unbound port 3 for domain {peer}"),
        &format!("[hvm] pvh-probe: granted ref 8 (read-only, gfn 0x*) and ref 9 (writable, gfn 0x*) to domain {peer}"),
        "[hvm] pvh-probe: waiting for an event on port 3 (callback vector 0xf3)",
        &format!("[hvm] pvh-probe: event on port 3 from the PV peer; writable page now says \"{text}\""),
        &format!(
            "[hvm] pvh-probe: GNTTABOP_copy with grant * of domain {peer}: copied out \"copied out of hvm-peer's page \
             by the HVM guest\", copied in our text; bad ref, foreign frame and page overrun refused (-3, -10, -10)"
        ),
        &format!("[hvm] pvh-probe: mapped grant * of domain {peer} at gfn 0x*: \"copied into hvm-peer's page by the HVM guest\""),
        "[hvm] pvh-probe: wrote through it, unmapped (0); read-only again: \"written into hvm-peer's page through the HVM \
         guest's mapping\", unmapped (0); over our RAM -1, unaligned -1, unknown handle -4",
        "[hvm] pvh-probe: answering on port 3",
        "[hvm] pvh-probe: both grants ended (no mapping left)",
        "[hv] domain * (hvm) shut down: poweroff",
    ]);
    let peer_lines = o.expect_in_order(&[
        &format!("[peer] hvm-peer: read through grant 8 of domain {hvm}: \"{marker}\""),
        "[peer] hvm-peer: writable mapping of read-only grant 8 refused: EPERM",
        &format!("[peer] hvm-peer: wrote \"{text}\" through grant 9"),
        &format!("[peer] hvm-peer: bound local port * to port 3 of domain {hvm}; notifying"),
        "[peer] hvm-peer: answer from the HVM guest on port *",
        "[peer] hvm-peer: our grant * now says \"written into hvm-peer's page through the HVM guest's mapping\"",
    ]);
    // Across the two (each side prints before it sends and after it sees the event): the peer
    // wrote and notified before the HVM guest saw the text, the HVM guest answered before the
    // peer got the answer.
    let notified = peer_lines[3];
    let seen = o.expect_line("[hvm] pvh-probe: event on port 3 from the PV peer*");
    let answered = o.expect_line("[hvm] pvh-probe: answering on port 3");
    assert!(notified < seen, "the HVM guest saw the text before the peer notified it");
    assert!(answered < peer_lines[4], "the peer got an answer before the HVM guest sent it");
    // The event reached the HVM guest as Xen delivers it: an upcall on the callback vector.
    o.expect_line("[hvm] pvh-probe: * upcall(s) on vector 0xf3, * event(s) on other ports");
    o.expect_no_line("[hvm] pvh-probe: 0 upcall(s)*");
    o.expect_no_line("*FAILED*");
    o.expect_no_line("[peer] panic:*");
    o.expect_no_line("*PANIC*");
}
