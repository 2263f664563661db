//! The state every handle of one client shares: the attached segment (swapped lock-free), the
//! connection pool, the counters, and the reconnect logic.
//!
//! # Liveness and re-attach
//!
//! - The segment is used only while its heartbeat is younger than the daemon's
//!   `heartbeat_timeout_ms` (one atomic load and one clock read per get), and only until this
//!   process finds its daemon gone: a connection attempt refused or finding no socket, a
//!   connection closed or reset under a request (`Error::is_connection_lost`). From then on
//!   its gets miss (or go to Redis directly), as with a stale heartbeat, until a HELLO
//!   succeeds again: a restarted daemon's segment is attached, or the same daemon's is trusted
//!   again. A dead daemon's heartbeat stays fresh for up to `heartbeat_timeout_ms`; without
//!   this, a delete that failed because the daemon died would be followed, in the same
//!   process, by reads of the value it meant to remove.
//! - Every new connection does its own HELLO and receives the segment descriptors; when its
//!   epoch differs from the attached segment's, the new segment is mapped and swapped in
//!   (`arc-swap`: readers never wait). Otherwise the descriptors are closed.
//! - A request that fails on a pooled connection with a lost connection empties the pool and is
//!   retried once on a fresh connection (which does HELLO, and so re-attaches).
//! - A get that finds the heartbeat stale empties the pool, at most every
//!   [`REFRESH_INTERVAL_MS`], so that its FETCH goes through a fresh HELLO: that is how a client
//!   that only reads notices a restarted daemon. A segment-only get (`get_local`) never does:
//!   it touches no lock and no socket, and leaves reconnecting to the next full get or write.
//! - Each attach fixes the value limit for that daemon ([`ValueLimit`]): its `max_value_bytes`
//!   less the envelope headroom, unless the options cap it lower.
//! - After a failed connection attempt no other is made for [`RECONNECT_INTERVAL_MS`]: while
//!   the daemon is down, gets miss and writes fail at once instead of each paying a connect.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use arc_swap::ArcSwapOption;
use cachekit_envelope::EnvelopeConfig;
use cachekit_proto::{HelloOk, Limits, Reply, Request};
use cachekit_shm::{self as shm, now_ms, Reader, ReaderStats};

use crate::conn::{Conn, ConnectParams};
use crate::error::Error;
use crate::limits::ValueLimit;
use crate::options::ClientOptions;
use crate::pool::Pool;
use crate::stats::{bump, Counters, LocalStats, SegmentInfo};

/// Least time between two connection attempts after one failed, in ms.
pub const RECONNECT_INTERVAL_MS: u64 = 100;
/// Least time between two forced reconnects while the heartbeat is stale, in ms.
pub const REFRESH_INTERVAL_MS: u64 = 100;
/// Initial size of each thread's segment copy buffer; it grows to the largest value read.
const INITIAL_RAW_BYTES: usize = 4096;
/// How many times a lookup grows the buffer for a value that keeps growing under it.
const MAX_GROWS: usize = 3;

thread_local! {
    /// Envelope bytes copied out of the segment, before decoding. One per thread, so hits
    /// allocate nothing but the value they return.
    static RAW: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// An attached daemon: its segment (if it could be mapped) and what HELLO_OK said.
pub(crate) struct Session {
    pub(crate) reader: Option<Reader>,
    pub(crate) epoch: u64,
    pub(crate) heartbeat_timeout_ms: u64,
    pub(crate) limits: Limits,
    /// The largest value this client encodes and decodes while attached to this daemon.
    pub(crate) value_limit: ValueLimit,
    /// `opts.envelope` with `max_value_bytes = value_limit.max`.
    pub(crate) envelope: EnvelopeConfig,
    /// The daemon has a second tier (HELLO_OK's `flags`): a key the segment lacks may be in
    /// Redis. Without one, a settled miss of a live segment is the whole cache's answer.
    pub(crate) second_tier: bool,
    /// The daemon takes SET_MANY and DELETE_MANY (HELLO_OK's `flags`); an older one is sent
    /// single writes.
    pub(crate) batch_writes: bool,
}

impl Session {
    /// The reader, if its heartbeat is recent enough to trust.
    fn live_reader(&self, now: u64) -> Option<&Reader> {
        let reader = self.reader.as_ref()?;
        let age = now.saturating_sub(reader.heartbeat_ms());
        (age <= self.heartbeat_timeout_ms).then_some(reader)
    }
}

/// What a segment lookup may do besides reading shared memory.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum LookupMode {
    /// The hit path of a full get: when the segment is unusable it schedules a refresh
    /// (empties the connection pool, so the FETCH that follows does a fresh HELLO).
    BeforeFetch,
    /// A segment-only get: reads memory and atomics only; never touches the pool or a lock.
    LocalOnly,
}

