//! cachekit's Redis tier: what the daemon and the client library's direct fallback share.
//!
//! - [`keys`]: key names, all under `ck:{<namespace>}:` (one Redis Cluster slot per
//!   namespace);
//! - [`record`]: the record stored per key (header, tags, the client's envelope) and its
//!   validation against invalidations;
//! - [`event`]: the events of a namespace's stream and how a follower detects a gap;
//! - [`WriteOp`] and the Lua scripts behind it: one round trip per operation;
//! - [`sentinel`]: `redis+sentinel://` URLs and finding the primary through the sentinels;
//! - [`sweep`]: what keeps a namespace's Redis state bounded (the floor, dead counters,
//!   invalidated records, restamps) and why no invalidation is lost;
//! - [`lease`]: fill leases across hosts (take, drop, and the fill checked against the grant);
//! - [`atomic`]: read-modify-writes committed by a compare script ([`update_with`],
//!   [`update_blocking`]) and deletes by key pattern;
//! - [`AsyncStore`] (feature `async`, tokio, for the daemon) and [`SyncStore`] (feature
//!   `sync`, blocking, for the client library), with a timeout on every call.
//!
//! The layout is drawn in `docs/ARCHITECTURE.md`, section "The Redis tier".
#![forbid(unsafe_code)]
#![warn(missing_docs)]
// Without `sync` or `async` (neither is a default) only the store-independent parts compile,
// and the helpers the stores share (Sentinel lookups, the sweep script) have no caller.
#![cfg_attr(
    not(any(feature = "sync", feature = "async")),
    allow(dead_code, unused_imports)
)]

/// The Lua function every script that stores a record starts with: `store_record(key,
/// record, keep_ms, s)` writes the namespace clock `s` into the record's stamp (bytes 5 to 12,
/// little-endian) and stores it, with `PX keep_ms` when `keep_ms` > 0. One definition for the
/// set, commit and leased-fill scripts.
macro_rules! store_record_lua {
    () => {
        r"
local function store_record(key, record, keep, s)
  local x = s
  local b = {}
  for i = 1, 8 do
    local byte = x % 256
    b[i] = string.char(byte)
    x = (x - byte) / 256
  end
  local rec = string.sub(record, 1, 4) .. table.concat(b) .. string.sub(record, 13)
  if keep > 0 then
    redis.call('SET', key, rec, 'PX', keep)
  else
    redis.call('SET', key, rec)
  end
end
"
    };
}

pub mod atomic;
pub mod decide;
pub mod error;
pub mod event;
pub mod keys;
pub mod lease;
pub mod record;
mod scripts;
pub mod sentinel;
pub mod sweep;
pub mod target;

#[cfg(feature = "async")]
mod aio;
#[cfg(feature = "sync")]
mod blocking;

#[cfg(feature = "async")]
pub use aio::AsyncStore;
#[cfg(feature = "sync")]
pub use atomic::update_blocking;
pub use atomic::{update_with, CommitOp, Decision, DeletedPage, Expected, Updated};
#[cfg(feature = "sync")]
pub use blocking::SyncStore;
pub use error::StoreError;
pub use event::{Continuity, Cursor, Event, EventKind};
pub use lease::{FillRefused, Taken};
pub use record::{Fetched, Record, Rejected};
pub use scripts::{
    Sequence, Sequenced, WriteContext, WriteOp, Written, MAX_BATCH, RESEND_WINDOW, SEQUENCE_KEEP_MS,
};
pub use sweep::{Swept, SWEEP_COUNT};
pub use target::Target;

/// A random origin id for a writer (a daemon start or a client process): 16 hex digits from
/// the time, the pid and the address of a stack variable, hashed. Only needs to differ
/// between writers, not to be secret.
pub fn new_origin(role: &str) -> Vec<u8> {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    format!("{role}:{:016x}", h.finish()).into_bytes()
}
