//! The fixed 12-byte frame header and the message kinds.

use std::fmt;

use crate::error::ProtoError;
use crate::limits::Limits;

/// The protocol version this build writes into every frame header.
pub const PROTOCOL_VERSION: u8 = 1;
/// The oldest protocol version this build can decode.
pub const MIN_PROTOCOL_VERSION: u8 = 1;
/// Bytes 4..6 of every header: `"CK"` (0x43 0x4B), read as a little-endian u16.
pub const MAGIC: u16 = u16::from_le_bytes(*b"CK");
/// Length of the fixed frame header in bytes.
pub const HEADER_LEN: usize = 12;

// Offsets of the header fields; they follow the table in the crate documentation.
const OFF_BODY_LEN: usize = 0;
const OFF_MAGIC: usize = 4;
const OFF_VERSION: usize = 6;
const OFF_KIND: usize = 7;
const OFF_REQUEST_ID: usize = 8;
const _: () = assert!(OFF_REQUEST_ID + 4 == HEADER_LEN);

/// A message kind: byte 7 of the header. Requests are `0x01..=0x7F`, replies `0x80..=0xFF`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    /// Request HELLO: open a session, negotiate the version.
    Hello = 0x01,
    /// Request SET: store a value.
    Set = 0x02,
    /// Request DELETE: remove one key.
    Delete = 0x03,
    /// Request INVALIDATE: invalidate entries by tag.
    Invalidate = 0x04,
    /// Request CLEAR: drop a whole namespace.
    Clear = 0x05,
    /// Request FETCH: the miss path, ask the daemon to look up or fill a key.
    Fetch = 0x06,
    /// Request STATS: read the daemon's counters.
    Stats = 0x07,
    /// Request PING: liveness check.
    Ping = 0x08,
    /// Request SET_IF: store a value only if a condition holds (add, replace, cas).
    SetIf = 0x09,
    /// Request INCR: add a signed delta to an integer counter.
    Incr = 0x0A,
    /// Request TAKE: remove one key and answer its value (get and delete).
    Take = 0x0B,
    /// Request TOUCH: give an entry a new time to live (or none).
    Touch = 0x0C,
    /// Request SCAN: one page of a namespace's entries, by key pattern and/or tag.
    Scan = 0x0D,
    /// Request DELETE_MATCHING: delete one page of a namespace's entries, by pattern and/or tag.
    DeleteMatching = 0x0E,
    /// Request NAMESPACES: the namespaces with entries, their entry counts and bytes.
    Namespaces = 0x0F,
    /// Request LEASE: the right to compute a missing (or stale) value, or the value once
    /// another caller's computation fills it.
    Lease = 0x10,
    /// Request LEASE_FILL: the lease holder stores the value it computed.
    LeaseFill = 0x11,
    /// Request LEASE_RELEASE: the lease holder gives the lease up without a value.
    LeaseRelease = 0x12,
    /// Request VERIFY: one page of an integrity walk of the live table (with `repair`, drops
    /// the damaged entries).
    Verify = 0x13,
    /// Request SET_MANY: store values for many keys of one namespace, in one writer turn.
    SetMany = 0x14,
    /// Request DELETE_MANY: remove many keys of one namespace, in one writer turn.
    DeleteMany = 0x15,
    /// Request METRICS: the daemon's metrics as OpenMetrics text.
    Metrics = 0x20,
    /// Reply HELLO_OK: session parameters (segment fds ride alongside by SCM_RIGHTS).
    HelloOk = 0x81,
    /// Reply OK: the write was applied.
    Ok = 0x82,
    /// Reply DELETED: whether the key existed.
    Deleted = 0x83,
    /// Reply FETCH_HIT: the value and its times.
    FetchHit = 0x84,
    /// Reply FETCH_MISS: neither the table nor Redis has the key.
    FetchMiss = 0x85,
    /// Reply STATS_REPLY: named counters.
    StatsReply = 0x86,
    /// Reply PONG: the daemon's epoch and heartbeat.
    Pong = 0x87,
    /// Reply STORED: whether a SET_IF stored, and the new entry's version.
    Stored = 0x88,
    /// Reply COUNTER: the counter's value after an INCR.
    Counter = 0x89,
    /// Reply FOUND: whether a TOUCH found the key.
    Found = 0x8A,
    /// Reply SCAN_PAGE: a page of entries and the cursor of the next.
    ScanPage = 0x8B,
    /// Reply DELETED_MANY: how many entries a DELETE_MATCHING page deleted, and the next cursor.
    DeletedMany = 0x8C,
    /// Reply NAMESPACE_LIST: namespaces with their entry counts and bytes.
    NamespaceList = 0x8D,
    /// Reply LEASE_GRANTED: the caller holds the lease; it computes, then fills or releases.
    LeaseGranted = 0x8E,
    /// Reply LEASE_BUSY: another caller holds the lease and no value came within the wait.
    LeaseBusy = 0x8F,
    /// Reply VERIFY_REPORT: counts by reason, a sample of damaged entries, the next cursor.
    VerifyReport = 0x90,
    /// Reply BATCH_RESULTS: one result per item of a SET_MANY or DELETE_MANY.
    BatchResults = 0x91,
    /// Reply METRICS_TEXT: the answer to METRICS.
    MetricsText = 0xA0,
    /// Reply ERROR: a code and a message.
    Error = 0xFF,
}

