//! What Xen's toolstack writes for a split device: the frontend and backend directories, each
//! owned by its domain and readable by the other, cross-linked, both in state Initialising.
use alloc::format;
use alloc::string::String;
use hv_store::{Access, ClientError, LocalClient, Permissions, StoreClient, StoreServer};

pub fn frontend_dir(fe: u32, kind: &str, index: u32) -> String {
    format!("/local/domain/{fe}/device/{kind}/{index}")
}

pub fn backend_dir(be: u32, kind: &str, fe: u32, index: u32) -> String {
    format!("/local/domain/{be}/backend/{kind}/{fe}/{index}")
}

fn err(what: &str, e: ClientError) -> String {
    format!("{what}: {e}")
}

/// A directory owned by `owner` and readable by `reader`.
fn private_dir(c: &mut LocalClient<'_>, dir: &str, owner: u32, reader: u32) -> Result<(), String> {
    c.mkdir(dir.as_bytes()).map_err(|e| err("mkdir", e))?;
    c.set_perms(dir.as_bytes(), Permissions::new(owner as u16, Access::None).with(reader as u16, Access::Read))
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
pub fn vif_mac(params: &str, fe: u32, index: u32) -> Result<String, String> {
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
fn class_keys(kind: &str, params: &str, fe: u32, index: u32) -> Result<alloc::vec::Vec<(&'static str, String)>, String> {
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
    fe: u32,
    be: u32,
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
    fe: u32,
    be: u32,
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
    fe: u32,
    be: u32,
    params: &str,
) -> Result<(), String> {
    let (f, b) = (frontend_dir(fe, kind, index), backend_dir(be, kind, fe, index));
    let extra = class_keys(kind, params, fe, index)?;
    let mut c = LocalClient::dom0(server);
    write_backend(&mut c, &f, &b, fe, be, params, &extra)?;
    // The frontend's directory and every node in it (state, ring-ref, ...) grant the new backend
    // read access (the old backend's entries went with it), then the directory names it.
    let perms = Permissions::new(fe as u16, Access::None).with(be as u16, Access::Read);
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
