//! blkback's vbd device class on the backend skeleton, against the in-process store and a fake
//! hypervisor: the keys it publishes, the console lines the QEMU scenarios grep, params and
//! protocol refused, the ring attached and let go of.

use blkback::xenbus::{Backing, Vdisk};
use xenbus_backend::Backend;
use xenbus_backend::testing::FakeHv;
use xenstore::xenbus::{XenbusState, read_state, state_path, switch_state};
use xenstore::{Access, Permissions, StoreClient};
use xenstored::{Limits, LocalClient, StoreServer};

use XenbusState::*;

const BE: u16 = 1;
const FE: u16 = 5;
/// A 32 MiB backing device.
const DEVICE_SECTORS: u64 = 32 * 2048;

struct World {
    server: StoreServer,
    backend: Backend<Vdisk>,
    hv: FakeHv,
    sectors: Backing,
}

fn fe_dir(n: u32) -> String {
    format!("/local/domain/5/device/vbd/{n}")
}

fn be_dir(n: u32) -> String {
    format!("/local/domain/1/backend/vbd/5/{n}")
}

/// The toolstack's part for vbd `n` with `params`.
fn add_vbd(server: &mut StoreServer, n: u32, params: &str) {
    let mut d = LocalClient::dom0(server);
    for (dir, owner, peer) in [(fe_dir(n), FE, BE), (be_dir(n), BE, FE)] {
        d.mkdir(dir.as_bytes()).unwrap();
        d.set_perms(dir.as_bytes(), Permissions::new(owner, Access::None).with(peer, Access::Read)).unwrap();
        d.write(&state_path(dir.as_bytes()), Initialising.as_text()).unwrap();
    }
    for (k, v) in [("frontend", fe_dir(n)), ("frontend-id", "5".into()), ("params", params.into())] {
        d.write(format!("{}/{k}", be_dir(n)).as_bytes(), v.as_bytes()).unwrap();
    }
}

fn world() -> World {
    let mut server = StoreServer::new(Limits::default());
    server.introduce(BE).unwrap();
    server.introduce(FE).unwrap();
    World {
        server,
        backend: Backend::new(BE, 16),
        hv: FakeHv::default(),
        sectors: Backing { sectors: DEVICE_SECTORS, persistent: false },
    }
}

fn refresh(w: &mut World) {
    w.backend.refresh(&mut LocalClient::new(&mut w.server, BE), &mut w.hv, &mut w.sectors);
}

fn be_key(w: &mut World, n: u32, key: &str) -> String {
    let v = LocalClient::new(&mut w.server, FE).read(format!("{}/{key}", be_dir(n)).as_bytes()).unwrap();
    String::from_utf8(v).unwrap()
}

fn be_state(w: &mut World, n: u32) -> XenbusState {
    read_state(&mut LocalClient::new(&mut w.server, FE), be_dir(n).as_bytes()).unwrap()
}

/// The frontend of vbd `n` publishes its ring (ref 8, port 3) with `protocol` and goes
/// Initialised.
fn fe_publish(w: &mut World, n: u32, protocol: &str) {
    let mut f = LocalClient::new(&mut w.server, FE);
    for (k, v) in [("ring-ref", "8"), ("event-channel", "3"), ("protocol", protocol)] {
        f.write(format!("{}/{k}", fe_dir(n)).as_bytes(), v.as_bytes()).unwrap();
    }
    switch_state(&mut f, fe_dir(n).as_bytes(), Initialised).unwrap();
}

#[test]
fn a_vdisk_publishes_its_geometry_and_connects_its_ring() {
    let mut w = world();
    add_vbd(&mut w.server, 0, "offset_mib=0 size_mib=8 mode=w");
    refresh(&mut w);
    assert!(w.hv.saw("vbd 5/0: 8 MiB at 0 MiB, read-write; InitWait"), "{:?}", w.hv.lines);
    assert_eq!(be_state(&mut w, 0), InitWait);
    for (k, v) in [
        ("sectors", "16384"),
        ("sector-size", "512"),
        ("info", "0"),
        ("feature-flush-cache", "1"),
        ("feature-barrier", "1"),
        ("feature-max-indirect-segments", "128"),
        ("feature-persistent", "0"),
    ] {
        assert_eq!(be_key(&mut w, 0, k), v, "{k}");
    }
    fe_publish(&mut w, 0, "x86_64-abi");
    refresh(&mut w);
    assert_eq!(be_state(&mut w, 0), Connected);
    // This frontend did not write feature-persistent: no page is mapped persistently.
    assert!(!w.backend.devices()[0].path().unwrap().pgrants.is_enabled());
    let port = w.backend.devices()[0].port().unwrap();
    assert!(w.hv.saw(&format!("vbd 5/0: connected to domain 5: ring ref 8, port {port}")));
    assert_eq!(w.hv.mapped.values().copied().collect::<Vec<_>>(), [(5, 8)]);
    assert!(w.backend.devices()[0].path().unwrap().ring.is_some());
    // The frontend closes: the ring is let go of before the backend answers Closing.
    switch_state(&mut LocalClient::new(&mut w.server, FE), fe_dir(0).as_bytes(), Closing).unwrap();
    refresh(&mut w);
    assert_eq!(be_state(&mut w, 0), Closing);
    assert!(w.hv.saw("vbd 5/0: disconnected (frontend Closing); ring unmapped: yes, port closed"));
    assert!(w.hv.holds_nothing());
    assert!(w.backend.devices()[0].path().unwrap().ring.is_none());
}

