//! The unikernel runtime every domain links: entry, heap, console, time, blocking, `domctl`.
//!
//! A domain is a plain Rust program:
//! ```ignore
//! #![no_std]
//! #![no_main]
//! hv_rt::main!(main);
//! fn main() { hv_rt::println!("hello"); }
//! ```
//! Returning from `main` shuts the domain down (poweroff); a panic prints the message and shuts
//! down with reason crash.
#![no_std]

extern crate alloc;

pub mod console;
pub mod control;
pub mod domctl;
pub mod evtchn;
pub mod grant;
pub mod hypercall;
pub mod pci;
pub mod store;
pub mod time;
pub mod virtio;

pub use hv_abi as abi;

use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering};
use hv_abi::{DomId, Hypercall, ShutdownReason, StartInfo};

static START_INFO: AtomicPtr<StartInfo> = AtomicPtr::new(core::ptr::null_mut());
static ENTRY_TSC: AtomicU64 = AtomicU64::new(0);

#[global_allocator]
static ALLOCATOR: talc::TalcLock<spin::Mutex<()>, talc::source::Manual> = talc::TalcLock::new(talc::source::Manual);

/// Defines the domain's entry point, calling `$main` once the runtime is set up.
#[macro_export]
macro_rules! main {
    ($main:path) => {
        #[unsafe(no_mangle)]
        pub extern "C" fn _start(start_info: *const $crate::abi::StartInfo) -> ! {
            $crate::start(start_info, $main)
        }
    };
}

/// Runtime start: called by `_start` with the hypervisor's start_info pointer.
pub fn start(si: *const StartInfo, main: fn()) -> ! {
    ENTRY_TSC.store(time::rdtsc(), Ordering::Relaxed);
    START_INFO.store(si.cast_mut(), Ordering::Relaxed);
    let si = start_info();
    if si.magic != hv_abi::START_INFO_MAGIC {
        shutdown(ShutdownReason::Crash);
    }
    if let Err(mismatch) = si.check_abi_version() {
        // Nothing else in start_info can be trusted to mean what we think: say why and stop
        // (the console needs no heap).
        println!("hv-rt: {mismatch}");
        shutdown(ShutdownReason::Crash);
    }
    // SAFETY: [heap_start, heap_end) is RAM the hypervisor mapped read-write for us and that
    // nothing else uses; it is claimed once.
    unsafe {
        ALLOCATOR.lock().claim(si.heap_start as *mut u8, (si.heap_end - si.heap_start) as usize);
    }
    main();
    console::flush();
    shutdown(ShutdownReason::Poweroff)
}

/// This domain's start_info page (its [`StartInfo::abi_version`] was checked at entry).
pub fn start_info() -> &'static StartInfo {
    // SAFETY: set in `start` from the pointer the hypervisor passed; the page is mapped read-only
    // for the domain's whole life and never changes.
    unsafe { &*START_INFO.load(Ordering::Relaxed) }
}

/// TSC value at the domain's first instruction (for boot-latency measurement).
pub fn entry_tsc() -> u64 {
    ENTRY_TSC.load(Ordering::Relaxed)
}

pub fn domid() -> DomId {
    start_info().domid as DomId
}

pub fn name() -> &'static str {
    hv_abi::name_from_array(&start_info().name).unwrap_or("?")
}

/// The argument string from the topology (or `domctl create`).
pub fn args() -> &'static str {
    hv_abi::name_from_array(&start_info().args).unwrap_or("")
}

/// Looks up `key=value` in the argument string.
pub fn arg(key: &str) -> Option<&'static str> {
    args().split_whitespace().find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

/// `arg(key)` parsed as a number, or `default`.
pub fn arg_u64(key: &str, default: u64) -> u64 {
    arg(key).and_then(|v| v.parse().ok()).unwrap_or(default)
}

pub fn shutdown(reason: ShutdownReason) -> ! {
    console::flush();
    loop {
        // SAFETY: `shutdown` takes a reason code, a value.
        let _ = unsafe { hypercall::call(Hypercall::Shutdown, reason as u64, 0, 0, 0) };
    }
}

pub fn yield_now() {
    // SAFETY: `yield` takes no arguments.
    let _ = unsafe { hypercall::call(Hypercall::Yield, 0, 0, 0, 0) };
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::flush();
    println!("panic: {info}");
    shutdown(ShutdownReason::Crash)
}
