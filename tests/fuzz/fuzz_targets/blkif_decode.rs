//! blkif decoding: any 112-byte request slot and 16-byte response either decodes to something
//! the spec allows (and re-encodes to the same meaning) or is rejected with a reason.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared_ring::wire::blkif::*;

fuzz_target!(|data: &[u8]| {
    let mut raw = [0u8; REQUEST_SIZE];
    let n = data.len().min(REQUEST_SIZE);
    raw[..n].copy_from_slice(&data[..n]);
    let slot = BlkifRequestSlot::from_raw(raw);
    match slot.decode() {
        Ok(BlockRequest::Direct(request)) => {
            assert!(usize::from(request.nr_segments) <= MAX_SEGMENTS_PER_REQUEST);
            for segment in &request.seg[..usize::from(request.nr_segments)] {
                assert!(segment.first_sect <= segment.last_sect && segment.last_sect <= LAST_SECTOR_IN_PAGE);
            }
            assert_eq!(BlkifRequestSlot::from(&request).decode(), Ok(BlockRequest::Direct(request)));
        }
        Ok(BlockRequest::Discard(discard)) => {
            assert!(discard.nr_sectors > 0 && discard.flag & !DISCARD_SECURE == 0);
            assert_eq!(BlkifRequestSlot::from(&discard).decode(), Ok(BlockRequest::Discard(discard)));
        }
        Ok(BlockRequest::Indirect(indirect)) => {
            assert!(indirect.pages() >= 1 && indirect.pages() <= MAX_INDIRECT_PAGES_PER_REQUEST);
            assert_eq!(BlkifRequestSlot::from(&indirect).decode(), Ok(BlockRequest::Indirect(indirect)));
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
    assert_eq!(slot.id(), u64::from_le_bytes(raw[8..16].try_into().unwrap()));

    let mut response = [0u8; RESPONSE_SIZE];
    let tail = data.get(REQUEST_SIZE..).unwrap_or(&[]);
    let n = tail.len().min(RESPONSE_SIZE);
    response[..n].copy_from_slice(&tail[..n]);
    if let Ok(decoded) = BlkifResponse::decode(&response) {
        let again = decoded.to_raw();
        assert_eq!(BlkifResponse::decode(&again), Ok(decoded));
        assert_eq!(again[9], 0);
        assert_eq!(&again[12..], &[0; 4]);
    }
});
