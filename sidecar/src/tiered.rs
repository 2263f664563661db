//! What the daemon does with the Redis tier: write-through or queued writes, fills from
//! Redis on a miss, and the other hosts' events applied to the table.

use crate::daemon::Daemon;
use crate::tier::{bump, FetchOutcome, Tier, WriteOutcome};
use cachekit_proto::{ErrorCode, FetchHit, Reply};
use cachekit_redis::{EventKind, Record, WriteOp};
use cachekit_shm::{now_ms, InsertOptions, InvalidateMode};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tracing::{debug, info, warn};

/// An ERROR reply for a tag list the table would refuse, checked before anything reaches
/// Redis (so a refused write leaves nothing half done).
pub fn check_tags(tags: &[String]) -> Option<Reply> {
    if tags.len() > cachekit_shm::MAX_TAGS {
        return Some(Reply::error(
            ErrorCode::InvalidArgument,
            format!(
                "{} tags, over the limit of {}",
                tags.len(),
                cachekit_shm::MAX_TAGS
            ),
        ));
    }
    tags.iter()
        .find_map(|t| cachekit_shm::validate_tag(t).err())
        .map(|e| Reply::error(ErrorCode::InvalidArgument, e.to_string()))
}

impl Daemon {
    pub fn tier(&self) -> Option<&Tier> {
        self.tier.as_ref()
    }

    /// Starts the follower and the write queue's drainer (no-op without Redis).
    pub fn start_redis(self: &Arc<Self>) {
        let Some(t) = self.tier() else { return };
        info!(
            redis = %t.cfg.target.shown,
            cluster = t.cfg.target.cluster,
            write_mode = ?t.cfg.write_mode,
            origin = %String::from_utf8_lossy(&t.origin),
            "Redis tier on"
        );
        t.spawn(crate::follow::run(self.clone()));
        let d = self.clone();
        t.spawn(async move {
            if let Some(t) = d.tier() {
                t.drain().await;
            }
        });
    }

    /// Waits (at most `limit`) for the writes queued for Redis to reach it; logs what is left.
    pub fn finish_redis_queue(&self, limit: std::time::Duration) {
        let Some(t) = self.tier() else { return };
        let deadline = std::time::Instant::now() + limit;
        while t.queue_len() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let left = t.queue_len();
        if left > 0 {
            warn!(
                writes = left,
                "stopping with writes that never reached Redis (it is unreachable); other hosts will not see them"
            );
        }
    }

    /// A SET on its way to Redis: its namespace clock value when Redis has it, `None` when
    /// queued (or without Redis), the message when it could neither be written nor queued.
    pub(crate) fn redis_set(&self, s: &cachekit_proto::Set) -> Result<Option<u64>, String> {
        let Some(t) = self.tier() else {
            return Ok(None);
        };
        let now = now_ms();
        let op = WriteOp::Set {
            ns: s.namespace.clone(),
            key: s.key.clone(),
            record: Record::new(now, s.ttl_ms, s.grace_ms, s.tags.clone(), s.value.clone()),
        };
        match t.write(op, now) {
            WriteOutcome::Done { clock, .. } => Ok(Some(clock)),
            WriteOutcome::Queued => Ok(None),
            WriteOutcome::Failed(m) => Err(m),
        }
    }

    /// A DELETE, INVALIDATE or CLEAR on its way to Redis: whether Redis had the key (for a
    /// delete) and the write's namespace clock value (`None` when queued or without Redis),
    /// or the message when it could neither be written nor queued.
    pub(crate) fn redis_write(&self, op: WriteOp) -> Result<(bool, Option<u64>), String> {
        let Some(t) = self.tier() else {
            return Ok((false, None));
        };
        match t.write(op, now_ms()) {
            WriteOutcome::Done { existed, clock } => Ok((existed, Some(clock))),
            WriteOutcome::Queued => Ok((false, None)),
            WriteOutcome::Failed(m) => Err(m),
        }
    }

