//! HVM domains in the kernel: a guest OS on an SVM vCPU with nested paging, speaking Xen's HVM
//! guest ABI. The policy (CPUID, MSRs, ports, exit decoding, the x2APIC model, the guest page
//! walk) is `crate::hvm`; the PVH boot layout is `crate::pvh`; SVM itself is
//! `arch::x86_64::svm` and `npt`. Here: building a PVH domain (`build`), running it (`run`),
//! hypercalls (`xen`), guest memory access (`memory`), event delivery into the vCPU.
//!
//! An HVM domain is a `Live` domain like any other (same scheduler, event channels, grant
//! table, store, console, destroy path) with an [`Hvm`] part for what only it has.
pub mod build;
pub mod memory;
pub mod run;
pub mod xen;

use crate::arch::npt::NestedTables;
use crate::arch::svm::{self, Vcpu};
use crate::frames::{FRAME_SIZE, FrameAllocator};
use crate::hvm::{msr::MsrState, x2apic::X2Apic};

/// Nested table frames an HVM guest's own placements may add (each placement far from the
/// others needs up to three; nine pages can be placed).
pub const EXTRA_TABLE_FRAMES: usize = 32;

/// Grant-table frames every HVM domain gets (v1 entries: 512 per frame).
pub const GRANT_FRAMES: u32 = (hv_abi::MAX_GRANT_ENTRIES / 512) as u32;

/// What only an HVM domain has.
pub struct Hvm {
    pub vcpu: Vcpu,
    pub npt: NestedTables,
    pub msr: MsrState,
    pub apic: X2Apic,
    /// Xen's shared_info page (a hypervisor frame; mapped into the guest where it asks).
    pub shared_info: u64,
    /// Where the guest mapped shared_info (guest frame number), once it has.
    pub shared_info_gfn: Option<u64>,
    /// Host-physical address of the vcpu_info in use: inside shared_info until the guest
    /// registers its own (`VCPUOP_register_vcpu_info`).
    pub vcpu_info: u64,
    pub vcpu_info_registered: bool,
    /// The grant table: `GRANT_FRAMES` contiguous hypervisor frames.
    pub grant_frames: u64,
    /// Which guest frames the grant frames are mapped at (`XENMAPSPACE_grant_table`).
    pub grant_gfns: [Option<u64>; GRANT_FRAMES as usize],
    /// The single-shot timer's deadline (system time, ns).
    pub timer: Option<u64>,
    /// The callback vector (`HVM_PARAM_CALLBACK_IRQ` of type vector).
    pub callback_vector: Option<u8>,
    /// The vector put in V_IRQ at the last entry and whether it came from the x2APIC model.
    pub virq: Option<(u8, bool)>,
    /// Special pages in the reserved hole (guest frame numbers) and their ports.
    pub console_gfn: u64,
    pub console_port: u32,
    pub store_gfn: u64,
    pub store_port: u32,
    /// How the guest's RAM begins: guest frame 0 is `Live::ram`.
    pub ram_pages: u64,
    /// Nested table frames the RAM mapping took at creation: the pages the guest places itself
    /// (shared_info, grant frames, anywhere below 64 GiB) may add at most
    /// [`EXTRA_TABLE_FRAMES`] more, so moving them around cannot eat the hypervisor's memory.
    pub base_table_frames: usize,
    /// What made the vCPU exit, counted (reported when the domain ends).
    pub exits: ExitCounts,
}

/// Exit counters, for `xl` and the benchmarks.
#[derive(Debug, Clone, Copy)]
pub struct ExitCounts {
    pub total: u64,
    pub hypercalls: u64,
    pub io: u64,
    pub msr: u64,
    pub cpuid: u64,
    pub hlt: u64,
    pub intr: u64,
    pub npf: u64,
    /// Hypercalls by number (Xen's numbers are below 48; others only count in `hypercalls`).
    pub by_hypercall: [u32; 48],
}

impl Default for ExitCounts {
    fn default() -> Self {
        Self { total: 0, hypercalls: 0, io: 0, msr: 0, cpuid: 0, hlt: 0, intr: 0, npf: 0, by_hypercall: [0; 48] }
    }
}

impl Hvm {
    /// The guest-physical → host-physical translation of a guest frame that is ordinary RAM
    /// of this domain (not a page the hypervisor placed there).
    pub fn ram_frame(&self, ram: u64, gfn: u64) -> Option<u64> {
        let hpa = ram + gfn.checked_mul(FRAME_SIZE)?;
        (gfn < self.ram_pages && self.npt.translate(gfn * FRAME_SIZE) == Some(hpa)).then_some(hpa)
    }

    /// Returns every frame this part holds (not the domain's RAM).
    pub fn free(self, frames: &mut FrameAllocator) {
        let Hvm { vcpu, npt, shared_info, grant_frames, .. } = self;
        vcpu.free(frames);
        npt.free(frames);
        crate::arch::paging::zero_phys(shared_info, FRAME_SIZE);
        frames.free(shared_info, 1);
        crate::arch::paging::zero_phys(grant_frames, GRANT_FRAMES as u64 * FRAME_SIZE);
        frames.free(grant_frames, GRANT_FRAMES as usize);
    }
}

/// The SVM host state (enabled once at boot when the CPU has SVM).
pub static SVM: spin::Once<Result<svm::Host, &'static str>> = spin::Once::new();

/// Enables SVM at boot; HVM domains are refused later if this failed (with the reason).
pub fn init(frames: &mut FrameAllocator) {
    SVM.call_once(|| svm::Host::enable(frames, crate::hvm::msr::permission_map));
}

pub fn host() -> Result<&'static svm::Host, &'static str> {
    match SVM.get() {
        Some(Ok(h)) => Ok(h),
        Some(Err(e)) => Err(e),
        None => Err("SVM not initialised"),
    }
}
