//! The control channel: COM2 as a raw byte pipe between the host (a toolstack client on the
//! other end of QEMU's `-serial chardev:…`) and Dom0, through `control_io`.
//!
//! The UART is polled, never waited on: from the timer path (a poll deadline is part of every
//! timer arming while the channel exists, so an idle CPU still looks every millisecond, more
//! often while bytes are flowing) and whenever Dom0 reads or writes. Received bytes go into a
//! bounded ring (when it is full they are dropped and counted) and raise `virq::CONTROL` for
//! Dom0; bytes Dom0 writes wait in a bounded transmit ring that each poll drains as far as the
//! UART takes them.
use super::Hv;
use super::user_memory::{copy_out_value, live};
use crate::arch::paging;
use crate::arch::uart::{COM2, Uart};
use crate::byte_ring::ByteQueue;
use crate::user_memory::Access;
use hv_abi::{CONTROL_IO_MAX, ControlOp, ControlStatus, Error, virq};

/// Receive and transmit ring sizes.
const RING: usize = 16 * 1024;
/// Poll period while bytes are flowing, for a while after the last byte, and once the channel
/// has been quiet for [`QUIET_AFTER_NS`]. Every poll is a timer interrupt, and under
/// virtualisation an interrupt that hits a running HVM guest is a VM exit (under QEMU's TCG a
/// full TLB flush for the guest): a quiet channel is looked at 100 times a second, not 1000.
const BUSY_POLL_NS: u64 = 200_000;
const IDLE_POLL_NS: u64 = 1_000_000;
const QUIET_POLL_NS: u64 = 10_000_000;
const QUIET_AFTER_NS: u64 = 200_000_000;
/// Most bytes one poll moves in each direction (each byte is a port access, i.e. an exit under
/// virtualisation): bounds the time a poll takes.
const POLL_BUDGET: usize = 512;

pub struct Channel {
    uart: Option<Uart>,
    rx: ByteQueue,
    tx: ByteQueue,
    rx_bytes: u64,
    tx_bytes: u64,
    rx_dropped: u64,
    /// System time of the next poll.
    next_poll: u64,
    /// When a byte last moved (ns).
    last_traffic: u64,
}

impl Channel {
    /// Probes COM2; an absent UART gives a channel that reports itself absent.
    pub fn probe() -> Self {
        let uart = Uart::probe(COM2);
        let ring = if uart.is_some() { RING } else { 1 };
        Self {
            uart,
            rx: ByteQueue::new(ring),
            tx: ByteQueue::new(ring),
            rx_bytes: 0,
            tx_bytes: 0,
            rx_dropped: 0,
            next_poll: 0,
            last_traffic: 0,
        }
    }

    pub fn present(&self) -> bool {
        self.uart.is_some()
    }

    /// When the timer must next fire for a poll (`None` without a channel).
    pub fn deadline(&self) -> Option<u64> {
        self.uart.as_ref().map(|_| self.next_poll)
    }

    /// Moves bytes between the UART and the rings (bounded); returns how many arrived.
    fn pump(&mut self) -> usize {
        let Some(uart) = &self.uart else { return 0 };
        let mut arrived = 0;
        for _ in 0..POLL_BUDGET {
            let Some(b) = uart.read_byte() else { break };
            arrived += 1;
            if !self.rx.push_byte(b) {
                self.rx_dropped += 1;
            }
        }
        self.rx_bytes += arrived as u64;
        let mut sent = 0;
        let mut chunk = [0u8; 16];
        while sent < POLL_BUDGET && !self.tx.is_empty() {
            let n = self.tx.peek(&mut chunk);
            let took = uart.write_some(&chunk[..n]);
            if took == 0 {
                break;
            }
            self.tx.consume(took);
            sent += took;
        }
        self.tx_bytes += sent as u64;
        arrived
    }

    fn status(&self) -> ControlStatus {
        ControlStatus {
            present: self.present() as u32,
            _pad: 0,
            rx_bytes: self.rx_bytes,
            tx_bytes: self.tx_bytes,
            rx_dropped: self.rx_dropped,
            rx_pending: self.rx.len() as u64,
            tx_pending: self.tx.len() as u64,
        }
    }

    /// (present, rx bytes, tx bytes, rx dropped) for `physinfo`.
    pub fn counters(&self) -> (bool, u64, u64, u64) {
        (self.present(), self.rx_bytes, self.tx_bytes, self.rx_dropped)
    }
}

impl Hv {
    /// Polls the control channel if its deadline passed; bytes that arrived raise Dom0's
    /// `CONTROL` virq.
    pub fn poll_control(&mut self, now: u64) {
        if self.control.deadline().is_none_or(|d| now < d) {
            return;
        }
        let arrived = self.control.pump();
        let busy = arrived > 0 || !self.control.tx.is_empty();
        if busy {
            self.control.last_traffic = now;
        }
        let period = if busy {
            BUSY_POLL_NS
        } else if now.saturating_sub(self.control.last_traffic) < QUIET_AFTER_NS {
            IDLE_POLL_NS
        } else {
            QUIET_POLL_NS
        };
        self.control.next_poll = now + period;
        if arrived > 0 {
            self.raise_control_virq();
        }
    }

    fn raise_control_virq(&mut self) {
        if let Some(id) = self.dom0_id() {
            self.raise_virq(id, virq::CONTROL);
        }
    }
}

/// `control_io(op, a, b)`, Dom0 only.
pub fn dispatch(hv: &mut Hv, slot: usize, args: [u64; 6]) -> Result<u64, Error> {
    if !hv.domains[slot].as_ref().is_some_and(|d| d.privileged) {
        return Err(Error::Perm);
    }
    match ControlOp::from_u64(args[0]).ok_or(Error::NoSys)? {
        ControlOp::Status => {
            let st = hv.control.status();
            if args[1] != 0 {
                copy_out_value(hv, slot, args[1], &st)?;
            }
            Ok(st.present as u64)
        }
        ControlOp::Read => {
            if !hv.control.present() {
                return Err(Error::NoDev);
            }
            let len = args[2].min(CONTROL_IO_MAX as u64);
            let pa = live(hv, slot)?.umap.check(args[1], len, Access::Write).map_err(|_| Error::Fault)?;
            if hv.control.pump() > 0 {
                hv.raise_control_virq();
            }
            let mut buf = [0u8; CONTROL_IO_MAX];
            let n = hv.control.rx.pop(&mut buf[..len as usize]);
            paging::copy_to_phys(pa, &buf[..n]);
            Ok(n as u64)
        }
        ControlOp::Write => {
            if !hv.control.present() {
                return Err(Error::NoDev);
            }
            let len = args[2].min(CONTROL_IO_MAX as u64);
            let pa = live(hv, slot)?.umap.check(args[1], len, Access::Read).map_err(|_| Error::Fault)?;
            let n = (len as usize).min(hv.control.tx.free());
            let mut buf = [0u8; CONTROL_IO_MAX];
            paging::copy_from_phys(pa, &mut buf[..n]);
            let accepted = hv.control.tx.push(&buf[..n]);
            if hv.control.pump() > 0 {
                hv.raise_control_virq();
            }
            Ok(accepted as u64)
        }
    }
}
