//! Random operation sequences from several domains (and raw garbage on their connections),
//! checking after every step what must always hold: the tree is consistent, every node has a
//! live owner, no domain exceeds its quotas or its buffers, every message the server sends is
//! well-formed, and a released domain leaves nothing behind.

mod common;

use proptest::prelude::*;
use xenstored::{Access, DomId, Limits, Permissions, Request, StoreServer};

const GUESTS: [DomId; 3] = [1, 2, 3];

fn limits() -> Limits {
    Limits {
        nodes_per_domain: 5,
        watches_per_domain: 3,
        transactions_per_domain: 2,
        nodes_per_transaction: 16,
        value_bytes: 16,
        perms_per_node: 3,
        ..Limits::default()
    }
}

#[derive(Debug, Clone)]
enum Op {
    Introduce(DomId),
    Release(DomId),
    Write { domid: DomId, path: usize, len: usize, tx: Option<usize> },
    Mkdir { domid: DomId, path: usize, tx: Option<usize> },
    Rm { domid: DomId, path: usize, tx: Option<usize> },
    Read { domid: DomId, path: usize, tx: Option<usize> },
    SetPerms { domid: DomId, path: usize, others: u8, grant: Option<DomId> },
    Watch { domid: DomId, path: usize, token: u8 },
    Unwatch { domid: DomId, path: usize, token: u8 },
    TxStart(DomId),
    TxEnd { domid: DomId, tx: usize, commit: bool },
    Raw { domid: DomId, bytes: Vec<u8> },
    Drain(DomId),
}

fn paths() -> Vec<Vec<u8>> {
    let mut paths: Vec<Vec<u8>> =
        vec![b"a".to_vec(), b"a/b".to_vec(), b"a/b/c".to_vec(), b"x/y/z/w".to_vec(), b"/".to_vec(), b"/local".to_vec()];
    for k in 0..=3 {
        for tail in ["", "/a", "/a/b", "/c"] {
            paths.push(format!("/local/domain/{k}{tail}").into_bytes());
        }
    }
    paths
}

fn guest() -> impl Strategy<Value = DomId> {
    prop::sample::select(GUESTS.to_vec())
}

fn op() -> impl Strategy<Value = Op> {
    let path = 0..paths().len();
    let tx = prop::option::of(0..2usize);
    prop_oneof![
        1 => guest().prop_map(Op::Introduce),
        1 => guest().prop_map(Op::Release),
        6 => (guest(), path.clone(), 0..24usize, tx.clone()).prop_map(|(domid, path, len, tx)| Op::Write { domid, path, len, tx }),
        2 => (guest(), path.clone(), tx.clone()).prop_map(|(domid, path, tx)| Op::Mkdir { domid, path, tx }),
        2 => (guest(), path.clone(), tx.clone()).prop_map(|(domid, path, tx)| Op::Rm { domid, path, tx }),
        2 => (guest(), path.clone(), tx.clone()).prop_map(|(domid, path, tx)| Op::Read { domid, path, tx }),
        2 => (guest(), path.clone(), 0..4u8, prop::option::of(0..4u16)).prop_map(|(domid, path, others, grant)| Op::SetPerms { domid, path, others, grant }),
        2 => (guest(), path.clone(), 0..5u8).prop_map(|(domid, path, token)| Op::Watch { domid, path, token }),
        1 => (guest(), path, 0..5u8).prop_map(|(domid, path, token)| Op::Unwatch { domid, path, token }),
        2 => guest().prop_map(Op::TxStart),
        2 => (guest(), 0..2usize, any::<bool>()).prop_map(|(domid, tx, commit)| Op::TxEnd { domid, tx, commit }),
        1 => (guest(), prop::collection::vec(any::<u8>(), 0..48)).prop_map(|(domid, bytes)| Op::Raw { domid, bytes }),
        2 => guest().prop_map(Op::Drain),
    ]
}

fn access(n: u8) -> Access {
    [Access::None, Access::Read, Access::Write, Access::Both][usize::from(n % 4)]
}

struct World {
    server: StoreServer,
    txs: std::collections::BTreeMap<DomId, Vec<u32>>,
    paths: Vec<Vec<u8>>,
}

