//! The backend skeleton's handshake against the real store in-process (`xenstored`), with a
//! fake hypervisor that counts mappings and ports: connect (also when the frontend skips
//! states), the frontend closing and restarting, the frontend gone, the device removed, a
//! backend restart followed by the frontend helper, and garbage in the frontend's nodes.

use shared_ring::{BackRing, NetifRx, NetifTx, PageMemory};
use xenbus_backend::testing::FakeHv;
use xenbus_backend::{Backend, DataPath, Info, MAX_LOGGED_REFUSALS, RefusalLog, RingKey, read_string};
use xenstore::xenbus::frontend::{peer_state, wait_for_state};
use xenstore::xenbus::{XenbusState, frontend_next, read_state, state_path, switch_state};
use xenstore::{Access, ClientError, Errno, Permissions, StoreClient};
use xenstored::{Limits, LocalClient, StoreServer};

use XenbusState::*;

const BE: u16 = 2;
const FE: u16 = 3;
const FE_DIR: &str = "/local/domain/3/device/vif/0";
const BE_DIR: &str = "/local/domain/2/backend/vif/3/0";

/// What every device shares: attach refusals on demand, a count of live data paths.
#[derive(Default)]
struct Shared {
    refuse_attach: bool,
    attached: u32,
}

/// A two-ring device (netif's rings) whose data path only attaches and detaches.
struct TestPath {
    rings: Option<(BackRing<NetifTx, PageMemory>, BackRing<NetifRx, PageMemory>)>,
}

impl DataPath for TestPath {
    type Shared = Shared;
    const KIND: &'static str = "vif";
    const RINGS: &'static [RingKey] =
        &[RingKey { key: "tx-ring-ref", label: "tx ring ref" }, RingKey { key: "rx-ring-ref", label: "rx ring ref" }];

    fn probe(client: &mut impl StoreClient, info: &Info, _: &mut Shared) -> Result<Self, String> {
        let params = read_string(client, &format!("{}/params", info.dir)).unwrap_or_default();
        if params == "bad" {
            return Err(format!("bad params {params:?}; device closed"));
        }
        Ok(TestPath { rings: None })
    }
    fn features(&self) -> Vec<(&'static str, String)> {
        vec![("feature-rx-copy", "1".into())]
    }
    fn describe(&self) -> String {
        "test device".into()
    }
    fn check_frontend(&mut self, client: &mut impl StoreClient, fe_dir: &str) -> Result<(), String> {
        match read_string(client, &format!("{fe_dir}/request-rx-copy")) {
            Ok(v) if v != "1" => Err(format!("request-rx-copy = {v:?}")),
            _ => Ok(()),
        }
    }
    fn attach(
        &mut self,
        shared: &mut Shared,
        _fe: hv_abi::DomId,
        pages: Vec<PageMemory>,
        _port: u32,
    ) -> Result<(), String> {
        if shared.refuse_attach {
            return Err("refused".into());
        }
        let mut pages = pages.into_iter();
        let (Some(tx), Some(rx)) = (pages.next(), pages.next()) else { return Err("two pages expected".into()) };
        let tx = BackRing::attach(tx).map_err(|e| format!("{e:?}"))?;
        let rx = BackRing::attach(rx).map_err(|e| format!("{e:?}"))?;
        self.rings = Some((tx, rx));
        shared.attached += 1;
        Ok(())
    }
    fn detach(&mut self, shared: &mut Shared) {
        if self.rings.take().is_some() {
            shared.attached -= 1;
        }
    }
}

/// The store, the backend domain's device set, its hypervisor.
struct World {
    server: StoreServer,
    backend: Backend<TestPath>,
    hv: FakeHv,
    shared: Shared,
}

fn dom0(w: &mut World) -> LocalClient<'_> {
    LocalClient::dom0(&mut w.server)
}

fn fe(w: &mut World) -> LocalClient<'_> {
    LocalClient::new(&mut w.server, FE)
}

