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

    pub fn decode(v: u64) -> Option<Self> {
        match v >> 32 {
            0 => Some(Self::Id { vendor: (v >> 16) as u16, device: v as u16 }),
            1 if v >> 16 & 0xffff == 0 => Some(Self::Address(Bdf::from_u16(v as u16))),
            _ => None,
        }
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
}
