//! The MSR policy of an HVM guest: which MSRs the guest reaches without an exit, and what an
//! intercepted RDMSR/WRMSR does.
//!
//! Everything is intercepted except the MSRs that SVM itself switches between host and guest
//! with VMLOAD/VMSAVE (the segment bases and the SYSCALL/SYSENTER MSRs; see [`passthrough`]):
//! the arch code runs VMLOAD guest / VMRUN / VMSAVE guest / VMLOAD host, so the guest's values
//! live in the VMCB. An intercepted access is answered by [`read()`] / [`write()`] with an
//! [`MsrResult`] that the arch code applies.
//!
//! | MSR | Read | Write |
//! |---|---|---|
//! | 0x10 TSC | [`MsrResult::Tsc`]: the caller returns the guest TSC | [`MsrResult::TscWrite`] |
//! | 0x1B APIC_BASE | 0xFEE0_0000, enabled, x2APIC, BSP | keep x2APIC mode or disable (both EN and EXTD clear); anything else #GP |
//! | 0x8B patch level | 0 | ignored |
//! | 0x277 PAT | the shadow | valid memory types only ([`MsrResult::PatChanged`]) |
//! | 0x800-0x8FF x2APIC | [`MsrResult::X2Apic`] while x2APIC is enabled, else #GP | same |
//! | 0x4000_0000 Xen hypercall page | #GP | page-aligned GPA: [`MsrResult::HypercallPage`] |
//! | 0xC000_0080 EFER | the guest's EFER (without SVME) | SCE, LME, NXE writable: [`MsrResult::EferChanged`] |
//! | 0xC001_0010 SYSCFG, 0xC001_001F NB_CFG, 0xC001_0055 INT_PENDING_MSG | 0 | ignored |
//! | 0xC001_0015 HWCR | TscFreqSel (bit 24) set: the TSC counts at the P0 frequency | ignored |
//! | 0xC001_1029 DE_CFG | LFENCE-serialising (bit 1) set | stored, bit 1 stays set |
//! | passthrough MSRs | [`MsrResult::Vmcb`] (only if the map was not applied) | same |
//! | anything else (TSC_AUX, MTRRs, MISC_ENABLE, machine check, speculation control, performance counters, SVM) | #GP | #GP |
//!
//! Linux survives #GP on an unknown MSR once its IDT is up (it logs an "unchecked MSR access"
//! and reads 0); before that it only touches EFER, GS_BASE and the hypercall-page MSR, and the
//! features whose MSRs fault are hidden from CPUID.

/// EFER.SCE: SYSCALL enable.
pub const EFER_SCE: u64 = 1 << 0;
/// EFER.LME: long mode enable.
pub const EFER_LME: u64 = 1 << 8;
/// EFER.LMA: long mode active (set by the processor).
pub const EFER_LMA: u64 = 1 << 10;
/// EFER.NXE: no-execute enable.
pub const EFER_NXE: u64 = 1 << 11;
/// EFER.SVME: must stay set in the VMCB, never shown to the guest.
pub const EFER_SVME: u64 = 1 << 12;

/// MSR numbers the policy knows by name.
pub mod index {
    /// Time-stamp counter.
    pub const TSC: u32 = 0x10;
    /// Local APIC base and mode.
    pub const APIC_BASE: u32 = 0x1B;
    /// Microcode patch level.
    pub const PATCH_LEVEL: u32 = 0x8B;
    /// SYSENTER code segment.
    pub const SYSENTER_CS: u32 = 0x174;
    /// SYSENTER stack pointer.
    pub const SYSENTER_ESP: u32 = 0x175;
    /// SYSENTER entry point.
    pub const SYSENTER_EIP: u32 = 0x176;
    /// Page attribute table.
    pub const PAT: u32 = 0x277;
    /// Xen's hypercall-page MSR (CPUID `0x4000_0002` EBX).
    pub const XEN_HYPERCALL_PAGE: u32 = 0x4000_0000;
    /// Extended feature enable.
    pub const EFER: u32 = 0xC000_0080;
    /// SYSCALL target segments.
    pub const STAR: u32 = 0xC000_0081;
    /// 64-bit SYSCALL target.
    pub const LSTAR: u32 = 0xC000_0082;
    /// Compatibility-mode SYSCALL target.
    pub const CSTAR: u32 = 0xC000_0083;
    /// SYSCALL RFLAGS mask.
    pub const SFMASK: u32 = 0xC000_0084;
    /// FS base.
    pub const FS_BASE: u32 = 0xC000_0100;
    /// GS base.
    pub const GS_BASE: u32 = 0xC000_0101;
    /// SWAPGS target.
    pub const KERNEL_GS_BASE: u32 = 0xC000_0102;
    /// RDTSCP/RDPID auxiliary value (hidden).
    pub const TSC_AUX: u32 = 0xC000_0103;
    /// AMD system configuration.
    pub const SYSCFG: u32 = 0xC001_0010;
    /// AMD hardware configuration.
    pub const HWCR: u32 = 0xC001_0015;
    /// AMD northbridge configuration.
    pub const NB_CFG: u32 = 0xC001_001F;
    /// AMD interrupt-pending message (C1E on family 0xF/0x10; Linux reads it when the CPU
    /// model has the E400 erratum, which QEMU's "max" family 0xF does). Reads 0: no C1E.
    pub const INT_PENDING_MSG: u32 = 0xC001_0055;
    /// AMD decode configuration.
    pub const DE_CFG: u32 = 0xC001_1029;
}

