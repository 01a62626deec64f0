//! Topology files (`topologies/<name>.toml`) and their conversion to [`hv_bundle::Topology`].
//!
//! ```toml
//! name = "default"          # optional, defaults to the file stem
//! on_finish = "stay"        # "stay" (default) | "shutdown"
//! images = ["guest"]        # optional: more images for the bundle, for `xl create` at run time
//! xl_memory_mib = 192       # optional: machine memory beyond the topology's domains, for `xl create`
//! iommu = false             # optional: true (default) puts the virtio devices behind an Intel IOMMU (VT-d, q35)
//! [[domain]]
//! name = "dom0"
//! image = "dom0"            # PV: a domain binary
//! memory_mib = 4
//! kind = "dom0"             # "dom0" | "domu" (default) | "driver"
//! expect = "exit"           # "exit" (default) | "crash" | "forever"
//! args = "..."              # optional, default ""
//! [[domain]]                # a PVH guest, with xl.cfg's keys
//! name = "linux"
//! type = "pvh"              # "pv" (default: our unikernels, `image`) | "pvh" (`kernel`)
//! kernel = "linux"          # a bundle image: "linux" is Debian's kernel (xtask::linux_guest)
//! ramdisk = "linux-initramfs"  # optional: "linux-initramfs" is the busybox initramfs
//! cmdline = "..."           # optional; for kernel "linux" it defaults to linux_guest::DEFAULT_CMDLINE
//! memory_mib = 256
//! [[domain.device]]         # optional: a split device this domain is the frontend of
//! kind = "pingpong"
//! backend = "pong"
//! params = "..."            # optional: written to the backend's `params` store key
//! [[disk]]                  # optional: a raw image QEMU attaches as virtio-blk (host side only)
//! name = "disk0"
//! size_mib = 32
//! [[nic]]                   # optional: a virtio-net device on QEMU's user network (slirp)
//! name = "net0"
//! forward = ["10.0.2.15:80"]  # TCP from a free 127.0.0.1 port (or "8080=10.0.2.15:80")
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use hv_bundle::{DomainConfig, DomainKind, DomainType, Expect, OnFinish, Topology};
use serde::Deserialize;

use crate::paths::show;

/// The topology `cargo xtask run` and friends use when none is named.
pub const DEFAULT: &str = "default";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileTopology {
    name: Option<String>,
    #[serde(default)]
    on_finish: FileOnFinish,
    #[serde(default, rename = "domain")]
    domains: Vec<FileDomain>,
    #[serde(default, rename = "disk")]
    disks: Vec<Disk>,
    #[serde(default, rename = "nic")]
    nics: Vec<FileNic>,
    /// Images bundled for `xl create` beyond those the domains use.
    #[serde(default)]
    images: Vec<String>,
    /// Machine memory for domains `xl create` makes at run time, beyond the topology's own.
    #[serde(default)]
    xl_memory_mib: u32,
    /// QEMU adds an Intel IOMMU (`-device intel-iommu`, q35 only) and puts the virtio devices
    /// behind it (`iommu_platform=on`); on unless the topology says `iommu = false`.
    #[serde(default)]
    iommu: Option<bool>,
}

/// Most machine memory a topology may set aside for `xl create` (`xl_memory_mib`).
pub const MAX_XL_MEMORY_MIB: u32 = 16 * 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileNic {
    name: String,
    #[serde(default)]
    forward: Vec<String>,
}

/// A virtio-net PCI device on QEMU's user network (`[[nic]]` in a topology).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    pub name: String,
    pub forwards: Vec<Forward>,
}

/// A TCP port forward from the host's loopback into the user network (QEMU `hostfwd`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    /// Host port on 127.0.0.1; `None`: a free one is chosen for each run.
    pub host_port: Option<u16>,
    pub guest_ip: std::net::Ipv4Addr,
    pub guest_port: u16,
}

impl Forward {
    /// `[HOSTPORT=]A.B.C.D:PORT`.
    pub fn parse(s: &str) -> Option<Self> {
        let (host, guest) = match s.split_once('=') {
            Some((h, g)) => (Some(h.trim().parse::<u16>().ok().filter(|p| *p != 0)?), g.trim()),
            None => (None, s.trim()),
        };
        let (ip, port) = guest.rsplit_once(':')?;
        Some(Self { host_port: host, guest_ip: ip.parse().ok()?, guest_port: port.parse().ok().filter(|p| *p != 0)? })
    }
}

