//! A DomU that faults on purpose. `mode=null` (default) dereferences a null pointer;
//! `mode=privileged` executes `hlt`, a privileged instruction; `mode=ud` an invalid opcode.
#![no_std]
#![no_main]

use hv_rt::println;

hv_rt::main!(main);

fn main() {
    match hv_rt::arg("mode").unwrap_or("null") {
        "privileged" => {
            println!("about to execute a privileged instruction (hlt)");
            // SAFETY: deliberately faulting; the hypervisor destroys this domain.
            unsafe { core::arch::asm!("hlt") };
        }
        "ud" => {
            println!("about to execute an invalid opcode");
            // SAFETY: as above.
            unsafe { core::arch::asm!("ud2") };
        }
        _ => {
            println!("about to dereference a null pointer");
            // SAFETY: as above: address 0 is never mapped.
            let v = unsafe { core::ptr::read_volatile(core::ptr::null::<u64>()) };
            println!("read {v} from address 0?!");
        }
    }
    println!("still alive after the fault: isolation is broken");
}
