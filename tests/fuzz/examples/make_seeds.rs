//! Writes the seed corpus of the targets added with finding 8 (`corpus/<target>/<seed>`), so the
//! seeds can be regenerated when a format changes. Run from `tests/fuzz`:
//!
//! ```text
//! strip -s target/x86_64-unknown-none/release/{spinner,hello} (into /tmp)
//! cargo +nightly run --example make_seeds -- ../../target/bundles/spin.bundle \
//!     ../../target/bundles/pingpong.bundle /tmp/spinner /tmp/hello
//! ```
//!
//! `cargo +nightly run --example make_seeds -- control` rewrites only `corpus/control_frames`
//! (after a control protocol change); `-- boot` only `corpus/boot_tags`; `-- dmar` only `corpus/acpi_dmar`.
//!
//! The ELF seeds are real domain images from the build (stripped, so libFuzzer's input length
//! stays small); the bundle seeds carry the real `spin` and `pingpong` topologies read back from
//! real bundles, `spin` with real (stripped) images, `pingpong` with 64-byte stand-ins.
// `4 * 1 + 1`: the scripts spell out how their selector bytes are built.
#![allow(clippy::identity_op)]

use std::path::Path;

use hv_bundle::{Bundle, Topology};
use hv_control::{
    DeviceRow, DeviceSpec, DomRef, DomainRow, DomainSpec, DomainType, OnCrash, Request, Response, State, encode,
};
use shared_ring::wire::blkif::{BlkifRequest, BlkifRequestSlot, BlkifSegment, OP_FLUSH_DISKCACHE, OP_READ, OP_WRITE};
use shared_ring::wire::netif::{
    EXTRA_FLAG_MORE, EXTRA_TYPE_MCAST_ADD, NetifExtraInfo, NetifRxRequest, NetifTxRequest, TXF_EXTRA_INFO,
    TXF_MORE_DATA,
};
use shared_ring::wire::xenstore::{XsType, XsdSockmsg};

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), bytes).unwrap();
    println!("corpus/{target}/{name}: {} bytes", bytes.len());
}

fn topology_of(bundle: &str) -> Topology {
    let raw = std::fs::read(bundle).unwrap_or_else(|e| panic!("{bundle}: {e}"));
    Bundle::parse(&raw).unwrap().topology().unwrap()
}

fn elf_and_bundles(args: &[String]) {
    let [spin, pingpong, spinner, hello] = args else {
        panic!("usage: make_seeds SPIN_BUNDLE PINGPONG_BUNDLE SPINNER_ELF HELLO_ELF");
    };
    let spinner = std::fs::read(spinner).unwrap();
    let hello = std::fs::read(hello).unwrap();
    write("elf_parse", "spinner", &spinner);
    write("elf_parse", "hello", &hello);

    let topology = topology_of(spin);
    let images: Vec<(String, Vec<u8>)> = ["dom0", "spinner", "hello"]
        .iter()
        .map(|n| (n.to_string(), if *n == "spinner" { spinner.clone() } else { hello.clone() }))
        .collect();
    write("bundle_parse", "spin", &hv_bundle::build(&topology, &images).unwrap());
    let topology = topology_of(pingpong);
    let mut names: Vec<String> = topology.domains.iter().map(|d| d.image.clone()).collect();
    names.sort();
    names.dedup();
    let images: Vec<(String, Vec<u8>)> = names.into_iter().map(|n| (n, hello[..64].to_vec())).collect();
    write("bundle_parse", "pingpong", &hv_bundle::build(&topology, &images).unwrap());
}

