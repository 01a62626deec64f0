//! What an SVM #VMEXIT means: the VMCB's exit code and two exit-information fields decoded
//! into an [`Exit`] (codes per the AMD64 APM vol. 2, appendix C), plus the lengths of the
//! intercepted instructions, which the arch code needs because QEMU 7.2 TCG does not save the
//! next RIP.

/// One decoded #VMEXIT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Read of control register `cr` (exit codes 0x00-0x0F). No decode assists: the
    /// instruction's operands are not reported.
    CrRead { cr: u8 },
    /// Write of control register `cr` (exit codes 0x10-0x1F).
    CrWrite { cr: u8 },
    /// An intercepted exception (exit codes 0x40-0x5F). `error_code` is EXITINFO1 for the
    /// vectors that push one; for #PF, EXITINFO2 holds the faulting address.
    Exception { vector: u8, error_code: Option<u32> },
    /// A physical interrupt arrived (0x60).
    Intr,
    /// A physical NMI arrived (0x61).
    Nmi,
    /// A system-management interrupt arrived (0x62).
    Smi,
    /// A physical INIT arrived (0x63).
    Init,
    /// The guest became ready to take a virtual interrupt (0x64).
    Vintr,
    /// CPUID (0x72).
    Cpuid,
    /// HLT (0x78).
    Hlt,
    /// IN/OUT/INS/OUTS (0x7B).
    Io(IoExit),
    /// RDMSR (`write == false`) or WRMSR (0x7C). The MSR number is in the guest's ECX.
    Msr { write: bool },
    /// The guest shut down (triple fault) (0x7F).
    Shutdown,
    /// VMRUN in the guest (0x80); it has no SVM, so the caller injects #UD.
    Vmrun,
    /// VMMCALL (0x81): a Xen hypercall.
    Vmmcall,
    /// A nested page fault (0x400).
    NestedPageFault { gpa: u64, error: NpfError },
    /// VMRUN refused the VMCB (-1; also the 32-bit -1 that QEMU 7.2 TCG stores).
    Invalid,
    /// Any other exit code, unchanged.
    Other(u64),
}

/// An IOIO intercept: EXITINFO1 decoded, EXITINFO2 the address of the next instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoExit {
    /// The port (EXITINFO1 bits 31:16).
    pub port: u16,
    /// IN/INS (bit 0 set) rather than OUT/OUTS.
    pub input: bool,
    /// INS/OUTS (bit 2).
    pub string: bool,
    /// REP prefix (bit 3).
    pub rep: bool,
    /// Operand size in bytes: 1, 2 or 4 (bits 4, 5, 6; 0 if none is set).
    pub size: u8,
    /// Address size in bits for string instructions: 16, 32 or 64 (bits 7, 8, 9; 0 if none).
    pub address_size: u8,
    /// Effective segment of a string instruction (bits 12:10: 0 ES, 1 CS, 2 SS, 3 DS, 4 FS,
    /// 5 GS).
    pub segment: u8,
    /// RIP of the next instruction (EXITINFO2); the caller resumes there.
    pub next_rip: u64,
}

/// A nested page fault's error code (EXITINFO1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NpfError {
    /// The nested page-table entry was present (bit 0): a protection fault, not a missing page.
    pub present: bool,
    /// The access was a write (bit 1).
    pub write: bool,
    /// The access was a user-mode access (bit 2).
    pub user: bool,
    /// A reserved bit was set in a nested entry (bit 3).
    pub reserved: bool,
    /// The access was an instruction fetch (bit 4).
    pub execute: bool,
    /// The fault happened on the final guest-physical address (bit 32).
    pub final_address: bool,
    /// The fault happened while the processor read the guest's own page tables (bit 33).
    pub page_table: bool,
    /// EXITINFO1 unchanged.
    pub raw: u64,
}

impl NpfError {
    /// Decodes EXITINFO1 of a nested page fault.
    pub fn from_bits(raw: u64) -> Self {
        let b = |n: u32| raw & (1 << n) != 0;
        NpfError {
            present: b(0),
            write: b(1),
            user: b(2),
            reserved: b(3),
            execute: b(4),
            final_address: b(32),
            page_table: b(33),
            raw,
        }
    }
}

impl IoExit {
    /// Decodes EXITINFO1 of an IOIO intercept; `next_rip` is EXITINFO2.
    pub fn from_bits(info1: u64, next_rip: u64) -> Self {
        let b = |n: u32| info1 & (1 << n) != 0;
        let size = if b(4) {
            1
        } else if b(5) {
            2
        } else if b(6) {
            4
        } else {
            0
        };
        let address_size = if b(7) {
            16
        } else if b(8) {
            32
        } else if b(9) {
            64
        } else {
            0
        };
        IoExit {
            port: (info1 >> 16) as u16,
            input: b(0),
            string: b(2),
            rep: b(3),
            size,
            address_size,
            segment: ((info1 >> 10) & 7) as u8,
            next_rip,
        }
    }
}

