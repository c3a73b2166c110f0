//! Clocks: deadlines, and the one monotonic clock all processes share.

use std::time::{Duration, Instant};

/// The instant `timeout` from now. A timeout too large to add is as good
/// as none: it is capped a century away.
pub fn deadline_after(timeout: Duration) -> Instant {
    Instant::now()
        .checked_add(timeout)
        .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600))
}

/// `CLOCK_MONOTONIC` in nanoseconds. One clock for every process on the
/// machine, so a time taken in one forked process can be subtracted from a
/// time taken in another.
pub fn monotonic_ns() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    // CLOCK_MONOTONIC always exists on Linux, so this cannot fail; if it
    // did, the time would read as zero, as it always has.
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC)
        .unwrap_or_else(|_| nix::sys::time::TimeSpec::new(0, 0));
    ts.tv_sec() as u64 * 1_000_000_000 + ts.tv_nsec() as u64
}
