//! DMA remapping glue: finds the VT-d units in ACPI's DMAR at boot, turns translation on with
//! every device blocked, gives each device assigned to a driver domain a context whose
//! second-level tables map exactly that domain's RAM (at the machine addresses the domain
//! already hands its devices, `hv_rt::pci::dma_address`), tears the contexts down (and waits
//! for the invalidation) before a domain's memory is freed, and ends a driver domain whose
//! device faults. Where the units remap interrupts, each assigned device's MSI goes through an
//! interrupt remapping entry only that device may use ([`Hv::iommu_msi`]). Policy and
//! encodings: `crate::iommu`; registers: `arch::vtd`.

use super::Hv;
use crate::acpi_root::AcpiRoot;
use crate::arch::paging;
use crate::arch::vtd::{self, Unit};
use crate::frames::FrameAllocator;
use crate::hvlog;
use crate::iommu::address_space::{self, DeviceSpace, TableMemory};
use crate::iommu::dmar::{self, Dmar};
use crate::iommu::entries::{self, Levels};
use crate::iommu::{interrupts, sdt};
use alloc::vec::Vec;
use hv_abi::pci::Bdf;
use hv_abi::{DomId, Error};

/// Table frames from the hypervisor's allocator, zeroed; entries through the direct map.
struct Frames<'a>(&'a mut FrameAllocator);

impl TableMemory for Frames<'_> {
    fn alloc_zeroed(&mut self) -> Option<u64> {
        let f = self.0.alloc()?;
        paging::zero_phys(f, 4096);
        Some(f)
    }
    fn read(&self, table: u64, index: usize) -> u64 {
        vtd::table_read(table, index)
    }
    fn write(&mut self, table: u64, index: usize, value: u64) {
        vtd::table_write(table, index, value)
    }
}

struct UnitState {
    hw: Unit,
    root: u64,
    /// Context tables by bus.
    contexts: Vec<(u8, u64)>,
    /// The interrupt remapping table (entry index = vector), when interrupts are remapped.
    irt: Option<u64>,
}

/// One domain's device address space and its domain id in the units' caches.
struct Space {
    owner: DomId,
    did: u16,
    tables: DeviceSpace,
}

pub struct Iommu {
    dmar: Dmar,
    units: Vec<UnitState>,
    levels: Levels,
    spaces: Vec<Space>,
    /// Devices with a present context entry: (device, unit, owner).
    attached: Vec<(Bdf, usize, DomId)>,
    last_poll_ns: u64,
    faults_logged: u64,
    /// A fault event interrupt arrived: read the records now, not at the next poll.
    event: bool,
    /// The last fault read (source, page, reason, read): a device repeats a refused access
    /// (QEMU's retries of one transfer), and the repeats say nothing new.
    last_fault: Option<(u16, u64, u8, bool)>,
}

/// Faults checked at most this often (each check is one register read per unit).
const POLL_INTERVAL_NS: u64 = 1_000_000;
/// Fault lines logged before further faults are only counted.
const FAULTS_LOGGED: u64 = 32;

/// The DMAR among the tables the RSDT/XSDT lists, read and parsed.
fn find_dmar(acpi: &AcpiRoot) -> Result<Option<Dmar>, alloc::string::String> {
    use alloc::string::ToString;
    let root_at = acpi.root_table();
    let root = vtd::read_acpi_table(root_at).ok_or_else(|| alloc::format!("root table at {root_at:#x} unreadable"))?;
    let tables = sdt::root_entries(&root, acpi.xsdt.is_some()).map_err(|e| e.to_string())?;
    for at in tables.into_iter().take(64) {
        let Some(t) = vtd::read_acpi_table(at) else { continue };
        if t.get(..4) == Some(dmar::SIGNATURE) {
            return dmar::parse(&t).map(Some).map_err(|e| e.to_string());
        }
    }
    Ok(None)
}

