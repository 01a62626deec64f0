//! PCI addresses and the device selectors of `domctl assign_pci`.

/// Bus/device/function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Bdf {
    pub bus: u8,
    pub dev: u8,
    pub func: u8,
}

impl Bdf {
    pub fn from_u16(v: u16) -> Self {
        Self { bus: (v >> 8) as u8, dev: ((v >> 3) & 31) as u8, func: (v & 7) as u8 }
    }
    pub fn to_u16(self) -> u16 {
        (self.bus as u16) << 8 | (self.dev as u16) << 3 | self.func as u16
    }
}

impl core::fmt::Display for Bdf {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.dev, self.func)
    }
}

/// The devices a topology names: `vendor:device` (hex, e.g. `1af4:1001`) or `bb:dd.f`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selector {
    Id { vendor: u16, device: u16 },
    Address(Bdf),
}

impl Selector {
    pub fn parse(s: &str) -> Option<Self> {
        if let Some((bd, f)) = s.split_once('.') {
            let (b, d) = bd.split_once(':')?;
            return Some(Self::Address(Bdf {
                bus: u8::from_str_radix(b, 16).ok()?,
                dev: u8::from_str_radix(d, 16).ok().filter(|&d| d < 32)?,
                func: f.parse().ok().filter(|&f: &u8| f < 8)?,
            }));
        }
        let (v, d) = s.split_once(':')?;
        Some(Self::Id { vendor: u16::from_str_radix(v, 16).ok()?, device: u16::from_str_radix(d, 16).ok()? })
    }

    /// Encoding used by `domctl assign_pci`: bit 32 set = address, else vendor << 16 | device.
    pub fn encode(self) -> u64 {
        match self {
            Self::Id { vendor, device } => (vendor as u64) << 16 | device as u64,
            Self::Address(b) => 1 << 32 | b.to_u16() as u64,
        }
    }

    /// Whether the device at `bdf` with these ids is one this selector names. A virtio device
    /// is named by either of its ids: `1af4:1001` (transitional virtio-blk) also names a
    /// modern-only virtio-blk (`1af4:1042`, as QEMU presents devices behind an IOMMU) and the
    /// other way round, so one topology serves with and without the IOMMU.
    pub fn matches(self, vendor: u16, device: u16, bdf: Bdf) -> bool {
        match self {
            Self::Address(b) => b == bdf,
            Self::Id { vendor: v, device: d } => {
                v == vendor
                    && (d == device
                        || (v == VIRTIO_VENDOR && virtio_type(d).is_some_and(|t| Some(t) == virtio_type(device))))
            }
        }
    }

    pub fn decode(v: u64) -> Option<Self> {
        match v >> 32 {
            0 => Some(Self::Id { vendor: (v >> 16) as u16, device: v as u16 }),
            1 if v >> 16 & 0xffff == 0 => Some(Self::Address(Bdf::from_u16(v as u16))),
            _ => None,
        }
    }
}

/// The PCI vendor id of virtio devices.
pub const VIRTIO_VENDOR: u16 = 0x1af4;

/// The virtio device type (spec §5) a virtio PCI device id stands for: modern ids are
/// `0x1040 + type`, transitional ones a fixed table (§4.1.2.1).
pub fn virtio_type(device: u16) -> Option<u16> {
    match device {
        0x1000 => Some(1), // network
        0x1001 => Some(2), // block
        0x1002 => Some(5), // balloon
        0x1003 => Some(3), // console
        0x1004 => Some(8), // SCSI host
        0x1005 => Some(4), // entropy
        0x1009 => Some(9), // 9P transport
        0x1041..=0x107f => Some(device - 0x1040),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        assert_eq!(Selector::parse("1af4:1001"), Some(Selector::Id { vendor: 0x1af4, device: 0x1001 }));
        let a = Selector::parse("00:02.0").unwrap();
        assert_eq!(a, Selector::Address(Bdf { bus: 0, dev: 2, func: 0 }));
        for s in [a, Selector::parse("1af4:1042").unwrap()] {
            assert_eq!(Selector::decode(s.encode()), Some(s));
        }
        assert_eq!(Selector::parse("00:40.0"), None);
        assert_eq!(Selector::parse("nonsense"), None);
        assert_eq!(Selector::decode(7 << 32), None);
    }

    #[test]
    fn a_virtio_selector_names_the_transitional_and_the_modern_device() {
        let at = Bdf { bus: 0, dev: 3, func: 0 };
        let blk = Selector::parse("1af4:1001").unwrap();
        assert!(blk.matches(0x1af4, 0x1001, at));
        assert!(blk.matches(0x1af4, 0x1042, at), "modern virtio-blk");
        assert!(!blk.matches(0x1af4, 0x1041, at), "modern virtio-net is not a disk");
        assert!(!blk.matches(0x1af4, 0x1000, at));
        assert!(!blk.matches(0x8086, 0x1042, at), "another vendor's 1042");
        let net = Selector::parse("1af4:1041").unwrap();
        assert!(net.matches(0x1af4, 0x1000, at) && net.matches(0x1af4, 0x1041, at));
        // Non-virtio ids of the same vendor match only themselves.
        let other = Selector::parse("1af4:1100").unwrap();
        assert!(other.matches(0x1af4, 0x1100, at) && !other.matches(0x1af4, 0x1101, at));
        assert!(Selector::Address(at).matches(0, 0, at));
        assert!(!Selector::Address(at).matches(0x1af4, 0x1001, Bdf { bus: 0, dev: 4, func: 0 }));
    }
}
