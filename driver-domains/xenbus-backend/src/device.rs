//! One backend device: its handshake with the frontend, its connection, its refusal log.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::ptr::NonNull;
use hv_abi::DomId;

use shared_ring::PageMemory;
use xenstore::xenbus::{self, ReadError, XenbusState, backend_next};
use xenstore::{ClientError, Errno, Request, StoreClient};

use crate::platform::Platform;
use crate::refusals::RefusalLog;

/// Bytes of a ring page.
const PAGE: u64 = 4096;
/// Moves one look at the frontend's state can cause (Closing → Closed → InitWait is the most).
const MAX_MOVES: usize = 4;
/// Watch token of the frontends' `state` nodes.
pub(crate) const FE_TOKEN: &[u8] = b"fe";

/// A frontend ring: its grant key in the frontend's directory and how the console names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingKey {
    /// `ring-ref`, `tx-ring-ref`, ...
    pub key: &'static str,
    /// `ring ref`, `tx ring ref`, ...
    pub label: &'static str,
}

/// What a device class plugs into the skeleton: its store keys and its data path.
pub trait DataPath: Sized {
    /// State every device of the class shares (netback's bridge, blkback's device size).
    type Shared;
    /// The device class in the store: `vbd`, `vif`.
    const KIND: &'static str;
    /// The frontend's rings, in the order their pages are given to [`DataPath::attach`].
    const RINGS: &'static [RingKey];
    /// Backend keys [`DataPath::probe`] reads (in `info.dir`): read ahead in the round trip
    /// that reads `frontend` and `frontend-id`, and answered from there.
    const PROBE_KEYS: &'static [&'static str] = &[];
    /// Frontend keys [`DataPath::check_frontend`] reads: read ahead with the ring refs.
    const FRONTEND_KEYS: &'static [&'static str] = &[];

    /// A device the toolstack added: reads its backend keys (`info.dir`). `Err(line)` closes
    /// the device for good, with `<name>: <line>` printed.
    fn probe(client: &mut impl StoreClient, info: &Info, shared: &mut Self::Shared) -> Result<Self, String>;
    /// The keys to publish in the backend directory before InitWait.
    fn features(&self) -> Vec<(&'static str, String)>;
    /// What the InitWait line says between the name and `; InitWait`.
    fn describe(&self) -> String;
    /// Checks the frontend's other keys before anything is mapped (`protocol`, ...) and notes
    /// the features it asks for (blkback's `feature-persistent`).
    fn check_frontend(&mut self, _client: &mut impl StoreClient, _fe_dir: &str) -> Result<(), String> {
        Ok(())
    }
    /// The rings are mapped (one page per [`DataPath::RINGS`] entry) and `port` is bound:
    /// attach the data path. On `Err` the skeleton unmaps and closes everything.
    fn attach(&mut self, shared: &mut Self::Shared, fe: DomId, pages: Vec<PageMemory>, port: u32)
    -> Result<(), String>;
    /// Drops the data path; its pages are unmapped right after.
    fn detach(&mut self, shared: &mut Self::Shared);
    /// Right after [`DataPath::detach`], before the rings are unmapped: lets go of whatever else
    /// the data path mapped through the platform (blkback's persistent grants).
    fn release(&mut self, _p: &mut impl Platform) {}
    /// After the `disconnected` line (netback prints the final counters).
    fn after_detach(&mut self, _shared: &mut Self::Shared) {}
}

/// Where a device lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// `/local/domain/<me>/backend/<kind>/<fe>/<n>`.
    pub dir: String,
    /// The frontend's directory (its `frontend` key; empty if missing).
    pub fe_dir: String,
    /// `<kind> <fe>/<n>`, for the console.
    pub name: String,
    /// The frontend's domain (from the path).
    pub fe: DomId,
}

struct Connection {
    handles: Vec<u32>,
    port: u32,
}

/// A connected device's parts, borrowed apart for the data path.
pub struct Connected<'a, D> {
    pub path: &'a mut D,
    /// Our end of the event channel.
    pub port: u32,
    pub name: &'a str,
    pub refusals: &'a mut RefusalLog,
}

/// One device of a [`crate::Backend`].
pub struct Device<D: DataPath> {
    info: Info,
    /// Our last published state.
    state: XenbusState,
    /// `None`: closed for good (bad backend keys or frontend entries).
    path: Option<D>,
    conn: Option<Connection>,
    refusals: RefusalLog,
}

