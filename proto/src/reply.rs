//! Replies: what the daemon sends back, and the ERROR codes.

use std::fmt;

use crate::batch::{self, ItemResult};
use crate::error::{EncodeError, Field, ProtoError};
use crate::header::{Kind, HEADER_LEN};
use crate::limits::{Limits, MAX_ERROR_MESSAGE_BYTES, MAX_STATS, MAX_STAT_NAME_BYTES};
use crate::manage::{self, NamespaceInfo, ScanItem};
use crate::wire::{self, Cursor, WIRE_MAX_LEN};

/// A reply from the daemon, carrying the request id of the request it answers.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reply {
    /// HELLO_OK: the session parameters. The segment file descriptors travel alongside this frame
    /// by SCM_RIGHTS; see [`HelloOk::fd_count`].
    HelloOk(HelloOk),
    /// OK: a SET, INVALIDATE or CLEAR was applied (visible to every read that starts afterwards).
    Ok,
    /// DELETED: a DELETE was applied.
    Deleted {
        /// Whether the key was present.
        existed: bool,
    },
    /// FETCH_HIT: the value of a FETCH.
    FetchHit(FetchHit),
    /// FETCH_MISS: neither the table nor Redis has the key.
    FetchMiss,
    /// STATS_REPLY: named counters, at most [`MAX_STATS`].
    Stats {
        /// `(name, value)` pairs; names at most [`MAX_STAT_NAME_BYTES`].
        counters: Vec<(String, u64)>,
    },
    /// PONG: the answer to PING.
    Pong {
        /// The daemon epoch (bumped on every daemon start).
        epoch: u64,
        /// The heartbeat the daemon last published, in Unix milliseconds.
        heartbeat_ms: u64,
    },
    /// STORED: the answer to SET_IF.
    Stored {
        /// Whether the value was stored (the condition held).
        stored: bool,
        /// The new entry's version when stored, else 0.
        version: u64,
    },
    /// COUNTER: the answer to INCR.
    Counter {
        /// `false`: the key had no fresh entry and the INCR gave no initial value; nothing was
        /// stored.
        present: bool,
        /// The counter after the delta (0 when not present).
        value: i64,
        /// The new entry's version (0 when not present, or unknown).
        version: u64,
    },
    /// FOUND: the answer to TOUCH.
    Found {
        /// Whether the key had a fresh entry (and now has the new time to live).
        found: bool,
    },
    /// SCAN_PAGE: one page of a SCAN.
    ScanPage {
        /// Where the next page starts; 0 = this was the last page.
        cursor: u64,
        /// The entries of this page, at most [`MAX_SCAN_PAGE`](crate::MAX_SCAN_PAGE).
        items: Vec<ScanItem>,
    },
    /// DELETED_MANY: one page of a DELETE_MATCHING.
    DeletedMany {
        /// Where the next page starts; 0 = done.
        cursor: u64,
        /// Entries this page deleted.
        deleted: u64,
    },
    /// NAMESPACE_LIST: the answer to NAMESPACES.
    NamespaceList {
        /// Namespaces with entries, at most [`MAX_NAMESPACE_LIST`](crate::MAX_NAMESPACE_LIST).
        namespaces: Vec<NamespaceInfo>,
    },
    /// LEASE_GRANTED: the caller holds the lease of the key.
    LeaseGranted {
        /// Names the lease in LEASE_FILL and LEASE_RELEASE.
        token: u64,
    },
    /// LEASE_BUSY: another caller holds the lease, and no value came within the wait.
    LeaseBusy,
    /// VERIFY_REPORT: one page of a VERIFY.
    VerifyReport(crate::verify::VerifyReport),
    /// BATCH_RESULTS: the answer to SET_MANY and DELETE_MANY, one result per item, in order.
    BatchResults {
        /// At most [`MAX_BATCH_ITEMS`](crate::MAX_BATCH_ITEMS).
        results: Vec<ItemResult>,
    },
    /// METRICS_TEXT: the answer to METRICS.
    Metrics {
        /// OpenMetrics text, ending with `# EOF`; bounded by `max_frame_bytes` only.
        text: String,
    },
    /// ERROR: the request failed; any request may be answered by ERROR.
    Error {
        /// What went wrong, for programs.
        code: ErrorCode,
        /// What went wrong and what to do, for people; at most [`MAX_ERROR_MESSAGE_BYTES`].
        message: String,
    },
}

