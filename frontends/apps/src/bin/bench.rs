//! In-domain measurements for `cargo xtask bench`: prints `BENCH <metric> <value> <unit>` lines.
#![no_std]
#![no_main]

use hv_rt::{println, time};

hv_rt::main!(main);

fn main() {
    let si = hv_rt::start_info();
    let create = hv_rt::entry_tsc().saturating_sub(si.create_tsc);
    println!("BENCH domain_create_cycles {create} cycles");
    println!("BENCH domain_create_us {:.1} us", time::cycles_to_ns(create) as f64 / 1000.0);

    let iters = hv_rt::arg_u64("iters", 200_000);
    for _ in 0..1000 {
        core::hint::black_box(time::now_ns());
    }
    let t0 = time::rdtsc();
    for _ in 0..iters {
        core::hint::black_box(time::now_ns());
    }
    let cycles = time::rdtsc() - t0;
    let per = cycles as f64 / iters as f64;
    println!("BENCH null_hypercall_cycles {per:.1} cycles");
    println!("BENCH null_hypercall_ns {:.1} ns", time::cycles_to_ns(cycles) as f64 / iters as f64);
}