impl World {
    fn apply(&mut self, op: &Op) {
        let txs = &self.txs;
        let tx_id = |domid: DomId, slot: Option<usize>| -> u32 {
            slot.and_then(|s| txs.get(&domid)?.get(s).copied()).unwrap_or(0)
        };
        let s = &mut self.server;
        match op.clone() {
            Op::Introduce(d) => {
                let _ = s.introduce(d);
            }
            Op::Release(d) => {
                if s.release(d).is_ok() {
                    self.txs.remove(&d);
                    let home = xenstored::path::domain_path(d);
                    for (path, node) in s.store().iter() {
                        assert_ne!(node.perms.owner, d, "released domain still owns {path:?}");
                        assert!(node.perms.entries.iter().all(|(e, _)| *e != d), "released domain named in {path:?}");
                        assert!(!xenstored::path::is_at_or_below(path, &home), "{path:?} survived release");
                    }
                    assert!(s.connection(d).is_none());
                }
            }
            Op::Write { domid, path, len, tx } => {
                let tx = tx_id(domid, tx);
                let value = vec![b'v'; len];
                let _ = s.execute(domid, tx, Request::Write { path: &self.paths[path], value: &value });
            }
            Op::Mkdir { domid, path, tx } => {
                let tx = tx_id(domid, tx);
                let _ = s.execute(domid, tx, Request::Mkdir { path: &self.paths[path] });
            }
            Op::Rm { domid, path, tx } => {
                let tx = tx_id(domid, tx);
                let _ = s.execute(domid, tx, Request::Rm { path: &self.paths[path] });
            }
            Op::Read { domid, path, tx } => {
                let tx = tx_id(domid, tx);
                let _ = s.execute(domid, tx, Request::Read { path: &self.paths[path] });
            }
            Op::SetPerms { domid, path, others, grant } => {
                let mut perms = Permissions::new(domid, access(others));
                if let Some(g) = grant {
                    perms = perms.with(g, access(others + 1));
                }
                let _ = s.execute(domid, 0, Request::SetPerms { path: &self.paths[path], perms });
            }
            Op::Watch { domid, path, token } => {
                let _ = s.execute(domid, 0, Request::Watch { path: &self.paths[path], token: &[b'a' + token] });
            }
            Op::Unwatch { domid, path, token } => {
                let _ = s.execute(domid, 0, Request::Unwatch { path: &self.paths[path], token: &[b'a' + token] });
            }
            Op::TxStart(d) => {
                if let Ok(reply) = s.execute(d, 0, Request::TransactionStart) {
                    let text = std::str::from_utf8(reply.payload().strip_suffix(b"\0").unwrap()).unwrap();
                    self.txs.entry(d).or_default().push(text.parse().unwrap());
                }
            }
            Op::TxEnd { domid, tx, commit } => {
                let ids = self.txs.entry(domid).or_default();
                if tx < ids.len() {
                    let id = ids.remove(tx);
                    let _ = s.execute(domid, id, Request::TransactionEnd { commit });
                }
            }
            Op::Raw { domid, bytes } => {
                // Make some of the garbage start with a plausible header.
                let mut framed = bytes.clone();
                if let Some(&first) = bytes.first()
                    && first % 2 == 0
                    && bytes.len() >= 16
                {
                    let len = (bytes.len() - 16) as u32 + u32::from(first % 3);
                    framed[0..4].copy_from_slice(&u32::from(bytes[1] % 28).to_le_bytes());
                    framed[12..16].copy_from_slice(&len.to_le_bytes());
                }
                let split = usize::from(bytes.first().copied().unwrap_or(0)) % (framed.len() + 1);
                let a = s.receive(domid, &framed[..split]);
                if a == Ok(split) {
                    let _ = s.receive(domid, &framed[split..]);
                }
            }
            Op::Drain(d) => {
                // Every message the server produces decodes and respects the payload limit.
                for message in common::drain(s, d) {
                    assert!(message.payload.len() <= 4096);
                }
            }
        }
    }

    fn check(&self) {
        let s = &self.server;
        s.check_invariants().unwrap();
        let limits = s.limits();
        for d in GUESTS {
            // Only guests create nodes in these runs, so each stays within its quota.
            assert!(s.store().owned(d) <= limits.nodes_per_domain, "domain {d} owns {}", s.store().owned(d));
            if let Some(conn) = s.connection(d) {
                assert!(
                    conn.buffered_bytes() <= limits.output_bytes + limits.event_queue_bytes + xenstored::MAX_MESSAGE
                );
            } else {
                assert_eq!(s.store().owned(d), 0);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn invariants_hold_under_random_operations(ops in prop::collection::vec(op(), 1..80)) {
        let mut world = World { server: StoreServer::new(limits()), txs: Default::default(), paths: paths() };
        let baseline_nodes = world.server.store().node_count();
        for d in GUESTS {
            world.server.introduce(d).unwrap();
        }
        for op in &ops {
            world.apply(op);
            world.check();
        }
        // Releasing everyone returns the tree to its initial size.
        for d in GUESTS {
            let _ = world.server.release(d);
        }
        world.check();
        prop_assert_eq!(world.server.store().node_count(), baseline_nodes);
    }

    #[test]
    fn arbitrary_bytes_never_panic_or_overflow(chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..20)) {
        let mut server = StoreServer::new(limits());
        server.introduce(1).unwrap();
        for chunk in &chunks {
            let taken = server.receive(1, chunk).unwrap();
            prop_assert!(taken <= chunk.len());
            for message in common::drain(&mut server, 1) {
                prop_assert!(message.payload.len() <= 4096);
            }
            server.check_invariants().unwrap();
        }
        server.release(1).unwrap();
        server.check_invariants().unwrap();
    }
}
