//! The writer: the daemon's handle on the table. Exactly one exists per segment.
//!
//! Protocol duties (see `docs/ARCHITECTURE.md`, "Reader/writer protocol"):
//! - an entry's bytes are written before the slot that points at it is stored (Release);
//! - an entry is never modified once published; overwrite = append + swing the slot;
//! - a segment is recycled only after every slot pointing into it was cleared or moved,
//!   and its generation is bumped (Release, then a Release fence) before any byte of it
//!   is rewritten.

use crate::arena::{is_main, lane, ttl_class, Arena, Use, LANES};
use crate::entry::{
    encode_duration, entry_check, fold_ref, EntryHeader, ENTRY_HEADER_BYTES, MAX_KEY_BYTES,
    MAX_NAMESPACE_BYTES, STAMP_COUNTER_BITS,
};
use crate::error::{CreateError, InsertError, TagError};
use crate::geometry::{random_u64, write_client_header, Geometry, TableConfig};
use crate::ghost::Ghost;
use crate::hash::{counter_index, key_hash, namespace_hash, RefKind};
use crate::index::{bucket_and_fp, slot_fp, slot_loc, slot_value};
use crate::layout::{
    header_word, Stat, SEGMENT_HEADER_BYTES, SEG_ALLOC_SEQ_WORD, SEG_CLASS_WORD,
    SEG_GENERATION_WORD, SEG_MAX_GRACE_WORD, SEG_WRITE_OFFSET_WORD, SLOTS_PER_BUCKET,
};
use crate::reader::Reader;
use crate::region::{Memory, Region};
use crate::sync::{fence, Ordering};
use crate::tags::{entry_refs, invalidation_counters, InvalidateMode};
use crate::time::now_ms;
use std::sync::Arc;

/// Where the table lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Process-private heap memory: for tests and benchmarks of one process.
    Heap,
    /// Sealed memfds that other processes map (read-only for the table).
    #[cfg(not(loom))]
    Memfd,
}

/// TTL, grace and tags of an insert.
#[derive(Clone, Copy, Debug, Default)]
pub struct InsertOptions<'a> {
    /// Milliseconds until the entry stops being fresh; `None` = never expires.
    pub ttl_ms: Option<u64>,
    /// Milliseconds after expiry during which the entry is still served, flagged stale.
    pub grace_ms: u64,
    /// Hierarchical tags (`posts/123/comments`).
    pub tags: &'a [&'a str],
}

/// The encoded TTL, grace, TTL class and (for a reserved one) stamp of an entry to write.
pub(crate) struct EntryTimes {
    pub ttl: u32,
    pub grace: u32,
    pub class: u8,
    /// `None`: a new stamp.
    pub stamp: Option<u64>,
}

/// The single writer of a table.
pub struct Writer {
    table: Arc<Memory>,
    client: Arc<Memory>,
    #[cfg(not(loom))]
    fds: Option<crate::shared::SegmentFds>,
    pub(crate) geo: Geometry,
    arena: Arena,
    /// Keys recently evicted unread from a small lane (S3-FIFO's ghost).
    ghost: Ghost,
    last_stamp: u64,
    scratch: Vec<u8>,
    refs: Vec<u32>,
}

impl Writer {
    /// Builds a new, empty table.
    pub fn create(cfg: &TableConfig, backing: Backing) -> Result<Writer, CreateError> {
        let geo = Geometry::from_config(cfg)?;
        #[cfg(not(loom))]
        let mut fds = None;
        let (table, client) = match backing {
            Backing::Heap => (
                Memory::heap(geo.total_bytes as usize),
                Memory::heap(geo.client_area_bytes as usize),
            ),
            #[cfg(not(loom))]
            Backing::Memfd => {
                use crate::shared;
                // Sealing FUTURE_WRITE after mapping keeps our mapping writable; the
                // header is written through it afterwards.
                let (tfd, table) =
                    shared::create("cachekit-table", geo.total_bytes, shared::table_seals())?;
                let (cfd, client) = shared::create(
                    "cachekit-clients",
                    geo.client_area_bytes,
                    shared::client_seals(),
                )?;
                fds = Some(shared::SegmentFds {
                    table: tfd,
                    client: cfd,
                });
                (table, client)
            }
        };
        geo.write_header(table.region());
        write_client_header(&geo, client.region());
        let epoch = cfg.epoch.unwrap_or_else(|| random_u64() | 1);
        table
            .region()
            .store(header_word!(epoch), epoch, Ordering::Relaxed);
        let w = Writer {
            table: Arc::new(table),
            client: Arc::new(client),
            #[cfg(not(loom))]
            fds,
            geo,
            arena: Arena::new(geo.segment_count as u32, SEGMENT_HEADER_BYTES),
            ghost: Ghost::new(ghost_keys(&geo)),
            last_stamp: 0,
            scratch: Vec::new(),
            refs: Vec::new(),
        };
        w.set_stat(Stat::FreeSegments, geo.segment_count);
        w.heartbeat_at(now_ms());
        Ok(w)
    }

