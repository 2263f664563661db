//! What a get returns: the value and its metadata.

use cachekit_proto::FetchHit;
use cachekit_shm::HitMeta;

/// Where a hit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// Read straight from the shared segment: no syscall, no socket.
    Segment,
    /// Answered by the daemon over the socket (FETCH), because the segment did not have the key
    /// or could not be trusted (stale heartbeat).
    Daemon,
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
}

impl HitInfo {
    pub(crate) fn from_segment(m: &HitMeta, len: usize) -> HitInfo {
        HitInfo {
            len,
            created_ms: m.created_ms,
            expires_ms: m.expires_ms,
            grace_until_ms: m.grace_until_ms,
            stale: m.stale,
            source: Source::Segment,
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
        }
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
