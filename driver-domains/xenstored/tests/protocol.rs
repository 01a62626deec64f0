//! The wire protocol end to end through `StoreServer::receive`: every supported operation,
//! ids echoed, watches, special watches, transactions, domain introduction and release.

mod common;

use common::*;
use shared_ring::wire::xenstore::XsType;
use xenstored::{HostRequest, Limits, StoreServer};

fn server_with(domains: &[u16]) -> StoreServer {
    let mut server = StoreServer::new(Limits::default());
    for &d in domains {
        server.introduce(d).unwrap();
    }
    server
}

#[test]
fn node_operations_over_the_wire() {
    let mut s = server_with(&[5]);
    assert_eq!(write(&mut s, 5, b"data/x", b"hello"), ok());
    assert_eq!(read(&mut s, 5, b"/local/domain/5/data/x"), Ok(b"hello".to_vec()));
    assert_eq!(read(&mut s, 5, b"data/x"), Ok(b"hello".to_vec()));
    assert_eq!(ask(&mut s, 5, XsType::Mkdir, 0, &fields(&[b"data/y"])), ok());
    assert_eq!(ask(&mut s, 5, XsType::Directory, 0, &fields(&[b"data"])), Ok(b"x\0y\0".to_vec()));
    assert_eq!(ask(&mut s, 5, XsType::GetPerms, 0, &fields(&[b"data"])), Ok(b"n5\0".to_vec()));
    assert_eq!(ask(&mut s, 5, XsType::SetPerms, 0, &fields(&[b"data", b"r5", b"b0"])), ok());
    assert_eq!(ask(&mut s, 5, XsType::GetPerms, 0, &fields(&[b"data"])), Ok(b"r5\0b0\0".to_vec()));
    assert_eq!(ask(&mut s, 5, XsType::Rm, 0, &fields(&[b"data"])), ok());
    assert_eq!(read(&mut s, 5, b"data/x"), err("ENOENT"));
    assert_eq!(ask(&mut s, 5, XsType::Directory, 0, &fields(&[b""])), err("EINVAL"));
    // Values may hold NULs and be empty.
    assert_eq!(write(&mut s, 5, b"bin", b"a\0b"), ok());
    assert_eq!(read(&mut s, 5, b"bin"), Ok(b"a\0b".to_vec()));
    assert_eq!(write(&mut s, 5, b"empty", b""), ok());
    assert_eq!(read(&mut s, 5, b"empty"), Ok(Vec::new()));
    s.check_invariants().unwrap();
}

#[test]
fn replies_echo_ids_and_batches_are_answered_in_order() {
    let mut s = server_with(&[5]);
    let mut bytes = msg(XsType::Write, 10, 0, b"a\0v");
    bytes.extend(msg(XsType::Read, 11, 0, b"a\0"));
    bytes.extend(msg(XsType::Read, 0xdead_beef, 0, b"missing\0"));
    assert_eq!(s.receive(5, &bytes), Ok(bytes.len()));
    let out = drain(&mut s, 5);
    assert_eq!(out.iter().map(|o| o.req_id).collect::<Vec<_>>(), [10, 11, 0xdead_beef]);
    assert_eq!(out[1].payload, b"v");
    assert!(out[2].is_error("ENOENT"));
}

