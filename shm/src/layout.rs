//! Byte layout of the table segment and of the client area.
//!
//! The drawing lives in `docs/ARCHITECTURE.md`; the structs below are that drawing
//! in code. They are never instantiated over shared memory (every access goes
//! through atomic words, see `src/region.rs`); they exist so that offsets are
//! computed by the compiler with `offset_of!` and sizes are pinned by const asserts.

use core::mem::{offset_of, size_of};

/// `b"CKSHMTB1"` read as a little-endian u64: the first word of every table segment.
pub const TABLE_MAGIC: u64 = u64::from_le_bytes(*b"CKSHMTB1");
/// `b"CKSHMCA1"`: the first word of every client area.
pub const CLIENT_MAGIC: u64 = u64::from_le_bytes(*b"CKSHMCA1");
/// Bumped on every incompatible change of anything drawn in this module.
pub const LAYOUT_VERSION: u64 = 1;

/// Page size every section is aligned to.
pub const PAGE: u64 = 4096;
/// Bytes reserved for the table header (one page).
pub const HEADER_BYTES: u64 = PAGE;
/// Slots per index bucket: one 64-byte cache line of 8-byte slots.
pub const SLOTS_PER_BUCKET: usize = 8;
/// Bytes of one bucket.
pub const BUCKET_BYTES: u64 = 64;
/// Bytes at the start of every arena segment reserved for its header.
pub const SEGMENT_HEADER_BYTES: u64 = size_of::<SegmentHeader>() as u64;

/// Number of statistics words in the table header.
pub const STAT_WORDS: usize = 32;

/// The table header, at offset 0 of the table segment. Written by the daemon only.
///
/// Words up to and including `geometry_check` are fixed at creation; a reader copies
/// them once at attach, checks `geometry_check`, and never reads them again.
#[repr(C)]
pub struct TableHeader {
    /// [`TABLE_MAGIC`].
    pub magic: u64,
    /// [`LAYOUT_VERSION`].
    pub layout_version: u64,
    /// Length of the whole table segment in bytes.
    pub total_bytes: u64,
    /// Seed of every hash that indexes shared memory (key hash, tag counter index, check).
    pub hash_seed: u64,
    /// Byte offset of the tag-generation array.
    pub tag_off: u64,
    /// Number of tag counters (a power of two).
    pub tag_count: u64,
    /// Byte offset of the index.
    pub index_off: u64,
    /// Number of 64-byte buckets (a power of two).
    pub bucket_count: u64,
    /// Byte offset of the arena.
    pub arena_off: u64,
    /// Bytes of one arena segment (a power of two).
    pub segment_bytes: u64,
    /// Number of arena segments.
    pub segment_count: u64,
    /// Largest value the writer accepts, in bytes.
    pub max_value_bytes: u64,
    /// Byte length the client area must have.
    pub client_area_bytes: u64,
    /// xxh3 of the words above, seeded with [`TABLE_MAGIC`].
    pub geometry_check: u64,
    /// Bumped on every daemon start that creates or re-attaches this segment.
    pub epoch: u64,
    /// Unix milliseconds of the daemon's last heartbeat.
    pub heartbeat_ms: u64,
    /// Bumped by every full flush (`clear_all`).
    pub flush_generation: u64,
    /// The writer's last stamp (hybrid logical clock), kept for a warm restart.
    pub last_stamp: u64,
    /// Statistics, see [`Stat`].
    pub stats: [u64; STAT_WORDS],
}
const _: () = assert!(size_of::<TableHeader>() == 18 * 8 + STAT_WORDS * 8);
const _: () = assert!(size_of::<TableHeader>() as u64 <= HEADER_BYTES);

