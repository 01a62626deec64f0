//! Minimal ELF64 loader front half: parse and validate the program headers of a domain image.
//!
//! Hand-written (about a hundred lines) rather than pulling in a general ELF crate: we need only
//! the `PT_LOAD` headers, with every offset and size checked against the file and against the
//! domain's window before anything is copied, and the code runs in the hypervisor.

use alloc::vec::Vec;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub mem_size: u64,
    pub file_offset: u64,
    pub file_size: u64,
    pub writable: bool,
    pub executable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub entry: u64,
    pub segments: Vec<Segment>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElfError {
    TooShort,
    NotElf,
    NotX86_64Executable,
    BadProgramHeaders,
    TooManySegments,
    SegmentOutsideFile,
    /// A segment lies outside `[window_start, window_end)`.
    SegmentOutsideWindow {
        vaddr: u64,
    },
    SegmentsOverlap,
    WritableAndExecutable {
        vaddr: u64,
    },
    EntryNotExecutable,
}

impl core::fmt::Display for ElfError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::TooShort => write!(f, "image shorter than an ELF header"),
            Self::NotElf => write!(f, "not an ELF64 little-endian file"),
            Self::NotX86_64Executable => write!(f, "not an x86_64 static executable"),
            Self::BadProgramHeaders => write!(f, "program header table out of bounds"),
            Self::TooManySegments => write!(f, "more than 16 loadable segments"),
            Self::SegmentOutsideFile => write!(f, "segment file range outside the image"),
            Self::SegmentOutsideWindow { vaddr } => write!(f, "segment at {vaddr:#x} outside the domain image window"),
            Self::SegmentsOverlap => write!(f, "loadable segments overlap"),
            Self::WritableAndExecutable { vaddr } => write!(f, "segment at {vaddr:#x} is writable and executable"),
            Self::EntryNotExecutable => write!(f, "entry point not in an executable segment"),
        }
    }
}

const PT_LOAD: u32 = 1;
const PF_X: u32 = 1;
const PF_W: u32 = 2;
const MAX_SEGMENTS: usize = 16;

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes(b[o..o + 4].try_into().unwrap())
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    u64::from_le_bytes(b[o..o + 8].try_into().unwrap())
}

/// Parses `file` and checks that every loadable segment lies inside `[window_start, window_end)`,
/// that none is both writable and executable, and that the entry point is executable.
pub fn parse(file: &[u8], window_start: u64, window_end: u64) -> Result<Image, ElfError> {
    if file.len() < 64 {
        return Err(ElfError::TooShort);
    }
    if &file[..4] != b"\x7fELF" || file[4] != 2 || file[5] != 1 {
        return Err(ElfError::NotElf);
    }
    // e_type EXEC (2), e_machine x86_64 (62).
    if u16_at(file, 16) != 2 || u16_at(file, 18) != 62 {
        return Err(ElfError::NotX86_64Executable);
    }
    let entry = u64_at(file, 24);
    let phoff = u64_at(file, 32);
    let phentsize = u16_at(file, 54) as u64;
    let phnum = u16_at(file, 56) as u64;
    if phentsize < 56 || phoff.checked_add(phentsize * phnum).is_none_or(|end| end > file.len() as u64) {
        return Err(ElfError::BadProgramHeaders);
    }
    let mut segments = Vec::new();
    for i in 0..phnum {
        let o = (phoff + i * phentsize) as usize;
        if u32_at(file, o) != PT_LOAD {
            continue;
        }
        let flags = u32_at(file, o + 4);
        let seg = Segment {
            file_offset: u64_at(file, o + 8),
            vaddr: u64_at(file, o + 16),
            file_size: u64_at(file, o + 32),
            mem_size: u64_at(file, o + 40),
            writable: flags & PF_W != 0,
            executable: flags & PF_X != 0,
        };
        if seg.mem_size == 0 {
            continue;
        }
        if segments.len() == MAX_SEGMENTS {
            return Err(ElfError::TooManySegments);
        }
        if seg.file_size > seg.mem_size
            || seg.file_offset.checked_add(seg.file_size).is_none_or(|e| e > file.len() as u64)
        {
            return Err(ElfError::SegmentOutsideFile);
        }
        if seg.vaddr < window_start || seg.vaddr.checked_add(seg.mem_size).is_none_or(|e| e > window_end) {
            return Err(ElfError::SegmentOutsideWindow { vaddr: seg.vaddr });
        }
        if seg.writable && seg.executable {
            return Err(ElfError::WritableAndExecutable { vaddr: seg.vaddr });
        }
        segments.push(seg);
    }
    // Segments must not overlap; they may share a page only if their permissions agree.
    let mut sorted = segments.clone();
    sorted.sort_unstable_by_key(|s| s.vaddr);
    for w in sorted.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        if a.vaddr + a.mem_size > b.vaddr {
            return Err(ElfError::SegmentsOverlap);
        }
        let shares_page = (a.vaddr + a.mem_size - 1) >> 12 == b.vaddr >> 12;
        if shares_page && (a.writable, a.executable) != (b.writable, b.executable) {
            return Err(ElfError::SegmentsOverlap);
        }
    }
    if !segments.iter().any(|s| s.executable && (s.vaddr..s.vaddr + s.mem_size).contains(&entry)) {
        return Err(ElfError::EntryNotExecutable);
    }
    Ok(Image { entry, segments })
}

/// A page-aligned range of the image with one set of permissions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRange {
    pub start: u64,
    pub end: u64,
    pub writable: bool,
    pub executable: bool,
}

