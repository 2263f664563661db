//! Typed errors: [`ProtoError`] for bytes that break the protocol, [`EncodeError`] for messages that
//! cannot be put on the wire.

use std::fmt;

use crate::header::{Kind, MIN_PROTOCOL_VERSION, PROTOCOL_VERSION};
use crate::reply::ErrorCode;

/// A length-limited field, named in size and UTF-8 errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Field {
    /// A namespace (SET, DELETE, INVALIDATE, CLEAR, FETCH); limit `max_namespace_bytes`.
    Namespace,
    /// A key (SET, DELETE, FETCH); limit `max_key_bytes`.
    Key,
    /// A value (SET, FETCH_HIT); limit `max_value_bytes`.
    Value,
    /// One tag (SET, INVALIDATE); limit `max_tag_bytes`.
    Tag,
    /// The list of tags (SET, INVALIDATE); limit `max_tags`.
    Tags,
    /// The client name in HELLO; limit [`MAX_CLIENT_NAME_BYTES`](crate::MAX_CLIENT_NAME_BYTES).
    ClientName,
    /// A counter name in STATS_REPLY; limit [`MAX_STAT_NAME_BYTES`](crate::MAX_STAT_NAME_BYTES).
    StatName,
    /// The list of counters in STATS_REPLY; limit [`MAX_STATS`](crate::MAX_STATS).
    Stats,
    /// The message of an ERROR reply; limit
    /// [`MAX_ERROR_MESSAGE_BYTES`](crate::MAX_ERROR_MESSAGE_BYTES).
    ErrorMessage,
    /// A key pattern (SCAN, DELETE_MATCHING); limit
    /// [`MAX_PATTERN_BYTES`](crate::MAX_PATTERN_BYTES).
    Pattern,
    /// The items of a SCAN_PAGE; limit [`MAX_SCAN_PAGE`](crate::MAX_SCAN_PAGE).
    Items,
    /// The lines of a NAMESPACE_LIST; limit [`MAX_NAMESPACE_LIST`](crate::MAX_NAMESPACE_LIST).
    Namespaces,
    /// The text of a METRICS_TEXT; limit `max_frame_bytes`.
    MetricsText,
    /// The items of a SET_MANY or DELETE_MANY, or the results of a BATCH_RESULTS; limit
    /// [`MAX_BATCH_ITEMS`](crate::MAX_BATCH_ITEMS).
    BatchItems,
    /// The message of one BATCH_RESULTS item; limit
    /// [`MAX_BATCH_MESSAGE_BYTES`](crate::MAX_BATCH_MESSAGE_BYTES).
    ItemMessage,
}

