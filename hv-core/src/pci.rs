//! PCI: the plain-logic half of enumeration and device assignment (BAR decoding and sizing,
//! placing unassigned BARs, the config-space filter for driver domains). The port I/O lives in
//! the arch module.

use alloc::vec::Vec;

pub use hv_abi::pci::{Bdf, Selector};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    Io,
    Mem32,
    Mem64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    pub index: u8,
    pub kind: BarKind,
    pub addr: u64,
    pub size: u64,
    pub prefetchable: bool,
}

/// Decodes BAR `index` from its raw value(s) and the value read back after writing all ones
/// (`probe`, `probe_hi` for the upper half of a 64-bit BAR). `None` for an unimplemented BAR.
pub fn decode_bar(index: u8, raw: u32, raw_hi: u32, probe: u32, probe_hi: u32) -> Option<Bar> {
    if raw & 1 == 1 {
        let mask = probe & !0x3;
        let size = (!mask).wrapping_add(1) & 0xffff;
        return (mask != 0).then_some(Bar {
            index,
            kind: BarKind::Io,
            addr: (raw & !0x3) as u64,
            size: size as u64,
            prefetchable: false,
        });
    }
    let is64 = (raw >> 1) & 3 == 2;
    let prefetchable = raw & 8 != 0;
    let (addr, mask) = if is64 {
        (((raw_hi as u64) << 32) | (raw & !0xf) as u64, ((probe_hi as u64) << 32) | (probe & !0xf) as u64)
    } else {
        ((raw & !0xf) as u64, 0xffff_ffff_0000_0000 | (probe & !0xf) as u64)
    };
    if mask & 0xffff_ffff == 0 && (!is64 || probe_hi == 0) {
        return None;
    }
    let size = (!mask).wrapping_add(1);
    Some(Bar { index, kind: if is64 { BarKind::Mem64 } else { BarKind::Mem32 }, addr, size, prefetchable })
}

/// Hands out naturally aligned MMIO ranges for BARs the firmware left unassigned.
#[derive(Debug)]
pub struct MmioWindow {
    next: u64,
    end: u64,
}

impl MmioWindow {
    pub fn new(start: u64, end: u64) -> Self {
        Self { next: start, end }
    }

    pub fn alloc(&mut self, size: u64) -> Option<u64> {
        if size == 0 || !size.is_power_of_two() {
            return None;
        }
        let at = self.next.checked_next_multiple_of(size.max(4096))?;
        let end = at.checked_add(size)?;
        (end <= self.end).then(|| {
            self.next = end;
            at
        })
    }
}

/// What a driver domain's config-space write becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigWrite {
    /// Pass the write to the device.
    Pass(u32),
    /// A BAR write of all ones (sizing): answer reads of this BAR with its size mask until the
    /// next write; the device is not touched.
    StartSizing,
    /// A BAR write that restores the BAR's address: stop sizing; the device is not touched.
    EndSizing,
    /// Refused (moving a BAR, touching the expansion ROM or anything unknown).
    Drop,
}

/// Filters a driver domain's 32-bit config-space write at `offset`. `bar_addr(i)` is BAR i's
/// current raw register value (the hypervisor placed the BARs; domains may not move them).
pub fn filter_write(offset: u8, value: u32, bar_raw: impl Fn(u8) -> Option<u32>) -> ConfigWrite {
    match offset {
        // Command register (low half): memory space, bus master and INTx-disable are the
        // domain's business; I/O space stays off (the domain has no port access anyway).
        0x04 => ConfigWrite::Pass(value & !0x1),
        0x10..=0x24 => {
            let i = (offset - 0x10) / 4;
            match bar_raw(i) {
                Some(_) if value == u32::MAX || value == 0xffff_fffe || value == 0xffff_fff0 => {
                    ConfigWrite::StartSizing
                }
                Some(raw) if value == raw => ConfigWrite::EndSizing,
                _ => ConfigWrite::Drop,
            }
        }
        // Interrupt line (byte 0 of 0x3c) is informational; capabilities (MSI/MSI-X control)
        // and device-specific registers above the header are the driver's.
        0x3c => ConfigWrite::Pass(value),
        o if o >= 0x40 => ConfigWrite::Pass(value),
        _ => ConfigWrite::Drop,
    }
}

/// Memory BARs of a device, in index order (the 64-bit ones once).
pub fn memory_bars(bars: &[Option<Bar>]) -> Vec<Bar> {
    bars.iter().flatten().filter(|b| b.kind != BarKind::Io).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_bars() {
        // A 64-bit prefetchable 16 KiB BAR at 0xfe000000 (virtio BAR4 under SeaBIOS).
        let b = decode_bar(4, 0xfe00_000c, 0, 0xffff_c00c, 0xffff_ffff).unwrap();
        assert_eq!((b.kind, b.addr, b.size, b.prefetchable), (BarKind::Mem64, 0xfe00_0000, 0x4000, true));
        // A 32-bit 4 KiB BAR, unassigned.
        let b = decode_bar(1, 0, 0, 0xffff_f000, 0).unwrap();
        assert_eq!((b.kind, b.addr, b.size), (BarKind::Mem32, 0, 0x1000));
        // An I/O BAR of 32 ports.
        let b = decode_bar(0, 0xc001, 0, 0xffff_ffe1, 0).unwrap();
        assert_eq!((b.kind, b.addr, b.size), (BarKind::Io, 0xc000, 32));
        // Unimplemented.
        assert_eq!(decode_bar(2, 0, 0, 0, 0), None);
    }

    #[test]
    fn window_aligns_and_bounds() {
        let mut w = MmioWindow::new(0xc000_1000, 0xc010_0000);
        assert_eq!(w.alloc(0x4000), Some(0xc000_4000));
        assert_eq!(w.alloc(0x1000), Some(0xc000_8000));
        assert_eq!(w.alloc(0x10_0000), None, "past the window");
        assert_eq!(w.alloc(0x3000), None, "not a power of two");
    }

    #[test]
    fn config_writes_are_filtered() {
        let bar = |i| (i == 4).then_some(0xfe00_000cu32);
        assert_eq!(filter_write(0x04, 0x7, bar), ConfigWrite::Pass(0x6));
        assert_eq!(filter_write(0x20, u32::MAX, bar), ConfigWrite::StartSizing);
        assert_eq!(filter_write(0x20, 0xfe00_000c, bar), ConfigWrite::EndSizing);
        assert_eq!(filter_write(0x20, 0x1234_0000, bar), ConfigWrite::Drop, "moving a BAR");
        assert_eq!(filter_write(0x14, u32::MAX, bar), ConfigWrite::Drop, "a BAR the device lacks");
        assert_eq!(filter_write(0x30, u32::MAX, bar), ConfigWrite::Drop, "expansion ROM");
        assert_eq!(filter_write(0x00, 0, bar), ConfigWrite::Drop, "ids");
        assert_eq!(filter_write(0x50, 5, bar), ConfigWrite::Pass(5), "capabilities");
    }
}