    /// The file descriptors to hand to readers (memfd backing only).
    #[cfg(not(loom))]
    pub fn fds(&self) -> Option<&crate::shared::SegmentFds> {
        self.fds.as_ref()
    }

    /// A handle on the shared client area: its header and the namespace tags clients count
    /// under (see [`ClientArea`](crate::ClientArea)).
    pub fn client_area(&self) -> crate::ClientArea {
        crate::ClientArea::new(self.client.clone(), self.geo)
    }

    /// A reader over the same memory, in this process.
    pub fn reader(&self) -> Reader {
        Reader::from_parts(self.table.clone(), Some(self.client.clone()), self.geo)
    }

    /// The largest value this table accepts.
    pub fn max_value_bytes(&self) -> usize {
        self.geo.max_value_bytes as usize
    }

    /// The epoch in the header.
    pub fn epoch(&self) -> u64 {
        self.r()
            .load(header_word!(epoch), Ordering::Relaxed)
            .unwrap_or(0)
    }

    /// Publishes a heartbeat of `now` (Unix ms).
    pub fn heartbeat_at(&self, now: u64) {
        // Release: pairs with the Acquire load in Reader::heartbeat_ms.
        self.r()
            .store(header_word!(heartbeat_ms), now, Ordering::Release);
    }

    /// Publishes a heartbeat of the current time.
    pub fn heartbeat(&self) {
        self.heartbeat_at(now_ms());
    }

    /// One statistic.
    pub fn stat(&self, s: Stat) -> u64 {
        self.r().load(s.word(), Ordering::Relaxed).unwrap_or(0)
    }

    /// Every statistic with its name.
    pub fn stats(&self) -> Vec<(&'static str, u64)> {
        Stat::ALL
            .iter()
            .map(|s| (s.name(), self.stat(*s)))
            .collect()
    }

    /// Writes raw bytes into the table, bypassing the protocol: how a test plays a hostile
    /// or broken writer. Bytes past the end of the table are not written.
    #[cfg(feature = "testing")]
    pub fn raw_write(&self, byte_off: usize, bytes: &[u8]) {
        if byte_off
            .checked_add(bytes.len())
            .is_some_and(|e| e <= self.r().len_bytes())
        {
            self.r().write_bytes(byte_off, bytes);
        }
    }

    /// Reads `len` raw bytes of the table at `byte_off`; `None` past its end.
    #[cfg(feature = "testing")]
    pub fn raw_read(&self, byte_off: usize, len: usize) -> Option<Vec<u8>> {
        let mut b = vec![0; len];
        self.r().read_bytes(byte_off, &mut b).then_some(b)
    }

    /// The geometry, for [`crate::testing::TableLayout`].
    #[cfg(feature = "testing")]
    pub(crate) fn geometry(&self) -> Geometry {
        self.geo
    }

    /// Length of the table segment in bytes.
    pub fn table_bytes(&self) -> usize {
        self.r().len_bytes()
    }

    #[inline]
    pub(crate) fn r(&self) -> &Region {
        self.table.region()
    }

    fn set_stat(&self, s: Stat, v: u64) {
        self.r().store(s.word(), v, Ordering::Relaxed);
    }

    fn add_stat(&self, s: Stat, delta: i64) {
        let v = self.stat(s).wrapping_add(delta as u64);
        self.set_stat(s, v);
    }

    /// The table's memory (a carry reads it as an [`OldTable`](crate::OldTable)).
    pub(crate) fn table_memory(&self) -> Arc<Memory> {
        self.table.clone()
    }

    /// Raises the clock so the next stamp is above `stamp`.
    pub(crate) fn raise_clock(&mut self, stamp: u64) {
        if stamp > self.last_stamp {
            self.last_stamp = stamp;
            self.r()
                .store(header_word!(last_stamp), stamp, Ordering::Relaxed);
        }
    }

    /// The value of tag counter `idx`.
    pub(crate) fn counter(&self, idx: u32) -> u64 {
        self.r()
            .load(self.geo.counter_word(idx), Ordering::Relaxed)
            .unwrap_or(u64::MAX)
    }

