//! Generation counters that let a fill from Redis detect a write or an invalidation that
//! raced it, and pending counters that keep fills away from keys with writes still queued
//! for Redis.
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

fn slot_key(ns: &str, key: &[u8]) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    ns.hash(&mut h);
    key.hash(&mut h);
    h.finish() as usize % KEY_SLOTS
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
}

impl Default for Gens {
    fn default() -> Self {
        Gens {
            ns: (0..NS_SLOTS).map(|_| AtomicU64::new(0)).collect(),
            key: (0..KEY_SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Gens {
    pub fn bump_ns(&self, ns: &str) {
        self.ns[slot_ns(ns)].fetch_add(1, Ordering::Relaxed);
    }

    pub fn bump_key(&self, ns: &str, key: &[u8]) {
        self.key[slot_key(ns, key)].fetch_add(1, Ordering::Relaxed);
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
        g.bump_key("ns", b"other");
        g.bump_ns("other-ns");
        // Collisions are allowed, but these two differ with the default hasher.
        assert_eq!(g.snapshot("ns", b"k"), s);
        g.bump_ns("ns");
        assert_ne!(g.snapshot("ns", b"k"), s);
        let p = Pending::default();
        p.add(&Scope::Key("ns", b"k"));
        assert!(p.any("ns", b"k"));
        p.done(&Scope::Key("ns", b"k"));
        assert!(!p.any("ns", b"k"));
    }
}
