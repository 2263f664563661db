//! Hashes that index shared memory. All are xxh3 seeded with the table's `hash_seed`,
//! which is stored in the header, so every process computes the same positions.

use xxhash_rust::xxh3::xxh3_64_with_seed;

const NS_SALT: u64 = 0x6E73_5F73_616C_7431; // "ns_salt1"
const PREFIX_SALT: u64 = 0x7072_6566_6978_5F31;
const EXACT_SALT: u64 = 0x6578_6163_745F_5F31;
const NAMESPACE_REF_SALT: u64 = 0x6E73_7265_665F_5F31;

/// Hash of a namespace name, mixed into every other hash.
#[inline]
pub(crate) fn namespace_hash(seed: u64, ns: &[u8]) -> u64 {
    xxh3_64_with_seed(ns, seed ^ NS_SALT)
}

/// Hash of a key within a namespace: the low bits pick the bucket, the top 16 bits are
/// the slot fingerprint.
#[inline]
pub(crate) fn key_hash(seed: u64, ns_hash: u64, key: &[u8]) -> u64 {
    xxh3_64_with_seed(key, seed ^ ns_hash)
}

/// What a tag-counter reference stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RefKind {
    /// A proper prefix of a tag path (`posts` for `posts/1`): bumped by a hierarchical
    /// invalidation of that prefix.
    Prefix,
    /// A whole tag path: bumped by exact and by hierarchical invalidations of that path.
    Exact,
    /// The namespace itself: bumped by `clear_namespace`.
    Namespace,
}

/// Index of the tag counter for `(namespace, kind, path)`, masked to the table.
#[inline]
pub(crate) fn counter_index(seed: u64, ns_hash: u64, kind: RefKind, path: &[u8], mask: u64) -> u32 {
    let salt = match kind {
        RefKind::Prefix => PREFIX_SALT,
        RefKind::Exact => EXACT_SALT,
        RefKind::Namespace => NAMESPACE_REF_SALT,
    };
    (xxh3_64_with_seed(path, seed ^ ns_hash ^ salt) & mask) as u32
}
