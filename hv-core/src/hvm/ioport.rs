//! Port I/O policy for a PVH guest that has no emulated devices: every port is intercepted,
//! reads float high (as on a bus with nothing behind it, which makes Linux's PCI, serial and
//! PS/2 probes find nothing) and writes are dropped, except:
//!
//! * **Port 0x42 (PIT channel 2) reads 0.** Early TSC calibration on AMD falls through to a
//!   fast PIT calibration that re-reads the channel-2 count for as long as its high byte still
//!   equals the value it expects (0xFF first), up to tens of thousands of times per step. A read
//!   of 0 differs at once, so the loop gives up after one read instead of costing ~100 000
//!   exits. The TSC frequency comes from the Xen pvclock data anyway.
//! * **Port 0x61 (system control port B) reads 0xFF**, the default. The slower PIT calibration
//!   polls bit 5 (the channel-2 output) until it goes high; it reads as set immediately, the
//!   loop counts no iterations and Linux concludes there is no usable PIT.
//! * **Port 0xE9** is the debug console: Linux's Xen early console falls back to `outsb` there
//!   when the console hypercall fails, and the hypervisor's own probes use it.
//!
//! String instructions are decoded by the caller (which reads the bytes from guest memory);
//! it applies [`write()`] to each element.

/// The debug-console port.
pub const DEBUG_CONSOLE_PORT: u16 = 0xE9;
/// PIT channel 2 counter.
pub const PIT_CHANNEL2_PORT: u16 = 0x42;

/// What an OUT to a port does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoWrite {
    /// Nothing behind the port: the value is dropped.
    Ignore,
    /// A byte for the debug console (the low byte of the value written to port 0xE9).
    DebugConsole(u8),
}

/// The value an IN of `size` bytes (1, 2 or 4) from `port` returns.
pub fn read(port: u16, size: u8) -> u32 {
    if port == PIT_CHANNEL2_PORT {
        return 0;
    }
    match size {
        1 => 0xFF,
        2 => 0xFFFF,
        _ => 0xFFFF_FFFF,
    }
}

/// What an OUT of `size` bytes of `value` to `port` does.
pub fn write(port: u16, size: u8, value: u32) -> IoWrite {
    match (port, size) {
        (DEBUG_CONSOLE_PORT, 1) => IoWrite::DebugConsole(value as u8),
        _ => IoWrite::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_float_high_for_the_access_size() {
        assert_eq!(read(0x3F8, 1), 0xFF);
        assert_eq!(read(0xCFC, 2), 0xFFFF);
        assert_eq!(read(0xCFC, 4), 0xFFFF_FFFF);
        assert_eq!(read(0x61, 1), 0xFF);
        assert_eq!(read(0x61, 1) & 0x20, 0x20, "PIT output bit reads high");
    }

    #[test]
    fn pit_channel2_reads_zero() {
        assert_eq!(read(0x42, 1), 0);
        assert_eq!(read(0x42, 2), 0);
    }

    #[test]
    fn writes() {
        assert_eq!(write(0xE9, 1, 0x41), IoWrite::DebugConsole(b'A'));
        assert_eq!(write(0xE9, 1, 0x1241), IoWrite::DebugConsole(b'A'));
        assert_eq!(write(0xE9, 2, 0x41), IoWrite::Ignore);
        assert_eq!(write(0x80, 1, 0), IoWrite::Ignore);
        assert_eq!(write(0x43, 1, 0xB0), IoWrite::Ignore);
    }
}