/// The body of HELLO_OK.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HelloOk {
    /// The negotiated protocol version, within the client's `min_version..=max_version`.
    pub version: u8,
    /// The daemon epoch (bumped on every daemon start).
    pub daemon_epoch: u64,
    /// Layout version of the shared segment.
    pub layout_version: u32,
    /// Size of the read-only table segment, in bytes.
    pub segment_size: u64,
    /// Size of the client-writable area, in bytes.
    pub client_area_size: u64,
    /// The number of this client process's counters file (the third descriptor), shared by
    /// all its connections and kept until it has exited; `u32::MAX` when the daemon sent
    /// none (every record taken).
    pub client_slot: u32,
    /// Heartbeat age in milliseconds after which clients must stop trusting the segment.
    pub heartbeat_timeout_ms: u32,
    /// Number of file descriptors sent by SCM_RIGHTS with this frame (in the order the daemon
    /// documents: the table segment, the client area, then this process's counters file
    /// when `client_slot` names one).
    pub fd_count: u8,
    /// The limits this daemon enforces; clients decode replies and validate requests with them.
    pub limits: Limits,
    /// What this daemon has: [`HELLO_FLAG_SECOND_TIER`], [`HELLO_FLAG_BATCH_WRITES`]; other bits
    /// are reserved (sent as 0, ignored).
    pub flags: u8,
}

/// [`HelloOk::flags`]: the daemon has a second tier (Redis), so a key missing from the
/// segment may still be found there. Without it the segment holds the whole cache, and a
/// client may answer a miss from the segment alone.
pub const HELLO_FLAG_SECOND_TIER: u8 = 1 << 0;

/// [`HelloOk::flags`]: the daemon takes SET_MANY and DELETE_MANY. A daemon from before them
/// sends the bit as 0 (reserved then) and answers either with an unknown-kind ERROR that
/// closes the connection, so a client sends it single SETs and DELETEs instead.
pub const HELLO_FLAG_BATCH_WRITES: u8 = 1 << 1;

impl HelloOk {
    /// Whether the daemon has a second tier ([`HELLO_FLAG_SECOND_TIER`]).
    pub fn has_second_tier(&self) -> bool {
        self.flags & HELLO_FLAG_SECOND_TIER != 0
    }

    /// Whether the daemon takes SET_MANY and DELETE_MANY ([`HELLO_FLAG_BATCH_WRITES`]).
    pub fn has_batch_writes(&self) -> bool {
        self.flags & HELLO_FLAG_BATCH_WRITES != 0
    }
}

/// The body of FETCH_HIT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FetchHit {
    /// The value bytes, as stored by SET.
    pub value: Vec<u8>,
    /// When the entry was written, Unix milliseconds.
    pub created_ms: u64,
    /// When the entry stops being fresh, Unix milliseconds; `None` = never.
    pub expires_ms: Option<u64>,
    /// When the entry stops being servable stale, Unix milliseconds; `None` = no grace period.
    pub grace_until_ms: Option<u64>,
    /// The entry is past `expires_ms` but within grace: serve it and refresh it.
    pub stale: bool,
    /// The table entry's version (for SET_IF's cas); 0 when the value was not put in the
    /// table (a fill that raced a write).
    pub version: u64,
}

