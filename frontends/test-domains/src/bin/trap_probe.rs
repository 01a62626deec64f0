//! Plays a domain that tries the trap paths (issue 13, finding 5). `mode=`:
//! * `x87-write`: loads a secret into x87 `st0`, sleeps so that another domain runs, exits.
//! * `x87-read`: waits, then pops whatever `st0` holds and prints it: on a CPU whose x87 state
//!   is shared and never switched, that is the writer's secret.
//! * `sse`: executes `xorps xmm0, xmm0` (and `movq xmm0, rax`).
//! * `ac`: sets RFLAGS.AC (which disables SMAP for supervisor code while set), then runs through
//!   timer interrupts and hypercalls for a while and checks that its own AC survived.
//!
//! The hypervisor keeps no FPU state for soft-float domains: x87/SSE must stop the domain with a
//! report, never run on another domain's registers.
#![no_std]
#![no_main]

use hv_rt::{println, time};

hv_rt::main!(main);

const SECRET: u64 = 0x5ec_2e7;

fn main() {
    match hv_rt::arg("mode").unwrap_or("") {
        "x87-write" => {
            println!("loading a secret into x87 st0");
            // SAFETY: loads one value onto the x87 stack; touches no memory but SECRET's copy.
            unsafe {
                let v = SECRET;
                core::arch::asm!("fild qword ptr [{0}]", in(reg) &v, options(nostack));
            }
            println!("x87 instruction executed: state not switched per domain");
            time::sleep_ms(300);
        }
        "x87-read" => {
            time::sleep_ms(100);
            println!("reading x87 st0");
            let mut out = 0u64;
            // SAFETY: stores st0 into `out` (and pops it).
            unsafe { core::arch::asm!("fistp qword ptr [{0}]", in(reg) &mut out, options(nostack)) };
            println!("read x87 st0: {out:#x}{}", if out == SECRET { " = another domain's secret" } else { "" });
        }
        "sse" => {
            println!("executing SSE instructions");
            // SAFETY: clobbers xmm0 only.
            unsafe { core::arch::asm!("xorps xmm0, xmm0", "movq xmm0, rax", out("rax") _, options(nostack)) };
            println!("SSE instructions executed: state not switched per domain");
        }
        "ac" => {
            // SAFETY: sets RFLAGS.AC; CR0.AM is clear, so no alignment checks follow.
            unsafe { core::arch::asm!("pushfq", "or qword ptr [rsp], 0x40000", "popfq") };
            println!("RFLAGS.AC set; spinning through interrupts and hypercalls");
            let end = time::now_ns() + 60_000_000;
            let mut calls = 0u64;
            while time::now_ns() < end {
                hv_rt::yield_now();
                calls += 1;
                for _ in 0..10_000 {
                    core::hint::spin_loop();
                }
            }
            let flags: u64;
            // SAFETY: reads RFLAGS.
            unsafe { core::arch::asm!("pushfq", "pop {0}", out(reg) flags) };
            println!("after {calls} yields, RFLAGS.AC is {}", if flags & 0x40000 != 0 { "still set" } else { "clear" });
        }
        m => println!("unknown mode {m:?}"),
    }
}
