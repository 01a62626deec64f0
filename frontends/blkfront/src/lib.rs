//! blkfront: the frontend half of the Xen block split driver (blkif) for hv-core DomUs.
//!
//! [`BlkFront::connect`] finds device `vbd/<n>` in the store, waits for the backend's InitWait,
//! shares a one-page ring and an event channel (`ring-ref`, `event-channel`, `protocol` =
//! `x86_64-abi`), goes Initialised, waits for the backend's Connected and reads the disk's
//! `sectors`, `sector-size`, `info` and `feature-flush-cache`/`feature-barrier`.
//!
//! [`BlkFront::read`] / [`BlkFront::write`] split a transfer into requests of up to 11 pages
//! and keep as many in flight as the ring (32 slots) and the granted-page pool allow. Data goes
//! through the pool ([`GrantedPages`]: granted once to the backend, reused by every request;
//! the backend grant-copies to and from them). [`BlkFront::flush`] sends
//! `BLKIF_OP_FLUSH_DISKCACHE` (or a barrier) and returns once the backend acknowledged it.
//!
//! If the backend goes Closing/Closed or vanishes while requests are in flight, the frontend
//! goes Closing, waits for the backend to let go of the ring (it answers Closing or is Closed),
//! tears its ring down, goes Closed, then Initialising, waits for a (new) backend's InitWait,
//! sets up a new ring and re-issues every unfinished request. Waiting on the backend's state is
//! `xenstore::xenbus::frontend`'s.
#![no_std]

extern crate alloc;

use alloc::alloc::{Layout, alloc_zeroed};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::borrow::BorrowMut;
use core::fmt;
use core::ptr::NonNull;

use hv_rt::grant::{self, GrantedPages};
use hv_rt::store::{Store, XenbusState, xenbus};
use hv_rt::{evtchn, println, time};
use shared_ring::wire::blkif::{
    BlkifRequest, BlkifRequestSlot, BlkifResponse, BlkifSegment, MAX_SEGMENTS_PER_REQUEST, OP_FLUSH_DISKCACHE, OP_READ,
    OP_WRITE, OP_WRITE_BARRIER, RSP_OKAY,
};
use shared_ring::{Blkif, FrontRing, PageMemory, PeerError};
use xenbus::frontend::WaitError;
use xenstore::{ClientError, Errno, Request, StoreClient};

pub const SECTOR_SIZE: usize = 512;
const PAGE: usize = 4096;
/// Slots of a one-page blkif ring; request ids are slot indices.
pub const RING_SLOTS: usize = 32;
const SECOND: u64 = 1_000_000_000;
/// A transfer gives up after this long without any response.
const STALL_TIMEOUT_NS: u64 = 30 * SECOND;

/// What the backend published about the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskInfo {
    pub sectors: u64,
    pub sector_size: u32,
    pub read_only: bool,
    pub flush: bool,
    pub barrier: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlkError {
    /// Store, grant or event-channel trouble while (re)connecting.
    Setup(String),
    /// The backend answered a request with an error status.
    Io { operation: u8, sector: u64, status: i16 },
    /// Buffer not whole sectors, or the range is past the disk.
    BadRange,
    /// A write to a read-only disk.
    ReadOnly,
    /// No response for 30 s.
    Timeout,
    /// The backend broke the ring.
    Broken(PeerError),
}

impl fmt::Display for BlkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlkError::Setup(s) => f.write_str(s),
            BlkError::Io { operation, sector, status } => {
                write!(f, "operation {operation} at sector {sector} failed with status {status}")
            }
            BlkError::BadRange => f.write_str("range not whole sectors inside the disk"),
            BlkError::ReadOnly => f.write_str("the disk is read-only"),
            BlkError::Timeout => f.write_str("the backend stopped answering"),
            BlkError::Broken(e) => write!(f, "the backend broke the ring: {e}"),
        }
    }
}

fn setup_err(what: &str, e: impl fmt::Display) -> BlkError {
    BlkError::Setup(format!("{what}: {e}"))
}

struct Ring {
    ring: FrontRing<Blkif, PageMemory>,
    page: u64,
    gref: u32,
    port: u32,
}

/// A request on the wire and what it carries.
struct InFlight {
    request: BlkifRequest,
    pages: Vec<(u32, u64)>,
    /// Index of the chunk of the current transfer.
    chunk: usize,
}