/// The toolstack's part (as libxl): both directories, each owned by its end and readable by
/// the other, with the cross-references and `params`.
fn world_with(params: &str, frontend_id: &str) -> World {
    let mut server = StoreServer::new(Limits::default());
    server.introduce(BE).unwrap();
    server.introduce(FE).unwrap();
    let mut w = World { server, backend: Backend::new(BE, 4), hv: FakeHv::default(), shared: Shared::default() };
    let mut d = dom0(&mut w);
    for (dir, owner, peer) in [(FE_DIR, FE, BE), (BE_DIR, BE, FE)] {
        d.mkdir(dir.as_bytes()).unwrap();
        d.set_perms(dir.as_bytes(), Permissions::new(owner, Access::None).with(peer, Access::Read)).unwrap();
        d.write(&state_path(dir.as_bytes()), Initialising.as_text()).unwrap();
    }
    for (k, v) in [("backend", BE_DIR), ("backend-id", "2")] {
        d.write(format!("{FE_DIR}/{k}").as_bytes(), v.as_bytes()).unwrap();
    }
    for (k, v) in [("frontend", FE_DIR), ("frontend-id", frontend_id), ("params", params)] {
        d.write(format!("{BE_DIR}/{k}").as_bytes(), v.as_bytes()).unwrap();
    }
    let mut be = LocalClient::new(&mut w.server, BE);
    w.backend.watch(&mut be).unwrap();
    w
}

fn world() -> World {
    world_with("", "3")
}

/// One pass of the backend domain's loop (a watch fired).
fn refresh(w: &mut World) {
    let mut be = LocalClient::new(&mut w.server, BE);
    w.backend.refresh(&mut be, &mut w.hv, &mut w.shared);
}

fn be_state(w: &mut World) -> XenbusState {
    read_state(&mut fe(w), BE_DIR.as_bytes()).unwrap()
}

fn fe_switch(w: &mut World, to: XenbusState) {
    switch_state(&mut fe(w), FE_DIR.as_bytes(), to).unwrap();
}

/// The frontend publishes its rings and port (refs 11 and 12, port 5).
fn fe_publish(w: &mut World) {
    let mut f = fe(w);
    for (k, v) in [("tx-ring-ref", "11"), ("rx-ring-ref", "12"), ("event-channel", "5"), ("request-rx-copy", "1")] {
        f.write(format!("{FE_DIR}/{k}").as_bytes(), v.as_bytes()).unwrap();
    }
}

/// Nothing mapped, bound or attached.
fn assert_released(w: &World) {
    assert!(w.hv.mapped.is_empty(), "still mapped: {:?}", w.hv.mapped);
    assert!(w.hv.bound.is_empty(), "still bound: {:?}", w.hv.bound);
    assert_eq!(w.shared.attached, 0);
}

fn connected_world() -> World {
    let mut w = world();
    refresh(&mut w);
    fe_publish(&mut w);
    fe_switch(&mut w, Initialised);
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Connected);
    fe_switch(&mut w, Connected);
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Connected);
    w
}

#[test]
fn a_new_device_publishes_its_features_and_connects() {
    let mut w = world();
    refresh(&mut w);
    assert_eq!(be_state(&mut w), InitWait);
    assert_eq!(read_string(&mut fe(&mut w), &format!("{BE_DIR}/feature-rx-copy")).unwrap(), "1");
    assert!(w.hv.saw("vif 3/0: test device; InitWait"));
    fe_publish(&mut w);
    fe_switch(&mut w, Initialised);
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Connected);
    assert_eq!(w.hv.mapped.values().copied().collect::<Vec<_>>(), [(3, 11), (3, 12)]);
    assert_eq!(w.hv.bound.len(), 1);
    assert_eq!(w.shared.attached, 1);
    let port = w.backend.devices()[0].port().unwrap();
    assert!(w.hv.saw(&format!("vif 3/0: connected to domain 3: tx ring ref 11, rx ring ref 12, port {port}")));
    // Looking again changes nothing (coalesced or repeated watch events).
    refresh(&mut w);
    assert_eq!((w.hv.mapped.len(), w.backend.devices().len()), (2, 1));
}

#[test]
fn a_frontend_that_skips_initialised_is_connected() {
    let mut w = world();
    refresh(&mut w);
    fe_publish(&mut w);
    fe_switch(&mut w, Connected);
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Connected);
    assert_eq!(w.shared.attached, 1);
}

/// Linux's backends (xen-blkback and xen-netback `frontend_changed`) answer a frontend's
/// Closing with Closing and close only when the frontend is Closed; the rings are let go of
/// before the backend says Closing, so the frontend may end its grants once it sees it.
#[test]
fn frontend_closing_is_answered_with_closing_then_closed_then_a_restart_reconnects() {
    let mut w = connected_world();
    fe_switch(&mut w, Closing);
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Closing);
    assert_released(&w);
    assert!(w.hv.saw("vif 3/0: disconnected (frontend Closing); rings unmapped: yes, port closed"));
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Closing, "the backend waits for the frontend's Closed");
    fe_switch(&mut w, Closed);
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Closed);
    fe_switch(&mut w, Initialising);
    refresh(&mut w);
    assert_eq!(be_state(&mut w), InitWait);
    assert!(w.hv.saw("vif 3/0: frontend reconnecting; InitWait"));
    fe_switch(&mut w, Initialised);
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Connected);
    assert_eq!((w.hv.mapped.len(), w.shared.attached), (2, 1));
}