/// What the segment said about a key.
pub(crate) enum SegmentOutcome<T> {
    Hit(T),
    /// Not in the segment; the daemon may still have it (a second tier, or a lookup that ran
    /// out of retries).
    Miss,
    /// Not in the cache at all: a settled miss of a live, trusted segment whose daemon has no
    /// second tier. No request can find it.
    Absent,
    /// No segment, or its heartbeat is stale: ask the daemon.
    Unusable,
}

pub(crate) struct Shared {
    pub(crate) opts: ClientOptions,
    session: ArcSwapOption<Session>,
    pool: Pool,
    pub(crate) counters: Counters,
    /// Unix ms before which no connection is attempted (set after a failed one).
    connect_after_ms: AtomicU64,
    /// Unix ms before which a stale heartbeat does not force another reconnect.
    refresh_after_ms: AtomicU64,
    /// Slow-path state: the last connect failure, counters of retired readers. Never touched
    /// by a hit.
    slow: Mutex<Slow>,
    /// Redis without the daemon, when `redis_url` is set and the fallback is on.
    pub(crate) direct: Option<crate::direct::Direct>,
    /// Epoch of a segment whose daemon this process found gone (0 = none): it is not read any
    /// more, since writes that failed (or, with the fallback, went to Redis directly) never
    /// reach it. A new daemon has a new epoch; the same one answering HELLO again clears it.
    distrusted_epoch: AtomicU64,
    /// Client-side encryption, when configured: each tenant's keys, derived once.
    pub(crate) crypto: Option<crate::crypto::Crypto>,
    /// The memo of opened values (encryption on and `memo_bytes` > 0): see `memo`.
    pub(crate) memo: Option<crate::memo::Memo>,
    /// Writes the daemon was gone for: see `journal`.
    pub(crate) journal: crate::journal::Journal,
}

#[derive(Default)]
struct Slow {
    last_connect_error: Option<Error>,
    retired: ReaderStats,
}

impl Shared {
    pub(crate) fn new(opts: ClientOptions) -> Shared {
        let pool = Pool::new(opts.pool_size);
        // `connect_lazy` validated the options, so the target parses.
        let direct = opts
            .redis_target()
            .ok()
            .flatten()
            .map(crate::direct::Direct::new);
        let crypto = opts.encryption.clone().map(crate::crypto::Crypto::new);
        let memo = opts
            .encryption
            .as_ref()
            .and_then(|e| crate::memo::Memo::new(e.memo_bytes));
        Shared {
            crypto,
            memo,
            direct,
            distrusted_epoch: AtomicU64::new(0),
            opts,
            session: ArcSwapOption::empty(),
            pool,
            counters: Counters::default(),
            connect_after_ms: AtomicU64::new(0),
            refresh_after_ms: AtomicU64::new(0),
            slow: Mutex::new(Slow::default()),
            journal: crate::journal::Journal::default(),
        }
    }

    /// Lets the next request connect at once, whatever the last failure (a daemon was just
    /// found answering).
    pub(crate) fn allow_connect_now(&self) {
        self.connect_after_ms.store(0, Ordering::Relaxed);
    }

    fn slow(&self) -> MutexGuard<'_, Slow> {
        self.slow.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The limits to check requests against before sending: the daemon's, once known.
    pub(crate) fn limits(&self) -> Limits {
        self.session
            .load()
            .as_ref()
            .map_or(Limits::DEFAULT, |s| s.limits)
    }

    /// Whether the daemon takes SET_MANY and DELETE_MANY (attaching first if no daemon has
    /// been yet; if none answers, true: the request finds the daemon gone).
    pub(crate) fn batch_writes(&self) -> bool {
        if !self.attached() {
            let _ = self.warm_up();
        }
        self.session.load().as_ref().is_none_or(|s| s.batch_writes)
    }