/// A connected block device. `S` is its store connection: owned (`Store`, the default) or
/// borrowed (`&mut Store`, while another device of the domain owns it; see
/// [`BlkFront::with_store`]).
pub struct BlkFront<S = Store> {
    store: S,
    dir: String,
    be_dir: String,
    be: hv_abi::DomId,
    ring: Option<Ring>,
    pool: Option<GrantedPages>,
    pool_pages: usize,
    info: DiskInfo,
    slots: [Option<InFlight>; RING_SLOTS],
    /// Reconnections so far.
    pub reconnects: u32,
}

/// The value read from `path` as a number, 0 if missing.
fn number_or_zero(path: &str, read: Result<Vec<u8>, ClientError>) -> Result<u64, BlkError> {
    match read {
        Ok(v) => {
            let s = String::from_utf8_lossy(&v);
            s.trim().parse().map_err(|_| BlkError::Setup(format!("{path}: not a number: {s:?}")))
        }
        Err(ClientError::Store(Errno::Enoent)) => Ok(0),
        Err(e) => Err(setup_err(path, e)),
    }
}

/// Our `backend` and `backend-id` keys (one round trip).
fn read_backend(store: &mut Store, dir: &str) -> Result<(String, hv_abi::DomId), BlkError> {
    let (path, id) = (format!("{dir}/backend"), format!("{dir}/backend-id"));
    let mut read = store.read_many(&[path.as_bytes(), id.as_bytes()]).into_iter();
    let be_dir = read.next().unwrap_or(Err(ClientError::NoReply)).map_err(|e| setup_err("backend path", e))?;
    let be = read
        .next()
        .unwrap_or(Err(ClientError::NoReply))
        .map_err(xenbus::ReadError::Store)
        .and_then(|v| xenbus::parse_domid(&id, &v))
        .map_err(|e| setup_err("backend-id", e))?;
    Ok((String::from_utf8_lossy(&be_dir).into_owned(), be))
}

fn backend_state(store: &mut Store, be_dir: &str) -> XenbusState {
    xenbus::frontend::peer_state(store, be_dir.as_bytes())
}

/// Watches the backend's state and waits until `done(state)` ([`xenbus::frontend`]).
fn wait_backend(
    store: &mut Store,
    be_dir: &str,
    timeout_ns: u64,
    done: impl Fn(XenbusState) -> bool,
) -> Result<XenbusState, BlkError> {
    let deadline = time::now_ns().saturating_add(timeout_ns);
    xenbus::frontend::wait_for_state(store, be_dir.as_bytes(), b"blkfront", done, |s| s.wait_until(deadline)).map_err(
        |e| match e {
            WaitError::TimedOut(s) => BlkError::Setup(format!("timed out waiting for the backend (state {s:?})")),
            WaitError::Watch(e) => setup_err("watch the backend's state", e),
            WaitError::Store(e) => setup_err("store", e),
        },
    )
}

impl BlkFront {
    /// Connects device `vbd/<index>` with a pool of `pool_pages` granted pages (at least 11).
    pub fn connect(store: Store, index: u32, pool_pages: usize) -> Result<Self, BlkError> {
        let mut f = Self::start(store, index, pool_pages)?;
        f.finish()?;
        Ok(f)
    }

    /// Gives the store connection back (the device is left as it is: its ring stays shared
    /// until the domain ends).
    pub fn into_store(self) -> Store {
        self.store
    }
}

impl<S> BlkFront<S> {
    /// The same device over another store handle (an owned one, or one borrowed from another
    /// device of the domain), and the handle it had.
    pub fn with_store<T>(self, store: T) -> (BlkFront<T>, S) {
        let BlkFront { store: old, dir, be_dir, be, ring, pool, pool_pages, info, slots, reconnects } = self;
        (BlkFront { store, dir, be_dir, be, ring, pool, pool_pages, info, slots, reconnects }, old)
    }
}

impl<S: BorrowMut<Store>> BlkFront<S> {
    /// The first half of [`BlkFront::connect`]: waits for the backend's InitWait, shares the
    /// ring and goes Initialised. [`BlkFront::finish`] completes the handshake; in between the
    /// domain may start its other devices (the backends work meanwhile).
    pub fn start(mut store: S, index: u32, pool_pages: usize) -> Result<Self, BlkError> {
        let s = store.borrow_mut();
        let me = hv_rt::domid();
        let dir = format!("/local/domain/{me}/device/vbd/{}", xenstore::xenbus::device_id("vbd", index));
        let (be_dir, be) = read_backend(s, &dir)?;
        let info = DiskInfo { sectors: 0, sector_size: 512, read_only: true, flush: false, barrier: false };
        let mut f = Self {
            store,
            dir,
            be_dir,
            be,
            ring: None,
            pool: None,
            pool_pages: pool_pages.max(MAX_SEGMENTS_PER_REQUEST),
            info,
            slots: [const { None }; RING_SLOTS],
            reconnects: 0,
        };
        // `backend` and `backend-id` were just read.
        f.setup_start(false)?;
        Ok(f)
    }

