//! Intel VT-d remapping hardware: one unit's registers (spec §10.4), reached uncached through
//! the direct map (units sit in 3–4 GiB on every platform we boot; QEMU's at 0xfed90000), and the
//! ACPI tables that lead to it. Invalidation is register-based until the invalidation queue is
//! turned on (interrupt remapping needs it), then queued only. A new fault raises the fault
//! event interrupt (a compatibility-format message the unit sends itself, never remapped);
//! faults are also polled. Every `unsafe` MMIO access is in `read`/`write` below.

use super::paging::{self, phys_to_virt};
use crate::iommu::entries::FaultRecord;
use crate::iommu::queue::{self, Descriptor};
use crate::iommu::{interrupts, sdt};
use alloc::vec::Vec;
use core::cell::Cell;

const VER: u64 = 0x00;
const CAP: u64 = 0x08;
const ECAP: u64 = 0x10;
const GCMD: u64 = 0x18;
const GSTS: u64 = 0x1c;
const RTADDR: u64 = 0x20;
const CCMD: u64 = 0x28;
const FSTS: u64 = 0x34;
const FECTL: u64 = 0x38;
const FEDATA: u64 = 0x3c;
const FEADDR: u64 = 0x40;
const FEUADDR: u64 = 0x44;
const IQH: u64 = 0x80;
const IQT: u64 = 0x88;
const IQA: u64 = 0x90;
const IRTA: u64 = 0xb8;

/// Global command/status bits.
const TE: u32 = 1 << 31;
const SRTP: u32 = 1 << 30;
const WBF: u32 = 1 << 27;
const QIE: u32 = 1 << 26;
const IRE: u32 = 1 << 25;
const SIRTP: u32 = 1 << 24;
/// Compatibility-format interrupts allowed: never set by the hypervisor, and cleared by every
/// command it issues, so such interrupts are blocked while remapping is on.
const CFI: u32 = 1 << 23;
/// GSTS bits that are one-shot commands, not state: masked off before a GCMD write (§10.4.4).
const ONE_SHOT: u32 = SRTP | (1 << 29) | WBF | SIRTP;

/// FSTS.IQE: the unit refused a descriptor of the invalidation queue.
const IQE: u32 = 1 << 4;

/// The farthest a register can lie from the base: IOTLB registers at ECAP.IRO·16 + 8 and
/// fault records at CAP.FRO·16 + 16·CAP.NFR (10-bit offsets in 16-byte units, up to 256
/// records), rounded up to pages.
const REGISTER_SPAN: u64 = 0x6000;

/// Polls of a status bit before the unit is declared stuck (each a few hundred ns of MMIO).
const SPIN_LIMIT: u32 = 10_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VtdError {
    /// The unit's register page lies outside the uncached 3–4 GiB window of the direct map.
    RegistersUnreachable(u64),
    /// A command the unit did not complete (its status bit never changed).
    Stuck(&'static str),
    /// The unit refused a descriptor of the invalidation queue (FSTS.IQE).
    QueueError,
}

impl core::fmt::Display for VtdError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::RegistersUnreachable(a) => write!(f, "registers at {a:#x} are outside 3-4 GiB (not mapped uncached)"),
            Self::Stuck(what) => write!(f, "the unit did not complete {what}"),
            Self::QueueError => write!(f, "the unit refused an invalidation descriptor"),
        }
    }
}

/// The invalidation queue of a unit: its page, a status word the unit writes when a batch is
/// done, and where the next descriptor goes.
#[derive(Debug)]
struct Queue {
    page: u64,
    status: u64,
    next: Cell<usize>,
    sequence: Cell<u32>,
}

/// One remapping unit.
#[derive(Debug)]
pub struct Unit {
    pub base: u64,
    pub version: u32,
    pub cap: u64,
    pub ecap: u64,
    queue: Option<Queue>,
}

impl Unit {
    /// Reads a unit's capabilities. `base` is its DRHD register base (page-aligned).
    pub fn probe(base: u64) -> Result<Self, VtdError> {
        if !(0xc000_0000..0x1_0000_0000 - REGISTER_SPAN).contains(&base) {
            return Err(VtdError::RegistersUnreachable(base));
        }
        let mut u = Self { base, version: 0, cap: 0, ecap: 0, queue: None };
        u.version = u.read32(VER);
        u.cap = u.read64(CAP);
        u.ecap = u.read64(ECAP);
        Ok(u)
    }

