//! LEASE, LEASE_FILL and LEASE_RELEASE: compute-once per key per host (see `leases.rs`), and
//! with `LEASE_GLOBAL` and a Redis tier, once per key across hosts: the host's holder also
//! takes the key's lease in Redis (`tier/lease.rs`); while another host holds that one, it
//! waits for that host's fill instead of computing. A leased fill reaches Redis only if
//! nothing covering the key changed there since the grant.

use super::{to_redis, Remote};
use crate::daemon::{bump, Daemon};
use crate::leases::{Acquired, RemoteGrant};
use crate::peer::Peer;
use crate::tier::{LeasedFill, RemoteLease, Tier};
use cachekit_proto::{ErrorCode, Lease, LeaseFill, Reply, LEASE_GLOBAL, LEASE_REFRESH};
use cachekit_redis::{Record, WriteOp};
use cachekit_shm::{now_ms, InsertOptions};
use std::time::{Duration, Instant};

/// The longest a lease may be held, whatever the caller asks: 10 minutes.
const MAX_LEASE: Duration = Duration::from_secs(600);

/// How often a holder waiting for another host's fill asks Redis again when no event wakes
/// it: the longest a released or expired Redis lease stays unnoticed (its release rings no
/// doorbell). 20 ms: one small script per waiting host per key, 50 a second.
const GLOBAL_POLL: Duration = Duration::from_millis(20);

pub fn lease(d: &Daemon, peer: &Peer, l: &Lease) -> Reply {
    bump(&d.counters.leases);
    let (ns, key) = (l.namespace.as_str(), l.key.as_slice());
    let refresh = l.flags & LEASE_REFRESH != 0;
    let global = l.flags & LEASE_GLOBAL != 0;
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
        // Granted only if no value came meanwhile: for a miss, any live value; for a refresh,
        // a fresh one (someone refreshed it already).
        let grant = || {
            let present = match d.table.reader().get(ns, key) {
                Some((_, m)) => !(refresh && m.stale),
                None => false,
            };
            (!present).then(|| d.table.change(|t| t.grant(ns, key)))
        };
        match d.leases.acquire(ns, key, peer.conn, lease_for, left, grant) {
            Acquired::Granted { token } => {
                return match &d.tier {
                    Some(t) if global => {
                        take_global(d, t, ns, key, token, lease_for, deadline, refresh)
                    }
                    Some(t) => {
                        // The host's lease alone; its fill is still checked in Redis against
                        // the clock this host has followed the namespace to (0 when unknown:
                        // the check then refuses whatever it cannot prove unchanged).
                        let remote = RemoteGrant {
                            since: t.followed_clock(ns).unwrap_or(0),
                            global: false,
                        };
                        d.leases.set_remote(ns, key, token, remote, lease_for);
                        Reply::LeaseGranted { token }
                    }
                    None => Reply::LeaseGranted { token },
                };
            }
            Acquired::Busy => return Reply::LeaseBusy,
            Acquired::Filled => {
                // The fill landed: answer it from the table. Gone again already (deleted,
                // invalidated, evicted)? Compete for the lease again.
                if let Some(hit) = from_table(d, ns, key) {
                    return hit;
                }
            }
        }
    }
}

fn from_table(d: &Daemon, ns: &str, key: &[u8]) -> Option<Reply> {
    let (value, m) = d.table.reader().get(ns, key)?;
    Some(Reply::FetchHit(cachekit_proto::FetchHit {
        value,
        created_ms: m.created_ms,
        expires_ms: m.expires_ms,
        grace_until_ms: m.grace_until_ms,
        stale: m.stale,
        version: m.version,
    }))
}