impl Kind {
    /// Every kind, in wire order.
    pub const ALL: [Kind; 41] = [
        Kind::Hello,
        Kind::Set,
        Kind::Delete,
        Kind::Invalidate,
        Kind::Clear,
        Kind::Fetch,
        Kind::Stats,
        Kind::Ping,
        Kind::SetIf,
        Kind::Incr,
        Kind::Take,
        Kind::Touch,
        Kind::Scan,
        Kind::DeleteMatching,
        Kind::Namespaces,
        Kind::Lease,
        Kind::LeaseFill,
        Kind::LeaseRelease,
        Kind::Verify,
        Kind::SetMany,
        Kind::DeleteMany,
        Kind::Metrics,
        Kind::HelloOk,
        Kind::Ok,
        Kind::Deleted,
        Kind::FetchHit,
        Kind::FetchMiss,
        Kind::StatsReply,
        Kind::Pong,
        Kind::Stored,
        Kind::Counter,
        Kind::Found,
        Kind::ScanPage,
        Kind::DeletedMany,
        Kind::NamespaceList,
        Kind::LeaseGranted,
        Kind::LeaseBusy,
        Kind::VerifyReport,
        Kind::BatchResults,
        Kind::MetricsText,
        Kind::Error,
    ];

    /// The kind with this wire byte, if any.
    pub const fn from_u8(byte: u8) -> Option<Kind> {
        Some(match byte {
            0x01 => Kind::Hello,
            0x02 => Kind::Set,
            0x03 => Kind::Delete,
            0x04 => Kind::Invalidate,
            0x05 => Kind::Clear,
            0x06 => Kind::Fetch,
            0x07 => Kind::Stats,
            0x08 => Kind::Ping,
            0x09 => Kind::SetIf,
            0x0A => Kind::Incr,
            0x0B => Kind::Take,
            0x0C => Kind::Touch,
            0x0D => Kind::Scan,
            0x0E => Kind::DeleteMatching,
            0x0F => Kind::Namespaces,
            0x10 => Kind::Lease,
            0x11 => Kind::LeaseFill,
            0x12 => Kind::LeaseRelease,
            0x13 => Kind::Verify,
            0x14 => Kind::SetMany,
            0x15 => Kind::DeleteMany,
            0x20 => Kind::Metrics,
            0x81 => Kind::HelloOk,
            0x82 => Kind::Ok,
            0x83 => Kind::Deleted,
            0x84 => Kind::FetchHit,
            0x85 => Kind::FetchMiss,
            0x86 => Kind::StatsReply,
            0x87 => Kind::Pong,
            0x88 => Kind::Stored,
            0x89 => Kind::Counter,
            0x8A => Kind::Found,
            0x8B => Kind::ScanPage,
            0x8C => Kind::DeletedMany,
            0x8D => Kind::NamespaceList,
            0x8E => Kind::LeaseGranted,
            0x8F => Kind::LeaseBusy,
            0x90 => Kind::VerifyReport,
            0x91 => Kind::BatchResults,
            0xA0 => Kind::MetricsText,
            0xFF => Kind::Error,
            _ => return None,
        })
    }

    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether a client sends this kind (`true`) or the daemon does (`false`).
    pub const fn is_request(self) -> bool {
        (self as u8) < 0x80
    }

