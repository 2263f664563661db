//! Checks run before anything is sent, with the limits the daemon announced in HELLO_OK (or the
//! protocol defaults before the first HELLO), so a caller gets an error naming the limit instead
//! of an ERROR round trip.
//!
//! Tags are not checked here: the protocol's [`Request::validate`](cachekit_proto::Request::validate)
//! (run on every write before it is sent, to the daemon or to Redis directly) applies the
//! `max_tags` and `max_tag_bytes` limits and the table's tag grammar, exactly as the daemon's
//! decoder does.

use cachekit_envelope::DEFAULT_MAX_VALUE_BYTES;
use cachekit_proto::{Limits, ENVELOPE_HEADROOM};

use crate::error::Error;

// The headroom the daemon grants over its configured limit must hold this client's envelope
// header, or a value the client accepts could be refused after encoding.
const _: () = assert!(ENVELOPE_HEADROOM >= cachekit_envelope::HEADER_LEN);

/// Where the value limit in force comes from (for error messages).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LimitSource {
    /// The attached daemon's `--max-value-bytes`.
    Daemon,
    /// The client's own, smaller, `envelope.max_value_bytes`.
    Client,
    /// No daemon attached yet: the configured `envelope.max_value_bytes`.
    NotAttached,
}

/// The largest value (in bytes before the envelope) a client encodes and decodes.
///
/// The rule ([`ClientOptions::envelope`](crate::ClientOptions::envelope) documents it):
/// - before the first HELLO_OK: `envelope.max_value_bytes` as configured;
/// - attached: the daemon's limit (its HELLO_OK `max_value_bytes` minus
///   [`ENVELOPE_HEADROOM`]), or `envelope.max_value_bytes` when it was changed from the default
///   ([`DEFAULT_MAX_VALUE_BYTES`]) to something smaller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ValueLimit {
    pub(crate) max: usize,
    pub(crate) source: LimitSource,
}

impl ValueLimit {
    pub(crate) fn new(configured: usize, daemon: Option<&Limits>) -> ValueLimit {
        let Some(daemon) = daemon else {
            return ValueLimit {
                max: configured,
                source: LimitSource::NotAttached,
            };
        };
        let daemons = daemon.max_value_bytes.saturating_sub(ENVELOPE_HEADROOM);
        if configured != DEFAULT_MAX_VALUE_BYTES && configured < daemons {
            ValueLimit {
                max: configured,
                source: LimitSource::Client,
            }
        } else {
            ValueLimit {
                max: daemons,
                source: LimitSource::Daemon,
            }
        }
    }

    /// A value of `len` bytes is within the limit, or [`Error::TooLarge`] naming it.
    pub(crate) fn check(&self, len: usize) -> Result<(), Error> {
        if len <= self.max {
            return Ok(());
        }
        let max = self.max;
        let why = match self.source {
            LimitSource::Daemon => {
                "the daemon's limit; store a smaller value or raise max_value_bytes in the \
                 daemon's configuration (cachekitd --max-value-bytes)"
            }
            LimitSource::Client => {
                "this client's envelope.max_value_bytes; store a smaller value or raise it"
            }
            LimitSource::NotAttached => {
                "this client's limit until it has reached cachekitd and adopted the daemon's \
                 own; store a smaller value, or connect first"
            }
        };
        Err(Error::TooLarge {
            message: format!("value is {len} bytes, over max_value_bytes = {max} ({why})"),
        })
    }
}

/// A namespace: 1 to `max_namespace_bytes` bytes (and within the table's own limit).
pub(crate) fn check_namespace(ns: &str, limits: &Limits) -> Result<(), Error> {
    // The protocol's one rule (the daemon's decoder applies it too); the length is checked
    // below against the table's limit as well.
    if let Err(e @ cachekit_proto::ProtoError::EmptyNamespace) =
        cachekit_proto::validate_namespace(ns, &cachekit_proto::Limits::DEFAULT)
    {
        return Err(Error::InvalidArgument {
            message: e.to_string(),
        });
    }
    let max = limits
        .max_namespace_bytes
        .min(cachekit_shm::MAX_NAMESPACE_BYTES);
    if ns.len() > max {
        return Err(Error::TooLarge {
            message: format!(
                "namespace is {} bytes, over max_namespace_bytes = {max}; use a shorter namespace",
                ns.len()
            ),
        });
    }
    Ok(())
}

/// A key: at most `max_key_bytes` bytes (and within the table's own limit).
pub(crate) fn check_key(key: &[u8], limits: &Limits) -> Result<(), Error> {
    let max = limits.max_key_bytes.min(cachekit_shm::MAX_KEY_BYTES);
    if key.len() > max {
        return Err(Error::TooLarge {
            message: format!(
                "key is {} bytes, over max_key_bytes = {max}; use a shorter key (hash long keys)",
                key.len()
            ),
        });
    }
    Ok(())
}

