//! Carrying a table into a new one: how a restarted daemon keeps the cache (warm restart).
//!
//! The table memfd is sealed against every later writable mapping, a new daemon's included, so
//! a new daemon cannot take the old segment over in place. It maps the old one read-only
//! ([`OldTable`]), checks every index slot and its entry as a walk of the whole table can
//! ([`check_slot`](crate::check)), and inserts each entry that passes into a fresh table with
//! [`Writer::insert_carried`]: the new table is built only from entries that verified, so a
//! torn write, a bad slot or a wild locator in the old one costs entries, never a wrong value.
//!
//! [`CarriedEntry`] and [`Writer::insert_carried`] do not depend on where the entry came
//! from: a snapshot loader reads entries from a file and inserts them the same way.

use crate::arena::ttl_class;
use crate::check::{check_slot, stamp_bound, CarriedEntry, DropCounts, DropReason};
use crate::entry::{encode_duration, DURATION_NEVER, MAX_KEY_BYTES, MAX_NAMESPACE_BYTES};
use crate::error::AttachError;
use crate::geometry::Geometry;
use crate::hash::{counter_index, namespace_hash, RefKind};
use crate::layout::{
    header_word, SLOTS_PER_BUCKET, STREAM_POSITIONS, STREAM_POSITIONS_OFF, STREAM_POSITION_WORDS,
    TABLE_MAGIC,
};
use crate::region::{Memory, Region};
use crate::sync::Ordering;
use crate::writer::{EntryTimes, Writer};
use std::sync::Arc;
use std::time::{Duration, Instant};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The space tag-counter indexes live in: an index is a hash seeded with `hash_seed`, masked
/// to `tag_count` counters. Entries move between tables of the same space as they are; into
/// a table with fewer counters (same seed) by masking; otherwise not at all.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RefSpace {
    /// The table's hash seed.
    pub hash_seed: u64,
    /// Its number of tag counters (a power of two).
    pub tag_count: u64,
}

/// The last invalidation-stream entry a daemon applied for one namespace (see
/// [`STREAM_POSITIONS_OFF`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamPosition {
    /// xxh3 of the namespace name, seed 0 ([`StreamPosition::namespace_hash`]).
    pub namespace_hash: u64,
    /// The stream id's milliseconds part.
    pub id_ms: u64,
    /// The stream id's sequence part.
    pub id_seq: u64,
    /// The namespace clock of that entry (0 with id `0-0`: the stream was empty, and then
    /// the clock as it stood).
    pub clock: u64,
}

impl StreamPosition {
    /// The hash a namespace's record is found by (never 0: 0 marks a free record).
    pub fn namespace_hash(ns: &str) -> u64 {
        xxh3_64_with_seed(ns.as_bytes(), 0).max(1)
    }

    fn check(&self) -> u64 {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&self.namespace_hash.to_le_bytes());
        b[8..16].copy_from_slice(&self.id_ms.to_le_bytes());
        b[16..24].copy_from_slice(&self.id_seq.to_le_bytes());
        b[24..].copy_from_slice(&self.clock.to_le_bytes());
        xxh3_64_with_seed(&b, TABLE_MAGIC)
    }
}

fn position_word(record: usize, k: usize) -> usize {
    STREAM_POSITIONS_OFF as usize / 8 + record * STREAM_POSITION_WORDS + k
}

/// The valid stream-position records of a table header (garbage reads as no record).
fn read_positions(r: &Region) -> Vec<StreamPosition> {
    (0..STREAM_POSITIONS)
        .filter_map(|i| {
            let w = |k| r.load(position_word(i, k), Ordering::Relaxed).unwrap_or(0);
            let p = StreamPosition {
                namespace_hash: w(0),
                id_ms: w(1),
                id_seq: w(2),
                clock: w(3),
            };
            (p.namespace_hash != 0 && w(4) == p.check()).then_some(p)
        })
        .collect()
}

