//! The PVH kernel loader front half: validate an ELF64 x86_64 `vmlinux` and find its 32-bit
//! physical entry point.
//!
//! A PVH kernel is loaded at its link addresses: each `PT_LOAD` segment goes to its physical
//! address `p_paddr` (Linux 6.1 has no `XEN_ELFNOTE_PHYS32_RELOC`), and the vCPU starts in
//! 32-bit protected mode at the address in the `XEN_ELFNOTE_PHYS32_ENTRY` note (type 18, owner
//! `"Xen"`), found by walking every note of every `PT_NOTE` segment.
//!
//! Every number read from the file is treated as hostile: all arithmetic is checked, every
//! read is bounds-checked, the segment count and the note walk are bounded, and nothing here
//! panics on any input (see the truncation and bit-flip tests).
//!
//! Checked on Debian's `vmlinuz-6.1.0-57-amd64` (the ELF `vmlinux` recovered from the bzImage
//! payload with `xz -d`): four `PT_LOAD` segments at 0x1000000 (R-X, 0x18eacdc bytes), 0x2a00000
//! (RW, 0x644000), 0x3044000 (RW, `.data..percpu`, whose *virtual* address is 0, hence
//! `p_paddr`) and 0x3079000 (RWX, 0x1987000, `.init.*` through `.bss`/`.brk`), image end
//! 0x4a00000; one `PT_NOTE` segment with 19 notes (Xen, GNU, Linux); PHYS32_ENTRY = 0x1000850 as an 8-byte desc.

use alloc::vec::Vec;

/// First guest-physical address a segment may occupy (everything below is the low 1 MiB).
pub const MIN_LOAD_PADDR: u64 = 0x10_0000;
/// Most loadable (non-empty `PT_LOAD`) segments accepted.
pub const MAX_LOAD_SEGMENTS: usize = 16;
/// Most program headers accepted.
pub const MAX_PROGRAM_HEADERS: u64 = 64;
/// Most notes examined over all `PT_NOTE` segments.
pub const MAX_NOTES: usize = 256;
/// `XEN_ELFNOTE_PHYS32_ENTRY` (the ABI's, checked against Xen's header there).
pub use hv_abi::xen::elfnote::PHYS32_ENTRY as XEN_ELFNOTE_PHYS32_ENTRY;

const PT_LOAD: u32 = 1;
const PT_NOTE: u32 = 4;
const PF_X: u32 = 1;

/// One loadable segment: copy `file_size` bytes from `file_offset` to guest-physical `paddr`
/// and zero the rest up to `mem_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PvhSegment {
    /// Guest-physical load address (`p_paddr`).
    pub paddr: u64,
    /// Offset of the initialised bytes in the file.
    pub file_offset: u64,
    /// Number of initialised bytes.
    pub file_size: u64,
    /// Size in guest memory (≥ `file_size`; the tail is zeroed).
    pub mem_size: u64,
}

/// A validated PVH kernel image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PvhImage {
    /// Loadable segments, sorted by `paddr`, non-overlapping, non-empty.
    pub segments: Vec<PvhSegment>,
    /// 32-bit physical entry point (inside an executable segment).
    pub entry: u32,
    /// Highest `paddr + mem_size`: the first byte after the image.
    pub end: u64,
}

impl PvhImage {
    /// Lowest segment address.
    pub fn start(&self) -> u64 {
        self.segments.first().map_or(self.end, |s| s.paddr)
    }

    /// `start()..end`: the guest-physical range the image occupies (including gaps).
    pub fn extent(&self) -> core::ops::Range<u64> {
        self.start()..self.end
    }
}

