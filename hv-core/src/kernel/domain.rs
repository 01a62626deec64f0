//! Domains and their lifecycle: creation from a bundle image, ending (releasing everything a
//! domain holds), reaping. What a live domain holds in other concepts (grant pins, ports, the
//! run queue) is handled by those concepts' files: `grant_table`, `event_channel`, `sched`.
use super::{Hv, console, time};
use crate::arch::paging::{self, AddressSpace};
use crate::arch::{TrapFrame, cpu};
use crate::console::DomainConsole;
use crate::elf;
use crate::frames::FRAME_SIZE;
use crate::grant_table::MapTrack;
use crate::hvlog;
use crate::user_memory::{Region, UserMap};
use alloc::boxed::Box;
use alloc::string::String;
use hv_abi::{
    DOMAIN_BASE, IMAGE_OFFSET, PAGE_SIZE, SHARED_INFO_OFFSET, STACK_SIZE, START_INFO_MAGIC, STORE_RING_OFFSET,
};
use hv_abi::{DomId, Error, StartInfo, virq};

/// What `create_domain` needs.
pub struct Spec<'a> {
    pub name: &'a str,
    pub image: &'a str,
    pub memory_mib: u32,
    pub args: &'a [u8],
    pub privileged: bool,
    /// Build it paused (it runs only after `unpause`).
    pub paused: bool,
    /// The id it must get (`None`: the next free one).
    pub domid: Option<DomId>,
}

pub struct Domain {
    pub id: DomId,
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
    pub console: DomainConsole,
    /// The grant table the domain registered: physical address and entry count.
    pub grant_table: Option<(u64, u32)>,
    /// The domain's grant mappings (its mapping window).
    pub maps: MapTrack,
    /// A private frame that revoked grant mappings point at, so a mapper whose granter died
    /// keeps running (reads garbage of its own, never freed memory).
    pub scratch: u64,
    /// The HVM part of an HVM domain (`None`: a paravirtual domain).
    pub hvm: Option<Box<super::hvm::Hvm>>,
}

impl Live {
    /// Host-physical address of the domain's store ring page.
    pub fn store_ring_phys(&self) -> u64 {
        match &self.hvm {
            Some(h) => self.ram + h.store_gfn * PAGE_SIZE,
            None => self.ram + STORE_RING_OFFSET,
        }
    }
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
    /// Pages of RAM.
    pub fn pages(&self) -> u32 {
        (self.memory_bytes / PAGE_SIZE) as u32
    }
}

impl Hv {
    pub fn slot_of(&self, domid: DomId) -> Option<usize> {
        self.domains.iter().position(|d| d.as_ref().is_some_and(|d| d.id == domid))
    }

    /// Checks a new domain's name, memory and argument length, and finds its id and slot.
    pub(super) fn new_domain_id(
        &self,
        name: &str,
        memory_mib: u32,
        args_len: usize,
        want: Option<DomId>,
    ) -> Result<(DomId, usize), Error> {
        if name.is_empty()
            || name.len() > hv_abi::NAME_LEN
            || name.bytes().any(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(Error::Inval);
        }
        if memory_mib == 0 || memory_mib > hv_abi::MAX_DOMAIN_MEMORY_MIB || args_len > hv_abi::ARGS_LEN {
            return Err(Error::Inval);
        }
        if self.domains.iter().flatten().any(|d| d.name == name) {
            return Err(Error::Exist);
        }
        let taken = |i: DomId| self.domains.iter().flatten().any(|d| d.id == i);
        let id = match want {
            // A required id must be free (its old holder ended and was reaped).
            Some(i) if taken(i) => return Err(Error::Exist),
            Some(i) => i,
            // 16-bit ids below DOMID_SELF, wrapping around past those still held (dead records
            // too).
            None => crate::domain_id::allocate(self.next_domid, taken).ok_or(Error::NoSpc)?,
        };
        let slot = self.domains.iter().position(Option::is_none).ok_or(Error::NoSpc)?;
        Ok((id, slot))
    }

