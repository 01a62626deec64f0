//! The kernel proper: boot information, the console, the modes.

mod arch;
mod events;
mod hostile;
mod revoke;
mod share;
mod xen;

use core::fmt::Write;

use hv_abi::xen::{HVM_START_MAGIC, HvmMemmapEntry, HvmStartInfo, shutdown_reason};
use pvh_probe::{CMDLINE_MAX, LineBuf, Mode};

/// QEMU's `-debugcon` port (and Linux's last-resort Xen early console).
const DEBUGCON_PORT: u16 = 0xe9;
/// QEMU's `isa-debug-exit` device as configured for the self-test (`iobase=0xf4`).
const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Memory-map entries read from start_info at most.
const MAX_MEMMAP: usize = 128;

/// Where console output goes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    /// `console_io(CONSOLEIO_write)` hypercalls, one per line.
    Xen,
    /// Bytes to I/O port 0xe9 (QEMU `-debugcon`), when not running on Xen's ABI.
    DebugCon,
}

/// The console: a line buffer in front of a sink.
pub struct Console {
    sink: Sink,
    line: LineBuf<256>,
}

impl Console {
    pub const fn new(sink: Sink) -> Self {
        Self { sink, line: LineBuf::new() }
    }

    fn emit(sink: Sink, bytes: &[u8]) {
        match sink {
            Sink::Xen => {
                let _ = xen::console_write(bytes);
            }
            Sink::DebugCon => bytes.iter().for_each(|&b| arch::outb_raw(DEBUGCON_PORT, b)),
        }
    }
}

impl Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let sink = self.sink;
        self.line.push(s.as_bytes(), |line| Self::emit(sink, line));
        Ok(())
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        let sink = self.sink;
        self.line.flush(|line| Self::emit(sink, line));
    }
}

/// `writeln!` that ignores the (infallible) result.
macro_rules! say {
    ($console:expr, $($arg:tt)*) => {{
        let _ = writeln!($console, $($arg)*);
    }};
}
pub(crate) use say;

/// Reads a `T` at guest-physical `paddr` (identity-mapped). Only for addresses the boot
/// information names, below 4 GiB (the identity map's end).
fn phys_read<T: bytemuck::Pod>(paddr: u64) -> Option<T> {
    let end = paddr.checked_add(size_of::<T>() as u64)?;
    if paddr == 0 || end > 1 << 32 {
        return None;
    }
    // SAFETY: the boot page tables identity-map [0, 4 GiB) and the loader put this structure
    // there; `T` is plain data (any bytes valid); the read is unaligned-safe.
    Some(unsafe { (paddr as *const T).read_unaligned() })
}

/// The boot information this kernel uses.
struct Boot {
    start_info: HvmStartInfo,
    cmdline: [u8; CMDLINE_MAX],
    memmap: [HvmMemmapEntry; MAX_MEMMAP],
    memmap_len: usize,
}

impl Boot {
    fn read(paddr: u64) -> Result<Boot, &'static str> {
        let start_info: HvmStartInfo = phys_read(paddr).ok_or("start_info address out of range")?;
        if start_info.magic != HVM_START_MAGIC {
            return Err("bad hvm_start_info magic");
        }
        let mut cmdline = [0u8; CMDLINE_MAX];
        if start_info.cmdline_paddr != 0 {
            // Byte by byte up to the NUL: the bytes after it may not be memory at all.
            for (i, slot) in cmdline.iter_mut().enumerate().take(CMDLINE_MAX - 1) {
                match phys_read::<u8>(start_info.cmdline_paddr + i as u64) {
                    Some(0) | None => break,
                    Some(b) => *slot = b,
                }
            }
        }
        let mut memmap = [HvmMemmapEntry::default(); MAX_MEMMAP];
        let mut memmap_len = 0;
        if start_info.version >= 1 && start_info.memmap_paddr != 0 {
            memmap_len = (start_info.memmap_entries as usize).min(MAX_MEMMAP);
            for (i, slot) in memmap.iter_mut().enumerate().take(memmap_len) {
                *slot = phys_read(start_info.memmap_paddr + i as u64 * 24).ok_or("memmap out of range")?;
            }
        }
        Ok(Boot { start_info, cmdline, memmap, memmap_len })
    }

    fn memmap(&self) -> &[HvmMemmapEntry] {
        &self.memmap[..self.memmap_len]
    }
}

