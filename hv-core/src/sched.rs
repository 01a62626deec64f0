//! Scheduling policy (plain Rust, host-tested): fair share by virtual runtime.
//!
//! Each schedulable domain accrues `vruntime` while it runs; the runnable domain with the least
//! runs next. A domain that wakes from `block` (or is new) gets `vruntime` no lower than
//! `min_vruntime - WAKE_BONUS`, so it runs promptly (an I/O round trip does not wait a whole
//! slice) but cannot bank credit while asleep. A domain that never blocks is preempted at the end
//! of its slice whenever another domain is runnable, so it cannot starve anyone.

use alloc::vec::Vec;

/// Longest a domain runs while others are runnable.
pub const SLICE_NS: u64 = 4_000_000;
/// How far ahead of the pack a waking domain is placed.
pub const WAKE_BONUS_NS: u64 = SLICE_NS / 2;
/// A waking domain preempts the current one only if it is at least this far behind.
pub const WAKE_GRANULARITY_NS: u64 = 500_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Run {
    Runnable,
    /// Waiting for an event or until the deadline (ns, `u64::MAX` = none).
    Blocked {
        deadline: u64,
    },
}

#[derive(Debug, Clone, Copy)]
struct Entity {
    run: Run,
    paused: bool,
    vruntime: u64,
}

/// The scheduler for one CPU; entities are identified by domain-table slot.
#[derive(Debug, Default)]
pub struct Scheduler {
    ents: Vec<Option<Entity>>,
    current: Option<usize>,
    /// When `current` was picked (start of its slice, ns).
    run_start: u64,
    /// Up to when `current` has been charged (ns).
    charged_until: u64,
    min_vruntime: u64,
}

impl Scheduler {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn current(&self) -> Option<usize> {
        self.current
    }

    fn ent(&mut self, id: usize) -> Option<&mut Entity> {
        self.ents.get_mut(id).and_then(Option::as_mut)
    }

    fn placed(&self, vruntime: u64) -> u64 {
        vruntime.max(self.min_vruntime.saturating_sub(WAKE_BONUS_NS))
    }

    /// Adds a runnable entity (a new domain). Returns whether it should preempt `current`.
    pub fn add(&mut self, id: usize, now: u64) -> bool {
        if self.ents.len() <= id {
            self.ents.resize(id + 1, None);
        }
        let vruntime = self.placed(0);
        self.ents[id] = Some(Entity { run: Run::Runnable, paused: false, vruntime });
        self.should_preempt_for(id, now)
    }

    /// Removes an entity (domain ended). If it was current, nothing is current afterwards.
    pub fn remove(&mut self, id: usize, now: u64) {
        if self.current == Some(id) {
            self.account(now);
            self.current = None;
        }
        if let Some(e) = self.ents.get_mut(id) {
            *e = None;
        }
    }

    /// Charges the running entity for the time since it started. Returns the ns charged.
    pub fn account(&mut self, now: u64) -> u64 {
        let Some(cur) = self.current else { return 0 };
        let ran = now.saturating_sub(self.charged_until);
        self.charged_until = self.charged_until.max(now);
        if let Some(e) = self.ent(cur) {
            e.vruntime = e.vruntime.saturating_add(ran);
        }
        self.update_min();
        ran
    }

    fn update_min(&mut self) {
        if let Some(m) =
            self.ents.iter().flatten().filter(|e| e.run == Run::Runnable && !e.paused).map(|e| e.vruntime).min()
        {
            self.min_vruntime = self.min_vruntime.max(m);
        }
    }

    /// The current entity blocks until woken or `deadline` (ns).
    pub fn block(&mut self, id: usize, deadline: u64, now: u64) {
        if self.current == Some(id) {
            self.account(now);
        }
        if let Some(e) = self.ent(id) {
            e.run = Run::Blocked { deadline };
        }
    }

