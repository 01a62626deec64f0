//! Hostile domains: each test plays a domain breaking a rule and checks that it gets a clear
//! error, that Dom0's memory for it stays bounded, and that other domains are unaffected.

mod common;

use common::*;
use shared_ring::wire::xenstore::{XsType, XsdSockmsg};
use xenstored::{Limits, MAX_MESSAGE, ProtocolViolation, StoreServer};

fn server_with(domains: &[u16]) -> StoreServer {
    server_with_limits(domains, Limits::default())
}

/// The count quotas alone: byte budgets out of the way (tests/memory.rs plays those).
fn counts_only() -> Limits {
    Limits { node_bytes: 1 << 40, transaction_bytes: 1 << 40, watch_bytes: 1 << 40, ..Limits::default() }
}

fn server_with_limits(domains: &[u16], limits: Limits) -> StoreServer {
    let mut server = StoreServer::new(limits);
    for &d in domains {
        server.introduce(d).unwrap();
    }
    server
}

#[test]
fn writes_outside_own_subtree_are_refused() {
    let mut s = server_with(&[5, 6]);
    write(&mut s, 6, b"victim", b"safe").unwrap();
    for path in [
        &b"/local/domain/6/victim"[..],
        b"/local/domain/6/new",
        b"/local/domain/7",
        b"/local/domain/0/x",
        b"/local/x",
        b"/x",
        b"/",
        b"/tool/xenstored",
    ] {
        assert_eq!(write(&mut s, 5, path, b"evil"), err("EACCES"), "{path:?}");
        assert_eq!(ask(&mut s, 5, XsType::Mkdir, 0, &fields(&[path])), err("EACCES"), "{path:?}");
    }
    assert_eq!(ask(&mut s, 5, XsType::Rm, 0, &fields(&[b"/local/domain/6/victim"])), err("EACCES"));
    assert_eq!(ask(&mut s, 5, XsType::Rm, 0, &fields(&[b"/local/domain/6"])), err("EACCES"));
    assert_eq!(read(&mut s, 5, b"/local/domain/6/victim"), err("EACCES"));
    assert_eq!(ask(&mut s, 5, XsType::Directory, 0, &fields(&[b"/local/domain"])), err("EACCES"));
    assert_eq!(ask(&mut s, 5, XsType::GetPerms, 0, &fields(&[b"/local/domain/6"])), err("EACCES"));
    // Permissions: not the owner; cannot give itself ownership of its own node to another.
    assert_eq!(ask(&mut s, 5, XsType::SetPerms, 0, &fields(&[b"/local/domain/6/victim", b"b5"])), err("EACCES"));
    write(&mut s, 5, b"mine", b"").unwrap();
    assert_eq!(ask(&mut s, 5, XsType::SetPerms, 0, &fields(&[b"mine", b"n6"])), err("EPERM"));
    // Domain 5 cannot hand itself rights on its home's parent either.
    assert_eq!(ask(&mut s, 5, XsType::SetPerms, 0, &fields(&[b"/local/domain", b"b5"])), err("EACCES"));
    assert_eq!(read(&mut s, 6, b"victim"), Ok(b"safe".to_vec()));
    s.check_invariants().unwrap();
}

#[test]
fn path_tricks_are_invalid() {
    let mut s = server_with(&[5, 6]);
    write(&mut s, 6, b"x", b"").unwrap();
    for path in [
        &b".."[..],
        b"../6/x",
        b"/local/domain/5/../6/x",
        b"/local/domain/5/./x",
        b"//local/domain/6/x",
        b"/local//domain/6/x",
        b"/local/domain/5/",
        b"x/",
        b"",
        b"a b",
        b"a\xff",
        b"a\nb",
    ] {
        assert_eq!(write(&mut s, 5, path, b"v"), err("EINVAL"), "{path:?}");
        assert_eq!(read(&mut s, 5, path), err("EINVAL"), "{path:?}");
    }
    // A NUL inside a single-argument path is an extra field, not a shorter path.
    assert_eq!(ask(&mut s, 5, XsType::Read, 0, b"x\0/local/domain/6/x\0"), err("EINVAL"));
    assert_eq!(ask(&mut s, 5, XsType::Rm, 0, b"x\0y\0"), err("EINVAL"));
    // Unterminated path.
    assert_eq!(ask(&mut s, 5, XsType::Read, 0, b"x"), err("EINVAL"));
    assert_eq!(ask(&mut s, 5, XsType::Write, 0, b"x"), err("EINVAL"));
    // Path length limits: relative 2048, absolute 3072.
    let long_rel = vec![b'a'; 2049];
    assert_eq!(write(&mut s, 5, &long_rel, b""), err("EINVAL"));
    let mut long_abs = b"/local/domain/5/".to_vec();
    long_abs.resize(3073, b'a');
    assert_eq!(ask(&mut s, 5, XsType::Read, 0, &fields(&[&long_abs])), err("EINVAL"));
    // A domid that does not fit domid_t.
    assert_eq!(ask(&mut s, 5, XsType::GetDomainPath, 0, b"65536\0"), err("EINVAL"));
    assert_eq!(ask(&mut s, 5, XsType::SetPerms, 0, &fields(&[b"x", b"b99999"])), err("EINVAL"));
    s.check_invariants().unwrap();
}

