//! Test hooks, behind the `testing` feature (off by default; only tests, the fuzz target
//! and the `cachekit-shm-stress` binary turn it on).
//!
//! A test plays a hostile or broken writer with [`Writer::raw_write`] and looks at the
//! bytes with [`Writer::raw_read`]; [`Reader::revalidate`] re-reads a header as
//! [`Reader::attach`] would. [`TableLayout`] says where everything is, computed by the
//! code the table itself uses: tests and fuzz targets never re-derive the layout.
//!
//! [`Reader::revalidate`]: crate::Reader::revalidate
//! [`Reader::attach`]: crate::Reader::attach

use crate::entry::{CHECK_BITS, CHECK_SHIFT, ENTRY_HEADER_BYTES};
use crate::error::CreateError;
use crate::geometry::{Geometry, TableConfig, CHECKED_WORDS};
use crate::hash::{key_hash, namespace_hash};
use crate::index::{bucket_and_fp, slot_fp, slot_loc};
use crate::layout::{SEGMENT_HEADER_BYTES, SLOTS_PER_BUCKET};
use crate::writer::Writer;
use core::ops::Range;

pub use crate::entry::EntryHeader;
pub use crate::geometry::FixedHeader;

/// Bytes of the header words fixed at creation ([`FixedHeader`]), geometry check included.
pub const FIXED_HEADER_BYTES: usize = (CHECKED_WORDS + 1) * 8;

/// Byte ranges of the fields of an entry's fixed header, from the entry's first byte, and
/// the bits of the packed word the check occupies (see `src/entry.rs`).
pub mod entry_fields {
    use core::ops::Range;

    /// The stamp (u64).
    pub const STAMP: Range<usize> = crate::entry::STAMP_BYTES;
    /// The encoded TTL (u32).
    pub const TTL: Range<usize> = crate::entry::TTL_BYTES;
    /// The encoded grace (u32).
    pub const GRACE: Range<usize> = crate::entry::GRACE_BYTES;
    /// The packed word: value_len, key_len, ns_len, ref_count, check (u64).
    pub const PACKED: Range<usize> = crate::entry::PACKED_BYTES;
    /// Bits of the packed word (0 = least significant) that hold the check.
    pub const CHECK_BITS: Range<u32> = super::CHECK_SHIFT..super::CHECK_SHIFT + super::CHECK_BITS;
}

impl FixedHeader {
    /// The words as the header holds them: [`FIXED_HEADER_BYTES`] bytes from offset 0.
    pub fn to_bytes(&self) -> [u8; FIXED_HEADER_BYTES] {
        let mut b = [0u8; FIXED_HEADER_BYTES];
        for (word, value) in self.words() {
            b[word * 8..word * 8 + 8].copy_from_slice(&value.to_le_bytes());
        }
        b
    }

    /// The words held by the first [`FIXED_HEADER_BYTES`] bytes of a header.
    pub fn from_bytes(b: &[u8; FIXED_HEADER_BYTES]) -> FixedHeader {
        let word = |i: usize| {
            Ok::<u64, core::convert::Infallible>(u64::from_le_bytes(
                b[i * 8..i * 8 + 8].try_into().expect("8 bytes"),
            ))
        };
        match FixedHeader::load(word) {
            Ok(h) => h,
        }
    }
}

/// Where everything of one table is, in bytes from the start of the table segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableLayout {
    geo: Geometry,
}

impl TableLayout {
    /// The layout of the table `w` writes.
    pub fn of(w: &Writer) -> TableLayout {
        TableLayout { geo: w.geometry() }
    }

    /// The layout a table built from `cfg` gets. With `cfg.hash_seed` unset the seed (and
    /// so the header and the buckets of keys) is random, unlike the table's own.
    pub fn of_config(cfg: &TableConfig) -> Result<TableLayout, CreateError> {
        Ok(TableLayout {
            geo: Geometry::from_config(cfg)?,
        })
    }

    /// The header words fixed at creation, geometry check included.
    pub fn header(&self) -> FixedHeader {
        self.geo.header()
    }

    /// Length of the table segment.
    pub fn total_bytes(&self) -> u64 {
        self.geo.total_bytes
    }

    /// The hash seed.
    pub fn seed(&self) -> u64 {
        self.geo.seed
    }

    /// Offset of the tag counters.
    pub fn tag_off(&self) -> u64 {
        self.geo.tag_off
    }

    /// Number of tag counters.
    pub fn tag_count(&self) -> u64 {
        self.geo.tag_count
    }

    /// Offset of tag counter `idx`.
    pub fn counter_off(&self, idx: u32) -> u64 {
        self.geo.counter_word(idx) as u64 * 8
    }

    /// Offset of the index.
    pub fn index_off(&self) -> u64 {
        self.geo.index_off
    }

    /// Number of index buckets.
    pub fn bucket_count(&self) -> u64 {
        self.geo.bucket_count
    }

    /// Offset of a bucket (its first slot).
    pub fn bucket_off(&self, bucket: u64) -> u64 {
        self.slot_off(bucket, 0)
    }

    /// Offset of slot `i` of a bucket.
    pub fn slot_off(&self, bucket: u64, i: usize) -> u64 {
        assert!(
            i < SLOTS_PER_BUCKET,
            "a bucket has {SLOTS_PER_BUCKET} slots"
        );
        self.geo.slot_word(bucket, i) as u64 * 8
    }

