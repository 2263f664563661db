//! Atomic operations across hosts (add, replace, cas, incr, touch, get_and_delete) and deletes
//! by pattern, decided in Redis.
//!
//! [`Tier::update_then`] is a read-modify-write: fetch the record (the ordinary fetch script, one
//! GET), validate it, let the caller decide, commit the decision with the compare script
//! (the key still holds exactly the bytes read, or is still absent, and no invalidation
//! covering it came in), and on a conflict start again (at most
//! [`cachekit_redis::atomic::MAX_ATTEMPTS`] times). It never decides on this host alone:
//! while Redis is unreachable (or the breaker is open) it fails, and it waits for this host's
//! queued writes of the key or namespace to reach Redis first (they would otherwise land
//! after the commit and undo it).

use super::{bump, Tier};
use cachekit_redis::{update_with, DeletedPage, Record, StoreError, Updated};
use cachekit_shm::now_ms;
use std::cell::Cell;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;
use tracing::debug;

pub use cachekit_redis::Decision;

/// How [`Tier::update_then`] ended.
#[derive(Debug)]
pub enum UpdateOutcome {
    /// Committed at namespace clock `clock`: apply `record` (its stamp is `clock`) to the
    /// table with that clock.
    Written {
        clock: u64,
        record: Record,
        /// The valid record it replaced (the daemon's operations do not need it; the tier's
        /// tests check it).
        #[cfg_attr(not(test), allow(dead_code))]
        prev: Option<Record>,
    },
    /// The key was deleted at namespace clock `clock` ([`Decision::Delete`], or a
    /// [`Decision::Write`] of a record already past its grace deadline).
    Deleted { clock: u64, prev: Option<Record> },
    /// [`Decision::Keep`]: nothing written; the valid record as read (checked by the tier's
    /// tests).
    Kept(#[cfg_attr(not(test), allow(dead_code))] Option<Record>),
    /// Redis unreachable, timed out, refused, too much contention, or this host's queued
    /// writes did not drain: the message says which and what to do (UNAVAILABLE).
    Failed(String),
    /// [`Decision::Fail`]: the decision's message (INVALID_ARGUMENT).
    Refused(String),
}

impl Tier {
    /// The atomic read-modify-write of `key` in `ns`: `f` gets the valid record (`None` when
    /// absent, invalidated, cleared or past its grace deadline; stale or fresh is `f`'s
    /// business, from `expires_ms` and the time it is given) and decides. `f` may be called
    /// several times (once per attempt). Blocks the calling connection thread for two round
    /// trips per attempt (each under the store's timeout) plus the backoff pauses between
    /// attempts.
    ///
    /// The daemon wants [`update_then`](Self::update_then), which applies the outcome to
    /// the table in the same turn; this form is for the tier's tests.
    #[cfg(test)]
    pub fn update(
        &self,
        ns: &str,
        key: &[u8],
        f: &mut dyn FnMut(Option<&Record>, u64) -> Decision,
    ) -> UpdateOutcome {
        self.update_then(ns, key, f, |o| o)
    }

    /// the read-modify-write of `update` (below), then `apply` on its outcome (put it in the table, build the
    /// reply), all under a lock this host's atomic operations on the key take in turn
    /// (striped: 1 key in [`LOCK_STRIPES`] shares it). So this host's atomic operations on a
    /// key queue instead of conflicting in Redis, and reach the table in the order Redis
    /// took them (two increments applied the other way round would leave the older count in
    /// the table). `f` and `apply` must not call `update` themselves.
    pub fn update_then<T>(
        &self,
        ns: &str,
        key: &[u8],
        f: &mut dyn FnMut(Option<&Record>, u64) -> Decision,
        apply: impl FnOnce(UpdateOutcome) -> T,
    ) -> T {
        let _turn = self.atomic_locks.lock(ns, key);
        apply(self.decide(ns, key, f))
    }

