//! Console output through the `console_write` hypercall. The hypervisor assembles lines and
//! prefixes them with the domain's name, so partial writes are fine.
use core::fmt::{self, Write};
use hv_abi::{DomId, Hypercall};

/// Writes raw bytes to the console; returns how many the hypervisor accepted.
pub fn write_bytes(mut bytes: &[u8]) -> Result<(), hv_abi::Error> {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable slice for the duration of the call.
        let r =
            unsafe { crate::hypercall::raw(Hypercall::ConsoleWrite, bytes.as_ptr() as u64, bytes.len() as u64, 0, 0) };
        let n = hv_abi::decode_result(r)? as usize;
        bytes = &bytes[n.min(bytes.len())..];
    }
    Ok(())
}

struct Console {
    buf: [u8; 256],
    len: usize,
}

impl Console {
    fn flush(&mut self) {
        let _ = write_bytes(&self.buf[..self.len]);
        self.len = 0;
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for chunk in s.as_bytes().chunks(self.buf.len()) {
            if self.len + chunk.len() > self.buf.len() {
                self.flush();
            }
            self.buf[self.len..self.len + chunk.len()].copy_from_slice(chunk);
            self.len += chunk.len();
        }
        Ok(())
    }
}

/// Formats and writes in one hypercall (for lines up to 256 bytes).
pub fn print(args: fmt::Arguments<'_>) {
    let mut c = Console { buf: [0; 256], len: 0 };
    let _ = c.write_fmt(args);
    c.flush();
}

/// Nothing is buffered in the domain today; kept so shutdown paths read naturally.
pub fn flush() {}

#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::console::print(format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! println {
    () => { $crate::console::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::console::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Recent console output of domain `domid` (Dom0 only): the bytes it wrote from offset
/// `max(from, oldest kept)` up to now (at most [`hv_abi::CONSOLE_HISTORY`]). Returns (offset of
/// the first byte returned, the bytes, end offset); pass the end offset as `from` next time to
/// tail. A start beyond `from` means older output was overwritten. `Err(NoEnt)` for an unknown
/// domain.
pub fn history(domid: DomId, from: u64) -> Result<(u64, alloc::vec::Vec<u8>, u64), hv_abi::Error> {
    let mut buf = alloc::vec![0u8; hv_abi::CONSOLE_HISTORY];
    let mut io = hv_abi::ConsoleRead { buf: buf.as_mut_ptr() as u64, len: buf.len() as u64, ..Default::default() };
    // SAFETY: `buf` is writable for `len` bytes and `io` readable and writable for the duration
    // of the call.
    let r = unsafe {
        crate::hypercall::raw(
            Hypercall::Domctl,
            hv_abi::DomctlOp::ConsoleRead as u64,
            domid as u64,
            from,
            (&raw mut io) as u64,
        )
    };
    hv_abi::decode_result(r)?;
    buf.truncate(io.copied.min(buf.len() as u64) as usize);
    Ok((io.start, buf, io.end))
}
