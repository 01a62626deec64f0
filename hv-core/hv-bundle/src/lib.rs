//! The boot bundle: one blob carrying the topology and every domain ELF image.
//!
//! It reaches the hypervisor as the single PVH `-initrd` or as a GRUB `module2`. Layout:
//!
//! | offset | size | content |
//! |---|---|---|
//! | 0 | 8 | magic `HVBUNDL1` |
//! | 8 | 4 | `index_len`, little endian |
//! | 12 | `index_len` | postcard-encoded [`Index`] |
//! | … | … | image bytes, each at the offset its [`ImageRef`] names (16-byte aligned) |
//!
//! The topology travels as its own postcard blob inside the index so the hypervisor can hand it to
//! Dom0 byte for byte without understanding it.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod restart;

use alloc::string::String;
use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

pub const MAGIC: &[u8; 8] = b"HVBUNDL1";
/// Longest domain or image name, in bytes (`hv_abi::NAME_LEN`: the `domctl` name fields).
pub const MAX_NAME_LEN: usize = 16;
/// Most domains one topology may list.
pub const MAX_DOMAINS: usize = 32;

/// What a domain is for. Only `Dom0` is privileged.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(test, derive(Default))]
pub enum DomainKind {
    Dom0,
    #[cfg_attr(test, default)]
    DomU,
    Driver,
}

/// How a domain is expected to end; Dom0 checks it when the topology runs as a test.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Expect {
    /// Shuts itself down with reason poweroff.
    #[default]
    Exit,
    /// Is destroyed by the hypervisor for a fault.
    Crash,
    /// Never ends by itself; Dom0 destroys it once every other domain has ended.
    Forever,
    /// Destroyed by Dom0 while running, as part of a scenario (e.g. a backend killed mid-stream).
    Destroyed,
}

/// What Dom0 does when a domain crashes (faults, or is killed rather than destroyed by the
/// toolstack): Xen's `on_crash`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnCrash {
    /// Leave it dead.
    #[default]
    Destroy,
    /// Start a new instance with the same config; the frontends it served move to it.
    Restart,
}

/// What Dom0 does once every domain that is expected to end has ended.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFinish {
    /// Keep running (interactive use).
    #[default]
    Stay,
    /// Power the machine off; the exit code says whether every domain ended as expected.
    Shutdown,
}

/// How a domain is virtualised: Xen's xl.cfg `type`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DomainType {
    /// Paravirtualised: one of our unikernels (an `image` in the bundle), in ring 3.
    #[default]
    Pv,
    /// PVH: an unmodified kernel (Linux) entered at its `XEN_ELFNOTE_PHYS32_ENTRY` in a hardware
    /// container; its ELF is the bundle image `kernel`, with an optional `ramdisk` and a `cmdline`.
    Pvh,
}

/// One domain of a topology (see `topologies/*.toml`).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DomainConfig {
    pub name: String,
    /// PV: name of an image in the bundle (a domain binary's name). Empty for PVH domains.
    pub image: String,
    pub memory_mib: u32,
    pub kind: DomainKind,
    pub expect: Expect,
    /// Free-form argument string handed to the domain in its start_info.
    pub args: String,
    /// Split devices this domain is the frontend of.
    pub devices: Vec<DeviceConfig>,
    /// PCI devices assigned to this (driver) domain: `vendor:device` (hex) or `bb:dd.f`.
    pub pci: Vec<String>,
    pub on_crash: OnCrash,
    /// PV (default) or PVH.
    #[serde(default)]
    pub domain_type: DomainType,
    /// PVH: name of the kernel image in the bundle (an ELF with a PVH entry note).
    #[serde(default)]
    pub kernel: Option<String>,
    /// PVH: name of the initial ramdisk image in the bundle, if any.
    #[serde(default)]
    pub ramdisk: Option<String>,
    /// PVH: the kernel command line.
    #[serde(default)]
    pub cmdline: String,
}

