//! What the daemon does with each request: the permission check, then one operation per
//! file. A new request is a new file here and one line in [`handle`].
//!
//! Each write operation follows the same path: the Redis tier first (write-through, or
//! queued), then one [`change`](crate::table::SharedTable::change) of the table carrying the
//! write's namespace clock, so fills from Redis that raced it are dropped.

mod atomic;
mod atomic_redis;
mod batch;
mod clear;
mod delete;
mod fetch;
mod hello;
mod invalidate;
mod lease;
mod set;
mod stats;
mod verify;
mod walk;

pub use hello::hello_ok;
pub use lease::drop_global_leases;
pub use stats::counters;

use crate::daemon::{bump, Daemon};
use crate::peer::Peer;
use crate::tier::WriteOutcome;
use cachekit_proto::{ErrorCode, Reply, Request};
use cachekit_redis::WriteOp;

/// Answers one request (anything but the connection's first HELLO, see `socket.rs`).
pub fn handle(d: &Daemon, peer: &Peer, req: Request) -> Reply {
    let c = &d.counters;
    bump(&c.requests);
    if req.is_write() && !peer.may_write {
        bump(&c.not_permitted);
        return Reply::error(
            ErrorCode::NotPermitted,
            format!(
                "uid {} gid {} may not write to this cache; add it to writer_uids or writer_gids in the cachekitd configuration",
                peer.uid, peer.gid
            ),
        );
    }
    // Numbered until the table has the write (the follower's stream positions, `tier/`).
    // LEASE and LEASE_RELEASE append no event, and a LEASE may wait long.
    let writes_events =
        req.is_write() && !matches!(req, Request::Lease(_) | Request::LeaseRelease { .. });
    let _writing = match &d.tier {
        Some(t) if writes_events => Some(t.writing()),
        _ => None,
    };
    let reply = match req {
        Request::Hello(_) => Reply::error(
            ErrorCode::UnexpectedMessage,
            "HELLO was already sent on this connection",
        ),
        Request::Set(s) => set::run(d, &s),
        Request::Delete { namespace, key } => delete::run(d, namespace, key),
        Request::Invalidate {
            namespace,
            tags,
            exact,
        } => invalidate::run(d, namespace, tags, exact),
        Request::Clear { namespace } => clear::run(d, namespace),
        Request::Fetch { namespace, key } => fetch::run(d, &namespace, &key),
        Request::Stats => stats::stats(d),
        Request::Metrics => Reply::Metrics {
            text: crate::metrics::render(d),
        },
        Request::Ping => stats::ping(d),
        Request::SetIf(s) => atomic::set_if(d, &s),
        Request::Incr(i) => atomic::incr(d, &i),
        Request::Take { namespace, key } => atomic::take(d, &namespace, &key),
        Request::Touch {
            namespace,
            key,
            ttl_ms,
        } => atomic::touch(d, &namespace, &key, ttl_ms),
        Request::Scan(s) => walk::scan(d, &s),
        Request::DeleteMatching(s) => walk::delete_matching(d, &s),
        Request::Namespaces => walk::namespaces(d),
        Request::Verify(v) => verify::run(d, &v),
        Request::Lease(l) => lease::lease(d, peer, &l),
        Request::LeaseFill(f) => lease::fill(d, &f),
        Request::LeaseRelease {
            namespace,
            key,
            token,
        } => lease::release(d, &namespace, &key, token),
        Request::SetMany(_) | Request::DeleteMany(_) if !hello::batch_writes() => Reply::error(
            ErrorCode::BadFrame,
            "this cachekitd does not take batch writes",
        ),
        Request::SetMany(s) => batch::set_many(d, &s),
        Request::DeleteMany(r) => batch::delete_many(d, &r),
    };
    if matches!(reply, Reply::Error { .. }) {
        bump(&c.errors);
    }
    reply
}

/// What Redis said of a write.
struct Remote {
    /// Whether Redis had the key (a delete).
    existed: bool,
    /// The write's namespace clock value; `None` when queued, or without Redis.
    clock: Option<u64>,
    /// Queued for Redis: it may reach Redis (or have reached it, unseen) at any time, at a
    /// clock not known here (see [`Table::set_queued`](crate::table::Table::set_queued)).
    queued: bool,
}

impl Remote {
    /// Nothing sent: no Redis tier, or nothing to send.
    const LOCAL: Remote = Remote {
        existed: false,
        clock: None,
        queued: false,
    };
}

/// Sends a write to the Redis tier, if there is one: `Err` with the message when it could
/// neither be written nor queued.
fn to_redis(d: &Daemon, op: impl FnOnce() -> WriteOp) -> Result<Remote, String> {
    let Some(t) = &d.tier else {
        return Ok(Remote::LOCAL);
    };
    match t.write(op()) {
        WriteOutcome::Done { existed, clock } => Ok(Remote {
            existed,
            clock: Some(clock),
            queued: false,
        }),
        WriteOutcome::Queued => Ok(Remote {
            queued: true,
            ..Remote::LOCAL
        }),
        WriteOutcome::Failed(message) => Err(message),
    }
}

/// The clock of a write that reached Redis, `None` otherwise.
fn clock_of(remote: &Result<Remote, String>) -> Option<u64> {
    remote.as_ref().ok().and_then(|r| r.clock)
}
