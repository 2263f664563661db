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
