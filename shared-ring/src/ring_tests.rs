//! Ring protocol tests: both halves on one buffer, a peer that lies, and a model test of every
//! operation interleaved at random.

use core::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::vec::Vec;

use proptest::prelude::*;

use crate::layout::{PAGE_SIZE, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use crate::wire::blkif::{Blkif, BlkifRequest, BlkifRequestSlot, BlkifResponse, OP_READ};
use crate::*;

/// A 16-byte test message: an id and a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Msg {
    pub id: u64,
    pub payload: u64,
}

impl RingEntry for Msg {
    type Bytes = [u8; 16];
    fn from_bytes(b: &[u8; 16]) -> Self {
        let (id, payload) = b.split_at(8);
        Msg { id: u64::from_le_bytes(id.try_into().unwrap()), payload: u64::from_le_bytes(payload.try_into().unwrap()) }
    }
    fn to_bytes(&self) -> [u8; 16] {
        let mut b = [0; 16];
        b[..8].copy_from_slice(&self.id.to_le_bytes());
        b[8..].copy_from_slice(&self.payload.to_le_bytes());
        b
    }
    fn tracking_id(&self) -> Option<u64> {
        Some(self.id)
    }
}

pub(crate) enum TestRing {}
impl RingProtocol for TestRing {
    type Request = Msg;
    type Response = Msg;
}

/// 64-byte header + 4 slots of 16 bytes.
const SMALL: usize = 64 + 4 * 16;

fn msg(id: u64, payload: u64) -> Msg {
    Msg { id, payload }
}

#[test]
fn requests_and_responses_round_trip_with_notifications() {
    let mut page = vec![0u8; SMALL];
    let memory = CellMemory::new(&mut page);
    let mut front = FrontRing::<TestRing, _>::init(memory).unwrap();
    let mut back = BackRing::<TestRing, _>::attach(memory).unwrap();
    assert_eq!(front.layout().slots(), 4);
    assert_eq!(memory.load_acquire(REQ_EVENT), 1);
    assert_eq!(memory.load_acquire(RSP_EVENT), 1);

    for i in 0..3 {
        front.push_request(msg(i, 100 + i)).unwrap();
    }
    assert_eq!(back.poll_request(), Ok(None), "pushed but unpublished requests are invisible");
    assert_eq!(front.publish_requests(), Notify::Needed, "initial req_event = 1 asks for a kick");
    assert_eq!(front.publish_requests(), Notify::NotNeeded, "nothing new to publish");
    for i in 0..3 {
        let request = back.poll_request().unwrap().unwrap();
        assert_eq!(request, msg(i, 100 + i));
        back.push_response(msg(request.id, request.payload * 2)).unwrap();
    }
    assert_eq!(back.poll_request(), Ok(None));
    assert_eq!(back.publish_responses(), Notify::Needed);
    for i in 0..3 {
        assert_eq!(front.poll_response(), Ok(Some(msg(i, 200 + 2 * i))));
    }
    assert_eq!(front.poll_response(), Ok(None));
    assert_eq!(front.free_requests(), 4);
}

#[test]
fn notification_suppression_and_final_check() {
    let mut page = vec![0u8; SMALL];
    let memory = CellMemory::new(&mut page);
    let mut front = FrontRing::<TestRing, _>::init(memory).unwrap();
    let mut back = BackRing::<TestRing, _>::attach(memory).unwrap();

    assert!(front.push_and_publish(msg(0, 0)).unwrap().is_needed());
    // The back end is awake (it has not re-armed): further pushes need no kick.
    assert_eq!(front.push_and_publish(msg(1, 0)), Ok(Notify::NotNeeded));
    assert!(back.poll_request().unwrap().is_some());
    assert!(back.poll_request().unwrap().is_some());
    // Going to sleep: nothing left, so req_event is re-armed to req_cons + 1.
    assert_eq!(back.final_check_for_requests(), Ok(false));
    assert_eq!(memory.load_acquire(REQ_EVENT), 3);
    back.push_response(msg(0, 0)).unwrap();
    back.push_response(msg(1, 0)).unwrap();
    assert_eq!(back.publish_responses(), Notify::Needed);
    assert_eq!(front.poll_response().unwrap().unwrap().id, 0);
    assert_eq!(front.poll_response().unwrap().unwrap().id, 1);
    // Now the sleeping back end must be woken by the next publish, even a batch of two.
    front.push_request(msg(2, 0)).unwrap();
    front.push_request(msg(3, 0)).unwrap();
    assert_eq!(front.publish_requests(), Notify::Needed);

    // Final check sees work published after the decision to sleep (the lost-wakeup race).
    assert_eq!(back.final_check_for_requests(), Ok(true));
    assert!(back.poll_request().unwrap().is_some());
    assert!(back.poll_request().unwrap().is_some());
    assert_eq!(back.final_check_for_requests(), Ok(false));
    // Ids 2 and 3 are still outstanding; 0 is free again.
    assert_eq!(front.push_request(msg(2, 0)), Err(PushError::IdInUse { id: 2 }));
    assert_eq!(front.push_and_publish(msg(0, 0)), Ok(Notify::Needed));
}

