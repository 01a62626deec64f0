//! The XenbusState helpers (`xenstore::xenbus`) against a real server in-process: the
//! handshake settles, removed devices stay removed, garbage is not a state.

use xenstore::xenbus::*;
use xenstore::{Access, ClientError, Errno, Permissions, StoreClient};
use xenstored::{Limits, LocalClient, StoreServer};

const BE: u16 = 2;
const FE: u16 = 3;
const FE_DIR: &[u8] = b"/local/domain/3/device/vif/0";
const BE_DIR: &[u8] = b"/local/domain/2/backend/vif/3/0";

/// Dom0's toolstack part: the two directories, each owned by its end and readable by the
/// other (as libxl sets them up).
fn setup() -> StoreServer {
    let mut server = StoreServer::new(Limits::default());
    server.introduce(BE).unwrap();
    server.introduce(FE).unwrap();
    let mut dom0 = LocalClient::dom0(&mut server);
    for (dir, owner, peer) in [(FE_DIR, FE, BE), (BE_DIR, BE, FE)] {
        dom0.mkdir(dir).unwrap();
        dom0.set_perms(dir, Permissions::new(owner, Access::None).with(peer, Access::Read)).unwrap();
        dom0.write(&state_path(dir), XenbusState::Initialising.as_text()).unwrap();
    }
    server
}

/// Let both ends react until neither moves; returns (frontend, backend).
fn settle(server: &mut StoreServer, want_connected: bool) -> (XenbusState, XenbusState) {
    for _ in 0..20 {
        let fe_own = read_state(&mut LocalClient::new(server, FE), FE_DIR).unwrap();
        let be_seen = read_state(&mut LocalClient::new(server, FE), BE_DIR).unwrap();
        let fe_moved = match frontend_next(fe_own, be_seen, want_connected) {
            Some(next) => switch_state(&mut LocalClient::new(server, FE), FE_DIR, next).map(|_| true).unwrap(),
            None => false,
        };
        let be_own = read_state(&mut LocalClient::new(server, BE), BE_DIR).unwrap();
        let fe_seen = read_state(&mut LocalClient::new(server, BE), FE_DIR).unwrap();
        let be_moved = match backend_next(be_own, fe_seen) {
            Some(next) => switch_state(&mut LocalClient::new(server, BE), BE_DIR, next).map(|_| true).unwrap(),
            None => false,
        };
        if !fe_moved && !be_moved {
            return (fe_own, be_own);
        }
    }
    panic!("handshake did not settle");
}

#[test]
fn connects_closes_and_reconnects() {
    let mut server = setup();
    assert_eq!(settle(&mut server, true), (XenbusState::Connected, XenbusState::Connected));
    // The frontend unplugs.
    switch_state(&mut LocalClient::new(&mut server, FE), FE_DIR, XenbusState::Closing).unwrap();
    switch_state(&mut LocalClient::new(&mut server, FE), FE_DIR, XenbusState::Closed).unwrap();
    assert_eq!(settle(&mut server, false), (XenbusState::Closed, XenbusState::Closed));
    // And comes back.
    assert_eq!(settle(&mut server, true), (XenbusState::Connected, XenbusState::Connected));
}

#[test]
fn an_end_cannot_write_the_other_ends_state() {
    let mut server = setup();
    let mut fe = LocalClient::new(&mut server, FE);
    assert_eq!(
        switch_state(&mut fe, BE_DIR, XenbusState::Closed),
        Err(XenbusError::Store(ClientError::Store(Errno::Eacces)))
    );
    assert_eq!(read_state(&mut fe, BE_DIR), Ok(XenbusState::Initialising));
}

