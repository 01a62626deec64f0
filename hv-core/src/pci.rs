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
        // Every BAR starts a fresh page and owns whole pages: a sub-page BAR never shares its
        // page with another (see `bar_isolation`).
        let at = self.next.checked_next_multiple_of(size.max(4096))?;
        let end = at.checked_add(size.max(4096))?;
        (end <= self.end).then(|| {
            self.next = end;
            at
        })
    }
}

/// Capability ids the policy knows (PCI Local Bus 3.0, appendix H).
pub const CAP_MSI: u8 = 0x05;
pub const CAP_VENDOR: u8 = 0x09;
pub const CAP_MSIX: u8 = 0x11;

/// One entry of a device's capability list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    pub id: u8,
    /// Its offset in config space (4-aligned, at least 0x40).
    pub offset: u8,
}

/// Longest capability list walked (the list lives in 192 bytes; a longer or looping list is
/// a broken or hostile device).
pub const MAX_CAPABILITIES: usize = 48;

/// Walks a device's capability list with `read(offset)` (a 4-aligned config dword). Bounded:
/// at most [`MAX_CAPABILITIES`] entries, each 4-aligned in 0x40..=0xfc; a pointer outside that
/// range ends the list. `status` is the dword at 0x04 (bit 20: the list exists).
pub fn capabilities(status: u32, read: impl Fn(u8) -> u32) -> Vec<Capability> {
    let mut out = Vec::new();
    if status & (1 << 20) == 0 {
        return out;
    }
    let mut next = (read(0x34) & 0xfc) as u8;
    while out.len() < MAX_CAPABILITIES && next >= 0x40 {
        let head = read(next);
        out.push(Capability { id: head as u8, offset: next });
        next = ((head >> 8) & 0xfc) as u8;
    }
    out
}

/// The MSI-X capability as the hypervisor programs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msix {
    /// Config offset of the capability.
    pub cap: u8,
    /// The BAR holding the table, and the table's offset in it.
    pub bir: u8,
    pub offset: u64,
    pub entries: u16,
}

impl Msix {
    /// Reads the capability at `cap` (its header and table dword). `None` if the capability
    /// does not fit below 0x100 or names no BAR.
    pub fn read(cap: u8, read: impl Fn(u8) -> u32) -> Option<Self> {
        let table_at = u8::try_from(cap as usize + 4).ok()?;
        let head = read(cap);
        let table = read(table_at);
        let bir = (table & 7) as u8;
        (bir < 6).then_some(Self { cap, bir, offset: (table & !7) as u64, entries: ((head >> 16) & 0x7ff) as u16 + 1 })
    }

    /// The byte range `[lo, hi)` of the table's pages inside its BAR (never mapped into the
    /// domain). Checked arithmetic: a table past the end of a 64-bit space is `None`.
    pub fn table_pages(&self) -> Option<(u64, u64)> {
        let end = self.offset.checked_add(self.entries as u64 * 16)?;
        Some((self.offset & !0xfff, end.checked_next_multiple_of(4096)?))
    }
}

/// The plain MSI capability: where its message address and data live (the layout depends on
/// the 64-bit flag in the message control word).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Msi {
    pub cap: u8,
    /// Offset of the (lower) message address dword.
    pub address: u8,
    /// Offset of the upper address dword (64-bit capable only).
    pub address_hi: Option<u8>,
    /// Offset of the dword whose low half is the message data.
    pub data: u8,
}

