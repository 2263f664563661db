//! Index slots: `fingerprint:16 | locator:48`, one atomic word each.
//!
//! The locator is the byte offset of the entry in the table segment; entries never start
//! at offset 0, so a zero slot is empty. The fingerprint is the top 16 bits of the key
//! hash; the bucket is picked by the low bits.

/// Bits of the locator.
pub(crate) const LOC_BITS: u32 = 48;
/// Mask of the locator.
pub(crate) const LOC_MASK: u64 = (1 << LOC_BITS) - 1;

/// The bucket and fingerprint of a key hash.
#[inline]
pub(crate) fn bucket_and_fp(hash: u64, bucket_count: u64) -> (u64, u16) {
    (hash & (bucket_count - 1), (hash >> LOC_BITS) as u16)
}

/// Packs a slot word.
#[inline]
pub(crate) fn slot_value(fp: u16, loc: u64) -> u64 {
    debug_assert!(loc != 0 && loc <= LOC_MASK);
    (fp as u64) << LOC_BITS | loc
}

/// The fingerprint of a slot word.
#[inline]
pub(crate) fn slot_fp(slot: u64) -> u16 {
    (slot >> LOC_BITS) as u16
}

/// The locator of a slot word.
#[inline]
pub(crate) fn slot_loc(slot: u64) -> u64 {
    slot & LOC_MASK
}
