//! blkback's data path against a hostile frontend: the vdisk's `params` (the first input line,
//! through `params::parse`; a fixed region if it does not parse), then a script that writes raw
//! 112-byte request slots into the ring page, writes 8-byte segment entries into granted pages
//! (so indirect requests find segment lists, good and bad), rewrites the ring's header words,
//! lets the device finish its requests (in order or backwards), and runs `serve_round` (which
//! polls each slot once, validates it in `Vbd::check` and queues it on a RAM disk, moving data
//! through a fake grant copier). No panic; the backend touches no sector outside its region and
//! writes nothing to a read-only vdisk; it asks for no copy outside a granted page or its own
//! buffer; a flush runs with nothing in flight; responses answer the requests in ring order
//! with a status blkif defines and the operation blkfront expects (`indirect_op` for an
//! indirect request).
#![no_main]

use std::collections::VecDeque;

use blkback::device::{BlockDevice, BufId, DeviceError, Io, RamDisk};
use blkback::params::{self, Region};
use blkback::queue::Completions;
use blkback::serve::{Pass, QUEUE_LIMIT, serve_round};
use blkback::testing::HeldDisk;
use blkback::vbd::Vbd;
use fuzz::{FakeGrants, GRANTS, HostileFront, Script, page};
use libfuzzer_sys::fuzz_target;
use shared_ring::layout::HEADER_SIZE;
use shared_ring::wire::blkif::{
    Blkif, BlkifRequestSlot, BlkifResponse, OP_INDIRECT, REQUEST_SIZE, RESPONSE_SIZE, RSP_EOPNOTSUPP, RSP_ERROR,
    RSP_OKAY,
};
use shared_ring::{BackRing, SharedMemory};

const FRONTEND: hv_abi::DomId = 7;
/// A 2 MiB backing device.
const DEVICE_SECTORS: u64 = 4096;
/// Rounds served per input (each serves at most 32 requests).
const MAX_ROUNDS: usize = 64;

/// blkback's held-completion test device (its requests finish when the script says so, in order
/// or backwards), checking that every access stays inside the vdisk's region.
struct Guarded {
    disk: HeldDisk,
    region: Region,
}

impl Guarded {
    fn inside(&self, sector: u64, bytes: usize) {
        let end = sector + (bytes / 512) as u64;
        assert!(
            sector >= self.region.start && end <= self.region.start + self.region.sectors,
            "access to sectors {sector}..{end} outside the vdisk {:?}",
            self.region
        );
    }
}

impl BlockDevice for Guarded {
    fn capacity(&self) -> u64 {
        self.disk.capacity()
    }
    fn depth(&self) -> usize {
        self.disk.depth()
    }
    fn take(&mut self) -> Option<BufId> {
        self.disk.take()
    }
    fn buffer(&mut self, id: BufId) -> Option<&mut [u8]> {
        self.disk.buffer(id)
    }
    fn start(&mut self, id: BufId, io: Io, sector: u64, len: usize) -> Result<(), DeviceError> {
        self.inside(sector, len);
        assert!(io == Io::Read || !self.region.read_only, "write to a read-only vdisk");
        self.disk.start(id, io, sector, len)
    }
    fn finished(&mut self) -> Option<(BufId, Result<(), DeviceError>)> {
        self.disk.finished()
    }
    fn give_back(&mut self, id: BufId) {
        self.disk.give_back(id)
    }
    fn in_flight(&self) -> usize {
        self.disk.in_flight()
    }
    fn flush(&mut self) -> Result<(), DeviceError> {
        assert_eq!(self.in_flight(), 0, "a flush with requests in flight");
        assert!(!self.region.read_only, "flush of a read-only vdisk");
        self.disk.flush()
    }
    fn wait(&mut self) {
        self.disk.wait()
    }
}