/// The code of an ERROR reply (a u16 on the wire). Codes this build does not know decode to
/// [`ErrorCode::Unknown`], so a newer daemon's codes still reach the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 1: the request frame could not be decoded (bad magic, unknown kind, truncated or malformed
    /// body). The daemon closes the connection when it cannot find the next frame boundary.
    BadFrame,
    /// 2: no protocol version in common (HELLO), or a frame in a version not negotiated.
    UnsupportedVersion,
    /// 3: a frame, field or list is over a limit; the message names the limit.
    TooLarge,
    /// 4: the peer's credentials do not allow this request.
    NotPermitted,
    /// 5: the daemon cannot serve this now (Redis down for a write, shutting down); retry later.
    Unavailable,
    /// 6: a well-formed request with an argument the daemon refuses (e.g. an empty namespace).
    InvalidArgument,
    /// 7: a bug or an unexpected failure inside the daemon.
    Internal,
    /// 8: a message out of place: a request before HELLO, a second HELLO, or a reply sent to the
    /// daemon.
    UnexpectedMessage,
    /// A code this build does not know. Never holds an assigned code: build codes with
    /// [`ErrorCode::from_u16`].
    Unknown(u16),
}

impl ErrorCode {
    /// The code for a wire value.
    pub const fn from_u16(code: u16) -> ErrorCode {
        match code {
            1 => ErrorCode::BadFrame,
            2 => ErrorCode::UnsupportedVersion,
            3 => ErrorCode::TooLarge,
            4 => ErrorCode::NotPermitted,
            5 => ErrorCode::Unavailable,
            6 => ErrorCode::InvalidArgument,
            7 => ErrorCode::Internal,
            8 => ErrorCode::UnexpectedMessage,
            other => ErrorCode::Unknown(other),
        }
    }

    /// The wire value.
    pub const fn as_u16(self) -> u16 {
        match self {
            ErrorCode::BadFrame => 1,
            ErrorCode::UnsupportedVersion => 2,
            ErrorCode::TooLarge => 3,
            ErrorCode::NotPermitted => 4,
            ErrorCode::Unavailable => 5,
            ErrorCode::InvalidArgument => 6,
            ErrorCode::Internal => 7,
            ErrorCode::UnexpectedMessage => 8,
            ErrorCode::Unknown(code) => code,
        }
    }

    /// A short description that needs no allocation.
    pub const fn description(self) -> &'static str {
        match self {
            ErrorCode::BadFrame => "bad frame",
            ErrorCode::UnsupportedVersion => "unsupported protocol version",
            ErrorCode::TooLarge => "too large",
            ErrorCode::NotPermitted => "not permitted",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::InvalidArgument => "invalid argument",
            ErrorCode::Internal => "internal error",
            ErrorCode::UnexpectedMessage => "unexpected message",
            ErrorCode::Unknown(_) => "unknown error code",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.description(), self.as_u16())
    }
}

impl Reply {
    /// An ERROR reply; `message` is cut at a character boundary to fit
    /// [`MAX_ERROR_MESSAGE_BYTES`].
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Reply {
        let mut message = message.into();
        if message.len() > MAX_ERROR_MESSAGE_BYTES {
            let mut end = MAX_ERROR_MESSAGE_BYTES;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            message.truncate(end);
        }
        Reply::Error { code, message }
    }

    /// The message kind.
    pub fn kind(&self) -> Kind {
        match self {
            Reply::HelloOk(_) => Kind::HelloOk,
            Reply::Ok => Kind::Ok,
            Reply::Deleted { .. } => Kind::Deleted,
            Reply::FetchHit(_) => Kind::FetchHit,
            Reply::FetchMiss => Kind::FetchMiss,
            Reply::Stats { .. } => Kind::StatsReply,
            Reply::Pong { .. } => Kind::Pong,
            Reply::Stored { .. } => Kind::Stored,
            Reply::Counter { .. } => Kind::Counter,
            Reply::Found { .. } => Kind::Found,
            Reply::ScanPage { .. } => Kind::ScanPage,
            Reply::DeletedMany { .. } => Kind::DeletedMany,
            Reply::NamespaceList { .. } => Kind::NamespaceList,
            Reply::LeaseGranted { .. } => Kind::LeaseGranted,
            Reply::LeaseBusy => Kind::LeaseBusy,
            Reply::VerifyReport(_) => Kind::VerifyReport,
            Reply::BatchResults { .. } => Kind::BatchResults,
            Reply::Metrics { .. } => Kind::MetricsText,
            Reply::Error { .. } => Kind::Error,
        }
    }