/// A split device: this domain is the frontend, `backend` (a domain of the same topology) serves
/// it. Dom0 writes the store paths for it, as Xen's toolstack does.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct DeviceConfig {
    /// Device class, e.g. `"pingpong"`, `"vbd"`, `"vif"` (letters, digits, `-`).
    pub kind: String,
    /// Name of the backend domain.
    pub backend: String,
    /// Backend parameters, written verbatim to the backend's `params` store key (e.g. a vdisk's
    /// `offset_mib=0 size_mib=16 mode=w`).
    pub params: String,
}

/// A whole topology: Dom0 first, then the domains Dom0 creates, in order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub name: String,
    pub on_finish: OnFinish,
    pub domains: Vec<DomainConfig>,
}

/// Where one image lives inside the bundle.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    pub name: String,
    pub offset: u32,
    pub len: u32,
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// postcard-encoded [`Topology`].
    pub topology: Vec<u8>,
    pub images: Vec<ImageRef>,
}

/// Why a topology or bundle was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BundleError {
    TooShort,
    BadMagic,
    IndexOutOfBounds,
    IndexDecode,
    TopologyDecode,
    ImageOutOfBounds { image: String },
    NoDom0,
    Dom0NotFirst,
    TooManyDomains(usize),
    NameTooLong(String),
    BadNameCharacter(String),
    EmptyName,
    DuplicateName(String),
    MissingImage { domain: String, image: String },
    BadDevice { domain: String, why: &'static str },
    ZeroMemory(String),
    // A key that does not fit the domain's type (PV or PVH), or a PVH domain without a kernel.
    BadType { domain: String, why: &'static str },
    // The bundle would pass 4 GiB, past its 32-bit offsets.
    TooLarge { image: String },
}

impl core::fmt::Display for BundleError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort => write!(f, "bundle shorter than its header"),
            Self::BadMagic => write!(f, "not a boot bundle (magic is not HVBUNDL1)"),
            Self::IndexOutOfBounds => write!(f, "bundle index runs past the end of the bundle"),
            Self::IndexDecode => write!(f, "bundle index does not decode"),
            Self::TopologyDecode => write!(f, "topology in the bundle does not decode"),
            Self::ImageOutOfBounds { image } => write!(f, "image {image} runs past the end of the bundle"),
            Self::NoDom0 => write!(f, "topology has no domain of kind dom0"),
            Self::Dom0NotFirst => write!(f, "dom0 must be the first domain and the only one of its kind"),
            Self::TooManyDomains(n) => write!(f, "topology lists {n} domains, at most {MAX_DOMAINS} allowed"),
            Self::NameTooLong(n) => write!(f, "name {n:?} is longer than {MAX_NAME_LEN} bytes"),
            Self::BadNameCharacter(n) => write!(f, "name {n:?} may only use letters, digits, '-' and '_'"),
            Self::EmptyName => write!(f, "a domain has an empty name"),
            Self::DuplicateName(n) => write!(f, "two domains are named {n:?}"),
            Self::BadDevice { domain, why } => write!(f, "domain {domain}: device {why}"),
            Self::MissingImage { domain, image } => {
                write!(f, "domain {domain} names image {image:?}, which the bundle lacks")
            }
            Self::ZeroMemory(n) => write!(f, "domain {n} has memory_mib = 0"),
            Self::BadType { domain, why } => write!(f, "domain {domain}: {why}"),
            Self::TooLarge { image } => write!(f, "image {image} ends past 4 GiB, beyond the bundle's 32-bit offsets"),
        }
    }
}

impl DomainConfig {
    /// The bundle images this domain boots from: its `image` (PV), or its `kernel` and `ramdisk`
    /// (PVH).
    pub fn images(&self) -> impl Iterator<Item = &String> + Clone {
        let pv = (self.domain_type == DomainType::Pv).then_some(&self.image);
        pv.into_iter().chain(&self.kernel).chain(&self.ramdisk)
    }