    /// Whether a daemon has been attached (HELLO_OK seen) at least once.
    pub(crate) fn attached(&self) -> bool {
        self.session.load().is_some()
    }

    /// The largest value to encode and decode now: the attached daemon's, or the configured
    /// one before the first HELLO (see [`ValueLimit`]).
    pub(crate) fn value_limit(&self) -> ValueLimit {
        self.session.load().as_ref().map_or_else(
            || ValueLimit::new(self.opts.envelope.max_value_bytes, None),
            |s| s.value_limit,
        )
    }

    /// The envelope configuration to encode and decode with now (`opts.envelope` with the
    /// [`value_limit`](Shared::value_limit)).
    pub(crate) fn envelope(&self) -> EnvelopeConfig {
        self.session
            .load()
            .as_ref()
            .map_or(self.opts.envelope, |s| s.envelope)
    }

    /// Looks `key` up in the segment and, on a hit, hands the envelope bytes (and the envelope
    /// configuration to decode them with) to `on_hit`. Lock-free: one `arc-swap` load, one
    /// heartbeat load, one clock read, the table lookup; with [`LookupMode::BeforeFetch`], an
    /// unusable segment also schedules a refresh.
    pub(crate) fn segment_get<T>(
        &self,
        ns: &str,
        key: &[u8],
        mode: LookupMode,
        on_hit: impl FnOnce(&[u8], &cachekit_shm::HitMeta, &EnvelopeConfig) -> T,
    ) -> Result<SegmentOutcome<T>, Error> {
        let guard = self.session.load();
        let Some(session) = guard.as_deref() else {
            crate::limits::check_key(key, &Limits::DEFAULT)?;
            if mode == LookupMode::BeforeFetch {
                self.refresh();
            }
            return Ok(SegmentOutcome::Unusable);
        };
        crate::limits::check_key(key, &session.limits)?;
        let distrusted = self.distrusted_epoch.load(Ordering::Relaxed) == session.epoch;
        // One clock read serves both the heartbeat check and the entry's deadlines.
        let now = now_ms();
        let Some(reader) = session.live_reader(now).filter(|_| !distrusted) else {
            if session.reader.is_some() {
                bump(&self.counters.stale_heartbeat);
                if mode == LookupMode::BeforeFetch {
                    self.refresh();
                }
            }
            return Ok(SegmentOutcome::Unusable);
        };
        Ok(RAW.with_borrow_mut(|raw| {
            if raw.len() < INITIAL_RAW_BYTES {
                raw.resize(INITIAL_RAW_BYTES, 0);
            }
            for _ in 0..MAX_GROWS {
                match reader.get_into_settled(ns, key, raw.as_mut_slice(), Some(now)) {
                    (shm::Lookup::Miss, true) if !session.second_tier => {
                        return SegmentOutcome::Absent
                    }
                    (shm::Lookup::Hit(m), _) => {
                        return SegmentOutcome::Hit(on_hit(
                            &raw[..m.value_len],
                            &m,
                            &session.envelope,
                        ))
                    }
                    (shm::Lookup::Miss, _) => return SegmentOutcome::Miss,
                    (shm::Lookup::BufferTooSmall { needed }, _) => raw.resize(needed, 0),
                }
            }
            SegmentOutcome::Miss
        }))
    }

    /// Whether to go to Redis directly without asking the daemon: the fallback is on and the
    /// attached segment's heartbeat is stale (the daemon is dead or stuck), except for one
    /// caller per [`DAEMON_PROBE_INTERVAL_MS`](crate::direct::DAEMON_PROBE_INTERVAL_MS), who tries
    /// the daemon (and so re-attaches a restarted one).
    pub(crate) fn direct_first(&self) -> bool {
        let Some(direct) = &self.direct else {
            return false;
        };
        let guard = self.session.load();
        let stale = guard.as_deref().is_some_and(|s| {
            s.reader.is_some()
                && (s.live_reader(now_ms()).is_none()
                    || self.distrusted_epoch.load(Ordering::Relaxed) == s.epoch)
        });
        stale && !direct.probe_due()
    }

