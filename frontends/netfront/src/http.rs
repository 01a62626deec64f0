//! A small, strict HTTP/1.x request parser and response writer for `httpd`.
//!
//! Requests are bounded ([`MAX_REQUEST`] bytes, head and body together). Only what a static
//! server needs is interpreted: method, path (query dropped), version, `Connection` and
//! `Content-Length` (a body is skipped). Anything malformed is [`Parse::Bad`] (answer 400 and
//! close).

use core::fmt;

/// Largest request (head and body) accepted.
pub const MAX_REQUEST: usize = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    /// Any other well-formed method (answered 405).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: Method,
    /// The target without its query string.
    pub path: &'a str,
    pub keep_alive: bool,
    /// Bytes of the buffer this request used (head and body).
    pub len: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse<'a> {
    /// Need more bytes.
    Incomplete,
    /// Malformed: answer 400 and close.
    Bad,
    /// Longer than [`MAX_REQUEST`]: answer 431/413 and close.
    TooLarge,
    Request(Request<'a>),
}

fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `line` (no CR/LF) is printable ASCII or tab.
fn printable(line: &[u8]) -> bool {
    line.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !b" \t".contains(b)).unwrap_or(s.len());
    let end = s.iter().rposition(|b| !b" \t".contains(b)).map_or(start, |e| e + 1);
    &s[start..end]
}

/// Parses the first request in `buf`.
pub fn parse(buf: &[u8]) -> Parse<'_> {
    // Split off the head: lines end with LF (a CR before it is dropped), an empty line ends it.
    let mut lines: [&[u8]; 32] = [&[]; 32];
    let mut n = 0;
    let mut pos = 0;
    let head_end = loop {
        let Some(nl) = buf[pos..].iter().position(|&b| b == b'\n') else {
            // Reject garbage early rather than waiting for MAX_REQUEST bytes of it.
            let rest = &buf[pos..];
            if !printable(rest.strip_suffix(b"\r").unwrap_or(rest)) {
                return Parse::Bad;
            }
            return if buf.len() >= MAX_REQUEST { Parse::TooLarge } else { Parse::Incomplete };
        };
        let mut line = &buf[pos..pos + nl];
        if let Some(l) = line.strip_suffix(b"\r") {
            line = l;
        }
        pos += nl + 1;
        if line.is_empty() {
            if n == 0 {
                continue; // tolerate blank lines before a request (RFC 9112 2.2)
            }
            break pos;
        }
        if !printable(line) || n == lines.len() {
            return Parse::Bad;
        }
        lines[n] = line;
        n += 1;
        if pos >= MAX_REQUEST {
            return Parse::TooLarge;
        }
    };
    if head_end > MAX_REQUEST {
        return Parse::TooLarge;
    }
    // Request line.
    let mut parts = lines[0].split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parse::Bad;
    };
    if method.is_empty() || !method.iter().all(|&b| is_token(b)) || !target.starts_with(b"/") {
        return Parse::Bad;
    }
    let mut keep_alive = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => return Parse::Bad,
    };
    let Ok(target) = core::str::from_utf8(target) else { return Parse::Bad };
    let path = target.split('?').next().unwrap_or(target);
    // Headers.
    let mut body = 0usize;
    for line in &lines[1..n] {
        let Some(colon) = line.iter().position(|&b| b == b':') else { return Parse::Bad };
        let (name, value) = (&line[..colon], trim(&line[colon + 1..]));
        if name.is_empty() || !name.iter().all(|&b| is_token(b)) {
            return Parse::Bad;
        }
        if name.eq_ignore_ascii_case(b"connection") {
            for opt in value.split(|&b| b == b',') {
                let opt = trim(opt);
                if opt.eq_ignore_ascii_case(b"close") {
                    keep_alive = false;
                } else if opt.eq_ignore_ascii_case(b"keep-alive") {
                    keep_alive = true;
                }
            }
        } else if name.eq_ignore_ascii_case(b"content-length") {
            if value.is_empty() || value.len() > 9 || !value.iter().all(u8::is_ascii_digit) {
                return Parse::Bad;
            }
            body = value.iter().fold(0, |a, &d| a * 10 + usize::from(d - b'0'));
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return Parse::Bad; // no chunked bodies
        }
    }
    let method = match method {
        b"GET" => Method::Get,
        b"HEAD" => Method::Head,
        _ => Method::Other,
    };
    let len = head_end + body;
    if len > MAX_REQUEST {
        return Parse::TooLarge;
    }
    if buf.len() < len {
        return Parse::Incomplete;
    }
    Parse::Request(Request { method, path, keep_alive, len })
}

/// A `fmt::Write` over a fixed buffer; writing past its end fails.
pub struct Cursor<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl fmt::Write for Cursor<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        if end > self.buf.len() {
            return Err(fmt::Error);
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// The reason phrase of the statuses httpd uses.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    }
}

