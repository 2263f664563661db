//! Hit-ratio simulation: cachekit's eviction against quick_cache (S3-FIFO) and moka
//! (TinyLFU admission, W-TinyLFU-like eviction), at equal entry capacity, on the same trace.
//!
//! cachekit is simulated with the real table code: a `cachekit_shm::Writer` on a heap table
//! and a `Reader` over it whose hits set access bits in the client area, exactly as a client
//! process does; a miss inserts the key (what the daemon does on a fill). Its capacity is in
//! bytes (an arena of segments evicted FIFO with a second chance for entries read since they
//! were written), so the table is sized for the wanted number of entries and the number of
//! entries it really holds (`live_entries`, averaged over the measured part of the trace) is
//! the capacity the other two caches get.

use cachekit_shm::{Backing, InsertOptions, Lookup, Reader, Stat, TableConfig, Writer};

use crate::data::Rng;

/// Zipf(s) over ranks `0..n` (rank 0 most popular), sampled by inverting the CDF.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks with exponent `s`.
    pub fn new(n: usize, s: f64) -> Zipf {
        let mut cdf = Vec::with_capacity(n);
        let mut acc = 0.0;
        for r in 1..=n {
            acc += 1.0 / (r as f64).powf(s);
            cdf.push(acc);
        }
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf { cdf }
    }

    /// One rank.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// A trace: key ids, and how many leading requests warm the cache without being counted.
pub struct Trace {
    pub name: &'static str,
    pub description: String,
    pub keys: Vec<u32>,
    pub warmup: usize,
    /// Ids below this are the "popular" key space; ids at or above it are scan keys.
    pub key_space: u32,
}

/// `len` requests drawn from Zipf(`s`) over `key_space` keys. Ranks are mapped to ids through
/// a random permutation, so popularity has nothing to do with the id.
pub fn zipf_trace(key_space: usize, s: f64, len: usize, warmup: usize, seed: u64) -> Trace {
    let z = Zipf::new(key_space, s);
    let mut rng = Rng(seed);
    let mut ids: Vec<u32> = (0..key_space as u32).collect();
    rng.shuffle(&mut ids);
    let keys = (0..len).map(|_| ids[z.sample(&mut rng)]).collect();
    Trace {
        name: "zipf",
        description: format!("Zipf({s}) over {key_space} keys, {len} requests ({warmup} warm-up)"),
        keys,
        warmup,
        key_space: key_space as u32,
    }
}

/// Zipf(`s`) requests interrupted by scans: after every `zipf_block` Zipf requests, a scan of
/// `scan_block` keys read once each and never again (a batch job, a crawler, a report walking
/// the table), so half of the requests are scans when the blocks are equal.
pub fn scan_trace(
    key_space: usize,
    s: f64,
    len: usize,
    warmup: usize,
    zipf_block: usize,
    scan_block: usize,
    seed: u64,
) -> Trace {
    let z = Zipf::new(key_space, s);
    let mut rng = Rng(seed);
    let mut ids: Vec<u32> = (0..key_space as u32).collect();
    rng.shuffle(&mut ids);
    let mut keys = Vec::with_capacity(len);
    let mut next_scan = key_space as u32;
    while keys.len() < len {
        for _ in 0..zipf_block.min(len - keys.len()) {
            keys.push(ids[z.sample(&mut rng)]);
        }
        for _ in 0..scan_block.min(len - keys.len()) {
            keys.push(next_scan);
            next_scan += 1;
        }
    }
    Trace {
        name: "scan",
        description: format!(
            "Zipf({s}) over {key_space} keys, every {zipf_block} requests interrupted by a scan of \
             {scan_block} keys never read again; {len} requests ({warmup} warm-up)"
        ),
        keys,
        warmup,
        key_space: key_space as u32,
    }
}

/// Hits of one cache on one trace (after the warm-up).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Outcome {
    pub lookups: u64,
    pub hits: u64,
    /// Lookups and hits of keys of the Zipf key space (scan keys left out).
    pub core_lookups: u64,
    pub core_hits: u64,
    /// Seconds the run took (the whole trace).
    pub secs: f64,
}

impl Outcome {
    pub fn ratio(&self) -> f64 {
        self.hits as f64 / self.lookups.max(1) as f64
    }
    pub fn core_ratio(&self) -> f64 {
        self.core_hits as f64 / self.core_lookups.max(1) as f64
    }
}

/// Runs `trace` through a cache given as `get` (true on a hit) and `put` (called on a miss).
/// `sample` is called every 1024 counted requests.
pub fn run(
    trace: &Trace,
    mut get: impl FnMut(u32) -> bool,
    mut put: impl FnMut(u32),
    mut sample: impl FnMut(),
) -> Outcome {
    let t = std::time::Instant::now();
    let mut o = Outcome::default();
    for (i, &k) in trace.keys.iter().enumerate() {
        let hit = get(k);
        if !hit {
            put(k);
        }
        if i >= trace.warmup {
            o.lookups += 1;
            o.hits += hit as u64;
            if k < trace.key_space {
                o.core_lookups += 1;
                o.core_hits += hit as u64;
            }
            if o.lookups % 1024 == 0 {
                sample();
            }
        }
    }
    o.secs = t.elapsed().as_secs_f64();
    o
}

