//! Checks run before anything is sent, with the limits the daemon announced in HELLO_OK (or the
//! protocol defaults before the first HELLO), so a caller gets an error naming the limit instead
//! of an ERROR round trip.

use cachekit_proto::Limits;

use crate::error::Error;

/// A namespace: 1 to `max_namespace_bytes` bytes (and within the table's own limit).
pub(crate) fn check_namespace(ns: &str, limits: &Limits) -> Result<(), Error> {
    if ns.is_empty() {
        return Err(Error::InvalidArgument {
            message: "namespace is empty; name it after the application, like \"sessions\"".into(),
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

/// A tag list: at most `max_tags` tags, each a valid path of at most `max_tag_bytes`.
pub(crate) fn check_tags(tags: &[String], limits: &Limits) -> Result<(), Error> {
    let max_tags = limits.max_tags.min(cachekit_shm::MAX_TAGS);
    if tags.len() > max_tags {
        return Err(Error::TooLarge {
            message: format!(
                "{} tags, over max_tags = {max_tags}; group them under a common parent tag",
                tags.len()
            ),
        });
    }
    for tag in tags {
        if tag.len() > limits.max_tag_bytes {
            return Err(Error::TooLarge {
                message: format!(
                    "tag is {} bytes, over max_tag_bytes = {}; use a shorter tag path",
                    tag.len(),
                    limits.max_tag_bytes
                ),
            });
        }
        cachekit_shm::validate_tag(tag).map_err(|e| match e {
            cachekit_shm::TagError::TooLong { .. } => Error::TooLarge {
                message: e.to_string(),
            },
            _ => Error::InvalidArgument {
                message: e.to_string(),
            },
        })?;
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

    #[test]
    fn tags() {
        check_tags(&["posts/123/comments".into()], &L).unwrap();
        let many: Vec<String> = (0..9).map(|i| format!("t{i}")).collect();
        let e = check_tags(&many, &L).unwrap_err();
        assert!(e.to_string().contains("max_tags = 8"), "{e}");
        assert!(matches!(
            check_tags(&["a//b".into()], &L),
            Err(Error::InvalidArgument { .. })
        ));
        assert!(matches!(
            check_tags(&["a/b/c/d/e/f/g/h/i".into()], &L),
            Err(Error::InvalidArgument { .. })
        ));
        let e = check_tags(&["x".repeat(1025)], &L).unwrap_err();
        assert!(e.to_string().contains("max_tag_bytes = 1024"), "{e}");
    }

    #[test]
    fn encoded_values() {
        check_encoded_value(10, 26, &L).unwrap();
        let e = check_encoded_value(2 << 20, (2 << 20) + 16, &L).unwrap_err();
        assert!(e.to_string().contains("max_value_bytes = 1048576"), "{e}");
    }
}
