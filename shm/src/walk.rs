//! The writer's own reads of the table: one entry with its references (for the daemon's
//! read-modify-write operations), rewriting an entry in place of itself, and walking the index
//! a bounded slice at a time (scan, delete by pattern or tag, namespace sizes).
//!
//! All of it runs in the writer's process on memory only it writes, so it reads plainly, with
//! the same bounds checks as everywhere: an entry whose bytes do not fit its segment is skipped.

use crate::arena::ttl_class;
use crate::entry::{encode_duration, EntryHeader, ENTRY_HEADER_BYTES};
use crate::hash::namespace_hash;
use crate::index::slot_loc;
use crate::layout::SLOTS_PER_BUCKET;
use crate::tags::invalidation_counters;
use crate::{InvalidateMode, TagError, Writer};

/// One live entry, as the writer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryView {
    /// The entry's stamp: its version ([`HitMeta::version`](crate::HitMeta::version)).
    pub stamp: u64,
    /// Unix ms when it was written.
    pub created_ms: u64,
    /// Unix ms when it stops being fresh; `None` = never.
    pub expires_ms: Option<u64>,
    /// Unix ms when it is gone; `None` = never.
    pub grace_until_ms: Option<u64>,
    /// The stored value bytes.
    pub value: Vec<u8>,
    refs: Vec<u32>,
    grace: u32,
}

impl EntryView {
    /// Not past its expiry (a stale entry, within grace, is not fresh).
    pub fn is_fresh(&self, now: u64) -> bool {
        self.expires_ms.is_none_or(|e| now < e)
    }
}

/// One entry of a [`Writer::scan`] page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScanEntry {
    /// The key.
    pub key: Vec<u8>,
    /// Bytes of the stored value.
    pub value_len: u32,
    /// Unix ms when it was written.
    pub created_ms: u64,
    /// Unix ms when it stops being fresh; `None` = never.
    pub expires_ms: Option<u64>,
    /// Unix ms when it is gone; `None` = never.
    pub grace_until_ms: Option<u64>,
    /// Its version (stamp).
    pub stamp: u64,
}

/// A predicate over keys (a glob, from the caller).
pub type KeyMatcher<'a> = &'a dyn Fn(&[u8]) -> bool;

/// Which entries of a namespace a walk selects.
pub struct Filter<'a> {
    /// The namespace.
    pub namespace: &'a str,
    /// Keys to keep (a glob, from the caller); `None` keeps every key.
    pub key: Option<KeyMatcher<'a>>,
    /// Only entries an invalidation of this tag (in this mode) would reach; `None` = any.
    pub tag: Option<(&'a str, InvalidateMode)>,
}

/// Counter indexes a tag filter looks for, and the namespace hash.
struct Compiled<'a> {
    ns: &'a [u8],
    counters: [Option<u32>; 2],
    tagged: bool,
    key: Option<KeyMatcher<'a>>,
}

/// Where a walk stopped: the next slot to visit, 0 when the whole index was visited.
pub type Cursor = u64;

impl Writer {
    /// Total index slots: a walk's cursor runs from 0 to this.
    pub fn slot_count(&self) -> u64 {
        self.geo.bucket_count * SLOTS_PER_BUCKET as u64
    }

    /// The slot word's entry location and header, when the slot is in use and its entry
    /// fits the arena.
    fn slot_entry(&self, slot: u64) -> Option<(u64, EntryHeader)> {
        let (bucket, i) = (
            slot / SLOTS_PER_BUCKET as u64,
            (slot % SLOTS_PER_BUCKET as u64) as usize,
        );
        let s = self.load_slot(bucket, i);
        if s == 0 {
            return None;
        }
        let loc = slot_loc(s);
        let arena_end = self.geo.arena_off + self.geo.segment_count * self.geo.segment_bytes;
        if loc < self.geo.arena_off || loc + ENTRY_HEADER_BYTES as u64 > arena_end {
            return None;
        }
        let h = self.header_at(loc);
        if loc + h.total_len() as u64 > arena_end {
            return None;
        }
        Some((loc, h))
    }