/// Ends the domain with `reason`; if the hypervisor refuses, says so and halts.
fn shutdown(console: &mut Console, reason: u32) -> ! {
    let result = xen::shutdown(reason);
    say!(console, "pvh-probe: SCHEDOP_shutdown({reason}) returned {}", xen::Outcome(result));
    let sink = console.sink;
    drop(core::mem::replace(console, Console::new(sink)));
    if sink == Sink::DebugCon {
        // Not on Xen: leave QEMU through isa-debug-exit with status (0x20 + reason) * 2 + 1.
        qemu_exit(0x20 + reason as u8)
    }
    arch::halt_forever()
}

/// Exits QEMU through isa-debug-exit (status `(value << 1) | 1`), or halts without it.
fn qemu_exit(value: u8) -> ! {
    arch::outb_raw(DEBUG_EXIT_PORT, value);
    arch::halt_forever()
}

/// Called by `boot.S` in 64-bit mode with the physical address of `hvm_start_info`.
#[unsafe(no_mangle)]
extern "C" fn pvh_probe_main(start_info: u64) -> ! {
    arch::install_idt();
    let on_xen = xen::detect();
    let mut console = Console::new(if on_xen.is_some() { Sink::Xen } else { Sink::DebugCon });
    let boot = match Boot::read(start_info) {
        Ok(boot) => boot,
        Err(e) => {
            say!(console, "pvh-probe: {e} (start_info at {start_info:#x})");
            finish_failed(&mut console, on_xen.is_some())
        }
    };
    let text = pvh_probe::cmdline_text(&boot.cmdline);
    let options = match pvh_probe::parse_cmdline(text) {
        Ok(options) => options,
        Err(e) => {
            say!(console, "pvh-probe: command line {text:?}: {e}");
            say!(
                console,
                "pvh-probe: usage: hello | hostile [grant <domid>] [hold=<n>] [oob] | share <domid> [hold=<n>] | revoke <domid> \
                 | bench | panic | triple-fault | selftest"
            );
            finish_failed(&mut console, on_xen.is_some())
        }
    };
    if options.mode == Mode::Selftest {
        selftest(&mut console, &boot, on_xen);
    }
    if on_xen.is_none() {
        // Plain QEMU (no Xen ABI): run anyway as a smoke test of the mode's own code; every
        // hypercall then reports `ud` and the final shutdown exits QEMU instead.
        say!(console, "pvh-probe: no Xen CPUID signature; hypercalls will fault (mode {})", options.mode.name());
    }
    let base = on_xen.unwrap_or(0);
    match options.mode {
        Mode::Hello => hello(&mut console, base),
        Mode::Hostile => hostile::run(&mut console, &boot, &options),
        Mode::Share => share::run(&mut console, &boot, &options),
        Mode::Revoke => revoke::run(&mut console, &boot, &options),
        Mode::Bench => bench(&mut console),
        Mode::Panic => {
            say!(console, "pvh-probe: panic mode, shutting down (crash)");
            shutdown(&mut console, shutdown_reason::CRASH)
        }
        Mode::TripleFault => {
            say!(console, "pvh-probe: triple-fault mode, loading an empty IDT and executing ud2");
            drop(console);
            arch::triple_fault()
        }
        Mode::Selftest => unreachable!("handled above"),
    }
}

/// After an error before a mode ran: crash on Xen, exit QEMU with a failure code otherwise.
fn finish_failed(console: &mut Console, on_xen: bool) -> ! {
    if on_xen {
        shutdown(console, shutdown_reason::CRASH)
    }
    drop(core::mem::replace(console, Console::new(Sink::DebugCon)));
    qemu_exit(0x11)
}

