//! HELLO: the handshake. The answer carries the segment's sizes and the limits; the socket
//! sends the memfds with it (see `socket.rs`): the table, the client area and, when the
//! process has one, its own counters file (`slots.rs`).

use crate::daemon::Daemon;
use crate::slots::{Lease, NO_RECORD};
use cachekit_proto::{
    ErrorCode, HelloOk, Reply, HELLO_FLAG_BATCH_WRITES, HELLO_FLAG_SECOND_TIER, PROTOCOL_VERSION,
};

/// The HELLO_OK for a client (process `pid`) speaking protocol versions `min..=max`, with
/// the hold on its process's counters file that this connection keeps until it closes
/// (`None` past `CLIENT_RECORDS` processes: `client_slot` is then `NO_RECORD` and only two
/// descriptors go), or the ERROR to send before closing.
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
        fd_count: if lease.is_some() { 3 } else { 2 },
        limits: d.limits,
        flags: if d.tier.is_some() {
            HELLO_FLAG_SECOND_TIER
        } else {
            0
        } | if batch_writes() {
            HELLO_FLAG_BATCH_WRITES
        } else {
            0
        },
    };
    Ok((ok, lease))
}

/// Whether this daemon takes SET_MANY and DELETE_MANY: always, except when a test makes it
/// behave as a daemon from before them (`CACHEKIT_TEST_NO_BATCH_WRITES`, builds with debug
/// assertions only): the bit is not sent and the requests are refused.
pub fn batch_writes() -> bool {
    !crate::testhook::flag("CACHEKIT_TEST_NO_BATCH_WRITES")
}
