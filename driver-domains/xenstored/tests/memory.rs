//! A hostile domain trying to exhaust the server's memory (Dom0's heap) by each path the audit
//! found: transactions that record what they read, change lists that grow with every write,
//! many owned nodes with long paths, watches with long paths and tokens. Each stays within the
//! domain's byte budget and gets `ENOSPC`; an honest domain is unaffected; releasing the
//! attacker returns the server's memory to its baseline.

mod common;

use common::{ask, err, fields, ok, write};
use shared_ring::wire::xenstore::XsType;
use xenstored::{Limits, StoreServer};

const ATTACKER: u16 = 5;
const HONEST: u16 = 6;

/// The server with the honest domain, and its memory before the attacker arrives.
fn server() -> (StoreServer, usize) {
    let mut s = StoreServer::new(Limits::default());
    s.introduce(HONEST).unwrap();
    let baseline = s.memory();
    s.introduce(ATTACKER).unwrap();
    (s, baseline)
}

fn start(s: &mut StoreServer, domid: u16) -> Result<u32, String> {
    let reply = ask(s, domid, XsType::TransactionStart, 0, b"\0")?;
    Ok(std::str::from_utf8(reply.strip_suffix(b"\0").unwrap()).unwrap().parse().unwrap())
}

/// An absolute path of `len` bytes under the attacker's home (absolute paths may be longer
/// than relative ones: 3072 bytes against 2048).
fn long_path(tag: usize, len: usize) -> Vec<u8> {
    let mut p = format!("/local/domain/{ATTACKER}/{tag}/").into_bytes();
    p.resize(len, b'x');
    p
}

/// The attacker's budget holds, the honest domain still works, and releasing the attacker
/// gives every byte back.
fn check_contained(s: &mut StoreServer, baseline: usize) {
    let budget = s.limits().domain_budget();
    assert!(s.memory_of(ATTACKER) <= budget, "attacker holds {} > budget {budget}", s.memory_of(ATTACKER));
    s.check_invariants().unwrap();
    assert_eq!(write(s, HONEST, b"device/vif/0/state", b"1"), ok());
    assert_eq!(ask(s, HONEST, XsType::Read, 0, b"device/vif/0/state\0"), Ok(b"1".to_vec()));
    s.release(ATTACKER).unwrap();
    ask(s, 0, XsType::Rm, 0, b"/local/domain/6/device\0").unwrap();
    assert_eq!(s.memory(), baseline, "memory did not return to its baseline");
}

#[test]
fn transactions_reading_missing_long_paths_stay_within_the_budget() {
    // The audit's attack: 10 transactions each reading 1024 missing 2.9 KiB paths made Dom0
    // run out of heap during the third transaction.
    let (mut s, baseline) = server();
    let mut refused = 0;
    for t in 0..10 {
        let Ok(tx) = start(&mut s, ATTACKER) else {
            refused += 1;
            continue;
        };
        for i in 0..1024 {
            let mut path = long_path(t * 10_000 + i, 2900);
            path.push(0);
            match ask(&mut s, ATTACKER, XsType::Read, tx, &path) {
                Err(e) if e == "ENOSPC" => {
                    refused += 1;
                    break;
                }
                Err(e) => assert_eq!(e, "ENOENT"),
                Ok(_) => panic!("a missing node was read"),
            }
        }
        assert!(s.memory_of(ATTACKER) <= s.limits().domain_budget());
    }
    assert!(refused > 0, "the attacker was never refused");
    assert!(s.memory_of(ATTACKER) <= Limits::default().transaction_bytes + 16 * 1024);
    check_contained(&mut s, baseline);
}

#[test]
fn writing_one_node_again_and_again_in_a_transaction_does_not_grow_it() {
    let (mut s, baseline) = server();
    let tx = start(&mut s, ATTACKER).unwrap();
    assert_eq!(ask(&mut s, ATTACKER, XsType::Write, tx, b"n\x000"), ok());
    let after_one = s.memory_of(ATTACKER);
    for i in 0..20_000u32 {
        let mut req = b"n\0".to_vec();
        req.extend_from_slice(format!("{}", i % 10).as_bytes());
        assert_eq!(ask(&mut s, ATTACKER, XsType::Write, tx, &req), ok(), "{i}");
    }
    assert_eq!(s.memory_of(ATTACKER), after_one, "the change list grew with repeated writes");
    assert_eq!(ask(&mut s, ATTACKER, XsType::TransactionEnd, tx, b"T\0"), ok());
    check_contained(&mut s, baseline);
}