    /// Creates a domain from a bundle image; it becomes runnable at once.
    pub fn create_domain(&mut self, spec: &Spec<'_>) -> Result<DomId, Error> {
        let create_tsc = cpu::rdtsc();
        let (id, slot) = self.new_domain_id(spec.name, spec.memory_mib, spec.args.len(), spec.domid)?;
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
        // The scratch page stands in for revoked grant mappings, writable ones included: a
        // previous owner may have left data in it (zeroed on release too, see `end_domain`).
        paging::zero_phys(scratch, PAGE_SIZE);

        if spec.domid.is_none() {
            self.next_domid = crate::domain_id::following(id);
        }
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
            abi_version: hv_abi::ABI_VERSION,
            _pad: 0,
        };
        paging::copy_to_phys(ram, bytemuck::bytes_of(&si));

        // Entered as if called with the start_info address: rsp + 8 is 16-byte aligned at
        // function entry.
        let ctx = TrapFrame::user_entry(img.entry, DOMAIN_BASE + mem - 8, DOMAIN_BASE);
        let table_frames = aspace.table_frames();
        let live = Live {
            aspace,
            ram,
            umap,
            ctx,
            console: DomainConsole::new(time::now_ns()),
            grant_table: None,
            maps: MapTrack::default(),
            scratch,
            hvm: None,
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
        let d_cpu_ns = d.cpu_ns;
        live.console.finish(|o| console::domain_output(&name, o));
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
        let devices_gone = self.release_pci(id);
        let frames = (memory_bytes / FRAME_SIZE) as usize;
        let mut tables = live.aspace.table_frames();
        live.aspace.free(&mut self.frames);
        if let Some(h) = live.hvm.take() {
            super::hvm::run::forget_fpu(slot);
            let e = h.exits;
            hvlog!(
                "domain {id} ({name}) VM exits: {} in {} ms of CPU ({} hypercalls, {} I/O, {} MSR, {} CPUID, {} HLT, {} host interrupts, {} nested page faults)",
                e.total,
                d_cpu_ns / 1_000_000,
                e.hypercalls,
                e.io,
                e.msr,
                e.cpuid,
                e.hlt,
                e.intr,
                e.npf
            );
            let by_nr = e.by_hypercall.iter().enumerate().filter(|(_, n)| **n > 0);
            let mut line = alloc::string::String::new();
            for (nr, n) in by_nr {
                let _ = core::fmt::Write::write_fmt(&mut line, format_args!(" {nr}:{n}"));
            }
            if !line.is_empty() {
                hvlog!("domain {id} ({name}) hypercalls by number:{line}");
            }
            tables += h.npt.table_frames();
            h.free(&mut self.frames);
        }
        if devices_gone {
            paging::zero_phys(live.ram, memory_bytes);
            self.frames.free(live.ram, frames);
        } else {
            // A device may still reach it through an IOMMU that did not confirm the teardown:
            // the memory is never handed to anyone else.
            hvlog!(
                "domain {id} ({name}): {} KiB kept out of use (its devices may still reach it)",
                memory_bytes / 1024
            );
        }
        // It showed revoked mappings, writable ones included: whatever the domain wrote there
        // must not reach the frame's next owner.
        paging::zero_phys(live.scratch, PAGE_SIZE);
        self.frames.free(live.scratch, 1);
        hvlog!(
            "domain {id} ({name}) released {} KiB and {tables} table frames{}; {} frames free",
            if devices_gone { memory_bytes / 1024 } else { 0 },
            if revoked > 0 { alloc::format!(", revoked {revoked} mappings of its grants") } else { String::new() },
            self.frames.free_frames()
        );
        if privileged {
            hvlog!("dom0 has ended: nothing is left to manage the system; powering off");
            super::power_off(2);
        }
        self.notify_dom0();
    }

    /// Removes a dead domain's record (its id may come back after the ids wrap around: see
    /// `crate::domain_id`).
    pub fn reap(&mut self, slot: usize) {
        if let Some(Domain { life: Life::Dead { .. }, .. }) = &self.domains[slot] {
            self.domains[slot] = None;
        }
    }

    pub(super) fn notify_dom0(&mut self) {
        if let Some(id) = self.dom0_id() {
            self.raise_virq(id, virq::DOM_EXC);
        }
    }

    /// The live privileged domain, if any.
    pub fn dom0_id(&self) -> Option<DomId> {
        self.domains.iter().flatten().find(|d| d.privileged && d.live().is_some()).map(|d| d.id)
    }
}