    /// The second half of [`BlkFront::connect`] after [`BlkFront::start`]: waits for the
    /// backend's Connected, reads the disk's properties, goes Connected.
    pub fn finish(&mut self) -> Result<(), BlkError> {
        self.setup_finish()
    }

    pub fn info(&self) -> DiskInfo {
        self.info
    }

    /// Capacity in sectors.
    pub fn capacity(&self) -> u64 {
        self.info.sectors
    }

    /// The backend's domain id.
    pub fn backend(&self) -> hv_abi::DomId {
        self.be
    }

    /// The store connection (owned or borrowed by the device).
    pub fn store(&mut self) -> &mut Store {
        self.store.borrow_mut()
    }

    /// Ring, grant and port; publish; handshake; read the disk's properties.
    fn setup(&mut self) -> Result<(), BlkError> {
        self.setup_start(true)?;
        self.setup_finish()
    }

    /// Waits for a backend in InitWait (reading our `backend` keys first unless `reread` is
    /// false: they were just read); ring, grant and port; publish; Initialised.
    fn setup_start(&mut self, mut reread: bool) -> Result<(), BlkError> {
        use XenbusState::*;
        // The toolstack may point us at a new backend (a restarted driver domain is a new
        // domain): follow our `backend` key while waiting for a backend in InitWait.
        let deadline = time::now_ns() + 30 * SECOND;
        loop {
            // Our `backend` and `backend-id` keys, then the backend's state.
            if reread && let Ok((path, be)) = read_backend(self.store.borrow_mut(), &self.dir) {
                (self.be_dir, self.be) = (path, be);
            }
            reread = true;
            let s = backend_state(self.store.borrow_mut(), &self.be_dir);
            if matches!(s, InitWait | Initialised | Connected) {
                break;
            }
            if time::now_ns() > deadline {
                return Err(BlkError::Setup(format!("timed out waiting for a backend (state {s:?})")));
            }
            let _ = wait_backend(self.store.borrow_mut(), &self.be_dir, SECOND / 5, |s| {
                matches!(s, InitWait | Initialised | Connected)
            });
        }
        if self.pool.as_ref().is_none_or(|p| p.peer() != self.be) {
            if let Some(old) = self.pool.take() {
                old.end_all();
            }
            self.pool =
                Some(GrantedPages::new(self.be, self.pool_pages).map_err(|e| setup_err("granted pages", e.name()))?);
        }
        let layout = Layout::from_size_align(PAGE, PAGE).map_err(|_| BlkError::Setup("layout".into()))?;
        // SAFETY: non-zero-size layout.
        let page = unsafe { alloc_zeroed(layout) };
        let base = NonNull::new(page).ok_or(BlkError::Setup("out of memory".into()))?;
        // SAFETY: `page` is our own page, never freed (a later reconnect allocates a new one, so
        // a backend still mapping this one never sees it reused); both ends reach it only
        // through PageMemory's atomic accesses.
        let memory = unsafe { PageMemory::new(base, PAGE) };
        let ring = FrontRing::<Blkif, _>::init(memory).map_err(|e| setup_err("ring", format!("{e:?}")))?;
        let gref = grant::grant_access(self.be, page as u64, false).map_err(|e| setup_err("grant", e.name()))?;
        let port = evtchn::alloc_unbound(self.be).map_err(|e| setup_err("port", e.name()))?;
        self.ring = Some(Ring { ring, page: page as u64, gref, port });
        let dir = self.dir.clone();
        // The ring's keys in one round trip (the store keeps them in order: the backend sees
        // them all once it sees Initialised).
        let keys =
            [("ring-ref", format!("{gref}")), ("event-channel", format!("{port}")), ("protocol", "x86_64-abi".into())];
        let paths: Vec<String> = keys.iter().map(|(k, _)| format!("{dir}/{k}")).collect();
        let writes: Vec<Request<'_>> = paths
            .iter()
            .zip(&keys)
            .map(|(p, (_, v))| Request::Write { path: p.as_bytes(), value: v.as_bytes() })
            .collect();
        // The keys go with the start of the state switch's transaction.
        let (written, switched) =
            xenbus::switch_state_after(self.store.borrow_mut(), &writes, dir.as_bytes(), Initialised);
        if let Some(Err(e)) = written.into_iter().find(Result::is_err) {
            return Err(setup_err("ring-ref, event-channel, protocol", e));
        }
        switched.map_err(|e| setup_err("Initialised", e))?;
        Ok(())
    }

