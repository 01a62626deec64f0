//! kvlog: a DomU keeping an append-only key-value log on its `vbd/0` disk (format: the kvlog
//! crate, docs/kvlog.md). At start it rebuilds the index from the disk and reports what it
//! found; then it appends `put=N` records (keys `<tag>-<i>`, default tag = its name), each flushed
//! before it counts; re-opens the log (a fresh scan) and verifies every record it wrote. With
//! `await_dom=D` it then waits for domain D's `data/blk-attacks` = `done` and verifies again.
//! With `bulk_kib=N` it writes N KiB of [`bulk_byte`]s to the last N KiB of the disk in one
//! transfer (blkfront cuts it into indirect requests where the backend offers them), flushes,
//! reads them back in one transfer and compares.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use blkfront::BlkFront;
use hv_rt::store::Store;
use hv_rt::{println, time};
use kvlog::Kvlog;
use xenstore::StoreClient;

hv_rt::main!(main);

/// The log's disk: blkfront.
struct FrontDisk(BlkFront);

impl kvlog::Disk for FrontDisk {
    type Error = blkfront::BlkError;
    fn sectors(&self) -> u64 {
        self.0.capacity()
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.0.read(sector, buf)
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), Self::Error> {
        self.0.write(sector, buf)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        self.0.flush()
    }
}

fn main() {
    if let Err(e) = run() {
        panic!("{e}");
    }
}

fn value(tag: &str, i: u64) -> Vec<u8> {
    let len = 40 + (i * 97 % 1500) as usize;
    let seed = kvlog::fnv1a64(kvlog::FNV_OFFSET, format!("{tag}/{i}").as_bytes());
    (0..len).map(|j| (seed >> ((j % 8) * 8)) as u8 ^ j as u8).collect()
}

/// Byte `j` of the bulk region (the host recomputes it to check the image).
pub fn bulk_byte(j: usize) -> u8 {
    ((j / 4096) as u8).wrapping_mul(31) ^ j as u8 ^ 0x5a
}

/// The bulk check: one large write, a flush, one large read, compared.
fn bulk(disk: &mut BlkFront, kib: u64, log_tail: u64) -> Result<(), String> {
    let sectors = kib * 2;
    let Some(at) = disk.capacity().checked_sub(sectors).filter(|&at| at > log_tail) else {
        return Err(format!("bulk_kib={kib} does not fit between the log's end and the disk's end"));
    };
    let data: Vec<u8> = (0..(kib * 1024) as usize).map(bulk_byte).collect();
    disk.write(at, &data).map_err(|e| format!("bulk write: {e}"))?;
    disk.flush().map_err(|e| format!("bulk flush: {e}"))?;
    let mut back = alloc::vec![0u8; data.len()];
    disk.read(at, &mut back).map_err(|e| format!("bulk read: {e}"))?;
    let bad = data.iter().zip(&back).filter(|(a, b)| a != b).count();
    println!(
        "bulk: {kib} KiB written and read back at sector {at} in one transfer each: {}",
        if bad == 0 { String::from("match") } else { format!("{bad} bytes DIFFER") }
    );
    if bad > 0 { Err(format!("bulk read back {bad} wrong bytes")) } else { Ok(()) }
}

/// Checks every record `tag-0..n` against what was written; returns the number of bad ones.
fn verify(log: &mut Kvlog<FrontDisk>, tag: &str, n: u64) -> Result<u64, String> {
    let mut bad = 0;
    for i in 0..n {
        let key = format!("{tag}-{i}");
        match log.get(key.as_bytes()).map_err(|e| format!("get {key}: {e}"))? {
            Some(v) if v == value(tag, i) => {}
            Some(_) => {
                bad += 1;
                println!("record {key}: WRONG VALUE");
            }
            None => {
                bad += 1;
                println!("record {key}: MISSING");
            }
        }
    }
    Ok(bad)
}

fn run() -> Result<(), String> {
    let n = hv_rt::arg_u64("put", 100);
    let tag = String::from(hv_rt::arg("tag").unwrap_or(hv_rt::name()));
    let store = Store::connect().map_err(|e| format!("store: {e}"))?;
    let front = BlkFront::connect(store, 0, 64).map_err(|e| format!("blkfront: {e}"))?;
    let info = front.info();
    println!(
        "disk: {} sectors ({} MiB), {}",
        info.sectors,
        info.sectors / 2048,
        if info.read_only { "read-only" } else { "read-write" }
    );
    let mut log = Kvlog::open(FrontDisk(front)).map_err(|e| format!("open: {e}"))?;
    let r = log.recovery;
    println!(
        "found {} records ({} keys) at start{}; log ends at sector {}",
        r.records,
        log.len(),
        if r.formatted { ", formatted a blank disk" } else { "" },
        r.tail
    );
    let start = time::now_ns();
    let first = log.records() + 1;
    let progress = format!("/local/domain/{}/data/progress", hv_rt::domid());
    for i in 0..n {
        log.put(format!("{tag}-{i}").as_bytes(), &value(&tag, i)).map_err(|e| format!("put {i}: {e}"))?;
        // Acknowledged records so far, for the toolstack (a restart exercise keys off it).
        if (i + 1) % 100 == 0 {
            let _ = log.disk_mut().0.store().write(progress.as_bytes(), format!("{}", i + 1).as_bytes());
            println!("progress: {} records acknowledged", i + 1);
        }
    }
    let ms = (time::now_ns() - start) / 1_000_000;
    println!("appended {n} records (seq {first}..{}) in {ms} ms, each flushed before acknowledged", log.records());
    // A fresh scan of the disk, as at the next start.
    let disk = log.into_disk();
    let mut log = Kvlog::open(disk).map_err(|e| format!("reopen: {e}"))?;
    println!("rescanned: {} records, {} keys, log ends at sector {}", log.recovery.records, log.len(), log.tail());
    let bad = verify(&mut log, &tag, n)?;
    println!("verified {n} records, {bad} bad");
    let mut total_bad = bad;
    if let Some(dom) = hv_rt::arg("await_dom") {
        let path = format!("/local/domain/{dom}/data/blk-attacks");
        let deadline = time::now_ns() + 120_000_000_000;
        loop {
            if log.disk_mut().0.store().read_string(&path).is_ok_and(|v| v == "done") {
                break;
            }
            if time::now_ns() > deadline {
                return Err(format!("{path} never said done"));
            }
            time::sleep_ms(200);
        }
        let disk = log.into_disk();
        let mut log2 = Kvlog::open(disk).map_err(|e| format!("reopen: {e}"))?;
        let bad = verify(&mut log2, &tag, n)?;
        println!("after the attack: rescanned {} records, re-verified {n} records, {bad} bad", log2.recovery.records);
        total_bad += bad;
        log = log2;
    }
    if let Some(kib) = hv_rt::arg("bulk_kib").and_then(|v| v.parse().ok()) {
        let tail = log.tail();
        bulk(&mut log.disk_mut().0, kib, tail)?;
    }
    println!("kvlog summary: records={} keys={} bad={total_bad}", log.records(), log.len());
    if total_bad > 0 {
        return Err(format!("{total_bad} bad records"));
    }
    Ok(())
}
