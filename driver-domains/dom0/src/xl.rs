//! The toolstack's `xl` verbs, served over the control channel (COM2 → the host's
//! `cargo xtask xl`): list, info, create, destroy, pause, unpause, console. Requests and
//! responses are `hv-control` envelopes; every request gets exactly one response, errors name
//! the problem (unknown domain, no memory left, backend missing, bad config) and a failed
//! `create` leaves nothing behind.
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;
use hv_abi::DomId;

use hv_abi::{Error, state};
use hv_bundle::{DeviceConfig, DomainConfig, DomainKind, DomainType, Expect, OnCrash};
use hv_control::{DecodeError, Deframer, DomRef, DomainRow, DomainSpec, Request, Response, State, Totals};
use hv_rt::{domctl, println};

use crate::store_service::StoreService;
use crate::{Ending, Tracked, toolstack};

/// Bytes waiting to go out are capped; a host that stops reading loses responses, not Dom0.
const MAX_OUT: usize = 256 * 1024;

pub struct Control {
    deframer: Deframer,
    out: Vec<u8>,
    /// The last poll stopped at its read budget: bytes may be waiting without a new event.
    unread: bool,
    /// The virq port that says bytes arrived (None: the channel is absent).
    pub port: Option<u32>,
}

impl Control {
    /// Binds the control virq if the machine has a control channel.
    pub fn new() -> Self {
        let present = hv_rt::control::status().is_ok_and(|s| s.present);
        let port = if present { hv_rt::evtchn::bind_virq(hv_abi::virq::CONTROL).ok() } else { None };
        if port.is_some() {
            println!("control channel ready (cargo xtask xl)");
        }
        Self { deframer: Deframer::new(), out: Vec::new(), unread: false, port }
    }

    /// Reads what arrived, serves complete requests, writes responses. Returns whether output
    /// is still waiting.
    pub fn poll(&mut self, tracked: &mut Vec<Tracked>, store: &mut StoreService) -> bool {
        if self.port.is_none() {
            return false;
        }
        let mut buf = [0u8; 512];
        // Bounded: at most 64 KiB per call; the rest waits for the next round.
        self.unread = true;
        for _ in 0..128 {
            let n = match hv_rt::control::read(&mut buf) {
                Ok(n) if n > 0 => n,
                _ => {
                    self.unread = false;
                    break;
                }
            };
            let mut frames: Vec<Vec<u8>> = Vec::new();
            self.deframer.push(&buf[..n], |f| frames.push(f.to_vec()));
            for f in frames {
                let (id, response) = match hv_control::decode::<Request>(&f) {
                    Ok(env) => (env.id, serve(env.body, tracked, store)),
                    Err(DecodeError::Version { theirs, id }) => (
                        id,
                        Response::Error(format!(
                            "protocol version {theirs} is not spoken here (Dom0 speaks {}); rebuild xtask and the image from the same tree",
                            hv_control::VERSION
                        )),
                    ),
                    Err(DecodeError::Malformed) => (0, Response::Error("malformed request frame".to_string())),
                };
                let bytes = hv_control::encode(id, &response);
                if self.out.len() + bytes.len() <= MAX_OUT {
                    self.out.extend_from_slice(&bytes);
                }
            }
        }
        while !self.out.is_empty() {
            match hv_rt::control::write(&self.out) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.out.drain(..n.min(self.out.len()));
                }
            }
        }
        self.has_work()
    }

    /// Output waits to be written, or input to be read (the last poll hit its budget).
    pub fn has_work(&self) -> bool {
        self.port.is_some() && (self.unread || !self.out.is_empty())
    }
}

fn name_of(e: &hv_abi::DomainListEntry) -> String {
    let end = e.name.iter().position(|b| *b == 0).unwrap_or(e.name.len());
    String::from_utf8_lossy(&e.name[..end]).into_owned()
}