    /// The daemon was found gone or stuck (with the direct fallback on, a timeout counts too):
    /// stop reading its segment.
    pub(crate) fn daemon_gone(&self) {
        if let Some(s) = self.session.load().as_deref() {
            self.distrust(s.epoch);
        }
    }

    /// Stops reading the segment of epoch `epoch` (if it is still the attached one) until a
    /// HELLO of that daemon, or of a new one, succeeds. Relaxed: a thread that learns of the
    /// failure after it (through the error, or any synchronisation with the thread that saw
    /// it) loads this store or a later one.
    fn distrust(&self, epoch: u64) {
        self.distrusted_epoch.store(epoch, Ordering::Relaxed);
    }

    /// The heartbeat is stale (or no segment is attached): make the next request open a fresh
    /// connection, whose HELLO re-attaches if the daemon restarted. At most every
    /// [`REFRESH_INTERVAL_MS`], and by one thread only.
    fn refresh(&self) {
        let now = now_ms();
        let after = self.refresh_after_ms.load(Ordering::Relaxed);
        if now < after {
            return;
        }
        if self
            .refresh_after_ms
            .compare_exchange(
                after,
                now + REFRESH_INTERVAL_MS,
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
        {
            self.pool.clear();
        }
    }

    /// Opens a connection (HELLO), attaching its segment if it is a new one. Rate-limited after
    /// a failure.
    pub(crate) fn open_conn(&self) -> Result<Conn, Error> {
        // The daemon this process believed in, before the attempt: a refusal is news about it
        // (another thread may attach a new daemon meanwhile; that one stays trusted).
        let believed = self.session.load().as_ref().map(|s| s.epoch);
        let now = now_ms();
        if now < self.connect_after_ms.load(Ordering::Relaxed) {
            if let Some(e) = self.slow().last_connect_error.as_ref() {
                return Err(Error::Unavailable {
                    message: e.to_string(),
                });
            }
        }
        let path = self.opts.resolve_socket();
        let hint = self.opts.start_hint();
        let params = ConnectParams {
            path: &path,
            start_hint: &hint,
            client_name: &self.opts.client_name,
            connect_timeout: self.opts.connect_timeout,
            request_timeout: self.opts.request_timeout,
        };
        match Conn::open(&params) {
            Ok((conn, fds)) => {
                bump(&self.counters.requests);
                bump(&self.counters.connects);
                self.connect_after_ms.store(0, Ordering::Relaxed);
                self.observe_hello(&conn.hello, fds);
                // The daemon answers again: its segment is followed again (a stuck daemon
                // that resumed applies the direct writes from the invalidation log).
                let _ = self.distrusted_epoch.compare_exchange(
                    conn.hello.daemon_epoch,
                    0,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                );
                Ok(conn)
            }
            Err(e) => {
                bump(&self.counters.connect_failures);
                if let (true, Some(epoch)) = (e.is_connection_lost(), believed) {
                    self.distrust(epoch);
                }
                if e.is_unavailable() {
                    self.connect_after_ms
                        .store(now + RECONNECT_INTERVAL_MS, Ordering::Relaxed);
                    self.slow().last_connect_error = Some(Error::Unavailable {
                        message: e.to_string(),
                    });
                }
                Err(e)
            }
        }
    }

    /// Swaps in the segment of a HELLO_OK whose epoch is new; closes the descriptors otherwise.
    fn observe_hello(&self, hello: &HelloOk, fds: Vec<OwnedFd>) {
        let current = self.session.load();
        if current
            .as_ref()
            .is_some_and(|s| s.epoch == hello.daemon_epoch)
        {
            return;
        }
        drop(current);
        // Serialise attaches (slow path only): two connections to a new daemon map it once.
        let mut slow = self.slow();
        let current = self.session.load_full();
        if current
            .as_ref()
            .is_some_and(|s| s.epoch == hello.daemon_epoch)
        {
            return;
        }
        let attached = match fds.as_slice() {
            [table, client, ..] => Some(Reader::attach(table.as_fd(), Some(client.as_fd()))),
            [table] => Some(Reader::attach(table.as_fd(), None)),
            [] => None,
        };
        let reader = match attached {
            Some(Ok(mut r)) => {
                // Host-wide counters: this process's hits and misses go to the counters file
                // the daemon made for it (the third descriptor; one per process, kept until
                // it exits). Without one (every record taken), or when it does not map (not
                // a sealed file of the expected size), they are not counted host-wide; the
                // reader serves hits all the same.
                if let Some(counters) = fds.get(2) {
                    let _ = r.count_into(counters.as_fd());
                }
                Some(r)
            }
            Some(Err(_)) => {
                bump(&self.counters.attach_failures);
                None
            }
            None => None,
        };
        let value_limit = ValueLimit::new(self.opts.envelope.max_value_bytes, Some(&hello.limits));
        let session = Session {
            reader,
            epoch: hello.daemon_epoch,
            heartbeat_timeout_ms: u64::from(hello.heartbeat_timeout_ms),
            limits: hello.limits,
            value_limit,
            envelope: EnvelopeConfig {
                max_value_bytes: value_limit.max,
                ..self.opts.envelope
            },
            second_tier: hello.has_second_tier(),
            batch_writes: hello.has_batch_writes(),
        };
        if let Some(old) = current {
            bump(&self.counters.reattaches);
            if let Some(r) = &old.reader {
                slow.retired = add(slow.retired, r.stats());
            }
        }
        self.session.store(Some(std::sync::Arc::new(session)));
    }

    /// Sends `req` on a pooled connection and returns the reply; an ERROR reply becomes the
    /// matching [`Error`]. A lost pooled connection is retried once on a fresh one.
    pub(crate) fn request(&self, req: &Request) -> Result<Reply, Error> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut lease = self
                .pool
                .checkout(self.opts.request_timeout, || self.open_conn())?;
            req.validate(lease.conn().limits())
                .map_err(Error::from_validation)?;
            bump(&self.counters.requests);
            match lease.conn().call(req) {
                Ok(Reply::Error { code, message }) => {
                    let e = Error::from_daemon(code, message);
                    if matches!(e, Error::Protocol { .. }) {
                        lease.mark_broken();
                    }
                    return Err(e);
                }
                Ok(reply) => return Ok(reply),
                Err(e) => {
                    if e.breaks_connection() {
                        lease.mark_broken();
                    }
                    let reused = lease.reused;
                    let epoch = lease.conn().hello.daemon_epoch;
                    drop(lease);
                    if matches!(e, Error::Unavailable { .. }) {
                        // The daemon went away: every pooled connection is dead too.
                        self.pool.clear();
                        if reused && attempt == 1 {
                            // It may have restarted: the fresh connection tells.
                            bump(&self.counters.retries);
                            continue;
                        }
                    }
                    if e.is_connection_lost() {
                        self.distrust(epoch);
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Opens the first connection now (so `connect` reports a missing daemon).
    pub(crate) fn warm_up(&self) -> Result<(), Error> {
        let lease = self
            .pool
            .checkout(self.opts.request_timeout, || self.open_conn())?;
        drop(lease);
        Ok(())
    }

    pub(crate) fn local_stats(&self) -> LocalStats {
        let retired = self.slow().retired;
        let current = self
            .session
            .load()
            .as_ref()
            .and_then(|s| s.reader.as_ref().map(Reader::stats))
            .unwrap_or_default();
        self.counters.snapshot(add(retired, current))
    }

    pub(crate) fn segment_info(&self) -> Option<SegmentInfo> {
        let guard = self.session.load();
        let session = guard.as_deref()?;
        let reader = session.reader.as_ref()?;
        let heartbeat_ms = reader.heartbeat_ms();
        Some(SegmentInfo {
            epoch: session.epoch,
            heartbeat_ms,
            heartbeat_timeout_ms: session.heartbeat_timeout_ms,
            live: now_ms().saturating_sub(heartbeat_ms) <= session.heartbeat_timeout_ms,
        })
    }

    /// (open, idle) pooled connections.
    pub(crate) fn pool_counts(&self) -> (usize, usize) {
        self.pool.counts()
    }
}

fn add(a: ReaderStats, b: ReaderStats) -> ReaderStats {
    ReaderStats {
        hits: a.hits + b.hits,
        stale_hits: a.stale_hits + b.stale_hits,
        misses: a.misses + b.misses,
        retries: a.retries + b.retries,
        gave_up: a.gave_up + b.gave_up,
        corrupt: a.corrupt + b.corrupt,
    }
}
