//! `cargo xtask bench blk`: the block benchmark patterns from a DomU, through blkfront and
//! blkback, on its `vbd/0` (compare with blkback running them directly on the device).
#![no_std]
#![no_main]

use blkback::bench::{PatternDisk, run};
use blkfront::BlkFront;
use hv_rt::println;
use hv_rt::store::Store;

hv_rt::main!(main);

struct Front(BlkFront);

impl PatternDisk for Front {
    fn sectors(&self) -> u64 {
        self.0.capacity()
    }
    fn read(&mut self, sector: u64, buf: &mut [u8]) -> bool {
        self.0.read(sector, buf).is_ok()
    }
    fn write(&mut self, sector: u64, buf: &[u8]) -> bool {
        self.0.write(sector, buf).is_ok()
    }
}

fn main() {
    let store = match Store::connect() {
        Ok(s) => s,
        Err(e) => return println!("store: {e}"),
    };
    let front = match BlkFront::connect(store, 0, 32) {
        Ok(f) => f,
        Err(e) => return println!("blkfront: {e:?}"),
    };
    let mut disk = Front(front);
    let span = disk.sectors().min(8 * 2048);
    run(&mut disk, "blk_front", 0, span, hv_rt::arg_u64("ops", 2000));
}