/// The domain `r` names, as (id, name), among live ones.
fn resolve(r: &DomRef) -> Result<(DomId, String), String> {
    let list = domctl::list().map_err(|e| format!("cannot list domains: {}", e.name()))?;
    let found = list.iter().filter(|e| e.state != state::DEAD).find(|e| match r {
        DomRef::Id(id) => e.domid == *id && e.id() != hv_abi::DOMID_SELF_ID,
        DomRef::Name(n) => name_of(e) == *n,
    });
    match found {
        Some(e) => Ok((e.id(), name_of(e))),
        None => Err(match r {
            DomRef::Id(id) => format!("unknown domain {id} (see xl list)"),
            DomRef::Name(n) => format!("unknown domain {n:?} (see xl list)"),
        }),
    }
}

pub fn err_text(what: &str, e: Error) -> String {
    let why = match e {
        Error::NoMem => "no memory left",
        Error::NoEnt => "no such image in the boot bundle",
        Error::Exist => "a domain of that name exists",
        Error::TooBig => "name, image or args too long",
        Error::Busy => "busy",
        _ => e.name(),
    };
    format!("{what}: {why} ({})", e.name())
}

pub fn serve(req: Request, tracked: &mut Vec<Tracked>, store: &mut StoreService) -> Response {
    match req {
        Request::Ping => Response::Pong { version: hv_control::VERSION },
        Request::List => list(tracked),
        Request::Info => info(store),
        Request::Create(spec) => match create(spec, tracked, store) {
            Ok(id) => Response::Created { id: id.into() },
            Err(e) => Response::Error(e),
        },
        Request::Destroy { dom, crash } => match destroy(&dom, crash, tracked, store) {
            Ok(()) => Response::Ok,
            Err(e) => Response::Error(e),
        },
        Request::Pause(dom) => simple(&dom, "pause", domctl::pause),
        Request::Unpause(dom) => simple(&dom, "unpause", domctl::unpause),
        Request::Devices(dom) => match resolve(&dom) {
            Ok((id, name)) => match tracked.iter().position(|t| t.domid == Some(id)) {
                Some(i) => Response::Devices {
                    rows: crate::connect::devices_of(tracked, i, store),
                    connected_after_ns: tracked[i].connected_after_ns,
                },
                None => Response::Error(format!("{name} (domain {id}) is not managed by this toolstack")),
            },
            Err(e) => Response::Error(e),
        },
        Request::Console { dom, from } => match resolve(&dom) {
            Ok((id, _)) => match hv_rt::console::history(id, from) {
                Ok((start, data, end)) => Response::Console { start, data, end },
                Err(e) => Response::Error(err_text("console", e)),
            },
            Err(e) => Response::Error(e),
        },
    }
}

fn simple(dom: &DomRef, what: &str, f: fn(DomId) -> Result<(), Error>) -> Response {
    match resolve(dom) {
        Ok((0, _)) => Response::Error(format!("cannot {what} Dom0")),
        Ok((id, name)) => match f(id) {
            Ok(()) => Response::Ok,
            Err(e) => Response::Error(err_text(&format!("{what} {name}"), e)),
        },
        Err(e) => Response::Error(e),
    }
}

fn list(tracked: &[Tracked]) -> Response {
    let Ok(entries) = domctl::list() else { return Response::Error("cannot list domains".to_string()) };
    let rows = entries
        .iter()
        .map(|e| DomainRow {
            id: e.domid,
            name: name_of(e),
            memory_mib: (e.memory_bytes >> 20) as u32,
            state: match e.state {
                state::RUNNING | state::RUNNABLE => State::Running,
                state::BLOCKED => State::Blocked,
                state::PAUSED => State::Paused,
                _ => State::Dying,
            },
            cpu_time_ns: e.cpu_time_ns,
            restarts: tracked.iter().find(|t| t.domid == Some(e.id())).map_or(0, |t| t.restarts),
        })
        .collect();
    Response::List(rows)
}