    fn decide(
        &self,
        ns: &str,
        key: &[u8],
        f: &mut dyn FnMut(Option<&Record>, u64) -> Decision,
    ) -> UpdateOutcome {
        self.ensure_followed(ns);
        if !self.breaker.allow() {
            return UpdateOutcome::Failed(format!(
                "Redis at {} is unreachable (the circuit breaker is open after repeated failures); {NEEDS_REDIS}",
                self.cfg.target.shown
            ));
        }
        if let Err(m) = self.wait_for_queue(|| self.queue.pending.any(ns, key)) {
            return UpdateOutcome::Failed(m);
        }
        let committing = Cell::new(false);
        let result = update_with(
            || {
                committing.set(false);
                bump(&self.c.gets);
                let r = self.block_on(self.store.fetch(ns, key));
                if r.is_ok() {
                    self.breaker.success();
                }
                r
            },
            |expected, op, now| {
                committing.set(true);
                let r = self.block_on(self.store.commit(ns, key, expected, op, now));
                match r {
                    Ok(Some(_)) => self.breaker.success(),
                    Ok(None) => {
                        self.breaker.success();
                        bump(&self.c.atomic_conflicts);
                    }
                    Err(_) => {}
                }
                r
            },
            now_ms,
            f,
        );
        match result {
            Ok(u) => {
                bump(&self.c.atomic_ops);
                if let Updated::Written { clock, .. } | Updated::Deleted { clock, .. } = &u {
                    self.wrote(ns, *clock);
                }
                match u {
                    Updated::Written {
                        clock,
                        record,
                        prev,
                    } => UpdateOutcome::Written {
                        clock,
                        record,
                        prev,
                    },
                    Updated::Deleted { clock, prev } => UpdateOutcome::Deleted { clock, prev },
                    Updated::Kept(r) => UpdateOutcome::Kept(r),
                    Updated::Refused(m) => UpdateOutcome::Refused(m),
                }
            }
            Err(e @ StoreError::Contention { .. }) => UpdateOutcome::Failed(e.to_string()),
            Err(e) => {
                self.failed(&e);
                debug!(namespace = ns, error = %e, "atomic operation failed");
                UpdateOutcome::Failed(match (e.is_outage(), committing.get()) {
                    (true, true) => format!("{e}; the atomic operation may or may not have been applied in Redis (it failed while committing): read the key to find out"),
                    (true, false) => format!("{e}; {NEEDS_REDIS}"),
                    // Refused by Redis, or a record cachekit cannot read: the message says what to do.
                    (false, _) => e.to_string(),
                })
            }
        }
    }

    /// Deletes one page of the records of `ns` in Redis whose keys match the glob `pattern`
    /// (Redis `SCAN MATCH` syntax; empty = all) and, with `tag`, that carry it (or, unless
    /// `exact`, a tag below it), each with a delete event so other hosts drop their copies.
    /// Start with cursor 0, pass back `page.cursor`, stop at 0 (a page may delete nothing
    /// and still not be the last). The keys come back with the clock of each delete, for
    /// the table. `Err`: the message says why (UNAVAILABLE); nothing of this page was deleted
    /// unless it timed out.
    pub fn delete_matching(
        &self,
        ns: &str,
        redis_cursor: u64,
        pattern: &[u8],
        tag: Option<&str>,
        exact: bool,
    ) -> Result<DeletedPage, String> {
        self.ensure_followed(ns);
        if !self.breaker.allow() {
            return Err(format!(
                "Redis at {} is unreachable (the circuit breaker is open after repeated failures); deleting by pattern needs it so other hosts drop their copies: retry when Redis is back",
                self.cfg.target.shown
            ));
        }
        // A queued write of a matching key landing after the delete would bring it back.
        self.wait_for_queue(|| self.queue.len() > 0)?;
        match self.block_on(
            self.store
                .delete_matching(ns, redis_cursor, pattern, tag, exact),
        ) {
            Ok(page) => {
                self.breaker.success();
                if let Some(&(_, clock)) = page.keys.last() {
                    self.wrote(ns, clock);
                }
                Ok(page)
            }
            Err(e) => {
                self.failed(&e);
                Err(format!("{e}; deleting by pattern in Redis failed: retry"))
            }
        }
    }

    /// Waits (at most the store's timeout) until `busy` is false: this host's queued writes
    /// that the operation must come after have reached Redis.
    fn wait_for_queue(&self, busy: impl Fn() -> bool) -> Result<(), String> {
        let limit = self.cfg.target.timeout;
        let deadline = Instant::now() + limit;
        while busy() {
            if Instant::now() >= deadline {
                return Err(format!(
                    "writes of this host to the same key or namespace are still queued for Redis at {} (write-behind mode, or Redis was unreachable) after {} ms; an atomic operation must come after them: nothing was changed, retry",
                    self.cfg.target.shown,
                    limit.as_millis()
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        Ok(())
    }
}

/// Lock stripes of [`Tier::update_then`]: two keys share a lock with probability 1/256, which
/// only makes one wait for the other (about two Redis round trips).
const LOCK_STRIPES: usize = 256;

/// Locks that serialize this host's atomic operations per key (striped).
pub struct KeyLocks(Box<[Mutex<()>]>);

impl Default for KeyLocks {
    fn default() -> Self {
        KeyLocks((0..LOCK_STRIPES).map(|_| Mutex::new(())).collect())
    }
}

impl KeyLocks {
    fn lock(&self, ns: &str, key: &[u8]) -> MutexGuard<'_, ()> {
        use std::hash::{Hash, Hasher};
        let mut h = std::hash::DefaultHasher::new();
        (ns, key).hash(&mut h);
        self.0[(h.finish() % LOCK_STRIPES as u64) as usize]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

const NEEDS_REDIS: &str = "atomic operations (add, replace, cas, incr, touch, get_and_delete) are decided in Redis so that every host agrees, and need it: nothing was changed, retry when Redis is back";

#[cfg(test)]
#[path = "atomic_tests.rs"]
mod tests;
