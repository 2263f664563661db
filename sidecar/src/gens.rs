//! Generation counters that let a fill from Redis detect a write or an invalidation that
//! raced it, and pending counters that keep fills away from keys with writes still queued
//! for Redis.
//!
//! A change that raced a fill is harmless when Redis had already seen it when the record was
//! read: its namespace clock value is at most the record's stamp. So next to each generation
//! the highest clock value of the changes is kept (`u64::MAX` when unknown: a flush, a write
//! that did not reach Redis), and a fill is dropped only when a change it raced may be newer
//! than what it read.
//!
//! Both are fixed arrays indexed by a hash: a collision only costs a skipped fill, never a
//! stale one, and nothing grows with the number of keys or namespaces.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

const NS_SLOTS: usize = 1024;
const KEY_SLOTS: usize = 8192;

fn slot_ns(ns: &str) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    ns.hash(&mut h);
    h.finish() as usize % NS_SLOTS
}

fn key_hash(ns: &str, key: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    ns.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

fn slot_key(ns: &str, key: &[u8]) -> usize {
    key_hash(ns, key) as usize % KEY_SLOTS
}

/// A fingerprint of (namespace, key) independent of its slot, never 0.
fn fingerprint(ns: &str, key: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    0xC4u8.hash(&mut h);
    key_hash(ns, key).hash(&mut h);
    h.finish() | 1
}

/// What a fill remembers before it reads Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    ns: u64,
    key: u64,
}

/// Bumped (under the writer lock) by every change to the table: per namespace for
/// invalidations and clears, per key for sets and deletes.
pub struct Gens {
    ns: Box<[AtomicU64]>,
    key: Box<[AtomicU64]>,
    ns_clock: Box<[AtomicU64]>,
    key_clock: Box<[AtomicU64]>,
    /// Per key slot: the fingerprint of the key whose table entry came from the Redis write
    /// at `held_clock` (so that write's own event need not drop it). 0 = nothing known.
    held_fp: Box<[AtomicU64]>,
    held_clock: Box<[AtomicU64]>,
}

