//! The Rust half of `scripts/bench`: every figure of docs/PERFORMANCE.md that Rust measures,
//! written as one JSON document.
//!
//! ```text
//! cachekit-bench run --out FILE [--quick] [--python PY --python-script PATH]
//!     env: BENCH_REDIS_PORT, BENCH_MEMCACHED_PORT (servers started by scripts/bench)
//! cachekit-bench reader SOCKET NS TAG N MILLIS     (a reader process of the scaling test)
//! cachekit-bench lease [--quick]                    (section 7 alone, JSON on stdout)
//! cachekit-bench hit [--quick]                      (the client against a HashMap at 10k and
//!                                                    1M entries, and a miss without Redis)
//! ```
//!
//! Sections, in the order they run:
//! 1. `side_by_side`: one cachekitd holding bench-hit's 10 000 keys (`hit-N`) at 16 B, 100 B,
//!    4 KiB and 64 KiB; the same keys and values in Redis and memcached and in three in-process
//!    caches. Latency of one get, in interleaved rounds: cachekit (Rust client), Redis through
//!    the redis crate (one connection, plain and pipelined ×100), memcached (a minimal text
//!    protocol client, `cachekit_benches::memcache`), HashMap, quick_cache, moka, a bare
//!    Unix-socket round trip, and a cachekit miss (one FETCH round trip). Then the Python half
//!    (`benches/python/side_by_side.py`) against the same daemon and servers.
//! 2. `value_size`: cachekit and Redis get latency against the value size (same daemon).
//! 3. `table_size`: one daemon per table size (1k, 100k, 1M entries of 100 B): hit latency;
//!    read throughput with 1 and 2 reader processes (1k and 1M); memory per entry at 1M,
//!    next to Redis and memcached holding the same 1M keys; invalidation through the daemon
//!    of tags covering 10, 1k and 100k entries (100k table).
//! 4. `invalidate_table`: `Writer::invalidate` in-process on a 1M-entry table, tags covering
//!    10, 1k, 100k and 1M entries.
//! 5. `envelope`: encode and decode of 100 B, 4 KiB, 64 KiB values.
//! 6. `hit_ratio`: the simulation of `cachekit_benches::sim`.
//! 7. `lease`: from the fill of a key's lease to the return of the 8 callers waiting for it
//!    (`cachekit_benches::lease`), next to a plain hit of the same daemon.

use cachekit_benches::daemon::{connect, Daemon};
use cachekit_benches::data::{hit_keys, hit_order, hit_values, key16, value_for, Rng};
use cachekit_benches::hitmap;
use cachekit_benches::memcache::Memcache;
use cachekit_benches::sim;
use cachekit_benches::timing::{
    loop_mean, loop_mean_cpu, median, time_ops, timer_overhead, Summary,
};
use cachekit_client::{Client, SetOptions, Source};
use cachekit_envelope::{decode_into, encode_into, EnvelopeConfig};
use cachekit_shm::{Backing, InsertOptions, InvalidateMode, Stat, TableConfig, Writer};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::hint::black_box;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const KEYS: usize = 10_000;
const SIZES: [usize; 4] = [16, 100, 4096, 65536];
const TTL: Duration = Duration::from_secs(3600);

/// How much to measure: the full run, or `--quick` (a smoke test of the whole pipeline).
#[derive(Clone, Copy)]
struct Plan {
    rounds: usize,
    /// Timed operations per round for in-memory subjects.
    fast_ops: usize,
    /// ... for subjects that cross a socket.
    slow_ops: usize,
    /// Table sizes of the table-size sweep.
    tables: [usize; 3],
    /// Seconds per reader run of the scaling test.
    reader_ms: u64,
    /// Requests of each hit-ratio trace, and its warm-up.
    trace_len: usize,
    trace_warmup: usize,
    key_space: usize,
}

const FULL: Plan = Plan {
    rounds: 3,
    fast_ops: 200_000,
    slow_ops: 20_000,
    tables: [1_000, 100_000, 1_000_000],
    reader_ms: 2_000,
    trace_len: 4_000_000,
    trace_warmup: 1_000_000,
    key_space: 1_000_000,
};

const QUICK: Plan = Plan {
    rounds: 2,
    fast_ops: 20_000,
    slow_ops: 2_000,
    tables: [1_000, 10_000, 50_000],
    reader_ms: 300,
    trace_len: 400_000,
    trace_warmup: 100_000,
    key_space: 100_000,
};

fn log(msg: impl AsRef<str>) {
    eprintln!("[cachekit-bench] {}", msg.as_ref());
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("run") => run(&args[1..]),
        Some("reader") => reader(&args[1..]),
        Some("lease") => {
            let plan = plan_of(&args);
            println!("{}", serde_json::to_string_pretty(&lease(plan)).unwrap());
        }
        Some("hit") => {
            let plan = plan_of(&args);
            println!("{}", serde_json::to_string_pretty(&hit(plan)).unwrap());
        }
        Some("ratio") => {
            let plan = plan_of(&args);
            println!(
                "{}",
                serde_json::to_string_pretty(&hit_ratio(plan)).unwrap()
            );
        }
        Some("writes") => {
            let quick = args.iter().any(|a| a == "--quick");
            let v = cachekit_benches::writes::run(
                &cachekit_benches::writes::self_exe(),
                quick,
                port("BENCH_REDIS_PORT"),
            );
            println!("{}", serde_json::to_string_pretty(&v).unwrap());
        }
        Some("write-worker") => cachekit_benches::writes::worker(&args[1..]),
        Some("encryption") => {
            let plan = plan_of(&args);
            println!(
                "{}",
                serde_json::to_string_pretty(&encryption(plan)).unwrap()
            );
        }
        _ => {
            eprintln!(
                "usage: cachekit-bench run --out FILE [--quick] [--python PY --python-script PATH]\n\
                 \x20      cachekit-bench reader SOCKET NS TAG N MILLIS\n\
                 \x20      cachekit-bench lease [--quick]\n\
                 \x20      cachekit-bench hit [--quick]\n\
                 \x20      cachekit-bench encryption [--quick]\n\
                 \x20      cachekit-bench ratio [--quick]\n\
                 \x20      cachekit-bench writes [--quick]\n\
                 \x20      cachekit-bench write-worker SOCKET set|set_many ID OPS MILLIS"
            );
            std::process::exit(2);
        }
    }
}

/// QUICK with `--quick`, else FULL.
fn plan_of(args: &[String]) -> Plan {
    if args.iter().any(|a| a == "--quick") {
        QUICK
    } else {
        FULL
    }
}

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn port(var: &str) -> Option<u16> {
    std::env::var(var).ok().and_then(|p| p.parse().ok())
}

