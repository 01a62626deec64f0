//! PCI devices: enumerated at boot, BARs placed where the firmware left them unassigned (qboot),
//! assigned to driver domains by Dom0, their config space reachable only by their owner through
//! a filter, their memory BARs mapped uncached into the owner.
use super::Hv;
use super::domain::Domain;
use super::user_memory::copy_out_value;
use crate::arch::paging;
use crate::arch::pci_config::{read32, write32};
use crate::arch::trap::{DEVICE_VECTOR_BASE, DEVICE_VECTORS};
use crate::hvlog;
use crate::pci::{
    Bar, BarKind, Bdf, CAP_MSI, CAP_MSIX, ConfigWrite, MmioWindow, Msi, Msix, Selector, bar_isolation, capabilities,
    decode_bar, filter_write,
};
use alloc::vec::Vec;
use hv_abi::{DomId, Error, PciDeviceInfo, PciOp};

pub struct PciDevice {
    pub bdf: Bdf,
    pub vendor: u16,
    pub device: u16,
    pub class: u32,
    pub bars: [Option<Bar>; 6],
    pub owner: Option<DomId>,
    /// Per BAR: the owner wrote all ones and reads now return the size mask.
    sizing: [bool; 6],
    /// Where each memory BAR is mapped in the owner.
    mapped_at: [u64; 6],
    /// The MSI-X capability: its config offset, table BAR and offset, entries. The hypervisor
    /// owns it: the table page is never mapped into the domain and writes to any capability are
    /// refused, so a driver domain cannot aim interrupts at arbitrary vectors.
    msix: Option<Msix>,
    /// The plain MSI capability, programmed by the hypervisor (only for a device without MSI-X)
    /// and as unwritable for the domain as MSI-X.
    msi: Option<Msi>,
    /// Per BAR: the hypervisor placed it in its own window (it owns whole pages).
    placed: [bool; 6],
    /// The interrupt vector the device's MSI-X entries raise, while assigned.
    pub vector: Option<u8>,
    /// Interrupts raised on `vector` for the current owner.
    interrupts: u64,
}

/// The device's interrupt capabilities, read once at boot with a bounded, checked walk.
fn find_interrupt_caps(bdf: Bdf) -> (Option<Msix>, Option<Msi>) {
    let read = |off: u8| read32(bdf, off);
    let caps = capabilities(read(0x04), read);
    let msix = caps.iter().find(|c| c.id == CAP_MSIX).and_then(|c| Msix::read(c.offset, read));
    let msi = caps.iter().find(|c| c.id == CAP_MSI).and_then(|c| Msi::layout(c.offset, read(c.offset)));
    (msix, msi)
}

/// Where unassigned BARs go: above the q35 ECAM window, below the I/O APIC.
const MMIO_WINDOW: (u64, u64) = (0xe000_0000, 0xfe00_0000);
/// Where a driver domain sees its devices' BARs.
pub const BAR_WINDOW: u64 = 0xc000_0000;

fn size_bars(bdf: Bdf, window: &mut MmioWindow) -> ([Option<Bar>; 6], [bool; 6]) {
    let cmd = read32(bdf, 0x04);
    write32(bdf, 0x04, cmd & !0x3); // decoding off while sizing
    let mut bars = [None; 6];
    let mut placed = [false; 6];
    let mut i = 0u8;
    while i < 6 {
        let off = 0x10 + i * 4;
        let raw = read32(bdf, off);
        write32(bdf, off, u32::MAX);
        let probe = read32(bdf, off);
        write32(bdf, off, raw);
        let is64 = raw & 1 == 0 && (raw >> 1) & 3 == 2 && i < 5;
        let (raw_hi, probe_hi) = if is64 {
            let hi = read32(bdf, off + 4);
            write32(bdf, off + 4, u32::MAX);
            let p = read32(bdf, off + 4);
            write32(bdf, off + 4, hi);
            (hi, p)
        } else {
            (0, 0)
        };
        if let Some(mut bar) = decode_bar(i, raw, raw_hi, probe, probe_hi) {
            if bar.kind != BarKind::Io
                && bar.addr == 0
                && let Some(at) = window.alloc(bar.size)
            {
                write32(bdf, off, (raw & 0xf) | at as u32);
                if is64 {
                    write32(bdf, off + 4, (at >> 32) as u32);
                }
                bar.addr = at;
                placed[i as usize] = true;
            }
            bars[i as usize] = Some(bar);
        }
        i += if is64 { 2 } else { 1 };
    }
    write32(bdf, 0x04, cmd);
    (bars, placed)
}

