//! A minimal writer of `newc` cpio archives (the Linux initramfs format), so the initramfs of
//! the benchmark's reference guests and of the PVH Linux guest ([`crate::linux_guest`]) can hold
//! device nodes and symlinks without root or the cpio tool.

/// One archive member.
pub enum Entry<'a> {
    Dir {
        path: &'a str,
        mode: u32,
    },
    File {
        path: &'a str,
        mode: u32,
        data: &'a [u8],
    },
    CharDev {
        path: &'a str,
        mode: u32,
        major: u32,
        minor: u32,
    },
    /// A symbolic link at `path` pointing to `target` (stored as the member's data, as newc does).
    Symlink {
        path: &'a str,
        target: &'a str,
    },
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFCHR: u32 = 0o020000;
const S_IFLNK: u32 = 0o120000;

/// Serialises the entries followed by the `TRAILER!!!` record.
pub fn newc(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let ino = i as u32 + 1;
        match *e {
            Entry::Dir { path, mode } => header(&mut out, ino, S_IFDIR | mode, 2, 0, (0, 0), path, &[]),
            Entry::File { path, mode, data } => {
                header(&mut out, ino, S_IFREG | mode, 1, data.len(), (0, 0), path, data)
            }
            Entry::CharDev { path, mode, major, minor } => {
                header(&mut out, ino, S_IFCHR | mode, 1, 0, (major, minor), path, &[])
            }
            Entry::Symlink { path, target } => {
                header(&mut out, ino, S_IFLNK | 0o777, 1, target.len(), (0, 0), path, target.as_bytes())
            }
        }
    }
    header(&mut out, 0, 0, 1, 0, (0, 0), "TRAILER!!!", &[]);
    out
}

#[allow(clippy::too_many_arguments)]
fn header(out: &mut Vec<u8>, ino: u32, mode: u32, nlink: u32, size: usize, rdev: (u32, u32), name: &str, data: &[u8]) {
    let fields = [ino, mode, 0, 0, nlink, 0, size as u32, 0, 0, rdev.0, rdev.1, name.len() as u32 + 1, 0];
    out.extend_from_slice(b"070701");
    for f in fields {
        out.extend_from_slice(format!("{f:08x}").as_bytes());
    }
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    pad4(out);
    out.extend_from_slice(data);
    pad4(out);
}

fn pad4(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(rec: &[u8], i: usize) -> u32 {
        u32::from_str_radix(std::str::from_utf8(&rec[6 + 8 * i..14 + 8 * i]).unwrap(), 16).unwrap()
    }

    #[test]
    fn layout_matches_newc() {
        let a = newc(&[
            Entry::Dir { path: "dev", mode: 0o755 },
            Entry::CharDev { path: "dev/console", mode: 0o600, major: 5, minor: 1 },
            Entry::File { path: "init", mode: 0o755, data: b"hello" },
            Entry::Symlink { path: "sh", target: "busybox" },
        ]);
        assert_eq!(&a[..6], b"070701");
        assert_eq!(a.len() % 4, 0);
        // Walk the records.
        let mut off = 0;
        let mut names = Vec::new();
        while off < a.len() {
            let rec = &a[off..];
            assert_eq!(&rec[..6], b"070701", "record at {off}");
            let namesize = field(rec, 11) as usize;
            let size = field(rec, 6) as usize;
            let name = std::str::from_utf8(&rec[110..110 + namesize - 1]).unwrap().to_owned();
            assert_eq!(rec[110 + namesize - 1], 0);
            let data_off = (110 + namesize).next_multiple_of(4);
            if name == "dev/console" {
                assert_eq!(field(rec, 1), S_IFCHR | 0o600);
                assert_eq!((field(rec, 9), field(rec, 10)), (5, 1));
            }
            if name == "sh" {
                assert_eq!(field(rec, 1), S_IFLNK | 0o777);
                assert_eq!(&rec[data_off..data_off + size], b"busybox");
            }
            if name == "init" {
                assert_eq!(&rec[data_off..data_off + size], b"hello");
            }
            names.push(name);
            off += (data_off + size).next_multiple_of(4);
        }
        assert_eq!(names, ["dev", "dev/console", "init", "sh", "TRAILER!!!"]);
        assert_eq!(off, a.len());
    }

    #[test]
    fn cpio_tool_reads_it_when_installed() {
        let Some(cpio) = crate::packages::find_in_path("cpio") else {
            eprintln!("cpio(1) is not installed: cross-check skipped (the layout test above still runs)");
            return;
        };
        let a = newc(&[
            Entry::Dir { path: "d", mode: 0o755 },
            Entry::File { path: "d/f", mode: 0o644, data: b"abc" },
            Entry::Symlink { path: "d/l", target: "f" },
        ]);
        let out = std::process::Command::new(cpio)
            .args(["-t", "--quiet"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(&a)?;
                c.wait_with_output()
            })
            .unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout), "d\nd/f\nd/l\n");
    }
}
