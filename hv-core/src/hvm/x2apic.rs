//! A minimal local x2APIC for a one-vCPU guest, reached only through RDMSR/WRMSR of MSRs
//! 0x800-0x8FF (the guest starts in x2APIC mode, so it never touches the xAPIC page).
//!
//! What it models: the interrupt request and in-service registers (256 bits each), the task
//! and processor priorities, EOI, self-IPIs (through ICR or the SELF_IPI register), the error
//! status register, and storage for the spurious-vector register and the local vector table.
//!
//! What it does not: the **APIC timer** (the registers hold what the guest writes, the current
//! count reads 0 and nothing ever fires; Linux as a Xen guest takes its clock events from Xen's
//! single-shot timer), level-triggered interrupts (TMR reads 0), NMI/INIT/SIPI/SMI IPIs and IPIs
//! to other CPUs (there is one CPU; they are dropped), and EOI-broadcast suppression (not
//! offered in VERSION). Reserved bits in the LVT, ICR and divide registers are dropped rather
//! than faulted.
//!
//! Delivery is the caller's job: it asks [`X2Apic::pending`] for the vector to inject, and once
//! the guest takes it calls [`X2Apic::acknowledge`].

/// The guest's access faults: the caller injects #GP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gp;

/// First MSR of the x2APIC range.
pub const MSR_FIRST: u32 = 0x800;
/// Last MSR of the x2APIC range.
pub const MSR_LAST: u32 = 0x8FF;

const ID: u32 = 0x802;
const VERSION: u32 = 0x803;
const TPR: u32 = 0x808;
const PPR: u32 = 0x80A;
const EOI: u32 = 0x80B;
const LDR: u32 = 0x80D;
const SVR: u32 = 0x80F;
const ISR0: u32 = 0x810;
const TMR0: u32 = 0x818;
const IRR0: u32 = 0x820;
const ESR: u32 = 0x828;
const LVT_CMCI: u32 = 0x82F;
const ICR: u32 = 0x830;
const LVT_TIMER: u32 = 0x832;
const LVT_ERROR: u32 = 0x837;
const TIMER_INITIAL: u32 = 0x838;
const TIMER_CURRENT: u32 = 0x839;
const TIMER_DIVIDE: u32 = 0x83E;
const SELF_IPI: u32 = 0x83F;

/// VERSION: version 0x14, six LVT entries (max LVT index 5), no EOI-broadcast suppression.
pub const VERSION_VALUE: u32 = 0x0005_0014;
/// SVR bit 8: the APIC is software-enabled.
pub const SVR_ENABLE: u32 = 1 << 8;
/// LVT bit 16: the entry is masked.
pub const LVT_MASKED: u32 = 1 << 16;
/// ESR bit 5: an IPI with an illegal vector (0-15) was sent.
pub const ESR_SEND_ILLEGAL_VECTOR: u32 = 1 << 5;
/// ESR bit 6: an interrupt with an illegal vector (0-15) was received.
pub const ESR_RECEIVE_ILLEGAL_VECTOR: u32 = 1 << 6;

/// Writable bits of the LVT entries, indexed like `X2Apic::lvt`: CMCI, timer, thermal,
/// performance counters, LINT0, LINT1, error.
const LVT_WRITABLE: [u32; 7] = [
    0x1_07FF, // CMCI: vector, delivery mode, mask
    0x7_00FF, // timer: vector, mask, mode
    0x1_07FF, // thermal
    0x1_07FF, // performance counters
    0x1_A7FF, // LINT0: vector, delivery mode, polarity, trigger, mask
    0x1_A7FF, // LINT1
    0x1_00FF, // error: vector, mask
];

/// The local x2APIC of one vCPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X2Apic {
    id: u32,
    tpr: u32,
    svr: u32,
    irr: [u32; 8],
    isr: [u32; 8],
    /// The ESR value the guest reads (latched by its last ESR write).
    esr: u32,
    /// Errors since the last ESR write.
    esr_pending: u32,
    icr: u64,
    lvt: [u32; 7],
    timer_initial: u32,
    timer_divide: u32,
}

