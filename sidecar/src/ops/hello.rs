//! HELLO: the handshake. The answer carries the segment's sizes and the limits; the socket
//! sends the two memfds with it (see `socket.rs`).

use crate::daemon::Daemon;
use cachekit_proto::{ErrorCode, HelloOk, Reply, PROTOCOL_VERSION};
use std::sync::atomic::Ordering;

/// The HELLO_OK for a client speaking protocol versions `min..=max`, or the ERROR to send
/// before closing.
pub fn hello_ok(d: &Daemon, min: u8, max: u8) -> Result<HelloOk, Reply> {
    if !(min..=max).contains(&PROTOCOL_VERSION) {
        return Err(Reply::error(
            ErrorCode::UnsupportedVersion,
            format!("client speaks protocol versions {min}..={max}, this cachekitd speaks {PROTOCOL_VERSION}; upgrade the older side"),
        ));
    }
    Ok(HelloOk {
        version: PROTOCOL_VERSION,
        daemon_epoch: d.epoch,
        layout_version: cachekit_shm::layout::LAYOUT_VERSION as u32,
        segment_size: d.table_bytes,
        client_area_size: d.client_area_bytes,
        client_slot: d.next_slot.fetch_add(1, Ordering::Relaxed)
            % cachekit_shm::layout::CLIENT_RECORDS as u32,
        heartbeat_timeout_ms: d.cfg.heartbeat_timeout.as_millis() as u32,
        fd_count: 2,
        limits: d.limits,
    })
}
