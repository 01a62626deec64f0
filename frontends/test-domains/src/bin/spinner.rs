//! A DomU that never blocks or yields: the scheduler must preempt it so others still run.
#![no_std]
#![no_main]

hv_rt::main!(main);

fn main() {
    hv_rt::println!("spinning forever without blocking");
    let mut x = 0u64;
    loop {
        x = core::hint::black_box(x.wrapping_add(1));
    }
}
