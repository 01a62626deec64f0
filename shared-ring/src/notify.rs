//! Xen's notification rule.

/// Whether the peer asked to be notified (via its event channel) for what was just published.
#[must_use = "a peer that asked for a notification sleeps until it gets one"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notify {
    /// The peer's event threshold lies in the newly published range: send an event.
    Needed,
    /// The peer is awake (or asked for a later threshold): no event.
    NotNeeded,
}

impl Notify {
    /// `true` for [`Notify::Needed`].
    #[inline]
    pub fn is_needed(self) -> bool {
        self == Notify::Needed
    }

    /// `RING_PUSH_*_AND_CHECK_NOTIFY`: after moving a producer index from `old` to `new`, notify
    /// iff the peer's `event` threshold lies in `(old, new]`, all modulo 2^32.
    #[inline]
    pub fn decide(old: u32, new: u32, event: u32) -> Self {
        if new.wrapping_sub(event) < new.wrapping_sub(old) { Notify::Needed } else { Notify::NotNeeded }
    }
}

#[cfg(test)]
mod tests {
    use super::Notify;

    #[test]
    fn notifies_iff_event_in_published_range() {
        assert_eq!(Notify::decide(0, 1, 1), Notify::Needed);
        assert_eq!(Notify::decide(0, 5, 3), Notify::Needed);
        assert_eq!(Notify::decide(0, 5, 5), Notify::Needed);
        assert_eq!(Notify::decide(0, 5, 6), Notify::NotNeeded);
        assert_eq!(Notify::decide(3, 5, 3), Notify::NotNeeded);
        assert_eq!(Notify::decide(5, 5, 5), Notify::NotNeeded);
        // Wrap-around at 2^32.
        assert_eq!(Notify::decide(u32::MAX - 1, 2, u32::MAX), Notify::Needed);
        assert_eq!(Notify::decide(u32::MAX - 1, 2, 0), Notify::Needed);
        assert_eq!(Notify::decide(u32::MAX - 1, 2, 2), Notify::Needed);
        assert_eq!(Notify::decide(u32::MAX - 1, 2, 3), Notify::NotNeeded);
        assert_eq!(Notify::decide(u32::MAX - 1, 2, u32::MAX - 1), Notify::NotNeeded);
    }
}
