//! Byte-for-byte layout check of `hv_core::pvh::start_info` against Xen's own header
//! (`/usr/include/xen/arch-x86/hvm/start_info.h`, Debian `libxen-dev`): a C program compiled by
//! the host C compiler (`$CC`, default `cc`) prints every struct size, field offset and
//! constant; each must equal ours, and each of ours must be in its output.

use std::collections::BTreeMap;
use std::mem::offset_of;
use std::path::Path;
use std::process::Command;

use hv_core::pvh::kernel::XEN_ELFNOTE_PHYS32_ENTRY;
use hv_core::pvh::start_info::{HVM_START_MAGIC, HvmMemmapEntry, HvmModlistEntry, HvmStartInfo, memmap_type};

const HEADER: &str = "/usr/include/xen/arch-x86/hvm/start_info.h";

fn ours() -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: i64| {
        m.insert(k.to_string(), v);
    };
    macro_rules! off {
        ($c:literal, $t:ty, $($f:ident => $cf:literal),*) => {
            put(concat!("size ", $c), size_of::<$t>() as i64);
            $(put(concat!("offset ", $c, ".", $cf), offset_of!($t, $f) as i64);)*
        };
    }
    off!("hvm_start_info", HvmStartInfo, magic => "magic", version => "version", flags => "flags",
        nr_modules => "nr_modules", modlist_paddr => "modlist_paddr", cmdline_paddr => "cmdline_paddr",
        rsdp_paddr => "rsdp_paddr", memmap_paddr => "memmap_paddr", memmap_entries => "memmap_entries",
        reserved => "reserved");
    off!("hvm_modlist_entry", HvmModlistEntry, paddr => "paddr", size => "size",
        cmdline_paddr => "cmdline_paddr", reserved => "reserved");
    off!("hvm_memmap_table_entry", HvmMemmapEntry, addr => "addr", size => "size", kind => "type",
        reserved => "reserved");
    put("value XEN_HVM_START_MAGIC_VALUE", i64::from(HVM_START_MAGIC));
    for (name, v) in [
        ("RAM", memmap_type::RAM),
        ("RESERVED", memmap_type::RESERVED),
        ("ACPI", memmap_type::ACPI),
        ("NVS", memmap_type::NVS),
        ("UNUSABLE", memmap_type::UNUSABLE),
        ("DISABLED", memmap_type::DISABLED),
        ("PMEM", memmap_type::PMEM),
    ] {
        put(&format!("value XEN_HVM_MEMMAP_TYPE_{name}"), i64::from(v));
    }
    put("value XEN_ELFNOTE_PHYS32_ENTRY", i64::from(XEN_ELFNOTE_PHYS32_ENTRY));
    m
}

#[test]
fn start_info_matches_xens_header() {
    assert!(
        Path::new(HEADER).exists(),
        "{HEADER} is missing: the Xen public headers are needed to check the PVH ABI. \
         Install them with `apt-get install libxen-dev`."
    );
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/start_info_layout.c");
    let program = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hv-core-start-info-layout");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let built = Command::new(&cc)
        .args(["-std=gnu11", "-Wall", "-Werror", "-o"])
        .arg(&program)
        .arg(&source)
        .output()
        .unwrap_or_else(|e| panic!("run the C compiler `{cc}` ({e}); install one with `apt-get install gcc`"));
    assert!(built.status.success(), "C compile failed:\n{}", String::from_utf8_lossy(&built.stderr));
    let output = Command::new(&program).output().expect("run the layout program");
    assert!(output.status.success());
    let theirs: BTreeMap<String, i64> = String::from_utf8(output.stdout)
        .expect("utf-8")
        .lines()
        .map(|line| {
            let (key, value) = line.rsplit_once(' ').expect("`key value` lines");
            (key.to_string(), value.parse().expect("integer"))
        })
        .collect();
    let ours = ours();
    let mut mismatches = Vec::new();
    for (key, value) in &theirs {
        match ours.get(key) {
            Some(ours) if ours == value => {}
            Some(ours) => mismatches.push(format!("{key}: Xen {value}, ours {ours}")),
            None => mismatches.push(format!("{key}: Xen {value}, ours missing")),
        }
    }
    for key in ours.keys().filter(|k| !theirs.contains_key(*k)) {
        mismatches.push(format!("{key}: ours only, not printed by start_info_layout.c"));
    }
    assert!(mismatches.is_empty(), "layout differences:\n{}", mismatches.join("\n"));
    assert_eq!(theirs.len(), 30, "facts checked");
}
