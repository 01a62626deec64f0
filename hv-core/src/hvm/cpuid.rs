//! The CPUID policy of an HVM guest: the processor a Linux PVH DomU is told it runs on.
//!
//! The guest sees an AMD processor (vendor `AuthenticAMD`: Linux's Xen code then issues
//! `vmmcall`, which SVM intercepts, instead of `vmcall`, which faults) with one thread, an
//! x2APIC that is already on, the Xen hypervisor leaves at `0x4000_0000`, and only the features
//! the hypervisor either does not need to touch or actually emulates. Family, model, stepping,
//! address sizes, the brand string and cache descriptions come from the host.
//!
//! # What is hidden and why
//!
//! | Feature (leaf.register bit) | Why it is hidden |
//! |---|---|
//! | MONITOR/MWAIT (1.ECX 3), MWAITX (8000_0001.ECX 29) | idle must be HLT, which exits; MWAIT would spin inside the guest |
//! | XSAVE, OSXSAVE, AVX, FMA, F16C (1.ECX 26, 27, 28, 12, 29), AVX2/AVX-512 (7.EBX), XOP/FMA4 (8000_0001.ECX 11, 16), leaf 0xD | XCR0 and the extended state are not switched; the world switch saves only the FXSAVE area |
//! | PCID (1.ECX 17), INVPCID (7.EBX 10) | kept simple: no PCID-tagged TLB behaviour to reason about |
//! | TSC-deadline (1.ECX 24) | the local APIC timer is not implemented (Linux uses Xen's timer) |
//! | PDCM, DTES64, DS-CPL, DS, TM, TM2, EST, xTPR, PBE, SS (1.ECX/EDX), leaf 6, leaf 0xA, PerfCtr*/IBS/PerfTsc (8000_0001.ECX) | no performance counters, debug store, thermal or power management MSRs |
//! | VMX, SMX (1.ECX 5, 6), SVM (8000_0001.ECX 2), leaf 8000_000A, SKINIT (8000_0001.ECX 12) | no nested virtualisation |
//! | MCE, MCA (1.EDX 7, 14) | no machine-check MSRs are emulated |
//! | MTRR (1.EDX 12) | no MTRR MSRs are emulated (TCG ignores memory types anyway) |
//! | ACPI thermal (1.EDX 22), PSN (1.EDX 18), HTT (1.EDX 28), CmpLegacy (8000_0001.ECX 1), TOPOEXT (8000_0001.ECX 22) | one thread, one core; topology comes from leaf 0xB |
//! | TSC_ADJUST (7.EBX 1), RDTSCP (8000_0001.EDX 27), RDPID (7.ECX 22) | TSC_ADJUST and TSC_AUX are not emulated (and QEMU 7.2 misreports an RDTSCP exit as RDTSC) |
//! | PKU/OSPKE, LA57, UMIP, and everything else in 7.ECX, 7.EDX | protection keys and 5-level paging are not supported by the page walker; 7.EDX holds the speculation-control MSRs (IBRS, STIBP, SSBD, ARCH_CAPABILITIES, MD_CLEAR), which are not emulated |
//! | HLE, RTM, MPX, SGX, PT, PQM/PQE (7.EBX) | transactional memory, bound tables, enclaves, tracing and QoS MSRs are not emulated |
//! | 1 GiB pages (8000_0001.EDX 26) | off to be safe; Linux does not need them |
//! | FFXSR (8000_0001.EDX 25), LWP, WDT, TCE, OSVW, ExtApicSpace, AltMovCr8 (8000_0001.ECX) | their MSRs or EFER bits are not emulated |
//! | Everything in 8000_0008.EBX (CLZERO, WBNOINVD, IBPB, ...), cores in 8000_0008.ECX | speculation-control MSRs are not emulated; one core |
//! | SME/SEV (leaf 8000_001F) | Linux probes SEV with MSRs that would fault before its IDT exists |
//!
//! Leaves above the reported maximum (basic `0xD`, extended at most `0x8000_0008`) read as
//! zeros, as do Xen's leaves beyond `0x4000_0005` and the `0x4000_0100` range.

