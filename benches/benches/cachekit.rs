//! Criterion micro-benchmarks across crates (issue #7), against a real `cachekitd`:
//!
//! - `client/get_hit/value/{16B,100B,4KiB,64KiB}`: `Client::get_into` of a key present in the
//!   segment, 10k keys per size (random bytes: values of 256 B and more are offered to LZ4 and
//!   stored raw, as incompressible), keys in a shuffled order;
//! - `client/get_hit/table/{1k,100k,1M}`: the same for 100-byte values in a table of N
//!   entries (one daemon per size, sized for it);
//! - `client/get_miss`: a key absent from the segment (one FETCH round trip);
//! - `client/set/100B`: an acknowledged SET through the daemon;
//! - `client/get_many/{10,100}`: `Client::get_many` of N present keys (per call);
//! - `client/invalidate/{10,100k}`: invalidating, through the daemon, a tag covering 10 vs
//!   100k entries (the cost must not depend on it);
//! - `envelope/{encode,decode}/{100B,4KiB,64KiB}` on random bytes, and `…-text` on
//!   compressible JSON-like text (LZ4 pays off).
//!
//! The table-level benchmarks (no client, no daemon) are `shm/benches/table.rs`, the socket
//! round trip and the per-op percentiles of the client `libclient/benches/client.rs`, and the
//! side-by-side comparison with Redis, memcached and the rest `scripts/bench`.
//!
//! Needs the daemon: `cargo build --release -p cachekitd`, then
//! `cargo bench -p cachekit-benches --bench cachekit` (about 3 minutes; filter with a name as
//! usual, e.g. `-- envelope`). Under `cargo test --benches` (criterion's test mode) the tables
//! and key sets are small.

use cachekit_benches::daemon::Daemon;
use cachekit_benches::data::{key16, value_for, Rng};
use cachekit_client::{Client, SetOptions};
use cachekit_envelope::{decode_into, encode_into, EnvelopeConfig};
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Duration;

const TTL: Duration = Duration::from_secs(3600);

/// Criterion's own rule: benchmarks run only under `--bench` without `--test`.
fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test")
}

fn cap(n: usize) -> usize {
    if test_mode() {
        n.min(500)
    } else {
        n
    }
}

/// Sets `n` keys `key16(tag, i)` to `value(i)` (two threads); returns the keys, shuffled.
fn fill(
    client: &Client,
    tag: &str,
    n: usize,
    value: impl Fn(usize) -> Vec<u8> + Sync,
) -> Vec<Vec<u8>> {
    let opts = SetOptions::new().ttl(TTL);
    let mut keys: Vec<Vec<u8>> = (0..n).map(|i| key16(tag, i)).collect();
    std::thread::scope(|s| {
        for th in 0..2 {
            let (c, keys, value, opts) = (client.clone(), &keys, &value, &opts);
            s.spawn(move || {
                for i in (th..n).step_by(2) {
                    c.set(&keys[i], value(i), opts).expect("pre-setting a key");
                }
            });
        }
    });
    let mut out = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        assert!(
            client.get_into(k, &mut out).unwrap().is_some() && out == value(i),
            "pre-set key {i} does not hit"
        );
    }
    Rng(n as u64).shuffle(&mut keys);
    keys
}

/// Benchmarks hits of `keys` (in order, cycling), checking none missed nor sent a request.
fn bench_hits(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    client: &Client,
    keys: &[Vec<u8>],
) {
    let mut i = 0;
    let mut out = Vec::with_capacity(1024);
    g.bench_function(BenchmarkId::from_parameter(id), |b| {
        let requests = client.request_count();
        b.iter(|| {
            let r = client.get_into(black_box(&keys[i]), &mut out);
            i += 1;
            if i == keys.len() {
                i = 0;
            }
            assert!(matches!(r, Ok(Some(_))), "a measured get missed");
        });
        assert_eq!(
            client.request_count(),
            requests,
            "a measured hit sent a request"
        );
    });
}

