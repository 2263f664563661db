//! Shared pieces of cachekit's benchmarks: the criterion micro-benchmarks
//! (`benches/cachekit.rs`) and the side-by-side harness (`src/bin/cachekit-bench.rs`, run by
//! `scripts/bench`).
//!
//! - [`data`]: reproducible keys, values and orders (the same ones as `scripts/bench-hit`);
//! - [`daemon`]: a private `cachekitd` in a temp dir;
//! - [`hitmap`]: a cachekit hit against a same-process `HashMap` of the same keys;
//! - [`timing`]: per-operation timing loops and percentiles;
//! - [`memcache`]: a minimal memcached text-protocol client;
//! - [`sim`]: the hit-ratio simulation (cachekit's eviction vs quick_cache and moka);
//! - [`lease`]: from a fill lease's fill to its waiters' return.

pub mod crypt;
pub mod daemon;
pub mod data;
pub mod hitmap;
pub mod lease;
pub mod memcache;
pub mod sim;
pub mod timing;
pub mod writes;
