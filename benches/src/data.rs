//! Reproducible data: splitmix64 keys, values and orders.
//!
//! [`hit_keys`] / [`hit_values`] / [`hit_order`] are exactly those of `scripts/bench-hit`
//! (`go/bench/hit.c`, `hit.rs`, the Go `TestHitLatency`): keys `hit-0`..`hit-9999`, values of
//! `size` bytes drawn in key order from one splitmix64 stream seeded with `size`, and reads in
//! the order of a Fisher-Yates shuffle seeded with `!size`. So every subject of the
//! side-by-side run reads the same keys and values in the same order.

/// One step of splitmix64.
pub fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A splitmix64 generator.
#[derive(Clone, Debug)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        splitmix(&mut self.0)
    }

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Fisher-Yates, from the end (the order `scripts/bench-hit`'s programs use).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next_u64() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// `scripts/bench-hit`'s keys: `hit-0`, `hit-1`, ...
pub fn hit_keys(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("hit-{i}").into_bytes()).collect()
}

/// `scripts/bench-hit`'s values: `n` values of `size` bytes from one stream seeded `size`.
pub fn hit_values(n: usize, size: usize) -> Vec<Vec<u8>> {
    let mut r = Rng(size as u64);
    (0..n).map(|_| r.bytes(size)).collect()
}

/// `scripts/bench-hit`'s read order: a shuffle of `0..n` seeded `!size`.
pub fn hit_order(n: usize, size: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    Rng(!(size as u64)).shuffle(&mut order);
    order
}

/// A 16-byte key: `tag` padded with `-` to 6 bytes, then `i` on 10 digits.
pub fn key16(tag: &str, i: usize) -> Vec<u8> {
    let k = format!("{tag:-<6}{i:010}");
    assert_eq!(k.len(), 16, "tag {tag:?} too long");
    k.into_bytes()
}

/// A value of `size` bytes for key number `i` (cheap, varied, incompressible enough).
pub fn value_for(i: usize, size: usize) -> Vec<u8> {
    Rng(i as u64 ^ ((size as u64) << 40)).bytes(size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_hit_compatible() {
        // The first bytes hit.c would produce (same generator, same seed).
        let v = hit_values(2, 100);
        let mut r = 100u64;
        let first: Vec<u8> = (0..100).map(|_| splitmix(&mut r) as u8).collect();
        assert_eq!(v[0], first);
        assert_eq!(hit_keys(3)[2], b"hit-2");
        let o = hit_order(10_000, 100);
        let mut s = o.clone();
        s.sort_unstable();
        assert_eq!(s, (0..10_000).collect::<Vec<_>>());
        assert_eq!(key16("t", 7), b"t-----0000000007");
    }
}
