//! The one way to change the shared table.
//!
//! The table's single writer and the [`Changes`] counters live together in [`Table`], behind
//! one lock in [`SharedTable`]. Nothing else can reach the writer: every change goes through
//! [`SharedTable::change`], which
//!
//! 1. takes the lock,
//! 2. runs the caller's change, whose every method updates the table *and* the fill
//!    bookkeeping in one step (a set notes the key, an invalidation its namespace),
//! 3. releases the lock, then
//! 4. publishes the change by bumping the write generation (Release), so a FETCH that arrives
//!    after the change's reply never joins a lookup that started before it.
//!
//! So "lock the writer → change the table → note it for fills → unlock → publish" is written
//! once, here, and a new operation cannot forget a step.

use crate::changes::{Changes, Later, Snapshot};
use cachekit_shm::{
    now_ms, EntryView, Filter, InsertError, InsertOptions, InvalidateMode, Reader, ScanEntry,
    TagError, WalkCursor, Writer,
};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The table's writer and its change counters. Reached only inside [`SharedTable::change`].
pub struct Table {
    writer: Writer,
    changes: Changes,
}

impl Table {
    /// Stores `value` for `key`. `clock` is the namespace clock of the write in Redis
    /// (`None`: not in Redis, or unknown). Returns the new entry's version, or `None` when a
    /// later Redis write of the key was applied already (see [`Changes::later_than`]): then
    /// the table keeps that one, or drops the key when it cannot tell which is newer.
    pub fn set(
        &mut self,
        ns: &str,
        key: &[u8],
        value: &[u8],
        opts: &InsertOptions<'_>,
        clock: Option<u64>,
    ) -> Result<Option<u64>, InsertError> {
        if let Some(c) = clock {
            match self.changes.later_than(ns, key, c) {
                Later::None => {}
                Later::Held => return Ok(None),
                Later::Unknown => {
                    self.writer.delete(ns, key);
                    self.changes.key_changed(ns, key, Some(c), None);
                    return Ok(None);
                }
            }
        }
        let r = self.writer.insert(ns, key, value, opts);
        let held = clock.filter(|_| r.is_ok());
        self.changes.key_changed(ns, key, clock, held);
        r.map(Some)
    }

    /// Stores `value` for `key` from a write queued for Redis (its clock unknown), if nothing
    /// changed the key, a key sharing its slot or its namespace since `before` (taken before
    /// the write was handed to the Redis tier); otherwise deletes the key on this host.
    ///
    /// A queued write may already be in Redis (a send whose answer was lost, or the drainer
    /// was quick), and another host may have written or invalidated the key after it, with
    /// that event applied here before this write. Without its clock the table cannot order
    /// the two, and storing it would keep the older value here while Redis and every other
    /// host have the newer one. Any such event was applied after `before`, so: unchanged
    /// since, the value is stored (an event applied later drops it as usual); changed, the
    /// key goes (a miss; the next read asks Redis once the write was sent).
    pub fn set_queued(
        &mut self,
        before: Snapshot,
        ns: &str,
        key: &[u8],
        value: &[u8],
        opts: &InsertOptions<'_>,
    ) -> Result<Option<u64>, InsertError> {
        if self.changes.unchanged_since(before, ns, key) {
            self.set(ns, key, value, opts, None)
        } else {
            self.delete(ns, key, None);
            Ok(None)
        }
    }

    /// What a fill lease needs from its grant: a reserved stamp (older than any change made
    /// while the value is computed) and the key's change counters.
    pub fn grant(&mut self, ns: &str, key: &[u8]) -> crate::leases::Grant {
        crate::leases::Grant {
            stamp: self.writer.reserve_stamp(now_ms()),
            before: self.changes.snapshot(ns, key),
        }
    }