    /// Raises tag counter `idx` to `value` if it is lower (counters never go down).
    pub(crate) fn raise_counter(&mut self, idx: u32, value: u64) {
        if value > self.counter(idx) {
            self.bump_counter(idx, value);
        }
    }

    fn next_stamp(&mut self, now: u64) -> u64 {
        let s = (now << STAMP_COUNTER_BITS).max(self.last_stamp + 1);
        self.last_stamp = s;
        self.r()
            .store(header_word!(last_stamp), s, Ordering::Relaxed);
        s
    }

    /// Inserts or overwrites `key` in namespace `ns`, at the current time. Returns the new
    /// entry's stamp (its version, as [`HitMeta::version`](crate::HitMeta::version)).
    pub fn insert(
        &mut self,
        ns: &str,
        key: &[u8],
        value: &[u8],
        opts: &InsertOptions<'_>,
    ) -> Result<u64, InsertError> {
        self.insert_at(ns, key, value, opts, now_ms())
    }

    /// A stamp for an entry written later ([`Writer::insert_stamped`]): unique, and older
    /// than every change made after this call, so an invalidation made between now and that
    /// write already covers the entry.
    pub fn reserve_stamp(&mut self, now: u64) -> u64 {
        self.next_stamp(now)
    }

    /// Inserts or overwrites `key` with a stamp from [`Writer::reserve_stamp`] instead of a new
    /// one: every tag invalidation and namespace clear made since the stamp was reserved makes
    /// it invalid at once. Its creation time is the reservation's, and its TTL is lengthened by
    /// the time since, so it expires `opts.ttl_ms` after `now`, as any insert. Returns the
    /// stamp.
    pub fn insert_stamped(
        &mut self,
        ns: &str,
        key: &[u8],
        value: &[u8],
        opts: &InsertOptions<'_>,
        stamp: u64,
        now: u64,
    ) -> Result<u64, InsertError> {
        let age = now.saturating_sub(stamp >> STAMP_COUNTER_BITS);
        let opts = InsertOptions {
            ttl_ms: opts.ttl_ms.map(|t| t.saturating_add(age)),
            ..*opts
        };
        self.insert_inner(ns, key, value, &opts, Some(stamp), now)
    }

    /// Inserts or overwrites `key` as if the time were `now` (Unix ms).
    pub fn insert_at(
        &mut self,
        ns: &str,
        key: &[u8],
        value: &[u8],
        opts: &InsertOptions<'_>,
        now: u64,
    ) -> Result<u64, InsertError> {
        self.insert_inner(ns, key, value, opts, None, now)
    }

    fn insert_inner(
        &mut self,
        ns: &str,
        key: &[u8],
        value: &[u8],
        opts: &InsertOptions<'_>,
        stamp: Option<u64>,
        now: u64,
    ) -> Result<u64, InsertError> {
        if key.len() > MAX_KEY_BYTES {
            return Err(InsertError::KeyTooLarge {
                len: key.len(),
                max: MAX_KEY_BYTES,
            });
        }
        if ns.len() > MAX_NAMESPACE_BYTES {
            return Err(InsertError::NamespaceTooLarge {
                len: ns.len(),
                max: MAX_NAMESPACE_BYTES,
            });
        }
        if value.len() as u64 > self.geo.max_value_bytes {
            return Err(InsertError::ValueTooLarge {
                len: value.len(),
                max: self.geo.max_value_bytes as usize,
            });
        }
        let seed = self.geo.seed;
        let nsh = namespace_hash(seed, ns.as_bytes());
        let mut refs = std::mem::take(&mut self.refs);
        let r = entry_refs(seed, nsh, opts.tags, self.geo.tag_count - 1, &mut refs);
        let stamp = r.map(|()| {
            self.write_entry(
                ns,
                key,
                value,
                &refs,
                EntryTimes {
                    ttl: encode_duration(opts.ttl_ms),
                    grace: encode_duration(Some(opts.grace_ms)),
                    class: ttl_class(opts.ttl_ms),
                    stamp,
                },
                now,
            )
        });
        self.refs = refs;
        stamp
    }