    /// Makes a blocked entity runnable. Returns whether it should preempt `current`.
    pub fn wake(&mut self, id: usize, now: u64) -> bool {
        let placed = self.placed(0);
        let Some(e) = self.ent(id) else { return false };
        if e.run == Run::Runnable {
            return false;
        }
        e.run = Run::Runnable;
        e.vruntime = e.vruntime.max(placed);
        self.should_preempt_for(id, now)
    }

    fn should_preempt_for(&mut self, id: usize, now: u64) -> bool {
        let Some(cur) = self.current else { return true };
        if cur == id {
            return false;
        }
        self.account(now);
        match (self.ents[id], self.ents[cur]) {
            (Some(w), Some(c)) => !w.paused && w.vruntime + WAKE_GRANULARITY_NS < c.vruntime,
            _ => true,
        }
    }

    pub fn set_paused(&mut self, id: usize, paused: bool) {
        let placed = self.placed(0);
        if let Some(e) = self.ent(id) {
            e.paused = paused;
            if !paused {
                e.vruntime = e.vruntime.max(placed);
            }
        }
    }

    /// Wakes every blocked entity whose deadline has passed, calling `woke` for each; returns
    /// how many woke.
    pub fn expire(&mut self, now: u64, mut woke: impl FnMut(usize)) -> usize {
        let placed = self.placed(0);
        let mut n = 0;
        for (id, e) in self.ents.iter_mut().enumerate() {
            let Some(e) = e else { continue };
            if let Run::Blocked { deadline } = e.run
                && deadline <= now
            {
                e.run = Run::Runnable;
                e.vruntime = e.vruntime.max(placed);
                woke(id);
                n += 1;
            }
        }
        n
    }

    /// Whether `id` can be chosen (runnable and not paused).
    pub fn is_runnable(&self, id: usize) -> bool {
        matches!(self.ents.get(id), Some(Some(e)) if e.run == Run::Runnable && !e.paused)
    }

    /// Whether `id` is blocked (waiting for an event or its deadline).
    pub fn is_blocked(&self, id: usize) -> bool {
        matches!(self.ents.get(id), Some(Some(e)) if matches!(e.run, Run::Blocked { .. }))
    }

    pub fn is_paused(&self, id: usize) -> bool {
        matches!(self.ents.get(id), Some(Some(e)) if e.paused)
    }

    /// Chooses what runs next (after charging the current one) and makes it current.
    pub fn pick(&mut self, now: u64) -> Option<usize> {
        self.account(now);
        let next = self
            .ents
            .iter()
            .enumerate()
            .filter_map(|(i, e)| e.as_ref().map(|e| (i, e)))
            .filter(|(_, e)| e.run == Run::Runnable && !e.paused)
            // Least vruntime first; on a tie prefer anyone but the current one (round robin).
            .min_by_key(|(i, e)| (e.vruntime, Some(*i) == self.current))
            .map(|(i, _)| i);
        self.current = next;
        self.run_start = now;
        self.charged_until = now;
        next
    }

