//! What an exception or interrupt means, decided from facts the arch entry gathered (the
//! vector, the privilege it interrupted, whether the local APIC has it in service, whether the
//! CPU pushed an error code). Plain Rust, host-tested; `kernel::trap` acts on the answer.
//!
//! The rule a hostile or unlucky system must not break: **a vector that cannot be a fault of the
//! running domain never destroys it.** A device (a driver domain's device DMA-ing to the APIC's
//! MSI window, a legacy PIC's spurious IRQ, an NMI) can raise vectors below 32 that collide
//! with CPU exceptions. The local APIC refuses vectors 0-15, so an external interrupt in the
//! exception range is 16-31, and it is in service at the APIC while its handler runs, which an
//! exception never is. Exceptions that push an error code are recognised by the stack the CPU
//! built (64-bit mode aligns the stack to 16 bytes before pushing: with an error code the frame
//! ends 16-aligned, without one it does not), so an interrupt on such a vector is not misread.
//!
//! Above 31, only the vectors the kernel uses (the timer's, the devices') are acted on; any other
//! (a device's forged MSI with a vector nobody was given, the spurious vector) is stray.

/// The vectors a domain's own instruction stream can raise in ring 3.
pub fn is_domain_fault_vector(vector: u8) -> bool {
    matches!(vector, 0 | 1 | 3 | 4 | 5 | 6 | 7 | 10 | 11 | 12 | 13 | 14 | 16 | 17 | 19 | 21)
}

/// Non-maskable interrupt.
pub const NMI_VECTOR: u8 = 2;
/// Double fault and machine check: the hypervisor or the machine is broken.
pub const DOUBLE_FAULT_VECTOR: u8 = 8;
pub const MACHINE_CHECK_VECTOR: u8 = 18;
/// Where the legacy PICs are remapped (both masked; only spurious IRQs 7 and 15 can arrive).
pub const PIC_VECTOR_BASE: u8 = 0x20;
pub const PIC_VECTORS: u8 = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapAction {
    /// The running domain caused it: report it and destroy that domain.
    DomainFault,
    /// An exception in the hypervisor itself, a double fault or a machine check: stop.
    Fatal,
    /// Not the running domain's doing and nothing to act on (NMI, a vector a device or the
    /// legacy PIC raised in the exception range): counted, logged (bounded) and ignored.
    Stray,
    /// A vector the hypervisor uses (timer, devices): the kernel handles it.
    Interrupt,
}

/// Facts about one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub vector: u8,
    /// It interrupted ring 3.
    pub from_user: bool,
    /// The local APIC has `vector` in service (an external interrupt it delivered).
    pub in_service: bool,
    /// The vector is one whose exception pushes an error code, but the CPU pushed none.
    pub missing_error_code: bool,
    /// The kernel uses the vector (the timer's or a device's).
    pub kernel_vector: bool,
}

pub fn classify(e: Entry) -> TrapAction {
    let v = e.vector;
    if v >= 32 {
        return if e.kernel_vector && !(PIC_VECTOR_BASE..PIC_VECTOR_BASE + PIC_VECTORS).contains(&v) {
            TrapAction::Interrupt
        } else {
            TrapAction::Stray
        };
    }
    if v == NMI_VECTOR {
        return TrapAction::Stray;
    }
    // An external interrupt that landed in the exception range.
    if e.in_service || e.missing_error_code {
        return TrapAction::Stray;
    }
    if v == DOUBLE_FAULT_VECTOR || v == MACHINE_CHECK_VECTOR {
        return TrapAction::Fatal;
    }
    if !is_domain_fault_vector(v) {
        // Reserved vectors (9, 15, 20, 22-31): no instruction of ours or the domain's raises
        // them.
        return TrapAction::Stray;
    }
    if e.from_user { TrapAction::DomainFault } else { TrapAction::Fatal }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(vector: u8, from_user: bool) -> Entry {
        Entry { vector, from_user, in_service: false, missing_error_code: false, kernel_vector: false }
    }

    #[test]
    fn a_domains_own_faults_destroy_it() {
        for v in [0u8, 6, 7, 13, 14, 16, 17, 19] {
            assert_eq!(classify(entry(v, true)), TrapAction::DomainFault, "vector {v}");
            assert_eq!(classify(entry(v, false)), TrapAction::Fatal, "vector {v} in the hypervisor");
        }
    }

    /// The attacker: a driver domain's device raises vectors in the exception range (its DMA
    /// to the APIC's MSI window, or a misconfigured device) while a victim domain runs. None
    /// of them may destroy the victim or stop the hypervisor.
    #[test]
    fn stray_vectors_destroy_nobody() {
        for v in 16u8..32 {
            let e =
                Entry { vector: v, from_user: true, in_service: true, missing_error_code: false, kernel_vector: false };
            assert_eq!(classify(e), TrapAction::Stray, "vector {v} in service at the APIC");
            let e = Entry {
                vector: v,
                from_user: false,
                in_service: true,
                missing_error_code: false,
                kernel_vector: false,
            };
            assert_eq!(classify(e), TrapAction::Stray, "vector {v} while idle");
        }
        // #AC and #CP push an error code; an interrupt on them does not.
        for v in [17u8, 21] {
            let e =
                Entry { vector: v, from_user: true, in_service: false, missing_error_code: true, kernel_vector: false };
            assert_eq!(classify(e), TrapAction::Stray);
        }
        // NMI, reserved vectors, the legacy PIC's (spurious) vectors.
        for v in [2u8, 9, 15, 20, 22, 31, 0x27, 0x2f] {
            assert_eq!(classify(entry(v, true)), TrapAction::Stray, "vector {v}");
            assert_eq!(classify(entry(v, false)), TrapAction::Stray, "vector {v} in the hypervisor");
        }
    }

    #[test]
    fn machine_trouble_is_fatal_and_interrupts_are_handled() {
        assert_eq!(classify(entry(8, true)), TrapAction::Fatal);
        assert_eq!(classify(entry(18, false)), TrapAction::Fatal);
        for v in [0x40u8, 0x50, 0x57] {
            let e = Entry { kernel_vector: true, in_service: true, ..entry(v, true) };
            assert_eq!(classify(e), TrapAction::Interrupt);
        }
    }

    /// The attacker: a device forges MSIs with vectors nobody was given (above the exception
    /// range, the spurious vector included) while a victim runs or the hypervisor idles. They
    /// are stray: nobody is destroyed, the hypervisor does not stop, and (in the kernel) the
    /// APIC gets its EOI so that the forged vector does not block every interrupt below it.
    #[test]
    fn forged_vectors_nobody_uses_are_stray() {
        for v in [0x30u8, 0x41, 0x58, 0x80, 0xfe, 0xff] {
            for from_user in [true, false] {
                let e = Entry { in_service: true, ..entry(v, from_user) };
                assert_eq!(classify(e), TrapAction::Stray, "vector {v:#x}, from ring 3: {from_user}");
            }
        }
        // A vector the kernel uses stays an interrupt only when it is the kernel's.
        assert_eq!(classify(Entry { kernel_vector: true, ..entry(0x2f, true) }), TrapAction::Stray, "PIC range");
    }
}