fn control() {
    let spec = DomainSpec {
        name: "web".into(),
        domain_type: DomainType::Pv,
        image: "httpd".into(),
        memory_mib: 8,
        args: "ip=10.0.2.15/24".into(),
        kernel: None,
        ramdisk: None,
        cmdline: String::new(),
        driver: false,
        pci: vec!["1af4:1000".into()],
        vifs: vec![DeviceSpec { backend: "netback".into(), params: "pcap=1".into() }],
        disks: vec![DeviceSpec { backend: "blkback".into(), params: "offset_mib=0 size_mib=16 mode=w".into() }],
        on_crash: OnCrash::Restart,
    };
    let linux = DomainSpec {
        name: "linux1".into(),
        domain_type: DomainType::Pvh,
        image: String::new(),
        memory_mib: 128,
        args: String::new(),
        kernel: Some("linux".into()),
        ramdisk: Some("linux-initramfs".into()),
        cmdline: "console=hvc0 loglevel=7 mitigations=off pci=off guest.mode=stay".into(),
        driver: false,
        pci: vec![],
        vifs: vec![],
        disks: vec![],
        on_crash: OnCrash::Destroy,
    };
    // Four chunk sizes, then the stream.
    let mut requests = vec![7, 255, 1, 30];
    for (i, r) in [
        Request::Ping,
        Request::List,
        Request::Info,
        Request::Create(spec),
        Request::Create(linux),
        Request::Destroy { dom: DomRef::Name("web".into()), crash: true },
        Request::Pause(DomRef::Id(3)),
        Request::Unpause(DomRef::Id(3)),
        Request::Console { dom: DomRef::Id(3), from: 1 << 40 },
        Request::Devices(DomRef::Name("web".into())),
    ]
    .iter()
    .enumerate()
    {
        requests.extend(encode(i as u32, r));
    }
    write("control_frames", "requests", &requests);
    let mut responses = vec![255, 255, 255, 255];
    let row =
        DomainRow { id: 1, name: "netback".into(), memory_mib: 8, state: State::Blocked, cpu_time_ns: 5, restarts: 1 };
    let dev = DeviceRow {
        kind: "vif".into(),
        index: 0,
        backend: "netback".into(),
        backend_id: Some(1),
        frontend_state: 4,
        backend_state: 4,
    };
    for (i, r) in [
        Response::Pong { version: hv_control::VERSION },
        Response::Ok,
        Response::Error("no such domain".into()),
        Response::List(vec![row]),
        Response::Info(Default::default()),
        Response::Created { id: 4 },
        Response::Devices { rows: vec![dev], connected_after_ns: Some(1000) },
        Response::Console { start: 0, data: b"[web] hello\n\0".to_vec(), end: 13 },
    ]
    .iter()
    .enumerate()
    {
        responses.extend(encode(i as u32, r));
    }
    write("control_frames", "responses", &responses);
    let mut garbage = vec![3, 3, 3, 3, 0x41, 0x42, 0xff, 0x13, 0];
    let other = hv_control::Envelope { version: hv_control::VERSION + 1, id: 42, body: Request::List };
    garbage.extend(postcard::to_allocvec_cobs(&other).unwrap());
    garbage.extend(encode(7, &Request::Ping));
    write("control_frames", "garbage_and_other_version", &garbage);
}

/// blkback script ops: 0 push slot, 1 serve (budget), 2 rewrite header, 3 read responses.
fn blkback() {
    let request = |operation, id, sector_number, segs: &[(u32, u8, u8)]| {
        let mut r = BlkifRequest { operation, nr_segments: segs.len() as u8, id, sector_number, ..Default::default() };
        for (s, &(gref, first_sect, last_sect)) in r.seg.iter_mut().zip(segs) {
            *s = BlkifSegment { gref, first_sect, last_sect };
        }
        let mut op = vec![0u8];
        op.extend_from_slice(BlkifRequestSlot::from(&r).as_raw());
        op
    };
    let mut s = b"offset_mib=1 size_mib=1 mode=w\n".to_vec();
    s.extend(request(OP_WRITE, 1, 0, &[(2, 0, 7), (4, 1, 3)]));
    s.extend([1, 31, 3]);
    s.extend(request(OP_READ, 2, 0, &[(6, 0, 7), (8, 0, 2)]));
    s.extend(request(OP_FLUSH_DISKCACHE, 3, 0, &[]));
    s.extend(request(OP_READ, 4, 2047, &[(10, 0, 0)]));
    s.extend([1, 31, 3]);
    write("blkback_requests", "write_read_flush", &s);

    let mut s = b"offset_mib=0 size_mib=2 mode=r\n".to_vec();
    s.extend(request(OP_WRITE, 9, 0, &[(2, 0, 7)]));
    s.extend(request(OP_READ, 10, 4095, &[(2, 0, 1)]));
    s.extend(request(OP_READ, 11, 0, &[(3, 0, 7)]));
    s.extend(request(OP_READ, 12, 0, &[(99, 0, 7)]));
    s.extend(request(OP_READ, 13, 0, &[(2, 7, 0)]));
    s.extend([1, 31, 3]);
    write("blkback_requests", "read_only_and_bad_requests", &s);

    let mut s = b"\n".to_vec();
    s.extend(request(OP_READ, 5, 0, &[(2, 0, 7)]));
    s.extend([2, 0, 200, 0, 0, 0, 1, 31, 3]); // req_prod far ahead: the ring breaks
    write("blkback_requests", "req_prod_overrun", &s);
}