    /// Whether this reply is a valid answer to a request of kind `request` (ERROR answers any).
    pub fn answers(&self, request: Kind) -> bool {
        matches!(
            (request, self),
            (_, Reply::Error { .. })
                | (Kind::Hello, Reply::HelloOk(_))
                | (
                    Kind::Set | Kind::Invalidate | Kind::Clear | Kind::LeaseRelease,
                    Reply::Ok
                )
                | (Kind::Delete, Reply::Deleted { .. })
                | (
                    Kind::Fetch | Kind::Take,
                    Reply::FetchHit(_) | Reply::FetchMiss
                )
                | (Kind::SetIf | Kind::LeaseFill, Reply::Stored { .. })
                | (
                    Kind::Lease,
                    Reply::FetchHit(_) | Reply::LeaseGranted { .. } | Reply::LeaseBusy
                )
                | (Kind::Incr, Reply::Counter { .. })
                | (Kind::Touch, Reply::Found { .. })
                | (Kind::Scan, Reply::ScanPage { .. })
                | (Kind::DeleteMatching, Reply::DeletedMany { .. })
                | (Kind::Namespaces, Reply::NamespaceList { .. })
                | (Kind::Verify, Reply::VerifyReport(_))
                | (Kind::Stats, Reply::Stats { .. })
                | (Kind::Ping, Reply::Pong { .. })
                | (Kind::Metrics, Reply::Metrics { .. })
                | (Kind::SetMany | Kind::DeleteMany, Reply::BatchResults { .. })
        )
    }

    /// Checks the reply against `limits` exactly as the client's decoder will: `Ok` here means
    /// the encoded frame decodes under the same limits.
    pub fn validate(&self, limits: &Limits) -> Result<(), ProtoError> {
        match self {
            Reply::FetchHit(hit) => {
                wire::check_len(Field::Value, hit.value.len(), limits.max_value_bytes)?
            }
            Reply::Stats { counters } => {
                wire::check_count(Field::Stats, counters.len(), MAX_STATS)?;
                for (name, _) in counters {
                    wire::check_len(Field::StatName, name.len(), MAX_STAT_NAME_BYTES)?;
                }
            }
            Reply::Error { message, .. } => {
                wire::check_len(Field::ErrorMessage, message.len(), MAX_ERROR_MESSAGE_BYTES)?
            }
            Reply::ScanPage { items, .. } => manage::check_scan_page(items, limits)?,
            Reply::VerifyReport(r) => crate::verify::check_report(r)?,
            Reply::BatchResults { results } => batch::check_results(results)?,
            Reply::NamespaceList { namespaces } => {
                manage::check_namespace_list(namespaces, limits)?
            }
            Reply::Metrics { text } => {
                wire::check_len(Field::MetricsText, text.len(), limits.max_frame_bytes)?
            }
            Reply::HelloOk(_)
            | Reply::Ok
            | Reply::Deleted { .. }
            | Reply::FetchMiss
            | Reply::Pong { .. }
            | Reply::Stored { .. }
            | Reply::Counter { .. }
            | Reply::Found { .. }
            | Reply::DeletedMany { .. }
            | Reply::LeaseGranted { .. }
            | Reply::LeaseBusy => {}
        }
        let frame_bytes = HEADER_LEN as u64 + self.body_len();
        if frame_bytes > limits.max_frame_bytes as u64 {
            return Err(ProtoError::FrameTooLarge {
                frame_bytes,
                max_frame_bytes: limits.max_frame_bytes,
            });
        }
        Ok(())
    }

