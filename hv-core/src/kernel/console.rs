//! The console: whole lines, each prefixed with who wrote it, in one ordered output ring; and the
//! console hypercalls (`console_write`, `domctl console_read`). The line discipline that turns a
//! domain's bytes into sanitised lines is `crate::console` (host-tested).
//!
//! Lines are queued, not written: every UART access is an exit under virtualisation, so writing
//! synchronously would make every log line and every domain `console_write` cost a millisecond of
//! the caller's time. The ring is drained when the CPU idles and on timer interrupts (the
//! scheduler arms a flush deadline while output is pending), a bounded amount each time and
//! without waiting for the UART; synchronously only before power-off or after a panic. Order is
//! preserved because everything goes through the one ring. A domain's lines are rate-limited
//! (`crate::console::DomainConsole`) and, if the ring is full anyway, dropped and counted: a
//! `console_write` never writes to the UART. The hypervisor's own lines wait for room
//! (backpressure) instead.
use super::domain::Life;
use super::user_memory::{check, copy_in, copy_out_value};
use super::{Hv, time};
use crate::arch::{paging, serial};
use crate::console::Output;
use crate::user_memory::Access;
use core::fmt::{self, Write};
use core::mem::size_of;
use hv_abi::{ConsoleRead, DomId, Error};
use spin::Mutex;

const RING_SIZE: usize = 256 * 1024;
/// Most bytes one timer tick hands the UART (the idle loop drains more).
pub const DRAIN_TICK: usize = 4 * 1024;
pub const DRAIN_IDLE: usize = 64 * 1024;
/// Room in the ring that domains' lines cannot take.
const HV_RESERVE: usize = 16 * 1024;

struct Ring {
    buf: [u8; RING_SIZE],
    head: usize,
    len: usize,
}

impl Ring {
    fn push(&mut self, bytes: &[u8]) {
        if RING_SIZE - self.len < bytes.len() {
            self.drain();
        }
        for &b in bytes {
            self.buf[(self.head + self.len) % RING_SIZE] = b;
            self.len += 1;
        }
    }

    /// Queues the concatenation of a domain's `parts` only if it fits and leaves [`HV_RESERVE`]
    /// free for the hypervisor's own lines (so those never have to wait for the UART inside a
    /// hypercall).
    fn try_push_parts(&mut self, parts: &[&[u8]]) -> bool {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        if RING_SIZE - self.len < total + HV_RESERVE {
            return false;
        }
        for p in parts {
            // At most two copies: up to the end of the buffer, then from its start.
            let tail = (self.head + self.len) % RING_SIZE;
            let first = p.len().min(RING_SIZE - tail);
            self.buf[tail..tail + first].copy_from_slice(&p[..first]);
            self.buf[..p.len() - first].copy_from_slice(&p[first..]);
            self.len += p.len();
        }
        true
    }

    fn drain(&mut self) {
        while self.len > 0 {
            let n = self.len.min(RING_SIZE - self.head);
            serial::write_bytes(&self.buf[self.head..self.head + n]);
            self.head = (self.head + n) % RING_SIZE;
            self.len -= n;
        }
    }

    /// Hands the UART at most `max` bytes, as many as it takes without waiting.
    fn drain_some(&mut self, max: usize) {
        let mut budget = max;
        while self.len > 0 && budget > 0 {
            let n = self.len.min(RING_SIZE - self.head).min(budget);
            let written = serial::write_some(&self.buf[self.head..self.head + n]);
            self.head = (self.head + written) % RING_SIZE;
            self.len -= written;
            budget -= written;
            if written < n {
                break;
            }
        }
    }
}

static OUT: Mutex<Ring> = Mutex::new(Ring { buf: [0; RING_SIZE], head: 0, len: 0 });

struct LineBuf {
    buf: [u8; 512],
    len: usize,
}

impl Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let n = s.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn format_line(who: &str, args: fmt::Arguments<'_>) -> LineBuf {
    let mut l = LineBuf { buf: [0; 512], len: 0 };
    let _ = write!(l, "[{who}] ");
    let _ = l.write_fmt(args);
    let n = l.len.min(l.buf.len() - 1);
    l.buf[n] = b'\n';
    l.len = n + 1;
    l
}

