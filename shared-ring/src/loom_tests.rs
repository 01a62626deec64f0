//! Loom model checks of the ring's memory ordering (`RUSTFLAGS="--cfg loom"`): slot contents
//! are published before the index (loom reports a causality violation otherwise), and the
//! final-check / notify race never loses a wake-up.

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::sync::atomic::{AtomicBool, AtomicU32, Ordering, fence};
use loom::thread;
use std::vec::Vec;

use crate::ring_tests::{Msg, TestRing};
use crate::{BackRing, FrontRing, SharedMemory};

/// Shared memory whose slot bytes are loom-tracked cells (any unsynchronised access between
/// threads fails the model) and whose index words are loom atomics.
#[derive(Clone)]
struct LoomMemory(Arc<LoomArea>);

struct LoomArea {
    bytes: Vec<UnsafeCell<u8>>,
    words: Vec<AtomicU32>,
}

impl LoomMemory {
    fn new(len: usize) -> Self {
        Self(Arc::new(LoomArea {
            bytes: (0..len).map(|_| UnsafeCell::new(0)).collect(),
            words: (0..len / 4).map(|_| AtomicU32::new(0)).collect(),
        }))
    }
}

// SAFETY: indices use loom atomics with the promised orderings and a SeqCst fence after
// `store_fenced`; slot bytes are loom cells, whose accesses loom checks for races.
unsafe impl SharedMemory for LoomMemory {
    fn len(&self) -> usize {
        self.0.bytes.len()
    }
    fn read(&self, offset: usize, dst: &mut [u8]) {
        for (byte, cell) in dst.iter_mut().zip(&self.0.bytes[offset..]) {
            // SAFETY: loom checks this access against concurrent writes.
            *byte = cell.with(|p| unsafe { *p });
        }
    }
    fn write(&self, offset: usize, src: &[u8]) {
        for (byte, cell) in src.iter().zip(&self.0.bytes[offset..]) {
            // SAFETY: loom checks this access against concurrent accesses.
            cell.with_mut(|p| unsafe { *p = *byte });
        }
    }
    fn load_acquire(&self, offset: usize) -> u32 {
        self.0.words[offset / 4].load(Ordering::Acquire)
    }
    fn store_release(&self, offset: usize, value: u32) {
        self.0.words[offset / 4].store(value, Ordering::Release);
    }
    fn store_fenced(&self, offset: usize, value: u32) {
        self.0.words[offset / 4].store(value, Ordering::Release);
        fence(Ordering::SeqCst);
    }
}

/// Header + 2 slots of 16 bytes.
const AREA: usize = 64 + 2 * 16;

fn msg(id: u64, payload: u64) -> Msg {
    Msg { id, payload }
}

/// Requests and responses published one at a time are seen complete and in order; the slot
/// reuse (request → response → next request in the same slot) is race-free.
#[test]
fn slots_are_published_before_their_index() {
    loom::model(|| {
        let memory = LoomMemory::new(AREA);
        let mut front = FrontRing::<TestRing, _>::init(memory.clone()).unwrap();
        let back_memory = memory.clone();
        let back = thread::spawn(move || {
            let mut back = BackRing::<TestRing, _>::attach(back_memory).unwrap();
            let mut answered = 0;
            while answered < 3 {
                match back.poll_request().unwrap() {
                    Some(request) => {
                        assert_eq!(request.payload, 10 + answered);
                        back.push_response(msg(request.id, request.payload + 100)).unwrap();
                        let _ = back.publish_responses();
                        answered += 1;
                    }
                    None => thread::yield_now(),
                }
            }
        });
        let mut received = 0;
        let mut sent = 0;
        while received < 3 {
            if sent < 3 && front.free_requests() > 0 {
                front.push_request(msg(sent % 2, 10 + sent)).unwrap();
                let _ = front.publish_requests();
                sent += 1;
            }
            match front.poll_response().unwrap() {
                Some(response) => {
                    assert_eq!(response, msg(received % 2, 110 + received));
                    received += 1;
                }
                None => thread::yield_now(),
            }
        }
        back.join().unwrap();
    });
}