/// An old table segment, mapped read-only, to carry entries out of.
pub struct OldTable {
    table: Arc<Memory>,
    geo: Geometry,
}

/// What [`carry`] did.
#[derive(Clone, Debug, Default)]
pub struct CarryReport {
    /// Index slots in use in the old table.
    pub examined: u64,
    /// Entries inserted into the new table.
    pub carried: u64,
    /// Bytes of the values carried.
    pub value_bytes: u64,
    /// Entries not carried, by reason.
    pub dropped: DropCounts,
    /// Entries the new table evicted while the carry filled it (it is smaller, or fuller).
    pub evicted: u64,
    /// How long it took.
    pub elapsed: Duration,
}

impl OldTable {
    /// Maps a table segment handed over as a file descriptor, read-only, and checks its header
    /// as [`Reader::attach`](crate::Reader::attach) does. A segment of another layout version
    /// is [`AttachError::UnsupportedVersion`]: start empty, saying so.
    #[cfg(not(loom))]
    pub fn open(fd: std::os::fd::BorrowedFd<'_>) -> Result<OldTable, AttachError> {
        let table = crate::shared::map(fd, false)?;
        let geo = Geometry::read_header(table.region())?;
        Ok(OldTable {
            table: Arc::new(table),
            geo,
        })
    }

    /// The table `w` writes, as a source (tests and benchmarks carry a table of this process).
    pub fn of_writer(w: &Writer) -> OldTable {
        OldTable {
            table: w.table_memory(),
            geo: w.geo,
        }
    }

    fn r(&self) -> &Region {
        self.table.region()
    }

    /// Its counter space: a new table that is to take its entries is created with its seed.
    pub fn ref_space(&self) -> RefSpace {
        RefSpace {
            hash_seed: self.geo.seed,
            tag_count: self.geo.tag_count,
        }
    }

    /// Length of its segment in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.geo.total_bytes
    }

    /// The epoch its daemon wrote.
    pub fn epoch(&self) -> u64 {
        self.r()
            .load(header_word!(epoch), Ordering::Relaxed)
            .unwrap_or(0)
    }

    /// Its writer's last stamp, as the header holds it (unchecked).
    pub fn last_stamp(&self) -> u64 {
        self.r()
            .load(header_word!(last_stamp), Ordering::Relaxed)
            .unwrap_or(0)
    }

    /// The Redis stream positions its daemon recorded.
    pub fn stream_positions(&self) -> Vec<StreamPosition> {
        read_positions(self.r())
    }

    /// Calls `f` with every entry that passes `check::check_slot`, bucket by bucket;
    /// counts the others by reason. Of two slots of a bucket holding the same key, the newer
    /// entry is kept.
    pub fn entries(&self, now: u64, mut f: impl FnMut(&CarriedEntry)) -> (u64, DropCounts) {
        let g = &self.geo;
        let mut dropped = DropCounts::default();
        let mut examined = 0;
        let mut bucket_entries: Vec<CarriedEntry> = vec![CarriedEntry::default(); SLOTS_PER_BUCKET];
        let mut passed = [false; SLOTS_PER_BUCKET];
        for bucket in 0..g.bucket_count {
            for (i, e) in bucket_entries.iter_mut().enumerate() {
                passed[i] = false;
                let s = self
                    .r()
                    .load(g.slot_word(bucket, i), Ordering::Relaxed)
                    .unwrap_or(0);
                if s == 0 {
                    continue;
                }
                examined += 1;
                match check_slot(self.r(), g, bucket, s, now, e) {
                    Ok(()) => passed[i] = true,
                    Err(r) => dropped.add(r),
                }
            }
            for i in 0..SLOTS_PER_BUCKET {
                if !passed[i] {
                    continue;
                }
                let e = &bucket_entries[i];
                let newer = (0..SLOTS_PER_BUCKET).any(|j| {
                    let o = &bucket_entries[j];
                    j != i
                        && passed[j]
                        && o.key == e.key
                        && o.namespace == e.namespace
                        && (o.stamp, j) > (e.stamp, i)
                });
                if newer {
                    dropped.add(DropReason::Duplicate);
                } else {
                    f(e);
                }
            }
        }
        (examined, dropped)
    }
}

