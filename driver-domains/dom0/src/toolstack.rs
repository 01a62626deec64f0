//! What Xen's toolstack writes for a split device: the frontend and backend directories, each
//! owned by its domain and readable by the other, cross-linked, both in state Initialising.
use alloc::format;
use alloc::string::String;
use hv_abi::DomId;
use xenstore::{Access, ClientError, Permissions, StoreClient, xenbus};
use xenstored::{LocalClient, StoreServer};

pub fn frontend_dir(fe: DomId, kind: &str, index: u32) -> String {
    format!("/local/domain/{fe}/device/{kind}/{}", xenbus::device_id(kind, index))
}

pub fn backend_dir(be: DomId, kind: &str, fe: DomId, index: u32) -> String {
    format!("/local/domain/{be}/backend/{kind}/{fe}/{}", xenbus::device_id(kind, index))
}

fn err(what: &str, e: ClientError) -> String {
    format!("{what}: {e}")
}

/// A directory owned by `owner` and readable by `reader`.
fn private_dir(c: &mut LocalClient<'_>, dir: &str, owner: DomId, reader: DomId) -> Result<(), String> {
    c.mkdir(dir.as_bytes()).map_err(|e| err("mkdir", e))?;
    c.set_perms(dir.as_bytes(), Permissions::new(owner, Access::None).with(reader, Access::Read))
        .map_err(|e| err("perms", e))
}

fn write(c: &mut LocalClient<'_>, dir: &str, key: &str, value: &[u8]) -> Result<(), String> {
    c.write(format!("{dir}/{key}").as_bytes(), value).map_err(|e| err("write", e))
}

/// The index of `devices[i]` among the devices of its own kind (`vbd/0`, `vif/0`, `vbd/1`, ...).
pub fn index_in_kind<T>(devices: &[T], i: usize, kind: impl Fn(&T) -> &str) -> u32 {
    let k = kind(&devices[i]);
    devices[..i].iter().filter(|d| kind(d) == k).count() as u32
}

/// A vif's MAC: `mac=xx:xx:xx:xx:xx:xx` from its params, else `00:16:3e:00:<fe>:<index>`
/// (Xen's OUI, locally unique per frontend and device).
pub fn vif_mac(params: &str, fe: DomId, index: u32) -> Result<String, String> {
    match params.split_whitespace().find_map(|w| w.strip_prefix("mac=")) {
        Some(m) => {
            let parts: alloc::vec::Vec<&str> = m.split(':').collect();
            let ok = parts.len() == 6 && parts.iter().all(|p| p.len() == 2 && u8::from_str_radix(p, 16).is_ok());
            let first = parts.first().and_then(|p| u8::from_str_radix(p, 16).ok()).unwrap_or(1);
            if !ok || first & 1 != 0 {
                return Err(format!("mac {m:?} is not a unicast xx:xx:xx:xx:xx:xx address"));
            }
            Ok(m.to_ascii_lowercase())
        }
        None => Ok(format!("00:16:3e:00:{:02x}:{:02x}", fe & 0xff, index & 0xff)),
    }
}

/// Keys a device class adds to both directories (a vif's `mac` and `handle`).
fn class_keys(
    kind: &str,
    params: &str,
    fe: DomId,
    index: u32,
) -> Result<alloc::vec::Vec<(&'static str, String)>, String> {
    Ok(match kind {
        "vif" => alloc::vec![("mac", vif_mac(params, fe, index)?), ("handle", format!("{index}"))],
        _ => alloc::vec::Vec::new(),
    })
}

/// The backend's half: its directory, linked to the frontend, in Initialising, with `params`.
fn write_backend(
    c: &mut LocalClient<'_>,
    f: &str,
    b: &str,
    fe: DomId,
    be: DomId,
    params: &str,
    extra: &[(&str, String)],
) -> Result<(), String> {
    private_dir(c, b, be, fe)?;
    write(c, b, "frontend", f.as_bytes())?;
    write(c, b, "frontend-id", format!("{fe}").as_bytes())?;
    for (k, v) in extra {
        write(c, b, k, v.as_bytes())?;
    }
    write(c, b, "params", params.as_bytes())?;
    write(c, b, "state", b"1") // XenbusStateInitialising
}

/// Writes the store entries of device `index` of class `kind` between `fe` and `be`; `params`
/// goes to the backend's `params` key.
pub fn add_device(
    server: &mut StoreServer,
    kind: &str,
    index: u32,
    fe: DomId,
    be: DomId,
    params: &str,
) -> Result<(), String> {
    let (f, b) = (frontend_dir(fe, kind, index), backend_dir(be, kind, fe, index));
    let extra = class_keys(kind, params, fe, index)?;
    let mut c = LocalClient::dom0(server);
    private_dir(&mut c, &f, fe, be)?;
    write(&mut c, &f, "backend", b.as_bytes())?;
    write(&mut c, &f, "backend-id", format!("{be}").as_bytes())?;
    for (k, v) in &extra {
        write(&mut c, &f, k, v.as_bytes())?;
    }
    if kind == "vbd" {
        // What Linux's blkfront reads: without `device-type` it refuses a PVH/HVM disk (ENODEV).
        write(&mut c, &f, "virtual-device", format!("{}", xenbus::device_id(kind, index)).as_bytes())?;
        write(&mut c, &f, "device-type", b"disk")?;
    }
    write(&mut c, &f, "state", b"1")?;
    write_backend(&mut c, &f, &b, fe, be, params, &extra)
}

