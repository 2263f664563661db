//! The memo of opened values: per client, the plaintext of encrypted values this process
//! already decrypted, beside the exact envelope bytes it came from, so a hit whose stored bytes
//! have not changed returns the plaintext without running AES-GCM again.
//!
//! # Why it keeps every guarantee
//!
//! An entry is used only when the envelope just copied out of the segment is byte-for-byte the
//! one the entry was opened from (header, key id, nonce, ciphertext, tag: the whole envelope),
//! for the same namespace and key as sent, in the same client (same master keys, tenant and
//! options). AES-GCM decryption is a function of those: identical bytes under the same keys
//! always open to the same plaintext. A rewrite, a tampered byte, a ciphertext moved from
//! another key: the bytes (or the key) differ, so the value is opened again, and fails or
//! succeeds exactly as without the memo. Neither the entry's version nor the tag alone is
//! trusted.
//!
//! # Bounds
//!
//! - A byte budget per client ([`Encryption::memo_bytes`](crate::Encryption::memo_bytes),
//!   default [`DEFAULT_MEMO_BYTES`]), split over up to [`MAX_SHARDS`] shards; each entry counts
//!   its name, envelope and plaintext bytes plus [`ENTRY_OVERHEAD`]. 0 turns the memo off.
//! - Only values of at most [`MEMO_MAX_VALUE_BYTES`] plaintext bytes (and entries of at most half a
//!   shard's budget) are kept: larger ones would push out many small ones.
//! - Eviction: a clock (second chance) over each shard's slots; a hit sets the entry's
//!   reference bit (a relaxed atomic, under the shard's read lock).
//!
//! # Concurrency
//!
//! Each shard is an `RwLock` taken with `try_read` / `try_write` only: a hit never waits. Hits
//! share the read lock; an insert (after an open) takes the write lock if it is free, and is
//! skipped otherwise; a hit that finds a shard being written opens the value as if the memo
//! were off.
//!
//! # Memory
//!
//! The plaintext stays in this process's heap until the entry is evicted or the client (its
//! last handle) is dropped; both zero the bytes first (`zeroize`).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::RwLock;

use zeroize::Zeroize;

/// The default budget of a client's memo: 1 MiB of names, envelopes and plaintexts.
pub const DEFAULT_MEMO_BYTES: usize = 1 << 20;
/// The largest plaintext kept: 16 KiB. Measured (`cachekit-bench encryption`): the memo saves
/// the open's fixed cost (~150 ns, over half of a 100 B hit) at every size, but beyond that
/// only ~20% of a 64 KiB hit (3 of 16 µs) while such an entry takes 128 KiB of the budget, an
/// eighth of the default: larger values would push out thousands of small ones for little.
pub const MEMO_MAX_VALUE_BYTES: usize = 16 << 10;
/// Most shards of one memo.
pub const MAX_SHARDS: usize = 16;
/// Least budget per shard: a smaller budget has fewer shards.
const MIN_SHARD_BYTES: usize = 128 << 10;
/// Room for the envelope's 44 bytes and a namespace and key of up to 4 KiB, in the entry cap.
const ENCRYPTED_MAX_KEY: usize = 4096;
/// Bytes counted for each entry besides its name, envelope and plaintext: the slot and the
/// index entry.
pub const ENTRY_OVERHEAD: usize = 128;

/// A hasher for keys that are already hashes (xxh3 of namespace and key).
#[derive(Default)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; fold anything else in so the hasher stays correct.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

struct Slot {
    /// The hash of (namespace, key); 0 with `live` false for a free slot.
    hash: u64,
    live: bool,
    referenced: AtomicBool,
    ns_len: usize,
    /// The namespace, then the key as sent.
    name: Vec<u8>,
    /// The whole stored envelope the plaintext was opened from.
    stored: Vec<u8>,
    plain: Vec<u8>,
}

impl Slot {
    fn bytes(&self) -> usize {
        self.name.len() + self.stored.len() + self.plain.len() + ENTRY_OVERHEAD
    }

    fn is(&self, ns: &[u8], key: &[u8]) -> bool {
        self.live
            && self.ns_len == ns.len()
            && self.name.len() == ns.len() + key.len()
            && self.name[..ns.len()] == *ns
            && self.name[ns.len()..] == *key
    }