#[test]
fn batching_notifies_once_per_publish() {
    let mut page = vec![0u8; PAGE_SIZE];
    let memory = CellMemory::new(&mut page);
    let mut front = FrontRing::<Blkif, _>::init(memory).unwrap();
    let mut back = BackRing::<Blkif, _>::attach(memory).unwrap();
    assert_eq!(front.layout().slots(), 32);
    let mut notifications = 0;
    for round in 0..10u64 {
        for i in 0..32u64 {
            let request =
                BlkifRequest { operation: OP_READ, nr_segments: 1, id: i, sector_number: round, ..Default::default() };
            front.push_request(BlkifRequestSlot::from(&request)).unwrap();
        }
        assert_eq!(front.push_request(BlkifRequestSlot::from(&BlkifRequest::default())), Err(PushError::RingFull));
        notifications += usize::from(front.publish_requests().is_needed());
        while let Some(slot) = back.poll_request().unwrap() {
            let request = slot.decode().unwrap();
            back.push_response(BlkifResponse { id: request.id(), operation: OP_READ, status: 0 }).unwrap();
        }
        assert!(!back.final_check_for_requests().unwrap());
        let _ = back.publish_responses();
        let mut got = 0;
        while let Some(response) = front.poll_response().unwrap() {
            assert_eq!(response.id, got);
            got += 1;
        }
        assert_eq!(got, 32);
    }
    assert_eq!(notifications, 10, "one kick per batch, since the back end sleeps after each");
}

/// Indices near 2^32 wrap without losing or reordering anything.
#[test]
fn indices_wrap_at_two_to_the_32() {
    let mut page = vec![0u8; SMALL];
    let memory = CellMemory::new(&mut page);
    let start = u32::MAX - 6;
    for offset in [REQ_PROD, RSP_PROD] {
        memory.store_release(offset, start);
    }
    for offset in [REQ_EVENT, RSP_EVENT] {
        memory.store_release(offset, start.wrapping_add(1));
    }
    let mut front = FrontRing::<TestRing, _>::attach(memory, start).unwrap();
    let mut back = BackRing::<TestRing, _>::attach_at(memory, start).unwrap();
    for n in 0..40u64 {
        front.push_request(msg(n % 4, n)).unwrap();
        let _ = front.publish_requests();
        let request = back.poll_request().unwrap().unwrap();
        assert_eq!(request.payload, n);
        back.push_response(request).unwrap();
        let _ = back.publish_responses();
        assert_eq!(front.poll_response().unwrap(), Some(msg(n % 4, n)));
    }
    assert_eq!(memory.load_acquire(REQ_PROD), start.wrapping_add(40));
}

#[test]
fn multi_page_rings_use_xen_sizes() {
    let mut pages = vec![0u8; 4 * PAGE_SIZE];
    let memory = CellMemory::new(&mut pages);
    let front = FrontRing::<Blkif, _>::init(memory).unwrap();
    assert_eq!(front.layout().slots(), 128);
    let mut tiny = vec![0u8; 100];
    let memory = CellMemory::new(&mut tiny);
    assert!(matches!(FrontRing::<Blkif, _>::init(memory), Err(LayoutError::AreaTooSmall { .. })));
}