    /// A miss of the table: read Redis (one GET), validate, fill the table with the remaining
    /// lifetime, answer. The caller (the coalescer) makes this one call per key per host.
    pub(crate) fn lookup_redis(&self, ns: &str, key: &[u8]) -> Reply {
        let Some(t) = self.tier() else {
            return Reply::FetchMiss;
        };
        if t.pending.any(ns, key) {
            // Redis may not have this host's latest write yet: its copy could be older.
            bump(&t.c.pending_misses);
            return Reply::FetchMiss;
        }
        let known = t.ensure_followed(ns);
        let before = self.gens.snapshot(ns, key);
        let now = now_ms();
        let rec = match t.fetch(ns, key, now) {
            FetchOutcome::Miss => return Reply::FetchMiss,
            FetchOutcome::Hit(r) => r,
        };
        if rec.value.len() > self.limits.max_value_bytes {
            warn!(
                namespace = ns,
                len = rec.value.len(),
                "a value in Redis is larger than this daemon's max_value_bytes; answering a miss (raise --max-value-bytes to match the other hosts)"
            );
            return Reply::FetchMiss;
        }
        let ttl_ms = rec.expires_ms.map(|e| e.saturating_sub(now));
        let grace_ms = match (rec.expires_ms, rec.grace_until_ms) {
            (Some(e), Some(g)) => g.saturating_sub(now.max(e)),
            _ => 0,
        };
        {
            let mut w = self.writer();
            // Fill only if nothing touched this key or namespace since before the read (an
            // invalidation applied meanwhile may cover what was read) and this host knows
            // where it follows the namespace's stream from.
            if known && self.gens.may_fill(before, ns, key, rec.stamp) && !t.pending.any(ns, key) {
                let tags: Vec<&str> = rec.tags.iter().map(String::as_str).collect();
                let opts = InsertOptions {
                    ttl_ms,
                    grace_ms,
                    tags: &tags,
                };
                match w.insert(ns, key, &rec.value, &opts) {
                    Ok(()) => {
                        self.gens.hold(ns, key, Some(rec.stamp));
                        bump(&t.c.fills);
                    }
                    Err(e) => debug!(namespace = ns, error = %e, "not filling the table"),
                }
            } else {
                bump(&t.c.fill_races);
            }
        }
        Reply::FetchHit(FetchHit {
            stale: rec.stale_at(now),
            created_ms: rec.created_ms,
            expires_ms: rec.expires_ms,
            grace_until_ms: rec.grace_until_ms,
            value: rec.value,
        })
    }

    /// Applies another host's event (namespace clock `clock`) to the table.
    pub fn apply_event(&self, ns: &str, kind: &EventKind, clock: u64) {
        let mut w = self.writer();
        match kind {
            // Unless the table holds that very write already (filled from Redis after it).
            EventKind::Key(k) if !self.gens.holds(ns, k, clock) => {
                w.delete(ns, k);
                self.gens.hold(ns, k, None);
                self.gens.bump_key(ns, k, Some(clock));
            }
            EventKind::Key(_) => {}
            EventKind::Tags { tags, exact } => {
                let mode = if *exact {
                    InvalidateMode::Exact
                } else {
                    InvalidateMode::Hierarchical
                };
                for tag in tags {
                    if w.invalidate(ns, tag, mode).is_err() {
                        // A tag this table cannot represent: clearing is always safe.
                        w.clear_namespace(ns);
                    }
                }
                self.gens.bump_ns(ns, Some(clock));
            }
            EventKind::Clear => {
                w.clear_namespace(ns);
                self.gens.bump_ns(ns, Some(clock));
            }
        }
        drop(w);
        self.write_gen.fetch_add(1, Ordering::Release);
    }

    /// Clears `ns` on this host only (a gap in its stream, or Redis unreadable too long).
    pub fn flush_namespace_local(&self, ns: &str) {
        let mut w = self.writer();
        w.clear_namespace(ns);
        self.gens.bump_ns(ns, None);
        drop(w);
        self.write_gen.fetch_add(1, Ordering::Release);
    }
}
