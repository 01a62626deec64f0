//! A demo DomU: greets, does some CPU work between sleeps, says goodbye.
//! Args: `work=N` (busy-loop iterations per step), `steps=M`, `sleep_ms=K`.
#![no_std]
#![no_main]

use hv_rt::{println, time};

hv_rt::main!(main);

fn main() {
    let si = hv_rt::start_info();
    println!("hello from domain {} ({}), {} MiB of RAM", hv_rt::domid(), hv_rt::name(), si.memory_bytes >> 20);
    let work = hv_rt::arg_u64("work", 10_000);
    let steps = hv_rt::arg_u64("steps", 3);
    let sleep_ms = hv_rt::arg_u64("sleep_ms", 5);
    let mut acc = 0u64;
    for step in 1..=steps {
        for i in 0..work {
            acc = core::hint::black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        time::sleep_ms(sleep_ms);
        println!("step {step}/{steps} done at {} ms", time::now_ns() / 1_000_000);
    }
    // Heap works too.
    let v: alloc::vec::Vec<u64> = (0..1000).collect();
    println!("goodbye (checksum {:#x}, heap sum {})", acc & 0xffff, v.iter().sum::<u64>());
}

extern crate alloc;