    /// When the timer must fire next: the end of the current slice if someone else is runnable,
    /// and the earliest sleeper deadline. `None` = no timer needed.
    pub fn next_deadline(&self, _now: u64) -> Option<u64> {
        let others_runnable = self
            .ents
            .iter()
            .enumerate()
            .any(|(i, e)| Some(i) != self.current && matches!(e, Some(e) if e.run == Run::Runnable && !e.paused));
        let slice_end = (self.current.is_some() && others_runnable).then_some(self.run_start + SLICE_NS);
        let sleeper = self
            .ents
            .iter()
            .flatten()
            .filter_map(|e| match e.run {
                Run::Blocked { deadline } if deadline != u64::MAX => Some(deadline),
                _ => None,
            })
            .min();
        match (slice_end, sleeper) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Whether the current entity has used up its slice while others wait.
    pub fn slice_expired(&self, now: u64) -> bool {
        self.current.is_some() && now >= self.run_start + SLICE_NS && self.next_deadline(now).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Simulates `ms` milliseconds in 100 µs steps: `spinner` never blocks, `sleepers` run 200 µs
    /// then sleep 1 ms. Returns the CPU time each got.
    fn simulate(spinners: &[usize], sleepers: &[usize], ms: u64) -> Vec<u64> {
        let mut s = Scheduler::new();
        let n = spinners.len() + sleepers.len();
        let mut cpu = vec![0u64; n];
        let mut ran_this_burst = vec![0u64; n];
        for &i in spinners.iter().chain(sleepers) {
            s.add(i, 0);
        }
        let mut now = 0;
        let mut cur = s.pick(now);
        let step = 100_000;
        while now < ms * 1_000_000 {
            now += step;
            // As the kernel does on every entry: charge first, then decide.
            s.account(now);
            if let Some(c) = cur {
                cpu[c] += step;
                ran_this_burst[c] += step;
                if sleepers.contains(&c) && ran_this_burst[c] >= 200_000 {
                    ran_this_burst[c] = 0;
                    s.block(c, now + 1_000_000, now);
                    cur = s.pick(now);
                    continue;
                }
            }
            let woke = s.expire(now, |_| {}) > 0;
            if woke || s.slice_expired(now) || cur.is_none() {
                cur = s.pick(now);
            }
        }
        cpu
    }

    #[test]
    fn spinner_cannot_starve_sleepers() {
        let cpu = simulate(&[0], &[1, 2], 200);
        // Each sleeper wants 200 µs of every 1.2 ms (~1/6 of the CPU) and must get nearly that.
        for &c in &cpu[1..] {
            assert!(c > 200_000_000 / 6 * 8 / 10, "sleeper starved: {cpu:?}");
        }
        assert!(cpu[0] > 100_000_000, "spinner got the rest: {cpu:?}");
    }

    #[test]
    fn spinners_share_fairly() {
        let cpu = simulate(&[0, 1, 2], &[], 300);
        for &c in &cpu {
            assert!((80_000_000..=120_000_000).contains(&c), "unfair split: {cpu:?}");
        }
    }

    #[test]
    fn wake_preempts_a_hog_but_not_a_peer() {
        let mut s = Scheduler::new();
        s.add(0, 0);
        s.add(1, 0);
        assert_eq!(s.pick(0), Some(0));
        s.block(0, u64::MAX, 0);
        assert_eq!(s.pick(0), Some(1));
        // 1 runs for 3 ms; 0 wakes and should preempt it.
        assert!(s.wake(0, 3_000_000));
        assert_eq!(s.pick(3_000_000), Some(0));
        // Waking something already runnable does nothing.
        assert!(!s.wake(1, 3_000_000));
    }

    #[test]
    fn paused_and_removed_are_never_picked() {
        let mut s = Scheduler::new();
        s.add(0, 0);
        s.add(3, 0);
        s.set_paused(0, true);
        assert_eq!(s.pick(0), Some(3));
        assert_eq!(s.pick(10), Some(3));
        s.remove(3, 20);
        assert_eq!(s.current(), None);
        assert_eq!(s.pick(20), None);
        s.set_paused(0, false);
        assert_eq!(s.pick(30), Some(0));
        assert!(s.is_runnable(0) && !s.is_runnable(3) && !s.is_runnable(99));
    }

    #[test]
    fn deadlines() {
        let mut s = Scheduler::new();
        s.add(0, 0);
        s.add(1, 0);
        assert_eq!(s.pick(0), Some(0));
        s.block(1, 5_000, 0);
        s.block(0, u64::MAX, 0);
        assert_eq!(s.pick(0), None);
        assert_eq!(s.next_deadline(0), Some(5_000));
        assert_eq!(s.expire(4_999, |_| {}), 0);
        let mut woken = vec![];
        assert_eq!(s.expire(5_000, |id| woken.push(id)), 1);
        assert_eq!(woken, [1]);
        assert_eq!(s.pick(5_000), Some(1));
        // Alone: no slice timer needed, no sleeper deadline either (0 waits for events only).
        assert_eq!(s.next_deadline(5_000), None);
        assert!(s.is_blocked(0));
    }
}
