//! Table configuration and the geometry derived from it.

use crate::entry::{MAX_META_BYTES, VALUE_LEN_CEILING};
use crate::error::{AttachError, CreateError};
use crate::layout::{
    align_up, header_word, ClientAreaHeader, ClientNamespaces, ClientRecord, BUCKET_BYTES,
    CLIENT_RECORDS, HEADER_BYTES, LAYOUT_VERSION, PAGE, SEGMENT_HEADER_BYTES, SLOTS_PER_BUCKET,
    TABLE_MAGIC,
};
use crate::region::Region;
use crate::sync::Ordering;
use core::mem::{offset_of, size_of};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// How big a table to build. Every field has a default; see [`TableConfig::default`].
#[derive(Clone, Debug)]
pub struct TableConfig {
    /// Bytes of arena for entries (rounded down to whole segments). Default 64 MiB.
    pub arena_bytes: u64,
    /// Bytes of one arena segment, a power of two. Default: the smallest power of two
    /// of at least 1 MiB that holds the largest entry.
    pub segment_bytes: Option<u64>,
    /// Largest value accepted, in bytes. Default 1 MiB; at most 16 MiB - 1.
    pub max_value_bytes: u64,
    /// Expected average entry size, used to size the index (see [`INDEX_LOAD_TARGET`]).
    /// Default 128.
    pub expected_entry_bytes: u64,
    /// Number of tag-generation counters, a power of two. Default 2^18 (2 MiB).
    pub tag_counters: u64,
    /// Hash seed; random when `None`.
    pub hash_seed: Option<u64>,
    /// Daemon epoch written into the header; random non-zero when `None`.
    pub epoch: Option<u64>,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            arena_bytes: 64 << 20,
            segment_bytes: None,
            max_value_bytes: 1 << 20,
            expected_entry_bytes: 128,
            tag_counters: 1 << 18,
            hash_seed: None,
            epoch: None,
        }
    }
}

/// Entries per index bucket the index is sized for, when the arena is full of entries of
/// [`TableConfig::expected_entry_bytes`]: the bucket count is the smallest power of two (and at
/// least [`MIN_BUCKETS`]) that keeps the load at or below this, so the load ends above half of it
/// and at most all of it (lower only in a table of `MIN_BUCKETS`). For 8-slot buckets a Poisson load overflows ~0.18% of entries out of their
/// bucket at 3 (at 2, ~0.015%; at 4, ~0.8%).
pub const INDEX_LOAD_TARGET: u64 = 3;

/// Fewest index buckets: the access bitmap (one bit per slot) is made of whole 64-bit words.
pub const MIN_BUCKETS: u64 = 64 / SLOTS_PER_BUCKET as u64;
const _: () = assert!((MIN_BUCKETS * SLOTS_PER_BUCKET as u64).is_multiple_of(64));

/// Where everything is. Derived from a [`TableConfig`] by the writer, read back and
/// validated from the header by readers, who then never trust the header again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    pub total_bytes: u64,
    pub seed: u64,
    pub tag_off: u64,
    pub tag_count: u64,
    pub index_off: u64,
    pub bucket_count: u64,
    pub arena_off: u64,
    pub segment_bytes: u64,
    pub segment_count: u64,
    pub max_value_bytes: u64,
    pub client_area_bytes: u64,
}

/// The words of the table header fixed at creation, by name: the part of
/// [`TableHeader`](crate::layout::TableHeader) up to and including `geometry_check`. Each
/// lives at the header word of the [`TableHeader`](crate::layout::TableHeader) field of the
/// same name; nothing addresses them by position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FixedHeader {
    /// [`TABLE_MAGIC`].
    pub magic: u64,
    /// [`LAYOUT_VERSION`].
    pub layout_version: u64,
    /// Length of the whole table segment in bytes.
    pub total_bytes: u64,
    /// Seed of every hash that indexes shared memory.
    pub hash_seed: u64,
    /// Byte offset of the tag-generation array.
    pub tag_off: u64,
    /// Number of tag counters.
    pub tag_count: u64,
    /// Byte offset of the index.
    pub index_off: u64,
    /// Number of 64-byte buckets.
    pub bucket_count: u64,
    /// Byte offset of the arena.
    pub arena_off: u64,
    /// Bytes of one arena segment.
    pub segment_bytes: u64,
    /// Number of arena segments.
    pub segment_count: u64,
    /// Largest value the writer accepts, in bytes.
    pub max_value_bytes: u64,
    /// Byte length the client area must have.
    pub client_area_bytes: u64,
    /// xxh3 of the words above (see [`FixedHeader::expected_check`]).
    pub geometry_check: u64,
}