    fn reg(&self, off: u64) -> u64 {
        phys_to_virt(self.base + off)
    }

    fn read32(&self, off: u64) -> u32 {
        // SAFETY: `base` is a DRHD register page in 3–4 GiB with REGISTER_SPAN bytes after it
        // below 4 GiB (checked in `probe`), all of which the direct map covers uncached; every
        // offset used is inside the unit's register set (fixed offsets below 0x100, IOTLB and
        // fault registers at offsets the unit reports in CAP/ECAP, within REGISTER_SPAN).
        unsafe { (self.reg(off) as *const u32).read_volatile() }
    }
    fn read64(&self, off: u64) -> u64 {
        // SAFETY: as in `read32`; 64-bit registers are 8-byte aligned.
        unsafe { (self.reg(off) as *const u64).read_volatile() }
    }
    fn write32(&self, off: u64, v: u32) {
        // SAFETY: as in `read32`.
        unsafe { (self.reg(off) as *mut u32).write_volatile(v) }
    }
    fn write64(&self, off: u64, v: u64) {
        // SAFETY: as in `read64`.
        unsafe { (self.reg(off) as *mut u64).write_volatile(v) }
    }

    /// CAP.SAGAW: the second-level walk depths supported (bit 1: 3 levels, bit 2: 4 levels).
    pub fn sagaw(&self) -> u8 {
        ((self.cap >> 8) & 0x1f) as u8
    }
    /// CAP.ND: how many domain ids (2^(4 + 2·ND)).
    pub fn domain_ids(&self) -> u32 {
        1 << (4 + 2 * (self.cap & 7).min(6))
    }
    /// ECAP.C: the unit snoops its page walks (else table writes must be flushed from caches).
    pub fn coherent(&self) -> bool {
        self.ecap & 1 != 0
    }
    /// CAP.CM: caching mode (not-present entries may be cached: invalidate after every change).
    pub fn caching_mode(&self) -> bool {
        self.cap & (1 << 7) != 0
    }
    /// ECAP.QI and ECAP.IR: queued invalidation and interrupt remapping (which needs it).
    pub fn can_remap_interrupts(&self) -> bool {
        self.ecap & 0b1010 == 0b1010
    }
    fn iotlb_reg(&self) -> u64 {
        ((self.ecap >> 8) & 0x3ff) * 16 + 8
    }
    fn fault_regs(&self) -> (u64, u32) {
        (((self.cap >> 24) & 0x3ff) * 16, ((self.cap >> 40) & 0xff) as u32 + 1)
    }