fn run(args: &[String]) {
    let out = arg_value(args, "--out").expect("--out FILE");
    let plan = plan_of(args);
    let python = arg_value(args, "--python").zip(arg_value(args, "--python-script"));
    let redis_port = port("BENCH_REDIS_PORT");
    let mc_port = port("BENCH_MEMCACHED_PORT");
    let started = Instant::now();
    let mut doc = serde_json::Map::new();
    let timer = timer_overhead(200_000);
    doc.insert("timer".into(), timer.json());
    log(format!("clock pair: p50 {} ns", timer.p50));

    let section = |name: &str, t: Instant| {
        log(format!(
            "{name}: {:.1} s (total {:.0} s)",
            t.elapsed().as_secs_f64(),
            started.elapsed().as_secs_f64()
        ))
    };

    let t = Instant::now();
    let (sbs, vs) = side_by_side(plan, redis_port, mc_port, python.as_ref());
    doc.insert("side_by_side".into(), sbs);
    doc.insert("value_size".into(), vs);
    section("side by side and value size", t);

    let t = Instant::now();
    doc.insert("table_size".into(), table_sizes(plan, redis_port, mc_port));
    section("table size, scaling, memory, invalidation", t);

    let t = Instant::now();
    doc.insert("invalidate_table".into(), invalidate_in_process(plan));
    doc.insert("envelope".into(), envelope());
    section("in-process invalidation and envelope", t);

    let t = Instant::now();
    doc.insert("hit_ratio".into(), hit_ratio(plan));
    section("hit ratio", t);

    let t = Instant::now();
    doc.insert("lease".into(), lease(plan));
    section("fill leases", t);

    let t = Instant::now();
    doc.insert("encryption".into(), encryption(plan));
    section("encryption", t);

    let t = Instant::now();
    let quick = plan.rounds == QUICK.rounds;
    let exe = cachekit_benches::writes::self_exe();
    doc.insert(
        "writes".into(),
        cachekit_benches::writes::run(&exe, quick, redis_port),
    );
    section("writes", t);

    doc.insert(
        "plan".into(),
        json!({
            "quick": plan.rounds == QUICK.rounds,
            "rounds": plan.rounds, "fast_ops": plan.fast_ops, "slow_ops": plan.slow_ops,
            "keys": KEYS, "reader_ms": plan.reader_ms,
        }),
    );
    doc.insert("rust_secs".into(), json!(started.elapsed().as_secs_f64()));
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&Value::Object(doc)).unwrap(),
    )
    .unwrap_or_else(|e| panic!("writing {out}: {e}"));
    log(format!("wrote {out}"));
}

/// Section 8: encrypted hits (with and without the memo of opened values) beside plain ones,
/// and the AEAD's throughput.
fn encryption(plan: Plan) -> Value {
    let daemon = Daemon::start("256MiB", &[]);
    let v = cachekit_benches::crypt::hits(&daemon, 1000, plan.fast_ops);
    for row in v["hits"].as_array().into_iter().flatten() {
        log(format!(
            "hit of {} B ({} keys): plain p50 {} ns, encrypted p50 {} ns with the memo ({:.2}x), \
             {} ns without ({:.2}x)",
            row["value_bytes"],
            row["keys"],
            row["plain"]["p50_ns"],
            row["encrypted"]["p50_ns"],
            row["ratio_p50"].as_f64().unwrap_or(0.0),
            row["encrypted_no_memo"]["p50_ns"],
            row["ratio_no_memo_p50"].as_f64().unwrap_or(0.0)
        ));
        if row["value_bytes"] == 100 {
            let (memo, none) = (
                row["ratio_p50"].as_f64().unwrap_or(f64::MAX),
                row["ratio_no_memo_p50"].as_f64().unwrap_or(f64::MAX),
            );
            log(format!(
                "target (encrypted 100 B hit at most 1.5x a plain one): {} with the memo \
                 ({memo:.2}x); without it {none:.2}x",
                if memo <= 1.5 { "met" } else { "NOT met" }
            ));
        }
    }
    for row in v["aead"].as_array().into_iter().flatten() {
        log(format!(
            "AES-256-GCM {} B: seal {:.2} GB/s, open {:.2} GB/s",
            row["value_bytes"],
            row["seal_gb_per_s"].as_f64().unwrap_or(0.0),
            row["open_gb_per_s"].as_f64().unwrap_or(0.0)
        ));
    }
    v
}

/// Section 7: 8 callers wait for one key's fill, on a daemon of its own.
/// The hit rows of issue 17 alone, for measuring a change to the hit path without the whole
/// run: the client against a same-process `HashMap` at 10k entries (bench-hit's keys) and at the
/// largest table size, per-operation p50 and plain-loop mean; and a miss of a daemon without a
/// second tier (answered from the segment).
fn hit(plan: Plan) -> Value {
    let mut points = Vec::new();
    for (n, mem) in [(KEYS, "64MiB"), (plan.tables[2], "256MiB")] {
        let daemon = Daemon::start(mem, &[]);
        let c = daemon.client("h");
        let keys: Vec<Vec<u8>> = (0..n).map(|i| key16("h", i)).collect();
        let value = |i: usize| value_for(i, 100);
        let (rate, missing) = fill_tolerant(&c, &keys, &value, &SetOptions::new().ttl(TTL));
        let mut order: Vec<usize> = (0..n)
            .filter(|i| missing.binary_search(i).is_err())
            .collect();
        Rng(n as u64).shuffle(&mut order);
        log(format!("hit: {n} entries filled at {rate:.0} sets/s"));
        let r = hitmap::compare(&c, &keys, &value, &order, plan.rounds, plan.fast_ops);
        log(format!(
            "hit: {n} entries: client p50 {} ns loop {:.0} ns; HashMap p50 {} ns loop {:.0} ns; \
             ratios {:.2}x p50, {:.2}x loop",
            r.client.p50,
            r.client_loop_ns,
            r.map.p50,
            r.map_loop_ns,
            r.client.p50 / r.map.p50,
            r.client_loop_ns / r.map_loop_ns
        ));
        let mut p = r.json();
        p["entries"] = json!(n);
        if n == KEYS {
            p["miss"] = local_miss(&c, plan);
        }
        points.push(p);
    }
    json!({ "points": points })
}

/// Gets of absent keys from a daemon without a second tier: p50 and plain-loop mean, and the
/// requests they sent (none: the segment's answer is the whole cache's).
fn local_miss(c: &Client, plan: Plan) -> Value {
    let absent: Vec<Vec<u8>> = (0..KEYS).map(|i| key16("absent", i)).collect();
    let requests = c.request_count();
    let mut out = Vec::new();
    let rounds: Vec<Summary> = (0..plan.rounds)
        .map(|_| {
            let mut k = 0;
            time_ops(plan.fast_ops, || {
                assert!(c
                    .get_into(black_box(&absent[k]), &mut out)
                    .unwrap()
                    .is_none());
                k = (k + 1) % absent.len();
            })
        })
        .collect();
    let mut k = 0;
    let loop_ns = loop_mean_cpu(plan.fast_ops, || {
        let _ = black_box(c.get_into(black_box(&absent[k]), &mut out));
        k = (k + 1) % absent.len();
    });
    let sent = c.request_count() - requests;
    let s = Summary::median_of(&rounds);
    log(format!(
        "miss without a second tier: p50 {} ns, loop {loop_ns:.0} ns, {sent} requests",
        s.p50
    ));
    json!({ "get": s.json(), "loop_mean_ns": loop_ns, "requests": sent,
            "gets": plan.rounds * (plan.fast_ops + plan.fast_ops / 10) + plan.fast_ops })
}

fn lease(plan: Plan) -> Value {
    const WAITERS: usize = 8;
    let daemon = Daemon::start("64MiB", &[]);
    let rounds = if plan.rounds == QUICK.rounds { 30 } else { 300 };
    let v = cachekit_benches::lease::fill_to_waiters(&daemon, WAITERS, rounds, plan.slow_ops);
    log(format!(
        "fill to {WAITERS} waiters: each p50 {} ns, all p50 {} ns p99 {} ns; hit p50 {} ns",
        v["each_waiter"]["p50_ns"],
        v["all_waiters"]["p50_ns"],
        v["all_waiters"]["p99_ns"],
        v["hit"]["p50_ns"]
    ));
    v
}

// ---------------------------------------------------------------------------------------------
// Filling

