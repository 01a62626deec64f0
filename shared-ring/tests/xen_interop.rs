//! Interoperability with Xen's real `ring.h`: its macros (compiled from Debian's libxen-dev
//! headers, `c/xen_ring_peer.c`) drive one end of a blkif ring and our Rust half the other, on
//! one shared page, in two threads. Each end sleeps on an emulated event channel whenever its
//! own final check finds no work and notifies the other exactly when its own rule says so; a
//! lost wake-up shows up as a wait that times out, corruption as a sequence-number mismatch.
// Runs C code (compiler, dlopen): nothing Miri can interpret.
#![cfg(not(miri))]

mod support;

use std::ffi::c_void;
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::Duration;

use shared_ring::wire::blkif::{BlkifRequest, BlkifRequestSlot, BlkifResponse, BlkifSegment, BlockRequest};
use shared_ring::wire::blkif::{MAX_SEGMENTS_PER_REQUEST, OP_READ, OP_WRITE, RSP_ERROR, RSP_OKAY};
use shared_ring::{BackRing, Blkif, FrontRing, PageMemory};
use support::{Library, SharedPages};

/// Messages per direction: at least 10^6 requests and responses in each test.
const COUNT: u64 = 1_000_000;
/// A wait this long means a wake-up was lost.
const LOST_WAKEUP: Duration = Duration::from_secs(20);

/// One end's event channel: a pending bit and a way to sleep on it.
#[derive(Default)]
struct Event {
    pending: Mutex<bool>,
    raised: Condvar,
}

impl Event {
    fn send(&self) {
        *self.pending.lock().unwrap() = true;
        self.raised.notify_one();
    }

    /// Sleep until the event is pending, then clear it; `false` if it never came.
    fn wait(&self) -> bool {
        let pending = self.pending.lock().unwrap();
        let (mut pending, _) = self.raised.wait_timeout_while(pending, LOST_WAKEUP, |p| !*p).unwrap();
        let arrived = *pending;
        *pending = false;
        arrived
    }
}

/// The C end's view: its own event and the Rust end's.
struct Channels {
    c_end: Event,
    rust_end: Event,
}

extern "C" fn c_notifies_rust(ctx: *mut c_void) {
    // SAFETY: `ctx` is the `Channels` the test passes, alive until both threads are joined.
    let channels = unsafe { &*(ctx as *const Channels) };
    channels.rust_end.send();
}

extern "C" fn c_waits(ctx: *mut c_void) -> i32 {
    // SAFETY: as above.
    let channels = unsafe { &*(ctx as *const Channels) };
    if channels.c_end.wait() { 0 } else { 1 }
}

#[repr(C)]
#[derive(Default, Debug)]
struct PeerStats {
    messages: u64,
    notifications: u64,
    sleeps: u64,
    error_at: u64,
}

type InitFn = unsafe extern "C" fn(*mut c_void);
type PeerFn = unsafe extern "C" fn(
    *mut c_void,
    u32,
    u64,
    extern "C" fn(*mut c_void),
    extern "C" fn(*mut c_void) -> i32,
    *mut c_void,
    *mut PeerStats,
) -> i32;

/// Mirror of `fill_request` in xen_ring_peer.c.
fn expected_request(seq: u64, slots: u64) -> BlkifRequest {
    let mut request = BlkifRequest {
        operation: if seq & 1 == 1 { OP_WRITE } else { OP_READ },
        nr_segments: 1 + (seq % MAX_SEGMENTS_PER_REQUEST as u64) as u8,
        handle: (seq >> 3) as u16,
        id: seq % slots,
        sector_number: seq,
        ..Default::default()
    };
    for i in 0..usize::from(request.nr_segments) {
        request.seg[i] = BlkifSegment { gref: (seq * 31 + i as u64) as u32, first_sect: (i % 8) as u8, last_sect: 7 };
    }
    request
}

/// Mirror of `fill_response`.
fn expected_response(seq: u64, slots: u64) -> BlkifResponse {
    BlkifResponse {
        id: seq % slots,
        operation: if seq & 1 == 1 { OP_WRITE } else { OP_READ },
        status: if seq.is_multiple_of(3) { RSP_ERROR } else { RSP_OKAY },
    }
}

/// Mirror of `next_batch`.
fn next_batch(lcg: &mut u64, max: u64) -> u64 {
    *lcg = lcg.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    1 + (*lcg >> 33) % max
}

#[derive(Debug, Default)]
struct RustStats {
    notifications: u64,
    sleeps: u64,
}

fn rust_back(memory: PageMemory, channels: &Channels) -> RustStats {
    let mut back = BackRing::<Blkif, _>::attach(memory).unwrap();
    let slots = u64::from(back.layout().slots());
    let (mut done, mut lcg, mut stats) = (0u64, 3u64, RustStats::default());
    while done < COUNT {
        let batch = next_batch(&mut lcg, slots);
        let mut answered = 0;
        while answered < batch {
            let Some(slot) = back.poll_request().expect("C front end broke the protocol") else { break };
            let request = match slot.decode() {
                Ok(BlockRequest::Direct(request)) => request,
                other => panic!("request {done}: {other:?}"),
            };
            assert_eq!(request, expected_request(done, slots), "request {done} corrupted");
            back.push_response(expected_response(done, slots)).unwrap();
            done += 1;
            answered += 1;
        }
        if back.publish_responses().is_needed() {
            channels.c_end.send();
            stats.notifications += 1;
        }
        if done == COUNT || back.has_unconsumed_requests().unwrap() {
            continue;
        }
        if !back.final_check_for_requests().unwrap() {
            stats.sleeps += 1;
            assert!(channels.rust_end.wait(), "Rust back end lost a wake-up at request {done}");
        }
    }
    stats
}

