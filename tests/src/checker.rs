//! The verdict on one read of a stress run.
//!
//! Rules, for a get of key `k` owned by writer `w`:
//!
//! 1. **Wrong value**: the bytes do not decode ([`crate::value::decode`]), or name another key
//!    or writer, or carry a version above `hi[k]` loaded *after* the read (nobody sent it), or
//!    are flagged stale although stress values never expire.
//! 2. **Stale read** (a violation): a version below `floor[k]` loaded *before* the read, i.e.
//!    older than a write or invalidation that had been acknowledged when the read started.
//!    This covers read-your-writes (a writer reading its own key) and "after my invalidation
//!    my next read misses or shows a newer write".
//! 3. **Going back in time** (a violation): a version below one this same thread already
//!    saw for `k` (monotonic reads).
//!
//! A miss is always allowed: eviction, invalidation and tag-counter collisions make misses.

use crate::value::decode;

/// What the checker knows about one read.
#[derive(Clone, Copy, Debug)]
pub struct Read<'a> {
    /// The key read.
    pub key: &'a str,
    /// Its owner.
    pub writer: u32,
    /// `floor[k]`, loaded before the get.
    pub floor_before: u64,
    /// `hi[k]`, loaded after the get.
    pub hi_after: u64,
    /// The newest version this thread saw for `k` before (0: none).
    pub last_seen: u64,
    /// The value, on a hit.
    pub hit: Option<&'a [u8]>,
    /// The hit was flagged stale (within grace).
    pub stale: bool,
}

/// The verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A miss.
    Miss,
    /// A correct hit of this version.
    Hit(u64),
    /// Bytes that were never written under this key (rule 1).
    Wrong(String),
    /// Older than an acknowledged write or invalidation (rule 2).
    Stale(String),
    /// Older than what this thread already saw (rule 3).
    Backwards(String),
}

/// Judges one read.
pub fn check(r: &Read<'_>) -> Verdict {
    let Some(bytes) = r.hit else {
        return Verdict::Miss;
    };
    let d = match decode(bytes) {
        Ok(d) => d,
        Err(e) => return Verdict::Wrong(format!("get {}: {e}", r.key)),
    };
    if d.key != r.key || d.writer != r.writer {
        return Verdict::Wrong(format!(
            "get {} returned the value of {} by writer {}",
            r.key, d.key, d.writer
        ));
    }
    if d.version > r.hi_after {
        return Verdict::Wrong(format!(
            "get {} returned version {}, but no version above {} was ever sent",
            r.key, d.version, r.hi_after
        ));
    }
    if r.stale {
        return Verdict::Wrong(format!(
            "get {} returned version {} flagged stale, but stress values never expire",
            r.key, d.version
        ));
    }
    if d.version < r.floor_before {
        return Verdict::Stale(format!(
            "get {} returned version {} after the writer had version {} (or an invalidation \
             after it) acknowledged",
            r.key, d.version, r.floor_before
        ));
    }
    if d.version < r.last_seen {
        return Verdict::Backwards(format!(
            "get {} returned version {} after this thread had already seen version {}",
            r.key, d.version, r.last_seen
        ));
    }
    Verdict::Hit(d.version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::encode;

    fn read<'a>(hit: Option<&'a [u8]>, floor: u64, hi: u64, last: u64) -> Read<'a> {
        Read {
            key: "w1:k2",
            writer: 1,
            floor_before: floor,
            hi_after: hi,
            last_seen: last,
            hit,
            stale: false,
        }
    }

    #[test]
    fn correct_reads_pass() {
        let v5 = encode("w1:k2", 1, 5, 40);
        assert_eq!(check(&read(None, 9, 9, 9)), Verdict::Miss);
        assert_eq!(check(&read(Some(&v5), 5, 5, 5)), Verdict::Hit(5));
        // A write still in flight (sent, not acknowledged) may be seen.
        assert_eq!(check(&read(Some(&v5), 4, 5, 0)), Verdict::Hit(5));
    }

    #[test]
    fn every_rule_can_fail() {
        let v5 = encode("w1:k2", 1, 5, 40);
        assert!(matches!(
            check(&read(Some(&v5), 6, 7, 0)),
            Verdict::Stale(_)
        ));
        assert!(matches!(
            check(&read(Some(&v5), 0, 7, 6)),
            Verdict::Backwards(_)
        ));
        assert!(matches!(
            check(&read(Some(&v5), 0, 4, 0)),
            Verdict::Wrong(_)
        ));
        let other_key = encode("w1:k3", 1, 5, 40);
        assert!(matches!(
            check(&read(Some(&other_key), 0, 9, 0)),
            Verdict::Wrong(_)
        ));
        let other_writer = encode("w1:k2", 2, 5, 40);
        assert!(matches!(
            check(&read(Some(&other_writer), 0, 9, 0)),
            Verdict::Wrong(_)
        ));
        let mut torn = v5.clone();
        torn[20] ^= 0x20;
        assert!(matches!(
            check(&read(Some(&torn), 0, 9, 0)),
            Verdict::Wrong(_)
        ));
        let mut stale = read(Some(&v5), 0, 9, 0);
        stale.stale = true;
        assert!(matches!(check(&stale), Verdict::Wrong(_)));
    }
}