#[test]
fn push_errors_are_the_callers() {
    let mut page = vec![0u8; SMALL];
    let memory = CellMemory::new(&mut page);
    let mut front = FrontRing::<TestRing, _>::init(memory).unwrap();
    let mut back = BackRing::<TestRing, _>::attach(memory).unwrap();
    assert_eq!(front.push_request(msg(4, 0)), Err(PushError::IdOutOfRange { id: 4, slots: 4 }));
    front.push_request(msg(1, 0)).unwrap();
    assert_eq!(front.push_request(msg(1, 0)), Err(PushError::IdInUse { id: 1 }));
    assert_eq!(back.push_response(msg(1, 0)), Err(PushError::NoRequestToAnswer));
    assert!(front.is_outstanding(1));
    assert!(!front.is_outstanding(2));
}

#[test]
fn back_end_rejects_a_front_end_claiming_too_many_requests() {
    let mut page = vec![0u8; SMALL];
    let memory = CellMemory::new(&mut page);
    let _front = FrontRing::<TestRing, _>::init(memory).unwrap();
    let mut back = BackRing::<TestRing, _>::attach(memory).unwrap();
    // Exactly `size` requests is allowed, and consuming them terminates.
    memory.store_release(REQ_PROD, 4);
    let mut consumed = 0;
    while back.poll_request().unwrap().is_some() {
        consumed += 1;
    }
    assert_eq!(consumed, 4);
    // One more without any response produced: the front end lies.
    memory.store_release(REQ_PROD, 5);
    let error = PeerError::TooManyRequests { req_prod: 5, rsp_prod: 0, slots: 4 };
    assert_eq!(back.poll_request(), Err(error));
    // Broken for good: every later call reports the same thing.
    memory.store_release(REQ_PROD, 4);
    assert_eq!(back.poll_request(), Err(error));
    assert_eq!(back.final_check_for_requests(), Err(error));
    assert_eq!(back.broken(), Some(error));
    assert!(error.to_string().contains("claims 5 requests in flight on a 4-slot ring"));
}

#[test]
fn back_end_rejects_req_prod_going_backwards() {
    let mut page = vec![0u8; SMALL];
    let memory = CellMemory::new(&mut page);
    let _front = FrontRing::<TestRing, _>::init(memory).unwrap();
    let mut back = BackRing::<TestRing, _>::attach(memory).unwrap();
    memory.store_release(REQ_PROD, 3);
    for _ in 0..3 {
        back.poll_request().unwrap().unwrap();
    }
    memory.store_release(REQ_PROD, 1);
    assert_eq!(
        back.poll_request(),
        Err(PeerError::ProducerWentBackwards { index: SharedIndex::RequestProducer, previous: 3, now: 1 })
    );
    // A huge jump is reported too, and never walked.
    let mut page = vec![0u8; SMALL];
    let memory = CellMemory::new(&mut page);
    let mut back = BackRing::<TestRing, _>::attach(memory).unwrap();
    memory.store_release(REQ_PROD, 0x8000_0000);
    assert!(back.poll_request().is_err());
}