fn rust_front(memory: PageMemory, channels: &Channels) -> RustStats {
    let mut front = FrontRing::<Blkif, _>::init(memory).unwrap();
    let slots = u64::from(front.layout().slots());
    let (mut sent, mut done, mut lcg, mut stats) = (0u64, 0u64, 5u64, RustStats::default());
    while done < COUNT {
        let batch = next_batch(&mut lcg, slots);
        let mut pushed = 0;
        while pushed < batch && sent < COUNT && front.free_requests() > 0 {
            front.push_request(BlkifRequestSlot::from(&expected_request(sent, slots))).unwrap();
            sent += 1;
            pushed += 1;
        }
        if front.publish_requests().is_needed() {
            channels.c_end.send();
            stats.notifications += 1;
        }
        loop {
            while let Some(response) = front.poll_response().expect("C back end broke the protocol") {
                assert_eq!(response, expected_response(done, slots), "response {done} corrupted");
                done += 1;
            }
            if done == COUNT || (sent < COUNT && front.free_requests() > 0) {
                break;
            }
            if !front.final_check_for_responses().unwrap() {
                stats.sleeps += 1;
                assert!(channels.rust_end.wait(), "Rust front end lost a wake-up at response {done}");
            }
        }
    }
    stats
}

fn run(c_is_front: bool, pages: usize) {
    support::require_xen_headers();
    let library = Library::build("xen_ring_peer.c", "xen_ring_peer_interop");
    // SAFETY: the symbols have exactly these C signatures (see xen_ring_peer.c).
    let (init, c_front, c_back): (InitFn, PeerFn, PeerFn) = unsafe {
        (
            std::mem::transmute::<*mut c_void, InitFn>(library.symbol("xen_ring_init")),
            std::mem::transmute::<*mut c_void, PeerFn>(library.symbol("xen_interop_front")),
            std::mem::transmute::<*mut c_void, PeerFn>(library.symbol("xen_interop_back")),
        )
    };
    let shared = SharedPages::new(pages * 4096);
    let channels = Channels { c_end: Event::default(), rust_end: Event::default() };
    if c_is_front {
        // SAFETY: a zeroed, page-aligned area of `len` bytes that no Rust thread uses yet.
        unsafe { init(shared.pointer().as_ptr().cast()) };
    }
    let (c_result, c_stats, rust_stats) = thread::scope(|scope| {
        let rust = scope.spawn(|| {
            if c_is_front { rust_back(shared.memory(), &channels) } else { rust_front(shared.memory(), &channels) }
        });
        if !c_is_front {
            // The Rust front end initialises the page; wait until it has (req_event = 1).
            while shared.memory_load_req_event() != 1 {
                thread::yield_now();
            }
        }
        let mut c_stats = PeerStats::default();
        let peer = if c_is_front { c_front } else { c_back };
        // SAFETY: the page stays alive for the whole scope; the callbacks match the C
        // prototypes and `channels` outlives both threads.
        let c_result = unsafe {
            peer(
                shared.pointer().as_ptr().cast(),
                shared.len() as u32,
                COUNT,
                c_notifies_rust,
                c_waits,
                &channels as *const Channels as *mut c_void,
                &mut c_stats,
            )
        };
        if c_result != 0 {
            // Unblock the Rust end so the failure is reported instead of hanging.
            channels.rust_end.send();
        }
        (c_result, c_stats, rust.join())
    });
    let what = match c_result {
        0 => "ok",
        -1 => "corrupt message",
        -2 => "lost wake-up (waited 20 s)",
        _ => "producer index overflow",
    };
    assert_eq!(c_result, 0, "ring.h end failed: {what} at message {} ({c_stats:?})", c_stats.error_at);
    let rust_stats = rust_stats.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    assert_eq!(c_stats.messages, COUNT);
    eprintln!(
        "c_is_front={c_is_front} pages={pages}: C sent {} notifications and slept {} times; \
         Rust sent {} and slept {}",
        c_stats.notifications, c_stats.sleeps, rust_stats.notifications, rust_stats.sleeps
    );
    // Both ends really slept and were woken: notifications were decided, not assumed.
    assert!(c_stats.sleeps > 0 && rust_stats.sleeps > 0);
    assert!(c_stats.notifications > 0 && rust_stats.notifications > 0);
}

trait ReqEvent {
    fn memory_load_req_event(&self) -> u32;
}

impl ReqEvent for SharedPages {
    fn memory_load_req_event(&self) -> u32 {
        use shared_ring::SharedMemory;
        self.memory().load_acquire(shared_ring::layout::REQ_EVENT)
    }
}

#[test]
fn xen_ring_h_front_end_with_our_back_end() {
    run(true, 1);
}

#[test]
fn our_front_end_with_xen_ring_h_back_end_on_a_multi_page_ring() {
    run(false, 4);
}
