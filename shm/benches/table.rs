//! Benchmarks of the shared-memory table (the performance contract: §7 of the design brief,
//! `../shared/DESIGN.md`, outside this repository).
//!
//! - `get_hit/100B/{1k,100k,1M}`: a hit on a 100-byte value (16-byte key) in a table of
//!   N entries, through a reader attached to the sealed memfds like a real client
//!   (read-only table mapping), `get_into` a caller buffer. Keys are read in a
//!   precomputed random order, so a lookup pays the cache and TLB misses on the index and
//!   the arena that a real client pays. Every key is checked to hit before measuring,
//!   and the measured lookups are checked to have been hits afterwards.
//! - `get_miss/1M`: a key that is not in the 1M table.
//! - `invalidate/{10,100k}`: invalidating a tag that covers 10 vs 100k entries; it must
//!   cost the same (O(1): one or two counter bumps).
//! - `insert/100B`: the writer's insert (overwrites over 100k keys, steady state).
//!
//! `cargo bench -p cachekit-shm --bench table` takes about a minute. Under
//! `cargo test --benches` (criterion's test mode, every benchmark run once) the tables
//! are capped at 10k entries so that the unoptimised build stays quick.

use cachekit_shm::{
    Backing, InsertOptions, InvalidateMode, Lookup, Reader, Stat, TableConfig, Writer,
};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};

const NS: &str = "bench";
const VALUE_BYTES: usize = 100;
/// Header 24 + namespace 5 + key 16 + one tag-counter reference 4 + value 100.
const ENTRY_BYTES: u64 = 149;
const TTL_MS: u64 = 3_600_000;
/// Fixed so that runs are reproducible (bucket placement depends on it).
const SEED: u64 = 0x5EED_CAC4_E000_0001;
/// Table size cap in criterion's test mode.
const TEST_MODE_CAP: usize = 10_000;

/// Criterion's own rule: benchmarks run only under `--bench` without `--test`.
fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test")
}

fn cap(n: usize) -> usize {
    if test_mode() {
        n.min(TEST_MODE_CAP)
    } else {
        n
    }
}

/// splitmix64: a dependency-free, reproducible generator for shuffles.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// The 16-byte key number `i` (`prefix` tells present keys from absent ones).
fn key(prefix: u8, i: usize) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[0] = prefix;
    k[1..].copy_from_slice(format!("{i:015}").as_bytes());
    k
}

fn value(i: usize) -> [u8; VALUE_BYTES] {
    [i as u8 ^ 0x5A; VALUE_BYTES]
}

/// Arena big enough for `n` entries with room to spare (2×, at least 8 MiB), so nothing is
/// evicted while filling.
fn config_for(n: usize) -> TableConfig {
    TableConfig {
        arena_bytes: (n as u64 * ENTRY_BYTES * 2)
            .next_power_of_two()
            .max(8 << 20),
        expected_entry_bytes: ENTRY_BYTES + 1,
        hash_seed: Some(SEED),
        ..Default::default()
    }
}

fn attach(w: &Writer) -> Reader {
    let fds = w.fds().expect("memfd backing");
    let mut r = Reader::attach(fds.table_fd(), Some(fds.client_fd())).expect("attach");
    // As a client does: its lookups counted in a counters file of its own (host-wide
    // counters), unless CACHEKIT_BENCH_NO_RECORD is set (to measure what the counting costs).
    if std::env::var_os("CACHEKIT_BENCH_NO_RECORD").is_none() {
        let file = cachekit_shm::CounterFile::create(u64::from(std::process::id()), 0)
            .expect("counters memfd");
        r.count_into(file.fd()).expect("mapping the counters file");
    }
    r
}

/// A memfd table filled with `n` entries and a client-style reader on it.
struct Filled {
    _writer: Writer,
    reader: Reader,
    /// Present keys, in random order.
    hit_keys: Vec<[u8; 16]>,
    n: usize,
}

