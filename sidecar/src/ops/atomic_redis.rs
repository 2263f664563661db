//! The atomic operations with a Redis tier: decided against the record in Redis and committed
//! only if it is still the one read (`Tier::update_then`, `tier/atomic.rs`), then applied to the
//! table with the commit's namespace clock, like a write-through write. Other hosts drop their
//! copies on the commit's event. Nothing here is decided on this host alone: when Redis cannot
//! be reached the answer is UNAVAILABLE.

use super::atomic::fresh;
use crate::daemon::Daemon;
use crate::tier::UpdateOutcome;

use crate::tier::Tier;
use cachekit_proto::{Condition, ErrorCode, FetchHit, Incr, Reply, ScanRequest, SetIf};
use cachekit_redis::decide::{self, When};
use cachekit_redis::Record;
use cachekit_shm::{now_ms, InsertOptions};
use tracing::debug;

/// Puts a record committed at `clock` in the table (with its remaining lifetime); returns the
/// entry's version, 0 when the table kept a later write or could not hold it.
fn apply(d: &Daemon, ns: &str, key: &[u8], record: &Record, clock: u64) -> u64 {
    let now = now_ms();
    let ttl_ms = record.expires_ms.map(|e| e.saturating_sub(now));
    let grace_ms = match (record.expires_ms, record.grace_until_ms) {
        (Some(e), Some(g)) => g.saturating_sub(now.max(e)),
        _ => 0,
    };
    let tags: Vec<&str> = record.tags.iter().map(String::as_str).collect();
    let opts = InsertOptions {
        ttl_ms,
        grace_ms,
        tags: &tags,
    };
    match d
        .table
        .change(|t| t.set(ns, key, &record.value, &opts, Some(clock)))
    {
        Ok(v) => v.unwrap_or(0),
        Err(e) => {
            // Redis has it; this host does without (the next read fills from Redis).
            debug!(namespace = ns, error = %e, "an atomic write is in Redis but not in the table");
            d.table.change(|t| t.delete(ns, key, Some(clock)));
            0
        }
    }
}

/// The reply to an outcome that wrote nothing here. A failure may hide a commit that did land
/// (a timeout while committing), and this host skips its own events: its copy of the key goes,
/// and the next read asks Redis.
fn failed(d: &Daemon, ns: &str, key: &[u8], outcome: UpdateOutcome) -> Reply {
    match outcome {
        UpdateOutcome::Failed(m) => {
            d.table.change(|t| t.delete(ns, key, None));
            Reply::error(ErrorCode::Unavailable, m)
        }
        UpdateOutcome::Refused(m) => Reply::error(ErrorCode::InvalidArgument, m),
        other => Reply::error(
            ErrorCode::Internal,
            format!("unexpected outcome of an atomic operation: {other:?}"),
        ),
    }
}

pub fn set_if(d: &Daemon, t: &Tier, s: &SetIf) -> Reply {
    let set = &s.set;
    let (ns, key) = (set.namespace.as_str(), set.key.as_slice());
    // A version is this host's: it names the value this host's table holds. Across hosts the
    // cas compares that value with the record's.
    let expected = match s.condition {
        Condition::Version(v) => match d.table.read(|tb| fresh(tb, ns, key, now_ms())) {
            Some(e) if e.stamp == v && v != 0 => Some(e.value),
            _ => {
                return Reply::Stored {
                    stored: false,
                    version: 0,
                }
            }
        },
        Condition::Absent | Condition::Present => None,
    };
    let when = match (&s.condition, &expected) {
        (Condition::Absent, _) => When::Absent,
        (Condition::Present, _) => When::Present,
        (Condition::Version(_), value) => When::Holds(value.as_deref().unwrap_or_default()),
    };
    let mut decide = decide::set_if(when, |now| {
        Record::new(
            now,
            set.ttl_ms,
            set.grace_ms,
            set.tags.clone(),
            set.value.clone(),
        )
    });
    t.update_then(ns, key, &mut decide, |outcome| match outcome {
        UpdateOutcome::Written { clock, record, .. } => Reply::Stored {
            stored: true,
            version: apply(d, ns, key, &record, clock),
        },
        // Stored with a TTL of 0: expired at once, so deleted (a compare-and-delete).
        UpdateOutcome::Deleted { clock, .. } => {
            d.table.change(|tb| tb.delete(ns, key, Some(clock)));
            Reply::Stored {
                stored: true,
                version: 0,
            }
        }
        UpdateOutcome::Kept(_) => Reply::Stored {
            stored: false,
            version: 0,
        },
        other => failed(d, ns, key, other),
    })
}