fn info(store: &StoreService) -> Response {
    match domctl::physinfo() {
        Ok(p) => Response::Info(Totals {
            total_mib: (p.total_frames * 4096) >> 20,
            free_kib: p.free_frames * 4,
            domains: p.live_domains,
            grant_maps: p.grant_maps,
            grant_entries: p.grant_entries,
            event_ports: p.event_ports,
            store_nodes: store.node_count() as u64,
            store_watches: store.watch_count() as u64,
            store_bytes: store.server.memory() as u64,
        }),
        Err(e) => Response::Error(err_text("physinfo", e)),
    }
}

/// The bundle images a PVH domain boots from when its topology carries them (a topology
/// bundles an image when one of its domains or its `images = [...]` names it).
const PVH_IMAGES: &str = "linux (Debian's kernel), linux-initramfs (its busybox initramfs), pvh-probe";

/// A bundle image name as `xl create` may give it: 1 to `NAME_LEN` letters, digits, '-', '_'.
fn check_image_name(key: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= hv_abi::NAME_LEN
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad {key} {name:?}: name an image of the running bundle (letters, digits, '-' and '_', at most {} bytes)",
            hv_abi::NAME_LEN
        ))
    }
}

/// The domain config `spec` describes, checked against what runs now.
fn config_of(spec: &DomainSpec, tracked: &[Tracked]) -> Result<DomainConfig, String> {
    if spec.name.is_empty() || !spec.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(format!("bad domain name {:?}: use letters, digits, '-' and '_'", spec.name));
    }
    if spec.name.len() > hv_abi::NAME_LEN {
        return Err(format!("domain name {:?} is too long: use at most {} bytes", spec.name, hv_abi::NAME_LEN));
    }
    if spec.memory_mib == 0 {
        return Err("memory = 0: give the domain at least 1 MiB".to_string());
    }
    let boot_text = match spec.domain_type {
        hv_control::DomainType::Pv => ("args", &spec.args),
        hv_control::DomainType::Pvh => ("cmdline", &spec.cmdline),
    };
    if boot_text.1.len() > hv_abi::ARGS_LEN {
        return Err(format!(
            "{} is {} bytes long: shorten it to at most {} bytes",
            boot_text.0,
            boot_text.1.len(),
            hv_abi::ARGS_LEN
        ));
    }
    for (key, image) in
        [("image", Some(&spec.image)), ("kernel", spec.kernel.as_ref()), ("ramdisk", spec.ramdisk.as_ref())]
    {
        if let Some(image) = image.filter(|i| !i.is_empty() || key != "image") {
            check_image_name(key, image)?;
        }
    }
    let live_backend = |name: &str| tracked.iter().any(|t| t.cfg.name == name && t.is_live());
    let mut devices = Vec::new();
    for (kind, list) in [("vif", &spec.vifs), ("vbd", &spec.disks)] {
        for (n, d) in list.iter().enumerate() {
            if !live_backend(&d.backend) {
                return Err(format!("{kind} {n}: backend missing: no running domain named {:?}", d.backend));
            }
            if kind == "vif" {
                toolstack::vif_mac(&d.params, 1, 0).map_err(|e| format!("vif {n}: {e}"))?;
            }
            devices.push(DeviceConfig { kind: kind.to_string(), backend: d.backend.clone(), params: d.params.clone() });
        }
    }
    for sel in &spec.pci {
        if hv_abi::pci::Selector::parse(sel).is_none() {
            return Err(format!("bad pci selector {sel:?}: use vendor:device (hex) or bb:dd.f"));
        }
    }
    let cfg = DomainConfig {
        name: spec.name.clone(),
        image: spec.image.clone(),
        memory_mib: spec.memory_mib,
        kind: if spec.driver { DomainKind::Driver } else { DomainKind::DomU },
        expect: Expect::Forever,
        args: spec.args.clone(),
        devices,
        pci: spec.pci.clone(),
        on_crash: match spec.on_crash {
            hv_control::OnCrash::Destroy => OnCrash::Destroy,
            hv_control::OnCrash::Restart => OnCrash::Restart,
        },
        domain_type: match spec.domain_type {
            hv_control::DomainType::Pv => DomainType::Pv,
            hv_control::DomainType::Pvh => DomainType::Pvh,
        },
        kernel: spec.kernel.clone(),
        ramdisk: spec.ramdisk.clone(),
        cmdline: spec.cmdline.clone(),
    };
    // The rules of each type (a PVH domain: a kernel, no image, args or pci, not a driver).
    cfg.check_type().map_err(|e| match cfg.domain_type {
        DomainType::Pv => format!("{e}: a PV domain has image and args"),
        DomainType::Pvh => format!(
            "{e}: a PVH domain has kernel, optional ramdisk and cmdline, and is a plain domu without pci \
             (e.g. kernel = \"linux\", ramdisk = \"linux-initramfs\")"
        ),
    })?;
    Ok(cfg)
}

