//! net-attacker: a hostile network DomU. It connects `vif/<n>` through the netif handshake
//! (bare rings, `netfront::raw`), never posts an rx buffer, and floods the tx ring for `secs`
//! seconds with malformed requests mixed with valid broadcast frames: bad grant refs, data past
//! the page, size 0, huge sizes, unknown flags, `more_data` chains longer than 18 slots,
//! fragments larger than their packet, extra-info slots of bad types, unterminated chains, and
//! now and then a request producer index far past what the ring holds. Whatever the backend
//! does (errors, disconnects) it counts, reconnects and goes on; it never panics.
//!
//! Args: `secs=10`, `vif=0`, `seed=` (default: the TSC).
//!
//! Console: `net-attacker: connected to backend domain <b>, flooding for <n> s`, then every
//! 10 s and at the end `net-attacker: sent <X> requests, <Y> errors, <Z> okay` and
//! `net-attacker: dropped <D>, null <N>, reconnects <R>, overruns <O>, backend disconnects <C>`.
#![no_std]
#![no_main]

extern crate alloc;

use hv_rt::store::Store;
use hv_rt::{println, time};
use netfront::raw::RawVif;
use shared_ring::SharedMemory;
use shared_ring::layout::REQ_PROD;
use shared_ring::wire::netif::{
    NetifExtraInfo, NetifTxRequest, NetifTxSlot, RSP_DROPPED, RSP_ERROR, RSP_NULL, RSP_OKAY, TXF_EXTRA_INFO,
    TXF_MORE_DATA,
};

hv_rt::main!(main);

const TAG: &str = "net-attacker";
const SECOND: u64 = 1_000_000_000;
const PAGES: usize = 16;
const FRAME: u16 = 60;
/// The running totals are printed this often (and at the end).
const REPORT_NS: u64 = 10 * SECOND;

#[derive(Default)]
struct Counts {
    sent: u64,
    okay: u64,
    error: u64,
    dropped: u64,
    null: u64,
    other: u64,
    reconnects: u64,
    overruns: u64,
    disconnects: u64,
    ring_errors: u64,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

struct Attacker {
    vif: RawVif,
    rng: Rng,
    next_id: u16,
    c: Counts,
}

fn main() {
    let secs = hv_rt::arg_u64("secs", 10);
    let index = hv_rt::arg_u64("vif", 0) as u32;
    let seed = hv_rt::arg_u64("seed", time::rdtsc()) | 1;
    let store = match Store::connect() {
        Ok(s) => s,
        Err(e) => {
            println!("{TAG}: store: {e}");
            return;
        }
    };
    let vif = match RawVif::connect(store, index, PAGES) {
        Ok(v) => v,
        Err(e) => {
            println!("{TAG}: cannot connect vif {index}: {e}");
            return;
        }
    };
    println!("{TAG}: connected to backend domain {}, flooding for {secs} s", vif.backend());
    let mut a = Attacker { vif, rng: Rng(seed), next_id: 0, c: Counts::default() };
    a.fill_pages();
    a.run(time::now_ns() + secs * SECOND);
    a.c.report();
}

impl Counts {
    fn report(&self) {
        let c = self;
        println!("{TAG}: sent {} requests, {} errors, {} okay", c.sent, c.error + c.dropped, c.okay);
        println!(
            "{TAG}: dropped {}, null {}, other {}, reconnects {}, overruns {}, backend disconnects {}, ring errors {}",
            c.dropped, c.null, c.other, c.reconnects, c.overruns, c.disconnects, c.ring_errors
        );
    }
}

impl Attacker {
    /// Every pool page holds the same valid broadcast frame.
    fn fill_pages(&mut self) {
        let mut frame = [0u8; FRAME as usize];
        frame[..6].fill(0xff);
        frame[6..12].copy_from_slice(&self.vif.mac());
        frame[12..14].copy_from_slice(&0x88b5u16.to_be_bytes()); // local experimental ethertype
        for (i, b) in frame[14..].iter_mut().enumerate() {
            *b = i as u8;
        }
        for i in 0..PAGES {
            self.vif.write_page(i, &frame);
        }
    }

    fn run(&mut self, deadline: u64) {
        let mut round = 0u64;
        let mut last_check = time::now_ns();
        let mut last_report = last_check;
        while time::now_ns() < deadline {
            if time::now_ns() - last_report >= REPORT_NS {
                last_report = time::now_ns();
                self.c.report();
            }
            round += 1;
            if round.is_multiple_of(500) {
                self.overrun();
                continue;
            }
            let mut pushed = false;
            while self.vif.tx.free_requests() >= 24 {
                self.push_packet();
                pushed = true;
            }
            if pushed {
                let _ = self.vif.tx.publish_requests();
                self.vif.notify(); // whether asked or not
            }
            let got = self.collect();
            let now = time::now_ns();
            if now - last_check > SECOND / 2 {
                last_check = now;
                if let Some(why) = self.vif.check() {
                    println!("{TAG}: {why}");
                    self.c.disconnects += 1;
                    self.reconnect();
                    continue;
                }
            }
            if !got && !pushed {
                if let Some(p) = self.vif.port() {
                    hv_rt::evtchn::clear(p);
                }
                time::block_until(now + SECOND / 200);
            }
        }
    }