    /// A leased fill: stores `value` with the grant's stamp unless the key was written or
    /// deleted since the grant, or a later Redis write of it is in the table. Written with the
    /// grant's stamp, the entry is invalid at once if one of its tags was invalidated (or its
    /// namespace cleared) while it was computed: then it is dropped, and `Ok(None)` says it was
    /// not stored. Otherwise its version.
    pub fn fill_leased(
        &mut self,
        grant: crate::leases::Grant,
        ns: &str,
        key: &[u8],
        value: &[u8],
        opts: &InsertOptions<'_>,
        clock: Option<u64>,
    ) -> Result<Option<u64>, InsertError> {
        if !self.changes.key_unchanged(grant.before, ns, key) {
            return Ok(None);
        }
        if let Some(c) = clock {
            if self.changes.later_than(ns, key, c) != Later::None {
                return Ok(None);
            }
        }
        let now = now_ms();
        let stamp = self
            .writer
            .insert_stamped(ns, key, value, opts, grant.stamp, now)?;
        let alive = self
            .writer
            .entry(ns, key, now)
            .is_some_and(|e| e.stamp == stamp);
        if !alive {
            // Invalidated while it was computed: it must not be served.
            self.writer.delete(ns, key);
            self.changes.key_changed(ns, key, clock, None);
            return Ok(None);
        }
        self.changes.key_changed(ns, key, clock, clock);
        Ok(Some(stamp))
    }

    /// The live entry of `key` (fresh or within grace), as the writer sees it now.
    pub fn entry(&self, ns: &str, key: &[u8], now: u64) -> Option<EntryView> {
        self.writer.entry(ns, key, now)
    }

    /// Writes `key` again from its live entry `old`, with its tags and grace length: the new
    /// value (or the old one) and a time to live from `now`. Only without a Redis tier (with
    /// one, writes carry their Redis clock through [`Table::set`]). Returns the new version.
    pub fn rewrite(
        &mut self,
        ns: &str,
        key: &[u8],
        old: &EntryView,
        value: Option<&[u8]>,
        ttl_ms: Option<u64>,
        now: u64,
    ) -> u64 {
        let v = self.writer.rewrite(ns, key, old, value, ttl_ms, now);
        self.changes.key_changed(ns, key, None, None);
        v
    }

    /// One page of a delete by pattern or tag: the entries a scan of the page selects, each
    /// deleted as by [`Table::delete`], so its key's change counter moves (a fill lease granted
    /// before the delete is refused, as after a delete of the key itself).
    pub fn delete_matching(
        &mut self,
        filter: &Filter<'_>,
        cursor: WalkCursor,
        max_slots: u64,
    ) -> Result<(WalkCursor, u64), TagError> {
        let (next, entries) = self
            .writer
            .scan(filter, cursor, usize::MAX, max_slots, now_ms())?;
        // Counted first: fills from Redis and leased fills in flight must not put back what
        // this deletes, nor a key it would have deleted had it been in the table.
        self.changes.namespace_purged(filter.namespace);
        let mut deleted = 0;
        for e in entries {
            deleted += u64::from(self.delete(filter.namespace, &e.key, None));
        }
        Ok((next, deleted))
    }

    /// One page of a scan (see [`Writer::scan`]).
    pub fn scan(
        &self,
        filter: &Filter<'_>,
        cursor: WalkCursor,
        max_items: usize,
        max_slots: u64,
    ) -> Result<(WalkCursor, Vec<ScanEntry>), TagError> {
        self.writer
            .scan(filter, cursor, max_items, max_slots, now_ms())
    }

    /// One page of the namespace census (see [`Writer::namespace_census`]).
    pub fn namespace_census(
        &self,
        cursor: WalkCursor,
        max_slots: u64,
        f: impl FnMut(&[u8], u64),
    ) -> WalkCursor {
        self.writer.namespace_census(cursor, max_slots, now_ms(), f)
    }

    /// Deletes `key`; whether it was in the table.
    pub fn delete(&mut self, ns: &str, key: &[u8], clock: Option<u64>) -> bool {
        let existed = self.writer.delete(ns, key);
        self.changes.key_changed(ns, key, clock, None);
        existed
    }