    /// Zeroes and frees the entry's bytes; the slot becomes free.
    fn clear(&mut self) {
        self.name.zeroize();
        self.stored.zeroize();
        self.plain.zeroize();
        self.name = Vec::new();
        self.stored = Vec::new();
        self.plain = Vec::new();
        self.live = false;
        self.hash = 0;
    }
}

#[derive(Default)]
struct Shard {
    index: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    slots: Vec<Slot>,
    free: Vec<u32>,
    hand: usize,
    bytes: usize,
}

impl Shard {
    fn remove(&mut self, i: usize) {
        let slot = &mut self.slots[i];
        self.bytes -= slot.bytes();
        self.index.remove(&slot.hash);
        slot.clear();
        self.free.push(i as u32);
    }

    /// Evicts one entry by the clock: the first live one after the hand whose reference bit is
    /// clear (clearing the bits it passes).
    fn evict_one(&mut self) {
        let n = self.slots.len();
        // Two turns clear every bit, so the loop ends with an eviction while any entry is live.
        for _ in 0..2 * n + 1 {
            let i = self.hand % n;
            self.hand = (i + 1) % n;
            let slot = &self.slots[i];
            if !slot.live {
                continue;
            }
            if slot.referenced.swap(false, Ordering::Relaxed) {
                continue;
            }
            self.remove(i);
            return;
        }
    }
}

/// A client's memo of opened values (see the module documentation).
pub(crate) struct Memo {
    shards: Box<[RwLock<Shard>]>,
    shard_budget: usize,
    /// The largest entry (as counted) kept.
    max_entry: usize,
}

impl Memo {
    /// A memo of `budget` bytes; `None` for 0 (off).
    pub(crate) fn new(budget: usize) -> Option<Memo> {
        if budget == 0 {
            return None;
        }
        let n = (budget / MIN_SHARD_BYTES).clamp(1, MAX_SHARDS);
        let shard_budget = budget / n;
        let shards = (0..n).map(|_| RwLock::new(Shard::default())).collect();
        Some(Memo {
            shards,
            shard_budget,
            max_entry: (shard_budget / 2)
                .min(2 * MEMO_MAX_VALUE_BYTES + 2 * ENCRYPTED_MAX_KEY + ENTRY_OVERHEAD),
        })
    }

    fn hash(ns: &[u8], key: &[u8]) -> u64 {
        let seed = xxhash_rust::xxh3::xxh3_64(ns);
        xxhash_rust::xxh3::xxh3_64_with_seed(key, seed)
    }

    fn shard(&self, hash: u64) -> &RwLock<Shard> {
        // The high bits pick the shard; the index uses the whole hash.
        &self.shards[((hash >> 40) as usize) % self.shards.len()]
    }

    /// When the memo holds `key` of `ns` opened from exactly `stored`, and its plaintext is at
    /// most `max_len` bytes: replaces `out`'s contents with that plaintext and returns true.
    /// Otherwise (also when the shard is being written) leaves `out` alone and returns false.
    pub(crate) fn get_into(
        &self,
        ns: &str,
        key: &[u8],
        stored: &[u8],
        max_len: usize,
        out: &mut Vec<u8>,
    ) -> bool {
        if stored.len() > self.max_entry {
            return false;
        }
        let hash = Self::hash(ns.as_bytes(), key);
        let Ok(shard) = self.shard(hash).try_read() else {
            return false;
        };
        let Some(&i) = shard.index.get(&hash) else {
            return false;
        };
        let slot = &shard.slots[i as usize];
        if !slot.is(ns.as_bytes(), key) || slot.stored != stored || slot.plain.len() > max_len {
            return false;
        }
        if !slot.referenced.load(Ordering::Relaxed) {
            slot.referenced.store(true, Ordering::Relaxed);
        }
        out.clear();
        out.extend_from_slice(&slot.plain);
        true
    }