/// The per-guest values CPUID reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuidConfig {
    /// The guest's TSC frequency in kHz (Xen time leaf, `0x4000_0003`).
    pub tsc_khz: u64,
    /// The vCPU's x2APIC id (leaf 1 EBX bits 31:24, leaf 0xB EDX).
    pub apic_id: u32,
    /// The Xen vCPU id (leaf `0x4000_0004` EBX).
    pub vcpu_id: u32,
}

/// The highest basic leaf the guest is told about.
pub const MAX_BASIC_LEAF: u32 = 0xD;
/// The highest extended leaf the guest is told about (lower if the host has fewer).
pub const MAX_EXTENDED_LEAF: u32 = 0x8000_0008;
/// First Xen leaf.
pub const XEN_BASE: u32 = 0x4000_0000;
/// The last Xen leaf (`XEN_BASE + 5`).
pub const XEN_MAX_LEAF: u32 = XEN_BASE + 5;
/// Xen version reported in `XEN_BASE + 1`: 4.17.
pub const XEN_VERSION: u32 = (4 << 16) | 17;
/// The MSR that installs the Xen hypercall page (`XEN_BASE + 2` EBX).
pub const XEN_HYPERCALL_MSR: u32 = 0x4000_0000;
/// `XEN_BASE + 4` EAX: the vCPU id is present in EBX.
pub const XEN_HVM_CPUID_VCPU_ID_PRESENT: u32 = 1 << 3;
/// `XEN_BASE + 3` subleaf 0 EBX: TSC mode "never emulate" (RDTSC is not intercepted).
pub const XEN_TSC_MODE_NEVER_EMULATE: u32 = 2;

/// "AuthenticAMD" as leaf 0 EBX, EDX, ECX.
const AMD_EBX: u32 = u32::from_le_bytes(*b"Auth");
const AMD_EDX: u32 = u32::from_le_bytes(*b"enti");
const AMD_ECX: u32 = u32::from_le_bytes(*b"cAMD");
/// "XenVMMXenVMM" as EBX, ECX, EDX.
const XEN_EBX: u32 = u32::from_le_bytes(*b"XenV");
const XEN_ECX: u32 = u32::from_le_bytes(*b"MMXe");
const XEN_EDX: u32 = u32::from_le_bytes(*b"nVMM");

const fn bits(list: &[u32]) -> u32 {
    let mut m = 0;
    let mut i = 0;
    while i < list.len() {
        m |= 1 << list[i];
        i += 1;
    }
    m
}

/// Leaf 1 ECX kept from the host: SSE3, PCLMULQDQ, SSSE3, CX16, SSE4.1, SSE4.2, MOVBE, POPCNT,
/// AES, RDRAND.
const LEAF1_ECX_KEEP: u32 = bits(&[0, 1, 9, 13, 19, 20, 22, 23, 25, 30]);
/// Leaf 1 ECX forced on: x2APIC (21), hypervisor present (31).
const LEAF1_ECX_SET: u32 = bits(&[21, 31]);
/// Leaf 1 EDX kept from the host: FPU, VME, DE, PSE, TSC, MSR, PAE, CX8, SEP, PGE, CMOV, PAT,
/// PSE36, CLFLUSH, MMX, FXSR, SSE, SSE2.
const LEAF1_EDX_KEEP: u32 = bits(&[0, 1, 2, 3, 4, 5, 6, 8, 11, 13, 15, 16, 17, 19, 23, 24, 25, 26]);
/// Leaf 1 EDX forced on: APIC (9).
const LEAF1_EDX_SET: u32 = bits(&[9]);
/// Leaf 7 EBX kept from the host: FSGSBASE, BMI1, SMEP, BMI2, ERMS, RDSEED, ADX, SMAP,
/// CLFLUSHOPT, CLWB, SHA.
const LEAF7_EBX_KEEP: u32 = bits(&[0, 3, 7, 8, 9, 18, 19, 20, 23, 24, 29]);
/// 0x8000_0001 ECX kept: LAHF/SAHF, ABM, SSE4A, MisAlignSse, 3DNowPrefetch, TBM.
const EXT1_ECX_KEEP: u32 = bits(&[0, 5, 6, 7, 8, 21]);
/// 0x8000_0001 EDX kept: the leaf-1 mirrors that are kept, SYSCALL, NX, MmxExt, LM.
const EXT1_EDX_KEEP: u32 = bits(&[0, 1, 2, 3, 4, 5, 6, 8, 11, 13, 15, 16, 17, 20, 22, 23, 24, 29]);
/// 0x8000_0007 EDX kept: invariant TSC.
const EXT7_EDX_KEEP: u32 = bits(&[8]);