    /// Invalidates every tag of `tags` in `ns`. Tags from clients were checked at decode;
    /// one the table refuses anyway (an event from Redis) stops there, and the caller
    /// decides (what was invalidated stays so: that direction is always safe).
    pub fn invalidate(
        &mut self,
        ns: &str,
        tags: &[String],
        mode: InvalidateMode,
        clock: Option<u64>,
    ) -> Result<(), TagError> {
        // Counted first: a fill that raced even a partial invalidation must not land.
        self.changes.namespace_changed(ns, clock);
        for tag in tags {
            self.writer.invalidate(ns, tag, mode)?;
        }
        Ok(())
    }

    /// Clears `ns`.
    pub fn clear(&mut self, ns: &str, clock: Option<u64>) {
        self.writer.clear_namespace(ns);
        self.changes.namespace_changed(ns, clock);
    }

    /// Drops every entry of every namespace, on this host only (a journal record; see
    /// `journal.rs`).
    pub fn clear_all(&mut self) {
        self.writer.clear_all();
        self.changes.everything_changed();
    }

    /// Another host's set or delete of `key`, at namespace clock `clock`: drops this host's
    /// copy, unless the table holds that very write already (filled from Redis after it).
    /// Counted either way: a fill that read an older record must not land after it.
    pub fn key_event(&mut self, ns: &str, key: &[u8], clock: u64) {
        if self.changes.holds(ns, key, clock) {
            self.changes.key_counted(ns, key, Some(clock));
        } else {
            self.delete(ns, key, Some(clock));
        }
    }

    /// Another host's invalidation of `tags`, at namespace clock `clock`. A tag this table
    /// cannot represent clears the namespace, which is always safe.
    pub fn tags_event(&mut self, ns: &str, tags: &[String], exact: bool, clock: u64) {
        let mode = match exact {
            true => InvalidateMode::Exact,
            false => InvalidateMode::Hierarchical,
        };
        if self.invalidate(ns, tags, mode, Some(clock)).is_err() {
            self.clear(ns, Some(clock));
        }
    }

    /// Taken before a fill reads Redis; handed back to [`Table::fill`].
    pub fn snapshot(&self, ns: &str, key: &[u8]) -> Snapshot {
        self.changes.snapshot(ns, key)
    }

    /// Puts a record read from Redis (stamped with namespace clock `stamp`) in the table,
    /// unless something changed the key or its namespace since `before` that Redis may not
    /// have had when the record was read. `Ok(None)`: raced, not filled; else the version of
    /// the entry filled.
    pub fn fill(
        &mut self,
        before: Snapshot,
        stamp: u64,
        ns: &str,
        key: &[u8],
        value: &[u8],
        opts: &InsertOptions<'_>,
    ) -> Result<Option<u64>, InsertError> {
        if !self.changes.may_fill(before, ns, key, stamp) {
            return Ok(None);
        }
        let version = self.writer.insert(ns, key, value, opts)?;
        self.changes.hold(ns, key, Some(stamp));
        Ok(Some(version))
    }

    /// One page of `verify` (see [`Writer::verify_page`]).
    pub fn verify_page(
        &mut self,
        cursor: WalkCursor,
        max_slots: u64,
        now: u64,
        repair: bool,
        sample: usize,
    ) -> cachekit_shm::VerifyPage {
        self.writer
            .verify_page(cursor, max_slots, now, repair, sample)
    }

    /// The table's own counters.
    pub fn stats(&self) -> Vec<(&'static str, u64)> {
        self.writer.stats()
    }

    /// The Redis stream positions recorded in the table (see `tier/resume.rs`).
    pub fn stream_positions(&self) -> Vec<cachekit_shm::StreamPosition> {
        self.writer.stream_positions()
    }

    /// Replaces the recorded stream positions with `positions` (after a replay).
    pub fn reset_stream_positions(&mut self, positions: &[cachekit_shm::StreamPosition]) {
        self.writer.forget_stream_positions();
        for p in positions {
            self.writer.restore_stream_position(*p);
        }
    }

