//! Hierarchical tags and the tag-counter references an entry carries.
//!
//! An entry tagged `a/b/c` in namespace `ns` carries one reference per level:
//! `Prefix(a)`, `Prefix(a/b)` and `Exact(a/b/c)`, plus one `Namespace` reference.
//! Invalidating `a/b` hierarchically bumps `Prefix(a/b)` and `Exact(a/b)`, which kills
//! entries tagged `a/b` and everything under it; exact invalidation bumps `Exact(a/b)` only.

use crate::error::{InsertError, TagError};
use crate::hash::{counter_index, RefKind};

/// Longest tag path, in bytes.
pub const MAX_TAG_BYTES: usize = 1024;
/// Deepest tag path, in segments.
pub const MAX_TAG_DEPTH: usize = 8;
/// Most tags on one entry.
pub const MAX_TAGS: usize = 8;

/// How far an invalidation reaches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InvalidateMode {
    /// The tag and every tag under it (`posts/1` also kills `posts/1/comments`).
    #[default]
    Hierarchical,
    /// Only entries tagged with exactly this path.
    Exact,
}

/// Checks a tag path and returns its depth: the one definition of the tag grammar. A tag is 1 to
/// [`MAX_TAG_DEPTH`] non-empty segments joined by `/` (`posts/123/comments`), at most
/// [`MAX_TAG_BYTES`] bytes. The table checks it on every insert and invalidation; the protocol
/// decoder (`cachekit-proto`) calls this same function, so a daemon refuses a bad tag before it
/// starts a write.
pub fn validate_tag(tag: &str) -> Result<usize, TagError> {
    if tag.len() > MAX_TAG_BYTES {
        return Err(TagError::TooLong {
            len: tag.len(),
            max: MAX_TAG_BYTES,
        });
    }
    let mut depth = 0;
    for seg in tag.split('/') {
        if seg.is_empty() {
            return Err(TagError::EmptySegment {
                tag: tag.to_owned(),
            });
        }
        depth += 1;
    }
    if depth > MAX_TAG_DEPTH {
        return Err(TagError::TooDeep {
            tag: tag.to_owned(),
            depth,
            max: MAX_TAG_DEPTH,
        });
    }
    Ok(depth)
}

/// The sorted, deduplicated counter references of an entry in `ns` with `tags`.
pub(crate) fn entry_refs(
    seed: u64,
    ns_hash: u64,
    tags: &[&str],
    mask: u64,
    out: &mut Vec<u32>,
) -> Result<(), InsertError> {
    if tags.len() > MAX_TAGS {
        return Err(InsertError::TooManyTags {
            count: tags.len(),
            max: MAX_TAGS,
        });
    }
    out.clear();
    out.push(counter_index(seed, ns_hash, RefKind::Namespace, b"", mask));
    for tag in tags {
        validate_tag(tag)?;
        for (i, b) in tag.bytes().enumerate() {
            if b == b'/' {
                out.push(counter_index(
                    seed,
                    ns_hash,
                    RefKind::Prefix,
                    &tag.as_bytes()[..i],
                    mask,
                ));
            }
        }
        out.push(counter_index(
            seed,
            ns_hash,
            RefKind::Exact,
            tag.as_bytes(),
            mask,
        ));
    }
    out.sort_unstable();
    out.dedup();
    Ok(())
}

/// The counters an invalidation of `tag` bumps.
pub(crate) fn invalidation_counters(
    seed: u64,
    ns_hash: u64,
    tag: &str,
    mode: InvalidateMode,
    mask: u64,
) -> Result<[Option<u32>; 2], TagError> {
    validate_tag(tag)?;
    let exact = counter_index(seed, ns_hash, RefKind::Exact, tag.as_bytes(), mask);
    Ok(match mode {
        InvalidateMode::Exact => [Some(exact), None],
        InvalidateMode::Hierarchical => [
            Some(exact),
            Some(counter_index(
                seed,
                ns_hash,
                RefKind::Prefix,
                tag.as_bytes(),
                mask,
            )),
        ],
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        assert_eq!(validate_tag("posts/123/comments"), Ok(3));
        assert!(matches!(
            validate_tag(""),
            Err(TagError::EmptySegment { .. })
        ));
        assert!(matches!(
            validate_tag("/a"),
            Err(TagError::EmptySegment { .. })
        ));
        assert!(matches!(
            validate_tag("a//b"),
            Err(TagError::EmptySegment { .. })
        ));
        assert!(matches!(
            validate_tag("a/"),
            Err(TagError::EmptySegment { .. })
        ));
        assert!(matches!(
            validate_tag("a/b/c/d/e/f/g/h/i"),
            Err(TagError::TooDeep { depth: 9, .. })
        ));
        assert!(matches!(
            validate_tag(&"x".repeat(1025)),
            Err(TagError::TooLong { .. })
        ));
    }

    #[test]
    fn refs_cover_every_level_once() {
        let mut refs = Vec::new();
        entry_refs(1, 2, &["a/b/c", "a/b/d"], u64::MAX >> 32, &mut refs).unwrap();
        // namespace + Prefix(a) + Prefix(a/b) + Exact(a/b/c) + Exact(a/b/d)
        assert_eq!(refs.len(), 5);
    }
}