/// Scans every bus for endpoints (header type 0).
pub fn enumerate() -> Vec<PciDevice> {
    let mut window = MmioWindow::new(MMIO_WINDOW.0, MMIO_WINDOW.1);
    let mut out = Vec::new();
    for bus in 0..=255u8 {
        for dev in 0..32u8 {
            for func in 0..8u8 {
                let bdf = Bdf { bus, dev, func };
                let id = read32(bdf, 0);
                if id & 0xffff == 0xffff {
                    if func == 0 {
                        break;
                    }
                    continue;
                }
                let header = (read32(bdf, 0x0c) >> 16) as u8;
                if header & 0x7f == 0 {
                    let class = read32(bdf, 0x08) >> 8;
                    let (bars, placed) = size_bars(bdf, &mut window);
                    let (msix, msi) = find_interrupt_caps(bdf);
                    out.push(PciDevice {
                        bdf,
                        vendor: id as u16,
                        device: (id >> 16) as u16,
                        class,
                        bars,
                        owner: None,
                        sizing: [false; 6],
                        mapped_at: [0; 6],
                        msix,
                        msi,
                        placed,
                        vector: None,
                        interrupts: 0,
                    });
                }
                if func == 0 && header & 0x80 == 0 {
                    break;
                }
            }
        }
    }
    for d in &out {
        let mem: u64 = d.bars.iter().flatten().filter(|b| b.kind != BarKind::Io).map(|b| b.size).sum();
        hvlog!(
            "pci {} {:04x}:{:04x} class {:06x}, {} KiB of memory BARs",
            d.bdf,
            d.vendor,
            d.device,
            d.class,
            mem / 1024
        );
    }
    out
}

impl Hv {
    /// `domctl assign_pci`: gives the first unassigned device matching `selector` to `domid`,
    /// maps its memory BARs uncached into it and enables memory decoding and bus mastering.
    pub fn assign_pci(&mut self, domid: u64, selector: u64) -> Result<u64, Error> {
        let sel = Selector::decode(selector).ok_or(Error::Inval)?;
        let id = DomId::try_from(domid).map_err(|_| Error::Srch)?;
        let slot = self.slot_of(id).ok_or(Error::Srch)?;
        let i = self
            .pci
            .iter()
            .position(|d| d.owner.is_none() && sel.matches(d.vendor, d.device, d.bdf))
            .ok_or(Error::NoEnt)?;
        // A memory BAR that may share its page with another device's registers is never mapped
        // into a domain: refuse the device (the firmware packed it; moving BARs the firmware
        // placed could collide with its other placements).
        {
            let d = &self.pci[i];
            if let Some((b, why)) =
                d.bars.iter().flatten().find_map(|b| bar_isolation(b, d.placed[b.index as usize]).err().map(|e| (b, e)))
            {
                hvlog!(
                    "pci {} {:04x}:{:04x} not assigned to domain {id}: bar{} ({} bytes at {:#x}) is {why}",
                    d.bdf,
                    d.vendor,
                    d.device,
                    b.index,
                    b.size,
                    b.addr
                );
                return Err(Error::Perm);
            }
        }
        let vector = (DEVICE_VECTOR_BASE..DEVICE_VECTOR_BASE + DEVICE_VECTORS)
            .find(|v| !self.pci.iter().any(|d| d.vector == Some(*v)))
            .ok_or(Error::NoSpc)?;
        // The device's DMA reaches exactly the domain's RAM (when there is remapping hardware).
        let (ram, bytes) =
            self.domains[slot].as_ref().and_then(|d| Some((d.live()?.ram, d.memory_bytes))).ok_or(Error::Srch)?;
        self.iommu_attach(id, ram, bytes, self.pci[i].bdf)?;
        // The message that raises `vector`: through an interrupt remapping entry only this
        // device may use, where the IOMMU remaps interrupts.
        let message = match self.pci[i].msix.is_some() || self.pci[i].msi.is_some() {
            true => Some(self.iommu_msi(self.pci[i].bdf, vector)?),
            false => None,
        };
        let l = self.domains[slot].as_mut().and_then(Domain::live_mut).ok_or(Error::Srch)?;
        let mut va = BAR_WINDOW
            + self
                .pci
                .iter()
                .filter(|d| d.owner == Some(id))
                .flat_map(|d| d.bars.iter().flatten())
                .filter(|b| b.kind != BarKind::Io)
                .map(|b| b.size.next_multiple_of(4096))
                .sum::<u64>();
        let dev = &mut self.pci[i];
        // The MSI-X table's pages stay the hypervisor's.
        // An MSI-X table whose extent cannot be computed hides the whole BAR.
        let table = dev.msix.map(|m| (m.bir, m.table_pages().unwrap_or((0, u64::MAX))));
        for b in dev.bars.iter().flatten().filter(|b| b.kind != BarKind::Io && b.addr != 0) {
            let pages = b.size.div_ceil(4096);
            for p in 0..pages {
                if table.is_some_and(|(bir, (lo, hi))| bir == b.index && (lo..hi).contains(&(p * 4096))) {
                    continue;
                }
                if l.aspace.map_device(va + p * 4096, b.addr + p * 4096, &mut self.frames).is_none() {
                    return Err(Error::NoMem);
                }
            }
            dev.mapped_at[b.index as usize] = va;
            va += pages * 4096;
        }
        dev.owner = Some(id);
        let cmd = read32(dev.bdf, 0x04);
        write32(dev.bdf, 0x04, (cmd & !0x1) | 0x2 | 0x4);
        if let Some(m) = dev.msix {
            if let Some(msi) = dev.msi {
                let ctrl = read32(dev.bdf, msi.cap);
                write32(dev.bdf, msi.cap, ctrl & !(1 << 16)); // MSI-X only
            }
            program_msix(dev.bdf, &dev.bars, m, message.unwrap_or_default());
            dev.vector = Some(vector);
        } else if let Some(m) = dev.msi {
            program_msi(dev.bdf, m, message.unwrap_or_default());
            dev.vector = Some(vector);
        }
        hvlog!("pci {} {:04x}:{:04x} assigned to domain {id}", dev.bdf, dev.vendor, dev.device);
        Ok(dev.bdf.to_u16() as u64)
    }

