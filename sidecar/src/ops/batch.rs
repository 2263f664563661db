//! SET_MANY and DELETE_MANY: the items of one request go through the write path of SET or
//! DELETE one after the other on the Redis side (write-through or queued), then into the
//! table within one acquisition of its writer lock, so no other write lands between two
//! items. Each item gets its own result: one the table or Redis refuses does not lose the
//! others.

use super::{
    set::{insert_error, store},
    to_redis, Remote,
};
use crate::daemon::{bump, Daemon};
use cachekit_proto::{DeleteMany, ErrorCode, ItemResult, Reply, SetMany};
use cachekit_redis::{Record, WriteOp};
use cachekit_shm::{now_ms, InsertOptions};

pub fn set_many(d: &Daemon, s: &SetMany) -> Reply {
    let now = now_ms();
    // As in SET: what the table knew of each key before its write left for Redis, so that a
    // queued item is kept on this host only if nothing changed the key since.
    let mut befores = Vec::with_capacity(s.items.len());
    let remotes: Vec<Result<Remote, String>> = s
        .items
        .iter()
        .map(|(key, value)| {
            bump(&d.counters.sets);
            befores.push(d.tier.as_ref().map(|_| d.table.snapshot(&s.namespace, key)));
            to_redis(d, || WriteOp::Set {
                ns: s.namespace.clone(),
                key: key.clone(),
                record: Record::new(now, s.ttl_ms, s.grace_ms, s.tags.clone(), value.clone()),
            })
        })
        .collect();
    let tags: Vec<&str> = s.tags.iter().map(String::as_str).collect();
    let opts = InsertOptions {
        ttl_ms: s.ttl_ms,
        grace_ms: s.grace_ms,
        tags: &tags,
    };
    let stored: Vec<_> = d.table.change(|t| {
        s.items
            .iter()
            .zip(&remotes)
            .zip(befores)
            .map(|(((key, value), remote), before)| {
                store(t, remote, before, &s.namespace, key, value, &opts)
            })
            .collect()
    });
    let results = stored
        .into_iter()
        .zip(remotes)
        .map(|(stored, remote)| match (stored, remote) {
            (Err(e), _) => failed(insert_error(d, e)),
            (Ok(()), Err(message)) => ItemResult::failed(ErrorCode::Unavailable, message),
            (Ok(()), Ok(_)) => ItemResult::done(false),
        })
        .collect();
    Reply::BatchResults { results }
}

pub fn delete_many(d: &Daemon, r: &DeleteMany) -> Reply {
    let remotes: Vec<Result<Remote, String>> = r
        .keys
        .iter()
        .map(|key| {
            bump(&d.counters.deletes);
            to_redis(d, || WriteOp::Delete {
                ns: r.namespace.clone(),
                key: key.clone(),
            })
        })
        .collect();
    let existed: Vec<bool> = d.table.change(|t| {
        r.keys
            .iter()
            .zip(&remotes)
            .map(|(key, remote)| {
                let clock = remote.as_ref().ok().and_then(|r| r.clock);
                t.delete(&r.namespace, key, clock)
            })
            .collect()
    });
    let results = existed
        .into_iter()
        .zip(remotes)
        .map(|(existed, remote)| match remote {
            Ok(remote) => ItemResult::done(existed || remote.existed),
            Err(message) => ItemResult::failed(ErrorCode::Unavailable, message),
        })
        .collect();
    Reply::BatchResults { results }
}

/// An ERROR reply as one item's result.
fn failed(reply: Reply) -> ItemResult {
    match reply {
        Reply::Error { code, message } => ItemResult::failed(code, message),
        other => ItemResult::failed(
            ErrorCode::Internal,
            format!("unexpected {} for a batch item", other.kind()),
        ),
    }
}
