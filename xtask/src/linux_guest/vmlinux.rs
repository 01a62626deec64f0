//! The ELF `vmlinux` inside a bzImage, and its Xen PVH entry point.
//!
//! A bzImage (x86 boot protocol 2.08 and later) is a real-mode setup followed by the
//! protected-mode decompressor; the setup header names where, in the latter, the compressed kernel
//! (`payload_offset`, `payload_length`) lies. That payload decompresses to `vmlinux.bin`: the
//! kernel's ELF, stripped, which a PVH loader needs (it reads the `XEN_ELFNOTE_PHYS32_ENTRY` note
//! and the program headers). Debian builds its kernel with `CONFIG_KERNEL_XZ` (an xz stream with
//! the x86 BCJ filter, hence liblzma rather than a pure-Rust LZMA decoder that lacks BCJ).

use std::io::Read;

use anyhow::{Context, Result, bail};

/// `setup_sects`: 512-byte sectors of the real-mode setup after the boot sector.
const SETUP_SECTS: usize = 0x1f1;
/// `header`: the magic `HdrS`.
const HEADER: usize = 0x202;
/// `version`: the boot protocol version (major << 8 | minor).
const VERSION: usize = 0x206;
/// `payload_offset`: from the start of the protected-mode code.
const PAYLOAD_OFFSET: usize = 0x248;
/// `payload_length`.
const PAYLOAD_LENGTH: usize = 0x24c;
/// The first protocol version with `payload_offset`/`payload_length`.
const MIN_VERSION: u16 = 0x0208;

/// `PT_LOAD`.
const PT_LOAD: u32 = 1;
/// `PT_NOTE`.
const PT_NOTE: u32 = 4;
/// `EM_X86_64`.
const EM_X86_64: u16 = 62;
/// `XEN_ELFNOTE_PHYS32_ENTRY`: the 32-bit physical entry of a PVH kernel.
pub const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;

/// The compression of a bzImage payload, told by its magic bytes (as the kernel's own
/// `scripts/extract-vmlinux` does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
    Lzma,
    Bzip2,
    Lzo,
    Lz4,
    Zstd,
}

impl Compression {
    /// Identifies the payload by its first bytes.
    pub fn detect(payload: &[u8]) -> Option<Self> {
        const MAGICS: &[(&[u8], Compression)] = &[
            (b"\x1f\x8b", Compression::Gzip),
            (b"\xfd7zXZ\x00", Compression::Xz),
            (b"\x5d\x00\x00", Compression::Lzma),
            (b"BZh", Compression::Bzip2),
            (b"\x89LZO", Compression::Lzo),
            // The legacy LZ4 frame the kernel's `lz4 -l` writes.
            (b"\x02\x21\x4c\x18", Compression::Lz4),
            (b"\x28\xb5\x2f\xfd", Compression::Zstd),
        ];
        MAGICS.iter().find(|(m, _)| payload.starts_with(m)).map(|&(_, c)| c)
    }

    /// The kernel configuration option that selects it.
    pub fn config(self) -> &'static str {
        match self {
            Self::Gzip => "CONFIG_KERNEL_GZIP",
            Self::Xz => "CONFIG_KERNEL_XZ",
            Self::Lzma => "CONFIG_KERNEL_LZMA",
            Self::Bzip2 => "CONFIG_KERNEL_BZIP2",
            Self::Lzo => "CONFIG_KERNEL_LZO",
            Self::Lz4 => "CONFIG_KERNEL_LZ4",
            Self::Zstd => "CONFIG_KERNEL_ZSTD",
        }
    }

    /// Decompresses one stream; trailing bytes (the kernel appends the uncompressed size) are
    /// ignored.
    fn decompress(self, payload: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        match self {
            Self::Gzip => flate2::read::GzDecoder::new(payload).read_to_end(&mut out).map(drop),
            Self::Xz => liblzma::read::XzDecoder::new(payload).read_to_end(&mut out).map(drop),
            Self::Lzma => {
                let stream = liblzma::stream::Stream::new_lzma_decoder(u64::MAX).context("starting liblzma")?;
                liblzma::read::XzDecoder::new_stream(payload, stream).read_to_end(&mut out).map(drop)
            }
            other => bail!(
                "the kernel's payload is {other:?}-compressed ({}), which xtask does not decompress\n  fix: use a \
                 kernel built with CONFIG_KERNEL_XZ (Debian's linux-image-amd64) or CONFIG_KERNEL_GZIP",
                other.config()
            ),
        }
        .with_context(|| format!("decompressing the kernel's {self:?} payload"))?;
        Ok(out)
    }
}

fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// The compressed payload of a bzImage and its compression.
pub fn payload(bzimage: &[u8]) -> Result<(&[u8], Compression)> {
    const FIX: &str = "fix: pass a bzImage such as /boot/vmlinuz-<version> (package linux-image-amd64)";
    if bzimage.get(HEADER..HEADER + 4) != Some(b"HdrS") {
        bail!("not a bzImage: no \"HdrS\" setup header at 0x{HEADER:x}\n  {FIX}");
    }
    let version = u16_at(bzimage, VERSION).context("bzImage header truncated")?;
    if version < MIN_VERSION {
        bail!(
            "bzImage boot protocol {}.{:02} is older than 2.08 (no payload_offset)\n  {FIX}",
            version >> 8,
            version & 0xff
        );
    }
    let setup_sects = match bzimage[SETUP_SECTS] {
        0 => 4, // "if this field is 0, the real value is 4" (Documentation/x86/boot.rst)
        n => n as usize,
    };
    let pm_start = (setup_sects + 1) * 512;
    let offset = u32_at(bzimage, PAYLOAD_OFFSET).context("bzImage header truncated")? as usize;
    let length = u32_at(bzimage, PAYLOAD_LENGTH).context("bzImage header truncated")? as usize;
    let start = pm_start + offset;
    let Some(payload) = bzimage.get(start..start.saturating_add(length)) else {
        bail!(
            "bzImage payload (0x{start:x}+0x{length:x}) runs past the file's end (0x{:x}): the file is truncated\n  {FIX}",
            bzimage.len()
        );
    };
    let Some(compression) = Compression::detect(payload) else {
        bail!(
            "bzImage payload at 0x{start:x} starts with {:02x?}, no known compression magic\n  {FIX}",
            &payload[..payload.len().min(6)]
        );
    };
    Ok((payload, compression))
}

/// Decompresses a bzImage's payload to the ELF `vmlinux` and checks that it can boot as a Xen PVH
/// guest (see [`pvh_entry`]).
pub fn extract_vmlinux(bzimage: &[u8]) -> Result<Vec<u8>> {
    let (payload, compression) = payload(bzimage)?;
    let elf = compression.decompress(payload)?;
    pvh_entry(&elf).context("the bzImage's payload is not a PVH-bootable vmlinux")?;
    Ok(elf)
}

/// The `XEN_ELFNOTE_PHYS32_ENTRY` (type 18) of an ELF64 x86_64 kernel: the physical address a PVH
/// loader jumps to in 32-bit protected mode.
pub fn pvh_entry(elf: &[u8]) -> Result<u64> {
    if !elf.starts_with(b"\x7fELF") {
        bail!("not an ELF file (magic {:02x?})", &elf[..elf.len().min(4)]);
    }
    if elf.get(4) != Some(&2) || elf.get(5) != Some(&1) {
        bail!("not a little-endian ELF64 file (EI_CLASS {:?}, EI_DATA {:?})", elf.get(4), elf.get(5));
    }
    let machine = u16_at(elf, 0x12).context("ELF header truncated")?;
    if machine != EM_X86_64 {
        bail!("ELF machine is {machine}, not x86_64 ({EM_X86_64})");
    }
    let phoff = u64_at(elf, 0x20).context("ELF header truncated")? as usize;
    let phentsize = u16_at(elf, 0x36).context("ELF header truncated")? as usize;
    let phnum = u16_at(elf, 0x38).context("ELF header truncated")? as usize;
    if phentsize < 0x38 {
        bail!("ELF program header size {phentsize} is smaller than ELF64's 56");
    }
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let p_type = u32_at(elf, ph).context("ELF program headers run past the file's end")?;
        if p_type != PT_NOTE {
            continue;
        }
        let offset = u64_at(elf, ph + 8).context("ELF program header truncated")? as usize;
        let size = u64_at(elf, ph + 0x20).context("ELF program header truncated")? as usize;
        let notes =
            elf.get(offset..offset.saturating_add(size)).context("a PT_NOTE segment runs past the file's end")?;
        if let Some(entry) = xen_phys32_entry(notes)? {
            return Ok(entry);
        }
    }
    bail!(
        "no Xen note of type {XEN_ELFNOTE_PHYS32_ENTRY} (XEN_ELFNOTE_PHYS32_ENTRY) in any PT_NOTE segment: the kernel \
         cannot boot as a PVH guest\n  fix: use a kernel built with CONFIG_XEN_PVH=y (Debian's linux-image-amd64 is)"
    );
}

