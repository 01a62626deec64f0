//! The DMAR table (Intel VT-d spec 4.x, §8): the host address width and the DMA remapping
//! hardware units (DRHD: register base, PCI segment, device scope). Other remapping structures
//! (RMRR, ATSR, RHSA, ANDD, SATC) are skipped after their length is checked.
//!
//! Layout: the ACPI header (36 bytes), `HostAddressWidth: u8` at 36 (width − 1), `Flags: u8` at
//! 37, 10 reserved bytes, then structures from 48, each `Type: u16, Length: u16`. A DRHD (type 0):
//! `Flags: u8` at 4 (bit 0 INCLUDE_PCI_ALL), `Size: u8` at 5, `Segment: u16` at 6,
//! `RegisterBase: u64` at 8, device scopes from 16: `Type: u8, Length: u8, Flags: u8, _: u8,
//! EnumerationId: u8, StartBus: u8`, then `(device, function)` pairs.

use super::sdt::{self, SdtError};
use alloc::vec::Vec;
use hv_abi::pci::Bdf;

pub const SIGNATURE: &[u8; 4] = b"DMAR";
const STRUCTURES_AT: usize = 48;
const DRHD: u16 = 0;
/// Most DRHD units and device scopes accepted (a table with more is refused as hostile).
pub const MAX_UNITS: usize = 16;
pub const MAX_SCOPES: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScopeKind {
    /// A PCI endpoint (type 1).
    Endpoint,
    /// A PCI bridge and everything below it (type 2).
    SubHierarchy,
    /// IOAPIC (3), HPET (4), ACPI namespace device (5) or a reserved type.
    Other(u8),
}

/// One device scope entry. `path` holds the (device, function) hops from `start_bus`; a
/// single hop names a device on `start_bus` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    pub kind: ScopeKind,
    pub start_bus: u8,
    pub path: Vec<(u8, u8)>,
}

