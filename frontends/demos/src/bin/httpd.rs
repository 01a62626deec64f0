//! httpd: an HTTP/1.1 server on netfront + smoltcp.
//!
//! Args: `port=80`, `conns=64` (concurrent connections: one listening socket each, listening
//! again once its connection ends; at most 256), plus the network args of `demos::net` (`vif=`,
//! `ip=`, `gw=`). Serves `/` (a small page naming the domain) and `/stats` (counters, plain
//! text); 404 for other paths, 405 for methods other than GET/HEAD, 400 for malformed requests,
//! 431 for requests over 2 KiB. Keep-alive and pipelining work.
//!
//! Slow and idle clients cannot hold the sockets: a request that is not complete 5 s after its
//! first byte (or after the connection opened) gets `408 Request Timeout` and the connection is
//! closed; a keep-alive connection idle for 10 s between requests is closed cleanly (FIN, not
//! RST). While every socket is taken, a new client's SYN is refused by the stack (a clean
//! "connection refused"), never reset in the middle of a request.
//!
//! Console: `httpd: listening on <ip>:<port>` once the interface has an address, then
//! `httpd: <n> requests served` every 1000 requests.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;

use demos::net::{Net, fail};
use hv_rt::{println, time};
use netfront::http::{self, Cursor, MAX_REQUEST, Method, Parse};
use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp;

hv_rt::main!(main);

const TAG: &str = "httpd";
const SECOND: u64 = 1_000_000_000;
/// A request must arrive whole this soon after the connection opened or its first byte came.
const REQUEST_NS: u64 = 5 * SECOND;
/// A keep-alive connection waiting for its next request is closed after this long.
const KEEPALIVE_NS: u64 = 10 * SECOND;
const REPORT_EVERY: u64 = 1000;

struct Conn {
    handle: SocketHandle,
    buf: [u8; MAX_REQUEST],
    len: usize,
    /// A response ended with `Connection: close` (or an error): no more requests.
    closing: bool,
    /// When the connection last finished a response (or opened); 0 while not connected.
    last_active: u64,
    /// When the request being received began (its first byte, or the connection's opening).
    request_started: u64,
}

#[derive(Default)]
struct Counters {
    requests: u64,
    bad: u64,
    not_found: u64,
    connections: u64,
    /// Connections closed because a request did not arrive in time (408).
    timed_out: u64,
    /// Keep-alive connections closed for idling.
    idle_closed: u64,
}

struct Server {
    port: u16,
    page: String,
    started: u64,
    counts: Counters,
}

fn main() {
    let port = hv_rt::arg_u64("port", 80) as u16;
    let nconns = hv_rt::arg_u64("conns", 64).clamp(1, 256) as usize;
    let mut net = Net::from_args(TAG).unwrap_or_else(|e| fail(TAG, &e));
    let mut conns: Vec<Conn> = (0..nconns)
        .map(|_| {
            let rx = tcp::SocketBuffer::new(vec![0; 4096]);
            let tx = tcp::SocketBuffer::new(vec![0; 16384]);
            let mut sock = tcp::Socket::new(rx, tx);
            sock.set_nagle_enabled(false); // each response is written whole
            let handle = net.sockets.add(sock);
            Conn { handle, buf: [0; MAX_REQUEST], len: 0, closing: false, last_active: 0, request_started: 0 }
        })
        .collect();
    let Some(addr) = net.wait_for_address(60 * SECOND) else { fail(TAG, "no address after 60 s") };
    let name = hv_rt::name();
    let id = hv_rt::domid();
    let page = format!(
        "<!DOCTYPE html>\n<html><head><title>{name}</title></head><body>\n<h1>Hello from {name} (domain {id})</h1>\n\
         <p>An HTTP server in a Rust unikernel DomU: smoltcp over netfront, through a netback driver domain.</p>\n\
         <p><a href=\"/stats\">/stats</a></p>\n</body></html>\n"
    );
    let mut srv = Server { port, page, started: time::now_ns(), counts: Counters::default() };
    for c in &mut conns {
        let _ = net.sockets.get_mut::<tcp::Socket>(c.handle).listen(port);
    }
    println!("{TAG}: listening on {}:{port}", addr.address());
    let mut reported = 0;
    loop {
        net.poll();
        let mut busy = false;
        for c in &mut conns {
            busy |= srv.service(&mut net, c);
        }
        if srv.counts.requests >= reported + REPORT_EVERY {
            reported = srv.counts.requests - srv.counts.requests % REPORT_EVERY;
            println!("{TAG}: {reported} requests served");
        }
        if !busy {
            net.wait();
        }
    }
}

