//! Policy for HVM domains: what a hardware-virtualised guest (an unmodified Linux booted as a
//! Xen PVH DomU on one vCPU) sees when it executes an instruction the hypervisor intercepts.
//!
//! The work is split three ways:
//!
//! * **Policy (this module)**: plain Rust, no `unsafe`, no hardware access, tested on the host.
//!   Each file answers one question: which CPUID values the guest sees ([`cpuid`]), what an
//!   intercepted RDMSR/WRMSR does and which MSRs are not intercepted ([`msr`]), the guest's
//!   local x2APIC ([`x2apic`]), what a #VMEXIT means ([`exit`]), what port I/O does
//!   ([`ioport`]), and how a guest-virtual hypercall argument reaches guest-physical memory
//!   ([`page_walk`]).
//! * **Mechanism (`arch::x86_64::svm`)**: the VMCB, VMRUN/VMLOAD/VMSAVE, nested page tables and
//!   event injection. It reads the exit code from the VMCB, asks this module what to do, and
//!   applies the answer (writes registers, advances RIP, injects #GP or a vector).
//! * **Glue (`kernel::hvm`)**: the HVM domain's lifecycle, the Xen hypercall ABI on top of the
//!   existing event channels and grant tables, and the hypercall page.
//!
//! The policy is shaped by the target: QEMU 7.2 TCG's SVM has no next-RIP save and no decode
//! assists, so every exit the guest is allowed to cause must come from an instruction of known
//! length (CPUID, RDMSR/WRMSR, HLT, VMMCALL) or report its own next RIP (IOIO). Nothing here
//! relies on emulating memory-mapped I/O.

pub mod cpuid;
pub mod exit;
pub mod ioport;
pub mod msr;
pub mod page_walk;
pub mod x2apic;
