//! The Redis side of fill leases (`LEASE_GLOBAL`, and the check every leased fill gets).
//!
//! - [`Tier::take_lease`]: the key's lease in Redis, for the host's holder (see
//!   `cachekit_redis::lease`). Never waits longer than the store's timeout, and answers at
//!   once while the breaker is open: a dead Redis falls back to the host's lease.
//! - [`Tier::fill_leased`]: the fill, written only if nothing covering the key changed in
//!   Redis since the grant's namespace clock.
//! - [`Tier::wait_for_events`]: how a host whose holder waits for another host's fill
//!   sleeps: until the follower applies events (the other host's fill rings the doorbell),
//!   or a short poll interval passes (a lease released or expired without a fill rings
//!   nothing).

use super::{bump, Tier};
use cachekit_redis::{Record, Taken};
use cachekit_shm::now_ms;
use std::sync::{Condvar, Mutex};
use std::time::Duration;
use tracing::debug;

/// The follower's progress, for waiters on another host's fill.
#[derive(Default)]
pub struct Events {
    seen: Mutex<u64>,
    arrived: Condvar,
}

/// How a Redis lease ended up.
#[derive(Debug)]
pub enum RemoteLease {
    /// This host's holder holds it; `since` is the namespace clock at the grant.
    Mine { since: u64 },
    /// Another host holds it, for at most `left` more.
    Held { left: Duration },
    /// The key has a record in Redis: read it first.
    Recorded,
    /// Redis did not answer (or the breaker is open): use the host's lease alone.
    Unavailable,
}

/// What became of a leased fill sent to Redis.
#[derive(Debug)]
pub enum LeasedFill {
    /// Written, at namespace clock `clock`.
    Stored { clock: u64 },
    /// Refused: something covering the key changed since the grant; nothing was written.
    Refused,
    /// Not sent (write-behind, writes queued, the breaker open, or Redis failed): send it as
    /// an ordinary write.
    NotSent,
}

impl Tier {
    /// This host's Redis token for its lease `token`: the daemon's origin, `/`, the number.
    fn lease_token(&self, token: u64) -> Vec<u8> {
        let mut t = self.lease_prefix();
        t.extend_from_slice(token.to_string().as_bytes());
        t
    }

    fn lease_prefix(&self) -> Vec<u8> {
        let mut p = self.origin.clone();
        p.push(b'/');
        p
    }

    /// Takes `key`'s lease in Redis for this host's lease `token` (see [`RemoteLease`]).
    pub fn take_lease(
        &self,
        ns: &str,
        key: &[u8],
        token: u64,
        lease_for: Duration,
        check_record: bool,
    ) -> RemoteLease {
        self.ensure_followed(ns);
        if !self.breaker.allow() {
            bump(&self.c.lease_fallbacks);
            return RemoteLease::Unavailable;
        }
        let r = self.block_on(self.store.take_lease(
            ns,
            key,
            &self.lease_token(token),
            &self.lease_prefix(),
            lease_for.as_millis() as u64,
            check_record,
        ));
        match r {
            Ok(t) => {
                self.breaker.success();
                match t {
                    Taken::Mine { since } => {
                        bump(&self.c.leases);
                        RemoteLease::Mine { since }
                    }
                    Taken::Held { left } => RemoteLease::Held { left },
                    Taken::Recorded => RemoteLease::Recorded,
                }
            }
            Err(e) => {
                self.failed(&e);
                bump(&self.c.lease_fallbacks);
                debug!(namespace = ns, error = %e, "cannot take the lease in Redis; the host's lease alone holds");
                RemoteLease::Unavailable
            }
        }
    }

    /// Releases this host's lease `token` of `key` in Redis, if it still holds it. Best
    /// effort: an unreachable Redis lets it expire.
    pub fn drop_lease(&self, ns: &str, key: &[u8], token: u64) {
        if !self.breaker.allow() {
            return;
        }
        match self.block_on(self.store.drop_lease(ns, key, &self.lease_token(token))) {
            Ok(_) => self.breaker.success(),
            Err(e) => {
                self.failed(&e);
                debug!(namespace = ns, error = %e, "cannot release the lease in Redis; it expires by itself");
            }
        }
    }

    /// Writes a leased fill to Redis unless something covering the key changed after
    /// namespace clock `since`; releases the Redis lease `token` (if this host took one) in
    /// the same script.
    pub fn fill_leased(
        &self,
        ns: &str,
        key: &[u8],
        record: &Record,
        since: u64,
        token: Option<u64>,
    ) -> LeasedFill {
        self.ensure_followed(ns);
        let direct = self.cfg.write_mode == crate::config::WriteMode::Through
            && self.queue.len() == 0
            && self.breaker.allow();
        if !direct {
            return LeasedFill::NotSent;
        }
        let token = token.map(|t| self.lease_token(t));
        let r = self.block_on(self.store.fill_leased(
            ns,
            key,
            record,
            since,
            token.as_deref(),
            now_ms(),
        ));
        match r {
            Ok(Ok(w)) => {
                self.breaker.success();
                bump(&self.c.writes);
                self.wrote(ns, w.clock);
                LeasedFill::Stored { clock: w.clock }
            }
            Ok(Err(why)) => {
                self.breaker.success();
                bump(&self.c.lease_fills_refused);
                debug!(namespace = ns, ?why, "leased fill refused by Redis");
                LeasedFill::Refused
            }
            Err(e) => {
                self.failed(&e);
                debug!(namespace = ns, error = %e, "leased fill failed; sent as an ordinary write");
                LeasedFill::NotSent
            }
        }
    }

    /// The namespace clock this host knows `ns` reached: where its follower is, or its own
    /// latest write, whichever is later. A value the clock had at some point before now, so
    /// a fill checked against it is checked against everything since (and maybe a little
    /// before: another host's write the follower has not read yet refuses the fill, which
    /// costs a recomputation, never a stale value). `None` before the starting point is known.
    pub fn followed_clock(&self, ns: &str) -> Option<u64> {
        self.follows()
            .get(ns)
            .and_then(|f| f.cursor.as_ref().map(|c| c.seq.max(f.written)))
    }

    /// Notes that this host's write to `ns` got namespace clock `clock`.
    pub(super) fn wrote(&self, ns: &str, clock: u64) {
        if let Some(f) = self.follows().get_mut(ns) {
            f.written = f.written.max(clock);
        }
    }

    /// How many times the follower has applied events so far (pass it to
    /// [`wait_for_events`](Self::wait_for_events)).
    pub fn events_seen(&self) -> u64 {
        *self.events.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sleeps until the follower applies events after `seen`, or `at_most` passes.
    pub fn wait_for_events(&self, seen: u64, at_most: Duration) {
        let g = self.events.seen.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self
            .events
            .arrived
            .wait_timeout_while(g, at_most, |now| *now == seen);
    }

    /// Called by the follower after it applied events.
    pub(super) fn events_applied(&self) {
        *self.events.seen.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.events.arrived.notify_all();
    }

    /// Counts a wait for another host's fill.
    pub fn count_lease_wait(&self) {
        bump(&self.c.lease_waits);
    }
}