/// netback script ops: 0 tx slot, 1 tx round, 2 tx rewrite, 3 tx responses, 4 enqueue (u16),
/// 5 rx request, 6 rx round, 7 rx responses (byte < 0x80) or rx rewrite.
fn netback() {
    let tx = |gref, offset, flags, id, size| {
        let mut op = vec![0u8];
        op.extend(NetifTxRequest { gref, offset, flags, id, size }.to_raw());
        op
    };
    let mut s = Vec::new();
    s.extend(tx(2, 0, 0, 1, 60));
    s.extend(tx(4, 100, TXF_MORE_DATA, 2, 1000));
    s.extend(tx(6, 0, TXF_MORE_DATA, 3, 600));
    s.extend(tx(8, 2000, 0, 4, 300));
    s.extend([1, 3]);
    write("netback_tx", "single_and_multi_slot", &s);

    let mut s = Vec::new();
    s.extend(tx(2, 0, TXF_EXTRA_INFO | TXF_MORE_DATA, 5, 200));
    let mut extra = [0u8; 12];
    let mcast = NetifExtraInfo { extra_type: EXTRA_TYPE_MCAST_ADD, flags: EXTRA_FLAG_MORE, u: [1, 0, 0x5e, 0, 0, 1] };
    extra[..8].copy_from_slice(&mcast.to_raw());
    s.push(0);
    s.extend(extra);
    let gso = NetifExtraInfo::gso(1448, 1, 0, false);
    extra[..8].copy_from_slice(&gso.to_raw());
    s.push(0);
    s.extend(extra);
    s.extend(tx(4, 0, 0, 6, 100));
    s.extend([1, 3]);
    write("netback_tx", "extra_info_chain", &s);

    let mut s = Vec::new();
    s.extend([4, 60, 0, 4, 0xea, 5]); // a 60-byte and a 1514-byte frame
    for (id, gref) in [(1u16, 2u32), (2, 3)] {
        s.push(5);
        s.extend(NetifRxRequest { id, pad: 0, gref }.to_raw());
    }
    s.extend([6, 7, 0, 0, 0, 0, 0]);
    write("netback_tx", "rx_delivery", &s);
}