/// Header words the geometry check covers: every word before it.
pub(crate) const CHECKED_WORDS: usize = header_word!(geometry_check);

impl FixedHeader {
    /// Every word with its word index in the header, in header order. The array's length
    /// pins the number of fields: a field added to `TableHeader` before `geometry_check`
    /// must be added here.
    pub fn words(&self) -> [(usize, u64); CHECKED_WORDS + 1] {
        [
            (header_word!(magic), self.magic),
            (header_word!(layout_version), self.layout_version),
            (header_word!(total_bytes), self.total_bytes),
            (header_word!(hash_seed), self.hash_seed),
            (header_word!(tag_off), self.tag_off),
            (header_word!(tag_count), self.tag_count),
            (header_word!(index_off), self.index_off),
            (header_word!(bucket_count), self.bucket_count),
            (header_word!(arena_off), self.arena_off),
            (header_word!(segment_bytes), self.segment_bytes),
            (header_word!(segment_count), self.segment_count),
            (header_word!(max_value_bytes), self.max_value_bytes),
            (header_word!(client_area_bytes), self.client_area_bytes),
            (header_word!(geometry_check), self.geometry_check),
        ]
    }

    /// The words `load(word index)` gives, each asked for at its own word index.
    pub(crate) fn load<E>(mut load: impl FnMut(usize) -> Result<u64, E>) -> Result<FixedHeader, E> {
        Ok(FixedHeader {
            magic: load(header_word!(magic))?,
            layout_version: load(header_word!(layout_version))?,
            total_bytes: load(header_word!(total_bytes))?,
            hash_seed: load(header_word!(hash_seed))?,
            tag_off: load(header_word!(tag_off))?,
            tag_count: load(header_word!(tag_count))?,
            index_off: load(header_word!(index_off))?,
            bucket_count: load(header_word!(bucket_count))?,
            arena_off: load(header_word!(arena_off))?,
            segment_bytes: load(header_word!(segment_bytes))?,
            segment_count: load(header_word!(segment_count))?,
            max_value_bytes: load(header_word!(max_value_bytes))?,
            client_area_bytes: load(header_word!(client_area_bytes))?,
            geometry_check: load(header_word!(geometry_check))?,
        })
    }

    /// The geometry check of the other words: xxh3, seeded with [`TABLE_MAGIC`], of their
    /// little-endian bytes as they lie in the header (words `0..geometry_check`).
    pub fn expected_check(&self) -> u64 {
        let mut bytes = [0u8; CHECKED_WORDS * 8];
        for (word, value) in self.words() {
            if word < CHECKED_WORDS {
                bytes[word * 8..word * 8 + 8].copy_from_slice(&value.to_le_bytes());
            }
        }
        xxh3_64_with_seed(&bytes, TABLE_MAGIC)
    }

    /// The same words with a geometry check that matches them.
    pub fn with_check(self) -> FixedHeader {
        FixedHeader {
            geometry_check: self.expected_check(),
            ..self
        }
    }
}

/// Byte offset of the records in the client area.
pub(crate) const CLIENT_RECORDS_OFF: u64 = size_of::<ClientAreaHeader>() as u64;
/// Byte offset of the access bitmap in the client area.
pub(crate) const CLIENT_BITS_OFF: u64 =
    CLIENT_RECORDS_OFF + CLIENT_RECORDS * size_of::<ClientRecord>() as u64;

/// Byte offset of the per-client namespace tables in the client area: after the access
/// bitmap, on a cache line. Appended after everything an older build of this layout drew,
/// so an area made without them is only shorter: every access is bounds-checked, and a
/// client of such an area counts nothing per namespace.
pub(crate) fn client_ns_off(bucket_count: u64) -> u64 {
    let bits_words = bucket_count * SLOTS_PER_BUCKET as u64 / 64;
    align_up(CLIENT_BITS_OFF + bits_words * 8, 64)
}