fn zeros(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

impl Default for Gens {
    fn default() -> Self {
        Gens {
            ns: zeros(NS_SLOTS),
            key: zeros(KEY_SLOTS),
            ns_clock: zeros(NS_SLOTS),
            key_clock: zeros(KEY_SLOTS),
            held_fp: zeros(KEY_SLOTS),
            held_clock: zeros(KEY_SLOTS),
        }
    }
}

impl Gens {
    /// An invalidation or a clear of `ns`, at namespace clock `clock` (`None`: unknown).
    pub fn bump_ns(&self, ns: &str, clock: Option<u64>) {
        let i = slot_ns(ns);
        self.ns_clock[i].fetch_max(clock.unwrap_or(u64::MAX), Ordering::Relaxed);
        self.ns[i].fetch_add(1, Ordering::Relaxed);
    }

    /// A set or a delete of `key`, at namespace clock `clock` (`None`: unknown).
    pub fn bump_key(&self, ns: &str, key: &[u8], clock: Option<u64>) {
        let i = slot_key(ns, key);
        self.key_clock[i].fetch_max(clock.unwrap_or(u64::MAX), Ordering::Relaxed);
        self.key[i].fetch_add(1, Ordering::Relaxed);
    }

    /// Notes what the table now holds for `key` (under the writer lock): the Redis write at
    /// namespace clock `clock`, or `None` for anything else (deleted, written without a known
    /// clock).
    pub fn hold(&self, ns: &str, key: &[u8], clock: Option<u64>) {
        let i = slot_key(ns, key);
        match clock {
            Some(c) => {
                self.held_fp[i].store(fingerprint(ns, key), Ordering::Relaxed);
                self.held_clock[i].store(c, Ordering::Relaxed);
            }
            None => self.held_fp[i].store(0, Ordering::Relaxed),
        }
    }

    /// Whether the table already holds the Redis write of `key` at `clock` or a later one
    /// (under the writer lock): then that write's event must not drop it.
    pub fn holds(&self, ns: &str, key: &[u8], clock: u64) -> bool {
        let i = slot_key(ns, key);
        self.held_fp[i].load(Ordering::Relaxed) == fingerprint(ns, key)
            && self.held_clock[i].load(Ordering::Relaxed) >= clock
    }

    /// Whether a record of `key` stamped `stamp`, read after `before` was taken, may be put
    /// in the table now: every change since `before` was already in Redis when the record
    /// was read. Call under the writer lock.
    pub fn may_fill(&self, before: Snapshot, ns: &str, key: &[u8], stamp: u64) -> bool {
        let now = self.snapshot(ns, key);
        (now.ns == before.ns || self.ns_clock[slot_ns(ns)].load(Ordering::Relaxed) <= stamp)
            && (now.key == before.key
                || self.key_clock[slot_key(ns, key)].load(Ordering::Relaxed) <= stamp)
    }

    /// Taken before reading Redis; compared under the writer lock before filling. Relaxed
    /// is enough: bumps and the comparison both happen under the writer mutex.
    pub fn snapshot(&self, ns: &str, key: &[u8]) -> Snapshot {
        Snapshot {
            ns: self.ns[slot_ns(ns)].load(Ordering::Relaxed),
            key: self.key[slot_key(ns, key)].load(Ordering::Relaxed),
        }
    }
}

/// Writes queued for Redis but not acknowledged by it yet.
pub struct Pending {
    ns: Box<[AtomicU32]>,
    key: Box<[AtomicU32]>,
}

impl Default for Pending {
    fn default() -> Self {
        Pending {
            ns: (0..NS_SLOTS).map(|_| AtomicU32::new(0)).collect(),
            key: (0..KEY_SLOTS).map(|_| AtomicU32::new(0)).collect(),
        }
    }
}

/// What a queued write holds pending: its key, or its whole namespace.
pub enum Scope<'a> {
    Key(&'a str, &'a [u8]),
    Namespace(&'a str),
}

impl Pending {
    fn counter(&self, scope: &Scope<'_>) -> &AtomicU32 {
        match scope {
            Scope::Key(ns, key) => &self.key[slot_key(ns, key)],
            Scope::Namespace(ns) => &self.ns[slot_ns(ns)],
        }
    }

    pub fn add(&self, scope: &Scope<'_>) {
        self.counter(scope).fetch_add(1, Ordering::SeqCst);
    }

    pub fn done(&self, scope: &Scope<'_>) {
        self.counter(scope).fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether Redis may still lack a write to this key or its namespace.
    pub fn any(&self, ns: &str, key: &[u8]) -> bool {
        self.ns[slot_ns(ns)].load(Ordering::SeqCst) != 0
            || self.key[slot_key(ns, key)].load(Ordering::SeqCst) != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_see_bumps() {
        let g = Gens::default();
        let s = g.snapshot("ns", b"k");
        g.bump_key("ns", b"other", Some(1));
        g.bump_ns("other-ns", None);
        // Collisions are allowed, but these two differ with the default hasher.
        assert_eq!(g.snapshot("ns", b"k"), s);
        assert!(g.may_fill(s, "ns", b"k", 5));
        g.bump_key("ns", b"k", Some(5));
        assert!(
            g.may_fill(s, "ns", b"k", 5),
            "the change is the record read"
        );
        g.bump_ns("ns", Some(7));
        assert!(
            !g.may_fill(s, "ns", b"k", 5),
            "an invalidation newer than the record"
        );
        assert!(
            g.may_fill(g.snapshot("ns", b"k"), "ns", b"k", 5),
            "none since"
        );
        g.bump_key("ns", b"k", None);
        assert!(!g.may_fill(s, "ns", b"k", 9), "an unknown change");
        g.hold("ns", b"k", Some(5));
        assert!(g.holds("ns", b"k", 5) && !g.holds("ns", b"k", 6));
        assert!(!g.holds("ns", b"other", 1));
        g.hold("ns", b"k", None);
        assert!(!g.holds("ns", b"k", 1));
        let p = Pending::default();
        p.add(&Scope::Key("ns", b"k"));
        assert!(p.any("ns", b"k"));
        p.done(&Scope::Key("ns", b"k"));
        assert!(!p.any("ns", b"k"));
    }
}