    /// The namespaces with a live entry in the table, by a walk of every slot.
    pub fn namespaces(&self) -> Vec<String> {
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        loop {
            cursor = self.namespace_census(cursor, 1 << 16, |ns, _| {
                if !seen.contains(ns) {
                    seen.insert(ns.to_vec());
                }
            });
            if cursor == 0 {
                break;
            }
        }
        seen.into_iter()
            .map(|ns| String::from_utf8_lossy(&ns).into_owned())
            .collect()
    }

    /// The table as a source of carried entries (a snapshot walks it under the lock).
    pub fn as_source(&self) -> cachekit_shm::OldTable {
        cachekit_shm::OldTable::of_writer(&self.writer)
    }
}

/// The table, shared by the daemon's threads.
pub struct SharedTable {
    table: Mutex<Table>,
    /// Bumped after every change; see the module documentation.
    write_gen: AtomicU64,
    reader: Reader,
}

impl SharedTable {
    pub fn new(writer: Writer) -> SharedTable {
        SharedTable::with_changes(writer, Changes::default())
    }

    pub fn with_changes(writer: Writer, changes: Changes) -> SharedTable {
        SharedTable {
            reader: writer.reader(),
            table: Mutex::new(Table { writer, changes }),
            write_gen: AtomicU64::new(0),
        }
    }

    /// A panic while holding the lock cannot leave the table inconsistent for readers (they
    /// validate everything), so a poisoned lock is taken over.
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs one change of the table (see the module documentation) and publishes it.
    pub fn change<R>(&self, f: impl FnOnce(&mut Table) -> R) -> R {
        let r = f(&mut self.lock());
        // Release: pairs with the Acquire load in `write_gen`; a FETCH that sees this value
        // started after the change was made.
        self.write_gen.fetch_add(1, Ordering::Release);
        r
    }

    /// How many changes have been published.
    pub fn write_gen(&self) -> u64 {
        // Acquire: pairs with the Release bump in `change`.
        self.write_gen.load(Ordering::Acquire)
    }

    /// Taken before a fill reads Redis (see [`Table::fill`]).
    pub fn snapshot(&self, ns: &str, key: &[u8]) -> Snapshot {
        self.lock().snapshot(ns, key)
    }

    /// Reads the table under the writer's lock, changing nothing (nothing is published): for
    /// walks that must not race the writer, a bounded slice at a time.
    pub fn read<R>(&self, f: impl FnOnce(&Table) -> R) -> R {
        f(&self.lock())
    }

    /// A reader of the table, for lookups.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// Heartbeat plus expiry, every heartbeat interval. Neither changes what a read returns
    /// (expired entries are misses already), so nothing is published.
    pub fn housekeeping(&self) {
        let mut t = self.lock();
        t.writer.heartbeat();
        t.writer.expire();
    }

    /// Marks the segment dead for good, at once: heartbeat 0, and the returned lock is held
    /// until the process exits so no housekeeping can publish a fresh one. Clients stop
    /// reading it immediately instead of after the heartbeat timeout, so a daemon restarted
    /// right away cannot acknowledge a write that a client of the old segment would not see.
    pub fn shut_down(&self) -> MutexGuard<'_, Table> {
        let t = self.lock();
        t.writer.heartbeat_at(0);
        t
    }

    pub fn stats(&self) -> Vec<(&'static str, u64)> {
        self.lock().stats()
    }

    /// Records, for a successor (warm restart), that the table reflects every event of `ns`'s
    /// stream up to entry `id_ms-id_seq` (namespace clock `clock`). Changes nothing a read
    /// sees, so nothing is published.
    pub fn record_stream_position(&self, ns: &str, id_ms: u64, id_seq: u64, clock: u64) -> bool {
        self.lock()
            .writer
            .record_stream_position(ns, id_ms, id_seq, clock)
    }
}

#[cfg(test)]
mod fill_races;
