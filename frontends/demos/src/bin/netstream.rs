//! netstream: a TCP bulk transfer between two DomUs (or a DomU and the host), checked end to
//! end.
//!
//! Args: `mode=recv|send`, `port=5001` (recv), `peer=A.B.C.D:P` (send), `bytes=N` (default
//! 16 MiB), `seed=S` (default 1), `bufkib=K` (socket buffer, default 256), plus the network args
//! of `demos::net`. The stream is `netfront::stream`'s deterministic generator for `seed`;
//! its checksum is FNV-1a 64.
//!
//! Console (recv): `netstream: listening on <ip>:<port> for <N> bytes`, then
//! `netstream: received <N> bytes in <T> ms (<X> Mbit/s), checksum 0x<16 hex>` and
//! `netstream: checksum ok` (or `netstream: CHECKSUM MISMATCH (expected 0x...)`, and the domain
//! fails: shutdown reason crash). Console (send): `netstream: connected to <peer>`, then
//! `netstream: sent <N> bytes in <T> ms (<X> Mbit/s), checksum 0x<16 hex>`.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::vec;

use demos::net::{Net, fail};
use hv_rt::{println, time};
use netfront::stream::{Fnv64, StreamGen, expected_checksum};
use smoltcp::socket::tcp;
use smoltcp::wire::IpEndpoint;

hv_rt::main!(main);

const TAG: &str = "netstream";
const SECOND: u64 = 1_000_000_000;

fn main() {
    let bytes = hv_rt::arg_u64("bytes", 16 << 20);
    let seed = hv_rt::arg_u64("seed", 1);
    let buf = (hv_rt::arg_u64("bufkib", 256).clamp(4, 1024) * 1024) as usize;
    let mode = hv_rt::arg("mode").unwrap_or("recv");
    let mut net = Net::from_args(TAG).unwrap_or_else(|e| fail(TAG, &e));
    let Some(addr) = net.wait_for_address(60 * SECOND) else { fail(TAG, "no address after 60 s") };
    match mode {
        "recv" => recv(&mut net, addr.address(), bytes, seed, buf),
        "send" => send(&mut net, bytes, seed, buf),
        m => fail(TAG, &alloc::format!("mode={m}: expected recv or send")),
    }
}

/// Whole and tenths of Mbit/s for `bytes` in `ns`.
fn rate(bytes: u64, ns: u64) -> (u64, u64) {
    let tenths = (bytes as u128 * 8 * 10 * 1000 / ns.max(1) as u128) as u64; // bits*10 / us
    (tenths / 10, tenths % 10)
}

/// One line of netfront counters.
fn report(net: &Net) {
    let s = net.nf.stats();
    println!(
        "{TAG}: netfront tx {} pkts ({} dropped, {} refused), rx {} pkts ({} errors), reconnects {}",
        s.tx_packets, s.tx_dropped, s.tx_errors, s.rx_packets, s.rx_errors, s.reconnects
    );
}

fn recv(net: &mut Net, ip: smoltcp::wire::Ipv4Address, bytes: u64, seed: u64, buf: usize) {
    let port = hv_rt::arg_u64("port", 5001) as u16;
    let rx = tcp::SocketBuffer::new(vec![0; buf]);
    let tx = tcp::SocketBuffer::new(vec![0; 4096]);
    let h = net.sockets.add(tcp::Socket::new(rx, tx));
    net.sockets.get_mut::<tcp::Socket>(h).listen(port).unwrap_or_else(|e| fail(TAG, &alloc::format!("listen: {e}")));
    println!("{TAG}: listening on {ip}:{port} for {bytes} bytes");
    let mut hash = Fnv64::new();
    let mut got = 0u64;
    let mut start = None;
    loop {
        net.poll();
        let s = net.sockets.get_mut::<tcp::Socket>(h);
        if start.is_none() && s.state() == tcp::State::Established {
            start = Some(time::now_ns());
            if let Some(peer) = s.remote_endpoint() {
                println!("{TAG}: connection from {peer}");
            }
        }
        let mut progress = false;
        while s.can_recv() && got < bytes {
            let want = (bytes - got).min(usize::MAX as u64) as usize;
            let n = s
                .recv(|d| {
                    let n = d.len().min(want);
                    hash.update(&d[..n]);
                    (n, n)
                })
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            got += n as u64;
            progress = true;
        }
        if got >= bytes {
            break;
        }
        if start.is_some() && !s.may_recv() {
            fail(TAG, &alloc::format!("connection closed after {got} of {bytes} bytes"));
        }
        if !progress {
            net.wait();
        }
    }
    let ns = time::now_ns() - start.unwrap_or(0);
    let (w, t) = rate(bytes, ns);
    let sum = hash.value();
    println!("{TAG}: received {bytes} bytes in {} ms ({w}.{t} Mbit/s), checksum {sum:#018x}", ns / 1_000_000);
    // Finish the connection politely (our FIN, their last ACK) before judging.
    net.sockets.get_mut::<tcp::Socket>(h).close();
    linger(net, h);
    report(net);
    let expected = expected_checksum(seed, bytes);
    if sum == expected {
        println!("{TAG}: checksum ok");
    } else {
        fail(TAG, &alloc::format!("CHECKSUM MISMATCH (expected {expected:#018x})"));
    }
}