    /// Appends an entry with these (already validated) fields and points the key's slot at
    /// it. Returns its stamp.
    pub(crate) fn write_entry(
        &mut self,
        ns: &str,
        key: &[u8],
        value: &[u8],
        refs: &[u32],
        times: EntryTimes,
        now: u64,
    ) -> u64 {
        let EntryTimes {
            ttl,
            grace,
            class,
            stamp,
        } = times;
        let seed = self.geo.seed;
        let nsh = namespace_hash(seed, ns.as_bytes());
        let stamp = match stamp {
            Some(s) => s,
            None => self.next_stamp(now),
        };
        let kh = key_hash(seed, nsh, key);
        let mut header = EntryHeader {
            stamp,
            ttl,
            grace,
            value_len: value.len() as u32,
            key_len: key.len() as u16,
            ns_len: ns.len() as u8,
            ref_count: refs.len() as u8,
            check: 0,
        };
        let refs_fold = refs.iter().fold(0, |a, r| fold_ref(a, *r));
        header.check = entry_check(seed, &header.encode(), kh, refs_fold, value);
        let mut meta = std::mem::take(&mut self.scratch);
        meta.clear();
        meta.extend_from_slice(&header.encode());
        meta.extend_from_slice(ns.as_bytes());
        meta.extend_from_slice(key);
        for r in refs {
            meta.extend_from_slice(&r.to_le_bytes());
        }
        let len = (meta.len() + value.len()) as u64;
        // S3-FIFO: a key the ghost remembers goes to main, and so does a new version of an
        // entry in main (an update does not demote a key); any other to small.
        let main = self.ghost.contains(kh) || self.held_in_main(kh, ns, key);
        let lane = lane(class, main);
        let loc = self
            .alloc(lane, class, len, now, true)
            .expect("a table of at least two segments can always make room by eviction");
        self.r().write_bytes(loc as usize, &meta);
        self.r().write_bytes(loc as usize + meta.len(), value);
        self.scratch = meta;
        self.note_grace(loc, header.grace_until_ms());
        self.publish(kh, ns, key, loc, now);
        self.add_stat(Stat::Inserts, 1);
        stamp
    }

    /// Points the key's slot at the entry at `loc`, replacing the key's old entry, an
    /// empty slot, or (bucket full) the least valuable entry of the bucket.
    fn publish(&mut self, kh: u64, ns: &str, key: &[u8], loc: u64, now: u64) {
        let (bucket, fp) = bucket_and_fp(kh, self.geo.bucket_count);
        let mut empty = None;
        let mut target = None;
        for i in 0..SLOTS_PER_BUCKET {
            let s = self.load_slot(bucket, i);
            if s == 0 {
                empty.get_or_insert(i);
            } else if slot_fp(s) == fp && self.entry_is(slot_loc(s), ns, key) {
                target = Some(i);
                break;
            }
        }
        let i = match (target, empty) {
            (Some(i), _) => {
                self.add_stat(Stat::Overwrites, 1);
                i
            }
            (None, Some(i)) => i,
            (None, None) => {
                let i = self.bucket_victim(bucket, now);
                self.add_stat(Stat::BucketEvictions, 1);
                i
            }
        };
        let old = self.load_slot(bucket, i);
        self.clear_access_bit(bucket * SLOTS_PER_BUCKET as u64 + i as u64);
        // Release: pairs with the Acquire slot loads in Reader::probe; publishes the entry
        // bytes written above.
        self.r().store(
            self.geo.slot_word(bucket, i),
            slot_value(fp, loc),
            Ordering::Release,
        );
        self.segment_of_mut(loc).live += 1;
        self.add_stat(Stat::LiveEntries, 1);
        if old != 0 {
            self.release(old);
        }
    }

    /// True when the key's current entry is in a segment of a main lane.
    fn held_in_main(&self, kh: u64, ns: &str, key: &[u8]) -> bool {
        let (bucket, fp) = bucket_and_fp(kh, self.geo.bucket_count);
        (0..SLOTS_PER_BUCKET).any(|i| {
            let s = self.load_slot(bucket, i);
            s != 0
                && slot_fp(s) == fp
                && self.entry_is(slot_loc(s), ns, key)
                && self
                    .segment_index(slot_loc(s))
                    .is_some_and(|seg| is_main(self.arena.segs[seg as usize].lane))
        })
    }

    /// Removes `key` from `ns`. Returns whether it was there.
    pub fn delete(&mut self, ns: &str, key: &[u8]) -> bool {
        let nsh = namespace_hash(self.geo.seed, ns.as_bytes());
        let kh = key_hash(self.geo.seed, nsh, key);
        let (bucket, fp) = bucket_and_fp(kh, self.geo.bucket_count);
        for i in 0..SLOTS_PER_BUCKET {
            let s = self.load_slot(bucket, i);
            if s != 0 && slot_fp(s) == fp && self.entry_is(slot_loc(s), ns, key) {
                // Release: orders the clear after everything before it; a reader that
                // loads 0 misses.
                self.r()
                    .store(self.geo.slot_word(bucket, i), 0, Ordering::Release);
                self.release(s);
                self.add_stat(Stat::Deletes, 1);
                return true;
            }
        }
        false
    }