#[test]
fn a_frontend_that_closed_and_restarted_between_two_looks_gets_initwait() {
    let mut w = connected_world();
    fe_switch(&mut w, Closing);
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Closing);
    // Closed and Initialising coalesce into one watch event: the backend sees only the latter.
    fe_switch(&mut w, Closed);
    fe_switch(&mut w, Initialising);
    refresh(&mut w);
    assert_eq!(be_state(&mut w), InitWait);
}

#[test]
fn a_frontend_closed_at_once_closes_the_backend() {
    let mut w = connected_world();
    fe_switch(&mut w, Closed);
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Closed);
    assert_released(&w);
    assert!(w.hv.saw("vif 3/0: disconnected (frontend Closed); rings unmapped: yes, port closed"));
}

#[test]
fn a_vanished_frontend_is_torn_down() {
    let mut w = connected_world();
    // The frontend's domain is destroyed; its directory goes, the backend's stays for now.
    w.server.release(FE).unwrap();
    refresh(&mut w);
    assert_released(&w);
    assert!(w.hv.saw("vif 3/0: disconnected (frontend Unknown); rings unmapped: yes, port closed"));
    assert_eq!(read_state(&mut LocalClient::new(&mut w.server, BE), BE_DIR.as_bytes()), Ok(Closed));
}

#[test]
fn a_removed_device_is_forgotten_and_nothing_is_written_back() {
    let mut w = connected_world();
    let watches = w.server.connection(BE).unwrap().watch_count();
    dom0(&mut w).rm(BE_DIR.as_bytes()).unwrap();
    dom0(&mut w).rm(FE_DIR.as_bytes()).unwrap();
    refresh(&mut w);
    assert!(w.backend.devices().is_empty());
    assert_released(&w);
    assert!(w.hv.saw("vif 3/0: disconnected (device removed by the toolstack); rings unmapped: yes, port closed"));
    assert!(w.hv.saw("vif 3/0: removed"));
    assert_eq!(w.server.connection(BE).unwrap().watch_count(), watches - 1, "the frontend is no longer watched");
    assert_eq!(LocalClient::new(&mut w.server, BE).read(BE_DIR.as_bytes()), Err(ClientError::Store(Errno::Enoent)));
    refresh(&mut w);
    assert!(!w.hv.saw_prefix("vif 3/0: cannot switch"), "{:?}", w.hv.lines);
}

#[test]
fn garbage_in_the_frontends_state_tears_the_connection_down() {
    let mut w = connected_world();
    fe(&mut w).write(&state_path(FE_DIR.as_bytes()), b"banana").unwrap();
    refresh(&mut w);
    assert_released(&w);
    assert_eq!(be_state(&mut w), Closed);
}

#[test]
fn garbage_ring_refs_are_refused_by_name_and_nothing_is_mapped() {
    let mut w = world();
    refresh(&mut w);
    fe_publish(&mut w);
    fe(&mut w).write(format!("{FE_DIR}/rx-ring-ref").as_bytes(), b"12; rm -rf").unwrap();
    fe_switch(&mut w, Initialised);
    refresh(&mut w);
    assert!(
        w.hv.saw(&format!(
            "vif 3/0: cannot connect: rx-ring-ref: {FE_DIR}/rx-ring-ref is not a number: \"12; rm -rf\""
        ))
    );
    assert_eq!(be_state(&mut w), Closed);
    assert_released(&w);
    // A huge value is named, not echoed whole.
    let huge = "9".repeat(2000);
    fe(&mut w).write(format!("{FE_DIR}/rx-ring-ref").as_bytes(), huge.as_bytes()).unwrap();
    fe_switch(&mut w, Closed);
    fe_switch(&mut w, Initialising);
    refresh(&mut w);
    fe_switch(&mut w, Initialised);
    refresh(&mut w);
    let line = w.hv.lines.iter().rev().find(|l| l.contains("cannot connect")).unwrap();
    assert!(line.len() < 200, "{line}");
    assert_released(&w);
}