/// Points device `index` of frontend `fe` at a new backend domain `be` (a restarted driver
/// domain): writes the backend's directory afresh and updates the frontend's `backend` and
/// `backend-id`, leaving the frontend's own state to the frontend.
pub fn move_backend(
    server: &mut StoreServer,
    kind: &str,
    index: u32,
    fe: DomId,
    be: DomId,
    params: &str,
) -> Result<(), String> {
    let (f, b) = (frontend_dir(fe, kind, index), backend_dir(be, kind, fe, index));
    let extra = class_keys(kind, params, fe, index)?;
    let mut c = LocalClient::dom0(server);
    write_backend(&mut c, &f, &b, fe, be, params, &extra)?;
    // The frontend's directory and every node in it (state, ring-ref, ...) grant the new backend
    // read access (the old backend's entries went with it), then the directory names it.
    let perms = Permissions::new(fe, Access::None).with(be, Access::Read);
    let children = c.directory(f.as_bytes()).map_err(|e| err("list frontend", e))?;
    c.set_perms(f.as_bytes(), perms.clone()).map_err(|e| err("frontend perms", e))?;
    for child in children {
        let mut path = f.clone().into_bytes();
        path.push(b'/');
        path.extend_from_slice(&child);
        c.set_perms(&path, perms.clone()).map_err(|e| err("frontend perms", e))?;
    }
    write(&mut c, &f, "backend-id", format!("{be}").as_bytes())?;
    write(&mut c, &f, "backend", b.as_bytes())
}

/// Removes the store entries of the devices `devices` of frontend `fe`: the backends'
/// directories (`/local/domain/<be>/backend/<kind>/<fe>`; a backend sees its device vanish and
/// tears it down) and the frontend's own home.
fn remove_device_entries(
    store: &mut crate::store_service::StoreService,
    fe: DomId,
    devices: &[hv_bundle::DeviceConfig],
    tracked: &[crate::Tracked],
) {
    let mut c = LocalClient::dom0(&mut store.server);
    for dev in devices {
        if let Some(be) = tracked.iter().find(|b| b.cfg.name == dev.backend).and_then(|b| b.domid) {
            let kind_dir = format!("/local/domain/{be}/backend/{}", dev.kind);
            let _ = c.rm(format!("{kind_dir}/{fe}").as_bytes());
            // The last device of its kind takes the directories made for it along, so creating
            // and destroying domains leaves the store as it was.
            for dir in [kind_dir, format!("/local/domain/{be}/backend")] {
                if !c.directory(dir.as_bytes()).is_ok_and(|children| children.is_empty()) {
                    break;
                }
                let _ = c.rm(dir.as_bytes());
            }
        }
    }
    let _ = c.rm(format!("/local/domain/{fe}").as_bytes());
}

/// Removes the store entries of every device tracked frontend `fe` had.
pub fn remove_devices_of(store: &mut crate::store_service::StoreService, fe: DomId, tracked: &[crate::Tracked]) {
    let devices = tracked.iter().find(|t| t.domid == Some(fe)).map(|t| t.cfg.devices.as_slice()).unwrap_or(&[]);
    remove_device_entries(store, fe, devices, tracked);
}

/// Creates domain `cfg` (a PV unikernel from its image, or a PVH guest from its kernel,
/// ramdisk and command line) with `flags`.
pub fn create(cfg: &hv_bundle::DomainConfig, flags: u64) -> Result<DomId, hv_abi::Error> {
    create_as(cfg, flags, None)
}

/// [`create`] under domain id `domid` when given.
pub fn create_as(cfg: &hv_bundle::DomainConfig, flags: u64, domid: Option<DomId>) -> Result<DomId, hv_abi::Error> {
    use hv_rt::domctl;
    match cfg.domain_type {
        hv_bundle::DomainType::Pv => {
            domctl::create_full(&cfg.name, &cfg.image, "", cfg.memory_mib, &cfg.args, flags, domid)
        }
        hv_bundle::DomainType::Pvh => domctl::create_full(
            &cfg.name,
            cfg.kernel.as_deref().unwrap_or_default(),
            cfg.ramdisk.as_deref().unwrap_or_default(),
            cfg.memory_mib,
            &cfg.cmdline,
            flags | hv_abi::CREATE_PVH,
            domid,
        ),
    }
}

