//! Errors of the table, one enum per operation.

use std::io;

/// Why an insert was refused. Nothing was written.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InsertError {
    /// The key is longer than the table supports.
    #[error(
        "key is {len} bytes, over the limit of {max} bytes; use a shorter key (hash long keys)"
    )]
    KeyTooLarge {
        /// Length of the key.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The namespace name is longer than the table supports.
    #[error("namespace is {len} bytes, over the limit of {max} bytes; use a shorter namespace")]
    NamespaceTooLarge {
        /// Length of the namespace.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The value is larger than `max_value_bytes`.
    #[error("value is {len} bytes, over max_value_bytes = {max}; raise max_value_bytes in the daemon configuration (cachekitd --max-value-bytes)")]
    ValueTooLarge {
        /// Length of the value.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// A tag is malformed or too long or deep.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// More tags than an entry may carry.
    #[error(
        "{count} tags on one entry, over the limit of {max}; group them under a common parent tag"
    )]
    TooManyTags {
        /// Number of tags given.
        count: usize,
        /// The limit.
        max: usize,
    },
}

/// Why a tag path was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TagError {
    /// The tag is empty or has an empty segment (`a//b`, `/a`, `a/`).
    #[error("tag {tag:?} has an empty segment; write tags as non-empty segments joined by '/', like \"posts/123\"")]
    EmptySegment {
        /// The offending tag.
        tag: String,
    },
    /// The tag is longer than the limit.
    #[error("tag is {len} bytes, over the limit of {max} bytes")]
    TooLong {
        /// Length of the tag.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The tag has more segments than the limit.
    #[error("tag {tag:?} has {depth} segments, over the limit of {max}")]
    TooDeep {
        /// The offending tag.
        tag: String,
        /// Its depth.
        depth: usize,
        /// The limit.
        max: usize,
    },
}

/// Why a table could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The configuration is inconsistent.
    #[error("invalid table configuration: {0}")]
    Config(String),
    /// The operating system refused to create or map the segment.
    #[error("cannot create the shared segment: {0}")]
    Io(#[from] io::Error),
}

/// Why a reader could not attach to a segment.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The segment does not start with the table magic: not a cachekit segment.
    #[error("not a cachekit table segment (bad magic); is the daemon the same program?")]
    BadMagic,
    /// The segment was written by an incompatible layout version.
    #[error("segment layout version {found}, this library reads version {expected}; upgrade the client library or the daemon so they match")]
    UnsupportedVersion {
        /// Version in the segment.
        found: u64,
        /// Version this library reads.
        expected: u64,
    },
    /// The header is inconsistent (corrupted segment).
    #[error("corrupted segment header: {0}; restart cachekitd to rebuild the segment")]
    Corrupt(&'static str),
    /// The operating system refused to map the segment.
    #[error("cannot map the shared segment: {0}")]
    Io(#[from] io::Error),
}
