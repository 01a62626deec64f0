//! Runs the PVH builder's host-side logic on a real kernel:
//!
//! ```text
//! cargo run -p hv-core --example pvh_inspect -- <vmlinux> [ram MiB] [initrd bytes]
//! ```
//!
//! prints the segments and entry point `parse_pvh` finds and the layout `plan` makes.
//!
//! Given a bzImage (`/boot/vmlinuz-*`) instead of the ELF, it prints where the compressed
//! `vmlinux` payload is (boot protocol header: `setup_sects` at 0x1f1, `payload_offset` and
//! `payload_length` at 0x248/0x24c, relative to the protected-mode code at
//! `(setup_sects + 1) * 512`) and the command that extracts it; Debian's is xz-compressed:
//! `tail -c +<start + 1> vmlinuz | head -c <len> | xz -dc > vmlinux`. On Debian's
//! 6.1.0-57 image xz ends with "Unexpected end of input" after writing the whole ELF (65906612
//! bytes; `readelf -lhn` reads every header and note, and the section header table ends inside
//! the file).

use hv_core::pvh::layout::{PlanInput, plan};
use hv_core::pvh::{acpi, kernel};

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: pvh_inspect <vmlinux> [ram MiB] [initrd bytes]");
    let ram_mib: u64 = args.next().map_or(256, |a| a.parse().expect("RAM in MiB"));
    let initrd_len: u64 = args.next().map_or(0, |a| a.parse().expect("initrd length in bytes"));
    let file = std::fs::read(&path).expect("read the kernel");

    if file.get(0x202..0x206) == Some(b"HdrS".as_slice()) {
        let setup_sects = u64::from(file[0x1f1].max(4));
        let word = |o: usize| u64::from(u32::from_le_bytes(file[o..o + 4].try_into().unwrap()));
        let start = (setup_sects + 1) * 512 + word(0x248);
        let len = word(0x24c);
        let magic = &file[start as usize..start as usize + 6];
        println!("{path}: a bzImage; compressed vmlinux at {start} ({start:#x}), {len} bytes, magic {magic:02x?}");
        println!("extract: tail -c +{} {path} | head -c {len} | xz -dc > vmlinux", start + 1);
        return;
    }

    let ram = ram_mib << 20;
    let image = match kernel::parse_pvh(&file, ram) {
        Ok(image) => image,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    println!("{path}: PVH kernel, entry {:#x}, image {:#x}..{:#x}", image.entry, image.start(), image.end);
    for s in &image.segments {
        println!(
            "  paddr {:#010x} mem {:#09x} file {:#09x} at offset {:#x}",
            s.paddr, s.mem_size, s.file_size, s.file_offset
        );
    }
    let input = PlanInput {
        ram_bytes: ram,
        kernel: image.extent(),
        cmdline_len: 64,
        initrd_len,
        acpi_len: acpi::len(1),
        special_pages: 2,
    };
    match plan(&input) {
        Ok(p) => {
            println!("layout for {ram_mib} MiB RAM, initrd {initrd_len} bytes:");
            println!("  initrd     {:x?}", p.initrd);
            println!("  start_info {:#x} (boot info {} bytes)", p.start_info, p.boot_info_len);
            println!("  acpi       {:#x} (rsdp {:#x}), special pages {:#x}", p.acpi.gpa, p.rsdp, p.special.gpa);
            for e in &p.memmap_entries {
                println!("  memmap {:#010x}..{:#010x} type {}", e.addr, e.addr + e.size, e.kind);
            }
        }
        Err(e) => println!("no layout for {ram_mib} MiB RAM: {e}"),
    }
}