fn hello(console: &mut Console, cpuid_base: u32) -> ! {
    let version = xen::version();
    let (major, minor) = match version {
        Ok(v) => ((v >> 16) as u32, (v & 0xffff) as u32),
        Err(_) => (0, 0),
    };
    let extra = xen::extraversion();
    let extra = pvh_probe::cmdline_text(&extra);
    say!(console, "pvh-probe: hello from an HVM guest, Xen {major}.{minor}{extra}");
    say!(console, "pvh-probe: Xen CPUID leaves at {cpuid_base:#x}, xen_version returned {}", xen::Outcome(version));
    match xen::features() {
        Ok(word) => say!(console, "pvh-probe: XENFEAT word 0 = {word:#010x}"),
        Err(e) => say!(console, "pvh-probe: XENVER_get_features failed: {e}"),
    }
    say!(console, "pvh-probe: hello done, shutting down (poweroff)");
    shutdown(console, shutdown_reason::POWEROFF)
}

fn bench(console: &mut Console) -> ! {
    const WARMUP: u64 = 1000;
    const ROUNDS: u64 = 10000;
    for _ in 0..WARMUP {
        xen::version_raw();
    }
    let start = arch::rdtsc();
    for _ in 0..ROUNDS {
        xen::version_raw();
    }
    let cycles = arch::rdtsc().wrapping_sub(start) / ROUNDS;
    say!(console, "pvh-probe: xen_version {cycles} cycles/call");
    say!(console, "pvh-probe: bench done, shutting down (poweroff)");
    shutdown(console, shutdown_reason::POWEROFF)
}

/// Without Xen: shows the boot path worked (64-bit, start_info parsed, exception recovery),
/// then exits QEMU with status 0x21 (success) through isa-debug-exit.
fn selftest(console: &mut Console, boot: &Boot, on_xen: Option<u32>) -> ! {
    let mut c = Console::new(Sink::DebugCon);
    let si = &boot.start_info;
    say!(c, "pvh-probe: selftest: 64-bit mode reached, start_info version {} flags {:#x}", si.version, si.flags);
    say!(c, "pvh-probe: selftest: cmdline {:?}", pvh_probe::cmdline_text(&boot.cmdline));
    for e in boot.memmap() {
        say!(c, "pvh-probe: selftest: memmap {:#012x}..{:#012x} type {}", e.addr, e.addr + e.size, e.kind);
    }
    say!(
        c,
        "pvh-probe: selftest: RAM {} MiB, ends at {:#x}",
        pvh_probe::ram_bytes(boot.memmap()) >> 20,
        pvh_probe::ram_end(boot.memmap())
    );
    match on_xen {
        Some(base) => say!(c, "pvh-probe: selftest: Xen CPUID signature at {base:#x}"),
        None => say!(c, "pvh-probe: selftest: no Xen CPUID signature"),
    }
    let ud = arch::ud2();
    // A non-canonical load raises #GP on any x86_64 (unlike unknown MSRs, which TCG reads as 0).
    let gp = arch::read_u64(0x8000_0000_0000_0000);
    let msr = arch::rdmsr(0xdead_beef);
    say!(
        c,
        "pvh-probe: selftest: ud2 -> {}, non-canonical load -> {}, rdmsr(0xdeadbeef) -> {}",
        xen::Shown(ud.map(|_| 0)),
        xen::Shown(gp),
        xen::Shown(msr)
    );
    let ok = matches!(ud, Err(arch::Fault { vector: 6, .. })) && matches!(gp, Err(arch::Fault { vector: 13, .. }));
    say!(c, "pvh-probe: selftest {}", if ok { "passed" } else { "FAILED" });
    drop(c);
    let _ = console;
    qemu_exit(if ok { 0x10 } else { 0x11 })
}

/// An exception outside a guarded instruction (called by the handler in `arch`).
extern "C" fn fatal_exception(vector: u64, error: u64, rip: u64, cr2: u64) -> ! {
    let sink = if xen::detect().is_some() { Sink::Xen } else { Sink::DebugCon };
    let mut console = Console::new(sink);
    say!(console, "pvh-probe: fatal exception {vector} error {error:#x} at rip {rip:#x} (cr2 {cr2:#x})");
    if sink == Sink::Xen {
        shutdown(&mut console, shutdown_reason::CRASH)
    }
    drop(console);
    qemu_exit(0x12)
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let sink = if xen::detect().is_some() { Sink::Xen } else { Sink::DebugCon };
    let mut console = Console::new(sink);
    say!(console, "pvh-probe: panic: {info}");
    if sink == Sink::Xen {
        shutdown(&mut console, shutdown_reason::CRASH)
    }
    drop(console);
    qemu_exit(0x13)
}
