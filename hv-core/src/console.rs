//! Console line discipline: domain output becomes whole, attributed, sanitised lines.
//!
//! Each domain has a [`LineBuffer`]; bytes accumulate until a newline (or the buffer fills) and
//! are then emitted as one `[name] text` line, so output from interleaved domains never tears.
//! Control characters and invalid UTF-8 from a (possibly hostile) domain are replaced so that it
//! cannot forge another domain's prefix on a fresh line or drive the user's terminal.

/// Longest line before it is broken (the rest continues on the next line).
pub const LINE_MAX: usize = 200;

#[derive(Debug)]
pub struct LineBuffer {
    buf: [u8; LINE_MAX],
    len: usize,
}

impl Default for LineBuffer {
    fn default() -> Self {
        Self { buf: [0; LINE_MAX], len: 0 }
    }
}

impl LineBuffer {
    /// Feeds bytes; calls `emit` with each completed line (without the newline).
    pub fn feed(&mut self, bytes: &[u8], mut emit: impl FnMut(&str)) {
        for &b in bytes {
            match b {
                b'\n' => self.flush(&mut emit),
                b'\r' => {}
                b'\t' => self.push(b' ', &mut emit),
                0x20..=0x7e => self.push(b, &mut emit),
                // Control bytes (ESC etc.) and everything non-ASCII: shown as '?'. Domains are
                // hostile; the console must stay readable and unforgeable.
                _ => self.push(b'?', &mut emit),
            }
        }
    }

    fn push(&mut self, b: u8, emit: &mut impl FnMut(&str)) {
        if self.len == LINE_MAX {
            self.flush(emit);
        }
        self.buf[self.len] = b;
        self.len += 1;
    }

    /// Emits whatever is buffered (e.g. when the domain ends mid-line).
    pub fn flush(&mut self, emit: &mut impl FnMut(&str)) {
        // Only printable ASCII is ever stored, so this cannot fail.
        let s = core::str::from_utf8(&self.buf[..self.len]).unwrap_or("?");
        emit(s);
        self.len = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(chunks: &[&[u8]]) -> Vec<String> {
        let mut lb = LineBuffer::default();
        let mut out = Vec::new();
        for c in chunks {
            lb.feed(c, |l| out.push(l.to_string()));
        }
        out
    }

    #[test]
    fn joins_partial_writes() {
        assert_eq!(lines(&[b"hel", b"lo\nwor", b"ld\n"]), ["hello", "world"]);
        assert_eq!(lines(&[b"no newline"]), Vec::<String>::new());
    }

    #[test]
    fn sanitises_hostile_bytes() {
        assert_eq!(lines(&[b"a\x1b[2Jb\r\n"]), ["a?[2Jb"]);
        assert_eq!(lines(&["é\t\n".as_bytes()]), ["?? "]);
    }

    #[test]
    fn breaks_long_lines() {
        let long = vec![b'x'; LINE_MAX * 2 + 5];
        let out = lines(&[&long, b"\n"]);
        assert_eq!(out.len(), 3);
        assert_eq!(out[0].len(), LINE_MAX);
        assert_eq!(out[2].len(), 5);
    }
}
