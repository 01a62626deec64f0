//! The hypervisor proper: boot sequence, global state, domains, hypercalls, traps.
//!
//! Each concept with host-tested logic in `crate::<name>` has its kernel glue (hypercalls, the
//! state it applies that logic to) in `kernel::<name>` of the same name: `console`,
//! `event_channel`, `grant_table`, `pci`, `sched`, `user_memory`. `hypercall` decodes and routes
//! every hypercall, `domctl` is Dom0's management call, `domain` the lifecycle. x86 details
//! (registers, descriptor tables, page tables, devices) stay behind `crate::arch`.
pub mod console;
pub mod control;
pub mod domain;
pub mod domctl;
pub mod event_channel;
pub mod grant_table;
pub mod hvm;
pub mod hypercall;
pub mod iommu;
pub mod pci;
pub mod sched;
pub mod time;
pub mod trap;
pub mod user_memory;

use crate::arch::{self, apic, boot_info, cpu, gdt, paging, percpu, serial};
use crate::frames::FrameAllocator;
use crate::hvlog;
use crate::sched::Scheduler;
use alloc::vec::Vec;
use domain::Domain;
use spin::Mutex;

/// Everything the hypervisor knows, behind one lock. The hypervisor runs with interrupts off and
/// (today) on one CPU; the lock is never held across `hlt`.
pub struct Hv {
    pub frames: FrameAllocator,
    pub ktables: paging::KernelTables,
    pub sched: Scheduler,
    /// Slot-indexed; a slot's number is also its scheduler id.
    pub domains: Vec<Option<Domain>>,
    /// Where the search for the next domain id starts (`crate::domain_id`).
    pub next_domid: hv_abi::DomId,
    pub bundle: hv_bundle::Bundle<'static>,
    /// The PML4 currently in CR3.
    pub loaded_pml4: u64,
    /// Set when the running domain must give up the CPU at the next exit to ring 3.
    pub need_resched: bool,
    /// The deadline the APIC timer is armed for (ns), to skip redundant re-arming.
    pub armed_deadline: Option<u64>,
    pub evtchn: crate::event_channel::EventChannels,
    /// Pin counts of mapped grants (which busy bits each granter's entry must carry).
    pub pins: crate::grant_table::Pins,
    /// PCI endpoints found at boot, and who owns them.
    pub pci: alloc::vec::Vec<pci::PciDevice>,
    /// The host control channel (COM2), for Dom0.
    pub control: control::Channel,
    /// The VT-d remapping hardware, when ACPI's DMAR names one (translation on).
    pub iommu: Option<iommu::Iommu>,
}

pub static HV: Mutex<Option<Hv>> = Mutex::new(None);

const HEAP_SIZE: usize = 4 << 20;
/// Physical memory the hypervisor manages (the frame bitmap for 64 GiB is 2 MiB of heap).
const MAX_PHYS: u64 = 64 << 30;
static mut HEAP: [u8; HEAP_SIZE] = [0; HEAP_SIZE];

#[global_allocator]
static ALLOCATOR: talc::TalcLock<spin::Mutex<()>, talc::source::Claim> =
    // SAFETY: HEAP is used by nothing but the allocator.
    talc::TalcLock::new(unsafe { talc::source::Claim::array(&raw mut HEAP) });

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    console::line_unlocked("hv", format_args!("PANIC: {info}"));
    serial::qemu_exit(0x7f);
    cpu::halt_forever()
}

/// Powers the machine off: under QEMU's isa-debug-exit the process exits with
/// `((0x10 + code) << 1) | 1`; elsewhere the CPU halts.
pub fn power_off(code: u8) -> ! {
    console::drain();
    serial::qemu_exit(0x10 + (code as u32 & 0xf));
    cpu::halt_forever()
}