/// Sets `keys[i] = values(i)` through `client` on two threads, then checks that every key hits
/// from the segment with its own bytes. Returns the sets per second.
fn fill(
    client: &Client,
    keys: &[Vec<u8>],
    value: &(dyn Fn(usize) -> Vec<u8> + Sync),
    opts: &SetOptions,
) -> f64 {
    let (rate, missing) = fill_tolerant(client, keys, value, opts);
    assert!(missing.is_empty(), "pre-set keys missed: {missing:?}");
    rate
}

/// [`fill`] that accepts keys the table dropped (a full 8-slot bucket replaces its oldest
/// entry): returns the sets per second and the indices of the keys that do not hit. A key
/// that hits must hit from the segment with its own bytes.
fn fill_tolerant(
    client: &Client,
    keys: &[Vec<u8>],
    value: &(dyn Fn(usize) -> Vec<u8> + Sync),
    opts: &SetOptions,
) -> (f64, Vec<usize>) {
    let t = Instant::now();
    let threads = 2;
    std::thread::scope(|s| {
        for th in 0..threads {
            let c = client.clone();
            s.spawn(move || {
                for i in (th..keys.len()).step_by(threads) {
                    c.set(&keys[i], value(i), opts).expect("pre-setting a key");
                }
            });
        }
    });
    let rate = keys.len() as f64 / t.elapsed().as_secs_f64();
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        match client.get_into(k, &mut out).expect("reading a pre-set key") {
            Some(info) => assert!(
                info.source == Source::Segment && out == value(i),
                "pre-set key {i} does not hit from the segment with its value"
            ),
            None => missing.push(i),
        }
    }
    (rate, missing)
}

/// Times gets of `keys` in `order` through `client`, checking that each one hits.
fn time_client_gets(client: &Client, keys: &[Vec<u8>], order: &[usize], ops: usize) -> Summary {
    let mut out = Vec::with_capacity(1024);
    let mut k = 0;
    let mut missed = 0u64;
    let requests = client.request_count();
    let s = time_ops(ops, || {
        if !matches!(
            client.get_into(black_box(&keys[order[k]]), &mut out),
            Ok(Some(_))
        ) {
            missed += 1;
        }
        k += 1;
        if k == order.len() {
            k = 0;
        }
    });
    assert_eq!(missed, 0, "timed gets missed");
    assert_eq!(
        client.request_count(),
        requests,
        "a timed hit sent a request to the daemon"
    );
    s
}

/// Results of one subject over the rounds.
struct Subject {
    id: &'static str,
    label: String,
    group: &'static str,
    rounds: Vec<Summary>,
    /// Operations per timed unit (a pipeline of 100 GETs is one timed unit).
    batch: usize,
    note: &'static str,
}

impl Subject {
    fn new(id: &'static str, group: &'static str, label: &str, note: &'static str) -> Subject {
        Subject {
            id,
            label: label.to_string(),
            group,
            rounds: Vec::new(),
            batch: 1,
            note,
        }
    }

    fn json(&self) -> Value {
        let m = Summary::median_of(&self.rounds).per_op(self.batch);
        let mut v = m.json();
        let o = v.as_object_mut().unwrap();
        o.insert("id".into(), json!(self.id));
        o.insert("label".into(), json!(self.label));
        o.insert("group".into(), json!(self.group));
        o.insert("lang".into(), json!("rust"));
        o.insert("batch".into(), json!(self.batch));
        o.insert("note".into(), json!(self.note));
        o.insert(
            "p50_rounds_ns".into(),
            json!(self
                .rounds
                .iter()
                .map(|r| r.p50 / self.batch as f64)
                .collect::<Vec<_>>()),
        );
        v
    }
}

// ---------------------------------------------------------------------------------------------
// 1 and 2: side by side, value size