/// The ELF with each `PT_LOAD` segment's trailing zero bytes left out of the file: `p_filesz`
/// shrinks, `p_memsz` stays (a loader zeroes `p_memsz - p_filesz`, as for any `.bss`), no offset
/// moves (the `PT_NOTE` inside the text segment stays where its header says), the file ends after
/// the last byte a program header still covers, and the section headers are dropped (a PVH
/// loader reads only program headers). Debian's vmlinux.bin stores `.bss`, `.brk` and
/// `.init.scratch` as about 24 MB of zeros at the end of its last segment, which every domain
/// creation would otherwise copy.
pub fn trim_zero_tails(elf: &[u8]) -> Result<Vec<u8>> {
    pvh_entry(elf)?;
    let phoff = u64_at(elf, 0x20).context("ELF header truncated")? as usize;
    let phentsize = u16_at(elf, 0x36).context("ELF header truncated")? as usize;
    let phnum = u16_at(elf, 0x38).context("ELF header truncated")? as usize;
    let mut out = elf.to_vec();
    let mut end = phoff + phnum * phentsize;
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        let p_type = u32_at(elf, ph).context("ELF program headers run past the file's end")?;
        let offset = u64_at(elf, ph + 8).context("ELF program header truncated")? as usize;
        let filesz = u64_at(elf, ph + 0x20).context("ELF program header truncated")? as usize;
        let bytes = elf
            .get(offset..offset.saturating_add(filesz))
            .with_context(|| format!("ELF program header {i} names bytes past the file's end"))?;
        let keep =
            if p_type == PT_LOAD { bytes.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1) } else { filesz };
        if p_type == PT_LOAD {
            out[ph + 0x20..ph + 0x28].copy_from_slice(&(keep as u64).to_le_bytes());
        }
        if keep > 0 {
            end = end.max(offset + keep);
        }
    }
    // e_shoff, then (after e_shentsize) e_shnum and e_shstrndx.
    out[0x28..0x30].fill(0);
    out[0x3c..0x40].fill(0);
    out.truncate(end);
    Ok(out)
}