    /// Remembers that `stored`, read as `key` of `ns`, opened to `plain`. Skipped when the entry
    /// is too large or the shard is busy.
    pub(crate) fn insert(&self, ns: &str, key: &[u8], stored: &[u8], plain: &[u8]) {
        let size = ns.len() + key.len() + stored.len() + plain.len() + ENTRY_OVERHEAD;
        if plain.len() > MEMO_MAX_VALUE_BYTES || size > self.max_entry {
            return;
        }
        let hash = Self::hash(ns.as_bytes(), key);
        let Ok(mut shard) = self.shard(hash).try_write() else {
            return;
        };
        if let Some(&i) = shard.index.get(&hash) {
            // The same key with new bytes (or, rarely, another key with the same hash).
            shard.remove(i as usize);
        }
        while shard.bytes + size > self.shard_budget && shard.bytes > 0 {
            shard.evict_one();
        }
        let mut name = Vec::with_capacity(ns.len() + key.len());
        name.extend_from_slice(ns.as_bytes());
        name.extend_from_slice(key);
        let slot = Slot {
            hash,
            live: true,
            referenced: AtomicBool::new(false),
            ns_len: ns.len(),
            name,
            stored: stored.to_vec(),
            plain: plain.to_vec(),
        };
        let i = match shard.free.pop() {
            Some(i) => {
                shard.slots[i as usize] = slot;
                i
            }
            None => {
                shard.slots.push(slot);
                (shard.slots.len() - 1) as u32
            }
        };
        shard.bytes += size;
        shard.index.insert(hash, i);
    }

    /// (entries, bytes counted against the budget). Takes each shard's read lock, waiting.
    pub(crate) fn usage(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let s = s.read().unwrap_or_else(|e| e.into_inner());
            (n + s.index.len(), b + s.bytes)
        })
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.usage().1
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.usage().0
    }

    /// Replaces the plaintext of `key`'s entry (tests: proves a hit was served from the memo).
    #[cfg(test)]
    fn poison(&self, ns: &str, key: &[u8], plain: &[u8]) -> bool {
        let hash = Self::hash(ns.as_bytes(), key);
        let mut shard = self.shard(hash).write().unwrap();
        let Some(&i) = shard.index.get(&hash) else {
            return false;
        };
        let old = shard.slots[i as usize].plain.len();
        shard.bytes = shard.bytes - old + plain.len();
        shard.slots[i as usize].plain = plain.to_vec();
        true
    }
}

