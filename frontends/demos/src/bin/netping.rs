//! netping: ICMP echo from a DomU.
//!
//! Args: `peer=A.B.C.D` (default 10.0.2.2, QEMU's gateway), `count=N` (default 4),
//! `interval_ms=1000`, `timeout_ms=2000` (how long to wait for the last replies), `wait_s=60` (how
//! long to probe, uncounted, for the peer to come up before counting), plus the
//! network args of `demos::net`.
//!
//! Console: `netping: pinging <peer> from <ip>`, one `netping: reply from <peer> seq=<n>
//! time=<t> ms` per reply, then `netping: <N> sent, <M> received`. The domain exits normally
//! iff every reply arrived, else fails (shutdown reason crash).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;

use demos::net::{Net, fail};
use hv_rt::{println, time};
use smoltcp::socket::icmp;
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, IpAddress, Ipv4Address};

hv_rt::main!(main);

const TAG: &str = "netping";
const MS: u64 = 1_000_000;
const IDENT: u16 = 0x6e70;
const PAYLOAD: &[u8] = b"hv-core netping 0123456789abcdef";

fn main() {
    let peer_s = hv_rt::arg("peer").unwrap_or("10.0.2.2");
    let peer: Ipv4Address = peer_s.parse().unwrap_or_else(|_| fail(TAG, &alloc::format!("peer={peer_s}: bad address")));
    let count = hv_rt::arg_u64("count", 4).clamp(1, 10_000) as u16;
    let interval = hv_rt::arg_u64("interval_ms", 1000) * MS;
    let timeout = hv_rt::arg_u64("timeout_ms", 2000) * MS;
    let mut net = Net::from_args(TAG).unwrap_or_else(|e| fail(TAG, &e));
    let Some(addr) = net.wait_for_address(60_000 * MS) else { fail(TAG, "no address after 60 s") };
    let meta = || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 2048]);
    let h = net.sockets.add(icmp::Socket::new(meta(), meta()));
    net.sockets
        .get_mut::<icmp::Socket>(h)
        .bind(icmp::Endpoint::Ident(IDENT))
        .unwrap_or_else(|e| fail(TAG, &alloc::format!("bind: {e}")));
    let caps = smoltcp::phy::ChecksumCapabilities::default();
    // The peer may still be booting: probe (not counted) until it answers once.
    let up_wait = hv_rt::arg_u64("wait_s", 60) * 1000 * MS;
    if !probe(&mut net, peer, up_wait) {
        fail(TAG, &alloc::format!("{peer} did not answer in {} s", up_wait / (1000 * MS)));
    }
    println!("{TAG}: pinging {peer} from {}", addr.address());
    let mut sent_at = vec![0u64; count as usize];
    let mut replied = vec![false; count as usize];
    let (mut sent, mut received) = (0u16, 0u16);
    let mut next_send = time::now_ns();
    let mut last_sent = 0u64;
    loop {
        net.poll();
        let now = time::now_ns();
        let s = net.sockets.get_mut::<icmp::Socket>(h);
        if sent < count && now >= next_send && s.can_send() {
            let repr = Icmpv4Repr::EchoRequest { ident: IDENT, seq_no: sent, data: PAYLOAD };
            if let Ok(buf) = s.send(repr.buffer_len(), IpAddress::Ipv4(peer)) {
                repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
                sent_at[sent as usize] = now;
                sent += 1;
                last_sent = now;
                next_send = now + interval;
            }
        }
        while s.can_recv() {
            let Ok((data, from)) = s.recv() else { break };
            let Ok(p) = Icmpv4Packet::new_checked(data) else { continue };
            let Ok(Icmpv4Repr::EchoReply { ident, seq_no, data }) = Icmpv4Repr::parse(&p, &caps) else { continue };
            let i = seq_no as usize;
            if ident != IDENT || i >= sent as usize || replied[i] || data != PAYLOAD {
                continue;
            }
            replied[i] = true;
            received += 1;
            let us = (time::now_ns() - sent_at[i]) / 1000;
            println!("{TAG}: reply from {from} seq={seq_no} time={}.{:03} ms", us / 1000, us % 1000);
        }
        if sent == count && (received == count || now >= last_sent + timeout) {
            break;
        }
        let until = if sent < count { next_send } else { last_sent + timeout };
        net.wait_max(until.saturating_sub(time::now_ns()).max(MS));
    }
    println!("{TAG}: {sent} sent, {received} received");
    if received != count {
        fail(TAG, &alloc::format!("{} replies missing", count - received));
    }
}

/// Sends an uncounted echo request (ident `IDENT + 1`) every 500 ms until one is answered.
fn probe(net: &mut Net, peer: Ipv4Address, timeout: u64) -> bool {
    let caps = smoltcp::phy::ChecksumCapabilities::default();
    let deadline = time::now_ns() + timeout;
    let probe_h = {
        let meta = || icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 4], vec![0; 512]);
        let h = net.sockets.add(icmp::Socket::new(meta(), meta()));
        if net.sockets.get_mut::<icmp::Socket>(h).bind(icmp::Endpoint::Ident(IDENT + 1)).is_err() {
            return false;
        }
        h
    };
    let mut next = 0u64;
    let mut seq = 0u16;
    let mut up = false;
    while !up && time::now_ns() < deadline {
        net.poll();
        let now = time::now_ns();
        let s = net.sockets.get_mut::<icmp::Socket>(probe_h);
        if now >= next && s.can_send() {
            let repr = Icmpv4Repr::EchoRequest { ident: IDENT + 1, seq_no: seq, data: PAYLOAD };
            if let Ok(buf) = s.send(repr.buffer_len(), IpAddress::Ipv4(peer)) {
                repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
                seq = seq.wrapping_add(1);
            }
            next = now + 500 * MS;
        }
        while let Ok((data, _)) = s.recv() {
            if let Ok(p) = Icmpv4Packet::new_checked(data)
                && let Ok(Icmpv4Repr::EchoReply { ident, .. }) = Icmpv4Repr::parse(&p, &caps)
            {
                up |= ident == IDENT + 1;
            }
        }
        net.wait_max(next.saturating_sub(time::now_ns()).max(MS));
    }
    net.sockets.remove(probe_h);
    up
}
