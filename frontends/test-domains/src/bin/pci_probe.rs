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
        capability_writes(bdf);
        if d.vendor == 0x1af4 {
            virtio_common(d, bdf);
            if matches!(d.device, 0x1001 | 0x1042) {
                virtio_blk_io(d, bdf);
            }
        }
    }
}

/// Plays the attacker against the capabilities: writes each one's current value back (harmless
/// if it passed, so the device keeps working either way) to MSI, MSI-X (control and table
/// pointer), a virtio (vendor-specific) capability and the last dword of config space. Every
/// write must be refused: a capability write that passes can aim the device's interrupts
/// anywhere (MSI address/data) or reach its BARs (virtio's PCI-config-access window).
fn capability_writes(bdf: Bdf) {
    let byte = |off: u8| pci::config_read(bdf, off & !3).map(|w| (w >> ((off & 3) * 8)) as u8).unwrap_or(0);
    let write_back = |off: u8| pci::config_write(bdf, off, pci::config_read(bdf, off).unwrap_or(0));
    let mut cap = byte(0x34) & 0xfc;
    let (mut msi, mut msix, mut vendor) = (None, None, None);
    for _ in 0..48 {
        if cap < 0x40 {
            break;
        }
        match byte(cap) {
            0x05 => msi = msi.or(Some(cap)),
            0x11 => msix = msix.or(Some(cap)),
            0x09 => vendor = vendor.or(Some(cap)),
            _ => {}
        }
        cap = byte(cap + 1) & 0xfc;
    }
    match msi {
        Some(c) => {
            refused("config write to the MSI control", write_back(c));
            refused("config write to the MSI address", write_back(c + 4));
            refused("config write to the MSI data", write_back(c + 8));
            let addr = pci::config_read(bdf, c + 4).unwrap_or(0);
            let enabled = pci::config_read(bdf, c).unwrap_or(0) & (1 << 16) != 0;
            println!("MSI after the attack: address {addr:#010x}, {}", if enabled { "enabled" } else { "disabled" });
        }
        None => println!("no MSI capability"),
    }
    match msix {
        Some(c) => {
            refused("config write to the MSI-X control", write_back(c));
            refused("config write to the MSI-X table pointer", write_back(c + 4));
        }
        None => println!("no MSI-X capability"),
    }
    match vendor {
        Some(c) => refused("config write to a virtio capability", write_back(c + 8)),
        None => println!("no vendor-specific capability"),
    }
    refused("config write to the last dword (0xfc)", write_back(0xfc));
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

/// Drives the virtio-blk device with `virtio-drivers`: writes a sector, then reads it back and
/// waits for the completion interrupt on the device's pirq port.
fn virtio_blk_io(d: &hv_abi::PciDeviceInfo, bdf: Bdf) {
    use hv_rt::virtio::{HvConfigAccess, HvHal, route_queue_interrupt};
    use hv_rt::{evtchn, time};
    use virtio_drivers::device::blk::{BlkReq, BlkResp, VirtIOBlk};
    use virtio_drivers::transport::pci::PciTransport;
    use virtio_drivers::transport::pci::bus::{DeviceFunction, PciRoot};

    let mut root = PciRoot::new(HvConfigAccess);
    let df = DeviceFunction { bus: bdf.bus, device: bdf.dev, function: bdf.func };
    let transport = match PciTransport::new::<HvHal, _>(&mut root, df) {
        Ok(t) => t,
        Err(e) => return println!("virtio transport: {e:?}"),
    };
    let mut blk = match VirtIOBlk::<HvHal, _>::new(transport) {
        Ok(b) => b,
        Err(e) => return println!("virtio-blk: {e:?}"),
    };
    println!("virtio-blk: {} sectors", blk.capacity());
    let port = match evtchn::bind_pirq(bdf.to_u16()) {
        Ok(p) => p,
        Err(e) => return println!("bind_pirq: {}", e.name()),
    };
    println!("queue interrupt routed to MSI-X: {}", route_queue_interrupt(d, 0));
    let mut data = [0u8; 512];
    let text = b"hv-core pci-probe wrote this sector through virtio-blk";
    data[..text.len()].copy_from_slice(text);
    if let Err(e) = blk.write_blocks(1, &data) {
        return println!("write: {e:?}");
    }
    evtchn::clear(port); // the write's completion interrupt
    let (mut req, mut resp, mut buf) = (BlkReq::default(), BlkResp::default(), [0u8; 512]);
    // SAFETY: req, buf and resp are not touched until the request completes below.
    let token = match unsafe { blk.read_blocks_nb(1, &mut req, &mut buf, &mut resp) } {
        Ok(t) => t,
        Err(e) => return println!("read: {e:?}"),
    };
    let deadline = time::now_ns() + 2_000_000_000;
    let mut interrupted = false;
    while time::now_ns() < deadline {
        if evtchn::clear(port) {
            interrupted = true;
            break;
        }
        time::block_until(deadline);
    }
    blk.ack_interrupt();
    while blk.peek_used() != Some(token) && time::now_ns() < deadline + 1_000_000_000 {
        hv_rt::yield_now();
    }
    // SAFETY: the same buffers as passed to read_blocks_nb.
    let done = unsafe { blk.complete_read_blocks(token, &req, &mut buf, &mut resp) };
    println!(
        "virtio-blk read back sector 1: {} ({:?}); completion interrupt {}",
        if buf == data { "matches" } else { "MISMATCH" },
        done,
        if interrupted { "delivered on the pirq port" } else { "NOT delivered" }
    );
}
