//! Node permissions with Xen's semantics (docs/misc/xenstore.txt, `SET_PERMS`): the first entry
//! names the owner, who has full access, and gives the access of every domain not listed; the
//! following entries give specific domains their access. Dom0 may do anything. The text form is
//! one NUL-terminated `<letter><domid>` per entry: `n` none, `r` read, `w` write, `b` both.

use alloc::vec::Vec;

use crate::error::StoreError;
use crate::path::{parse_decimal, push_decimal};
use crate::{DOM0, DomId};

/// What a domain may do with a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`.
    None,
    /// `r`.
    Read,
    /// `w`.
    Write,
    /// `b`.
    Both,
}

impl Access {
    /// From the permission letter.
    pub fn from_letter(letter: u8) -> Option<Self> {
        Some(match letter {
            b'n' => Access::None,
            b'r' => Access::Read,
            b'w' => Access::Write,
            b'b' => Access::Both,
            _ => return None,
        })
    }

    /// The permission letter.
    pub fn letter(self) -> u8 {
        match self {
            Access::None => b'n',
            Access::Read => b'r',
            Access::Write => b'w',
            Access::Both => b'b',
        }
    }

    /// Whether this access includes reading.
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }

    /// Whether this access includes writing.
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// A node's permission list.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Permissions {
    /// Full access; counted against this domain's node quota.
    pub owner: DomId,
    /// Access of domains without an entry of their own.
    pub others: Access,
    /// Per-domain access; the first entry for a domain wins.
    pub entries: Vec<(DomId, Access)>,
}

impl Permissions {
    /// Owned by `owner`, `others` for everyone else.
    pub fn new(owner: DomId, others: Access) -> Self {
        Self { owner, others, entries: Vec::new() }
    }

    /// Add an entry for `domid` (builder style).
    pub fn with(mut self, domid: DomId, access: Access) -> Self {
        self.entries.push((domid, access));
        self
    }

    /// What `domid` may do.
    pub fn access_for(&self, domid: DomId) -> Access {
        if domid == DOM0 || domid == self.owner {
            return Access::Both;
        }
        self.entries.iter().find(|(d, _)| *d == domid).map_or(self.others, |(_, a)| *a)
    }

    /// Entries in the text form (owner entry included).
    pub fn len(&self) -> usize {
        1 + self.entries.len()
    }

    /// Never true: the owner entry always exists.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Parse NUL-separated fields (`b"w0"`, `b"r5"`…); at least one.
    pub fn parse<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> Result<Self, StoreError> {
        let mut parsed = fields.into_iter().map(parse_entry);
        let (owner, others) = parsed.next().ok_or(StoreError::InvalidRequest)??;
        let entries = parsed.collect::<Result<Vec<_>, _>>()?;
        Ok(Self { owner, others, entries })
    }

    /// Append the text form: each entry NUL-terminated.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for (domid, access) in core::iter::once((self.owner, self.others)).chain(self.entries.iter().copied()) {
            out.push(access.letter());
            push_decimal(out, u32::from(domid));
            out.push(0);
        }
    }

    /// Remove every mention of a destroyed domain so a later domain reusing its id inherits
    /// nothing; nodes it owned pass to Dom0. Returns whether anything changed.
    pub fn forget_domain(&mut self, domid: DomId) -> bool {
        let before = self.entries.len();
        self.entries.retain(|(d, _)| *d != domid);
        let mut changed = before != self.entries.len();
        if self.owner == domid {
            self.owner = DOM0;
            changed = true;
        }
        changed
    }
}

fn parse_entry(field: &[u8]) -> Result<(DomId, Access), StoreError> {
    let (&letter, digits) = field.split_first().ok_or(StoreError::InvalidRequest)?;
    let access = Access::from_letter(letter).ok_or(StoreError::InvalidRequest)?;
    let domid = parse_decimal(digits, u64::from(DomId::MAX)).ok_or(StoreError::InvalidRequest)?;
    Ok((domid as DomId, access))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_and_dom0_have_full_access_others_follow_entries_then_default() {
        let perms = Permissions::new(5, Access::None).with(7, Access::Read).with(8, Access::Write);
        assert_eq!(perms.access_for(5), Access::Both);
        assert_eq!(perms.access_for(0), Access::Both);
        assert_eq!(perms.access_for(7), Access::Read);
        assert_eq!(perms.access_for(8), Access::Write);
        assert_eq!(perms.access_for(9), Access::None);
        let open = Permissions::new(5, Access::Read);
        assert!(open.access_for(9).can_read());
        assert!(!open.access_for(9).can_write());
    }

    #[test]
    fn text_form_round_trips() {
        let perms = Permissions::parse([&b"n5"[..], b"r0", b"b65535"]).unwrap();
        assert_eq!(perms, Permissions::new(5, Access::None).with(0, Access::Read).with(65535, Access::Both));
        let mut out = Vec::new();
        perms.encode(&mut out);
        assert_eq!(out, b"n5\0r0\0b65535\0");
    }

    #[test]
    fn rejects_malformed_entries() {
        for bad in [&b""[..], b"x1", b"r", b"r-1", b"r65536", b"r01", b"R1", b"r 1"] {
            assert_eq!(Permissions::parse([bad]), Err(StoreError::InvalidRequest), "{bad:?}");
        }
        assert_eq!(Permissions::parse(core::iter::empty()), Err(StoreError::InvalidRequest));
    }

    #[test]
    fn forgetting_a_domain_drops_its_entries_and_ownership() {
        let mut perms = Permissions::new(5, Access::None).with(7, Access::Both).with(3, Access::Read);
        assert!(perms.forget_domain(7));
        assert_eq!(perms.access_for(7), Access::None);
        assert!(perms.forget_domain(5));
        assert_eq!(perms.owner, 0);
        assert!(!perms.forget_domain(9));
    }
}