/// APIC_BASE: bootstrap processor.
pub const APIC_BASE_BSP: u64 = 1 << 8;
/// APIC_BASE: x2APIC mode.
pub const APIC_BASE_EXTD: u64 = 1 << 10;
/// APIC_BASE: APIC globally enabled.
pub const APIC_BASE_EN: u64 = 1 << 11;
/// The architectural APIC base address (never relocated here).
pub const APIC_BASE_ADDRESS: u64 = 0xFEE0_0000;
/// The PAT value after reset (WB, WT, UC-, UC, twice).
pub const PAT_RESET: u64 = 0x0007_0406_0007_0406;
/// HWCR.TscFreqSel.
pub const HWCR_TSC_FREQ_SEL: u64 = 1 << 24;
/// DE_CFG bit 1: LFENCE is dispatch-serialising.
pub const DE_CFG_LFENCE_SERIALIZE: u64 = 1 << 1;

/// What the arch code does with an intercepted RDMSR/WRMSR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsrResult {
    /// RDMSR: return this value in EDX:EAX.
    Value(u64),
    /// WRMSR: accepted; nothing else to do.
    Done,
    /// Inject #GP(0); RIP is not advanced.
    Gp,
    /// RDMSR of the TSC: return the guest's TSC (host TSC + VMCB TSC offset).
    Tsc,
    /// WRMSR of the TSC: the guest wants its TSC to read this value now (adjust the offset, or ignore it).
    TscWrite(u64),
    /// The guest asked for the Xen hypercall page at guest-physical `gpa` (page-aligned): fill
    /// it with the hypercall stubs, or inject #GP if `gpa` is not guest RAM.
    HypercallPage {
        /// Guest-physical address of the page.
        gpa: u64,
    },
    /// An x2APIC register: delegate to [`super::x2apic::X2Apic::read`] / `write` with the
    /// same MSR number (and the value, for a write).
    X2Apic(u32),
    /// EFER was written: `guest` is what the guest now reads, `vmcb` the value for the VMCB's
    /// EFER (always with SVME).
    EferChanged {
        /// The guest's view.
        guest: u64,
        /// The VMCB value.
        vmcb: u64,
    },
    /// PAT was written: copy it to the VMCB's guest PAT.
    PatChanged(u64),
    /// A passthrough MSR that was intercepted anyway: its value lives in the VMCB save area
    /// (after VMSAVE); read or write it there.
    Vmcb,
}

/// The guest's view of the MSRs the hypervisor emulates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsrState {
    efer: u64,
    pat: u64,
    apic_base: u64,
    de_cfg: u64,
    hypercall_page: Option<u64>,
}

impl Default for MsrState {
    fn default() -> Self {
        Self::new()
    }
}

impl MsrState {
    /// The state a PVH vCPU starts with: EFER 0 (the VMCB holds SVME only), PAT at its reset
    /// value, the local APIC enabled in x2APIC mode as the bootstrap processor.
    pub fn new() -> Self {
        MsrState {
            efer: 0,
            pat: PAT_RESET,
            apic_base: APIC_BASE_ADDRESS | APIC_BASE_EN | APIC_BASE_EXTD | APIC_BASE_BSP,
            de_cfg: DE_CFG_LFENCE_SERIALIZE,
            hypercall_page: None,
        }
    }

