//! COM1 (0x3f8), polled. The hypervisor's console; domains reach it only through
//! `console_write`, which the kernel turns into attributed lines.
use x86_64::instructions::port::Port;

const COM1: u16 = 0x3f8;

pub fn init() {
    let w = |off: u16, v: u8| {
        // SAFETY: COM1 registers; the hypervisor owns the UART.
        unsafe { Port::<u8>::new(COM1 + off).write(v) }
    };
    w(1, 0x00); // no UART interrupts
    w(3, 0x80); // DLAB
    w(0, 0x01); // 115200 baud
    w(1, 0x00);
    w(3, 0x03); // 8N1
    w(2, 0xc7); // FIFO on, cleared
    w(4, 0x03); // DTR + RTS
}

pub fn write_bytes(bytes: &[u8]) {
    let mut lsr = Port::<u8>::new(COM1 + 5);
    let mut thr = Port::<u8>::new(COM1);
    // THRE means the 16-byte transmit FIFO is empty: wait once per 16 bytes, not per byte
    // (every port access is an exit under virtualisation).
    for chunk in bytes.chunks(16) {
        // Bounded wait: a wedged UART must not hang the hypervisor.
        for _ in 0..100_000 {
            // SAFETY: reading the line status register has no side effects.
            if unsafe { lsr.read() } & 0x20 != 0 {
                break;
            }
        }
        for &b in chunk {
            // SAFETY: writing the transmit holding register queues one byte.
            unsafe { thr.write(b) };
        }
    }
}

/// Writes as much of `bytes` as the UART takes without waiting: 16 bytes (a FIFO's worth) each
/// time the transmitter reports empty, stopping at the first time it does not. Returns how many
/// bytes were written.
pub fn write_some(bytes: &[u8]) -> usize {
    let mut lsr = Port::<u8>::new(COM1 + 5);
    let mut thr = Port::<u8>::new(COM1);
    let mut written = 0;
    for chunk in bytes.chunks(16) {
        // SAFETY: reading the line status register has no side effects.
        if unsafe { lsr.read() } & 0x20 == 0 {
            break;
        }
        for &b in chunk {
            // SAFETY: writing the transmit holding register queues one byte.
            unsafe { thr.write(b) };
        }
        written += chunk.len();
    }
    written
}

/// isa-debug-exit (QEMU `-device isa-debug-exit,iobase=0xf4`): QEMU exits with `(v << 1) | 1`.
/// On real hardware the write goes nowhere and the caller halts.
pub fn qemu_exit(v: u32) {
    // SAFETY: port 0xf4 is unused on PC platforms other than QEMU's debug-exit device.
    unsafe { Port::<u32>::new(0xf4).write(v) };
}
