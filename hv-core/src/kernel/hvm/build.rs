//! Building a PVH domain: the kernel's ELF loaded at its physical addresses, the initramfs as
//! module 0, `hvm_start_info` with the memory map and command line, ACPI tables, the console
//! and store ring pages in the reserved hole (`crate::pvh` plans all of it), nested page tables
//! over the RAM, and a vCPU at the PVH entry.
use super::super::domain::{Domain, Life, Live};
use super::super::{Hv, time};
use super::{GRANT_FRAMES, Hvm};
use crate::arch::TrapFrame;
use crate::arch::npt::NestedTables;
use crate::arch::paging::{self, AddressSpace};
use crate::arch::svm::Vcpu;
use crate::console::DomainConsole;
use crate::frames::FRAME_SIZE;
use crate::grant_table::MapTrack;
use crate::hvlog;
use crate::hvm::{msr::MsrState, x2apic::X2Apic};
use crate::pvh::{acpi, kernel, layout, start_info};
use crate::user_memory::UserMap;
use alloc::boxed::Box;
use hv_abi::{DOMAIN_BASE, DomId, Error};

/// What `create_pvh_domain` needs.
pub struct PvhSpec<'a> {
    pub name: &'a str,
    /// Kernel image name in the boot bundle (an ELF with a PVH entry note).
    pub kernel: &'a str,
    /// Initramfs image name in the boot bundle, if any.
    pub ramdisk: Option<&'a str>,
    pub cmdline: &'a [u8],
    pub memory_mib: u32,
    pub paused: bool,
    /// The id it must get (`None`: the next free one).
    pub domid: Option<DomId>,
}

/// Special pages in the reserved hole, in this order.
const CONSOLE_PAGE: u64 = 0;
const STORE_PAGE: u64 = 1;
const SPECIAL_PAGES: u64 = 2;

