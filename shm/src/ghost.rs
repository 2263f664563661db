//! The ghost of S3-FIFO: key hashes of entries evicted from the small lanes unread, so a key
//! that comes back soon after goes straight to a main lane. Lives in the daemon's own memory.
//!
//! Two generations of a bit set, [`BITS_SET`] bits per key: a key is remembered while either
//! generation holds all its bits. When the current generation has taken `per_generation`
//! keys, the older one is cleared and becomes the current one, so the ghost remembers at
//! least the last `per_generation` keys and at most the last `2 × per_generation`. A false
//! positive only sends a new key to main: eviction order, never correctness. It still
//! matters: a scan floods small with keys read once, and every one the ghost wrongly
//! remembers lands in main and pushes a hot entry out. With two bits per key about 1.6% of a
//! scan got through (16 to 32 bits per key over both generations), which cost 1.5 points of
//! hit ratio on the scan trace at 10k entries; four bits let about 0.2% through
//! (`cachekit-bench ratio`, 2, 3, 4 and 6 tried: 0.632, 0.644, 0.647, 0.648). The four bits
//! are in one cache line (a blocked Bloom filter), so a lookup costs at most two cache
//! misses, as two bits anywhere did not.

/// Bits per remembered key in one generation.
const BITS_PER_KEY: usize = 16;

/// Bits set per remembered key (see the module doc for why four).
const BITS_SET: usize = 4;

/// Bits of a cache line: all the bits of one key are in one line of each generation.
const LINE_BITS: u64 = 512;

/// One cache line of a generation, aligned to a line so that a key's bits are in exactly one
/// (a `Vec<u64>` is only 8-byte aligned: its 64-byte blocks would mostly span two lines).
#[derive(Clone, Copy, Default)]
#[repr(C, align(64))]
struct Line([u64; 8]);

/// The word and the mask of bit `b` of a generation.
fn at(set: &[Line], b: u64) -> (&u64, u64) {
    let line = &set[(b / LINE_BITS) as usize];
    (&line.0[((b % LINE_BITS) / 64) as usize], 1 << (b % 64))
}

pub(crate) struct Ghost {
    gens: [Vec<Line>; 2],
    current: usize,
    taken: usize,
    per_generation: usize,
    /// Line index mask (a power of two minus one).
    line_mask: u64,
}

impl Ghost {
    /// A ghost that remembers at least `keys` evicted keys.
    pub(crate) fn new(keys: usize) -> Ghost {
        let keys = keys.max(64);
        let bits = (keys * BITS_PER_KEY).next_power_of_two();
        Ghost {
            gens: [
                vec![Line::default(); bits / LINE_BITS as usize],
                vec![Line::default(); bits / LINE_BITS as usize],
            ],
            current: 0,
            taken: 0,
            per_generation: keys,
            line_mask: (bits as u64 / LINE_BITS) - 1,
        }
    }

    fn bits(&self, key_hash: u64) -> [u64; BITS_SET] {
        // One cache line per key and generation: the low bits of the key hash (xxh3) pick
        // the line, 9-bit pieces of a second value mixed from its rotated halves the bits in
        // it. The writer looks the ghost up on every insert, under the table's lock: one
        // line is at most one cache miss per generation.
        let line = (key_hash & self.line_mask) * LINE_BITS;
        let h2 = key_hash.rotate_left(32).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 28;
        let mut out = [0; BITS_SET];
        for (i, o) in out.iter_mut().enumerate() {
            *o = line + ((h2 >> (9 * i)) & (LINE_BITS - 1));
        }
        out
    }

    fn holds(set: &[Line], bits: [u64; BITS_SET]) -> bool {
        bits.iter().all(|b| {
            let (word, mask) = at(set, *b);
            word & mask != 0
        })
    }

    /// Remembers `key_hash`.
    pub(crate) fn insert(&mut self, key_hash: u64) {
        if self.taken >= self.per_generation {
            self.current ^= 1;
            self.gens[self.current].fill(Line::default());
            self.taken = 0;
        }
        let bits = self.bits(key_hash);
        let set = &mut self.gens[self.current];
        for b in bits {
            let line = &mut set[(b / LINE_BITS) as usize];
            line.0[((b % LINE_BITS) / 64) as usize] |= 1 << (b % 64);
        }
        self.taken += 1;
    }

    /// True when `key_hash` was evicted recently (or, rarely, a false positive).
    pub(crate) fn contains(&self, key_hash: u64) -> bool {
        let bits = self.bits(key_hash);
        self.gens.iter().any(|g| Self::holds(g, bits))
    }

    /// Forgets everything (the table was cleared).
    pub(crate) fn clear(&mut self) {
        for g in &mut self.gens {
            g.fill(Line::default());
        }
        self.taken = 0;
    }

    /// Bytes of memory it holds.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.gens.iter().map(|g| g.len() * 64).sum()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn h(i: u64) -> u64 {
        xxhash_rust::xxh3::xxh3_64(&i.to_le_bytes())
    }

    #[test]
    fn remembers_the_last_generation_and_forgets_older_ones() {
        let mut g = Ghost::new(1000);
        for i in 0..1000 {
            g.insert(h(i));
        }
        assert!((0..1000).all(|i| g.contains(h(i))));
        for i in 1000..2000 {
            g.insert(h(i));
        }
        assert!((1000..2000).all(|i| g.contains(h(i))));
        // The first thousand were in the generation cleared by the 2001st insert.
        g.insert(h(2000));
        let kept = (0..1000).filter(|i| g.contains(h(*i))).count();
        assert!(
            kept < 50,
            "{kept} of the oldest generation still remembered"
        );
    }

    #[test]
    fn false_positives_are_rare() {
        let mut g = Ghost::new(10_000);
        for i in 0..10_000 {
            g.insert(h(i));
        }
        let fp = (1_000_000..1_100_000).filter(|i| g.contains(h(*i))).count();
        // Four bits per key in a set of 26 bits per key: about 0.04% (two bits: about 0.55%).
        assert!(fp < 300, "{fp} false positives in 100000");
        g.clear();
        assert!(!(0..10_000).any(|i| g.contains(h(i))));
        assert!(g.bytes() >= 2 * 10_000 * BITS_PER_KEY / 8);
    }
}
