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
    /// Three round trips to the store however many devices there are (the directory, every
    /// frontend's directory in one batch, every frontend's state in one batch), plus the
    /// handshake steps of the devices that move. The devices the listing no longer shows are
    /// dropped first, as [`Backend::prune`] drops them.
    pub fn refresh(&mut self, client: &mut impl StoreClient, p: &mut impl Platform, shared: &mut D::Shared) {
        let listing = self.list(client);
        if let Some(listing) = &listing {
            self.devices.retain_mut(|d| {
                let fe = d.info().fe;
                let gone = match listing.iter().find(|(id, _)| *id == fe) {
                    None => true,
                    Some((_, Listed::Gone)) => true,
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
            for (fe, listed) in listing {
                let Listed::Devices(ns) = listed else { continue };
                for n in ns {
                    self.add_new(client, p, shared, *fe, n);
                }
            }
        }
        // Every device's frontend state in one batch; a device reacts to what it read.
        let paths: Vec<String> = self
            .devices
            .iter()
            .filter(|d| d.path().is_some())
            .map(|d| format!("{}/state", d.info().fe_dir))
            .collect();
        let refs: Vec<&[u8]> = paths.iter().map(|p| p.as_bytes()).collect();
        let mut states = client.read_many(&refs).into_iter();
        for d in self.devices.iter_mut().filter(|d| d.path().is_some()) {
            let seen = states.next().unwrap_or(Err(ClientError::NoReply));
            d.step_seen(client, p, shared, xenbus_state(seen));
        }
    }

    /// The backend directory's listing: per frontend domain, its devices (`None`: the store
    /// could not be read, so nothing can be judged removed).
    fn list(&self, client: &mut impl StoreClient) -> Option<Vec<(DomId, Listed)>> {
        let fes = match client.directory(self.base.as_bytes()) {
            Ok(fes) => fes,
            // No directory at all: every device went.
            Err(ClientError::Store(Errno::Enoent)) => return Some(Vec::new()),
            Err(_) => return None,
        };
        let fes: Vec<DomId> = fes
            .iter()
            .filter_map(|name| core::str::from_utf8(name).ok()?.parse::<DomId>().ok())
            .filter(|d| *d < xenstore::DOMID_FIRST_RESERVED)
            .collect();
        let dirs: Vec<String> = fes.iter().map(|fe| format!("{}/{fe}", self.base)).collect();
        let requests: Vec<Request<'_>> = dirs.iter().map(|d| Request::Directory { path: d.as_bytes() }).collect();
        let replies = client.batch(&requests, 0);
        Some(
            fes.into_iter()
                .zip(replies)
                .map(|(fe, r)| {
                    let listed = match r {
                        Ok(body) => Listed::Devices(
                            children(&body)
                                .filter_map(|n| core::str::from_utf8(n).ok().map(String::from))
                                .collect(),
                        ),
                        Err(ClientError::Store(Errno::Enoent)) => Listed::Gone,
                        Err(_) => Listed::Unknown,
                    };
                    (fe, listed)
                })
                .collect(),
        )
    }

    /// Adds device `<fe>/<n>` unless it is known already (or the set is full).
    fn add_new(&mut self, client: &mut impl StoreClient, p: &mut impl Platform, shared: &mut D::Shared, fe: DomId, n: &str) {
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
fn remove<D: DataPath>(client: &mut impl StoreClient, p: &mut impl Platform, shared: &mut D::Shared, d: &mut Device<D>) {
    d.teardown(p, shared, "device removed by the toolstack");
    if !d.info().fe_dir.is_empty() {
        let _ = client.unwatch(format!("{}/state", d.info().fe_dir).as_bytes(), FE_TOKEN);
    }
    p.log(&format!("{}: removed", d.name()));
}