impl Field {
    /// The field's name as used in error messages.
    pub const fn name(self) -> &'static str {
        match self {
            Field::Namespace => "namespace",
            Field::Key => "key",
            Field::Value => "value",
            Field::Tag => "tag",
            Field::Tags => "tags",
            Field::ClientName => "client_name",
            Field::StatName => "stat name",
            Field::Stats => "stats",
            Field::ErrorMessage => "error message",
            Field::Pattern => "pattern",
            Field::Items => "items",
            Field::Namespaces => "namespaces",
            Field::MetricsText => "metrics text",
            Field::BatchItems => "batch items",
            Field::ItemMessage => "item message",
        }
    }

    /// The name of the limit that bounds this field: a [`Limits`](crate::Limits) field or a constant.
    pub const fn limit_name(self) -> &'static str {
        match self {
            Field::Namespace => "max_namespace_bytes",
            Field::Key => "max_key_bytes",
            Field::Value => "max_value_bytes",
            Field::Tag => "max_tag_bytes",
            Field::Tags => "max_tags",
            Field::ClientName => "MAX_CLIENT_NAME_BYTES",
            Field::StatName => "MAX_STAT_NAME_BYTES",
            Field::Stats => "MAX_STATS",
            Field::ErrorMessage => "MAX_ERROR_MESSAGE_BYTES",
            Field::Pattern => "MAX_PATTERN_BYTES",
            Field::Items => "MAX_SCAN_PAGE",
            Field::Namespaces => "MAX_NAMESPACE_LIST",
            Field::MetricsText => "max_frame_bytes",
            Field::BatchItems => "MAX_BATCH_ITEMS",
            Field::ItemMessage => "MAX_BATCH_MESSAGE_BYTES",
        }
    }

    /// What to do about a value over the limit.
    const fn advice(self) -> &'static str {
        match self {
            // The tag limits are the table's (`cachekit_shm`): no daemon setting raises them.
            Field::Tag => "use a shorter tag path",
            Field::Tags => "group them under a common parent tag",
            Field::Namespace | Field::Key | Field::Value => {
                "shrink it, or raise the limit in the daemon's configuration (clients learn it from HELLO_OK)"
            }
            Field::ClientName
            | Field::StatName
            | Field::Stats
            | Field::ErrorMessage
            | Field::Pattern
            | Field::Items
            | Field::Namespaces
            | Field::MetricsText
            | Field::ItemMessage => "this is a fixed protocol limit",
            Field::BatchItems => {
                "send fewer items per request (the client libraries split a longer batch)"
            }
        }
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Bytes that break the protocol: what the decoder (and [`Request::validate`] /
/// [`Reply::validate`]) report. Decoding never panics and never allocates before the check that
/// produces one of these.
///
/// [`Request::validate`]: crate::Request::validate
/// [`Reply::validate`]: crate::Reply::validate
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The header does not carry the magic `"CK"`: the peer does not speak this protocol, or the
    /// stream lost its framing.
    #[error(
        "bad magic 0x{found:04x} at bytes 4..6 of the frame header, expected 0x{:04x} (\"CK\"): \
         the peer is not speaking the cachekit protocol or the stream is out of sync",
        crate::MAGIC
    )]
    BadMagic {
        /// The two bytes found, read as a little-endian u16.
        found: u16,
    },
    /// The header carries a protocol version this build does not speak.
    #[error(
        "protocol version {found} is not supported: this build speaks versions \
         {MIN_PROTOCOL_VERSION}..={PROTOCOL_VERSION}; upgrade the older side"
    )]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// The header names a message kind this protocol version does not define.
    #[error("unknown message kind 0x{kind:02x} in protocol version {PROTOCOL_VERSION}")]
    UnknownKind {
        /// The kind byte found.
        kind: u8,
    },
    /// The length prefix announces a frame over `max_frame_bytes`; rejected from the header alone,
    /// before the body is read.
    #[error(
        "frame of {frame_bytes} bytes (12-byte header + body) is over max_frame_bytes = \
         {max_frame_bytes}; shrink the message or raise max_frame_bytes on both ends"
    )]
    FrameTooLarge {
        /// Header plus announced body, in bytes.
        frame_bytes: u64,
        /// The limit in force.
        max_frame_bytes: usize,
    },
    /// A body ends in the middle of a field (its length prefix announced fewer bytes than the
    /// fields need).
    #[error(
        "{kind} body is truncated in field `{field}`: the field needs {needed} bytes, only \
         {remaining} are left in the body"
    )]
    Truncated {
        /// The message being decoded.
        kind: Kind,
        /// The field that did not fit.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the body.
        remaining: usize,
    },
    /// A body has bytes left over after its last field.
    #[error("{kind} body has {extra} unexpected trailing bytes after its last field")]
    TrailingBytes {
        /// The message being decoded.
        kind: Kind,
        /// Bytes left over.
        extra: usize,
    },
    /// A string or byte field is longer than its limit.
    #[error("{field} is {len} bytes, over {} = {limit}; {}", field.limit_name(), field.advice())]
    FieldTooLarge {
        /// The field.
        field: Field,
        /// Its length in bytes.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A list has more items than its limit.
    #[error("{count} {field}, over {} = {limit}; {}", field.limit_name(), field.advice())]
    TooManyItems {
        /// The list.
        field: Field,
        /// Its item count.
        count: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A string field is not valid UTF-8 (keys and values are bytes; namespaces, tags and names
    /// are strings).
    #[error("{field} is not valid UTF-8 (first bad byte at offset {valid_up_to} of the field)")]
    InvalidUtf8 {
        /// The field.
        field: Field,
        /// Length of the valid prefix.
        valid_up_to: usize,
    },
    /// A tag (SET, INVALIDATE) breaks the tag grammar of the table, [`cachekit_shm::validate_tag`]:
    /// an empty segment (`a//b`, `/a`, `a/`, the empty tag) or more segments than
    /// [`cachekit_shm::MAX_TAG_DEPTH`]. The frame is well-formed; the argument is refused.
    #[error("{message}")]
    InvalidTag {
        /// The grammar's explanation, naming the tag and how to write it.
        message: String,
    },
    /// A namespace (SET, DELETE, INVALIDATE, CLEAR, FETCH) is empty: every namespace names an
    /// application. The one rule for every side: the decoder, [`Request::validate`] and the
    /// client libraries all apply [`validate_namespace`](crate::validate_namespace).
    ///
    /// [`Request::validate`]: crate::Request::validate
    #[error("namespace is empty; name it after the application, like \"sessions\"")]
    EmptyNamespace,
    /// A boolean or option-presence byte is neither 0 nor 1.
    #[error("{kind} field `{field}` must be 0 or 1, found {value}")]
    InvalidFlag {
        /// The message being decoded.
        kind: Kind,
        /// The field.
        field: &'static str,
        /// The byte found.
        value: u8,
    },
    /// A field holds a value outside its documented range (a SET_IF condition other than 0, 1
    /// or 2; a SCAN `count` over [`MAX_SCAN_PAGE`](crate::MAX_SCAN_PAGE)).
    #[error("field `{field}` cannot be {value}; see the protocol documentation for its range")]
    InvalidValue {
        /// The field.
        field: &'static str,
        /// The value found.
        value: u64,
    },
}

impl ProtoError {
    /// The [`ErrorCode`] a daemon should answer with when a request fails to decode with this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtoError::UnsupportedVersion { .. } => ErrorCode::UnsupportedVersion,
            ProtoError::FrameTooLarge { .. }
            | ProtoError::FieldTooLarge { .. }
            | ProtoError::TooManyItems { .. } => ErrorCode::TooLarge,
            ProtoError::InvalidTag { .. }
            | ProtoError::EmptyNamespace
            | ProtoError::InvalidValue { .. } => ErrorCode::InvalidArgument,
            ProtoError::BadMagic { .. }
            | ProtoError::UnknownKind { .. }
            | ProtoError::Truncated { .. }
            | ProtoError::TrailingBytes { .. }
            | ProtoError::InvalidUtf8 { .. }
            | ProtoError::InvalidFlag { .. } => ErrorCode::BadFrame,
        }
    }
}