    /// Invalidates `tag` in `ns`: hierarchically (the tag and everything under it) or
    /// exactly. O(1) whatever the number of entries tagged.
    pub fn invalidate(
        &mut self,
        ns: &str,
        tag: &str,
        mode: InvalidateMode,
    ) -> Result<(), TagError> {
        self.invalidate_at(ns, tag, mode, now_ms())
    }

    /// [`Writer::invalidate`] at time `now`.
    pub fn invalidate_at(
        &mut self,
        ns: &str,
        tag: &str,
        mode: InvalidateMode,
        now: u64,
    ) -> Result<(), TagError> {
        let nsh = namespace_hash(self.geo.seed, ns.as_bytes());
        let counters =
            invalidation_counters(self.geo.seed, nsh, tag, mode, self.geo.tag_count - 1)?;
        let stamp = self.next_stamp(now);
        for idx in counters.into_iter().flatten() {
            self.bump_counter(idx, stamp);
        }
        self.add_stat(Stat::Invalidations, 1);
        Ok(())
    }

    /// Drops every entry of namespace `ns`. O(1).
    pub fn clear_namespace(&mut self, ns: &str) {
        self.clear_namespace_at(ns, now_ms())
    }

    /// [`Writer::clear_namespace`] at time `now`.
    pub fn clear_namespace_at(&mut self, ns: &str, now: u64) {
        let nsh = namespace_hash(self.geo.seed, ns.as_bytes());
        let idx = counter_index(
            self.geo.seed,
            nsh,
            RefKind::Namespace,
            b"",
            self.geo.tag_count - 1,
        );
        let stamp = self.next_stamp(now);
        self.bump_counter(idx, stamp);
        self.add_stat(Stat::NamespaceClears, 1);
    }

    fn bump_counter(&self, idx: u32, stamp: u64) {
        // Release: pairs with the Acquire counter loads in Reader::probe. Stamps only grow,
        // so a plain store keeps the counter monotonic.
        self.r()
            .store(self.geo.counter_word(idx), stamp, Ordering::Release);
    }

    /// Drops everything, in every namespace, and frees every segment.
    pub fn clear_all(&mut self) {
        for b in 0..self.geo.bucket_count {
            for i in 0..SLOTS_PER_BUCKET {
                if self.load_slot(b, i) != 0 {
                    // Release: a reader that still sees the old slot re-checks it after
                    // loading the generation bumped below.
                    self.r()
                        .store(self.geo.slot_word(b, i), 0, Ordering::Release);
                }
            }
        }
        for seg in 0..self.geo.segment_count as u32 {
            if self.arena.segs[seg as usize].used != Use::Free {
                self.arena.detach(seg);
                self.arena.segs[seg as usize].live = 0;
                self.recycle(seg);
            }
        }
        self.ghost.clear();
        self.set_stat(Stat::LiveEntries, 0);
        self.add_stat(Stat::Flushes, 1);
        let fg = self
            .r()
            .load(header_word!(flush_generation), Ordering::Relaxed)
            .unwrap_or(0);
        self.r().store(
            header_word!(flush_generation),
            fg.wrapping_add(1),
            Ordering::Release,
        );
    }

    /// Reclaims every sealed segment whose entries are all past their grace deadline.
    /// Cost: the reclaimed segments only, never a scan of the table. Returns how many.
    pub fn expire(&mut self) -> usize {
        self.expire_at(now_ms())
    }

    /// [`Writer::expire`] at time `now`.
    pub fn expire_at(&mut self, now: u64) -> usize {
        self.reclaim_expired(now, usize::MAX)
    }

    /// Evicts the oldest segment (second chance for recently read entries). Returns false
    /// when there is nothing to evict.
    pub fn evict(&mut self) -> bool {
        self.evict_one(now_ms(), true)
    }

    fn reclaim_expired(&mut self, now: u64, max: usize) -> usize {
        let mut n = 0;
        for l in 0..LANES {
            while n < max {
                let Some(&head) = self.arena.lanes[l].sealed.front() else {
                    break;
                };
                if self.arena.segs[head as usize].max_grace > now {
                    break;
                }
                self.evict_segment(head, now, false);
                self.add_stat(Stat::ExpiredSegments, 1);
                n += 1;
            }
        }
        n
    }