impl<D: DataPath> Device<D> {
    /// Adds the device at `info.dir` (its `fe_dir` is read here): probe, features, watch the
    /// frontend, InitWait.
    pub(crate) fn add<S: StoreClient, P: Platform>(
        client: &mut S,
        p: &mut P,
        shared: &mut D::Shared,
        mut info: Info,
    ) -> Self {
        // `frontend`, `frontend-id` and the keys `probe` reads in one round trip.
        let (fe_path, id_path) = (format!("{}/frontend", info.dir), format!("{}/frontend-id", info.dir));
        let probe_paths: Vec<String> = D::PROBE_KEYS.iter().map(|k| format!("{}/{k}", info.dir)).collect();
        let paths: Vec<&[u8]> = [fe_path.as_bytes(), id_path.as_bytes()]
            .into_iter()
            .chain(probe_paths.iter().map(|p| p.as_bytes()))
            .collect();
        let mut read = client.read_many(&paths).into_iter();
        info.fe_dir =
            read.next().and_then(Result::ok).map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or_default();
        let fe_id = read
            .next()
            .unwrap_or(Err(ClientError::NoReply))
            .map_err(xenbus::ReadError::Store)
            .and_then(|v| xenbus::parse_domid(&id_path, &v));
        let mut d =
            Device { info, state: XenbusState::Initialising, path: None, conn: None, refusals: RefusalLog::default() };
        let mut ahead = Prefetched::new(client, probe_paths.into_iter().zip(read).collect());
        let path = match D::probe(&mut ahead, &d.info, shared) {
            Err(line) => {
                p.log(&format!("{}: {line}", d.info.name));
                d.switch(client, p, XenbusState::Closed);
                return d;
            }
            Ok(path) => path,
        };
        if fe_id.ok() != Some(d.info.fe) || d.info.fe_dir.is_empty() {
            p.log(&format!("{}: frontend entries missing or inconsistent; device closed", d.info.name));
            d.switch(client, p, XenbusState::Closed);
            return d;
        }
        // Every feature, the watch on the frontend's state and a first look at it, in one
        // round trip (in this order: the frontend may read the features once it sees InitWait).
        let features = path.features();
        let paths: Vec<String> = features.iter().map(|(k, _)| format!("{}/{k}", d.info.dir)).collect();
        let watch = format!("{}/state", d.info.fe_dir);
        let requests: Vec<Request<'_>> = paths
            .iter()
            .zip(&features)
            .map(|(path, (_, v))| Request::Write { path: path.as_bytes(), value: v.as_bytes() })
            .chain([
                Request::Watch { path: watch.as_bytes(), token: FE_TOKEN },
                Request::Read { path: watch.as_bytes() },
                // The transaction of the switch to InitWait.
                Request::TransactionStart,
            ])
            .collect();
        let mut replies = client.batch(&requests, 0).into_iter();
        for (k, _) in &features {
            if let Some(Err(e)) = replies.next() {
                p.log(&format!("{}: cannot publish {k}: {e}", d.info.name));
            }
        }
        match replies.next().unwrap_or(Err(ClientError::NoReply)) {
            Ok(_) | Err(ClientError::Store(Errno::Eexist)) => {}
            Err(e) => p.log(&format!("{}: cannot watch {watch}: {e}", d.info.name)),
        }
        d.path = Some(path);
        let fe_read = replies.next().unwrap_or(Err(ClientError::NoReply));
        let fe_state = fe_read.as_ref().ok().and_then(|v| XenbusState::parse(v).ok());
        let started = replies.next().unwrap_or(Err(ClientError::NoReply)).and_then(xenstore::transaction_id);
        let resumable = fe_state == Some(XenbusState::Connected);
        if resumable {
            // Not the switch to InitWait after all.
            if let Ok(tx) = started {
                let _ = client.transaction_end(tx, false);
            }
            // A frontend already Connected was served by a previous instance of this backend
            // (restarted in place, same domain id): take over its rings and port without a
            // handshake, so a frontend that cannot reconnect (Linux's) carries on.
            match d.connect(client, p, shared) {
                Ok(tx) => {
                    p.log(&format!("{}: resumed the connection of a previous instance", d.info.name));
                    d.state = XenbusState::Connected;
                    // Written even though a predecessor may have left it: the toolstack took it
                    // away at the restart and watches for it.
                    let _ = xenbus::switch_state_in(client, d.info.dir.as_bytes(), XenbusState::Connected, tx);
                    return d;
                }
                Err(e) => p.log(&format!("{}: cannot resume: {e}; handshake from InitWait", d.info.name)),
            }
            p.log(&format!(
                "{}: {}; InitWait",
                d.info.name,
                d.path.as_ref().map(DataPath::describe).unwrap_or_default()
            ));
            d.switch(client, p, XenbusState::InitWait);
            return d;
        }
        p.log(&format!("{}: {}; InitWait", d.info.name, d.path.as_ref().map(DataPath::describe).unwrap_or_default()));
        if d.switch_in(client, p, XenbusState::InitWait, started) {
            // A frontend that is further already (Initialised: connect now) moves on at once,
            // from the state read above, as `step` would read it.
            let fe = match fe_read {
                Ok(text) => XenbusState::parse(&text).unwrap_or(XenbusState::Closed),
                Err(ClientError::Store(Errno::Enoent)) => XenbusState::Unknown,
                Err(_) => XenbusState::Closed,
            };
            d.step_seen(client, p, shared, fe);
        }
        d
    }