#[test]
fn domain_path_and_dom0_only_operations() {
    let mut s = server_with(&[5]);
    assert_eq!(ask(&mut s, 5, XsType::GetDomainPath, 0, b"7\0"), Ok(b"/local/domain/7\0".to_vec()));
    assert_eq!(ask(&mut s, 5, XsType::Introduce, 0, b"6\x0099\x003\x00"), err("EACCES"));
    assert_eq!(ask(&mut s, 5, XsType::Release, 0, b"5\0"), err("EACCES"));
    assert_eq!(ask(&mut s, 5, XsType::IsDomainIntroduced, 0, b"5\0"), err("EACCES"));
    assert_eq!(ask(&mut s, 0, XsType::Introduce, 0, b"6\x0099\x003\x00"), ok());
    assert_eq!(s.take_host_request(), Some(HostRequest::MapRing { domid: 6, gfn: 99, port: 3 }));
    assert_eq!(ask(&mut s, 0, XsType::Introduce, 0, b"6\x0099\x003\x00"), err("EEXIST"));
    assert_eq!(ask(&mut s, 0, XsType::IsDomainIntroduced, 0, b"6\0"), Ok(b"T\0".to_vec()));
    assert_eq!(ask(&mut s, 0, XsType::GetPerms, 0, b"/local/domain/6\0"), Ok(b"n6\0".to_vec()));
    assert_eq!(ask(&mut s, 0, XsType::Release, 0, b"6\0"), ok());
    assert_eq!(s.take_host_request(), Some(HostRequest::UnmapRing { domid: 6 }));
    assert_eq!(ask(&mut s, 0, XsType::IsDomainIntroduced, 0, b"6\0"), Ok(b"F\0".to_vec()));
    assert_eq!(ask(&mut s, 0, XsType::Release, 0, b"6\0"), err("ENOENT"));
    assert_eq!(ask(&mut s, 0, XsType::Introduce, 0, b"0\x001\x001\x00"), err("EINVAL"));
    assert_eq!(ask(&mut s, 0, XsType::Introduce, 0, b"32752\x001\x001\x00"), err("EINVAL"));
}

#[test]
fn unsupported_and_non_request_types() {
    let mut s = server_with(&[5]);
    for kind in [XsType::DirectoryPart, XsType::SetQuota, XsType::Control, XsType::Resume] {
        assert_eq!(ask(&mut s, 5, kind, 0, b"x\0"), err("ENOSYS"), "{kind:?}");
    }
    assert_eq!(ask(&mut s, 5, XsType::WatchEvent, 0, b"a\0b\0"), err("EINVAL"));
    assert_eq!(ask(&mut s, 5, XsType::Error, 0, b"EINVAL\0"), err("EINVAL"));
}

#[test]
fn watch_fires_initially_then_on_changes_with_relative_paths_kept_relative() {
    let mut s = server_with(&[5]);
    let out = call(&mut s, 5, XsType::Watch, 0, &fields(&[b"device", b"tok"]));
    assert_eq!(out.len(), 2);
    assert_eq!((out[0].kind, out[0].payload.as_slice()), (XsType::Watch as u32, &b"OK\0"[..]));
    assert!(out[1].is_event(b"device", b"tok"));
    assert_eq!((out[1].req_id, out[1].tx_id), (0, 0));
    let out = call(&mut s, 5, XsType::Write, 0, b"device/vif/0/state\x001");
    assert!(out[1].is_event(b"device/vif/0/state", b"tok"), "{out:?}");
    // Dom0 writing there fires it too, delivered without any request from domain 5.
    write(&mut s, 0, b"/local/domain/5/device/x", b"").unwrap();
    let out = drain(&mut s, 5);
    assert_eq!(out.len(), 1);
    assert!(out[0].is_event(b"device/x", b"tok"));
    // Outside the watched path: nothing.
    write(&mut s, 5, b"other", b"").unwrap();
    assert!(drain(&mut s, 5).is_empty());
    // Removing a parent fires watches below it.
    call(&mut s, 5, XsType::Watch, 0, &fields(&[b"/local/domain/5/device/vif/0/state", b"deep"]));
    let out = call(&mut s, 5, XsType::Rm, 0, b"device\0");
    assert!(out.iter().any(|o| o.is_event(b"device", b"tok")));
    assert!(out.iter().any(|o| o.is_event(b"/local/domain/5/device/vif/0/state", b"deep")));
    // Unwatch by the canonical path also matches the relative registration.
    assert_eq!(ask(&mut s, 5, XsType::Unwatch, 0, &fields(&[b"/local/domain/5/device", b"tok"])), ok());
    assert_eq!(ask(&mut s, 5, XsType::Unwatch, 0, &fields(&[b"device", b"tok"])), err("ENOENT"));
    write(&mut s, 5, b"device", b"").unwrap();
    assert!(drain(&mut s, 5).is_empty());
    assert_eq!(
        ask(&mut s, 5, XsType::Watch, 0, &fields(&[b"/local/domain/5/device/vif/0/state", b"deep"])),
        err("EEXIST")
    );
}

