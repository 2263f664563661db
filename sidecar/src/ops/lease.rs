//! LEASE, LEASE_FILL and LEASE_RELEASE: compute-once per key per host (see `leases.rs`).

use super::to_redis;
use crate::daemon::{bump, Daemon};
use crate::leases::Acquired;
use crate::peer::Peer;
use cachekit_proto::{ErrorCode, Lease, LeaseFill, Reply, LEASE_REFRESH};
use cachekit_redis::{Record, WriteOp};
use cachekit_shm::{now_ms, InsertOptions};
use std::time::{Duration, Instant};

/// The longest a lease may be held, whatever the caller asks: 10 minutes.
const MAX_LEASE: Duration = Duration::from_secs(600);

pub fn lease(d: &Daemon, peer: &Peer, l: &Lease) -> Reply {
    bump(&d.counters.leases);
    let (ns, key) = (l.namespace.as_str(), l.key.as_slice());
    let refresh = l.flags & LEASE_REFRESH != 0;
    if l.lease_ms == 0 {
        return Reply::error(
            ErrorCode::InvalidArgument,
            "lease_ms is 0: give the lease time to compute the value (the longest a computation may take)",
        );
    }
    let lease_for = Duration::from_millis(l.lease_ms.into()).min(MAX_LEASE);
    let wait = match refresh {
        // A refresh never waits: the caller already serves the stale value.
        true => Duration::ZERO,
        false => Duration::from_millis(l.wait_ms.into()),
    };
    if !refresh {
        // A value in the table (or in Redis) is the answer: no computation.
        if let hit @ Reply::FetchHit(_) = super::fetch::run(d, ns, key) {
            return hit;
        }
    }
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match d.leases.acquire(ns, key, peer.conn, lease_for, left, || {
            d.table.change(|t| t.grant(ns, key))
        }) {
            Acquired::Granted { token } => return Reply::LeaseGranted { token },
            Acquired::Busy => return Reply::LeaseBusy,
            Acquired::Filled => {
                // The fill landed: answer it from the table. Gone again already (deleted,
                // invalidated, evicted)? Compete for the lease again.
                if let Some((value, m)) = d.table.reader().get(ns, key) {
                    return Reply::FetchHit(cachekit_proto::FetchHit {
                        value,
                        created_ms: m.created_ms,
                        expires_ms: m.expires_ms,
                        grace_until_ms: m.grace_until_ms,
                        stale: m.stale,
                        version: m.version,
                    });
                }
            }
        }
    }
}

pub fn fill(d: &Daemon, f: &LeaseFill) -> Reply {
    let s = &f.set;
    let (ns, key) = (s.namespace.as_str(), s.key.as_slice());
    let c = &d.leases.counters;
    let Some(grant) = d.leases.holding(ns, key, f.token) else {
        bump(&c.fills_refused);
        return Reply::Stored {
            stored: false,
            version: 0,
        };
    };
    let remote = to_redis(d, || WriteOp::Set {
        ns: s.namespace.clone(),
        key: s.key.clone(),
        record: Record::new(
            now_ms(),
            s.ttl_ms,
            s.grace_ms,
            s.tags.clone(),
            s.value.clone(),
        ),
    });
    let tags: Vec<&str> = s.tags.iter().map(String::as_str).collect();
    let opts = InsertOptions {
        ttl_ms: s.ttl_ms,
        grace_ms: s.grace_ms,
        tags: &tags,
    };
    let stored = d.table.change(|t| match &remote {
        Err(_) => {
            t.delete(ns, key, None);
            Ok(None)
        }
        Ok(r) => t.fill_leased(grant, ns, key, &s.value, &opts, r.clock),
    });
    let version = match stored {
        Ok(v) => v,
        Err(e) => {
            d.leases.finish(ns, key, f.token, false);
            return super::set::insert_error(d, e);
        }
    };
    d.leases.finish(ns, key, f.token, version.is_some());
    match version {
        Some(_) => bump(&c.fills),
        None => bump(&c.fills_refused),
    }
    match remote {
        Err(message) => Reply::error(ErrorCode::Unavailable, message),
        Ok(_) => Reply::Stored {
            stored: version.is_some(),
            version: version.unwrap_or(0),
        },
    }
}

pub fn release(d: &Daemon, ns: &str, key: &[u8], token: u64) -> Reply {
    if d.leases.finish(ns, key, token, false) {
        bump(&d.leases.counters.releases);
    }
    Reply::Ok
}