#[test]
fn every_failed_connection_step_is_undone() {
    // A ring ref the hypervisor refuses: the one mapped before it is unmapped.
    let mut w = world();
    w.hv.bad_grefs.insert(12);
    refresh(&mut w);
    fe_publish(&mut w);
    fe_switch(&mut w, Initialised);
    refresh(&mut w);
    assert!(w.hv.saw("vif 3/0: cannot connect: map rx ring ref 12: ENOENT"));
    assert_released(&w);
    assert_eq!(be_state(&mut w), Closed);

    // The port cannot be bound: both mappings undone.
    let mut w = world();
    w.hv.fail_bind = true;
    refresh(&mut w);
    fe_publish(&mut w);
    fe_switch(&mut w, Initialised);
    refresh(&mut w);
    assert!(w.hv.saw("vif 3/0: cannot connect: bind port 5: EINVAL"));
    assert_released(&w);

    // The data path refuses: port closed and mappings undone.
    let mut w = world();
    w.shared.refuse_attach = true;
    refresh(&mut w);
    fe_publish(&mut w);
    fe_switch(&mut w, Initialised);
    refresh(&mut w);
    assert!(w.hv.saw("vif 3/0: cannot connect: attach: refused"));
    assert_released(&w);

    // The device class refuses the frontend's keys before anything is mapped.
    let mut w = world();
    refresh(&mut w);
    fe_publish(&mut w);
    fe(&mut w).write(format!("{FE_DIR}/request-rx-copy").as_bytes(), b"0").unwrap();
    fe_switch(&mut w, Initialised);
    refresh(&mut w);
    assert!(w.hv.saw("vif 3/0: cannot connect: request-rx-copy = \"0\""));
    assert_released(&w);
    assert_eq!(w.hv.issued, 0, "nothing was mapped or bound");
}

#[test]
fn bad_backend_keys_or_frontend_entries_close_the_device_for_good() {
    let mut w = world_with("bad", "3");
    refresh(&mut w);
    assert!(w.hv.saw("vif 3/0: bad params \"bad\"; device closed"));
    assert_eq!(be_state(&mut w), Closed);
    fe_publish(&mut w);
    fe_switch(&mut w, Initialised);
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Closed);
    assert_released(&w);

    for id in ["4", "three", ""] {
        let mut w = world_with("", id);
        refresh(&mut w);
        assert!(w.hv.saw("vif 3/0: frontend entries missing or inconsistent; device closed"), "{id:?}");
        assert_eq!(be_state(&mut w), Closed);
        assert_eq!(
            read_string(&mut fe(&mut w), &format!("{BE_DIR}/feature-rx-copy")),
            Err(ClientError::Store(Errno::Enoent))
        );
    }
}

#[test]
fn a_broken_ring_closes_the_device_and_the_frontend_may_come_back() {
    let mut w = connected_world();
    {
        let mut be = LocalClient::new(&mut w.server, BE);
        w.backend.devices_mut()[0].close(&mut be, &mut w.hv, &mut w.shared, "broken ring");
    }
    assert_eq!(be_state(&mut w), Closed);
    assert_released(&w);
    assert!(w.hv.saw("vif 3/0: disconnected (broken ring); rings unmapped: yes, port closed"));
    // The frontend sees Closed, closes, restarts.
    fe_switch(&mut w, Closed);
    fe_switch(&mut w, Initialising);
    refresh(&mut w);
    fe_switch(&mut w, Initialised);
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Connected);
}

#[test]
fn devices_past_the_limit_are_ignored() {
    let mut w = world();
    let mut d = dom0(&mut w);
    for n in 1..6 {
        d.write(format!("/local/domain/2/backend/vif/3/{n}/frontend").as_bytes(), b"x").unwrap();
    }
    refresh(&mut w);
    assert_eq!(w.backend.devices().len(), 4);
    assert!(w.hv.saw_prefix("vif 3/") && w.hv.lines.iter().any(|l| l.ends_with("too many devices (limit 4); ignored")));
}

#[test]
fn refusals_are_logged_up_to_the_limit() {
    let mut hv = FakeHv::default();
    let mut log = RefusalLog::default();
    for i in 0..MAX_LOGGED_REFUSALS + 10 {
        log.log(&mut hv, "vbd 3/0", format_args!("request {i} refused"));
    }
    assert_eq!(log.logged(), MAX_LOGGED_REFUSALS);
    assert_eq!(hv.lines.len() as u32, MAX_LOGGED_REFUSALS + 1);
    assert_eq!(hv.lines.last().unwrap(), "vbd 3/0: further refusals are only counted");
}

