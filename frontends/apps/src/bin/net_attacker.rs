//! Not built yet.
#![no_std]
#![no_main]

hv_rt::main!(main);

fn main() {
    hv_rt::println!("not built yet");
}