/// Finds and enables the remapping hardware (translation on, every device blocked), or says
/// why there is none.
pub fn init(acpi: Option<AcpiRoot>, frames: &mut FrameAllocator) -> Option<Iommu> {
    let Some(acpi) = acpi else {
        hvlog!("iommu: none (no ACPI tables): devices of driver domains can DMA anywhere");
        return None;
    };
    let dmar = match find_dmar(&acpi) {
        Ok(Some(d)) => d,
        Ok(None) => {
            hvlog!("iommu: none (no DMAR table): devices of driver domains can DMA anywhere");
            return None;
        }
        Err(e) => {
            hvlog!("iommu: DMAR unusable ({e}): devices of driver domains can DMA anywhere");
            return None;
        }
    };
    let mut hws = Vec::new();
    for u in &dmar.units {
        match Unit::probe(u.register_base) {
            Ok(h) => hws.push(h),
            Err(e) => {
                hvlog!("iommu: VT-d unit at {:#x} unusable: {e}; translation stays off", u.register_base);
                return None;
            }
        }
    }
    let sagaw = hws.iter().fold(0x1f, |a, h| a & h.sagaw());
    let Some(levels) = Levels::from_sagaw(sagaw) else {
        hvlog!("iommu: the VT-d units share no 3- or 4-level table format (SAGAW {sagaw:#x}); translation stays off");
        return None;
    };
    let mut units = Vec::new();
    for mut hw in hws {
        let Some(root) = (Frames(frames)).alloc_zeroed() else {
            hvlog!("iommu: no memory for a root table; translation stays off");
            return None;
        };
        hw.flush_tables(root, 4096);
        let on = hw.set_root_table(root).and_then(|()| hw.invalidate_all()).and_then(|()| hw.enable_translation());
        if let Err(e) = on {
            hvlog!("iommu: VT-d unit at {:#x}: {e}", hw.base);
            return None;
        }
        hvlog!(
            "iommu: VT-d unit at {:#x} (version {}.{}, {}-level tables, {} domain ids, {}coherent walks{}) translating: devices nobody owns have no DMA",
            hw.base,
            (hw.version >> 4) & 0xf,
            hw.version & 0xf,
            levels.count(),
            hw.domain_ids(),
            if hw.coherent() { "" } else { "non-" },
            if hw.caching_mode() { ", caching mode" } else { "" }
        );
        let irt = if dmar.flags & 1 != 0 && hw.can_remap_interrupts() {
            match remap_interrupts(&mut hw, frames) {
                Ok(t) => Some(t),
                Err(e) => {
                    hvlog!("iommu: VT-d unit at {:#x}: interrupt remapping not turned on: {e}", hw.base);
                    None
                }
            }
        } else {
            None
        };
        match irt {
            Some(t) => hvlog!(
                "iommu: interrupt remapping on ({} entries at {t:#x}): a device raises only its owner's vector; compatibility-format interrupts {}",
                interrupts::ENTRIES,
                if hw.compatibility_interrupts_pass() { "pass (CFIS set)" } else { "blocked (CFIS clear)" }
            ),
            None => hvlog!(
                "iommu: no interrupt remapping (DMAR flags {:#x}, ECAP {:#x}): a driver domain's device can raise any vector",
                dmar.flags,
                hw.ecap
            ),
        }
        units.push(UnitState { hw, root, contexts: Vec::new(), irt });
    }
    for u in &units {
        u.hw.enable_fault_interrupt(crate::arch::trap::IOMMU_FAULT_VECTOR);
    }
    Some(Iommu {
        dmar,
        units,
        levels,
        spaces: Vec::new(),
        attached: Vec::new(),
        last_poll_ns: 0,
        faults_logged: 0,
        event: false,
        last_fault: None,
    })
}