/// The frontend's side, played with the shared helpers: wait for the backend (here the wait
/// function runs the backend domain's loop), publish, connect.
fn frontend_connects(w: &mut World, be_dir: &str) {
    let mut driver = Driver(w);
    let s = wait_for_state(&mut driver, be_dir.as_bytes(), b"fe-test", |s| s == InitWait, Driver::tick).unwrap();
    assert_eq!(frontend_next(Initialising, s, true), Some(Initialised));
    fe_publish(driver.0);
    fe_switch(driver.0, Initialised);
    let s = wait_for_state(&mut driver, be_dir.as_bytes(), b"fe-test", |s| s == Connected, Driver::tick).unwrap();
    assert_eq!(frontend_next(Initialised, s, true), Some(Connected));
    fe_switch(driver.0, Connected);
}

/// The frontend's store connection; each wait lets the backend domain run once.
struct Driver<'w>(&'w mut World);

impl Driver<'_> {
    fn tick(&mut self) -> Result<bool, ClientError> {
        refresh(self.0);
        Ok(true)
    }
}

impl StoreClient for Driver<'_> {
    fn request(&mut self, request: xenstore::Request<'_>, tx_id: u32) -> Result<Vec<u8>, ClientError> {
        fe(self.0).request(request, tx_id)
    }
}

#[test]
fn a_restarted_backend_domain_is_found_and_connected_by_the_frontend() {
    let mut w = world();
    frontend_connects(&mut w, BE_DIR);
    assert_eq!(w.shared.attached, 1);
    // The backend domain is destroyed (its directory goes with it) and a new one, domain 4, is
    // given the device; the toolstack points the frontend at it.
    w.server.release(BE).unwrap();
    let new_be = "/local/domain/4/backend/vif/3/0";
    assert_eq!(peer_state(&mut fe(&mut w), BE_DIR.as_bytes()), Closed, "a vanished backend reads as Closed");
    assert_eq!(frontend_next(Connected, Closed, true), Some(Closed));
    fe_switch(&mut w, Closed);
    assert_eq!(frontend_next(Closed, Closed, true), Some(Initialising));
    fe_switch(&mut w, Initialising);
    w.server.introduce(4).unwrap();
    let mut d = dom0(&mut w);
    d.mkdir(new_be.as_bytes()).unwrap();
    d.set_perms(new_be.as_bytes(), Permissions::new(4, Access::None).with(FE, Access::Read)).unwrap();
    d.write(&state_path(new_be.as_bytes()), Initialising.as_text()).unwrap();
    for (k, v) in [("frontend", FE_DIR), ("frontend-id", "3")] {
        d.write(format!("{new_be}/{k}").as_bytes(), v.as_bytes()).unwrap();
    }
    d.write(format!("{FE_DIR}/backend").as_bytes(), new_be.as_bytes()).unwrap();
    d.write(format!("{FE_DIR}/backend-id").as_bytes(), b"4").unwrap();
    // ... and lets the new backend read the frontend's nodes (the old rings' keys included).
    let perms = Permissions::new(FE, Access::None).with(4, Access::Read);
    d.set_perms(FE_DIR.as_bytes(), perms.clone()).unwrap();
    for key in d.directory(FE_DIR.as_bytes()).unwrap() {
        let key = String::from_utf8(key).unwrap();
        d.set_perms(format!("{FE_DIR}/{key}").as_bytes(), perms.clone()).unwrap();
    }
    // The new backend domain starts from nothing.
    w.backend = Backend::new(4, 4);
    w.hv = FakeHv::default();
    w.shared = Shared::default();
    let mut be = LocalClient::new(&mut w.server, 4);
    w.backend.watch(&mut be).unwrap();
    let mut driver = Driver(&mut w);
    let s = wait_for_state(
        &mut driver,
        new_be.as_bytes(),
        b"fe-test",
        |s| s == InitWait,
        |d: &mut Driver<'_>| {
            let w = &mut *d.0;
            w.backend.refresh(&mut LocalClient::new(&mut w.server, 4), &mut w.hv, &mut w.shared);
            Ok(true)
        },
    )
    .unwrap();
    assert_eq!(s, InitWait);
    fe_publish(&mut w);
    fe_switch(&mut w, Initialised);
    w.backend.refresh(&mut LocalClient::new(&mut w.server, 4), &mut w.hv, &mut w.shared);
    assert_eq!(read_state(&mut fe(&mut w), new_be.as_bytes()), Ok(Connected), "{:?}", w.hv.lines);
    assert_eq!(w.shared.attached, 1);
    assert!(w.hv.saw_prefix("vif 3/0: connected to domain 3: tx ring ref 11, rx ring ref 12, port "));
}