/// Carries every entry of `old` that verifies into `new` (created with `old`'s hash seed, see
/// [`OldTable::ref_space`]), raises `new`'s clock to `old`'s so versions never go back, and
/// copies the Redis stream positions.
pub fn carry(old: &OldTable, new: &mut Writer, now: u64) -> CarryReport {
    let started = Instant::now();
    let from = old.ref_space();
    let evictions_before =
        new.stat(crate::Stat::Evictions) + new.stat(crate::Stat::BucketEvictions);
    let mut report = CarryReport::default();
    let (mut carried, mut value_bytes) = (0, 0);
    let mut dropped = DropCounts::default();
    let (examined, walk_dropped) = old.entries(now, |e| match new.insert_carried(e, from, now) {
        Ok(_) => {
            carried += 1;
            value_bytes += e.value.len() as u64;
        }
        Err(r) => dropped.add(r),
    });
    for (i, n) in walk_dropped.0.iter().enumerate() {
        dropped.0[i] += n;
    }
    new.observe_stamp(old.last_stamp(), now);
    for p in old.stream_positions() {
        new.restore_stream_position(p);
    }
    report.examined = examined;
    report.carried = carried;
    report.value_bytes = value_bytes;
    report.dropped = dropped;
    report.evicted = (new.stat(crate::Stat::Evictions) + new.stat(crate::Stat::BucketEvictions))
        .saturating_sub(evictions_before);
    report.elapsed = started.elapsed();
    report
}

impl Writer {
    /// This table's counter space.
    pub fn ref_space(&self) -> RefSpace {
        RefSpace {
            hash_seed: self.geo.seed,
            tag_count: self.geo.tag_count,
        }
    }

    /// Inserts an entry carried from a table of counter space `from` (an old segment, a
    /// snapshot), keeping its stamp (version), creation time, absolute expiry and grace, and
    /// tags: each tag counter it references is raised to the source's value if lower, so a read
    /// here returns what a read of the source would have. Returns its stamp, or why it was not
    /// inserted (nothing was written then, but counters may have been raised, which only ever
    /// hides entries that were already dead). Call [`Writer::observe_stamp`] with the source's
    /// clock afterwards.
    pub fn insert_carried(
        &mut self,
        e: &CarriedEntry,
        from: RefSpace,
        now: u64,
    ) -> Result<u64, DropReason> {
        if e.key.len() > MAX_KEY_BYTES
            || e.namespace.len() > MAX_NAMESPACE_BYTES
            || e.refs.is_empty()
            || e.refs.len() > crate::MAX_REFS
            || e.stamp > stamp_bound(now)
        {
            return Err(DropReason::CheckFailed);
        }
        if e.value.len() as u64 > self.geo.max_value_bytes {
            return Err(DropReason::TooLarge);
        }
        if e.grace_until_ms.is_some_and(|g| now >= g) {
            return Err(DropReason::Expired);
        }
        let here = self.ref_space();
        let map: fn(u32, u64) -> u32 = |idx, mask| (idx as u64 & mask) as u32;
        if from.hash_seed != here.hash_seed || here.tag_count > from.tag_count {
            return Err(DropReason::RefSpace);
        }
        if e.refs
            .iter()
            .any(|r| r.index as u64 >= from.tag_count || r.counter >= e.stamp)
        {
            return Err(DropReason::CheckFailed);
        }
        let mask = here.tag_count - 1;
        let mut refs: Vec<u32> = e.refs.iter().map(|r| map(r.index, mask)).collect();
        refs.sort_unstable();
        refs.dedup();
        // The namespace reference must be among them: every entry the writer makes has it.
        let nsh = namespace_hash(here.hash_seed, e.namespace.as_bytes());
        if !refs.contains(&counter_index(
            here.hash_seed,
            nsh,
            RefKind::Namespace,
            b"",
            mask,
        )) {
            return Err(DropReason::CheckFailed);
        }
        for r in &e.refs {
            self.raise_counter(map(r.index, mask), r.counter);
        }
        if refs.iter().any(|i| self.counter(*i) >= e.stamp) {
            // Masked onto a counter another tag had raised past this entry.
            return Err(DropReason::Invalidated);
        }
        if self
            .entry(&e.namespace, &e.key, now)
            .is_some_and(|o| o.stamp >= e.stamp)
        {
            return Err(DropReason::Duplicate);
        }
        let created = e.created_ms();
        let ttl_ms = e.expires_ms.map(|x| x.saturating_sub(created));
        let grace = match (e.expires_ms, e.grace_until_ms) {
            (Some(_), Some(u64::MAX)) => DURATION_NEVER,
            (Some(x), Some(g)) => encode_duration(Some(g.saturating_sub(x))),
            _ => encode_duration(Some(0)),
        };
        let stamp = self.write_entry(
            &e.namespace,
            &e.key,
            &e.value,
            &refs,
            EntryTimes {
                ttl: encode_duration(ttl_ms),
                grace,
                class: ttl_class(ttl_ms),
                stamp: Some(e.stamp),
            },
            now,
        );
        self.observe_stamp(e.stamp, now);
        Ok(stamp)
    }

