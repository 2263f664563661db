//! Requests: what a client sends to the daemon.

use crate::batch::{self, DeleteMany, SetMany};
use crate::error::{EncodeError, Field, ProtoError};
use crate::header::{Kind, HEADER_LEN, PROTOCOL_VERSION};
use crate::limits::{Limits, MAX_CLIENT_NAME_BYTES};
use crate::manage::{self, Incr, Lease, LeaseFill, ScanRequest, SetIf};
use crate::wire::{self, Cursor, WIRE_MAX_COUNT, WIRE_MAX_LEN};

/// A request from a client to the daemon. Each variant documents its body layout in the crate
/// documentation's tables.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Request {
    /// HELLO: the first request on every connection. Answered by HELLO_OK or ERROR.
    Hello(Hello),
    /// SET: store a value. Answered by OK.
    Set(Set),
    /// DELETE: remove one key. Answered by DELETED.
    Delete {
        /// The key's namespace.
        namespace: String,
        /// The key.
        key: Vec<u8>,
    },
    /// INVALIDATE: invalidate the entries of a namespace that carry any of `tags`. Answered by OK.
    Invalidate {
        /// The namespace.
        namespace: String,
        /// Tag paths such as `posts/123`: 1 to 8 non-empty segments joined by `/`
        /// ([`cachekit_shm::validate_tag`]).
        tags: Vec<String>,
        /// `false`: also every tag below each path (`posts/123/comments`); `true`: exactly the paths.
        exact: bool,
    },
    /// CLEAR: drop every entry of a namespace. Answered by OK.
    Clear {
        /// The namespace.
        namespace: String,
    },
    /// FETCH: the miss path; the daemon looks the key up (filling from Redis). Answered by
    /// FETCH_HIT or FETCH_MISS.
    Fetch {
        /// The key's namespace.
        namespace: String,
        /// The key.
        key: Vec<u8>,
    },
    /// STATS: read the daemon's counters. Answered by STATS_REPLY.
    Stats,
    /// PING: liveness check. Answered by PONG.
    Ping,
    /// SET_IF: store a value only if a condition holds (add, replace, cas). Answered by STORED.
    SetIf(SetIf),
    /// INCR: add a delta to an integer counter. Answered by COUNTER.
    Incr(Incr),
    /// TAKE: remove a key and answer its value. Answered by FETCH_HIT or FETCH_MISS.
    Take {
        /// The key's namespace.
        namespace: String,
        /// The key.
        key: Vec<u8>,
    },
    /// TOUCH: a new time to live for a fresh entry. Answered by FOUND.
    Touch {
        /// The key's namespace.
        namespace: String,
        /// The key.
        key: Vec<u8>,
        /// The new time to live from now, in milliseconds; `None` = never expires (persist).
        ttl_ms: Option<u64>,
    },
    /// SCAN: one page of a namespace's entries. Answered by SCAN_PAGE.
    Scan(ScanRequest),
    /// DELETE_MATCHING: delete one page of a namespace's entries. Answered by DELETED_MANY.
    DeleteMatching(ScanRequest),
    /// NAMESPACES: the namespaces the table holds entries of. Answered by NAMESPACE_LIST.
    Namespaces,
    /// METRICS: the daemon's metrics, as OpenMetrics text. Answered by METRICS_TEXT.
    Metrics,
    /// LEASE: compute-once for a missing or stale key. Answered by FETCH_HIT (a value is there,
    /// or another holder's fill came), LEASE_GRANTED or LEASE_BUSY.
    Lease(Lease),
    /// LEASE_FILL: the holder's value. Answered by STORED.
    LeaseFill(LeaseFill),
    /// LEASE_RELEASE: the holder gives up without a value. Answered by OK.
    LeaseRelease {
        /// The key's namespace.
        namespace: String,
        /// The key.
        key: Vec<u8>,
        /// The token of LEASE_GRANTED.
        token: u64,
    },
    /// VERIFY: one page of an integrity walk of the live table. Answered by VERIFY_REPORT.
    /// With `repair` it changes the cache (the writer permission).
    Verify(crate::verify::VerifyRequest),
    /// SET_MANY: store values for many keys of one namespace, under one acquisition of the
    /// daemon's writer. Answered by BATCH_RESULTS, one result per item.
    SetMany(SetMany),
    /// DELETE_MANY: remove many keys of one namespace, under one acquisition of the daemon's
    /// writer. Answered by BATCH_RESULTS, one result per key.
    DeleteMany(DeleteMany),
}