/// Polls for up to 2 s while the socket closes.
fn linger(net: &mut Net, h: smoltcp::iface::SocketHandle) {
    let deadline = time::now_ns() + 2 * SECOND;
    while time::now_ns() < deadline {
        net.poll();
        let s = net.sockets.get_mut::<tcp::Socket>(h);
        if matches!(s.state(), tcp::State::Closed | tcp::State::TimeWait) {
            break;
        }
        net.wait_max(SECOND / 10);
    }
}

fn send(net: &mut Net, bytes: u64, seed: u64, buf: usize) {
    let peer_s = hv_rt::arg("peer").unwrap_or_else(|| fail(TAG, "send needs peer=A.B.C.D:PORT"));
    let peer: IpEndpoint =
        peer_s.parse().unwrap_or_else(|()| fail(TAG, &alloc::format!("peer={peer_s}: bad endpoint")));
    let rx = tcp::SocketBuffer::new(vec![0; 4096]);
    let tx = tcp::SocketBuffer::new(vec![0; buf]);
    let h = net.sockets.add(tcp::Socket::new(rx, tx));
    // Connect, retrying until the peer listens.
    let deadline = time::now_ns() + 120 * SECOND;
    let mut attempt = 0u16;
    let mut said = false;
    loop {
        let s = net.sockets.get_mut::<tcp::Socket>(h);
        if !s.is_open() {
            if time::now_ns() > deadline {
                fail(TAG, &alloc::format!("could not connect to {peer} in 120 s"));
            }
            if attempt > 0 && !said {
                println!("{TAG}: waiting for {peer} to listen");
                said = true;
            }
            if attempt > 0 {
                time::sleep_ms(200);
            }
            s.abort();
            let local = 49152 + (attempt % 16000);
            attempt = attempt.wrapping_add(1);
            if let Err(e) = s.connect(net.iface.context(), peer, local) {
                fail(TAG, &alloc::format!("connect: {e}"));
            }
        }
        net.poll();
        if net.sockets.get_mut::<tcp::Socket>(h).state() == tcp::State::Established {
            break;
        }
        net.wait_max(SECOND / 5);
    }
    println!("{TAG}: connected to {peer}");
    let start = time::now_ns();
    let mut stream = StreamGen::new(seed);
    let mut hash = Fnv64::new();
    let mut sent = 0u64;
    loop {
        let s = net.sockets.get_mut::<tcp::Socket>(h);
        let mut progress = false;
        while sent < bytes && s.can_send() {
            let n = s
                .send(|w| {
                    let n = w.len().min((bytes - sent).min(usize::MAX as u64) as usize);
                    stream.fill(&mut w[..n]);
                    hash.update(&w[..n]);
                    (n, n)
                })
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            sent += n as u64;
            progress = true;
        }
        net.poll();
        // Judged after the poll: the poll that takes the last ACK empties the send queue, and
        // nothing wakes a wait after it (no frame is coming and smoltcp has no timer left), so
        // checking before the poll slept out `Net::wait`'s full second at the end of every
        // transfer.
        let s = net.sockets.get_mut::<tcp::Socket>(h);
        if sent >= bytes && s.send_queue() == 0 {
            break;
        }
        if !s.may_send() {
            fail(TAG, &alloc::format!("connection closed after {sent} of {bytes} bytes queued"));
        }
        // Sleep only when nothing was queued and the socket has no room for more (the poll
        // may have made some).
        let more = sent < bytes && s.can_send();
        if !progress && !more {
            net.wait();
        }
    }
    let ns = time::now_ns() - start;
    net.sockets.get_mut::<tcp::Socket>(h).close();
    linger(net, h);
    let (w, t) = rate(bytes, ns);
    println!("{TAG}: sent {bytes} bytes in {} ms ({w}.{t} Mbit/s), checksum {:#018x}", ns / 1_000_000, hash.value());
    report(net);
}
