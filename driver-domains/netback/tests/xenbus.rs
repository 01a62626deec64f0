//! netback's vif device class on the backend skeleton, against the in-process store and a fake
//! hypervisor: the features it publishes, the console lines the QEMU scenarios grep, rx-copy
//! required, a vif on the bridge per connection and its final counters on teardown.

use std::cell::RefCell;

use netback::bridge::Bridge;
use netback::xenbus::{Shared, VifPath};
use xenbus_backend::Backend;
use xenbus_backend::testing::FakeHv;
use xenstore::xenbus::{XenbusState, read_state, state_path, switch_state};
use xenstore::{Access, Permissions, StoreClient};
use xenstored::{Limits, LocalClient, StoreServer};

use XenbusState::*;

const BE: u16 = 1;
const FE: u16 = 5;
const FE_DIR: &str = "/local/domain/5/device/vif/0";
const BE_DIR: &str = "/local/domain/1/backend/vif/5/0";

thread_local! {
    /// What the vif class printed through `Shared::log`.
    static PRINTED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

fn log(line: &str) {
    PRINTED.with(|p| p.borrow_mut().push(line.to_string()));
}

fn printed() -> Vec<String> {
    PRINTED.with(|p| p.borrow().clone())
}

struct World {
    server: StoreServer,
    backend: Backend<VifPath>,
    hv: FakeHv,
    shared: Shared,
}

fn world(params: &str) -> World {
    let mut server = StoreServer::new(Limits::default());
    server.introduce(BE).unwrap();
    server.introduce(FE).unwrap();
    let mut d = LocalClient::dom0(&mut server);
    for (dir, owner, peer) in [(FE_DIR, FE, BE), (BE_DIR, BE, FE)] {
        d.mkdir(dir.as_bytes()).unwrap();
        d.set_perms(dir.as_bytes(), Permissions::new(owner, Access::None).with(peer, Access::Read)).unwrap();
        d.write(&state_path(dir.as_bytes()), Initialising.as_text()).unwrap();
    }
    for (k, v) in [("frontend", FE_DIR), ("frontend-id", "5"), ("params", params), ("mac", "00:16:3e:00:05:00")] {
        d.write(format!("{BE_DIR}/{k}").as_bytes(), v.as_bytes()).unwrap();
    }
    World { server, backend: Backend::new(BE, 32), hv: FakeHv::default(), shared: Shared::new(Bridge::new(false), log) }
}

fn refresh(w: &mut World) {
    w.backend.refresh(&mut LocalClient::new(&mut w.server, BE), &mut w.hv, &mut w.shared);
}

fn be_state(w: &mut World) -> XenbusState {
    read_state(&mut LocalClient::new(&mut w.server, FE), BE_DIR.as_bytes()).unwrap()
}

/// The frontend publishes its rings (refs 10, 11), port 4 and `request-rx-copy`, then goes
/// Initialised.
fn fe_publish(w: &mut World, rx_copy: &str) {
    let mut f = LocalClient::new(&mut w.server, FE);
    for (k, v) in [("tx-ring-ref", "10"), ("rx-ring-ref", "11"), ("event-channel", "4"), ("request-rx-copy", rx_copy)] {
        f.write(format!("{FE_DIR}/{k}").as_bytes(), v.as_bytes()).unwrap();
    }
    switch_state(&mut f, FE_DIR.as_bytes(), Initialised).unwrap();
}

#[test]
fn a_vif_is_put_on_the_bridge_while_connected_and_its_counters_printed_when_it_leaves() {
    let mut w = world("pcap=1");
    refresh(&mut w);
    assert!(w.hv.saw("vif 5/0: mac 00:16:3e:00:05:00, pcap on; InitWait"), "{:?}", w.hv.lines);
    let mut f = LocalClient::new(&mut w.server, FE);
    for (k, v) in [
        ("feature-rx-copy", "1"),
        ("feature-rx-flip", "0"),
        ("feature-sg", "1"),
        ("feature-gso-tcpv4", "1"),
        ("feature-gso-tcpv6", "1"),
        ("feature-split-event-channels", "0"),
    ] {
        assert_eq!(f.read(format!("{BE_DIR}/{k}").as_bytes()).unwrap(), v.as_bytes(), "{k}");
    }
    fe_publish(&mut w, "1");
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Connected);
    let port = w.backend.devices()[0].port().unwrap();
    assert!(w.hv.saw(&format!("vif 5/0: connected to domain 5: tx ring ref 10, rx ring ref 11, port {port}")));
    let bridge_port = w.backend.devices()[0].path().unwrap().bridge_port.unwrap();
    assert!(w.shared.net.vif(bridge_port).is_some());
    // A captured vif starts the pcap stream with its global header.
    assert!(printed().iter().any(|l| l.starts_with("pcap d4c3b2a1")), "{:?}", printed());
    // The frontend goes away: the vif leaves the bridge, then its final counters are printed.
    switch_state(&mut LocalClient::new(&mut w.server, FE), FE_DIR.as_bytes(), Closed).unwrap();
    refresh(&mut w);
    assert_eq!(be_state(&mut w), Closed);
    assert!(w.hv.saw("vif 5/0: disconnected (frontend Closed); rings unmapped: yes, port closed"));
    assert!(w.hv.holds_nothing());
    assert!(w.shared.net.vif(bridge_port).is_none());
    assert!(printed().iter().any(|l| l == "vif 5/0: tx 0 pkts 0 B, tx errors 0, rx 0 pkts 0 B, rx drops 0 (final)"));
}

#[test]
fn a_frontend_without_rx_copy_is_refused_before_anything_is_mapped() {
    let mut w = world("");
    refresh(&mut w);
    assert!(w.hv.saw("vif 5/0: mac 00:16:3e:00:05:00, pcap off; InitWait"));
    fe_publish(&mut w, "0");
    refresh(&mut w);
    assert!(w.hv.saw("vif 5/0: cannot connect: request-rx-copy = \"0\" (only rx-copy is supported)"));
    assert_eq!(be_state(&mut w), Closed);
    assert_eq!(w.hv.issued, 0);
    assert_eq!(w.shared.net.ports().count(), 0);
}
