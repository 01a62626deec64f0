//! The ACPI root: where the firmware's RSDT/XSDT are, read from an RSDP the loader passed —
//! a copy in multiboot2 tags 14 (ACPI 1.0 RSDP) and 15 (ACPI 2.0+ RSDP), or the RSDP in memory
//! that PVH's `rsdp_paddr` points at. Under UEFI there is no BIOS area to scan for "RSD PTR ":
//! the loader's copy is the way to the tables. Plain Rust over the raw bytes (host-tested); a bad
//! signature or checksum is an error, never a panic.
//!
//! Layout (ACPI 6.5 §5.2.5.3): `"RSD PTR "` at 0, checksum of bytes 0..20 at 8, OEM id at 9,
//! revision at 15 (0 = ACPI 1.0, 2 = 2.0+), `RsdtAddress: u32` at 16; from revision 2 on:
//! `Length: u32` at 20 (36), `XsdtAddress: u64` at 24, extended checksum of all 36 bytes at 32.

pub const SIGNATURE: &[u8; 8] = b"RSD PTR ";
/// An ACPI 1.0 RSDP.
pub const V1_LEN: usize = 20;
/// An ACPI 2.0+ RSDP.
pub const V2_LEN: usize = 36;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiRoot {
    /// The RSDP's revision (0 for ACPI 1.0, 2 for 2.0 and later).
    pub revision: u8,
    /// The RSDT's physical address (0 when the firmware gives only an XSDT).
    pub rsdt: u32,
    /// The XSDT's physical address (revision 2 and later, when non-zero).
    pub xsdt: Option<u64>,
}

impl AcpiRoot {
    /// The root table to read: the XSDT when there is one, else the RSDT.
    pub fn root_table(&self) -> u64 {
        self.xsdt.unwrap_or(self.rsdt as u64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RsdpError {
    /// Fewer bytes than the RSDP's revision needs.
    Truncated {
        len: usize,
        need: usize,
    },
    BadSignature,
    /// Bytes 0..20 do not sum to 0 (mod 256).
    BadChecksum,
    /// The 36 bytes of a revision-2 RSDP do not sum to 0.
    BadExtendedChecksum,
    /// A revision-2 RSDP whose `Length` is below 36.
    BadLength(u32),
    /// Neither an RSDT nor an XSDT address.
    NoTables,
}

impl core::fmt::Display for RsdpError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Truncated { len, need } => write!(f, "ACPI RSDP is {len} bytes, its revision needs {need}"),
            Self::BadSignature => write!(f, "ACPI RSDP does not start with \"RSD PTR \""),
            Self::BadChecksum => write!(f, "ACPI RSDP checksum (bytes 0..20) does not sum to 0"),
            Self::BadExtendedChecksum => write!(f, "ACPI RSDP extended checksum (36 bytes) does not sum to 0"),
            Self::BadLength(l) => write!(f, "ACPI RSDP length {l} is below 36"),
            Self::NoTables => write!(f, "ACPI RSDP names neither an RSDT nor an XSDT"),
        }
    }
}

fn sums_to_zero(b: &[u8]) -> bool {
    b.iter().fold(0u8, |a, &x| a.wrapping_add(x)) == 0
}

