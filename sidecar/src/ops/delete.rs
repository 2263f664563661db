//! DELETE: remove one key, on every host.

use super::{clock_of, to_redis};
use crate::daemon::{bump, Daemon};
use cachekit_proto::{ErrorCode, Reply};
use cachekit_redis::WriteOp;

pub fn run(d: &Daemon, namespace: String, key: Vec<u8>) -> Reply {
    bump(&d.counters.deletes);
    let remote = to_redis(d, || WriteOp::Delete {
        ns: namespace.clone(),
        key: key.clone(),
    });
    let clock = clock_of(&remote);
    let existed = d.table.change(|t| t.delete(&namespace, &key, clock));
    match remote {
        Ok(r) => Reply::Deleted {
            existed: existed || r.existed,
        },
        Err(message) => Reply::error(ErrorCode::Unavailable, message),
    }
}
