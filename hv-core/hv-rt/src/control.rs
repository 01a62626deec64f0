//! The host control channel (COM2), for Dom0: a raw byte pipe to a toolstack client on the host.
//! Bytes arriving raise [`hv_abi::virq::CONTROL`]; bind it with
//! `evtchn::bind_virq(virq::CONTROL)` and block instead of polling. Other domains get `EPERM`.
use crate::hypercall::raw;
use hv_abi::{CONTROL_IO_MAX, ControlOp, ControlStatus, Error, Hypercall, decode_result};

/// Reads up to `buf.len()` received bytes (at most [`CONTROL_IO_MAX`] per call); `Ok(0)` when
/// nothing is waiting. `Err(NoDev)` if the channel is absent.
pub fn read(buf: &mut [u8]) -> Result<usize, Error> {
    let len = buf.len().min(CONTROL_IO_MAX);
    // SAFETY: `buf` is writable for `len` bytes for the duration of the call.
    let r = unsafe { raw(Hypercall::ControlIo, ControlOp::Read as u64, buf.as_mut_ptr() as u64, len as u64, 0) };
    decode_result(r).map(|n| n as usize)
}

/// Queues up to `bytes.len()` bytes (at most [`CONTROL_IO_MAX`]) for the host; returns how many
/// were accepted (fewer, possibly 0, while the transmit ring is full).
pub fn write(bytes: &[u8]) -> Result<usize, Error> {
    let len = bytes.len().min(CONTROL_IO_MAX);
    // SAFETY: `bytes` is readable for `len` bytes for the duration of the call.
    let r = unsafe { raw(Hypercall::ControlIo, ControlOp::Write as u64, bytes.as_ptr() as u64, len as u64, 0) };
    decode_result(r).map(|n| n as usize)
}

/// Writes all of `bytes`, yielding while the transmit ring is full; gives up with `Err(Busy)`
/// after `max_yields` rounds without progress.
pub fn write_all(mut bytes: &[u8], max_yields: u32) -> Result<(), Error> {
    let mut stalled = 0;
    while !bytes.is_empty() {
        let n = write(bytes)?;
        if n == 0 {
            stalled += 1;
            if stalled > max_yields {
                return Err(Error::Busy);
            }
            crate::time::sleep_ms(1);
        } else {
            stalled = 0;
        }
        bytes = &bytes[n.min(bytes.len())..];
    }
    Ok(())
}

/// The channel's state ([`ControlStatus`] with `present` as a `bool`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Status {
    /// Whether the machine has the control UART (COM2).
    pub present: bool,
    /// Bytes received from / handed to the UART since boot.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
    /// Received bytes dropped because the hypervisor's receive ring was full.
    pub rx_dropped: u64,
    /// Bytes waiting for [`read`], and not yet handed to the UART.
    pub rx_pending: u64,
    pub tx_pending: u64,
}

/// Whether the channel exists, and its counters.
pub fn status() -> Result<Status, Error> {
    let mut st = ControlStatus::default();
    // SAFETY: `st` is writable for the duration of the call.
    let r = unsafe { raw(Hypercall::ControlIo, ControlOp::Status as u64, (&raw mut st) as u64, 0, 0) };
    decode_result(r)?;
    Ok(Status {
        present: st.present != 0,
        rx_bytes: st.rx_bytes,
        tx_bytes: st.tx_bytes,
        rx_dropped: st.rx_dropped,
        rx_pending: st.rx_pending,
        tx_pending: st.tx_pending,
    })
}
