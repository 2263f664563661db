//! What a get returns: the value and its metadata.

use cachekit_envelope::parse_integer;
use cachekit_proto::FetchHit;
use cachekit_shm::HitMeta;

/// Whether a stored envelope is an integer counter (its header's `FLAG_INTEGER`). Called on
/// the hit path after the envelope decoded, which checked its header already: the flags byte
/// is read, not the header parsed a second time.
pub(crate) fn is_integer(stored: &[u8]) -> bool {
    stored
        .get(3)
        .is_some_and(|f| f & cachekit_envelope::FLAG_INTEGER != 0)
}

/// Where a hit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Read straight from the shared segment: no syscall, no socket.
    Segment,
    /// Answered by the daemon over the socket (FETCH), because the segment did not have the key
    /// or could not be trusted (stale heartbeat).
    Daemon,
    /// Computed by this very call ([`Client::query`](crate::Client::query)): not read from the
    /// cache.
    Computed,
}

/// Metadata of a hit. Times are Unix milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HitInfo {
    /// Length of the decoded value in bytes.
    pub len: usize,
    /// When the entry was written.
    pub created_ms: u64,
    /// When it stops being fresh; `None` = never.
    pub expires_ms: Option<u64>,
    /// When it stops being servable at all; `None` = no grace period (or no expiry).
    pub grace_until_ms: Option<u64>,
    /// Past `expires_ms`, within grace: the value may be served, and the caller should refresh
    /// it (stale-while-revalidate).
    pub stale: bool,
    /// Where the hit came from.
    pub source: Source,
    /// The entry's version on this host, for [`Client::cas`](crate::Client::cas); 0 when
    /// unknown (a value answered from Redis that the daemon did not keep).
    pub version: u64,
    /// The value is an integer counter (written by `incr`, or stored as an integer): its bytes
    /// are the ASCII decimal of an i64 ([`Value::as_i64`]).
    pub integer: bool,
}

impl HitInfo {
    pub(crate) fn from_segment(m: &HitMeta, len: usize, stored: &[u8]) -> HitInfo {
        HitInfo {
            len,
            created_ms: m.created_ms,
            expires_ms: m.expires_ms,
            grace_until_ms: m.grace_until_ms,
            stale: m.stale,
            source: Source::Segment,
            version: m.version,
            integer: is_integer(stored),
        }
    }

    pub(crate) fn from_fetch(h: &FetchHit, len: usize) -> HitInfo {
        HitInfo {
            len,
            created_ms: h.created_ms,
            expires_ms: h.expires_ms,
            grace_until_ms: h.grace_until_ms,
            stale: h.stale,
            source: Source::Daemon,
            version: h.version,
            integer: is_integer(&h.value),
        }
    }

    /// Whether the value is fresh (not [`stale`](HitInfo::stale)).
    pub fn is_fresh(&self) -> bool {
        !self.stale
    }
}

/// A cached value: the decoded bytes and the entry's metadata.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Value {
    /// The value as given to `set`.
    pub bytes: Vec<u8>,
    /// When the entry was written, Unix ms.
    pub created_ms: u64,
    /// When it stops being fresh, Unix ms; `None` = never.
    pub expires_ms: Option<u64>,
    /// When it stops being servable at all, Unix ms; `None` = no grace period.
    pub grace_until_ms: Option<u64>,
    /// Past expiry, within grace: serve it and refresh it.
    pub stale: bool,
    /// Where the hit came from.
    pub source: Source,
    /// The entry's version on this host (see [`HitInfo::version`]).
    pub version: u64,
    /// The value is an integer counter (see [`HitInfo::integer`]).
    pub integer: bool,
}

impl Value {
    pub(crate) fn new(bytes: Vec<u8>, info: HitInfo) -> Value {
        Value {
            bytes,
            created_ms: info.created_ms,
            expires_ms: info.expires_ms,
            grace_until_ms: info.grace_until_ms,
            stale: info.stale,
            source: info.source,
            version: info.version,
            integer: info.integer,
        }
    }

    /// The value as an i64, when its bytes are one in canonical ASCII decimal (a counter's
    /// are; so is a value set as `b"42"`).
    pub fn as_i64(&self) -> Option<i64> {
        parse_integer(&self.bytes)
    }

    /// The metadata alone.
    pub fn info(&self) -> HitInfo {
        HitInfo {
            len: self.bytes.len(),
            created_ms: self.created_ms,
            expires_ms: self.expires_ms,
            grace_until_ms: self.grace_until_ms,
            stale: self.stale,
            source: self.source,
            version: self.version,
            integer: self.integer,
        }
    }

    /// Whether the value is fresh (not [`stale`](Value::stale)).
    pub fn is_fresh(&self) -> bool {
        !self.stale
    }

    /// The bytes, dropping the metadata.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        &self.bytes
    }
}