    /// The guest's EFER (never with SVME).
    pub fn efer(&self) -> u64 {
        self.efer
    }

    /// The value for the VMCB's EFER: the guest's plus SVME.
    pub fn vmcb_efer(&self) -> u64 {
        self.efer | EFER_SVME
    }

    /// Refreshes the guest's EFER from the VMCB. The processor sets and clears LMA itself when
    /// the guest toggles CR0.PG, which does not exit, so the arch code calls this after every
    /// #VMEXIT that is an MSR access (before [`read()`] or [`write()`]).
    pub fn sync_efer(&mut self, vmcb_efer: u64) {
        self.efer = vmcb_efer & !EFER_SVME;
    }

    /// The guest's PAT.
    pub fn pat(&self) -> u64 {
        self.pat
    }

    /// The guest's APIC_BASE.
    pub fn apic_base(&self) -> u64 {
        self.apic_base
    }

    /// The local APIC is enabled in x2APIC mode (its MSRs are accessible).
    pub fn x2apic_enabled(&self) -> bool {
        let m = APIC_BASE_EN | APIC_BASE_EXTD;
        self.apic_base & m == m
    }

    /// The GPA of the last hypercall page the guest asked for.
    pub fn hypercall_page(&self) -> Option<u64> {
        self.hypercall_page
    }
}

/// The MSRs the guest accesses without an exit; their guest values are loaded and saved by
/// VMLOAD/VMSAVE around VMRUN: FS_BASE, GS_BASE, KERNEL_GS_BASE, STAR, LSTAR, CSTAR, SFMASK,
/// SYSENTER_CS/ESP/EIP.
pub fn passthrough(msr: u32) -> bool {
    use index::*;
    matches!(
        msr,
        FS_BASE | GS_BASE | KERNEL_GS_BASE | STAR | LSTAR | CSTAR | SFMASK | SYSENTER_CS | SYSENTER_ESP | SYSENTER_EIP
    )
}

/// Where `msr` sits in the SVM MSR permission map: the byte and the bit within it of the read
/// intercept (the write intercept is the next bit). `None` for MSRs outside the three mapped
/// ranges (0-0x1FFF at byte 0, 0xC000_0000-0xC000_1FFF at 0x800, 0xC001_0000-0xC001_1FFF at
/// 0x1000), which are always intercepted.
pub fn map_position(msr: u32) -> Option<(usize, u32)> {
    let base_byte = match msr {
        0..=0x1FFF => 0,
        0xC000_0000..=0xC000_1FFF => 0x800,
        0xC001_0000..=0xC001_1FFF => 0x1000,
        _ => return None,
    };
    let bit = (msr & 0x1FFF) as usize * 2;
    Some((base_byte + bit / 8, (bit % 8) as u32))
}

/// Fills the 8 KiB SVM MSR permission map: every MSR intercepted on read and write except the
/// [`passthrough`] ones.
pub fn permission_map(out: &mut [u8; 8192]) {
    use index::*;
    out.fill(0xFF);
    for msr in [FS_BASE, GS_BASE, KERNEL_GS_BASE, STAR, LSTAR, CSTAR, SFMASK, SYSENTER_CS, SYSENTER_ESP, SYSENTER_EIP] {
        debug_assert!(passthrough(msr));
        if let Some((byte, bit)) = map_position(msr) {
            out[byte] &= !(0b11 << bit);
        }
    }
}

/// An intercepted RDMSR of `msr`.
pub fn read(state: &MsrState, msr: u32) -> MsrResult {
    use index::*;
    match msr {
        TSC => MsrResult::Tsc,
        APIC_BASE => MsrResult::Value(state.apic_base),
        PATCH_LEVEL | SYSCFG | NB_CFG | INT_PENDING_MSG => MsrResult::Value(0),
        PAT => MsrResult::Value(state.pat),
        0x800..=0x8FF if state.x2apic_enabled() => MsrResult::X2Apic(msr),
        EFER => MsrResult::Value(state.efer),
        HWCR => MsrResult::Value(HWCR_TSC_FREQ_SEL),
        DE_CFG => MsrResult::Value(state.de_cfg),
        m if passthrough(m) => MsrResult::Vmcb,
        _ => MsrResult::Gp,
    }
}

