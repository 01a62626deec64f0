//! [`BlkFront`]: device `vbd/<n>` of this domain, connected to its backend through the store
//! (docs/blk.md), and its reconnection when the backend leaves or is replaced.
use alloc::alloc::{Layout, alloc_zeroed};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::borrow::BorrowMut;
use core::fmt;
use core::ops::Range;
use core::ptr::NonNull;

use hv_rt::grant::{self, GrantedPages};
use hv_rt::store::{Store, XenbusState, xenbus};
use hv_rt::{evtchn, println, time};
use shared_ring::wire::blkif::{BlkifRequestSlot, BlkifResponse, MAX_SEGMENTS_PER_REQUEST};
use shared_ring::{Blkif, FrontRing, PageMemory};
use xenbus::frontend::WaitError;
use xenstore::{ClientError, Errno, Request, StoreClient};

use crate::indirect::IndirectPages;
use crate::request::{Limits, PAGE};
use crate::{BlkError, DiskInfo, RING_SLOTS, SECTOR_SIZE};

pub(crate) const SECOND: u64 = 1_000_000_000;
/// The largest data pool a device takes (1 MiB, half of the 504 grant entries a domain has):
/// room for two 128-segment requests, or 21 of more than 11 pages, in flight.
pub const MAX_POOL_PAGES: usize = 256;

pub(crate) fn setup_err(what: &str, e: impl fmt::Display) -> BlkError {
    BlkError::Setup(format!("{what}: {e}"))
}

pub(crate) struct Ring {
    pub(crate) ring: FrontRing<Blkif, PageMemory>,
    page: u64,
    gref: u32,
    pub(crate) port: u32,
}

/// A request on the wire and what it carries.
pub(crate) struct InFlight {
    /// The transfer it belongs to ([`BlkFront::transfers`] when it was issued).
    pub(crate) transfer: u64,
    /// `BLKIF_OP_*` (an indirect request's inner operation).
    pub(crate) operation: u8,
    pub(crate) sector: u64,
    /// Its bytes of the transfer's buffer.
    pub(crate) range: Range<usize>,
    /// Data pages from the pool.
    pub(crate) pages: Vec<(u32, u64)>,
    /// Indirect pages holding its segment list (none for a direct request).
    pub(crate) indirect: Vec<(u32, u64)>,
}

/// A connected block device. `S` is its store connection: owned (`Store`, the default) or
/// borrowed (`&mut Store`, while another device of the domain owns it; see
/// [`BlkFront::with_store`]).
pub struct BlkFront<S = Store> {
    pub(crate) store: S,
    dir: String,
    be_dir: String,
    be: hv_abi::DomId,
    pub(crate) ring: Option<Ring>,
    pub(crate) pool: Option<GrantedPages>,
    pub(crate) pool_pages: usize,
    /// Indirect pages, granted once the backend offers indirect requests.
    pub(crate) indirect: Option<IndirectPages>,
    /// What the current connection allows per request.
    pub(crate) limits: Limits,
    pub(crate) info: DiskInfo,
    pub(crate) slots: [Option<InFlight>; RING_SLOTS],
    /// Transfers started so far (tags each request with its transfer).
    pub(crate) transfers: u64,
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
    /// Connects device `vbd/<index>` with a pool of `pool_pages` granted pages (11 at least,
    /// [`MAX_POOL_PAGES`] at most; requests carry at most half of them, see
    /// [`Limits::negotiate`]).
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
        let BlkFront {
            store: old,
            dir,
            be_dir,
            be,
            ring,
            pool,
            pool_pages,
            indirect,
            limits,
            info,
            slots,
            transfers,
            reconnects,
        } = self;
        let f = BlkFront {
            store,
            dir,
            be_dir,
            be,
            ring,
            pool,
            pool_pages,
            indirect,
            limits,
            info,
            slots,
            transfers,
            reconnects,
        };
        (f, old)
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
            pool_pages: pool_pages.clamp(MAX_SEGMENTS_PER_REQUEST, MAX_POOL_PAGES),
            indirect: None,
            limits: Limits::DIRECT,
            info,
            slots: [const { None }; RING_SLOTS],
            transfers: 0,
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

    /// What the current connection allows per request (negotiated at every connect).
    pub fn limits(&self) -> Limits {
        self.limits
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

    /// Waits for the backend's Connected; reads the disk's properties and negotiates the
    /// request size; Connected.
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
        let keys = ["sectors", "sector-size", "info", "feature-flush-cache", "feature-barrier"];
        let paths: Vec<String> =
            keys.iter().chain(&["feature-max-indirect-segments"]).map(|k| format!("{be_dir}/{k}")).collect();
        let refs: Vec<&[u8]> = paths.iter().map(|p| p.as_bytes()).collect();
        let mut values = Vec::with_capacity(paths.len());
        let mut replies = self.store.borrow_mut().read_many(&refs).into_iter();
        for (path, r) in paths.iter().zip(replies.by_ref()).take(keys.len()) {
            values.push(number_or_zero(path, r)?);
        }
        // An optional feature: missing, unreadable or not a number is "not offered".
        let max_indirect = replies
            .next()
            .and_then(Result::ok)
            .map_or(0, |v| String::from_utf8_lossy(&v).trim().parse::<u64>().unwrap_or(0));
        let [sectors, sector_size, info, flush, barrier] = values[..] else {
            return Err(BlkError::Setup("disk properties: replies missing".into()));
        };
        let (flush, barrier) = (flush == 1, barrier == 1);
        if sector_size != SECTOR_SIZE as u64 {
            return Err(BlkError::Setup(format!("sector-size {sector_size} (only 512 is supported)")));
        }
        self.info = DiskInfo { sectors, sector_size: 512, read_only: info & 4 != 0, flush, barrier };
        self.limits = self.negotiate(max_indirect);
        xenbus::switch_state(self.store.borrow_mut(), dir.as_bytes(), Connected)
            .map_err(|e| setup_err("Connected", e))?;
        println!(
            "blkfront: vbd connected to backend domain {}: {sectors} sectors, {}, ring ref {gref}, port {port}, {}",
            self.be,
            if self.info.read_only { "read-only" } else { "read-write" },
            match self.limits {
                l if l.indirect() => format!("indirect requests of up to {} segments", l.segments),
                l => format!("direct requests of up to {} segments", l.segments),
            }
        );
        Ok(())
    }

    /// The limits for a backend offering `max_indirect` segments, with the indirect pages they
    /// need granted to it (direct requests only if they cannot be).
    fn negotiate(&mut self, max_indirect: u64) -> Limits {
        let limits = Limits::negotiate(max_indirect, self.pool_pages);
        let need = limits.indirect_pages_needed(self.pool_pages, RING_SLOTS);
        if need == 0 || self.indirect.as_ref().is_some_and(|p| p.peer() == self.be && p.len() >= need) {
            return limits;
        }
        if let Some(old) = self.indirect.take() {
            old.end_all();
        }
        match IndirectPages::new(self.be, need) {
            Ok(p) => {
                self.indirect = Some(p);
                limits
            }
            Err(e) => {
                println!("blkfront: {need} indirect pages: {}; direct requests only", e.name());
                Limits::DIRECT
            }
        }
    }

    /// Tears the ring down after the backend left, goes Closed, then Initialising, and sets up
    /// a new ring once a backend is in InitWait again.
    pub(crate) fn reconnect(&mut self, why: &str) -> Result<(), BlkError> {
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
}
