//! The device set of one class: what the toolstack added under our backend directory.
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use hv_abi::DomId;

use xenstore::xenbus::device_removed;
use xenstore::{ClientError, StoreClient};

use crate::device::{DataPath, Device, FE_TOKEN, Info};
use crate::platform::Platform;
use crate::read_string;

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
    pub fn refresh(&mut self, client: &mut impl StoreClient, p: &mut impl Platform, shared: &mut D::Shared) {
        self.scan(client, p, shared);
        for d in &mut self.devices {
            d.step(client, p, shared);
        }
    }

    /// Drops the devices whose directory the toolstack removed, then adds the new ones.
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
                let dir = format!("{}/{fe}/{n}", self.base);
                if self.devices.iter().any(|d| d.info().dir == dir) {
                    continue;
                }
                let name = format!("{} {fe}/{n}", D::KIND);
                if self.devices.len() >= self.max_devices {
                    p.log(&format!("{name}: too many devices (limit {}); ignored", self.max_devices));
                    continue;
                }
                let fe_dir = read_string(client, &format!("{dir}/frontend")).unwrap_or_default();
                let info = Info { dir, fe_dir, name, fe };
                self.devices.push(Device::add(client, p, shared, info));
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
            d.teardown(p, shared, "device removed by the toolstack");
            if !d.info().fe_dir.is_empty() {
                let _ = client.unwatch(format!("{}/state", d.info().fe_dir).as_bytes(), FE_TOKEN);
            }
            p.log(&format!("{}: removed", d.name()));
            false
        });
    }
}