/// The guest's CPUID result `[eax, ebx, ecx, edx]` for `leaf`/`subleaf`, computed from the
/// host's answer (`host(leaf, subleaf)`, only consulted for leaves the host reports) and `cfg`.
pub fn cpuid(leaf: u32, subleaf: u32, host: &dyn Fn(u32, u32) -> [u32; 4], cfg: &CpuidConfig) -> [u32; 4] {
    match leaf {
        0..=0x3FFF_FFFF => basic(leaf, subleaf, host, cfg),
        XEN_BASE..=0x4FFF_FFFF => xen(leaf, subleaf, cfg),
        0x8000_0000..=0x8FFF_FFFF => extended(leaf, host),
        _ => [0; 4],
    }
}

/// The host's answer, or zeros if the host does not report `leaf`.
fn host_leaf(leaf: u32, subleaf: u32, host: &dyn Fn(u32, u32) -> [u32; 4]) -> [u32; 4] {
    let max = host(leaf & 0x8000_0000, 0)[0];
    if leaf <= max { host(leaf, subleaf) } else { [0; 4] }
}

fn basic(leaf: u32, subleaf: u32, host: &dyn Fn(u32, u32) -> [u32; 4], cfg: &CpuidConfig) -> [u32; 4] {
    match leaf {
        0 => [MAX_BASIC_LEAF, AMD_EBX, AMD_ECX, AMD_EDX],
        1 => {
            let [eax, ebx, ecx, edx] = host_leaf(1, 0, host);
            // EBX: brand index 0, CLFLUSH line size from the host, one logical CPU, APIC id.
            let ebx = (ebx & 0xFF00) | (1 << 16) | ((cfg.apic_id & 0xFF) << 24);
            let ecx = (ecx & LEAF1_ECX_KEEP) | LEAF1_ECX_SET;
            let edx = (edx & LEAF1_EDX_KEEP) | LEAF1_EDX_SET;
            [eax, ebx, ecx, edx]
        }
        7 if subleaf == 0 => {
            let [_, ebx, _, _] = host_leaf(7, 0, host);
            [0, ebx & LEAF7_EBX_KEEP, 0, 0]
        }
        0xB => topology(subleaf, cfg),
        // 2-6, 8-0xA, 0xC, 0xD, leaf 7 subleaves > 0: cache descriptors, MONITOR, power
        // management, PMU, XSAVE state: nothing to report.
        _ => [0; 4],
    }
}

/// Leaf 0xB: one thread in one core; EDX is the x2APIC id on every subleaf.
fn topology(subleaf: u32, cfg: &CpuidConfig) -> [u32; 4] {
    let level_type = match subleaf {
        0 => 1, // SMT
        1 => 2, // core
        _ => 0, // invalid: end of the list
    };
    let count = if level_type == 0 { 0 } else { 1 };
    [0, count, (level_type << 8) | (subleaf & 0xFF), cfg.apic_id]
}

