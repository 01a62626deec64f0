//! A DomU that tries Dom0's management calls; every one must fail with EPERM.
#![no_std]
#![no_main]

use hv_rt::{domctl, println};

hv_rt::main!(main);

fn show<T>(what: &str, r: Result<T, hv_abi::Error>) {
    match r {
        Err(e) => println!("domctl {what} refused: {}", e.name()),
        Ok(_) => println!("domctl {what} ALLOWED: privilege check is broken"),
    }
}

fn main() {
    show("create", domctl::create("evil", "hello", 1, ""));
    show("list", domctl::list());
    show("destroy", domctl::destroy(0));
    show("pause", domctl::pause(0));
    show("topology", domctl::topology());
    println!("domctl poweroff refused: {}", domctl::poweroff(0).name());
}