    pub fn info(&self) -> &Info {
        &self.info
    }

    pub fn name(&self) -> &str {
        &self.info.name
    }

    /// Our last published state.
    pub fn state(&self) -> XenbusState {
        self.state
    }

    /// The data path (`None` for a device closed for good).
    pub fn path(&self) -> Option<&D> {
        self.path.as_ref()
    }

    /// Whether the rings are mapped and the port bound.
    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    /// Our port, while connected.
    pub fn port(&self) -> Option<u32> {
        self.conn.as_ref().map(|c| c.port)
    }

    /// The parts the data path needs, while connected.
    pub fn connected(&mut self) -> Option<Connected<'_, D>> {
        let port = self.conn.as_ref()?.port;
        let path = self.path.as_mut()?;
        Some(Connected { path, port, name: &self.info.name, refusals: &mut self.refusals })
    }

    /// Writes our state; `false` if the store refused (the device keeps its last state). A
    /// removed directory refuses with `Gone`: nothing is written back into it.
    fn switch(&mut self, client: &mut impl StoreClient, p: &mut impl Platform, to: XenbusState) -> bool {
        self.switched(p, to, xenbus::switch_state(client, self.info.dir.as_bytes(), to))
    }

    /// [`Device::switch`] in a transaction already started (`started`: its start's reply).
    fn switch_in(
        &mut self,
        client: &mut impl StoreClient,
        p: &mut impl Platform,
        to: XenbusState,
        started: Result<u32, ClientError>,
    ) -> bool {
        self.switched(p, to, xenbus::switch_state_in(client, self.info.dir.as_bytes(), to, started))
    }

    fn switched(
        &mut self,
        p: &mut impl Platform,
        to: XenbusState,
        result: Result<XenbusState, xenbus::XenbusError>,
    ) -> bool {
        match result {
            Ok(_) => {
                self.state = to;
                true
            }
            Err(e) => {
                p.log(&format!("{}: cannot switch to {to:?}: {e}", self.info.name));
                false
            }
        }
    }

    /// Reacts to the frontend's current state with [`backend_next`], doing the device work
    /// each move promises first (connect before Connected, tear down before anything else).
    /// A missing frontend or one whose `state` holds garbage counts as Closed.
    pub fn step(&mut self, client: &mut impl StoreClient, p: &mut impl Platform, shared: &mut D::Shared) {
        if self.path.is_none() {
            return;
        }
        let fe = xenbus::read_state(client, self.info.fe_dir.as_bytes()).unwrap_or(XenbusState::Closed);
        self.step_seen(client, p, shared, fe);
    }

    /// [`Device::step`] with the frontend's state already read (as `step` reads it).
    pub(crate) fn step_seen(
        &mut self,
        client: &mut impl StoreClient,
        p: &mut impl Platform,
        shared: &mut D::Shared,
        fe: XenbusState,
    ) {
        use XenbusState::*;
        if self.path.is_none() {
            return;
        }
        for _ in 0..MAX_MOVES {
            let Some(next) = backend_next(self.state, fe) else { return };
            // The switch's transaction, if the move's work started it.
            let mut started = None;
            match next {
                Connected if self.conn.is_none() => match self.connect(client, p, shared) {
                    Ok(tx) => started = Some(tx),
                    Err(e) => {
                        p.log(&format!("{}: cannot connect: {e}", self.info.name));
                        self.switch(client, p, Closing);
                        self.switch(client, p, Closed);
                        return;
                    }
                },
                Connected => {}
                InitWait => self.teardown(p, shared, "frontend restarting"),
                _ => self.teardown(p, shared, &format!("frontend {fe:?}")),
            }
            let switched = match started {
                Some(tx) => self.switch_in(client, p, next, tx),
                None => self.switch(client, p, next),
            };
            if !switched {
                return;
            }
            if next == InitWait {
                p.log(&format!("{}: frontend reconnecting; InitWait", self.info.name));
            }
        }
    }

    /// Disconnects the frontend on our side (it broke a ring): tear down, Closing, Closed. It
    /// may come back by restarting from Initialising.
    pub fn close(&mut self, client: &mut impl StoreClient, p: &mut impl Platform, shared: &mut D::Shared, why: &str) {
        self.teardown(p, shared, why);
        self.switch(client, p, XenbusState::Closing);
        self.switch(client, p, XenbusState::Closed);
    }

    /// Reads the frontend's ring refs and port, maps, binds, attaches; undoes every step on
    /// failure. The refs are read in one round trip with the start of the transaction of the
    /// switch to Connected, which is returned (and ended here on failure).
    fn connect(
        &mut self,
        client: &mut impl StoreClient,
        p: &mut impl Platform,
        shared: &mut D::Shared,
    ) -> Result<Result<u32, ClientError>, String> {
        let fe_dir = &self.info.fe_dir;
        let keys: Vec<&str> = D::RINGS.iter().map(|r| r.key).chain(core::iter::once("event-channel")).collect();
        let paths: Vec<String> = keys.iter().map(|k| format!("{fe_dir}/{k}")).collect();
        let check_paths: Vec<String> = D::FRONTEND_KEYS.iter().map(|k| format!("{fe_dir}/{k}")).collect();
        let requests: Vec<Request<'_>> = paths
            .iter()
            .chain(&check_paths)
            .map(|p| Request::Read { path: p.as_bytes() })
            .chain(core::iter::once(Request::TransactionStart))
            .collect();
        let mut replies = client.batch(&requests, 0);
        let started = replies.pop().unwrap_or(Err(ClientError::NoReply)).and_then(xenstore::transaction_id);
        let ahead: Vec<(String, Result<Vec<u8>, ClientError>)> =
            check_paths.into_iter().zip(replies.split_off(keys.len().min(replies.len()))).collect();
        let mut client = Prefetched::new(client, ahead);
        let client = &mut client;
        match self.attach_rings(client, p, shared, &keys, &paths, replies) {
            Ok(()) => Ok(started),
            Err(e) => {
                if let Ok(tx) = started {
                    let _ = client.transaction_end(tx, false);
                }
                Err(e)
            }
        }
    }

    /// [`Device::connect`] once the refs and the port were read (`read`, in `keys`' order).
    fn attach_rings(
        &mut self,
        client: &mut impl StoreClient,
        p: &mut impl Platform,
        shared: &mut D::Shared,
        keys: &[&str],
        paths: &[String],
        read: Vec<Result<Vec<u8>, ClientError>>,
    ) -> Result<(), String> {
        let path = self.path.as_mut().ok_or("device closed")?;
        let (fe, fe_dir) = (self.info.fe, &self.info.fe_dir);
        let mut numbers = Vec::with_capacity(keys.len());
        let mut read = read.into_iter();
        for (k, path) in keys.iter().zip(paths) {
            let r = read.next().unwrap_or(Err(ClientError::NoReply));
            let n = r.map_err(ReadError::Store).and_then(|v| xenbus::parse_u32(path, &v));
            numbers.push(n.map_err(|e| format!("{k}: {e}"))?);
        }
        let remote = numbers.pop().ok_or("event-channel: missing")?;
        let refs = numbers;
        path.check_frontend(client, fe_dir)?;
        let mut handles = Vec::with_capacity(refs.len());
        let mut pages = Vec::with_capacity(refs.len());
        for (r, &gref) in D::RINGS.iter().zip(&refs) {
            let (handle, va) = match p.map(fe, gref) {
                Ok(m) => m,
                Err(e) => {
                    undo(p, &handles, None);
                    return Err(format!("map {} {gref}: {}", r.label, e.name()));
                }
            };
            handles.push(handle);
            match page(va) {
                Some(m) => pages.push(m),
                None => {
                    undo(p, &handles, None);
                    return Err(format!("map {} {gref}: not a page ({va:#x})", r.label));
                }
            }
        }
        let port = match p.bind(fe, remote) {
            Ok(port) => port,
            Err(e) => {
                undo(p, &handles, None);
                return Err(format!("bind port {remote}: {}", e.name()));
            }
        };
        if let Err(e) = path.attach(shared, fe, pages, port) {
            undo(p, &handles, Some(port));
            return Err(format!("attach: {e}"));
        }
        self.conn = Some(Connection { handles, port });
        let rings: Vec<String> = D::RINGS.iter().zip(&refs).map(|(r, g)| format!("{} {g}", r.label)).collect();
        p.log(&format!("{}: connected to domain {fe}: {}, port {port}", self.info.name, rings.join(", ")));
        Ok(())
    }

    /// Drops the data path, closes the port, unmaps the rings (if connected).
    pub(crate) fn teardown(&mut self, p: &mut impl Platform, shared: &mut D::Shared, why: &str) {
        let Some(c) = self.conn.take() else { return };
        // The rings go first: they point into the mappings.
        if let Some(path) = self.path.as_mut() {
            path.detach(shared);
            path.release(p);
        }
        let _ = p.close(c.port);
        let mut unmapped = true;
        for h in c.handles {
            unmapped &= p.unmap(h).is_ok();
        }
        p.log(&format!(
            "{}: disconnected ({why}); {} unmapped: {}, port closed",
            self.info.name,
            if D::RINGS.len() == 1 { "ring" } else { "rings" },
            if unmapped { "yes" } else { "no" }
        ));
        if let Some(path) = self.path.as_mut() {
            path.after_detach(shared);
        }
    }
}

