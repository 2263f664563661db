//! A model check of the fill rule: fills from Redis raced by this host's writes (written
//! through, or queued and applied without their clock: `Table::set_queued`), other hosts'
//! events (applied in stream order) and local flushes, in every interleaving proptest
//! finds, against a model of Redis. Runs the real [`Table`] over a heap-backed shm table,
//! with few change-counter slots so that keys and namespaces share them.
//!
//! Two properties:
//! - **at every step**, a value served for a key is at least as new as every change to that
//!   key this host has applied (its own writes, other hosts' events): a fill never puts back
//!   what a change it raced replaced; a fill that was in flight during a local flush never
//!   lands;
//! - **at rest** (every fill finished, every event applied), the table holds, for each key,
//!   nothing or exactly what Redis holds.

use super::*;
use cachekit_shm::{Backing, TableConfig};
use proptest::prelude::*;
use std::collections::HashMap;

const NS: &str = "app";
const KEYS: u8 = 4;

fn key(k: u8) -> [u8; 1] {
    [k]
}

/// Key `k` carries tag `t{k % 2}`.
fn tag_of(k: u8) -> String {
    format!("t{}", k % 2)
}

/// Values are their Redis stamp, so a served value says which write it came from.
fn value(stamp: u64) -> [u8; 8] {
    stamp.to_le_bytes()
}

#[derive(Clone, Debug)]
enum Op {
    /// Another host sets, deletes or invalidates (its event reaches this host later).
    RemoteSet(u8),
    RemoteDelete(u8),
    RemoteInvalidate(u8),
    /// This host sets, deletes or invalidates (write-through: Redis first, then the table).
    LocalSet(u8),
    LocalDelete(u8),
    LocalInvalidate(u8),
    /// This host sets a key through its queue: the write reaches Redis (the worst case: at
    /// once, its answer lost)...
    QueuedStart(u8),
    /// ...and, later, is applied to the table without its clock (`Table::set_queued`).
    QueuedApply(usize),
    /// This host clears the namespace without a clock (a stream gap, an outage).
    Flush,
    /// A fill takes its snapshot and reads Redis...
    FillStart(u8),
    /// ...and, later, tries to put what it read in the table.
    FillFinish(usize),
    /// The follower applies the next event of the stream.
    Apply,
}

fn op() -> impl Strategy<Value = Op> {
    let k = 0..KEYS;
    prop_oneof![
        1 => k.clone().prop_map(Op::RemoteSet),
        1 => k.clone().prop_map(Op::RemoteDelete),
        1 => (0..2u8).prop_map(Op::RemoteInvalidate),
        1 => k.clone().prop_map(Op::LocalSet),
        1 => k.clone().prop_map(Op::LocalDelete),
        1 => (0..2u8).prop_map(Op::LocalInvalidate),
        1 => k.clone().prop_map(Op::QueuedStart),
        2 => (0..4usize).prop_map(Op::QueuedApply),
        1 => Just(Op::Flush),
        3 => k.prop_map(Op::FillStart),
        3 => (0..8usize).prop_map(Op::FillFinish),
        3 => Just(Op::Apply),
    ]
}

enum Event {
    /// A set (`true`) or a delete of a key.
    Key(u8, bool),
    Tag(u8),
}

struct Fill {
    k: u8,
    before: Snapshot,
    read: Option<u64>,
    /// A local flush happened while it was in flight.
    flushed: bool,
}

/// The oldest stamp this host may still serve for a key: `(clock, strict)` means a served
/// stamp must be `>= clock`, or `> clock` when strict (the change removed the value).
#[derive(Clone, Copy, Default)]
struct Floor(u64, bool);

impl Floor {
    fn raise(&mut self, clock: u64, strict: bool) {
        if (clock, strict) > (self.0, self.1) {
            *self = Floor(clock, strict);
        }
    }

    fn allows(&self, stamp: u64) -> bool {
        stamp > self.0 || (stamp == self.0 && !self.1)
    }
}

struct World {
    table: SharedTable,
    /// Redis: the namespace clock, and each key's current stamp.
    clock: u64,
    redis: HashMap<u8, u64>,
    /// The namespace's stream: (clock, event, written by this host).
    stream: Vec<(u64, Event, bool)>,
    applied: usize,
    fills: Vec<Fill>,
    /// Queued sets of this host already in Redis, not yet in the table: (key, snapshot, clock).
    queued: Vec<(u8, Snapshot, u64)>,
    floors: [Floor; KEYS as usize],
    filled: usize,
}