impl Msi {
    /// Layout of the MSI capability at `cap` whose first dword is `head`. `None` if it does
    /// not fit below 0x100.
    pub fn layout(cap: u8, head: u32) -> Option<Self> {
        let is64 = head & (1 << 23) != 0;
        let at = |n: usize| u8::try_from(cap as usize + n).ok();
        let (address_hi, data) = if is64 { (Some(at(8)?), at(12)?) } else { (None, at(8)?) };
        Some(Self { cap, address: at(4)?, address_hi, data })
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
    /// Refused (moving a BAR, IDs, the expansion ROM, any capability, anything unknown).
    Drop,
}

/// Command-register bits a driver domain controls: memory space (1), bus master (2) and
/// INTx disable (10). I/O space stays off (the domain has no port access anyway); the rest
/// (parity/SERR reporting, fast back-to-back, ...) keep the value the firmware set.
pub const COMMAND_DOMAIN_BITS: u32 = 0x2 | 0x4 | 0x400;

/// Filters a driver domain's 32-bit config-space write at `offset` (4-aligned). `current` is the
/// register's present value; `bar_raw(i)` is BAR i's current raw register value, `None` for a
/// BAR the device does not implement (the hypervisor placed the BARs; domains may not move
/// them).
///
/// Default deny: only what `virtio-drivers` needs passes — the command register's domain bits
/// and BAR sizing — plus the informational interrupt line. Every capability and every register
/// at 0x40 and above is refused: MSI and MSI-X are the hypervisor's (they aim interrupts), the
/// virtio capabilities (vendor-specific, 0x09) are read-only for the driver and one of them
/// (`VIRTIO_PCI_CAP_PCI_CFG`) is a window into the BARs, MSI-X table included.
pub fn filter_write(offset: u8, value: u32, current: u32, bar_raw: impl Fn(u8) -> Option<u32>) -> ConfigWrite {
    match offset {
        // Low half: command; high half: status (write-one-to-clear error bits: written as 0,
        // i.e. left alone).
        0x04 => ConfigWrite::Pass((current & 0xffff & !COMMAND_DOMAIN_BITS & !0x1) | (value & COMMAND_DOMAIN_BITS)),
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
        // Interrupt line (byte 0) is informational; pin, min grant and max latency are not
        // writable.
        0x3c => ConfigWrite::Pass((current & !0xff) | (value & 0xff)),
        _ => ConfigWrite::Drop,
    }
}

/// Why a memory BAR cannot be mapped into a driver domain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarProblem {
    /// Smaller than a page or not page-aligned, and placed by the firmware: the rest of its
    /// page may hold another device's registers.
    SharesAPage,
}

impl core::fmt::Display for BarProblem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::SharesAPage => {
                "smaller than a page or not page-aligned: its page may hold another device's registers"
            }
        })
    }
}