    /// Length of the encoded body in bytes.
    pub fn body_len(&self) -> u64 {
        use wire::{bytes_len, opt_u64_len};
        match self {
            Reply::HelloOk(_) => HELLO_OK_BODY_LEN,
            Reply::Ok | Reply::FetchMiss | Reply::LeaseBusy => 0,
            Reply::LeaseGranted { .. } => 8,
            Reply::Deleted { .. } => 1,
            Reply::FetchHit(hit) => {
                8 + 8
                    + opt_u64_len(hit.expires_ms)
                    + opt_u64_len(hit.grace_until_ms)
                    + 1
                    + bytes_len(hit.value.len())
            }
            Reply::Stats { counters } => {
                2 + counters
                    .iter()
                    .map(|(name, _)| bytes_len(name.len()) + 8)
                    .sum::<u64>()
            }
            Reply::Pong { .. } => 16,
            Reply::Stored { .. } => 1 + 8,
            Reply::Counter { .. } => 1 + 8 + 8,
            Reply::Found { .. } => 1,
            Reply::ScanPage { items, .. } => {
                8 + 2 + items.iter().map(manage::scan_item_len).sum::<u64>()
            }
            Reply::DeletedMany { .. } => 16,
            Reply::NamespaceList { namespaces } => manage::namespace_list_len(namespaces),
            Reply::VerifyReport(r) => crate::verify::report_len(r),
            Reply::Error { message, .. } => 2 + bytes_len(message.len()),
            Reply::Metrics { text } => bytes_len(text.len()),
            Reply::BatchResults { results } => batch::results_len(results),
        }
    }

    /// Appends the body (without header) to `out`. On error `out` may hold a partial body; the
    /// caller truncates.
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Reply::HelloOk(ok) => encode_hello_ok(ok, out)?,
            Reply::Ok | Reply::FetchMiss | Reply::LeaseBusy => {}
            Reply::LeaseGranted { token } => wire::put_u64(out, *token),
            Reply::Deleted { existed } => wire::put_flag(out, *existed),
            Reply::FetchHit(hit) => {
                wire::put_u64(out, hit.created_ms);
                wire::put_u64(out, hit.version);
                wire::put_opt_u64(out, hit.expires_ms);
                wire::put_opt_u64(out, hit.grace_until_ms);
                wire::put_flag(out, hit.stale);
                wire::put_bytes(out, Field::Value, &hit.value, WIRE_MAX_LEN)?;
            }
            Reply::Stats { counters } => {
                wire::put_count(out, Field::Stats, counters.len(), MAX_STATS)?;
                for (name, value) in counters {
                    wire::put_bytes(out, Field::StatName, name.as_bytes(), MAX_STAT_NAME_BYTES)?;
                    wire::put_u64(out, *value);
                }
            }
            Reply::Pong {
                epoch,
                heartbeat_ms,
            } => {
                wire::put_u64(out, *epoch);
                wire::put_u64(out, *heartbeat_ms);
            }
            Reply::Stored { stored, version } => {
                wire::put_flag(out, *stored);
                wire::put_u64(out, *version);
            }
            Reply::Counter {
                present,
                value,
                version,
            } => {
                wire::put_flag(out, *present);
                wire::put_u64(out, *value as u64);
                wire::put_u64(out, *version);
            }
            Reply::Found { found } => wire::put_flag(out, *found),
            Reply::ScanPage { cursor, items } => manage::put_scan_page(out, *cursor, items)?,
            Reply::DeletedMany { cursor, deleted } => {
                wire::put_u64(out, *cursor);
                wire::put_u64(out, *deleted);
            }
            Reply::NamespaceList { namespaces } => manage::put_namespace_list(out, namespaces)?,
            Reply::VerifyReport(r) => crate::verify::put_report(out, r)?,
            Reply::BatchResults { results } => batch::put_results(out, results)?,
            Reply::Metrics { text } => {
                wire::put_bytes(out, Field::MetricsText, text.as_bytes(), WIRE_MAX_LEN)?
            }
            Reply::Error { code, message } => {
                wire::put_u16(out, code.as_u16());
                wire::put_bytes(
                    out,
                    Field::ErrorMessage,
                    message.as_bytes(),
                    MAX_ERROR_MESSAGE_BYTES,
                )?;
            }
        }
        Ok(())
    }

    /// Decodes the body of a reply of kind `c.kind()`; `None` if that kind is a request.
    pub(crate) fn decode_body(
        c: &mut Cursor<'_>,
        limits: &Limits,
    ) -> Option<Result<Reply, ProtoError>> {
        let reply = match c.kind() {
            Kind::HelloOk => decode_hello_ok(c).map(Reply::HelloOk),
            Kind::Ok => Ok(Reply::Ok),
            Kind::Deleted => c.flag("existed").map(|existed| Reply::Deleted { existed }),
            Kind::FetchHit => decode_fetch_hit(c, limits).map(Reply::FetchHit),
            Kind::FetchMiss => Ok(Reply::FetchMiss),
            Kind::StatsReply => decode_stats(c),
            Kind::Pong => decode_pong(c),
            Kind::Stored => decode_stored(c),
            Kind::Counter => decode_counter(c),
            Kind::Found => c.flag("found").map(|found| Reply::Found { found }),
            Kind::ScanPage => manage::decode_scan_page(c, limits)
                .map(|(cursor, items)| Reply::ScanPage { cursor, items }),
            Kind::DeletedMany => decode_deleted_many(c),
            Kind::NamespaceList => manage::decode_namespace_list(c, limits)
                .map(|namespaces| Reply::NamespaceList { namespaces }),
            Kind::LeaseGranted => c.u64("token").map(|token| Reply::LeaseGranted { token }),
            Kind::LeaseBusy => Ok(Reply::LeaseBusy),
            Kind::VerifyReport => crate::verify::decode_report(c, limits).map(Reply::VerifyReport),
            Kind::MetricsText => c
                .str(Field::MetricsText, limits.max_frame_bytes)
                .map(|t| Reply::Metrics { text: t.to_owned() }),
            Kind::BatchResults => {
                batch::decode_results(c).map(|results| Reply::BatchResults { results })
            }
            Kind::Error => decode_error(c),
            Kind::Hello
            | Kind::Set
            | Kind::Delete
            | Kind::Invalidate
            | Kind::Clear
            | Kind::Fetch
            | Kind::Stats
            | Kind::Ping
            | Kind::SetIf
            | Kind::Incr
            | Kind::Take
            | Kind::Touch
            | Kind::Scan
            | Kind::DeleteMatching
            | Kind::Namespaces
            | Kind::Lease
            | Kind::LeaseFill
            | Kind::LeaseRelease
            | Kind::Verify
            | Kind::SetMany
            | Kind::DeleteMany
            | Kind::Metrics => return None,
        };
        Some(reply)
    }
}