/// Walks one PT_NOTE segment for the `Xen` note of type 18; its descriptor is the entry address,
/// 4 or 8 bytes (Linux writes it with `_ASM_PTR`, a quad on x86_64).
fn xen_phys32_entry(mut notes: &[u8]) -> Result<Option<u64>> {
    let align4 = |n: usize| n.next_multiple_of(4);
    while notes.len() >= 12 {
        let namesz = u32_at(notes, 0).unwrap_or_default() as usize;
        let descsz = u32_at(notes, 4).unwrap_or_default() as usize;
        let kind = u32_at(notes, 8).unwrap_or_default();
        let name_end = 12 + align4(namesz);
        let end = name_end + align4(descsz);
        let (Some(name), Some(desc)) = (notes.get(12..12 + namesz), notes.get(name_end..name_end + descsz)) else {
            bail!("an ELF note runs past the end of its PT_NOTE segment");
        };
        if name == b"Xen\0" && kind == XEN_ELFNOTE_PHYS32_ENTRY {
            return match descsz {
                4 => Ok(Some(u32_at(desc, 0).unwrap_or_default().into())),
                8 => Ok(Some(u64_at(desc, 0).unwrap_or_default())),
                n => bail!("the Xen PHYS32_ENTRY note has a {n}-byte descriptor, not 4 or 8"),
            };
        }
        notes = notes.get(end..).unwrap_or_default();
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// A minimal ELF64 x86_64 file with one PT_NOTE segment holding `notes` (name, type, desc).
    pub(crate) fn tiny_elf(machine: u16, notes: &[(&[u8], u32, &[u8])]) -> Vec<u8> {
        let mut note_bytes = Vec::new();
        for (name, kind, desc) in notes {
            note_bytes.extend_from_slice(&(name.len() as u32).to_le_bytes());
            note_bytes.extend_from_slice(&(desc.len() as u32).to_le_bytes());
            note_bytes.extend_from_slice(&kind.to_le_bytes());
            note_bytes.extend_from_slice(name);
            note_bytes.resize(note_bytes.len().next_multiple_of(4), 0);
            note_bytes.extend_from_slice(desc);
            note_bytes.resize(note_bytes.len().next_multiple_of(4), 0);
        }
        let mut elf = vec![0u8; 64];
        elf[..4].copy_from_slice(b"\x7fELF");
        elf[4] = 2; // ELFCLASS64
        elf[5] = 1; // little endian
        elf[6] = 1;
        elf[0x10..0x12].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
        elf[0x12..0x14].copy_from_slice(&machine.to_le_bytes());
        elf[0x20..0x28].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        elf[0x34..0x36].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
        elf[0x36..0x38].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        elf[0x38..0x3a].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        let mut ph = vec![0u8; 56];
        ph[..4].copy_from_slice(&PT_NOTE.to_le_bytes());
        ph[8..16].copy_from_slice(&120u64.to_le_bytes()); // p_offset
        ph[0x20..0x28].copy_from_slice(&(note_bytes.len() as u64).to_le_bytes());
        ph[0x28..0x30].copy_from_slice(&(note_bytes.len() as u64).to_le_bytes());
        elf.extend_from_slice(&ph);
        elf.extend_from_slice(&note_bytes);
        elf
    }

    /// A PVH kernel's ELF: a Linux note first, then Xen's PHYS32_ENTRY as a quad.
    pub(crate) fn pvh_elf(entry: u64) -> Vec<u8> {
        tiny_elf(EM_X86_64, &[(b"GNU\0", 3, b"abcd"), (b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &entry.to_le_bytes())])
    }

    /// A bzImage around `payload`: boot sector + 2 setup sectors, a fake decompressor, the
    /// payload at `payload_offset` and the 4-byte size the kernel's build appends.
    pub(crate) fn bzimage(payload: &[u8], version: u16) -> Vec<u8> {
        let setup_sects = 2u8;
        let mut img = vec![0u8; (setup_sects as usize + 1) * 512];
        img[SETUP_SECTS] = setup_sects;
        img[0x1fe..0x200].copy_from_slice(&[0x55, 0xaa]);
        img[HEADER..HEADER + 4].copy_from_slice(b"HdrS");
        img[VERSION..VERSION + 2].copy_from_slice(&version.to_le_bytes());
        let offset = 0x123u32;
        img[PAYLOAD_OFFSET..PAYLOAD_OFFSET + 4].copy_from_slice(&offset.to_le_bytes());
        img[PAYLOAD_LENGTH..PAYLOAD_LENGTH + 4].copy_from_slice(&(payload.len() as u32 + 4).to_le_bytes());
        img.extend(std::iter::repeat_n(0x90, offset as usize)); // the "decompressor"
        img.extend_from_slice(payload);
        img.extend_from_slice(&0x1234u32.to_le_bytes());
        img.extend_from_slice(&[0xcc; 64]); // what follows the payload in a real image
        img
    }

    pub(crate) fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    /// xz as the kernel's `scripts/xz_wrap.sh` makes it: CRC32 check, x86 BCJ then LZMA2.
    fn xz_bcj(data: &[u8]) -> Vec<u8> {
        let mut filters = liblzma::stream::Filters::new();
        filters.x86();
        filters.lzma2(&liblzma::stream::LzmaOptions::new_preset(6).unwrap());
        let stream = liblzma::stream::Stream::new_stream_encoder(&filters, liblzma::stream::Check::Crc32).unwrap();
        let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn lzma_alone(data: &[u8]) -> Vec<u8> {
        let stream =
            liblzma::stream::Stream::new_lzma_encoder(&liblzma::stream::LzmaOptions::new_preset(6).unwrap()).unwrap();
        let mut e = liblzma::write::XzEncoder::new_stream(Vec::new(), stream);
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn extracts_gzip_xz_and_lzma_payloads() {
        let elf = pvh_elf(0x100_0000 + 0x1a0);
        for (what, compressed) in [("gzip", gzip(&elf)), ("xz", xz_bcj(&elf)), ("lzma", lzma_alone(&elf))] {
            let img = bzimage(&compressed, 0x020f);
            let out = extract_vmlinux(&img).unwrap_or_else(|e| panic!("{what}: {e:#}"));
            assert_eq!(out, elf, "{what}");
            assert_eq!(pvh_entry(&out).unwrap(), 0x100_01a0, "{what}");
        }
        assert_eq!(payload(&bzimage(&xz_bcj(&elf), 0x020f)).unwrap().1, Compression::Xz);
    }

    /// What a loader puts in memory for each `PT_LOAD`: (paddr, file bytes padded to memsz).
    fn loaded(elf: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let (phoff, phnum) = (u64_at(elf, 0x20).unwrap() as usize, u16_at(elf, 0x38).unwrap() as usize);
        (0..phnum)
            .map(|i| phoff + i * 56)
            .filter(|&ph| u32_at(elf, ph) == Some(PT_LOAD))
            .map(|ph| {
                let (off, filesz) = (u64_at(elf, ph + 8).unwrap() as usize, u64_at(elf, ph + 0x20).unwrap() as usize);
                let mut mem = elf[off..off + filesz].to_vec();
                mem.resize(u64_at(elf, ph + 0x28).unwrap() as usize, 0);
                (u64_at(elf, ph + 0x18).unwrap(), mem)
            })
            .collect()
    }

    #[test]
    fn trims_the_zero_tails_of_load_segments_and_keeps_the_note() {
        // A PT_NOTE inside a text PT_LOAD (as in Linux), then a data PT_LOAD ending in zeros,
        // then section headers.
        let mut elf = pvh_elf(0x100_0850);
        let note_off = u64_at(&elf, 64 + 8).unwrap() as usize;
        let note_len = elf.len() - note_off;
        elf.resize(0x200, 0);
        elf[0x1f0..0x1f8].copy_from_slice(&[0xab; 8]); // text after the note, then zeros to 0x200
        let data = [&[7u8; 16][..], &[0; 0x70]].concat();
        elf.extend_from_slice(&data);
        let shoff = elf.len();
        elf.extend_from_slice(&[0x55; 64]);
        elf[0x28..0x30].copy_from_slice(&(shoff as u64).to_le_bytes());
        elf[0x3a..0x3c].copy_from_slice(&64u16.to_le_bytes());
        elf[0x3c..0x3e].copy_from_slice(&1u16.to_le_bytes());
        // Three program headers (64..232): the note's first, then the two loads.
        elf[0x38..0x3a].copy_from_slice(&3u16.to_le_bytes());
        let ph = |kind: u32, off: u64, size: u64, paddr: u64| {
            let mut h = vec![0u8; 56];
            h[..4].copy_from_slice(&kind.to_le_bytes());
            h[8..16].copy_from_slice(&off.to_le_bytes());
            h[0x18..0x20].copy_from_slice(&paddr.to_le_bytes());
            h[0x20..0x28].copy_from_slice(&size.to_le_bytes());
            h[0x28..0x30].copy_from_slice(&(size + 0x40).to_le_bytes()); // and some .bss
            h
        };
        // The loads' headers take the note's old place: the note moves to 0x100, inside the text.
        assert!(note_off < 0x100 && note_off + note_len <= 0x100);
        let note = elf[note_off..note_off + note_len].to_vec();
        elf[note_off..note_off + note_len].fill(0);
        elf[0x100..0x100 + note_len].copy_from_slice(&note);
        elf[64 + 8..64 + 16].copy_from_slice(&0x100u64.to_le_bytes());
        elf[120..176].copy_from_slice(&ph(PT_LOAD, 0x100, 0x100, 0x100_0000));
        elf[176..232].copy_from_slice(&ph(PT_LOAD, 0x200, data.len() as u64, 0x200_0000));
        assert_eq!(pvh_entry(&elf).unwrap(), 0x100_0850);

        let trimmed = trim_zero_tails(&elf).unwrap();
        assert_eq!(trimmed.len(), 0x210, "the file ends after the data's last non-zero byte");
        assert_eq!(u64_at(&trimmed, 120 + 0x20), Some(0xf8), "the text keeps up to its last non-zero byte");
        assert_eq!(u64_at(&trimmed, 176 + 0x20), Some(16));
        assert_eq!(u64_at(&trimmed, 176 + 0x28), u64_at(&elf, 176 + 0x28), "p_memsz stays");
        assert_eq!(u64_at(&trimmed, 0x28), Some(0), "no section headers");
        assert_eq!(u16_at(&trimmed, 0x3c), Some(0));
        assert_eq!(pvh_entry(&trimmed).unwrap(), 0x100_0850, "the note is where its header says");
        assert_eq!(loaded(&trimmed), loaded(&elf), "memory gets the same bytes");
        assert_eq!(trim_zero_tails(&trimmed).unwrap(), trimmed, "trimming twice changes nothing");
    }

    #[test]
    fn trimming_refuses_what_is_not_a_pvh_kernel() {
        assert!(trim_zero_tails(b"not an elf").is_err());
        let mut elf = pvh_elf(0x1000);
        elf[64 + 0x20..64 + 0x28].copy_from_slice(&0x10_0000u64.to_le_bytes()); // note past the end
        assert!(trim_zero_tails(&elf).is_err());
    }

    #[test]
    fn reads_a_four_byte_entry_note() {
        let elf = tiny_elf(EM_X86_64, &[(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &0x1000u32.to_le_bytes())]);
        assert_eq!(pvh_entry(&elf).unwrap(), 0x1000);
    }

    fn err(r: Result<impl std::fmt::Debug>) -> String {
        format!("{:#}", r.unwrap_err())
    }

    #[test]
    fn refuses_what_is_not_a_pvh_bzimage_and_says_why() {
        let elf = pvh_elf(0x1000);
        let e = err(extract_vmlinux(&elf));
        assert!(e.contains("not a bzImage") && e.contains("fix:"), "{e}");
        let e = err(extract_vmlinux(&bzimage(&gzip(&elf), 0x0207)));
        assert!(e.contains("older than 2.08"), "{e}");
        let mut truncated = bzimage(&gzip(&elf), 0x020f);
        truncated.truncate(3 * 512 + 0x123 + 10);
        let e = err(extract_vmlinux(&truncated));
        assert!(e.contains("truncated"), "{e}");
        let e = err(extract_vmlinux(&bzimage(b"\x28\xb5\x2f\xfd zstd data", 0x020f)));
        assert!(e.contains("Zstd") && e.contains("CONFIG_KERNEL_ZSTD") && e.contains("fix:"), "{e}");
        let e = err(extract_vmlinux(&bzimage(b"\x00\x01\x02 plain", 0x020f)));
        assert!(e.contains("no known compression"), "{e}");
        let e = err(extract_vmlinux(&bzimage(&gzip(b"not an elf at all"), 0x020f)));
        assert!(e.contains("not an ELF"), "{e}");
        let arm = tiny_elf(183, &[(b"Xen\0", XEN_ELFNOTE_PHYS32_ENTRY, &0u64.to_le_bytes())]);
        let e = err(extract_vmlinux(&bzimage(&gzip(&arm), 0x020f)));
        assert!(e.contains("not x86_64"), "{e}");
        let no_pvh = tiny_elf(EM_X86_64, &[(b"Xen\0", 1, b"xen-3.0\0"), (b"GNU\0", 18, &[0; 8])]);
        let e = err(extract_vmlinux(&bzimage(&gzip(&no_pvh), 0x020f)));
        assert!(e.contains("XEN_ELFNOTE_PHYS32_ENTRY") && e.contains("CONFIG_XEN_PVH"), "{e}");
        let mut corrupt = gzip(&elf);
        let mid = corrupt.len() / 2;
        corrupt[mid] ^= 0xff;
        assert!(extract_vmlinux(&bzimage(&corrupt, 0x020f)).is_err());
    }
}
