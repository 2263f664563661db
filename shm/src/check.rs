//! The whole check of one index slot and the entry it points at, as a warm restart carries it
//! and as `verify` walks the live table: everything a reader checks on a hit, plus what only a
//! walk of the whole table can check (the slot is in the bucket its key hashes to, the entry
//! lies inside what its segment has written).
//!
//! It reads plainly (relaxed word loads, no seqlock): its callers read memory nobody writes
//! while they look — a dead daemon's segment (the instance lock proves its writer gone, and
//! the table memfd allows no other writable mapping), or the live table under the writer's
//! lock. Every offset and length is bounds-checked before use, as in the reader.

use crate::entry::{
    entry_check, fold_ref, EntryHeader, ENTRY_HEADER_BYTES, MAX_KEY_BYTES, MAX_NAMESPACE_BYTES,
    MAX_REFS, STAMP_COUNTER_BITS,
};
use crate::geometry::Geometry;
use crate::hash::{key_hash, namespace_hash};
use crate::index::{bucket_and_fp, slot_fp, slot_loc};
use crate::layout::{SEGMENT_HEADER_BYTES, SEG_WRITE_OFFSET_WORD};
use crate::region::Region;
use crate::sync::Ordering;

/// Why an entry of an old (or live) table is not carried (or is reported by `verify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(usize)]
pub enum DropReason {
    /// The slot's locator is outside the arena, or the entry does not fit its segment.
    BadLocation = 0,
    /// The entry lies past what its segment had written (a slot left over from a recycled
    /// segment, or a write that never finished).
    Unwritten,
    /// The slot is not in the bucket its entry's key hashes to, or its fingerprint differs.
    Misplaced,
    /// The entry's lengths, tag references or 13-bit check are wrong: damaged bytes.
    CheckFailed,
    /// Another slot of the same bucket holds a newer entry of the same key.
    Duplicate,
    /// Past its grace deadline: a read would miss it anyway.
    Expired,
    /// A tag of it was invalidated or its namespace cleared: a read would miss it anyway.
    Invalidated,
    /// Its tag references cannot be expressed in the new table (`tag_counters` grew, or another
    /// hash seed).
    RefSpace,
    /// Its value is larger than the new table's `max_value_bytes`.
    TooLarge,
}

impl DropReason {
    /// Every reason, in counter order.
    pub const ALL: [DropReason; 9] = [
        DropReason::BadLocation,
        DropReason::Unwritten,
        DropReason::Misplaced,
        DropReason::CheckFailed,
        DropReason::Duplicate,
        DropReason::Expired,
        DropReason::Invalidated,
        DropReason::RefSpace,
        DropReason::TooLarge,
    ];

    /// Stable snake_case name (logs, VERIFY replies, the CLI).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::BadLocation => "bad_location",
            DropReason::Unwritten => "unwritten",
            DropReason::Misplaced => "misplaced",
            DropReason::CheckFailed => "check_failed",
            DropReason::Duplicate => "duplicate",
            DropReason::Expired => "expired",
            DropReason::Invalidated => "invalidated",
            DropReason::RefSpace => "ref_space",
            DropReason::TooLarge => "too_large",
        }
    }

    /// Damage (as opposed to an entry a read would miss anyway, or one the new table cannot
    /// hold): what `verify` reports and `--repair` drops.
    pub fn is_damage(self) -> bool {
        matches!(
            self,
            DropReason::BadLocation
                | DropReason::Unwritten
                | DropReason::Misplaced
                | DropReason::CheckFailed
                | DropReason::Duplicate
        )
    }
}

/// Counts by [`DropReason`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropCounts(pub [u64; DropReason::ALL.len()]);

impl DropCounts {
    /// Adds one for `r`.
    pub fn add(&mut self, r: DropReason) {
        self.0[r as usize] += 1;
    }

    /// The count of `r`.
    pub fn get(&self, r: DropReason) -> u64 {
        self.0[r as usize]
    }

    /// Every reason with its count.
    pub fn named(&self) -> Vec<(&'static str, u64)> {
        DropReason::ALL
            .iter()
            .map(|r| (r.name(), self.get(*r)))
            .collect()
    }

    /// The sum over every reason.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The sum over the reasons that are damage ([`DropReason::is_damage`]).
    pub fn damage(&self) -> u64 {
        DropReason::ALL
            .iter()
            .filter(|r| r.is_damage())
            .map(|r| self.get(*r))
            .sum()
    }
}

/// One tag-counter reference of an entry, with the counter's value in the table it came from
/// (always below the entry's stamp: the entry was alive there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CarriedRef {
    /// The counter index, in the source's counter space ([`RefSpace`](crate::RefSpace)).
    pub index: u32,
    /// The counter's value in the source.
    pub counter: u64,
}

/// An entry taken out of a table (an old segment at a warm restart; a snapshot file later):
/// everything needed to insert it into another table so that a read there returns what a
/// read of the source would have. The value is the stored envelope, opaque (an encrypted
/// value stays encrypted).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CarriedEntry {
    /// The namespace.
    pub namespace: String,
    /// The key.
    pub key: Vec<u8>,
    /// The stored value bytes.
    pub value: Vec<u8>,
    /// The entry's stamp: its version, and its creation time (`stamp >> 20` ms).
    pub stamp: u64,
    /// Unix ms when it stops being fresh; `None` = never.
    pub expires_ms: Option<u64>,
    /// Unix ms when it is gone; `None` = never (`Some(u64::MAX)`: grace without end).
    pub grace_until_ms: Option<u64>,
    /// Its tag-counter references (the namespace's among them), sorted by index.
    pub refs: Vec<CarriedRef>,
}