/// An intercepted WRMSR of `value` to `msr`; updates `state` when the write is accepted.
pub fn write(state: &mut MsrState, msr: u32, value: u64) -> MsrResult {
    use index::*;
    match msr {
        TSC => MsrResult::TscWrite(value),
        APIC_BASE => write_apic_base(state, value),
        PATCH_LEVEL | SYSCFG | NB_CFG | HWCR | INT_PENDING_MSG => MsrResult::Done,
        PAT => {
            // Each byte is a memory type: UC, WC, WT, WP, WB or UC- (0, 1, 4, 5, 6, 7).
            if value.to_le_bytes().iter().all(|&t| matches!(t, 0 | 1 | 4..=7)) {
                state.pat = value;
                MsrResult::PatChanged(value)
            } else {
                MsrResult::Gp
            }
        }
        0x800..=0x8FF if state.x2apic_enabled() => MsrResult::X2Apic(msr),
        XEN_HYPERCALL_PAGE => {
            // The low 12 bits select the page; there is only one.
            if value & 0xFFF != 0 {
                return MsrResult::Gp;
            }
            state.hypercall_page = Some(value);
            MsrResult::HypercallPage { gpa: value }
        }
        EFER => write_efer(state, value),
        DE_CFG => {
            state.de_cfg = value | DE_CFG_LFENCE_SERIALIZE;
            MsrResult::Done
        }
        m if passthrough(m) => MsrResult::Vmcb,
        _ => MsrResult::Gp,
    }
}

fn write_efer(state: &mut MsrState, value: u64) -> MsrResult {
    const WRITABLE: u64 = EFER_SCE | EFER_LME | EFER_NXE;
    if value & !(WRITABLE | EFER_LMA) != 0 {
        return MsrResult::Gp;
    }
    // LMA belongs to the processor: the written bit is ignored. Leaving long mode must go
    // through CR0.PG=0 first, so clearing LME while LMA is set faults.
    let lma = state.efer & EFER_LMA;
    if lma != 0 && value & EFER_LME == 0 {
        return MsrResult::Gp;
    }
    state.efer = (value & WRITABLE) | lma;
    MsrResult::EferChanged { guest: state.efer, vmcb: state.vmcb_efer() }
}

fn write_apic_base(state: &mut MsrState, value: u64) -> MsrResult {
    // Reserved: bits 7:0, 9, and above bit 51.
    const RESERVED: u64 = 0xFF | (1 << 9) | !((1 << 52) - 1);
    let mode = value & (APIC_BASE_EN | APIC_BASE_EXTD);
    let base = value & !(RESERVED | 0xFFF);
    // Only x2APIC mode or disabled: xAPIC mode would mean MMIO, which is not emulated, and
    // EXTD without EN is invalid. The base is not relocatable.
    let mode_ok = mode == APIC_BASE_EN | APIC_BASE_EXTD || mode == 0;
    if value & RESERVED != 0 || base != APIC_BASE_ADDRESS || !mode_ok {
        return MsrResult::Gp;
    }
    // BSP is read-only.
    state.apic_base = base | mode | (state.apic_base & APIC_BASE_BSP);
    MsrResult::Done
}

#[cfg(test)]
mod tests {
    use super::index::*;
    use super::*;

    #[test]
    fn map_positions_follow_the_apm_formula() {
        // Byte = range base + (msr - range start) * 2 / 8; read bit = ((msr - start) * 2) % 8.
        assert_eq!(map_position(0), Some((0, 0)));
        assert_eq!(map_position(3), Some((0, 6)));
        assert_eq!(map_position(0x10), Some((4, 0)));
        assert_eq!(map_position(0x174), Some((0x5D, 0)));
        assert_eq!(map_position(0x176), Some((0x5D, 4)));
        assert_eq!(map_position(0x1FFF), Some((0x7FF, 6)));
        assert_eq!(map_position(0xC000_0080), Some((0x820, 0)));
        assert_eq!(map_position(0xC000_0082), Some((0x820, 4)));
        assert_eq!(map_position(0xC000_0101), Some((0x840, 2)));
        assert_eq!(map_position(0xC001_0015), Some((0x1005, 2)));
        assert_eq!(map_position(0xC001_1FFF), Some((0x17FF, 6)));
        assert_eq!(map_position(0x2000), None);
        assert_eq!(map_position(0x4000_0000), None);
        assert_eq!(map_position(0xC000_2000), None);
        assert_eq!(map_position(0xC001_2000), None);
    }

