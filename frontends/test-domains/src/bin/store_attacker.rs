//! A hostile DomU that tries to exhaust Dom0's memory through the store, by each pattern the
//! audit found (docs/store.md, "Quotas and limits"):
//!
//! * `transactions`: ten transactions, each reading 1024 missing 2.9 KiB paths (before the byte
//!   budget this made Dom0 panic in the third transaction and the machine power off);
//! * `rewrites`: one transaction writing the same node 20,000 times;
//! * `nodes`: nodes with 3000-byte paths until the store refuses;
//! * `watches`: watches with 3000-byte paths and 1000-byte tokens until the store refuses.
//!
//! `rounds=N` (default 3) repeats the whole set. Each pattern prints what the store answered;
//! at the end `store-attacker: done: <n> requests refused (ENOSPC <n>, E2BIG <n>), Dom0 still
//! answering` and the domain idles until it is destroyed (the scenario then checks that the
//! store's memory is back at its baseline).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::vec::Vec;
use hv_rt::println;
use hv_rt::store::Store;
use xenstore::{ClientError, Errno, Request, StoreClient};

hv_rt::main!(main);

const TAG: &str = "store-attacker";

#[derive(Default)]
struct Tally {
    refused: u32,
    enospc: u32,
    e2big: u32,
    other: u32,
}

impl Tally {
    /// Counts a refusal; `Ok` and `ENOENT` (a missing node read) are what an honest client gets.
    fn note<T>(&mut self, r: &Result<T, ClientError>) -> bool {
        match r {
            Ok(_) | Err(ClientError::Store(Errno::Enoent)) => false,
            Err(e) => {
                self.refused += 1;
                match e {
                    ClientError::Store(Errno::Enospc) => self.enospc += 1,
                    ClientError::Store(Errno::E2big) => self.e2big += 1,
                    _ => self.other += 1,
                }
                true
            }
        }
    }
}

/// An absolute path of `len` bytes under our home.
fn long_path(home: &str, tag: &str, len: usize) -> Vec<u8> {
    let mut p = format!("{home}/{tag}/").into_bytes();
    p.resize(len, b'x');
    p
}

fn main() {
    let mut store = Store::connect().unwrap_or_else(|e| panic!("store: {e}"));
    let home = format!("/local/domain/{}", hv_rt::domid());
    let rounds = hv_rt::arg_u64("rounds", 3);
    let mut t = Tally::default();
    for round in 0..rounds {
        // Ten transactions reading missing long paths.
        let mut txs = Vec::new();
        for n in 0..10 {
            let tx = match store.transaction_start() {
                Ok(tx) => tx,
                Err(e) => {
                    t.note::<()>(&Err(e));
                    continue;
                }
            };
            txs.push(tx);
            let mut reads = 0;
            for i in 0..1024 {
                let path = long_path(&home, &format!("r{round}t{n}i{i}"), 2900);
                let r = store.request(Request::Read { path: &path }, tx);
                if t.note(&r) {
                    break;
                }
                reads += 1;
            }
            if round == 0 {
                println!("{TAG}: transaction {n}: {reads} missing 2.9 KiB paths read, then refused");
            }
        }
        for tx in txs {
            let _ = store.transaction_end(tx, false);
        }
        // One node written again and again inside a transaction.
        if let Ok(tx) = store.transaction_start() {
            let path = format!("{home}/rewritten").into_bytes();
            let mut refused = 0;
            for i in 0..20_000u32 {
                let value = format!("{}", i % 10);
                if t.note(&store.request(Request::Write { path: &path, value: value.as_bytes() }, tx)) {
                    refused += 1;
                    break;
                }
            }
            let _ = store.transaction_end(tx, false);
            if round == 0 {
                println!("{TAG}: 20000 rewrites of one node in a transaction: {refused} refused");
            }
        }
        // Owned nodes with long paths.
        let mut created = 0;
        for i in 0..1000 {
            let path = long_path(&home, &format!("n{i}"), 3000);
            if t.note(&store.request(Request::Write { path: &path, value: b"" }, 0)) {
                break;
            }
            created += 1;
        }
        // Watches with long paths and tokens.
        let mut watches = 0;
        let token = [b't'; 1000];
        for i in 0..128 {
            let path = long_path(&home, &format!("w{i}"), 3000);
            if t.note(&store.request(Request::Watch { path: &path, token: &token }, 0)) {
                break;
            }
            watches += 1;
        }
        if round == 0 {
            println!("{TAG}: {created} nodes with 3000-byte paths, {watches} watches of 4 KiB, then refused");
        }
        // Give the memory back for the next round.
        for i in 0..created {
            let path = long_path(&home, &format!("n{i}"), 3000);
            let _ = store.request(Request::Rm { path: &path }, 0);
        }
        for i in 0..watches {
            let path = long_path(&home, &format!("w{i}"), 3000);
            let _ = store.request(Request::Unwatch { path: &path, token: &token }, 0);
        }
        while store.take_event().is_some() {}
    }
    let alive = store.read(b"/local/domain/0/name").is_ok() || store.read(home.as_bytes()).is_ok();
    println!(
        "{TAG}: done: {} requests refused (ENOSPC {}, E2BIG {}, other {}), Dom0 {}",
        t.refused,
        t.enospc,
        t.e2big,
        t.other,
        if alive { "still answering" } else { "NOT ANSWERING" }
    );
    loop {
        hv_rt::time::sleep_ms(1000);
        let _ = store.take_events();
    }
}