fn test_bit(bits: &[u32; 8], v: u8) -> bool {
    bits[usize::from(v >> 5)] & (1 << (v & 31)) != 0
}

fn set_bit(bits: &mut [u32; 8], v: u8) {
    bits[usize::from(v >> 5)] |= 1 << (v & 31);
}

fn clear_bit(bits: &mut [u32; 8], v: u8) {
    bits[usize::from(v >> 5)] &= !(1 << (v & 31));
}

fn highest(bits: &[u32; 8]) -> Option<u8> {
    (0..8usize).rev().find(|&i| bits[i] != 0).map(|i| (i * 32 + 31 - bits[i].leading_zeros() as usize) as u8)
}

fn low32(value: u64) -> Result<u32, Gp> {
    u32::try_from(value).map_err(|_| Gp)
}

impl X2Apic {
    /// The APIC after reset with x2APIC id `id`: software-disabled (SVR 0xFF), every LVT
    /// entry masked, nothing pending.
    pub fn new(id: u32) -> Self {
        X2Apic {
            id,
            tpr: 0,
            svr: 0xFF,
            irr: [0; 8],
            isr: [0; 8],
            esr: 0,
            esr_pending: 0,
            icr: 0,
            lvt: [LVT_MASKED; 7],
            timer_initial: 0,
            timer_divide: 0,
        }
    }

    /// The x2APIC id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The guest has software-enabled the APIC (SVR bit 8).
    pub fn enabled(&self) -> bool {
        self.svr & SVR_ENABLE != 0
    }

    /// The logical destination register: cluster `id >> 4` in bits 31:16, bit `id & 15` in
    /// bits 15:0.
    pub fn ldr(&self) -> u32 {
        ((self.id >> 4) << 16) | (1 << (self.id & 0xF))
    }

    /// The processor priority: the TPR, or the class of the highest in-service vector if that
    /// is higher.
    pub fn ppr(&self) -> u32 {
        let isrv = highest(&self.isr).map_or(0, u32::from);
        if (self.tpr >> 4) >= (isrv >> 4) { self.tpr } else { isrv & 0xF0 }
    }

    /// Makes `vector` pending (an interrupt from the hypervisor or a self-IPI). Vectors 0-15
    /// are illegal: they set the receive-illegal-vector error and are dropped.
    pub fn raise(&mut self, vector: u8) {
        if vector < 16 {
            self.esr_pending |= ESR_RECEIVE_ILLEGAL_VECTOR;
        } else {
            set_bit(&mut self.irr, vector);
        }
    }

    /// The vector to deliver next: the highest requested vector whose priority class is above
    /// the processor priority's. `None` while the APIC is software-disabled (requests are held
    /// until it is enabled).
    pub fn pending(&self) -> Option<u8> {
        if !self.enabled() {
            return None;
        }
        let v = highest(&self.irr)?;
        (u32::from(v >> 4) > (self.ppr() >> 4)).then_some(v)
    }

    /// The guest has taken `vector`: it moves from requested to in service.
    pub fn acknowledge(&mut self, vector: u8) {
        clear_bit(&mut self.irr, vector);
        set_bit(&mut self.isr, vector);
    }

    /// End of interrupt: the highest in-service vector is done.
    pub fn eoi(&mut self) {
        if let Some(v) = highest(&self.isr) {
            clear_bit(&mut self.isr, v);
        }
    }

    /// `vector` is requested (IRR).
    pub fn is_requested(&self, vector: u8) -> bool {
        test_bit(&self.irr, vector)
    }

    /// `vector` is in service (ISR).
    pub fn in_service(&self, vector: u8) -> bool {
        test_bit(&self.isr, vector)
    }