#[test]
fn front_end_rejects_responses_nobody_asked_for() {
    let mut page = vec![0u8; SMALL];
    let memory = CellMemory::new(&mut page);
    let mut front = FrontRing::<TestRing, _>::init(memory).unwrap();
    // Responses without any request.
    memory.store_release(RSP_PROD, 1);
    assert_eq!(front.poll_response(), Err(PeerError::TooManyResponses { rsp_prod: 1, rsp_cons: 0, in_flight: 0 }));

    // A response with an id never issued, then a duplicate.
    let mut page = vec![0u8; SMALL];
    let memory = CellMemory::new(&mut page);
    let mut front = FrontRing::<TestRing, _>::init(memory).unwrap();
    let mut back = BackRing::<TestRing, _>::attach(memory).unwrap();
    front.push_request(msg(2, 0)).unwrap();
    front.push_request(msg(3, 0)).unwrap();
    let _ = front.publish_requests();
    back.poll_request().unwrap();
    back.push_response(msg(1, 0)).unwrap();
    let _ = back.publish_responses();
    assert_eq!(front.poll_response(), Err(PeerError::UnknownResponseId { id: 1 }));

    let mut page = vec![0u8; SMALL];
    let memory = CellMemory::new(&mut page);
    let mut front = FrontRing::<TestRing, _>::init(memory).unwrap();
    let mut back = BackRing::<TestRing, _>::attach(memory).unwrap();
    front.push_request(msg(2, 0)).unwrap();
    front.push_request(msg(3, 0)).unwrap();
    let _ = front.publish_requests();
    back.poll_request().unwrap();
    back.poll_request().unwrap();
    back.push_response(msg(2, 0)).unwrap();
    back.push_response(msg(2, 0)).unwrap();
    let _ = back.publish_responses();
    assert_eq!(front.poll_response(), Ok(Some(msg(2, 0))));
    assert_eq!(front.poll_response(), Err(PeerError::UnknownResponseId { id: 2 }));

    // rsp_prod moving backwards.
    let mut page = vec![0u8; SMALL];
    let memory = CellMemory::new(&mut page);
    let mut front = FrontRing::<TestRing, _>::init(memory).unwrap();
    let mut back = BackRing::<TestRing, _>::attach(memory).unwrap();
    for id in 0..3 {
        front.push_request(msg(id, 0)).unwrap();
    }
    let _ = front.publish_requests();
    while let Some(request) = back.poll_request().unwrap() {
        back.push_response(request).unwrap();
    }
    let _ = back.publish_responses();
    front.poll_response().unwrap().unwrap();
    memory.store_release(RSP_PROD, 0);
    // Already-seen responses are still consumed from the private snapshot...
    front.poll_response().unwrap().unwrap();
    front.poll_response().unwrap().unwrap();
    // ...and the next look at rsp_prod catches the lie.
    assert_eq!(
        front.poll_response(),
        Err(PeerError::ProducerWentBackwards { index: SharedIndex::ResponseProducer, previous: 3, now: 0 })
    );
}

/// Shared memory that counts reads of each byte, to prove every slot is read exactly once.
struct CountingMemory<'a> {
    inner: CellMemory<'a>,
    reads: RefCell<Vec<u32>>,
}