    fn wait(&self, what: &'static str, done: impl Fn(&Self) -> bool) -> Result<(), VtdError> {
        for _ in 0..SPIN_LIMIT {
            if done(self) {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(VtdError::Stuck(what))
    }

    /// A one-shot global command: `bit` set in GCMD on top of the persistent state, then wait
    /// until GSTS says `until`.
    fn command(&self, bit: u32, what: &'static str, until: impl Fn(u32) -> bool) -> Result<(), VtdError> {
        let sts = self.read32(GSTS) & !ONE_SHOT & !CFI;
        self.write32(GCMD, sts | bit);
        self.wait(what, |u| until(u.read32(GSTS)))
    }

    /// Points the unit at a root table (legacy mode) and latches it.
    pub fn set_root_table(&self, root: u64) -> Result<(), VtdError> {
        self.write64(RTADDR, root & crate::iommu::entries::ADDR);
        self.command(SRTP, "setting the root table pointer", |s| s & SRTP != 0)
    }

    /// Drains the unit's write buffer where it has one (CAP.RWBF).
    pub fn flush_write_buffer(&self) -> Result<(), VtdError> {
        if self.cap & (1 << 4) == 0 {
            return Ok(());
        }
        self.command(WBF, "a write-buffer flush", |s| s & WBF == 0)
    }

    /// Global invalidation of the context cache, then of the IOTLB (§6.5: after context entries
    /// change), and of the interrupt entry cache where interrupts are remapped. All complete
    /// before this returns: afterwards no device reaches what the old entries mapped.
    pub fn invalidate_all(&self) -> Result<(), VtdError> {
        if self.queue.is_some() {
            return self.submit(&[
                queue::context_cache_global(),
                queue::iotlb_global(),
                queue::interrupt_entries_global(),
            ]);
        }
        self.flush_write_buffer()?;
        // CCMD: ICC (63), CIRG = 01 global (61-62).
        self.write64(CCMD, 1 << 63 | 1 << 61);
        self.wait("a context-cache invalidation", |u| u.read64(CCMD) & (1 << 63) == 0)?;
        // IOTLB: IVT (63), IIRG = 01 global (60-61), drain reads (49) and writes (48).
        let r = self.iotlb_reg();
        self.write64(r, 1 << 63 | 1 << 60 | 1 << 49 | 1 << 48);
        self.wait("an IOTLB invalidation", |u| u.read64(r) & (1 << 63) == 0)
    }

    /// Invalidates the interrupt entry cache (after an interrupt remapping entry changed).
    pub fn invalidate_interrupt_entries(&self) -> Result<(), VtdError> {
        match self.queue {
            Some(_) => self.submit(&[queue::interrupt_entries_global()]),
            None => Ok(()),
        }
    }

    /// Turns queued invalidation on with the queue in `page` and its status word in `status`
    /// (both zeroed frames the hypervisor owns). From here on every invalidation is queued.
    pub fn enable_queued_invalidation(&mut self, page: u64, status: u64) -> Result<(), VtdError> {
        self.write64(IQT, 0);
        self.write64(IQA, queue::iqa(page));
        self.command(QIE, "enabling queued invalidation", |s| s & QIE != 0)?;
        self.queue = Some(Queue { page, status, next: Cell::new(0), sequence: Cell::new(0) });
        Ok(())
    }

    /// Queues `descriptors` and a wait descriptor behind them, and returns once the unit has
    /// written the wait's status word (every descriptor done) or refused one.
    fn submit(&self, descriptors: &[Descriptor]) -> Result<(), VtdError> {
        let Some(q) = &self.queue else { return Ok(()) };
        let seq = q.sequence.get().wrapping_add(1).max(1);
        q.sequence.set(seq);
        let put = |d: Descriptor| {
            let i = q.next.get();
            paging::set_entry(q.page, 2 * i, d[0]);
            paging::set_entry(q.page, 2 * i + 1, d[1]);
            self.flush_tables(q.page + 16 * i as u64, 16);
            q.next.set((i + 1) % queue::DESCRIPTORS);
        };
        for d in descriptors {
            put(*d);
        }
        put(queue::wait(q.status, seq));
        // The descriptors are in memory before the tail moves.
        core::sync::atomic::fence(core::sync::atomic::Ordering::SeqCst);
        self.write64(IQT, queue::tail(q.next.get()));
        let done = self
            .wait("a queued invalidation", |u| paging::entry(q.status, 0) as u32 == seq || u.read32(FSTS) & IQE != 0);
        if self.read32(FSTS) & IQE != 0 {
            // Skip past the refused descriptor: the head stays on it until IQE is cleared.
            self.write32(FSTS, IQE);
            let head = self.read64(IQH);
            self.write64(IQT, head);
            q.next.set(((head >> 4) as usize) % queue::DESCRIPTORS);
            return Err(VtdError::QueueError);
        }
        done
    }

    /// Points the unit at an interrupt remapping table of [`interrupts::ENTRIES`] entries at
    /// `table` and turns remapping on (compatibility-format interrupts stay blocked: CFI is
    /// never set). Needs the invalidation queue.
    pub fn enable_interrupt_remapping(&self, table: u64) -> Result<(), VtdError> {
        self.write64(IRTA, interrupts::irta(table));
        self.command(SIRTP, "setting the interrupt remapping table", |s| s & SIRTP != 0)?;
        self.invalidate_interrupt_entries()?;
        self.command(IRE, "enabling interrupt remapping", |s| s & IRE != 0)
    }

    /// Has the unit raise `vector` on the boot CPU when it records a fault (FECTL.IM cleared).
    pub fn enable_fault_interrupt(&self, vector: u8) {
        self.write32(FEDATA, vector as u32);
        self.write32(FEADDR, 0xfee0_0000);
        self.write32(FEUADDR, 0);
        self.write32(FECTL, 0);
    }

    /// Whether compatibility-format interrupts pass (GSTS.CFIS), for the boot line.
    pub fn compatibility_interrupts_pass(&self) -> bool {
        self.read32(GSTS) & CFI != 0
    }

    pub fn enable_translation(&self) -> Result<(), VtdError> {
        self.command(TE, "enabling translation", |s| s & TE != 0)
    }

    pub fn translation_enabled(&self) -> bool {
        self.read32(GSTS) & TE != 0
    }

    /// Takes every recorded primary fault (clearing each record and the overflow flag).
    /// Returns the records and whether faults were lost to overflow.
    pub fn take_faults(&self) -> (Vec<FaultRecord>, bool) {
        let mut out = Vec::new();
        let fsts = self.read32(FSTS);
        // PPF (bit 1): some record holds a fault; PFO (bit 0): faults were dropped.
        if fsts & 3 == 0 {
            return (out, false);
        }
        let (at, n) = self.fault_regs();
        let first = (fsts >> 8) & 0xff;
        for k in 0..n {
            let off = at + ((first + k) % n) as u64 * 16;
            let (lo, hi) = (self.read64(off), self.read64(off + 8));
            let Some(f) = FaultRecord::decode(lo, hi) else { continue };
            // F (bit 127) is write-one-to-clear.
            self.write64(off + 8, 1 << 63);
            out.push(f);
        }
        // Clear PFO and the other write-one-to-clear status bits we may have caused.
        self.write32(FSTS, fsts & 0x7d);
        (out, fsts & 1 != 0)
    }

    /// Writes back the cache lines of `[pa, pa + len)` when the unit's walks do not snoop.
    pub fn flush_tables(&self, pa: u64, len: u64) {
        if self.coherent() {
            return;
        }
        let mut line = pa & !63;
        while line < pa + len {
            // SAFETY: `pa..pa + len` is a table frame the hypervisor owns, covered by the direct
            // map; clflush only writes the line back.
            unsafe { core::arch::asm!("clflush [{}]", in(reg) phys_to_virt(line), options(nostack, preserves_flags)) };
            line += 64;
        }
        // SAFETY: a fence orders the flushes before the MMIO that follows.
        unsafe { core::arch::asm!("mfence", options(nostack, preserves_flags)) };
    }
}

/// Reads one ACPI table at physical `pa` (below 4 GiB, which the direct map covers), bounded
/// by [`sdt::MAX_TABLE_LEN`]. `None` if its header is unreadable or its length out of bounds.
pub fn read_acpi_table(pa: u64) -> Option<Vec<u8>> {
    let in_reach = |len: u64| pa.checked_add(len).is_some_and(|end| end <= 1 << 32);
    if !in_reach(sdt::HEADER_LEN as u64) {
        return None;
    }
    let mut head = [0u8; sdt::HEADER_LEN];
    read_firmware(pa, &mut head);
    let len = sdt::table_len(&head).ok()? as u64;
    if !in_reach(len) {
        return None;
    }
    let mut t = alloc::vec![0u8; len as usize];
    read_firmware(pa, &mut t);
    Some(t)
}

fn read_firmware(pa: u64, dst: &mut [u8]) {
    for (i, b) in dst.iter_mut().enumerate() {
        // SAFETY: the caller checked `pa..pa + dst.len()` lies below 4 GiB, all of which the
        // direct map covers (uncached above 3 GiB); byte reads of firmware memory.
        *b = unsafe { (phys_to_virt(pa + i as u64) as *const u8).read_volatile() };
    }
}

/// Reads an entry of a table frame (used by the second-level table builder).
pub fn table_read(table: u64, index: usize) -> u64 {
    paging::entry(table, index)
}

/// Writes an entry of a table frame.
pub fn table_write(table: u64, index: usize, value: u64) {
    paging::set_entry(table, index, value)
}