    fn read_vec(&self, at: usize, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.r().read_bytes(at, &mut v);
        v
    }

    /// The live entry of `key` (not past grace, not invalidated), with its value.
    pub fn entry(&self, ns: &str, key: &[u8], now: u64) -> Option<EntryView> {
        let slot = self.find_slot(ns, key)?;
        let (loc, h) = self.slot_entry(slot)?;
        if !self.entry_alive(loc, &h, now) {
            return None;
        }
        let refs_at = loc as usize + ENTRY_HEADER_BYTES + h.ns_len as usize + h.key_len as usize;
        let refs = (0..h.ref_count as usize)
            .map(|k| {
                let mut b = [0u8; 4];
                self.r().read_bytes(refs_at + 4 * k, &mut b);
                u32::from_le_bytes(b)
            })
            .collect();
        let value = self.read_vec(refs_at + 4 * h.ref_count as usize, h.value_len as usize);
        Some(EntryView {
            stamp: h.stamp,
            created_ms: h.created_ms(),
            expires_ms: h.expires_ms(),
            grace_until_ms: h.grace_until_ms(),
            value,
            refs,
            grace: h.grace,
        })
    }

    /// Writes `key` again from its live entry `old` (as [`Writer::entry`] returned it, under
    /// the same hold of the writer): the same tags and grace length, with `value` (or the old
    /// value) and a time to live of `ttl_ms` from `now` (`None` = never expires). Returns the
    /// new entry's stamp.
    pub fn rewrite(
        &mut self,
        ns: &str,
        key: &[u8],
        old: &EntryView,
        value: Option<&[u8]>,
        ttl_ms: Option<u64>,
        now: u64,
    ) -> u64 {
        let value = value.unwrap_or(&old.value);
        self.write_entry(
            ns,
            key,
            value,
            &old.refs,
            crate::writer::EntryTimes {
                ttl: encode_duration(ttl_ms),
                grace: old.grace,
                class: ttl_class(ttl_ms),
                stamp: None,
            },
            now,
        )
    }

    /// The time to live an entry written now should get to keep `old`'s absolute expiry.
    pub fn remaining_ttl(old: &EntryView, now: u64) -> Option<u64> {
        old.expires_ms.map(|e| e.saturating_sub(now).max(1))
    }

    /// The slot index holding `key`, if any.
    fn find_slot(&self, ns: &str, key: &[u8]) -> Option<u64> {
        let nsh = namespace_hash(self.geo.seed, ns.as_bytes());
        let kh = crate::hash::key_hash(self.geo.seed, nsh, key);
        let (bucket, fp) = crate::index::bucket_and_fp(kh, self.geo.bucket_count);
        (0..SLOTS_PER_BUCKET).find_map(|i| {
            let s = self.load_slot(bucket, i);
            (s != 0
                && crate::index::slot_fp(s) == fp
                && self.entry_matches(slot_loc(s), ns.as_bytes(), key))
            .then_some(bucket * SLOTS_PER_BUCKET as u64 + i as u64)
        })
    }

    fn entry_matches(&self, loc: u64, ns: &[u8], key: &[u8]) -> bool {
        let h = self.header_at(loc);
        let at = loc as usize + ENTRY_HEADER_BYTES;
        h.ns_len as usize == ns.len()
            && h.key_len as usize == key.len()
            && self.r().eq_bytes(at, ns) == Some(true)
            && self.r().eq_bytes(at + ns.len(), key) == Some(true)
    }

