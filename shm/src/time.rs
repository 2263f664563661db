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
