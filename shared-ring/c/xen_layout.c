/* Prints the size of every Xen wire type shared-ring mirrors and the offset of every field,
 * one "name value" per line, for tests/xen_headers.rs to compare with the Rust types. */
#include <stdio.h>
#include "xen_abi.h"

#define SIZE(t) printf("size %s %zu\n", #t, sizeof(struct t))
#define OFF(t, f) printf("offset %s.%s %zu\n", #t, #f, offsetof(struct t, f))
#define VALUE(name, v) printf("value %s %lld\n", name, (long long)(v))

int main(void) {
    SIZE(blkif_sring); OFF(blkif_sring, req_prod); OFF(blkif_sring, req_event);
    OFF(blkif_sring, rsp_prod); OFF(blkif_sring, rsp_event); OFF(blkif_sring, pvt); OFF(blkif_sring, ring);
    VALUE("blkif_sring.entry", sizeof(union blkif_sring_entry));

    SIZE(blkif_request_segment); OFF(blkif_request_segment, gref);
    OFF(blkif_request_segment, first_sect); OFF(blkif_request_segment, last_sect);
    SIZE(blkif_request); OFF(blkif_request, operation); OFF(blkif_request, nr_segments);
    OFF(blkif_request, handle); OFF(blkif_request, id); OFF(blkif_request, sector_number); OFF(blkif_request, seg);
    SIZE(blkif_request_discard); OFF(blkif_request_discard, operation); OFF(blkif_request_discard, flag);
    OFF(blkif_request_discard, handle); OFF(blkif_request_discard, id);
    OFF(blkif_request_discard, sector_number); OFF(blkif_request_discard, nr_sectors);
    SIZE(blkif_request_indirect); OFF(blkif_request_indirect, operation); OFF(blkif_request_indirect, indirect_op);
    OFF(blkif_request_indirect, nr_segments); OFF(blkif_request_indirect, id);
    OFF(blkif_request_indirect, sector_number); OFF(blkif_request_indirect, handle);
    OFF(blkif_request_indirect, indirect_grefs);
    SIZE(blkif_response); OFF(blkif_response, id); OFF(blkif_response, operation); OFF(blkif_response, status);

    SIZE(netif_tx_request); OFF(netif_tx_request, gref); OFF(netif_tx_request, offset);
    OFF(netif_tx_request, flags); OFF(netif_tx_request, id); OFF(netif_tx_request, size);
    SIZE(netif_tx_response); OFF(netif_tx_response, id); OFF(netif_tx_response, status);
    SIZE(netif_rx_request); OFF(netif_rx_request, id); OFF(netif_rx_request, pad); OFF(netif_rx_request, gref);
    SIZE(netif_rx_response); OFF(netif_rx_response, id); OFF(netif_rx_response, offset);
    OFF(netif_rx_response, flags); OFF(netif_rx_response, status);
    SIZE(netif_extra_info); OFF(netif_extra_info, type); OFF(netif_extra_info, flags); OFF(netif_extra_info, u);
    VALUE("netif_tx_sring.entry", sizeof(union netif_tx_sring_entry));
    VALUE("netif_rx_sring.entry", sizeof(union netif_rx_sring_entry));

    SIZE(grant_entry_v1); OFF(grant_entry_v1, flags); OFF(grant_entry_v1, domid); OFF(grant_entry_v1, frame);

    SIZE(xsd_sockmsg); OFF(xsd_sockmsg, type); OFF(xsd_sockmsg, req_id); OFF(xsd_sockmsg, tx_id); OFF(xsd_sockmsg, len);
    SIZE(xenstore_domain_interface); OFF(xenstore_domain_interface, req); OFF(xenstore_domain_interface, rsp);
    OFF(xenstore_domain_interface, req_cons); OFF(xenstore_domain_interface, req_prod);
    OFF(xenstore_domain_interface, rsp_cons); OFF(xenstore_domain_interface, rsp_prod);
    OFF(xenstore_domain_interface, server_features); OFF(xenstore_domain_interface, connection);
    OFF(xenstore_domain_interface, error);

    VALUE("ring_slots.blkif.1", __CONST_RING_SIZE(blkif, 4096));
    VALUE("ring_slots.blkif.2", __CONST_RING_SIZE(blkif, 8192));
    VALUE("ring_slots.blkif.4", __CONST_RING_SIZE(blkif, 16384));
    VALUE("ring_slots.blkif.16", __CONST_RING_SIZE(blkif, 65536));
    VALUE("ring_slots.netif_tx.1", __CONST_RING_SIZE(netif_tx, 4096));
    VALUE("ring_slots.netif_rx.1", __CONST_RING_SIZE(netif_rx, 4096));

    VALUE("BLKIF_OP_READ", BLKIF_OP_READ); VALUE("BLKIF_OP_WRITE", BLKIF_OP_WRITE);
    VALUE("BLKIF_OP_WRITE_BARRIER", BLKIF_OP_WRITE_BARRIER); VALUE("BLKIF_OP_FLUSH_DISKCACHE", BLKIF_OP_FLUSH_DISKCACHE);
    VALUE("BLKIF_OP_DISCARD", BLKIF_OP_DISCARD); VALUE("BLKIF_OP_INDIRECT", BLKIF_OP_INDIRECT);
    VALUE("BLKIF_MAX_SEGMENTS_PER_REQUEST", BLKIF_MAX_SEGMENTS_PER_REQUEST);
    VALUE("BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST", BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST);
    VALUE("BLKIF_RSP_EOPNOTSUPP", BLKIF_RSP_EOPNOTSUPP); VALUE("BLKIF_RSP_ERROR", BLKIF_RSP_ERROR);
    VALUE("NETTXF_csum_blank", NETTXF_csum_blank); VALUE("NETTXF_data_validated", NETTXF_data_validated);
    VALUE("NETTXF_more_data", NETTXF_more_data); VALUE("NETTXF_extra_info", NETTXF_extra_info);
    VALUE("NETRXF_data_validated", NETRXF_data_validated); VALUE("NETRXF_csum_blank", NETRXF_csum_blank);
    VALUE("NETRXF_more_data", NETRXF_more_data); VALUE("NETRXF_extra_info", NETRXF_extra_info);
    VALUE("NETRXF_gso_prefix", NETRXF_gso_prefix);
    VALUE("NETIF_RSP_DROPPED", NETIF_RSP_DROPPED); VALUE("NETIF_RSP_NULL", NETIF_RSP_NULL);
    VALUE("XEN_NETIF_EXTRA_TYPE_GSO", XEN_NETIF_EXTRA_TYPE_GSO); VALUE("XEN_NETIF_EXTRA_TYPE_HASH", XEN_NETIF_EXTRA_TYPE_HASH);
    VALUE("XEN_NETIF_GSO_TYPE_TCPV6", XEN_NETIF_GSO_TYPE_TCPV6);
    VALUE("GTF_permit_access", GTF_permit_access); VALUE("GTF_readonly", GTF_readonly);
    VALUE("GTF_reading", GTF_reading); VALUE("GTF_writing", GTF_writing); VALUE("GTF_sub_page", GTF_sub_page);
    VALUE("XENSTORE_RING_SIZE", XENSTORE_RING_SIZE); VALUE("XENSTORE_PAYLOAD_MAX", XENSTORE_PAYLOAD_MAX);
    VALUE("XS_WATCH_EVENT", XS_WATCH_EVENT); VALUE("XS_RESET_WATCHES", XS_RESET_WATCHES);
    VALUE("XS_DIRECTORY_PART", XS_DIRECTORY_PART);
    VALUE("XenbusStateConnected", XenbusStateConnected); VALUE("XenbusStateReconfigured", XenbusStateReconfigured);
    return 0;
}