fn xen(leaf: u32, subleaf: u32, cfg: &CpuidConfig) -> [u32; 4] {
    match leaf - XEN_BASE {
        0 => [XEN_MAX_LEAF, XEN_EBX, XEN_ECX, XEN_EDX],
        1 => [XEN_VERSION, 0, 0, 0],
        // One hypercall page, installed through MSR 0x4000_0000; no feature flags.
        2 => [1, XEN_HYPERCALL_MSR, 0, 0],
        3 => {
            let khz = u32::try_from(cfg.tsc_khz).unwrap_or(u32::MAX);
            match subleaf {
                // Flags 0 (not emulated, reliability not promised, no RDTSCP), mode, frequency,
                // incarnation 0 (never migrated).
                0 => [0, XEN_TSC_MODE_NEVER_EMULATE, khz, 0],
                // Subleaf 1 (offset and tsc->ns scale) is not provided: Linux takes its time
                // from the pvclock data in vcpu_info.
                2 => [khz, 0, 0, 0],
                _ => [0; 4],
            }
        }
        // Only VCPU_ID_PRESENT. Not UPCALL_VECTOR: that makes Linux ask for a per-vCPU upcall
        // vector delivered through the local APIC (needing an EOI per event); this hypervisor
        // raises the global callback vector with V_IRQ instead. Not X2APIC_VIRT or
        // APIC_ACCESS_VIRT: they claim the APIC is virtualised in hardware without exits, which
        // is false here (every x2APIC access is an MSR exit). Not EXT_DEST_ID: there is no
        // I/O APIC or MSI.
        4 if subleaf == 0 => [XEN_HVM_CPUID_VCPU_ID_PRESENT, cfg.vcpu_id, 0, 0],
        _ => [0; 4],
    }
}