/// Random-enough 64 bits without a dependency: std's per-process random hasher keys.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    std::process::id().hash(&mut h);
    std::time::SystemTime::now().hash(&mut h);
    h.finish()
}

impl Geometry {
    pub(crate) fn from_config(cfg: &TableConfig) -> Result<Geometry, CreateError> {
        let bad = |m: String| Err(CreateError::Config(m));
        if cfg.max_value_bytes == 0 || cfg.max_value_bytes > VALUE_LEN_CEILING as u64 {
            return bad(format!(
                "max_value_bytes = {} must be between 1 and {VALUE_LEN_CEILING}",
                cfg.max_value_bytes
            ));
        }
        let largest_entry = SEGMENT_HEADER_BYTES + MAX_META_BYTES as u64 + cfg.max_value_bytes;
        let segment_bytes = match cfg.segment_bytes {
            Some(s) => {
                if !s.is_power_of_two() || s < PAGE {
                    return bad(format!(
                        "segment_bytes = {s} must be a power of two of at least {PAGE}"
                    ));
                }
                if s < largest_entry {
                    return bad(format!(
                        "segment_bytes = {s} cannot hold the largest entry ({largest_entry} bytes with max_value_bytes = {}); raise segment_bytes or lower max_value_bytes",
                        cfg.max_value_bytes
                    ));
                }
                s
            }
            None => largest_entry.next_power_of_two().max(1 << 20),
        };
        if segment_bytes > 1 << 32 {
            return bad(format!(
                "segment_bytes = {segment_bytes} is over the 4 GiB limit"
            ));
        }
        let segment_count = cfg.arena_bytes / segment_bytes;
        if segment_count < 2 {
            return bad(format!(
                "arena_bytes = {} holds fewer than 2 segments of {segment_bytes} bytes; raise the memory size to at least {} or lower max_value_bytes",
                cfg.arena_bytes,
                2 * segment_bytes
            ));
        }
        if !cfg.tag_counters.is_power_of_two() || cfg.tag_counters > 1 << 32 {
            return bad(format!(
                "tag_counters = {} must be a power of two no larger than 2^32",
                cfg.tag_counters
            ));
        }
        let entries_hint = (segment_count * segment_bytes) / cfg.expected_entry_bytes.max(32);
        let bucket_count = entries_hint
            .div_ceil(INDEX_LOAD_TARGET)
            .next_power_of_two()
            .max(MIN_BUCKETS);
        let tag_off = HEADER_BYTES;
        let index_off = align_up(tag_off + cfg.tag_counters * 8, PAGE);
        let arena_off = align_up(index_off + bucket_count * BUCKET_BYTES, PAGE);
        let total_bytes = arena_off + segment_count * segment_bytes;
        if total_bytes >= 1 << 48 {
            return bad(format!(
                "table of {total_bytes} bytes is over the 256 TiB locator limit"
            ));
        }
        let client_area_bytes = align_up(
            client_ns_off(bucket_count) + CLIENT_RECORDS * size_of::<ClientNamespaces>() as u64,
            PAGE,
        );
        Ok(Geometry {
            total_bytes,
            seed: cfg.hash_seed.unwrap_or_else(random_u64),
            tag_off,
            tag_count: cfg.tag_counters,
            index_off,
            bucket_count,
            arena_off,
            segment_bytes,
            segment_count,
            max_value_bytes: cfg.max_value_bytes,
            client_area_bytes,
        })
    }

    /// The header words fixed at creation, with their geometry check.
    pub(crate) fn header(&self) -> FixedHeader {
        FixedHeader {
            magic: TABLE_MAGIC,
            layout_version: LAYOUT_VERSION,
            total_bytes: self.total_bytes,
            hash_seed: self.seed,
            tag_off: self.tag_off,
            tag_count: self.tag_count,
            index_off: self.index_off,
            bucket_count: self.bucket_count,
            arena_off: self.arena_off,
            segment_bytes: self.segment_bytes,
            segment_count: self.segment_count,
            max_value_bytes: self.max_value_bytes,
            client_area_bytes: self.client_area_bytes,
            geometry_check: 0,
        }
        .with_check()
    }

    /// Writes the fixed header words (writer, at creation).
    pub(crate) fn write_header(&self, r: &Region) {
        for (word, value) in self.header().words() {
            r.store(word, value, Ordering::Relaxed);
        }
    }