/// The final-check race: the back end decides to sleep while the front end publishes. Either
/// the back end's final check sees the request, or the front end's notify check sees the
/// re-armed `req_event` and sends a kick. Never neither.
#[test]
fn final_check_never_loses_a_wakeup() {
    loom::model(|| {
        let memory = LoomMemory::new(AREA);
        let mut front = FrontRing::<TestRing, _>::init(memory.clone()).unwrap();
        let mut back = BackRing::<TestRing, _>::attach(memory.clone()).unwrap();
        // Consume one request first so req_event (initially 1) is no longer armed.
        front.push_request(msg(0, 1)).unwrap();
        let _ = front.publish_requests();
        assert!(back.poll_request().unwrap().is_some());

        let kicked = Arc::new(AtomicBool::new(false));
        let kicked_by_front = kicked.clone();
        let producer = thread::spawn(move || {
            front.push_request(msg(1, 2)).unwrap();
            if front.publish_requests().is_needed() {
                kicked_by_front.store(true, Ordering::Relaxed);
            }
        });
        let slept = !back.final_check_for_requests().unwrap();
        producer.join().unwrap();
        if slept {
            assert!(kicked.load(Ordering::Relaxed), "back end slept and the front end did not notify: lost wake-up");
        }
    });
}

/// The same race on the response side.
#[test]
fn final_check_for_responses_never_loses_a_wakeup() {
    loom::model(|| {
        let memory = LoomMemory::new(AREA);
        let mut front = FrontRing::<TestRing, _>::init(memory.clone()).unwrap();
        let mut back = BackRing::<TestRing, _>::attach(memory.clone()).unwrap();
        front.push_request(msg(0, 1)).unwrap();
        front.push_request(msg(1, 2)).unwrap();
        let _ = front.publish_requests();
        back.poll_request().unwrap().unwrap();
        back.poll_request().unwrap().unwrap();
        back.push_response(msg(0, 1)).unwrap();
        let _ = back.publish_responses();
        assert!(front.poll_response().unwrap().is_some());

        let kicked = Arc::new(AtomicBool::new(false));
        let kicked_by_back = kicked.clone();
        let responder = thread::spawn(move || {
            back.push_response(msg(1, 2)).unwrap();
            if back.publish_responses().is_needed() {
                kicked_by_back.store(true, Ordering::Relaxed);
            }
        });
        let slept = !front.final_check_for_responses().unwrap();
        responder.join().unwrap();
        if slept {
            assert!(kicked.load(Ordering::Relaxed), "front end slept and the back end did not notify: lost wake-up");
        }
    });
}

/// The deferred decision: the front end flushes two requests with plain release stores (no
/// barrier, no decision) and then decides once with `publish_requests`, while the back end arms
/// `req_event` and decides to sleep. Either the back end's final check sees a request or the
/// single decision, covering everything flushed since the previous one, sends a kick.
#[test]
fn flushed_requests_decided_once_never_lose_a_wakeup() {
    loom::model(|| {
        let memory = LoomMemory::new(AREA);
        let mut front = FrontRing::<TestRing, _>::init(memory.clone()).unwrap();
        let mut back = BackRing::<TestRing, _>::attach(memory.clone()).unwrap();
        // Consume and answer one request so req_event (initially 1) is no longer armed and both
        // slots are free again.
        front.push_request(msg(0, 1)).unwrap();
        let _ = front.publish_requests();
        assert!(back.poll_request().unwrap().is_some());
        back.push_response(msg(0, 1)).unwrap();
        let _ = back.publish_responses();
        assert!(front.poll_response().unwrap().is_some());

        let kicked = Arc::new(AtomicBool::new(false));
        let kicked_by_front = kicked.clone();
        let producer = thread::spawn(move || {
            front.push_request(msg(0, 2)).unwrap();
            front.flush_requests();
            front.push_request(msg(1, 3)).unwrap();
            front.flush_requests();
            if front.publish_requests().is_needed() {
                kicked_by_front.store(true, Ordering::Relaxed);
            }
        });
        // The back end may see zero, one or two of the flushed requests before it sleeps.
        let mut seen = 0;
        let slept = loop {
            while let Some(request) = back.poll_request().unwrap() {
                assert_eq!(request.payload, 2 + seen);
                seen += 1;
            }
            if !back.final_check_for_requests().unwrap() {
                break seen < 2;
            }
        };
        producer.join().unwrap();
        if slept {
            assert!(kicked.load(Ordering::Relaxed), "back end slept with requests pending and no kick: lost wake-up");
        }
    });
}