/// A socketpair with an echo thread on the far end: the floor of any request over a socket.
struct Echo {
    stream: UnixStream,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Echo {
    fn start() -> Echo {
        let (a, mut b) = UnixStream::pair().expect("socketpair");
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while b.read_exact(&mut buf).is_ok() {
                if b.write_all(&buf).is_err() {
                    break;
                }
            }
        });
        Echo {
            stream: a,
            thread: Some(thread),
        }
    }

    fn round_trip(&mut self, buf: &mut [u8; 64]) {
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

fn redis_key(size: usize, key: &[u8]) -> Vec<u8> {
    if size == 100 {
        key.to_vec()
    } else {
        let mut k = format!("v{size}:").into_bytes();
        k.extend_from_slice(key);
        k
    }
}

fn side_by_side(
    plan: Plan,
    redis_port: Option<u16>,
    mc_port: Option<u16>,
    python: Option<&(String, String)>,
) -> (Value, Value) {
    // 10k keys at each size: 64 KiB × 10k = 655 MB of the arena for the largest.
    let daemon = Daemon::start("1GiB", &[]);
    let keys = hit_keys(KEYS);
    let opts = SetOptions::new().ttl(TTL);
    let mut clients = Vec::new();
    let mut values = Vec::new();
    for size in SIZES {
        let c = daemon.client(&format!("v{size}"));
        let vals = hit_values(KEYS, size);
        let rate = fill(&c, &keys, &|i| vals[i].clone(), &opts);
        log(format!(
            "cachekit: {KEYS} keys of {size} B set ({rate:.0} sets/s)"
        ));
        clients.push(c);
        values.push(vals);
    }
    let v100 = &values[1];
    let c100 = &clients[1];
    let order = hit_order(KEYS, 100);
    let order_of: Vec<Vec<usize>> = SIZES.iter().map(|&s| hit_order(KEYS, s)).collect();

    // Redis: the same keys and values (sizes other than 100 B under a prefix).
    let mut redis = redis_port.map(|p| {
        let client = redis::Client::open(format!("redis://127.0.0.1:{p}/")).expect("redis url");
        let mut con = client.get_connection().expect("connecting to redis-server");
        for (si, &size) in SIZES.iter().enumerate() {
            for chunk in (0..KEYS).collect::<Vec<_>>().chunks(500) {
                let mut pipe = redis::pipe();
                for &i in chunk {
                    pipe.cmd("SET")
                        .arg(redis_key(size, &keys[i]))
                        .arg(&values[si][i])
                        .ignore();
                }
                pipe.query::<()>(&mut con).expect("redis SET");
            }
        }
        for i in 0..KEYS {
            let v: Option<Vec<u8>> = redis::cmd("GET").arg(&keys[i]).query(&mut con).unwrap();
            assert_eq!(v.as_deref(), Some(&v100[i][..]), "redis value of key {i}");
        }
        con
    });
    if redis.is_none() {
        log("no BENCH_REDIS_PORT: Redis left out");
    }
    let mut mc = mc_port.map(|p| {
        let mut m = Memcache::connect(&format!("127.0.0.1:{p}")).expect("connecting to memcached");
        m.set_many(keys.iter().zip(v100).map(|(k, v)| (&k[..], &v[..])))
            .expect("memcached set");
        let mut out = Vec::new();
        for i in 0..KEYS {
            assert!(m.get_into(&keys[i], &mut out).unwrap(), "memcached key {i}");
            assert_eq!(out, v100[i]);
        }
        m
    });
    if mc.is_none() {
        log("no BENCH_MEMCACHED_PORT: memcached left out");
    }

    // In-process caches holding the same keys and values.
    let map: HashMap<Vec<u8>, Vec<u8>> = keys.iter().cloned().zip(v100.iter().cloned()).collect();
    let qc: quick_cache::sync::Cache<Vec<u8>, Arc<[u8]>> = quick_cache::sync::Cache::new(KEYS * 2);
    let moka: moka::sync::Cache<Vec<u8>, Arc<[u8]>> = moka::sync::Cache::builder()
        .max_capacity(KEYS as u64 * 2)
        .build();
    for (k, v) in keys.iter().zip(v100) {
        qc.insert(k.clone(), Arc::from(&v[..]));
        moka.insert(k.clone(), Arc::from(&v[..]));
    }
    moka.run_pending_tasks();
    for (i, k) in keys.iter().enumerate() {
        assert!(
            qc.get(k).is_some() && moka.get(k).is_some(),
            "in-process key {i}"
        );
    }
    let misses: Vec<Vec<u8>> = (0..KEYS)
        .map(|i| format!("miss-{i}").into_bytes())
        .collect();
    let mut echo = Echo::start();
    // A daemon with Redis as its second tier: its misses are FETCH round trips.
    let tiered_daemon = redis_port.map(|p| {
        let url = format!("redis://127.0.0.1:{p}/");
        Daemon::start("64MiB", &["--redis-url", &url])
    });
    let tiered = tiered_daemon.as_ref().map(|d| d.client("tiered"));

    let mut subjects = vec![
        Subject::new(
            "cachekit",
            "cachekit",
            "cachekit get_into (Rust client)",
            "lock-free read of the shared segment; no syscall",
        ),
        Subject::new(
            "redis",
            "redis",
            "Redis GET (redis crate, one connection)",
            "loopback TCP",
        ),
        Subject::new(
            "redis_pipe",
            "redis",
            "Redis GET (redis crate, pipelined ×100, per GET)",
            "one round trip per 100 GETs",
        ),
        Subject::new(
            "memcached",
            "memcached",
            "memcached GET (Rust text protocol)",
            "loopback TCP, minimal client",
        ),
        Subject::new(
            "hashmap",
            "in-process",
            "std HashMap get + copy (one process only)",
            "private to the process",
        ),
        Subject::new(
            "quick_cache",
            "in-process",
            "quick_cache::sync get + copy (one process only)",
            "private to the process",
        ),
        Subject::new(
            "moka",
            "in-process",
            "moka::sync get + copy (one process only)",
            "private to the process",
        ),
        Subject::new(
            "unix_rtt",
            "baseline",
            "bare Unix-socket round trip (64 B)",
            "write + read on a socketpair, echo thread",
        ),
        Subject::new(
            "cachekit_miss_local",
            "cachekit",
            "cachekit miss, no second tier (answered from the segment)",
            "a daemon without Redis: the segment is the whole cache",
        ),
        Subject::new(
            "cachekit_miss",
            "cachekit",
            "cachekit miss, with Redis (FETCH round trip to cachekitd)",
            "what a miss with a second tier, or a write, pays",
        ),
    ];
    subjects[2].batch = 100;
    let mut vsizes: Vec<(Subject, Subject)> = SIZES
        .iter()
        .map(|&s| {
            let label = format!("{s}");
            (
                Subject::new("cachekit", "value_size", &label, ""),
                Subject::new("redis", "value_size", &label, ""),
            )
        })
        .collect();

    let mut loop_means = Vec::new();
    for round in 0..plan.rounds {
        log(format!(
            "side by side: round {} of {}",
            round + 1,
            plan.rounds
        ));
        subjects[0]
            .rounds
            .push(time_client_gets(c100, &keys, &order, plan.fast_ops));
        let mut k = 0;
        let mut out = Vec::with_capacity(128);
        loop_means.push(loop_mean(plan.fast_ops, || {
            let _ = c100.get_into(black_box(&keys[order[k]]), &mut out);
            k = (k + 1) % KEYS;
        }));
        if let Some(con) = redis.as_mut() {
            let mut k = 0;
            subjects[1].rounds.push(time_ops(plan.slow_ops, || {
                let v: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(&keys[order[k]])
                    .query(con)
                    .expect("redis GET");
                assert!(v.is_some());
                k = (k + 1) % KEYS;
            }));
            let mut k = 0;
            subjects[2].rounds.push(time_ops(plan.slow_ops / 20, || {
                let mut p = redis::pipe();
                for _ in 0..100 {
                    p.cmd("GET").arg(&keys[order[k]]);
                    k = (k + 1) % KEYS;
                }
                let v: Vec<Option<Vec<u8>>> = p.query(con).expect("redis pipeline");
                assert!(v.len() == 100 && v[99].is_some());
            }));
        }
        if let Some(m) = mc.as_mut() {
            let mut k = 0;
            let mut out = Vec::new();
            subjects[3].rounds.push(time_ops(plan.slow_ops, || {
                assert!(m
                    .get_into(&keys[order[k]], &mut out)
                    .expect("memcached get"));
                k = (k + 1) % KEYS;
            }));
        }
        let mut out: Vec<u8> = Vec::with_capacity(128);
        let mut k = 0;
        subjects[4].rounds.push(time_ops(plan.fast_ops, || {
            let v = map.get(black_box(&keys[order[k]])).expect("map");
            out.clear();
            out.extend_from_slice(v);
            k = (k + 1) % KEYS;
        }));
        let mut k = 0;
        subjects[5].rounds.push(time_ops(plan.fast_ops, || {
            let v = qc.get(black_box(&keys[order[k]])).expect("quick_cache");
            out.clear();
            out.extend_from_slice(&v);
            k = (k + 1) % KEYS;
        }));
        let mut k = 0;
        subjects[6].rounds.push(time_ops(plan.fast_ops, || {
            let v = moka.get(black_box(&keys[order[k]])).expect("moka");
            out.clear();
            out.extend_from_slice(&v);
            k = (k + 1) % KEYS;
        }));
        let mut buf = [0x5Au8; 64];
        subjects[7]
            .rounds
            .push(time_ops(plan.slow_ops, || echo.round_trip(&mut buf)));
        let mut k = 0;
        let requests = c100.request_count();
        subjects[8].rounds.push(time_ops(plan.fast_ops, || {
            assert!(c100.get_into(&misses[k], &mut out).unwrap().is_none());
            k = (k + 1) % KEYS;
        }));
        assert_eq!(
            c100.request_count(),
            requests,
            "a miss without Redis sent a request"
        );
        if let Some(c) = &tiered {
            let mut k = 0;
            let requests = c.request_count();
            subjects[9].rounds.push(time_ops(plan.slow_ops, || {
                assert!(c.get_into(&misses[k], &mut out).unwrap().is_none());
                k = (k + 1) % KEYS;
            }));
            assert!(c.request_count() > requests);
        }

        // Value sizes: cachekit and Redis.
        for (si, &size) in SIZES.iter().enumerate() {
            let ops = if size >= 65536 {
                plan.fast_ops / 4
            } else {
                plan.fast_ops
            };
            vsizes[si]
                .0
                .rounds
                .push(time_client_gets(&clients[si], &keys, &order_of[si], ops));
            if let Some(con) = redis.as_mut() {
                let rkeys: Vec<Vec<u8>> = keys.iter().map(|k| redis_key(size, k)).collect();
                let mut k = 0;
                vsizes[si].1.rounds.push(time_ops(plan.slow_ops / 2, || {
                    let v: Option<Vec<u8>> = redis::cmd("GET")
                        .arg(&rkeys[order_of[si][k]])
                        .query(con)
                        .expect("redis GET");
                    assert_eq!(v.map(|v| v.len()), Some(size));
                    k = (k + 1) % KEYS;
                }));
            }
        }
    }
    let loop_ns = median(&loop_means);
    log("side by side: against a same-process HashMap");
    let vs_map = hitmap::compare(
        c100,
        &keys,
        &|i| v100[i].clone(),
        &order,
        plan.rounds,
        plan.fast_ops,
    );

    // The Python half, against the same daemon, Redis and memcached.
    let py = python.map(|(py, script)| {
        log("side by side: Python");
        let mut cmd = Command::new(py);
        cmd.arg(script)
            .arg("--socket")
            .arg(daemon.socket())
            .args(["--ns", "v100", "--keys", &KEYS.to_string()])
            .args(["--rounds", &plan.rounds.to_string()])
            .args(["--ops", &(plan.fast_ops / 4).to_string()])
            .args(["--slow-ops", &(plan.slow_ops / 2).to_string()]);
        if let Some(p) = redis_port {
            cmd.args(["--redis-port", &p.to_string()]);
        }
        if let Some(p) = mc_port {
            cmd.args(["--memcached-port", &p.to_string()]);
        }
        let out = cmd
            .stderr(Stdio::inherit())
            .output()
            .expect("running the Python side");
        assert!(out.status.success(), "the Python side failed");
        serde_json::from_slice::<Value>(&out.stdout).expect("the Python side's JSON")
    });

    let stats = c100.stats().expect("STATS");
    assert_eq!(c100.local_stats().segment_corrupt, 0);
    let sbs = json!({
        "keys": KEYS,
        "value_bytes": 100,
        "rust": subjects.iter().filter(|s| !s.rounds.is_empty()).map(Subject::json).collect::<Vec<_>>(),
        "cachekit_loop_mean_ns": loop_ns,
        "hit_vs_map": vs_map.json(),
        "python": py,
        "daemon_memory": daemon.memory,
        "daemon_live_entries": stats.daemon_counter("table_live_entries"),
    });
    let vs: Vec<Value> = SIZES
        .iter()
        .zip(&vsizes)
        .map(|(&size, (c, r))| {
            json!({
                "value_bytes": size,
                "cachekit": Summary::median_of(&c.rounds).json(),
                "redis": (!r.rounds.is_empty()).then(|| Summary::median_of(&r.rounds).json()),
            })
        })
        .collect();
    (sbs, json!({ "keys": KEYS, "points": vs }))
}

// ---------------------------------------------------------------------------------------------
// 3: table size, scaling, memory, invalidation through the daemon

/// One reader process of the scaling test: attaches, reads every key once, says `ready`,
/// waits for a line on stdin, then reads keys in random order for MILLIS and prints
/// `ops COUNT NANOS`.
fn reader(args: &[String]) {
    let [socket, ns, tag, n, ms] = args else {
        panic!("reader SOCKET NS TAG N MILLIS");
    };
    let n: usize = n.parse().expect("N");
    let ms: u64 = ms.parse().expect("MILLIS");
    let client = connect(Path::new(socket), ns).expect("connecting");
    let keys: Vec<Vec<u8>> = (0..n).map(|i| key16(tag, i)).collect();
    // Keys the table dropped at fill time (full buckets, at most a few) are left out.
    let mut out = Vec::with_capacity(128);
    let mut order: Vec<usize> = (0..n)
        .filter(|&i| client.get_into(&keys[i], &mut out).unwrap().is_some())
        .collect();
    assert!(
        order.len() * 1000 >= n * 999,
        "reader: too many keys missing"
    );
    let n = order.len();
    Rng(std::process::id() as u64).shuffle(&mut order);
    println!("ready");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let cpu0 = cpu_time();
    let start = Instant::now();
    let deadline = Duration::from_millis(ms);
    let mut ops = 0u64;
    let mut k = 0;
    let mut missed = 0u64;
    loop {
        for _ in 0..256 {
            if client
                .get_into(&keys[order[k]], &mut out)
                .ok()
                .flatten()
                .is_none()
            {
                missed += 1;
            }
            k += 1;
            if k == n {
                k = 0;
            }
        }
        ops += 256;
        if start.elapsed() >= deadline {
            break;
        }
    }
    let ns = start.elapsed().as_nanos();
    let cpu_ns = cpu_time().saturating_sub(cpu0).as_nanos();
    assert_eq!(missed, 0, "reader: timed gets missed");
    println!("ops {ops} {ns} {cpu_ns}");
}

/// CPU time of this process so far.
fn cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// What `procs` reader processes running at once achieved.
#[derive(Clone, Copy, Default)]
struct Throughput {
    /// Gets per second of wall-clock time, all readers together.
    ops_per_s: f64,
    /// Gets per CPU-second the readers actually got, all together.
    ops_per_cpu_s: f64,
    /// CPU-seconds the readers got per second, all together (2.0 = two whole cores).
    cpus: f64,
}

/// Total gets per second of `procs` reader processes running at once.
fn readers_throughput(socket: &Path, tag: &str, n: usize, procs: usize, ms: u64) -> Throughput {
    let exe = std::env::current_exe().expect("own executable");
    let mut children: Vec<_> = (0..procs)
        .map(|_| {
            Command::new(&exe)
                .arg("reader")
                .arg(socket)
                .args(["t", tag, &n.to_string(), &ms.to_string()])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("spawning a reader")
        })
        .collect();
    let mut outs: Vec<_> = children
        .iter_mut()
        .map(|c| BufReader::new(c.stdout.take().unwrap()))
        .collect();
    for o in &mut outs {
        let mut l = String::new();
        o.read_line(&mut l).unwrap();
        assert_eq!(l.trim(), "ready", "reader did not get ready");
    }
    for c in &mut children {
        c.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    }
    let mut t = Throughput::default();
    let (mut all_ops, mut all_cpu) = (0.0, 0.0);
    for (c, o) in children.iter_mut().zip(&mut outs) {
        let mut l = String::new();
        o.read_line(&mut l).unwrap();
        let f: Vec<&str> = l.split_whitespace().collect();
        assert_eq!(f.first(), Some(&"ops"), "reader said {l:?}");
        let ops: f64 = f[1].parse().unwrap();
        let secs = f[2].parse::<f64>().unwrap() / 1e9;
        let cpu = f[3].parse::<f64>().unwrap() / 1e9;
        t.ops_per_s += ops / secs;
        t.cpus += cpu / secs;
        all_ops += ops;
        all_cpu += cpu;
        assert!(c.wait().unwrap().success(), "a reader failed");
    }
    t.ops_per_cpu_s = all_ops / all_cpu;
    t
}

/// Read throughput of 1 and then 2 reader processes, alternated over the rounds (one more
/// round than the latency series: the runs are short).
fn scaling(socket: &Path, n: usize, plan: Plan) -> Value {
    let mut one = Vec::new();
    let mut two = Vec::new();
    // A round is "on two cores" when one reader had a whole core and two readers nearly two:
    // what the contract measures. While other processes hold a core, up to 4 more rounds are
    // run to get at least 3 such rounds; every round is reported.
    let full = |a: &Throughput, b: &Throughput| a.cpus >= 0.9 && b.cpus >= 1.8;
    let mut rounds = 0;
    while rounds < plan.rounds + 2
        || (rounds < plan.rounds + 6
            && one.iter().zip(&two).filter(|(a, b)| full(a, b)).count() < 3)
    {
        one.push(readers_throughput(socket, "t", n, 1, plan.reader_ms));
        two.push(readers_throughput(socket, "t", n, 2, plan.reader_ms));
        rounds += 1;
    }
    let m =
        |v: &[Throughput], f: fn(&Throughput) -> f64| median(&v.iter().map(f).collect::<Vec<_>>());
    let (m1, m2) = (m(&one, |t| t.ops_per_s), m(&two, |t| t.ops_per_s));
    let (c1, c2) = (m(&one, |t| t.ops_per_cpu_s), m(&two, |t| t.ops_per_cpu_s));
    let (u1, u2) = (m(&one, |t| t.cpus), m(&two, |t| t.cpus));
    // Each round's own ratio (the two runs of a round are seconds apart).
    let round_ratios: Vec<f64> = one
        .iter()
        .zip(&two)
        .map(|(a, b)| b.ops_per_s / a.ops_per_s)
        .collect();
    let full_ratios: Vec<f64> = one
        .iter()
        .zip(&two)
        .filter(|(a, b)| full(a, b))
        .map(|(a, b)| b.ops_per_s / a.ops_per_s)
        .collect();
    let full_ratio = (!full_ratios.is_empty()).then(|| median(&full_ratios));
    log(format!(
        "scaling at {n} entries: 1 reader {m1:.0}/s ({u1:.2} CPUs), 2 readers {m2:.0}/s ({u2:.2} CPUs): \
         {:.2}x; per CPU-second {:.2}x; on two cores {:?} ({} of {rounds} rounds)",
        m2 / m1,
        2.0 * c2 / c1,
        full_ratio,
        full_ratios.len()
    ));
    json!({
        "entries": n, "millis": plan.reader_ms, "rounds": rounds,
        "one_reader_ops_per_s": m1, "two_readers_ops_per_s": m2, "ratio": m2 / m1,
        "round_ratios": round_ratios, "median_round_ratio": median(&round_ratios),
        "two_core_rounds": full_ratios.len(), "two_core_ratio": full_ratio,
        "one_reader_cpus": u1, "two_readers_cpus": u2,
        "one_reader_ops_per_cpu_s": c1, "two_readers_ops_per_cpu_s": c2,
        // What two readers would do with two whole cores, from what each CPU-second gave.
        "cpu_normalised_ratio": 2.0 * c2 / c1,
        "one_rounds": one.iter().map(|t| t.ops_per_s).collect::<Vec<_>>(),
        "two_rounds": two.iter().map(|t| t.ops_per_s).collect::<Vec<_>>(),
        "one_rounds_cpus": one.iter().map(|t| t.cpus).collect::<Vec<_>>(),
        "two_rounds_cpus": two.iter().map(|t| t.cpus).collect::<Vec<_>>(),
    })
}

/// VmRSS of a process, bytes.
fn rss(pid: u64) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|kib| kib * 1024)
}