/// The host's lease `token` is granted and the caller asked for global scope: take the key's
/// lease in Redis too. Another host holding it computes; this host's holder waits for its
/// fill to reach Redis (bounded by the caller's wait), answers it and fills the table, so
/// the host's waiters get it too. Redis unreachable: the host's lease alone.
#[allow(clippy::too_many_arguments)]
fn take_global(
    d: &Daemon,
    t: &Tier,
    ns: &str,
    key: &[u8],
    token: u64,
    lease_for: Duration,
    deadline: Instant,
    refresh: bool,
) -> Reply {
    // A refresh replaces a record that is there (stale): never read it first.
    let mut check_record = !refresh;
    let mut waited = false;
    loop {
        // Waiting for another host is not this host's holder computing: keep its lease.
        if !d.leases.renew(ns, key, token, lease_for) {
            return Reply::LeaseBusy;
        }
        let seen = t.events_seen();
        match t.take_lease(ns, key, token, lease_for, check_record) {
            RemoteLease::Mine { since } => {
                let remote = RemoteGrant {
                    since,
                    global: true,
                };
                if !d.leases.set_remote(ns, key, token, remote, lease_for) {
                    // The host's lease ran out while Redis was asked: give Redis's back.
                    t.drop_lease(ns, key, token);
                    return Reply::LeaseBusy;
                }
                return Reply::LeaseGranted { token };
            }
            RemoteLease::Unavailable => {
                let remote = RemoteGrant {
                    since: t.followed_clock(ns).unwrap_or(0),
                    global: false,
                };
                d.leases.set_remote(ns, key, token, remote, lease_for);
                return Reply::LeaseGranted { token };
            }
            RemoteLease::Recorded => {
                check_record = false;
                if let hit @ Reply::FetchHit(_) = super::fetch::run(d, ns, key) {
                    // Another host's fill (or a write) is there: the host's waiters read it
                    // from the table, which the fetch filled.
                    d.leases.finish(ns, key, token, true);
                    return hit;
                }
            }
            RemoteLease::Held { left } => {
                if !waited {
                    waited = true;
                    t.count_lease_wait();
                }
                let now = Instant::now();
                if now >= deadline || refresh {
                    d.leases.finish(ns, key, token, false);
                    return Reply::LeaseBusy;
                }
                let nap = GLOBAL_POLL.min(left.max(Duration::from_millis(1)));
                t.wait_for_events(seen, nap.min(deadline - now));
                check_record = true;
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
    let record = || {
        Record::new(
            now_ms(),
            s.ttl_ms,
            s.grace_ms,
            s.tags.clone(),
            s.value.clone(),
        )
    };
    let checked = match (&d.tier, d.leases.remote(ns, key, f.token)) {
        (Some(t), Some(r)) => {
            let token = r.global.then_some(f.token);
            match t.fill_leased(ns, key, &record(), r.since, token) {
                LeasedFill::Stored { clock } => Some(Ok(Remote {
                    existed: false,
                    clock: Some(clock),
                    queued: false,
                })),
                LeasedFill::Refused => None,
                LeasedFill::NotSent => {
                    if let Some(token) = token {
                        t.drop_lease(ns, key, token);
                    }
                    Some(to_redis(d, || WriteOp::Set {
                        ns: s.namespace.clone(),
                        key: s.key.clone(),
                        record: record(),
                    }))
                }
            }
        }
        _ => Some(to_redis(d, || WriteOp::Set {
            ns: s.namespace.clone(),
            key: s.key.clone(),
            record: record(),
        })),
    };
    let Some(remote) = checked else {
        // Redis refused it: the key or one of its tags changed during the computation.
        d.leases.finish(ns, key, f.token, false);
        bump(&c.fills_refused);
        return Reply::Stored {
            stored: false,
            version: 0,
        };
    };
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
    let remote = d.leases.remote(ns, key, token);
    if d.leases.finish(ns, key, token, false) {
        bump(&d.leases.counters.releases);
        if let (Some(t), Some(r)) = (&d.tier, remote) {
            if r.global {
                t.drop_lease(ns, key, token);
            }
        }
    }
    Reply::Ok
}

/// Releases in Redis the global leases of a connection that closed (its holder is gone),
/// so the other hosts need not wait for them to expire.
pub fn drop_global_leases(d: &Daemon, leases: Vec<(String, Vec<u8>, u64)>) {
    if let Some(t) = &d.tier {
        for (ns, key, token) in leases {
            t.drop_lease(&ns, &key, token);
        }
    }
}