/// Exit codes (AMD64 APM vol. 2, appendix C).
pub mod code {
    /// First CR read code (CR0); CR`n` read is `CR_READ + n`.
    pub const CR_READ: u64 = 0x00;
    /// First CR write code.
    pub const CR_WRITE: u64 = 0x10;
    /// First exception code; exception `v` is `EXCEPTION + v`.
    pub const EXCEPTION: u64 = 0x40;
    /// Physical interrupt.
    pub const INTR: u64 = 0x60;
    /// Physical NMI.
    pub const NMI: u64 = 0x61;
    /// SMI.
    pub const SMI: u64 = 0x62;
    /// INIT.
    pub const INIT: u64 = 0x63;
    /// Virtual interrupt window.
    pub const VINTR: u64 = 0x64;
    /// CPUID.
    pub const CPUID: u64 = 0x72;
    /// HLT.
    pub const HLT: u64 = 0x78;
    /// Port I/O.
    pub const IOIO: u64 = 0x7B;
    /// RDMSR/WRMSR.
    pub const MSR: u64 = 0x7C;
    /// Shutdown.
    pub const SHUTDOWN: u64 = 0x7F;
    /// VMRUN.
    pub const VMRUN: u64 = 0x80;
    /// VMMCALL.
    pub const VMMCALL: u64 = 0x81;
    /// Nested page fault.
    pub const NPF: u64 = 0x400;
    /// Invalid guest state.
    pub const INVALID: u64 = u64::MAX;
    /// Invalid guest state as QEMU 7.2 TCG stores it (a 32-bit -1, zero-extended).
    pub const INVALID_QEMU: u64 = 0xFFFF_FFFF;
}

/// Exception vectors whose exception pushes an error code (#DF, #TS, #NP, #SS, #GP, #PF, #AC,
/// #CP, #VC, #SX).
fn has_error_code(vector: u8) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// Decodes a #VMEXIT from the VMCB's EXITCODE, EXITINFO1 and EXITINFO2.
pub fn decode(exit_code: u64, exit_info1: u64, exit_info2: u64) -> Exit {
    match exit_code {
        0x00..=0x0F => Exit::CrRead { cr: exit_code as u8 },
        0x10..=0x1F => Exit::CrWrite { cr: (exit_code - code::CR_WRITE) as u8 },
        0x40..=0x5F => {
            let vector = (exit_code - code::EXCEPTION) as u8;
            Exit::Exception { vector, error_code: has_error_code(vector).then_some(exit_info1 as u32) }
        }
        code::INTR => Exit::Intr,
        code::NMI => Exit::Nmi,
        code::SMI => Exit::Smi,
        code::INIT => Exit::Init,
        code::VINTR => Exit::Vintr,
        code::CPUID => Exit::Cpuid,
        code::HLT => Exit::Hlt,
        code::IOIO => Exit::Io(IoExit::from_bits(exit_info1, exit_info2)),
        code::MSR => Exit::Msr { write: exit_info1 & 1 != 0 },
        code::SHUTDOWN => Exit::Shutdown,
        code::VMRUN => Exit::Vmrun,
        code::VMMCALL => Exit::Vmmcall,
        code::NPF => Exit::NestedPageFault { gpa: exit_info2, error: NpfError::from_bits(exit_info1) },
        code::INVALID | code::INVALID_QEMU => Exit::Invalid,
        other => Exit::Other(other),
    }
}