/// Why a file is not an acceptable PVH kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PvhError {
    /// Shorter than an ELF header.
    TooShort,
    /// Not an ELF64 little-endian file.
    NotElf,
    /// Not an x86_64 executable (`ET_EXEC`, `EM_X86_64`).
    NotX86_64Executable,
    /// The program header table is malformed, out of the file, or too long.
    BadProgramHeaders,
    /// More than [`MAX_LOAD_SEGMENTS`] loadable segments.
    TooManySegments,
    /// No loadable segment at all.
    NoLoadableSegments,
    /// A segment's file bytes lie outside the file, or `p_filesz > p_memsz`.
    SegmentOutsideFile,
    /// A segment lies outside `[MIN_LOAD_PADDR, ram_bytes)`.
    SegmentOutsideRam {
        /// The segment's `p_paddr`.
        paddr: u64,
    },
    /// Two loadable segments overlap in guest-physical memory.
    SegmentsOverlap,
    /// A `PT_NOTE` segment is outside the file or a note in it is malformed.
    BadNote,
    /// More than [`MAX_NOTES`] notes.
    TooManyNotes,
    /// No `XEN_ELFNOTE_PHYS32_ENTRY` note: not a PVH kernel.
    NoPhys32Entry,
    /// The PHYS32_ENTRY note has a descriptor that is not 4 or 8 bytes, its value does not fit
    /// 32 bits, or there are two of them.
    BadPhys32Entry,
    /// The entry point is not inside an executable loadable segment.
    EntryNotExecutable,
}

impl core::fmt::Display for PvhError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort => write!(f, "image shorter than an ELF header"),
            Self::NotElf => write!(f, "not an ELF64 little-endian file"),
            Self::NotX86_64Executable => write!(f, "not an x86_64 executable"),
            Self::BadProgramHeaders => write!(f, "bad program header table"),
            Self::TooManySegments => write!(f, "more than {MAX_LOAD_SEGMENTS} loadable segments"),
            Self::NoLoadableSegments => write!(f, "no loadable segment"),
            Self::SegmentOutsideFile => write!(f, "segment file range outside the image"),
            Self::SegmentOutsideRam { paddr } => write!(f, "segment at {paddr:#x} outside guest RAM above 1 MiB"),
            Self::SegmentsOverlap => write!(f, "loadable segments overlap"),
            Self::BadNote => write!(f, "malformed ELF note"),
            Self::TooManyNotes => write!(f, "more than {MAX_NOTES} ELF notes"),
            Self::NoPhys32Entry => write!(f, "no XEN_ELFNOTE_PHYS32_ENTRY note: not a PVH kernel"),
            Self::BadPhys32Entry => write!(f, "malformed or repeated XEN_ELFNOTE_PHYS32_ENTRY note"),
            Self::EntryNotExecutable => write!(f, "PVH entry point not in an executable segment"),
        }
    }
}

/// `N` bytes at `offset`, or `None` if they are not all inside `b`.
fn bytes<const N: usize>(b: &[u8], offset: u64) -> Option<[u8; N]> {
    let start = usize::try_from(offset).ok()?;
    b.get(start..start.checked_add(N)?)?.try_into().ok()
}
fn u16_at(b: &[u8], o: u64) -> Option<u16> {
    bytes(b, o).map(u16::from_le_bytes)
}
fn u32_at(b: &[u8], o: u64) -> Option<u32> {
    bytes(b, o).map(u32::from_le_bytes)
}
fn u64_at(b: &[u8], o: u64) -> Option<u64> {
    bytes(b, o).map(u64::from_le_bytes)
}

/// One program header, as far as we use it.
struct Phdr {
    kind: u32,
    flags: u32,
    offset: u64,
    paddr: u64,
    file_size: u64,
    mem_size: u64,
}

