//! The client of Dom0's toolstack over the control channel: COM2 of a QEMU running the system,
//! exposed as a Unix socket (`cargo xtask run` puts it at `target/run/control.sock`). Messages:
//! `hv-control` (postcard in COBS frames, versioned). `cargo xtask xl`, `cargo xtask bench xl`
//! and the toolstack scenarios talk through it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hv_control::{DeviceRow, DeviceSpec, DomRef, DomainRow, DomainSpec, Request, Response, Totals};

/// A connection to Dom0's toolstack.
pub struct Client {
    stream: UnixStream,
    deframer: hv_control::Deframer,
    pending: std::collections::VecDeque<Vec<u8>>,
    next_id: u32,
}

impl Client {
    pub fn connect(socket: &Path) -> Result<Self> {
        let stream = UnixStream::connect(socket).with_context(|| {
            format!(
                "cannot connect to {} (is a system running? start one with `cargo xtask run` in another terminal)",
                socket.display()
            )
        })?;
        stream.set_read_timeout(Some(Duration::from_millis(200)))?;
        Ok(Self { stream, deframer: hv_control::Deframer::new(), pending: Default::default(), next_id: 1 })
    }

    /// Sends `req` and waits (up to `timeout`) for the response with its id.
    pub fn call(&mut self, req: &Request, timeout: Duration) -> Result<Response> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.stream.write_all(&hv_control::encode(id, req)).context("writing to the control socket")?;
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 4096];
        loop {
            while let Some(f) = self.pending.pop_front() {
                match hv_control::decode::<Response>(&f) {
                    Ok(env) if env.id == id => return Ok(env.body),
                    Ok(_) => {} // a late answer to an earlier request
                    Err(hv_control::DecodeError::Version { theirs, .. }) => bail!(
                        "Dom0 speaks control protocol version {theirs}, this xtask {}: rebuild the image (cargo xtask run) from this tree",
                        hv_control::VERSION
                    ),
                    Err(hv_control::DecodeError::Malformed) => {}
                }
            }
            if Instant::now() > deadline {
                bail!("no answer from Dom0 within {:.0} s", timeout.as_secs_f64());
            }
            match self.stream.read(&mut buf) {
                Ok(0) => bail!("the system closed the control channel (QEMU exited?)"),
                Ok(n) => {
                    let pending = &mut self.pending;
                    self.deframer.push(&buf[..n], |f| pending.push_back(f.to_vec()));
                }
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
                Err(e) => return Err(e).context("reading the control socket"),
            }
        }
    }

    /// `call`, with `Response::Error` turned into an error.
    pub fn ok(&mut self, req: &Request) -> Result<Response> {
        match self.call(req, Duration::from_secs(20))? {
            Response::Error(e) => bail!("{e}"),
            r => Ok(r),
        }
    }

    /// `xl list`.
    pub fn list(&mut self) -> Result<Vec<DomainRow>> {
        match self.ok(&Request::List)? {
            Response::List(rows) => Ok(rows),
            _ => bail!("unexpected answer to list"),
        }
    }

    /// `xl info`.
    pub fn info(&mut self) -> Result<Totals> {
        match self.ok(&Request::Info)? {
            Response::Info(t) => Ok(t),
            _ => bail!("unexpected answer to info"),
        }
    }

    /// `xl create`: the new domain's id.
    pub fn create(&mut self, spec: DomainSpec) -> Result<u32> {
        match self.ok(&Request::Create(spec))? {
            Response::Created { id } => Ok(id),
            _ => bail!("unexpected answer to create"),
        }
    }

    /// The domain's split devices and, once all are Connected, how long after its creation
    /// (Dom0's clock).
    pub fn devices(&mut self, dom: DomRef) -> Result<(Vec<DeviceRow>, Option<u64>)> {
        match self.ok(&Request::Devices(dom))? {
            Response::Devices { rows, connected_after_ns } => Ok((rows, connected_after_ns)),
            _ => bail!("unexpected answer to devices"),
        }
    }

    /// Polls until every device of `dom` is Connected; returns Dom0's creation-to-connected
    /// time. Fails after `timeout`, naming the devices still waiting.
    pub fn wait_connected(&mut self, dom: DomRef, timeout: Duration) -> Result<Duration> {
        let deadline = Instant::now() + timeout;
        loop {
            let (rows, after) = self.devices(dom.clone())?;
            if let Some(ns) = after
                && rows.iter().all(DeviceRow::connected)
            {
                return Ok(Duration::from_nanos(ns));
            }
            if Instant::now() > deadline {
                let waiting: Vec<String> = rows
                    .iter()
                    .filter(|r| !r.connected())
                    .map(|r| {
                        format!(
                            "{}/{} (frontend state {}, backend state {})",
                            r.kind, r.index, r.frontend_state, r.backend_state
                        )
                    })
                    .collect();
                bail!("devices not connected after {:.0} s: {}", timeout.as_secs_f64(), waiting.join(", "));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

/// A `guest` DomU (frontends/demos guest) named `name` with a vif on netback and a disk on
/// blkback (8 MiB at 16 MiB), as the toolstack scenarios and `cargo xtask bench xl` create it.
pub fn guest_spec(name: &str) -> DomainSpec {
    DomainSpec {
        name: name.to_owned(),
        domain_type: hv_control::DomainType::Pv,
        image: "guest".to_owned(),
        memory_mib: 8,
        args: "ip=10.0.2.30/24".to_owned(),
        kernel: None,
        ramdisk: None,
        cmdline: String::new(),
        driver: false,
        pci: vec![],
        vifs: vec![DeviceSpec { backend: "netback".to_owned(), params: String::new() }],
        disks: vec![DeviceSpec { backend: "blkback".to_owned(), params: "offset_mib=16 size_mib=8 mode=w".to_owned() }],
        on_crash: hv_control::OnCrash::Destroy,
    }
}

/// A PVH Linux guest (Debian's kernel, the busybox initramfs, bundle images `linux` and
/// `linux-initramfs`) named `name` with `memory_mib` and the init's `guest.mode` (`stay` keeps it
/// running, `poweroff` ends it after its boot lines), as the xl Linux scenarios create it.
pub fn linux_spec(name: &str, memory_mib: u32, mode: &str) -> DomainSpec {
    DomainSpec {
        name: name.to_owned(),
        domain_type: hv_control::DomainType::Pvh,
        image: String::new(),
        memory_mib,
        args: String::new(),
        kernel: Some(crate::linux_guest::KERNEL_IMAGE.to_owned()),
        ramdisk: Some(crate::linux_guest::RAMDISK_IMAGE.to_owned()),
        cmdline: format!("{} guest.mode={mode}", crate::linux_guest::DEFAULT_CMDLINE),
        driver: false,
        pci: vec![],
        vifs: vec![],
        disks: vec![],
        on_crash: hv_control::OnCrash::Destroy,
    }
}

/// A domain argument: a number is an id, anything else a name.
pub fn dom_ref(s: &str) -> DomRef {
    s.parse().map(DomRef::Id).unwrap_or_else(|_| DomRef::Name(s.to_owned()))
}

/// The request `xl create <file>` sends.
pub fn create_request(file: &Path) -> Result<Request> {
    let text = std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let cfg = crate::topology::parse_domain_config(&file.display().to_string(), &text)?;
    let dev = |kind: &str| {
        cfg.devices
            .iter()
            .filter(|d| d.kind == kind)
            .map(|d| DeviceSpec { backend: d.backend.clone(), params: d.params.clone() })
            .collect::<Vec<_>>()
    };
    if let Some(d) = cfg.devices.iter().find(|d| d.kind != "vif" && d.kind != "vbd") {
        bail!("{}: device kind {:?} cannot be created with xl (vif and disk only)", file.display(), d.kind);
    }
    Ok(Request::Create(DomainSpec {
        name: cfg.name.clone(),
        domain_type: match cfg.domain_type {
            hv_bundle::DomainType::Pv => hv_control::DomainType::Pv,
            hv_bundle::DomainType::Pvh => hv_control::DomainType::Pvh,
        },
        image: cfg.image.clone(),
        memory_mib: cfg.memory_mib,
        args: cfg.args.clone(),
        kernel: cfg.kernel.clone(),
        ramdisk: cfg.ramdisk.clone(),
        cmdline: cfg.cmdline.clone(),
        driver: cfg.kind == hv_bundle::DomainKind::Driver,
        pci: cfg.pci.clone(),
        vifs: dev("vif"),
        disks: dev("vbd"),
        on_crash: match cfg.on_crash {
            hv_bundle::OnCrash::Destroy => hv_control::OnCrash::Destroy,
            hv_bundle::OnCrash::Restart => hv_control::OnCrash::Restart,
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_for(name: &str, text: &str) -> Result<Request> {
        let file = std::env::temp_dir().join(format!("xtask-xl-{}-{name}.cfg", std::process::id()));
        std::fs::write(&file, text).unwrap();
        let r = create_request(&file);
        std::fs::remove_file(&file).unwrap();
        r
    }

    #[test]
    fn a_pvh_config_becomes_a_pvh_create() {
        let text = "name = \"linux1\"\ntype = \"pvh\"\nkernel = \"linux\"\nramdisk = \"linux-initramfs\"\n\
                    cmdline = \"console=hvc0 guest.mode=stay\"\nmemory_mib = 128\n";
        let Request::Create(spec) = request_for("pvh", text).unwrap() else { panic!("not a create") };
        let want = DomainSpec { cmdline: "console=hvc0 guest.mode=stay".into(), ..linux_spec("linux1", 128, "stay") };
        assert_eq!(spec, want);
        let Request::Create(pv) = request_for("pv", "name = \"g\"\nimage = \"guest\"\nmemory_mib = 8\n").unwrap()
        else {
            panic!("not a create")
        };
        assert_eq!(
            (pv.domain_type, pv.kernel, pv.ramdisk, pv.cmdline.as_str()),
            (hv_control::DomainType::Pv, None, None, "")
        );
    }

    #[test]
    fn a_bad_pvh_config_is_refused_before_sending() {
        let e =
            format!("{:#}", request_for("nokernel", "name = \"l\"\ntype = \"pvh\"\nmemory_mib = 128\n").unwrap_err());
        assert!(e.contains("a PVH domain needs a kernel") && e.contains("fix:"), "{e}");
    }
}
