//! netback's TCP segmenter against a hostile frontend's GSO packet: any bytes as the packet
//! (Ethernet, IPv4/IPv6, TCP: whatever they say), any GSO type and MSS. `Segmenter::new`
//! refuses or accepts without panicking; an accepted packet is cut into 1..=`MAX_SEGMENTS`
//! frames of at most `MAX_FRAME` bytes, each the packet's headers followed by the next MSS
//! (the last: the rest) of its payload, which they cover exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netback::gso::{Gso, GsoKind, MAX_SEGMENTS, Segmenter};
use netback::vif::MAX_FRAME;

fuzz_target!(|data: &[u8]| {
    let Some((&[kind, lo, hi], packet)) = data.split_first_chunk::<3>() else { return };
    let kind = if kind & 1 == 0 { GsoKind::TcpV4 } else { GsoKind::TcpV6 };
    let gso = Gso { kind, mss: u16::from_le_bytes([lo, hi]) };
    let Ok(cut) = Segmenter::new(packet, gso) else { return };
    let (n, h, mss) = (cut.segments(), cut.header_len(), usize::from(gso.mss));
    assert!((1..=MAX_SEGMENTS).contains(&n));
    assert!(h >= 14 + 20 + 20 && h + mss <= MAX_FRAME);
    let mut out = vec![0u8; MAX_FRAME];
    let mut payload = 0;
    for i in 0..n {
        let len = cut.write(i, &mut out).expect("an accepted packet's segments fit a frame");
        assert!(len <= MAX_FRAME && len > h);
        // Ethernet header and addresses as sent; only lengths, ids, sequence, flags, checksums change.
        assert_eq!(out[..14], packet[..14]);
        let chunk = len - h;
        if i + 1 < n {
            assert_eq!(chunk, mss, "segment {i}");
        } else {
            assert!(chunk <= mss);
        }
        assert_eq!(out[h..len], packet[h + payload..h + payload + chunk], "segment {i}'s payload");
        payload += chunk;
    }
    assert_eq!(payload, cut.payload_len());
    assert_eq!(cut.write(n, &mut out), None);
});
