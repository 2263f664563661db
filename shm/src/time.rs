//! Wall-clock time in Unix milliseconds: the unit of every deadline in the table, so it
//! means the same in every process and on every host.

/// Milliseconds since the Unix epoch (0 if the clock is before 1970).
#[inline]
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
