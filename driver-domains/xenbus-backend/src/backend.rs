//! The device set of one class: what the toolstack added under our backend directory.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use hv_abi::DomId;

use xenstore::xenbus::{XenbusState, device_removed};
use xenstore::{ClientError, Errno, Request, StoreClient};

use crate::device::{DataPath, Device, FE_TOKEN, Info};
use crate::platform::Platform;

/// Watch token of the backend directory.
const BE_TOKEN: &[u8] = b"be";

/// Every device of class `D` served by this domain (`/local/domain/<me>/backend/<kind>`).
///
/// The domain's loop calls [`Backend::refresh`] whenever a watch fired (and now and then
/// anyway): it drops the devices the toolstack removed, adds the new ones, and lets each react
/// to its frontend's state. The data path runs between refreshes on [`Backend::devices_mut`].
pub struct Backend<D: DataPath> {
    base: String,
    max_devices: usize,
    devices: Vec<Device<D>>,
}

impl<D: DataPath> Backend<D> {
    /// The devices of backend domain `me`, at most `max_devices` of them.
    pub fn new(me: DomId, max_devices: usize) -> Self {
        Self { base: format!("/local/domain/{me}/backend/{}", D::KIND), max_devices, devices: Vec::new() }
    }

    /// `/local/domain/<me>/backend/<kind>`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Watches the backend directory (new devices, removed devices).
    pub fn watch(&self, client: &mut impl StoreClient) -> Result<(), ClientError> {
        client.watch(self.base.as_bytes(), BE_TOKEN)
    }

    pub fn devices(&self) -> &[Device<D>] {
        &self.devices
    }

    pub fn devices_mut(&mut self) -> &mut [Device<D>] {
        &mut self.devices
    }

    /// Prunes and scans the device set, then lets every device react to its frontend.
    ///
    /// Two round trips to the store however many devices there are (the directory; then every
    /// frontend domain's directory and every known device's frontend state in one batch), plus
    /// the handshake steps of the devices that move. The devices the listing no longer shows
    /// are dropped first, as [`Backend::prune`] drops them; new ones are added (they looked at
    /// their frontend's state as they were added).
    pub fn refresh(&mut self, client: &mut impl StoreClient, p: &mut impl Platform, shared: &mut D::Shared) {
        // `None`: the directory could not be read, so nothing can be judged removed.
        let fes: Option<Vec<DomId>> = match client.directory(self.base.as_bytes()) {
            Ok(names) => Some(
                names
                    .iter()
                    .filter_map(|name| core::str::from_utf8(name).ok()?.parse::<DomId>().ok())
                    .filter(|d| *d < xenstore::DOMID_FIRST_RESERVED)
                    .collect(),
            ),
            // No directory at all: every device went.
            Err(ClientError::Store(Errno::Enoent)) => Some(Vec::new()),
            Err(_) => None,
        };
        let fe_ids = fes.clone().unwrap_or_default();
        let dirs: Vec<String> = fe_ids.iter().map(|fe| format!("{}/{fe}", self.base)).collect();
        let known: Vec<(String, String)> = self
            .devices
            .iter()
            .filter(|d| d.path().is_some())
            .map(|d| (d.info().dir.clone(), format!("{}/state", d.info().fe_dir)))
            .collect();
        let requests: Vec<Request<'_>> = dirs
            .iter()
            .map(|d| Request::Directory { path: d.as_bytes() })
            .chain(known.iter().map(|(_, state)| Request::Read { path: state.as_bytes() }))
            .collect();
        let mut replies = client.batch(&requests, 0).into_iter();
        let listing: Vec<(DomId, Listed)> = fe_ids
            .iter()
            .map(|&fe| {
                let listed = match replies.next().unwrap_or(Err(ClientError::NoReply)) {
                    Ok(body) => Listed::Devices(
                        children(&body).filter_map(|n| core::str::from_utf8(n).ok().map(String::from)).collect(),
                    ),
                    Err(ClientError::Store(Errno::Enoent)) => Listed::Gone,
                    Err(_) => Listed::Unknown,
                };
                (fe, listed)
            })
            .collect();
        let states: Vec<(String, XenbusState)> = known
            .into_iter()
            .map(|(dir, _)| (dir, xenbus_state(replies.next().unwrap_or(Err(ClientError::NoReply)))))
            .collect();
        if fes.is_some() {
            self.devices.retain_mut(|d| {
                let fe = d.info().fe;
                let gone = match listing.iter().find(|(id, _)| *id == fe) {
                    None | Some((_, Listed::Gone)) => true,
                    Some((_, Listed::Unknown)) => false,
                    Some((_, Listed::Devices(ns))) => {
                        let n = d.info().dir.rsplit('/').next().unwrap_or_default();
                        !ns.iter().any(|m| m == n)
                    }
                };
                if gone {
                    remove(client, p, shared, d);
                }
                !gone
            });
            for (fe, listed) in &listing {
                let Listed::Devices(ns) = listed else { continue };
                for n in ns {
                    self.add_new(client, p, shared, *fe, n);
                }
            }
        }
        // Every device that was known reacts to the state it read.
        for (dir, fe) in states {
            if let Some(d) = self.devices.iter_mut().find(|d| d.info().dir == dir) {
                d.step_seen(client, p, shared, fe);
            }
        }
    }