/// A GSO packet as netfront sends one: Ethernet, IPv4 or IPv6, TCP (data offset 8: a 12-byte
/// timestamp option), `payload` bytes. Checksums are left zero (the segmenter computes them).
fn tcp_packet(v6: bool, payload: usize) -> Vec<u8> {
    let mut p = vec![0x00, 0x16, 0x3e, 0, 5, 0, 0x52, 0x54, 0, 0x12, 0x34, 0x56];
    let tcp_len = 32 + payload;
    if v6 {
        p.extend([0x86, 0xdd, 0x60, 0, 0, 0]);
        p.extend((tcp_len as u16).to_be_bytes());
        p.extend([6, 64]);
        p.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 15]);
        p.extend([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    } else {
        p.extend([0x08, 0x00, 0x45, 0]);
        p.extend(((20 + tcp_len) as u16).to_be_bytes());
        p.extend([0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 2, 15, 10, 0, 2, 2]);
    }
    // Ports 5201 → 40000, seq, ack, data offset 8, ACK|PSH, window, checksum, urgent.
    p.extend([0x14, 0x51, 0x9c, 0x40, 0x7f, 0xff, 0xf0, 0, 0, 0, 0, 9, 0x80, 0x18, 4, 0, 0, 0, 0, 0]);
    p.extend([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    p.extend((0..payload).map(|i| (i * 7) as u8));
    p
}

/// netback_gso inputs: GSO type byte (even: TCPV4, odd: TCPV6), MSS (u16 LE), the packet.
fn netback_gso() {
    for (name, v6, mss, payload) in [
        ("tcpv4_4k_mss1448", false, 1448u16, 4000),
        ("tcpv6_3k_mss1428", true, 1428, 3000),
        ("tcpv4_one_segment", false, 1448, 100),
    ] {
        let mut s = vec![u8::from(v6)];
        s.extend(mss.to_le_bytes());
        s.extend(tcp_packet(v6, payload));
        write("netback_gso", name, &s);
    }
}

fn xs(kind: XsType, req_id: u32, tx_id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = XsdSockmsg { msg_type: kind as u32, req_id, tx_id, len: payload.len() as u32 }.to_raw().to_vec();
    out.extend_from_slice(payload);
    out
}

/// store_server script: first byte picks the limits; ops 0 raw, 1/2 framed, 3 drain, 4 partial
/// read, 5 page + pump, 6 introduce/release, 7 Dom0 request, 8 split message. Domain bytes: 3 →
/// domain 1, 1 → domain 2, 2 → domain 3, 0 → Dom0.
fn store() {
    // Framed: op, domain, kind, tx selector, req_id, path pick (index or raw length), second
    // field selector.
    let framed = |d: u8, kind: XsType, tx: u8, pick: u8, raw_path: &[u8], second: u8, rest: &[u8]| {
        let mut v = vec![1, d, kind as u8, tx, 1, pick];
        v.extend_from_slice(raw_path);
        v.push(second);
        v.extend_from_slice(rest);
        v
    };
    let mut s = vec![0];
    s.extend(framed(3, XsType::Write, 0, 3, b"", 4 * 1 + 1, b"1"));
    s.extend(framed(3, XsType::Read, 0, 3, b"", 0, b""));
    s.extend(framed(3, XsType::Mkdir, 0, 0, b"", 0, b""));
    s.extend(framed(3, XsType::Directory, 0, 9, b"", 0, b""));
    s.extend(framed(3, XsType::Watch, 0, 10, b"", 4 * 3 + 2, b"tok"));
    s.extend(framed(1, XsType::Write, 0, 10, b"", 4 * 2 + 1, b"hi"));
    s.extend(framed(3, XsType::SetPerms, 0, 1, b"", 4 * 2 + 3, &[3 * 8 + 1, 1 * 8 + 1]));
    s.extend(framed(3, XsType::GetPerms, 0, 1, b"", 0, b""));
    s.extend([3, 3, 3, 1]);
    write("store_server", "write_read_watch_perms", &s);

    let mut s = vec![0];
    s.extend(framed(3, XsType::TransactionStart, 0, 17, b"", 0, b""));
    s.extend([3, 3]);
    s.extend(framed(3, XsType::Write, 2, 0, b"", 4 * 1 + 1, b"v"));
    s.extend(framed(3, XsType::Read, 2, 0, b"", 0, b""));
    s.extend(framed(3, XsType::TransactionEnd, 2, 32 + 1, b"T", 0, b""));
    s.extend([3, 3, 6, 0x80, 6, 0, 3, 0]);
    write("store_server", "transaction_release", &s);

    // Dom0 gives its node to domain 1 inside a transaction, domain 1 is released, the
    // transaction commits (it must fail with EAGAIN: the node would be owned by a gone domain).
    let mut s = vec![0];
    s.extend(framed(0, XsType::Write, 0, 0, b"", 4 * 1 + 1, b"x"));
    s.extend(framed(0, XsType::TransactionStart, 0, 17, b"", 0, b""));
    s.extend([3, 0]);
    s.extend(framed(0, XsType::SetPerms, 2, 0, b"", 4 * 1 + 3, &[25])); // "n1"
    s.extend([6, 0x81]); // release domain 1
    s.extend(framed(0, XsType::TransactionEnd, 2, 33, b"T", 0, b""));
    s.extend([3, 0]);
    write("store_server", "transaction_across_release", &s);

    // A Read in the domain's page, pumped; and a message split over two receives.
    let mut s = vec![1];
    let msg = xs(XsType::Read, 7, 0, b"/local/domain/1\0");
    s.extend([5, 0, msg.len() as u8]);
    s.extend(&msg);
    s.extend([8, 3, 10, 0]);
    s.extend(b"a/b\0value\0");
    s.extend([7, 0, 3, 4]);
    s.extend(b"xy");
    s.extend([3, 3]);
    write("store_server", "page_pump_and_split", &s);
}

/// An RSDP as firmware lays it out (ACPI 6.5 §5.2.5.3), both checksums fixed.
fn rsdp(revision: u8, rsdt: u32, xsdt: u64) -> Vec<u8> {
    let mut b = vec![0u8; if revision >= 2 { 36 } else { 20 }];
    b[..8].copy_from_slice(b"RSD PTR ");
    b[9..15].copy_from_slice(b"BOCHS ");
    b[15] = revision;
    b[16..20].copy_from_slice(&rsdt.to_le_bytes());
    b[8] = 0u8.wrapping_sub(b[..20].iter().fold(0u8, |a, &x| a.wrapping_add(x)));
    if revision >= 2 {
        b[20..24].copy_from_slice(&36u32.to_le_bytes());
        b[24..32].copy_from_slice(&xsdt.to_le_bytes());
        b[32] = 0u8.wrapping_sub(b.iter().fold(0u8, |a, &x| a.wrapping_add(x)));
    }
    b
}

/// `boot_tags`: selector byte 0 + an EFI memory map tag's payload shaped like OVMF's on q35 with
/// 256 MiB (48-byte descriptors), selector 1 + the RSDPs SeaBIOS (ACPI 1.0, RSDT) and OVMF
/// (ACPI 2.0, XSDT) give; addresses as hv-core logged them under QEMU 7.2.
fn boot_tags() {
    let mut map = vec![0u8];
    map.extend(48u32.to_le_bytes());
    map.extend(1u32.to_le_bytes());
    let descs: [(u32, u64, u64); 10] = [
        (3, 0, 1),                // boot services code
        (7, 0x1000, 0x9f),        // conventional below 640 KiB
        (7, 0x10_0000, 0x700),    // 1 MiB ..
        (2, 0x80_0000, 0x100),    // loader data: GRUB, the hypervisor, its modules
        (4, 0x90_0000, 0x200),    // boot services data
        (7, 0xb0_0000, 0xe000),   // conventional
        (9, 0xfb7_b000, 0x4),     // ACPI reclaim
        (10, 0xfb7_f000, 0x80),   // ACPI NVS
        (6, 0xfbf_f000, 0x100),   // runtime services data
        (11, 0xffc0_0000, 0x400), // MMIO: the flash
    ];
    for (ty, start, pages) in descs {
        let mut d = [0u8; 48];
        d[0..4].copy_from_slice(&ty.to_le_bytes());
        d[8..16].copy_from_slice(&start.to_le_bytes());
        d[24..32].copy_from_slice(&pages.to_le_bytes());
        d[32..40].copy_from_slice(&0xfu64.to_le_bytes());
        map.extend(d);
    }
    write("boot_tags", "efi_map_ovmf", &map);
    let mut seabios = vec![1u8];
    seabios.extend(rsdp(0, 0x0ffe_2270, 0));
    write("boot_tags", "rsdp_seabios", &seabios);
    let mut ovmf = vec![1u8];
    ovmf.extend(rsdp(2, 0x0fb7_d074, 0x0fb7_d0e8));
    write("boot_tags", "rsdp_ovmf", &ovmf);
}

/// `acpi_dmar`: selector 0 + the DMAR QEMU's `-device intel-iommu` gives on q35 (one
/// INCLUDE_PCI_ALL unit at 0xfed90000), once plain and once with the IOAPIC scope intremap adds;
/// selector 1 + an RSDT and 3 + an XSDT listing tables where SeaBIOS and OVMF put them.
fn acpi_dmar() {
    use hv_core::iommu::{dmar, sdt};
    let mut plain = vec![0u8];
    plain.extend(dmar::make_qemu_like(0xfed9_0000, &[]));
    write("acpi_dmar", "dmar_qemu", &plain);
    let mut ioapic = vec![0u8];
    ioapic.extend(dmar::make_qemu_like(0xfed9_0000, &[3, 8, 0, 0, 0, 0xff, 0, 0]));
    write("acpi_dmar", "dmar_qemu_intremap", &ioapic);
    let rsdt_body: Vec<u8> = [0x0ffe_1a1du32, 0x0ffe_1a91, 0x0ffe_1b21].iter().flat_map(|a| a.to_le_bytes()).collect();
    let mut rsdt = vec![1u8];
    rsdt.extend(sdt::make_table(b"RSDT", 1, &rsdt_body));
    write("acpi_dmar", "rsdt_seabios", &rsdt);
    let xsdt_body: Vec<u8> = [0x0fb7_a000u64, 0x0fb7_9000].iter().flat_map(|a| a.to_le_bytes()).collect();
    let mut xsdt = vec![3u8];
    xsdt.extend(sdt::make_table(b"XSDT", 1, &xsdt_body));
    write("acpi_dmar", "xsdt_ovmf", &xsdt);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `make_seeds control`: only the control-channel seeds (they need no build artifacts).
    if args == ["control"] {
        control();
        return;
    }
    // `make_seeds gso`: only the segmenter's seeds.
    if args == ["gso"] {
        netback_gso();
        return;
    }
    // `make_seeds boot`: only the boot tag seeds (no build artifacts either).
    if args == ["boot"] {
        boot_tags();
        return;
    }
    // `make_seeds dmar`: only the ACPI/DMAR seeds (no build artifacts either).
    if args == ["dmar"] {
        acpi_dmar();
        return;
    }
    elf_and_bundles(&args);
    control();
    boot_tags();
    acpi_dmar();
    blkback();
    netback();
    netback_gso();
    store();
}
