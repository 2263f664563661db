//! Statistics: the daemon's counters (STATS) and this client's own.

use std::sync::atomic::{AtomicU64, Ordering};

use cachekit_shm::ReaderStats;

/// Counters of one client (shared by every [`Client`](crate::Client) cloned from it or made by
/// `with_namespace`). Hits from the segment are counted by the segment reader, so the hit path
/// touches no counter of its own.
#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) connects: AtomicU64,
    pub(crate) connect_failures: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) fetches: AtomicU64,
    pub(crate) fetch_hits: AtomicU64,
    pub(crate) fetch_misses: AtomicU64,
    pub(crate) unavailable_misses: AtomicU64,
    pub(crate) stale_heartbeat: AtomicU64,
    pub(crate) reattaches: AtomicU64,
    pub(crate) attach_failures: AtomicU64,
    pub(crate) decode_errors: AtomicU64,
    pub(crate) redis_direct_gets: AtomicU64,
    pub(crate) redis_direct_hits: AtomicU64,
    pub(crate) redis_direct_writes: AtomicU64,
    pub(crate) redis_direct_failures: AtomicU64,
    pub(crate) journaled_writes: AtomicU64,
    pub(crate) journal_failures: AtomicU64,
}

pub(crate) fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self, segment: ReaderStats) -> LocalStats {
        let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
        LocalStats {
            requests: l(&self.requests),
            connects: l(&self.connects),
            connect_failures: l(&self.connect_failures),
            retries: l(&self.retries),
            segment_hits: segment.hits,
            segment_stale_hits: segment.stale_hits,
            segment_misses: segment.misses,
            segment_corrupt: segment.corrupt,
            fetches: l(&self.fetches),
            fetch_hits: l(&self.fetch_hits),
            fetch_misses: l(&self.fetch_misses),
            unavailable_misses: l(&self.unavailable_misses),
            stale_heartbeat: l(&self.stale_heartbeat),
            reattaches: l(&self.reattaches),
            attach_failures: l(&self.attach_failures),
            decode_errors: l(&self.decode_errors),
            redis_direct_gets: l(&self.redis_direct_gets),
            redis_direct_hits: l(&self.redis_direct_hits),
            redis_direct_writes: l(&self.redis_direct_writes),
            redis_direct_failures: l(&self.redis_direct_failures),
            journaled_writes: l(&self.journaled_writes),
            journal_failures: l(&self.journal_failures),
        }
    }
}

/// This client's own counters, since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalStats {
    /// Request frames sent over the socket, HELLO included. Hits from the segment send none.
    pub requests: u64,
    /// Connections opened (HELLO answered).
    pub connects: u64,
    /// Connection attempts that failed (daemon down, refused).
    pub connect_failures: u64,
    /// Requests retried on a fresh connection after a pooled one turned out dead.
    pub retries: u64,
    /// Hits served from the shared segment (fresh and stale).
    pub segment_hits: u64,
    /// Of those, hits within the grace period.
    pub segment_stale_hits: u64,
    /// Lookups the segment could not answer (then sent as FETCH).
    pub segment_misses: u64,
    /// Entries that failed validation in the segment (a damaged segment; read as misses).
    pub segment_corrupt: u64,
    /// FETCH requests sent (segment misses, or every get while the heartbeat is stale).
    pub fetches: u64,
    /// FETCH requests answered with a value.
    pub fetch_hits: u64,
    /// FETCH requests answered with a miss.
    pub fetch_misses: u64,
    /// Gets that returned a miss because neither the segment nor the daemon could answer.
    pub unavailable_misses: u64,
    /// Gets that bypassed the segment because the daemon's heartbeat was stale or this client
    /// had found the daemon gone.
    pub stale_heartbeat: u64,
    /// Segments attached after the first (the daemon restarted with a new epoch).
    pub reattaches: u64,
    /// Segments that could not be mapped (the client then uses the socket only).
    pub attach_failures: u64,
    /// Stored values that did not decode as envelopes.
    pub decode_errors: u64,
    /// Gets sent to Redis directly because the daemon was down (direct fallback).
    pub redis_direct_gets: u64,
    /// Of those, answered with a valid value (reported with [`Source::Daemon`](crate::Source)).
    pub redis_direct_hits: u64,
    /// Writes (set, delete, invalidate, clear) sent to Redis directly.
    pub redis_direct_writes: u64,
    /// Direct calls that failed (Redis unreachable too).
    pub redis_direct_failures: u64,
    /// Writes recorded in the instance's failed-write journal because the daemon was gone
    /// (the next daemon applies them before it serves the table it carries over).
    pub journaled_writes: u64,
    /// Writes the daemon was gone for that could not be recorded in the journal (its
    /// directory exists but the file could not be written).
    pub journal_failures: u64,
}

/// The segment this client reads, as of the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SegmentInfo {
    /// The daemon epoch of the segment.
    pub epoch: u64,
    /// The last heartbeat the daemon published in it, Unix ms.
    pub heartbeat_ms: u64,
    /// How old the heartbeat may get before the segment is bypassed, in ms (from HELLO_OK).
    pub heartbeat_timeout_ms: u64,
    /// Whether the heartbeat is recent enough for hits to be served from the segment.
    pub live: bool,
}

/// What [`Client::stats`](crate::Client::stats) returns.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// The daemon's counters (STATS_REPLY), in the order it sent them.
    pub daemon: Vec<(String, u64)>,
    /// This client's counters (taken after the STATS request, which they include).
    pub local: LocalStats,
    /// The attached segment, if any.
    pub segment: Option<SegmentInfo>,
}

impl Stats {
    /// One daemon counter by name.
    pub fn daemon_counter(&self, name: &str) -> Option<u64> {
        self.daemon.iter().find(|(n, _)| n == name).map(|&(_, v)| v)
    }
}

/// The answer to [`Client::ping`](crate::Client::ping).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pong {
    /// The daemon's epoch (changes on every daemon start).
    pub epoch: u64,
    /// The heartbeat the daemon last published, Unix ms.
    pub heartbeat_ms: u64,
    /// Round-trip time of the PING.
    pub rtt: std::time::Duration,
}