    /// Reads and validates the header of a mapping of `mapped_len` bytes.
    pub(crate) fn read_header(r: &Region) -> Result<Geometry, AttachError> {
        let w = |i: usize| {
            r.load(i, Ordering::Acquire)
                .ok_or(AttachError::Corrupt("segment shorter than its header"))
        };
        // Magic, then version, before anything else: a segment of another kind or another
        // layout is reported as such, whatever the rest of it holds.
        let magic = w(header_word!(magic))?;
        if magic != TABLE_MAGIC {
            return Err(AttachError::BadMagic);
        }
        let layout_version = w(header_word!(layout_version))?;
        if layout_version != LAYOUT_VERSION {
            return Err(AttachError::UnsupportedVersion {
                found: layout_version,
                expected: LAYOUT_VERSION,
            });
        }
        let h = FixedHeader::load(w)?;
        if h.geometry_check != h.expected_check() {
            return Err(AttachError::Corrupt("geometry check mismatch"));
        }
        let g = Geometry {
            total_bytes: h.total_bytes,
            seed: h.hash_seed,
            tag_off: h.tag_off,
            tag_count: h.tag_count,
            index_off: h.index_off,
            bucket_count: h.bucket_count,
            arena_off: h.arena_off,
            segment_bytes: h.segment_bytes,
            segment_count: h.segment_count,
            max_value_bytes: h.max_value_bytes,
            client_area_bytes: h.client_area_bytes,
        };
        g.validate(r.len_bytes() as u64)?;
        Ok(g)
    }

    /// Everything a reader relies on when it turns header numbers into offsets.
    fn validate(&self, mapped_len: u64) -> Result<(), AttachError> {
        let c = AttachError::Corrupt;
        if self.total_bytes > mapped_len {
            return Err(c("segment is larger than its mapping"));
        }
        if !self.tag_count.is_power_of_two() || self.tag_count > 1 << 32 {
            return Err(c("tag counter count is not a power of two"));
        }
        if !self.bucket_count.is_power_of_two() || self.bucket_count < MIN_BUCKETS {
            return Err(c("bucket count is not a power of two of at least 8"));
        }
        if !self.segment_bytes.is_power_of_two()
            || self.segment_bytes < PAGE
            || self.segment_bytes > 1 << 32
        {
            return Err(c(
                "segment size is not a power of two between 4 KiB and 4 GiB",
            ));
        }
        if self.max_value_bytes == 0
            || self.max_value_bytes > VALUE_LEN_CEILING as u64
            || SEGMENT_HEADER_BYTES + MAX_META_BYTES as u64 + self.max_value_bytes
                > self.segment_bytes
        {
            return Err(c("max value size does not fit a segment"));
        }
        let tag_end = self
            .tag_count
            .checked_mul(8)
            .and_then(|b| b.checked_add(self.tag_off));
        let index_end = self
            .bucket_count
            .checked_mul(BUCKET_BYTES)
            .and_then(|b| b.checked_add(self.index_off));
        let arena_end = self
            .segment_count
            .checked_mul(self.segment_bytes)
            .and_then(|b| b.checked_add(self.arena_off));
        let ordered = self.tag_off >= HEADER_BYTES
            && matches!(tag_end, Some(e) if e <= self.index_off)
            && matches!(index_end, Some(e) if e <= self.arena_off)
            && matches!(arena_end, Some(e) if e <= self.total_bytes);
        let aligned = [self.tag_off, self.index_off, self.arena_off]
            .iter()
            .all(|o| o % PAGE == 0);
        if !ordered || !aligned || self.segment_count < 2 || self.total_bytes >= 1 << 48 {
            return Err(c("sections overlap or are out of bounds"));
        }
        let bits_words = self.bucket_count * SLOTS_PER_BUCKET as u64 / 64;
        if self.client_area_bytes < CLIENT_BITS_OFF + bits_words * 8 {
            return Err(c("client area too small for the index"));
        }
        Ok(())
    }

    /// Word index of the first slot of `bucket`.
    #[inline]
    pub(crate) fn slot_word(&self, bucket: u64, i: usize) -> usize {
        ((self.index_off + bucket * BUCKET_BYTES) / 8) as usize + i
    }