    /// The rules of [`DomainType`]: a PV domain has an `image` and none of the PVH keys; a PVH
    /// domain has a `kernel`, no `image`, `args`, `pci`, and is a plain DomU.
    pub fn check_type(&self) -> Result<(), BundleError> {
        let bad = |why| Err(BundleError::BadType { domain: self.name.clone(), why });
        match self.domain_type {
            DomainType::Pv => {
                if self.image.is_empty() {
                    return bad("a PV domain needs an image");
                }
                if self.kernel.is_some() {
                    return bad("kernel is for type pvh; a PV domain boots its image");
                }
                if self.ramdisk.is_some() {
                    return bad("ramdisk is for type pvh only");
                }
                if !self.cmdline.is_empty() {
                    return bad("cmdline is for type pvh; a PV domain takes args");
                }
            }
            DomainType::Pvh => {
                if self.kernel.as_ref().is_none_or(String::is_empty) {
                    return bad("a PVH domain needs a kernel");
                }
                if !self.image.is_empty() {
                    return bad("image is for PV domains; a PVH domain boots its kernel");
                }
                if self.ramdisk.as_ref().is_some_and(String::is_empty) {
                    return bad("ramdisk is empty");
                }
                if self.kind != DomainKind::DomU {
                    return bad("dom0 and driver domains are PV only");
                }
                if !self.pci.is_empty() {
                    return bad("pci passthrough is for PV (driver) domains only");
                }
                if !self.args.is_empty() {
                    return bad("args is for PV domains; a PVH domain takes cmdline");
                }
            }
        }
        Ok(())
    }
}

impl Topology {
    /// Checks the rules every consumer relies on; `images` are the names the bundle carries.
    pub fn validate<'a>(&self, images: impl Iterator<Item = &'a str> + Clone) -> Result<(), BundleError> {
        if self.domains.len() > MAX_DOMAINS {
            return Err(BundleError::TooManyDomains(self.domains.len()));
        }
        match self.domains.first() {
            Some(d) if d.kind == DomainKind::Dom0 => {}
            _ if self.domains.iter().any(|d| d.kind == DomainKind::Dom0) => return Err(BundleError::Dom0NotFirst),
            _ => return Err(BundleError::NoDom0),
        }
        for (i, d) in self.domains.iter().enumerate() {
            if i > 0 && d.kind == DomainKind::Dom0 {
                return Err(BundleError::Dom0NotFirst);
            }
            if d.name.is_empty() {
                return Err(BundleError::EmptyName);
            }
            for n in [&d.name, &d.image].into_iter().chain(&d.kernel).chain(&d.ramdisk) {
                if n.len() > MAX_NAME_LEN {
                    return Err(BundleError::NameTooLong(n.clone()));
                }
            }
            if !d.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(BundleError::BadNameCharacter(d.name.clone()));
            }
            if self.domains[..i].iter().any(|o| o.name == d.name) {
                return Err(BundleError::DuplicateName(d.name.clone()));
            }
            if d.memory_mib == 0 {
                return Err(BundleError::ZeroMemory(d.name.clone()));
            }
            for dev in &d.devices {
                let bad = |why| Err(BundleError::BadDevice { domain: d.name.clone(), why });
                if dev.kind.is_empty() || !dev.kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                    return bad("kind must be letters, digits and '-'");
                }
                if dev.backend == d.name {
                    return bad("backend is the domain itself");
                }
                if !self.domains.iter().any(|o| o.name == dev.backend) {
                    return bad("backend names no domain of this topology");
                }
            }
            d.check_type()?;
            let wanted = match d.domain_type {
                DomainType::Pv => Some(&d.image),
                DomainType::Pvh => d.kernel.as_ref(),
            };
            for image in wanted.into_iter().chain(&d.ramdisk) {
                if !images.clone().any(|n| n == image) {
                    return Err(BundleError::MissingImage { domain: d.name.clone(), image: image.clone() });
                }
            }
        }
        Ok(())
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("postcard encoding into a Vec cannot fail")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, BundleError> {
        postcard::from_bytes(bytes).map_err(|_| BundleError::TopologyDecode)
    }
}