/// Whether memory BAR `b` may be mapped into a domain page by page. `own_page`: the hypervisor
/// placed it in its own window, where every BAR starts a fresh page and nothing else shares
/// it.
pub fn bar_isolation(b: &Bar, own_page: bool) -> Result<(), BarProblem> {
    if b.kind == BarKind::Io || own_page || (b.addr.is_multiple_of(4096) && b.size.is_multiple_of(4096)) {
        Ok(())
    } else {
        Err(BarProblem::SharesAPage)
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
        // Command: the domain's bits pass, I/O space stays off, the firmware's other bits stay.
        assert_eq!(filter_write(0x04, 0x7, 0x0010_0100, bar), ConfigWrite::Pass(0x106));
        assert_eq!(
            filter_write(0x04, 0xffff_ffff, 0x0010_0000, bar),
            ConfigWrite::Pass(0x406),
            "status RW1C left alone"
        );
        assert_eq!(filter_write(0x20, u32::MAX, 0, bar), ConfigWrite::StartSizing);
        assert_eq!(filter_write(0x20, 0xfe00_000c, 0, bar), ConfigWrite::EndSizing);
        assert_eq!(filter_write(0x20, 0x1234_0000, 0, bar), ConfigWrite::Drop, "moving a BAR");
        assert_eq!(filter_write(0x14, u32::MAX, 0, bar), ConfigWrite::Drop, "a BAR the device lacks");
        assert_eq!(filter_write(0x30, u32::MAX, 0, bar), ConfigWrite::Drop, "expansion ROM");
        assert_eq!(filter_write(0x00, 0, 0, bar), ConfigWrite::Drop, "ids");
        assert_eq!(filter_write(0x3c, 0xffff_ff0b, 0x0000_0100, bar), ConfigWrite::Pass(0x10b), "interrupt line only");
    }

    /// A fake config space: 64 dwords.
    fn space(dwords: &[(u8, u32)]) -> impl Fn(u8) -> u32 + '_ {
        move |off| dwords.iter().find(|(o, _)| *o == off).map_or(0, |(_, v)| *v)
    }

    /// The attacker: a driver domain whose device has a plain MSI capability, an MSI-X
    /// capability near the end of config space and virtio capabilities writes to each. Every
    /// one is refused; before, everything at 0x40 and above passed except the first 12 bytes of
    /// MSI-X, whose bound `cap + 12` wrapped in 8 bits for a capability at 0xf4 or above.
    #[test]
    fn capability_writes_are_refused() {
        let bar = |_| None;
        // MSI at 0x50 (64-bit): control, address low, address high, data.
        for off in [0x50u8, 0x54, 0x58, 0x5c] {
            assert_eq!(filter_write(off, 0xfee0_0000, 0, bar), ConfigWrite::Drop, "MSI at {off:#x}");
        }
        // MSI-X at 0xf4: control at 0xf4, table pointer at 0xf8, PBA at 0xfc.
        for off in [0xf4u8, 0xf8, 0xfc] {
            assert_eq!(filter_write(off, 0x1000, 0, bar), ConfigWrite::Drop, "MSI-X at {off:#x}");
        }
        // Vendor-specific (virtio) and unknown capabilities, device-specific registers.
        for off in [0x40u8, 0x84, 0x98, 0xc0] {
            assert_eq!(filter_write(off, 0, 0, bar), ConfigWrite::Drop, "{off:#x}");
        }
        for off in (0x40..=0xfcu8).step_by(4) {
            assert_eq!(filter_write(off, 0x1234_5678, 0xffff_ffff, bar), ConfigWrite::Drop, "{off:#x}");
        }
    }

    #[test]
    fn capability_walk_is_bounded_and_checked() {
        let cfg = [
            (0x04, 1 << 20),
            (0x34, 0x40),
            (0x40, 0x0050_5009),
            (0x50, 0x0080_f405),
            (0xf4, 0x0003_0011),
            (0xf8, 0x2001),
        ];
        let caps = capabilities(1 << 20, space(&cfg));
        let ids: Vec<_> = caps.iter().map(|c| (c.id, c.offset)).collect();
        assert_eq!(ids, [(CAP_VENDOR, 0x40), (CAP_MSI, 0x50), (CAP_MSIX, 0xf4)]);
        // No list bit: nothing.
        assert!(capabilities(0, space(&cfg)).is_empty());
        // A loop ends after MAX_CAPABILITIES entries.
        let looping = [(0x34, 0x40), (0x40, 0x4009)];
        assert_eq!(capabilities(1 << 20, space(&looping)).len(), MAX_CAPABILITIES);
        // MSI-X at 0xf4: table dword at 0xf8, 4 entries in BAR1 at 0x2000.
        let m = Msix::read(0xf4, space(&cfg)).unwrap();
        assert_eq!((m.bir, m.offset, m.entries), (1, 0x2000, 4));
        assert_eq!(m.table_pages(), Some((0x2000, 0x3000)));
        // MSI-X at 0xfc: its table dword would be past config space.
        assert_eq!(Msix::read(0xfc, space(&cfg)), None);
        assert_eq!(Msix::read(0x40, space(&[(0x44, 7)])), None, "BIR 7 names no BAR");
        let huge = Msix { cap: 0x40, bir: 0, offset: !7, entries: 2048 };
        assert_eq!(huge.table_pages(), None, "no wrap-around");
        // MSI layouts: 32-bit and 64-bit; one at 0xf8 that does not fit.
        assert_eq!(
            Msi::layout(0x50, 0x0080_0005),
            Some(Msi { cap: 0x50, address: 0x54, address_hi: Some(0x58), data: 0x5c })
        );
        assert_eq!(
            Msi::layout(0x50, 0x0000_0005),
            Some(Msi { cap: 0x50, address: 0x54, address_hi: None, data: 0x58 })
        );
        assert_eq!(Msi::layout(0xf8, 0x0080_0005), None);
        assert_eq!(Msi::layout(0xf4, 0x0080_0005), None, "data dword at 0x100");
    }

    #[test]
    fn sub_page_bars_are_not_mapped() {
        let bar = |addr, size| Bar { index: 2, kind: BarKind::Mem32, addr, size, prefetchable: false };
        assert_eq!(bar_isolation(&bar(0xfebf_1000, 0x1000), false), Ok(()));
        assert_eq!(bar_isolation(&bar(0xfe00_0000, 0x4000), false), Ok(()));
        // The attacker's device: a 256-byte BAR the firmware packed next to another device's.
        assert_eq!(bar_isolation(&bar(0xfebf_1100, 0x100), false), Err(BarProblem::SharesAPage));
        assert_eq!(bar_isolation(&bar(0xfebf_1000, 0x100), false), Err(BarProblem::SharesAPage));
        // The same BAR placed by the hypervisor owns its page.
        assert_eq!(bar_isolation(&bar(0xe000_0000, 0x100), true), Ok(()));
        let mut w = MmioWindow::new(0xe000_0000, 0xe001_0000);
        assert_eq!(w.alloc(0x100), Some(0xe000_0000));
        assert_eq!(w.alloc(0x100), Some(0xe000_1000), "the next BAR starts a fresh page");
    }
}