#[test]
fn a_removed_device_is_not_brought_back_by_a_state_switch() {
    let mut server = setup();
    assert_eq!(settle(&mut server, true), (XenbusState::Connected, XenbusState::Connected));
    // The toolstack destroys the frontend and removes both directories.
    LocalClient::dom0(&mut server).rm(BE_DIR).unwrap();
    let mut be = LocalClient::new(&mut server, BE);
    // The backend, seeing its frontend gone, tries to close: refused, and nothing reappears.
    assert_eq!(switch_state(&mut be, BE_DIR, XenbusState::Closed), Err(XenbusError::Gone));
    assert_eq!(be.read(BE_DIR), Err(ClientError::Store(Errno::Enoent)));
}

#[test]
fn illegal_moves_are_refused_and_garbage_is_not_a_state() {
    let mut server = setup();
    let mut fe = LocalClient::new(&mut server, FE);
    assert_eq!(
        switch_state(&mut fe, FE_DIR, XenbusState::Reconfigured),
        Err(XenbusError::IllegalTransition { from: XenbusState::Initialising, to: XenbusState::Reconfigured })
    );
    fe.write(&state_path(FE_DIR), b"42").unwrap();
    assert_eq!(read_state(&mut fe, FE_DIR), Err(XenbusError::NotAState));
    assert_eq!(read_state(&mut fe, b"/local/domain/3/device/vif/9"), Ok(XenbusState::Unknown));
    assert!(!transition_allowed(XenbusState::Closed, XenbusState::Connected));
    assert!(transition_allowed(XenbusState::Closed, XenbusState::Initialising));
    assert!(transition_allowed(XenbusState::Connected, XenbusState::Connected));
}

#[test]
fn reactions_tolerate_skipped_states() {
    use XenbusState::*;
    // The backend saw the frontend jump straight to Connected.
    assert_eq!(backend_next(InitWait, Connected), Some(Connected));
    // A backend that vanished closes the frontend.
    assert_eq!(frontend_next(Connected, Unknown, true), Some(Closed));
    assert_eq!(frontend_next(Connected, Connected, true), None);
    assert_eq!(backend_next(Connected, Connected), None);
    assert_eq!(frontend_next(Closed, Closed, false), None);
}

/// `switch_state_after` sends its requests with the transaction's start and ends the
/// transaction whatever the switch does: no transaction is left open (a domain may hold 10),
/// and the keys land even when the switch is refused.
#[test]
fn a_switch_with_keys_ends_its_transaction_every_time() {
    use xenstore::Request;
    let mut server = setup();
    let mut fe = LocalClient::new(&mut server, FE);
    let key = b"/local/domain/3/device/vif/0/ring-ref";
    for i in 0..30u32 {
        let value = format!("{i}");
        let writes = [Request::Write { path: key, value: value.as_bytes() }];
        // Alternately a real move, the same state again (no write) and a disallowed one.
        let to = [XenbusState::Initialised, XenbusState::Initialised, XenbusState::Unknown][i as usize % 3];
        let (written, switched) = switch_state_after(&mut fe, &writes, FE_DIR, to);
        assert_eq!(written, [Ok(b"OK\0".to_vec())]);
        match i % 3 {
            2 => assert!(matches!(switched, Err(XenbusError::IllegalTransition { .. })), "{switched:?}"),
            _ => assert!(switched.is_ok(), "{switched:?}"),
        }
        assert_eq!(fe.read(key).unwrap(), value.as_bytes());
    }
    assert_eq!(read_state(&mut fe, FE_DIR), Ok(XenbusState::Initialised));
    // Still room for transactions: none leaked.
    let open: Vec<u32> = (0..10).map(|_| fe.transaction_start().unwrap()).collect();
    for tx in open {
        fe.transaction_end(tx, false).unwrap();
    }
    // A removed device: the switch is refused with Gone and writes nothing back.
    LocalClient::dom0(&mut server).rm(FE_DIR).unwrap();
    let mut fe = LocalClient::new(&mut server, FE);
    let (_, switched) = switch_state_after(&mut fe, &[], FE_DIR, XenbusState::Connected);
    assert_eq!(switched, Err(XenbusError::Gone));
    assert_eq!(fe.read(&state_path(FE_DIR)), Err(ClientError::Store(Errno::Enoent)));
}