/// Queues `[who] text` as one line (text longer than the line buffer is cut).
pub fn line(who: &str, args: fmt::Arguments<'_>) {
    let l = format_line(who, args);
    OUT.lock().push(&l.buf[..l.len]);
}

/// Writes everything queued to the UART, waiting for it (power-off, panic).
pub fn drain() {
    OUT.lock().drain();
}

/// Hands the UART up to `max` queued bytes without waiting (timer and idle paths).
pub fn drain_some(max: usize) {
    OUT.lock().drain_some(max);
}

/// Queues one of a domain's lines (`[who] text`) if the ring has room.
fn domain_line(who: &str, text: &str) -> bool {
    OUT.lock().try_push_parts(&[b"[", who.as_bytes(), b"] ", text.as_bytes(), b"\n"])
}

/// Hands a domain console's output to the ring: its lines (dropped when there is no room) and
/// its drop reports (hypervisor lines, always queued).
pub fn domain_output(name: &str, o: Output<'_>) -> bool {
    match o {
        Output::Line(text) => domain_line(name, text),
        Output::Dropped(n) => {
            line("hv", format_args!("{name}: {n} bytes of console output dropped"));
            true
        }
    }
}

/// Whether output is waiting to be written.
pub fn pending() -> bool {
    OUT.lock().len > 0
}

/// Used by the panic handler: the lock may be held by the code that panicked.
pub fn line_unlocked(who: &str, args: fmt::Arguments<'_>) {
    // SAFETY: single CPU, interrupts off; whoever held the lock will never resume.
    unsafe { OUT.force_unlock() };
    line(who, args);
    drain();
}

#[macro_export]
macro_rules! hvlog {
    ($($arg:tt)*) => { $crate::kernel::console::line("hv", format_args!($($arg)*)) };
}

/// `console_write(ptr, len)`: feeds the domain's line buffer and its history.
pub(super) fn write(hv: &mut Hv, slot: usize, ptr: u64, len: u64) -> Result<u64, Error> {
    let len = len.min(hv_abi::CONSOLE_WRITE_MAX as u64);
    let pa = check(hv, slot, ptr, len, Access::Read)?;
    let mut buf = [0u8; hv_abi::CONSOLE_WRITE_MAX];
    let buf = &mut buf[..len as usize];
    paging::copy_from_phys(pa, buf);
    feed(hv, slot, buf);
    Ok(len)
}

/// Feeds bytes a domain wrote (by hypercall or through its console ring) to its history and its
/// line discipline.
pub(super) fn feed(hv: &mut Hv, slot: usize, buf: &[u8]) {
    let now = time::now_ns();
    let Some(d) = hv.domains[slot].as_mut() else { return };
    d.history.write(buf);
    let name = d.name.clone();
    if let Life::Alive(l) = &mut d.life {
        // "[name] " and the newline.
        let overhead = name.len() + 4;
        l.console.write(now, buf, overhead, |o| domain_output(&name, o));
    }
}

/// `domctl console_read(domid, from, io)`: copies recent console output of any domain the
/// hypervisor still holds (live or dead-unreaped).
pub(super) fn read_history(hv: &mut Hv, caller: usize, domid: u64, from: u64, io: u64) -> Result<u64, Error> {
    let target = DomId::try_from(domid).ok().and_then(|id| hv.slot_of(id)).ok_or(Error::NoEnt)?;
    let mut req: ConsoleRead = copy_in(hv, caller, io)?;
    let len = req.len.min(hv_abi::CONSOLE_HISTORY as u64);
    let pa = check(hv, caller, req.buf, len, Access::Write)?;
    // The result struct must be writable too: check before copying anything.
    check(hv, caller, io, size_of::<ConsoleRead>() as u64, Access::Write)?;
    let d = hv.domains[target].as_ref().ok_or(Error::NoEnt)?;
    let span = d.history.read(from, len as usize);
    paging::copy_to_phys(pa, span.first);
    paging::copy_to_phys(pa + span.first.len() as u64, span.second);
    req.start = span.start;
    req.copied = span.len() as u64;
    req.end = span.end;
    copy_out_value(hv, caller, io, &req)?;
    Ok(req.copied)
}