    /// Waits for the backend's Connected; reads the disk's properties; Connected.
    fn setup_finish(&mut self) -> Result<(), BlkError> {
        use XenbusState::*;
        let dir = self.dir.clone();
        let (gref, port) = self.ring.as_ref().map(|r| (r.gref, r.port)).ok_or(BlkError::Setup("no ring".into()))?;
        let s = wait_backend(self.store.borrow_mut(), &self.be_dir, 30 * SECOND, |s| {
            matches!(s, Connected | Closing | Closed)
        })?;
        if s != Connected {
            return Err(BlkError::Setup(format!("backend went {s:?} instead of connecting")));
        }
        // The disk's properties in one round trip.
        let be_dir = self.be_dir.clone();
        let paths: Vec<String> = ["sectors", "sector-size", "info", "feature-flush-cache", "feature-barrier"]
            .iter()
            .map(|k| format!("{be_dir}/{k}"))
            .collect();
        let refs: Vec<&[u8]> = paths.iter().map(|p| p.as_bytes()).collect();
        let mut values = Vec::with_capacity(paths.len());
        for (path, r) in paths.iter().zip(self.store.borrow_mut().read_many(&refs)) {
            values.push(number_or_zero(path, r)?);
        }
        let [sectors, sector_size, info, flush, barrier] = values[..] else {
            return Err(BlkError::Setup("disk properties: replies missing".into()));
        };
        let (flush, barrier) = (flush == 1, barrier == 1);
        if sector_size != SECTOR_SIZE as u64 {
            return Err(BlkError::Setup(format!("sector-size {sector_size} (only 512 is supported)")));
        }
        self.info = DiskInfo { sectors, sector_size: 512, read_only: info & 4 != 0, flush, barrier };
        xenbus::switch_state(self.store.borrow_mut(), dir.as_bytes(), Connected)
            .map_err(|e| setup_err("Connected", e))?;
        println!(
            "blkfront: vbd connected to backend domain {}: {sectors} sectors, {}, ring ref {gref}, port {port}",
            self.be,
            if self.info.read_only { "read-only" } else { "read-write" }
        );
        Ok(())
    }

    /// Tears the ring down after the backend left, goes Closed, then Initialising, and sets up
    /// a new ring once a backend is in InitWait again.
    fn reconnect(&mut self, why: &str) -> Result<(), BlkError> {
        use XenbusState::*;
        println!("blkfront: {why}; reconnecting");
        let dir = self.dir.clone();
        let _ = xenbus::switch_state(self.store.borrow_mut(), dir.as_bytes(), Closing);
        // The backend unmaps our ring before it answers our Closing with its own (Closing, or
        // Closed if it had closed already), or it is gone. InitWait is no answer: a restarted
        // backend is InitWait before it has seen our Closing, and closes after it has.
        let _ = wait_backend(self.store.borrow_mut(), &self.be_dir, 10 * SECOND, |s| matches!(s, Closing | Closed));
        if let Some(r) = self.ring.take() {
            let _ = evtchn::close(r.port);
            if grant::end_access(r.gref).is_err() {
                println!("blkfront: old ring page still mapped by the backend; leaving it");
            }
        }
        let _ = xenbus::switch_state(self.store.borrow_mut(), dir.as_bytes(), Closed);
        xenbus::switch_state(self.store.borrow_mut(), dir.as_bytes(), Initialising)
            .map_err(|e| setup_err("Initialising", e))?;
        self.reconnects += 1;
        self.setup()
    }

    /// The ring's current page, grant and port (hostile tests poke it directly).
    pub fn ring_parts(&self) -> Option<(u64, u32, u32)> {
        self.ring.as_ref().map(|r| (r.page, r.gref, r.port))
    }

    /// A pool page (granted to the backend) for a hand-made request; give it back with
    /// [`BlkFront::give_back`].
    pub fn take_page(&mut self) -> Option<(u32, u64)> {
        self.pool.as_mut()?.take()
    }

    pub fn give_back(&mut self, page: (u32, u64)) {
        if let Some(p) = self.pool.as_mut() {
            p.give_back(page);
        }
    }