/// Parses `file` as a PVH kernel for a guest whose RAM is guest-physical `0..ram_bytes`.
pub fn parse_pvh(file: &[u8], ram_bytes: u64) -> Result<PvhImage, PvhError> {
    if file.len() < 64 {
        return Err(PvhError::TooShort);
    }
    if file.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err(PvhError::NotElf);
    }
    // e_type ET_EXEC (2), e_machine EM_X86_64 (62).
    if u16_at(file, 16) != Some(2) || u16_at(file, 18) != Some(62) {
        return Err(PvhError::NotX86_64Executable);
    }
    let phdrs = program_headers(file)?;
    let mut segments = Vec::new();
    let mut executable = Vec::new();
    for ph in phdrs.iter().filter(|p| p.kind == PT_LOAD && p.mem_size != 0) {
        if segments.len() == MAX_LOAD_SEGMENTS {
            return Err(PvhError::TooManySegments);
        }
        let in_file = ph.offset.checked_add(ph.file_size).is_some_and(|end| end <= file.len() as u64);
        if ph.file_size > ph.mem_size || !in_file {
            return Err(PvhError::SegmentOutsideFile);
        }
        let end = ph.paddr.checked_add(ph.mem_size).filter(|&end| ph.paddr >= MIN_LOAD_PADDR && end <= ram_bytes);
        let Some(end) = end else {
            return Err(PvhError::SegmentOutsideRam { paddr: ph.paddr });
        };
        if ph.flags & PF_X != 0 {
            executable.push(ph.paddr..end);
        }
        segments.push(PvhSegment {
            paddr: ph.paddr,
            file_offset: ph.offset,
            file_size: ph.file_size,
            mem_size: ph.mem_size,
        });
    }
    segments.sort_unstable_by_key(|s| s.paddr);
    // Each end was checked above, so these additions cannot overflow.
    if segments.windows(2).any(|w| w[0].paddr + w[0].mem_size > w[1].paddr) {
        return Err(PvhError::SegmentsOverlap);
    }
    let Some(end) = segments.iter().map(|s| s.paddr + s.mem_size).max() else {
        return Err(PvhError::NoLoadableSegments);
    };
    let entry = find_phys32_entry(file, &phdrs)?;
    if !executable.iter().any(|r| r.contains(&u64::from(entry))) {
        return Err(PvhError::EntryNotExecutable);
    }
    Ok(PvhImage { segments, entry, end })
}

/// Reads the (bounded) program header table.
fn program_headers(file: &[u8]) -> Result<Vec<Phdr>, PvhError> {
    let bad = PvhError::BadProgramHeaders;
    let phoff = u64_at(file, 32).ok_or(bad)?;
    let phentsize = u64::from(u16_at(file, 54).ok_or(bad)?);
    let phnum = u64::from(u16_at(file, 56).ok_or(bad)?);
    if phentsize < 56 || phnum > MAX_PROGRAM_HEADERS {
        return Err(bad);
    }
    (0..phnum)
        .map(|i| {
            // phnum ≤ 64 and phentsize < 65536: the product cannot overflow; the sum may.
            let o = phoff.checked_add(i * phentsize).filter(|o| o.checked_add(56).is_some()).ok_or(bad)?;
            Ok(Phdr {
                kind: u32_at(file, o).ok_or(bad)?,
                flags: u32_at(file, o + 4).ok_or(bad)?,
                offset: u64_at(file, o + 8).ok_or(bad)?,
                paddr: u64_at(file, o + 24).ok_or(bad)?,
                file_size: u64_at(file, o + 32).ok_or(bad)?,
                mem_size: u64_at(file, o + 40).ok_or(bad)?,
            })
        })
        .collect()
}

/// Rounds `n` up to a multiple of 4 (ELF note fields are 4-byte aligned).
fn align4(n: u64) -> Option<u64> {
    Some(n.checked_add(3)? & !3)
}