/// Undoes a partial connection: port (if bound) first, then the mappings.
fn undo(p: &mut impl Platform, handles: &[u32], port: Option<u32>) {
    if let Some(port) = port {
        let _ = p.close(port);
    }
    for &h in handles {
        let _ = p.unmap(h);
    }
}

/// The shared memory of a mapped ring page; `None` unless `va` is a non-null page address.
fn page(va: u64) -> Option<PageMemory> {
    if !va.is_multiple_of(PAGE) {
        return None;
    }
    let base = NonNull::new(va as usize as *mut u8)?;
    // SAFETY: `va` came from `Platform::map`, whose contract makes it a page mapped read-write
    // for us until we unmap it; we unmap only after the data path dropped its rings (`detach`),
    // and only the ring built on this memory touches it, through PageMemory's atomic accesses.
    Some(unsafe { PageMemory::new(base, PAGE as usize) })
}

/// A store client that answers reads of the paths read ahead (each once, outside transactions)
/// from what was read, and passes everything else on: a device class's own reads cost no round
/// trip of their own when the skeleton knew them in advance.
struct Prefetched<'a, C: StoreClient> {
    inner: &'a mut C,
    ahead: Vec<(String, Result<Vec<u8>, ClientError>)>,
}

impl<'a, C: StoreClient> Prefetched<'a, C> {
    fn new(inner: &'a mut C, ahead: Vec<(String, Result<Vec<u8>, ClientError>)>) -> Self {
        Self { inner, ahead }
    }

