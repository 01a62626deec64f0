//! The host-testable half of `pvh-probe`: what the kernel reads from its boot information (the
//! command line and the `hvm_start_info` memory map) and the fixed-size line buffer it prints
//! through. The kernel itself (boot code, hypercalls, probes) is `main.rs`, built only for
//! `x86_64-unknown-none`.
#![cfg_attr(not(test), no_std)]

use hv_abi::xen::{HvmMemmapEntry, memmap_type};

/// The longest command line read from guest memory (Linux's x86 `COMMAND_LINE_SIZE`).
pub const CMDLINE_MAX: usize = 2048;

/// What the first word of the command line asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Print a greeting with the Xen version, then power off.
    Hello,
    /// Attack the hypervisor's ABI and print each outcome.
    Hostile,
    /// Time `xen_version` round trips.
    Bench,
    /// Shut down with reason crash.
    Panic,
    /// Make the CPU triple-fault.
    TripleFault,
    /// Without Xen (plain QEMU): print to port 0xe9 and exit via isa-debug-exit.
    Selftest,
    /// Share a port and two grants with a paravirtual peer domain, wait for its event, answer.
    Share,
    /// Map two grants of a paravirtual peer, let the peer die, use the revoked mappings.
    Revoke,
}

impl Mode {
    /// Every mode with its command-line word.
    pub const ALL: [(Mode, &'static str); 8] = [
        (Mode::Hello, "hello"),
        (Mode::Hostile, "hostile"),
        (Mode::Bench, "bench"),
        (Mode::Panic, "panic"),
        (Mode::TripleFault, "triple-fault"),
        (Mode::Selftest, "selftest"),
        (Mode::Share, "share"),
        (Mode::Revoke, "revoke"),
    ];

    /// The command-line word.
    pub fn name(self) -> &'static str {
        Self::ALL.iter().find(|(m, _)| *m == self).map(|(_, n)| *n).unwrap_or("?")
    }
}

/// The parsed command line: `<mode> [oob] [grant <domid>] [hold=<yields>]`, where `share` and
/// `revoke` are followed by their peer's domid (`share <domid>`, `revoke <domid>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub mode: Mode,
    /// `oob`: end the hostile run by reading guest-physical memory above RAM.
    pub oob: bool,
    /// `grant <domid>`: grant a marked page to this domain during the hostile run.
    pub grant_to: Option<u16>,
    /// `hold=<n>`: yield `n` times before shutting down (time for a peer to use the grant).
    pub hold: u64,
    /// `share <domid>` / `revoke <domid>`: the paravirtual peer to share a port and grants with.
    pub peer: Option<u16>,
}

/// Why a command line was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmdlineError<'a> {
    /// No words at all.
    Empty,
    /// The first word names no mode.
    UnknownMode(&'a str),
    /// `grant` without a valid domid after it.
    BadGrant,
    /// `hold=` without a number.
    BadHold,
    /// `share` or `revoke` without a valid peer domid after it.
    BadPeer,
    /// A word that means nothing.
    UnknownWord(&'a str),
}

impl core::fmt::Display for CmdlineError<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            CmdlineError::Empty => write!(f, "empty command line"),
            CmdlineError::UnknownMode(w) => write!(f, "unknown mode {w:?}"),
            CmdlineError::BadGrant => write!(f, "`grant` needs a domid below 0x7ff0"),
            CmdlineError::BadHold => write!(f, "`hold=` needs a decimal count"),
            CmdlineError::BadPeer => write!(f, "`share` and `revoke` need a peer domid below 0x7ff0"),
            CmdlineError::UnknownWord(w) => write!(f, "unknown word {w:?}"),
        }
    }
}

