//! The Redis tier, a component the daemon calls: a small tokio runtime, the store, the
//! circuit breaker (`breaker.rs`), the queue of writes waiting for Redis (`queue.rs`), the
//! streams this host follows (`follow.rs`) and their replay after a warm restart
//! (`resume.rs`), and the Redis side of fill leases (`lease.rs`).
//!
//! The daemon calls it in one direction: writes go out through [`Tier::write`], misses
//! through [`Tier::read_through`]. What it puts in the table (fills, other hosts' events,
//! local flushes) goes through the table's one change path ([`SharedTable::change`]); it
//! knows nothing else of the daemon.
//!
//! Connection threads stay synchronous: they call into the runtime with `block_on`, and
//! every call carries the store's timeout. The background tasks (the follower, the queue
//! drainer) run on the runtime's two worker threads.

mod atomic;
mod breaker;
mod drops;
mod follow;
mod lease;
mod queue;
mod resume;
mod sweep;

use crate::config::{RedisConfig, WriteMode};
use crate::table::SharedTable;
// used by the daemon's ops once issue 12's atomic operations are wired in
pub use atomic::UpdateOutcome;
use breaker::{Breaker, State};
use cachekit_proto::FetchHit;
use cachekit_redis::{
    AsyncStore, Cursor, Fetched, Record, Sequenced, StoreError, WriteContext, WriteOp,
};
use cachekit_shm::{now_ms, InsertOptions};
pub use lease::{LeasedFill, RemoteLease};
use queue::Queue;
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tracing::{debug, info, warn};

/// Counters of the Redis tier, in STATS.
#[derive(Default)]
pub struct TierCounters {
    /// Fetch scripts sent (each is exactly one Redis GET).
    pub gets: AtomicU64,
    pub get_hits: AtomicU64,
    pub get_misses: AtomicU64,
    /// Records refused: invalidated or expired.
    pub rejected: AtomicU64,
    /// Misses answered at once because the breaker was open.
    pub fast_misses: AtomicU64,
    /// Misses answered without asking Redis because a write to the key is still queued.
    pub pending_misses: AtomicU64,
    pub fills: AtomicU64,
    /// Fills dropped because a write or an invalidation raced them.
    pub fill_races: AtomicU64,
    pub writes: AtomicU64,
    pub queued: AtomicU64,
    pub queue_full: AtomicU64,
    /// Queued writes Redis refused for good (permissions, script errors); logged.
    pub writes_dropped: AtomicU64,
    /// Script calls of the drainer (each a batch of up to `MAX_BATCH` queued writes).
    pub drain_batches: AtomicU64,
    /// Write-through writes that found writes queued and waited behind them.
    pub backlog_waits: AtomicU64,
    /// Of those, acknowledged as queued because the drainer had not sent them within
    /// `redis_timeout_ms`.
    pub backlog_wait_timeouts: AtomicU64,
    /// Writes sent again (after a timeout or an error) that Redis skipped: an earlier send of
    /// them was applied.
    pub resends_skipped: AtomicU64,
    pub errors: AtomicU64,
    pub timeouts: AtomicU64,
    /// Events of other hosts applied to the table.
    pub events: AtomicU64,
    /// Of those, applied by a catch-up read (after a reconnect, or by the periodic poll)
    /// rather than right after a doorbell.
    pub replayed: AtomicU64,
    pub flushes_for_gap: AtomicU64,
    pub flushes_for_outage: AtomicU64,
    pub flushes_for_unknown_start: AtomicU64,
    /// Failovers handled: the primary changed history, every followed namespace was cleared.
    pub flushes_for_failover: AtomicU64,
    /// Namespaces cleared in Redis after a failover because the new primary lacked clock
    /// values this host had seen (acknowledged writes the old primary never replicated).
    pub failover_clears: AtomicU64,
    pub doorbell_reconnects: AtomicU64,
    /// Atomic operations decided in Redis (written, deleted, kept or refused).
    pub atomic_ops: AtomicU64,
    /// Their commits that found the key changed since it was read (each retried).
    pub atomic_conflicts: AtomicU64,
    /// Sweep steps run (one page of a namespace's keys each).
    pub sweep_steps: AtomicU64,
    /// Sweep passes this host's steps completed (each raised the namespace's floor).
    pub sweep_passes: AtomicU64,
    /// Invalidated (or cleared) records the sweep deleted from Redis.
    pub swept_records: AtomicU64,
    /// Valid records the sweep restamped (so the floor can pass their old stamp).
    pub restamped_records: AtomicU64,
    /// Warm restart (`resume.rs`): carried namespaces replayed and kept, namespaces cleared
    /// instead, and events applied by the replay.
    pub resumed_namespaces: AtomicU64,
    pub resume_clears: AtomicU64,
    pub resume_events: AtomicU64,
    /// Writes queued for Redis at start from the failed-write journal (`drops.rs`).
    pub journal_drops: AtomicU64,
    /// Counter keys (`p:`, `x:`) at or below the floor the sweep deleted.
    pub swept_counters: AtomicU64,
    /// Fill leases taken in Redis (`LEASE_GLOBAL`).
    pub leases: AtomicU64,
    /// Holders that waited for another host's fill (its Redis lease was held).
    pub lease_waits: AtomicU64,
    /// Global leases that fell back to the host's lease: Redis unreachable or the breaker open.
    pub lease_fallbacks: AtomicU64,
    /// Leased fills Redis refused: the key, or a tag of it, changed since the grant.
    pub lease_fills_refused: AtomicU64,
}

pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Where this host stands in one namespace's stream.
#[derive(Clone, Debug, Default)]
pub struct Follow {
    /// `None`: the namespace was first used while Redis was unreachable, so where to start
    /// is unknown; the follower clears the namespace locally when it finds out.
    pub cursor: Option<Cursor>,
    /// The highest namespace clock this host's own writes got back (the follower may not
    /// have read them yet): with the cursor, where a leased fill's check starts.
    pub written: u64,
    /// The position last recorded in the table for a successor (`follow.rs`).
    pub recorded: Option<Cursor>,
    /// Positions reached past this host's own events, each with the number of write requests
    /// issued when it was read ([`InFlight`]): recordable once every request issued before it
    /// is done (its own events are in the table then). Oldest first, at most
    /// `follow::PENDING_POSITIONS`.
    pub pending: std::collections::VecDeque<(u64, Cursor)>,
}

/// What happened to a write on its way to Redis.
#[derive(Debug)]
pub enum WriteOutcome {
    /// Redis has it, at namespace clock `clock`.
    Done { existed: bool, clock: u64 },
    /// Queued for Redis (write-behind, or Redis unreachable): acknowledged on this host.
    Queued,
    /// Not sent and not queued: the message says why and what to do.
    Failed(String),
}

/// What a fetch from Redis gave.
pub enum FetchOutcome {
    /// A valid record.
    Hit(Record),
    /// Nothing servable (absent, invalidated, expired, or not asked).
    Miss,
}

pub struct Tier {
    pub cfg: RedisConfig,
    rt: tokio::runtime::Runtime,
    pub store: AsyncStore,
    breaker: Breaker,
    queue: Queue,
    follows: Mutex<HashMap<String, Follow>>,
    origin: Vec<u8>,
    c: TierCounters,
    atomic_locks: atomic::KeyLocks,
    events: lease::Events,
    /// Metrics (`metrics.rs`): how long each Redis call made for a client took, and each
    /// read-through (fetch, check, fill) of a miss.
    pub redis_seconds: prometheus_client::metrics::histogram::Histogram,
    pub fill_seconds: prometheus_client::metrics::histogram::Histogram,
    /// Unix ms of the follower's last complete read of every followed stream (0: none yet).
    caught_up_ms: AtomicU64,
    /// The store's [`AsyncStore::epoch`] the table was last cleared for (`follow.rs`): no
    /// fill while they differ.
    seen_epoch: AtomicU64,
    /// Write requests being handled ([`Tier::writing`]): until one is done, its own event
    /// the follower reads may not be in the table yet.
    in_flight: InFlight,
    /// The follower task, the only one of the runtime that takes the table's lock: stopped
    /// before the daemon takes that lock for good at shutdown ([`Tier::stop_following`]).
    follower: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The write requests being handled, numbered in the order they started.
#[derive(Default)]
struct InFlight {
    /// (the next number, the numbers of the requests not done yet).
    state: Mutex<(u64, std::collections::BTreeSet<u64>)>,
}

impl InFlight {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, std::collections::BTreeSet<u64>)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// (requests issued so far, the number of the oldest not done or, if none, the next):
    /// every request numbered below the second is done.
    fn marks(&self) -> (u64, u64) {
        let s = self.lock();
        (s.0, s.1.first().copied().unwrap_or(s.0))
    }
}