/// Walks every note of every `PT_NOTE` segment and returns the single PHYS32_ENTRY value.
fn find_phys32_entry(file: &[u8], phdrs: &[Phdr]) -> Result<u32, PvhError> {
    let mut entry = None;
    let mut notes = 0;
    for ph in phdrs.iter().filter(|p| p.kind == PT_NOTE) {
        let end = ph.offset.checked_add(ph.file_size).filter(|&e| e <= file.len() as u64).ok_or(PvhError::BadNote)?;
        let mut at = ph.offset;
        // A note header is 12 bytes; trailing padding shorter than that is ignored.
        while end - at >= 12 {
            notes += 1;
            if notes > MAX_NOTES {
                return Err(PvhError::TooManyNotes);
            }
            let note = note_at(file, at, end).ok_or(PvhError::BadNote)?;
            if note.kind == XEN_ELFNOTE_PHYS32_ENTRY && note.name == b"Xen\0" {
                let value = match *note.desc {
                    [a, b, c, d] => u64::from(u32::from_le_bytes([a, b, c, d])),
                    [a, b, c, d, e, f, g, h] => u64::from_le_bytes([a, b, c, d, e, f, g, h]),
                    _ => return Err(PvhError::BadPhys32Entry),
                };
                let value = u32::try_from(value).map_err(|_| PvhError::BadPhys32Entry)?;
                if entry.replace(value).is_some() {
                    return Err(PvhError::BadPhys32Entry);
                }
            }
            at = note.next;
        }
    }
    entry.ok_or(PvhError::NoPhys32Entry)
}

/// One parsed note.
struct Note<'a> {
    kind: u32,
    name: &'a [u8],
    desc: &'a [u8],
    /// File offset of the next note.
    next: u64,
}