/// Writes a whole response (head, then `body` unless `head_only`) into `out`; returns its length.
pub fn write_response(
    out: &mut [u8],
    status: u16,
    content_type: &str,
    body: &[u8],
    keep_alive: bool,
    head_only: bool,
) -> Result<usize, fmt::Error> {
    use fmt::Write;
    let mut c = Cursor::new(out);
    write!(
        c,
        "HTTP/1.1 {status} {}\r\nServer: hv-httpd\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: {}\r\n\r\n",
        reason(status),
        body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    )?;
    let head = c.len();
    if head_only {
        return Ok(head);
    }
    let out = c.buf;
    let end = head.checked_add(body.len()).filter(|&e| e <= out.len()).ok_or(fmt::Error)?;
    out[head..end].copy_from_slice(body);
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Parse<'_> {
        parse(s.as_bytes())
    }

    #[test]
    fn simple_requests() {
        let Parse::Request(r) = req("GET / HTTP/1.1\r\nHost: x\r\n\r\n") else { panic!() };
        assert_eq!((r.method, r.path, r.keep_alive, r.len), (Method::Get, "/", true, 27));
        let Parse::Request(r) = req("GET /stats?x=1 HTTP/1.0\r\n\r\n") else { panic!() };
        assert_eq!((r.path, r.keep_alive), ("/stats", false));
        let Parse::Request(r) = req("HEAD /a HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") else { panic!() };
        assert_eq!((r.method, r.keep_alive), (Method::Head, true));
        let Parse::Request(r) = req("GET / HTTP/1.1\r\nconnection: close\r\n\r\n") else { panic!() };
        assert!(!r.keep_alive);
        let Parse::Request(r) = req("POST /x HTTP/1.1\nContent-Length: 3\n\nabcGET") else { panic!() };
        assert_eq!((r.method, r.len), (Method::Other, 39));
        let Parse::Request(r) = req("\r\nGET / HTTP/1.1\r\n\r\n") else { panic!() };
        assert_eq!(r.len, 20);
    }

    #[test]
    fn pipelined_requests_parse_one_at_a_time() {
        let two = b"GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n";
        let Parse::Request(a) = parse(two) else { panic!() };
        assert_eq!(a.path, "/a");
        let Parse::Request(b) = parse(&two[a.len..]) else { panic!() };
        assert_eq!(b.path, "/b");
        assert_eq!(a.len + b.len, two.len());
    }

    #[test]
    fn incomplete_and_too_large() {
        assert_eq!(req(""), Parse::Incomplete);
        assert_eq!(req("GET / HTTP/1.1\r"), Parse::Incomplete);
        assert_eq!(req("GET / HTTP/1.1\r\nHost: x\r\n"), Parse::Incomplete);
        assert_eq!(req("POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc"), Parse::Incomplete);
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_REQUEST));
        assert_eq!(parse(long.as_bytes()), Parse::TooLarge);
        assert_eq!(parse(&long.as_bytes()[..MAX_REQUEST + 10]), Parse::TooLarge);
        assert_eq!(req("POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"), Parse::TooLarge);
        let many = format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(40));
        assert_eq!(parse(many.as_bytes()), Parse::Bad);
    }

    #[test]
    fn garbage_is_bad() {
        for g in [
            "\x16\x03\x01\x02\x00",
            "GET\r\n\r\n",
            "GET / HTTP/2.0\r\n\r\n",
            "GET  / HTTP/1.1\r\n\r\n",
            "GET x HTTP/1.1\r\n\r\n",
            "G(T / HTTP/1.1\r\n\r\n",
            "GET / HTTP/1.1\r\nno colon\r\n\r\n",
            "GET / HTTP/1.1\r\nBad Name: x\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
            "GET / HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n",
            "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "GET / HTTP/1.1 extra\r\n\r\n",
        ] {
            assert_eq!(req(g), Parse::Bad, "{g:?}");
        }
        assert_eq!(parse(b"GET /\xff HTTP/1.1\r\n\r\n"), Parse::Bad);
    }

    #[test]
    fn responses() {
        let mut out = [0u8; 256];
        let n = write_response(&mut out, 404, "text/plain", b"not found\n", false, false).unwrap();
        let s = core::str::from_utf8(&out[..n]).unwrap();
        assert!(s.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(s.contains("Content-Length: 10\r\nConnection: close\r\n\r\nnot found\n"));
        let h = write_response(&mut out, 200, "text/html", b"0123456789", true, true).unwrap();
        assert!(core::str::from_utf8(&out[..h]).unwrap().ends_with("keep-alive\r\n\r\n"));
        let mut small = [0u8; 40];
        assert!(write_response(&mut small, 200, "text/html", b"x", true, false).is_err());
    }
}