#[test]
fn watch_events_only_for_nodes_the_watcher_can_read() {
    let mut s = server_with(&[5, 6]);
    call(&mut s, 6, XsType::Watch, 0, &fields(&[b"/local/domain/5", b"spy"]));
    write(&mut s, 5, b"secret", b"1").unwrap();
    assert!(drain(&mut s, 6).is_empty());
    write(&mut s, 5, b"shared", b"1").unwrap();
    assert_eq!(ask(&mut s, 5, XsType::SetPerms, 0, &fields(&[b"shared", b"n5", b"r6"])), ok());
    let out = drain(&mut s, 6);
    assert_eq!(out.len(), 1, "{out:?}");
    assert!(out[0].is_event(b"/local/domain/5/shared", b"spy"));
    write(&mut s, 5, b"shared", b"2").unwrap();
    assert_eq!(drain(&mut s, 6).len(), 1);
    // Revoking fires once more (the watcher could read it before), then silence.
    ask(&mut s, 5, XsType::SetPerms, 0, &fields(&[b"shared", b"n5"])).unwrap();
    assert_eq!(drain(&mut s, 6).len(), 1);
    write(&mut s, 5, b"shared", b"3").unwrap();
    assert!(drain(&mut s, 6).is_empty());
}

#[test]
fn special_watches_fire_on_introduce_and_release_for_permitted_domains() {
    let mut s = server_with(&[5, 6]);
    call(&mut s, 0, XsType::Watch, 0, &fields(&[b"@introduceDomain", b"i"]));
    call(&mut s, 0, XsType::Watch, 0, &fields(&[b"@releaseDomain", b"r"]));
    call(&mut s, 5, XsType::Watch, 0, &fields(&[b"@releaseDomain", b"r5"]));
    call(&mut s, 6, XsType::Watch, 0, &fields(&[b"@releaseDomain", b"r6"]));
    // Domain 6 is allowed to learn about releases; domain 5 is not.
    assert_eq!(ask(&mut s, 5, XsType::SetPerms, 0, &fields(&[b"@releaseDomain", b"n0", b"r6"])), err("EACCES"));
    assert_eq!(ask(&mut s, 0, XsType::SetPerms, 0, &fields(&[b"@releaseDomain", b"n0", b"r6"])), ok());
    assert_eq!(ask(&mut s, 6, XsType::GetPerms, 0, b"@releaseDomain\0"), Ok(b"n0\0r6\0".to_vec()));
    s.introduce(7).unwrap();
    assert!(drain(&mut s, 0).iter().any(|o| o.is_event(b"@introduceDomain", b"i")));
    s.release(7).unwrap();
    assert!(drain(&mut s, 0).iter().any(|o| o.is_event(b"@releaseDomain", b"r")));
    assert!(drain(&mut s, 5).is_empty());
    assert_eq!(drain(&mut s, 6).iter().filter(|o| o.is_event(b"@releaseDomain", b"r6")).count(), 1);
    assert_eq!(ask(&mut s, 5, XsType::Watch, 0, &fields(&[b"@bogus", b"x"])), err("EINVAL"));
}

