//! The Redis tier inside the daemon: a small tokio runtime, the store, the circuit breaker,
//! the bounded queue of writes waiting for Redis, and the streams this host follows.
//!
//! Connection threads stay synchronous: they call into the runtime with `block_on`, and
//! every call carries the store's timeout. The background tasks (the follower in
//! `follow.rs`, the queue drainer below) run on the runtime's two worker threads.

use crate::breaker::{Breaker, State};
use crate::config::{RedisConfig, WriteMode};
use crate::gens::{Pending, Scope};
use cachekit_redis::{AsyncStore, Cursor, Fetched, Record, StoreError, WriteContext, WriteOp};
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;
use tracing::{debug, error, warn};

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
    pub doorbell_reconnects: AtomicU64,
}

pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// Where this host stands in one namespace's stream.
#[derive(Clone, Debug)]
pub struct Follow {
    /// `None`: the namespace was first used while Redis was unreachable, so where to start
    /// is unknown; the follower clears the namespace locally when it finds out.
    pub cursor: Option<Cursor>,
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
    pub breaker: Breaker,
    queue: Mutex<VecDeque<WriteOp>>,
    pub queue_wake: tokio::sync::Notify,
    pub pending: Pending,
    pub follows: Mutex<HashMap<String, Follow>>,
    pub origin: Vec<u8>,
    pub c: TierCounters,
}

pub fn scope(op: &WriteOp) -> Scope<'_> {
    match op {
        WriteOp::Set { ns, key, .. } | WriteOp::Delete { ns, key } => Scope::Key(ns, key),
        WriteOp::Invalidate { ns, .. } | WriteOp::Clear { ns } => Scope::Namespace(ns),
    }
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
            queue: Mutex::new(VecDeque::new()),
            queue_wake: tokio::sync::Notify::new(),
            pending: Pending::default(),
            follows: Mutex::new(HashMap::new()),
            origin,
            c: TierCounters::default(),
        })
    }

    /// Runs `f` to completion from a connection thread (never from a runtime task).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.handle().block_on(f)
    }

    pub fn spawn<F: Future<Output = ()> + Send + 'static>(&self, f: F) {
        self.rt.spawn(f);
    }

    /// Counts a failed call; an outage counts towards the breaker.
    pub fn failed(&self, e: &StoreError) {
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
    pub fn ensure_followed(&self, ns: &str) -> bool {
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
                follows.insert(ns.to_owned(), Follow { cursor });
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

    /// Sends a write to Redis (write-through) or queues it (write-behind, breaker open,
    /// or writes already queued, which must stay in order).
    pub fn write(&self, op: WriteOp, now: u64) -> WriteOutcome {
        self.ensure_followed(op.namespace());
        let direct = self.cfg.write_mode == WriteMode::Through && self.queue_len() == 0;
        if direct && self.breaker.allow() {
            match self.block_on(self.store.write(&op, now)) {
                Ok(w) => {
                    self.breaker.success();
                    bump(&self.c.writes);
                    return WriteOutcome::Done {
                        existed: w.existed,
                        clock: w.clock,
                    };
                }
                Err(e) if e.is_outage() => {
                    self.failed(&e);
                    debug!(error = %e, "write failed; queued for retry");
                }
                Err(e) => {
                    self.failed(&e);
                    return WriteOutcome::Failed(format!(
                        "{e} (the {} was applied on this host only)",
                        op.name()
                    ));
                }
            }
        }
        self.enqueue(op)
    }

    pub fn queue_len(&self) -> usize {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    fn enqueue(&self, op: WriteOp) -> WriteOutcome {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() >= self.cfg.queue {
            bump(&self.c.queue_full);
            return WriteOutcome::Failed(format!(
                "Redis at {} is unreachable and {} writes already wait for it (redis_queue); the {} was applied on this host only: retry later, or raise redis_queue",
                self.cfg.target.shown,
                q.len(),
                op.name()
            ));
        }
        self.pending.add(&scope(&op));
        q.push_back(op);
        drop(q);
        bump(&self.c.queued);
        self.queue_wake.notify_one();
        WriteOutcome::Queued
    }

    /// Sends queued writes to Redis, in order, forever. One at a time: order matters within
    /// a namespace (a set then an invalidation must reach Redis in that order).
    pub async fn drain(&self) {
        loop {
            let front = self
                .queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .front()
                .cloned();
            let Some(op) = front else {
                self.queue_wake.notified().await;
                continue;
            };
            if !self.breaker.allow() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let result = self.store.write(&op, cachekit_shm::now_ms()).await;
            match result {
                Ok(_) => {
                    self.breaker.success();
                    bump(&self.c.writes);
                }
                Err(e) if e.is_outage() => {
                    self.failed(&e);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                Err(e) => {
                    self.failed(&e);
                    bump(&self.c.writes_dropped);
                    error!(error = %e, operation = op.name(), namespace = op.namespace(), "Redis refused a queued write; dropped");
                }
            }
            self.queue
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front();
            self.pending.done(&scope(&op));
        }
    }

    /// Reads `key` from Redis and validates it at `now`. Never waits longer than the store's
    /// timeout; answers at once while the breaker is open.
    pub fn fetch(&self, ns: &str, key: &[u8], now: u64) -> FetchOutcome {
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
            ("redis_queue_len".into(), self.queue_len() as u64),
            ("redis_queue_full".into(), l(&c.queue_full)),
            ("redis_writes_dropped".into(), l(&c.writes_dropped)),
            ("redis_events".into(), l(&c.events)),
            ("replayed".into(), l(&c.replayed)),
            ("flushes_for_gap".into(), l(&c.flushes_for_gap)),
            ("flushes_for_outage".into(), l(&c.flushes_for_outage)),
            (
                "flushes_for_unknown_start".into(),
                l(&c.flushes_for_unknown_start),
            ),
            (
                "redis_doorbell_reconnects".into(),
                l(&c.doorbell_reconnects),
            ),
            (
                "redis_followed_namespaces".into(),
                self.follows().len() as u64,
            ),
        ]);
    }
}
