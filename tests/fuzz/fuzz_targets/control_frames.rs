//! The control channel's receiving ends: a byte stream from COM2 (what the host, or anything
//! that reaches the socket, sends Dom0; and what Dom0 sends the host) split by `Deframer` into
//! COBS frames and decoded as `Request` and as `Response`. The stream is fed in chunks the input
//! chooses. No panic; frames never hold the delimiter or exceed `MAX_FRAME`; a decoded envelope
//! is of our version and re-encodes into one frame that decodes to the same envelope.
#![no_main]

use fuzz::Script;
use hv_control::{DecodeError, Deframer, Envelope, MAX_FRAME, Request, Response, VERSION, decode, encode};
use libfuzzer_sys::fuzz_target;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(frame: &[u8]) {
    match decode::<T>(frame) {
        Ok(Envelope { version, id, body }) => {
            assert_eq!(version, VERSION);
            let bytes = encode(id, &body);
            assert_eq!(bytes.iter().filter(|&&b| b == 0).count(), 1, "one delimiter, at the end");
            assert_eq!(bytes.last(), Some(&0));
            let again = decode::<T>(&bytes[..bytes.len() - 1]).expect("our own encoding decodes");
            assert_eq!((again.id, again.body), (id, body));
        }
        Err(DecodeError::Version { theirs, .. }) => assert_ne!(theirs, VERSION),
        Err(DecodeError::Malformed) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script(data);
    let mut deframer = Deframer::new();
    let mut frames = 0usize;
    // Chunk sizes come from the first bytes; the rest is the stream.
    let sizes: Vec<usize> = script.bytes(4).iter().map(|&b| usize::from(b) + 1).collect();
    let mut turn = 0;
    while !script.is_empty() {
        let n = sizes.get(turn % sizes.len().max(1)).copied().unwrap_or(usize::MAX);
        turn += 1;
        deframer.push(script.bytes(n), |frame| {
            frames += 1;
            assert!(!frame.is_empty() && frame.len() <= MAX_FRAME && !frame.contains(&0));
            round_trip::<Request>(frame);
            round_trip::<Response>(frame);
        });
    }
    assert!(frames <= data.len());
});