impl Hv {
    /// Creates a PVH domain (an unmodified guest OS kernel); it becomes runnable at once unless
    /// paused.
    pub fn create_pvh_domain(&mut self, spec: &PvhSpec<'_>) -> Result<DomId, Error> {
        let create_tsc = crate::arch::cpu::rdtsc();
        let host = super::host().map_err(|e| {
            hvlog!("create {}: no HVM domains on this machine: {e}", spec.name);
            Error::NoSys
        })?;
        let (id, slot) = self.new_domain_id(spec.name, spec.memory_mib, 0, spec.domid)?;
        let kernel_file = self.bundle.image(spec.kernel).ok_or(Error::NoEnt)?;
        let initrd = match spec.ramdisk {
            Some(r) => self.bundle.image(r).ok_or(Error::NoEnt)?,
            None => &[],
        };
        let mem = (spec.memory_mib as u64) << 20;
        let img = kernel::parse_pvh(kernel_file, mem).map_err(|e| {
            hvlog!("create {}: kernel {}: {e:?}", spec.name, spec.kernel);
            Error::Inval
        })?;
        let acpi_len = acpi::len(1);
        let plan = layout::plan(&layout::PlanInput {
            ram_bytes: mem,
            kernel: img.extent(),
            cmdline_len: spec.cmdline.len() as u64,
            initrd_len: initrd.len() as u64,
            acpi_len,
            special_pages: SPECIAL_PAGES,
        })
        .map_err(|e| {
            hvlog!("create {}: no room for the boot layout in {} MiB: {e:?}", spec.name, spec.memory_mib);
            Error::Inval
        })?;
        let boot_info = start_info::build_boot_info(&plan, spec.cmdline).map_err(|_| Error::Inval)?;

        // Memory: RAM (contiguous), nested tables over it, shared_info and grant frames.
        let pages = mem / FRAME_SIZE;
        let ram = self.frames.alloc_contiguous(pages as usize, 1).ok_or(Error::NoMem)?;
        let mut held: alloc::vec::Vec<(u64, usize)> = alloc::vec![(ram, pages as usize)];
        let undo = |hv: &mut Hv, held: &[(u64, usize)]| {
            for &(f, n) in held {
                hv.frames.free(f, n);
            }
        };
        let Some(mut npt) = NestedTables::new(&mut self.frames) else {
            undo(self, &held);
            return Err(Error::NoMem);
        };
        let extra = (|| {
            npt.map_range(0, ram, pages, &mut self.frames)?;
            let si = self.frames.alloc()?;
            let gt = match self.frames.alloc_contiguous(GRANT_FRAMES as usize, 1) {
                Some(g) => g,
                None => {
                    self.frames.free(si, 1);
                    return None;
                }
            };
            let scratch = match self.frames.alloc() {
                Some(s) => s,
                None => {
                    self.frames.free(si, 1);
                    self.frames.free(gt, GRANT_FRAMES as usize);
                    return None;
                }
            };
            Some((si, gt, scratch))
        })();
        let Some((shared_info, grant_frames, scratch)) = extra else {
            npt.free(&mut self.frames);
            undo(self, &held);
            return Err(Error::NoMem);
        };
        held.extend([(shared_info, 1), (grant_frames, GRANT_FRAMES as usize), (scratch, 1)]);
        let vcpu = Vcpu::new(&mut self.frames, host, slot as u32 + 1, npt.root);
        let aspace = AddressSpace::new(&self.ktables, &mut self.frames);
        let (Some(mut vcpu), Some(aspace)) = (vcpu, aspace) else {
            npt.free(&mut self.frames);
            undo(self, &held);
            return Err(Error::NoMem);
        };
        for (f, n) in [(shared_info, 1), (grant_frames, GRANT_FRAMES as u64), (scratch, 1)] {
            paging::zero_phys(f, n * FRAME_SIZE);
        }

        // Contents: kernel segments (bss zeroed), initrd, ACPI, boot info, special pages. The
        // low megabyte holds nothing else; it is RAM, zeroed (firmware-area scans find nothing).
        paging::zero_phys(ram, 1 << 20);
        for s in &img.segments {
            let file = &kernel_file[s.file_offset as usize..(s.file_offset + s.file_size) as usize];
            paging::copy_to_phys(ram + s.paddr, file);
            paging::zero_phys(ram + s.paddr + s.file_size, s.mem_size - s.file_size);
        }
        if let Some(r) = plan.initrd {
            paging::copy_to_phys(ram + r.gpa, initrd);
        }
        paging::zero_phys(ram + plan.reserved.gpa, plan.reserved.len);
        paging::copy_to_phys(ram + plan.acpi.gpa, &acpi::build(plan.acpi.gpa, 1));
        paging::copy_to_phys(ram + boot_info.gpa, &boot_info.bytes);
        let console_gfn = plan.special_page(CONSOLE_PAGE).ok_or(Error::Inval)? / FRAME_SIZE;
        let store_gfn = plan.special_page(STORE_PAGE).ok_or(Error::Inval)? / FRAME_SIZE;
        vcpu.set_pvh_entry(img.entry as u64, plan.start_info);

        if spec.domid.is_none() {
            self.next_domid = crate::domain_id::following(id);
        }
        self.evtchn.add_domain(id);
        let store_port = self.evtchn.alloc_unbound(id, 0).unwrap_or(0);
        let console_port = self.evtchn.alloc_unbound(id, id).unwrap_or(0);
        let h = Hvm {
            vcpu,
            npt,
            msr: MsrState::new(),
            apic: X2Apic::new(0),
            shared_info,
            shared_info_gfn: None,
            vcpu_info: shared_info + hv_abi::xen::vcpu_info_offset(0) as u64,
            vcpu_info_registered: false,
            grant_frames,
            grant_gfns: [None; GRANT_FRAMES as usize],
            timer: None,
            callback_vector: None,
            virq: None,
            console_gfn,
            console_port,
            store_gfn,
            store_port,
            ram_pages: pages,
            base_table_frames: 0,
            exits: Default::default(),
        };
        super::xen::write_time_info(&h);
        let table_frames = h.npt.table_frames();
        let mut h = h;
        h.base_table_frames = table_frames;
        let live = Live {
            aspace,
            ram,
            umap: UserMap::new(DOMAIN_BASE, ram, 0),
            ctx: TrapFrame::default(),
            console: DomainConsole::new(time::now_ns()),
            grant_table: Some((grant_frames, hv_abi::MAX_GRANT_ENTRIES as u32)),
            maps: MapTrack::default(),
            scratch,
            hvm: Some(Box::new(h)),
        };
        self.domains[slot] = Some(Domain {
            id,
            name: spec.name.into(),
            privileged: false,
            memory_bytes: mem,
            cpu_ns: 0,
            life: Life::Alive(Box::new(live)),
            history: crate::byte_ring::History::new(hv_abi::CONSOLE_HISTORY),
        });
        let build_us = time::tsc_to_ns(crate::arch::cpu::rdtsc() - create_tsc) / 1000;
        hvlog!(
            "domain {id} ({}) created in {build_us} us: PVH, {} MiB at {ram:#x}, kernel {} entry {:#x}, initrd {} KiB, {table_frames} nested table frames",
            spec.name,
            spec.memory_mib,
            spec.kernel,
            img.entry,
            initrd.len() / 1024,
        );
        self.sched.add(slot, time::now_ns());
        if spec.paused {
            self.sched.set_paused(slot, true);
        } else {
            self.need_resched = true;
        }
        self.notify_dom0();
        Ok(id)
    }
}