/// HELLO_OK is fixed-size: 1 + 8 + 4 + 8 + 8 + 4 + 4 + 1 + (4 + 4 + 4 + 4 + 2 + 4) + 1.
const HELLO_OK_BODY_LEN: u64 = 61;

fn limit_u32(setting: &'static str, value: usize) -> Result<u32, EncodeError> {
    u32::try_from(value).map_err(|_| EncodeError::LimitOutOfRange {
        setting,
        value,
        max: u32::MAX.into(),
    })
}

fn encode_hello_ok(ok: &HelloOk, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let l = &ok.limits;
    // Convert every limit before writing anything.
    let max_frame_bytes = limit_u32("max_frame_bytes", l.max_frame_bytes)?;
    let max_key_bytes = limit_u32("max_key_bytes", l.max_key_bytes)?;
    let max_namespace_bytes = limit_u32("max_namespace_bytes", l.max_namespace_bytes)?;
    let max_value_bytes = limit_u32("max_value_bytes", l.max_value_bytes)?;
    let max_tags = u16::try_from(l.max_tags).map_err(|_| EncodeError::LimitOutOfRange {
        setting: "max_tags",
        value: l.max_tags,
        max: u16::MAX.into(),
    })?;
    let max_tag_bytes = limit_u32("max_tag_bytes", l.max_tag_bytes)?;
    wire::put_u8(out, ok.version);
    wire::put_u64(out, ok.daemon_epoch);
    wire::put_u32(out, ok.layout_version);
    wire::put_u64(out, ok.segment_size);
    wire::put_u64(out, ok.client_area_size);
    wire::put_u32(out, ok.client_slot);
    wire::put_u32(out, ok.heartbeat_timeout_ms);
    wire::put_u8(out, ok.fd_count);
    wire::put_u32(out, max_frame_bytes);
    wire::put_u32(out, max_key_bytes);
    wire::put_u32(out, max_namespace_bytes);
    wire::put_u32(out, max_value_bytes);
    wire::put_u16(out, max_tags);
    wire::put_u32(out, max_tag_bytes);
    wire::put_u8(out, ok.flags);
    Ok(())
}