#[test]
fn oversized_message_kills_only_that_connection() {
    let mut s = server_with(&[5, 6]);
    let mut bytes = XsdSockmsg { msg_type: XsType::Write as u32, req_id: 3, tx_id: 0, len: 4097 }.to_raw().to_vec();
    bytes.extend(vec![b'a'; 4097]);
    bytes.extend(msg(XsType::Read, 4, 0, b"x\0"));
    // Only the header is taken; nothing after it.
    assert_eq!(s.receive(5, &bytes), Ok(16));
    let out = drain(&mut s, 5);
    assert_eq!(out.len(), 1);
    assert!(out[0].is_error("E2BIG"));
    assert_eq!(out[0].req_id, 3);
    assert_eq!(s.connection(5).unwrap().broken(), Some(ProtocolViolation::PayloadTooLong { len: 4097 }));
    assert_eq!(s.receive(5, &bytes[16..]), Ok(0));
    assert_eq!(s.wanted(5), 0);
    // Everyone else carries on.
    assert_eq!(write(&mut s, 6, b"fine", b"1"), ok());
    assert_eq!(read(&mut s, 0, b"/local/domain/6/fine"), Ok(b"1".to_vec()));
    // Dom0 can release the broken domain cleanly.
    s.release(5).unwrap();
    s.check_invariants().unwrap();
}

#[test]
fn max_payload_is_accepted_and_unknown_types_do_not_wedge() {
    let mut s = server_with(&[5]);
    // Exactly 4096 bytes of payload: allowed (Dom0 has no value quota).
    let mut payload = b"/v\0".to_vec();
    payload.resize(4096, b'z');
    assert_eq!(ask(&mut s, 0, XsType::Write, 0, &payload), ok());
    assert_eq!(read(&mut s, 0, b"/v").unwrap().len(), 4093);
    // A guest's value is capped at 2048 bytes.
    let mut payload = b"v\0".to_vec();
    payload.resize(2 + 2049, b'z');
    assert_eq!(ask(&mut s, 5, XsType::Write, 0, &payload), err("ENOSPC"));
    // Unknown types (including the removed 20 and XS_INVALID) are answered, and the stream
    // continues with the next message.
    for t in [20u32, 27, 0xffff, u32::MAX] {
        let mut bytes = XsdSockmsg { msg_type: t, req_id: 9, tx_id: 0, len: 5 }.to_raw().to_vec();
        bytes.extend(b"junk\0");
        bytes.extend(msg(XsType::GetDomainPath, 10, 0, b"5\0"));
        assert_eq!(s.receive(5, &bytes), Ok(bytes.len()));
        let out = drain(&mut s, 5);
        assert!(out[0].is_error("ENOSYS") && out[0].req_id == 9, "{out:?}");
        assert_eq!(out[1].payload, b"/local/domain/5\0");
    }
}