    /// RDMSR of an x2APIC register. Write-only and reserved registers fault.
    pub fn read(&self, msr: u32) -> Result<u64, Gp> {
        let v = match msr {
            ID => self.id,
            VERSION => VERSION_VALUE,
            TPR => self.tpr,
            PPR => self.ppr(),
            LDR => self.ldr(),
            SVR => self.svr,
            ISR0..=0x817 => self.isr[(msr - ISR0) as usize],
            TMR0..=0x81F => 0,
            IRR0..=0x827 => self.irr[(msr - IRR0) as usize],
            ESR => self.esr,
            LVT_CMCI => self.lvt[0],
            ICR => return Ok(self.icr),
            LVT_TIMER..=LVT_ERROR => self.lvt[(msr - LVT_TIMER + 1) as usize],
            TIMER_INITIAL => self.timer_initial,
            TIMER_CURRENT => 0,
            TIMER_DIVIDE => self.timer_divide,
            _ => return Err(Gp),
        };
        Ok(u64::from(v))
    }

    /// WRMSR of an x2APIC register. Read-only and reserved registers, and values with bits
    /// set above a 32-bit register, fault.
    pub fn write(&mut self, msr: u32, value: u64) -> Result<(), Gp> {
        if msr == ICR {
            self.write_icr(value);
            return Ok(());
        }
        let v = low32(value)?;
        match msr {
            TPR if v <= 0xFF => self.tpr = v,
            EOI if v == 0 => self.eoi(),
            SVR if v & !0x3FF == 0 => {
                self.svr = v;
                if !self.enabled() {
                    for l in &mut self.lvt {
                        *l |= LVT_MASKED;
                    }
                }
            }
            ESR if v == 0 => {
                self.esr = self.esr_pending;
                self.esr_pending = 0;
            }
            LVT_CMCI => self.write_lvt(0, v),
            LVT_TIMER..=LVT_ERROR => self.write_lvt((msr - LVT_TIMER + 1) as usize, v),
            TIMER_INITIAL => self.timer_initial = v,
            TIMER_DIVIDE => self.timer_divide = v & 0xB,
            SELF_IPI if v <= 0xFF => self.send_self(v as u8),
            _ => return Err(Gp),
        }
        Ok(())
    }

    fn write_lvt(&mut self, index: usize, v: u32) {
        let mut v = v & LVT_WRITABLE[index];
        if !self.enabled() {
            v |= LVT_MASKED;
        }
        self.lvt[index] = v;
    }

    /// A fixed IPI sent by the guest to itself.
    fn send_self(&mut self, vector: u8) {
        if vector < 16 {
            self.esr_pending |= ESR_SEND_ILLEGAL_VECTOR;
        } else {
            set_bit(&mut self.irr, vector);
        }
    }