fn decode_hello_ok(c: &mut Cursor<'_>) -> Result<HelloOk, ProtoError> {
    // A u32 fits in usize on every target this crate supports; saturate anywhere else.
    let size = |v: u32| usize::try_from(v).unwrap_or(usize::MAX);
    Ok(HelloOk {
        version: c.u8("version")?,
        daemon_epoch: c.u64("daemon_epoch")?,
        layout_version: c.u32("layout_version")?,
        segment_size: c.u64("segment_size")?,
        client_area_size: c.u64("client_area_size")?,
        client_slot: c.u32("client_slot")?,
        heartbeat_timeout_ms: c.u32("heartbeat_timeout_ms")?,
        fd_count: c.u8("fd_count")?,
        limits: Limits {
            max_frame_bytes: size(c.u32("max_frame_bytes")?),
            max_key_bytes: size(c.u32("max_key_bytes")?),
            max_namespace_bytes: size(c.u32("max_namespace_bytes")?),
            max_value_bytes: size(c.u32("max_value_bytes")?),
            max_tags: usize::from(c.u16("max_tags")?),
            max_tag_bytes: size(c.u32("max_tag_bytes")?),
        },
        flags: c.u8("flags")?,
    })
}

fn decode_fetch_hit(c: &mut Cursor<'_>, limits: &Limits) -> Result<FetchHit, ProtoError> {
    let created_ms = c.u64("created_ms")?;
    let version = c.u64("version")?;
    let expires_ms = c.opt_u64("expires_ms")?;
    let grace_until_ms = c.opt_u64("grace_until_ms")?;
    let stale = c.flag("stale")?;
    let value = c.bytes(Field::Value, limits.max_value_bytes)?.to_vec();
    Ok(FetchHit {
        value,
        created_ms,
        expires_ms,
        grace_until_ms,
        stale,
        version,
    })
}

fn decode_stored(c: &mut Cursor<'_>) -> Result<Reply, ProtoError> {
    let stored = c.flag("stored")?;
    let version = c.u64("version")?;
    Ok(Reply::Stored { stored, version })
}

fn decode_counter(c: &mut Cursor<'_>) -> Result<Reply, ProtoError> {
    let present = c.flag("present")?;
    let value = c.u64("value")? as i64;
    let version = c.u64("version")?;
    Ok(Reply::Counter {
        present,
        value,
        version,
    })
}

fn decode_deleted_many(c: &mut Cursor<'_>) -> Result<Reply, ProtoError> {
    let cursor = c.u64("cursor")?;
    let deleted = c.u64("deleted")?;
    Ok(Reply::DeletedMany { cursor, deleted })
}

fn decode_stats(c: &mut Cursor<'_>) -> Result<Reply, ProtoError> {
    // Each counter takes at least 4 (name length) + 8 (value) bytes.
    let (count, capacity) = c.count(Field::Stats, MAX_STATS, 12)?;
    let mut counters = Vec::with_capacity(capacity);
    for _ in 0..count {
        let name = c.str(Field::StatName, MAX_STAT_NAME_BYTES)?.to_owned();
        counters.push((name, c.u64("stat value")?));
    }
    Ok(Reply::Stats { counters })
}

fn decode_pong(c: &mut Cursor<'_>) -> Result<Reply, ProtoError> {
    let epoch = c.u64("epoch")?;
    let heartbeat_ms = c.u64("heartbeat_ms")?;
    Ok(Reply::Pong {
        epoch,
        heartbeat_ms,
    })
}

fn decode_error(c: &mut Cursor<'_>) -> Result<Reply, ProtoError> {
    let code = ErrorCode::from_u16(c.u16("code")?);
    let message = c
        .str(Field::ErrorMessage, MAX_ERROR_MESSAGE_BYTES)?
        .to_owned();
    Ok(Reply::Error { code, message })
}
