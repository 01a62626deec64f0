//! The back-off of `on_crash = "restart"`: a driver domain that crashes soon after each start
//! (a crash loop: a bad image, a device that kills it, an attacker that can make it crash) is
//! restarted after a growing delay, and after [`RestartBackoff::GIVE_UP_AFTER`] such crashes in
//! a row it stays down with a report, instead of restarting without limit. A crash after the
//! domain ran for [`RestartBackoff::STABLE_NS`] counts as a first crash again (restarted at
//! once, as before).

/// What to do about a crash of a domain whose policy is to restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartDecision {
    /// Start a new instance once `delay_ns` have passed.
    After {
        /// Nanoseconds to wait (0: at once).
        delay_ns: u64,
        /// Crashes in a row so far, this one included.
        in_a_row: u32,
    },
    /// Stay down: it crashed `in_a_row` times, each soon after it was started.
    GiveUp {
        /// Crashes in a row, this one included.
        in_a_row: u32,
    },
}

/// One restartable domain's recent crashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RestartBackoff {
    /// Crashes in a row, each within [`Self::STABLE_NS`] of its instance's start.
    in_a_row: u32,
}

impl RestartBackoff {
    /// An instance that ran this long before crashing was healthy: the count starts over.
    pub const STABLE_NS: u64 = 10_000_000_000;
    /// The delay before the second restart in a row; it doubles each time after.
    pub const FIRST_DELAY_NS: u64 = 100_000_000;
    /// The longest delay.
    pub const MAX_DELAY_NS: u64 = 2_000_000_000;
    /// Crashes in a row after which the domain stays down.
    pub const GIVE_UP_AFTER: u32 = 5;

    /// A crash of an instance that had been running for `ran_ns`.
    pub fn on_crash(&mut self, ran_ns: u64) -> RestartDecision {
        self.in_a_row = if ran_ns >= Self::STABLE_NS { 1 } else { self.in_a_row.saturating_add(1) };
        let in_a_row = self.in_a_row;
        if in_a_row >= Self::GIVE_UP_AFTER {
            return RestartDecision::GiveUp { in_a_row };
        }
        let delay_ns = match in_a_row {
            1 => 0,
            n => Self::FIRST_DELAY_NS.saturating_mul(1 << (n - 2).min(16)).min(Self::MAX_DELAY_NS),
        };
        RestartDecision::After { delay_ns, in_a_row }
    }

    /// Crashes in a row so far.
    pub fn in_a_row(&self) -> u32 {
        self.in_a_row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOON: u64 = 50_000_000;

    #[test]
    fn a_crash_loop_backs_off_then_stays_down() {
        let mut b = RestartBackoff::default();
        let decisions: Vec<_> = (0..6).map(|_| b.on_crash(SOON)).collect();
        assert_eq!(decisions[0], RestartDecision::After { delay_ns: 0, in_a_row: 1 });
        assert_eq!(decisions[1], RestartDecision::After { delay_ns: 100_000_000, in_a_row: 2 });
        assert_eq!(decisions[2], RestartDecision::After { delay_ns: 200_000_000, in_a_row: 3 });
        assert_eq!(decisions[3], RestartDecision::After { delay_ns: 400_000_000, in_a_row: 4 });
        assert_eq!(decisions[4], RestartDecision::GiveUp { in_a_row: 5 });
        assert!(matches!(decisions[5], RestartDecision::GiveUp { .. }));
    }

    #[test]
    fn a_domain_that_ran_a_while_is_restarted_at_once_again() {
        let mut b = RestartBackoff::default();
        for _ in 0..3 {
            b.on_crash(SOON);
        }
        assert_eq!(b.on_crash(RestartBackoff::STABLE_NS), RestartDecision::After { delay_ns: 0, in_a_row: 1 });
        // Occasional crashes, each after a healthy run, never add up.
        for _ in 0..100 {
            assert_eq!(b.on_crash(RestartBackoff::STABLE_NS + 1), RestartDecision::After { delay_ns: 0, in_a_row: 1 });
        }
    }

    #[test]
    fn delays_are_capped() {
        let mut b = RestartBackoff { in_a_row: 30 };
        assert!(matches!(b.on_crash(SOON), RestartDecision::GiveUp { .. }));
        let mut b = RestartBackoff::default();
        let mut worst = 0;
        for _ in 0..RestartBackoff::GIVE_UP_AFTER - 1 {
            if let RestartDecision::After { delay_ns, .. } = b.on_crash(SOON) {
                worst = worst.max(delay_ns);
            }
        }
        assert!(worst <= RestartBackoff::MAX_DELAY_NS);
    }
}
