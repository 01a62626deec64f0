//! Byte-for-byte layout check against Xen's own headers (Debian `libxen-dev`): a C program
//! prints the size of every mirrored struct and the offset of every field; each must equal
//! ours, and each of ours must appear in its output.
// Runs C code (compiler, dlopen): nothing Miri can interpret.
#![cfg(not(miri))]

mod support;

use std::collections::BTreeMap;
use std::mem::offset_of;

use shared_ring::layout::{self, PAGE_SIZE};
use shared_ring::wire::blkif::*;
use shared_ring::wire::grant_table::*;
use shared_ring::wire::netif::*;
use shared_ring::wire::xenbus_state::XenbusState;
use shared_ring::wire::xenstore::{self, XenstoreDomainInterface, XsType, XsdSockmsg};
use shared_ring::{Blkif, NetifRx, NetifTx, RingProtocol};

fn ours() -> BTreeMap<String, i64> {
    let mut m = BTreeMap::new();
    let mut put = |k: &str, v: usize| {
        m.insert(k.to_string(), v as i64);
    };
    macro_rules! size {
        ($c:literal, $t:ty) => {
            put(concat!("size ", $c), size_of::<$t>())
        };
    }
    macro_rules! off {
        ($c:literal, $t:ty, $f:ident) => {
            put(concat!("offset ", $c), offset_of!($t, $f))
        };
    }
    // The generic ring page, checked through blkif's instance (one page, 32 slots).
    put("size blkif_sring", layout::HEADER_SIZE + Blkif::SLOT_SIZE);
    put("offset blkif_sring.req_prod", layout::REQ_PROD);
    put("offset blkif_sring.req_event", layout::REQ_EVENT);
    put("offset blkif_sring.rsp_prod", layout::RSP_PROD);
    put("offset blkif_sring.rsp_event", layout::RSP_EVENT);
    put("offset blkif_sring.pvt", layout::PVT);
    put("offset blkif_sring.ring", layout::HEADER_SIZE);
    put("value blkif_sring.entry", Blkif::SLOT_SIZE);
    put("value netif_tx_sring.entry", NetifTx::SLOT_SIZE);
    put("value netif_rx_sring.entry", NetifRx::SLOT_SIZE);
    for (pages, name) in [(1, "1"), (2, "2"), (4, "4"), (16, "16")] {
        put(&format!("value ring_slots.blkif.{name}"), layout::slots_for(pages * PAGE_SIZE, Blkif::SLOT_SIZE) as usize);
    }
    put("value ring_slots.netif_tx.1", layout::slots_for(PAGE_SIZE, NetifTx::SLOT_SIZE) as usize);
    put("value ring_slots.netif_rx.1", layout::slots_for(PAGE_SIZE, NetifRx::SLOT_SIZE) as usize);

    size!("blkif_request_segment", BlkifSegment);
    off!("blkif_request_segment.gref", BlkifSegment, gref);
    off!("blkif_request_segment.first_sect", BlkifSegment, first_sect);
    off!("blkif_request_segment.last_sect", BlkifSegment, last_sect);
    size!("blkif_request", BlkifRequest);
    off!("blkif_request.operation", BlkifRequest, operation);
    off!("blkif_request.nr_segments", BlkifRequest, nr_segments);
    off!("blkif_request.handle", BlkifRequest, handle);
    off!("blkif_request.id", BlkifRequest, id);
    off!("blkif_request.sector_number", BlkifRequest, sector_number);
    off!("blkif_request.seg", BlkifRequest, seg);
    size!("blkif_request_discard", BlkifRequestDiscard);
    off!("blkif_request_discard.operation", BlkifRequestDiscard, operation);
    off!("blkif_request_discard.flag", BlkifRequestDiscard, flag);
    off!("blkif_request_discard.handle", BlkifRequestDiscard, handle);
    off!("blkif_request_discard.id", BlkifRequestDiscard, id);
    off!("blkif_request_discard.sector_number", BlkifRequestDiscard, sector_number);
    off!("blkif_request_discard.nr_sectors", BlkifRequestDiscard, nr_sectors);
    size!("blkif_request_indirect", BlkifRequestIndirect);
    off!("blkif_request_indirect.operation", BlkifRequestIndirect, operation);
    off!("blkif_request_indirect.indirect_op", BlkifRequestIndirect, indirect_op);
    off!("blkif_request_indirect.nr_segments", BlkifRequestIndirect, nr_segments);
    off!("blkif_request_indirect.id", BlkifRequestIndirect, id);
    off!("blkif_request_indirect.sector_number", BlkifRequestIndirect, sector_number);
    off!("blkif_request_indirect.handle", BlkifRequestIndirect, handle);
    off!("blkif_request_indirect.indirect_grefs", BlkifRequestIndirect, indirect_grefs);
    size!("blkif_response", BlkifResponse);
    off!("blkif_response.id", BlkifResponse, id);
    off!("blkif_response.operation", BlkifResponse, operation);
    off!("blkif_response.status", BlkifResponse, status);

    size!("netif_tx_request", NetifTxRequest);
    off!("netif_tx_request.gref", NetifTxRequest, gref);
    off!("netif_tx_request.offset", NetifTxRequest, offset);
    off!("netif_tx_request.flags", NetifTxRequest, flags);
    off!("netif_tx_request.id", NetifTxRequest, id);
    off!("netif_tx_request.size", NetifTxRequest, size);
    size!("netif_tx_response", NetifTxResponse);
    off!("netif_tx_response.id", NetifTxResponse, id);
    off!("netif_tx_response.status", NetifTxResponse, status);
    size!("netif_rx_request", NetifRxRequest);
    off!("netif_rx_request.id", NetifRxRequest, id);
    off!("netif_rx_request.pad", NetifRxRequest, pad);
    off!("netif_rx_request.gref", NetifRxRequest, gref);
    size!("netif_rx_response", NetifRxResponse);
    off!("netif_rx_response.id", NetifRxResponse, id);
    off!("netif_rx_response.offset", NetifRxResponse, offset);
    off!("netif_rx_response.flags", NetifRxResponse, flags);
    off!("netif_rx_response.status", NetifRxResponse, status);
    size!("netif_extra_info", NetifExtraInfo);
    off!("netif_extra_info.type", NetifExtraInfo, extra_type);
    off!("netif_extra_info.flags", NetifExtraInfo, flags);
    off!("netif_extra_info.u", NetifExtraInfo, u);

    size!("grant_entry_v1", GrantEntryV1);
    off!("grant_entry_v1.flags", GrantEntryV1, flags);
    off!("grant_entry_v1.domid", GrantEntryV1, domid);
    off!("grant_entry_v1.frame", GrantEntryV1, frame);

    size!("xsd_sockmsg", XsdSockmsg);
    off!("xsd_sockmsg.type", XsdSockmsg, msg_type);
    off!("xsd_sockmsg.req_id", XsdSockmsg, req_id);
    off!("xsd_sockmsg.tx_id", XsdSockmsg, tx_id);
    off!("xsd_sockmsg.len", XsdSockmsg, len);
    size!("xenstore_domain_interface", XenstoreDomainInterface);
    for (field, ours) in [
        ("req", xenstore::REQ),
        ("rsp", xenstore::RSP),
        ("req_cons", xenstore::REQ_CONS),
        ("req_prod", xenstore::REQ_PROD),
        ("rsp_cons", xenstore::RSP_CONS),
        ("rsp_prod", xenstore::RSP_PROD),
        ("server_features", xenstore::SERVER_FEATURES),
        ("connection", xenstore::CONNECTION),
        ("error", xenstore::ERROR),
    ] {
        put(&format!("offset xenstore_domain_interface.{field}"), ours);
    }
    off!("xenstore_domain_interface.req_cons", XenstoreDomainInterface, req_cons);
    off!("xenstore_domain_interface.error", XenstoreDomainInterface, error);

    let mut value = |k: &str, v: i64| {
        m.insert(format!("value {k}"), v);
    };
    for (k, v) in [
        ("BLKIF_OP_READ", OP_READ),
        ("BLKIF_OP_WRITE", OP_WRITE),
        ("BLKIF_OP_WRITE_BARRIER", OP_WRITE_BARRIER),
        ("BLKIF_OP_FLUSH_DISKCACHE", OP_FLUSH_DISKCACHE),
        ("BLKIF_OP_DISCARD", OP_DISCARD),
        ("BLKIF_OP_INDIRECT", OP_INDIRECT),
    ] {
        value(k, i64::from(v));
    }
    value("BLKIF_MAX_SEGMENTS_PER_REQUEST", MAX_SEGMENTS_PER_REQUEST as i64);
    value("BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST", MAX_INDIRECT_PAGES_PER_REQUEST as i64);
    value("BLKIF_RSP_EOPNOTSUPP", i64::from(RSP_EOPNOTSUPP));
    value("BLKIF_RSP_ERROR", i64::from(shared_ring::wire::blkif::RSP_ERROR));
    for (k, v) in [
        ("NETTXF_csum_blank", TXF_CSUM_BLANK),
        ("NETTXF_data_validated", TXF_DATA_VALIDATED),
        ("NETTXF_more_data", TXF_MORE_DATA),
        ("NETTXF_extra_info", TXF_EXTRA_INFO),
        ("NETRXF_data_validated", RXF_DATA_VALIDATED),
        ("NETRXF_csum_blank", RXF_CSUM_BLANK),
        ("NETRXF_more_data", RXF_MORE_DATA),
        ("NETRXF_extra_info", RXF_EXTRA_INFO),
        ("NETRXF_gso_prefix", RXF_GSO_PREFIX),
        ("GTF_permit_access", GTF_PERMIT_ACCESS),
        ("GTF_readonly", GTF_READONLY),
        ("GTF_reading", GTF_READING),
        ("GTF_writing", GTF_WRITING),
        ("GTF_sub_page", GTF_SUB_PAGE),
    ] {
        value(k, i64::from(v));
    }
    value("NETIF_RSP_DROPPED", i64::from(RSP_DROPPED));
    value("NETIF_RSP_NULL", i64::from(RSP_NULL));
    value("XEN_NETIF_EXTRA_TYPE_GSO", i64::from(EXTRA_TYPE_GSO));
    value("XEN_NETIF_EXTRA_TYPE_HASH", i64::from(EXTRA_TYPE_HASH));
    value("XEN_NETIF_GSO_TYPE_TCPV6", i64::from(GSO_TYPE_TCPV6));
    value("XENSTORE_RING_SIZE", i64::from(xenstore::RING_SIZE));
    value("XENSTORE_PAYLOAD_MAX", i64::from(xenstore::PAYLOAD_MAX));
    value("XS_WATCH_EVENT", XsType::WatchEvent as i64);
    value("XS_RESET_WATCHES", XsType::ResetWatches as i64);
    value("XS_DIRECTORY_PART", XsType::DirectoryPart as i64);
    value("XenbusStateConnected", XenbusState::Connected as i64);
    value("XenbusStateReconfigured", XenbusState::Reconfigured as i64);
    m
}

#[test]
fn every_size_offset_and_constant_matches_xens_headers() {
    support::require_xen_headers();
    let program = support::scratch_dir().join("xen_layout");
    support::compile(&["xen_layout.c"], &program, &[]);
    let output = std::process::Command::new(&program).output().expect("run xen_layout");
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
        mismatches.push(format!("{key}: ours only, not checked by xen_layout.c"));
    }
    assert!(mismatches.is_empty(), "layout differences:\n{}", mismatches.join("\n"));
    assert!(theirs.len() > 100, "only {} facts checked", theirs.len());
}
