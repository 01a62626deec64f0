//! The block backend driver domain: serves every `vbd` device the toolstack gave it from one
//! backing device (a RAM disk of `ram_mib=N` MiB for now). The logic is the `blkback` crate.
#![no_std]
#![no_main]

hv_rt::main!(blkback::domain::main);
