//! A device's refusal log: a hostile frontend must not flood the console.
use alloc::format;
use core::fmt;

use crate::platform::Platform;

/// Refusals (bad requests) logged per device; later ones are only counted by the data path.
pub const MAX_LOGGED_REFUSALS: u32 = 64;

/// Logs a device's refusals, [`MAX_LOGGED_REFUSALS`] at most (a hostile frontend must not
/// flood the console).
#[derive(Debug, Default)]
pub struct RefusalLog {
    logged: u32,
}

impl RefusalLog {
    /// Prints `<name>: <what>` unless the limit is reached; the last one says that further
    /// refusals are only counted.
    pub fn log(&mut self, platform: &mut impl Platform, name: &str, what: fmt::Arguments<'_>) {
        if self.logged >= MAX_LOGGED_REFUSALS {
            return;
        }
        self.logged += 1;
        platform.log(&format!("{name}: {what}"));
        if self.logged == MAX_LOGGED_REFUSALS {
            platform.log(&format!("{name}: further refusals are only counted"));
        }
    }

    /// Refusals printed so far.
    pub fn logged(&self) -> u32 {
        self.logged
    }
}
