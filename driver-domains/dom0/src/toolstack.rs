//! What Xen's toolstack writes for a split device: the frontend and backend directories, each
//! owned by its domain and readable by the other, cross-linked, both in state Initialising.
use alloc::format;
use alloc::string::String;
use hv_store::{Access, LocalClient, Permissions, StoreClient, StoreServer};

pub fn frontend_dir(fe: u32, kind: &str, index: u32) -> String {
    format!("/local/domain/{fe}/device/{kind}/{index}")
}

pub fn backend_dir(be: u32, kind: &str, fe: u32, index: u32) -> String {
    format!("/local/domain/{be}/backend/{kind}/{fe}/{index}")
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
    let f = frontend_dir(fe, kind, index);
    let b = backend_dir(be, kind, fe, index);
    let mut c = LocalClient::dom0(server);
    let err = |what: &str, e| format!("{what}: {e}");
    let init = b"1"; // XenbusStateInitialising
    c.mkdir(f.as_bytes()).map_err(|e| err("mkdir frontend", e))?;
    c.set_perms(f.as_bytes(), Permissions::new(fe as u16, Access::None).with(be as u16, Access::Read))
        .map_err(|e| err("frontend perms", e))?;
    c.mkdir(b.as_bytes()).map_err(|e| err("mkdir backend", e))?;
    c.set_perms(b.as_bytes(), Permissions::new(be as u16, Access::None).with(fe as u16, Access::Read))
        .map_err(|e| err("backend perms", e))?;
    let (be_id, fe_id) = (format!("{be}"), format!("{fe}"));
    for (dir, key, value) in [
        (&f, "backend", b.as_bytes()),
        (&f, "backend-id", be_id.as_bytes()),
        (&f, "state", init),
        (&b, "frontend", f.as_bytes()),
        (&b, "frontend-id", fe_id.as_bytes()),
        (&b, "state", init),
        (&b, "params", params.as_bytes()),
    ] {
        c.write(format!("{dir}/{key}").as_bytes(), value).map_err(|e| err("write", e))?;
    }
    Ok(())
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
    let f = frontend_dir(fe, kind, index);
    let b = backend_dir(be, kind, fe, index);
    let mut c = LocalClient::dom0(server);
    let err = |what: &str, e| format!("{what}: {e}");
    c.mkdir(b.as_bytes()).map_err(|e| err("mkdir backend", e))?;
    c.set_perms(b.as_bytes(), Permissions::new(be as u16, Access::None).with(fe as u16, Access::Read))
        .map_err(|e| err("backend perms", e))?;
    let fe_id = format!("{fe}");
    for (key, value) in [
        ("frontend", f.as_bytes()),
        ("frontend-id", fe_id.as_bytes()),
        ("state", b"1".as_slice()),
        ("params", params.as_bytes()),
    ] {
        c.write(format!("{b}/{key}").as_bytes(), value).map_err(|e| err("write backend", e))?;
    }
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
    let be_id = format!("{be}");
    c.write(format!("{f}/backend-id").as_bytes(), be_id.as_bytes()).map_err(|e| err("write frontend", e))?;
    c.write(format!("{f}/backend").as_bytes(), b.as_bytes()).map_err(|e| err("write frontend", e))?;
    Ok(())
}
