//! The MAC table: netback's `switch::Switch` against the linear table it replaced (a `Vec` of
//! entries searched front to back, the oldest found by a scan), at 16 and 256 addresses.
//!
//! `cargo bench -p netback --bench mac_table` (host, release). Each figure is the best of
//! several timed passes, in nanoseconds per operation:
//! * `lookup hit` / `lookup miss`: a known unicast destination / an unknown one (flooded);
//! * `decide`: one frame between two known addresses (learn the source, look up the
//!   destination), the per-frame cost in the bridge;
//! * `learn new (full)`: a never-seen source on a full table, which replaces the oldest entry
//!   (a vif sending from forged addresses);
//! * `forget port`: a vif goes away (all its entries dropped), then its addresses are learnt again.
use std::hint::black_box;
use std::time::Instant;

use netback::switch::{Forward, Mac, PortId, Switch, TABLE_SIZE};

/// The table the switch used before hashbrown (kept here as the reference).
mod linear {
    use super::{Forward, Mac, PortId, TABLE_SIZE};
    use netback::switch::{MAX_AGE_NS, addresses, is_group};

    #[derive(Clone, Copy)]
    struct Entry {
        mac: Mac,
        port: PortId,
        seen_ns: u64,
    }

    pub struct Linear {
        table: Vec<Entry>,
    }

    impl Linear {
        pub fn new() -> Self {
            Self { table: Vec::with_capacity(TABLE_SIZE) }
        }

        pub fn learn(&mut self, src: &Mac, port: PortId, now_ns: u64) {
            if is_group(src) || *src == [0; 6] {
                return;
            }
            if let Some(e) = self.table.iter_mut().find(|e| e.mac == *src) {
                e.port = port;
                e.seen_ns = now_ns;
                return;
            }
            let entry = Entry { mac: *src, port, seen_ns: now_ns };
            if self.table.len() < TABLE_SIZE {
                self.table.push(entry);
            } else if let Some(oldest) = self.table.iter_mut().min_by_key(|e| e.seen_ns) {
                *oldest = entry;
            }
        }

        pub fn lookup(&self, dst: &Mac, now_ns: u64) -> Option<PortId> {
            self.table.iter().find(|e| e.mac == *dst && now_ns.saturating_sub(e.seen_ns) <= MAX_AGE_NS).map(|e| e.port)
        }

        pub fn forget_port(&mut self, port: PortId) {
            self.table.retain(|e| e.port != port);
        }

        pub fn decide(&mut self, ingress: PortId, frame: &[u8], now_ns: u64) -> Forward {
            let Some((dst, src)) = addresses(frame) else { return Forward::Drop };
            self.learn(&src, ingress, now_ns);
            if is_group(&dst) {
                return Forward::Flood;
            }
            match self.lookup(&dst, now_ns) {
                Some(p) if p == ingress => Forward::Drop,
                Some(p) => Forward::Port(p),
                None => Forward::Flood,
            }
        }
    }
}

/// What the benchmark needs of a table.
trait Table {
    const NAME: &'static str;
    fn new() -> Self;
    fn learn(&mut self, src: &Mac, port: PortId, now_ns: u64);
    fn lookup(&self, dst: &Mac, now_ns: u64) -> Option<PortId>;
    fn forget_port(&mut self, port: PortId);
    fn decide(&mut self, ingress: PortId, frame: &[u8], now_ns: u64) -> Forward;
}

impl Table for linear::Linear {
    const NAME: &'static str = "linear Vec (before)";
    fn new() -> Self {
        linear::Linear::new()
    }
    fn learn(&mut self, src: &Mac, port: PortId, now_ns: u64) {
        self.learn(src, port, now_ns)
    }
    fn lookup(&self, dst: &Mac, now_ns: u64) -> Option<PortId> {
        self.lookup(dst, now_ns)
    }
    fn forget_port(&mut self, port: PortId) {
        self.forget_port(port)
    }
    fn decide(&mut self, ingress: PortId, frame: &[u8], now_ns: u64) -> Forward {
        self.decide(ingress, frame, now_ns)
    }
}

