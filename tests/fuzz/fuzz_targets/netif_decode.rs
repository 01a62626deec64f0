//! netif decoding: a stream of 12-byte tx slots is walked the way netback walks a packet
//! (first slot, extra-info slots while flagged, data slots while `more_data`) with every check
//! applied; rx responses and extra-info are validated too. Nothing may panic, and anything
//! accepted must satisfy the page and slot limits.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared_ring::RingEntry;
use shared_ring::wire::netif::*;

fuzz_target!(|data: &[u8]| {
    let mut slots = data.chunks_exact(12).map(|c| NetifTxSlot::from_bytes(c.try_into().unwrap()));
    'packets: while let Some(first) = slots.next() {
        let first = first.as_request();
        let Ok(mut check) = TxPacketCheck::first(&first, NR_SLOTS_MIN) else { continue };
        if first.flags & TXF_EXTRA_INFO != 0 {
            loop {
                let Some(slot) = slots.next() else { break 'packets };
                match slot.as_extra().decode() {
                    Ok(_) if slot.as_extra().more() => continue,
                    Ok(_) => break,
                    Err(_) => continue 'packets,
                }
            }
        }
        let mut more = first.flags & TXF_MORE_DATA != 0;
        while more {
            let Some(slot) = slots.next() else { break 'packets };
            let slot = slot.as_request();
            if check.next(&slot).is_err() {
                continue 'packets;
            }
            assert!(u32::from(slot.offset) + u32::from(slot.size) <= PAGE_SIZE);
            more = slot.flags & TXF_MORE_DATA != 0;
        }
        if let Ok(packet) = check.finish() {
            assert!(packet.slots <= NR_SLOTS_MIN);
            assert!(u32::from(first.offset) + packet.first_fragment <= PAGE_SIZE);
            assert!(packet.first_fragment <= packet.size);
        }
    }

    for chunk in data.chunks_exact(8) {
        let raw: [u8; 8] = chunk.try_into().unwrap();
        let response = NetifRxResponse::from_raw(&raw);
        if response.validate().is_ok() && response.status > 0 {
            assert!(u32::from(response.offset) + response.status as u32 <= PAGE_SIZE);
        }
        assert_eq!(NetifRxResponse::from_raw(&response.to_raw()), response);
        let extra = NetifExtraInfo::from_raw(&raw);
        if let Ok(ExtraInfo::Gso { size, gso_type, .. }) = extra.decode() {
            assert!(size > 0 && (gso_type == GSO_TYPE_TCPV4 || gso_type == GSO_TYPE_TCPV6));
        }
        let tx = NetifTxResponse::from_raw(&[raw[0], raw[1], raw[2], raw[3]]);
        if tx.validate().is_ok() {
            assert!((-2..=1).contains(&tx.status));
        }
    }
});