impl Filled {
    fn build(n: usize) -> Filled {
        let t0 = Instant::now();
        let mut w = Writer::create(&config_for(n), Backing::Memfd).expect("create table");
        let opts = InsertOptions {
            ttl_ms: Some(TTL_MS),
            ..Default::default()
        };
        for i in 0..n {
            w.insert(NS, &key(b'k', i), &value(i), &opts)
                .expect("insert");
        }
        let reader = attach(&w);
        // Every key must hit, with its own value, before anything is measured. A bucket
        // holds 8 slots and the index gets 1 to 2 entries per bucket here, so a few
        // buckets overflow (Poisson tail: ~2 of 65536 buckets at 100k entries) and their
        // oldest entry is dropped; those keys are left out of the measured set and counted.
        let mut buf = [0u8; 256];
        let mut hit_keys = Vec::with_capacity(n);
        for i in 0..n {
            let k = key(b'k', i);
            match reader.get_into(NS, &k, &mut buf) {
                Lookup::Hit(m) => {
                    assert_eq!(m.value_len, VALUE_BYTES);
                    assert_eq!(buf[..VALUE_BYTES], value(i), "wrong value for key {i}");
                    hit_keys.push(k);
                }
                other => assert!(matches!(other, Lookup::Miss), "{other:?}"),
            }
        }
        let missing = n - hit_keys.len();
        let bucket_evictions = w.stat(Stat::BucketEvictions) as usize;
        assert_eq!(
            missing, bucket_evictions,
            "misses not explained by full buckets"
        );
        assert!(
            missing * 10_000 <= n,
            "{missing} of {n} entries lost to full buckets"
        );
        assert_eq!(
            w.stat(Stat::Evictions),
            0,
            "arena too small: entries were evicted"
        );
        Rng(n as u64).shuffle(&mut hit_keys);
        eprintln!(
            "table of {n} entries: {} MiB mapped, filled and checked in {:.2?}{}",
            w.table_bytes() >> 20,
            t0.elapsed(),
            if missing > 0 {
                format!(" ({missing} lost to full buckets, left out)")
            } else {
                String::new()
            }
        );
        Filled {
            _writer: w,
            reader,
            hit_keys,
            n,
        }
    }
}

