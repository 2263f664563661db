//! HELLO: the handshake. The answer carries the segment's sizes and the limits; the socket
//! sends the two memfds with it (see `socket.rs`).

use crate::daemon::Daemon;
use crate::slots::{Lease, NO_RECORD};
use cachekit_proto::{ErrorCode, HelloOk, Reply, HELLO_FLAG_SECOND_TIER, PROTOCOL_VERSION};

/// The HELLO_OK for a client (process `pid`) speaking protocol versions `min..=max`, with
/// the client-area record it owns until the connection closes (`None` past
/// `CLIENT_RECORDS` live connections: `client_slot` is then `NO_RECORD`), or the ERROR to
/// send before closing.
pub fn hello_ok(d: &Daemon, pid: i32, min: u8, max: u8) -> Result<(HelloOk, Option<Lease>), Reply> {
    if !(min..=max).contains(&PROTOCOL_VERSION) {
        return Err(Reply::error(
            ErrorCode::UnsupportedVersion,
            format!("client speaks protocol versions {min}..={max}, this cachekitd speaks {PROTOCOL_VERSION}; upgrade the older side"),
        ));
    }
    let lease = d.slots.claim(pid as u64);
    let ok = HelloOk {
        version: PROTOCOL_VERSION,
        daemon_epoch: d.epoch,
        layout_version: cachekit_shm::layout::LAYOUT_VERSION as u32,
        segment_size: d.table_bytes,
        client_area_size: d.client_area_bytes,
        client_slot: lease.as_ref().map_or(NO_RECORD, Lease::record),
        heartbeat_timeout_ms: d.cfg.heartbeat_timeout.as_millis() as u32,
        fd_count: 2,
        limits: d.limits,
        flags: if d.tier.is_some() {
            HELLO_FLAG_SECOND_TIER
        } else {
            0
        },
    };
    Ok((ok, lease))
}