fn extended(leaf: u32, host: &dyn Fn(u32, u32) -> [u32; 4]) -> [u32; 4] {
    let max = host(0x8000_0000, 0)[0].min(MAX_EXTENDED_LEAF);
    if max < 0x8000_0000 || leaf > max {
        return [0; 4];
    }
    match leaf {
        0x8000_0000 => [max, AMD_EBX, AMD_ECX, AMD_EDX],
        0x8000_0001 => {
            let [eax, _, ecx, edx] = host(leaf, 0);
            [eax, 0, ecx & EXT1_ECX_KEEP, edx & EXT1_EDX_KEEP]
        }
        // Brand string, L1 and L2/L3 cache and TLB descriptions.
        0x8000_0002..=0x8000_0006 => host(leaf, 0),
        0x8000_0007 => [0, 0, 0, host(leaf, 0)[3] & EXT7_EDX_KEEP],
        // Physical, linear and guest-physical address sizes; nothing else.
        0x8000_0008 => [host(leaf, 0)[0] & 0x00FF_FFFF, 0, 0, 0],
        _ => [0; 4],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: CpuidConfig = CpuidConfig { tsc_khz: 2_500_000, apic_id: 0, vcpu_id: 0 };

    /// A host that reports every bit set in every leaf, up to 0x1F and 0x8000_0021.
    fn all_ones(leaf: u32, _sub: u32) -> [u32; 4] {
        match leaf {
            0 => [0x1F, 0, 0, 0],
            0x8000_0000 => [0x8000_0021, 0, 0, 0],
            _ => [u32::MAX; 4],
        }
    }

    fn q(leaf: u32, sub: u32) -> [u32; 4] {
        cpuid(leaf, sub, &all_ones, &CFG)
    }

    fn bit(v: u32, b: u32) -> bool {
        v & (1 << b) != 0
    }

    #[test]
    fn vendor_is_amd_in_both_vendor_leaves() {
        let [max, b, c, d] = q(0, 0);
        assert_eq!(max, MAX_BASIC_LEAF);
        let mut s = [0u8; 12];
        s[..4].copy_from_slice(&b.to_le_bytes());
        s[4..8].copy_from_slice(&d.to_le_bytes());
        s[8..].copy_from_slice(&c.to_le_bytes());
        assert_eq!(&s, b"AuthenticAMD");
        let [emax, b2, c2, d2] = q(0x8000_0000, 0);
        assert_eq!(emax, MAX_EXTENDED_LEAF);
        assert_eq!([b2, c2, d2], [b, c, d]);
    }

    #[test]
    fn xen_signature_and_leaves() {
        let [max, b, c, d] = q(XEN_BASE, 0);
        assert_eq!(max, 0x4000_0005);
        let mut s = [0u8; 12];
        s[..4].copy_from_slice(&b.to_le_bytes());
        s[4..8].copy_from_slice(&c.to_le_bytes());
        s[8..].copy_from_slice(&d.to_le_bytes());
        assert_eq!(&s, b"XenVMMXenVMM");
        assert_eq!(q(XEN_BASE + 1, 0), [0x0004_0011, 0, 0, 0]);
        assert_eq!(q(XEN_BASE + 2, 0), [1, 0x4000_0000, 0, 0]);
        assert_eq!(q(XEN_BASE + 3, 0), [0, 2, 2_500_000, 0]);
        assert_eq!(q(XEN_BASE + 3, 1), [0; 4]);
        assert_eq!(q(XEN_BASE + 3, 2), [2_500_000, 0, 0, 0]);
        assert_eq!(q(XEN_BASE + 4, 0), [1 << 3, 0, 0, 0]);
        let cfg = CpuidConfig { vcpu_id: 3, ..CFG };
        assert_eq!(cpuid(XEN_BASE + 4, 0, &all_ones, &cfg)[1], 3);
        assert_eq!(q(XEN_BASE + 5, 0), [0; 4]);
        assert_eq!(q(XEN_BASE + 6, 0), [0; 4]);
        assert_eq!(q(0x4000_0100, 0), [0; 4]);
        assert_eq!(q(0x4000_0101, 0), [0; 4]);
    }

    #[test]
    fn leaf1_required_bits_are_set_even_if_the_host_lacks_them() {
        let none = |leaf: u32, _| if leaf == 0 { [1, 0, 0, 0] } else { [0; 4] };
        let [_, ebx, ecx, edx] = cpuid(1, 0, &none, &CFG);
        assert!(bit(ecx, 31), "hypervisor");
        assert!(bit(ecx, 21), "x2APIC");
        assert!(bit(edx, 9), "APIC");
        assert_eq!(ebx >> 16 & 0xFF, 1, "one logical CPU");
    }

    #[test]
    fn leaf1_apic_id_and_kept_bits() {
        let cfg = CpuidConfig { apic_id: 5, ..CFG };
        let [eax, ebx, ecx, edx] = cpuid(1, 0, &all_ones, &cfg);
        assert_eq!(eax, u32::MAX, "signature from the host");
        assert_eq!(ebx >> 24, 5);
        assert_eq!(ebx & 0xFF, 0);
        for b in [0, 9, 13, 19, 20, 23] {
            assert!(bit(ecx, b), "ECX {b} kept");
        }
        for b in [0, 3, 4, 5, 6, 8, 11, 13, 15, 16, 19, 23, 24, 25, 26] {
            assert!(bit(edx, b), "EDX {b} kept");
        }
    }

    #[test]
    fn leaf1_hidden_bits() {
        let [_, _, ecx, edx] = q(1, 0);
        // MONITOR, VMX, SMX, EST, TM2, FMA, PDCM, PCID, TSC-deadline, XSAVE, OSXSAVE, AVX, F16C
        for b in [3, 5, 6, 7, 8, 12, 15, 17, 24, 26, 27, 28, 29] {
            assert!(!bit(ecx, b), "ECX {b} hidden");
        }
        // MCE, MTRR, MCA, DS, ACPI, HTT, TM
        for b in [7, 12, 14, 21, 22, 28, 29] {
            assert!(!bit(edx, b), "EDX {b} hidden");
        }
    }

    #[test]
    fn pmu_power_and_xsave_leaves_are_zero() {
        for leaf in [2, 3, 4, 5, 6, 8, 9, 0xA, 0xC, 0xD] {
            assert_eq!(q(leaf, 0), [0; 4], "leaf {leaf:#x}");
        }
        assert_eq!(q(0xD, 1), [0; 4]);
    }

    #[test]
    fn leaf7_keeps_only_harmless_bits() {
        let [eax, ebx, ecx, edx] = q(7, 0);
        assert_eq!(eax, 0, "no further subleaves");
        for b in [0, 3, 7, 8, 9, 18, 19, 20, 23] {
            assert!(bit(ebx, b), "EBX {b} kept");
        }
        // TSC_ADJUST, SGX, HLE, AVX2, INVPCID, RTM, MPX, AVX512F, PT
        for b in [1, 2, 4, 5, 10, 11, 14, 16, 25, 30, 31] {
            assert!(!bit(ebx, b), "EBX {b} hidden");
        }
        assert_eq!(ecx, 0, "PKU, LA57, RDPID, ... hidden");
        assert_eq!(edx, 0, "speculation control hidden");
        assert_eq!(q(7, 1), [0; 4]);
    }

    #[test]
    fn topology_is_one_thread_one_core() {
        let cfg = CpuidConfig { apic_id: 7, ..CFG };
        let t = |s| cpuid(0xB, s, &all_ones, &cfg);
        assert_eq!(t(0), [0, 1, 0x100, 7]);
        assert_eq!(t(1), [0, 1, 0x201, 7]);
        assert_eq!(t(2), [0, 0, 2, 7]);
    }

    #[test]
    fn basic_leaves_above_max_are_zero() {
        assert_eq!(q(0xE, 0), [0; 4]);
        assert_eq!(q(0x1F, 0), [0; 4]);
        assert_eq!(q(0x3FFF_FFFF, 0), [0; 4]);
    }

    #[test]
    fn extended_leaves() {
        let [_, ebx, ecx, edx] = q(0x8000_0001, 0);
        assert_eq!(ebx, 0);
        for b in [0, 5, 6] {
            assert!(bit(ecx, b), "ECX {b} kept");
        }
        // CmpLegacy, SVM, ExtApicSpace, OSVW, IBS, SKINIT, WDT, LWP, TCE, TOPOEXT, PerfCtr*, MWAITX
        for b in [1, 2, 3, 9, 10, 12, 13, 15, 17, 22, 23, 24, 27, 28, 29] {
            assert!(!bit(ecx, b), "ECX {b} hidden");
        }
        for b in [11, 20, 29] {
            assert!(bit(edx, b), "EDX {b} (SYSCALL, NX, LM) kept");
        }
        for b in [7, 12, 14, 25, 26, 27] {
            assert!(!bit(edx, b), "EDX {b} hidden");
        }
        assert_eq!(q(0x8000_0007, 0), [0, 0, 0, 1 << 8]);
        assert_eq!(q(0x8000_0008, 0), [0x00FF_FFFF, 0, 0, 0]);
        assert_eq!(q(0x8000_0002, 0), [u32::MAX; 4], "brand string from the host");
        assert_eq!(q(0x8000_000A, 0), [0; 4], "SVM");
        assert_eq!(q(0x8000_001F, 0), [0; 4], "SEV");
        assert_eq!(q(0x8000_0009, 0), [0; 4]);
        assert_eq!(q(0xC000_0000, 0), [0; 4]);
    }

    #[test]
    fn extended_max_clamped_to_host() {
        let small = |leaf: u32, _| match leaf {
            0 => [1, 0, 0, 0],
            0x8000_0000 => [0x8000_0001, 0, 0, 0],
            _ => [u32::MAX; 4],
        };
        assert_eq!(cpuid(0x8000_0000, 0, &small, &CFG)[0], 0x8000_0001);
        assert_eq!(cpuid(0x8000_0008, 0, &small, &CFG), [0; 4]);
        // A host whose basic max is 1 has no leaf 7: zeros, not whatever it returns.
        assert_eq!(cpuid(7, 0, &small, &CFG), [0; 4]);
    }

    #[test]
    fn huge_tsc_khz_saturates() {
        let cfg = CpuidConfig { tsc_khz: u64::MAX, ..CFG };
        assert_eq!(cpuid(XEN_BASE + 3, 0, &all_ones, &cfg)[2], u32::MAX);
    }
}