/// Builds domain `cfg` paused, connects it to the store, assigns its PCI devices, writes its
/// devices' store entries (backends looked up by name among `tracked`), then runs it. On any
/// failure everything done so far is undone and the error names the problem.
pub fn start(
    cfg: &hv_bundle::DomainConfig,
    tracked: &[crate::Tracked],
    store: &mut crate::store_service::StoreService,
) -> Result<DomId, String> {
    use hv_rt::domctl;
    let id = create(cfg, hv_abi::CREATE_PAUSED).map_err(|e| crate::xl::create_error(cfg, e))?;
    let undo = |store: &mut crate::store_service::StoreService, why: String| {
        let _ = domctl::destroy(id);
        store.disconnect(id);
        remove_device_entries(store, id, &cfg.devices, tracked);
        why
    };
    if let Err(e) = store.connect(id) {
        return Err(undo(store, format!("store connection: {e}")));
    }
    for sel in &cfg.pci {
        let r = hv_abi::pci::Selector::parse(sel).ok_or(hv_abi::Error::Inval).and_then(|s| domctl::assign_pci(id, s));
        if let Err(e) = r {
            return Err(undo(store, crate::xl::err_text(&format!("assign pci {sel}"), e)));
        }
    }
    for (j, dev) in cfg.devices.iter().enumerate() {
        let n = index_in_kind(&cfg.devices, j, |d| &d.kind);
        let be = tracked.iter().find(|b| b.cfg.name == dev.backend && b.is_live()).and_then(|b| b.domid);
        let Some(be) = be else {
            return Err(undo(
                store,
                format!("{} {n}: backend missing: no running domain named {:?}", dev.kind, dev.backend),
            ));
        };
        if let Err(e) = add_device(&mut store.server, &dev.kind, n, id, be, &dev.params) {
            return Err(undo(store, format!("{} {n}: {e}", dev.kind)));
        }
    }
    if let Err(e) = domctl::unpause(id) {
        return Err(undo(store, crate::xl::err_text("unpause", e)));
    }
    Ok(id)
}

/// Starts a new instance of `tracked[i]` (a crashed driver domain) with the same config and
/// PCI devices, and moves every device it served to it: the frontends see their backend go
/// away, follow their `backend` key and reconnect.
pub fn restart(
    tracked: &mut [crate::Tracked],
    i: usize,
    store: &mut crate::store_service::StoreService,
) -> Result<DomId, String> {
    use hv_rt::domctl;
    let crashed_ns = hv_rt::time::now_ns();
    let cfg = tracked[i].cfg.clone();
    // In place: the new instance gets the old one's domain id, so every frontend's backend path,
    // grant entries and unbound port still name it; its store nodes (the backend directories)
    // stay. Each device's backend state goes back to Initialising, which frontends ignore (Linux's
    // included); the new instance resumes the devices whose frontend is still Connected.
    let old = tracked[i].domid.take().or(tracked[i].previous_id.take());
    if let Some(old) = old {
        let _ = domctl::destroy(old);
        store.disconnect_keeping_nodes(old);
        let mut c = LocalClient::dom0(&mut store.server);
        for t in tracked.iter() {
            for (j, dev) in t.cfg.devices.iter().enumerate().filter(|(_, d)| d.backend == cfg.name) {
                let n = index_in_kind(&t.cfg.devices, j, |d| &d.kind);
                if let Some(fe) = t.domid {
                    let _ = write(&mut c, &backend_dir(old, &dev.kind, fe, n), "state", b"1");
                }
            }
        }
    }
    let new = match create_as(&cfg, hv_abi::CREATE_PAUSED, old) {
        // The old id cannot be had (taken meanwhile): a fresh one, and the frontends are moved.
        Err(hv_abi::Error::Exist) => create(&cfg, hv_abi::CREATE_PAUSED),
        r => r,
    }
    .map_err(|e| crate::xl::err_text(&format!("start {} again", cfg.name), e))?;
    let _ = store.connect(new);
    for sel in &cfg.pci {
        if let Some(s) = hv_abi::pci::Selector::parse(sel)
            && let Err(e) = domctl::assign_pci(new, s)
        {
            hv_rt::println!("cannot assign pci {sel} to the new {}: {}", cfg.name, e.name());
        }
    }
    for t in tracked.iter() {
        for (j, dev) in t.cfg.devices.iter().enumerate().filter(|(_, d)| d.backend == cfg.name) {
            let n = index_in_kind(&t.cfg.devices, j, |d| &d.kind);
            if let Some(fe) = t.domid
                && t.is_live()
                && Some(new) != old
                && let Err(e) = move_backend(&mut store.server, &dev.kind, n, fe, new, &dev.params)
            {
                hv_rt::println!("cannot move {}/{n} of {} to the new backend: {e}", dev.kind, t.cfg.name);
            }
        }
    }
    tracked[i].domid = Some(new);
    tracked[i].ending = None;
    tracked[i].restarts += 1;
    tracked[i].since_ns = crashed_ns;
    tracked[i].waiting = Some(crate::connect::Wait::Restart);
    let _ = domctl::unpause(new);
    Ok(new)
}