/// The body of HELLO.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Hello {
    /// Oldest protocol version the client speaks.
    pub min_version: u8,
    /// Newest protocol version the client speaks.
    pub max_version: u8,
    /// The client's process id (informational; the daemon trusts SO_PEERCRED, not this).
    pub client_pid: u32,
    /// A name for logs and stats (informational), at most [`MAX_CLIENT_NAME_BYTES`].
    pub client_name: String,
}

impl Hello {
    /// A HELLO offering exactly this build's [`PROTOCOL_VERSION`], with this process's id.
    pub fn new(client_name: impl Into<String>) -> Hello {
        Hello {
            min_version: PROTOCOL_VERSION,
            max_version: PROTOCOL_VERSION,
            client_pid: std::process::id(),
            client_name: client_name.into(),
        }
    }
}

/// The body of SET.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Set {
    /// The key's namespace.
    pub namespace: String,
    /// The key.
    pub key: Vec<u8>,
    /// The value: opaque bytes, normally an already-encoded envelope.
    pub value: Vec<u8>,
    /// Time to live in milliseconds; `None` = never expires.
    pub ttl_ms: Option<u64>,
    /// How long after expiry the entry may still be served stale, in milliseconds.
    pub grace_ms: u64,
    /// Tag paths the entry belongs to (the grammar of [`cachekit_shm::validate_tag`]).
    pub tags: Vec<String>,
}

impl Request {
    /// The message kind.
    pub fn kind(&self) -> Kind {
        match self {
            Request::Hello(_) => Kind::Hello,
            Request::Set(_) => Kind::Set,
            Request::Delete { .. } => Kind::Delete,
            Request::Invalidate { .. } => Kind::Invalidate,
            Request::Clear { .. } => Kind::Clear,
            Request::Fetch { .. } => Kind::Fetch,
            Request::Stats => Kind::Stats,
            Request::Ping => Kind::Ping,
            Request::SetIf(_) => Kind::SetIf,
            Request::Incr(_) => Kind::Incr,
            Request::Take { .. } => Kind::Take,
            Request::Touch { .. } => Kind::Touch,
            Request::Scan(_) => Kind::Scan,
            Request::DeleteMatching(_) => Kind::DeleteMatching,
            Request::Namespaces => Kind::Namespaces,
            Request::Metrics => Kind::Metrics,
            Request::Lease(_) => Kind::Lease,
            Request::LeaseFill(_) => Kind::LeaseFill,
            Request::LeaseRelease { .. } => Kind::LeaseRelease,
            Request::Verify(_) => Kind::Verify,
            Request::SetMany(_) => Kind::SetMany,
            Request::DeleteMany(_) => Kind::DeleteMany,
        }
    }

    /// Whether the request changes the cache (and so needs the writer permission).
    pub fn is_write(&self) -> bool {
        match self {
            Request::Set(_)
            | Request::Delete { .. }
            | Request::Invalidate { .. }
            | Request::Clear { .. }
            | Request::SetIf(_)
            | Request::Incr(_)
            | Request::Take { .. }
            | Request::Touch { .. }
            | Request::DeleteMatching(_)
            | Request::Lease(_)
            | Request::LeaseFill(_)
            | Request::LeaseRelease { .. }
            | Request::SetMany(_)
            | Request::DeleteMany(_) => true,
            Request::Verify(v) => v.repair,
            Request::Hello(_)
            | Request::Fetch { .. }
            | Request::Stats
            | Request::Ping
            | Request::Scan(_)
            | Request::Namespaces
            | Request::Metrics => false,
        }
    }