    /// Gives back every device a domain owned (MSI-X, decoding and bus mastering off, DMA
    /// contexts cleared).
    /// Takes every device of `domid` back; `false` if an IOMMU did not confirm that they can no
    /// longer reach the domain's memory (the caller must then not reuse that memory).
    pub fn release_pci(&mut self, domid: DomId) -> bool {
        let given: alloc::vec::Vec<_> =
            self.pci.iter().filter(|d| d.owner == Some(domid)).filter_map(|d| Some((d.bdf, d.vector?))).collect();
        for d in self.pci.iter_mut().filter(|d| d.owner == Some(domid)) {
            if let Some(m) = d.msix {
                let ctrl = read32(d.bdf, m.cap);
                write32(d.bdf, m.cap, ctrl & !(1 << 31));
            }
            if let Some(m) = d.msi {
                let ctrl = read32(d.bdf, m.cap);
                write32(d.bdf, m.cap, ctrl & !(1 << 16));
            }
            if d.vector.is_some() {
                hvlog!("pci {} taken back from domain {domid}: it raised {} interrupts", d.bdf, d.interrupts);
            }
            d.vector = None;
            d.interrupts = 0;
            let cmd = read32(d.bdf, 0x04);
            write32(d.bdf, 0x04, cmd & !0x7);
            d.owner = None;
            d.sizing = [false; 6];
            d.mapped_at = [0; 6];
        }
        // Their interrupt entries go (MSI is already off).
        for (bdf, vector) in given {
            self.iommu_msi_release(bdf, vector);
        }
        // Bus mastering is off; the contexts go too, and the units confirm it, before the
        // caller frees the domain's memory.
        self.iommu_detach_domain(domid)
    }
}

/// Points every MSI-X entry of a device at the message `(address, data)` (from
/// `Hv::iommu_msi`) and enables MSI-X.
fn program_msix(bdf: Bdf, bars: &[Option<Bar>; 6], m: Msix, (address, data): (u32, u32)) {
    let Some(bar) = bars[m.bir as usize] else { return };
    let table = bar.addr + m.offset;
    for e in 0..m.entries.min(64) as u64 {
        let entry = paging::phys_to_virt(table + e * 16) as *mut u32;
        // SAFETY: the MSI-X table lies in the device's BAR, which the direct map covers
        // uncached (3–4 GiB); the domain cannot reach this page.
        unsafe {
            entry.write_volatile(address);
            entry.add(1).write_volatile(0);
            entry.add(2).write_volatile(data);
            entry.add(3).write_volatile(0); // unmasked
        }
    }
    let ctrl = read32(bdf, m.cap);
    // Enable, not function-masked.
    write32(bdf, m.cap, (ctrl | 1 << 31) & !(1 << 30));
}

/// Points a device's plain MSI at the message `(address, data)` (one message) and enables it.
fn program_msi(bdf: Bdf, m: Msi, (address, data): (u32, u32)) {
    let ctrl = read32(bdf, m.cap);
    write32(bdf, m.cap, ctrl & !(1 << 16)); // off while reprogramming
    write32(bdf, m.address, address);
    if let Some(hi) = m.address_hi {
        write32(bdf, hi, 0);
    }
    let old = read32(bdf, m.data);
    write32(bdf, m.data, (old & 0xffff_0000) | (data & 0xffff));
    // Enable with one message (multiple message enable, bits 20-22, zero).
    write32(bdf, m.cap, (ctrl & !(7 << 20)) | 1 << 16);
}