impl Table for Switch {
    const NAME: &'static str = "switch::Switch (now)";
    fn new() -> Self {
        Switch::new()
    }
    fn learn(&mut self, src: &Mac, port: PortId, now_ns: u64) {
        self.learn(src, port, now_ns)
    }
    fn lookup(&self, dst: &Mac, now_ns: u64) -> Option<PortId> {
        self.lookup(dst, now_ns)
    }
    fn forget_port(&mut self, port: PortId) {
        self.forget_port(port)
    }
    fn decide(&mut self, ingress: PortId, frame: &[u8], now_ns: u64) -> Forward {
        self.decide(ingress, frame, now_ns)
    }
}

/// The `i`th locally administered unicast address (as Xen's 00:16:3e vifs and QEMU's hosts
/// would be, spread over the low bytes).
fn mac(i: u64) -> Mac {
    let b = (i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16).to_be_bytes();
    [0x02, b[3], b[4], b[5], b[6], b[7]]
}

fn frame(dst: &Mac, src: &Mac) -> [u8; 60] {
    let mut f = [0u8; 60];
    f[..6].copy_from_slice(dst);
    f[6..12].copy_from_slice(src);
    f[12] = 0x08;
    f
}

/// A table holding `n` addresses, address `i` on port `1 + i % 8`.
fn filled<T: Table>(n: usize) -> T {
    let mut t = T::new();
    for i in 0..n as u64 {
        t.learn(&mac(i), 1 + (i % 8) as PortId, i);
    }
    t
}

const PASSES: usize = 7;

/// Best nanoseconds per operation over the passes; `f` runs `ops` operations.
fn time(ops: u64, mut f: impl FnMut()) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..PASSES {
        let t0 = Instant::now();
        f();
        best = best.min(t0.elapsed().as_nanos() as f64 / ops as f64);
    }
    best
}

fn bench<T: Table>(n: usize) -> [f64; 5] {
    const OPS: u64 = 200_000;
    let now = n as u64;
    let known: Vec<Mac> = (0..n as u64).map(mac).collect();
    let unknown: Vec<Mac> = (0..64).map(|i| mac(1_000_000 + i)).collect();

    let t = filled::<T>(n);
    let lookup_hit = time(OPS, || {
        for i in 0..OPS as usize {
            black_box(t.lookup(black_box(&known[(i * 7) % n]), now));
        }
    });
    let lookup_miss = time(OPS, || {
        for i in 0..OPS as usize {
            black_box(t.lookup(black_box(&unknown[i % unknown.len()]), now));
        }
    });

    let mut t = filled::<T>(n);
    let frames: Vec<([u8; 60], PortId)> = (0..n)
        .map(|i| {
            let (s, d) = (i, (i * 7 + 1) % n);
            (frame(&known[d], &known[s]), 1 + (s % 8) as PortId)
        })
        .collect();
    let decide = time(OPS, || {
        for i in 0..OPS as usize {
            let (f, port) = &frames[i % frames.len()];
            black_box(t.decide(*port, black_box(f), now + i as u64));
        }
    });

    // A full table, then never-seen sources, each replacing the oldest entry.
    let mut t = filled::<T>(TABLE_SIZE);
    let mut next = 10_000_000u64;
    let learn_new = time(OPS, || {
        for _ in 0..OPS {
            next += 1;
            t.learn(black_box(&mac(next)), 9, next);
        }
    });

    let mut t = filled::<T>(n);
    const ROUNDS: u64 = 2_000;
    let forget = time(ROUNDS, || {
        for r in 0..ROUNDS {
            t.forget_port(1);
            for i in (0..n as u64).step_by(8) {
                t.learn(&mac(i), 1, now + r);
            }
        }
    });
    [lookup_hit, lookup_miss, decide, learn_new, forget]
}

fn main() {
    const COLUMNS: [&str; 5] = ["lookup hit", "lookup miss", "decide", "learn new (full)", "forget port"];
    println!("ns per operation, best of {PASSES} passes (MAC table bounded at {TABLE_SIZE})");
    print!("{:<8} {:<22}", "entries", "table");
    for c in COLUMNS {
        print!(" {c:>17}");
    }
    println!();
    for n in [4, 16, 64, 256] {
        let rows = [(linear::Linear::NAME, bench::<linear::Linear>(n)), (Switch::NAME, bench::<Switch>(n))];
        for (name, r) in rows {
            print!("{n:<8} {name:<22}");
            for v in r {
                print!(" {v:>17.1}");
            }
            println!();
        }
    }
    println!("(`learn new (full)` always runs on a full table of {TABLE_SIZE}, whatever the row's size)");
}
