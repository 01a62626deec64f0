//! The victim of the `dma-escape` scenario (issue 17, item 5): fills most of its memory with a
//! pattern, prints the machine range the pattern covers (the addresses a device would use,
//! `hv_rt::pci::dma_address`), waits until `check_at_ms` after it started (when every attack is
//! over), then checks the pattern from its own side. A device write that landed (another domain's
//! device aimed 2 MiB below its own RAM) would show as changed words; the domain then panics, so
//! it ends as a crash instead of the exit the topology expects.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::alloc::{Layout, alloc};
use hv_rt::{pci, println, time};

hv_rt::main!(main);

/// Heap left for everything else.
const RESERVE: u64 = 256 << 10;
const PAGE: u64 = 4096;

/// The word stored at machine address `at`: different at every address, so a copy from
/// elsewhere in the pattern would show too.
fn pattern(at: u64) -> u64 {
    at.rotate_left(17) ^ 0x5a5a_a5a5_dead_beef
}

fn main() {
    let start = time::now_ns();
    let check_at_ms = hv_rt::arg_u64("check_at_ms", 3000);
    let si = hv_rt::start_info();
    let bytes = (si.heap_end - si.heap_start).saturating_sub(RESERVE) / PAGE * PAGE;
    assert!(bytes > 0, "a heap of {} bytes leaves no room for the pattern", si.heap_end - si.heap_start);
    let Ok(layout) = Layout::from_size_align(bytes as usize, PAGE as usize) else {
        panic!("no layout for {bytes} bytes");
    };
    // SAFETY: the layout's size is not zero (checked above).
    let p = unsafe { alloc(layout) }.cast::<u64>();
    assert!(!p.is_null(), "cannot allocate {bytes} bytes for the pattern");
    let words = (bytes / 8) as usize;
    // SAFETY: `p` is our own fresh allocation of `bytes` bytes, aligned, used only here.
    let area = unsafe { core::slice::from_raw_parts_mut(p, words) };
    let Some(first) = pci::dma_address(p as u64) else { panic!("the heap is outside my RAM") };
    for (i, w) in area.iter_mut().enumerate() {
        *w = pattern(first + i as u64 * 8);
    }
    println!(
        "pattern over machine {first:#x}-{:#x} ({} KiB of my {} KiB); checking it at {check_at_ms} ms",
        first + bytes - 1,
        bytes >> 10,
        si.memory_bytes >> 10
    );
    time::sleep_ns((start + check_at_ms * 1_000_000).saturating_sub(time::now_ns()));
    // Volatile: the compiler must not assume the words still hold what it wrote.
    let mut changed = 0usize;
    let mut first_changed = None;
    for i in 0..words {
        // SAFETY: `i` < `words`, inside our allocation.
        let w = unsafe { p.add(i).read_volatile() };
        if w != pattern(first + i as u64 * 8) {
            changed += 1;
            first_changed.get_or_insert(first + i as u64 * 8);
        }
    }
    let elapsed_ms = (time::now_ns() - start) / 1_000_000;
    match first_changed {
        None => println!("pattern intact at {elapsed_ms} ms: {} KiB checked, 0 words changed", bytes >> 10),
        Some(at) => {
            println!("pattern MODIFIED at {elapsed_ms} ms: {changed} words changed, the first at machine {at:#x}");
            panic!("my memory was written by someone else");
        }
    }
}