#[test]
fn many_owned_nodes_with_long_paths_are_refused_at_the_byte_budget() {
    let (mut s, baseline) = server();
    // A directory whose listing is too big for one reply is refused before it is built.
    let dir = b"/local/domain/5/d";
    for name in [b'a', b'b'] {
        let path = [&dir[..], b"/", &vec![name; 2500]].concat();
        assert_eq!(write(&mut s, ATTACKER, &path, b""), ok());
    }
    assert_eq!(ask(&mut s, ATTACKER, XsType::Directory, 0, &[&dir[..], b"\0"].concat()), err("E2BIG"));
    assert_eq!(ask(&mut s, ATTACKER, XsType::Rm, 0, &[&dir[..], b"\0"].concat()), ok());
    let mut created = 0;
    for i in 0..1000 {
        let path = long_path(i, 3000);
        match write(&mut s, ATTACKER, &path, b"") {
            Ok(_) => created += 1,
            Err(e) => {
                assert_eq!(e, "ENOSPC");
                break;
            }
        }
    }
    assert!(created > 0 && created < 1000, "created {created}");
    assert!(s.store().bytes_owned(ATTACKER) <= s.limits().node_bytes);
    // Values are charged too: growing the existing nodes' values is refused once the budget
    // is spent.
    let refused = (0..created).any(|i| write(&mut s, ATTACKER, &long_path(i, 3000), &[b'v'; 1000]) == err("ENOSPC"));
    assert!(refused, "values grew past the budget");
    assert!(s.store().bytes_owned(ATTACKER) <= s.limits().node_bytes);
    check_contained(&mut s, baseline);
}

#[test]
fn watches_with_long_paths_and_tokens_are_refused_at_the_byte_budget() {
    let (mut s, baseline) = server();
    let mut refused = false;
    for i in 0..128 {
        let path = long_path(i, 3000);
        let token = vec![b't'; 1000];
        match ask(&mut s, ATTACKER, XsType::Watch, 0, &fields(&[&path, &token])) {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(e, "ENOSPC", "{i}");
                refused = true;
                break;
            }
        }
    }
    assert!(refused, "128 watches of 4 KiB each fit the budget");
    assert!(s.connection(ATTACKER).unwrap().watch_count() < 128);
    check_contained(&mut s, baseline);
}

#[test]
fn transactions_share_one_budget() {
    let (mut s, baseline) = server();
    // Each transaction reads until refused; together they never exceed the budget.
    for t in 0..10 {
        let Ok(tx) = start(&mut s, ATTACKER) else { break };
        for i in 0..1024 {
            let mut path = long_path(t * 10_000 + i, 100);
            path.push(0);
            if ask(&mut s, ATTACKER, XsType::Read, tx, &path) == err("ENOSPC") {
                break;
            }
        }
    }
    let held =
        s.memory_of(ATTACKER) - s.store().bytes_owned(ATTACKER) - s.connection(ATTACKER).unwrap().buffered_bytes();
    assert!(held <= s.limits().transaction_bytes, "transactions hold {held}");
    check_contained(&mut s, baseline);
}

#[test]
fn domains_beyond_the_servers_memory_are_refused_and_fit_again_after_a_release() {
    let limits = Limits::default();
    let total = limits.domain_budget() * 3 + 100;
    let mut s = StoreServer::new(Limits { total_bytes: total, ..limits });
    for d in 1..=3 {
        s.introduce(d).unwrap();
    }
    assert_eq!(s.introduce(4), Err(xenstored::StoreError::QuotaExceeded(xenstored::Quota::Memory)));
    s.release(2).unwrap();
    s.introduce(4).unwrap();
}

#[test]
fn every_domain_stays_within_its_budget_under_random_requests() {
    // A small deterministic fuzz over the growth operations (the proptest in properties.rs
    // checks the tree's invariants; this one the byte budgets).
    let (mut s, _) = server();
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut txs: Vec<u32> = Vec::new();
    for _ in 0..20_000 {
        let r = next();
        let len = 1 + (r >> 8) as usize % 400;
        let path = long_path((r >> 20) as usize % 64, len);
        let tx = if r % 3 == 0 { txs.get((r >> 40) as usize % txs.len().max(1)).copied().unwrap_or(0) } else { 0 };
        let _ = match r % 7 {
            0 => write(&mut s, ATTACKER, &path, &vec![b'v'; (r >> 32) as usize % 2048]),
            1 => ask(&mut s, ATTACKER, XsType::Read, tx, &[&path[..], b"\0"].concat()),
            2 => ask(&mut s, ATTACKER, XsType::Rm, tx, &[&path[..], b"\0"].concat()),
            3 => ask(&mut s, ATTACKER, XsType::Watch, 0, &fields(&[&path, b"tok"])),
            4 => match start(&mut s, ATTACKER) {
                Ok(t) => {
                    txs.push(t);
                    Ok(Vec::new())
                }
                Err(e) => Err(e),
            },
            5 if !txs.is_empty() => {
                let t = txs.swap_remove((r >> 40) as usize % txs.len());
                ask(&mut s, ATTACKER, XsType::TransactionEnd, t, if r & 1 == 0 { b"T\0" } else { b"F\0" })
            }
            _ => ask(&mut s, ATTACKER, XsType::Mkdir, tx, &[&path[..], b"\0"].concat()),
        };
        assert!(s.memory_of(ATTACKER) <= s.limits().domain_budget());
    }
    s.check_invariants().unwrap();
}
