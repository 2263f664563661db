//! What changed in the table since a fill from Redis started: the bookkeeping that keeps a
//! fill from putting back a value that a write or an invalidation replaced while the fill
//! was reading Redis.
//!
//! Every change to the table counts here, per namespace (invalidations, clears) and per key
//! (sets, deletes). A fill takes a [`Snapshot`] before it reads Redis and may put its record
//! in the table only if nothing it could have missed changed since ([`Changes::may_fill`]).
//!
//! A change that raced a fill is harmless when Redis had already seen it when the record was
//! read: its namespace clock value is at most the record's stamp. So next to each counter the
//! highest clock value of the changes is kept (`u64::MAX` when unknown: a flush, a write that
//! did not reach Redis), and a fill is dropped only when a change it raced may be newer than
//! what it read.
//!
//! Everything here is plain integers: [`Changes`] lives inside the daemon's `Table`, behind
//! the one lock every change takes (see `table.rs`), so there is nothing to order.
//!
//! The arrays are fixed and indexed by a hash: two keys sharing a slot only cost a skipped
//! fill, never a stale one, and nothing grows with the number of keys or namespaces.

use std::hash::{Hash, Hasher};

/// Namespace slots by default.
const NS_SLOTS: usize = 1024;
/// Key slots by default.
const KEY_SLOTS: usize = 8192;

fn key_hash(ns: &str, key: &[u8]) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    ns.hash(&mut h);
    key.hash(&mut h);
    h.finish()
}

/// A fingerprint of (namespace, key) independent of its slot, never 0.
fn fingerprint(ns: &str, key: &[u8]) -> u64 {
    fingerprint_of(key_hash(ns, key))
}

/// [`fingerprint`] from the key's [`key_hash`].
fn fingerprint_of(key_hash: u64) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    0xC4u8.hash(&mut h);
    key_hash.hash(&mut h);
    h.finish() | 1
}

/// What a fill remembers before it reads Redis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snapshot {
    ns: u64,
    key: u64,
    purge: u64,
}

/// One counter slot: how many changes it has seen, and the highest namespace clock value
/// among them (`u64::MAX`: at least one was unknown), and the highest known one.
#[derive(Clone, Copy, Default)]
struct Slot {
    count: u64,
    clock: u64,
    known: u64,
}

impl Slot {
    fn bump(&mut self, clock: Option<u64>) {
        self.count = self.count.wrapping_add(1);
        self.clock = self.clock.max(clock.unwrap_or(u64::MAX));
        self.known = self.known.max(clock.unwrap_or(0));
    }
}

/// What the table holds of a key, next to a Redis write of it about to be applied.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Later {
    /// No later Redis write of the key (or of a key sharing its slot) was applied: apply it.
    None,
    /// The table holds a later Redis write of this very key: keep it, drop this one.
    Held,
    /// A later change of the key, or of a key sharing its slot, was applied: which value is
    /// newest is unknown here, so the key must go (the next read asks Redis).
    Unknown,
}

/// What the table holds for a key that came from a known Redis write.
#[derive(Clone, Copy, Default)]
struct Held {
    /// Fingerprint of the key; 0 = nothing known.
    fp: u64,
    clock: u64,
}

/// The change counters (see the module documentation).
pub struct Changes {
    ns: Box<[Slot]>,
    key: Box<[Slot]>,
    /// Per key slot: the key whose table entry came from the Redis write at that clock (so
    /// that write's own event need not drop it).
    held: Box<[Held]>,
    /// Per namespace slot: deletes by pattern or tag (DELETE_MATCHING). They count as namespace
    /// changes too; counted apart so a fill lease, which learns of invalidations from its
    /// stamp, is refused after one of these and not after every invalidation.
    purge: Box<[u64]>,
}

impl Default for Changes {
    fn default() -> Self {
        Changes::with_slots(NS_SLOTS, KEY_SLOTS)
    }
}

impl Changes {
    /// Counters with `ns_slots` namespace slots and `key_slots` key slots (tests use few, to
    /// make keys share slots).
    pub fn with_slots(ns_slots: usize, key_slots: usize) -> Changes {
        assert!(ns_slots > 0 && key_slots > 0);
        Changes {
            ns: vec![Slot::default(); ns_slots].into(),
            key: vec![Slot::default(); key_slots].into(),
            held: vec![Held::default(); key_slots].into(),
            purge: vec![0; ns_slots].into(),
        }
    }

    fn ns_slot(&self, ns: &str) -> usize {
        let mut h = std::hash::DefaultHasher::new();
        ns.hash(&mut h);
        (h.finish() % self.ns.len() as u64) as usize
    }

    fn key_slot(&self, ns: &str, key: &[u8]) -> usize {
        self.key_slot_of(key_hash(ns, key))
    }