/// Turns on queued invalidation and interrupt remapping with an empty table (no entry present:
/// every remappable interrupt is refused until [`Hv::iommu_msi`] fills one). Returns the table.
fn remap_interrupts(hw: &mut Unit, frames: &mut FrameAllocator) -> Result<u64, alloc::string::String> {
    let mut mem = Frames(frames);
    let (Some(queue), Some(status), Some(table)) = (mem.alloc_zeroed(), mem.alloc_zeroed(), mem.alloc_zeroed()) else {
        return Err("no memory for its tables".into());
    };
    hw.flush_tables(table, 4096);
    hw.flush_tables(queue, 4096);
    hw.enable_queued_invalidation(queue, status).map_err(|e| alloc::format!("{e}"))?;
    hw.enable_interrupt_remapping(table).map_err(|e| alloc::format!("{e}"))?;
    Ok(table)
}

impl Hv {
    /// The MSI message (address, data) `bdf` must send to raise `vector`: where its unit
    /// remaps interrupts, a remappable-format message naming entry `vector`, which this fills
    /// with `vector` for the boot CPU and `bdf` as the only source allowed; else the
    /// compatibility-format message for `vector` on the boot CPU.
    pub fn iommu_msi(&mut self, bdf: Bdf, vector: u8) -> Result<(u32, u32), Error> {
        let compatibility = Ok((0xfee0_0000, vector as u32));
        let Some(io) = self.iommu.as_mut() else { return compatibility };
        let Some(u) = io.dmar.unit_for(bdf) else { return compatibility };
        let unit = &io.units[u];
        let Some(irt) = unit.irt else { return compatibility };
        let [lo, hi] = interrupts::irte(vector, 0, bdf.to_u16());
        // High half first: the present bit lands last.
        vtd::table_write(irt, vector as usize * 2 + 1, hi);
        vtd::table_write(irt, vector as usize * 2, lo);
        unit.hw.flush_tables(irt + vector as u64 * 16, 16);
        unit.hw.invalidate_interrupt_entries().map_err(|e| {
            hvlog!("iommu: {e}");
            Error::Busy
        })?;
        hvlog!("iommu: pci {bdf} may raise vector {vector:#x} (interrupt entry {vector}, source {bdf} only)");
        Ok((interrupts::remappable_msi_address(vector as u16), 0))
    }

    /// Clears the interrupt remapping entry of `vector` (its device was taken back).
    pub fn iommu_msi_release(&mut self, bdf: Bdf, vector: u8) {
        let Some(io) = self.iommu.as_mut() else { return };
        let Some(unit) = io.dmar.unit_for(bdf).map(|u| &io.units[u]) else { return };
        let Some(irt) = unit.irt else { return };
        vtd::table_write(irt, vector as usize * 2, 0);
        vtd::table_write(irt, vector as usize * 2 + 1, 0);
        unit.hw.flush_tables(irt + vector as u64 * 16, 16);
        if let Err(e) = unit.hw.invalidate_interrupt_entries() {
            hvlog!("iommu: {e}");
        }
    }