impl Scope {
    /// The BDF this scope names without walking bridges: one hop from the start bus.
    pub fn direct_bdf(&self) -> Option<Bdf> {
        match self.path.as_slice() {
            [(dev, func)] if *dev < 32 && *func < 8 => Some(Bdf { bus: self.start_bus, dev: *dev, func: *func }),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub segment: u16,
    /// The page of the unit's registers.
    pub register_base: u64,
    /// INCLUDE_PCI_ALL: every device of the segment not claimed by another unit.
    pub include_all: bool,
    pub scopes: Vec<Scope>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dmar {
    /// The platform's DMA address width in bits.
    pub host_address_width: u8,
    /// Flags (bit 0: interrupt remapping, bit 1: x2APIC opt-out, bit 2: DMA control opt-in).
    pub flags: u8,
    pub units: Vec<Unit>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarError {
    Table(SdtError),
    /// The table ends before its fixed fields.
    TooShort(usize),
    /// A remapping structure at `offset` whose length is below 4 or runs past the table.
    BadStructure {
        offset: usize,
        length: u16,
    },
    /// A DRHD shorter than its 16 fixed bytes.
    ShortUnit {
        offset: usize,
    },
    /// A device scope at `offset` whose length is below 6, odd-sized path or past its DRHD.
    BadScope {
        offset: usize,
        length: u8,
    },
    /// A register base that is not page-aligned or is zero.
    BadRegisterBase(u64),
    TooManyUnits,
    TooManyScopes,
    NoUnits,
}

impl core::fmt::Display for DmarError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Table(e) => write!(f, "DMAR: {e}"),
            Self::TooShort(l) => write!(f, "DMAR is {l} bytes, its fixed fields need {STRUCTURES_AT}"),
            Self::BadStructure { offset, length } => {
                write!(f, "DMAR structure at offset {offset} has length {length} (below 4 or past the table)")
            }
            Self::ShortUnit { offset } => write!(f, "DMAR DRHD at offset {offset} is shorter than 16 bytes"),
            Self::BadScope { offset, length } => {
                write!(
                    f,
                    "DMAR device scope at offset {offset} has length {length} (below 6, odd path or past its unit)"
                )
            }
            Self::BadRegisterBase(b) => write!(f, "DMAR DRHD register base {b:#x} is zero or not page-aligned"),
            Self::TooManyUnits => write!(f, "DMAR lists more than {MAX_UNITS} remapping units"),
            Self::TooManyScopes => write!(f, "DMAR lists more than {MAX_SCOPES} device scopes"),
            Self::NoUnits => write!(f, "DMAR lists no remapping unit"),
        }
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

/// Parses a DMAR table (`b` holds at least its `Length` bytes).
pub fn parse(b: &[u8]) -> Result<Dmar, DmarError> {
    let t = sdt::check(b, SIGNATURE).map_err(DmarError::Table)?;
    if t.len() < STRUCTURES_AT {
        return Err(DmarError::TooShort(t.len()));
    }
    let mut out = Dmar { host_address_width: t[36].saturating_add(1), flags: t[37], units: Vec::new() };
    let mut scopes_total = 0;
    let mut at = STRUCTURES_AT;
    while at < t.len() {
        if t.len() - at < 4 {
            return Err(DmarError::BadStructure { offset: at, length: 0 });
        }
        let (ty, length) = (u16_at(t, at), u16_at(t, at + 2));
        let end = at + length as usize;
        if length < 4 || end > t.len() {
            return Err(DmarError::BadStructure { offset: at, length });
        }
        if ty == DRHD {
            if length < 16 {
                return Err(DmarError::ShortUnit { offset: at });
            }
            if out.units.len() == MAX_UNITS {
                return Err(DmarError::TooManyUnits);
            }
            let s = &t[at..end];
            let register_base = u64::from_le_bytes(s[8..16].try_into().unwrap_or([0; 8]));
            if register_base == 0 || register_base & 0xfff != 0 {
                return Err(DmarError::BadRegisterBase(register_base));
            }
            let mut unit =
                Unit { segment: u16_at(s, 6), register_base, include_all: s[4] & 1 != 0, scopes: Vec::new() };
            let mut p = 16;
            while p < s.len() {
                let len = if s.len() - p >= 2 { s[p + 1] } else { 0 };
                let send = p + len as usize;
                if len < 6 || (len - 6) % 2 != 0 || send > s.len() {
                    return Err(DmarError::BadScope { offset: at + p, length: len });
                }
                scopes_total += 1;
                if scopes_total > MAX_SCOPES {
                    return Err(DmarError::TooManyScopes);
                }
                let kind = match s[p] {
                    1 => ScopeKind::Endpoint,
                    2 => ScopeKind::SubHierarchy,
                    k => ScopeKind::Other(k),
                };
                let path = s[p + 6..send].chunks_exact(2).map(|c| (c[0], c[1])).collect();
                unit.scopes.push(Scope { kind, start_bus: s[p + 5], path });
                p = send;
            }
            out.units.push(unit);
        }
        at = end;
    }
    if out.units.is_empty() {
        return Err(DmarError::NoUnits);
    }
    Ok(out)
}

impl Dmar {
    /// The unit that remaps `bdf` on segment 0: one whose scope names it as an endpoint one hop
    /// from its start bus, else the segment's INCLUDE_PCI_ALL unit. Scopes behind bridges
    /// (longer paths, sub-hierarchies) are not resolved (that needs the bridges' bus numbers):
    /// such a device falls to the INCLUDE_PCI_ALL unit or to none. `None`: no unit remaps it.
    pub fn unit_for(&self, bdf: Bdf) -> Option<usize> {
        let seg0 = |u: &&Unit| u.segment == 0;
        self.units
            .iter()
            .position(|u| {
                seg0(&u) && u.scopes.iter().any(|s| s.kind == ScopeKind::Endpoint && s.direct_bdf() == Some(bdf))
            })
            .or_else(|| self.units.iter().position(|u| seg0(&u) && u.include_all))
    }
}

/// A DMAR like QEMU's `-device intel-iommu` on q35 (one INCLUDE_PCI_ALL unit at 0xfed90000,
/// 39-bit host address width) with `scopes` appended to the unit's scopes (tests and seeds).
pub fn make_qemu_like(register_base: u64, scopes: &[u8]) -> Vec<u8> {
    let mut body = alloc::vec![0u8; STRUCTURES_AT - sdt::HEADER_LEN];
    body[0] = 38; // 39-bit
    let mut drhd = alloc::vec![0u8; 16];
    drhd[2..4].copy_from_slice(&((16 + scopes.len()) as u16).to_le_bytes());
    drhd[4] = 1;
    drhd[8..16].copy_from_slice(&register_base.to_le_bytes());
    drhd.extend_from_slice(scopes);
    body.extend(drhd);
    sdt::make_table(SIGNATURE, 1, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IOAPIC scope (as QEMU adds with intremap=on): type 3, id 0, bus 0xff, path 00.0.
    const IOAPIC: [u8; 8] = [3, 8, 0, 0, 0, 0xff, 0, 0];

    #[test]
    fn parses_qemus_table() {
        let d = parse(&make_qemu_like(0xfed9_0000, &IOAPIC)).unwrap();
        assert_eq!(d.host_address_width, 39);
        assert_eq!(d.units.len(), 1);
        let u = &d.units[0];
        assert_eq!((u.segment, u.register_base, u.include_all), (0, 0xfed9_0000, true));
        assert_eq!(u.scopes, [Scope { kind: ScopeKind::Other(3), start_bus: 0xff, path: alloc::vec![(0, 0)] }]);
        assert_eq!(d.unit_for(Bdf { bus: 0, dev: 3, func: 0 }), Some(0));
    }

    #[test]
    fn an_endpoint_scope_beats_include_all() {
        // Unit 0: include-all; unit 1: endpoint 00:02.0 only (a graphics unit, as on real boards).
        let mut body = alloc::vec![0u8; 12];
        body[0] = 38;
        for (base, all, scopes) in [(0xfed9_0000u64, 1u8, &[][..]), (0xfed9_1000, 0, &[1u8, 8, 0, 0, 0, 0, 2, 0][..])] {
            let mut s = alloc::vec![0u8; 16];
            s[2..4].copy_from_slice(&((16 + scopes.len()) as u16).to_le_bytes());
            s[4] = all;
            s[8..16].copy_from_slice(&base.to_le_bytes());
            s.extend_from_slice(scopes);
            body.extend(s);
        }
        // An RMRR (type 1) is skipped.
        body.extend([1, 0, 24, 0].iter().chain([0u8; 20].iter()));
        let d = parse(&sdt::make_table(SIGNATURE, 1, &body)).unwrap();
        assert_eq!(d.units.len(), 2);
        assert_eq!(d.unit_for(Bdf { bus: 0, dev: 2, func: 0 }), Some(1));
        assert_eq!(d.unit_for(Bdf { bus: 0, dev: 3, func: 0 }), Some(0));
    }

    #[test]
    fn hostile_tables_are_errors() {
        let good = make_qemu_like(0xfed9_0000, &IOAPIC);
        // A structure whose length runs past the table.
        let mut b = good.clone();
        b[50] = 0xff;
        let b = sdt::make_table(SIGNATURE, 1, &b[36..]);
        assert!(matches!(parse(&b), Err(DmarError::BadStructure { offset: 48, .. })), "{:?}", parse(&b));
        // Zero-length structure (would loop forever).
        let mut b = good.clone();
        b[50] = 0;
        b[51] = 0;
        let b = sdt::make_table(SIGNATURE, 1, &b[36..]);
        assert!(matches!(parse(&b), Err(DmarError::BadStructure { length: 0, .. })));
        // A scope of length 0, and one with an odd path.
        for bad in [[3u8, 0, 0, 0, 0, 0xff, 0, 0], [3, 7, 0, 0, 0, 0xff, 0, 0]] {
            assert!(matches!(parse(&make_qemu_like(0xfed9_0000, &bad)), Err(DmarError::BadScope { .. })));
        }
        // Unaligned or zero register base.
        assert_eq!(parse(&make_qemu_like(0xfed9_0010, &[])), Err(DmarError::BadRegisterBase(0xfed9_0010)));
        assert_eq!(parse(&make_qemu_like(0, &[])), Err(DmarError::BadRegisterBase(0)));
        // No units; wrong signature; truncated; bad checksum.
        assert_eq!(parse(&sdt::make_table(SIGNATURE, 1, &[38; 12])), Err(DmarError::NoUnits));
        assert_eq!(parse(&sdt::make_table(SIGNATURE, 1, &[38; 4])), Err(DmarError::TooShort(40)));
        assert!(matches!(parse(&sdt::make_table(b"APIC", 1, &good[36..])), Err(DmarError::Table(_))));
        assert!(matches!(parse(&good[..50]), Err(DmarError::Table(SdtError::Truncated { .. }))));
        let mut b = good;
        b[60] ^= 1;
        assert_eq!(parse(&b), Err(DmarError::Table(SdtError::BadChecksum)));
    }

    #[test]
    fn unit_and_scope_counts_are_bounded() {
        let scopes: Vec<u8> = (0..=MAX_SCOPES as u8).flat_map(|i| [1u8, 8, 0, 0, 0, 0, i % 32, 0]).collect();
        assert_eq!(parse(&make_qemu_like(0xfed9_0000, &scopes)), Err(DmarError::TooManyScopes));
        let mut body = alloc::vec![0u8; 12];
        for _ in 0..=MAX_UNITS {
            let mut s = alloc::vec![0u8; 16];
            s[2] = 16;
            s[8..16].copy_from_slice(&0xfed9_0000u64.to_le_bytes());
            body.extend(s);
        }
        assert_eq!(parse(&sdt::make_table(SIGNATURE, 1, &body)), Err(DmarError::TooManyUnits));
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(
            DmarError::BadRegisterBase(0x10).to_string(),
            "DMAR DRHD register base 0x10 is zero or not page-aligned"
        );
    }
}