    fn key_slot_of(&self, key_hash: u64) -> usize {
        (key_hash % self.key.len() as u64) as usize
    }

    /// An invalidation or a clear of `ns`, at namespace clock `clock` (`None`: unknown).
    pub fn namespace_changed(&mut self, ns: &str, clock: Option<u64>) {
        let i = self.ns_slot(ns);
        self.ns[i].bump(clock);
    }

    /// A set or a delete of `key`, at namespace clock `clock` (`None`: unknown). `held` is
    /// the clock of the Redis write the table now holds for the key, `None` for anything else
    /// (deleted, refused, written without a known clock).
    pub fn key_changed(&mut self, ns: &str, key: &[u8], clock: Option<u64>, held: Option<u64>) {
        // Under the table's lock on every write: the key is hashed once for both steps.
        let kh = key_hash(ns, key);
        let i = self.key_slot_of(kh);
        self.key[i].bump(clock);
        self.hold_at(i, kh, held);
    }

    /// A change of `key` at namespace clock `clock` that left the table's entry as it was (an
    /// event of a write the table already holds): counted all the same, so that a fill which
    /// read an older record, and raced it, is refused.
    pub fn key_counted(&mut self, ns: &str, key: &[u8], clock: Option<u64>) {
        let i = self.key_slot(ns, key);
        self.key[i].bump(clock);
    }

    /// Notes what the table now holds for `key`: the Redis write at namespace clock `clock`,
    /// or `None` for anything else.
    pub fn hold(&mut self, ns: &str, key: &[u8], clock: Option<u64>) {
        let kh = key_hash(ns, key);
        self.hold_at(self.key_slot_of(kh), kh, clock);
    }

    fn hold_at(&mut self, slot: usize, key_hash: u64, clock: Option<u64>) {
        self.held[slot] = match clock {
            Some(clock) => Held {
                fp: fingerprint_of(key_hash),
                clock,
            },
            None => Held::default(),
        };
    }

    /// Whether a change later than the Redis write of `key` at `clock` was already applied.
    /// Two writes of one key from two threads reach Redis in one order and may reach the table
    /// in the other; and another host's event may come before this host's own older write.
    pub fn later_than(&self, ns: &str, key: &[u8], clock: u64) -> Later {
        let i = self.key_slot(ns, key);
        if self.key[i].known <= clock {
            return Later::None;
        }
        let h = self.held[i];
        if h.fp == fingerprint(ns, key) && h.clock > clock {
            Later::Held
        } else {
            Later::Unknown
        }
    }

    /// Whether the table already holds the Redis write of `key` at `clock` or a later one:
    /// then that write's event must not drop it.
    pub fn holds(&self, ns: &str, key: &[u8], clock: u64) -> bool {
        let h = self.held[self.key_slot(ns, key)];
        h.fp == fingerprint(ns, key) && h.clock >= clock
    }

    /// Whether no set or delete of `key` (or of a key sharing its slot), and no delete by
    /// pattern or tag in `ns` (which may have taken it, present or not), was applied since
    /// `before` was taken.
    pub fn key_unchanged(&self, before: Snapshot, ns: &str, key: &[u8]) -> bool {
        self.key[self.key_slot(ns, key)].count == before.key
            && self.purge[self.ns_slot(ns)] == before.purge
    }

    /// Whether nothing changed `key` (or a key sharing its slot) or `ns` (an invalidation, a
    /// clear, a delete by pattern or tag, a flush) since `before` was taken.
    pub fn unchanged_since(&self, before: Snapshot, ns: &str, key: &[u8]) -> bool {
        self.ns[self.ns_slot(ns)].count == before.ns && self.key_unchanged(before, ns, key)
    }

    /// A delete by pattern or tag in `ns` (it is a namespace change too).
    pub fn namespace_purged(&mut self, ns: &str) {
        let i = self.ns_slot(ns);
        self.purge[i] = self.purge[i].wrapping_add(1);
        self.namespace_changed(ns, None);
    }

    /// Every namespace changed, at an unknown clock (the whole table was cleared).
    pub fn everything_changed(&mut self) {
        for slot in self.ns.iter_mut() {
            slot.bump(None);
        }
    }

    /// Taken before reading Redis.
    pub fn snapshot(&self, ns: &str, key: &[u8]) -> Snapshot {
        Snapshot {
            ns: self.ns[self.ns_slot(ns)].count,
            key: self.key[self.key_slot(ns, key)].count,
            purge: self.purge[self.ns_slot(ns)],
        }
    }

