//! FETCH: the miss path. The table first (a client may have missed a value written since
//! it looked), then the Redis tier, which fills the table. Concurrent misses of one key
//! share one lookup.

use crate::daemon::{bump, Daemon};
use cachekit_proto::{FetchHit, Reply};

pub fn run(d: &Daemon, namespace: &str, key: &[u8]) -> Reply {
    let c = &d.counters;
    bump(&c.fetches);
    // A lookup started before the latest write may have missed it: join only lookups that
    // started after it.
    let gen = d.table.write_gen();
    let (reply, coalesced) = d
        .fetches
        .fetch(namespace, key, gen, || lookup(d, namespace, key));
    if coalesced {
        bump(&c.fetch_coalesced);
    }
    if matches!(reply, Reply::FetchHit(_)) {
        bump(&c.fetch_hits);
    }
    reply
}

fn lookup(d: &Daemon, ns: &str, key: &[u8]) -> Reply {
    if let Some((value, m)) = d.table.reader().get(ns, key) {
        return Reply::FetchHit(FetchHit {
            value,
            created_ms: m.created_ms,
            expires_ms: m.expires_ms,
            grace_until_ms: m.grace_until_ms,
            stale: m.stale,
            version: m.version,
        });
    }
    match &d.tier {
        Some(t) => match t.read_through(&d.table, ns, key, d.limits.max_value_bytes) {
            Some(hit) => Reply::FetchHit(hit),
            None => Reply::FetchMiss,
        },
        None => Reply::FetchMiss,
    }
}