#[test]
fn malformed_headers_split_across_reads_are_reassembled_or_rejected() {
    let mut s = server_with(&[5]);
    // A valid request delivered in every possible two-piece split.
    let bytes = msg(XsType::Write, 1, 0, b"k\0value");
    for cut in 0..=bytes.len() {
        assert_eq!(s.receive(5, &bytes[..cut]), Ok(cut));
        assert_eq!(s.receive(5, &bytes[cut..]), Ok(bytes.len() - cut));
        let out = drain(&mut s, 5);
        assert_eq!(out.len(), 1, "cut {cut}");
        assert_eq!(out[0].payload, b"OK\0");
    }
    // Truncated header then nothing: no reply, no state beyond the partial header.
    assert_eq!(s.receive(5, &bytes[..7]), Ok(7));
    assert!(drain(&mut s, 5).is_empty());
    assert_eq!(s.wanted(5), 9);
    assert!(s.connection(5).unwrap().buffered_bytes() <= MAX_MESSAGE);
    // The rest of a bad header (len > 4096) arriving one byte at a time breaks it.
    let bad = XsdSockmsg { msg_type: 2, req_id: 1, tx_id: 0, len: u32::MAX }.to_raw();
    let mut s = server_with(&[5]);
    for b in bad {
        assert_eq!(s.receive(5, &[b]), Ok(1));
    }
    assert!(s.connection(5).unwrap().broken().is_some());
    // Garbage payload of a valid header: an error reply, the stream stays in step.
    let mut s = server_with(&[5]);
    let mut bytes = msg(XsType::SetPerms, 1, 0, b"\xff\xfe\0\0\0");
    bytes.extend(msg(XsType::Read, 2, 0, b"\0"));
    bytes.extend(msg(XsType::Write, 3, 0, b"ok\0"));
    assert_eq!(s.receive(5, &bytes), Ok(bytes.len()));
    let out = drain(&mut s, 5);
    assert!(out[0].is_error("EINVAL") && out[1].is_error("EINVAL"));
    assert_eq!(out[2].payload, b"OK\0");
}

#[test]
fn watch_quota() {
    let mut s = server_with(&[5]);
    for i in 0..128 {
        assert_eq!(ask(&mut s, 5, XsType::Watch, 0, &fields(&[b"w", format!("{i}").as_bytes()])), ok());
    }
    assert_eq!(ask(&mut s, 5, XsType::Watch, 0, &fields(&[b"w", b"one-too-many"])), err("E2BIG"));
    assert_eq!(ask(&mut s, 5, XsType::Unwatch, 0, &fields(&[b"w", b"0"])), ok());
    assert_eq!(ask(&mut s, 5, XsType::Watch, 0, &fields(&[b"w", b"now-fits"])), ok());
    // Dom0 is exempt.
    for i in 0..200 {
        assert_eq!(ask(&mut s, 0, XsType::Watch, 0, &fields(&[b"/w", format!("{i}").as_bytes()])), ok());
    }
    s.check_invariants().unwrap();
}