    /// Whether a record of `key` stamped `stamp`, read after `before` was taken, may be put
    /// in the table now: every change since `before` was already in Redis when the record
    /// was read, and the table does not hold a later Redis write of the key (a fill that read
    /// after this one and finished first: a value never goes back to an older one).
    pub fn may_fill(&self, before: Snapshot, ns: &str, key: &[u8], stamp: u64) -> bool {
        let n = self.ns[self.ns_slot(ns)];
        let i = self.key_slot(ns, key);
        let k = self.key[i];
        let h = self.held[i];
        let newer_held = h.fp == fingerprint(ns, key) && h.clock > stamp;
        (n.count == before.ns || n.clock <= stamp)
            && (k.count == before.key || k.clock <= stamp)
            && !newer_held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshots_see_changes() {
        let mut g = Changes::default();
        let s = g.snapshot("ns", b"k");
        g.key_changed("ns", b"other", Some(1), None);
        g.namespace_changed("other-ns", None);
        // Collisions are allowed, but these differ with the default hasher and slot counts.
        assert_eq!(g.snapshot("ns", b"k"), s);
        assert!(g.may_fill(s, "ns", b"k", 5));
        g.key_changed("ns", b"k", Some(5), None);
        assert!(
            g.may_fill(s, "ns", b"k", 5),
            "the change is the record read"
        );
        g.namespace_changed("ns", Some(7));
        assert!(
            !g.may_fill(s, "ns", b"k", 5),
            "an invalidation newer than the record"
        );
        assert!(
            g.may_fill(g.snapshot("ns", b"k"), "ns", b"k", 5),
            "none since"
        );
        g.key_changed("ns", b"k", None, None);
        assert!(!g.may_fill(s, "ns", b"k", 9), "an unknown change");
    }

    #[test]
    fn unchanged_since_sees_key_and_namespace_changes() {
        let mut g = Changes::default();
        let s = g.snapshot("ns", b"k");
        g.key_changed("ns", b"other", Some(1), None);
        assert!(g.unchanged_since(s, "ns", b"k"));
        g.namespace_changed("ns", Some(2));
        assert!(!g.unchanged_since(s, "ns", b"k"), "an invalidation");
        let s = g.snapshot("ns", b"k");
        g.key_changed("ns", b"k", Some(3), None);
        assert!(!g.unchanged_since(s, "ns", b"k"), "a write of the key");
        let s = g.snapshot("ns", b"k");
        g.namespace_purged("ns");
        assert!(!g.unchanged_since(s, "ns", b"k"), "a delete by pattern");
    }

    #[test]
    fn held_writes_are_per_key() {
        let mut g = Changes::default();
        g.hold("ns", b"k", Some(5));
        assert!(g.holds("ns", b"k", 5) && !g.holds("ns", b"k", 6));
        assert!(!g.holds("ns", b"other", 1));
        g.key_changed("ns", b"k", Some(6), None);
        assert!(
            !g.holds("ns", b"k", 1),
            "a later change forgets the held write"
        );
        g.key_changed("ns", b"k", Some(7), Some(7));
        assert!(g.holds("ns", b"k", 7));
    }

    #[test]
    fn later_writes_win_whatever_order_they_are_applied_in() {
        let mut g = Changes::default();
        assert_eq!(g.later_than("ns", b"k", 5), Later::None);
        g.key_changed("ns", b"k", Some(7), Some(7));
        assert_eq!(g.later_than("ns", b"k", 5), Later::Held);
        assert_eq!(g.later_than("ns", b"k", 8), Later::None);
        g.key_changed("ns", b"k", Some(9), None);
        assert_eq!(
            g.later_than("ns", b"k", 8),
            Later::Unknown,
            "a later delete"
        );
        g.key_changed("ns", b"k", None, None);
        assert_eq!(
            g.later_than("ns", b"k", 10),
            Later::None,
            "an unknown clock is no later Redis write"
        );
    }

    #[test]
    fn a_fill_never_replaces_a_later_write_it_raced() {
        let mut g = Changes::default();
        let old = g.snapshot("ns", b"k");
        // A later fill of the key read stamp 4 and landed first; then its event came.
        g.hold("ns", b"k", Some(4));
        assert!(
            !g.may_fill(old, "ns", b"k", 2),
            "the table holds a later write"
        );
        assert!(g.may_fill(old, "ns", b"k", 4), "the same write again");
        g.key_counted("ns", b"k", Some(4));
        assert!(
            !g.may_fill(old, "ns", b"k", 2),
            "the event of the later write"
        );
        assert!(g.holds("ns", b"k", 4), "counting keeps the held write");
    }

    #[test]
    fn one_slot_for_everything_only_costs_fills() {
        let mut g = Changes::with_slots(1, 1);
        let s = g.snapshot("a", b"x");
        g.key_changed("b", b"y", None, None);
        assert!(
            !g.may_fill(s, "a", b"x", u64::MAX - 1),
            "a shared slot refuses"
        );
        assert!(!g.holds("a", b"x", 0));
    }
}