/// Redis and memcached holding the same 1M keys of 100 B: memory per key.
fn competitor_memory(n: usize, redis_port: Option<u16>, mc_port: Option<u16>) -> Value {
    let mut out = serde_json::Map::new();
    if let Some(p) = redis_port {
        let client = redis::Client::open(format!("redis://127.0.0.1:{p}/")).unwrap();
        let mut con = client.get_connection().unwrap();
        let info = |con: &mut redis::Connection, field: &str| -> u64 {
            let s: String = redis::cmd("INFO").arg("memory").query(con).unwrap();
            s.lines()
                .find_map(|l| l.strip_prefix(&format!("{field}:")))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let pid: u64 = {
            let s: String = redis::cmd("INFO").arg("server").query(&mut con).unwrap();
            s.lines()
                .find_map(|l| l.strip_prefix("process_id:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0)
        };
        let (used0, rss0) = (info(&mut con, "used_memory"), rss(pid).unwrap_or(0));
        let t = Instant::now();
        for start in (0..n).step_by(1000) {
            let mut pipe = redis::pipe();
            for i in start..(start + 1000).min(n) {
                pipe.cmd("SET")
                    .arg(key16("t", i))
                    .arg(value_for(i, 100))
                    .ignore();
            }
            pipe.query::<()>(&mut con).unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        let keys: u64 = redis::cmd("DBSIZE").query(&mut con).unwrap();
        let (used1, rss1) = (info(&mut con, "used_memory"), rss(pid).unwrap_or(0));
        out.insert(
            "redis".into(),
            json!({
                "keys": keys, "used_memory_delta": used1 - used0,
                "bytes_per_key": (used1 - used0) as f64 / n as f64,
                "rss_delta": rss1.saturating_sub(rss0),
                "rss_bytes_per_key": rss1.saturating_sub(rss0) as f64 / n as f64,
                "load_secs": secs,
            }),
        );
        let _: () = redis::cmd("FLUSHALL").query(&mut con).unwrap();
    }
    if let Some(p) = mc_port {
        let mut m = Memcache::connect(&format!("127.0.0.1:{p}")).unwrap();
        let stat = |m: &mut Memcache, arg: &str, name: &str| -> u64 {
            m.stats_of(arg)
                .unwrap()
                .into_iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| v.parse().ok())
                .unwrap_or(0)
        };
        let pid = stat(&mut m, "", "pid");
        let rss0 = rss(pid).unwrap_or(0);
        let (bytes0, malloced0) = (
            stat(&mut m, "", "bytes"),
            stat(&mut m, "slabs", "total_malloced"),
        );
        let keys: Vec<Vec<u8>> = (0..n).map(|i| key16("t", i)).collect();
        let vals: Vec<Vec<u8>> = (0..n).map(|i| value_for(i, 100)).collect();
        m.set_many(keys.iter().zip(&vals).map(|(k, v)| (&k[..], &v[..])))
            .unwrap();
        let items = stat(&mut m, "", "curr_items");
        let (bytes1, malloced1) = (
            stat(&mut m, "", "bytes"),
            stat(&mut m, "slabs", "total_malloced"),
        );
        let rss1 = rss(pid).unwrap_or(0);
        out.insert(
            "memcached".into(),
            json!({
                "items": items, "bytes_delta": bytes1 - bytes0,
                "bytes_per_key": (bytes1 - bytes0) as f64 / n as f64,
                "total_malloced_delta": malloced1.saturating_sub(malloced0),
                "malloced_bytes_per_key": malloced1.saturating_sub(malloced0) as f64 / n as f64,
                "rss_delta": rss1.saturating_sub(rss0),
                "rss_bytes_per_key": rss1.saturating_sub(rss0) as f64 / n as f64,
            }),
        );
        m.flush_all().unwrap();
    }
    Value::Object(out)
}

/// Invalidation through the daemon: tags covering 10, 1 000 and `n` entries of a namespace.
fn daemon_invalidation(daemon: &Daemon, n: usize, plan: Plan) -> Value {
    let c = daemon.client("inv");
    // Key i is tagged all/{i / 1000}/{(i / 10) % 100}: `all` covers n entries, `all/3` 1 000,
    // `all/3/7` 10.
    let keys: Vec<Vec<u8>> = (0..n).map(|i| key16("i", i)).collect();
    let t = Instant::now();
    std::thread::scope(|s| {
        for th in 0..2 {
            let c = c.clone();
            let keys = &keys;
            s.spawn(move || {
                for i in (th..n).step_by(2) {
                    let opts = SetOptions::new().ttl(TTL).tag(format!(
                        "all/{}/{}",
                        i / 1000,
                        (i / 10) % 100
                    ));
                    c.set(&keys[i], value_for(i, 100), &opts).unwrap();
                }
            });
        }
    });
    log(format!(
        "{n} tagged entries set in {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    let mut out = Vec::new();
    let live =
        |c: &Client, i: usize, out: &mut Vec<u8>| c.get_into(&keys[i], out).unwrap().is_some();
    assert!(live(&c, 0, &mut out) && live(&c, n - 1, &mut out));
    let cases: [(&str, String, usize); 3] = [
        ("10", "all/1/2".into(), 10),
        ("1k", "all/2".into(), 1000),
        ("all", "all".into(), n),
    ];
    let mut res = Vec::new();
    let reps = (plan.slow_ops / 10).max(200);
    // The first call of each finds the entries alive (one sample each, small to large). The
    // repeats bump the same counters again; they are interleaved (10, 1k, all, 10, ...) so
    // that whatever else the machine does at a moment lands on every case alike.
    let firsts: Vec<f64> = cases
        .iter()
        .map(|(_, tag, _)| {
            let t = Instant::now();
            c.invalidate(&[tag]).unwrap();
            t.elapsed().as_nanos() as f64
        })
        .collect();
    let mut samples: Vec<Vec<u64>> = vec![Vec::with_capacity(reps); cases.len()];
    for _ in 0..reps {
        for (j, (_, tag, _)) in cases.iter().enumerate() {
            let t = Instant::now();
            c.invalidate(&[tag]).unwrap();
            samples[j].push(t.elapsed().as_nanos() as u64);
        }
    }
    for (j, (label, tag, covered)) in cases.iter().enumerate() {
        let s = Summary::of(std::mem::take(&mut samples[j]));
        res.push(json!({
            "label": label, "tag": tag, "covered": covered, "first_ns": firsts[j],
            "repeat": s.json(),
        }));
    }
    // Everything covered is gone.
    for i in [0, 15, 2500, n - 1] {
        assert!(!live(&c, i, &mut out), "key {i} survived its invalidation");
    }
    json!({ "entries": n, "cases": res })
}

fn table_sizes(plan: Plan, redis_port: Option<u16>, mc_port: Option<u16>) -> Value {
    let mut points = Vec::new();
    let mut scalings = Vec::new();
    let mut memory = Value::Null;
    let mut inv = Value::Null;
    for &n in &plan.tables {
        let largest = n == plan.tables[2];
        let mem = if largest { "256MiB" } else { "64MiB" };
        let daemon = Daemon::start(mem, &[]);
        let c = daemon.client("t");
        let keys: Vec<Vec<u8>> = (0..n).map(|i| key16("t", i)).collect();
        let (rate, missing) = fill_tolerant(
            &c,
            &keys,
            &|i| value_for(i, 100),
            &SetOptions::new().ttl(TTL),
        );
        {
            let stats = c.stats().expect("STATS");
            let counter = |name: &str| stats.daemon_counter(name).unwrap_or(0);
            log(format!(
                "table of {n}: filled at {rate:.0} sets/s; {} keys missing (bucket evictions {}, \
                 evictions {})",
                missing.len(),
                counter("table_bucket_evictions"),
                counter("table_evictions")
            ));
        }
        assert!(
            missing.len() * 1000 <= n,
            "{} of {n} keys missing after the fill",
            missing.len()
        );
        // Only keys that hit are timed (a missing key would be a FETCH round trip).
        let mut order: Vec<usize> = (0..n)
            .filter(|i| missing.binary_search(i).is_err())
            .collect();
        Rng(n as u64).shuffle(&mut order);
        let vs_map = hitmap::compare(
            &c,
            &keys,
            &|i| value_for(i, 100),
            &order,
            plan.rounds,
            plan.fast_ops,
        );
        let table = table_only(n, &keys, &order, plan);
        // The largest table again, with keys drawn from Zipf(0.99) (popular keys stay in the
        // CPU caches, as in most real workloads) instead of uniformly.
        let zipf = largest.then(|| {
            let z = sim::Zipf::new(order.len(), 0.99);
            let mut rng = Rng(99);
            let zorder: Vec<usize> = (0..plan.fast_ops + plan.fast_ops / 10)
                .map(|_| order[z.sample(&mut rng)])
                .collect();
            let rounds: Vec<Summary> = (0..plan.rounds)
                .map(|_| time_client_gets(&c, &keys, &zorder, plan.fast_ops))
                .collect();
            let s = Summary::median_of(&rounds);
            log(format!(
                "table of {n}, Zipf(0.99) keys: get hit p50 {} ns, p99 {} ns",
                s.p50, s.p99
            ));
            s.json()
        });
        let s = vs_map.client;
        log(format!(
            "table of {n}: get hit p50 {} ns, p99 {} ns; HashMap p50 {} ns",
            s.p50, s.p99, vs_map.map.p50
        ));
        let stats = c.stats().expect("STATS");
        let counter = |name: &str| stats.daemon_counter(name).unwrap_or(0);
        points.push(json!({
            "entries": n, "daemon_memory": mem, "fill_sets_per_s": rate, "missing": missing.len(),
            "get_hit": s.json(), "loop_mean_ns": vs_map.client_loop_ns, "table_only": table,
            "get_hit_zipf": zipf, "hit_vs_map": vs_map.json(),
            "p50_rounds_ns": vs_map.client_p50_rounds,
            "bucket_evictions": counter("table_bucket_evictions"),
            "evictions": counter("table_evictions"),
        }));
        if n == plan.tables[0] || largest {
            scalings.push(scaling(daemon.socket(), n, plan));
        }
        if largest {
            let (mapped, shmem) = daemon.segment_memory();
            let live = counter("table_live_entries");
            let used = counter("table_used_bytes");
            memory = json!({
                "entries": n, "live_entries": live, "value_bytes": 100, "key_bytes": 16,
                "daemon_memory_flag": mem, "memory_bytes": counter("memory_bytes"),
                "used_bytes": used, "used_bytes_per_entry": used as f64 / live.max(1) as f64,
                "segment_mapped_bytes": mapped,
                "segment_bytes_per_entry": mapped.map(|m| m as f64 / live.max(1) as f64),
                "rss_shmem_bytes": shmem,
                "rss_shmem_bytes_per_entry": shmem.map(|m| m as f64 / live.max(1) as f64),
                "evictions": counter("table_evictions"),
                "bucket_evictions": counter("table_bucket_evictions"),
                "others": competitor_memory(n, redis_port, mc_port),
            });
        }
        if n == plan.tables[1] {
            inv = daemon_invalidation(&daemon, n, plan);
        }
    }
    json!({ "points": points, "scaling": scalings, "memory": memory, "invalidate_daemon": inv })
}

/// The table alone, for comparison with the client's hit: a memfd table with the same keys
/// and 100-byte values (no envelope), a `Reader` attached to its fds as a client process
/// attaches (read-only table mapping, client area for access bits), `get_into` a buffer.
fn table_only(n: usize, keys: &[Vec<u8>], order: &[usize], plan: Plan) -> Value {
    let entry = 24 + 1 + 16 + 4 + 100u64;
    let mut w = Writer::create(
        &TableConfig {
            arena_bytes: (n as u64 * entry * 2).next_power_of_two().max(8 << 20),
            expected_entry_bytes: entry + 1,
            hash_seed: Some(0x5EED),
            ..Default::default()
        },
        Backing::Memfd,
    )
    .expect("table");
    let opts = InsertOptions {
        ttl_ms: Some(3_600_000),
        ..Default::default()
    };
    for (i, k) in keys.iter().enumerate() {
        w.insert("t", k, &value_for(i, 100), &opts).unwrap();
    }
    let fds = w.fds().expect("memfd");
    let reader =
        cachekit_shm::Reader::attach(fds.table_fd(), Some(fds.client_fd())).expect("attach");
    let mut buf = [0u8; 256];
    let present = keys
        .iter()
        .filter(|k| {
            matches!(
                reader.get_into("t", k, &mut buf),
                cachekit_shm::Lookup::Hit(_)
            )
        })
        .count();
    let hits: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| {
            matches!(
                reader.get_into("t", &keys[i], &mut buf),
                cachekit_shm::Lookup::Hit(_)
            )
        })
        .collect();
    let mut rounds = Vec::new();
    let mut loop_means = Vec::new();
    for _ in 0..plan.rounds {
        let mut k = 0;
        loop_means.push(loop_mean(plan.fast_ops, || {
            black_box(reader.get_into("t", black_box(&keys[hits[k]]), &mut buf));
            k = (k + 1) % hits.len();
        }));
        let mut k = 0;
        rounds.push(time_ops(plan.fast_ops, || {
            let r = reader.get_into("t", black_box(&keys[hits[k]]), &mut buf);
            debug_assert!(matches!(r, cachekit_shm::Lookup::Hit(_)));
            black_box(r);
            k = (k + 1) % hits.len();
        }));
    }
    let loop_ns = median(&loop_means);
    let s = Summary::median_of(&rounds);
    log(format!(
        "table alone, {n} entries: p50 {} ns, loop mean {loop_ns:.0} ns ({} of {n} present)",
        s.p50, present
    ));
    json!({ "get_hit": s.json(), "loop_mean_ns": loop_ns, "present": present })
}

// ---------------------------------------------------------------------------------------------
// 4: invalidation in-process

fn invalidate_in_process(plan: Plan) -> Value {
    let n = plan.key_space;
    let entry = 24 + 3 + 16 + 5 * 4 + 100u64;
    let mut w = Writer::create(
        &TableConfig {
            arena_bytes: (n as u64 * entry * 2).next_power_of_two(),
            expected_entry_bytes: entry,
            hash_seed: Some(7),
            ..Default::default()
        },
        Backing::Heap,
    )
    .expect("table");
    let reader = w.reader();
    // Key i tagged all/{i/100000}/{(i/1000)%100}/{(i/10)%100}: `all` covers n, `all/0`
    // 100 000, `all/0/1` 1 000, `all/0/1/2` 10.
    let t = Instant::now();
    for i in 0..n {
        let tag = format!(
            "all/{}/{}/{}",
            i / 100_000,
            (i / 1000) % 100,
            (i / 10) % 100
        );
        w.insert(
            "inv",
            &key16("k", i),
            &value_for(i, 100),
            &InsertOptions {
                ttl_ms: Some(3_600_000),
                grace_ms: 0,
                tags: &[&tag],
            },
        )
        .unwrap();
    }
    assert_eq!(w.stat(Stat::Evictions), 0);
    log(format!(
        "in-process table of {n} tagged entries in {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    let cases = [
        ("10", "all/0/1/2", 10usize),
        ("1k", "all/0/2", 1000),
        ("100k", "all/1", 100_000.min(n)),
        ("all", "all", n),
    ];
    let mut res = Vec::new();
    let firsts: Vec<f64> = cases
        .iter()
        .map(|(_, tag, _)| {
            let t = Instant::now();
            w.invalidate("inv", tag, InvalidateMode::Hierarchical)
                .unwrap();
            t.elapsed().as_nanos() as f64
        })
        .collect();
    // Interleaved repeats, as through the daemon.
    let reps = 100_000;
    let mut samples: Vec<Vec<u64>> = vec![Vec::with_capacity(reps); cases.len()];
    for _ in 0..reps {
        for (j, (_, tag, _)) in cases.iter().enumerate() {
            let t = Instant::now();
            w.invalidate("inv", black_box(tag), InvalidateMode::Hierarchical)
                .unwrap();
            samples[j].push(t.elapsed().as_nanos() as u64);
        }
    }
    for (j, (label, tag, covered)) in cases.iter().enumerate() {
        let s = Summary::of(std::mem::take(&mut samples[j]));
        res.push(json!({"label": label, "tag": tag, "covered": covered, "first_ns": firsts[j], "repeat": s.json()}));
    }
    assert!(reader.get("inv", &key16("k", 0)).is_none());
    json!({ "entries": n, "cases": res })
}

// ---------------------------------------------------------------------------------------------
// 5: envelope

fn envelope() -> Value {
    let cfg = EnvelopeConfig::DEFAULT;
    let mut rows = Vec::new();
    for (size, kind) in [
        (100usize, "random"),
        (4096, "random"),
        (4096, "text"),
        (65536, "random"),
        (65536, "text"),
    ] {
        let value: Vec<u8> = if kind == "random" {
            Rng(size as u64).bytes(size)
        } else {
            let text =
                b"{\"id\": 12345, \"name\": \"cachekit\", \"tags\": [\"posts/1\", \"users/2\"]}, ";
            text.iter().copied().cycle().take(size).collect()
        };
        let mut enc = Vec::new();
        encode_into(&cfg, &value, &mut enc).expect("encode");
        let mut dec = Vec::new();
        decode_into(&cfg, &enc, &mut dec).expect("decode");
        assert_eq!(dec, value);
        let n = (20_000_000 / size.max(1000)).max(200);
        let e = time_ops(n, || {
            encode_into(&cfg, black_box(&value), &mut enc).unwrap();
        });
        let d = time_ops(n, || {
            decode_into(&cfg, black_box(&enc), &mut dec).unwrap();
        });
        rows.push(json!({
            "value_bytes": size, "kind": kind, "encoded_bytes": enc.len(),
            "encode": e.json(), "decode": d.json(),
        }));
    }
    json!(rows)
}

// ---------------------------------------------------------------------------------------------
// 6: hit ratio

fn hit_ratio(plan: Plan) -> Value {
    let ks = plan.key_space;
    let traces = [
        sim::zipf_trace(ks, 0.99, plan.trace_len, plan.trace_warmup, 11),
        sim::scan_trace(
            ks,
            0.99,
            plan.trace_len,
            plan.trace_warmup,
            ks / 10,
            ks / 10,
            12,
        ),
    ];
    let mut rows = Vec::new();
    for trace in &traces {
        for frac in [0.01, 0.1] {
            let target = (ks as f64 * frac) as usize;
            let ck = sim::simulate_cachekit(trace, target);
            let cap = ck.mean_live.round() as usize;
            let qc = sim::simulate_quick_cache(trace, cap);
            let mk = sim::simulate_moka(trace, cap);
            log(format!(
                "hit ratio {} at {cap} entries: cachekit {:.3}, quick_cache {:.3}, moka {:.3}",
                trace.name,
                ck.outcome.core_ratio(),
                qc.core_ratio(),
                mk.core_ratio()
            ));
            let o = |o: &sim::Outcome| {
                json!({"ratio": o.ratio(), "core_ratio": o.core_ratio(), "hits": o.hits,
                       "lookups": o.lookups, "secs": o.secs})
            };
            rows.push(json!({
                "trace": trace.name, "description": trace.description,
                "capacity_target": target, "capacity": cap,
                "cachekit": o(&ck.outcome), "quick_cache": o(&qc), "moka": o(&mk),
                "cachekit_segments": ck.segment_count, "cachekit_segment_bytes": ck.segment_bytes,
                "cachekit_second_chances": ck.second_chances, "cachekit_evictions": ck.evictions,
                "cachekit_bucket_evictions": ck.bucket_evictions,
            }));
        }
    }
    json!(rows)
}