    /// Sends one hand-made request slot as id 0 (bytes 8..16 are overwritten) and returns the
    /// backend's status. For tests of the backend; does not reconnect.
    pub fn request_raw(&mut self, slot: BlkifRequestSlot) -> Result<BlkifResponse, BlkError> {
        let mut bytes = *slot.as_raw();
        bytes[8..16].copy_from_slice(&0u64.to_le_bytes());
        let r = self.ring.as_mut().ok_or(BlkError::Setup("not connected".into()))?;
        r.ring.push_request(BlkifRequestSlot::from_raw(bytes)).map_err(|e| setup_err("push", e))?;
        if r.ring.publish_requests().is_needed() {
            let _ = evtchn::send(r.port);
        }
        let deadline = time::now_ns() + 10 * SECOND;
        loop {
            evtchn::clear(r.port);
            if let Some(rsp) = r.ring.poll_response().map_err(BlkError::Broken)? {
                return Ok(rsp);
            }
            if !r.ring.final_check_for_responses().map_err(BlkError::Broken)? {
                if time::now_ns() > deadline {
                    return Err(BlkError::Timeout);
                }
                time::block_until(time::now_ns() + SECOND / 10);
            }
        }
    }

    /// The backend's state now.
    pub fn backend_state(&mut self) -> XenbusState {
        backend_state(self.store.borrow_mut(), &self.be_dir.clone())
    }

    /// Reads `buf.len() / 512` sectors at `sector`.
    pub fn read(&mut self, sector: u64, buf: &mut [u8]) -> Result<(), BlkError> {
        self.transfer(OP_READ, sector, Buf::Read(buf))
    }

    /// Writes whole sectors at `sector`; returns once the backend acknowledged every request
    /// (that is, the backing device completed it; call [`BlkFront::flush`] for durability).
    pub fn write(&mut self, sector: u64, buf: &[u8]) -> Result<(), BlkError> {
        if self.info.read_only {
            return Err(BlkError::ReadOnly);
        }
        self.transfer(OP_WRITE, sector, Buf::Write(buf))
    }

    /// Makes every acknowledged write durable.
    pub fn flush(&mut self) -> Result<(), BlkError> {
        let op = if self.info.flush {
            OP_FLUSH_DISKCACHE
        } else if self.info.barrier {
            OP_WRITE_BARRIER
        } else {
            return Ok(()); // no volatile cache advertised: writes are durable when acknowledged
        };
        self.transfer(op, 0, Buf::None)
    }

