//! SET: store a value, on this host and (write-through or queued) in Redis.

use super::{to_redis, Remote};
use crate::changes::Snapshot;
use crate::daemon::{bump, Daemon};
use crate::table::Table;
use cachekit_proto::{ErrorCode, Reply, Set};
use cachekit_redis::{Record, WriteOp};
use cachekit_shm::{now_ms, InsertError, InsertOptions};

pub fn run(d: &Daemon, s: &Set) -> Reply {
    bump(&d.counters.sets);
    // What the table knew of the key before the write left for Redis: should it be queued,
    // it is kept on this host only if nothing changed the key since (see `set_queued`).
    let before = d
        .tier
        .as_ref()
        .map(|_| d.table.snapshot(&s.namespace, &s.key));
    // The tags were checked at decode (proto), before anything reaches Redis.
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
    let stored = d
        .table
        .change(|t| store(t, &remote, before, &s.namespace, &s.key, &s.value, &opts));
    match (stored, remote) {
        (Err(e), _) => insert_error(d, e),
        (Ok(()), Err(message)) => Reply::error(ErrorCode::Unavailable, message),
        (Ok(()), Ok(_)) => Reply::Ok,
    }
}

/// Puts a set into this host's table once the Redis tier has answered `remote` (SET and each
/// item of SET_MANY): not in Redis, neither the old value nor the new one stays here; queued,
/// it is kept only if nothing changed the key since `before` (`Table::set_queued`); written
/// through, it is stored at its clock.
pub(super) fn store(
    t: &mut Table,
    remote: &Result<Remote, String>,
    before: Option<Snapshot>,
    ns: &str,
    key: &[u8],
    value: &[u8],
    opts: &InsertOptions<'_>,
) -> Result<(), InsertError> {
    match remote {
        Err(_) => {
            t.delete(ns, key, None);
            Ok(())
        }
        Ok(r) => match before.filter(|_| r.queued) {
            Some(before) => t.set_queued(before, ns, key, value, opts).map(|_| ()),
            None => t.set(ns, key, value, opts, r.clock).map(|_| ()),
        },
    }
}

pub fn insert_error(d: &Daemon, e: InsertError) -> Reply {
    let code = match e {
        InsertError::ValueTooLarge { len, .. } => {
            return Reply::error(
                ErrorCode::TooLarge,
                format!(
                    "value of {len} bytes (encoded) is over max_value_bytes = {}; raise it with cachekitd --max-value-bytes",
                    d.cfg.max_value_bytes
                ),
            )
        }
        InsertError::KeyTooLarge { .. } | InsertError::NamespaceTooLarge { .. } => {
            ErrorCode::TooLarge
        }
        InsertError::Tag(_) | InsertError::TooManyTags { .. } => ErrorCode::InvalidArgument,
    };
    Reply::error(code, e.to_string())
}