    fn write_icr(&mut self, value: u64) {
        // Delivery status (bit 12) always reads idle.
        self.icr = value & !(1 << 12);
        let vector = value as u8;
        let delivery_mode = (value >> 8) & 7;
        let logical = value & (1 << 11) != 0;
        let shorthand = (value >> 18) & 3;
        let dest = (value >> 32) as u32;
        // Fixed and lowest-priority IPIs are delivered; NMI, SMI, INIT and SIPI are dropped.
        if delivery_mode > 1 {
            return;
        }
        let to_self = match shorthand {
            1 | 2 => true, // self, all including self
            3 => false,    // all excluding self
            _ if dest == u32::MAX => true,
            _ if logical => {
                let ldr = self.ldr();
                dest >> 16 == ldr >> 16 && dest & ldr & 0xFFFF != 0
            }
            _ => dest == self.id,
        };
        if vector < 16 {
            self.esr_pending |= ESR_SEND_ILLEGAL_VECTOR;
        } else if to_self {
            set_bit(&mut self.irr, vector);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> X2Apic {
        let mut a = X2Apic::new(0);
        a.write(SVR, 0x1FF).unwrap();
        a
    }

    #[test]
    fn reset_state() {
        let a = X2Apic::new(0);
        assert_eq!(a.read(ID), Ok(0));
        assert_eq!(a.read(VERSION), Ok(0x0005_0014));
        assert_eq!(a.read(SVR), Ok(0xFF));
        assert_eq!(a.read(LDR), Ok(1));
        for msr in [LVT_CMCI, 0x832, 0x833, 0x834, 0x835, 0x836, 0x837] {
            assert_eq!(a.read(msr), Ok(u64::from(LVT_MASKED)), "{msr:#x}");
        }
        assert_eq!(a.pending(), None);
    }

    #[test]
    fn ldr_is_cluster_and_bit() {
        assert_eq!(X2Apic::new(0x23).ldr(), (2 << 16) | (1 << 3));
        assert_eq!(X2Apic::new(0x23).read(LDR), Ok((2 << 16) | (1 << 3)));
    }

    #[test]
    fn disabled_apic_holds_requests() {
        let mut a = X2Apic::new(0);
        a.raise(0x40);
        assert_eq!(a.pending(), None);
        a.write(SVR, 0x1FF).unwrap();
        assert_eq!(a.pending(), Some(0x40));
    }

    #[test]
    fn highest_vector_first_and_tpr_blocks_lower_classes() {
        let mut a = enabled();
        a.raise(0x31);
        a.raise(0x52);
        a.raise(0x4F);
        assert_eq!(a.pending(), Some(0x52));
        a.write(TPR, 0x50).unwrap();
        assert_eq!(a.pending(), None, "same class as TPR is blocked");
        a.write(TPR, 0x4F).unwrap();
        assert_eq!(a.pending(), Some(0x52));
        assert_eq!(a.read(PPR), Ok(0x4F));
    }

    #[test]
    fn in_service_vector_blocks_its_class_until_eoi() {
        let mut a = enabled();
        a.raise(0x61);
        a.acknowledge(0x61);
        assert!(a.in_service(0x61) && !a.is_requested(0x61));
        assert_eq!(a.read(PPR), Ok(0x60));
        a.raise(0x65);
        assert_eq!(a.pending(), None, "same class as the in-service vector");
        a.raise(0x70);
        assert_eq!(a.pending(), Some(0x70), "a higher class nests");
        a.acknowledge(0x70);
        assert_eq!(a.read(PPR), Ok(0x70));
        // EOI retires the highest in-service vector first.
        a.write(EOI, 0).unwrap();
        assert!(!a.in_service(0x70) && a.in_service(0x61));
        assert_eq!(a.pending(), None);
        a.write(EOI, 0).unwrap();
        assert!(!a.in_service(0x61));
        assert_eq!(a.pending(), Some(0x65));
        assert_eq!(a.read(PPR), Ok(0));
    }

    #[test]
    fn isr_and_irr_registers() {
        let mut a = enabled();
        a.raise(0xF3);
        a.raise(0x21);
        assert_eq!(a.read(IRR0 + 7), Ok(1 << 19));
        assert_eq!(a.read(IRR0 + 1), Ok(1 << 1));
        a.acknowledge(0xF3);
        assert_eq!(a.read(ISR0 + 7), Ok(1 << 19));
        assert_eq!(a.read(IRR0 + 7), Ok(0));
        assert_eq!(a.read(TMR0 + 7), Ok(0));
    }

    #[test]
    fn self_ipi_register() {
        let mut a = enabled();
        a.write(SELF_IPI, 0xEC).unwrap();
        assert_eq!(a.pending(), Some(0xEC));
        assert_eq!(a.write(SELF_IPI, 0x1EC), Err(Gp));
        assert_eq!(a.read(SELF_IPI), Err(Gp), "write-only");
    }

    #[test]
    fn icr_destinations() {
        let mut a = enabled();
        // Physical destination = own id.
        a.write(ICR, 0x41).unwrap();
        assert!(a.is_requested(0x41));
        // Self shorthand.
        a.write(ICR, (1 << 18) | 0x42).unwrap();
        assert!(a.is_requested(0x42));
        // All including self.
        a.write(ICR, (2 << 18) | 0x43).unwrap();
        assert!(a.is_requested(0x43));
        // All excluding self: nobody else.
        a.write(ICR, (3 << 18) | 0x44).unwrap();
        assert!(!a.is_requested(0x44));
        // Another CPU.
        a.write(ICR, (5 << 32) | 0x45).unwrap();
        assert!(!a.is_requested(0x45));
        // Broadcast.
        a.write(ICR, (0xFFFF_FFFF << 32) | 0x46).unwrap();
        assert!(a.is_requested(0x46));
        // Logical: cluster 0, bit 0 matches id 0; bit 1 does not.
        a.write(ICR, (1 << 32) | (1 << 11) | 0x47).unwrap();
        assert!(a.is_requested(0x47));
        a.write(ICR, (2 << 32) | (1 << 11) | 0x48).unwrap();
        assert!(!a.is_requested(0x48));
        // NMI and INIT to self are dropped.
        a.write(ICR, (4 << 8) | (1 << 18) | 0x49).unwrap();
        a.write(ICR, (5 << 8) | (1 << 18) | 0x4A).unwrap();
        assert!(!a.is_requested(0x49) && !a.is_requested(0x4A));
        // ICR reads back, delivery status idle.
        a.write(ICR, (1 << 12) | (1 << 18) | 0x50).unwrap();
        assert_eq!(a.read(ICR), Ok((1 << 18) | 0x50));
    }

    #[test]
    fn illegal_vectors_set_esr_and_are_dropped() {
        let mut a = enabled();
        a.write(SELF_IPI, 5).unwrap();
        a.write(ICR, (1 << 18) | 0x0F).unwrap();
        a.raise(2);
        assert_eq!(a.pending(), None);
        assert_eq!(a.irr, [0; 8]);
        assert_eq!(a.read(ESR), Ok(0), "latched only by an ESR write");
        a.write(ESR, 0).unwrap();
        assert_eq!(a.read(ESR), Ok(u64::from(ESR_SEND_ILLEGAL_VECTOR | ESR_RECEIVE_ILLEGAL_VECTOR)));
        a.write(ESR, 0).unwrap();
        assert_eq!(a.read(ESR), Ok(0));
        assert_eq!(a.write(ESR, 1), Err(Gp));
    }

    #[test]
    fn illegal_accesses_fault() {
        let mut a = enabled();
        for ro in [ID, VERSION, PPR, LDR, ISR0, TMR0 + 3, IRR0 + 7, TIMER_CURRENT] {
            assert_eq!(a.write(ro, 0), Err(Gp), "write {ro:#x}");
        }
        assert_eq!(a.read(EOI), Err(Gp));
        assert_eq!(a.write(EOI, 1), Err(Gp), "EOI takes 0 only");
        for reserved in [0x800, 0x801, 0x804, 0x809, 0x80C, 0x80E, 0x829, 0x831, 0x83A, 0x840] {
            assert_eq!(a.read(reserved), Err(Gp), "read {reserved:#x}");
            assert_eq!(a.write(reserved, 0), Err(Gp), "write {reserved:#x}");
        }
        assert_eq!(a.write(TPR, 0x100), Err(Gp));
        assert_eq!(a.write(TPR, 1 << 32), Err(Gp));
        assert_eq!(a.write(SVR, 0x11FF), Err(Gp), "no EOI-broadcast suppression");
    }

    #[test]
    fn lvt_and_timer_registers_store() {
        let mut a = enabled();
        a.write(0x832, 0x2_00EF).unwrap();
        assert_eq!(a.read(0x832), Ok(0x2_00EF));
        a.write(0x837, 0xFFFF_FFFF).unwrap();
        assert_eq!(a.read(0x837), Ok(0x1_00FF));
        a.write(TIMER_INITIAL, 1000).unwrap();
        a.write(TIMER_DIVIDE, 0xF).unwrap();
        assert_eq!(a.read(TIMER_INITIAL), Ok(1000));
        assert_eq!(a.read(TIMER_CURRENT), Ok(0), "the timer never runs");
        assert_eq!(a.read(TIMER_DIVIDE), Ok(0xB));
        // Software-disabling masks every entry, and keeps them masked.
        a.write(SVR, 0xFF).unwrap();
        assert_eq!(a.read(0x832), Ok(0x3_00EF));
        a.write(0x835, 0x30).unwrap();
        assert_eq!(a.read(0x835), Ok(0x1_0030));
    }
}
