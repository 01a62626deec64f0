//! Local APIC (xAPIC, MMIO through the direct map) in one-shot mode: the scheduler programs the
//! next deadline, so an idle or single-domain system takes no periodic ticks. The TSC is the
//! clock; both are calibrated against the PIT at boot.
use super::cpu::rdtsc;
use super::paging::phys_to_virt;
use super::trap::{SPURIOUS_VECTOR, TIMER_VECTOR};
use core::sync::atomic::{AtomicU64, Ordering};
use x86_64::instructions::port::Port;

const APIC_PHYS: u64 = 0xfee0_0000;
const REG_EOI: usize = 0xb0;
const REG_SVR: usize = 0xf0;
const REG_LVT_TIMER: usize = 0x320;
const REG_TIMER_INIT: usize = 0x380;
const REG_TIMER_CURRENT: usize = 0x390;
const REG_TIMER_DIVIDE: usize = 0x3e0;

/// APIC timer ticks per 2^32 TSC cycles (fixed point).
static TICKS_PER_TSC_FP32: AtomicU64 = AtomicU64::new(0);
static TSC_KHZ: AtomicU64 = AtomicU64::new(0);

fn reg(off: usize) -> *mut u32 {
    (phys_to_virt(APIC_PHYS) + off as u64) as *mut u32
}

fn write(off: usize, v: u32) {
    // SAFETY: the APIC page is mapped uncached in the direct map; `off` is a valid register.
    unsafe { reg(off).write_volatile(v) }
}

fn read(off: usize) -> u32 {
    // SAFETY: as in `write`.
    unsafe { reg(off).read_volatile() }
}

const REG_ISR: usize = 0x100;

/// Remaps the legacy PICs to `PIC_VECTOR_BASE` (0x20-0x2f) and masks every line. Masked PICs
/// still raise spurious IRQs 7 and 15; at their reset (or BIOS) vectors those would land on
/// CPU exceptions (0x0f, 0x08-0x0f under SeaBIOS) and be blamed on the running domain.
fn remap_and_mask_pics() {
    let base = crate::trap::PIC_VECTOR_BASE;
    let out = |port: u16, v: u8| {
        // SAFETY: the 8259 command/data ports; the ICW sequence below is the standard
        // initialisation (edge-triggered, cascaded, 8086 mode) and every line ends masked.
        unsafe { Port::<u8>::new(port).write(v) }
    };
    out(0x21, 0xff);
    out(0xa1, 0xff);
    out(0x20, 0x11); // ICW1: init, ICW4 follows
    out(0xa0, 0x11);
    out(0x21, base); // ICW2: vector base
    out(0xa1, base + 8);
    out(0x21, 4); // ICW3: slave on IRQ2
    out(0xa1, 2);
    out(0x21, 1); // ICW4: 8086 mode
    out(0xa1, 1);
    out(0x21, 0xff);
    out(0xa1, 0xff);
}

/// Whether the local APIC has `vector` in service: an external interrupt it delivered and that
/// has not been acknowledged (an exception never sets this).
pub fn in_service(vector: u8) -> bool {
    let v = vector as usize;
    read(REG_ISR + (v / 32) * 0x10) & (1 << (v % 32)) != 0
}

/// Masks and remaps the legacy PICs, enables the APIC, calibrates TSC and APIC timer (5 ms of
/// PIT ch2).
pub fn init() -> u64 {
    remap_and_mask_pics();
    write(REG_SVR, 0x100 | SPURIOUS_VECTOR as u32);
    write(REG_TIMER_DIVIDE, 0x3); // divide by 16
    write(REG_LVT_TIMER, 1 << 16); // masked during calibration

    let (tsc, ticks) = calibrate();
    let ms = CALIBRATION_MS;
    let khz = tsc / ms;
    TSC_KHZ.store(khz, Ordering::Relaxed);
    TICKS_PER_TSC_FP32.store((ticks << 32) / tsc.max(1), Ordering::Relaxed);
    write(REG_LVT_TIMER, TIMER_VECTOR as u32); // one-shot, unmasked
    khz
}

/// Calibration window: 5966 PIT ticks, a resolution better than 0.02%.
const CALIBRATION_MS: u64 = 5;

/// Returns (TSC cycles, APIC ticks) elapsed during `CALIBRATION_MS` of PIT channel 2.
fn calibrate() -> (u64, u64) {
    let mut p61 = Port::<u8>::new(0x61);
    let mut cmd = Port::<u8>::new(0x43);
    let mut ch2 = Port::<u8>::new(0x42);
    let count: u16 = (1_193_182 * CALIBRATION_MS / 1000) as u16;
    // SAFETY: PIT channel 2 and port 0x61 gate/speaker control; the speaker stays off.
    unsafe {
        let v = p61.read();
        p61.write((v & !0x02) & !0x01); // gate low
        cmd.write(0xb0); // channel 2, lo/hi byte, mode 0, binary
        ch2.write(count as u8);
        ch2.write((count >> 8) as u8);
        write(REG_TIMER_INIT, u32::MAX);
        let t0 = rdtsc();
        p61.write((v & !0x02) | 0x01); // gate high: counting starts
        let mut spins = 0u64;
        while p61.read() & 0x20 == 0 && spins < 100_000_000 {
            spins += 1;
        }
        let t1 = rdtsc();
        let left = read(REG_TIMER_CURRENT);
        write(REG_TIMER_INIT, 0);
        (t1 - t0, (u32::MAX - left) as u64)
    }
}

pub fn tsc_khz() -> u64 {
    TSC_KHZ.load(Ordering::Relaxed)
}

pub fn eoi() {
    write(REG_EOI, 0);
}

/// Arms the one-shot timer to fire at TSC value `deadline` (or soon, if it already passed);
/// `None` stops it.
pub fn arm(deadline: Option<u64>) {
    let Some(deadline) = deadline else {
        write(REG_TIMER_INIT, 0);
        return;
    };
    let delta = deadline.saturating_sub(rdtsc());
    let ticks = ((delta as u128 * TICKS_PER_TSC_FP32.load(Ordering::Relaxed) as u128) >> 32) as u64;
    // Far deadlines fire early and are re-armed; 0 would stop the timer.
    write(REG_TIMER_INIT, ticks.clamp(1, u32::MAX as u64) as u32);
}