    /// The bucket that holds `key` of namespace `ns`.
    pub fn bucket_of(&self, ns: &str, key: &[u8]) -> u64 {
        let seed = self.geo.seed;
        let kh = key_hash(seed, namespace_hash(seed, ns.as_bytes()), key);
        bucket_and_fp(kh, self.geo.bucket_count).0
    }

    /// Offset of the arena.
    pub fn arena_off(&self) -> u64 {
        self.geo.arena_off
    }

    /// Bytes of one arena segment.
    pub fn segment_bytes(&self) -> u64 {
        self.geo.segment_bytes
    }

    /// Number of arena segments.
    pub fn segment_count(&self) -> u64 {
        self.geo.segment_count
    }

    /// Offset of segment `seg` (its header).
    pub fn segment_off(&self, seg: u64) -> u64 {
        self.geo.arena_off + seg * self.geo.segment_bytes
    }

    /// Offset of the first entry a segment holds, right after its header.
    pub fn segment_entries_off(&self, seg: u64) -> u64 {
        self.segment_off(seg) + SEGMENT_HEADER_BYTES
    }

    /// The largest value the table holds.
    pub fn max_value_bytes(&self) -> u64 {
        self.geo.max_value_bytes
    }

    /// Byte length of the client area.
    pub fn client_area_bytes(&self) -> u64 {
        self.geo.client_area_bytes
    }

    /// The entry of `key` in `ns`, found as the writer finds it: the index slot of the key's
    /// bucket with the key's fingerprint whose entry holds that namespace and key. `None`
    /// when no slot points at it.
    pub fn entry(&self, w: &Writer, ns: &str, key: &[u8]) -> Option<EntrySpan> {
        let seed = self.geo.seed;
        let kh = key_hash(seed, namespace_hash(seed, ns.as_bytes()), key);
        let (bucket, fp) = bucket_and_fp(kh, self.geo.bucket_count);
        (0..SLOTS_PER_BUCKET).find_map(|slot| {
            let at = self.slot_off(bucket, slot) as usize;
            let s = u64::from_le_bytes(w.raw_read(at, 8)?.try_into().expect("8 bytes"));
            if s == 0 || slot_fp(s) != fp {
                return None;
            }
            let loc = slot_loc(s);
            let hb = w.raw_read(loc as usize, ENTRY_HEADER_BYTES)?;
            let header = EntryHeader::decode(&hb.try_into().expect("a whole header"));
            let span = EntrySpan {
                bucket,
                slot,
                loc,
                header,
            };
            let found = header.ns_len as usize == ns.len()
                && header.key_len as usize == key.len()
                && w.raw_read(span.namespace().start as usize, ns.len())? == ns.as_bytes()
                && w.raw_read(span.key().start as usize, key.len())? == key;
            found.then_some(span)
        })
    }
}

/// Where one entry is: the index slot that points at it and its byte ranges in the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntrySpan {
    /// The bucket of the slot.
    pub bucket: u64,
    /// The slot within the bucket.
    pub slot: usize,
    /// Offset of the entry's first byte (the slot's locator).
    pub loc: u64,
    /// The entry's fixed header.
    pub header: EntryHeader,
}

impl EntrySpan {
    fn range(&self, start: usize, len: usize) -> Range<u64> {
        let s = self.loc + start as u64;
        s..s + len as u64
    }

    /// All of the entry.
    pub fn bytes(&self) -> Range<u64> {
        self.range(0, self.header.total_len())
    }

    /// The namespace bytes.
    pub fn namespace(&self) -> Range<u64> {
        self.range(ENTRY_HEADER_BYTES, self.header.ns_len as usize)
    }

    /// The key bytes.
    pub fn key(&self) -> Range<u64> {
        let h = &self.header;
        self.range(ENTRY_HEADER_BYTES + h.ns_len as usize, h.key_len as usize)
    }

    /// The tag-counter references (u32 each).
    pub fn refs(&self) -> Range<u64> {
        let h = &self.header;
        self.range(
            ENTRY_HEADER_BYTES + h.ns_len as usize + h.key_len as usize,
            4 * h.ref_count as usize,
        )
    }

    /// The value bytes.
    pub fn value(&self) -> Range<u64> {
        let h = &self.header;
        self.range(ENTRY_HEADER_BYTES + h.meta_tail_len(), h.value_len as usize)
    }
}

/// The tag counters (indexes, sorted and distinct) an entry of namespace `ns` tagged `tags`
/// references in a table of hash seed `seed` and `tag_count` counters ([`FixedHeader`]), as
/// the writer computes them: a test can tell which entries share a counter, and so which
/// misses an invalidation of another tag explains (see "Tag counters" in
/// docs/ARCHITECTURE.md).
pub fn entry_counters(
    seed: u64,
    tag_count: u64,
    ns: &str,
    tags: &[&str],
) -> Result<Vec<u32>, crate::InsertError> {
    let mut out = Vec::new();
    crate::tags::entry_refs(
        seed,
        namespace_hash(seed, ns.as_bytes()),
        tags,
        tag_count - 1,
        &mut out,
    )?;
    Ok(out)
}

/// The tag counters an invalidation of `tag` in namespace `ns` stores into, in a table of
/// hash seed `seed` and `tag_count` counters.
pub fn invalidation_counters(
    seed: u64,
    tag_count: u64,
    ns: &str,
    tag: &str,
    mode: crate::InvalidateMode,
) -> Result<Vec<u32>, crate::TagError> {
    let c = crate::tags::invalidation_counters(
        seed,
        namespace_hash(seed, ns.as_bytes()),
        tag,
        mode,
        tag_count - 1,
    )?;
    Ok(c.into_iter().flatten().collect())
}