/// Packs a topology and its images into one bundle. Validates the topology first.
pub fn build(topology: &Topology, images: &[(String, Vec<u8>)]) -> Result<Vec<u8>, BundleError> {
    topology.validate(images.iter().map(|(n, _)| n.as_str()))?;
    // Two passes: the index's encoded length depends on the offsets it holds, so lay the images
    // out after a generous estimate and fix the offsets once the index size is known.
    let mut refs: Vec<ImageRef> =
        images.iter().map(|(n, b)| ImageRef { name: n.clone(), offset: 0, len: b.len() as u32 }).collect();
    let topo = topology.encode();
    let mut index_len = 0usize;
    for _ in 0..4 {
        let mut off = align16(12 + index_len);
        for (r, (name, b)) in refs.iter_mut().zip(images) {
            let end = off + b.len();
            if u32::try_from(end).is_err() {
                return Err(BundleError::TooLarge { image: name.clone() });
            }
            r.offset = off as u32;
            off = align16(end);
        }
        let enc = postcard::to_allocvec(&Index { topology: topo.clone(), images: refs.clone() }).unwrap();
        if enc.len() == index_len {
            break;
        }
        index_len = enc.len();
    }
    let index = postcard::to_allocvec(&Index { topology: topo, images: refs.clone() }).unwrap();
    assert_eq!(index.len(), index_len, "bundle index layout did not converge");
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&(index.len() as u32).to_le_bytes());
    out.extend_from_slice(&index);
    for (r, (_, b)) in refs.iter().zip(images) {
        out.resize(r.offset as usize, 0);
        out.extend_from_slice(b);
    }
    Ok(out)
}

fn align16(x: usize) -> usize {
    (x + 15) & !15
}

/// A parsed, bounds-checked view of a bundle.
#[derive(Debug)]
pub struct Bundle<'a> {
    pub raw: &'a [u8],
    pub index: Index,
}

impl<'a> Bundle<'a> {
    pub fn parse(raw: &'a [u8]) -> Result<Self, BundleError> {
        if raw.len() < 12 {
            return Err(BundleError::TooShort);
        }
        if &raw[..8] != MAGIC {
            return Err(BundleError::BadMagic);
        }
        let len = u32::from_le_bytes(raw[8..12].try_into().unwrap()) as usize;
        let idx = raw
            .get(12..12usize.checked_add(len).ok_or(BundleError::IndexOutOfBounds)?)
            .ok_or(BundleError::IndexOutOfBounds)?;
        let index: Index = postcard::from_bytes(idx).map_err(|_| BundleError::IndexDecode)?;
        for r in &index.images {
            let end = (r.offset as usize).checked_add(r.len as usize);
            if end.is_none_or(|e| e > raw.len()) {
                return Err(BundleError::ImageOutOfBounds { image: r.name.clone() });
            }
        }
        Ok(Self { raw, index })
    }

    pub fn topology(&self) -> Result<Topology, BundleError> {
        let t = Topology::decode(&self.index.topology)?;
        t.validate(self.index.images.iter().map(|r| r.name.as_str()))?;
        Ok(t)
    }