pub fn incr(d: &Daemon, t: &Tier, i: &Incr) -> Reply {
    let (ns, key) = (i.namespace.as_str(), i.key.as_slice());
    let result = std::cell::Cell::new(None);
    let mut decide = decide::incr(&i.key, i.delta, i.initial, i.ttl_ms, &result);
    t.update_then(ns, key, &mut decide, |outcome| match outcome {
        UpdateOutcome::Written { clock, record, .. } => Reply::Counter {
            present: true,
            value: result.get().unwrap_or_default(),
            version: apply(d, ns, key, &record, clock),
        },
        UpdateOutcome::Kept(_) => Reply::Counter {
            present: false,
            value: 0,
            version: 0,
        },
        // A counter created with a TTL of 0 expired at once.
        UpdateOutcome::Deleted { clock, .. } => {
            d.table.change(|tb| tb.delete(ns, key, Some(clock)));
            Reply::Counter {
                present: true,
                value: result.get().unwrap_or_default(),
                version: 0,
            }
        }
        other => failed(d, ns, key, other),
    })
}

pub fn take(d: &Daemon, t: &Tier, ns: &str, key: &[u8]) -> Reply {
    let mut decide = decide::take();
    t.update_then(ns, key, &mut decide, |outcome| match outcome {
        UpdateOutcome::Deleted { clock, prev } => {
            d.table.change(|tb| tb.delete(ns, key, Some(clock)));
            match prev {
                Some(r) => Reply::FetchHit(FetchHit {
                    stale: false,
                    created_ms: r.created_ms,
                    expires_ms: r.expires_ms,
                    grace_until_ms: r.grace_until_ms,
                    value: r.value,
                    version: 0,
                }),
                None => Reply::FetchMiss,
            }
        }
        UpdateOutcome::Kept(_) => Reply::FetchMiss,
        other => failed(d, ns, key, other),
    })
}

pub fn touch(d: &Daemon, t: &Tier, ns: &str, key: &[u8], ttl_ms: Option<u64>) -> Reply {
    let mut decide = decide::touch(ttl_ms);
    t.update_then(ns, key, &mut decide, |outcome| match outcome {
        UpdateOutcome::Written { clock, record, .. } => {
            apply(d, ns, key, &record, clock);
            Reply::Found { found: true }
        }
        // A TTL of 0: expired at once, so deleted; it was there.
        UpdateOutcome::Deleted { clock, prev } => {
            d.table.change(|tb| tb.delete(ns, key, Some(clock)));
            Reply::Found {
                found: prev.is_some(),
            }
        }
        UpdateOutcome::Kept(_) => Reply::Found { found: false },
        other => failed(d, ns, key, other),
    })
}

/// One page of DELETE_MATCHING in Redis: `(next Redis cursor, records deleted)`. The keys
/// deleted there also leave this host's table, each with its delete's clock.
pub fn delete_matching(
    d: &Daemon,
    t: &Tier,
    s: &ScanRequest,
    redis_cursor: u64,
) -> Result<(u64, u64), String> {
    let sel = &s.selection;
    let tag = (!sel.tag.is_empty()).then_some(sel.tag.as_str());
    let page = t.delete_matching(&s.namespace, redis_cursor, &sel.pattern, tag, sel.exact)?;
    d.table.change(|tb| {
        for (key, clock) in &page.keys {
            tb.delete(&s.namespace, key, Some(*clock));
        }
    });
    Ok((page.cursor, page.keys.len() as u64))
}
