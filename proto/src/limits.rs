//! Size limits, checked by the decoder before it allocates anything.
//!
//! The limits of what the table stores (key, namespace, tags) are the table's own constants from
//! `cachekit_shm`, not copies: a daemon can never announce more than its table holds by default.

use crate::header::HEADER_LEN;

/// Bytes a stored (encoded) value may exceed the daemon's configured `max_value_bytes` by: room
/// for the envelope header the client puts in front of every value (16 bytes,
/// `cachekit_envelope::HEADER_LEN`; the client crate asserts at compile time that it fits) and
/// for what later envelope versions add (an AES-GCM nonce and tag, 28 bytes), with room to spare.
///
/// Both ends agree on it: a daemon run with `--max-value-bytes N` stores values of up to
/// `N + ENVELOPE_HEADROOM` bytes and announces that in HELLO_OK's `max_value_bytes`; a client
/// subtracts it to get the largest value it may encode.
pub const ENVELOPE_HEADROOM: usize = 64;

/// Longest `client_name` in HELLO, in bytes. Fixed by the protocol: the name is informational.
pub const MAX_CLIENT_NAME_BYTES: usize = 255;
/// Longest counter name in STATS_REPLY, in bytes. Fixed by the protocol.
pub const MAX_STAT_NAME_BYTES: usize = 255;
/// Most counters in one STATS_REPLY. Fixed by the protocol; a full reply stays under 300 KiB.
pub const MAX_STATS: usize = 1024;
/// Longest message in an ERROR reply, in bytes. Fixed by the protocol; [`Reply::error`] truncates to it.
///
/// [`Reply::error`]: crate::Reply::error
pub const MAX_ERROR_MESSAGE_BYTES: usize = 4096;
/// Longest key pattern in SCAN and DELETE_MATCHING, in bytes. Fixed by the protocol: room for
/// the longest key with every byte escaped.
pub const MAX_PATTERN_BYTES: usize = 2 * cachekit_shm::MAX_KEY_BYTES;
/// Most items in one SCAN_PAGE (and the largest `count` a SCAN may ask for). Fixed by the
/// protocol; the daemon also ends a page early to keep the frame under `max_frame_bytes`.
pub const MAX_SCAN_PAGE: usize = 1000;
/// Most namespaces in one NAMESPACE_LIST. Fixed by the protocol (the daemon lists the
/// largest first when a table holds more).
pub const MAX_NAMESPACE_LIST: usize = 10_000;

/// Size limits of one connection. The daemon owns the values (they come from its configuration and
/// reach clients in HELLO_OK); both ends check them while decoding, before allocating.
///
/// The defaults and why:
///
/// | field | default | reason |
/// |---|---|---|
/// | `max_key_bytes` | 4096 ([`cachekit_shm::MAX_KEY_BYTES`]) | keys are names, not data; bounds the per-entry index work |
/// | `max_namespace_bytes` | 127 ([`cachekit_shm::MAX_NAMESPACE_BYTES`]) | a namespace is an application name; fits the entry header's 7-bit length field |
/// | `max_value_bytes` | 1 MiB (1,048,576) | an already-encoded envelope; larger values belong in Redis or a blob store |
/// | `max_tags` | 8 ([`cachekit_shm::MAX_TAGS`]) | an entry records one generation per tag prefix, so tags cost read time |
/// | `max_tag_bytes` | 1024 ([`cachekit_shm::MAX_TAG_BYTES`]) | tag paths such as `posts/123/comments` |
/// | `max_frame_bytes` | 1 MiB + 64 KiB (1,114,112) | at least [`Limits::largest_frame`] (1,061,066 with the other defaults) |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Largest whole frame (12-byte header plus body) accepted. A length prefix announcing more is
    /// rejected as soon as the header is read, without reading or buffering the body.
    pub max_frame_bytes: usize,
    /// Longest key, in bytes.
    pub max_key_bytes: usize,
    /// Longest namespace, in bytes of UTF-8.
    pub max_namespace_bytes: usize,
    /// Longest value (SET and FETCH_HIT), in bytes.
    pub max_value_bytes: usize,
    /// Most tags in one SET or INVALIDATE.
    pub max_tags: usize,
    /// Longest tag, in bytes of UTF-8.
    pub max_tag_bytes: usize,
}