    pub fn image(&self, name: &str) -> Option<&'a [u8]> {
        let r = self.index.images.iter().find(|r| r.name == name)?;
        Some(&self.raw[r.offset as usize..(r.offset + r.len) as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::ToString;
    use alloc::vec;

    fn dom(name: &str, image: &str, kind: DomainKind) -> DomainConfig {
        DomainConfig {
            name: name.into(),
            image: image.into(),
            memory_mib: 4,
            kind,
            expect: Expect::Exit,
            args: String::new(),
            devices: Vec::new(),
            pci: Vec::new(),
            on_crash: OnCrash::Destroy,
            domain_type: DomainType::Pv,
            kernel: None,
            ramdisk: None,
            cmdline: String::new(),
        }
    }

    fn pvh(name: &str, kernel: &str, ramdisk: Option<&str>) -> DomainConfig {
        DomainConfig {
            image: String::new(),
            memory_mib: 256,
            domain_type: DomainType::Pvh,
            kernel: Some(kernel.into()),
            ramdisk: ramdisk.map(Into::into),
            cmdline: "console=hvc0 guest.mode=poweroff".into(),
            ..dom(name, "", DomainKind::DomU)
        }
    }

    fn topo() -> Topology {
        Topology {
            name: "t".into(),
            on_finish: OnFinish::Shutdown,
            domains: vec![dom("dom0", "dom0", DomainKind::Dom0), dom("a", "hello", DomainKind::DomU)],
        }
    }

    #[test]
    fn roundtrip() {
        let images = vec![("dom0".to_string(), vec![1u8; 33]), ("hello".to_string(), vec![2u8; 5000])];
        let b = build(&topo(), &images).unwrap();
        let p = Bundle::parse(&b).unwrap();
        assert_eq!(p.topology().unwrap(), topo());
        assert_eq!(p.image("dom0").unwrap(), &[1u8; 33][..]);
        assert_eq!(p.image("hello").unwrap(), &vec![2u8; 5000][..]);
        assert!(p.image("nope").is_none());
        assert!(p.index.images.iter().all(|r| r.offset % 16 == 0));
    }

    #[test]
    fn rejects_bad_topologies() {
        let images = vec![("dom0".to_string(), vec![1u8]), ("hello".to_string(), vec![2u8])];
        let mut t = topo();
        t.domains.swap(0, 1);
        assert_eq!(build(&t, &images), Err(BundleError::Dom0NotFirst));
        let mut t = topo();
        t.domains[1].image = "missing".into();
        assert!(matches!(build(&t, &images), Err(BundleError::MissingImage { .. })));
        let mut t = topo();
        t.domains[1].name = "dom0".into();
        assert_eq!(build(&t, &images), Err(BundleError::DuplicateName("dom0".into())));
        let mut t = topo();
        t.domains[1].name = "a-very-long-name-indeed".into();
        assert!(matches!(build(&t, &images), Err(BundleError::NameTooLong(_))));
        let mut t = topo();
        t.domains[1].name = "[hv] forged".into();
        assert!(matches!(build(&t, &images), Err(BundleError::BadNameCharacter(_))));
        let mut t = topo();
        t.domains.remove(0);
        assert_eq!(build(&t, &images), Err(BundleError::NoDom0));
        let mut t = topo();
        t.domains[1].devices.push(DeviceConfig { kind: "vbd".into(), backend: "nobody".into(), params: String::new() });
        assert!(matches!(build(&t, &images), Err(BundleError::BadDevice { .. })));
        let mut t = topo();
        t.domains[1].devices.push(DeviceConfig { kind: "vbd".into(), backend: "a".into(), params: String::new() });
        assert!(matches!(build(&t, &images), Err(BundleError::BadDevice { .. })));
        let mut t = topo();
        t.domains[1].devices.push(DeviceConfig { kind: "vbd".into(), backend: "dom0".into(), params: String::new() });
        assert!(build(&t, &images).is_ok());
    }

    #[test]
    fn carries_pvh_kernels_and_ramdisks() {
        let mut t = topo();
        t.domains.push(pvh("linux", "linux", Some("linux-initramfs")));
        t.domains.push(pvh("probe", "pvh-probe", None));
        let images = vec![
            ("dom0".to_string(), vec![1u8; 33]),
            ("hello".to_string(), vec![2u8; 50]),
            ("linux".to_string(), vec![3u8; 70_001]),
            ("linux-initramfs".to_string(), vec![4u8; 9_999]),
            ("pvh-probe".to_string(), vec![5u8; 100]),
        ];
        let b = build(&t, &images).unwrap();
        let p = Bundle::parse(&b).unwrap();
        let back = p.topology().unwrap();
        assert_eq!(back, t);
        assert_eq!(back.domains[2].domain_type, DomainType::Pvh);
        assert_eq!(back.domains[2].cmdline, "console=hvc0 guest.mode=poweroff");
        let names: Vec<&String> = back.domains[2].images().collect();
        assert_eq!(names, ["linux", "linux-initramfs"]);
        assert_eq!(p.image("linux").unwrap(), &vec![3u8; 70_001][..]);
        assert_eq!(p.image("linux-initramfs").unwrap(), &vec![4u8; 9_999][..]);
        assert_eq!(p.image("pvh-probe").unwrap(), &[5u8; 100][..]);
        assert_eq!(back.domains[1].images().collect::<Vec<_>>(), ["hello"]);
        assert!(p.index.images.iter().all(|r| r.offset % 16 == 0));
        // The kernel and the ramdisk must be in the bundle.
        assert_eq!(
            build(&t, &images[..3]),
            Err(BundleError::MissingImage { domain: "linux".into(), image: "linux-initramfs".into() })
        );
        let without_probe: Vec<_> = images.iter().filter(|(n, _)| n != "pvh-probe").cloned().collect();
        assert_eq!(
            build(&t, &without_probe),
            Err(BundleError::MissingImage { domain: "probe".into(), image: "pvh-probe".into() })
        );
    }

    #[test]
    fn pvh_and_pv_keys_do_not_mix() {
        let images =
            vec![("dom0".to_string(), vec![1u8]), ("hello".to_string(), vec![2u8]), ("k".to_string(), vec![3u8])];
        let why = |d: DomainConfig| {
            let mut t = topo();
            t.domains.push(d);
            match build(&t, &images) {
                Err(BundleError::BadType { domain, why }) => {
                    assert_eq!(domain, "g");
                    why
                }
                other => panic!("{other:?}"),
            }
        };
        assert!(why(DomainConfig { kernel: None, ..pvh("g", "k", None) }).contains("needs a kernel"));
        assert!(why(DomainConfig { image: "hello".into(), ..pvh("g", "k", None) }).contains("image is for PV"));
        assert!(why(DomainConfig { kind: DomainKind::Driver, ..pvh("g", "k", None) }).contains("PV only"));
        assert!(why(DomainConfig { pci: vec!["1af4:1000".into()], ..pvh("g", "k", None) }).contains("pci"));
        assert!(why(DomainConfig { args: "x=1".into(), ..pvh("g", "k", None) }).contains("cmdline"));
        assert!(
            why(DomainConfig { ramdisk: Some("k".into()), ..dom("g", "hello", DomainKind::DomU) }).contains("pvh only")
        );
        assert!(
            why(DomainConfig { kernel: Some("k".into()), ..dom("g", "hello", DomainKind::DomU) })
                .contains("kernel is for")
        );
        assert!(why(DomainConfig { cmdline: "quiet".into(), ..dom("g", "hello", DomainKind::DomU) }).contains("args"));
        assert!(why(dom("g", "", DomainKind::DomU)).contains("needs an image"));
        let mut t = topo();
        t.domains.push(pvh("g", "a-kernel-name-too-long", None));
        assert!(matches!(build(&t, &images), Err(BundleError::NameTooLong(_))));
        let mut t = topo();
        t.domains.push(pvh("g", "k", None));
        assert!(build(&t, &images).is_ok(), "a PVH domain without a ramdisk is fine");
    }

    #[test]
    fn rejects_corrupt_bundles() {
        let images = vec![("dom0".to_string(), vec![1u8; 64]), ("hello".to_string(), vec![2u8; 64])];
        let b = build(&topo(), &images).unwrap();
        assert_eq!(Bundle::parse(&b[..5]).unwrap_err(), BundleError::TooShort);
        let mut bad = b.clone();
        bad[0] = b'X';
        assert_eq!(Bundle::parse(&bad).unwrap_err(), BundleError::BadMagic);
        assert!(matches!(Bundle::parse(&b[..b.len() - 1]).unwrap_err(), BundleError::ImageOutOfBounds { .. }));
        let mut bad = b.clone();
        bad[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Bundle::parse(&bad).unwrap_err(), BundleError::IndexOutOfBounds);
        // Every truncation is an error, never a panic.
        for n in 0..b.len() {
            let _ = Bundle::parse(&b[..n]);
        }
    }
}