    fn compile<'a>(&self, f: &Filter<'a>) -> Result<Compiled<'a>, TagError> {
        let counters = match f.tag {
            None => [None, None],
            Some((tag, mode)) => invalidation_counters(
                self.geo.seed,
                namespace_hash(self.geo.seed, f.namespace.as_bytes()),
                tag,
                mode,
                self.geo.tag_count - 1,
            )?,
        };
        Ok(Compiled {
            ns: f.namespace.as_bytes(),
            counters,
            tagged: f.tag.is_some(),
            key: f.key,
        })
    }

    /// Whether the entry at `loc` is alive and selected by `c`; its key if so.
    fn selected(&self, loc: u64, h: &EntryHeader, c: &Compiled<'_>, now: u64) -> Option<Vec<u8>> {
        let at = loc as usize + ENTRY_HEADER_BYTES;
        if h.ns_len as usize != c.ns.len() || self.r().eq_bytes(at, c.ns) != Some(true) {
            return None;
        }
        if !self.entry_alive(loc, h, now) {
            return None;
        }
        let key = self.read_vec(at + c.ns.len(), h.key_len as usize);
        if c.key.is_some_and(|m| !m(&key)) {
            return None;
        }
        if c.tagged {
            let refs_at = at + h.ns_len as usize + h.key_len as usize;
            let hit = (0..h.ref_count as usize).any(|k| {
                let mut b = [0u8; 4];
                self.r().read_bytes(refs_at + 4 * k, &mut b);
                let r = u32::from_le_bytes(b);
                c.counters.contains(&Some(r))
            });
            if !hit {
                return None;
            }
        }
        Some(key)
    }

    /// One page of a scan: visits slots from `cursor` until `max_slots` were visited or
    /// `max_items` entries were selected, and returns the selected live entries with the
    /// cursor of the next page (0 = done). A key keeps its slot for as long as it is in the
    /// table (an overwrite or a second chance reuses it), so an entry present for the whole
    /// scan is returned exactly once.
    ///
    /// # Errors
    /// A filter tag the table refuses.
    pub fn scan(
        &self,
        filter: &Filter<'_>,
        cursor: Cursor,
        max_items: usize,
        max_slots: u64,
        now: u64,
    ) -> Result<(Cursor, Vec<ScanEntry>), TagError> {
        let c = self.compile(filter)?;
        let mut out = Vec::new();
        let next = self.walk(cursor, max_slots, |w, _slot, loc, h| {
            if let Some(key) = w.selected(loc, h, &c, now) {
                out.push(ScanEntry {
                    key,
                    value_len: h.value_len,
                    created_ms: h.created_ms(),
                    expires_ms: h.expires_ms(),
                    grace_until_ms: h.grace_until_ms(),
                    stamp: h.stamp,
                });
            }
            out.len() < max_items.max(1)
        });
        Ok((next, out))
    }

    /// One page of the namespace census: calls `f(namespace, entry bytes)` for every live
    /// entry in the slots visited. Returns the next cursor (0 = done).
    pub fn namespace_census(
        &self,
        cursor: Cursor,
        max_slots: u64,
        now: u64,
        mut f: impl FnMut(&[u8], u64),
    ) -> Cursor {
        self.walk(cursor, max_slots, |w, _slot, loc, h| {
            if w.entry_alive(loc, h, now) {
                let ns = w.read_vec(loc as usize + ENTRY_HEADER_BYTES, h.ns_len as usize);
                f(&ns, h.total_len() as u64);
            }
            true
        })
    }

    /// Visits the used slots from `cursor` on, at most `max_slots` of them (used or not),
    /// while `visit` returns true. Returns where to go on, 0 once the last slot was visited.
    fn walk(
        &self,
        cursor: Cursor,
        max_slots: u64,
        mut visit: impl FnMut(&Writer, u64, u64, &EntryHeader) -> bool,
    ) -> Cursor {
        let total = self.slot_count();
        let end = cursor.saturating_add(max_slots.max(1)).min(total);
        let mut slot = cursor;
        while slot < end {
            let go_on = match self.slot_entry(slot) {
                Some((loc, h)) => visit(self, slot, loc, &h),
                None => true,
            };
            slot += 1;
            if !go_on {
                break;
            }
        }
        if slot >= total {
            0
        } else {
            slot
        }
    }
}