    /// Gives `bdf` a context mapping exactly `owner`'s RAM (`[ram, ram + bytes)`, its own
    /// machine addresses). Without remapping hardware this does nothing.
    pub fn iommu_attach(&mut self, owner: DomId, ram: u64, bytes: u64, bdf: Bdf) -> Result<(), Error> {
        let Some(io) = self.iommu.as_mut() else { return Ok(()) };
        let Some(u) = io.dmar.unit_for(bdf) else {
            hvlog!("iommu: no VT-d unit remaps pci {bdf}: not assigned (its DMA could not be confined)");
            return Err(Error::Perm);
        };
        let mut mem = Frames(&mut self.frames);
        if !io.spaces.iter().any(|s| s.owner == owner) {
            let did = (1..u16::MAX)
                .find(|d| !io.spaces.iter().any(|s| s.did == *d))
                .filter(|d| io.units.iter().all(|u| (*d as u32) < u.hw.domain_ids()))
                .ok_or(Error::NoSpc)?;
            let tables = match address_space::build(&mut mem, io.levels, ram, ram + bytes) {
                Ok(t) => t,
                Err((e, taken)) => {
                    for f in taken {
                        paging::zero_phys(f, 4096);
                        mem.0.free(f, 1);
                    }
                    hvlog!("iommu: no device address space for domain {owner}: {e:?}");
                    return Err(Error::NoMem);
                }
            };
            for &f in &tables.frames {
                io.units.iter().for_each(|u| u.hw.flush_tables(f, 4096));
            }
            io.spaces.push(Space { owner, did, tables });
        }
        let space = io.spaces.iter().find(|s| s.owner == owner).ok_or(Error::NoMem)?;
        let (sl_root, did, range) = (space.tables.root, space.did, space.tables.range);
        let unit = &mut io.units[u];
        let ctx = match unit.contexts.iter().find(|c| c.0 == bdf.bus) {
            Some(c) => c.1,
            None => {
                let c = mem.alloc_zeroed().ok_or(Error::NoMem)?;
                unit.hw.flush_tables(c, 4096);
                unit.contexts.push((bdf.bus, c));
                let [lo, hi] = entries::root_entry(c);
                vtd::table_write(unit.root, bdf.bus as usize * 2 + 1, hi);
                vtd::table_write(unit.root, bdf.bus as usize * 2, lo);
                unit.hw.flush_tables(unit.root + bdf.bus as u64 * 16, 16);
                c
            }
        };
        let slot = ((bdf.dev as usize) << 3 | bdf.func as usize) * 2;
        let [lo, hi] = entries::context_entry(sl_root, io.levels, did);
        // High half first: the present bit lands last.
        vtd::table_write(ctx, slot + 1, hi);
        vtd::table_write(ctx, slot, lo);
        unit.hw.flush_tables(ctx + slot as u64 * 8, 16);
        if let Err(e) = unit.hw.invalidate_all() {
            hvlog!("iommu: {e}");
            return Err(Error::Busy);
        }
        io.attached.retain(|a| a.0 != bdf);
        io.attached.push((bdf, u, owner));
        hvlog!(
            "iommu: pci {bdf} in domain {owner}'s context (DID {did}): device addresses {:#x}-{:#x} (its RAM), nothing else; {} device(s) in contexts",
            range.0,
            range.1 - 1,
            io.attached.len()
        );
        Ok(())
    }

    /// Clears the context of every device attached for `owner`, waits until the units have
    /// dropped every cached translation, then frees the domain's tables. After this no device
    /// reaches `owner`'s memory, so it may be freed.
    pub fn iommu_detach_domain(&mut self, owner: DomId) -> bool {
        let Some(io) = self.iommu.as_mut() else { return true };
        let mine: Vec<_> = io.attached.iter().filter(|a| a.2 == owner).copied().collect();
        for (bdf, u, _) in &mine {
            let unit = &io.units[*u];
            if let Some(&(_, ctx)) = unit.contexts.iter().find(|c| c.0 == bdf.bus) {
                let slot = ((bdf.dev as usize) << 3 | bdf.func as usize) * 2;
                vtd::table_write(ctx, slot, 0);
                vtd::table_write(ctx, slot + 1, 0);
                unit.hw.flush_tables(ctx + slot as u64 * 8, 16);
            }
        }
        let mut ok = true;
        for unit in &io.units {
            if let Err(e) = unit.hw.invalidate_all() {
                hvlog!("iommu: tearing down domain {owner}'s contexts: {e}");
                ok = false;
            }
        }
        io.attached.retain(|a| a.2 != owner);
        if let Some(i) = io.spaces.iter().position(|s| s.owner == owner) {
            let s = io.spaces.swap_remove(i);
            if ok {
                for f in s.tables.frames {
                    paging::zero_phys(f, 4096);
                    self.frames.free(f, 1);
                }
            } else {
                // A unit that did not confirm the invalidation may still walk them: leak them.
                hvlog!(
                    "iommu: {} table frames of domain {owner} kept (not confirmed unreachable)",
                    s.tables.frames.len()
                );
            }
        }
        if !mine.is_empty() && ok {
            hvlog!("iommu: domain {owner}'s {} device context(s) cleared and invalidated", mine.len());
        }
        ok || mine.is_empty()
    }

