//! Where netback's time goes, per phase of the domain's loop (the `prof` feature; without it
//! every call here is empty and compiles away). With it, netback prints one
//! `prof <phase> <cycles> cyc <n> times <items> items <cycles per time> cyc/time` line per
//! phase with the counters (every few seconds): TSC cycles spent, how often, and how many
//! packets or frames. docs/net.md ("Where the time goes") has a reading.
//!
//! Build the images with it: `cargo build --release --target x86_64-unknown-none -p netback
//! --features netback/prof` before `cargo xtask run` (or turn it on in netback's Cargo.toml).

/// The phases.
pub const NAMES: [&str; 12] = [
    "loop",
    "uplink_rx",
    "tx_round",
    "tx_copy",
    "uplink_send",
    "rx_round",
    "rx_copy",
    "sleep",
    "refresh",
    "notify",
    "segment",
    "flush",
];
/// The loop's work, from waking to deciding to sleep.
pub const LOOP: usize = 0;
/// Taking frames from the virtio-net device.
pub const UPLINK_RX: usize = 1;
/// A vif's tx round (grant copy included).
pub const TX_ROUND: usize = 2;
/// The batched grant copy of a tx round.
pub const TX_COPY: usize = 3;
/// One frame to the virtio-net device.
pub const UPLINK_SEND: usize = 4;
/// A vif's rx round (grant copy included).
pub const RX_ROUND: usize = 5;
/// The batched grant copy of an rx round.
pub const RX_COPY: usize = 6;
/// Blocked, waiting for an event or a deadline.
pub const SLEEP: usize = 7;
/// The store handshake's refresh.
pub const REFRESH: usize = 8;
/// Event-channel notifications to frontends.
pub const NOTIFY: usize = 9;
/// Cutting one segment of a GSO packet (copy, headers, checksums).
pub const SEGMENT: usize = 10;
/// Notifying the virtio-net device of a round's frames.
pub const FLUSH: usize = 11;

#[cfg(feature = "prof")]
mod on {
    use core::sync::atomic::{AtomicU64, Ordering::Relaxed};

    use super::NAMES;

    const N: usize = NAMES.len();
    static CYCLES: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
    static COUNT: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];
    static ITEMS: [AtomicU64; N] = [const { AtomicU64::new(0) }; N];

    #[inline]
    pub fn now() -> u64 {
        // SAFETY: rdtsc only reads the time stamp counter (allowed in ring 3: hv-core leaves
        // CR4.TSD clear).
        unsafe { core::arch::x86_64::_rdtsc() }
    }

    #[inline]
    pub fn add(phase: usize, since: u64, items: u64) {
        if phase < N {
            CYCLES[phase].fetch_add(now().wrapping_sub(since), Relaxed);
            COUNT[phase].fetch_add(1, Relaxed);
            ITEMS[phase].fetch_add(items, Relaxed);
        }
    }

    pub fn report(mut line: impl FnMut(core::fmt::Arguments)) {
        for (i, name) in NAMES.iter().enumerate() {
            let (c, n, it) = (CYCLES[i].swap(0, Relaxed), COUNT[i].swap(0, Relaxed), ITEMS[i].swap(0, Relaxed));
            if n > 0 {
                line(format_args!("prof {name:12} {c:>14} cyc {n:>8} times {it:>8} items {:>10} cyc/time", c / n));
            }
        }
    }
}

#[cfg(feature = "prof")]
pub use on::{add, now, report};

/// A time stamp (0 without the `prof` feature).
#[cfg(not(feature = "prof"))]
#[inline(always)]
pub fn now() -> u64 {
    0
}

/// Adds the time since `since` and `items` to `phase`.
#[cfg(not(feature = "prof"))]
#[inline(always)]
pub fn add(_phase: usize, _since: u64, _items: u64) {}

/// Prints one line per phase used since the last report and starts again.
#[cfg(not(feature = "prof"))]
#[inline(always)]
pub fn report(_line: impl FnMut(core::fmt::Arguments)) {}