    /// Raises the writer's clock to `stamp` (a carried table's last stamp), unless it is beyond
    /// belief at `now` (a damaged header): the next stamp is then above every carried version,
    /// so versions, compare-and-set and leases never go back.
    pub fn observe_stamp(&mut self, stamp: u64, now: u64) {
        if stamp <= stamp_bound(now) {
            self.raise_clock(stamp);
        }
    }

    /// Records the stream entry `id_ms-id_seq`, of namespace clock `clock`, as the last
    /// invalidation-stream entry applied for `ns` (see [`STREAM_POSITIONS_OFF`]). False when
    /// every record is taken by other namespaces: the position of `ns` is then unknown to a
    /// successor, which clears the namespace.
    pub fn record_stream_position(
        &mut self,
        ns: &str,
        id_ms: u64,
        id_seq: u64,
        clock: u64,
    ) -> bool {
        self.restore_stream_position(StreamPosition {
            namespace_hash: StreamPosition::namespace_hash(ns),
            id_ms,
            id_seq,
            clock,
        })
    }

    /// Frees every stream-position record (a daemon that has replayed what its predecessor
    /// recorded starts over with the namespaces it follows).
    pub fn forget_stream_positions(&mut self) {
        let r = self.r();
        for i in 0..STREAM_POSITIONS {
            for k in 0..STREAM_POSITION_WORDS {
                r.store(position_word(i, k), 0, Ordering::Relaxed);
            }
        }
    }

    /// Records `p` (a position read from a predecessor); false when every record is taken.
    pub fn restore_stream_position(&mut self, p: StreamPosition) -> bool {
        let r = self.r();
        let slot = (0..STREAM_POSITIONS)
            .find(|i| r.load(position_word(*i, 0), Ordering::Relaxed) == Some(p.namespace_hash))
            .or_else(|| {
                (0..STREAM_POSITIONS)
                    .find(|i| r.load(position_word(*i, 0), Ordering::Relaxed) == Some(0))
            });
        let Some(i) = slot else {
            return false;
        };
        let check = p.check();
        for (k, v) in [p.namespace_hash, p.id_ms, p.id_seq, p.clock, check]
            .into_iter()
            .enumerate()
        {
            r.store(position_word(i, k), v, Ordering::Relaxed);
        }
        true
    }

    /// The stream positions recorded in this table.
    pub fn stream_positions(&self) -> Vec<StreamPosition> {
        read_positions(self.r())
    }
}

#[cfg(all(test, not(loom)))]
mod tests;
