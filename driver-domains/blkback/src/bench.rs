//! The block benchmark's access patterns, run the same way on any disk (through blkfront from a
//! DomU, or by blkback directly on its device): 4 KiB random reads, 64 KiB sequential reads and
//! writes. Prints `BENCH <prefix>_<pattern> <value> <unit>` lines.
use alloc::vec;
use hv_rt::{println, time};

/// A disk the patterns can run on.
pub trait PatternDisk {
    fn sectors(&self) -> u64;
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> bool;
    fn write(&mut self, sector: u64, buf: &[u8]) -> bool;
}

/// Runs the patterns over sectors `[start, start + span)`; writes go there too.
pub fn run(disk: &mut impl PatternDisk, prefix: &str, start: u64, span: u64, ops: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    let sectors4k = span / 8;
    if sectors4k == 0 {
        return println!("benchmark region too small");
    }
    // Random 4 KiB reads (xorshift over the region).
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let t0 = time::now_ns();
    for _ in 0..ops {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if !disk.read(start + (x % sectors4k) * 8, &mut buf[..4096]) {
            return println!("random read failed");
        }
    }
    let ns = (time::now_ns() - t0).max(1);
    println!("BENCH {prefix}_randread_4k_iops {:.0} iops", ops as f64 * 1e9 / ns as f64);
    // Sequential 64 KiB writes then reads.
    let chunks = (span / 128).min(ops);
    for (i, b) in buf.iter_mut().enumerate() {
        *b = i as u8;
    }
    let t0 = time::now_ns();
    for c in 0..chunks {
        if !disk.write(start + c * 128, &buf) {
            return println!("sequential write failed");
        }
    }
    let ns = (time::now_ns() - t0).max(1);
    println!("BENCH {prefix}_seqwrite_mbps {:.2} MB/s", (chunks * 65536) as f64 * 1e3 / ns as f64);
    let t0 = time::now_ns();
    for c in 0..chunks {
        if !disk.read(start + c * 128, &mut buf) {
            return println!("sequential read failed");
        }
    }
    let ns = (time::now_ns() - t0).max(1);
    println!("BENCH {prefix}_seqread_mbps {:.2} MB/s", (chunks * 65536) as f64 * 1e3 / ns as f64);
    let _ = disk.sectors();
}