/// Bytes of a simulated entry: header 24 + namespace "sim" 3 + key 16 + namespace reference 4
/// + value 100.
pub const SIM_ENTRY_BYTES: u64 = 24 + 3 + 16 + 4 + SIM_VALUE_BYTES as u64;
/// Value size in the simulation.
pub const SIM_VALUE_BYTES: usize = 100;
const SIM_NS: &str = "sim";
/// Segments the simulated arena is cut into (plus the two the writer keeps in reserve).
pub const SIM_SEGMENTS: u64 = 64;

fn sim_key(k: u32) -> [u8; 16] {
    let mut b = *b"sim-key-00000000";
    b[8..12].copy_from_slice(&k.to_le_bytes());
    b
}

/// What the cachekit run reports besides its hits.
#[derive(Clone, Copy, Debug, Default)]
pub struct CachekitSim {
    pub outcome: Outcome,
    /// Mean `live_entries` over the measured part: the capacity the others get.
    pub mean_live: f64,
    pub segment_bytes: u64,
    pub segment_count: u64,
    pub second_chances: u64,
    pub evictions: u64,
    pub bucket_evictions: u64,
}

/// cachekit's table sized for about `capacity` entries of [`SIM_ENTRY_BYTES`].
pub fn simulate_cachekit(trace: &Trace, capacity: usize) -> CachekitSim {
    let bytes = capacity as u64 * SIM_ENTRY_BYTES;
    // A power of two near bytes / SIM_SEGMENTS, at least 8 KiB (room for the largest entry).
    let seg = (bytes / SIM_SEGMENTS).next_power_of_two().max(8192);
    let seg = if seg / 2 >= 8192 && (bytes / SIM_SEGMENTS) < seg * 3 / 4 {
        seg / 2
    } else {
        seg
    };
    // Two more than needed: the writer keeps free segments in reserve for second chances.
    let count = bytes.div_ceil(seg) + 2;
    let cfg = TableConfig {
        arena_bytes: count * seg,
        segment_bytes: Some(seg),
        max_value_bytes: 1024,
        expected_entry_bytes: SIM_ENTRY_BYTES,
        hash_seed: Some(0x51A_u64),
        ..Default::default()
    };
    let mut w = Writer::create(&cfg, Backing::Heap).expect("simulated table");
    let reader: Reader = w.reader();
    let value = [0x5Au8; SIM_VALUE_BYTES];
    let opts = InsertOptions::default();
    let mut buf = [0u8; 256];
    let mut live_sum = 0f64;
    let mut live_n = 0u64;
    // `get` needs the reader, `put` the writer, `sample` reads the writer's stats: the writer
    // is shared through a RefCell between the last two.
    let w_cell = std::cell::RefCell::new(&mut w);
    let outcome = run(
        trace,
        |k| {
            matches!(
                reader.get_into(SIM_NS, &sim_key(k), &mut buf),
                Lookup::Hit(_)
            )
        },
        |k| {
            w_cell
                .borrow_mut()
                .insert(SIM_NS, &sim_key(k), &value, &opts)
                .expect("insert");
        },
        || {
            live_sum += w_cell.borrow().stat(Stat::LiveEntries) as f64;
            live_n += 1;
        },
    );
    CachekitSim {
        outcome,
        mean_live: live_sum / live_n.max(1) as f64,
        segment_bytes: seg,
        segment_count: count,
        second_chances: w.stat(Stat::SecondChances),
        evictions: w.stat(Stat::Evictions),
        bucket_evictions: w.stat(Stat::BucketEvictions),
    }
}

/// quick_cache's single-threaded cache (S3-FIFO-like, `unsync::Cache`) of `capacity` items.
pub fn simulate_quick_cache(trace: &Trace, capacity: usize) -> Outcome {
    let c = std::cell::RefCell::new(quick_cache::unsync::Cache::<u32, ()>::new(capacity));
    run(
        trace,
        |k| c.borrow().get(&k).is_some(),
        |k| c.borrow_mut().insert(k, ()),
        || {},
    )
}

/// moka's `sync::Cache` of `capacity` entries. Its maintenance (admission, eviction) runs
/// from a write buffer; it is run explicitly every 1024 counted requests so that the cache
/// never holds much more than its capacity.
pub fn simulate_moka(trace: &Trace, capacity: usize) -> Outcome {
    let c: moka::sync::Cache<u32, ()> = moka::sync::Cache::builder()
        .max_capacity(capacity as u64)
        .build();
    run(
        trace,
        |k| c.get(&k).is_some(),
        |k| c.insert(k, ()),
        || c.run_pending_tasks(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_is_skewed() {
        let z = Zipf::new(1000, 0.99);
        let mut r = Rng(1);
        let top = (0..10_000).filter(|_| z.sample(&mut r) < 10).count();
        // The 10 most popular of 1000 keys get about 39% of the requests at s = 0.99.
        assert!((3_000..5_000).contains(&top), "{top}");
    }

    #[test]
    fn small_simulation() {
        let t = zipf_trace(10_000, 0.99, 60_000, 10_000, 7);
        let ck = simulate_cachekit(&t, 1_000);
        let qc = simulate_quick_cache(&t, ck.mean_live as usize);
        assert!(
            ck.outcome.ratio() > 0.3 && qc.ratio() > 0.3,
            "{ck:?} {qc:?}"
        );
        assert!(ck.mean_live > 500.0 && ck.mean_live < 1_500.0, "{ck:?}");
        let s = scan_trace(10_000, 0.99, 60_000, 10_000, 1_000, 1_000, 7);
        let m = simulate_moka(&s, 1_000);
        assert!(m.core_lookups < m.lookups && m.core_hits == m.hits);
    }
}