// SAFETY: single-threaded (`RefCell` makes it `!Sync`); forwards to `CellMemory`.
unsafe impl SharedMemory for CountingMemory<'_> {
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn read(&self, offset: usize, dst: &mut [u8]) {
        for count in &mut self.reads.borrow_mut()[offset..offset + dst.len()] {
            *count += 1;
        }
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

#[test]
fn every_request_slot_is_copied_exactly_once_before_use() {
    let mut page = vec![0u8; PAGE_SIZE];
    let cells = Cell::from_mut(&mut page[..]).as_slice_of_cells();
    let attacker = CellMemory::from_cells(cells);
    let counting = CountingMemory { inner: CellMemory::from_cells(cells), reads: RefCell::new(vec![0; PAGE_SIZE]) };
    let mut front = FrontRing::<Blkif, _>::init(CellMemory::from_cells(cells)).unwrap();
    let mut back = BackRing::<Blkif, _>::attach(&counting).unwrap();
    for id in 0..8u64 {
        let request = BlkifRequest { operation: OP_READ, nr_segments: 1, id, ..Default::default() };
        front.push_request(BlkifRequestSlot::from(&request)).unwrap();
    }
    let _ = front.publish_requests();
    for id in 0..8u64 {
        let slot = back.poll_request().unwrap().unwrap();
        // The front end rewrites the slot after the copy: the copy is what counts.
        let offset = back.layout().slot_offset(id as u32);
        attacker.write(offset + 1, &[200]);
        assert_eq!(slot.id(), id);
        assert!(slot.decode().is_ok(), "validation sees the private copy, not nr_segments = 200");
        assert!(counting.reads.borrow()[offset..offset + 112].iter().all(|&n| n == 1));
    }
    assert_eq!(counting.reads.borrow().iter().map(|&n| n as usize).sum::<usize>(), 8 * 112);
}

/// `unconsumed_*` reads the producer index once (only when everything seen is taken) and
/// `take_*` walks that snapshot without touching the index again, each slot copied once; the
/// hostile-peer rules hold as for `poll_*`.
#[test]
fn snapshot_take_reads_the_index_once_per_batch() {
    let mut page = vec![0u8; PAGE_SIZE];
    let cells = Cell::from_mut(&mut page[..]).as_slice_of_cells();
    let attacker = CellMemory::from_cells(cells);
    let counting = CountingMemory { inner: CellMemory::from_cells(cells), reads: RefCell::new(vec![0; PAGE_SIZE]) };
    let mut front = FrontRing::<Blkif, _>::init(CellMemory::from_cells(cells)).unwrap();
    let mut back = BackRing::<Blkif, _>::attach(&counting).unwrap();
    for id in 0..5u64 {
        let request = BlkifRequest { operation: OP_READ, nr_segments: 1, id, ..Default::default() };
        front.push_request(BlkifRequestSlot::from(&request)).unwrap();
    }
    let _ = front.publish_requests();
    assert_eq!(back.unconsumed_requests(), Ok(5));
    // Requests published after the snapshot wait for the next one.
    for id in 5..7u64 {
        let request = BlkifRequest { operation: OP_READ, nr_segments: 1, id, ..Default::default() };
        front.push_request(BlkifRequestSlot::from(&request)).unwrap();
    }
    let _ = front.publish_requests();
    // A lie written to req_prod now is not seen until the snapshot is used up.
    attacker.store_release(REQ_PROD, 1000);
    let mut taken = Vec::new();
    while let Some(slot) = back.take_request().unwrap() {
        taken.push(slot.id());
        back.push_response(BlkifResponse { id: slot.id(), operation: slot.operation(), status: 0 }).unwrap();
    }
    assert_eq!(taken, [0, 1, 2, 3, 4], "the snapshot, untouched by the later lie");
    let reads = counting.reads.borrow().clone();
    for id in 0..5u32 {
        let offset = back.layout().slot_offset(id);
        assert!(reads[offset..offset + 112].iter().all(|&n| n == 1), "slot {id} copied exactly once");
    }
    assert_eq!(reads.iter().map(|&n| n as usize).sum::<usize>(), 5 * 112);
    // Everything seen is taken, so the next count re-reads req_prod, which is a lie: broken,
    // and broken for good, also for take_request.
    let error = back.unconsumed_requests().unwrap_err();
    assert_eq!(error, PeerError::TooManyRequests { req_prod: 1000, rsp_prod: 5, slots: 32 });
    assert_eq!(back.take_request(), Err(error));
    assert_eq!(back.poll_request(), Err(error));

    // The front end: the same on responses, and an unknown id breaks it.
    let _ = back.publish_responses();
    assert_eq!(front.unconsumed_responses(), Ok(5));
    for id in 0..5 {
        assert_eq!(front.take_response().unwrap().unwrap().id, id);
    }
    assert_eq!(front.take_response(), Ok(None));
    let offset = back.layout().slot_offset(5);
    attacker.write(offset, &BlkifResponse { id: 3, operation: 0, status: 0 }.to_raw());
    attacker.store_release(RSP_PROD, 6);
    assert_eq!(front.unconsumed_responses(), Ok(1));
    let error = PeerError::UnknownResponseId { id: 3 };
    assert_eq!(front.take_response(), Err(error));
    assert_eq!(front.take_response(), Err(error));
    assert_eq!(front.unconsumed_responses(), Err(error));
    assert_eq!(front.poll_response(), Err(error));
}

/// `flush_*` makes entries visible at once without a decision; the next `publish_*` decides for
/// everything flushed since the previous decision, so a peer that armed its event in that range
/// is kicked exactly once.
#[test]
fn flush_makes_entries_visible_and_defers_the_decision() {
    let mut page = vec![0u8; SMALL];
    let memory = CellMemory::new(&mut page);
    let mut front = FrontRing::<TestRing, _>::init(memory).unwrap();
    let mut back = BackRing::<TestRing, _>::attach(memory).unwrap();
    // The back end is asleep at its initial threshold (req_event = 1).
    front.push_request(msg(0, 10)).unwrap();
    assert_eq!((front.unpublished(), front.undecided()), (1, 1));
    front.flush_requests();
    assert_eq!((front.unpublished(), front.undecided()), (0, 1));
    assert_eq!(memory.load_acquire(REQ_PROD), 1, "flushed: req_prod stored");
    assert_eq!(back.poll_request(), Ok(Some(msg(0, 10))), "visible without a publish");
    front.push_request(msg(1, 11)).unwrap();
    front.flush_requests();
    assert_eq!(front.undecided(), 2);
    assert_eq!(front.publish_requests(), Notify::Needed, "the decision covers the flushed range (0, 2]");
    assert_eq!(front.undecided(), 0);
    assert_eq!(front.publish_requests(), Notify::NotNeeded, "decided once");

    // The back end answers; the front end sleeps after its final check; flushed responses are
    // only signalled by the decision.
    assert_eq!(back.poll_request(), Ok(Some(msg(1, 11))));
    assert_eq!(front.final_check_for_responses(), Ok(false));
    back.push_response(msg(0, 20)).unwrap();
    back.flush_responses();
    assert_eq!((back.unpublished(), back.undecided()), (0, 1));
    back.push_response(msg(1, 21)).unwrap();
    assert_eq!((back.unpublished(), back.undecided()), (1, 2));
    assert_eq!(back.publish_responses(), Notify::Needed);
    assert_eq!(front.poll_response(), Ok(Some(msg(0, 20))));
    assert_eq!(front.poll_response(), Ok(Some(msg(1, 21))));

    // Responses to flushed (not yet decided) requests are legitimate.
    front.push_request(msg(2, 12)).unwrap();
    front.flush_requests();
    assert_eq!(back.poll_request(), Ok(Some(msg(2, 12))));
    back.push_response(msg(2, 22)).unwrap();
    let _ = back.publish_responses();
    assert_eq!(front.poll_response(), Ok(Some(msg(2, 22))));
}

#[derive(Debug, Clone)]
enum Op {
    FrontPush(u8),
    FrontPublish,
    FrontFlush,
    FrontPoll,
    FrontFinalCheck,
    BackPoll,
    BackRespond,
    BackPublish,
    BackFlush,
    BackFinalCheck,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u8..6).prop_map(Op::FrontPush),
        Just(Op::FrontPublish),
        Just(Op::FrontFlush),
        Just(Op::FrontPoll),
        Just(Op::FrontFinalCheck),
        Just(Op::BackPoll),
        Just(Op::BackRespond),
        Just(Op::BackPublish),
        Just(Op::BackFlush),
        Just(Op::BackFinalCheck),
    ]
}

