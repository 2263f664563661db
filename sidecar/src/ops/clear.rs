//! CLEAR: drop every entry of a namespace, on every host.

use super::{clock_of, to_redis};
use crate::daemon::{bump, Daemon};
use cachekit_proto::{ErrorCode, Reply};
use cachekit_redis::WriteOp;

pub fn run(d: &Daemon, namespace: String) -> Reply {
    bump(&d.counters.clears);
    let remote = to_redis(d, || WriteOp::Clear {
        ns: namespace.clone(),
    });
    let clock = clock_of(&remote);
    d.table.change(|t| t.clear(&namespace, clock));
    match remote {
        Ok(_) => Reply::Ok,
        Err(message) => Reply::error(ErrorCode::Unavailable, message),
    }
}