fn label(n: usize) -> &'static str {
    match n {
        1_000 => "1k",
        100_000 => "100k",
        1_000_000 => "1M",
        _ => unreachable!(),
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

fn get(c: &mut Criterion) {
    // Built lazily, once, and shared by both groups; dropped at the end.
    let mut big: Option<Filled> = None;

    let mut g = c.benchmark_group("get_hit/100B");
    g.throughput(Throughput::Elements(1));
    for n in [1_000, 100_000, 1_000_000] {
        let mut small: Option<Filled> = None;
        // The cursor survives across samples (criterion calls the closure once per sample),
        // so the walk through the random order never restarts on warm keys.
        let mut i = 0;
        g.bench_function(BenchmarkId::from_parameter(label(n)), |b| {
            let slot = if n == 1_000_000 { &mut big } else { &mut small };
            let t = slot.get_or_insert_with(|| Filled::build(cap(n)));
            let before = t.reader.stats();
            let keys = &t.hit_keys;
            let mut buf = [0u8; 256];
            b.iter(|| {
                let k = &keys[i];
                i += 1;
                if i == keys.len() {
                    i = 0;
                }
                let r = t.reader.get_into(NS, black_box(k), &mut buf);
                black_box(&buf);
                r
            });
            let after = t.reader.stats();
            assert_eq!(after.misses, before.misses, "a measured lookup missed");
            assert_eq!(after.retries, before.retries);
            assert!(after.hits > before.hits);
        });
    }
    g.finish();

    let mut g = c.benchmark_group("get_miss");
    g.throughput(Throughput::Elements(1));
    let mut miss_keys: Vec<[u8; 16]> = Vec::new();
    let mut i = 0;
    g.bench_function("1M", |b| {
        let t = big.get_or_insert_with(|| Filled::build(cap(1_000_000)));
        if miss_keys.is_empty() {
            miss_keys = (0..t.n).map(|i| key(b'm', i)).collect();
            Rng(!(t.n as u64)).shuffle(&mut miss_keys);
            let mut buf = [0u8; 256];
            for k in &miss_keys {
                assert_eq!(t.reader.get_into(NS, k, &mut buf), Lookup::Miss);
            }
        }
        let before = t.reader.stats();
        let keys = &miss_keys;
        let mut buf = [0u8; 256];
        b.iter(|| {
            let k = &keys[i];
            i += 1;
            if i == keys.len() {
                i = 0;
            }
            t.reader.get_into(NS, black_box(k), &mut buf)
        });
        assert_eq!(t.reader.stats().hits, before.hits, "a measured miss hit");
    });
    g.finish();
}

fn invalidate(c: &mut Criterion) {
    // One table holds both tags: the cost of an invalidation must not depend on how many
    // entries carry the tag. The tags have the same length and depth, so they hash alike.
    let small_tag = "group/small";
    let large_tag = "group/large";
    let large = cap(100_000);
    let mut w = Writer::create(&config_for(large + 11), Backing::Memfd).expect("create table");
    let reader = attach(&w);
    let (small_tags, large_tags) = ([small_tag], [large_tag]);
    let tagged = |tags| InsertOptions {
        ttl_ms: Some(TTL_MS),
        tags,
        ..Default::default()
    };
    for i in 0..10 {
        w.insert(NS, &key(b's', i), &value(i), &tagged(&small_tags))
            .unwrap();
    }
    for i in 0..large {
        w.insert(NS, &key(b'l', i), &value(i), &tagged(&large_tags))
            .unwrap();
    }
    w.insert(NS, b"control", b"untagged", &InsertOptions::default())
        .unwrap();
    let present = |prefix, n| (0..n).all(|i| reader.get(NS, &key(prefix, i)).is_some());
    assert!(
        present(b's', 10) && present(b'l', large),
        "tagged entries missing before invalidation"
    );

    let mut g = c.benchmark_group("invalidate");
    for (name, tag) in [("10", small_tag), ("100k", large_tag)] {
        g.bench_function(name, |b| {
            b.iter(|| {
                w.invalidate(NS, black_box(tag), InvalidateMode::Hierarchical)
                    .unwrap()
            })
        });
    }
    g.finish();

    // The invalidations did take effect (where the benchmarks ran), and only there.
    if w.stat(Stat::Invalidations) > 0 {
        let gone = |prefix, n| (0..n).all(|i| reader.get(NS, &key(prefix, i)).is_none());
        assert!(
            gone(b's', 10) && gone(b'l', large),
            "invalidated entries still served"
        );
        assert!(reader.get(NS, b"control").is_some(), "untagged entry lost");
    }
}

fn insert(c: &mut Criterion) {
    // Steady state of a daemon refreshing a working set: overwrites of 100k keys in random
    // order into a 64 MiB arena (segments are freed as their entries are overwritten).
    let n = cap(100_000);
    let mut w = Writer::create(
        &TableConfig {
            arena_bytes: 64 << 20,
            hash_seed: Some(SEED),
            ..Default::default()
        },
        Backing::Memfd,
    )
    .expect("create table");
    let mut keys: Vec<[u8; 16]> = (0..n).map(|i| key(b'k', i)).collect();
    Rng(7).shuffle(&mut keys);
    let v = value(1);
    let opts = InsertOptions {
        ttl_ms: Some(300_000),
        ..Default::default()
    };
    let mut g = c.benchmark_group("insert");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("100B", |b| {
        b.iter(|| {
            let k = &keys[i];
            i += 1;
            if i == keys.len() {
                i = 0;
            }
            w.insert(NS, black_box(k), black_box(&v), &opts).unwrap()
        })
    });
    g.finish();
    if w.stat(Stat::Inserts) > 0 {
        let reader = attach(&w);
        let last = &keys[(i + n - 1) % n];
        assert_eq!(
            reader.get(NS, last).map(|(v, _)| v),
            Some(v.to_vec()),
            "last insert not served"
        );
    }
}

criterion_group! {
    name = benches;
    config = config();
    targets = get, invalidate, insert
}
criterion_main!(benches);