proptest! {
    // Miri runs a few cases only (it interprets every instruction) and cannot write the
    // failure-persistence file under isolation.
    #![proptest_config(ProptestConfig {
        cases: if cfg!(miri) { 3 } else { 512 },
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random interleavings of every operation of both halves against a simple model: FIFO
    /// delivery, no loss or duplication, and notification decisions that never leave a peer
    /// asleep with work it has not seen, and never kick a peer that has not asked since the
    /// last decision. Flushes make entries visible at once and defer the decision to the next
    /// publish. (Without flushes this is exactly "notify iff the peer is asleep".)
    #[test]
    fn both_halves_follow_the_model(ops in proptest::collection::vec(op(), 1..300), start in any::<u32>()) {
        let mut page = vec![0u8; 64 + 8 * 16];
        let memory = CellMemory::new(&mut page);
        for offset in [REQ_PROD, RSP_PROD] { memory.store_release(offset, start); }
        for offset in [REQ_EVENT, RSP_EVENT] { memory.store_release(offset, start.wrapping_add(1)); }
        let mut front = FrontRing::<TestRing, _>::attach(memory, start).unwrap();
        let mut back = BackRing::<TestRing, _>::attach_at(memory, start).unwrap();

        // Model state.
        let mut free_ids: VecDeque<u64> = (0..8).collect();
        let mut unpublished: VecDeque<Msg> = VecDeque::new();
        let mut published: VecDeque<Msg> = VecDeque::new();
        let mut unanswered: VecDeque<Msg> = VecDeque::new();
        let mut unpublished_rsp: VecDeque<Msg> = VecDeque::new();
        let mut published_rsp: VecDeque<Msg> = VecDeque::new();
        // Asleep: its last final check said "sleep" and it has not taken anything since (nor
        // been kicked). Armed: it asked for a notification (a final check that said "sleep")
        // and has not been kicked since. Both start true: `*_event = start + 1`.
        let (mut back_asleep, mut front_asleep) = (true, true);
        let (mut back_armed, mut front_armed) = (true, true);
        // Entries made visible by a flush and not yet covered by a decision.
        let (mut undecided_req, mut undecided_rsp) = (false, false);
        let mut next_payload = 0u64;

        for op in ops {
            match op {
                Op::FrontPush(n) => for _ in 0..n {
                    let in_flight = unpublished.len() + published.len() + unanswered.len() + unpublished_rsp.len() + published_rsp.len();
                    let m = free_ids.front().map(|&id| msg(id, next_payload));
                    let result = front.push_request(m.unwrap_or(msg(0, 0)));
                    if in_flight == 8 {
                        prop_assert_eq!(result, Err(PushError::RingFull));
                    } else {
                        prop_assert_eq!(result, Ok(()));
                        free_ids.pop_front();
                        unpublished.push_back(m.unwrap());
                        next_payload += 1;
                    }
                },
                Op::FrontPublish => {
                    let notify = front.publish_requests();
                    if unpublished.is_empty() && !undecided_req {
                        prop_assert_eq!(notify, Notify::NotNeeded);
                    } else {
                        published.extend(unpublished.drain(..));
                        if back_asleep && !published.is_empty() {
                            prop_assert!(notify.is_needed(), "back end asleep with unseen requests was not woken");
                        }
                        if !back_armed {
                            prop_assert_eq!(notify, Notify::NotNeeded, "back end was kicked without asking");
                        }
                        if notify.is_needed() {
                            back_asleep = false;
                            back_armed = false;
                        }
                        undecided_req = false;
                    }
                }
                Op::FrontFlush => {
                    front.flush_requests();
                    if !unpublished.is_empty() {
                        published.extend(unpublished.drain(..));
                        undecided_req = true;
                    }
                    prop_assert_eq!(front.unpublished(), 0);
                }
                Op::FrontPoll => {
                    let got = front.poll_response().unwrap();
                    prop_assert_eq!(got, published_rsp.pop_front());
                    if let Some(m) = got { free_ids.push_back(m.id); front_asleep = false; }
                }
                Op::FrontFinalCheck => {
                    let work = front.final_check_for_responses().unwrap();
                    prop_assert_eq!(work, !published_rsp.is_empty());
                    front_asleep = !work;
                    front_armed |= !work;
                }
                Op::BackPoll => {
                    let got = back.poll_request().unwrap();
                    prop_assert_eq!(got, published.pop_front());
                    if let Some(m) = got { unanswered.push_back(m); back_asleep = false; }
                }
                Op::BackRespond => {
                    let result = back.push_response(unanswered.front().copied().unwrap_or(msg(0, 0)));
                    match unanswered.pop_front() {
                        Some(m) => { prop_assert_eq!(result, Ok(())); unpublished_rsp.push_back(m); }
                        None => prop_assert_eq!(result, Err(PushError::NoRequestToAnswer)),
                    }
                }
                Op::BackPublish => {
                    let notify = back.publish_responses();
                    if unpublished_rsp.is_empty() && !undecided_rsp {
                        prop_assert_eq!(notify, Notify::NotNeeded);
                    } else {
                        published_rsp.extend(unpublished_rsp.drain(..));
                        if front_asleep && !published_rsp.is_empty() {
                            prop_assert!(notify.is_needed(), "front end asleep with unseen responses was not woken");
                        }
                        if !front_armed {
                            prop_assert_eq!(notify, Notify::NotNeeded, "front end was kicked without asking");
                        }
                        if notify.is_needed() {
                            front_asleep = false;
                            front_armed = false;
                        }
                        undecided_rsp = false;
                    }
                }
                Op::BackFlush => {
                    back.flush_responses();
                    if !unpublished_rsp.is_empty() {
                        published_rsp.extend(unpublished_rsp.drain(..));
                        undecided_rsp = true;
                    }
                    prop_assert_eq!(back.unpublished(), 0);
                }
                Op::BackFinalCheck => {
                    let work = back.final_check_for_requests().unwrap();
                    prop_assert_eq!(work, !published.is_empty());
                    back_asleep = !work;
                    back_armed |= !work;
                }
            }
            prop_assert_eq!(front.free_requests() as usize, free_ids.len());
        }
    }
}
