//! Domains: creation from a bundle image, teardown, and the context switch between them.
use super::{HV, Hv, time};
use crate::arch::gdt::{USER_CS, USER_DS};
use crate::arch::paging::{self, AddressSpace};
use crate::arch::{TrapFrame, apic, cpu, trap};
use crate::console::LineBuffer;
use crate::elf;
use crate::frames::FRAME_SIZE;
use crate::grant_table::MapTrack;
use crate::hvlog;
use crate::user_memory::{Region, UserMap};
use alloc::boxed::Box;
use alloc::string::String;
use core::sync::atomic::Ordering;
use hv_abi::{
    DOMAIN_BASE, IMAGE_OFFSET, PAGE_SIZE, SHARED_INFO_OFFSET, STACK_SIZE, START_INFO_MAGIC, STORE_RING_OFFSET,
};
use hv_abi::{Error, SharedInfo, StartInfo, gtf, virq};

/// Map-track `gref` marking the store page mapped by `store_connect` (not a grant: no pins).
pub const STORE_PAGE_GREF: u32 = u32::MAX;

/// Longest console output waits for the UART while the CPU is busy.
const CONSOLE_FLUSH_NS: u64 = 1_000_000;

/// What `create_domain` needs.
pub struct Spec<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub memory_mib: u32,
    pub args: &'a [u8],
    pub privileged: bool,
    /// Build it paused (it runs only after `unpause`).
    pub paused: bool,
}

pub struct Domain {
    pub id: u32,
    pub name: String,
    pub privileged: bool,
    pub memory_bytes: u64,
    pub cpu_ns: u64,
    pub life: Life,
    /// The last bytes of its console output (`domctl console_read`); kept until reaped.
    pub history: crate::byte_ring::History,
}

pub enum Life {
    Alive(Box<Live>),
    /// Ended; resources released. Kept until Dom0 reaps it with `domctl destroy`.
    Dead {
        end: u32,
        detail: u32,
    },
}

pub struct Live {
    pub aspace: AddressSpace,
    pub ram: u64,
    pub umap: UserMap,
    /// Saved registers while not running.
    pub ctx: TrapFrame,
    pub console: LineBuffer,
    /// The grant table the domain registered: physical address and entry count.
    pub grant_table: Option<(u64, u32)>,
    /// The domain's grant mappings (its mapping window).
    pub maps: MapTrack,
    /// A private frame that revoked grant mappings point at, so a mapper whose granter died
    /// keeps running (reads garbage of its own, never freed memory).
    pub scratch: u64,
}

impl Domain {
    pub fn live(&self) -> Option<&Live> {
        match &self.life {
            Life::Alive(l) => Some(l),
            Life::Dead { .. } => None,
        }
    }
    pub fn live_mut(&mut self) -> Option<&mut Live> {
        match &mut self.life {
            Life::Alive(l) => Some(l),
            Life::Dead { .. } => None,
        }
    }
    fn shared_info(&self) -> Option<&'static SharedInfo> {
        let l = self.live()?;
        // SAFETY: the shared_info page is domain RAM owned by this live domain; SharedInfo is
        // atomics only, valid for any bit pattern, and the domain may change them concurrently.
        Some(unsafe { &*(paging::phys_to_virt(l.ram + SHARED_INFO_OFFSET) as *const SharedInfo) })
    }

    /// Pages of RAM.
    pub fn pages(&self) -> u32 {
        (self.memory_bytes / PAGE_SIZE) as u32
    }
}

impl Hv {
    pub fn slot_of(&self, domid: u32) -> Option<usize> {
        self.domains.iter().position(|d| d.as_ref().is_some_and(|d| d.id == domid))
    }

