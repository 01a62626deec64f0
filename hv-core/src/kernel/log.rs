//! The serial console: whole lines, each prefixed with who wrote it.
use crate::arch::serial;
use core::fmt::{self, Write};
use spin::Mutex;

static SERIAL: Mutex<()> = Mutex::new(());

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

/// Prints `[who] text` as one line (text longer than the line buffer is cut).
pub fn line(who: &str, args: fmt::Arguments<'_>) {
    let mut l = LineBuf { buf: [0; 512], len: 0 };
    let _ = write!(l, "[{who}] ");
    let _ = l.write_fmt(args);
    let n = l.len.min(l.buf.len() - 1);
    l.buf[n] = b'\n';
    let _guard = SERIAL.lock();
    serial::write_bytes(&l.buf[..=n]);
}

/// Used by the panic handler: the lock may be held by the code that panicked.
pub fn line_unlocked(who: &str, args: fmt::Arguments<'_>) {
    // SAFETY: single CPU, interrupts off; whoever held the lock will never resume.
    unsafe { SERIAL.force_unlock() };
    line(who, args);
}

#[macro_export]
macro_rules! hvlog {
    ($($arg:tt)*) => { $crate::kernel::log::line("hv", format_args!($($arg)*)) };
}