/// Entry from `boot.S`, on the boot stack with the temporary identity map.
#[unsafe(no_mangle)]
pub extern "C" fn hv_main(magic: u32, info: u32) -> ! {
    serial::init();
    let boot = match boot_info::parse(magic, info) {
        Ok(b) => b,
        Err(e) => panic!("boot: {e}"),
    };
    let loader = match boot.loader {
        boot_info::Loader::Pvh => "pvh",
        boot_info::Loader::Multiboot2 => "multiboot2",
    };
    hvlog!("hv-core {} booted via {loader}", env!("CARGO_PKG_VERSION"));
    hvlog!("boot: {}", boot.summary());
    let features = cpu::features();

    // Frames: every usable range above 1 MiB, minus our image, the bundle and the boot info.
    let ram_end = boot.ram.iter().map(|r| r.1).max().unwrap_or(0);
    if ram_end > MAX_PHYS {
        hvlog!("memory above {} GiB is ignored", MAX_PHYS >> 30);
    }
    let ram_end = ram_end.min(MAX_PHYS);
    let mut frames = FrameAllocator::new(ram_end);
    for &(s, e) in &boot.ram {
        frames.add_free(s.max(1 << 20), e);
    }
    let (img_s, img_e) = paging::image_range();
    frames.reserve(img_s, img_e);
    frames.reserve(boot.info_range.0, boot.info_range.1);
    let Some((bs, be)) = boot.bundle else { panic!("no boot bundle: pass it as -initrd (PVH) or module2 (GRUB)") };
    frames.reserve(bs, be);
    hvlog!(
        "memory: {} MiB usable, {} frames free; cpu: nx={} smep={} smap={} umip={}",
        (frames.free_frames() * 4096) >> 20,
        frames.free_frames(),
        features.nx,
        features.smep,
        features.smap,
        features.umip
    );

    cpu::enable_nx(&features);
    let ktables = paging::build_kernel_tables(&mut frames, ram_end, features.nx).expect("no memory for page tables");
    hvm::init(&mut frames);
    match hvm::host() {
        Ok(h) => hvlog!(
            "svm: nested paging, {} ASIDs{}: HVM domains available",
            h.support.asids,
            if h.support.nrip_save { ", next-RIP save" } else { "" }
        ),
        Err(e) => hvlog!("svm: {e}: HVM (PVH) domains are unavailable"),
    }
    let stack_top = percpu::init_cpu0();
    gdt::init(stack_top);
    arch::trap::init();
    gdt::init_syscall(arch::trap::syscall_entry_addr());
    cpu::enable_protections(&features);
    if features.smap {
        arch::trap::enable_clac_on_entry();
    }
    cpu::disable_fpu();
    let khz = apic::init();
    time::init(khz);
    hvlog!("tsc {} MHz, local APIC timer calibrated", khz / 1000);

    // SAFETY: the bundle's frames are reserved above and never written.
    let raw = unsafe { paging::phys_slice(bs, be - bs) };
    let bundle = hv_bundle::Bundle::parse(raw).unwrap_or_else(|e| panic!("boot bundle: {e}"));
    let topology = bundle.topology().unwrap_or_else(|e| panic!("boot bundle: {e}"));
    let dom0 = topology.domains.first().expect("validated: dom0 exists").clone();
    hvlog!("bundle: topology {:?}, {} images", topology.name, bundle.index.images.len());

    let pci_devices = pci::enumerate();
    let iommu = iommu::init(boot.acpi.and_then(Result::ok), &mut frames);
    let mut hv = Hv {
        frames,
        loaded_pml4: ktables.pml4,
        ktables,
        sched: Scheduler::new(),
        domains: (0..hv_abi::MAX_DOMAINS).map(|_| None).collect(),
        next_domid: 0,
        bundle,
        need_resched: false,
        armed_deadline: None,
        evtchn: crate::event_channel::EventChannels::new(),
        pins: crate::grant_table::Pins::default(),
        pci: pci_devices,
        control: control::Channel::probe(),
        iommu,
    };
    hvlog!("control channel (COM2): {}", if hv.control.present() { "present" } else { "absent" });
    let spec = domain::Spec {
        name: &dom0.name,
        image: &dom0.image,
        memory_mib: dom0.memory_mib,
        args: dom0.args.as_bytes(),
        privileged: true,
        paused: false,
        domid: None,
    };
    if let Err(e) = hv.create_domain(&spec) {
        panic!("cannot start dom0: {}", e.name());
    }
    let frame = hv.schedule_first();
    *HV.lock() = Some(hv);
    // SAFETY: `frame` is dom0's initial ring-3 context and its address space is loaded.
    unsafe { arch::trap::enter(&frame, percpu::kernel_stack_top()) }
}