    /// Creates a domain from a bundle image; it becomes runnable at once.
    pub fn create_domain(&mut self, spec: &Spec<'_>) -> Result<u32, Error> {
        let create_tsc = cpu::rdtsc();
        if spec.name.is_empty()
            || spec.name.len() > hv_abi::NAME_LEN
            || spec.name.bytes().any(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(Error::Inval);
        }
        if spec.memory_mib == 0 || spec.memory_mib > hv_abi::MAX_DOMAIN_MEMORY_MIB || spec.args.len() > hv_abi::ARGS_LEN
        {
            return Err(Error::Inval);
        }
        if self.domains.iter().flatten().any(|d| d.name == spec.name) {
            return Err(Error::Exist);
        }
        // Grant entries carry 16-bit domids below DOMID_SELF; ids are never reused.
        if self.next_domid as u64 >= hv_abi::DOMID_SELF {
            return Err(Error::NoSpc);
        }
        let slot = self.domains.iter().position(Option::is_none).ok_or(Error::NoSpc)?;
        let image = self.bundle.image(spec.image).ok_or(Error::NoEnt)?;
        let mem = spec.memory_mib as u64 * 1024 * 1024;
        let stack_bottom = DOMAIN_BASE + mem - STACK_SIZE;
        let heap_end = stack_bottom - PAGE_SIZE; // guard page below the stack
        let img = elf::parse(image, DOMAIN_BASE + IMAGE_OFFSET, heap_end).map_err(|e| {
            hvlog!("create {}: image {}: {e}", spec.name, spec.image);
            Error::Inval
        })?;

        let frames = (mem / FRAME_SIZE) as usize;
        let ram = self.frames.alloc_contiguous(frames, 1).ok_or(Error::NoMem)?;
        let Some(mut aspace) = AddressSpace::new(&self.ktables, &mut self.frames) else {
            self.frames.free(ram, frames);
            return Err(Error::NoMem);
        };
        // RAM is scrubbed when a domain ends (see `end_domain`), so it never carries another
        // domain's data; here only what the domain relies on being zero is cleared: start_info,
        // shared_info, the store ring page, and the image pages (ELF .bss).
        paging::zero_phys(ram, 3 * PAGE_SIZE);
        for p in img.page_ranges() {
            paging::zero_phys(ram + (p.start - DOMAIN_BASE), p.end - p.start);
        }
        let mut umap = UserMap::new(DOMAIN_BASE, ram, mem);
        let page = |off: u64, writable: bool| Region {
            start: DOMAIN_BASE + off,
            end: DOMAIN_BASE + off + PAGE_SIZE,
            writable,
            executable: false,
        };
        let mut regions = alloc::vec![page(0, false), page(SHARED_INFO_OFFSET, true), page(STORE_RING_OFFSET, true)];
        let mut image_end = DOMAIN_BASE + IMAGE_OFFSET;
        for s in &img.segments {
            let pa = ram + (s.vaddr - DOMAIN_BASE);
            paging::copy_to_phys(pa, &image[s.file_offset as usize..(s.file_offset + s.file_size) as usize]);
        }
        for p in img.page_ranges() {
            regions.push(Region { start: p.start, end: p.end, writable: p.writable, executable: p.executable });
            image_end = image_end.max(p.end);
        }
        if image_end < heap_end {
            regions.push(Region { start: image_end, end: heap_end, writable: true, executable: false });
        }
        regions.push(Region { start: stack_bottom, end: DOMAIN_BASE + mem, writable: true, executable: false });
        let mut failure = None;
        'map: for r in &regions {
            if umap.add(*r).is_err() {
                failure = Some(Error::Inval);
                break;
            }
            let pages = (r.end - r.start) / PAGE_SIZE;
            let pa = ram + (r.start - DOMAIN_BASE);
            if aspace.map_user_range(r.start, pa, pages, r.writable, r.executable, &mut self.frames).is_none() {
                failure = Some(Error::NoMem);
                break 'map;
            }
        }
        // The grant-mapping window's tables come with the domain: mapping never needs memory,
        // and a domain's frame count does not drift as it maps and unmaps.
        if failure.is_none()
            && aspace.prepare_user_range(hv_abi::MAP_BASE, hv_abi::MAX_GRANT_MAPS as u64, &mut self.frames).is_none()
        {
            failure = Some(Error::NoMem);
        }
        let scratch = if failure.is_none() { self.frames.alloc() } else { None };
        let Some(scratch) = scratch else {
            aspace.free(&mut self.frames);
            self.frames.free(ram, frames);
            return Err(failure.unwrap_or(Error::NoMem));
        };

        let id = self.next_domid;
        self.next_domid += 1;
        // The store port: unbound, waiting for the store server (Dom0, domain 0) to connect.
        self.evtchn.add_domain(id);
        let store_port = if spec.privileged { 0 } else { self.evtchn.alloc_unbound(id, 0).unwrap_or(0) };
        let mut args = [0u8; hv_abi::ARGS_LEN];
        args[..spec.args.len()].copy_from_slice(spec.args);
        let si = StartInfo {
            magic: START_INFO_MAGIC,
            domid: id as u64,
            flags: if spec.privileged { hv_abi::flags::PRIVILEGED } else { 0 },
            memory_bytes: mem,
            heap_start: image_end,
            heap_end,
            stack_top: DOMAIN_BASE + mem,
            tsc_khz: time::tsc_khz(),
            create_tsc,
            shared_info: DOMAIN_BASE + SHARED_INFO_OFFSET,
            store_ring: DOMAIN_BASE + STORE_RING_OFFSET,
            store_port: store_port as u64,
            ram_phys: ram,
            name: hv_abi::name_to_array(spec.name),
            args,
        };
        // SAFETY: StartInfo is plain-old-data (integers and byte arrays, no padding).
        let bytes =
            unsafe { core::slice::from_raw_parts((&raw const si).cast::<u8>(), core::mem::size_of::<StartInfo>()) };
        paging::copy_to_phys(ram, bytes);