    /// Checks the request against `limits` exactly as the daemon's decoder will: `Ok` here means
    /// the encoded frame decodes under the same limits. Call it before sending to get the error
    /// locally (the message names the limit) instead of an ERROR reply.
    pub fn validate(&self, limits: &Limits) -> Result<(), ProtoError> {
        match self {
            Request::Hello(h) => wire::check_len(
                Field::ClientName,
                h.client_name.len(),
                MAX_CLIENT_NAME_BYTES,
            )?,
            Request::Set(s)
            | Request::SetIf(SetIf { set: s, .. })
            | Request::LeaseFill(LeaseFill { set: s, .. }) => check_set(s, limits)?,
            Request::Incr(Incr { namespace, key, .. })
            | Request::Lease(Lease { namespace, key, .. })
            | Request::LeaseRelease { namespace, key, .. }
            | Request::Take { namespace, key }
            | Request::Touch { namespace, key, .. }
            | Request::Delete { namespace, key }
            | Request::Fetch { namespace, key } => {
                check_namespace(namespace, limits)?;
                wire::check_len(Field::Key, key.len(), limits.max_key_bytes)?;
            }
            Request::Invalidate {
                namespace, tags, ..
            } => {
                check_namespace(namespace, limits)?;
                check_tags(tags, limits)?;
            }
            Request::Clear { namespace } => check_namespace(namespace, limits)?,
            Request::SetMany(s) => batch::check_set_many(s, limits)?,
            Request::DeleteMany(d) => batch::check_delete_many(d, limits)?,
            Request::Scan(s) | Request::DeleteMatching(s) => manage::check_scan(s, limits)?,
            Request::Stats
            | Request::Ping
            | Request::Namespaces
            | Request::Verify(_)
            | Request::Metrics => {}
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
        use wire::{bytes_len, opt_u64_len, str_list_len};
        match self {
            Request::Hello(h) => 1 + 1 + 4 + bytes_len(h.client_name.len()),
            Request::Set(s) => set_len(s),
            Request::Delete { namespace, key }
            | Request::Fetch { namespace, key }
            | Request::Take { namespace, key } => bytes_len(namespace.len()) + bytes_len(key.len()),
            Request::Touch {
                namespace,
                key,
                ttl_ms,
            } => bytes_len(namespace.len()) + bytes_len(key.len()) + opt_u64_len(*ttl_ms),
            Request::SetIf(s) => manage::set_if_len(s),
            Request::Incr(i) => manage::incr_len(i),
            Request::Scan(s) | Request::DeleteMatching(s) => manage::scan_len(s),
            Request::Namespaces | Request::Metrics => 0,
            Request::Verify(_) => crate::verify::request_len(),
            Request::Lease(l) => manage::lease_len(l),
            Request::LeaseFill(f) => manage::lease_fill_len(f),
            Request::LeaseRelease { namespace, key, .. } => {
                bytes_len(namespace.len()) + bytes_len(key.len()) + 8
            }
            Request::Invalidate {
                namespace, tags, ..
            } => bytes_len(namespace.len()) + str_list_len(tags) + 1,
            Request::Clear { namespace } => bytes_len(namespace.len()),
            Request::Stats | Request::Ping => 0,
            Request::SetMany(s) => batch::set_many_len(s),
            Request::DeleteMany(d) => batch::delete_many_len(d),
        }
    }

    /// Appends the body (without header) to `out`. On error `out` may hold a partial body; the
    /// caller truncates.
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Request::Hello(h) => {
                wire::put_u8(out, h.min_version);
                wire::put_u8(out, h.max_version);
                wire::put_u32(out, h.client_pid);
                put_str(
                    out,
                    Field::ClientName,
                    &h.client_name,
                    MAX_CLIENT_NAME_BYTES,
                )?;
            }
            Request::Set(s) => put_set(out, s)?,
            Request::Delete { namespace, key }
            | Request::Fetch { namespace, key }
            | Request::Take { namespace, key } => {
                put_str(out, Field::Namespace, namespace, WIRE_MAX_LEN)?;
                wire::put_bytes(out, Field::Key, key, WIRE_MAX_LEN)?;
            }
            Request::Touch {
                namespace,
                key,
                ttl_ms,
            } => {
                put_str(out, Field::Namespace, namespace, WIRE_MAX_LEN)?;
                wire::put_bytes(out, Field::Key, key, WIRE_MAX_LEN)?;
                wire::put_opt_u64(out, *ttl_ms);
            }
            Request::SetIf(s) => manage::put_set_if(out, s)?,
            Request::Incr(i) => manage::put_incr(out, i)?,
            Request::Scan(s) | Request::DeleteMatching(s) => manage::put_scan(out, s)?,
            Request::Namespaces | Request::Metrics => {}
            Request::Verify(v) => crate::verify::put_request(out, v),
            Request::Lease(l) => manage::put_lease(out, l)?,
            Request::LeaseFill(f) => manage::put_lease_fill(out, f)?,
            Request::LeaseRelease {
                namespace,
                key,
                token,
            } => {
                put_str(out, Field::Namespace, namespace, WIRE_MAX_LEN)?;
                wire::put_bytes(out, Field::Key, key, WIRE_MAX_LEN)?;
                wire::put_u64(out, *token);
            }
            Request::Invalidate {
                namespace,
                tags,
                exact,
            } => {
                put_str(out, Field::Namespace, namespace, WIRE_MAX_LEN)?;
                put_tags(out, tags)?;
                wire::put_flag(out, *exact);
            }
            Request::Clear { namespace } => {
                put_str(out, Field::Namespace, namespace, WIRE_MAX_LEN)?
            }
            Request::Stats | Request::Ping => {}
            Request::SetMany(s) => batch::put_set_many(out, s)?,
            Request::DeleteMany(d) => batch::put_delete_many(out, d)?,
        }
        Ok(())
    }

    /// Decodes the body of a request of kind `c.kind()`; `None` if that kind is a reply.
    pub(crate) fn decode_body(
        c: &mut Cursor<'_>,
        limits: &Limits,
    ) -> Option<Result<Request, ProtoError>> {
        let request = match c.kind() {
            Kind::Hello => decode_hello(c),
            Kind::Set => decode_set(c, limits),
            Kind::Delete => namespace_and_key(c, limits)
                .map(|(namespace, key)| Request::Delete { namespace, key }),
            Kind::Invalidate => decode_invalidate(c, limits),
            Kind::Clear => namespace(c, limits).map(|namespace| Request::Clear { namespace }),
            Kind::Fetch => namespace_and_key(c, limits)
                .map(|(namespace, key)| Request::Fetch { namespace, key }),
            Kind::Stats => Ok(Request::Stats),
            Kind::Ping => Ok(Request::Ping),
            Kind::SetIf => manage::decode_set_if(c, limits).map(Request::SetIf),
            Kind::Incr => manage::decode_incr(c, limits).map(Request::Incr),
            Kind::Take => namespace_and_key(c, limits)
                .map(|(namespace, key)| Request::Take { namespace, key }),
            Kind::Touch => namespace_and_key(c, limits).and_then(|(namespace, key)| {
                Ok(Request::Touch {
                    namespace,
                    key,
                    ttl_ms: c.opt_u64("ttl_ms")?,
                })
            }),
            Kind::Scan => manage::decode_scan(c, limits).map(Request::Scan),
            Kind::DeleteMatching => manage::decode_scan(c, limits).map(Request::DeleteMatching),
            Kind::Namespaces => Ok(Request::Namespaces),
            Kind::Verify => crate::verify::decode_request(c).map(Request::Verify),
            Kind::Metrics => Ok(Request::Metrics),
            Kind::Lease => manage::decode_lease(c, limits).map(Request::Lease),
            Kind::LeaseFill => manage::decode_lease_fill(c, limits).map(Request::LeaseFill),
            Kind::LeaseRelease => namespace_and_key(c, limits).and_then(|(namespace, key)| {
                Ok(Request::LeaseRelease {
                    namespace,
                    key,
                    token: c.u64("token")?,
                })
            }),
            Kind::SetMany => batch::decode_set_many(c, limits).map(Request::SetMany),
            Kind::DeleteMany => batch::decode_delete_many(c, limits).map(Request::DeleteMany),
            Kind::HelloOk
            | Kind::Ok
            | Kind::Deleted
            | Kind::FetchHit
            | Kind::FetchMiss
            | Kind::StatsReply
            | Kind::Pong
            | Kind::Stored
            | Kind::Counter
            | Kind::Found
            | Kind::ScanPage
            | Kind::DeletedMany
            | Kind::NamespaceList
            | Kind::LeaseGranted
            | Kind::LeaseBusy
            | Kind::VerifyReport
            | Kind::MetricsText
            | Kind::BatchResults
            | Kind::Error => return None,
        };
        Some(request)
    }
}

