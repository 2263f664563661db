//! The entry header: 24 bytes in front of every entry in the arena.
//!
//! ```text
//! byte  0..8   stamp       u64  hybrid logical clock: created_ms << 20 | counter
//! byte  8..12  ttl         u32  encoded duration from created to expires (see `encode_duration`)
//! byte 12..16  grace       u32  encoded duration from expires to grace_until
//! byte 16..24  packed      u64  value_len:24 | key_len:13 | ns_len:7 | ref_count:7 | check:13
//! byte 24..    namespace bytes, key bytes, ref_count × u32 tag-counter index, value bytes
//! ```
//! Entries are packed with no padding; all copies go through aligned atomic words.

use core::ops::Range;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Bytes of the fixed entry header.
pub const ENTRY_HEADER_BYTES: usize = 24;
/// Largest key, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;
/// Largest namespace name, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 127;
/// Largest number of tag-counter references one entry can carry (namespace included).
pub const MAX_REFS: usize = 127;
/// Hard ceiling of `max_value_bytes` (the 24-bit length field).
pub const VALUE_LEN_CEILING: usize = (1 << 24) - 1;

/// Largest metadata block (header, namespace, key, references) of any entry.
pub const MAX_META_BYTES: usize =
    ENTRY_HEADER_BYTES + MAX_NAMESPACE_BYTES + MAX_KEY_BYTES + 4 * MAX_REFS;

/// Bytes of the entry header holding the stamp.
pub(crate) const STAMP_BYTES: Range<usize> = 0..8;
/// Bytes holding the encoded TTL.
pub(crate) const TTL_BYTES: Range<usize> = 8..12;
/// Bytes holding the encoded grace.
pub(crate) const GRACE_BYTES: Range<usize> = 12..16;
/// Bytes holding the packed lengths and the check.
pub(crate) const PACKED_BYTES: Range<usize> = 16..24;
const _: () = assert!(PACKED_BYTES.end == ENTRY_HEADER_BYTES);

pub(crate) const CHECK_BITS: u32 = 13;
pub(crate) const CHECK_SHIFT: u32 = 51;
const CHECK_MASK: u64 = (1 << CHECK_BITS) - 1;

/// Decoded entry header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    /// Hybrid logical clock of the write: `created_ms << 20 | counter`.
    pub stamp: u64,
    /// Encoded duration from created to expires.
    pub ttl: u32,
    /// Encoded duration from expires to grace_until.
    pub grace: u32,
    /// Value length (24 bits).
    pub value_len: u32,
    /// Key length (13 bits).
    pub key_len: u16,
    /// Namespace length (7 bits).
    pub ns_len: u8,
    /// Number of tag-counter references (7 bits).
    pub ref_count: u8,
    /// The entry check (13 bits).
    pub check: u16,
}

impl EntryHeader {
    /// The header's bytes; fields wider than their bit field are truncated to it.
    pub fn encode(&self) -> [u8; ENTRY_HEADER_BYTES] {
        let packed = (self.value_len as u64 & 0xFF_FFFF)
            | (self.key_len as u64 & 0x1FFF) << 24
            | (self.ns_len as u64 & 0x7F) << 37
            | (self.ref_count as u64 & 0x7F) << 44
            | (self.check as u64 & CHECK_MASK) << CHECK_SHIFT;
        let mut out = [0u8; ENTRY_HEADER_BYTES];
        out[STAMP_BYTES].copy_from_slice(&self.stamp.to_le_bytes());
        out[TTL_BYTES].copy_from_slice(&self.ttl.to_le_bytes());
        out[GRACE_BYTES].copy_from_slice(&self.grace.to_le_bytes());
        out[PACKED_BYTES].copy_from_slice(&packed.to_le_bytes());
        out
    }

    /// Decodes a header's bytes (any bytes decode; nothing is validated).
    pub fn decode(b: &[u8; ENTRY_HEADER_BYTES]) -> EntryHeader {
        let word = |r: Range<usize>| {
            let mut w = [0u8; 8];
            w[..r.len()].copy_from_slice(&b[r]);
            u64::from_le_bytes(w)
        };
        let packed = word(PACKED_BYTES);
        EntryHeader {
            stamp: word(STAMP_BYTES),
            ttl: word(TTL_BYTES) as u32,
            grace: word(GRACE_BYTES) as u32,
            value_len: (packed & 0xFF_FFFF) as u32,
            key_len: ((packed >> 24) & 0x1FFF) as u16,
            ns_len: ((packed >> 37) & 0x7F) as u8,
            ref_count: ((packed >> 44) & 0x7F) as u8,
            check: ((packed >> CHECK_SHIFT) & CHECK_MASK) as u16,
        }
    }

    /// Bytes of namespace, key and references after the header.
    #[inline]
    pub(crate) fn meta_tail_len(&self) -> usize {
        self.ns_len as usize + self.key_len as usize + 4 * self.ref_count as usize
    }