        let ctx = TrapFrame {
            rip: img.entry,
            // As if called: rsp + 8 is 16-byte aligned at function entry.
            rsp: DOMAIN_BASE + mem - 8,
            rdi: DOMAIN_BASE,
            cs: USER_CS as u64,
            ss: USER_DS as u64,
            rflags: 0x202,
            ..TrapFrame::default()
        };
        let table_frames = aspace.table_frames();
        let live = Live {
            aspace,
            ram,
            umap,
            ctx,
            console: LineBuffer::default(),
            grant_table: None,
            maps: MapTrack::default(),
            scratch,
        };
        self.domains[slot] = Some(Domain {
            id,
            name: spec.name.into(),
            privileged: spec.privileged,
            memory_bytes: mem,
            cpu_ns: 0,
            life: Life::Alive(Box::new(live)),
            history: crate::byte_ring::History::new(hv_abi::CONSOLE_HISTORY),
        });
        let build_us = time::tsc_to_ns(cpu::rdtsc() - create_tsc) / 1000;
        hvlog!(
            "domain {id} ({}) created in {build_us} us: {} MiB at {ram:#x}, {table_frames} table frames, entry {:#x}{}",
            spec.name,
            spec.memory_mib,
            img.entry,
            if spec.privileged { ", privileged" } else { "" }
        );
        // The new domain runs next: creation latency is to its first instruction.
        self.sched.add(slot, time::now_ns());
        if spec.paused {
            self.sched.set_paused(slot, true);
        } else {
            self.need_resched = true;
        }
        self.notify_dom0();
        Ok(id)
    }

    /// Ends a live domain: releases its memory, tables, grant mappings, ports and scheduler
    /// slot, keeps a dead record.
    pub fn end_domain(&mut self, slot: usize, how: u32, detail: u32) {
        let now = time::now_ns();
        self.sched.remove(slot, now);
        let Some(d) = self.domains[slot].as_mut() else { return };
        let Life::Alive(mut live) = core::mem::replace(&mut d.life, Life::Dead { end: how, detail }) else {
            d.life = Life::Dead { end: how, detail };
            return;
        };
        let (id, name, memory_bytes, privileged) = (d.id, d.name.clone(), d.memory_bytes, d.privileged);
        if !live.console.is_empty() {
            live.console.flush(&mut |l| super::log::line(&name, format_args!("{l}")));
        }
        if self.loaded_pml4 == live.aspace.pml4 {
            paging::load(self.ktables.pml4);
            self.loaded_pml4 = self.ktables.pml4;
        }
        // As a mapper: drop the pins its mappings held on other domains' grants.
        let held: alloc::vec::Vec<_> = live.maps.iter().collect();
        for (_, m) in held {
            if !m.revoked {
                self.release_pin(m.granter, m.gref, m.writable);
            }
        }
        // As a granter: every mapping of its pages elsewhere now points at the mapper's own
        // scratch page, before the pages are scrubbed and reused.
        let revoked = self.revoke_grants_of(id);
        self.pins.drop_granter(id);
        self.evtchn.remove_domain(id);
        self.release_pci(id);
        let frames = (memory_bytes / FRAME_SIZE) as usize;
        let tables = live.aspace.table_frames();
        live.aspace.free(&mut self.frames);
        paging::zero_phys(live.ram, memory_bytes);
        self.frames.free(live.ram, frames);
        self.frames.free(live.scratch, 1);
        hvlog!(
            "domain {id} ({name}) released {} KiB and {tables} table frames{}; {} frames free",
            memory_bytes / 1024,
            if revoked > 0 { alloc::format!(", revoked {revoked} mappings of its grants") } else { String::new() },
            self.frames.free_frames()
        );
        if privileged {
            hvlog!("dom0 has ended: nothing is left to manage the system; powering off");
            super::power_off(2);
        }
        self.notify_dom0();
    }

    /// Points every other domain's mappings of `granter`'s pages at that domain's scratch page.
    fn revoke_grants_of(&mut self, granter: u32) -> usize {
        let loaded = self.loaded_pml4;
        let mut n = 0;
        for d in self.domains.iter_mut().flatten() {
            let Some(l) = d.live_mut() else { continue };
            for h in l.maps.revoke_granter(granter) {
                let pml4 = l.aspace.pml4;
                l.aspace.remap_user(hv_abi::map_va(h), l.scratch, pml4 == loaded, &mut self.frames);
                n += 1;
            }
        }
        n
    }

    /// One mapping of (granter, gref) went away: update the busy bits in the granter's entry.
    pub fn release_pin(&mut self, granter: u32, gref: u32, writable: bool) {
        if gref == STORE_PAGE_GREF {
            return;
        }
        let bits = self.pins.unpin(granter, gref, writable);
        if let Some(flags) = self.slot_of(granter).and_then(|g| self.grant_flags(g, gref)) {
            flags.fetch_and(!(gtf::READING | gtf::WRITING) | bits, Ordering::SeqCst);
        }
    }

    /// The flags word of entry `gref` in a live domain's registered grant table.
    pub fn grant_flags(&self, slot: usize, gref: u32) -> Option<&'static core::sync::atomic::AtomicU16> {
        let (table, n) = self.domains[slot].as_ref()?.live()?.grant_table?;
        if gref >= n {
            return None;
        }
        // SAFETY: the table lies in the domain's own RAM (checked at registration), which stays
        // allocated while the domain lives; the flags word is 2-aligned (entries are 8 bytes in a
        // page-aligned table) and any bit pattern is a valid AtomicU16.
        Some(unsafe { &*(paging::phys_to_virt(table + gref as u64 * 8) as *const core::sync::atomic::AtomicU16) })
    }

    /// Removes a dead domain's record (its id is never reused).
    pub fn reap(&mut self, slot: usize) {
        if let Some(Domain { life: Life::Dead { .. }, .. }) = &self.domains[slot] {
            self.domains[slot] = None;
        }
    }

    /// Sets `port` of domain `dom` pending; wakes the domain if the port is unmasked and it was
    /// blocked (and asks for a reschedule if it should preempt the running domain).
    pub fn set_pending(&mut self, dom: u32, port: u32) {
        let Some(slot) = self.slot_of(dom) else { return };
        let Some(si) = self.domains[slot].as_ref().and_then(|d| d.shared_info()) else { return };
        let (word, bit) = ((port / 64) as usize, 1u64 << (port % 64));
        let Some(pending) = si.evtchn_pending.get(word) else { return };
        let was = pending.fetch_or(bit, Ordering::SeqCst);
        let masked = si.evtchn_mask[word].load(Ordering::SeqCst) & bit != 0;
        if was & bit == 0 && !masked && self.sched.is_blocked(slot) && self.sched.wake(slot, time::now_ns()) {
            self.need_resched = true;
        }
    }

    /// Raises `virq` for domain `dom` if it bound the virq to a port.
    pub fn raise_virq(&mut self, dom: u32, virq: u64) {
        if let Some(port) = self.evtchn.virq_port(dom, virq as u32) {
            self.set_pending(dom, port);
        }
    }

    /// Whether a domain has an unmasked port pending (each word read once).
    pub fn events_pending(&self, slot: usize) -> bool {
        self.domains[slot].as_ref().and_then(|d| d.shared_info()).is_some_and(|si| {
            si.evtchn_pending
                .iter()
                .zip(&si.evtchn_mask)
                .any(|(p, m)| p.load(Ordering::SeqCst) & !m.load(Ordering::SeqCst) != 0)
        })
    }

    /// Wakes the domains whose `block` deadline passed and raises their TIMER virq.
    pub fn expire_timers(&mut self, now: u64) -> usize {
        let mut woken = [0usize; hv_abi::MAX_DOMAINS];
        let mut n = 0;
        self.sched.expire(now, |slot| {
            if n < woken.len() {
                woken[n] = slot;
                n += 1;
            }
        });
        for &slot in &woken[..n] {
            if let Some(id) = self.domains[slot].as_ref().map(|d| d.id) {
                self.raise_virq(id, virq::TIMER);
            }
        }
        n
    }

    fn notify_dom0(&mut self) {
        if let Some(id) = self.dom0_id() {
            self.raise_virq(id, virq::DOM_EXC);
        }
    }

    /// The live privileged domain, if any.
    pub fn dom0_id(&self) -> Option<u32> {
        self.domains.iter().flatten().find(|d| d.privileged && d.live().is_some()).map(|d| d.id)
    }

    /// Entries marked `PERMIT_ACCESS` in a live domain's registered grant table.
    pub fn grant_entries_in_use(&self, slot: usize) -> u64 {
        let Some((_, n)) = self.domains[slot].as_ref().and_then(Domain::live).and_then(|l| l.grant_table) else {
            return 0;
        };
        (0..n)
            .filter_map(|gref| self.grant_flags(slot, gref))
            .filter(|f| f.load(Ordering::Relaxed) & gtf::TYPE_MASK == gtf::PERMIT_ACCESS)
            .count() as u64
    }

    /// Picks the first domain to run at boot and loads its address space.
    pub fn schedule_first(&mut self) -> TrapFrame {
        let slot = self.sched.pick(time::now_ns()).expect("dom0 is runnable");
        self.load_context(slot)
    }

    fn load_context(&mut self, slot: usize) -> TrapFrame {
        let live = self.domains[slot].as_ref().and_then(Domain::live).expect("scheduled domain is alive");
        if self.loaded_pml4 != live.aspace.pml4 {
            paging::load(live.aspace.pml4);
            self.loaded_pml4 = live.aspace.pml4;
        }
        let ctx = live.ctx;
        self.arm_timer();
        ctx
    }

    pub fn arm_timer(&mut self) {
        let now = time::now_ns();
        let mut deadline = self.sched.next_deadline(now);
        if super::log::pending() {
            // Console output waits at most about a millisecond, even under a CPU hog.
            let flush = self.armed_deadline.filter(|&d| d <= now + CONSOLE_FLUSH_NS).unwrap_or(now + CONSOLE_FLUSH_NS);
            deadline = Some(deadline.map_or(flush, |d| d.min(flush)));
        }
        if let Some(poll) = self.control.deadline() {
            // The control channel is polled: an idle CPU still looks at it every millisecond.
            deadline = Some(deadline.map_or(poll, |d| d.min(poll)));
        }
        // `armed_deadline` is cleared whenever the one-shot timer fires (see `trap`).
        if deadline != self.armed_deadline {
            apic::arm(deadline.map(time::ns_to_tsc_deadline));
            self.armed_deadline = deadline;
        }
    }

    fn charge(&mut self, now: u64) {
        let slot = self.sched.current();
        let ran = self.sched.account(now);
        if let Some(d) = slot.and_then(|s| self.domains[s].as_mut()) {
            d.cpu_ns += ran;
        }
    }
}