/// The namespace rule, one for every side (the daemon's decoder, [`Request::validate`], the
/// client libraries): 1 to `max_namespace_bytes` bytes. An empty namespace is
/// [`ProtoError::EmptyNamespace`], a long one [`ProtoError::FieldTooLarge`].
pub fn validate_namespace(namespace: &str, limits: &Limits) -> Result<(), ProtoError> {
    if namespace.is_empty() {
        return Err(ProtoError::EmptyNamespace);
    }
    wire::check_len(
        Field::Namespace,
        namespace.len(),
        limits.max_namespace_bytes,
    )
}

pub(crate) fn check_namespace(namespace: &str, limits: &Limits) -> Result<(), ProtoError> {
    validate_namespace(namespace, limits)
}

fn check_set(s: &Set, limits: &Limits) -> Result<(), ProtoError> {
    check_namespace(&s.namespace, limits)?;
    wire::check_len(Field::Key, s.key.len(), limits.max_key_bytes)?;
    check_tags(&s.tags, limits)?;
    wire::check_len(Field::Value, s.value.len(), limits.max_value_bytes)
}

pub(crate) fn set_len(s: &Set) -> u64 {
    use wire::{bytes_len, opt_u64_len, str_list_len};
    bytes_len(s.namespace.len())
        + bytes_len(s.key.len())
        + opt_u64_len(s.ttl_ms)
        + 8
        + str_list_len(&s.tags)
        + bytes_len(s.value.len())
}

