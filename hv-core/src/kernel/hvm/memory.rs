//! An HVM guest's memory as the hypervisor reaches it: guest-physical addresses through the
//! domain's nested page tables, guest-virtual ones (hypercall arguments) through the guest's
//! own page tables first (`crate::hvm::page_walk`). Every access is checked; a bad address is
//! `-EFAULT` for the guest, never a fault in the hypervisor.
use super::Hvm;
use crate::arch::paging;
use crate::frames::FRAME_SIZE;
use crate::hvm::page_walk::{self, GuestMemory, GuestPhys, PagingRegs};
use bytemuck::Pod;

/// A guest address that is not readable (or writable) guest memory: `-EFAULT` for the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadAddress;

/// Longest guest buffer one hypercall may have copied in or out.
pub const MAX_COPY: usize = 64 * 1024;

/// Guest-physical memory of one HVM domain (whatever its nested tables map).
pub struct Phys<'a> {
    pub npt: &'a crate::arch::npt::NestedTables,
}

impl Phys<'_> {
    fn host(&self, gpa: u64, len: usize) -> Option<u64> {
        let off = gpa & (FRAME_SIZE - 1);
        if off + len as u64 > FRAME_SIZE {
            return None;
        }
        Some(self.npt.translate(gpa & !(FRAME_SIZE - 1))? + off)
    }
}

impl GuestPhys for Phys<'_> {
    fn read_u64(&self, gpa: u64) -> Option<u64> {
        if !gpa.is_multiple_of(8) {
            return None;
        }
        let mut b = [0u8; 8];
        paging::copy_from_phys(self.host(gpa, 8)?, &mut b);
        Some(u64::from_le_bytes(b))
    }
}

impl GuestMemory for Phys<'_> {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> Option<()> {
        paging::copy_from_phys(self.host(gpa, buf.len())?, buf);
        Some(())
    }
    fn write(&mut self, gpa: u64, data: &[u8]) -> Option<()> {
        paging::copy_to_phys(self.host(gpa, data.len())?, data);
        Some(())
    }
}

/// The guest's paging registers, from its VMCB.
pub fn regs(h: &Hvm) -> PagingRegs {
    PagingRegs { cr0: h.vcpu.cr0(), cr3: h.vcpu.cr3(), cr4: h.vcpu.cr4(), efer: h.vcpu.efer() }
}

/// Copies `buf.len()` bytes from guest-virtual `gva`.
pub fn read(h: &Hvm, gva: u64, buf: &mut [u8]) -> Result<(), BadAddress> {
    if buf.len() > MAX_COPY {
        return Err(BadAddress);
    }
    let mem = Phys { npt: &h.npt };
    page_walk::copy_from_guest(&mem, &regs(h), gva, buf).map_err(|_| BadAddress)
}

/// Copies `data` to guest-virtual `gva` (every page checked before any byte is written).
pub fn write(h: &Hvm, gva: u64, data: &[u8]) -> Result<(), BadAddress> {
    if data.len() > MAX_COPY {
        return Err(BadAddress);
    }
    let mut mem = Phys { npt: &h.npt };
    let r = regs(h);
    page_walk::copy_to_guest(&mut mem, &r, gva, data).map_err(|_| BadAddress)
}

/// Reads one plain-old-data argument structure.
pub fn read_value<T: Pod>(h: &Hvm, gva: u64) -> Result<T, BadAddress> {
    let mut v = T::zeroed();
    read(h, gva, bytemuck::bytes_of_mut(&mut v))?;
    Ok(v)
}

pub fn write_value<T: Pod>(h: &Hvm, gva: u64, v: &T) -> Result<(), BadAddress> {
    write(h, gva, bytemuck::bytes_of(v))
}

/// The host-physical address of guest-virtual `gva`, valid for `len` bytes within one page.
pub fn translate(h: &Hvm, gva: u64, len: u64, write: bool) -> Option<u64> {
    if (gva & (FRAME_SIZE - 1)) + len > FRAME_SIZE {
        return None;
    }
    let mem = Phys { npt: &h.npt };
    let gpa = page_walk::translate(&mem, &regs(h), gva, page_walk::Access { write, user: false }).ok()?;
    Some(h.npt.translate(gpa & !(FRAME_SIZE - 1))? + (gpa & (FRAME_SIZE - 1)))
}