/// Parses a decimal or `0x` hexadecimal number.
fn parse_number(s: &str) -> Option<u64> {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Parses an ordinary domid (below Xen's reserved ids).
fn parse_domid(s: &str) -> Option<u16> {
    parse_number(s).and_then(|d| u16::try_from(d).ok()).filter(|d| *d < hv_abi::xen::domid::FIRST_RESERVED)
}

/// Parses the command line (words separated by ASCII whitespace).
pub fn parse_cmdline(line: &str) -> Result<Options, CmdlineError<'_>> {
    let mut words = line.split_ascii_whitespace();
    let first = words.next().ok_or(CmdlineError::Empty)?;
    let mode = Mode::ALL.iter().find(|(_, n)| *n == first).map(|(m, _)| *m).ok_or(CmdlineError::UnknownMode(first))?;
    let mut options = Options { mode, oob: false, grant_to: None, hold: 0, peer: None };
    if matches!(mode, Mode::Share | Mode::Revoke) {
        options.peer = Some(words.next().and_then(parse_domid).ok_or(CmdlineError::BadPeer)?);
    }
    while let Some(word) = words.next() {
        if word == "oob" {
            options.oob = true;
        } else if word == "grant" {
            options.grant_to = Some(words.next().and_then(parse_domid).ok_or(CmdlineError::BadGrant)?);
        } else if let Some(count) = word.strip_prefix("hold=") {
            options.hold = parse_number(count).ok_or(CmdlineError::BadHold)?;
        } else {
            return Err(CmdlineError::UnknownWord(word));
        }
    }
    Ok(options)
}

/// The command line as text: the bytes up to the first NUL (or all of them), cut at the first
/// invalid UTF-8 byte.
pub fn cmdline_text(bytes: &[u8]) -> &str {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let bytes = &bytes[..end];
    match core::str::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// One past the highest RAM byte in a memory map (0 if it has no RAM).
pub fn ram_end(map: &[HvmMemmapEntry]) -> u64 {
    map.iter().filter(|e| e.kind == memmap_type::RAM).map(|e| e.addr.saturating_add(e.size)).max().unwrap_or(0)
}

/// Total RAM bytes in a memory map.
pub fn ram_bytes(map: &[HvmMemmapEntry]) -> u64 {
    map.iter().filter(|e| e.kind == memmap_type::RAM).fold(0u64, |sum, e| sum.saturating_add(e.size))
}

/// A 4 KiB-aligned guest frame at or above `ram_end` that no memory-map entry covers, at least
/// `gap` bytes above the end of RAM: where to ask the hypervisor to place a special page.
pub fn free_frame_above_ram(map: &[HvmMemmapEntry], gap: u64) -> u64 {
    let mut candidate = ram_end(map).saturating_add(gap).next_multiple_of(4096);
    // Skip anything the map describes (reserved holes for console/xenstore pages, ACPI, ...).
    loop {
        let hit = map.iter().find(|e| e.addr <= candidate && candidate < e.addr.saturating_add(e.size));
        match hit {
            Some(e) => candidate = e.addr.saturating_add(e.size).next_multiple_of(4096),
            None => return candidate >> 12,
        }
    }
}

/// `share` mode: the grant ref of the page the peer may only read (Linux keeps refs 0..8 for the
/// toolstack, so the first two free ones).
pub const SHARE_READONLY_REF: u32 = 8;
/// `share` mode: the grant ref of the page the peer may write.
pub const SHARE_WRITABLE_REF: u32 = 9;
/// `share` mode: what the read-only page says (NUL-terminated in the page).
pub const SHARE_MARKER: &str = "hello from the HVM guest through a read-only grant";
/// `share` mode: what the peer's page (which it grants us for copying) says.
pub const PEER_COPY_MARKER: &str = "copied out of hvm-peer's page by the HVM guest";
/// `share` mode: what the HVM guest copies into the peer's page.
pub const COPY_BACK_TEXT: &str = "copied into hvm-peer's page by the HVM guest";

/// `share` mode: what the HVM guest writes into the peer's page through its own mapping.
pub const MAPPED_TEXT: &str = "written into hvm-peer's page through the HVM guest's mapping";

/// `share` mode: the grant ref in the peer's text (`...; copy grant <ref>`), if any.
pub fn copy_grant_in(text: &str) -> Option<u32> {
    let rest = &text[text.find("copy grant ")? + "copy grant ".len()..];
    let digits = rest.find(|c: char| !c.is_ascii_digit()).map_or(rest, |end| &rest[..end]);
    digits.parse().ok()
}

/// `revoke` mode: the grant refs of the peer's two pages (the first two its runtime hands out).
pub const REVOKE_REFS: [u32; 2] = [8, 9];

/// `revoke` mode: word `i` (0..512) of the pattern the HVM guest writes through a revoked
/// mapping. `hvm-granter` (frontends/test-domains) computes the same words to look for them in
/// its RAM; both print [`REVOKE_PATTERN_SEED`], which the scenario compares.
pub const fn revoke_pattern(i: usize) -> u64 {
    REVOKE_PATTERN_SEED ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// `revoke` mode: the pattern's word 0.
pub const REVOKE_PATTERN_SEED: u64 = 0x5245_564f_4b45_4421;

/// `share` mode: the callback vector events arrive on (Linux's `HYPERVISOR_CALLBACK_VECTOR`).
pub const CALLBACK_VECTOR: u8 = 0xf3;

/// Xen's 2-level event scan over one snapshot: for each selector bit (lowest first), the ports
/// of that word that are pending and not masked, lowest first, at most `out.len()` of them.
/// Returns how many were written.
pub fn pending_ports(selector: u64, pending: &[u64], mask: &[u64], out: &mut [u32]) -> usize {
    let mut n = 0;
    let mut sel = selector;
    while sel != 0 && n < out.len() {
        let word = sel.trailing_zeros() as usize;
        sel &= sel - 1;
        let mut bits = pending.get(word).copied().unwrap_or(0) & !mask.get(word).copied().unwrap_or(0);
        while bits != 0 && n < out.len() {
            out[n] = word as u32 * 64 + bits.trailing_zeros();
            bits &= bits - 1;
            n += 1;
        }
    }
    n
}

/// A fixed-capacity line buffer: formatted text accumulates until a newline (or a full buffer),
/// then goes to the sink in one piece (one `console_io` hypercall per line).
pub struct LineBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> Default for LineBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> LineBuf<N> {
    /// An empty buffer.
    pub const fn new() -> Self {
        Self { buf: [0; N], len: 0 }
    }

    /// Appends `s`, calling `flush` with each completed line (newline included) and with the
    /// whole buffer whenever it fills up.
    pub fn push(&mut self, s: &[u8], mut flush: impl FnMut(&[u8])) {
        for &b in s {
            self.buf[self.len] = b;
            self.len += 1;
            if b == b'\n' || self.len == N {
                flush(&self.buf[..self.len]);
                self.len = 0;
            }
        }
    }

    /// Hands any partial line to `flush`.
    pub fn flush(&mut self, mut flush: impl FnMut(&[u8])) {
        if self.len > 0 {
            flush(&self.buf[..self.len]);
            self.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(addr: u64, size: u64, kind: u32) -> HvmMemmapEntry {
        HvmMemmapEntry { addr, size, kind, reserved: 0 }
    }

    #[test]
    fn modes_and_options() {
        assert_eq!(parse_cmdline("hello").unwrap().mode, Mode::Hello);
        assert_eq!(parse_cmdline("  bench  ").unwrap().mode, Mode::Bench);
        assert_eq!(parse_cmdline("triple-fault").unwrap().mode, Mode::TripleFault);
        let o = parse_cmdline("hostile grant 3 oob hold=100").unwrap();
        assert_eq!(o, Options { mode: Mode::Hostile, oob: true, grant_to: Some(3), hold: 100, peer: None });
        let o = parse_cmdline("share 2 hold=5").unwrap();
        assert_eq!(o, Options { mode: Mode::Share, oob: false, grant_to: None, hold: 5, peer: Some(2) });
        assert_eq!(parse_cmdline("hostile grant 0x10").unwrap().grant_to, Some(16));
        let o = parse_cmdline("revoke 3").unwrap();
        assert_eq!(o, Options { mode: Mode::Revoke, oob: false, grant_to: None, hold: 0, peer: Some(3) });
        for mode in Mode::ALL {
            let peer = matches!(mode.0, Mode::Share | Mode::Revoke);
            let line = if peer { format!("{} 1", mode.1) } else { mode.1.to_owned() };
            assert_eq!(parse_cmdline(&line).unwrap().mode.name(), mode.1);
        }
    }

    #[test]
    fn bad_command_lines() {
        assert_eq!(parse_cmdline(""), Err(CmdlineError::Empty));
        assert_eq!(parse_cmdline("   "), Err(CmdlineError::Empty));
        assert_eq!(parse_cmdline("helo"), Err(CmdlineError::UnknownMode("helo")));
        assert_eq!(parse_cmdline("hostile grant"), Err(CmdlineError::BadGrant));
        assert_eq!(parse_cmdline("hostile grant x"), Err(CmdlineError::BadGrant));
        assert_eq!(parse_cmdline("hostile grant 32752"), Err(CmdlineError::BadGrant));
        assert_eq!(parse_cmdline("hostile grant 70000"), Err(CmdlineError::BadGrant));
        assert_eq!(parse_cmdline("bench hold=z"), Err(CmdlineError::BadHold));
        assert_eq!(parse_cmdline("hello world"), Err(CmdlineError::UnknownWord("world")));
        assert_eq!(parse_cmdline("share"), Err(CmdlineError::BadPeer));
        assert_eq!(parse_cmdline("share hold=3"), Err(CmdlineError::BadPeer));
        assert_eq!(parse_cmdline("share 32752"), Err(CmdlineError::BadPeer));
        assert_eq!(parse_cmdline("revoke"), Err(CmdlineError::BadPeer));
        assert_eq!(parse_cmdline("revoke x"), Err(CmdlineError::BadPeer));
    }

    #[test]
    fn cmdline_bytes() {
        assert_eq!(cmdline_text(b"hello\0junk"), "hello");
        assert_eq!(cmdline_text(b"hello"), "hello");
        assert_eq!(cmdline_text(b"ok\xffbad\0"), "ok");
        assert_eq!(cmdline_text(b""), "");
    }

    #[test]
    fn memory_map() {
        let map = [
            entry(0, 0xa0000, memmap_type::RAM),
            entry(0xf0000, 0x10000, memmap_type::RESERVED),
            entry(0x100000, 0x7f00000, memmap_type::RAM),
            entry(0x8000000, 0x2000, memmap_type::RESERVED),
            entry(0xfee00000, 0x1000, memmap_type::RESERVED),
        ];
        assert_eq!(ram_end(&map), 0x8000000);
        assert_eq!(ram_bytes(&map), 0xa0000 + 0x7f00000);
        // The reserved pages right after RAM are skipped.
        assert_eq!(free_frame_above_ram(&map, 0), 0x8002);
        assert_eq!(free_frame_above_ram(&map, 0x10000), 0x8010);
        assert_eq!(ram_end(&[]), 0);
        assert_eq!(free_frame_above_ram(&[], 1), 1);
    }

    #[test]
    fn pending_ports_follow_the_selector_and_skip_masked_ones() {
        let mut pending = [0u64; 64];
        let mut mask = [0u64; 64];
        pending[0] = (1 << 3) | (1 << 1);
        pending[1] = 1 << 5;
        pending[2] = 1 << 7;
        mask[0] = 1 << 1;
        let mut out = [0u32; 8];
        // Word 2 is pending but not in the selector: not looked at.
        let n = pending_ports(0b11, &pending, &mask, &mut out);
        assert_eq!(&out[..n], &[3, 69]);
        let n = pending_ports(0b111, &pending, &mask, &mut out[..1]);
        assert_eq!(n, 1);
        assert_eq!(out[0], 3);
        // A selector bit past the bitmap finds nothing rather than failing.
        assert_eq!(pending_ports(1 << 63, &pending[..2], &mask[..2], &mut out), 0);
        assert_eq!(pending_ports(0, &pending, &mask, &mut out), 0);
    }

    #[test]
    fn line_buffer_flushes_lines_and_full_buffers() {
        let mut out: Vec<Vec<u8>> = Vec::new();
        let mut lb = LineBuf::<8>::new();
        lb.push(b"ab\ncdefghijk", |l| out.push(l.to_vec()));
        assert_eq!(out, vec![b"ab\n".to_vec(), b"cdefghij".to_vec()]);
        lb.flush(|l| out.push(l.to_vec()));
        assert_eq!(out.last().unwrap(), b"k");
        lb.flush(|_| panic!("nothing left"));
    }

    #[test]
    fn the_revoke_pattern_starts_with_its_seed_and_has_no_repeated_word() {
        assert_eq!(revoke_pattern(0), REVOKE_PATTERN_SEED);
        let words: std::collections::BTreeSet<u64> = (0..512).map(revoke_pattern).collect();
        assert_eq!(words.len(), 512);
        assert!(!words.contains(&0));
    }

    #[test]
    fn finds_the_copy_grant_in_the_peers_text() {
        assert_eq!(copy_grant_in("written by hvm-peer, domain 2; copy grant 7"), Some(7));
        assert_eq!(copy_grant_in("copy grant 12, thanks"), Some(12));
        assert_eq!(copy_grant_in("written by hvm-peer, domain 2"), None);
        assert_eq!(copy_grant_in("copy grant "), None);
        assert_eq!(copy_grant_in("copy grant 99999999999"), None);
    }
}