    /// Bytes of the whole entry.
    #[inline]
    pub(crate) fn total_len(&self) -> usize {
        ENTRY_HEADER_BYTES + self.meta_tail_len() + self.value_len as usize
    }

    /// Unix ms at which the entry was created.
    #[inline]
    pub(crate) fn created_ms(&self) -> u64 {
        self.stamp >> STAMP_COUNTER_BITS
    }

    /// Unix ms at which the entry stops being fresh, `None` = never.
    #[inline]
    pub(crate) fn expires_ms(&self) -> Option<u64> {
        decode_duration(self.ttl).map(|d| self.created_ms().saturating_add(d))
    }

    /// Unix ms after which the entry is gone, `None` = never.
    #[inline]
    pub(crate) fn grace_until_ms(&self) -> Option<u64> {
        let expires = self.expires_ms()?;
        Some(expires.saturating_add(decode_duration(self.grace).unwrap_or(u64::MAX)))
    }
}

/// Check over an entry: 13 bits mixing the header words (check bits zeroed), the key hash
/// (which covers namespace and key), a fold of the references, and xxh3 of the value.
/// Catches corruption of a shared segment; torn reads are caught by the seqlock, not by this.
pub(crate) fn entry_check(
    seed: u64,
    header: &[u8; ENTRY_HEADER_BYTES],
    key_hash: u64,
    refs_fold: u64,
    value: &[u8],
) -> u16 {
    let word = |r: Range<usize>| u64::from_le_bytes(header[r].try_into().expect("8 bytes"));
    let packed = word(PACKED_BYTES) & !(CHECK_MASK << CHECK_SHIFT);
    let mix = |acc: u64, w: u64| {
        (acc ^ w)
            .wrapping_mul(0xFF51_AFD7_ED55_8CCD)
            .rotate_left(31)
    };
    // TTL and grace are mixed as one word.
    let hh = mix(
        mix(
            mix(seed, word(STAMP_BYTES)),
            word(TTL_BYTES.start..GRACE_BYTES.end),
        ),
        packed,
    );
    let hv = xxh3_64_with_seed(value, seed ^ 0x9E37_79B9_7F4A_7C15);
    let mixed = hh ^ key_hash.rotate_left(13) ^ refs_fold.rotate_left(29) ^ hv.rotate_left(41);
    ((mixed.wrapping_mul(0xC4CE_B9FE_1A85_EC53) >> CHECK_SHIFT) & CHECK_MASK) as u16
}

/// Folds one tag-counter reference into the running hash the check covers.
#[inline]
pub(crate) fn fold_ref(acc: u64, r: u32) -> u64 {
    (acc ^ r as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .rotate_left(23)
}

/// Low bits of a stamp that order writes within one millisecond.
pub const STAMP_COUNTER_BITS: u32 = 20;

/// Durations are stored in 32 bits: below 2^31 ms as milliseconds; above as whole seconds
/// (rounded up) with the top bit set; `u32::MAX` means "never".
pub(crate) const DURATION_NEVER: u32 = u32::MAX;
const SECONDS_FLAG: u32 = 1 << 31;

pub(crate) fn encode_duration(ms: Option<u64>) -> u32 {
    match ms {
        None => DURATION_NEVER,
        Some(ms) if ms < SECONDS_FLAG as u64 => ms as u32,
        Some(ms) => {
            let secs = ms.div_ceil(1000).min((SECONDS_FLAG - 2) as u64) as u32;
            SECONDS_FLAG | secs
        }
    }
}

pub(crate) fn decode_duration(enc: u32) -> Option<u64> {
    if enc == DURATION_NEVER {
        None
    } else if enc & SECONDS_FLAG != 0 {
        Some((enc & !SECONDS_FLAG) as u64 * 1000)
    } else {
        Some(enc as u64)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips() {
        let h = EntryHeader {
            stamp: 0x1234_5678_9ABC_DEF0,
            ttl: 77,
            grace: DURATION_NEVER,
            value_len: VALUE_LEN_CEILING as u32,
            key_len: MAX_KEY_BYTES as u16,
            ns_len: MAX_NAMESPACE_BYTES as u8,
            ref_count: MAX_REFS as u8,
            check: 0x1ABC,
        };
        assert_eq!(EntryHeader::decode(&h.encode()), h);
    }

    #[test]
    fn durations() {
        assert_eq!(decode_duration(encode_duration(None)), None);
        assert_eq!(decode_duration(encode_duration(Some(0))), Some(0));
        assert_eq!(decode_duration(encode_duration(Some(1234))), Some(1234));
        let long = 90 * 24 * 3600 * 1000 + 1;
        assert_eq!(
            decode_duration(encode_duration(Some(long))),
            Some(90 * 24 * 3600 * 1000 + 1000)
        );
        assert_eq!(
            decode_duration(encode_duration(Some(u64::MAX))),
            Some((SECONDS_FLAG as u64 - 2) * 1000)
        );
    }
}
