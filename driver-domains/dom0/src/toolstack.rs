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

/// The backend's half: its directory, linked to the frontend, in Initialising, with `params`.
fn write_backend(c: &mut LocalClient<'_>, f: &str, b: &str, fe: u32, be: u32, params: &str) -> Result<(), String> {
    private_dir(c, b, be, fe)?;
    write(c, b, "frontend", f.as_bytes())?;
    write(c, b, "frontend-id", format!("{fe}").as_bytes())?;
    write(c, b, "state", b"1")?; // XenbusStateInitialising
    write(c, b, "params", params.as_bytes())
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
    let mut c = LocalClient::dom0(server);
    private_dir(&mut c, &f, fe, be)?;
    write(&mut c, &f, "backend", b.as_bytes())?;
    write(&mut c, &f, "backend-id", format!("{be}").as_bytes())?;
    write(&mut c, &f, "state", b"1")?;
    write_backend(&mut c, &f, &b, fe, be, params)
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
    let mut c = LocalClient::dom0(server);
    write_backend(&mut c, &f, &b, fe, be, params)?;
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