    fn reconnect(&mut self) {
        self.c.reconnects += 1;
        let mut tries = 0u32;
        while let Err(e) = self.vif.reconnect() {
            tries += 1;
            if tries == 1 || tries.is_multiple_of(10) {
                println!("{TAG}: reconnection failed: {e}");
            }
            time::sleep_ms(500);
        }
    }

    /// Writes a request producer index 1000 past the ring's contents, then starts over.
    fn overrun(&mut self) {
        let mem = self.vif.tx.memory();
        let prod = mem.load_acquire(REQ_PROD);
        mem.store_fenced(REQ_PROD, prod.wrapping_add(1000));
        self.vif.notify();
        self.c.overruns += 1;
        time::sleep_ms(50);
        self.collect();
        self.reconnect();
    }

    /// Takes every response there is; whether there was any.
    fn collect(&mut self) -> bool {
        let mut any = false;
        loop {
            match self.vif.tx.poll_response() {
                Ok(Some(r)) => {
                    any = true;
                    match r.status {
                        RSP_OKAY => self.c.okay += 1,
                        RSP_ERROR => self.c.error += 1,
                        RSP_DROPPED => self.c.dropped += 1,
                        RSP_NULL => self.c.null += 1,
                        _ => self.c.other += 1,
                    }
                }
                Ok(None) => return any,
                Err(e) => {
                    println!("{TAG}: the backend broke the ring: {e}");
                    self.c.ring_errors += 1;
                    self.reconnect();
                    return true;
                }
            }
        }
    }

    /// An id no outstanding request uses.
    fn id(&mut self) -> u16 {
        for _ in 0..256 {
            let id = self.next_id;
            self.next_id = (self.next_id + 1) % 256;
            if !self.vif.tx.is_outstanding(u32::from(id)) {
                return id;
            }
        }
        0
    }

    fn gref(&mut self) -> u32 {
        let i = self.rng.below(PAGES as u64) as usize;
        self.vif.pool[i].gref
    }

    fn data(&mut self, offset: u16, flags: u16, size: u16) {
        let gref = self.gref();
        self.slot(gref, offset, flags, size);
    }

    fn slot(&mut self, gref: u32, offset: u16, flags: u16, size: u16) {
        let id = self.id();
        let req = NetifTxRequest { gref, offset, flags, id, size };
        if self.vif.tx.push_request(NetifTxSlot::Request(req)).is_ok() {
            self.c.sent += 1;
        }
    }

    fn extra(&mut self, extra_type: u8, flags: u8) {
        let mut u = [0u8; 6];
        u[..2].copy_from_slice(&1448u16.to_le_bytes());
        u[2] = 1;
        if self.vif.tx.push_request(NetifTxSlot::Extra(NetifExtraInfo { extra_type, flags, u })).is_ok() {
            self.c.sent += 1;
        }
    }

    /// One packet, valid about a third of the time. Uses at most 22 slots.
    fn push_packet(&mut self) {
        match self.rng.below(22) {
            0..=6 => self.data(0, 0, FRAME),
            7 => {
                let bad = [0, 1, 7, 511, 512, 4096, u32::MAX, self.vif.pool[0].gref.wrapping_add(300)];
                let g = bad[self.rng.below(bad.len() as u64) as usize];
                self.slot(g, 0, 0, FRAME);
            }
            8 => self.data(4000, 0, 200),
            9 => self.data(0, 0, 0),
            10 => self.data(0, 0, u16::MAX),
            11 => self.data(0, 0xfff0, FRAME),
            12 => {
                // 20 slots (limit 18).
                self.data(0, TXF_MORE_DATA, 20 * FRAME);
                for _ in 0..18 {
                    self.data(0, TXF_MORE_DATA, FRAME);
                }
                self.data(0, 0, FRAME);
            }
            13 => {
                let t = [0u8, 5, 9, 0xff][self.rng.below(4) as usize];
                self.data(0, TXF_EXTRA_INFO, FRAME);
                self.extra(t, 0);
            }
            14 => {
                // A GSO extra with unknown extra flags, then more extras.
                self.data(0, TXF_EXTRA_INFO, FRAME);
                self.extra(1, 0xfe | 1);
                self.extra(2, 1);
                self.extra(3, 0);
            }
            15 => {
                self.data(0, TXF_MORE_DATA, 100);
                self.data(0, 0, 200);
            }
            16 => self.data(0, 0, 3000),
            17 => self.data(0, 0, 5),
            18 => self.data(4095, 0, 1),
            19 => {
                // A chain left open: the next packet's first slot continues it.
                self.data(0, TXF_MORE_DATA, 2 * FRAME);
                self.data(0, TXF_MORE_DATA, FRAME);
            }
            20 => {
                // A 60000-byte GSO packet (a valid GSO extra: TCPV4, MSS 1448) over 15 pages of
                // whatever they hold: netback cuts only what parses as TCP of the attacker's own
                // MAC, into at most 128 frames, and refuses the rest.
                self.data(0, TXF_EXTRA_INFO | TXF_MORE_DATA, 60000);
                self.extra(1, 0);
                for i in 0..14 {
                    self.data(0, if i < 13 { TXF_MORE_DATA } else { 0 }, 4096);
                }
            }
            _ => {
                // Fragments at odd offsets adding up right, but the frame exceeds 1514 bytes.
                self.data(100, TXF_MORE_DATA, 3000);
                self.data(2000, 0, 2000);
            }
        }
    }
}
