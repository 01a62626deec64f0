//! The error names the store sends in `XS_ERROR` replies (`xsd_errors` in `xs_wire.h`): the
//! errno's name as a NUL-terminated string, never its number.

use core::fmt;

/// One entry of `xsd_errors`, in the header's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Errno {
    Einval,
    Eacces,
    Eexist,
    Eisdir,
    Enoent,
    Enomem,
    Enospc,
    Eio,
    Enotempty,
    Enosys,
    Erofs,
    Ebusy,
    Eagain,
    Eisconn,
    E2big,
    Eperm,
}

impl Errno {
    /// Every name the protocol defines.
    pub const ALL: [Errno; 16] = [
        Errno::Einval,
        Errno::Eacces,
        Errno::Eexist,
        Errno::Eisdir,
        Errno::Enoent,
        Errno::Enomem,
        Errno::Enospc,
        Errno::Eio,
        Errno::Enotempty,
        Errno::Enosys,
        Errno::Erofs,
        Errno::Ebusy,
        Errno::Eagain,
        Errno::Eisconn,
        Errno::E2big,
        Errno::Eperm,
    ];

    /// The wire name (`"EACCES"`), without the NUL.
    pub fn name(self) -> &'static str {
        match self {
            Errno::Einval => "EINVAL",
            Errno::Eacces => "EACCES",
            Errno::Eexist => "EEXIST",
            Errno::Eisdir => "EISDIR",
            Errno::Enoent => "ENOENT",
            Errno::Enomem => "ENOMEM",
            Errno::Enospc => "ENOSPC",
            Errno::Eio => "EIO",
            Errno::Enotempty => "ENOTEMPTY",
            Errno::Enosys => "ENOSYS",
            Errno::Erofs => "EROFS",
            Errno::Ebusy => "EBUSY",
            Errno::Eagain => "EAGAIN",
            Errno::Eisconn => "EISCONN",
            Errno::E2big => "E2BIG",
            Errno::Eperm => "EPERM",
        }
    }

    /// Parse an `XS_ERROR` payload (`"EACCES\0"`, the NUL optional).
    pub fn from_name(text: &[u8]) -> Option<Self> {
        let text = text.strip_suffix(b"\0").unwrap_or(text);
        Self::ALL.into_iter().find(|e| e.name().as_bytes() == text)
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_xs_wire_h() {
        // xs_wire.h's table, in order.
        let header = "EINVAL EACCES EEXIST EISDIR ENOENT ENOMEM ENOSPC EIO ENOTEMPTY ENOSYS EROFS EBUSY EAGAIN \
                      EISCONN E2BIG EPERM";
        let names: alloc::vec::Vec<&str> = Errno::ALL.iter().map(|e| e.name()).collect();
        assert_eq!(names.join(" "), header);
        for e in Errno::ALL {
            assert_eq!(Errno::from_name(e.name().as_bytes()), Some(e));
        }
        assert_eq!(Errno::from_name(b"EACCES\0"), Some(Errno::Eacces));
        assert_eq!(Errno::from_name(b"EQUOTA"), None);
        assert_eq!(Errno::from_name(b""), None);
    }
}
