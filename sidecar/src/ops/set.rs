//! SET: store a value, on this host and (write-through or queued) in Redis.

use super::to_redis;
use crate::daemon::{bump, Daemon};
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
    let stored = d.table.change(|t| match &remote {
        // Not in Redis: keep neither the old value nor the new one on this host.
        Err(_) => {
            t.delete(&s.namespace, &s.key, None);
            Ok(())
        }
        Ok(r) => match before.filter(|_| r.queued) {
            Some(before) => t
                .set_queued(before, &s.namespace, &s.key, &s.value, &opts)
                .map(|_| ()),
            None => t
                .set(&s.namespace, &s.key, &s.value, &opts, r.clock)
                .map(|_| ()),
        },
    });
    match (stored, remote) {
        (Err(e), _) => insert_error(d, e),
        (Ok(()), Err(message)) => Reply::error(ErrorCode::Unavailable, message),
        (Ok(()), Ok(_)) => Reply::Ok,
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