pub(crate) fn put_set(out: &mut Vec<u8>, s: &Set) -> Result<(), EncodeError> {
    put_str(out, Field::Namespace, &s.namespace, WIRE_MAX_LEN)?;
    wire::put_bytes(out, Field::Key, &s.key, WIRE_MAX_LEN)?;
    wire::put_opt_u64(out, s.ttl_ms);
    wire::put_u64(out, s.grace_ms);
    put_tags(out, &s.tags)?;
    wire::put_bytes(out, Field::Value, &s.value, WIRE_MAX_LEN)
}

pub(crate) fn check_tags(tags: &[String], limits: &Limits) -> Result<(), ProtoError> {
    wire::check_count(Field::Tags, tags.len(), limits.max_tags)?;
    tags.iter().try_for_each(|t| {
        wire::check_len(Field::Tag, t.len(), limits.max_tag_bytes)?;
        check_tag_grammar(t)
    })
}

/// The table's tag grammar, [`cachekit_shm::validate_tag`], checked where a tag enters the
/// protocol (decoding, [`Request::validate`]) so a request the table would refuse never gets past
/// the decoder. Its length limit is a size error like `max_tag_bytes`; the rest (empty segments,
/// too deep) is an invalid argument.
pub(crate) fn check_tag_grammar(tag: &str) -> Result<(), ProtoError> {
    match cachekit_shm::validate_tag(tag) {
        Ok(_) => Ok(()),
        Err(cachekit_shm::TagError::TooLong { len, max }) => Err(ProtoError::FieldTooLarge {
            field: Field::Tag,
            len,
            limit: max,
        }),
        Err(e) => Err(ProtoError::InvalidTag {
            message: e.to_string(),
        }),
    }
}