/// Why creating `cfg` failed, in the terms of its config.
pub fn create_error(cfg: &DomainConfig, e: Error) -> String {
    let what = format!("create {}", cfg.name);
    match (cfg.domain_type, e) {
        (DomainType::Pvh, Error::NoEnt) => format!(
            "{what}: kernel {:?}{} is not an image of the running bundle; a bundle carries {PVH_IMAGES} when its \
             topology names them (a domain's kernel/ramdisk, or images = [...] as in topologies/xl-linux.toml) \
             (ENOENT)",
            cfg.kernel.as_deref().unwrap_or_default(),
            cfg.ramdisk.as_deref().map(|r| format!(" or ramdisk {r:?}")).unwrap_or_default(),
        ),
        (DomainType::Pvh, Error::Inval) => format!(
            "{what}: kernel {:?} is not a PVH kernel (an ELF with a XEN_ELFNOTE_PHYS32_ENTRY note) or it and its \
             ramdisk do not fit in {} MiB: give a kernel such as \"linux\" and more memory (the hypervisor's log \
             says which) (EINVAL)",
            cfg.kernel.as_deref().unwrap_or_default(),
            cfg.memory_mib
        ),
        (DomainType::Pvh, Error::NoSys) => {
            format!("{what}: this machine runs no HVM domains (PVH needs AMD SVM with nested paging) (ENOSYS)")
        }
        _ => err_text(&what, e),
    }
}

/// `xl create`: builds the domain paused, connects it to the store, assigns its PCI devices,
/// writes its devices' store entries, then runs it. Any failure undoes all of it.
fn create(spec: DomainSpec, tracked: &mut Vec<Tracked>, store: &mut StoreService) -> Result<DomId, String> {
    let cfg = config_of(&spec, tracked)?;
    let since = hv_rt::time::now_ns();
    let id = toolstack::start(&cfg, tracked, store)?;
    println!("xl create: {} is domain {id}", cfg.name);
    tracked.push(Tracked::new(cfg, Some(id), since, true));
    Ok(id)
}

/// `xl destroy`: destroys the domain and removes its devices' store entries; with `crash` the
/// domain is treated as crashed, so its `on_crash` policy applies (a restartable driver domain
/// comes back).
fn destroy(dom: &DomRef, crash: bool, tracked: &mut Vec<Tracked>, store: &mut StoreService) -> Result<(), String> {
    let (id, name) = resolve(dom)?;
    if id == 0 {
        return Err("cannot destroy Dom0".to_string());
    }
    let i = tracked.iter().position(|t| t.domid == Some(id));
    if crash {
        // The domain dies as if it had faulted; the reaper applies the policy.
        domctl::destroy(id).map_err(|e| err_text(&format!("destroy {name}"), e))?;
        if let Some(i) = i {
            tracked[i].ending = Some(Ending::Crashed);
        }
        crate::handle_death(tracked, store, id, Ending::Crashed);
        return Ok(());
    }
    domctl::destroy(id).map_err(|e| err_text(&format!("destroy {name}"), e))?;
    store.disconnect(id);
    toolstack::remove_devices_of(store, id, tracked);
    if let Some(i) = i {
        if tracked[i].from_xl {
            tracked.remove(i);
        } else {
            tracked[i].ending = Some(Ending::Destroyed);
        }
    }
    println!("xl destroy: {name} (domain {id}) destroyed");
    Ok(())
}