/// A write request being handled (see [`Tier::writing`]); counted until dropped.
pub struct Writing<'a> {
    in_flight: &'a InFlight,
    number: u64,
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.in_flight.lock().1.remove(&self.number);
    }
}

/// Buckets of the latency histograms, in seconds: 50 µs doubling to about 0.8 s (a
/// loopback Redis answers in 10–150 µs; the default timeout is 250 ms).
fn latency_buckets() -> prometheus_client::metrics::histogram::Histogram {
    prometheus_client::metrics::histogram::Histogram::new(
        prometheus_client::metrics::histogram::exponential_buckets(50e-6, 2.0, 15),
    )
}

/// What the metrics show of the tier.
pub struct TierView {
    /// "closed", "open" or "half_open".
    pub breaker: &'static str,
    pub queue_len: u64,
    pub queue_limit: u64,
    /// Each followed namespace with the clock value of the last event applied.
    pub followed: Vec<(String, u64)>,
    /// Seconds since the follower last read every followed stream to its end.
    pub replay_lag_seconds: f64,
}

impl Tier {
    pub fn new(cfg: RedisConfig) -> anyhow::Result<Tier> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("cachekitd-redis")
            .enable_all()
            .build()?;
        let origin = cachekit_redis::new_origin("cachekitd");
        let ctx = WriteContext {
            origin: origin.clone(),
            stream_maxlen: cfg.stream_maxlen,
        };
        let store = {
            let _enter = rt.enter();
            AsyncStore::new(&cfg.target, ctx)?
        };
        Ok(Tier {
            breaker: Breaker::new(cfg.breaker_failures, cfg.breaker_open),
            cfg,
            rt,
            store,
            queue: Queue::default(),
            follows: Mutex::new(HashMap::new()),
            origin,
            c: TierCounters::default(),
            atomic_locks: atomic::KeyLocks::default(),
            events: lease::Events::default(),
            redis_seconds: latency_buckets(),
            fill_seconds: latency_buckets(),
            caught_up_ms: AtomicU64::new(0),
            seen_epoch: AtomicU64::new(0),
            in_flight: InFlight::default(),
            follower: Mutex::new(None),
        })
    }

    /// Numbers a write request from before it reaches Redis until the guard is dropped, after
    /// its change of the table: the follower records no stream position past this host's own
    /// events until every request that could have written them is done, since the table may
    /// not reflect them before (a successor replays from the recorded position and would skip
    /// them).
    pub fn writing(&self) -> Writing<'_> {
        let mut s = self.in_flight.lock();
        let number = s.0;
        s.0 += 1;
        s.1.insert(number);
        Writing {
            in_flight: &self.in_flight,
            number,
        }
    }

    /// Starts the follower and the write queue's drainer, which change `table`.
    pub fn start(self: &Arc<Self>, table: Arc<SharedTable>) {
        info!(
            redis = %self.cfg.target.shown,
            cluster = self.cfg.target.cluster,
            write_mode = ?self.cfg.write_mode,
            origin = %String::from_utf8_lossy(&self.origin),
            "Redis tier on"
        );
        let follower = self.rt.spawn(follow::run(self.clone(), table));
        *self.follower.lock().unwrap_or_else(|p| p.into_inner()) = Some(follower);
        let t = self.clone();
        self.rt.spawn(async move { t.drain().await });
        let t = self.clone();
        self.rt.spawn(async move { t.sweep().await });
    }

    /// Stops the follower and waits for it to end, before the shutdown takes the table's lock
    /// until exit: a follower waiting for that lock would hold a runtime worker, and the
    /// drainer, which `finish_queue` then waits for, could not run. Events read and not yet
    /// recorded are replayed by a successor. From a thread that is not the runtime's.
    pub fn stop_following(&self) {
        let Some(follower) = self
            .follower
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        else {
            return;
        };
        follower.abort();
        // Ends at its next await: at once, or after the batch of events it is applying and
        // its position (nothing holds the table's lock for good yet).
        let _ = self.rt.block_on(follower);
    }

    /// Runs `f` to completion from a connection thread (never from a runtime task).
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        let start = std::time::Instant::now();
        let out = self.rt.handle().block_on(f);
        self.redis_seconds.observe(start.elapsed().as_secs_f64());
        out
    }

    /// The follower read every followed stream to its end.
    pub(super) fn caught_up(&self) {
        self.caught_up_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// The tier as the metrics show it.
    pub fn view(&self) -> TierView {
        let breaker = match self.breaker.state() {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        };
        let caught = self.caught_up_ms.load(Ordering::Relaxed);
        let mut followed: Vec<(String, u64)> = self
            .follows()
            .iter()
            .map(|(ns, f)| (ns.clone(), f.cursor.as_ref().map_or(0, |c| c.seq)))
            .collect();
        followed.sort();
        TierView {
            breaker,
            queue_len: self.queue.len() as u64,
            queue_limit: self.cfg.queue as u64,
            followed,
            replay_lag_seconds: if caught == 0 {
                0.0
            } else {
                now_ms().saturating_sub(caught) as f64 / 1000.0
            },
        }
    }

    /// Counts a failed call; an outage counts towards the breaker.
    fn failed(&self, e: &StoreError) {
        bump(&self.c.errors);
        if matches!(e, StoreError::Timeout { .. }) {
            bump(&self.c.timeouts);
        }
        if e.is_outage() {
            self.breaker.failure();
        }
    }

    fn follows(&self) -> std::sync::MutexGuard<'_, HashMap<String, Follow>> {
        self.follows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes sure this host follows `ns`'s stream from a point *before* anything of `ns` is
    /// put in the table. Returns whether the starting point is known (a fill needs that).
    fn ensure_followed(&self, ns: &str) -> bool {
        if let Some(f) = self.follows().get(ns) {
            return f.cursor.is_some();
        }
        let cursor = if self.breaker.allow() {
            match self.block_on(self.store.follow_start(ns)) {
                Ok(c) => {
                    self.breaker.success();
                    Some(c)
                }
                Err(e) => {
                    self.failed(&e);
                    warn!(namespace = ns, error = %e, "cannot read where the namespace's stream ends; it will be cleared locally once Redis answers");
                    None
                }
            }
        } else {
            None
        };
        let mut follows = self.follows();
        match follows.get_mut(ns) {
            None => {
                follows.insert(
                    ns.to_owned(),
                    Follow {
                        cursor,
                        ..Follow::default()
                    },
                );
            }
            // Two threads raced to register: keep the earlier starting point, so the events
            // either of them needs are read (reading some twice is harmless). An entry
            // registered without a cursor stays so: the follower clears the namespace when
            // it learns where to start.
            Some(f) => match (&f.cursor, cursor) {
                (Some(have), Some(mine)) if mine.seq < have.seq => f.cursor = Some(mine),
                _ => {}
            },
        }
        follows.get(ns).is_some_and(|f| f.cursor.is_some())
    }

    /// Sends a write to Redis (write-through) or queues it (write-behind, breaker open).
    /// A write-through write that finds writes queued goes behind them (order) and, while
    /// Redis answers, waits for the drainer to send it (see
    /// [`write_behind_backlog`](Self::write_behind_backlog)).
    pub fn write(&self, op: WriteOp) -> WriteOutcome {
        self.ensure_followed(op.namespace());
        let through = self.cfg.write_mode == WriteMode::Through;
        if through && self.queue.len() > 0 {
            return match self.breaker.state() {
                State::Closed => self.write_behind_backlog(op),
                // Redis is (still) unreachable: acknowledged once queued.
                State::Open | State::HalfOpen => self.enqueue(op),
            };
        }
        if through && self.breaker.allow() {
            // A lane of its own, so that the queue may send it again if this send's answer
            // is lost, and Redis skips it if this send was applied.
            let w = Sequenced {
                seq: self.queue.lanes.take(),
                op,
            };
            let sent = std::time::Instant::now();
            let result = self.block_on(
                self.store
                    .write_sequenced(std::slice::from_ref(&w), now_ms()),
            );
            match result {
                Ok(written) => {
                    self.queue.lanes.give_back(w.seq);
                    self.breaker.success();
                    // One answer per write (checked when parsed). A fresh number is never
                    // skipped (clock 0); were it, its clock is unknown here.
                    let Some(done) = written.first().filter(|d| d.clock != 0) else {
                        return WriteOutcome::Queued;
                    };
                    bump(&self.c.writes);
                    self.wrote(w.op.namespace(), done.clock);
                    return WriteOutcome::Done {
                        existed: done.existed,
                        clock: done.clock,
                    };
                }
                Err(e) if e.is_outage() => {
                    self.failed(&e);
                    debug!(error = %e, "write failed; queued for retry");
                    return self.enqueue_sent(w, sent);
                }
                Err(e) => {
                    self.queue.lanes.give_back(w.seq);
                    self.failed(&e);
                    return WriteOutcome::Failed(format!(
                        "{e} (the {} was applied on this host only)",
                        w.op.name()
                    ));
                }
            }
        }
        self.enqueue(op)
    }

    /// A miss of the table: read Redis (one GET), validate, fill `table` with the remaining
    /// lifetime, answer. The caller (the coalescer) makes this one call per key per host.
    /// `None`: a miss (absent, invalid, larger than `max_value_bytes`, Redis unreachable).
    pub fn read_through(
        &self,
        table: &SharedTable,
        ns: &str,
        key: &[u8],
        max_value_bytes: usize,
    ) -> Option<FetchHit> {
        if self.queue.pending.any(ns, key) {
            // Redis may not have this host's latest write yet: its copy could be older.
            bump(&self.c.pending_misses);
            return None;
        }
        let start = std::time::Instant::now();
        let out = self.read_through_timed(table, ns, key, max_value_bytes);
        self.fill_seconds.observe(start.elapsed().as_secs_f64());
        out
    }

    fn read_through_timed(
        &self,
        table: &SharedTable,
        ns: &str,
        key: &[u8],
        max_value_bytes: usize,
    ) -> Option<FetchHit> {
        let known = self.ensure_followed(ns);
        let epoch = self.store.epoch();
        let before = table.snapshot(ns, key);
        let now = now_ms();
        let rec = match self.fetch(ns, key, now) {
            FetchOutcome::Miss => return None,
            FetchOutcome::Hit(r) => r,
        };
        if rec.value.len() > max_value_bytes {
            warn!(
                namespace = ns,
                len = rec.value.len(),
                "a value in Redis is larger than this daemon's max_value_bytes; answering a miss (raise --max-value-bytes to match the other hosts)"
            );
            return None;
        }
        let ttl_ms = rec.expires_ms.map(|e| e.saturating_sub(now));
        let grace_ms = match (rec.expires_ms, rec.grace_until_ms) {
            (Some(e), Some(g)) => g.saturating_sub(now.max(e)),
            _ => 0,
        };
        let tags: Vec<&str> = rec.tags.iter().map(String::as_str).collect();
        let opts = InsertOptions {
            ttl_ms,
            grace_ms,
            tags: &tags,
        };
        // Filled only if this host knows where it follows the namespace's stream from, no
        // write to the key is still on its way to Redis, and nothing Redis may not have had
        // changed the key or namespace since `before` (checked by `fill`, under the lock);
        // and not across a failover the follower has not cleared the table for yet.
        let same_primary =
            || epoch == self.store.epoch() && epoch == self.seen_epoch.load(Ordering::SeqCst);
        let filled =
            table.change(
                |t| match known && !self.queue.pending.any(ns, key) && same_primary() {
                    true => t.fill(before, rec.stamp, ns, key, &rec.value, &opts),
                    false => Ok(None),
                },
            );
        let version = match filled {
            Ok(Some(version)) => {
                bump(&self.c.fills);
                version
            }
            Ok(None) => {
                bump(&self.c.fill_races);
                0
            }
            Err(e) => {
                debug!(namespace = ns, error = %e, "not filling the table");
                0
            }
        };
        Some(FetchHit {
            version,
            stale: rec.stale_at(now),
            created_ms: rec.created_ms,
            expires_ms: rec.expires_ms,
            grace_until_ms: rec.grace_until_ms,
            value: rec.value,
        })
    }

    /// Reads `key` from Redis and validates it at `now`. Never waits longer than the store's
    /// timeout; answers at once while the breaker is open.
    fn fetch(&self, ns: &str, key: &[u8], now: u64) -> FetchOutcome {
        if !self.breaker.allow() {
            bump(&self.c.fast_misses);
            return FetchOutcome::Miss;
        }
        bump(&self.c.gets);
        match self.block_on(self.store.fetch(ns, key)) {
            Ok(None) => {
                self.breaker.success();
                bump(&self.c.get_misses);
                FetchOutcome::Miss
            }
            Ok(Some(f)) => {
                self.breaker.success();
                self.validated(f, now)
            }
            Err(e) => {
                self.failed(&e);
                debug!(namespace = ns, error = %e, "fetch from Redis failed; answering a miss");
                FetchOutcome::Miss
            }
        }
    }

    fn validated(&self, f: Fetched, now: u64) -> FetchOutcome {
        match f.validate(now) {
            Ok(r) => {
                bump(&self.c.get_hits);
                FetchOutcome::Hit(r)
            }
            Err(_) => {
                bump(&self.c.rejected);
                FetchOutcome::Miss
            }
        }
    }

    pub fn stats(&self, out: &mut Vec<(String, u64)>) {
        let c = &self.c;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let state = match self.breaker.state() {
            State::Closed => 0,
            State::Open => 1,
            State::HalfOpen => 2,
        };
        out.extend([
            ("redis_state".into(), state),
            ("redis_breaker_opens".into(), l(&self.breaker.opens)),
            ("redis_errors".into(), l(&c.errors)),
            ("redis_timeouts".into(), l(&c.timeouts)),
            ("redis_gets".into(), l(&c.gets)),
            ("redis_get_hits".into(), l(&c.get_hits)),
            ("redis_get_misses".into(), l(&c.get_misses)),
            ("redis_rejected".into(), l(&c.rejected)),
            ("redis_fast_misses".into(), l(&c.fast_misses)),
            ("redis_pending_misses".into(), l(&c.pending_misses)),
            ("fills".into(), l(&c.fills)),
            ("fill_races".into(), l(&c.fill_races)),
            ("redis_writes".into(), l(&c.writes)),
            ("redis_queued".into(), l(&c.queued)),
            ("redis_queue_len".into(), self.queue.len() as u64),
            ("redis_queue_full".into(), l(&c.queue_full)),
            ("redis_writes_dropped".into(), l(&c.writes_dropped)),
            ("redis_drain_batches".into(), l(&c.drain_batches)),
            ("redis_backlog_waits".into(), l(&c.backlog_waits)),
            (
                "redis_backlog_wait_timeouts".into(),
                l(&c.backlog_wait_timeouts),
            ),
            ("redis_resends_skipped".into(), l(&c.resends_skipped)),
            ("redis_events".into(), l(&c.events)),
            ("replayed".into(), l(&c.replayed)),
            ("flushes_for_gap".into(), l(&c.flushes_for_gap)),
            ("flushes_for_outage".into(), l(&c.flushes_for_outage)),
            (
                "flushes_for_unknown_start".into(),
                l(&c.flushes_for_unknown_start),
            ),
            ("flushes_for_failover".into(), l(&c.flushes_for_failover)),
            ("redis_failover_clears".into(), l(&c.failover_clears)),
            (
                "redis_doorbell_reconnects".into(),
                l(&c.doorbell_reconnects),
            ),
            ("redis_resumed_namespaces".into(), l(&c.resumed_namespaces)),
            ("redis_resume_clears".into(), l(&c.resume_clears)),
            ("redis_resume_events".into(), l(&c.resume_events)),
            ("redis_journal_drops".into(), l(&c.journal_drops)),
            ("redis_sweep_steps".into(), l(&c.sweep_steps)),
            ("redis_sweep_passes".into(), l(&c.sweep_passes)),
            ("redis_swept_records".into(), l(&c.swept_records)),
            ("redis_restamped_records".into(), l(&c.restamped_records)),
            ("redis_swept_counters".into(), l(&c.swept_counters)),
            ("redis_atomic_ops".into(), l(&c.atomic_ops)),
            ("redis_atomic_conflicts".into(), l(&c.atomic_conflicts)),
            ("redis_leases".into(), l(&c.leases)),
            ("redis_lease_waits".into(), l(&c.lease_waits)),
            ("redis_lease_fallbacks".into(), l(&c.lease_fallbacks)),
            (
                "redis_lease_fills_refused".into(),
                l(&c.lease_fills_refused),
            ),
            (
                "redis_followed_namespaces".into(),
                self.follows().len() as u64,
            ),
        ]);
    }
}