/// The note at file offset `at`, which must end by `end` (≤ `file.len()`).
fn note_at(file: &[u8], at: u64, end: u64) -> Option<Note<'_>> {
    let namesz = u64::from(u32_at(file, at)?);
    let descsz = u64::from(u32_at(file, at + 4)?);
    let kind = u32_at(file, at + 8)?;
    let name_at = at.checked_add(12)?;
    let desc_at = name_at.checked_add(align4(namesz)?)?;
    let desc_end = desc_at.checked_add(descsz)?;
    if desc_end > end {
        return None;
    }
    // Padding is relative to the note (a real file's notes start 4-aligned anyway); the last
    // note's desc padding may be cut off by the segment end.
    let next = desc_at.checked_add(align4(descsz)?)?.min(end);
    let slice = |from: u64, len: u64| file.get(usize::try_from(from).ok()?..usize::try_from(from + len).ok()?);
    Some(Note { kind, name: slice(name_at, namesz)?, desc: slice(desc_at, descsz)?, next })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const MIB: u64 = 1 << 20;
    const RAM: u64 = 256 * MIB;
    /// Linux's `__START_KERNEL_map`: virtual addresses are this plus the physical address.
    const KERNEL_MAP: u64 = 0xffff_ffff_8000_0000;

    /// One ELF note: header, 4-aligned name, 4-aligned desc.
    fn note(owner: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend_from_slice(&(owner.len() as u32).to_le_bytes());
        n.extend_from_slice(&(desc.len() as u32).to_le_bytes());
        n.extend_from_slice(&kind.to_le_bytes());
        for part in [owner, desc] {
            n.extend_from_slice(part);
            n.resize(n.len().next_multiple_of(4), 0);
        }
        n
    }

    /// The notes of a Linux vmlinux in miniature: Xen notes before and after others, an owner
    /// whose length needs padding, and PHYS32_ENTRY with an 8-byte descriptor.
    fn linux_notes(entry: u64) -> Vec<u8> {
        let mut n = note(b"Xen\0", 6, b"linux\0");
        n.extend(note(b"Xen\0", 3, &KERNEL_MAP.to_le_bytes()));
        n.extend(note(b"GNU\0", 3, &[0xab; 20]));
        n.extend(note(b"Linux\0", 0x101, b"6.1.0\0"));
        n.extend(note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &entry.to_le_bytes()));
        n
    }

    /// A vmlinux-like ELF, built with `elf.rs`'s helper: `loads` are (paddr, flags, bytes, memsz),
    /// given `p_vaddr = KERNEL_MAP + paddr` and `p_paddr = paddr`; then one `PT_NOTE` segment.
    fn vmlinux(loads: &[(u64, u32, &[u8], u64)], notes: &[u8]) -> Vec<u8> {
        let mut segs = loads.to_vec();
        segs.push((0, 4, notes, notes.len() as u64));
        let mut f = crate::elf::tests::build(KERNEL_MAP + 16 * MIB, &segs);
        for (i, &(paddr, ..)) in segs.iter().enumerate() {
            let o = 64 + 56 * i;
            f[o + 16..o + 24].copy_from_slice(&KERNEL_MAP.wrapping_add(paddr).to_le_bytes());
            f[o + 24..o + 32].copy_from_slice(&paddr.to_le_bytes());
        }
        let o = 64 + 56 * loads.len();
        f[o..o + 4].copy_from_slice(&PT_NOTE.to_le_bytes());
        f[o + 16..o + 32].fill(0);
        f
    }

    /// Text at 16 MiB (R-X), data at 17 MiB (RW, with bss).
    fn good(notes: &[u8]) -> Vec<u8> {
        vmlinux(&[(16 * MIB, 5, &[0x90; 64], 0x1000), (17 * MIB, 6, &[1; 32], 0x3000)], notes)
    }

    #[test]
    fn parses_a_linux_like_image() {
        let img = parse_pvh(&good(&linux_notes(16 * MIB + 0x850)), RAM).unwrap();
        assert_eq!(img.entry, 0x100_0850);
        assert_eq!(img.end, 17 * MIB + 0x3000);
        assert_eq!(img.extent(), 16 * MIB..17 * MIB + 0x3000);
        assert_eq!(img.segments.len(), 2);
        let data = img.segments[1];
        assert_eq!((data.paddr, data.file_size, data.mem_size), (17 * MIB, 32, 0x3000));
        assert_eq!(data.file_offset, 64 + 56 * 3 + 64);
    }

    #[test]
    fn accepts_a_four_byte_entry_and_ignores_virtual_addresses() {
        let notes = note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &(16 * MIB as u32 + 4).to_le_bytes());
        let mut f = good(&notes);
        // `.data..percpu` is linked at virtual address 0; only p_paddr matters.
        f[64 + 56 + 16..64 + 56 + 24].fill(0);
        assert_eq!(parse_pvh(&f, RAM).unwrap().entry, 16 * MIB as u32 + 4);
    }

    #[test]
    fn rejects_bad_entry_notes() {
        let e = 16 * MIB;
        assert_eq!(parse_pvh(&good(&note(b"Xen\0", 6, b"linux\0")), RAM), Err(PvhError::NoPhys32Entry));
        let wrong_owner = note(b"Linux\0", XEN_ELFNOTE_PHYS32_ENTRY, &e.to_le_bytes());
        assert_eq!(parse_pvh(&good(&wrong_owner), RAM), Err(PvhError::NoPhys32Entry));
        let short = note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &[0, 0]);
        assert_eq!(parse_pvh(&good(&short), RAM), Err(PvhError::BadPhys32Entry));
        let wide = note(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &(1u64 << 32 | e).to_le_bytes());
        assert_eq!(parse_pvh(&good(&wide), RAM), Err(PvhError::BadPhys32Entry));
        let twice = [linux_notes(e), linux_notes(e)].concat();
        assert_eq!(parse_pvh(&good(&twice), RAM), Err(PvhError::BadPhys32Entry));
        let in_data = linux_notes(17 * MIB);
        assert_eq!(parse_pvh(&good(&in_data), RAM), Err(PvhError::EntryNotExecutable));
        let past_bss = linux_notes(16 * MIB + 0x1000);
        assert_eq!(parse_pvh(&good(&past_bss), RAM), Err(PvhError::EntryNotExecutable));
        let mut huge_desc = linux_notes(e);
        huge_desc[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(parse_pvh(&good(&huge_desc), RAM), Err(PvhError::BadNote));
        let many: Vec<u8> = (0..=MAX_NOTES).flat_map(|_| note(b"", 0, b"")).collect();
        assert_eq!(parse_pvh(&good(&many), RAM), Err(PvhError::TooManyNotes));
    }

    #[test]
    fn rejects_bad_segments() {
        let notes = linux_notes(16 * MIB);
        let at = |paddr: u64, mem: u64| vmlinux(&[(paddr, 5, &[0x90], mem)], &notes);
        assert_eq!(parse_pvh(&at(0x1000, 1), RAM), Err(PvhError::SegmentOutsideRam { paddr: 0x1000 }));
        assert_eq!(parse_pvh(&at(16 * MIB, RAM), RAM), Err(PvhError::SegmentOutsideRam { paddr: 16 * MIB }));
        assert_eq!(parse_pvh(&at(16 * MIB, u64::MAX), RAM), Err(PvhError::SegmentOutsideRam { paddr: 16 * MIB }));
        assert_eq!(parse_pvh(&at(16 * MIB, RAM - 16 * MIB), RAM).map(|i| i.end), Ok(RAM));
        let overlap = vmlinux(&[(16 * MIB, 5, &[0x90], 0x2000), (16 * MIB + 0x1000, 6, &[], 1)], &notes);
        assert_eq!(parse_pvh(&overlap, RAM), Err(PvhError::SegmentsOverlap));
        let mut bigger_file = at(16 * MIB, 1);
        bigger_file[64 + 32..64 + 40].copy_from_slice(&2u64.to_le_bytes());
        assert_eq!(parse_pvh(&bigger_file, RAM), Err(PvhError::SegmentOutsideFile));
        let no_load = vmlinux(&[], &notes);
        assert_eq!(parse_pvh(&no_load, RAM), Err(PvhError::NoLoadableSegments));
        let seventeen: Vec<_> = (0..17).map(|i| (16 * MIB + i * 0x1000, 5, &[0x90u8][..], 1)).collect();
        assert_eq!(parse_pvh(&vmlinux(&seventeen, &notes), RAM), Err(PvhError::TooManySegments));
    }

    #[test]
    fn rejects_bad_headers() {
        let f = good(&linux_notes(16 * MIB));
        assert_eq!(parse_pvh(&f[..63], RAM), Err(PvhError::TooShort));
        assert_eq!(parse_pvh(&[0; 64], RAM), Err(PvhError::NotElf));
        let mut dyn_ = f.clone();
        dyn_[16] = 3;
        assert_eq!(parse_pvh(&dyn_, RAM), Err(PvhError::NotX86_64Executable));
        let mut many = f.clone();
        many[56..58].copy_from_slice(&65u16.to_le_bytes());
        assert_eq!(parse_pvh(&many, RAM), Err(PvhError::BadProgramHeaders));
        let mut far = f.clone();
        far[32..40].copy_from_slice(&(u64::MAX - 8).to_le_bytes());
        assert_eq!(parse_pvh(&far, RAM), Err(PvhError::BadProgramHeaders));
        let mut note_out = f;
        let o = 64 + 56 * 2;
        note_out[o + 8..o + 16].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse_pvh(&note_out, RAM), Err(PvhError::BadNote));
    }

    #[test]
    fn never_panics_on_truncation_or_corruption() {
        let f = good(&linux_notes(16 * MIB + 8));
        for n in 0..f.len() {
            let _ = parse_pvh(&f[..n], RAM);
        }
        for i in 0..f.len() {
            for flip in [0xff, 0x80, 0x01] {
                let mut g = f.clone();
                g[i] ^= flip;
                let _ = parse_pvh(&g, RAM);
            }
        }
        let _ = parse_pvh(&vec![0xff; 4096], u64::MAX);
    }
}
