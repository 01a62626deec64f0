//! Store message decoding: a byte stream is split into messages the way the store server
//! reads a connection; every accepted message has a defined type, a payload within
//! XENSTORE_PAYLOAD_MAX and, for path-taking types, a well-formed path. The same bytes are
//! also pushed through the store page's byte ring with attacker-chosen indices.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared_ring::wire::xenstore::*;
use shared_ring::{CellMemory, SharedMemory};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while !rest.is_empty() {
        match XsMessage::parse(rest) {
            Ok((message, tail)) => {
                assert!(message.payload.len() <= PAYLOAD_MAX as usize);
                assert_eq!(message.header.len as usize, message.payload.len());
                if message.kind.takes_path() {
                    let path = message.fields().next().unwrap();
                    assert!(!path.windows(2).any(|w| w == b"//"));
                }
                assert!(tail.len() < rest.len());
                rest = tail;
            }
            Err(_) => break,
        }
    }

    // Byte ring: the first 16 bytes choose the four indices, the rest is traffic.
    let mut page = vec![0u8; 4096];
    let memory = CellMemory::new(&mut page);
    let (indices, traffic) = data.split_at(data.len().min(16));
    for (i, chunk) in indices.chunks_exact(4).enumerate() {
        memory.store_release(REQ_CONS + 4 * i, u32::from_le_bytes(chunk.try_into().unwrap()));
    }
    let (Some(mut guest), Some(mut server)) =
        (StoreRing::attach(memory, StoreSide::Guest), StoreRing::attach(memory, StoreSide::Server))
    else {
        panic!("page is large enough");
    };
    let mut buf = [0u8; 2048];
    for chunk in traffic.chunks(700) {
        if let Ok(written) = guest.write(chunk) {
            assert!(written <= RING_SIZE as usize);
        }
        if let Ok(read) = server.read(&mut buf) {
            assert!(read <= RING_SIZE as usize);
        }
        let _ = server.write(chunk);
        let _ = guest.read(&mut buf[..100]);
    }
});