    /// The protocol name, as in the documentation tables (`"FETCH_HIT"`).
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Hello => "HELLO",
            Kind::Set => "SET",
            Kind::Delete => "DELETE",
            Kind::Invalidate => "INVALIDATE",
            Kind::Clear => "CLEAR",
            Kind::Fetch => "FETCH",
            Kind::Stats => "STATS",
            Kind::Ping => "PING",
            Kind::SetIf => "SET_IF",
            Kind::Incr => "INCR",
            Kind::Take => "TAKE",
            Kind::Touch => "TOUCH",
            Kind::Scan => "SCAN",
            Kind::DeleteMatching => "DELETE_MATCHING",
            Kind::Namespaces => "NAMESPACES",
            Kind::Lease => "LEASE",
            Kind::LeaseFill => "LEASE_FILL",
            Kind::LeaseRelease => "LEASE_RELEASE",
            Kind::Verify => "VERIFY",
            Kind::SetMany => "SET_MANY",
            Kind::DeleteMany => "DELETE_MANY",
            Kind::Metrics => "METRICS",
            Kind::HelloOk => "HELLO_OK",
            Kind::Ok => "OK",
            Kind::Deleted => "DELETED",
            Kind::FetchHit => "FETCH_HIT",
            Kind::FetchMiss => "FETCH_MISS",
            Kind::StatsReply => "STATS_REPLY",
            Kind::Pong => "PONG",
            Kind::Stored => "STORED",
            Kind::Counter => "COUNTER",
            Kind::Found => "FOUND",
            Kind::ScanPage => "SCAN_PAGE",
            Kind::DeletedMany => "DELETED_MANY",
            Kind::NamespaceList => "NAMESPACE_LIST",
            Kind::LeaseGranted => "LEASE_GRANTED",
            Kind::LeaseBusy => "LEASE_BUSY",
            Kind::VerifyReport => "VERIFY_REPORT",
            Kind::BatchResults => "BATCH_RESULTS",
            Kind::MetricsText => "METRICS_TEXT",
            Kind::Error => "ERROR",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A decoded, checked frame header: the magic, version, kind and length were valid under the
/// [`Limits`] it was decoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Length of the body that follows the header, in bytes.
    pub body_len: u32,
    /// Protocol version of the body layout.
    pub version: u8,
    /// Message kind.
    pub kind: Kind,
    /// Request id chosen by the client, echoed by the reply.
    pub request_id: u32,
}

impl Header {
    /// Length of the whole frame: header plus body.
    pub fn frame_len(&self) -> usize {
        // Cannot saturate for a parsed header: it passed `max_frame_bytes`, itself a usize.
        HEADER_LEN.saturating_add(self.body_len as usize)
    }

    /// The header as bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[OFF_BODY_LEN..OFF_MAGIC].copy_from_slice(&self.body_len.to_le_bytes());
        b[OFF_MAGIC..OFF_VERSION].copy_from_slice(&MAGIC.to_le_bytes());
        b[OFF_VERSION] = self.version;
        b[OFF_KIND] = self.kind.as_u8();
        b[OFF_REQUEST_ID..HEADER_LEN].copy_from_slice(&self.request_id.to_le_bytes());
        b
    }

    /// Parses and checks a header: magic, then version, then kind, then the announced frame length
    /// against `limits.max_frame_bytes`.
    pub fn parse(bytes: &[u8; HEADER_LEN], limits: &Limits) -> Result<Header, ProtoError> {
        let [l0, l1, l2, l3, m0, m1, version, kind, r0, r1, r2, r3] = *bytes;
        let magic = u16::from_le_bytes([m0, m1]);
        if magic != MAGIC {
            return Err(ProtoError::BadMagic { found: magic });
        }
        if !(MIN_PROTOCOL_VERSION..=PROTOCOL_VERSION).contains(&version) {
            return Err(ProtoError::UnsupportedVersion { found: version });
        }
        let kind = Kind::from_u8(kind).ok_or(ProtoError::UnknownKind { kind })?;
        let body_len = u32::from_le_bytes([l0, l1, l2, l3]);
        let frame_bytes = HEADER_LEN as u64 + u64::from(body_len);
        if frame_bytes > limits.max_frame_bytes as u64 {
            return Err(ProtoError::FrameTooLarge {
                frame_bytes,
                max_frame_bytes: limits.max_frame_bytes,
            });
        }
        Ok(Header {
            body_len,
            version,
            kind,
            request_id: u32::from_le_bytes([r0, r1, r2, r3]),
        })
    }
}