impl World {
    fn new(ns_slots: usize, key_slots: usize) -> World {
        let cfg = TableConfig {
            arena_bytes: 4 << 20,
            tag_counters: 1024,
            ..TableConfig::default()
        };
        let writer = Writer::create(&cfg, Backing::Heap).expect("heap table");
        World {
            table: SharedTable::with_changes(writer, Changes::with_slots(ns_slots, key_slots)),
            clock: 0,
            redis: HashMap::new(),
            stream: Vec::new(),
            applied: 0,
            fills: Vec::new(),
            queued: Vec::new(),
            floors: [Floor::default(); KEYS as usize],
            filled: 0,
        }
    }

    /// One write reaching Redis: the next clock value, and its event on the stream.
    fn redis_write(&mut self, event: Event, local: bool) -> u64 {
        self.clock += 1;
        match event {
            Event::Key(k, _) => {
                self.redis.remove(&k);
            }
            Event::Tag(t) => self.redis.retain(|k, _| k % 2 != t),
        }
        self.stream.push((self.clock, event, local));
        self.clock
    }

    fn set_in_table(t: &mut Table, k: u8, stamp: u64) {
        let tag = tag_of(k);
        let opts = InsertOptions {
            ttl_ms: None,
            grace_ms: 0,
            tags: &[&tag],
        };
        t.set(NS, &key(k), &value(stamp), &opts, Some(stamp))
            .expect("fits");
    }

    fn step(&mut self, op: &Op) {
        match *op {
            Op::RemoteSet(k) => {
                let c = self.redis_write(Event::Key(k, true), false);
                self.redis.insert(k, c);
            }
            Op::RemoteDelete(k) => {
                self.redis_write(Event::Key(k, false), false);
            }
            Op::RemoteInvalidate(t) => {
                self.redis_write(Event::Tag(t), false);
            }
            Op::LocalSet(k) => {
                let c = self.redis_write(Event::Key(k, true), true);
                self.redis.insert(k, c);
                self.table.change(|t| Self::set_in_table(t, k, c));
                self.floors[k as usize].raise(c, false);
            }
            Op::LocalDelete(k) => {
                let c = self.redis_write(Event::Key(k, false), true);
                self.table.change(|t| t.delete(NS, &key(k), Some(c)));
                self.floors[k as usize].raise(c, true);
            }
            Op::LocalInvalidate(tag) => {
                let c = self.redis_write(Event::Tag(tag), true);
                let tags = [format!("t{tag}")];
                self.table
                    .change(|t| t.invalidate(NS, &tags, InvalidateMode::Hierarchical, Some(c)))
                    .expect("valid tag");
                self.raise_tagged(tag, c);
            }
            Op::QueuedStart(k) => {
                let before = self.table.snapshot(NS, &key(k));
                let c = self.redis_write(Event::Key(k, true), true);
                self.redis.insert(k, c);
                self.queued.push((k, before, c));
            }
            Op::QueuedApply(i) => {
                if self.queued.is_empty() {
                    return;
                }
                let (k, before, c) = self.queued.remove(i % self.queued.len());
                let tag = tag_of(k);
                let opts = InsertOptions {
                    ttl_ms: None,
                    grace_ms: 0,
                    tags: &[&tag],
                };
                self.table
                    .change(|t| t.set_queued(before, NS, &key(k), &value(c), &opts))
                    .expect("fits");
                // Stored or dropped, nothing older than it may be served from now on.
                self.floors[k as usize].raise(c, false);
            }
            Op::Flush => {
                self.table.change(|t| t.clear(NS, None));
                for f in &mut self.fills {
                    f.flushed = true;
                }
                // What was cached before is gone: nothing older than Redis's present.
                for k in 0..KEYS {
                    let now = self.redis.get(&k).copied();
                    self.floors[k as usize].raise(now.unwrap_or(self.clock), now.is_none());
                }
            }
            Op::FillStart(k) => {
                let before = self.table.snapshot(NS, &key(k));
                self.fills.push(Fill {
                    k,
                    before,
                    read: self.redis.get(&k).copied(),
                    flushed: false,
                });
            }
            Op::FillFinish(i) => {
                if self.fills.is_empty() {
                    return;
                }
                let f = self.fills.remove(i % self.fills.len());
                let Some(stamp) = f.read else { return };
                let tag = tag_of(f.k);
                let opts = InsertOptions {
                    ttl_ms: None,
                    grace_ms: 0,
                    tags: &[&tag],
                };
                let filled = self
                    .table
                    .change(|t| t.fill(f.before, stamp, NS, &key(f.k), &value(stamp), &opts))
                    .expect("fits")
                    .is_some();
                assert!(
                    !(filled && f.flushed),
                    "a fill in flight during a flush landed"
                );
                self.filled += filled as usize;
            }
            Op::Apply => {
                let Some((c, event, local)) = self.stream.get(self.applied) else {
                    return;
                };
                let (c, local) = (*c, *local);
                self.applied += 1;
                if local {
                    return; // this host's own write: already in its table
                }
                match *event {
                    Event::Key(k, set) => {
                        self.table.change(|t| t.key_event(NS, &key(k), c));
                        // A set at c may be served; a delete at c may not.
                        self.floors[k as usize].raise(c, !set);
                    }
                    Event::Tag(tag) => {
                        let tags = [format!("t{tag}")];
                        self.table.change(|t| t.tags_event(NS, &tags, false, c));
                        self.raise_tagged(tag, c);
                    }
                }
            }
        }
    }