    /// The fault event interrupt: a unit recorded a fault. The records are read on the way out
    /// of this entry (`sched::leave` polls before it picks what runs), not at the next poll.
    pub fn iommu_fault_event(&mut self) {
        if let Some(io) = self.iommu.as_mut() {
            io.event = true;
        }
    }

    /// Reads the units' fault records (at once after a fault event interrupt, else at most
    /// every [`POLL_INTERVAL_NS`]): each fault is logged with the device and address, and the
    /// device's owner is ended.
    pub fn poll_iommu(&mut self, now: u64) {
        let Some(io) = self.iommu.as_mut() else { return };
        if !io.event && now.saturating_sub(io.last_poll_ns) < POLL_INTERVAL_NS {
            return;
        }
        let how = if core::mem::take(&mut io.event) { "fault event" } else { "poll" };
        io.last_poll_ns = now;
        // Owners to end, and whether for an interrupt (else a DMA access).
        let mut culprits: Vec<(DomId, bool)> = Vec::new();
        let mut lines = Vec::new();
        for unit in &io.units {
            let (faults, overflow) = unit.hw.take_faults();
            if overflow {
                lines
                    .push(alloc::format!("iommu: unit at {:#x}: fault records overflowed (faults lost)", unit.hw.base));
            }
            for f in faults {
                // A repeat is not logged again, but its device's owner is still ended.
                let key = (f.source, f.address, f.reason, f.read);
                let repeat = io.last_fault.replace(key) == Some(key);
                let bdf = entries::bdf_of_source(f.source);
                let owner = self.pci.iter().find(|d| d.bdf == bdf).and_then(|d| d.owner);
                if !repeat {
                    io.faults_logged += 1;
                }
                if !repeat && io.faults_logged <= FAULTS_LOGGED {
                    let who = match owner {
                        Some(o) => alloc::format!("domain {o}'s"),
                        None => "an unowned".into(),
                    };
                    lines.push(match (interrupts::fault_index(f.reason, f.raw_lo), interrupts::reason_text(f.reason)) {
                        (Some(index), Some(why)) => alloc::format!(
                            "iommu: interrupt blocked: {who} device pci {bdf} sent interrupt entry {index}: {why} (reason {:#x}; found by {how})",
                            f.reason
                        ),
                        _ => alloc::format!(
                            "iommu: DMA fault: {who} device pci {bdf} {} at {:#x}: {} (reason {:#x}; found by {how})",
                            if f.read { "read" } else { "write" },
                            f.address,
                            entries::reason_text(f.reason),
                            f.reason
                        ),
                    });
                }
                if let Some(o) = owner
                    && !culprits.iter().any(|c| c.0 == o)
                {
                    culprits.push((o, interrupts::reason_text(f.reason).is_some()));
                }
            }
        }
        for l in lines {
            hvlog!("{l}");
        }
        for (id, interrupt) in culprits {
            let Some(slot) = self.slot_of(id) else { continue };
            let name = self.domains[slot].as_ref().map(|d| d.name.clone()).unwrap_or_default();
            hvlog!(
                "domain {id} ({name}) crashed: its device {}",
                if interrupt { "sent an interrupt it was not given" } else { "made a DMA access outside its memory" }
            );
            self.end_domain(slot, hv_abi::end::FAULT, IOMMU_FAULT_DETAIL);
        }
    }

    /// How many devices have a context (for the boot and scenario lines).
    pub fn iommu_devices(&self) -> Option<usize> {
        self.iommu.as_ref().map(|i| i.attached.len())
    }
}

/// `end_detail` of a driver domain ended for its device's DMA fault (not an exception vector).
pub const IOMMU_FAULT_DETAIL: u32 = 0x100;
