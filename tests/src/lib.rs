//! Support code of cachekit's end-to-end and stress tests, shared by the test files and the
//! `cachekit-worker` binary (a real client process the tests drive over stdin/stdout).
//!
//! - [`value`]: self-describing stress values (key, writer, version, checksum), so a reader can
//!   tell a wrong value from an old one without asking anybody.
//! - [`floors`]: per-key "oldest version a read may still return", published by each key's
//!   writer in a small shared file once a write or an invalidation is acknowledged.
//! - [`checker`]: the verdict on one read, from the value, the floor loaded before the read,
//!   the newest version attempted (loaded after it) and what this thread saw before.
//! - [`stress`]: the stress loop a worker runs (set / get / invalidate / delete).
//! - [`hosts`]: the cross-host checker (writers on one host, readers on another, every old
//!   read judged by its age).
//!
//! The worker's line protocol is described in `src/bin/cachekit-worker.rs`.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod checker;
pub mod floors;
pub mod hosts;
pub mod stress;
pub mod value;

/// Wall-clock Unix milliseconds, the unit of every deadline in cachekit (the same clock the
/// daemon stamps entries with and the reader checks them against).
pub fn now_ms() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    d.as_secs() * 1000 + u64::from(d.subsec_millis())
}

/// A small, fast, deterministic PRNG (xorshift64*): enough for choosing operations and keys,
/// and reproducible from a seed printed in the report.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (0 is replaced by a fixed odd constant).
    pub fn new(seed: u64) -> Rng {
        Rng(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True once in `n` calls on average.
    pub fn one_in(&mut self, n: u64) -> bool {
        self.below(n) == 0
    }
}
