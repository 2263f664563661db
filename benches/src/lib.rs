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
//! - [`lease`]: from a fill lease's fill to its waiters' return;
//! - [`cpu_times`]: a process's user and kernel CPU seconds.

pub mod crypt;
pub mod daemon;
pub mod data;
pub mod hitmap;
pub mod lease;
pub mod memcache;
pub mod sim;
pub mod timing;
pub mod writes;

/// User and kernel CPU seconds `pid` has used so far (`/proc/PID/stat` fields 14 and 15, in
/// USER_HZ ticks: 100 per second, fixed by the kernel ABI for /proc); zeros if unreadable.
pub fn cpu_times(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the ")" closing the command name the state is field 3: 14 and 15 are index 11, 12.
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) / 100.0, ticks(12) / 100.0)
}
