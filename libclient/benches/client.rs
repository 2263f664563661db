//! End-to-end benchmarks of the Rust client against a real `cachekitd` (the performance contract:
//! §7 of the design brief, `../shared/DESIGN.md`, outside this repository), with
//! the cost of a bare Unix-socket round trip measured in the same run as the reference.
//!
//! - `client/get_hit/{16B,100B,4KiB}`: `Client::get_into` of a key present in the segment,
//!   keys taken in a precomputed random order among 10k pre-set ones per size. Every key is
//!   checked to hit (with its own bytes, from the segment) before measuring; afterwards the
//!   measured gets are checked to have all hit and `request_count()` not to have moved (a hit
//!   sends nothing to the daemon). 4 KiB values are incompressible, so they are stored raw.
//! - `client/get_miss`: a key absent from the segment, so a FETCH round trip to the daemon
//!   (which has no second tier, so it answers FETCH_MISS). Checked: every measured get missed,
//!   and each sent exactly one request.
//! - `client/set/100B`: an acknowledged SET round trip (overwrites over 10k keys).
//! - `baseline/unix_socket_rtt/64B`: 64 bytes written to a `UnixStream` and read back from an
//!   echo thread on the other end of a socketpair: the floor of any request over the socket.
//!
//! After criterion, a plain timing loop (one `Instant` pair per operation, sorted) prints
//! p50/p90/p99/p99.9 for `get_hit/100B`, `get_miss`, `set/100B` and the socket round trip,
//! next to criterion's median, and the ratio of a hit to a socket round trip. They are skipped
//! under criterion's `--profile-time` (for `perf record` of one benchmark).
//!
//! Needs the daemon binary: `cargo build --release -p cachekitd` first (or point
//! `CACHEKITD_BIN` at one; the test kit says so when it is missing or stale), then
//! `cargo bench -p cachekit-client --bench client` (about a minute). The daemon runs in a temp
//! dir of its own under a unique instance name, so it never meets a daemon already running on
//! the machine, and is killed at the end. Under
//! `cargo test --benches` (criterion's test mode) the key sets and timing loops are small.

use cachekit_client::{Client, ClientOptions, SetOptions, Source};
use cachekit_testkit::Daemon;
use criterion::{BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

const NS: &str = "bench";
/// Pre-set keys per value size.
const KEYS: usize = 10_000;
/// Value sizes of `client/get_hit`.
const SIZES: [(usize, &str); 3] = [(16, "16B"), (100, "100B"), (4096, "4KiB")];
const TTL: Duration = Duration::from_secs(3600);
/// Bytes of the socket round trip.
const RTT_BYTES: usize = 64;
/// Timed operations per percentile series (hits and round trips; misses get half).
const TIMED_OPS: usize = 200_000;
/// Key set and timing loops in criterion's test mode.
const TEST_MODE_KEYS: usize = 500;
const TEST_MODE_OPS: usize = 1_000;

/// Criterion's own rule: benchmarks run only under `--bench` without `--test`.
fn test_mode() -> bool {
    let args: Vec<String> = std::env::args().collect();
    !args.iter().any(|a| a == "--bench") || args.iter().any(|a| a == "--test")
}

/// splitmix64: reproducible keys orders and incompressible values without a dependency.
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

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A 16-byte key: `tag` tells the key sets apart.
fn key(tag: &str, i: usize) -> Vec<u8> {
    let k = format!("{tag:-<6}{i:010}");
    assert_eq!(k.len(), 16);
    k.into_bytes()
}

// ---------------------------------------------------------------------------------------------
// The daemon

/// A real `cachekitd` from the workspace test kit: a temp dir and an instance name of its own,
/// configured by its flags alone, SIGKILLed and reaped when dropped. 256 MiB holds the three
/// key sets; warnings only, so that logging costs nothing measurable.
fn start_daemon() -> Daemon {
    Daemon::start("bench-client", &["--memory", "256MiB", "--log", "warn"])
}

/// A client of the bench namespace.
fn client_of(daemon: &Daemon) -> Client {
    Client::connect(
        ClientOptions::new()
            .socket(daemon.socket())
            .namespace(NS)
            .client_name("cachekit-bench"),
    )
    .unwrap_or_else(|e| {
        panic!(
            "connecting to the bench daemon: {e}; log:\n{}",
            daemon.log()
        )
    })
}

// ---------------------------------------------------------------------------------------------
// Data

/// One key set of `client/get_hit`: every key present, with its value.
struct HitSet {
    label: &'static str,
    size: usize,
    /// Present keys, in random order.
    keys: Vec<Vec<u8>>,
}

/// Sets `n` keys of `size` random bytes, then checks each one hits from the segment with its
/// own bytes.
fn fill(client: &Client, size: usize, label: &'static str, n: usize) -> HitSet {
    let t0 = Instant::now();
    let mut rng = Rng(size as u64);
    let tag = format!("h{label}");
    let values: Vec<Vec<u8>> = (0..n).map(|_| rng.bytes(size)).collect();
    let opts = SetOptions::new().ttl(TTL);
    for (i, v) in values.iter().enumerate() {
        client
            .set(key(&tag, i), v, &opts)
            .expect("pre-setting a key");
    }
    let mut out = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let info = client
            .get_into(key(&tag, i), &mut out)
            .expect("reading a pre-set key")
            .unwrap_or_else(|| panic!("pre-set key {i} of {label} missing: evicted?"));
        assert_eq!(
            info.source,
            Source::Segment,
            "pre-set key {i} not in the segment"
        );
        assert!(out == *v, "pre-set key {i} of {label}: wrong bytes");
    }
    let mut keys: Vec<Vec<u8>> = (0..n).map(|i| key(&tag, i)).collect();
    Rng(!(size as u64)).shuffle(&mut keys);
    eprintln!(
        "{n} keys of {label} set and checked in {:.2?}",
        t0.elapsed()
    );
    HitSet { label, size, keys }
}