#[test]
fn node_and_transaction_quotas() {
    let mut s = server_with_limits(&[5], counts_only());
    // The home counts as one owned node.
    for i in 0..999 {
        assert_eq!(write(&mut s, 5, format!("n{i}").as_bytes(), b""), ok(), "{i}");
    }
    assert_eq!(s.store().owned(5), 1000);
    assert_eq!(write(&mut s, 5, b"n-extra", b""), err("ENOSPC"));
    assert_eq!(ask(&mut s, 5, XsType::Mkdir, 0, b"n-extra\0"), err("ENOSPC"));
    // Overwriting an existing node costs nothing; removing frees quota.
    assert_eq!(write(&mut s, 5, b"n0", b"changed"), ok());
    ask(&mut s, 5, XsType::Rm, 0, b"n1\0").unwrap();
    assert_eq!(write(&mut s, 5, b"n-extra", b""), ok());
    // Quota also applies to what a transaction would create, checked at commit.
    ask(&mut s, 5, XsType::Rm, 0, b"n2\0").unwrap();
    let tx = ask(&mut s, 5, XsType::TransactionStart, 0, b"\0").unwrap();
    let tx: u32 = std::str::from_utf8(tx.strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap();
    assert_eq!(ask(&mut s, 5, XsType::Write, tx, b"t1\0"), ok());
    assert_eq!(ask(&mut s, 5, XsType::Write, tx, b"t2\0"), err("ENOSPC"));
    // Dom0 hands domain 5 a node elsewhere (touching nothing the transaction saw): the
    // commit would now exceed the quota.
    write(&mut s, 0, b"/elsewhere", b"").unwrap();
    ask(&mut s, 0, XsType::SetPerms, 0, &fields(&[b"/elsewhere", b"n5"])).unwrap();
    assert_eq!(ask(&mut s, 5, XsType::TransactionEnd, tx, b"T\0"), err("ENOSPC"));
    assert_eq!(s.store().owned(5), 1000);

    let mut s = server_with_limits(&[5], counts_only());
    let mut txs = Vec::new();
    for _ in 0..10 {
        txs.push(ask(&mut s, 5, XsType::TransactionStart, 0, b"\0").unwrap());
    }
    assert_eq!(ask(&mut s, 5, XsType::TransactionStart, 0, b"\0"), err("ENOSPC"));
    let first: u32 = std::str::from_utf8(txs[0].strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap();
    ask(&mut s, 5, XsType::TransactionEnd, first, b"F\0").unwrap();
    assert!(ask(&mut s, 5, XsType::TransactionStart, 0, b"\0").is_ok());
    // Back at ten open: refused again.
    let tx = ask(&mut s, 5, XsType::TransactionStart, 0, b"\0");
    assert_eq!(tx, err("ENOSPC"));
    s.check_invariants().unwrap();
}

#[test]
fn transaction_size_is_bounded() {
    let mut s = server_with_limits(&[5], counts_only());
    let tx = ask(&mut s, 5, XsType::TransactionStart, 0, b"\0").unwrap();
    let tx: u32 = std::str::from_utf8(tx.strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap();
    let mut refused = 0;
    for i in 0..1100 {
        if ask(&mut s, 5, XsType::Read, tx, format!("missing{i}\0").as_bytes()) == err("ENOSPC") {
            refused += 1;
        }
    }
    assert_eq!(refused, 1100 - 1024);
    assert_eq!(ask(&mut s, 5, XsType::TransactionEnd, tx, b"T\0"), err("ENOSPC"));
}

/// A domain that sends requests but never takes its replies.
#[test]
fn a_domain_that_never_reads_replies_is_throttled_not_buffered() {
    let limits = Limits::default();
    let mut s = StoreServer::new(limits);
    s.introduce(5).unwrap();
    s.introduce(6).unwrap();
    let mut value = b"big\0".to_vec();
    value.resize(4 + 2000, b'x');
    assert_eq!(s.receive(5, &msg(XsType::Write, 1, 0, &value)), Ok(value.len() + 16));
    drain(&mut s, 5);
    // 1000 reads of a 2000-byte value: 2 MB of replies if nothing pushed back.
    let one = msg(XsType::Read, 2, 0, b"big\0");
    let flood: Vec<u8> = one.iter().copied().cycle().take(one.len() * 1000).collect();
    let taken = s.receive(5, &flood).unwrap();
    assert!(taken < flood.len(), "the server must stop taking requests");
    let conn = s.connection(5).unwrap();
    assert!(conn.output_len() <= limits.output_bytes);
    assert!(conn.buffered_bytes() <= limits.output_bytes + limits.event_queue_bytes + MAX_MESSAGE);
    // Offering more changes nothing.
    assert_eq!(s.receive(5, &flood[taken..]), Ok(0));
    // Others are served meanwhile.
    assert_eq!(write(&mut s, 6, b"a", b"1"), ok());
    assert_eq!(read(&mut s, 0, b"/local/domain/6/a"), Ok(b"1".to_vec()));
    // When domain 5 reads, everything it asked for is answered, none dropped.
    let mut answered = drain(&mut s, 5).len();
    let mut offset = taken;
    while offset < flood.len() {
        let n = s.receive(5, &flood[offset..]).unwrap();
        offset += n;
        answered += drain(&mut s, 5).len();
        assert!(n > 0 || offset == flood.len());
    }
    assert_eq!(answered, 1000);
    s.check_invariants().unwrap();
}

/// A domain that never reads while others generate watch events for it.
#[test]
fn watch_event_flood_is_bounded_and_coalesced() {
    let limits = Limits::default();
    let mut s = StoreServer::new(limits);
    s.introduce(5).unwrap();
    assert_eq!(ask(&mut s, 5, XsType::Watch, 0, &fields(&[b"", b"t"])), err("EINVAL"));
    assert_eq!(ask(&mut s, 5, XsType::Watch, 0, &fields(&[b"/local/domain/5", b"home"])), ok());
    drain(&mut s, 5);
    let mut path = b"/local/domain/5/".to_vec();
    path.extend(vec![b'p'; 1500]);
    for i in 0..300 {
        let mut p = path.clone();
        p.extend(format!("{i}").as_bytes());
        write(&mut s, 0, &p, b"").unwrap();
        let conn = s.connection(5).unwrap();
        assert!(conn.output_len() <= limits.output_bytes);
        assert!(conn.buffered_bytes() <= limits.output_bytes + limits.event_queue_bytes);
    }
    let out = drain(&mut s, 5);
    assert!(out.len() < 300, "events were bounded ({})", out.len());
    // The last event is the catch-all on the watched path: nothing is lost for good.
    assert!(out.last().unwrap().is_event(b"/local/domain/5", b"home"));
    assert!(drain(&mut s, 5).is_empty());
}

#[test]
fn value_and_permission_list_limits() {
    let mut s = server_with(&[5]);
    write(&mut s, 5, b"n", b"").unwrap();
    assert_eq!(ask(&mut s, 5, XsType::SetPerms, 0, &fields(&[b"n", b"n5", b"r1", b"r2", b"r3", b"r4"])), ok());
    assert_eq!(
        ask(&mut s, 5, XsType::SetPerms, 0, &fields(&[b"n", b"n5", b"r1", b"r2", b"r3", b"r4", b"r6"])),
        err("ENOSPC")
    );
    // A directory listing that would not fit a reply.
    for i in 0..300 {
        write(&mut s, 0, format!("/big/{i:020}").as_bytes(), b"").unwrap();
    }
    assert_eq!(ask(&mut s, 0, XsType::Directory, 0, b"/big\0"), err("E2BIG"));
}

#[test]
fn released_ids_inherit_nothing_and_unknown_domains_are_refused() {
    let mut s = server_with(&[5]);
    assert_eq!(s.receive(9, &msg(XsType::Read, 1, 0, b"/\0")), Err(xenstored::StoreError::NotFound));
    assert!(drain(&mut s, 9).is_empty());
    assert_eq!(s.introduce(5), Err(xenstored::StoreError::AlreadyExists));
    assert_eq!(s.release(0), Err(xenstored::StoreError::InvalidRequest));
}

/// XSA-206: a guest writing in a tight loop (its own nodes, the parent directory it may write,
/// and node creation and removal next to the victims' nodes) must not starve other domains'
/// transactions: conflicts are per node, so a transaction fails only when a node it looked at
/// changed, and nothing a backend or the toolstack looks at is writable by the attacker.
#[test]
fn a_guest_writing_in_a_loop_does_not_starve_other_transactions() {
    let mut s = server_with(&[5, 6]);
    // The toolstack's layout: the backend (6) owns its device directory, the attacker (5) its
    // frontend directory, each readable by the other.
    for (dir, owner, peer) in
        [(&b"/local/domain/6/backend/vif/5/0"[..], b"6", b"r5"), (b"/local/domain/5/device/vif/0", b"5", b"r6")]
    {
        write(&mut s, 0, &[dir, b"/state"].concat(), b"1").unwrap();
        ask(&mut s, 0, XsType::SetPerms, 0, &fields(&[dir, &[b"n", &owner[..]].concat(), peer])).unwrap();
        ask(&mut s, 0, XsType::SetPerms, 0, &fields(&[&[dir, b"/state"].concat(), &[b"n", &owner[..]].concat(), peer]))
            .unwrap();
    }
    let mut committed = 0;
    for round in 0..500u32 {
        // The backend switches its state the way `xenbus::switch_state` does.
        let tx = ask(&mut s, 6, XsType::TransactionStart, 0, b"\0").unwrap();
        let tx: u32 = std::str::from_utf8(tx.strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap();
        ask(&mut s, 6, XsType::Read, tx, b"/local/domain/6/backend/vif/5/0/state\0").unwrap();
        // Meanwhile the attacker writes everything it may, again and again.
        for i in 0..8 {
            let v = format!("{round}-{i}");
            write(&mut s, 5, b"/local/domain/5/device/vif/0/state", v.as_bytes()).unwrap();
            write(&mut s, 5, format!("/local/domain/5/spam{i}").as_bytes(), v.as_bytes()).unwrap();
            ask(&mut s, 5, XsType::Rm, 0, format!("/local/domain/5/spam{i}\0").as_bytes()).unwrap();
            assert_eq!(write(&mut s, 5, b"/local/domain/6/backend/vif/5/0/state", b"6"), err("EACCES"));
        }
        let next = format!("{}", 2 + round % 3);
        ask(&mut s, 6, XsType::Write, tx, &[&b"/local/domain/6/backend/vif/5/0/state\0"[..], next.as_bytes()].concat())
            .unwrap();
        if ask(&mut s, 6, XsType::TransactionEnd, tx, b"T\0") == ok() {
            committed += 1;
        }
    }
    assert_eq!(committed, 500, "the attacker's writes made the backend's transactions conflict");
    s.check_invariants().unwrap();
}

/// Found by the `store_server` fuzz target: Dom0 could make a domain the store does not serve
/// (never introduced, or already released) the owner of a node. The node then counted against
/// no live domain's budget and the domain that later got that id would inherit it (XSA-322).
/// Like Xen, the store answers ENOENT for such a domain.
#[test]
fn dom0_cannot_give_a_node_to_a_domain_the_store_does_not_serve() {
    let mut s = server_with(&[5]);
    write(&mut s, 0, b"/local/domain/0/a", b"x").unwrap();
    let give = |s: &mut StoreServer, to: &[u8]| ask(s, 0, XsType::SetPerms, 0, &fields(&[b"/local/domain/0/a", to]));
    assert_eq!(give(&mut s, b"n3"), err("ENOENT"));
    s.check_invariants().unwrap();
    // Inside a transaction too.
    let tx = ask(&mut s, 0, XsType::TransactionStart, 0, b"\0").unwrap();
    let tx: u32 = std::str::from_utf8(tx.strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap();
    assert_eq!(ask(&mut s, 0, XsType::SetPerms, tx, &fields(&[b"/local/domain/0/a", b"n3"])), err("ENOENT"));
    ask(&mut s, 0, XsType::TransactionEnd, tx, b"T\0").unwrap();
    s.check_invariants().unwrap();
    // A served domain may be given it (and entries may name anyone), Dom0 may take it back.
    assert_eq!(give(&mut s, b"n5\0r3"), ok());
    s.release(5).unwrap();
    assert_eq!(give(&mut s, b"n5"), err("ENOENT"));
    assert_eq!(give(&mut s, b"n0"), ok());
    s.check_invariants().unwrap();
}

/// Found while triaging the `store_server` fuzz finding above: a transaction open when a domain
/// was released could commit nodes naming that domain (as owner, or in an entry), undoing the
/// release's cleanup. Such a commit now fails with EAGAIN; the retry sees the domain gone.
#[test]
fn a_transaction_cannot_bring_back_a_released_domain() {
    let mut s = server_with(&[5, 6]);
    let start = |s: &mut StoreServer, d: u16| -> u32 {
        let tx = ask(s, d, XsType::TransactionStart, 0, b"\0").unwrap();
        std::str::from_utf8(tx.strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap()
    };
    write(&mut s, 0, b"/local/domain/0/a", b"x").unwrap();
    write(&mut s, 6, b"g", b"x").unwrap();
    write(&mut s, 6, b"h", b"x").unwrap();
    let dom0_tx = start(&mut s, 0);
    assert_eq!(ask(&mut s, 0, XsType::SetPerms, dom0_tx, &fields(&[b"/local/domain/0/a", b"n5", b"r6"])), ok());
    let guest_tx = start(&mut s, 6);
    assert_eq!(ask(&mut s, 6, XsType::SetPerms, guest_tx, &fields(&[b"g", b"n6", b"r5"])), ok());
    let unrelated_tx = start(&mut s, 6);
    assert_eq!(ask(&mut s, 6, XsType::SetPerms, unrelated_tx, &fields(&[b"h", b"n6", b"r0"])), ok());
    s.release(5).unwrap();
    assert_eq!(ask(&mut s, 0, XsType::TransactionEnd, dom0_tx, b"T\0"), err("EAGAIN"));
    assert_eq!(ask(&mut s, 6, XsType::TransactionEnd, guest_tx, b"T\0"), err("EAGAIN"));
    assert_eq!(ask(&mut s, 6, XsType::TransactionEnd, unrelated_tx, b"T\0"), ok());
    s.check_invariants().unwrap();
    for (path, node) in s.store().iter() {
        assert!(node.perms.owner != 5 && node.perms.entries.iter().all(|(d, _)| *d != 5), "{path:?} names 5");
    }
}
