//! The direct fallback: Redis without the daemon, for while the daemon is down.
//!
//! Blocking (no async runtime in the client library), one connection behind a mutex, every
//! call under [`ClientOptions::redis_timeout`](crate::ClientOptions::redis_timeout). Reads run
//! the daemon's fetch script and validate the record the same way (not invalidated since it was
//! written, not past its grace deadline); writes run the daemons' scripts, so they land in the
//! namespace's invalidation log and every daemon applies them.

use std::sync::atomic::{AtomicU64, Ordering};

use std::cell::Cell;

use cachekit_proto::{Condition, FetchHit, Reply, Request};
use cachekit_redis::decide::{self, When};
use cachekit_redis::{
    update_blocking, Decision, Record, StoreError, SyncStore, Target, Updated, WriteContext,
    WriteOp, Written,
};
use cachekit_shm::now_ms;

use crate::error::Error;
use crate::stats::{bump, Counters};

/// A failed direct call: counted, and said with the daemon's failure before it.
fn failed(e: StoreError, daemon_error: &Error, c: &Counters) -> Error {
    bump(&c.redis_direct_failures);
    let message = format!("{daemon_error}; and the direct fallback to Redis failed too: {e}");
    if e.is_outage() {
        Error::Unavailable { message }
    } else {
        Error::Daemon {
            code: cachekit_proto::ErrorCode::Internal,
            message,
        }
    }
}

/// How often a client that goes to Redis directly because the daemon's heartbeat is stale
/// still tries the daemon (which re-attaches a restarted one).
pub const DAEMON_PROBE_INTERVAL_MS: u64 = 1000;

/// Events kept per namespace stream; the daemons' default `redis_stream_maxlen`.
const STREAM_MAXLEN: u64 = 100_000;

pub(crate) struct Direct {
    store: SyncStore,
    /// Unix ms after which a caller should try the daemon again.
    probe_after_ms: AtomicU64,
}

impl Direct {
    pub(crate) fn new(target: Target) -> Direct {
        Direct {
            store: SyncStore::new(
                target,
                WriteContext {
                    origin: cachekit_redis::new_origin("client"),
                    stream_maxlen: STREAM_MAXLEN,
                },
            ),
            probe_after_ms: AtomicU64::new(0),
        }
    }

    /// Whether this caller should try the daemon although its heartbeat is stale: one caller
    /// per [`DAEMON_PROBE_INTERVAL_MS`].
    pub(crate) fn probe_due(&self) -> bool {
        let now = now_ms();
        let after = self.probe_after_ms.load(Ordering::Relaxed);
        now >= after
            && self
                .probe_after_ms
                .compare_exchange(
                    after,
                    now + DAEMON_PROBE_INTERVAL_MS,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }

    /// The value of `key` from Redis, validated; `Ok(None)` on a miss and when Redis cannot be
    /// reached either (counted).
    pub(crate) fn get(&self, ns: &str, key: &[u8], c: &Counters) -> Option<FetchHit> {
        bump(&c.redis_direct_gets);
        let now = now_ms();
        match self.store.fetch(ns, key) {
            Ok(Some(f)) => match f.validate(now) {
                Ok(r) => {
                    bump(&c.redis_direct_hits);
                    Some(FetchHit {
                        stale: r.stale_at(now),
                        created_ms: r.created_ms,
                        expires_ms: r.expires_ms,
                        grace_until_ms: r.grace_until_ms,
                        value: r.value,
                        // Not in this host's table: no version a cas could name.
                        version: 0,
                    })
                }
                Err(_) => None,
            },
            Ok(None) => None,
            Err(_) => {
                bump(&c.redis_direct_failures);
                bump(&c.unavailable_misses);
                None
            }
        }
    }

    /// Runs `op` in Redis. `daemon_error` is why the daemon was not used, for the message when
    /// Redis fails too.
    pub(crate) fn write(
        &self,
        op: &WriteOp,
        daemon_error: &Error,
        c: &Counters,
    ) -> Result<Written, Error> {
        match self.store.write(op, now_ms()) {
            Ok(w) => {
                bump(&c.redis_direct_writes);
                Ok(w)
            }
            Err(e) => Err(failed(e, daemon_error, c)),
        }
    }

    /// An atomic operation (add, replace, incr, take, touch) run in Redis directly, with the
    /// daemon's meaning (`cachekit_redis::decide`); `None` for any other request. A cas needs
    /// the daemon: versions are its table's, so one read while it is down names nothing.
    pub(crate) fn atomic(
        &self,
        req: &Request,
        daemon_error: &Error,
        c: &Counters,
    ) -> Option<Result<Reply, Error>> {
        let result = Cell::new(None);
        type Decide<'a> = Box<dyn FnMut(Option<&Record>, u64) -> Decision + 'a>;
        let (ns, key, mut decide): (&str, &[u8], Decide<'_>) = match req {
            Request::SetIf(s) => {
                let when = match s.condition {
                        Condition::Absent => When::Absent,
                        Condition::Present => When::Present,
                        Condition::Version(_) => {
                            return Some(Err(Error::Unavailable {
                                message: format!(
                                    "{daemon_error}; a cas needs cachekitd (versions are its table's): read the key again once it is back"
                                ),
                            }))
                        }
                    };
                let set = &s.set;
                let new = move |now| {
                    Record::new(
                        now,
                        set.ttl_ms,
                        set.grace_ms,
                        set.tags.clone(),
                        set.value.clone(),
                    )
                };
                (
                    &set.namespace,
                    &set.key,
                    Box::new(decide::set_if(when, new)),
                )
            }
            Request::Incr(i) => (
                &i.namespace,
                &i.key,
                Box::new(decide::incr(&i.key, i.delta, i.initial, i.ttl_ms, &result)),
            ),
            Request::Take { namespace, key } => (namespace, key, Box::new(decide::take())),
            Request::Touch {
                namespace,
                key,
                ttl_ms,
            } => (namespace, key, Box::new(decide::touch(*ttl_ms))),
            _ => return None,
        };
        let updated = match update_blocking(&self.store, ns, key, &mut *decide) {
            Ok(u) => u,
            Err(e) => return Some(Err(failed(e, daemon_error, c))),
        };
        bump(&c.redis_direct_writes);
        let wrote = matches!(updated, Updated::Written { .. } | Updated::Deleted { .. });
        Some(Ok(match (req, updated) {
            (_, Updated::Refused(message)) => return Some(Err(Error::InvalidArgument { message })),
            (Request::SetIf(_), _) => Reply::Stored {
                stored: wrote,
                version: 0,
            },
            (Request::Incr(_), _) => Reply::Counter {
                present: wrote,
                value: result.get().unwrap_or_default(),
                version: 0,
            },
            (Request::Take { .. }, Updated::Deleted { prev: Some(r), .. }) => {
                Reply::FetchHit(FetchHit {
                    stale: false,
                    created_ms: r.created_ms,
                    expires_ms: r.expires_ms,
                    grace_until_ms: r.grace_until_ms,
                    value: r.value,
                    version: 0,
                })
            }
            (Request::Take { .. }, _) => Reply::FetchMiss,
            (_, Updated::Deleted { prev, .. }) => Reply::Found {
                found: prev.is_some(),
            },
            (_, _) => Reply::Found { found: wrote },
        }))
    }
}