/// Byte offset, in the header page, of the Redis stream positions: where the daemon records
/// the last invalidation-stream entry it applied per followed namespace, so that a table
/// carried into a new daemon (warm restart) can replay from there. After [`TableHeader`],
/// inside the header page; no reader reads it. Zero in a table that never recorded one
/// (every older build): "no position", which the replay treats as a gap.
pub const STREAM_POSITIONS_OFF: u64 = 1024;
/// Records of the stream-position area.
pub const STREAM_POSITIONS: usize = 64;
/// Words of one record: xxh3 of the namespace name (seed 0), the stream id's milliseconds and
/// sequence, the namespace clock of that entry (what the next entry's clock must follow), and
/// a check word (xxh3 of the four, seeded with [`TABLE_MAGIC`]) so that garbage — or a record
/// of the 4-word layout of earlier builds — reads as "no position". A record with a namespace
/// hash of 0 is free.
pub const STREAM_POSITION_WORDS: usize = 5;
const _: () = assert!(size_of::<TableHeader>() as u64 <= STREAM_POSITIONS_OFF);
const _: () = assert!(
    STREAM_POSITIONS_OFF + (STREAM_POSITIONS * STREAM_POSITION_WORDS * 8) as u64 <= HEADER_BYTES
);

/// Header of one arena segment, at the segment's first byte.
#[repr(C)]
pub struct SegmentHeader {
    /// Generation: bumped (Release, then a Release fence) every time the segment is
    /// recycled, before any byte of it is rewritten. Readers use it as a seqlock.
    pub generation: u64,
    /// TTL class of the entries in this segment (writer bookkeeping, informational).
    pub ttl_class: u64,
    /// Bytes written so far, including this header (writer bookkeeping).
    pub write_offset: u64,
    /// Allocation sequence number (FIFO order, writer bookkeeping).
    pub alloc_seq: u64,
    /// Latest `grace_until` of any entry in the segment, Unix ms; `u64::MAX` = never.
    pub max_grace_until: u64,
    /// Reserved, zero.
    pub reserved: [u64; 3],
}
const _: () = assert!(size_of::<SegmentHeader>() == 64);

/// Header of the client area, the one region every client may write. The writer fills it
/// at creation as a copy for people and tools; no reader relies on it (the area's geometry
/// comes from the sealed table header and the constants of this module), and the daemon
/// rewrites it when a client changed it (see `ClientArea::check_header`).
///
/// What the area holds that is used: the access bitmap (readers set a slot's bit on a hit;
/// eviction gives such entries a second chance). The records and namespace tables drawn
/// after the header are no longer written or read by anyone: every client wrote the same
/// area, so one client could change another's figures; host-wide counters now live in a
/// memfd per client process ([`CountersHeader`]). They stay drawn, unused, so that the
/// area's size and offsets (and a table carried across a warm restart) are unchanged.
#[repr(C)]
pub struct ClientAreaHeader {
    /// [`CLIENT_MAGIC`].
    pub magic: u64,
    /// [`LAYOUT_VERSION`].
    pub layout_version: u64,
    /// Length of the client area in bytes.
    pub total_bytes: u64,
    /// Number of per-client records.
    pub record_count: u64,
    /// Byte offset of the records.
    pub records_off: u64,
    /// Byte offset of the access bitmap (one bit per index slot).
    pub bits_off: u64,
    /// Number of 64-bit words in the access bitmap.
    pub bits_words: u64,
    /// Byte offset of the per-client namespace tables ([`ClientNamespaces`]).
    pub namespaces_off: u64,
}
const _: () = assert!(size_of::<ClientAreaHeader>() == 64);

/// A record of the client area: unused (reserved, see [`ClientAreaHeader`]); kept in the
/// drawing so the area's offsets do not move.
#[repr(C)]
pub struct ClientRecord {
    /// Process id of the client holding this record, 0 when free.
    pub pid: u64,
    /// Hits served from the segment.
    pub hits: u64,
    /// Stale hits (inside the grace window).
    pub stale_hits: u64,
    /// Misses.
    pub misses: u64,
    /// Seqlock retries.
    pub retries: u64,
    /// Entries that failed validation.
    pub corrupt: u64,
    /// Reserved, zero.
    pub reserved: [u64; 2],
}
const _: () = assert!(size_of::<ClientRecord>() == 64);

/// Records in every client area.
pub const CLIENT_RECORDS: u64 = 256;

/// Namespaces one client counts separately (see [`ClientNamespaces`]).
pub const NAMESPACE_SLOTS: usize = 8;