    /// Word index of tag counter `idx`.
    #[inline]
    pub(crate) fn counter_word(&self, idx: u32) -> usize {
        (self.tag_off / 8) as usize + idx as usize
    }

    /// Byte offset of segment `seg`.
    #[inline]
    pub(crate) fn segment_off(&self, seg: u32) -> u64 {
        self.arena_off + seg as u64 * self.segment_bytes
    }

    /// Word index (in the client area) and mask of the access bit of a slot.
    #[inline]
    pub(crate) fn access_bit(&self, slot_index: u64) -> (usize, u64) {
        (
            (CLIENT_BITS_OFF / 8 + slot_index / 64) as usize,
            1 << (slot_index % 64),
        )
    }

    /// Bytes of the largest entry a segment can take (everything after its header).
    pub(crate) fn segment_payload(&self) -> u64 {
        self.segment_bytes - SEGMENT_HEADER_BYTES
    }
}

/// Validates a client area against a table geometry: its length only. The area is
/// writable by every client, so nothing in it may decide whether another client can attach:
/// its geometry comes from the sealed table header (`client_area_bytes`, `bucket_count`)
/// and this build's layout constants (pinned by `layout_version`, also sealed), and the
/// length cannot change under a reader (the memfd is sealed against growing and shrinking).
pub(crate) fn check_client_area(g: &Geometry, r: &Region) -> Result<(), AttachError> {
    if (r.len_bytes() as u64) < g.client_area_bytes {
        return Err(AttachError::Corrupt(
            "client area smaller than the table needs",
        ));
    }
    Ok(())
}

/// The client-area header words (word index, value) the writer writes at creation. A copy
/// for people and tools: no client reads it.
pub(crate) fn client_header_words(g: &Geometry) -> [(usize, u64); 8] {
    use crate::layout::CLIENT_MAGIC;
    let bits_words = g.bucket_count * SLOTS_PER_BUCKET as u64 / 64;
    [
        (offset_of!(ClientAreaHeader, magic) / 8, CLIENT_MAGIC),
        (
            offset_of!(ClientAreaHeader, layout_version) / 8,
            LAYOUT_VERSION,
        ),
        (
            offset_of!(ClientAreaHeader, total_bytes) / 8,
            g.client_area_bytes,
        ),
        (
            offset_of!(ClientAreaHeader, record_count) / 8,
            CLIENT_RECORDS,
        ),
        (
            offset_of!(ClientAreaHeader, records_off) / 8,
            CLIENT_RECORDS_OFF,
        ),
        (offset_of!(ClientAreaHeader, bits_off) / 8, CLIENT_BITS_OFF),
        (offset_of!(ClientAreaHeader, bits_words) / 8, bits_words),
        (
            offset_of!(ClientAreaHeader, namespaces_off) / 8,
            client_ns_off(g.bucket_count),
        ),
    ]
}

/// Writes the client-area header (writer, at creation).
pub(crate) fn write_client_header(g: &Geometry, r: &Region) {
    for (word, value) in client_header_words(g) {
        r.store(word, value, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn fixed_header_words_cover_the_header_up_to_the_check() {
        let g = Geometry::from_config(&TableConfig {
            hash_seed: Some(1),
            ..TableConfig::default()
        })
        .unwrap();
        let mut words: Vec<usize> = g.header().words().iter().map(|(i, _)| *i).collect();
        words.sort_unstable();
        let every: Vec<usize> = (0..=CHECKED_WORDS).collect();
        assert_eq!(words, every, "each fixed word exactly once, no gap");
        assert_eq!(header_word!(geometry_check), CHECKED_WORDS);
        assert_eq!(header_word!(epoch), CHECKED_WORDS + 1);
    }

    #[test]
    fn written_header_reads_back() {
        let g = Geometry::from_config(&TableConfig {
            // Small: Miri runs this test too.
            arena_bytes: 16 << 10,
            segment_bytes: Some(8 << 10),
            max_value_bytes: 1024,
            tag_counters: 256,
            hash_seed: Some(7),
            ..TableConfig::default()
        })
        .unwrap();
        let mem = crate::region::Memory::heap(g.total_bytes as usize);
        g.write_header(mem.region());
        assert_eq!(Geometry::read_header(mem.region()).unwrap(), g);
    }
}