impl Image {
    /// The image's pages, segments sharing a page merged (`parse` guaranteed they agree).
    pub fn page_ranges(&self) -> Vec<PageRange> {
        let mut v: Vec<PageRange> = self
            .segments
            .iter()
            .map(|s| PageRange {
                start: s.vaddr & !0xfff,
                end: (s.vaddr + s.mem_size + 0xfff) & !0xfff,
                writable: s.writable,
                executable: s.executable,
            })
            .collect();
        v.sort_unstable_by_key(|r| r.start);
        let mut out: Vec<PageRange> = Vec::new();
        for r in v {
            match out.last_mut() {
                Some(l) if l.end > r.start => l.end = l.end.max(r.end),
                _ => out.push(r),
            }
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Builds a minimal ELF with the given (vaddr, flags, file bytes, mem size) segments.
    pub fn build(entry: u64, segs: &[(u64, u32, &[u8], u64)]) -> Vec<u8> {
        let mut f = vec![0u8; 64 + 56 * segs.len()];
        f[..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[24..32].copy_from_slice(&entry.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&(segs.len() as u16).to_le_bytes());
        for (i, (vaddr, flags, data, mem)) in segs.iter().enumerate() {
            let off = f.len() as u64;
            f.extend_from_slice(data);
            let o = 64 + 56 * i;
            f[o..o + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            f[o + 4..o + 8].copy_from_slice(&flags.to_le_bytes());
            f[o + 8..o + 16].copy_from_slice(&off.to_le_bytes());
            f[o + 16..o + 24].copy_from_slice(&vaddr.to_le_bytes());
            f[o + 32..o + 40].copy_from_slice(&(data.len() as u64).to_le_bytes());
            f[o + 40..o + 48].copy_from_slice(&mem.to_le_bytes());
        }
        f
    }

    const W0: u64 = 0x4001_0000;
    const W1: u64 = 0x4040_0000;

    #[test]
    fn parses_a_good_image() {
        let f = build(W0, &[(W0, 5, &[0x90; 10], 10), (W0 + 0x1000, 6, &[1, 2, 3], 0x2000)]);
        let img = parse(&f, W0, W1).unwrap();
        assert_eq!(img.entry, W0);
        assert_eq!(img.segments.len(), 2);
        assert!(img.segments[1].writable && !img.segments[1].executable);
        assert_eq!(img.segments[1].mem_size, 0x2000);
    }

    #[test]
    fn rejects_hostile_images() {
        assert_eq!(parse(&[0; 10], W0, W1), Err(ElfError::TooShort));
        assert_eq!(parse(&[0; 64], W0, W1), Err(ElfError::NotElf));
        let outside = build(W0, &[(0x1000, 5, &[0x90], 1)]);
        assert_eq!(parse(&outside, W0, W1), Err(ElfError::SegmentOutsideWindow { vaddr: 0x1000 }));
        let wrap = build(W0, &[(W0, 5, &[0x90], u64::MAX)]);
        assert!(matches!(parse(&wrap, W0, W1), Err(ElfError::SegmentOutsideWindow { .. })));
        let wx = build(W0, &[(W0, 7, &[0x90], 1)]);
        assert_eq!(parse(&wx, W0, W1), Err(ElfError::WritableAndExecutable { vaddr: W0 }));
        let overlap = build(W0, &[(W0, 5, &[0x90], 0x1800), (W0 + 0x1000, 5, &[0], 1)]);
        assert_eq!(parse(&overlap, W0, W1), Err(ElfError::SegmentsOverlap));
        let shared_page_mixed = build(W0, &[(W0, 5, &[0x90], 0x10), (W0 + 0x800, 6, &[0], 1)]);
        assert_eq!(parse(&shared_page_mixed, W0, W1), Err(ElfError::SegmentsOverlap));
        let noexec = build(W0, &[(W0, 6, &[0], 1)]);
        assert_eq!(parse(&noexec, W0, W1), Err(ElfError::EntryNotExecutable));
        let mut past = build(W0, &[(W0, 5, &[0x90; 4], 4)]);
        past.truncate(past.len() - 2);
        assert_eq!(parse(&past, W0, W1), Err(ElfError::SegmentOutsideFile));
        let mut bad_ph = build(W0, &[(W0, 5, &[0x90], 1)]);
        bad_ph[56..58].copy_from_slice(&1000u16.to_le_bytes());
        assert_eq!(parse(&bad_ph, W0, W1), Err(ElfError::BadProgramHeaders));
    }

    #[test]
    fn same_permission_segments_may_share_a_page() {
        // .data and .bss as lld emits them: two RW segments in one page.
        let f = build(W0, &[(W0, 5, &[0x90], 0x10), (W0 + 0x2000, 6, &[1; 0x160], 0x160), (W0 + 0x2160, 6, &[], 0x38)]);
        let img = parse(&f, W0, W1).unwrap();
        let pages = img.page_ranges();
        assert_eq!(pages.len(), 2);
        assert_eq!((pages[0].end, pages[0].writable, pages[0].executable), (W0 + 0x1000, false, true));
        assert_eq!((pages[1].start, pages[1].end, pages[1].writable), (W0 + 0x2000, W0 + 0x3000, true));
    }

    #[test]
    fn never_panics_on_truncation() {
        let f = build(W0, &[(W0, 5, &[0x90; 100], 100), (W0 + 0x1000, 6, &[7; 50], 4096)]);
        for n in 0..f.len() {
            let _ = parse(&f[..n], W0, W1);
        }
        for i in 0..f.len() {
            let mut g = f.clone();
            g[i] ^= 0xff;
            let _ = parse(&g, W0, W1);
        }
    }
}
