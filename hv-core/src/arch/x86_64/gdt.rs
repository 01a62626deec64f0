//! GDT, TSS and the `syscall` MSRs.
//!
//! Selector layout is dictated by `sysret`: STAR[63:48] = 0x10, so user SS = 0x18 | 3 and user
//! CS = 0x20 | 3.
use super::cpu::{MSR_EFER, MSR_LSTAR, MSR_SFMASK, MSR_STAR, rdmsr, wrmsr};
use spin::Once;
use x86_64::VirtAddr;
use x86_64::instructions::segmentation::{CS, DS, ES, SS, Segment};
use x86_64::instructions::tables::load_tss;
use x86_64::structures::gdt::{Descriptor, GlobalDescriptorTable, SegmentSelector};
use x86_64::structures::tss::TaskStateSegment;

pub const KERNEL_CS: u16 = 0x08;
pub const KERNEL_DS: u16 = 0x10;
pub const USER_DS: u16 = 0x18 | 3;
pub const USER_CS: u16 = 0x20 | 3;
/// IST slots: double fault, NMI and machine check each run on a known-good stack of their own
/// (an NMI can arrive between `syscall` and the stack switch, with the domain's rsp loaded).
pub const IST_DOUBLE_FAULT: u16 = 0;
pub const IST_NMI: u16 = 1;
pub const IST_MACHINE_CHECK: u16 = 2;
const IST_STACKS: usize = 3;
const IST_STACK_SIZE: usize = 16384;

static TSS: Once<TaskStateSegment> = Once::new();
static GDT: Once<GlobalDescriptorTable> = Once::new();

#[repr(C, align(16))]
struct IstStack([u8; IST_STACK_SIZE]);
static mut IST_STACK_AREA: [IstStack; IST_STACKS] = [const { IstStack([0; IST_STACK_SIZE]) }; IST_STACKS];

pub fn init(kernel_stack_top: u64) {
    let tss = TSS.call_once(|| {
        let mut tss = TaskStateSegment::new();
        tss.privilege_stack_table[0] = VirtAddr::new(kernel_stack_top);
        let base = (&raw const IST_STACK_AREA) as u64;
        for i in 0..IST_STACKS {
            tss.interrupt_stack_table[i] = VirtAddr::new(base + ((i + 1) * IST_STACK_SIZE) as u64);
        }
        // No I/O permission bitmap: iomap_base past the limit denies every port to ring 3.
        tss.iomap_base = core::mem::size_of::<TaskStateSegment>() as u16;
        tss
    });
    let gdt = GDT.call_once(|| {
        let mut gdt = GlobalDescriptorTable::new();
        let kc = gdt.append(Descriptor::kernel_code_segment());
        let kd = gdt.append(Descriptor::kernel_data_segment());
        let ud = gdt.append(Descriptor::user_data_segment());
        let uc = gdt.append(Descriptor::user_code_segment());
        assert_eq!((kc.0, kd.0, ud.0, uc.0), (KERNEL_CS, KERNEL_DS, USER_DS, USER_CS));
        gdt.append(Descriptor::tss_segment(tss));
        gdt
    });
    gdt.load();
    // SAFETY: the selectors name the descriptors appended above, in the GDT just loaded.
    unsafe {
        CS::set_reg(SegmentSelector(KERNEL_CS));
        SS::set_reg(SegmentSelector(KERNEL_DS));
        DS::set_reg(SegmentSelector(0));
        ES::set_reg(SegmentSelector(0));
        load_tss(SegmentSelector(0x28));
    }
}

/// Enables `syscall`/`sysret` with entry at `entry`.
pub fn init_syscall(entry: u64) {
    // SAFETY: STAR/LSTAR/SFMASK/EFER.SCE configure the syscall path to the stub in trap.rs with
    // the selectors asserted in `init`; interrupts, traps, direction and alignment checks and
    // nested-task are cleared on entry.
    unsafe {
        wrmsr(MSR_STAR, (0x10u64 << 48) | ((KERNEL_CS as u64) << 32));
        wrmsr(MSR_LSTAR, entry);
        wrmsr(MSR_SFMASK, 0x200 | 0x100 | 0x400 | 0x4_0000 | 0x4000);
        wrmsr(MSR_EFER, rdmsr(MSR_EFER) | 1);
    }
}
