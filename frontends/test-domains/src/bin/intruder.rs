//! A hostile DomU. First it hands the hypervisor pointers it does not own (each must be refused
//! with EFAULT), then it writes into memory that is not its own and must be destroyed.
//! `target=hv` writes into the hypervisor image; `target=others` (default) into the
//! hypervisor's direct map, where every other domain's RAM lives.
#![no_std]
#![no_main]

use hv_abi::{DomainInfo, Hypercall, decode_result};
use hv_rt::{hypercall, println};

hv_rt::main!(main);

fn report(what: &str, r: u64) {
    match decode_result(r) {
        Err(e) => println!("{what} refused: {}", e.name()),
        Ok(v) => println!("{what} ACCEPTED ({v}): isolation is broken"),
    }
}

fn main() {
    // SAFETY: the pointers are deliberately bad; the hypervisor must refuse them without
    // touching anything, and none of these calls can write our own memory.
    unsafe {
        report("bad pointer hypercall", hypercall::raw(Hypercall::ConsoleWrite, 0x10_0000, 64, 0, 0));
        report("kernel pointer hypercall", hypercall::raw(Hypercall::ConsoleWrite, 0xffff_8000_0010_0000, 64, 0, 0));
        report("wrapping pointer hypercall", hypercall::raw(Hypercall::ConsoleWrite, u64::MAX - 8, 64, 0, 0));
        // The start_info page is read-only for us, so the hypervisor must not write it for us.
        let si = hv_rt::start_info() as *const _ as u64;
        report("read-only pointer hypercall", hypercall::raw(Hypercall::DomainInfo, si, 0, 0, 0));
        let mut info = DomainInfo::default();
        let r = hypercall::raw(Hypercall::DomainInfo, (&raw mut info) as u64, 0, 0, 0);
        println!("own domain_info: {:?}, domid {}", decode_result(r).map(drop), info.domid);
        report("unknown hypercall", hypercall::raw_number(99));
    }
    let target: u64 = match hv_rt::arg("target") {
        Some("hv") => 0x10_0000,
        _ => 0xffff_8000_0000_0000 + 0x200_0000,
    };
    println!("writing to {target:#x}, memory this domain does not own");
    // SAFETY: deliberately faulting; the hypervisor destroys this domain.
    unsafe { core::ptr::write_volatile(target as *mut u64, 0xdead_beef) };
    println!("write went through: isolation is broken");
}
