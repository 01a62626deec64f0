//! mac-spoofer: a hostile network DomU that tries to take another DomU's traffic by sending from
//! its (predictable) MAC, and to turn the switch into a hub by flooding forged source addresses.
//!
//! The toolstack's MACs are `00:16:3e:00:<domid>:<index>`, so the victim's is known from its
//! domain id (`victim=<domid>`). For `secs` seconds the spoofer sends broadcast frames with the
//! victim's source address (gratuitous-ARP style, what a MAC thief does), interleaved with
//! frames from random forged sources (`flood=N` per round, default 300: more than the learnt
//! table holds), and counts every frame it receives whose destination is the victim's MAC.
//! netback must drop every forged frame (its `vif <fe>/<n>: ... spoofed frames dropped` line)
//! and deliver nothing of the victim's to it.
//!
//! Args: `victim=<domid>` (required), `secs=20`, `flood=300`, `vif=0`.
//!
//! Console: `mac-spoofer: posing as <mac> for <n> s`, then at the end
//! `mac-spoofer: sent <n> forged frames, received <r> frames for the victim's MAC, <o> others`.
#![no_std]
#![no_main]

extern crate alloc;

use hv_rt::store::Store;
use hv_rt::{println, time};
use netfront::NetFront;
use smoltcp::phy::{Device, RxToken, TxToken};
use smoltcp::time::Instant;

hv_rt::main!(main);

const TAG: &str = "mac-spoofer";
const SECOND: u64 = 1_000_000_000;

fn main() {
    let Some(victim) = hv_rt::arg("victim").and_then(|v| v.parse::<u8>().ok()) else {
        panic!("{TAG}: give victim=<domid>");
    };
    let secs = hv_rt::arg_u64("secs", 20);
    let flood = hv_rt::arg_u64("flood", 300);
    let index = hv_rt::arg_u64("vif", 0) as u32;
    let victim_mac = [0x00, 0x16, 0x3e, 0x00, victim, 0x00];
    let store = Store::connect().unwrap_or_else(|e| panic!("{TAG}: store: {e}"));
    let mut nf = NetFront::connect_within(store, index, 300 * SECOND).unwrap_or_else(|e| panic!("{TAG}: {e}"));
    println!(
        "{TAG}: posing as {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x} for {secs} s",
        victim_mac[0], victim_mac[1], victim_mac[2], victim_mac[3], victim_mac[4], victim_mac[5]
    );
    let deadline = time::now_ns().saturating_add(secs * SECOND);
    let (mut sent, mut for_victim, mut others) = (0u64, 0u64, 0u64);
    let mut seed = time::now_ns() | 1;
    while time::now_ns() < deadline {
        // One frame from the victim's address, then a burst of forged ones.
        for i in 0..=flood {
            let src = if i == 0 {
                victim_mac
            } else {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let b = seed.to_le_bytes();
                [0x02, b[1], b[2], b[3], b[4], b[5]]
            };
            let Some(tx) = nf.transmit(Instant::from_millis(0)) else { break };
            tx.consume(60, |buf| {
                buf[..6].copy_from_slice(&[0xff; 6]);
                buf[6..12].copy_from_slice(&src);
                buf[12..14].copy_from_slice(&[0x08, 0x06]);
                buf[14..].fill(0);
            });
            sent += 1;
        }
        while let Some((rx, _)) = nf.receive(Instant::from_millis(0)) {
            rx.consume(|frame| {
                if frame.len() >= 6 && frame[..6] == victim_mac {
                    for_victim += 1;
                } else {
                    others += 1;
                }
            });
        }
        nf.maintain();
        nf.wait(time::now_ns().saturating_add(SECOND / 100).min(deadline));
    }
    println!("{TAG}: sent {sent} forged frames, received {for_victim} frames for the victim's MAC, {others} others");
    loop {
        nf.maintain();
        nf.wait(time::now_ns().saturating_add(SECOND));
    }
}