impl Hv {
    /// A device interrupt arrived on `vector`: raise the owner's pirq port.
    pub fn device_interrupt(&mut self, vector: u8) {
        let Some(d) = self.pci.iter_mut().find(|d| d.vector == Some(vector)) else { return };
        d.interrupts += 1;
        let Some((owner, bdf)) = d.owner.map(|o| (o, d.bdf)) else { return };
        if let Some(port) = self.evtchn.pirq_port(owner, bdf.to_u16() as u32) {
            self.set_pending(owner, port);
        }
    }
}

/// `pci_op` from a driver domain.
pub fn dispatch(hv: &mut Hv, slot: usize, args: [u64; 6]) -> Result<u64, Error> {
    let me = hv.domains[slot].as_ref().ok_or(Error::Srch)?.id;
    let own = |hv: &Hv, bdf: u64| -> Result<usize, Error> {
        let bdf = Bdf::from_u16(u16::try_from(bdf).map_err(|_| Error::Inval)?);
        hv.pci.iter().position(|d| d.bdf == bdf && d.owner == Some(me)).ok_or(Error::Perm)
    };
    match PciOp::from_u64(args[0]).ok_or(Error::NoSys)? {
        PciOp::List => {
            let max = args[2] as usize;
            let mine: Vec<PciDeviceInfo> = hv.pci.iter().filter(|d| d.owner == Some(me)).map(info).collect();
            for (n, i) in mine.iter().take(max).enumerate() {
                let at = args[1].checked_add((n * core::mem::size_of::<PciDeviceInfo>()) as u64).ok_or(Error::Fault)?;
                copy_out_value(hv, slot, at, i)?;
            }
            Ok(mine.len() as u64)
        }
        PciOp::ConfigRead => {
            let i = own(hv, args[1])?;
            let off = u8::try_from(args[2]).ok().filter(|o| o % 4 == 0).ok_or(Error::Inval)?;
            let d = &hv.pci[i];
            if (0x10..=0x24).contains(&off) && d.sizing[((off - 0x10) / 4) as usize] {
                let i = ((off - 0x10) / 4) as usize;
                // The size mask a sizing read returns: low half with the type bits, or the upper
                // half of a 64-bit BAR.
                return Ok(match (d.bars[i], i.checked_sub(1).and_then(|j| d.bars[j])) {
                    (Some(b), _) => ((!(b.size - 1)) as u32 | (read32(d.bdf, off) & 0xf)) as u64,
                    (None, Some(lo)) if lo.kind == BarKind::Mem64 => ((!(lo.size - 1)) >> 32) as u32 as u64,
                    _ => 0,
                });
            }
            Ok(read32(d.bdf, off) as u64)
        }
        PciOp::ConfigWrite => {
            let i = own(hv, args[1])?;
            let off = u8::try_from(args[2]).ok().filter(|o| o % 4 == 0).ok_or(Error::Inval)?;
            let value = u32::try_from(args[3]).map_err(|_| Error::Inval)?;
            let bdf = hv.pci[i].bdf;
            let bars = hv.pci[i].bars;
            // A BAR register the device implements: a BAR, or the upper half of a 64-bit one.
            let implemented = |b: u8| {
                bars[b as usize].is_some()
                    || (b > 0 && bars[b as usize - 1].is_some_and(|lo| lo.kind == BarKind::Mem64))
            };
            // Default deny: only the command register's domain bits, BAR sizing and the interrupt
            // line pass; MSI, MSI-X and every other capability are refused (`crate::pci`).
            let current = if matches!(off, 0x04 | 0x3c) { read32(bdf, off) } else { 0 };
            match filter_write(off, value, current, |b| implemented(b).then(|| read32(bdf, 0x10 + b * 4))) {
                ConfigWrite::Pass(v) => write32(bdf, off, v),
                ConfigWrite::StartSizing => hv.pci[i].sizing[((off - 0x10) / 4) as usize] = true,
                ConfigWrite::EndSizing => hv.pci[i].sizing[((off - 0x10) / 4) as usize] = false,
                ConfigWrite::Drop => return Err(Error::Perm),
            }
            Ok(0)
        }
    }
}

fn info(d: &PciDevice) -> PciDeviceInfo {
    let mut i =
        PciDeviceInfo { bdf: d.bdf.to_u16(), vendor: d.vendor, device: d.device, class: d.class, ..Default::default() };
    for b in d.bars.iter().flatten() {
        let e = &mut i.bars[b.index as usize];
        e.phys = b.addr;
        e.size = b.size;
        e.va = d.mapped_at[b.index as usize];
        e.kind = match b.kind {
            BarKind::Io => 1,
            BarKind::Mem32 => 2,
            BarKind::Mem64 => 3,
        };
    }
    i
}