/// Per-namespace tables of the client area, after the access bitmap (record `i`'s at
/// `client_ns_off + i * 256`): unused (reserved, see [`ClientAreaHeader`]); kept in the
/// drawing so the area's size does not change.
#[repr(C)]
pub struct ClientNamespaces {
    /// Namespace tags, 0 = free.
    pub tags: [u64; NAMESPACE_SLOTS],
    /// Per slot: hits, stale hits, misses.
    pub counts: [[u64; 3]; NAMESPACE_SLOTS],
}
const _: () = assert!(size_of::<ClientNamespaces>() == 256);

/// `b"CKSHMCN1"`: the first word of every counters file.
pub const COUNTERS_MAGIC: u64 = u64::from_le_bytes(*b"CKSHMCN1");

/// Header of a counters file: the memfd the daemon makes for one client process at its first
/// HELLO (sent with HELLO_OK as the third descriptor) and keeps until the process has exited
/// and closed its last connection. Only that process (and the daemon) maps it: what a client
/// writes here changes its own figures and nobody else's. The daemon writes the header at
/// creation; no client reads it; the daemon rewrites it when it changed (counted in
/// `client_area_damaged`). The file is sealed against growing, shrinking and further seals,
/// so it cannot be truncated under the daemon's mapping.
///
/// Layout: this header (64 bytes), the namespace tags (one cache line, [`NAMESPACE_SLOTS`]
/// words at [`COUNTERS_TAGS_OFF`]), then [`COUNTER_STRIPES`] [`CounterStripe`]s at
/// [`COUNTERS_STRIPES_OFF`]; [`COUNTERS_BYTES`] in all.
///
/// A reader counts a lookup of namespace `ns` under its tag (`namespace hash | 1`): it finds
/// the tag in the tags line, or claims a free (zero) word for it with a compare-and-swap,
/// and adds one to that slot's counter in its thread's stripe; a namespace that finds no
/// slot counts in the stripe's own (unattributed) counters. The first `COUNTER_STRIPES - 1`
/// stripes each belong to one thread of the process at a time (the reader's counter stripe,
/// see `reader.rs`), so its add is a plain load and store; threads past them share the last
/// stripe, with `fetch_add`. The daemon sums every stripe as untrusted numbers (saturating).
#[repr(C)]
pub struct CountersHeader {
    /// [`COUNTERS_MAGIC`].
    pub magic: u64,
    /// [`LAYOUT_VERSION`].
    pub layout_version: u64,
    /// Process id of the client this file counts for.
    pub pid: u64,
    /// The record number HELLO_OK named (`client_slot`).
    pub record: u64,
    /// Bytes of the file ([`COUNTERS_BYTES`]).
    pub total_bytes: u64,
    /// [`COUNTER_STRIPES`].
    pub stripe_count: u64,
    /// [`COUNTERS_STRIPES_OFF`].
    pub stripes_off: u64,
    /// Reserved, zero.
    pub reserved: u64,
}
const _: () = assert!(size_of::<CountersHeader>() == 64);

/// One stripe of a counters file: per namespace slot hits, stale hits and misses, then the
/// unattributed ones; padded to four cache lines so no two stripes share one.
#[repr(C)]
pub struct CounterStripe {
    /// Per namespace slot (the index of its tag): hits, stale hits, misses.
    pub counts: [[u64; 3]; NAMESPACE_SLOTS],
    /// Lookups of namespaces that found no slot: hits, stale hits, misses.
    pub unattributed: [u64; 3],
    /// Reserved, zero.
    pub reserved: [u64; 5],
}
const _: () = assert!(size_of::<CounterStripe>() == 256);

/// Byte offset of the namespace tags in a counters file.
pub const COUNTERS_TAGS_OFF: u64 = size_of::<CountersHeader>() as u64;
/// Byte offset of the first [`CounterStripe`].
pub const COUNTERS_STRIPES_OFF: u64 = COUNTERS_TAGS_OFF + 64;
/// Stripes of a counters file: as many as fit in [`COUNTERS_BYTES`] (30 threads of a process
/// count without a locked instruction; the rest share the last stripe).
pub const COUNTER_STRIPES: usize = 31;
/// Bytes of a counters file: two pages.
pub const COUNTERS_BYTES: u64 = 2 * PAGE;
const _: () = assert!(NAMESPACE_SLOTS * 8 <= 64);
const _: () = assert!(
    COUNTERS_STRIPES_OFF + (COUNTER_STRIPES * size_of::<CounterStripe>()) as u64 <= COUNTERS_BYTES
);

