//! The frontend's helpers (`xenstore::xenbus::frontend`) and `xenbus::read_u32` against a real
//! server in-process: waiting for the peer's state while the peer moves, times out or vanishes,
//! and garbage in the peer's nodes.

use xenstore::xenbus::frontend::{WaitError, peer_state, wait_for_state};
use xenstore::xenbus::{ReadError, SHOWN_VALUE, XenbusState, read_domid, read_u32, state_path, switch_state};
use xenstore::{Access, ClientError, Errno, Permissions, Request, StoreClient};
use xenstored::{Limits, LocalClient, StoreServer};

use XenbusState::*;

const BE: u16 = 2;
const FE: u16 = 3;
const BE_DIR: &str = "/local/domain/2/backend/vbd/3/0";

fn setup() -> StoreServer {
    let mut server = StoreServer::new(Limits::default());
    server.introduce(BE).unwrap();
    server.introduce(FE).unwrap();
    let mut dom0 = LocalClient::dom0(&mut server);
    dom0.mkdir(BE_DIR.as_bytes()).unwrap();
    dom0.set_perms(BE_DIR.as_bytes(), Permissions::new(BE, Access::None).with(FE, Access::Read)).unwrap();
    dom0.write(&state_path(BE_DIR.as_bytes()), Initialising.as_text()).unwrap();
    server
}

/// The frontend's store connection; the peer (the backend) moves along `script`, one state per
/// wait.
struct Frontend {
    server: StoreServer,
    script: Vec<XenbusState>,
    waits: usize,
}

impl StoreClient for Frontend {
    fn request(&mut self, request: Request<'_>, tx_id: u32) -> Result<Vec<u8>, ClientError> {
        LocalClient::new(&mut self.server, FE).request(request, tx_id)
    }
}

impl Frontend {
    /// One wait: the backend takes its next step; time is up when the script is.
    fn wait(&mut self) -> Result<bool, ClientError> {
        self.waits += 1;
        if self.script.is_empty() {
            return Ok(false);
        }
        let next = self.script.remove(0);
        switch_state(&mut LocalClient::new(&mut self.server, BE), BE_DIR.as_bytes(), next).unwrap();
        Ok(true)
    }
}

#[test]
fn waits_until_the_backend_gets_there_even_past_skipped_states() {
    let mut f = Frontend { server: setup(), script: vec![InitWait, Connected], waits: 0 };
    let s = wait_for_state(&mut f, BE_DIR.as_bytes(), b"t", |s| s == Connected, Frontend::wait).unwrap();
    assert_eq!((s, f.waits), (Connected, 2));
    // Already there: no wait at all, and a second watch with the same token is fine.
    let s = wait_for_state(&mut f, BE_DIR.as_bytes(), b"t", |s| s == Connected, Frontend::wait).unwrap();
    assert_eq!((s, f.waits), (Connected, 2));
    // A condition passed over (InitWait, never seen again) is not waited for forever.
    let r = wait_for_state(&mut f, BE_DIR.as_bytes(), b"t", |s| s == InitWait, Frontend::wait);
    assert_eq!(r, Err(WaitError::TimedOut(Connected)));
}

#[test]
fn a_vanished_or_garbled_backend_reads_as_closed() {
    let mut server = setup();
    LocalClient::new(&mut server, BE).write(&state_path(BE_DIR.as_bytes()), b"\xff\x00junk").unwrap();
    assert_eq!(peer_state(&mut LocalClient::new(&mut server, FE), BE_DIR.as_bytes()), Closed);
    LocalClient::new(&mut server, BE).write(&state_path(BE_DIR.as_bytes()), b"99").unwrap();
    assert_eq!(peer_state(&mut LocalClient::new(&mut server, FE), BE_DIR.as_bytes()), Closed);
    server.release(BE).unwrap();
    let mut f = Frontend { server, script: vec![], waits: 0 };
    assert_eq!(peer_state(&mut f, BE_DIR.as_bytes()), Closed);
    // A frontend waiting for the backend to close or vanish returns at once.
    let s = wait_for_state(&mut f, BE_DIR.as_bytes(), b"t", |s| matches!(s, Closing | Closed), Frontend::wait);
    assert_eq!((s, f.waits), (Ok(Closed), 0));
}