/// Decides what runs when the hypervisor returns to ring 3 and fills `frame` with it. Called at
/// the end of every trap and hypercall from a domain, with `guard` holding the state lock. If
/// nothing is runnable the CPU idles here (lock released, interrupts on) until something is.
pub fn leave(mut guard: spin::MutexGuard<'_, Option<Hv>>, frame: &mut TrapFrame) {
    let hv = guard.as_mut().expect("hypervisor initialised");
    let now = time::now_ns();
    hv.charge(now);
    hv.expire_timers(now);
    hv.poll_control(now);
    let cur = hv.sched.current();
    let keep = cur.is_some_and(|c| hv.sched.is_runnable(c)) && !hv.need_resched && !hv.sched.slice_expired(now);
    if keep {
        hv.arm_timer();
        return;
    }
    hv.need_resched = false;
    // Save the outgoing domain (if it still exists).
    if let Some(live) = cur.and_then(|c| hv.domains[c].as_mut()).and_then(Domain::live_mut) {
        live.ctx = *frame;
    }
    loop {
        let hv = guard.as_mut().expect("hypervisor initialised");
        let now = time::now_ns();
        hv.expire_timers(now);
        hv.poll_control(now);
        if let Some(next) = hv.sched.pick(now) {
            *frame = hv.load_context(next);
            return;
        }
        // Idle: nothing runnable. Sleep until the next deadline or interrupt.
        if hv.loaded_pml4 != hv.ktables.pml4 {
            paging::load(hv.ktables.pml4);
            hv.loaded_pml4 = hv.ktables.pml4;
        }
        drop(guard);
        super::log::drain();
        guard = HV.lock();
        let hv = guard.as_mut().expect("hypervisor initialised");
        if hv.expire_timers(time::now_ns()) > 0 {
            continue;
        }
        hv.arm_timer();
        drop(guard);
        trap::wait_for_interrupt();
        guard = HV.lock();
        // Whatever woke us, the one-shot timer may have fired: re-arm from scratch.
        guard.as_mut().expect("hypervisor initialised").armed_deadline = None;
    }
}