    /// Adds device `<fe>/<n>` unless it is known already (or the set is full).
    fn add_new(
        &mut self,
        client: &mut impl StoreClient,
        p: &mut impl Platform,
        shared: &mut D::Shared,
        fe: DomId,
        n: &str,
    ) {
        let dir = format!("{}/{fe}/{n}", self.base);
        if self.devices.iter().any(|d| d.info().dir == dir) {
            return;
        }
        let name = format!("{} {fe}/{n}", D::KIND);
        if self.devices.len() >= self.max_devices {
            p.log(&format!("{name}: too many devices (limit {}); ignored", self.max_devices));
            return;
        }
        let info = Info { dir, fe_dir: String::new(), name, fe };
        self.devices.push(Device::add(client, p, shared, info));
    }

    /// Drops the devices whose backend directory the toolstack removed, then adds the new ones.
    pub fn scan(&mut self, client: &mut impl StoreClient, p: &mut impl Platform, shared: &mut D::Shared) {
        self.prune(client, p, shared);
        let Ok(fes) = client.directory(self.base.as_bytes()) else { return };
        for fe_name in fes {
            let Some(fe) = core::str::from_utf8(&fe_name)
                .ok()
                .and_then(|t| t.parse::<DomId>().ok())
                .filter(|d| *d < xenstore::DOMID_FIRST_RESERVED)
            else {
                continue;
            };
            let Ok(ns) = client.directory(format!("{}/{fe}", self.base).as_bytes()) else { continue };
            for n in ns {
                let Ok(n) = core::str::from_utf8(&n) else { continue };
                self.add_new(client, p, shared, fe, n);
            }
        }
    }

    /// Drops the devices whose backend directory the toolstack removed (their frontend's
    /// domain was destroyed): connection torn down, frontend no longer watched, `<name>:
    /// removed`. So a domain created and destroyed a thousand times leaves nothing behind, and
    /// since this runs before any device writes its state, nothing is written back into a
    /// removed directory.
    pub fn prune(&mut self, client: &mut impl StoreClient, p: &mut impl Platform, shared: &mut D::Shared) {
        self.devices.retain_mut(|d| {
            if !device_removed(client, d.info().dir.as_bytes()) {
                return true;
            }
            remove(client, p, shared, d);
            false
        });
    }
}

/// What the listing of one frontend domain's directory says.
enum Listed {
    /// Its device names.
    Devices(Vec<String>),
    /// The directory is gone: all its devices went.
    Gone,
    /// The store would not say.
    Unknown,
}

/// The child names in a `DIRECTORY` reply.
fn children(body: &[u8]) -> impl Iterator<Item = &[u8]> {
    let body = body.strip_suffix(b"\0").unwrap_or(body);
    body.split(|&b| b == 0).filter(|n| !n.is_empty())
}

/// A frontend state as read: missing or garbage counts as Closed (as [`Device::step`] reads it).
fn xenbus_state(read: Result<Vec<u8>, ClientError>) -> XenbusState {
    match read {
        Ok(text) => XenbusState::parse(&text).unwrap_or(XenbusState::Closed),
        Err(ClientError::Store(Errno::Enoent)) => XenbusState::Unknown,
        Err(_) => XenbusState::Closed,
    }
}

/// A device whose directory the toolstack removed: connection torn down, frontend no longer
/// watched, `<name>: removed`.
fn remove<D: DataPath>(
    client: &mut impl StoreClient,
    p: &mut impl Platform,
    shared: &mut D::Shared,
    d: &mut Device<D>,
) {
    d.teardown(p, shared, "device removed by the toolstack");
    if !d.info().fe_dir.is_empty() {
        let _ = client.unwatch(format!("{}/state", d.info().fe_dir).as_bytes(), FE_TOKEN);
    }
    p.log(&format!("{}: removed", d.name()));
}