pub(crate) fn put_str(
    out: &mut Vec<u8>,
    field: Field,
    s: &str,
    limit: usize,
) -> Result<(), EncodeError> {
    wire::put_bytes(out, field, s.as_bytes(), limit)
}

pub(crate) fn put_tags(out: &mut Vec<u8>, tags: &[String]) -> Result<(), EncodeError> {
    wire::put_count(out, Field::Tags, tags.len(), WIRE_MAX_COUNT)?;
    tags.iter()
        .try_for_each(|t| put_str(out, Field::Tag, t, WIRE_MAX_LEN))
}

pub(crate) fn namespace(c: &mut Cursor<'_>, limits: &Limits) -> Result<String, ProtoError> {
    let namespace = c.str(Field::Namespace, limits.max_namespace_bytes)?;
    validate_namespace(namespace, limits)?;
    Ok(namespace.to_owned())
}

pub(crate) fn namespace_and_key(
    c: &mut Cursor<'_>,
    limits: &Limits,
) -> Result<(String, Vec<u8>), ProtoError> {
    let namespace = namespace(c, limits)?;
    let key = c.bytes(Field::Key, limits.max_key_bytes)?.to_vec();
    Ok((namespace, key))
}

pub(crate) fn tags(c: &mut Cursor<'_>, limits: &Limits) -> Result<Vec<String>, ProtoError> {
    // Each tag takes at least its 4-byte length prefix.
    let (count, capacity) = c.count(Field::Tags, limits.max_tags, 4)?;
    let mut tags = Vec::with_capacity(capacity);
    for _ in 0..count {
        let tag = c.str(Field::Tag, limits.max_tag_bytes)?;
        check_tag_grammar(tag)?;
        tags.push(tag.to_owned());
    }
    Ok(tags)
}

fn decode_hello(c: &mut Cursor<'_>) -> Result<Request, ProtoError> {
    let min_version = c.u8("min_version")?;
    let max_version = c.u8("max_version")?;
    let client_pid = c.u32("client_pid")?;
    let client_name = c.str(Field::ClientName, MAX_CLIENT_NAME_BYTES)?.to_owned();
    Ok(Request::Hello(Hello {
        min_version,
        max_version,
        client_pid,
        client_name,
    }))
}

fn decode_set(c: &mut Cursor<'_>, limits: &Limits) -> Result<Request, ProtoError> {
    decode_set_body(c, limits).map(Request::Set)
}

pub(crate) fn decode_set_body(c: &mut Cursor<'_>, limits: &Limits) -> Result<Set, ProtoError> {
    let (namespace, key) = namespace_and_key(c, limits)?;
    let ttl_ms = c.opt_u64("ttl_ms")?;
    let grace_ms = c.u64("grace_ms")?;
    let tags = tags(c, limits)?;
    let value = c.bytes(Field::Value, limits.max_value_bytes)?.to_vec();
    Ok(Set {
        namespace,
        key,
        value,
        ttl_ms,
        grace_ms,
        tags,
    })
}

fn decode_invalidate(c: &mut Cursor<'_>, limits: &Limits) -> Result<Request, ProtoError> {
    let namespace = namespace(c, limits)?;
    let tags = tags(c, limits)?;
    let exact = c.flag("exact")?;
    Ok(Request::Invalidate {
        namespace,
        tags,
        exact,
    })
}