    fn take(&mut self, request: &Request<'_>, tx_id: u32) -> Option<Result<Vec<u8>, ClientError>> {
        let Request::Read { path } = request else { return None };
        if tx_id != 0 {
            return None;
        }
        let at = self.ahead.iter().position(|(p, _)| p.as_bytes() == *path)?;
        Some(self.ahead.swap_remove(at).1)
    }
}

impl<C: StoreClient> StoreClient for Prefetched<'_, C> {
    fn request(&mut self, request: Request<'_>, tx_id: u32) -> Result<Vec<u8>, ClientError> {
        match self.take(&request, tx_id) {
            Some(read) => read,
            None => self.inner.request(request, tx_id),
        }
    }

    fn batch(&mut self, requests: &[Request<'_>], tx_id: u32) -> Vec<Result<Vec<u8>, ClientError>> {
        let mut answers: Vec<Option<Result<Vec<u8>, ClientError>>> =
            requests.iter().map(|r| self.take(r, tx_id)).collect();
        let rest: Vec<Request<'_>> =
            requests.iter().zip(&answers).filter(|(_, a)| a.is_none()).map(|(r, _)| r.clone()).collect();
        let mut sent = if rest.is_empty() { Vec::new() } else { self.inner.batch(&rest, tx_id) }.into_iter();
        for a in answers.iter_mut().filter(|a| a.is_none()) {
            *a = Some(sent.next().unwrap_or(Err(ClientError::NoReply)));
        }
        answers.into_iter().map(|a| a.unwrap_or(Err(ClientError::NoReply))).collect()
    }
}