impl Server {
    /// Moves one connection along; whether it did anything (then poll again before sleeping).
    fn service(&mut self, net: &mut Net, c: &mut Conn) -> bool {
        let now = time::now_ns();
        let stats = net.nf.stats();
        let s = net.sockets.get_mut::<tcp::Socket>(c.handle);
        if !s.is_open() {
            // Closed or TIME-WAIT: listen again with a clean slate.
            c.len = 0;
            c.last_active = 0;
            c.request_started = 0;
            c.closing = false;
            let _ = s.listen(self.port);
            return false;
        }
        if matches!(s.state(), tcp::State::Listen | tcp::State::SynReceived) {
            return false;
        }
        if c.last_active == 0 {
            c.last_active = now;
            c.request_started = now;
            self.counts.connections += 1;
        }
        let mut busy = false;
        if s.can_recv() && !c.closing && c.len < c.buf.len() {
            let n = s.recv_slice(&mut c.buf[c.len..]).unwrap_or(0);
            if n > 0 && c.len == 0 && c.request_started == 0 {
                c.request_started = now;
            }
            c.len += n;
            busy |= n > 0;
        }
        while !c.closing && c.len > 0 {
            let mut out = [0u8; 1536];
            let (n, used, keep) = match http::parse(&c.buf[..c.len]) {
                Parse::Incomplete => break,
                Parse::Bad => {
                    self.counts.bad += 1;
                    (error(&mut out, 400), c.len, false)
                }
                Parse::TooLarge => {
                    self.counts.bad += 1;
                    (error(&mut out, 431), c.len, false)
                }
                Parse::Request(r) => {
                    let head = r.method == Method::Head;
                    let n = match (r.method, r.path) {
                        (Method::Other, _) => error(&mut out, 405),
                        (_, "/") => {
                            http::write_response(&mut out, 200, "text/html", self.page.as_bytes(), r.keep_alive, head)
                                .unwrap_or(0)
                        }
                        (_, "/stats") => {
                            let mut body = [0u8; 768];
                            let len = self.stats(&mut body, stats);
                            http::write_response(&mut out, 200, "text/plain", &body[..len], r.keep_alive, head)
                                .unwrap_or(0)
                        }
                        _ => {
                            self.counts.not_found += 1;
                            http::write_response(&mut out, 404, "text/plain", b"not found\n", r.keep_alive, head)
                                .unwrap_or(0)
                        }
                    };
                    (n, r.len, r.keep_alive && r.method != Method::Other)
                }
            };
            if s.send_capacity() - s.send_queue() < n {
                break; // answer once the previous responses have drained
            }
            let _ = s.send_slice(&out[..n]);
            self.counts.requests += 1;
            c.buf.copy_within(used..c.len, 0);
            c.len -= used;
            c.last_active = now;
            // A pipelined request already (partly) here started now; otherwise the next one
            // starts with its first byte.
            c.request_started = if c.len > 0 { now } else { 0 };
            busy = true;
            if !keep {
                c.closing = true;
                c.len = 0;
                s.close();
            }
        }
        // The client finished sending and nothing is left to answer: finish our side too.
        if !c.closing
            && s.state() == tcp::State::CloseWait
            && !s.can_recv()
            && (c.len == 0 || http::parse(&c.buf[..c.len]) == Parse::Incomplete)
        {
            c.closing = true;
            c.last_active = now;
            s.close();
        }
        if !c.closing {
            if c.request_started != 0 && now.saturating_sub(c.request_started) > REQUEST_NS {
                // A slow (or stalled) request: say why, then close.
                let mut out = [0u8; 256];
                let n = error(&mut out, 408);
                if s.send_capacity() - s.send_queue() >= n {
                    let _ = s.send_slice(&out[..n]);
                }
                self.counts.timed_out += 1;
                c.closing = true;
                c.last_active = now;
                c.len = 0;
                s.close();
            } else if c.request_started == 0 && c.len == 0 && now.saturating_sub(c.last_active) > KEEPALIVE_NS {
                self.counts.idle_closed += 1;
                c.closing = true;
                c.last_active = now;
                s.close();
            }
        } else if now.saturating_sub(c.last_active) > REQUEST_NS {
            // Our FIN was not answered in all that time: give the socket back.
            s.abort();
        }
        if !s.is_open() {
            c.last_active = 0;
        }
        busy
    }

    fn stats(&self, out: &mut [u8], s: netfront::Stats) -> usize {
        let mut c = Cursor::new(out);
        let up = (time::now_ns() - self.started) / SECOND;
        let _ = write!(
            c,
            "domain: {} ({})\nuptime_s: {up}\nrequests: {}\nbad_requests: {}\nnot_found: {}\nconnections: {}\ntimed_out: {}\nidle_closed: {}\n\
             tx_packets: {}\ntx_bytes: {}\nrx_packets: {}\nrx_bytes: {}\ntx_errors: {}\ntx_dropped: {}\n\
             rx_errors: {}\nviolations: {}\nreconnects: {}\n",
            hv_rt::name(),
            hv_rt::domid(),
            self.counts.requests + 1, // this one included
            self.counts.bad,
            self.counts.not_found,
            self.counts.connections,
            self.counts.timed_out,
            self.counts.idle_closed,
            s.tx_packets,
            s.tx_bytes,
            s.rx_packets,
            s.rx_bytes,
            s.tx_errors,
            s.tx_dropped,
            s.rx_errors,
            s.violations,
            s.reconnects,
        );
        c.len()
    }
}

/// An error response that closes the connection.
fn error(out: &mut [u8], status: u16) -> usize {
    let mut body = [0u8; 64];
    let mut c = Cursor::new(&mut body);
    let _ = writeln!(c, "{status} {}", http::reason(status));
    let len = c.len();
    http::write_response(out, status, "text/plain", &body[..len], false, false).unwrap_or(0)
}