fn value_sizes(c: &mut Criterion) {
    let daemon = Daemon::start("1GiB", &[]);
    let client = daemon.client("bench");
    let mut g = c.benchmark_group("client/get_hit/value");
    g.throughput(Throughput::Elements(1));
    for (size, label) in [(16, "16B"), (100, "100B"), (4096, "4KiB"), (65536, "64KiB")] {
        let keys = fill(&client, &format!("v{size}"), cap(10_000), |i| {
            value_for(i, size)
        });
        bench_hits(&mut g, label, &client, &keys);
    }
    g.finish();

    let keys = fill(&client, "m", cap(10_000), |i| value_for(i, 100));
    let mut g = c.benchmark_group("client");
    g.throughput(Throughput::Elements(1));
    let misses: Vec<Vec<u8>> = (0..cap(10_000)).map(|i| key16("absent", i)).collect();
    let mut i = 0;
    let mut out = Vec::new();
    g.bench_function("get_miss", |b| {
        b.iter(|| {
            let r = client.get_into(black_box(&misses[i]), &mut out);
            i = (i + 1) % misses.len();
            assert!(matches!(r, Ok(None)), "a measured miss hit");
        })
    });
    g.finish();

    let mut g = c.benchmark_group("client/set");
    g.throughput(Throughput::Elements(1));
    let v = value_for(1, 100);
    let opts = SetOptions::new().ttl(TTL);
    let mut i = 0;
    g.bench_function("100B", |b| {
        b.iter(|| {
            client.set(black_box(&keys[i]), &v, &opts).expect("SET");
            i = (i + 1) % keys.len();
        })
    });
    g.finish();

    let mut g = c.benchmark_group("client/get_many");
    for n in [10usize, 100] {
        g.throughput(Throughput::Elements(n as u64));
        let mut start = 0;
        g.bench_function(BenchmarkId::from_parameter(n), |b| {
            b.iter(|| {
                let batch = &keys[start..start + n];
                start = (start + n) % (keys.len() - n);
                let vs = client.get_many(black_box(batch)).expect("get_many");
                assert!(vs.iter().all(Option::is_some), "get_many missed");
                vs
            })
        });
    }
    g.finish();

    // Invalidation through the daemon: key i tagged all/{i / 10}: `all/7` covers 10 entries,
    // `all` covers all of them.
    let n = cap(100_000);
    let inv = daemon.client("inv");
    let tagged: Vec<Vec<u8>> = (0..n).map(|i| key16("i", i)).collect();
    std::thread::scope(|s| {
        for th in 0..2 {
            let (c, tagged) = (inv.clone(), &tagged);
            s.spawn(move || {
                for i in (th..n).step_by(2) {
                    let opts = SetOptions::new().ttl(TTL).tag(format!("all/{}", i / 10));
                    c.set(&tagged[i], value_for(i, 100), &opts).unwrap();
                }
            });
        }
    });
    let mut g = c.benchmark_group("client/invalidate");
    g.throughput(Throughput::Elements(1));
    for (label, tag) in [
        ("10", "all/7"),
        (if test_mode() { "all" } else { "100k" }, "all"),
    ] {
        g.bench_function(BenchmarkId::from_parameter(label), |b| {
            b.iter(|| inv.invalidate(&[black_box(tag)]).expect("INVALIDATE"))
        });
    }
    g.finish();
    let mut out = Vec::new();
    if inv
        .stats()
        .ok()
        .and_then(|s| s.daemon_counter("invalidates"))
        .unwrap_or(0)
        > 0
    {
        assert!(inv.get_into(&tagged[n - 1], &mut out).unwrap().is_none() || n <= 10);
    }
}

fn table_sizes(c: &mut Criterion) {
    let mut g = c.benchmark_group("client/get_hit/table");
    g.throughput(Throughput::Elements(1));
    for (n, label, memory) in [
        (1_000, "1k", "64MiB"),
        (100_000, "100k", "64MiB"),
        (1_000_000, "1M", "256MiB"),
    ] {
        let daemon = Daemon::start(memory, &[]);
        let client = daemon.client("bench");
        let keys = fill(&client, "t", cap(n), |i| value_for(i, 100));
        bench_hits(&mut g, label, &client, &keys);
    }
    g.finish();
}

fn envelope(c: &mut Criterion) {
    let cfg = EnvelopeConfig::DEFAULT;
    let text = b"{\"id\": 12345, \"name\": \"cachekit\", \"tags\": [\"posts/1\", \"users/2\"]}, ";
    for (size, label, compressible) in [
        (100usize, "100B", false),
        (4096, "4KiB", false),
        (4096, "4KiB-text", true),
        (65536, "64KiB", false),
        (65536, "64KiB-text", true),
    ] {
        let value: Vec<u8> = if compressible {
            text.iter().copied().cycle().take(size).collect()
        } else {
            Rng(size as u64).bytes(size)
        };
        let mut enc = Vec::new();
        encode_into(&cfg, &value, &mut enc).expect("encode");
        let mut dec = Vec::new();
        decode_into(&cfg, &enc, &mut dec).expect("decode");
        assert_eq!(dec, value);
        let mut g = c.benchmark_group("envelope");
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_function(BenchmarkId::new("encode", label), |b| {
            let mut out = Vec::new();
            b.iter(|| encode_into(&cfg, black_box(&value), &mut out).unwrap())
        });
        g.bench_function(BenchmarkId::new("decode", label), |b| {
            b.iter(|| decode_into(&cfg, black_box(&enc), &mut dec).unwrap())
        });
        g.finish();
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args();
    envelope(&mut c);
    value_sizes(&mut c);
    table_sizes(&mut c);
    c.final_summary();
}