/// Decodes the header at the start of `buf`: `Ok(None)` while fewer than [`HEADER_LEN`] bytes are
/// there. Says nothing about whether the body has arrived; see [`Header::frame_len`].
pub fn decode_header(buf: &[u8], limits: &Limits) -> Result<Option<Header>, ProtoError> {
    match buf.first_chunk::<HEADER_LEN>() {
        Some(bytes) => Header::parse(bytes, limits).map(Some),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: Kind, body_len: u32) -> Header {
        Header {
            body_len,
            version: PROTOCOL_VERSION,
            kind,
            request_id: 0x0403_0201,
        }
    }

    #[test]
    fn layout_matches_the_table() {
        let bytes = header(Kind::Set, 0x1234).to_bytes();
        assert_eq!(
            bytes,
            [0x34, 0x12, 0, 0, b'C', b'K', 1, 0x02, 0x01, 0x02, 0x03, 0x04]
        );
        assert_eq!(MAGIC, 0x4B43);
    }

    #[test]
    fn round_trips_every_kind() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_u8(kind.as_u8()), Some(kind));
            let h = header(kind, 7);
            assert_eq!(Header::parse(&h.to_bytes(), &Limits::DEFAULT), Ok(h));
            assert_eq!(kind.is_request(), kind.as_u8() < 0x80);
        }
        let known = (0..=255u8).filter(|b| Kind::from_u8(*b).is_some()).count();
        assert_eq!(known, Kind::ALL.len());
    }

    #[test]
    fn needs_twelve_bytes() {
        let bytes = header(Kind::Ping, 0).to_bytes();
        for n in 0..HEADER_LEN {
            assert_eq!(decode_header(&bytes[..n], &Limits::DEFAULT), Ok(None));
        }
        assert!(decode_header(&bytes, &Limits::DEFAULT).unwrap().is_some());
    }

    #[test]
    fn rejects_bad_magic() {
        let mut bytes = header(Kind::Ping, 0).to_bytes();
        bytes[4] = b'X';
        let err = Header::parse(&bytes, &Limits::DEFAULT).unwrap_err();
        assert_eq!(err, ProtoError::BadMagic { found: 0x4B58 });
        assert!(err
            .to_string()
            .contains("not speaking the cachekit protocol"));
    }

    #[test]
    fn rejects_unsupported_versions() {
        for version in [0u8, 2, 255] {
            let mut bytes = header(Kind::Ping, 0).to_bytes();
            bytes[OFF_VERSION] = version;
            assert_eq!(
                Header::parse(&bytes, &Limits::DEFAULT),
                Err(ProtoError::UnsupportedVersion { found: version })
            );
        }
    }

    #[test]
    fn rejects_unknown_kinds() {
        for kind in [0x00u8, 0x16, 0x7F, 0x80, 0x92, 0xFE] {
            let mut bytes = header(Kind::Ping, 0).to_bytes();
            bytes[OFF_KIND] = kind;
            assert_eq!(
                Header::parse(&bytes, &Limits::DEFAULT),
                Err(ProtoError::UnknownKind { kind })
            );
        }
    }

    #[test]
    fn rejects_oversized_frames_from_the_header_alone() {
        let limits = Limits {
            max_frame_bytes: 100,
            ..Limits::DEFAULT
        };
        assert!(Header::parse(&header(Kind::Set, 88).to_bytes(), &limits).is_ok());
        let err = Header::parse(&header(Kind::Set, 89).to_bytes(), &limits).unwrap_err();
        assert_eq!(
            err,
            ProtoError::FrameTooLarge {
                frame_bytes: 101,
                max_frame_bytes: 100
            }
        );
        assert!(err.to_string().contains("max_frame_bytes = 100"));
        let err = Header::parse(&header(Kind::Set, u32::MAX).to_bytes(), &Limits::DEFAULT);
        assert_eq!(
            err,
            Err(ProtoError::FrameTooLarge {
                frame_bytes: 4_294_967_307,
                max_frame_bytes: Limits::DEFAULT.max_frame_bytes
            })
        );
    }
}