    fn evict_one(&mut self, now: u64, second_chance: bool) -> bool {
        if self.reclaim_expired(now, 1) > 0 {
            return true;
        }
        match self.arena.eviction_victim() {
            Some(v) => {
                self.evict_segment(v, now, second_chance);
                true
            }
            None => false,
        }
    }

    /// Evicts until `min` segments are free, or nothing more can be done.
    fn ensure_free(&mut self, min: usize, now: u64) {
        let count = self.geo.segment_count as usize;
        let mut rounds = 0;
        while self.arena.free.len() < min && rounds < 2 * count + 2 {
            // After one full round every survivor has lost its access bit; from then on
            // evict without second chances so the loop always ends.
            if !self.evict_one(now, rounds < count) {
                break;
            }
            rounds += 1;
        }
    }

    /// Space for an entry of `len` bytes in the active segment of `lane` (of TTL class
    /// `class`).
    fn alloc(&mut self, lane: u8, class: u8, len: u64, now: u64, may_evict: bool) -> Option<u64> {
        debug_assert!(len <= self.geo.segment_payload());
        let mut evicted = false;
        loop {
            if let Some(a) = self.arena.lanes[lane as usize].active {
                let seg_off = self.geo.segment_off(a);
                let st = &mut self.arena.segs[a as usize];
                if st.write_off + len <= self.geo.segment_bytes {
                    let loc = seg_off + st.write_off;
                    st.write_off += len;
                    let wo = st.write_off;
                    self.r().store(
                        seg_word(seg_off, SEG_WRITE_OFFSET_WORD),
                        wo,
                        Ordering::Relaxed,
                    );
                    self.add_stat(Stat::UsedBytes, len as i64);
                    return Some(loc);
                }
                self.arena.seal_active(lane);
                continue;
            }
            // Keep one free segment in reserve for eviction's second chances.
            if may_evict && !evicted && self.arena.free.len() < 2 {
                evicted = true;
                self.ensure_free(2, now);
                continue;
            }
            let s = self.arena.activate(lane, class)?;
            let seg_off = self.geo.segment_off(s);
            let st = self.arena.segs[s as usize];
            self.r().store(
                seg_word(seg_off, SEG_CLASS_WORD),
                class as u64,
                Ordering::Relaxed,
            );
            self.r().store(
                seg_word(seg_off, SEG_ALLOC_SEQ_WORD),
                st.alloc_seq,
                Ordering::Relaxed,
            );
            self.r()
                .store(seg_word(seg_off, SEG_MAX_GRACE_WORD), 0, Ordering::Relaxed);
            self.add_stat(Stat::FreeSegments, -1);
        }
    }

    /// Walks a segment: entries still pointed at are dropped, or (second chance, read
    /// since last time, still alive) copied forward into the main lane of their class; then
    /// the segment is recycled. S3-FIFO: an entry of a small lane read while there moves to
    /// main, one dropped unread is remembered by the ghost; an entry of a main lane read
    /// since it was last walked stays in main.
    fn evict_segment(&mut self, seg: u32, now: u64, second_chance: bool) {
        self.arena.detach(seg);
        let base = self.geo.segment_off(seg);
        let end = base + self.arena.segs[seg as usize].write_off;
        let class = self.arena.segs[seg as usize].class;
        let from_small = !is_main(self.arena.segs[seg as usize].lane);
        let to = lane(class, true);
        let mut loc = base + SEGMENT_HEADER_BYTES;
        let mut buf = Vec::new();
        while loc < end {
            let h = self.header_at(loc);
            let len = h.total_len() as u64;
            if loc + len > end || h.value_len as u64 > self.geo.max_value_bytes {
                // Only corrupted memory gets here: the rest of the segment cannot be walked.
                // Slots still pointing into it are stale locators, which readers reject after
                // the generation bump below.
                break;
            }
            if let Some((bucket, i, slot, kh)) = self.slot_pointing_at(loc, &h) {
                let alive = self.entry_alive(loc, &h, now);
                let slot_index = bucket * SLOTS_PER_BUCKET as u64 + i as u64;
                let mut moved = false;
                if second_chance && alive && self.take_access_bit(slot_index) {
                    if let Some(new) = self.alloc(to, class, len, now, false) {
                        buf.resize(len as usize, 0);
                        self.r().read_bytes(loc as usize, &mut buf);
                        self.r().write_bytes(new as usize, &buf);
                        self.note_grace(new, h.grace_until_ms());
                        // Release: publishes the copied bytes, as in `publish`.
                        self.r().store(
                            self.geo.slot_word(bucket, i),
                            slot_value(slot_fp(slot), new),
                            Ordering::Release,
                        );
                        self.segment_of_mut(new).live += 1;
                        self.add_stat(Stat::SecondChances, 1);
                        moved = true;
                    }
                }
                if !moved {
                    // Release: see `delete`.
                    self.r()
                        .store(self.geo.slot_word(bucket, i), 0, Ordering::Release);
                    self.add_stat(Stat::LiveEntries, -1);
                    if alive {
                        self.add_stat(Stat::Evictions, 1);
                        if from_small {
                            self.ghost.insert(kh);
                        }
                    }
                }
                let st = &mut self.arena.segs[seg as usize];
                st.live = st.live.saturating_sub(1);
            }
            loc += len;
        }
        self.recycle(seg);
    }

