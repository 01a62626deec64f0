//! [`NetFront`]: device `vif/<n>` of this domain, connected to its backend through the store
//! (docs/net.md), with a [`DataPath`] over the shared rings; reconnects on its own.
use alloc::alloc::{Layout, alloc_zeroed};
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;

use hv_rt::store::{Store, XenbusState, xenbus};
use hv_rt::{evtchn, grant, println, time};
use shared_ring::PageMemory;
use smoltcp::phy::{Device, DeviceCapabilities};
use smoltcp::time::Instant;
use xenbus::frontend::WaitError;
use xenstore::{ClientError, Errno, Request, StoreClient};

use crate::datapath::{self, DataPath, PAGE, Page, Stats};

const SECOND: u64 = 1_000_000_000;
/// tx pages (granted read-only to the backend).
pub const TX_PAGES: usize = 128;
/// rx buffers kept posted (granted writable). With the tx pool and both rings: 258 of the
/// 504 usable grant entries.
pub const RX_PAGES: usize = 128;
/// How often the backend's state and our `backend` key are re-read (watches wake us earlier).
const CHECK_INTERVAL_NS: u64 = 2 * SECOND;
/// Pause between failed reconnection attempts.
const RETRY_NS: u64 = SECOND;
/// How long a (re)connection waits for a backend.
const CONNECT_TIMEOUT_NS: u64 = 30 * SECOND;

/// A setup failure (store, grants, event channel, or the backend not showing up).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetError(pub String);

impl fmt::Display for NetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) fn err(what: &str, e: impl fmt::Display) -> NetError {
    NetError(format!("{what}: {e}"))
}

/// A zeroed page of our own, never freed.
pub(crate) fn alloc_page() -> Result<NonNull<u8>, NetError> {
    let layout = Layout::from_size_align(PAGE, PAGE).map_err(|_| NetError("layout".into()))?;
    // SAFETY: non-zero-size layout.
    NonNull::new(unsafe { alloc_zeroed(layout) }).ok_or(NetError("out of memory".into()))
}

fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for b in &mut mac {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// The store side of `vif/<n>`: paths, backend, handshake steps.
pub(crate) struct VifDir {
    pub store: Store,
    pub index: u32,
    pub dir: String,
    pub be_dir: String,
    pub be: hv_abi::DomId,
    pub mac: [u8; 6],
}

impl VifDir {
    pub fn open(mut store: Store, index: u32) -> Result<Self, NetError> {
        let me = hv_rt::domid();
        let dir = format!("/local/domain/{me}/device/vif/{index}");
        // Our keys and the watch on `backend` in one round trip (the watch on the backend's
        // state comes with the first look at it, in `find_backend`).
        let (p_be, p_id, p_mac, p_watch) =
            (format!("{dir}/backend"), format!("{dir}/backend-id"), format!("{dir}/mac"), format!("{dir}/backend"));
        let mut r = store
            .batch(
                &[
                    Request::Read { path: p_be.as_bytes() },
                    Request::Read { path: p_id.as_bytes() },
                    Request::Read { path: p_mac.as_bytes() },
                    Request::Watch { path: p_watch.as_bytes(), token: b"netfront" },
                ],
                0,
            )
            .into_iter();
        let mut next = || r.next().unwrap_or(Err(ClientError::NoReply));
        let be_dir = String::from_utf8_lossy(&next().map_err(|e| err("backend path", e))?).into_owned();
        let be = next()
            .map_err(xenbus::ReadError::Store)
            .and_then(|v| xenbus::parse_domid(&p_id, &v))
            .map_err(|e| err("backend-id", e))?;
        let mac_s = String::from_utf8_lossy(&next().map_err(|e| err("mac", e))?).into_owned();
        let mac = parse_mac(&mac_s).ok_or_else(|| NetError(format!("mac: not a MAC address: {mac_s:?}")))?;
        Ok(Self { store, index, dir, be_dir, be, mac })
    }

    /// Watches the backend's state and our `backend` key (so a change wakes the domain).
    fn watch(&mut self) {
        let _ = self.store.watch(format!("{}/state", self.be_dir).as_bytes(), b"netfront");
        let _ = self.store.watch(format!("{}/backend", self.dir).as_bytes(), b"netfront");
    }

    pub fn backend_state(&mut self) -> XenbusState {
        xenbus::frontend::peer_state(&mut self.store, self.be_dir.as_bytes())
    }

    /// Waits until `done(backend state)` or the timeout ([`xenbus::frontend`]; the state is
    /// re-read at least every 200 ms, watch event or not).
    pub fn wait_backend(
        &mut self,
        timeout_ns: u64,
        done: impl Fn(XenbusState) -> bool,
    ) -> Result<XenbusState, NetError> {
        let deadline = time::now_ns().saturating_add(timeout_ns);
        let wait =
            |s: &mut Store| s.wait_until(deadline.min(time::now_ns() + SECOND / 5)).map(|_| time::now_ns() < deadline);
        xenbus::frontend::wait_for_state(&mut self.store, self.be_dir.as_bytes(), b"netfront", done, wait).map_err(
            |e| match e {
                WaitError::TimedOut(s) => NetError(format!("timed out waiting for the backend (state {s:?})")),
                WaitError::Watch(e) => err("watch the backend's state", e),
                WaitError::Store(e) => err("store", e),
            },
        )
    }

    /// Follows our `backend` key until a backend is ready for a frontend (InitWait or later).
    /// `fresh`: our `backend` keys were just read (by [`VifDir::open`]), so the first look
    /// is at the backend's state alone.
    pub fn find_backend(&mut self, fresh: bool) -> Result<(), NetError> {
        use XenbusState::*;
        let deadline = time::now_ns() + CONNECT_TIMEOUT_NS;
        let mut reread = !fresh;
        loop {
            if reread {
                // `backend` and `backend-id` in one round trip.
                let (p_be, p_id) = (format!("{}/backend", self.dir), format!("{}/backend-id", self.dir));
                let mut r = self.store.read_many(&[p_be.as_bytes(), p_id.as_bytes()]).into_iter();
                if let Some(Ok(path)) = r.next() {
                    let path = String::from_utf8_lossy(&path).into_owned();
                    if path != self.be_dir {
                        self.be_dir = path;
                        self.watch();
                    }
                }
                self.be = r
                    .next()
                    .unwrap_or(Err(ClientError::NoReply))
                    .map_err(xenbus::ReadError::Store)
                    .and_then(|v| xenbus::parse_domid(&p_id, &v))
                    .map_err(|e| err("backend-id", e))?;
            }
            reread = true;
            // Watches the backend's state (if not yet) and looks at it, waiting up to 200 ms.
            match self.wait_backend(SECOND / 5, |s| matches!(s, InitWait | Initialised | Connected)) {
                Ok(_) => return Ok(()),
                Err(e) if time::now_ns() > deadline => {
                    return Err(NetError(format!("timed out waiting for a backend ({e})")));
                }
                Err(_) => {}
            }
        }
    }

    /// Publishes the rings and the port, goes Initialised.
    pub fn publish(&mut self, rings: &RingPages) -> Result<(), NetError> {
        use XenbusState::*;
        let dir = self.dir.clone();
        // The rings' keys in one round trip (the store keeps them in order: the backend sees
        // them all once it sees Initialised).
        let keys = [
            ("tx-ring-ref", format!("{}", rings.tx_gref)),
            ("rx-ring-ref", format!("{}", rings.rx_gref)),
            ("event-channel", format!("{}", rings.port)),
            ("request-rx-copy", "1".into()),
            ("feature-rx-notify", "1".into()),
        ];
        let paths: Vec<String> = keys.iter().map(|(k, _)| format!("{dir}/{k}")).collect();
        let writes: Vec<Request<'_>> = paths
            .iter()
            .zip(&keys)
            .map(|(p, (_, v))| Request::Write { path: p.as_bytes(), value: v.as_bytes() })
            .collect();
        // The keys go with the start of the state switch's transaction.
        let (written, switched) = xenbus::switch_state_after(&mut self.store, &writes, dir.as_bytes(), Initialised);
        if let Some(Err(e)) = written.into_iter().find(Result::is_err) {
            return Err(err("ring keys", e));
        }
        switched.map_err(|e| err("Initialised", e))?;
        Ok(())
    }

    /// Waits for the backend's Connected after [`VifDir::publish`], goes Connected.
    pub fn await_connected(&mut self) -> Result<(), NetError> {
        use XenbusState::*;
        let dir = self.dir.clone();
        let s = self.wait_backend(CONNECT_TIMEOUT_NS, |s| matches!(s, Connected | Closing | Closed))?;
        if s != Connected {
            return Err(NetError(format!("backend went {s:?} instead of connecting")));
        }
        xenbus::switch_state(&mut self.store, dir.as_bytes(), Connected).map(drop).map_err(|e| err("Connected", e))
    }

    /// Goes Closing, gives the backend a moment to let go of the rings (it answers with
    /// Closing once it has, or is Closed already), goes Closed.
    ///
    /// A backend in InitWait is no answer: a restarted one is InitWait before it has seen our
    /// Closing, and would close behind our back after we took its InitWait for a fresh start
    /// (then our Initialised finds it Closed, and the reconnection waits for a retry).
    pub fn close(&mut self) {
        use XenbusState::*;
        let dir = self.dir.clone();
        let _ = xenbus::switch_state(&mut self.store, dir.as_bytes(), Closing);
        let _ = self.wait_backend(5 * SECOND, |s| matches!(s, Closing | Closed));
        let _ = xenbus::switch_state(&mut self.store, dir.as_bytes(), Closed);
    }

    pub fn reopen(&mut self) -> Result<(), NetError> {
        xenbus::switch_state(&mut self.store, self.dir.clone().as_bytes(), XenbusState::Initialising)
            .map(drop)
            .map_err(|e| err("Initialising", e))
    }

    /// Why the connection should be re-established, if it should.
    pub fn check(&mut self) -> Option<String> {
        match self.store.read_string(&format!("{}/backend", self.dir)) {
            Ok(path) if path != self.be_dir => return Some(format!("the vif moved to {path}")),
            Err(ClientError::Store(Errno::Enoent)) => return Some("the vif's backend key vanished".into()),
            _ => {}
        }
        let s = self.backend_state();
        (s != XenbusState::Connected).then(|| format!("backend went {s:?}"))
    }

    /// Drains queued watch events (non-blocking); whether there were any.
    pub fn drain_events(&mut self) -> bool {
        let _ = self.store.poll();
        let mut any = false;
        while self.store.take_event().is_some() {
            any = true;
        }
        any
    }
}

/// The two ring pages, their grants and the event channel of one connection.
pub(crate) struct RingPages {
    pub tx: NonNull<u8>,
    pub rx: NonNull<u8>,
    pub tx_gref: u32,
    pub rx_gref: u32,
    pub port: u32,
}

impl RingPages {
    /// Fresh pages (a backend still mapping old ones never sees them reused), granted to `be`,
    /// and an unbound port for it.
    pub fn new(be: hv_abi::DomId) -> Result<Self, NetError> {
        let (tx, rx) = (alloc_page()?, alloc_page()?);
        let tx_gref = grant::grant_access(be, tx.as_ptr() as u64, false).map_err(|e| err("grant", e.name()))?;
        let rx_gref = match grant::grant_access(be, rx.as_ptr() as u64, false) {
            Ok(g) => g,
            Err(e) => {
                let _ = grant::end_access(tx_gref);
                return Err(err("grant", e.name()));
            }
        };
        let port = match evtchn::alloc_unbound(be) {
            Ok(p) => p,
            Err(e) => {
                let _ = grant::end_access(tx_gref);
                let _ = grant::end_access(rx_gref);
                return Err(err("event channel", e.name()));
            }
        };
        Ok(Self { tx, rx, tx_gref, rx_gref, port })
    }

    /// Shared-memory views of the two rings.
    pub fn memories(&self) -> (PageMemory, PageMemory) {
        // SAFETY: both are our own pages, never freed nor reused for anything else; the backend
        // and we reach them only through PageMemory's atomic accesses.
        unsafe { (PageMemory::new(self.tx, PAGE), PageMemory::new(self.rx, PAGE)) }
    }

    /// Closes the port and ends the grants (a page the backend still maps is left to it).
    pub fn end(self) {
        let _ = evtchn::close(self.port);
        for g in [self.tx_gref, self.rx_gref] {
            if grant::end_access(g).is_err() {
                println!("netfront: ring page still mapped by the old backend; leaving it");
            }
        }
    }
}

/// Grants `pages` to `be`; on failure ends what was granted.
pub(crate) fn grant_pool(be: hv_abi::DomId, pages: &[NonNull<u8>], readonly: bool) -> Result<Vec<Page>, NetError> {
    let mut out = Vec::with_capacity(pages.len());
    for &ptr in pages {
        match grant::grant_access(be, ptr.as_ptr() as u64, readonly) {
            Ok(gref) => out.push(Page { gref, ptr }),
            Err(e) => {
                for p in out {
                    let _ = grant::end_access(p.gref);
                }
                return Err(err("grant a pool page", e.name()));
            }
        }
    }
    Ok(out)
}

/// Ends the grants of a pool; returns the pages that can be granted again (a page whose grant
/// the backend still holds is left to it).
pub(crate) fn end_pool(pool: Vec<Page>) -> Vec<NonNull<u8>> {
    pool.into_iter().filter(|p| grant::end_access(p.gref).is_ok()).map(|p| p.ptr).collect()
}

fn kick(port: u32) {
    let _ = evtchn::send(port);
}

/// A network device on `vif/<n>`: a smoltcp [`Device`] that survives backend restarts.
///
/// The app loop: `iface.poll(now, &mut nf, &mut sockets)`, then [`NetFront::wait`] with
/// smoltcp's poll delay (it publishes what was sent, looks after the connection and blocks on
/// the event channel).
pub struct NetFront {
    vif: VifDir,
    path: Option<DataPath<PageMemory>>,
    rings: Option<RingPages>,
    tx_spare: Vec<NonNull<u8>>,
    rx_spare: Vec<NonNull<u8>>,
    /// Counters of earlier connections.
    base: Stats,
    reconnects: u64,
    last_check: u64,
    next_retry: u64,
    /// [`NetFront::start`]'s first half, until [`NetFront::finish`].
    started: Option<Result<(), NetError>>,
}

impl NetFront {
    /// Connects device `vif/<index>` (waits up to 30 s for its backend).
    pub fn connect(store: Store, index: u32) -> Result<Self, NetError> {
        Self::connect_within(store, index, 0)
    }

    /// Connects device `vif/<index>`, trying again (after the first 30 s wait for a backend)
    /// until `timeout_ns` has passed.
    pub fn connect_within(store: Store, index: u32, timeout_ns: u64) -> Result<Self, NetError> {
        let deadline = time::now_ns().saturating_add(timeout_ns);
        let mut f = Self::open(store, index)?;
        let first = f.setup_start(true).and_then(|()| f.setup_finish());
        f.retry_until(first, deadline)?;
        Ok(f)
    }

    /// The first half of [`NetFront::connect_within`]: waits for the backend's InitWait,
    /// shares the rings and goes Initialised. [`NetFront::finish`] completes the handshake; in
    /// between the domain may start its other devices (through [`NetFront::store`]) while the
    /// backend connects.
    pub fn start(store: Store, index: u32) -> Result<Self, NetError> {
        let mut f = Self::open(store, index)?;
        f.started = Some(f.setup_start(true));
        Ok(f)
    }

    /// The second half after [`NetFront::start`]: waits for the backend's Connected and goes
    /// Connected; on failure tries again as [`NetFront::connect_within`] does, until
    /// `timeout_ns` from now.
    pub fn finish(&mut self, timeout_ns: u64) -> Result<(), NetError> {
        let deadline = time::now_ns().saturating_add(timeout_ns);
        let first = match self.started.take() {
            Some(Ok(())) => self.setup_finish(),
            Some(Err(e)) => Err(e),
            None => Ok(()),
        };
        self.retry_until(first, deadline)
    }

    fn open(store: Store, index: u32) -> Result<Self, NetError> {
        let vif = VifDir::open(store, index)?;
        Ok(Self {
            vif,
            path: None,
            rings: None,
            tx_spare: Vec::new(),
            rx_spare: Vec::new(),
            base: Stats::default(),
            reconnects: 0,
            last_check: time::now_ns(),
            next_retry: 0,
            started: None,
        })
    }

    /// After a first attempt's result: tries again (close, Initialising, set up anew) until
    /// one succeeds or `deadline` passes.
    fn retry_until(&mut self, first: Result<(), NetError>, deadline: u64) -> Result<(), NetError> {
        let mut result = first;
        loop {
            match result {
                Ok(()) => return Ok(()),
                Err(e) if time::now_ns() < deadline => {
                    println!("netfront: vif {}: {e}; still trying", self.vif.index);
                    self.vif.close();
                    self.vif.reopen()?;
                    time::sleep_ms(200);
                }
                Err(e) => return Err(e),
            }
            result = self.setup();
        }
    }

    fn setup(&mut self) -> Result<(), NetError> {
        self.setup_start(false)?;
        self.setup_finish()
    }

    /// Backend in InitWait (`fresh`: [`VifDir::find_backend`]'s); pools, rings and port;
    /// published; Initialised.
    fn setup_start(&mut self, fresh: bool) -> Result<(), NetError> {
        self.vif.find_backend(fresh)?;
        let be = self.vif.be;
        while self.tx_spare.len() < TX_PAGES {
            self.tx_spare.push(alloc_page()?);
        }
        while self.rx_spare.len() < RX_PAGES {
            self.rx_spare.push(alloc_page()?);
        }
        let tx_pool = grant_pool(be, &self.tx_spare, true)?;
        let rx_pool = match grant_pool(be, &self.rx_spare, false) {
            Ok(p) => p,
            Err(e) => {
                self.tx_spare = end_pool(tx_pool);
                return Err(e);
            }
        };
        self.tx_spare.clear();
        self.rx_spare.clear();
        let rings = match RingPages::new(be) {
            Ok(r) => r,
            Err(e) => {
                self.tx_spare = end_pool(tx_pool);
                self.rx_spare = end_pool(rx_pool);
                return Err(e);
            }
        };
        let (tx_mem, rx_mem) = rings.memories();
        let path = match DataPath::new(tx_mem, rx_mem, tx_pool, rx_pool, rings.port, kick) {
            Ok(p) => p,
            Err(e) => {
                rings.end();
                return Err(err("ring", format!("{e:?}")));
            }
        };
        let published = self.vif.publish(&rings);
        self.path = Some(path);
        self.rings = Some(rings);
        if let Err(e) = published {
            self.teardown();
            return Err(e);
        }
        Ok(())
    }

    /// Backend Connected; Connected.
    fn setup_finish(&mut self) -> Result<(), NetError> {
        if let Err(e) = self.vif.await_connected() {
            self.teardown();
            return Err(e);
        }
        let be = self.vif.be;
        let (tx_gref, rx_gref, port) =
            self.rings.as_ref().map(|r| (r.tx_gref, r.rx_gref, r.port)).ok_or(NetError("no rings".into()))?;
        let m = self.vif.mac;
        println!(
            "netfront: vif {} connected to backend domain {be}: mac {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}, \
             tx ring ref {tx_gref}, rx ring ref {rx_gref}, port {port}, {RX_PAGES} rx buffers",
            self.vif.index, m[0], m[1], m[2], m[3], m[4], m[5]
        );
        self.last_check = time::now_ns();
        Ok(())
    }

    /// Ends the connection's grants and port; keeps its counters.
    fn teardown(&mut self) {
        if let Some(path) = self.path.take() {
            self.base.add(&path.stats());
            let (tx, rx) = path.into_pages();
            let (ntx, nrx) = (tx.len(), rx.len());
            self.tx_spare = end_pool(tx);
            self.rx_spare = end_pool(rx);
            let leaked = ntx + nrx - self.tx_spare.len() - self.rx_spare.len();
            if leaked > 0 {
                println!("netfront: {leaked} pool pages still held by the old backend; leaving them");
            }
        }
        if let Some(r) = self.rings.take() {
            r.end();
        }
    }

    fn reconnect(&mut self, why: &str) {
        println!("netfront: {why}; reconnecting");
        if let Some(r) = &self.rings {
            // Closed early so that the backend's notifications stop waking us while we wait.
            let _ = evtchn::close(r.port);
        }
        self.vif.close();
        self.teardown();
        self.reconnects += 1;
        let r = self.vif.reopen().and_then(|()| self.setup());
        if let Err(e) = r {
            println!("netfront: reconnection failed: {e}; retrying");
            self.next_retry = time::now_ns() + RETRY_NS;
        }
    }

    /// Looks after the connection: reconnects after a protocol violation, when the backend
    /// left or the vif moved to another backend, or to retry a failed reconnection. Cheap
    /// unless a watch fired or a periodic check is due. [`NetFront::wait`] calls it.
    pub fn maintain(&mut self) {
        let now = time::now_ns();
        let Some(path) = self.path.as_ref() else {
            if now >= self.next_retry {
                self.reconnect("not connected");
            }
            return;
        };
        if let Some(v) = path.broken() {
            self.reconnect(&format!("backend protocol violation ({v})"));
            return;
        }
        let store_port = hv_rt::start_info().store_port as u32;
        let fired = evtchn::is_pending(store_port) && self.vif.drain_events();
        if fired || now.saturating_sub(self.last_check) >= CHECK_INTERVAL_NS {
            self.last_check = now;
            self.vif.drain_events();
            if let Some(why) = self.vif.check() {
                self.reconnect(&why);
            }
        }
    }

    /// Publishes what smoltcp sent, looks after the connection, and blocks on the event channel
    /// until something arrives or `deadline_ns` (system time). While no tx page is free it
    /// waits for a tx completion (at most 50 ms) even if the deadline has passed.
    pub fn wait(&mut self, deadline_ns: u64) {
        self.maintain();
        let now = time::now_ns();
        let Some(path) = self.path.as_mut() else {
            time::block_until(deadline_ns.min(self.next_retry).max(now + SECOND / 100));
            return;
        };
        let port = self.rings.as_ref().map_or(0, |r| r.port);
        evtchn::clear(port);
        if path.final_check() {
            return;
        }
        let mut deadline = deadline_ns.min(self.last_check + CHECK_INTERVAL_NS);
        if path.tx_free() == 0 {
            // A tx completion wakes us (final_check armed it); smoltcp's deadline has usually
            // passed (it wants to send), so do not spin, but do not sleep past a later one either.
            let cap = now + SECOND / 20;
            deadline = if deadline > now { deadline.min(cap) } else { cap };
        }
        if deadline > now {
            time::block_until(deadline);
        }
    }

    /// Publishes pushed requests and notifies the backend if it asked ([`NetFront::wait`] does
    /// this too).
    pub fn flush(&mut self) {
        if let Some(p) = self.path.as_mut() {
            p.flush();
        }
    }

    /// Counters over every connection so far.
    pub fn stats(&self) -> Stats {
        let mut s = self.base;
        if let Some(p) = &self.path {
            s.add(&p.stats());
        }
        s.reconnects = self.reconnects;
        s
    }

    pub fn mac(&self) -> [u8; 6] {
        self.vif.mac
    }

    /// The backend's domain id.
    pub fn backend(&self) -> hv_abi::DomId {
        self.vif.be
    }

    pub fn is_connected(&self) -> bool {
        self.path.as_ref().is_some_and(|p| p.broken().is_none())
    }

    /// The event-channel port of the current connection.
    pub fn port(&self) -> Option<u32> {
        self.rings.as_ref().map(|r| r.port)
    }

    /// The store connection.
    pub fn store(&mut self) -> &mut Store {
        &mut self.vif.store
    }
}

impl Device for NetFront {
    type RxToken<'a> = datapath::RxToken<'a, PageMemory>;
    type TxToken<'a> = datapath::TxToken<'a, PageMemory>;

    fn receive(&mut self, timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.path.as_mut()?.receive(timestamp)
    }

    fn transmit(&mut self, timestamp: Instant) -> Option<Self::TxToken<'_>> {
        self.path.as_mut()?.transmit(timestamp)
    }

    fn capabilities(&self) -> DeviceCapabilities {
        datapath::capabilities(TX_PAGES)
    }
}