impl CarriedEntry {
    /// Unix ms at which it was written.
    pub fn created_ms(&self) -> u64 {
        self.stamp >> STAMP_COUNTER_BITS
    }
}

/// Stamps further ahead of the clock than this are damage: a stamp is `created_ms << 20`, and
/// a daemon's clock never runs a day ahead of this one's.
pub(crate) const STAMP_SLACK_MS: u64 = 24 * 3600 * 1000;

/// The largest stamp believable at `now`.
pub(crate) fn stamp_bound(now: u64) -> u64 {
    now.saturating_add(STAMP_SLACK_MS)
        .saturating_mul(1 << STAMP_COUNTER_BITS)
}

/// Checks slot `i` of `bucket` (its word `slot`, non-zero) and its entry; on success fills `out`
/// with it. `now` decides expiry.
pub(crate) fn check_slot(
    r: &Region,
    g: &Geometry,
    bucket: u64,
    slot: u64,
    now: u64,
    out: &mut CarriedEntry,
) -> Result<(), DropReason> {
    use DropReason::*;
    let loc = slot_loc(slot);
    let rel = loc.checked_sub(g.arena_off).ok_or(BadLocation)?;
    let seg = rel / g.segment_bytes;
    if seg >= g.segment_count {
        return Err(BadLocation);
    }
    let seg_off = g.arena_off + seg * g.segment_bytes;
    let seg_end = seg_off + g.segment_bytes;
    if loc < seg_off + SEGMENT_HEADER_BYTES || loc + ENTRY_HEADER_BYTES as u64 > seg_end {
        return Err(BadLocation);
    }
    let mut hb = [0u8; ENTRY_HEADER_BYTES];
    if !r.read_bytes(loc as usize, &mut hb) {
        return Err(BadLocation);
    }
    let h = EntryHeader::decode(&hb);
    let end = loc + h.total_len() as u64;
    if end > seg_end {
        return Err(BadLocation);
    }
    let written = r
        .load(
            (seg_off / 8) as usize + SEG_WRITE_OFFSET_WORD,
            Ordering::Relaxed,
        )
        .unwrap_or(0)
        .min(g.segment_bytes);
    if end > seg_off + written {
        return Err(Unwritten);
    }
    if h.value_len as u64 > g.max_value_bytes
        || h.ref_count == 0
        || h.ref_count as usize > MAX_REFS
        || h.key_len as usize > MAX_KEY_BYTES
        || h.ns_len as usize > MAX_NAMESPACE_BYTES
        || h.stamp > stamp_bound(now)
    {
        return Err(CheckFailed);
    }
    let ns_at = loc as usize + ENTRY_HEADER_BYTES;
    let mut ns = std::mem::take(&mut out.namespace).into_bytes();
    ns.resize(h.ns_len as usize, 0);
    let ok = r.read_bytes(ns_at, &mut ns);
    out.namespace = String::from_utf8(ns).unwrap_or_default();
    if !ok || out.namespace.len() != h.ns_len as usize {
        return Err(CheckFailed);
    }
    let key_at = ns_at + h.ns_len as usize;
    out.key.resize(h.key_len as usize, 0);
    if !r.read_bytes(key_at, &mut out.key) {
        return Err(BadLocation);
    }
    let kh = key_hash(
        g.seed,
        namespace_hash(g.seed, out.namespace.as_bytes()),
        &out.key,
    );
    if bucket_and_fp(kh, g.bucket_count) != (bucket, slot_fp(slot)) {
        return Err(Misplaced);
    }
    let refs_at = key_at + h.key_len as usize;
    out.refs.clear();
    let mut fold = 0;
    let mut invalidated = false;
    for k in 0..h.ref_count as usize {
        let mut b = [0u8; 4];
        if !r.read_bytes(refs_at + 4 * k, &mut b) {
            return Err(BadLocation);
        }
        let index = u32::from_le_bytes(b);
        fold = fold_ref(fold, index);
        if index as u64 >= g.tag_count {
            return Err(CheckFailed);
        }
        let counter = r
            .load(g.counter_word(index), Ordering::Acquire)
            .unwrap_or(u64::MAX);
        invalidated |= counter >= h.stamp;
        out.refs.push(CarriedRef { index, counter });
    }
    out.value.resize(h.value_len as usize, 0);
    if !r.read_bytes(refs_at + 4 * h.ref_count as usize, &mut out.value) {
        return Err(BadLocation);
    }
    if entry_check(g.seed, &hb, kh, fold, &out.value) != h.check {
        return Err(CheckFailed);
    }
    out.stamp = h.stamp;
    out.expires_ms = h.expires_ms();
    out.grace_until_ms = h.grace_until_ms();
    if out.grace_until_ms.is_some_and(|gu| now >= gu) {
        return Err(Expired);
    }
    if invalidated {
        return Err(Invalidated);
    }
    Ok(())
}