/// Parses an RSDP (or a loader's copy of one). Bytes past what the revision needs are ignored.
pub fn parse(b: &[u8]) -> Result<AcpiRoot, RsdpError> {
    if b.len() < V1_LEN {
        return Err(RsdpError::Truncated { len: b.len(), need: V1_LEN });
    }
    if &b[..8] != SIGNATURE {
        return Err(RsdpError::BadSignature);
    }
    if !sums_to_zero(&b[..V1_LEN]) {
        return Err(RsdpError::BadChecksum);
    }
    let revision = b[15];
    let rsdt = u32::from_le_bytes(b[16..20].try_into().expect("4 bytes"));
    let mut xsdt = None;
    if revision >= 2 {
        if b.len() < V2_LEN {
            return Err(RsdpError::Truncated { len: b.len(), need: V2_LEN });
        }
        let length = u32::from_le_bytes(b[20..24].try_into().expect("4 bytes"));
        if (length as usize) < V2_LEN {
            return Err(RsdpError::BadLength(length));
        }
        if !sums_to_zero(&b[..V2_LEN]) {
            return Err(RsdpError::BadExtendedChecksum);
        }
        xsdt = Some(u64::from_le_bytes(b[24..32].try_into().expect("8 bytes"))).filter(|&a| a != 0);
    }
    if rsdt == 0 && xsdt.is_none() {
        return Err(RsdpError::NoTables);
    }
    Ok(AcpiRoot { revision, rsdt, xsdt })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A valid RSDP of `revision` with both checksums fixed.
    fn rsdp(revision: u8, rsdt: u32, xsdt: u64) -> Vec<u8> {
        let mut b = vec![0u8; if revision >= 2 { V2_LEN } else { V1_LEN }];
        b[..8].copy_from_slice(SIGNATURE);
        b[9..15].copy_from_slice(b"BOCHS ");
        b[15] = revision;
        b[16..20].copy_from_slice(&rsdt.to_le_bytes());
        if revision >= 2 {
            b[20..24].copy_from_slice(&(V2_LEN as u32).to_le_bytes());
            b[24..32].copy_from_slice(&xsdt.to_le_bytes());
        }
        fix(&mut b);
        b
    }

    fn fix(b: &mut [u8]) {
        b[8] = 0;
        b[8] = 0u8.wrapping_sub(b[..V1_LEN].iter().fold(0u8, |a, &x| a.wrapping_add(x)));
        if b.len() >= V2_LEN {
            b[32] = 0;
            b[32] = 0u8.wrapping_sub(b[..V2_LEN].iter().fold(0u8, |a, &x| a.wrapping_add(x)));
        }
    }

    #[test]
    fn seabios_style_acpi_1_rsdp_gives_the_rsdt() {
        let r = parse(&rsdp(0, 0x0fff_2345, 0)).unwrap();
        assert_eq!(r, AcpiRoot { revision: 0, rsdt: 0x0fff_2345, xsdt: None });
        assert_eq!(r.root_table(), 0x0fff_2345);
    }

    #[test]
    fn ovmf_style_acpi_2_rsdp_prefers_the_xsdt() {
        let r = parse(&rsdp(2, 0x0fb7_e074, 0x0fb7_e0e8)).unwrap();
        assert_eq!(r, AcpiRoot { revision: 2, rsdt: 0x0fb7_e074, xsdt: Some(0x0fb7_e0e8) });
        assert_eq!(r.root_table(), 0x0fb7_e0e8);
        // A zero XSDT falls back to the RSDT.
        assert_eq!(parse(&rsdp(2, 0x1000, 0)).unwrap().root_table(), 0x1000);
    }

    #[test]
    fn a_tag_longer_than_the_rsdp_is_fine() {
        let mut b = rsdp(0, 0x2000, 0);
        b.extend([0xaa; 4]); // padding to the tag's 8-byte alignment
        assert_eq!(parse(&b).unwrap().rsdt, 0x2000);
    }

    #[test]
    fn damaged_rsdps_are_errors() {
        assert_eq!(parse(&[0; 8]), Err(RsdpError::Truncated { len: 8, need: 20 }));
        let mut b = rsdp(0, 0x2000, 0);
        b[0] = b'r';
        assert_eq!(parse(&b), Err(RsdpError::BadSignature));
        let mut b = rsdp(0, 0x2000, 0);
        b[17] ^= 1;
        assert_eq!(parse(&b), Err(RsdpError::BadChecksum));
        let b = rsdp(2, 0x2000, 0x3000);
        assert_eq!(parse(&b[..V1_LEN]), Err(RsdpError::Truncated { len: 20, need: 36 }));
        let mut b = rsdp(2, 0x2000, 0x3000);
        b[25] ^= 1;
        assert_eq!(parse(&b), Err(RsdpError::BadExtendedChecksum));
        let mut b = rsdp(2, 0x2000, 0x3000);
        b[20] = 20;
        fix(&mut b);
        assert_eq!(parse(&b), Err(RsdpError::BadLength(20)));
        assert_eq!(parse(&rsdp(0, 0, 0)), Err(RsdpError::NoTables));
        assert_eq!(parse(&rsdp(2, 0, 0)), Err(RsdpError::NoTables));
    }

    #[test]
    fn errors_read_as_sentences() {
        assert_eq!(
            RsdpError::Truncated { len: 8, need: 20 }.to_string(),
            "ACPI RSDP is 8 bytes, its revision needs 20"
        );
    }
}