impl Limits {
    /// The default limits (see the table on [`Limits`]).
    pub const DEFAULT: Limits = Limits {
        max_frame_bytes: (1 << 20) + (64 << 10),
        max_key_bytes: cachekit_shm::MAX_KEY_BYTES,
        max_namespace_bytes: cachekit_shm::MAX_NAMESPACE_BYTES,
        max_value_bytes: 1 << 20,
        max_tags: cachekit_shm::MAX_TAGS,
        max_tag_bytes: cachekit_shm::MAX_TAG_BYTES,
    };

    /// Size in bytes of the largest frame that a message within these limits can take, ignoring
    /// `max_frame_bytes` itself. Set `max_frame_bytes` at least this high, or some messages that
    /// respect every field limit will still be refused as too large.
    ///
    /// The largest message is a SET with every field at its limit, unless the fixed-size STATS_REPLY
    /// (273,422 bytes) is larger:
    /// `12 + (4 + ns) + (4 + key) + 9 + 8 + 2 + tags * (4 + tag) + (4 + value)`.
    pub fn largest_frame(&self) -> u64 {
        let n = |v: usize| v as u64;
        let header = n(HEADER_LEN);
        let field = |len: usize| 4u64.saturating_add(n(len));
        let set = header
            .saturating_add(field(self.max_namespace_bytes))
            .saturating_add(field(self.max_key_bytes))
            .saturating_add(9 + 8 + 2)
            .saturating_add(n(self.max_tags).saturating_mul(field(self.max_tag_bytes)))
            .saturating_add(field(self.max_value_bytes));
        let stats = header + 2 + n(MAX_STATS) * (4 + n(MAX_STAT_NAME_BYTES) + 8);
        let error = header + 2 + 4 + n(MAX_ERROR_MESSAGE_BYTES);
        // INVALIDATE, FETCH_HIT, HELLO and HELLO_OK are never larger than a SET or the fixed
        // STATS_REPLY bound: INVALIDATE is a SET without key and value, FETCH_HIT carries 31 bytes
        // besides its value (as many as the smallest SET), HELLO is 277 bytes and HELLO_OK 72.
        set.max(stats).max(error)
    }
}

// A daemon with the default limits must be able to store what they let through: the largest
// default value plus the headroom fits the table's 24-bit value length.
const _: () =
    assert!(Limits::DEFAULT.max_value_bytes + ENVELOPE_HEADROOM <= cachekit_shm::VALUE_LEN_CEILING);
// HELLO_OK carries `max_tags` in a u16.
const _: () = assert!(Limits::DEFAULT.max_tags <= u16::MAX as usize);

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_frame_limit_fits_the_largest_default_message() {
        let limits = Limits::DEFAULT;
        assert_eq!(limits.largest_frame(), 1_061_066);
        assert!(limits.max_frame_bytes as u64 >= limits.largest_frame());
        assert_eq!(Limits::default(), Limits::DEFAULT);
    }

    #[test]
    fn stats_bound_dominates_tiny_limits() {
        let tiny = Limits {
            max_frame_bytes: 0,
            max_key_bytes: 0,
            max_namespace_bytes: 0,
            max_value_bytes: 0,
            max_tags: 0,
            max_tag_bytes: 0,
        };
        assert_eq!(tiny.largest_frame(), 273_422);
    }

    #[test]
    fn largest_frame_saturates() {
        let huge = Limits {
            max_tags: usize::MAX,
            max_tag_bytes: usize::MAX,
            ..Limits::DEFAULT
        };
        assert_eq!(huge.largest_frame(), u64::MAX);
    }
}
