//! How long devices take to connect, measured on Dom0's clock from the store it serves:
//! from a domain's creation to all its split devices Connected (both ends), and from a driver
//! domain's crash to every frontend it served Connected again to its new instance. Dom0 wakes
//! on every store message, so a state change is seen as soon as it is written.
//!
//! Console lines (stable; tests and `cargo xtask bench xl` read them):
//! * `<name>: <n> devices connected <ms> ms after create`
//! * `<name>: <n> frontends reconnected <ms> ms after the crash`
//! * `<name>: devices not connected <s> s after create|the crash: <kind>/<i> <fe>/<be>, ...`
use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use hv_control::DeviceRow;
use hv_rt::{println, time};

use crate::store_service::StoreService;
use crate::{Tracked, toolstack};

/// Waiting stops (with a message) after this long.
const GIVE_UP_NS: u64 = 30_000_000_000;

/// What a tracked domain is waiting for.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Wait {
    /// Its own devices (as frontend) to connect after its creation.
    Create,
    /// The frontends it serves to reconnect after it crashed and was started again.
    Restart,
}

/// The XenbusState number in `<dir>/state` (0 when missing or not a number).
fn state(store: &StoreService, dir: &str) -> u8 {
    let path = format!("{dir}/state");
    let node = store.server.store().get(path.as_bytes());
    node.and_then(|n| core::str::from_utf8(&n.value).ok()?.trim().parse().ok()).unwrap_or(0)
}

/// The devices of `tracked[i]` as frontend, with both ends' states.
pub fn devices_of(tracked: &[Tracked], i: usize, store: &StoreService) -> Vec<DeviceRow> {
    let t = &tracked[i];
    let Some(fe) = t.domid else { return Vec::new() };
    let mut rows = Vec::new();
    for (j, dev) in t.cfg.devices.iter().enumerate() {
        let index = toolstack::index_in_kind(&t.cfg.devices, j, |d| &d.kind);
        let be = tracked.iter().find(|b| b.cfg.name == dev.backend && b.is_live()).and_then(|b| b.domid);
        let fe_state = state(store, &toolstack::frontend_dir(fe, &dev.kind, index));
        let be_state = be.map_or(0, |be| state(store, &toolstack::backend_dir(be, &dev.kind, fe, index)));
        rows.push(DeviceRow {
            kind: dev.kind.clone(),
            index,
            backend: dev.backend.clone(),
            backend_id: be.map(u32::from),
            frontend_state: fe_state,
            backend_state: be_state,
        });
    }
    rows
}

/// The devices `tracked[i]` serves as backend, one row per frontend device.
fn served_by(tracked: &[Tracked], i: usize, store: &StoreService) -> Vec<(String, DeviceRow)> {
    let name = &tracked[i].cfg.name;
    let mut rows = Vec::new();
    for (k, t) in tracked.iter().enumerate() {
        if k == i || !t.is_live() {
            continue;
        }
        for row in devices_of(tracked, k, store).into_iter().filter(|r| r.backend == *name) {
            rows.push((t.cfg.name.clone(), row));
        }
    }
    rows
}

fn ms(ns: u64) -> String {
    format!("{}.{}", ns / 1_000_000, ns / 100_000 % 10)
}

/// Checks every domain that is waiting; reports and stops waiting once done (or given up).
pub fn check(tracked: &mut [Tracked], store: &StoreService) {
    let now = time::now_ns();
    for i in 0..tracked.len() {
        let Some(wait) = tracked[i].waiting else { continue };
        if !tracked[i].is_live() {
            tracked[i].waiting = None;
            continue;
        }
        let rows: Vec<(String, DeviceRow)> = match wait {
            Wait::Create => devices_of(tracked, i, store).into_iter().map(|r| (String::new(), r)).collect(),
            Wait::Restart => served_by(tracked, i, store),
        };
        let elapsed = now.saturating_sub(tracked[i].since_ns);
        let name = &tracked[i].cfg.name;
        if rows.iter().all(|(_, r)| r.connected()) {
            match wait {
                Wait::Create => {
                    println!("{name}: {} devices connected {} ms after create", rows.len(), ms(elapsed));
                    tracked[i].connected_after_ns = Some(elapsed);
                }
                Wait::Restart => {
                    println!("{name}: {} frontends reconnected {} ms after the crash", rows.len(), ms(elapsed))
                }
            }
            tracked[i].waiting = None;
        } else if elapsed > GIVE_UP_NS {
            let pending: Vec<String> = rows
                .iter()
                .filter(|(_, r)| !r.connected())
                .map(|(fe, r)| {
                    format!(
                        "{fe}{}{}/{} {}/{}",
                        if fe.is_empty() { "" } else { " " },
                        r.kind,
                        r.index,
                        r.frontend_state,
                        r.backend_state
                    )
                })
                .collect();
            let after = if wait == Wait::Create { "create" } else { "the crash" };
            println!(
                "{name}: devices not connected {} s after {after}: {}",
                elapsed / 1_000_000_000,
                pending.join(", ")
            );
            tracked[i].waiting = None;
        }
    }
}