/// A message that cannot be put on the wire. Only the wire format's own bounds (u32 lengths, u16
/// counts) and the fixed protocol limits are checked here; check the connection's [`Limits`]
/// with [`Request::validate`] / [`Reply::validate`] before encoding.
///
/// [`Limits`]: crate::Limits
/// [`Request::validate`]: crate::Request::validate
/// [`Reply::validate`]: crate::Reply::validate
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A string or byte field is longer than its wire length prefix or fixed protocol limit allows.
    #[error("cannot encode {field} of {len} bytes: the protocol allows at most {limit}")]
    FieldTooLarge {
        /// The field.
        field: Field,
        /// Its length in bytes.
        len: usize,
        /// The most the protocol can carry.
        limit: usize,
    },
    /// A list has more items than its wire count or fixed protocol limit allows.
    #[error("cannot encode {field} with {count} items: the protocol allows at most {limit}")]
    TooManyItems {
        /// The list.
        field: Field,
        /// Its item count.
        count: usize,
        /// The most the protocol can carry.
        limit: usize,
    },
    /// A [`Limits`](crate::Limits) value in HELLO_OK does not fit its wire field.
    #[error("cannot encode {setting} = {value} in HELLO_OK: its wire field holds at most {max}")]
    LimitOutOfRange {
        /// The `Limits` field.
        setting: &'static str,
        /// Its value.
        value: usize,
        /// The largest value the wire field holds.
        max: u64,
    },
    /// The body would be longer than the u32 length prefix can announce.
    #[error("cannot encode a {body_len}-byte body: the length prefix holds at most 4294967295")]
    BodyTooLarge {
        /// The body length.
        body_len: usize,
    },
}
