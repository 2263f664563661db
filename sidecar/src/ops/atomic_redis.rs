//! The atomic operations with a Redis tier: decided against the record in Redis and committed
//! only if it is still the one read (see `tier/atomic.rs`), then applied to the table.

use crate::daemon::Daemon;
use crate::tier::Tier;
use cachekit_proto::{ErrorCode, Incr, Reply, SetIf};

fn pending() -> Reply {
    Reply::error(
        ErrorCode::Unavailable,
        "atomic operations through the Redis tier are not wired yet",
    )
}

pub fn set_if(_d: &Daemon, _t: &Tier, _s: &SetIf) -> Reply {
    pending()
}

pub fn incr(_d: &Daemon, _t: &Tier, _i: &Incr) -> Reply {
    pending()
}

pub fn take(_d: &Daemon, _t: &Tier, _ns: &str, _key: &[u8]) -> Reply {
    pending()
}

pub fn touch(_d: &Daemon, _t: &Tier, _ns: &str, _key: &[u8], _ttl_ms: Option<u64>) -> Reply {
    pending()
}

pub fn delete_matching(
    _t: &Tier,
    _s: &cachekit_proto::ScanRequest,
    _redis_cursor: u64,
) -> Result<(u64, u64), String> {
    Err("deleting by pattern in Redis is not wired yet".into())
}
