//! SET_IF (add, replace, cas), INCR, TAKE (get and delete) and TOUCH: each a read-modify-write
//! of one key that the daemon applies atomically.
//!
//! Without Redis the table is the whole truth: the decision and the write happen under one
//! hold of the writer lock, so no other write of the host comes between. With Redis, Redis is
//! the truth across hosts: the decision is made against the record in Redis and committed
//! only if the record is still the one read (`Tier::update_then`), then applied to the table with
//! the write's namespace clock, like any write-through write.
//!
//! "Present" means fresh: an entry past its expiry (stale, within grace) or invalidated is
//! absent to these operations, as an expired key is to memcached and Redis.

use crate::daemon::{bump, Daemon};
use crate::table::Table;
use cachekit_envelope::encode_integer;
use cachekit_proto::{Condition, ErrorCode, FetchHit, Incr, Reply, SetIf};
use cachekit_redis::decide::add_to;
use cachekit_shm::{now_ms, EntryView, InsertOptions, Writer};

/// SET_IF.
pub fn set_if(d: &Daemon, s: &SetIf) -> Reply {
    bump(&d.counters.atomic_ops);
    if let Some(t) = &d.tier {
        return super::atomic_redis::set_if(d, t, s);
    }
    let set = &s.set;
    let tags: Vec<&str> = set.tags.iter().map(String::as_str).collect();
    let opts = InsertOptions {
        ttl_ms: set.ttl_ms,
        grace_ms: set.grace_ms,
        tags: &tags,
    };
    let r = d.table.change(|t| {
        let now = now_ms();
        let current = fresh(t, &set.namespace, &set.key, now);
        if !condition_holds(s.condition, current.as_ref()) {
            return Ok(None);
        }
        t.set(&set.namespace, &set.key, &set.value, &opts, None)
    });
    match r {
        Ok(Some(version)) => Reply::Stored {
            stored: true,
            version,
        },
        Ok(None) => Reply::Stored {
            stored: false,
            version: 0,
        },
        Err(e) => super::set::insert_error(d, e),
    }
}

/// Whether a SET_IF's condition holds for the key's fresh entry (or its absence).
pub fn condition_holds(c: Condition, current: Option<&EntryView>) -> bool {
    match c {
        Condition::Absent => current.is_none(),
        Condition::Present => current.is_some(),
        Condition::Version(v) => current.is_some_and(|e| e.stamp == v && v != 0),
    }
}

/// The key's fresh entry.
pub fn fresh(t: &Table, ns: &str, key: &[u8], now: u64) -> Option<EntryView> {
    t.entry(ns, key, now).filter(|e| e.is_fresh(now))
}

/// INCR.
pub fn incr(d: &Daemon, i: &Incr) -> Reply {
    bump(&d.counters.atomic_ops);
    if let Some(t) = &d.tier {
        return super::atomic_redis::incr(d, t, i);
    }
    d.table.change(|t| {
        let now = now_ms();
        let current = fresh(t, &i.namespace, &i.key, now);
        let value = current.as_ref().map(|e| e.value.as_slice());
        let next = match add_to(value, &i.key, i.delta, i.initial) {
            Ok(Some(n)) => n,
            Ok(None) => {
                return Reply::Counter {
                    present: false,
                    value: 0,
                    version: 0,
                }
            }
            Err(message) => return Reply::error(ErrorCode::InvalidArgument, message),
        };
        let value = encode_integer(next);
        let version = match &current {
            Some(e) => t.rewrite(
                &i.namespace,
                &i.key,
                e,
                Some(&value),
                Writer::remaining_ttl(e, now),
                now,
            ),
            None => {
                let opts = InsertOptions {
                    ttl_ms: i.ttl_ms,
                    grace_ms: 0,
                    tags: &[],
                };
                match t.set(&i.namespace, &i.key, &value, &opts, None) {
                    Ok(v) => v.unwrap_or(0),
                    Err(e) => return super::set::insert_error(d, e),
                }
            }
        };
        Reply::Counter {
            present: true,
            value: next,
            version,
        }
    })
}

/// TAKE: answers the fresh value and removes it.
pub fn take(d: &Daemon, ns: &str, key: &[u8]) -> Reply {
    bump(&d.counters.atomic_ops);
    if let Some(t) = &d.tier {
        return super::atomic_redis::take(d, t, ns, key);
    }
    d.table.change(|t| {
        let now = now_ms();
        match fresh(t, ns, key, now) {
            Some(e) => {
                t.delete(ns, key, None);
                Reply::FetchHit(hit_of(&e))
            }
            None => Reply::FetchMiss,
        }
    })
}

pub fn hit_of(e: &EntryView) -> FetchHit {
    FetchHit {
        value: e.value.clone(),
        created_ms: e.created_ms,
        expires_ms: e.expires_ms,
        grace_until_ms: e.grace_until_ms,
        stale: false,
        version: e.stamp,
    }
}

/// TOUCH: a new time to live (or none) for a fresh entry.
pub fn touch(d: &Daemon, ns: &str, key: &[u8], ttl_ms: Option<u64>) -> Reply {
    bump(&d.counters.atomic_ops);
    if let Some(t) = &d.tier {
        return super::atomic_redis::touch(d, t, ns, key, ttl_ms);
    }
    d.table.change(|t| {
        let now = now_ms();
        let found = match fresh(t, ns, key, now) {
            Some(e) => {
                t.rewrite(ns, key, &e, None, ttl_ms, now);
                true
            }
            None => false,
        };
        Reply::Found { found }
    })
}