#[test]
fn a_read_only_vdisk_offers_no_flush() {
    let mut w = world();
    add_vbd(&mut w.server, 1, "offset_mib=8 size_mib=4 mode=r");
    refresh(&mut w);
    assert!(w.hv.saw("vbd 5/1: 4 MiB at 8 MiB, read-only; InitWait"));
    for (k, v) in [
        ("sectors", "8192"),
        ("info", "4"),
        ("feature-flush-cache", "0"),
        ("feature-barrier", "0"),
        // Reads use indirect requests too.
        ("feature-max-indirect-segments", "128"),
    ] {
        assert_eq!(be_key(&mut w, 1, k), v, "{k}");
    }
}

#[test]
fn bad_params_close_that_device_only() {
    let mut w = world();
    add_vbd(&mut w.server, 0, "offset_mib=0 size_mib=8 mode=w");
    add_vbd(&mut w.server, 2, "offset_mib=30 size_mib=8 mode=w");
    refresh(&mut w);
    assert!(w.hv.saw(
        "vbd 5/2: bad params \"offset_mib=30 size_mib=8 mode=w\": region ends at 38 MiB, past the 32 MiB backing device; device closed"
    ));
    assert_eq!((be_state(&mut w, 2), be_state(&mut w, 0)), (Closed, InitWait));
    fe_publish(&mut w, 2, "x86_64-abi");
    refresh(&mut w);
    assert_eq!(be_state(&mut w, 2), Closed);
    assert!(w.hv.holds_nothing());
}

#[test]
fn another_protocol_is_refused_before_anything_is_mapped() {
    let mut w = world();
    add_vbd(&mut w.server, 0, "offset_mib=0 size_mib=8 mode=w");
    refresh(&mut w);
    fe_publish(&mut w, 0, "x86_32-abi");
    refresh(&mut w);
    assert!(w.hv.saw("vbd 5/0: cannot connect: unsupported protocol \"x86_32-abi\""));
    assert_eq!(be_state(&mut w, 0), Closed);
    assert_eq!(w.hv.issued, 0);
}

/// A frontend that writes `feature-persistent = 1` gets persistent grants; anything else does not.
#[test]
fn persistent_grants_only_when_offered_and_the_frontend_asks() {
    // Not offered (the default): a frontend that asks gets none.
    let mut w = world();
    add_vbd(&mut w.server, 0, "offset_mib=0 size_mib=8 mode=w");
    let mut f = LocalClient::new(&mut w.server, FE);
    f.write(format!("{}/feature-persistent", fe_dir(0)).as_bytes(), b"1").unwrap();
    fe_publish(&mut w, 0, "x86_64-abi");
    refresh(&mut w);
    assert_eq!(be_key(&mut w, 0, "feature-persistent"), "0");
    assert_eq!(be_state(&mut w, 0), Connected);
    assert!(!w.backend.devices()[0].path().unwrap().pgrants.is_enabled());
    // Offered (`persistent=1`): only the frontend that wrote exactly "1" gets them.
    let mut w = world();
    w.sectors.persistent = true;
    for (n, value) in [(0, Some("1")), (1, Some("yes")), (2, None)] {
        add_vbd(&mut w.server, n, "offset_mib=0 size_mib=8 mode=w");
        if let Some(v) = value {
            let mut f = LocalClient::new(&mut w.server, FE);
            f.write(format!("{}/feature-persistent", fe_dir(n)).as_bytes(), v.as_bytes()).unwrap();
        }
        fe_publish(&mut w, n, "x86_64-abi");
    }
    refresh(&mut w);
    let on: Vec<bool> = w.backend.devices().iter().map(|d| d.path().unwrap().pgrants.is_enabled()).collect();
    assert_eq!(on.len(), 3);
    assert_eq!(on.iter().filter(|&&b| b).count(), 1);
    for n in 0..3 {
        assert_eq!(be_state(&mut w, n), Connected);
    }
}