    fn raise_tagged(&mut self, tag: u8, clock: u64) {
        for k in (0..KEYS).filter(|k| k % 2 == tag) {
            self.floors[k as usize].raise(clock, true);
        }
    }

    fn served(&self, k: u8) -> Option<u64> {
        let (v, _) = self.table.reader().get(NS, &key(k))?;
        Some(u64::from_le_bytes(v.try_into().expect("8-byte values")))
    }

    fn check_floors(&self, step: usize) {
        for k in 0..KEYS {
            if let Some(s) = self.served(k) {
                let f = self.floors[k as usize];
                assert!(
                    f.allows(s),
                    "step {step}: key {k} served stamp {s}, older than a change this host applied (floor {}, strict {})",
                    f.0,
                    f.1
                );
            }
        }
    }

    fn check_at_rest(&mut self) {
        while !self.queued.is_empty() {
            self.step(&Op::QueuedApply(0));
        }
        while !self.fills.is_empty() {
            self.step(&Op::FillFinish(0));
        }
        while self.applied < self.stream.len() {
            self.step(&Op::Apply);
        }
        for k in 0..KEYS {
            if let Some(s) = self.served(k) {
                assert_eq!(
                    Some(s),
                    self.redis.get(&k).copied(),
                    "at rest, key {k} differs from Redis"
                );
            }
        }
    }
}

proptest! {
    // 2000 cases unless PROPTEST_CASES says otherwise (scripts/test --deep asks for more).
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000)
    ))]

    #[test]
    fn fills_never_serve_what_a_raced_change_replaced(
        ops in proptest::collection::vec(op(), 1..60),
        ns_slots in 1usize..3,
        key_slots in 1usize..5,
    ) {
        let mut w = World::new(ns_slots, key_slots);
        for (i, op) in ops.iter().enumerate() {
            w.step(op);
            w.check_floors(i);
        }
        w.check_at_rest();
    }
}

/// The model is not vacuous: an unraced fill lands and is served; a raced one does not.
#[test]
fn an_unraced_fill_lands_and_a_raced_one_does_not() {
    let mut w = World::new(1024, 8192);
    w.step(&Op::RemoteSet(1));
    w.step(&Op::Apply);
    w.step(&Op::FillStart(1));
    w.step(&Op::FillFinish(0));
    assert_eq!((w.filled, w.served(1)), (1, Some(1)));

    w.step(&Op::RemoteInvalidate(1)); // key 1's tag, clock 2
    w.step(&Op::RemoteSet(3)); // clock 3
    w.step(&Op::FillStart(3)); // reads stamp 3
    w.step(&Op::Apply); // the invalidation at 2 is older than what the fill read
    w.step(&Op::FillFinish(0));
    assert_eq!(
        w.filled, 2,
        "a change Redis already had does not stop a fill"
    );
    assert_eq!(w.served(1), None, "the invalidation reached key 1");

    w.step(&Op::FillStart(3)); // reads stamp 3 again
    w.step(&Op::LocalInvalidate(1)); // clock 4, newer than the read
    w.step(&Op::FillFinish(0));
    assert_eq!(w.filled, 2, "a newer invalidation stops the fill");
    assert_eq!(w.served(3), None);
    w.check_floors(0);
    w.check_at_rest();
}
