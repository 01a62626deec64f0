//! guest: a plain DomU with a disk and a vif. It connects `vbd/0` and `vif/0` (those it has;
//! both handshakes at once), reads the disk's first sector, brings the vif up with smoltcp
//! (network args of `demos::net`; it answers ARP and ping), prints `guest: ready`, and idles
//! until it is destroyed. The domain the toolstack scenarios and `cargo xtask bench xl` create and destroy.
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
use netfront::NetFront;
use xenstore::StoreClient;

hv_rt::main!(main);

const TAG: &str = "guest";

/// Whether the domain has `vbd/0` and `vif/0` (one round trip).
fn devices(store: &mut Store) -> (bool, bool) {
    let path = |kind| {
        let id = xenstore::xenbus::device_id(kind, 0);
        format!("/local/domain/{}/device/{kind}/{id}/backend", hv_rt::domid())
    };
    let (vbd, vif) = (path("vbd"), path("vif"));
    let found = store.read_many(&[vbd.as_bytes(), vif.as_bytes()]);
    (found.first().is_some_and(Result::is_ok), found.get(1).is_some_and(Result::is_ok))
}

/// Milliseconds since `start`, with one decimal.
fn ms_since(start: u64) -> String {
    let us = (time::now_ns() - start) / 1000;
    format!("{}.{}", us / 1000, us / 100 % 10)
}

/// The vbd's second half (backend Connected, disk properties, Connected) over `store`.
fn finish_disk(disk: BlkFront<()>, store: &mut Store) -> BlkFront<()> {
    let (mut disk, ()) = disk.with_store(store);
    disk.finish().unwrap_or_else(|e| fail(TAG, &format!("vbd 0: {e}")));
    disk.with_store(()).0
}

/// Reads the vbd's first sector over `store`.
fn read_disk(disk: BlkFront<()>, store: &mut Store, start: u64) {
    let (mut disk, ()) = disk.with_store(store);
    let mut sector = [0u8; 512];
    disk.read(0, &mut sector).unwrap_or_else(|e| fail(TAG, &format!("vbd 0: read: {e}")));
    println!("{TAG}: vbd 0: {} sectors, first sector read ({} ms)", disk.capacity(), ms_since(start));
    // The ring stays connected; the device is dropped (the store stays with its owner).
}

fn main() {
    let start = time::now_ns();
    let mut store = Store::connect().unwrap_or_else(|e| fail(TAG, &format!("store: {e}")));
    let (vbd, vif) = devices(&mut store);
    // Both handshakes at once: each device is started (backend InitWait, rings shared,
    // Initialised) before the domain waits for either backend's Connected, so the backends
    // connect together; the first sector is read once both are Connected. The vif owns the
    // store connection, the vbd borrows it for each step.
    // 11 pages: one request of the largest size; this guest only checks the disk answers.
    let disk = vbd.then(|| {
        let d = BlkFront::start(&mut store, 0, 11).unwrap_or_else(|e| fail(TAG, &format!("vbd 0: {e}")));
        d.with_store(()).0
    });
    let mut net: Option<Net> = None;
    if vif {
        let index = hv_rt::arg_u64("vif", 0) as u32;
        let within = hv_rt::arg_u64("connect_s", 300) * 1_000_000_000;
        let mut nf = NetFront::start(store, index).unwrap_or_else(|e| fail(TAG, &format!("vif {index}: {e}")));
        let disk = disk.map(|d| finish_disk(d, nf.store()));
        nf.finish(within).unwrap_or_else(|e| fail(TAG, &format!("vif {index}: {e}")));
        if let Some(d) = disk {
            read_disk(d, nf.store(), start);
        }
        let n = Net::from_front(TAG, nf).unwrap_or_else(|e| fail(TAG, &e));
        let mac: String = n.nf.mac().iter().map(|b| format!("{b:02x}")).collect::<alloc::vec::Vec<_>>().join(":");
        println!("{TAG}: vif 0: mac {mac} ({} ms)", ms_since(start));
        net = Some(n);
    } else if let Some(d) = disk {
        let d = finish_disk(d, &mut store);
        read_disk(d, &mut store, start);
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
