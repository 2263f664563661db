//! INVALIDATE: every entry of a namespace carrying one of the tags (or, hierarchically, a
//! tag below one of them) becomes a miss, on every host.

use super::{clock_of, to_redis};
use crate::daemon::{bump, Daemon};
use cachekit_proto::{ErrorCode, Reply};
use cachekit_redis::WriteOp;
use cachekit_shm::InvalidateMode;

pub fn run(d: &Daemon, namespace: String, tags: Vec<String>, exact: bool) -> Reply {
    bump(&d.counters.invalidates);
    // Check every tag first, so an invalid one leaves nothing half done (nor sent to Redis).
    if let Some(e) = tags
        .iter()
        .find_map(|t| cachekit_shm::validate_tag(t).err())
    {
        return Reply::error(ErrorCode::InvalidArgument, e.to_string());
    }
    let mode = match exact {
        true => InvalidateMode::Exact,
        false => InvalidateMode::Hierarchical,
    };
    let remote = match tags.is_empty() {
        true => Ok(super::Remote::LOCAL),
        false => to_redis(d, || WriteOp::Invalidate {
            ns: namespace.clone(),
            tags: tags.clone(),
            exact,
        }),
    };
    let clock = clock_of(&remote);
    if let Err(e) = d
        .table
        .change(|t| t.invalidate(&namespace, &tags, mode, clock))
    {
        return Reply::error(ErrorCode::InvalidArgument, e.to_string());
    }
    match remote {
        Ok(_) => Reply::Ok,
        Err(message) => Reply::error(ErrorCode::Unavailable, message),
    }
}
