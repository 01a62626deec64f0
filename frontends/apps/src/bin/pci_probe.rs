//! Exercises PCI device assignment from inside a driver domain: lists its devices, reads and
//! sizes their config space through the hypervisor's filter, is refused what it must not do
//! (moving a BAR, another device's config space), and reads a virtio device's common
//! configuration through the BAR the hypervisor mapped for it.
#![no_std]
#![no_main]

use hv_rt::pci::{self, Bdf};
use hv_rt::println;

hv_rt::main!(main);

fn refused(what: &str, r: Result<impl core::fmt::Debug, hv_abi::Error>) {
    match r {
        Err(e) => println!("{what} refused: {}", e.name()),
        Ok(v) => println!("{what} ALLOWED ({v:?}): isolation is broken"),
    }
}

fn main() {
    let devices = match pci::devices() {
        Ok(d) => d,
        Err(e) => return println!("pci list failed: {}", e.name()),
    };
    // Somebody else's device (or none): the host bridge is never assigned.
    refused("config read of the host bridge", pci::config_read(Bdf { bus: 0, dev: 0, func: 0 }, 0));
    if devices.is_empty() {
        println!("no devices assigned");
        return;
    }
    for d in &devices {
        let bdf = Bdf::from_u16(d.bdf);
        println!("device {bdf} {:04x}:{:04x} class {:06x}", d.vendor, d.device, d.class);
        for (i, b) in d.bars.iter().enumerate().filter(|(_, b)| b.kind >= 2) {
            println!("  bar{i} {:#x}, {} KiB, mapped at {:#x}", b.phys, b.size / 1024, b.va);
        }
        let id = pci::config_read(bdf, 0).unwrap_or(0);
        println!("config read: vendor {:04x} device {:04x}", id & 0xffff, id >> 16);
        refused("config write to the device id", pci::config_write(bdf, 0, 0));
        // Size a memory BAR the way drivers do; moving it is refused.
        if let Some((i, b)) = d.bars.iter().enumerate().find(|(_, b)| b.kind >= 2) {
            let off = 0x10 + i as u8 * 4;
            let orig = pci::config_read(bdf, off).unwrap_or(0);
            let sized = pci::config_write(bdf, off, u32::MAX).and_then(|_| pci::config_read(bdf, off));
            let restored = pci::config_write(bdf, off, orig).and_then(|_| pci::config_read(bdf, off));
            let size = sized.map(|m| (!(m & !0xf)).wrapping_add(1)).unwrap_or(0);
            println!(
                "bar{i} sizing: {} bytes (expected {}), restored {}",
                size,
                b.size.min(u32::MAX as u64 + 1) as u32,
                if restored == Ok(orig) { "ok" } else { "WRONG" }
            );
            refused("moving a BAR", pci::config_write(bdf, off, 0x1234_0000));
        }
        if d.vendor == 0x1af4 {
            virtio_common(d, bdf);
        }
    }
}

/// Finds the virtio common-configuration capability and reads the device features through the
/// mapped BAR.
fn virtio_common(d: &hv_abi::PciDeviceInfo, bdf: Bdf) {
    let byte = |off: u8| pci::config_read(bdf, off & !3).map(|w| (w >> ((off & 3) * 8)) as u8).unwrap_or(0);
    let mut cap = byte(0x34);
    for _ in 0..48 {
        if cap == 0 {
            break;
        }
        let (id, next, cfg_type, bar) = (byte(cap), byte(cap + 1), byte(cap + 3), byte(cap + 4));
        if id == 9 && cfg_type == 1 {
            let offset = pci::config_read(bdf, cap + 8).unwrap_or(0) as u64;
            let phys = d.bars.get(bar as usize).map_or(0, |b| b.phys) + offset;
            let Some(va) = pci::bar_va(d, phys) else {
                return println!("virtio common cfg at {phys:#x} is not mapped");
            };
            // SAFETY: `va` is the device's common configuration, mapped uncached for us.
            let features = unsafe {
                (va as *mut u32).write_volatile(0); // device_feature_select = 0
                ((va + 4) as *const u32).read_volatile()
            };
            return println!("virtio common cfg through bar{bar}: device features (low word) {features:#010x}");
        }
        cap = next;
    }
    println!("no virtio common cfg capability");
}
