//! Wall-clock time in Unix milliseconds: the unit of every deadline in the table, so it
//! means the same in every process and on every host.

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
#[inline]
pub fn now_ms() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs() * 1000 + d.subsec_millis() as u64
}

/// "Now" for deadline checks on the hit path: the coarse real-time clock (read from the
/// vDSO in a few nanoseconds, against ~35 for the precise one under KVM) plus its
/// resolution. A deadline is therefore never judged later than it is: an entry may
/// expire up to one clock tick (typically 4 ms) early, never late.
#[inline]
pub(crate) fn deadline_now_ms() -> u64 {
    #[cfg(not(loom))]
    {
        use rustix::time::{clock_gettime, ClockId};
        use std::sync::OnceLock;
        static TICK_MS: OnceLock<u64> = OnceLock::new();
        let tick = *TICK_MS.get_or_init(|| {
            let r = rustix::time::clock_getres(ClockId::RealtimeCoarse);
            (r.tv_sec as u64 * 1000 + (r.tv_nsec as u64).div_ceil(1_000_000)).clamp(1, 100)
        });
        let t = clock_gettime(ClockId::RealtimeCoarse);
        (t.tv_sec as u64) * 1000 + (t.tv_nsec as u64) / 1_000_000 + tick
    }
    #[cfg(loom)]
    {
        now_ms()
    }
}