/// A raw disk image QEMU attaches as a virtio-blk PCI device (`[[disk]]` in a topology).
#[derive(Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    pub name: String,
    pub size_mib: u32,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum FileOnFinish {
    #[default]
    Stay,
    Shutdown,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDomain {
    name: String,
    /// PV only; a PVH domain names its `kernel` instead.
    #[serde(default)]
    image: String,
    memory_mib: u32,
    /// xl.cfg's `type`.
    #[serde(default, rename = "type")]
    domain_type: FileType,
    /// PVH: the kernel image.
    kernel: Option<String>,
    /// PVH: the initial ramdisk image.
    ramdisk: Option<String>,
    /// PVH: the kernel command line (default: [`crate::linux_guest::DEFAULT_CMDLINE`] for kernel
    /// "linux", else empty).
    cmdline: Option<String>,
    #[serde(default)]
    kind: FileKind,
    #[serde(default)]
    expect: FileExpect,
    #[serde(default)]
    args: String,
    #[serde(default, rename = "device")]
    devices: Vec<FileDevice>,
    #[serde(default)]
    pci: Vec<String>,
    /// xl style: `vif = ["backend=netback,mac=00:16:3e:00:00:01"]`.
    #[serde(default)]
    vif: Vec<String>,
    /// xl style: `disk = ["backend=blkback,offset_mib=0,size_mib=8,mode=w"]`.
    #[serde(default)]
    disk: Vec<String>,
    #[serde(default)]
    on_crash: FileOnCrash,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum FileType {
    #[default]
    Pv,
    Pvh,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum FileOnCrash {
    #[default]
    Destroy,
    Restart,
}

/// An xl-style device string, `backend=NAME,key=value,...` → (backend, params `key=value ...`).
pub fn parse_device_spec(s: &str) -> Result<(String, String), String> {
    let mut backend = None;
    let mut params = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('=') {
            Some(("backend", b)) if !b.trim().is_empty() => backend = Some(b.trim().to_owned()),
            Some((k, v)) if !k.trim().is_empty() && !k.contains(' ') && !v.contains(' ') => {
                params.push(format!("{}={}", k.trim(), v.trim()))
            }
            _ => return Err(format!("{part:?} is not key=value")),
        }
    }
    let backend = backend.ok_or_else(|| format!("{s:?} names no backend (add backend=<domain>)"))?;
    Ok((backend, params.join(" ")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDevice {
    kind: String,
    backend: String,
    #[serde(default)]
    params: String,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum FileKind {
    Dom0,
    #[default]
    Domu,
    Driver,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum FileExpect {
    #[default]
    Exit,
    Crash,
    Forever,
    Destroyed,
}

/// A topology read from a file.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub topology: Topology,
    /// Disk images QEMU attaches (virtio-blk), in order.
    pub disks: Vec<Disk>,
    /// Network devices QEMU attaches (virtio-net on the user network), in order.
    pub nics: Vec<Nic>,
    /// Images bundled for `xl create` at run time (top-level `images = [...]`).
    pub extra_images: Vec<String>,
    /// Machine memory set aside for domains `xl create` makes at run time (`xl_memory_mib`).
    pub xl_memory_mib: u32,
    /// An Intel IOMMU in front of the virtio devices (default; `iommu = false` runs without).
    pub iommu: bool,
}

impl Loaded {
    pub fn name(&self) -> &str {
        &self.topology.name
    }

    /// The distinct image names the topology references, in first-use order.
    pub fn images(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for image in self.topology.domains.iter().flat_map(DomainConfig::images).chain(&self.extra_images) {
            if !out.contains(image) {
                out.push(image.clone());
            }
        }
        out
    }

    /// Domains (other than Dom0) that run the given image.
    pub fn domains_with_image(&self, image: &str) -> Vec<&DomainConfig> {
        self.topology.domains.iter().filter(|d| d.image == image && d.kind != DomainKind::Dom0).collect()
    }
}

/// Names of the topologies in `<root>/topologies/`, sorted.
pub fn available(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join("topologies"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let p = e.path();
            (p.extension()? == "toml").then(|| p.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    names
}

/// Resolves a command-line argument: a path (contains `/` or ends in `.toml`) or a bare name
/// looked up as `topologies/<name>.toml`; `None` means [`DEFAULT`].
pub fn resolve(root: &Path, arg: Option<&str>) -> Result<PathBuf> {
    let arg = arg.unwrap_or(DEFAULT);
    let is_path = arg.contains('/') || arg.ends_with(".toml");
    let path = if is_path { PathBuf::from(arg) } else { root.join("topologies").join(format!("{arg}.toml")) };
    if path.is_file() {
        return Ok(path);
    }
    let known = available(root);
    let known = if known.is_empty() {
        format!("there are no topologies in {}/ yet", root.join("topologies").display())
    } else {
        format!("known topologies: {}", known.join(", "))
    };
    if is_path {
        bail!("topology file {} does not exist; pass an existing .toml file or a bare name ({known})", path.display());
    }
    bail!("no topology named {arg:?} ({} does not exist); {known}", show(&path, root));
}

/// Resolves and parses a topology (see [`resolve`]).
pub fn load(root: &Path, arg: Option<&str>) -> Result<Loaded> {
    let path = resolve(root, arg)?;
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading topology {}", path.display()))?;
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or(DEFAULT).to_owned();
    let file = show(&path, root);
    let topology = parse(&file, &text, &stem)?;
    let disks = parse_disks(&file, &text)?;
    let nics = parse_nics(&file, &text)?;
    let raw: FileTopology = toml::from_str(&text).with_context(|| format!("{file}: invalid topology"))?;
    if raw.xl_memory_mib > MAX_XL_MEMORY_MIB {
        bail!(
            "{file}: xl_memory_mib = {} is more than a test machine has\n  fix: use at most {MAX_XL_MEMORY_MIB} \
             (the memory of the domains you mean to xl create at once)",
            raw.xl_memory_mib
        );
    }
    Ok(Loaded {
        path,
        topology,
        disks,
        nics,
        extra_images: raw.images,
        xl_memory_mib: raw.xl_memory_mib,
        iommu: raw.iommu.unwrap_or(true),
    })
}

/// The `[[disk]]` tables of a topology file (already syntax-checked by [`parse`]).
pub fn parse_disks(file: &str, text: &str) -> Result<Vec<Disk>> {
    let raw: FileTopology = toml::from_str(text).with_context(|| format!("{file}: invalid topology"))?;
    for (i, d) in raw.disks.iter().enumerate() {
        if d.name.is_empty() || !d.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            bail!("{file}: disk name {:?} is not letters, digits and '-'\n  fix: rename it", d.name);
        }
        if raw.disks[..i].iter().any(|o| o.name == d.name) {
            bail!("{file}: two disks are named {:?}\n  fix: give every [[disk]] a distinct name", d.name);
        }
        if d.size_mib == 0 || d.size_mib > 65536 {
            bail!("{file}: disk {} has size_mib = {}\n  fix: use 1 to 65536", d.name, d.size_mib);
        }
    }
    Ok(raw.disks)
}

/// The `[[nic]]` tables of a topology file.
pub fn parse_nics(file: &str, text: &str) -> Result<Vec<Nic>> {
    let raw: FileTopology = toml::from_str(text).with_context(|| format!("{file}: invalid topology"))?;
    let mut out: Vec<Nic> = Vec::new();
    for n in raw.nics {
        if n.name.is_empty() || !n.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            bail!("{file}: nic name {:?} is not letters, digits and '-'\n  fix: rename it", n.name);
        }
        if out.iter().any(|o| o.name == n.name) {
            bail!("{file}: two nics are named {:?}\n  fix: give every [[nic]] a distinct name", n.name);
        }
        let mut forwards = Vec::new();
        for f in &n.forward {
            let Some(parsed) = Forward::parse(f) else {
                bail!(
                    "{file}: nic {}: forward {f:?} is not [HOSTPORT=]A.B.C.D:PORT\n  fix: e.g. \"10.0.2.15:80\" \
                     (a free host port) or \"8080=10.0.2.15:80\"",
                    n.name
                );
            };
            forwards.push(parsed);
        }
        out.push(Nic { name: n.name, forwards });
    }
    Ok(out)
}

fn convert_domain(d: FileDomain) -> DomainConfig {
    DomainConfig {
        name: d.name,
        image: d.image,
        memory_mib: d.memory_mib,
        kind: match d.kind {
            FileKind::Dom0 => DomainKind::Dom0,
            FileKind::Domu => DomainKind::DomU,
            FileKind::Driver => DomainKind::Driver,
        },
        expect: match d.expect {
            FileExpect::Exit => Expect::Exit,
            FileExpect::Crash => Expect::Crash,
            FileExpect::Forever => Expect::Forever,
            FileExpect::Destroyed => Expect::Destroyed,
        },
        args: d.args,
        devices: d
            .devices
            .into_iter()
            .map(|v| hv_bundle::DeviceConfig { kind: v.kind, backend: v.backend, params: v.params })
            .chain(d.vif.iter().map(|v| ("vif", v)).chain(d.disk.iter().map(|v| ("vbd", v))).filter_map(|(kind, v)| {
                let (backend, params) = parse_device_spec(v).ok()?;
                Some(hv_bundle::DeviceConfig { kind: kind.into(), backend, params })
            }))
            .collect(),
        pci: d.pci,
        on_crash: match d.on_crash {
            FileOnCrash::Destroy => hv_bundle::OnCrash::Destroy,
            FileOnCrash::Restart => hv_bundle::OnCrash::Restart,
        },
        domain_type: match d.domain_type {
            FileType::Pv => DomainType::Pv,
            FileType::Pvh => DomainType::Pvh,
        },
        cmdline: match d.cmdline {
            Some(c) => c,
            None if d.kernel.as_deref() == Some(crate::linux_guest::KERNEL_IMAGE) => {
                crate::linux_guest::DEFAULT_CMDLINE.to_owned()
            }
            None => String::new(),
        },
        kernel: d.kernel,
        ramdisk: d.ramdisk,
    }
}

/// Parses an `xl create` config: one domain, with the keys of a topology's `[[domain]]`
/// table at the top level (`name`, `image`, `memory_mib`, `args`, `kind`, `pci`, `vif`, `disk`,
/// `on_crash`; a PVH guest has `type = "pvh"`, `kernel`, `ramdisk` and `cmdline` instead of
/// `image` and `args`). Image, kernel and ramdisk name images of the running bundle; Dom0 says
/// which it lacks.
pub fn parse_domain_config(file: &str, text: &str) -> Result<DomainConfig> {
    let d: FileDomain = toml::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "{file}: not a domain config: {}\n  fix: give name, image and memory_mib (and optionally args, kind, pci, \
             vif = [\"backend=netback\"], disk = [\"backend=blkback,size_mib=8\"], on_crash = \"restart\"); for a \
             PVH guest type = \"pvh\", kernel (e.g. \"linux\"), ramdisk (e.g. \"linux-initramfs\") and cmdline \
             instead of image and args",
            e.to_string().trim_end()
        )
    })?;
    for (key, spec) in d.vif.iter().map(|v| ("vif", v)).chain(d.disk.iter().map(|v| ("disk", v))) {
        if let Err(e) = parse_device_spec(spec) {
            bail!("{file}: {key} entry {spec:?}: {e}\n  fix: write it as \"backend=<domain>,key=value,...\"");
        }
    }
    if matches!(d.kind, FileKind::Dom0) {
        bail!("{file}: kind = \"dom0\": there is one Dom0 and it is running\n  fix: use kind = \"domu\" or \"driver\"");
    }
    if d.memory_mib == 0 {
        bail!("{file}: memory_mib = 0\n  fix: give the domain at least 1 MiB");
    }
    let cfg = convert_domain(d);
    if let Err(e) = cfg.check_type() {
        let fix = match cfg.domain_type {
            DomainType::Pv => "give name, image and memory_mib (image: a domain binary of the bundle)",
            DomainType::Pvh => {
                "a PVH guest (type = \"pvh\") gives kernel (e.g. \"linux\"), optional ramdisk (e.g. \
                 \"linux-initramfs\") and cmdline, no image, args or pci, and is a domu"
            }
        };
        bail!("{file}: {e}\n  fix: {fix}");
    }
    Ok(cfg)
}

/// Parses the text of a topology file; `file` names it in errors, `stem` is the default name.
pub fn parse(file: &str, text: &str, stem: &str) -> Result<Topology> {
    let raw: FileTopology = toml::from_str(text).map_err(|e| {
        anyhow::anyhow!(
            "{file}: invalid topology: {}\n  fix: top-level keys are name, on_finish (\"stay\" | \"shutdown\"), images, and [[domain]] \
             tables; each [[domain]] has name, image, memory_mib (required), kind (\"dom0\" | \"domu\" | \"driver\"), \
             expect (\"exit\" | \"crash\" | \"forever\" | \"destroyed\"), args (optional) and [[domain.device]] \
             tables (kind, backend); a PVH guest has type = \"pvh\", kernel, ramdisk and cmdline (optional) \
             instead of image and args",
            e.to_string().trim_end()
        )
    })?;
    for d in &raw.domains {
        for (key, spec) in d.vif.iter().map(|v| ("vif", v)).chain(d.disk.iter().map(|v| ("disk", v))) {
            if let Err(e) = parse_device_spec(spec) {
                bail!(
                    "{file}: domain {}: {key} entry {spec:?}: {e}\n  fix: write it as \"backend=<domain>,key=value,...\"",
                    d.name
                );
            }
        }
    }
    let topology = Topology {
        name: raw.name.unwrap_or_else(|| stem.to_owned()),
        on_finish: match raw.on_finish {
            FileOnFinish::Stay => OnFinish::Stay,
            FileOnFinish::Shutdown => OnFinish::Shutdown,
        },
        domains: raw.domains.into_iter().map(convert_domain).collect(),
    };
    if topology.name.is_empty() {
        bail!(
            "{file}: name = \"\" is empty\n  fix: give the topology a name or drop the key (it defaults to {stem:?})"
        );
    }
    // Structural rules (Dom0 first, names, memory); image existence is checked when bundling.
    let images = topology.domains.iter().flat_map(DomainConfig::images).map(String::as_str);
    if let Err(e) = topology.validate(images) {
        let fix = match &e {
            hv_bundle::BundleError::NoDom0 | hv_bundle::BundleError::Dom0NotFirst => {
                "make the first [[domain]] the only one with kind = \"dom0\"".to_owned()
            }
            hv_bundle::BundleError::NameTooLong(_) => format!("use names of at most {} bytes", hv_bundle::MAX_NAME_LEN),
            hv_bundle::BundleError::BadNameCharacter(_) => "use only letters, digits, - and _ in names".to_owned(),
            hv_bundle::BundleError::EmptyName => "give every domain a non-empty name".to_owned(),
            hv_bundle::BundleError::DuplicateName(_) => "give every domain a distinct name".to_owned(),
            hv_bundle::BundleError::ZeroMemory(_) => "set memory_mib to at least 1".to_owned(),
            hv_bundle::BundleError::TooManyDomains(_) => format!("list at most {} domains", hv_bundle::MAX_DOMAINS),
            hv_bundle::BundleError::BadType { .. } => "a PV domain (type = \"pv\", the default) has image and args; a \
                 PVH domain (type = \"pvh\") has kernel (e.g. \"linux\"), optional ramdisk (e.g. \"linux-initramfs\") \
                 and cmdline, and is a plain domu without pci; see topologies/linux.toml"
                .to_owned(),
            _ => "see topologies/default.toml for a working example".to_owned(),
        };
        bail!("{file}: {e}\n  fix: {fix}");
    }
    Ok(topology)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
        on_finish = "shutdown"
        [[domain]]
        name = "dom0"
        image = "dom0"
        memory_mib = 4
        kind = "dom0"
        [[domain]]
        name = "hello1"
        image = "hello"
        memory_mib = 2
        args = "x=1"
        [[domain]]
        name = "boom"
        image = "crasher"
        memory_mib = 4
        expect = "crash"
    "#;

    fn err(text: &str) -> String {
        format!("{:#}", parse("topologies/t.toml", text, "t").unwrap_err())
    }

    #[test]
    fn parses_and_defaults() {
        let t = parse("topologies/t.toml", GOOD, "t").unwrap();
        assert_eq!(t.name, "t", "name defaults to the file stem");
        assert_eq!(t.on_finish, OnFinish::Shutdown);
        assert_eq!(t.domains.len(), 3);
        assert_eq!(t.domains[0].kind, DomainKind::Dom0);
        assert_eq!(t.domains[1].kind, DomainKind::DomU, "kind defaults to domu");
        assert_eq!(t.domains[1].expect, Expect::Exit, "expect defaults to exit");
        assert_eq!(t.domains[1].args, "x=1");
        assert_eq!(t.domains[1].memory_mib, 2);
        assert_eq!(t.domains[2].expect, Expect::Crash);
        assert_eq!(t.domains[2].args, "");
        let named = parse("f", &format!("name = \"other\"\n{GOOD}"), "t").unwrap();
        assert_eq!(named.name, "other");
        let stay = parse("f", "[[domain]]\nname = \"dom0\"\nimage = \"dom0\"\nmemory_mib = 4\nkind = \"dom0\"\n", "s")
            .unwrap();
        assert_eq!(stay.on_finish, OnFinish::Stay, "on_finish defaults to stay");
    }

    #[test]
    fn unknown_keys_are_errors_naming_file_and_fix() {
        let e = err(&format!("{GOOD}\nmemroy = 3\n"));
        assert!(e.contains("topologies/t.toml") && e.contains("memroy") && e.contains("fix:"), "{e}");
        let e = err(&GOOD.replace("args = \"x=1\"", "argv = \"x=1\""));
        assert!(e.contains("argv") && e.contains("fix:"), "{e}");
    }

    #[test]
    fn bad_values_are_errors() {
        let e = err(&GOOD.replace("\"shutdown\"", "\"reboot\""));
        assert!(e.contains("reboot") && e.contains("on_finish"), "{e}");
        let e = err(&GOOD.replace("expect = \"crash\"", "expect = \"boom\""));
        assert!(e.contains("boom"), "{e}");
        let e = err(&GOOD.replace("memory_mib = 2", ""));
        assert!(e.contains("memory_mib"), "{e}");
        let e = err(&GOOD.replace("memory_mib = 2", "memory_mib = -2"));
        assert!(e.contains("memory_mib") || e.contains("-2"), "{e}");
        let e = err(&GOOD.replace("memory_mib = 2", "memory_mib = 0"));
        assert!(e.contains("memory_mib = 0") && e.contains("at least 1"), "{e}");
        let e = err("this is not toml");
        assert!(e.contains("topologies/t.toml"), "{e}");
    }

    #[test]
    fn structural_rules_are_checked_at_parse_time() {
        let e = err(&GOOD.replace("kind = \"dom0\"", ""));
        assert!(e.contains("dom0") && e.contains("fix: make the first"), "{e}");
        let e = err(&GOOD.replace("hello1", "dom0"));
        assert!(e.contains("two domains are named") && e.contains("distinct"), "{e}");
        let e = err(&GOOD.replace("hello1", "a-name-that-is-far-too-long"));
        assert!(e.contains("at most 16"), "{e}");
        let e = err(&GOOD.replace("hello1", "hello.1"));
        assert!(e.contains("letters, digits"), "{e}");
        let e = err("on_finish = \"stay\"\n");
        assert!(e.contains("no domain of kind dom0"), "{e}");
    }

    const PVH: &str = r#"
        [[domain]]
        name = "dom0"
        image = "dom0"
        memory_mib = 4
        kind = "dom0"
        [[domain]]
        name = "linux"
        type = "pvh"
        kernel = "linux"
        ramdisk = "linux-initramfs"
        memory_mib = 256
        on_crash = "restart"
        [[domain]]
        name = "probe"
        type = "pvh"
        kernel = "pvh-probe"
        cmdline = "probe=all"
        memory_mib = 16
        [[domain]]
        name = "hello"
        type = "pv"
        image = "hello"
        memory_mib = 4
    "#;

    #[test]
    fn parses_pvh_domains_with_xl_keys() {
        let t = parse("topologies/t.toml", PVH, "t").unwrap();
        let linux = &t.domains[1];
        assert_eq!(linux.domain_type, DomainType::Pvh);
        assert_eq!(linux.kernel.as_deref(), Some("linux"));
        assert_eq!(linux.ramdisk.as_deref(), Some("linux-initramfs"));
        assert_eq!(linux.cmdline, crate::linux_guest::DEFAULT_CMDLINE, "kernel linux gets the default cmdline");
        assert_eq!(linux.image, "");
        assert_eq!(linux.on_crash, hv_bundle::OnCrash::Restart);
        let probe = &t.domains[2];
        assert_eq!((probe.kernel.as_deref(), probe.ramdisk.as_deref()), (Some("pvh-probe"), None));
        assert_eq!(probe.cmdline, "probe=all");
        assert_eq!(t.domains[3].domain_type, DomainType::Pv);
        assert_eq!(t.domains[0].domain_type, DomainType::Pv, "type defaults to pv");
        assert_eq!(t.domains[0].cmdline, "");
        let own = parse("f", &PVH.replace("ramdisk = \"linux-initramfs\"", "cmdline = \"quiet\""), "t").unwrap();
        assert_eq!(own.domains[1].cmdline, "quiet", "a given cmdline replaces the default");
        let dir = std::env::temp_dir().join(format!("xtask-topo-pvh-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("topologies")).unwrap();
        std::fs::write(dir.join("topologies/p.toml"), PVH).unwrap();
        let loaded = load(&dir, Some("p")).unwrap();
        assert_eq!(loaded.images(), ["dom0", "linux", "linux-initramfs", "pvh-probe", "hello"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pvh_rules_are_errors_naming_the_fix() {
        let e = err(&PVH.replace("kernel = \"pvh-probe\"", ""));
        assert!(e.contains("domain probe: a PVH domain needs a kernel") && e.contains("fix:"), "{e}");
        let e = err(&PVH.replace("kernel = \"pvh-probe\"", "kernel = \"pvh-probe\"\npci = [\"1af4:1000\"]"));
        assert!(e.contains("pci") && e.contains("topologies/linux.toml"), "{e}");
        let e = err(&PVH.replace("kernel = \"pvh-probe\"", "kernel = \"pvh-probe\"\nkind = \"driver\""));
        assert!(e.contains("dom0 and driver domains are PV only"), "{e}");
        let e = err(&PVH.replace("image = \"hello\"", "image = \"hello\"\nramdisk = \"linux-initramfs\""));
        assert!(e.contains("domain hello: ramdisk is for type pvh only"), "{e}");
        let e = err(&PVH.replace("kernel = \"pvh-probe\"", "kernel = \"pvh-probe\"\nimage = \"hello\""));
        assert!(e.contains("image is for PV domains"), "{e}");
        let e = err(&PVH.replace("kernel = \"pvh-probe\"", "kernel = \"pvh-probe\"\nargs = \"x=1\""));
        assert!(e.contains("takes cmdline"), "{e}");
        let e = err(&PVH.replace("image = \"hello\"", ""));
        assert!(e.contains("domain hello: a PV domain needs an image"), "{e}");
        let e = err(&PVH.replace("type = \"pv\"", "type = \"hvm\""));
        assert!(e.contains("hvm") && e.contains("type = \"pvh\""), "{e}");
        let e = format!("{:#}", parse_domain_config("g.cfg", "name = \"g\"\nmemory_mib = 64\n").unwrap_err());
        assert!(e.contains("needs an image") && e.contains("fix:"), "{e}");
    }

    const XL_LINUX: &str = r#"
        name = "linux1"
        type = "pvh"
        kernel = "linux"
        ramdisk = "linux-initramfs"
        cmdline = "console=hvc0 guest.mode=stay"
        memory_mib = 128
        on_crash = "restart"
    "#;

    fn xl_err(text: &str) -> String {
        format!("{:#}", parse_domain_config("g.cfg", text).unwrap_err())
    }

    #[test]
    fn xl_configs_of_pvh_guests_parse() {
        let c = parse_domain_config("g.cfg", XL_LINUX).unwrap();
        assert_eq!((c.name.as_str(), c.domain_type, c.memory_mib), ("linux1", DomainType::Pvh, 128));
        assert_eq!((c.kernel.as_deref(), c.ramdisk.as_deref()), (Some("linux"), Some("linux-initramfs")));
        assert_eq!(c.cmdline, "console=hvc0 guest.mode=stay");
        assert_eq!((c.image.as_str(), c.args.as_str(), c.kind), ("", "", DomainKind::DomU));
        assert_eq!(c.on_crash, hv_bundle::OnCrash::Restart);
        let c =
            parse_domain_config("g.cfg", &XL_LINUX.replace("cmdline = \"console=hvc0 guest.mode=stay\"", "")).unwrap();
        assert_eq!(c.cmdline, crate::linux_guest::DEFAULT_CMDLINE, "kernel linux gets the default cmdline");
        let c = parse_domain_config("g.cfg", "name = \"p\"\ntype = \"pvh\"\nkernel = \"pvh-probe\"\nmemory_mib = 16\n")
            .unwrap();
        assert_eq!((c.kernel.as_deref(), c.ramdisk, c.cmdline.as_str()), (Some("pvh-probe"), None, ""));
    }

    #[test]
    fn bad_xl_configs_of_pvh_guests_name_the_fix() {
        let e = xl_err(&XL_LINUX.replace("kernel = \"linux\"", ""));
        assert!(e.contains("g.cfg: domain linux1: a PVH domain needs a kernel") && e.contains("fix:"), "{e}");
        assert!(e.contains("kernel (e.g. \"linux\")"), "{e}");
        let e = xl_err(&XL_LINUX.replace("kernel = \"linux\"", "kernel = \"linux\"\nimage = \"guest\""));
        assert!(e.contains("image is for PV domains") && e.contains("fix:"), "{e}");
        let e = xl_err(&XL_LINUX.replace("kernel = \"linux\"", "kernel = \"linux\"\nargs = \"x=1\""));
        assert!(e.contains("takes cmdline") && e.contains("fix:"), "{e}");
        let e = xl_err(&XL_LINUX.replace("kernel = \"linux\"", "kernel = \"linux\"\nkind = \"driver\""));
        assert!(e.contains("PV only") && e.contains("fix:"), "{e}");
        let e = xl_err(&XL_LINUX.replace("kernel = \"linux\"", "kernel = \"linux\"\npci = [\"1af4:1000\"]"));
        assert!(e.contains("pci passthrough") && e.contains("fix:"), "{e}");
        let e = xl_err(&XL_LINUX.replace("ramdisk = \"linux-initramfs\"", "ramdisk = \"\""));
        assert!(e.contains("ramdisk is empty") && e.contains("fix:"), "{e}");
        let e = xl_err(&XL_LINUX.replace("type = \"pvh\"", "type = \"hvm\""));
        assert!(e.contains("hvm") && e.contains("type = \"pvh\"") && e.contains("fix:"), "{e}");
        let e = xl_err(&XL_LINUX.replace("memory_mib = 128", "memory_mib = 0"));
        assert!(e.contains("memory_mib = 0") && e.contains("fix:"), "{e}");
        let e = xl_err(&XL_LINUX.replace("cmdline", "command_line"));
        assert!(e.contains("command_line") && e.contains("fix:"), "{e}");
    }

    #[test]
    fn xl_memory_mib_sets_room_for_xl_create_and_is_bounded() {
        let dir = std::env::temp_dir().join(format!("xtask-topo-xlmem-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("topologies")).unwrap();
        std::fs::write(dir.join("topologies/x.toml"), format!("xl_memory_mib = 192\nimages = [\"linux\"]\n{GOOD}"))
            .unwrap();
        let loaded = load(&dir, Some("x")).unwrap();
        assert_eq!(loaded.xl_memory_mib, 192);
        assert_eq!(loaded.images(), ["dom0", "hello", "crasher", "linux"]);
        std::fs::write(dir.join("topologies/y.toml"), format!("xl_memory_mib = 100000\n{GOOD}")).unwrap();
        let e = format!("{:#}", load(&dir, Some("y")).unwrap_err());
        assert!(e.contains("xl_memory_mib = 100000") && e.contains("fix: use at most"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resolves_names_and_paths() {
        let dir = std::env::temp_dir().join(format!("xtask-topo-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("topologies")).unwrap();
        std::fs::write(dir.join("topologies/greet.toml"), GOOD).unwrap();
        std::fs::write(dir.join("topologies/default.toml"), GOOD).unwrap();
        assert_eq!(resolve(&dir, Some("greet")).unwrap(), dir.join("topologies/greet.toml"));
        assert_eq!(resolve(&dir, None).unwrap(), dir.join("topologies/default.toml"));
        let by_path = dir.join("topologies/greet.toml");
        assert_eq!(resolve(&dir, by_path.to_str()).unwrap(), by_path);
        let e = format!("{:#}", resolve(&dir, Some("nope")).unwrap_err());
        assert!(e.contains("\"nope\"") && e.contains("known topologies: default, greet"), "{e}");
        let e = format!("{:#}", resolve(&dir, Some("./missing.toml")).unwrap_err());
        assert!(e.contains("missing.toml") && e.contains("does not exist"), "{e}");
        let loaded = load(&dir, Some("greet")).unwrap();
        assert_eq!(loaded.name(), "greet");
        assert_eq!(loaded.images(), ["dom0", "hello", "crasher"]);
        assert_eq!(loaded.domains_with_image("crasher")[0].name, "boom");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
