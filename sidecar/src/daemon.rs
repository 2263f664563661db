//! The daemon's state: the table, the Redis tier, the miss coalescer, the limits it announces
//! and its counters. What it does with each request is in `ops/`, one file per operation.

use crate::admission::Admission;
use crate::coalesce::Coalescer;
use crate::config::Config;
use crate::leases::Leases;
use crate::slots::Slots;
use crate::table::SharedTable;
use crate::tier::Tier;
use cachekit_proto::Limits;
use cachekit_shm::{SegmentFds, TableConfig, Writer};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The daemon's own counters, in STATS.
#[derive(Default)]
pub struct Counters {
    pub connections_total: AtomicU64,
    pub connections_refused: AtomicU64,
    /// Connections closed after `idle_timeout_ms` without a request.
    pub connections_idle_closed: AtomicU64,
    pub requests: AtomicU64,
    pub sets: AtomicU64,
    pub deletes: AtomicU64,
    pub invalidates: AtomicU64,
    pub clears: AtomicU64,
    pub fetches: AtomicU64,
    pub fetch_hits: AtomicU64,
    pub fetch_coalesced: AtomicU64,
    /// SET_IF, INCR, TAKE and TOUCH requests.
    pub atomic_ops: AtomicU64,
    pub scans: AtomicU64,
    pub deletes_matching: AtomicU64,
    /// LEASE requests.
    pub leases: AtomicU64,
    pub bad_frames: AtomicU64,
    pub not_permitted: AtomicU64,
    pub errors: AtomicU64,
}

/// Adds one to a counter.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub struct Daemon {
    pub cfg: Config,
    /// The shared table: every change goes through `table.change`.
    pub table: Arc<SharedTable>,
    /// The Redis tier, when `redis_url` is configured.
    pub tier: Option<Arc<Tier>>,
    /// One lookup per key at a time, however many clients miss it.
    pub fetches: Coalescer,
    /// The memfds handed to clients in HELLO_OK.
    pub fds: SegmentFds,
    /// The limits announced in HELLO_OK and checked while decoding.
    pub limits: Limits,
    pub epoch: u64,
    pub table_bytes: u64,
    pub client_area_bytes: u64,
    /// The client-area records: one per live connection that said HELLO.
    pub slots: Arc<Slots>,
    pub counters: Counters,
    /// The open connections, and who may open another.
    pub admission: Arc<Admission>,
    /// Fill leases: one computation per key per host.
    pub leases: Leases,
    /// Numbers connections (fill leases are held per connection).
    pub next_conn: AtomicU64,
    /// The metrics' census cache and namespace names (`metrics.rs`).
    pub metrics: crate::metrics::Metrics,
}

impl Daemon {
    /// The table the configuration asks for.
    pub fn table_config(cfg: &Config) -> TableConfig {
        TableConfig {
            arena_bytes: cfg.memory_bytes,
            // Stored values are envelopes: up to ENVELOPE_HEADROOM bytes over the user's limit.
            max_value_bytes: cfg.max_value_bytes + cachekit_proto::ENVELOPE_HEADROOM as u64,
            tag_counters: cfg.tag_counters,
            ..TableConfig::default()
        }
    }

    /// The daemon's state around `writer`, a table made from [`Daemon::table_config`] (with
    /// memfd backing; empty, or carried from the previous daemon's, see `warm.rs`).
    pub fn new(cfg: Config, writer: Writer) -> anyhow::Result<Daemon> {
        let stored_max = Daemon::table_config(&cfg).max_value_bytes;
        let tier = match &cfg.redis {
            Some(r) => Some(Arc::new(Tier::new(r.clone())?)),
            None => None,
        };
        let fds = writer.fds().expect("memfd backing").try_clone()?;
        let slots = Arc::new(Slots::new(writer.client_area()));
        let stat_len = |fd| rustix::fs::fstat(fd).map(|s| s.st_size as u64);
        let limits = Limits {
            max_value_bytes: stored_max as usize,
            ..Limits::DEFAULT
        };
        let limits = Limits {
            max_frame_bytes: limits.largest_frame().min(u32::MAX as u64) as usize,
            ..limits
        };
        Ok(Daemon {
            epoch: writer.epoch(),
            table_bytes: stat_len(fds.table_fd())?,
            client_area_bytes: stat_len(fds.client_fd())?,
            table: Arc::new(SharedTable::new(writer)),
            tier,
            fetches: Coalescer::default(),
            fds,
            limits,
            slots,
            counters: Counters::default(),
            admission: Arc::default(),
            leases: Leases::default(),
            next_conn: AtomicU64::new(0),
            metrics: crate::metrics::Metrics::default(),
            cfg,
        })
    }

    /// Brings a carried table up to date with the invalidation streams (or clears what it
    /// cannot), then starts the Redis tier's background tasks (no-op without Redis). Before
    /// the socket is bound: nothing carried is served before its namespace is replayed.
    /// Returns the namespaces the table held at start (empty without Redis).
    pub fn start_redis(&self) -> Vec<String> {
        match &self.tier {
            Some(t) => {
                let carried = t.resume(&self.table);
                t.start(self.table.clone());
                carried
            }
            None => {
                // Positions carried from a run with Redis (`shm/src/carry.rs` copies them):
                // this run's writes never reach Redis, so a later start with Redis must not
                // replay from them (without a position, its namespaces are cleared).
                self.table.change(|t| t.reset_stream_positions(&[]));
                Vec::new()
            }
        }
    }

    /// Takes the failed-write journal's drops to Redis (no-op without Redis; see
    /// `tier/drops.rs`). `carried`: what [`Daemon::start_redis`] returned.
    pub fn send_journal_drops(&self, drops: &crate::journal::Drops, carried: &[String]) {
        if let Some(t) = &self.tier {
            t.send_journal_drops(drops, carried);
        }
    }

    /// Stops applying other hosts' invalidations (no-op without Redis): called before the
    /// table is shut down (see [`Tier::stop_following`](crate::tier::Tier::stop_following)).
    pub fn stop_following_redis(&self) {
        if let Some(t) = &self.tier {
            t.stop_following();
        }
    }

    /// Waits (at most `limit`) for the writes queued for Redis to reach it.
    pub fn finish_redis_queue(&self, limit: std::time::Duration) {
        if let Some(t) = &self.tier {
            t.finish_queue(limit);
        }
    }

    /// Whether a peer with these credentials may change the cache: its uid is in
    /// `writer_uids`, or its primary gid or one of its supplementary groups (asked of
    /// `groups` only when needed) is in `writer_gids`. The lists mean exactly what they say;
    /// see `config::writers` for their defaults.
    pub fn peer_may_write(&self, uid: u32, gid: u32, groups: impl FnOnce() -> Vec<u32>) -> bool {
        let gids = &self.cfg.writer_gids;
        self.cfg.writer_uids.contains(&uid)
            || gids.contains(&gid)
            || (!gids.is_empty() && groups().iter().any(|g| gids.contains(g)))
    }
}
