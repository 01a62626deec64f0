//! guest: a plain DomU with a disk and a vif. It connects `vbd/0` (if it has one) and reads its
//! first sector, brings `vif/0` (if it has one) up with smoltcp (network args of
//! `demos::net`; it answers ARP and ping), prints `guest: ready`, and idles until it is
//! destroyed. The domain the toolstack scenarios and `cargo xtask bench xl` create and destroy.
//!
//! Console: `guest: vbd 0: <n> sectors, first sector read (<ms> ms)`, `guest: vif 0: mac
//! <mac> (<ms> ms)`, `guest: ready <ms> ms after start` (times since the domain started).
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;

use blkfront::BlkFront;
use demos::net::{Net, fail};
use hv_rt::store::Store;
use hv_rt::{println, time};

hv_rt::main!(main);

const TAG: &str = "guest";

fn has(store: &mut Store, kind: &str) -> bool {
    let id = xenstore::xenbus::device_id(kind, 0);
    store.read_string(&format!("/local/domain/{}/device/{kind}/{id}/backend", hv_rt::domid())).is_ok()
}

/// Milliseconds since `start`, with one decimal.
fn ms_since(start: u64) -> String {
    let us = (time::now_ns() - start) / 1000;
    format!("{}.{}", us / 1000, us / 100 % 10)
}

fn main() {
    let start = time::now_ns();
    let mut store = Store::connect().unwrap_or_else(|e| fail(TAG, &format!("store: {e}")));
    if has(&mut store, "vbd") {
        // 11 pages: one request of the largest size; this guest only checks the disk answers.
        let mut disk = BlkFront::connect(store, 0, 11).unwrap_or_else(|e| fail(TAG, &format!("vbd 0: {e}")));
        let mut sector = [0u8; 512];
        disk.read(0, &mut sector).unwrap_or_else(|e| fail(TAG, &format!("vbd 0: read: {e}")));
        println!("{TAG}: vbd 0: {} sectors, first sector read ({} ms)", disk.capacity(), ms_since(start));
        // The ring stays connected; the store connection moves on to the vif.
        store = disk.into_store();
    }
    let mut net: Option<Net> = None;
    if has(&mut store, "vif") {
        let n = Net::with_store(TAG, store).unwrap_or_else(|e| fail(TAG, &e));
        let mac: String = n.nf.mac().iter().map(|b| format!("{b:02x}")).collect::<alloc::vec::Vec<_>>().join(":");
        println!("{TAG}: vif 0: mac {mac} ({} ms)", ms_since(start));
        net = Some(n);
    }
    println!("{TAG}: ready {} ms after start", ms_since(start));
    loop {
        match net.as_mut() {
            Some(n) => {
                n.poll();
                n.wait();
            }
            None => time::block_until(time::now_ns() + 1_000_000_000),
        }
    }
}