#[test]
fn a_watch_the_store_refuses_is_reported_as_such() {
    let mut f = Frontend { server: setup(), script: vec![], waits: 0 };
    let r = wait_for_state(&mut f, b"not a path", b"t", |_| true, Frontend::wait);
    assert_eq!(r, Err(WaitError::Watch(ClientError::Store(Errno::Einval))));
    // The store failing while waiting ends the wait with that error.
    let r = wait_for_state(&mut f, BE_DIR.as_bytes(), b"t", |s| s == Connected, |_| Err(ClientError::NoReply));
    assert_eq!(r, Err(WaitError::Store(ClientError::NoReply)));
}

#[test]
fn read_u32_names_a_value_that_is_not_a_number() {
    let mut server = setup();
    let mut be = LocalClient::new(&mut server, BE);
    let path = format!("{BE_DIR}/sectors");
    for (value, want) in [(&b"16384"[..], Some(16384)), (b" 7\n", Some(7)), (b"4294967295", Some(u32::MAX))] {
        be.write(path.as_bytes(), value).unwrap();
        assert_eq!(read_u32(&mut be, &path).ok(), want, "{value:?}");
    }
    for value in [&b"-1"[..], b"4294967296", b"0x10", b"", b"12abc", b"\xff\xfe"] {
        be.write(path.as_bytes(), value).unwrap();
        match read_u32(&mut be, &path) {
            Err(ReadError::NotANumber { path: p, .. }) => assert_eq!(p, path),
            other => panic!("{value:?}: {other:?}"),
        }
    }
    be.write(path.as_bytes(), b"banana").unwrap();
    let e = read_u32(&mut be, &path).unwrap_err();
    assert_eq!(e.to_string(), format!("{path} is not a number: \"banana\""));
    // Not mistaken for a store failure, and a huge value is not echoed whole.
    be.write(path.as_bytes(), "x".repeat(2000).as_bytes()).unwrap();
    match read_u32(&mut be, &path) {
        Err(ReadError::NotANumber { value, .. }) => assert_eq!(value.chars().count(), SHOWN_VALUE),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        read_u32(&mut be, &format!("{BE_DIR}/missing")),
        Err(ReadError::Store(ClientError::Store(Errno::Enoent)))
    );
}

/// A peer's `backend-id`/`frontend-id` is read as a domain id: a number at or above
/// `DOMID_FIRST_RESERVED` (or beyond 16 bits, which an unchecked `as u16` would have wrapped
/// onto a real domain) names no domain and is refused as such.
#[test]
fn read_domid_refuses_numbers_that_name_no_domain() {
    let mut server = setup();
    let mut be = LocalClient::new(&mut server, BE);
    let path = format!("{BE_DIR}/frontend-id");
    for (value, want) in [(&b"3"[..], 3u16), (b"0", 0), (b"32751", 0x7fef)] {
        be.write(path.as_bytes(), value).unwrap();
        assert_eq!(read_domid(&mut be, &path), Ok(want), "{value:?}");
    }
    for (value, number) in
        [(&b"32752"[..], 0x7ff0u32), (b"65535", 0xffff), (b"65539", 65539), (b"4294967295", u32::MAX)]
    {
        be.write(path.as_bytes(), value).unwrap();
        assert_eq!(
            read_domid(&mut be, &path),
            Err(ReadError::NotADomain { path: path.clone(), value: number }),
            "{value:?}"
        );
    }
    be.write(path.as_bytes(), b"dom3").unwrap();
    assert!(matches!(read_domid(&mut be, &path), Err(ReadError::NotANumber { .. })));
}
