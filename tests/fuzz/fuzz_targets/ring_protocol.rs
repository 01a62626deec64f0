//! The ring against an adversarial peer: the input is a script of operations on both halves
//! of a blkif ring, interleaved with arbitrary rewrites of the shared page (indices, event
//! thresholds, slot bytes). Whatever the page says, neither half may panic, loop, read a slot
//! twice, hold more than `size` unanswered requests, or recover once it reported a broken peer.
#![no_main]

use std::cell::Cell;

use libfuzzer_sys::fuzz_target;
use shared_ring::wire::blkif::{BlkifRequest, BlkifRequestSlot, BlkifResponse, RSP_ERROR, RSP_OKAY};
use shared_ring::{BackRing, Blkif, CellMemory, FrontRing, SharedMemory};

/// Counts bytes read so the target can check each request slot is copied exactly once.
struct CountingMemory<'a> {
    inner: CellMemory<'a>,
    bytes_read: Cell<usize>,
}

// SAFETY: single-threaded (`Cell` makes it `!Sync`); forwards to `CellMemory`.
unsafe impl SharedMemory for CountingMemory<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn read(&self, offset: usize, dst: &mut [u8]) {
        self.bytes_read.set(self.bytes_read.get() + dst.len());
        self.inner.read(offset, dst)
    }
    fn write(&self, offset: usize, src: &[u8]) {
        self.inner.write(offset, src)
    }
    fn load_acquire(&self, offset: usize) -> u32 {
        self.inner.load_acquire(offset)
    }
    fn store_release(&self, offset: usize, value: u32) {
        self.inner.store_release(offset, value)
    }
    fn store_fenced(&self, offset: usize, value: u32) {
        self.inner.store_fenced(offset, value)
    }
}

struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (&first, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(first)
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes([self.byte()?, self.byte()?, self.byte()?, self.byte()?]))
    }
}

fuzz_target!(|data: &[u8]| {
    let mut page = vec![0u8; 4096];
    let cells = Cell::from_mut(&mut page[..]).as_slice_of_cells();
    let attacker = CellMemory::from_cells(cells);
    let counting = CountingMemory { inner: CellMemory::from_cells(cells), bytes_read: Cell::new(0) };
    let mut front = FrontRing::<Blkif, _>::init(CellMemory::from_cells(cells)).unwrap();
    let mut back = BackRing::<Blkif, _>::attach(&counting).unwrap();
    let slots = back.layout().slots();
    let mut script = Script(data);
    let (mut back_broken, mut front_broken) = (None, None);

    while let Some(op) = script.byte() {
        match op % 10 {
            0 => {
                // Rewrite one header word (req_prod, req_event, rsp_prod, rsp_event).
                let Some(which) = script.byte() else { break };
                let Some(value) = script.u32() else { break };
                attacker.store_release(usize::from(which % 4) * 4, value);
            }
            1 => {
                // Rewrite bytes anywhere in the page.
                let (Some(at), Some(len)) = (script.u32(), script.byte()) else { break };
                let at = at as usize % 4096;
                let len = usize::from(len).min(4096 - at);
                let bytes: Vec<u8> = (0..len).map_while(|_| script.byte()).collect();
                attacker.write(at, &bytes);
            }
            2 => {
                let before = counting.bytes_read.get();
                // Op bytes >= 128 take from the last snapshot (`take_request`, which never reads
                // req_prod) after counting it (`unconsumed_requests`) every other time.
                let result = if op < 128 {
                    back.poll_request()
                } else if op & 1 == 0 {
                    back.take_request()
                } else {
                    back.unconsumed_requests().and_then(|_| {
                        let before_take = counting.bytes_read.get();
                        let taken = back.take_request();
                        // Counting reads no slot.
                        assert_eq!(before_take, before, "counting requests reads no slot");
                        taken
                    })
                };
                let read = counting.bytes_read.get() - before;
                match result {
                    Ok(Some(slot)) => {
                        assert_eq!(read, 112, "a request slot must be copied exactly once");
                        let status = if slot.decode().is_ok() { RSP_OKAY } else { RSP_ERROR };
                        back.push_response(BlkifResponse { id: slot.id(), operation: slot.operation(), status }).unwrap();
                    }
                    Ok(None) => assert_eq!(read, 0),
                    Err(e) => {
                        assert_eq!(read, 0, "nothing is read from a broken ring");
                        assert!(back_broken.is_none_or(|b| b == e), "a broken ring reports the same error");
                        back_broken = Some(e);
                    }
                }
            }
            // Op bytes >= 128 flush (release store, decision deferred) instead of publishing.
            3 if op >= 128 => back.flush_responses(),
            3 => {
                let _ = back.publish_responses();
            }
            4 => match back.final_check_for_requests() {
                Ok(_) => assert!(back_broken.is_none()),
                Err(e) => back_broken = Some(e),
            },
            5 => {
                let Some(id) = script.byte() else { break };
                let request = BlkifRequest { operation: 0, nr_segments: 1, id: u64::from(id), ..Default::default() };
                let _ = front.push_request(BlkifRequestSlot::from(&request));
            }
            6 if op >= 128 => front.flush_requests(),
            6 => {
                let _ = front.publish_requests();
            }
            7 => match if op < 128 { front.poll_response() } else { front.take_response() } {
                Ok(_) => assert!(front_broken.is_none()),
                Err(e) => {
                    assert!(front_broken.is_none_or(|b| b == e));
                    front_broken = Some(e);
                }
            },
            8 => match front.final_check_for_responses() {
                Ok(_) => assert!(front_broken.is_none()),
                Err(e) => front_broken = Some(e),
            },
            _ if op >= 128 => {
                // Drain one snapshot as ring.h's `while (req_cons != rp)` loop: at most the count,
                // at most `size`.
                let waiting = back.unconsumed_requests().unwrap_or(0);
                assert!(waiting <= slots, "a snapshot of more than `size` requests");
                let mut taken = 0u32;
                while let Ok(Some(slot)) = back.take_request() {
                    taken += 1;
                    let _ = slot.decode();
                }
                assert_eq!(taken, waiting, "take_request takes exactly the snapshot");
            }
            _ => {
                // Drain the back end as a real backend loop would: it must terminate.
                let mut polled = 0u32;
                while let Ok(Some(slot)) = back.poll_request() {
                    polled += 1;
                    assert!(polled <= slots, "more than `size` requests without a response");
                    let _ = slot.decode();
                }
            }
        }
        assert!(back.unanswered() <= slots, "back end holds {} unanswered requests", back.unanswered());
        assert!(front.in_flight() <= slots);
        if back_broken.is_some() {
            assert_eq!(back.broken(), back_broken, "broken stays broken");
        }
        if front_broken.is_some() {
            assert_eq!(front.broken(), front_broken, "broken stays broken");
        }
    }
});