    fn intercepted(map: &[u8; 8192], msr: u32) -> (bool, bool) {
        let (byte, bit) = map_position(msr).unwrap();
        (map[byte] >> bit & 1 != 0, map[byte] >> (bit + 1) & 1 != 0)
    }

    #[test]
    fn permission_map_intercepts_all_but_passthrough() {
        let mut map = [0u8; 8192];
        permission_map(&mut map);
        for msr in
            [FS_BASE, GS_BASE, KERNEL_GS_BASE, STAR, LSTAR, CSTAR, SFMASK, SYSENTER_CS, SYSENTER_ESP, SYSENTER_EIP]
        {
            assert!(passthrough(msr));
            assert_eq!(intercepted(&map, msr), (false, false), "{msr:#x}");
        }
        for msr in [EFER, TSC, APIC_BASE, PAT, TSC_AUX, 0x802, 0x173, 0xC000_0085, HWCR] {
            assert!(!passthrough(msr));
            assert_eq!(intercepted(&map, msr), (true, true), "{msr:#x}");
        }
        let cleared: u32 = map.iter().map(|b| b.count_zeros()).sum();
        assert_eq!(cleared, 20, "exactly ten MSRs, two bits each");
        assert!(map[0x1800..].iter().all(|&b| b == 0xFF));
    }

    #[test]
    fn initial_state() {
        let s = MsrState::new();
        assert_eq!(read(&s, APIC_BASE), MsrResult::Value(0xFEE0_0D00));
        assert!(s.x2apic_enabled());
        assert_eq!(read(&s, EFER), MsrResult::Value(0));
        assert_eq!(s.vmcb_efer(), EFER_SVME);
        assert_eq!(read(&s, PAT), MsrResult::Value(PAT_RESET));
        assert_eq!(read(&s, DE_CFG), MsrResult::Value(2));
        assert_eq!(read(&s, HWCR), MsrResult::Value(1 << 24));
        assert_eq!(read(&s, NB_CFG), MsrResult::Value(0));
        assert_eq!(read(&s, SYSCFG), MsrResult::Value(0));
        assert_eq!(read(&s, PATCH_LEVEL), MsrResult::Value(0));
        assert_eq!(read(&s, INT_PENDING_MSG), MsrResult::Value(0), "Linux reads it on family 0xF (E400)");
        assert_eq!(read(&s, TSC), MsrResult::Tsc);
        assert_eq!(s.hypercall_page(), None);
    }

    #[test]
    fn efer_keeps_svme_in_the_vmcb_only() {
        let mut s = MsrState::new();
        let r = write(&mut s, EFER, EFER_LME);
        assert_eq!(r, MsrResult::EferChanged { guest: EFER_LME, vmcb: EFER_LME | EFER_SVME });
        // The guest enables paging; the processor sets LMA in the VMCB.
        s.sync_efer(EFER_LME | EFER_LMA | EFER_SVME);
        assert_eq!(read(&s, EFER), MsrResult::Value(EFER_LME | EFER_LMA));
        let r = write(&mut s, EFER, EFER_LME | EFER_LMA | EFER_SCE | EFER_NXE);
        let all = EFER_LME | EFER_LMA | EFER_SCE | EFER_NXE;
        assert_eq!(r, MsrResult::EferChanged { guest: all, vmcb: all | EFER_SVME });
        // LMA is not writable: writing it clear keeps it.
        let r = write(&mut s, EFER, EFER_LME | EFER_NXE);
        assert_eq!(
            r,
            MsrResult::EferChanged {
                guest: EFER_LME | EFER_LMA | EFER_NXE,
                vmcb: EFER_LME | EFER_LMA | EFER_NXE | EFER_SVME
            }
        );
    }

    #[test]
    fn efer_faults() {
        let mut s = MsrState::new();
        for bad in [EFER_SVME, 1 << 1, 1 << 9, 1 << 13, 1 << 14, 1 << 15, 1 << 63] {
            assert_eq!(write(&mut s, EFER, bad), MsrResult::Gp, "{bad:#x}");
        }
        assert_eq!(s.efer(), 0, "a faulting write changes nothing");
        s.sync_efer(EFER_LME | EFER_LMA | EFER_SVME);
        assert_eq!(write(&mut s, EFER, EFER_NXE), MsrResult::Gp, "clear LME in long mode");
        assert_eq!(s.efer(), EFER_LME | EFER_LMA);
    }

