//! A polled 16550 used as a raw byte pipe (the control channel on COM2, 0x2f8). No interrupts:
//! the kernel polls it from the timer path. Every access is bounded; nothing here waits.
use x86_64::instructions::port::Port;

pub const COM2: u16 = 0x2f8;

const RBR_THR: u16 = 0;
const IER: u16 = 1;
const FCR: u16 = 2;
const LCR: u16 = 3;
const MCR: u16 = 4;
const LSR: u16 = 5;
const SCR: u16 = 7;

const LSR_DATA_READY: u8 = 0x01;
const LSR_THR_EMPTY: u8 = 0x20;
/// Bytes the transmit FIFO takes once THRE is set.
const TX_FIFO: usize = 16;

pub struct Uart {
    base: u16,
}

impl Uart {
    fn read(&self, off: u16) -> u8 {
        // SAFETY: a register of the UART at `base`, which the hypervisor owns (domains have no
        // port access); reads of LSR/SCR have no side effects, RBR pops one received byte.
        unsafe { Port::<u8>::new(self.base + off).read() }
    }

    fn write(&self, off: u16, v: u8) {
        // SAFETY: as in `read`; only this driver programs the UART.
        unsafe { Port::<u8>::new(self.base + off).write(v) }
    }

    /// Probes for a 16550 at `base` (scratch register round trip; an absent UART reads 0xff) and
    /// programs it: 115200 8N1, FIFOs on, no interrupts.
    pub fn probe(base: u16) -> Option<Uart> {
        let u = Uart { base };
        if u.read(LSR) == 0xff {
            return None;
        }
        for v in [0x5a, 0xa5] {
            u.write(SCR, v);
            if u.read(SCR) != v {
                return None;
            }
        }
        u.write(IER, 0x00);
        u.write(LCR, 0x80); // DLAB
        u.write(RBR_THR, 0x01); // divisor 1: 115200 baud
        u.write(IER, 0x00);
        u.write(LCR, 0x03); // 8N1
        u.write(FCR, 0xc7); // FIFOs on, cleared
        u.write(MCR, 0x03); // DTR + RTS
        Some(u)
    }

    /// One received byte, if any.
    pub fn read_byte(&self) -> Option<u8> {
        if self.read(LSR) & LSR_DATA_READY != 0 { Some(self.read(RBR_THR)) } else { None }
    }

    /// Hands up to one transmit FIFO's worth of `bytes` to the UART if it is ready for them;
    /// returns how many it took (0 if it is still busy).
    pub fn write_some(&self, bytes: &[u8]) -> usize {
        if bytes.is_empty() || self.read(LSR) & LSR_THR_EMPTY == 0 {
            return 0;
        }
        let n = bytes.len().min(TX_FIFO);
        for &b in &bytes[..n] {
            self.write(RBR_THR, b);
        }
        n
    }
}