    /// Makes a segment whose slots are all cleared free again.
    fn recycle(&mut self, seg: u32) {
        let seg_off = self.geo.segment_off(seg);
        let gen_word = seg_word(seg_off, SEG_GENERATION_WORD);
        let gen = self.r().load(gen_word, Ordering::Relaxed).unwrap_or(0);
        // Release: pairs with the Acquire load of the generation in Reader::probe. A reader
        // that sees the new generation also sees the slot clears made before it, so its
        // slot re-check fails instead of trusting a stale locator.
        self.r()
            .store(gen_word, gen.wrapping_add(1), Ordering::Release);
        // Release fence: pairs with the Acquire fence in Reader::probe. A reader that copies
        // any byte stored after this fence sees the new generation when it re-checks.
        #[cfg(loom)]
        let skip = crate::sync::weaken::skips(crate::sync::weaken::Fence::Writer);
        #[cfg(not(loom))]
        let skip = false;
        if !skip {
            fence(Ordering::Release);
        }
        self.r().store(
            seg_word(seg_off, SEG_WRITE_OFFSET_WORD),
            SEGMENT_HEADER_BYTES,
            Ordering::Relaxed,
        );
        let used = self.arena.segs[seg as usize].write_off - SEGMENT_HEADER_BYTES;
        let st = &mut self.arena.segs[seg as usize];
        st.used = Use::Free;
        st.live = 0;
        st.write_off = SEGMENT_HEADER_BYTES;
        self.arena.free.push(seg);
        self.add_stat(Stat::UsedBytes, -(used as i64));
        self.add_stat(Stat::FreeSegments, 1);
        self.add_stat(Stat::Recycles, 1);
    }

    /// A slot stopped pointing at the entry `old`: account for it, and free its segment
    /// when that was the last one.
    pub(crate) fn release(&mut self, old: u64) {
        self.add_stat(Stat::LiveEntries, -1);
        // A slot the writer did not make (corrupted memory) has no segment to account to.
        let Some(seg) = self.segment_index(slot_loc(old)) else {
            return;
        };
        let st = &mut self.arena.segs[seg as usize];
        st.live = st.live.saturating_sub(1);
        if st.live == 0 && st.used == Use::Sealed {
            self.arena.detach(seg);
            self.recycle(seg);
        }
    }

    fn bucket_victim(&self, bucket: u64, now: u64) -> usize {
        let mut best = (u64::MAX, 0);
        for i in 0..SLOTS_PER_BUCKET {
            let loc = slot_loc(self.load_slot(bucket, i));
            let h = self.header_at(loc);
            if !self.entry_alive(loc, &h, now) {
                return i;
            }
            best = best.min((h.stamp, i));
        }
        best.1
    }

    fn note_grace(&mut self, loc: u64, grace_until: Option<u64>) {
        let seg = self.segment_index(loc).expect("allocated inside the arena");
        let g = grace_until.unwrap_or(u64::MAX);
        let st = &mut self.arena.segs[seg as usize];
        if g > st.max_grace {
            st.max_grace = g;
            let off = self.geo.segment_off(seg);
            self.r()
                .store(seg_word(off, SEG_MAX_GRACE_WORD), g, Ordering::Relaxed);
        }
    }

    pub(crate) fn load_slot(&self, bucket: u64, i: usize) -> u64 {
        self.r()
            .load(self.geo.slot_word(bucket, i), Ordering::Relaxed)
            .unwrap_or(0)
    }

