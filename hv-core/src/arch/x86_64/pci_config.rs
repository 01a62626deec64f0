//! PCI configuration mechanism #1 (ports 0xcf8/0xcfc): the hypervisor's only way into config
//! space. Driver domains reach their own devices' config space through `pci_op`, never directly
//! (the TSS has no I/O bitmap).
use crate::pci::Bdf;
use x86_64::instructions::port::Port;

fn address(bdf: Bdf, offset: u8) -> u32 {
    0x8000_0000 | (bdf.bus as u32) << 16 | (bdf.dev as u32) << 11 | (bdf.func as u32) << 8 | (offset & 0xfc) as u32
}

pub fn read32(bdf: Bdf, offset: u8) -> u32 {
    // SAFETY: the hypervisor owns the config-address/data ports; interrupts are off, so the
    // address/data pair cannot be interleaved.
    unsafe {
        Port::<u32>::new(0xcf8).write(address(bdf, offset));
        Port::<u32>::new(0xcfc).read()
    }
}

pub fn write32(bdf: Bdf, offset: u8, value: u32) {
    // SAFETY: as in `read32`; callers decide which registers may be written.
    unsafe {
        Port::<u32>::new(0xcf8).write(address(bdf, offset));
        Port::<u32>::new(0xcfc).write(value);
    }
}