/// Word index of a [`TableHeader`] field.
macro_rules! header_word {
    ($field:ident) => {
        core::mem::offset_of!($crate::layout::TableHeader, $field) / 8
    };
}
pub(crate) use header_word;

/// Word index (relative to the segment start) of the segment generation.
pub const SEG_GENERATION_WORD: usize = offset_of!(SegmentHeader, generation) / 8;
/// Word index of the segment's TTL class.
pub const SEG_CLASS_WORD: usize = offset_of!(SegmentHeader, ttl_class) / 8;
/// Word index of the segment's write offset.
pub const SEG_WRITE_OFFSET_WORD: usize = offset_of!(SegmentHeader, write_offset) / 8;
/// Word index of the segment's allocation sequence.
pub const SEG_ALLOC_SEQ_WORD: usize = offset_of!(SegmentHeader, alloc_seq) / 8;
/// Word index of the segment's latest grace deadline.
pub const SEG_MAX_GRACE_WORD: usize = offset_of!(SegmentHeader, max_grace_until) / 8;

/// Statistics words of the table header, maintained by the writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(usize)]
pub enum Stat {
    /// Index slots that point at an entry.
    LiveEntries = 0,
    /// Successful inserts (new keys and overwrites).
    Inserts,
    /// Inserts that replaced an existing entry of the same key.
    Overwrites,
    /// Deletes that removed an entry.
    Deletes,
    /// Tag invalidations.
    Invalidations,
    /// Namespace clears.
    NamespaceClears,
    /// Full flushes.
    Flushes,
    /// Entries dropped by segment eviction.
    Evictions,
    /// Entries given a second chance (copied forward) by eviction.
    SecondChances,
    /// Entries dropped because their bucket was full.
    BucketEvictions,
    /// Segments reclaimed because everything in them had expired.
    ExpiredSegments,
    /// Segments recycled for any reason.
    Recycles,
    /// Segments currently free.
    FreeSegments,
    /// Bytes of arena holding entries (live or dead) in non-free segments.
    UsedBytes,
}

impl Stat {
    /// Every statistic, in word order.
    pub const ALL: [Stat; 14] = [
        Stat::LiveEntries,
        Stat::Inserts,
        Stat::Overwrites,
        Stat::Deletes,
        Stat::Invalidations,
        Stat::NamespaceClears,
        Stat::Flushes,
        Stat::Evictions,
        Stat::SecondChances,
        Stat::BucketEvictions,
        Stat::ExpiredSegments,
        Stat::Recycles,
        Stat::FreeSegments,
        Stat::UsedBytes,
    ];

    /// Stable snake_case name, used by STATS replies and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Stat::LiveEntries => "live_entries",
            Stat::Inserts => "inserts",
            Stat::Overwrites => "overwrites",
            Stat::Deletes => "deletes",
            Stat::Invalidations => "invalidations",
            Stat::NamespaceClears => "namespace_clears",
            Stat::Flushes => "flushes",
            Stat::Evictions => "evictions",
            Stat::SecondChances => "second_chances",
            Stat::BucketEvictions => "bucket_evictions",
            Stat::ExpiredSegments => "expired_segments",
            Stat::Recycles => "recycles",
            Stat::FreeSegments => "free_segments",
            Stat::UsedBytes => "used_bytes",
        }
    }

    pub(crate) fn word(self) -> usize {
        header_word!(stats) + self as usize
    }
}
const _: () = assert!(Stat::ALL.len() <= STAT_WORDS);

/// Rounds `v` up to a multiple of `align` (a power of two).
pub(crate) const fn align_up(v: u64, align: u64) -> u64 {
    (v + align - 1) & !(align - 1)
}