/// How far to advance RIP past the intercepted instruction, for exits where the hardware does
/// not say (no next-RIP save): VMMCALL 3 bytes (`0f 01 d9`), CPUID, RDMSR and WRMSR 2, HLT 1.
/// The lengths assume no prefixes, which is how Linux encodes them. IOIO reports the next RIP
/// itself ([`IoExit::next_rip`]); other exits (interrupts, faults, VMRUN, which is answered
/// with #UD at the instruction) do not advance RIP: `None`.
pub fn instruction_length(exit: &Exit) -> Option<u64> {
    match exit {
        Exit::Vmmcall => Some(3),
        Exit::Cpuid | Exit::Msr { .. } => Some(2),
        Exit::Hlt => Some(1),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_codes() {
        let cases = [
            (0x60, Exit::Intr),
            (0x61, Exit::Nmi),
            (0x62, Exit::Smi),
            (0x63, Exit::Init),
            (0x64, Exit::Vintr),
            (0x72, Exit::Cpuid),
            (0x78, Exit::Hlt),
            (0x7F, Exit::Shutdown),
            (0x80, Exit::Vmrun),
            (0x81, Exit::Vmmcall),
            (0x65, Exit::Other(0x65)),
            (0x401, Exit::Other(0x401)),
        ];
        for (c, e) in cases {
            assert_eq!(decode(c, 0, 0), e, "code {c:#x}");
        }
    }

    #[test]
    fn invalid_including_the_qemu_quirk() {
        assert_eq!(decode(u64::MAX, 0, 0), Exit::Invalid);
        assert_eq!(decode(0x0000_0000_FFFF_FFFF, 0, 0), Exit::Invalid);
        assert_eq!(decode(0xFFFF_FFFE, 0, 0), Exit::Other(0xFFFF_FFFE));
    }

    #[test]
    fn control_registers() {
        assert_eq!(decode(0x00, 0, 0), Exit::CrRead { cr: 0 });
        assert_eq!(decode(0x04, 0, 0), Exit::CrRead { cr: 4 });
        assert_eq!(decode(0x13, 0, 0), Exit::CrWrite { cr: 3 });
        assert_eq!(decode(0x1F, 0, 0), Exit::CrWrite { cr: 15 });
    }

    #[test]
    fn exceptions_with_and_without_error_code() {
        assert_eq!(decode(0x40 + 6, 0x1234, 0), Exit::Exception { vector: 6, error_code: None });
        assert_eq!(decode(0x40 + 13, 0x1_0000_0018, 0), Exit::Exception { vector: 13, error_code: Some(0x18) });
        assert_eq!(decode(0x40 + 14, 2, 0xdead_0000), Exit::Exception { vector: 14, error_code: Some(2) });
        assert_eq!(decode(0x5F, 0, 0), Exit::Exception { vector: 31, error_code: None });
    }

    #[test]
    fn msr_direction() {
        assert_eq!(decode(0x7C, 0, 0), Exit::Msr { write: false });
        assert_eq!(decode(0x7C, 1, 0), Exit::Msr { write: true });
    }

    #[test]
    fn ioio_in_byte() {
        // inb $0x42, %al: port 0x42, IN, SZ8.
        let info1 = (0x42 << 16) | 1 | (1 << 4);
        let Exit::Io(io) = decode(0x7B, info1, 0x1002) else { panic!() };
        assert_eq!(
            io,
            IoExit {
                port: 0x42,
                input: true,
                string: false,
                rep: false,
                size: 1,
                address_size: 0,
                segment: 0,
                next_rip: 0x1002,
            }
        );
    }

    #[test]
    fn ioio_rep_outsb_and_sizes() {
        // rep outsb to 0xE9, 64-bit addresses, DS segment.
        let info1 = (0xE9 << 16) | (1 << 2) | (1 << 3) | (1 << 4) | (1 << 9) | (3 << 10);
        let io = IoExit::from_bits(info1, 7);
        assert_eq!(io.port, 0xE9);
        assert!(!io.input && io.string && io.rep);
        assert_eq!((io.size, io.address_size, io.segment), (1, 64, 3));
        assert_eq!(IoExit::from_bits(1 << 5, 0).size, 2);
        assert_eq!(IoExit::from_bits(1 << 6, 0).size, 4);
        assert_eq!(IoExit::from_bits(1 << 7, 0).address_size, 16);
        assert_eq!(IoExit::from_bits(1 << 8, 0).address_size, 32);
        assert_eq!(IoExit::from_bits(0xFFFF_0000, 0).port, 0xFFFF);
    }

    #[test]
    fn nested_page_fault() {
        let info1 = 1 | 2 | 4 | (1 << 32);
        let Exit::NestedPageFault { gpa, error } = decode(0x400, info1, 0xFEE0_0000) else { panic!() };
        assert_eq!(gpa, 0xFEE0_0000);
        assert!(error.present && error.write && error.user && error.final_address);
        assert!(!error.reserved && !error.execute && !error.page_table);
        let e = NpfError::from_bits((1 << 33) | (1 << 3) | (1 << 4));
        assert!(e.page_table && e.reserved && e.execute && !e.final_address && !e.present);
        assert_eq!(e.raw, (1 << 33) | (1 << 3) | (1 << 4));
    }

    #[test]
    fn instruction_lengths() {
        assert_eq!(instruction_length(&Exit::Vmmcall), Some(3));
        assert_eq!(instruction_length(&Exit::Vmrun), None);
        assert_eq!(instruction_length(&Exit::Cpuid), Some(2));
        assert_eq!(instruction_length(&Exit::Msr { write: true }), Some(2));
        assert_eq!(instruction_length(&Exit::Msr { write: false }), Some(2));
        assert_eq!(instruction_length(&Exit::Hlt), Some(1));
        assert_eq!(instruction_length(&decode(0x7B, 0, 5)), None);
        assert_eq!(instruction_length(&Exit::Intr), None);
    }
}
