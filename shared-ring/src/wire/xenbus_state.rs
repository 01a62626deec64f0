//! `enum xenbus_state` (`xen/include/public/io/xenbus.h`): the state each end of a split
//! device publishes in the store, as a decimal string.

use core::fmt;

/// XenbusState.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum XenbusState {
    /// 0.
    Unknown = 0,
    /// 1.
    Initialising = 1,
    /// 2: waiting for information from the peer or hotplug scripts.
    InitWait = 2,
    /// 3: waiting for a connection from the peer.
    Initialised = 3,
    /// 4.
    Connected = 4,
    /// 5: due to an error or an unplug event.
    Closing = 5,
    /// 6.
    Closed = 6,
    /// 7.
    Reconfiguring = 7,
    /// 8.
    Reconfigured = 8,
}

/// A store value that is not a XenbusState.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadXenbusState;

impl fmt::Display for BadXenbusState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a XenbusState (expected a decimal 0..=8)")
    }
}

impl core::error::Error for BadXenbusState {}

impl TryFrom<u32> for XenbusState {
    type Error = BadXenbusState;
    fn try_from(value: u32) -> Result<Self, BadXenbusState> {
        use XenbusState::*;
        Ok(match value {
            0 => Unknown,
            1 => Initialising,
            2 => InitWait,
            3 => Initialised,
            4 => Connected,
            5 => Closing,
            6 => Closed,
            7 => Reconfiguring,
            8 => Reconfigured,
            _ => return Err(BadXenbusState),
        })
    }
}

impl XenbusState {
    /// Parse the store's text (`"4"`, optionally NUL-terminated).
    pub fn parse(text: &[u8]) -> Result<Self, BadXenbusState> {
        let text = text.strip_suffix(b"\0").unwrap_or(text);
        match text {
            [digit @ b'0'..=b'8'] => Self::try_from(u32::from(digit - b'0')),
            _ => Err(BadXenbusState),
        }
    }

    /// The store's text for this state (`b"4"`).
    pub fn as_text(self) -> &'static [u8] {
        const DIGITS: [&[u8]; 9] = [b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7", b"8"];
        DIGITS[self as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_store_text() {
        for v in 0..=8u32 {
            let state = XenbusState::try_from(v).unwrap();
            assert_eq!(XenbusState::parse(state.as_text()), Ok(state));
        }
        assert_eq!(XenbusState::parse(b"4\0"), Ok(XenbusState::Connected));
        for bad in [&b"9"[..], b"", b"04", b"-1", b"x"] {
            assert_eq!(XenbusState::parse(bad), Err(BadXenbusState));
        }
        assert_eq!(XenbusState::try_from(9), Err(BadXenbusState));
    }
}