/// An encoded value: at most the daemon's `max_value_bytes`.
pub(crate) fn check_encoded_value(
    original_len: usize,
    encoded_len: usize,
    limits: &Limits,
) -> Result<(), Error> {
    if encoded_len > limits.max_value_bytes {
        return Err(Error::TooLarge {
            message: format!(
                "value is {encoded_len} bytes encoded ({original_len} bytes before the \
                 envelope), over the daemon's max_value_bytes = {}; store a smaller value or \
                 raise max_value_bytes in the daemon's configuration",
                limits.max_value_bytes
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits::DEFAULT;

    #[test]
    fn namespaces() {
        check_namespace("app", &L).unwrap();
        check_namespace(&"n".repeat(127), &L).unwrap();
        assert!(matches!(
            check_namespace("", &L),
            Err(Error::InvalidArgument { .. })
        ));
        let e = check_namespace(&"n".repeat(128), &L).unwrap_err();
        assert!(e.to_string().contains("max_namespace_bytes = 127"), "{e}");
    }

    #[test]
    fn keys() {
        check_key(b"", &L).unwrap();
        check_key(&[0; 4096], &L).unwrap();
        let e = check_key(&[0; 4097], &L).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }));
        assert!(e.to_string().contains("max_key_bytes = 4096"), "{e}");
        let small = Limits {
            max_key_bytes: 8,
            ..L
        };
        assert!(check_key(b"123456789", &small).is_err());
    }

    /// The tag checks callers see come from the protocol's validation of the request (this
    /// crate has none of its own): the same kinds and messages as the daemon's decoder.
    #[test]
    fn tags_are_checked_by_the_protocol() {
        let check = |tags: &[&str]| {
            cachekit_proto::Request::Invalidate {
                namespace: "app".into(),
                tags: tags.iter().map(|t| t.to_string()).collect(),
                exact: false,
            }
            .validate(&L)
            .map_err(Error::from_validation)
        };
        check(&["posts/123/comments"]).unwrap();
        let many: Vec<String> = (0..9).map(|i| format!("t{i}")).collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = check(&many).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            "too large: 9 tags, over max_tags = 8; group them under a common parent tag"
        );
        let e = check(&["a//b"]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        assert!(e.to_string().contains("empty segment"), "{e}");
        let e = check(&["a/b/c/d/e/f/g/h/i"]).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        assert!(e.to_string().contains("9 segments"), "{e}");
        let long = "x".repeat(1025);
        let e = check(&[&long]).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("max_tag_bytes = 1024"), "{e}");
    }

    #[test]
    fn the_value_limit_follows_the_daemon() {
        const MIB: usize = 1 << 20;
        let daemon = |configured: usize| Limits {
            max_value_bytes: configured + ENVELOPE_HEADROOM,
            ..L
        };
        let (d4, d64k) = (daemon(4 * MIB), daemon(64 << 10));
        let v = |max, source| ValueLimit { max, source };
        // Not attached: the configured value, default or not.
        assert_eq!(ValueLimit::new(MIB, None), v(MIB, LimitSource::NotAttached));
        assert_eq!(
            ValueLimit::new(8 * MIB, None),
            v(8 * MIB, LimitSource::NotAttached)
        );
        // The default follows the daemon, up or down.
        assert_eq!(
            ValueLimit::new(MIB, Some(&d4)),
            v(4 * MIB, LimitSource::Daemon)
        );
        assert_eq!(
            ValueLimit::new(MIB, Some(&d64k)),
            v(64 << 10, LimitSource::Daemon)
        );
        // An explicit value is a cap: the smaller of the two wins.
        assert_eq!(
            ValueLimit::new(2 * MIB, Some(&d4)),
            v(2 * MIB, LimitSource::Client)
        );
        assert_eq!(
            ValueLimit::new(8 * MIB, Some(&d4)),
            v(4 * MIB, LimitSource::Daemon)
        );
        assert_eq!(
            ValueLimit::new(100, Some(&d64k)),
            v(100, LimitSource::Client)
        );
        // A daemon announcing less than the headroom allows nothing (and does not underflow).
        let tiny = Limits {
            max_value_bytes: 10,
            ..L
        };
        assert_eq!(ValueLimit::new(MIB, Some(&tiny)).max, 0);

        let e = v(4 * MIB, LimitSource::Daemon)
            .check(4 * MIB + 1)
            .unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }));
        let m = e.to_string();
        assert!(m.contains("max_value_bytes = 4194304"), "{m}");
        assert!(m.contains("--max-value-bytes"), "{m}");
        v(4 * MIB, LimitSource::Daemon).check(4 * MIB).unwrap();
        let m = v(100, LimitSource::Client)
            .check(101)
            .unwrap_err()
            .to_string();
        assert!(m.contains("envelope.max_value_bytes"), "{m}");
    }

    #[test]
    fn encoded_values() {
        check_encoded_value(10, 26, &L).unwrap();
        let e = check_encoded_value(2 << 20, (2 << 20) + 16, &L).unwrap_err();
        assert!(e.to_string().contains("max_value_bytes = 1048576"), "{e}");
    }
}