// ---------------------------------------------------------------------------------------------
// The socket baseline

/// A socketpair whose far end echoes every 64-byte message, from a thread of its own.
struct Echo {
    stream: UnixStream,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Echo {
    fn start() -> Echo {
        let (near, mut far) = UnixStream::pair().expect("socketpair");
        let thread = std::thread::spawn(move || {
            let mut b = [0u8; RTT_BYTES];
            while far.read_exact(&mut b).is_ok() {
                if far.write_all(&b).is_err() {
                    break;
                }
            }
        });
        Echo {
            stream: near,
            thread: Some(thread),
        }
    }

    /// One round trip: write 64 bytes, read them back.
    fn round_trip(&mut self, buf: &mut [u8; RTT_BYTES]) {
        self.stream.write_all(buf).expect("echo write");
        self.stream.read_exact(buf).expect("echo read");
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Criterion

fn criterion_config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
        .configure_from_args()
}

fn bench_get_hit(c: &mut Criterion, client: &Client, sets: &[HitSet]) {
    let mut g = c.benchmark_group("client/get_hit");
    g.throughput(Throughput::Elements(1));
    for set in sets {
        // The cursor survives across samples, so the walk never restarts on warm keys.
        let mut i = 0;
        let mut out = Vec::with_capacity(set.size);
        g.bench_function(BenchmarkId::from_parameter(set.label), |b| {
            let requests = client.request_count();
            let hits = client.local_stats().segment_hits;
            let mut ops = 0u64;
            let mut missed = 0u64;
            b.iter(|| {
                let k = &set.keys[i];
                i += 1;
                if i == set.keys.len() {
                    i = 0;
                }
                ops += 1;
                match client.get_into(black_box(k), &mut out) {
                    Ok(Some(info)) => {
                        black_box((&out, info));
                    }
                    _ => missed += 1,
                }
            });
            assert_eq!(missed, 0, "{}: a measured get missed", set.label);
            assert_eq!(
                client.request_count(),
                requests,
                "{}: a measured hit sent a request to the daemon",
                set.label
            );
            assert_eq!(
                client.local_stats().segment_hits - hits,
                ops,
                "{}: not every measured get was a segment hit",
                set.label
            );
            assert_eq!(out.len(), set.size);
        });
    }
    g.finish();
}

fn bench_get_miss(c: &mut Criterion, client: &Client, misses: &[Vec<u8>]) {
    let mut g = c.benchmark_group("client");
    g.throughput(Throughput::Elements(1));
    let mut i = 0;
    let mut out = Vec::new();
    g.bench_function("get_miss", |b| {
        let requests = client.request_count();
        let mut ops = 0u64;
        let mut hit = 0u64;
        b.iter(|| {
            let k = &misses[i];
            i += 1;
            if i == misses.len() {
                i = 0;
            }
            ops += 1;
            match client.get_into(black_box(k), &mut out) {
                Ok(None) => {}
                _ => hit += 1,
            }
        });
        assert_eq!(hit, 0, "a measured miss hit (or failed)");
        assert_eq!(
            client.request_count() - requests,
            ops,
            "a miss is one FETCH"
        );
    });
    g.finish();
}

fn bench_set(c: &mut Criterion, client: &Client, keys: &[Vec<u8>], value: &[u8]) {
    let mut g = c.benchmark_group("client/set");
    g.throughput(Throughput::Elements(1));
    let opts = SetOptions::new().ttl(TTL);
    let mut i = 0;
    let mut ran = false;
    g.bench_function(BenchmarkId::from_parameter("100B"), |b| {
        ran = true;
        b.iter(|| {
            let k = &keys[i];
            i += 1;
            if i == keys.len() {
                i = 0;
            }
            client
                .set(black_box(k), black_box(value), &opts)
                .expect("SET")
        })
    });
    g.finish();
    if !ran {
        return; // filtered out
    }
    // The last acknowledged write is served from the segment.
    let last = &keys[(i + keys.len() - 1) % keys.len()];
    let mut out = Vec::new();
    let info = client.get_into(last, &mut out).unwrap().expect("last SET");
    assert_eq!((out.as_slice(), info.source), (value, Source::Segment));
}

fn bench_socket(c: &mut Criterion, echo: &mut Echo) {
    let mut g = c.benchmark_group("baseline/unix_socket_rtt");
    g.throughput(Throughput::Elements(1));
    let mut buf = [0x5Au8; RTT_BYTES];
    g.bench_function(BenchmarkId::from_parameter("64B"), |b| {
        b.iter(|| echo.round_trip(black_box(&mut buf)))
    });
    g.finish();
    assert_eq!(buf, [0x5Au8; RTT_BYTES]);
}

// ---------------------------------------------------------------------------------------------
// Percentiles

struct Series {
    name: &'static str,
    /// Criterion's id, to look its median up.
    criterion_id: &'static str,
    /// Sorted nanoseconds per operation.
    ns: Vec<u64>,
}

impl Series {
    fn q(&self, q: f64) -> u64 {
        let i = ((self.ns.len() as f64 - 1.0) * q).round() as usize;
        self.ns[i]
    }
}

/// Times `n` single operations (after `n / 10` untimed ones), one `Instant` pair each.
fn time_ops(n: usize, mut op: impl FnMut()) -> Vec<u64> {
    for _ in 0..n / 10 {
        op();
    }
    let mut ns = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        op();
        ns.push(t.elapsed().as_nanos() as u64);
    }
    ns.sort_unstable();
    ns
}

/// Criterion's median point estimate (ns) of `id`, if this run measured it (an estimate left
/// by an earlier run, for a benchmark filtered out of this one, is not shown).
fn criterion_median(id: &str, run_start: SystemTime) -> Option<f64> {
    let root = match std::env::var_os("CRITERION_HOME") {
        Some(h) => PathBuf::from(h),
        None => match std::env::var_os("CARGO_TARGET_DIR") {
            Some(t) => PathBuf::from(t).join("criterion"),
            None => std::env::current_exe()
                .ok()?
                .parent()?
                .parent()?
                .parent()?
                .join("criterion"),
        },
    };
    // Criterion's directory names: the group with '/' made '_', then the parameter.
    let (group, param) = id.rsplit_once('/')?;
    let path = root
        .join(group.replace('/', "_"))
        .join(param)
        .join("new/estimates.json");
    if std::fs::metadata(&path).ok()?.modified().ok()? < run_start {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let median = &text[text.find("\"median\"")?..];
    let v = &median[median.find("\"point_estimate\":")? + "\"point_estimate\":".len()..];
    let end = v.find([',', '}'])?;
    v[..end].trim().parse().ok()
}

fn percentiles(fx: &mut Fixture, ops: usize, run_start: SystemTime) {
    let Fixture {
        client,
        sets,
        misses,
        set_keys,
        set_value: value,
        echo,
    } = fx;
    let hits = sets.iter().find(|s| s.size == 100).expect("a 100-byte set");
    eprintln!("\ntiming {ops} single operations per series for percentiles...");
    let overhead = time_ops(ops, || {});
    let timer_p50 = overhead[overhead.len() / 2];

    let mut series = Vec::new();

    // get_hit/100B: random keys, every one a segment hit, no request sent.
    let requests = client.request_count();
    let seg_hits = client.local_stats().segment_hits;
    let mut out = Vec::with_capacity(hits.size);
    let mut i = 0;
    let mut missed = 0u64;
    let ns = time_ops(ops, || {
        let k = &hits.keys[i];
        i = (i + 1) % hits.keys.len();
        if client
            .get_into(black_box(k), &mut out)
            .ok()
            .flatten()
            .is_none()
        {
            missed += 1;
        }
    });
    assert_eq!(missed, 0, "a timed hit missed");
    assert_eq!(
        client.request_count(),
        requests,
        "a timed hit sent a request"
    );
    let timed = (ops + ops / 10) as u64;
    assert_eq!(client.local_stats().segment_hits - seg_hits, timed);
    series.push(Series {
        name: "client/get_hit/100B",
        criterion_id: "client/get_hit/100B",
        ns,
    });

    // get_miss: one FETCH each.
    let requests = client.request_count();
    let mut i = 0;
    let mut hit = 0u64;
    let miss_ops = (ops / 2).max(1);
    let ns = time_ops(miss_ops, || {
        let k = &misses[i];
        i = (i + 1) % misses.len();
        if !matches!(client.get_into(black_box(k), &mut out), Ok(None)) {
            hit += 1;
        }
    });
    assert_eq!(hit, 0, "a timed miss hit (or failed)");
    assert_eq!(
        client.request_count() - requests,
        (miss_ops + miss_ops / 10) as u64
    );
    series.push(Series {
        name: "client/get_miss",
        criterion_id: "client/get_miss",
        ns,
    });

    // set/100B: acknowledged SETs.
    let opts = SetOptions::new().ttl(TTL);
    let mut i = 0;
    let ns = time_ops(ops, || {
        let k = &set_keys[i];
        i = (i + 1) % set_keys.len();
        client.set(black_box(k), &*value, &opts).expect("SET");
    });
    series.push(Series {
        name: "client/set/100B",
        criterion_id: "client/set/100B",
        ns,
    });

    // The socket round trip.
    let mut buf = [0x5Au8; RTT_BYTES];
    let ns = time_ops(ops, || echo.round_trip(black_box(&mut buf)));
    series.push(Series {
        name: "baseline/unix_socket_rtt/64B",
        criterion_id: "baseline/unix_socket_rtt/64B",
        ns,
    });

    let fmt = |ns: f64| {
        if ns >= 10_000.0 {
            format!("{:.1} µs", ns / 1000.0)
        } else if ns >= 1_000.0 {
            format!("{:.2} µs", ns / 1000.0)
        } else {
            format!("{ns:.0} ns")
        }
    };
    println!();
    println!(
        "Per-operation latency ({ops} timed single ops per series, {} for get_miss; \
         includes ~{timer_p50} ns of timer overhead per op)",
        miss_ops
    );
    println!(
        "{:<30} {:>16} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "", "criterion median", "p50", "p90", "p99", "p99.9", "max"
    );
    for s in &series {
        let median = criterion_median(s.criterion_id, run_start).map_or_else(|| "-".into(), fmt);
        println!(
            "{:<30} {:>16} {:>10} {:>10} {:>10} {:>10} {:>10}",
            s.name,
            median,
            fmt(s.q(0.5) as f64),
            fmt(s.q(0.9) as f64),
            fmt(s.q(0.99) as f64),
            fmt(s.q(0.999) as f64),
            fmt(*s.ns.last().unwrap() as f64),
        );
    }
    let hit = &series[0];
    let rtt = &series[3];
    println!(
        "timer overhead (empty op): p50 {}, p99 {}",
        fmt(timer_p50 as f64),
        fmt(overhead[(overhead.len() - 1) * 99 / 100] as f64)
    );
    let ratio = |a: f64, b: f64| if a > 0.0 { b / a } else { f64::NAN };
    println!(
        "socket RTT / get_hit/100B: {:.0}x at p50, {:.0}x at p99{}",
        ratio(hit.q(0.5) as f64, rtt.q(0.5) as f64),
        ratio(hit.q(0.99) as f64, rtt.q(0.99) as f64),
        match (
            criterion_median(hit.criterion_id, run_start),
            criterion_median(rtt.criterion_id, run_start)
        ) {
            (Some(h), Some(r)) => format!(", {:.0}x on criterion medians", ratio(h, r)),
            _ => String::new(),
        }
    );
}

// ---------------------------------------------------------------------------------------------

/// Everything the benchmarks use, built once against one daemon.
struct Fixture {
    client: Client,
    /// One key set per size of `client/get_hit`.
    sets: Vec<HitSet>,
    /// Absent keys, in random order: every get of one is a FETCH answered FETCH_MISS.
    misses: Vec<Vec<u8>>,
    /// Keys of `client/set/100B`, in random order.
    set_keys: Vec<Vec<u8>>,
    set_value: Vec<u8>,
    echo: Echo,
}

impl Fixture {
    fn build(daemon: &Daemon, n: usize) -> Fixture {
        let client = client_of(daemon);
        let sets = SIZES
            .iter()
            .map(|&(size, label)| fill(&client, size, label, n))
            .collect();
        let mut misses: Vec<Vec<u8>> = (0..n).map(|i| key("miss", i)).collect();
        Rng(3).shuffle(&mut misses);
        let mut out = Vec::new();
        for k in misses.iter().take(100) {
            assert!(client.get_into(k, &mut out).unwrap().is_none());
        }
        let mut set_keys: Vec<Vec<u8>> = (0..n).map(|i| key("set", i)).collect();
        Rng(4).shuffle(&mut set_keys);
        Fixture {
            client,
            sets,
            misses,
            set_keys,
            set_value: Rng(5).bytes(100),
            echo: Echo::start(),
        }
    }
}

fn main() {
    let run_start = SystemTime::now();
    let test = test_mode();
    let n = if test { TEST_MODE_KEYS } else { KEYS };
    let ops = if test { TEST_MODE_OPS } else { TIMED_OPS };

    let daemon = start_daemon();
    let mut fx = Fixture::build(&daemon, n);

    let mut c = criterion_config();
    bench_get_hit(&mut c, &fx.client, &fx.sets);
    bench_get_miss(&mut c, &fx.client, &fx.misses);
    bench_set(&mut c, &fx.client, &fx.set_keys, &fx.set_value);
    bench_socket(&mut c, &mut fx.echo);
    c.final_summary();

    // Under `--profile-time` (profiling one benchmark) the timing loops would only add noise.
    if !std::env::args().any(|a| a.starts_with("--profile-time")) {
        percentiles(&mut fx, ops, run_start);
    }

    let stats = fx.client.local_stats();
    assert_eq!(stats.segment_corrupt, 0);
    assert_eq!(
        stats.stale_heartbeat, 0,
        "the daemon's heartbeat went stale"
    );
    assert_eq!(stats.decode_errors, 0);
    // The client and the echo thread go before the daemon.
    drop(fx);
    drop(daemon);
}
