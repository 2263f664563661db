//! What keeps Redis's state bounded and the write queue fast, against a real redis-server:
//! the batch write script and the sweep (`cachekit_redis::sweep`).

#[cfg(not(all(feature = "sync", feature = "async")))]
compile_error!("these tests need both stores: run them with `--features sync,async` (a workspace build turns both on)");

#[cfg(all(feature = "sync", feature = "async"))]
mod cases;

#[cfg(all(feature = "sync", feature = "async"))]
mod resend;

#[cfg(all(feature = "sync", feature = "async"))]
mod lease_floor;

/// A write context of origin `origin` with the default stream length.
#[cfg(all(feature = "sync", feature = "async"))]
fn ctx(origin: &str) -> cachekit_redis::WriteContext {
    cachekit_redis::WriteContext {
        origin: origin.as_bytes().to_vec(),
        stream_maxlen: 100_000,
    }
}

/// Unix milliseconds now.
#[cfg(all(feature = "sync", feature = "async"))]
fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