    pub(crate) fn header_at(&self, loc: u64) -> EntryHeader {
        let mut b = [0u8; ENTRY_HEADER_BYTES];
        self.r().read_bytes(loc as usize, &mut b);
        EntryHeader::decode(&b)
    }

    fn entry_is(&self, loc: u64, ns: &str, key: &[u8]) -> bool {
        let h = self.header_at(loc);
        let at = loc as usize + ENTRY_HEADER_BYTES;
        h.ns_len as usize == ns.len()
            && h.key_len as usize == key.len()
            && self.r().eq_bytes(at, ns.as_bytes()) == Some(true)
            && self.r().eq_bytes(at + ns.len(), key) == Some(true)
    }

    /// Not past grace and not invalidated.
    pub(crate) fn entry_alive(&self, loc: u64, h: &EntryHeader, now: u64) -> bool {
        if h.grace_until_ms().is_some_and(|g| now >= g) {
            return false;
        }
        let refs_at = loc as usize + ENTRY_HEADER_BYTES + h.ns_len as usize + h.key_len as usize;
        (0..h.ref_count as usize).all(|k| {
            let mut b = [0u8; 4];
            self.r().read_bytes(refs_at + 4 * k, &mut b);
            let c = self
                .r()
                .load(
                    self.geo.counter_word(u32::from_le_bytes(b)),
                    Ordering::Relaxed,
                )
                .unwrap_or(u64::MAX);
            c < h.stamp
        })
    }

    /// The slot that points at the entry at `loc`, if any: (bucket, index, slot word, key
    /// hash).
    fn slot_pointing_at(&self, loc: u64, h: &EntryHeader) -> Option<(u64, usize, u64, u64)> {
        let at = loc as usize + ENTRY_HEADER_BYTES;
        let mut ns = vec![0u8; h.ns_len as usize];
        let mut key = vec![0u8; h.key_len as usize];
        self.r().read_bytes(at, &mut ns);
        self.r().read_bytes(at + ns.len(), &mut key);
        let nsh = namespace_hash(self.geo.seed, &ns);
        let kh = key_hash(self.geo.seed, nsh, &key);
        let (bucket, fp) = bucket_and_fp(kh, self.geo.bucket_count);
        let want = slot_value(fp, loc);
        (0..SLOTS_PER_BUCKET).find_map(|i| {
            let s = self.load_slot(bucket, i);
            (s == want).then_some((bucket, i, s, kh))
        })
    }

    /// The segment of an arena location. Callers pass locations the writer made itself;
    /// a location outside the arena (a corrupted slot) maps to `None`.
    fn segment_index(&self, loc: u64) -> Option<u32> {
        let seg = loc.checked_sub(self.geo.arena_off)? / self.geo.segment_bytes;
        (seg < self.geo.segment_count).then_some(seg as u32)
    }

    /// The segment of a location the writer just allocated (always in the arena).
    fn segment_of_mut(&mut self, loc: u64) -> &mut crate::arena::SegState {
        let s = self.segment_index(loc).expect("allocated inside the arena");
        &mut self.arena.segs[s as usize]
    }

    fn access_word(&self, slot_index: u64) -> Option<(&crate::sync::AtomicU64, u64)> {
        let (w, mask) = self.geo.access_bit(slot_index);
        self.client.region().word(w).map(|w| (w, mask))
    }

    fn take_access_bit(&self, slot_index: u64) -> bool {
        self.access_word(slot_index)
            .is_some_and(|(w, mask)| w.fetch_and(!mask, Ordering::Relaxed) & mask != 0)
    }

    fn clear_access_bit(&self, slot_index: u64) {
        if let Some((w, mask)) = self.access_word(slot_index) {
            if w.load(Ordering::Relaxed) & mask != 0 {
                w.fetch_and(!mask, Ordering::Relaxed);
            }
        }
    }
}

/// Keys the ghost remembers per generation: three per four index buckets, a quarter to half
/// of the entries a full arena holds (the index is sized for up to `INDEX_LOAD_TARGET` entries
/// per bucket). S3-FIFO sizes its ghost like its main queue; smaller measured better here
/// (`cachekit-bench ratio`, ½ to 16 keys per bucket tried). Memory: two generations of 16 bits
/// per key, 3 bytes per bucket (the index takes 64).
fn ghost_keys(geo: &Geometry) -> usize {
    geo.bucket_count as usize * 3 / 4
}

#[inline]
fn seg_word(seg_off: u64, word: usize) -> usize {
    (seg_off / 8) as usize + word
}