impl Drop for Memo {
    fn drop(&mut self) {
        for shard in self.shards.iter_mut() {
            let shard = shard.get_mut().unwrap_or_else(|e| e.into_inner());
            for slot in &mut shard.slots {
                slot.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(m: &Memo, ns: &str, key: &[u8], stored: &[u8]) -> Option<Vec<u8>> {
        let mut out = b"junk".to_vec();
        m.get_into(ns, key, stored, usize::MAX, &mut out)
            .then_some(out)
    }

    #[test]
    fn zero_is_off() {
        assert!(Memo::new(0).is_none());
    }

    #[test]
    fn a_hit_needs_the_same_namespace_key_and_bytes() {
        let m = Memo::new(DEFAULT_MEMO_BYTES).unwrap();
        m.insert("ns", b"k", b"envelope-1", b"plain-1");
        assert_eq!(get(&m, "ns", b"k", b"envelope-1").unwrap(), b"plain-1");
        assert_eq!(get(&m, "ns", b"k", b"envelope-2"), None, "other bytes");
        assert_eq!(get(&m, "ns", b"k", b"envelope-"), None, "a prefix");
        assert_eq!(get(&m, "ns", b"k", b"envelope-1x"), None, "longer");
        assert_eq!(get(&m, "ns2", b"k", b"envelope-1"), None, "other namespace");
        assert_eq!(
            get(&m, "n", b"sk", b"envelope-1"),
            None,
            "same concatenation"
        );
        assert_eq!(get(&m, "ns", b"k2", b"envelope-1"), None, "other key");
        let mut out = Vec::new();
        assert!(
            !m.get_into("ns", b"k", b"envelope-1", 6, &mut out),
            "over max_len"
        );
        // A new write of the key replaces the entry.
        m.insert("ns", b"k", b"envelope-2", b"plain-2");
        assert_eq!(get(&m, "ns", b"k", b"envelope-1"), None);
        assert_eq!(get(&m, "ns", b"k", b"envelope-2").unwrap(), b"plain-2");
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn the_byte_budget_holds() {
        for budget in [1000, 4096, 64 << 10, 200 << 10, DEFAULT_MEMO_BYTES] {
            let m = Memo::new(budget).unwrap();
            let mut rng = 0x9E37_79B9_7F4A_7C15u64;
            for i in 0..20_000u32 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let len = (rng % 3000) as usize;
                let key = (rng % 5000).to_le_bytes();
                let stored = vec![i as u8; len + 44];
                let plain = vec![!(i as u8); len];
                m.insert("ns", &key, &stored, &plain);
                assert!(m.bytes() <= budget, "{} > {budget}", m.bytes());
                if i % 7 == 0 {
                    let _ = get(&m, "ns", &key, &stored);
                }
            }
            let counted: usize = m
                .shards
                .iter()
                .map(|s| {
                    let s = s.read().unwrap();
                    s.slots
                        .iter()
                        .filter(|x| x.live)
                        .map(Slot::bytes)
                        .sum::<usize>()
                })
                .sum();
            assert_eq!(counted, m.bytes());
        }
    }

    #[test]
    fn large_values_are_not_kept() {
        let m = Memo::new(DEFAULT_MEMO_BYTES).unwrap();
        let big = vec![1u8; MEMO_MAX_VALUE_BYTES + 1];
        m.insert("ns", b"big", &big, &big);
        assert_eq!(m.len(), 0);
        let ok = vec![1u8; MEMO_MAX_VALUE_BYTES];
        m.insert("ns", b"ok", &ok, &ok);
        assert_eq!(get(&m, "ns", b"ok", &ok).unwrap(), ok);
        // A small budget keeps only entries of up to half a shard.
        let small = Memo::new(4000).unwrap();
        small.insert("ns", b"k", &[0; 1000], &[0; 1000]);
        assert_eq!(small.len(), 0);
        small.insert("ns", b"k", &[0; 400], &[0; 400]);
        assert_eq!(small.len(), 1);
    }

    #[test]
    fn the_clock_keeps_what_is_read() {
        // Room for about 10 entries of ~250 bytes.
        let m = Memo::new(2600).unwrap();
        m.insert("ns", b"hot", &[1; 60], &[2; 60]);
        for i in 0..100u32 {
            assert!(get(&m, "ns", b"hot", &[1; 60]).is_some(), "round {i}");
            m.insert("ns", &i.to_le_bytes(), &[3; 60], &[4; 60]);
        }
        assert!(m.len() <= 10);
    }

    /// Through a real daemon: a segment hit of an encrypting client is served from the memo
    /// (a poisoned entry shows it), a rewrite of the same length is seen at once, and a client
    /// with a budget of 0 has no memo.
    #[test]
    fn the_hit_path_uses_the_memo_and_sees_rewrites() {
        use crate::{Client, ClientOptions, Encryption, MasterKey, SetOptions};
        let daemon = cachekit_testkit::Daemon::start("memo-wiring", &[]);
        let opts = |memo: usize| {
            ClientOptions::new()
                .socket(daemon.socket())
                .namespace("memo")
                .encryption(Encryption::new(MasterKey::from_bytes([3; 32])).memo_bytes(memo))
        };
        let c = Client::connect(opts(DEFAULT_MEMO_BYTES)).unwrap();
        let off = Client::connect(opts(0)).unwrap();
        assert!(off.shared.memo.is_none());
        c.set("k", b"value one", &SetOptions::new()).unwrap();
        assert_eq!(c.get("k").unwrap().unwrap().bytes, b"value one");
        let memo = c.shared.memo.as_ref().unwrap();
        assert_eq!(
            memo.len(),
            1,
            "the first segment hit opened and remembered the value"
        );
        assert!(memo.poison("memo", b"k", b"from the memo"));
        assert_eq!(c.get("k").unwrap().unwrap().bytes, b"from the memo");
        let mut out = Vec::new();
        c.get_into("k", &mut out).unwrap().unwrap();
        assert_eq!(out, b"from the memo");
        assert_eq!(c.get_local("k").unwrap().unwrap().bytes, b"from the memo");
        // Another handle of the same client shares the memo only for its own namespace.
        let other = c.with_namespace("memo2").unwrap();
        other.set("k", b"value two", &SetOptions::new()).unwrap();
        assert_eq!(other.get("k").unwrap().unwrap().bytes, b"value two");
        // The client without a memo opens every hit.
        assert_eq!(off.get("k").unwrap().unwrap().bytes, b"value one");
        // A rewrite (same length, other bytes; a new nonce anyway) is opened, not served.
        c.set("k", b"value 111", &SetOptions::new()).unwrap();
        assert_eq!(c.get("k").unwrap().unwrap().bytes, b"value 111");
        // Even the same plaintext again: new envelope bytes, opened again.
        assert!(memo.poison("memo", b"k", b"stale"));
        c.set("k", b"value 111", &SetOptions::new()).unwrap();
        assert_eq!(c.get("k").unwrap().unwrap().bytes, b"value 111");
    }
}
