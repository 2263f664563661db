//! What each atomic operation decides, given the record Redis holds: one definition for the
//! daemon (`cachekitd`, through `Tier::update_then`) and the client library's direct fallback
//! (through [`update_blocking`](crate::update_blocking)), so an `add` or an `incr` means the
//! same whichever of them runs it.
//!
//! "Present" is fresh: a record past its expiry (stale, within grace) or invalid counts as
//! absent, as an expired key does in Redis and memcached.

use std::cell::Cell;

use cachekit_envelope::{decode, encode_integer, parse_integer, EnvelopeConfig};

use crate::atomic::Decision;
use crate::record::Record;

/// The valid record `r`, if it is not past its expiry at `now`.
pub fn fresh(r: Option<&Record>, now: u64) -> Option<&Record> {
    r.filter(|r| !r.stale_at(now))
}

/// When a conditional set stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum When<'a> {
    /// No fresh record (add).
    Absent,
    /// A fresh record (replace).
    Present,
    /// A fresh record holding exactly these value bytes (cas across hosts: the bytes the
    /// caller's version names on its host).
    Holds(&'a [u8]),
}

/// A conditional set of `new(now)`.
pub fn set_if<'a>(
    when: When<'a>,
    new: impl Fn(u64) -> Record + 'a,
) -> impl FnMut(Option<&Record>, u64) -> Decision + 'a {
    move |rec, now| {
        let current = fresh(rec, now);
        let holds = match when {
            When::Absent => current.is_none(),
            When::Present => current.is_some(),
            When::Holds(value) => current.is_some_and(|r| r.value == value),
        };
        match holds {
            true => Decision::Write(new(now)),
            false => Decision::Keep,
        }
    }
}

/// What adding `delta` to a stored value gives: `Ok(None)` when there is no value and no
/// `initial`; `Err` with the message of an INVALID_ARGUMENT when the value is not an integer
/// or the sum overflows (nothing is written then).
pub fn add_to(
    value: Option<&[u8]>,
    key: &[u8],
    delta: i64,
    initial: Option<i64>,
) -> Result<Option<i64>, String> {
    let overflow = |n: i64| {
        format!("{n} + {delta} overflows a signed 64-bit counter (the value was left unchanged)")
    };
    let Some(stored) = value else {
        return match initial {
            None => Ok(None),
            Some(i) => i.checked_add(delta).map(Some).ok_or_else(|| overflow(i)),
        };
    };
    let cfg = EnvelopeConfig {
        // A counter is at most 20 digits; anything longer is not one.
        max_value_bytes: 64,
        ..EnvelopeConfig::DEFAULT
    };
    let n = decode(&cfg, stored)
        .ok()
        .and_then(|v| parse_integer(&v))
        .ok_or_else(|| {
            format!(
                "the value of key {:?} is not an integer: incr and decr need a value written by incr, or set as a decimal integer (it was left unchanged)",
                String::from_utf8_lossy(key)
            )
        })?;
    n.checked_add(delta).map(Some).ok_or_else(|| overflow(n))
}

/// An INCR: the counter after the delta goes to `result` (the last attempt's).
pub fn incr<'a>(
    key: &'a [u8],
    delta: i64,
    initial: Option<i64>,
    ttl_ms: Option<u64>,
    result: &'a Cell<Option<i64>>,
) -> impl FnMut(Option<&Record>, u64) -> Decision + 'a {
    move |rec, now| {
        let current = fresh(rec, now);
        match add_to(current.map(|r| r.value.as_slice()), key, delta, initial) {
            Err(message) => Decision::Fail(message),
            Ok(None) => Decision::Keep,
            Ok(Some(n)) => {
                result.set(Some(n));
                let value = encode_integer(n);
                Decision::Write(match current {
                    // Keeps its tags and its absolute expiry, as Redis's INCR keeps the TTL.
                    Some(r) => Record {
                        stamp: 0,
                        created_ms: now,
                        expires_ms: r.expires_ms,
                        grace_until_ms: r.grace_until_ms,
                        tags: r.tags.clone(),
                        value,
                    },
                    None => Record::new(now, ttl_ms, 0, Vec::new(), value),
                })
            }
        }
    }
}

/// A TAKE (get and delete): deletes a fresh record.
pub fn take() -> impl FnMut(Option<&Record>, u64) -> Decision {
    |rec, now| match fresh(rec, now) {
        Some(_) => Decision::Delete,
        None => Decision::Keep,
    }
}

/// A TOUCH: a fresh record written again with a TTL of `ttl_ms` from now (`None`: never
/// expires), the same value, tags and grace length.
pub fn touch(ttl_ms: Option<u64>) -> impl FnMut(Option<&Record>, u64) -> Decision {
    move |rec, now| match fresh(rec, now) {
        Some(r) => {
            let grace = match (r.expires_ms, r.grace_until_ms) {
                (Some(e), Some(g)) => g.saturating_sub(e),
                _ => 0,
            };
            Decision::Write(Record::new(
                now,
                ttl_ms,
                grace,
                r.tags.clone(),
                r.value.clone(),
            ))
        }
        None => Decision::Keep,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(value: &[u8], expires_ms: Option<u64>) -> Record {
        Record {
            stamp: 1,
            created_ms: 0,
            expires_ms,
            grace_until_ms: expires_ms.map(|e| e + 100),
            tags: vec!["t/1".into()],
            value: value.to_vec(),
        }
    }

    #[test]
    fn present_means_fresh() {
        let stale = rec(b"v", Some(10));
        let mut add = set_if(When::Absent, |now| {
            Record::new(now, None, 0, vec![], b"n".to_vec())
        });
        assert!(matches!(add(Some(&stale), 20), Decision::Write(_)));
        assert!(matches!(add(Some(&stale), 5), Decision::Keep));
        let mut cas = set_if(When::Holds(b"v"), |now| {
            Record::new(now, None, 0, vec![], b"n".to_vec())
        });
        assert!(matches!(cas(Some(&stale), 5), Decision::Write(_)));
        assert!(matches!(cas(Some(&rec(b"w", None)), 5), Decision::Keep));
        assert!(matches!(cas(None, 5), Decision::Keep));
    }

    #[test]
    fn incr_keeps_tags_and_expiry_and_refuses_what_is_not_a_counter() {
        let result = Cell::new(None);
        let mut f = incr(b"k", 5, None, None, &result);
        let counter = rec(&encode_integer(10), Some(1_000));
        let Decision::Write(r) = f(Some(&counter), 7) else {
            panic!("a write")
        };
        assert_eq!(
            (result.get(), r.expires_ms, r.tags.clone()),
            (Some(15), Some(1_000), counter.tags)
        );
        assert!(matches!(f(None, 7), Decision::Keep));
        assert!(matches!(
            f(Some(&rec(b"not an envelope", None)), 7),
            Decision::Fail(_)
        ));
        assert!(matches!(
            incr(b"k", 1, None, None, &result)(Some(&rec(&encode_integer(i64::MAX), None)), 7),
            Decision::Fail(m) if m.contains("overflow")
        ));
        assert!(matches!(
            incr(b"k", 1, Some(41), Some(5), &result)(None, 7),
            Decision::Write(r) if r.expires_ms == Some(12)
        ));
        assert_eq!(result.get(), Some(42));
    }
}