    fn transfer(&mut self, op: u8, sector: u64, mut buf: Buf<'_>) -> Result<(), BlkError> {
        let len = buf.len();
        if !len.is_multiple_of(SECTOR_SIZE) {
            return Err(BlkError::BadRange);
        }
        let sectors = (len / SECTOR_SIZE) as u64;
        if sector.checked_add(sectors).is_none_or(|end| end > self.info.sectors) {
            return Err(BlkError::BadRange);
        }
        let per_request = MAX_SEGMENTS_PER_REQUEST * PAGE;
        let chunks = if len == 0 { 1 } else { len.div_ceil(per_request) };
        // 0 not issued, 1 in flight, 2 done
        let mut state: Vec<u8> = alloc::vec![0; chunks];
        let mut next = 0usize; // lowest chunk that may still be unissued
        let mut done = 0usize;
        let mut first_error: Option<BlkError> = None;
        let mut last_progress = time::now_ns();
        let mut last_state_check = time::now_ns();
        while done < chunks {
            // Issue.
            let mut pushed = false;
            while first_error.is_none() && next < chunks {
                if state[next] != 0 {
                    next += 1;
                    continue;
                }
                let Some(slot) = self.slots.iter().position(|s| s.is_none()) else { break };
                let off = next * per_request;
                let bytes = (len - off).min(per_request);
                let npages = bytes.div_ceil(PAGE);
                let (Some(r), Some(pool)) = (self.ring.as_mut(), self.pool.as_mut()) else { break };
                if r.ring.free_requests() == 0 {
                    break;
                }
                let mut pages = Vec::with_capacity(npages);
                for _ in 0..npages {
                    match pool.take() {
                        Some(p) => pages.push(p),
                        None => break,
                    }
                }
                if pages.len() < npages {
                    for p in pages {
                        pool.give_back(p);
                    }
                    break;
                }
                let mut request = BlkifRequest {
                    operation: op,
                    nr_segments: npages as u8,
                    handle: 0,
                    id: slot as u64,
                    sector_number: sector + (off / SECTOR_SIZE) as u64,
                    ..Default::default()
                };
                for (i, &(gref, va)) in pages.iter().enumerate() {
                    let n = (bytes - i * PAGE).min(PAGE);
                    request.seg[i] = BlkifSegment { gref, first_sect: 0, last_sect: (n / SECTOR_SIZE) as u8 - 1 };
                    if let Buf::Write(src) = &buf {
                        // SAFETY: `va` is a pool page of ours (4 KiB, page-aligned), not in use by
                        // any other request; the backend only copies from it, after we publish.
                        let dst = unsafe { core::slice::from_raw_parts_mut(va as *mut u8, n) };
                        dst.copy_from_slice(&src[off + i * PAGE..off + i * PAGE + n]);
                    }
                }
                r.ring.push_request(BlkifRequestSlot::from(&request)).map_err(|e| setup_err("push", e))?;
                self.slots[slot] = Some(InFlight { request, pages, chunk: next });
                state[next] = 1;
                next += 1;
                pushed = true;
            }
            let Some(r) = self.ring.as_mut() else { return Err(BlkError::Setup("not connected".into())) };
            if pushed && r.ring.publish_requests().is_needed() {
                let _ = evtchn::send(r.port);
            }
            // Collect.
            evtchn::clear(r.port);
            let mut got = false;
            loop {
                let rsp = match r.ring.poll_response() {
                    Ok(Some(rsp)) => rsp,
                    Ok(None) => break,
                    Err(e) => return Err(BlkError::Broken(e)),
                };
                got = true;
                let slot = rsp.id as usize; // the ring checked it is outstanding (< 32)
                let Some(f) = self.slots.get_mut(slot).and_then(Option::take) else { continue };
                if rsp.status != RSP_OKAY || rsp.operation != f.request.operation {
                    first_error.get_or_insert(BlkError::Io {
                        operation: f.request.operation,
                        sector: f.request.sector_number,
                        status: rsp.status,
                    });
                } else if let Buf::Read(dst) = &mut buf {
                    let off = f.chunk * per_request;
                    let bytes = (len - off).min(per_request);
                    for (i, &(_, va)) in f.pages.iter().enumerate() {
                        let n = (bytes - i * PAGE).min(PAGE);
                        // SAFETY: our pool page; the backend finished copying into it before it
                        // responded (and the response's read was ordered after that).
                        let src = unsafe { core::slice::from_raw_parts(va as *const u8, n) };
                        dst[off + i * PAGE..off + i * PAGE + n].copy_from_slice(src);
                    }
                }
                state[f.chunk] = 2;
                done += 1;
                if let Some(pool) = self.pool.as_mut() {
                    for p in f.pages {
                        pool.give_back(p);
                    }
                }
            }
            if first_error.is_some() && self.slots.iter().all(Option::is_none) {
                break;
            }
            let now = time::now_ns();
            if got {
                last_progress = now;
                continue;
            }
            if pushed {
                continue;
            }
            if r.ring.final_check_for_responses().map_err(BlkError::Broken)? {
                continue;
            }
            // Idle: is the backend still there? Checked at once when a store watch fired (the
            // backend's state changed, or its directory went with its domain), else twice a
            // second.
            let store_port = hv_rt::start_info().store_port as u32;
            let watch_fired = evtchn::clear(store_port);
            if watch_fired || now - last_state_check > SECOND / 2 {
                last_state_check = now;
                let _ = self.store.borrow_mut().poll();
                while self.store.borrow_mut().take_event().is_some() {}
                let s = self.backend_state();
                if s != XenbusState::Connected {
                    // Every unfinished request is issued again on the new ring.
                    for f in self.slots.iter_mut().filter_map(Option::take) {
                        state[f.chunk] = 0;
                        next = next.min(f.chunk);
                        if let Some(pool) = self.pool.as_mut() {
                            for p in f.pages {
                                pool.give_back(p);
                            }
                        }
                    }
                    self.reconnect(&format!("backend went {s:?} with requests in flight"))?;
                    last_progress = time::now_ns();
                    continue;
                }
            }
            if now - last_progress > STALL_TIMEOUT_NS {
                return Err(BlkError::Timeout);
            }
            time::block_until(now + SECOND / 10);
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

enum Buf<'a> {
    Read(&'a mut [u8]),
    Write(&'a [u8]),
    None,
}

impl Buf<'_> {
    fn len(&self) -> usize {
        match self {
            Buf::Read(b) => b.len(),
            Buf::Write(b) => b.len(),
            Buf::None => 0,
        }
    }
}
