//! Floods the console (issue 13, finding 4): one `console_write` of 4096 newlines (which used to
//! become about 80 KiB of prefixed output written to the UART inside the hypercall, interrupts
//! off), then `flood_ms` milliseconds of back-to-back full lines. Reports how long the newline
//! write took, after a pause long enough for its rate limit to let one line through.
#![no_std]
#![no_main]

use hv_rt::{console, println, time};

hv_rt::main!(main);

fn main() {
    let flood_ms = hv_rt::arg_u64("flood_ms", 1000);
    println!("flooding the console");
    let newlines = [b'\n'; 4096];
    let t0 = time::now_ns();
    let _ = console::write_bytes(&newlines);
    let took_us = (time::now_ns() - t0) / 1000;
    let mut line = [b'f'; 200];
    line[199] = b'\n';
    let end = time::now_ns() + flood_ms * 1_000_000;
    let mut writes = 0u64;
    while time::now_ns() < end {
        let _ = console::write_bytes(&line);
        writes += 1;
    }
    time::sleep_ms(300);
    println!("flood done: the 4096-newline write took {took_us} us; {writes} more writes of 200 bytes");
}