#[test]
fn transactions_private_until_commit_then_events() {
    let mut s = server_with(&[5, 6]);
    write(&mut s, 5, b"cfg", b"old").unwrap();
    ask(&mut s, 5, XsType::SetPerms, 0, &fields(&[b"cfg", b"n5", b"r6"])).unwrap();
    call(&mut s, 6, XsType::Watch, 0, &fields(&[b"/local/domain/5/cfg", b"w"]));
    drain(&mut s, 6);
    let tx = ask(&mut s, 5, XsType::TransactionStart, 0, b"\0").unwrap();
    let tx: u32 = std::str::from_utf8(tx.strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap();
    assert_ne!(tx, 0);
    assert_eq!(ask(&mut s, 5, XsType::Write, tx, b"cfg\0new"), ok());
    assert_eq!(ask(&mut s, 5, XsType::Write, tx, b"cfg/sub\0x"), ok());
    assert_eq!(ask(&mut s, 5, XsType::Read, tx, b"cfg\0"), Ok(b"new".to_vec()));
    assert_eq!(read(&mut s, 6, b"/local/domain/5/cfg"), Ok(b"old".to_vec()));
    assert!(drain(&mut s, 6).is_empty(), "no events before commit");
    assert_eq!(ask(&mut s, 5, XsType::TransactionStart, tx, b"\0"), err("EBUSY"));
    assert_eq!(ask(&mut s, 5, XsType::TransactionEnd, tx, b"T\0"), ok());
    assert_eq!(drain(&mut s, 6).len(), 2);
    assert_eq!(read(&mut s, 6, b"/local/domain/5/cfg"), Ok(b"new".to_vec()));
    // The transaction is gone.
    assert_eq!(ask(&mut s, 5, XsType::Read, tx, b"cfg\0"), err("ENOENT"));
    assert_eq!(ask(&mut s, 5, XsType::TransactionEnd, tx, b"T\0"), err("ENOENT"));
    assert_eq!(ask(&mut s, 5, XsType::TransactionEnd, 0, b"T\0"), err("ENOENT"));
    // Another domain cannot use it.
    let tx = ask(&mut s, 5, XsType::TransactionStart, 0, b"\0").unwrap();
    let tx: u32 = std::str::from_utf8(tx.strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap();
    assert_eq!(ask(&mut s, 6, XsType::Read, tx, b"/local/domain/5/cfg\0"), err("ENOENT"));
}

fn start(s: &mut StoreServer, domid: u16) -> u32 {
    let tx = ask(s, domid, XsType::TransactionStart, 0, b"\0").unwrap();
    std::str::from_utf8(tx.strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap()
}

#[test]
fn conflicting_transactions_get_eagain_and_retry_succeeds() {
    let mut s = server_with(&[5]);
    write(&mut s, 0, b"/local/domain/5/counter", b"0").unwrap();
    let a = start(&mut s, 5);
    let b = start(&mut s, 5);
    assert_eq!(ask(&mut s, 5, XsType::Read, a, b"counter\0"), Ok(b"0".to_vec()));
    assert_eq!(ask(&mut s, 5, XsType::Read, b, b"counter\0"), Ok(b"0".to_vec()));
    ask(&mut s, 5, XsType::Write, a, b"counter\x001").unwrap();
    ask(&mut s, 5, XsType::Write, b, b"counter\x001").unwrap();
    assert_eq!(ask(&mut s, 5, XsType::TransactionEnd, a, b"T\0"), ok());
    assert_eq!(ask(&mut s, 5, XsType::TransactionEnd, b, b"T\0"), err("EAGAIN"));
    // Retry: read 1, write 2.
    let b = start(&mut s, 5);
    assert_eq!(ask(&mut s, 5, XsType::Read, b, b"counter\0"), Ok(b"1".to_vec()));
    ask(&mut s, 5, XsType::Write, b, b"counter\x002").unwrap();
    assert_eq!(ask(&mut s, 5, XsType::TransactionEnd, b, b"T\0"), ok());
    assert_eq!(read(&mut s, 5, b"counter"), Ok(b"2".to_vec()));
    // Abort discards; a write outside during an aborted transaction is fine.
    let c = start(&mut s, 5);
    ask(&mut s, 5, XsType::Write, c, b"counter\x00999").unwrap();
    assert_eq!(ask(&mut s, 5, XsType::TransactionEnd, c, b"F\0"), ok());
    assert_eq!(read(&mut s, 5, b"counter"), Ok(b"2".to_vec()));
    // A conflicting rm of a node the transaction created under.
    let d = start(&mut s, 5);
    ask(&mut s, 5, XsType::Write, d, b"dir/x\0v").unwrap();
    write(&mut s, 0, b"/local/domain/5/dir", b"").unwrap();
    assert_eq!(ask(&mut s, 5, XsType::TransactionEnd, d, b"T\0"), err("EAGAIN"));
    s.check_invariants().unwrap();
}

#[test]
fn reset_watches_drops_watches_and_transactions() {
    let mut s = server_with(&[5]);
    call(&mut s, 5, XsType::Watch, 0, &fields(&[b"a", b"t"]));
    let tx = start(&mut s, 5);
    assert_eq!(ask(&mut s, 5, XsType::ResetWatches, 0, b""), ok());
    write(&mut s, 5, b"a", b"").unwrap();
    assert!(drain(&mut s, 5).is_empty());
    assert_eq!(ask(&mut s, 5, XsType::Read, tx, b"a\0"), err("ENOENT"));
}

#[test]
fn release_leaves_no_trace() {
    let mut s = server_with(&[5]);
    let nodes_before = s.store().node_count();
    let owned0_before = s.store().owned(0);
    s.introduce(6).unwrap();
    for i in 0..20 {
        write(&mut s, 6, format!("data/{i}/x").as_bytes(), b"v").unwrap();
    }
    call(&mut s, 6, XsType::Watch, 0, &fields(&[b"data", b"t"]));
    let tx = start(&mut s, 6);
    ask(&mut s, 6, XsType::Write, tx, b"pending\0v").unwrap();
    // Domain 5 grants 6 access to one of its nodes.
    write(&mut s, 5, b"grant", b"").unwrap();
    ask(&mut s, 5, XsType::SetPerms, 0, &fields(&[b"grant", b"n5", b"b6"])).unwrap();
    // Domain 5 watches 6's home (with read access granted by Dom0) and sees its removal.
    ask(&mut s, 0, XsType::SetPerms, 0, &fields(&[b"/local/domain/6", b"n6", b"r5"])).unwrap();
    call(&mut s, 5, XsType::Watch, 0, &fields(&[b"/local/domain/6", b"w"]));
    drain(&mut s, 5);
    // Leave unread output behind.
    s.receive(6, &msg(XsType::Read, 1, 0, b"data/0/x\0")).unwrap();
    s.release(6).unwrap();
    assert!(drain(&mut s, 5).iter().any(|o| o.is_event(b"/local/domain/6", b"w")));
    assert!(s.connection(6).is_none());
    assert_eq!(s.store().owned(6), 0);
    assert!(s.store().iter().all(|(_, n)| n.perms.owner != 6 && n.perms.entries.iter().all(|(d, _)| *d != 6)));
    assert_eq!(ask(&mut s, 5, XsType::GetPerms, 0, b"grant\0"), Ok(b"n5\0".to_vec()));
    assert_eq!(s.store().node_count(), nodes_before + 1); // only 5's `grant`
    assert_eq!(s.store().owned(0), owned0_before);
    s.check_invariants().unwrap();
    // A new domain reusing the id starts clean and inherits no grant.
    s.introduce(6).unwrap();
    assert_eq!(write(&mut s, 6, b"/local/domain/5/grant", b"x"), err("EACCES"));
    assert_eq!(ask(&mut s, 6, XsType::Directory, 0, b"\0"), err("EINVAL"));
    assert_eq!(ask(&mut s, 6, XsType::Directory, 0, b"/local/domain/6\0"), Ok(Vec::new()));
    s.release(6).unwrap();
    assert_eq!(s.store().node_count(), nodes_before + 1);
}