fuzz_target!(|data: &[u8]| {
    let mut script = Script(data);
    let line_len = data.iter().take(64).position(|&b| b == b'\n').unwrap_or(0);
    let line = script.bytes(line_len);
    let _ = script.byte(); // the newline
    let region = std::str::from_utf8(line).ok().and_then(|p| params::parse(p, DEVICE_SECTORS).ok()).unwrap_or(Region {
        start: 2048,
        sectors: 2048,
        read_only: line.first().is_some_and(|b| b & 1 == 1),
    });
    assert!(region.sectors > 0 && region.start + region.sectors <= DEVICE_SECTORS);

    let cells = page();
    let mut front = HostileFront::new(&cells, REQUEST_SIZE);
    let mut ring = BackRing::<Blkif, _>::attach(front.memory).unwrap();
    let mut vbd = Vbd::new(FRONTEND, region);
    let mut dev = Guarded { disk: HeldDisk::new(RamDisk::new(DEVICE_SECTORS)), region };
    let mut done = Completions::new(dev.depth());
    let mut grants = FakeGrants::new(FRONTEND);
    // Ids and expected response operations of the requests pushed, in order, while the frontend has not tampered with the header.
    let mut pushed: VecDeque<(u64, u8)> = VecDeque::new();
    let mut tampered = false;
    let mut rsp_cons = 0u32;
    let mut rounds = 0;

    while let Some(op) = script.byte() {
        match op % 6 {
            0 => {
                let slot = script.bytes(REQUEST_SIZE);
                let mut raw = [0u8; REQUEST_SIZE];
                raw[..slot.len()].copy_from_slice(slot);
                // More than a ring's worth outstanding overwrites unread slots: that is
                // tampering too (the backend may then break the ring).
                tampered |= pushed.len() >= front.slots as usize;
                let slot = BlkifRequestSlot::from_raw(raw);
                let op = if slot.operation() == OP_INDIRECT { raw[1] } else { raw[0] };
                pushed.push_back((slot.id(), op));
                front.push(&raw);
            }
            1 => {
                if rounds == MAX_ROUNDS {
                    break;
                }
                rounds += 1;
                let budget = u32::from(script.byte().unwrap_or(31) % 32) + 1;
                let pass = Pass { budget, hold_starts: budget & 1 == 0 && rounds % 3 == 0, contended: budget % 3 == 0 };
                match serve_round(&mut ring, &mut vbd, &mut dev, &mut done, &mut grants, pass, |_, _| {}) {
                    Ok(round) => {
                        // Answers come from the queue, which never outgrows a ring's worth.
                        assert!(round.served as usize <= QUEUE_LIMIT && round.refused <= round.served);
                        assert!(vbd.queue.len() <= QUEUE_LIMIT);
                    }
                    Err(e) => {
                        let _ = e.to_string();
                    }
                }
                if let Some(r) = vbd.last_refusal {
                    let _ = r.to_string();
                }
            }
            2 => {
                let (Some(which), Some(value)) = (script.byte(), script.u32()) else { break };
                front.rewrite_header(which, value);
                tampered = true;
            }
            4 => {
                // The frontend writes a segment entry (gref, first_sect, last_sect) into one of
                // its granted pages: indirect requests read their segment lists from there.
                let (Some(gref), Some(index)) = (script.byte(), script.byte()) else { break };
                let entry = script.bytes(8);
                let at = usize::from(index % 64) * 8;
                grants.pages[usize::from(gref) % GRANTS as usize][at..at + entry.len()].copy_from_slice(entry);
            }
            5 => {
                // The device finishes what it was given, in order or backwards.
                let reverse = script.byte().is_some_and(|b| b & 1 == 1);
                dev.disk.release(reverse);
            }
            _ => {
                // The frontend reads the responses published since it last looked.
                let rsp_prod = front.rsp_prod();
                let new = rsp_prod.wrapping_sub(rsp_cons);
                assert!(tampered || new <= front.slots, "backend published {new} responses at once");
                for _ in 0..new.min(front.slots) {
                    let at = HEADER_SIZE + (rsp_cons % front.slots) as usize * REQUEST_SIZE;
                    let mut raw = [0u8; RESPONSE_SIZE];
                    front.memory.read(at, &mut raw);
                    let response = BlkifResponse::from_raw(&raw);
                    if !tampered {
                        assert!([RSP_OKAY, RSP_ERROR, RSP_EOPNOTSUPP].contains(&response.status));
                        assert_eq!(
                            Some((response.id, response.operation)),
                            pushed.pop_front(),
                            "responses out of request order or with the wrong operation"
                        );
                    }
                    rsp_cons = rsp_cons.wrapping_add(1);
                }
            }
        }
    }
});