    #[test]
    fn apic_base_rules() {
        let mut s = MsrState::new();
        let x2 = 0xFEE0_0C00;
        assert_eq!(write(&mut s, APIC_BASE, x2), MsrResult::Done);
        assert_eq!(s.apic_base(), 0xFEE0_0D00, "BSP is read-only");
        assert_eq!(write(&mut s, APIC_BASE, 0xFEE0_0800), MsrResult::Gp, "xAPIC");
        assert_eq!(write(&mut s, APIC_BASE, 0xFEE0_0400), MsrResult::Gp, "EXTD alone");
        assert_eq!(write(&mut s, APIC_BASE, 0xFED0_0C00), MsrResult::Gp, "relocated");
        assert_eq!(write(&mut s, APIC_BASE, x2 | 1), MsrResult::Gp, "reserved");
        assert_eq!(write(&mut s, APIC_BASE, x2 | (1 << 52)), MsrResult::Gp);
        assert_eq!(write(&mut s, APIC_BASE, 0xFEE0_0000), MsrResult::Done);
        assert!(!s.x2apic_enabled());
        assert_eq!(read(&s, 0x802), MsrResult::Gp, "x2APIC disabled");
        assert_eq!(write(&mut s, 0x80B, 0), MsrResult::Gp);
        assert_eq!(write(&mut s, APIC_BASE, x2), MsrResult::Done);
        assert_eq!(read(&s, 0x802), MsrResult::X2Apic(0x802));
        assert_eq!(write(&mut s, 0x80B, 0), MsrResult::X2Apic(0x80B));
    }

    #[test]
    fn pat_memory_types() {
        let mut s = MsrState::new();
        let v = 0x0007_0501_0007_0406;
        assert_eq!(write(&mut s, PAT, v), MsrResult::PatChanged(v));
        assert_eq!(s.pat(), v);
        assert_eq!(write(&mut s, PAT, 0x02), MsrResult::Gp);
        assert_eq!(write(&mut s, PAT, 0x08 << 56), MsrResult::Gp);
        assert_eq!(s.pat(), v);
    }

    #[test]
    fn hypercall_page() {
        let mut s = MsrState::new();
        assert_eq!(write(&mut s, XEN_HYPERCALL_PAGE, 0x12_3000), MsrResult::HypercallPage { gpa: 0x12_3000 });
        assert_eq!(s.hypercall_page(), Some(0x12_3000));
        assert_eq!(write(&mut s, XEN_HYPERCALL_PAGE, 0x12_3001), MsrResult::Gp);
        assert_eq!(read(&s, XEN_HYPERCALL_PAGE), MsrResult::Gp);
        assert_eq!(write(&mut s, 0x4000_0001, 0), MsrResult::Gp);
    }

    #[test]
    fn amd_configuration_msrs() {
        let mut s = MsrState::new();
        assert_eq!(write(&mut s, DE_CFG, 0x10), MsrResult::Done);
        assert_eq!(read(&s, DE_CFG), MsrResult::Value(0x12));
        assert_eq!(write(&mut s, HWCR, 0), MsrResult::Done);
        assert_eq!(read(&s, HWCR), MsrResult::Value(1 << 24));
        assert_eq!(write(&mut s, TSC, 42), MsrResult::TscWrite(42));
    }

    #[test]
    fn unknown_and_hidden_msrs_fault() {
        let mut s = MsrState::new();
        // TSC_AUX, MTRRcap, MISC_ENABLE, SPEC_CTRL, MCG_CAP, PERF_CTL0, VM_CR, VM_HSAVE_PA
        for msr in [TSC_AUX, 0xFE, 0x1A0, 0x48, 0x179, 0xC001_0000, 0xC001_0114, 0xC001_0117, 0xFFFF_FFFF] {
            assert_eq!(read(&s, msr), MsrResult::Gp, "read {msr:#x}");
            assert_eq!(write(&mut s, msr, 0), MsrResult::Gp, "write {msr:#x}");
        }
    }

    #[test]
    fn passthrough_msrs_live_in_the_vmcb() {
        let mut s = MsrState::new();
        assert_eq!(read(&s, GS_BASE), MsrResult::Vmcb);
        assert_eq!(write(&mut s, LSTAR, 1), MsrResult::Vmcb);
    }
}
