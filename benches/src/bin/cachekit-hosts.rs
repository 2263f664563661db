//! Eight hosts on one Redis under an invalidation storm (`scripts/bench-hosts`).
//!
//! Eight `cachekitd`s, each on a site of its own (runtime dir, instance), all on one
//! `redis-server` (then on a local three-node Redis Cluster), one namespace shared by all.
//! Per host, a writer process (this binary, `writer`: invalidations of tags spread over
//! `TAGS`, and a set for every three, paced to its share of the target rate of writes) and a reader
//! process (`reader`: gets of the writers' keys, paced). The rate climbs step by step until
//! a step saturates (the writers reach less than 90 % of the target, or propagation p99
//! passes 100 ms).
//!
//! Measured per step, while the storm runs:
//! - **propagation**: a probe key set through host i, filled into every other host's table,
//!   then its tag invalidated through host i; the time from the invalidation's
//!   acknowledgement on host i until the key is gone from every other host's table (read
//!   from the mapped tables, as any client reads them), p50/p99/max over the probes;
//! - **Redis CPU** (`INFO cpu` user+sys, summed over the nodes) per second and per write,
//!   **Redis memory** (`INFO memory` used_memory) growth per invalidation;
//! - **daemons' CPU** (the eight daemons' utime+stime from /proc, per second);
//! - the writers' achieved rate.
//!
//! Prints one JSON document (stdout) for `scripts/bench-hosts`.

use cachekit_client::{Client, ClientOptions, SetOptions};
use cachekit_testkit::{Daemon, Redis, RedisCluster, Site};
use serde_json::{json, Value};
use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HOSTS: usize = 8;
const NS: &str = "storm";
/// Distinct tags the storm spreads over.
const TAGS: u64 = 20_000;
/// Keys the writers set and the readers read.
const KEYS: u64 = 5_000;
/// Gets per second of each reader process.
const READ_RATE: f64 = 2_000.0;
/// A probe still visible on some host after this long counts as lost (and fails the step).
const PROBE_LIMIT: Duration = Duration::from_secs(5);

fn client(socket: &str) -> Client {
    Client::connect(
        ClientOptions::new()
            .socket(socket)
            .namespace(NS)
            .request_timeout(Duration::from_secs(5)),
    )
    .unwrap_or_else(|e| panic!("connecting to {socket}: {e}"))
}

/// Spreads `n` over `0..m` (a multiplicative hash, so consecutive ops hit unrelated tags).
fn spread(n: u64, m: u64) -> u64 {
    (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) % m.max(1)
}

fn paced(rate: f64, secs: f64, mut op: impl FnMut(u64)) -> u64 {
    let start = Instant::now();
    let end = Duration::from_secs_f64(secs);
    let mut n = 0u64;
    while start.elapsed() < end {
        let due = Duration::from_secs_f64(n as f64 / rate);
        let now = start.elapsed();
        if due > now {
            std::thread::sleep(due - now);
        }
        op(n);
        n += 1;
    }
    n
}

/// `writer <socket> <ops per second> <seconds> <seed>`.
fn writer(args: &[String]) {
    let c = client(&args[0]);
    let rate: f64 = args[1].parse().expect("rate");
    let secs: f64 = args[2].parse().expect("seconds");
    let seed: u64 = args[3].parse().expect("seed");
    let value = vec![b'v'; 100];
    let (mut inv, mut sets, mut errors) = (0u64, 0u64, 0u64);
    paced(rate, secs, |n| {
        let x = seed.wrapping_mul(1_000_003).wrapping_add(n);
        let r = if n % 4 == 3 {
            sets += 1;
            let k = format!("k{}", spread(x, KEYS));
            let opts = SetOptions::new()
                .ttl(Duration::from_secs(600))
                .tag(format!("t/{}", spread(x, TAGS)));
            c.set(k, &value, &opts).map(|_| ())
        } else {
            inv += 1;
            c.invalidate(&[format!("t/{}", spread(x ^ 0x5555, TAGS))])
        };
        errors += u64::from(r.is_err());
    });
    println!(
        "{}",
        json!({"invalidations": inv, "sets": sets, "errors": errors, "cpu_s": cpu_of(std::process::id())})
    );
}

/// `reader <socket> <seconds> <seed>`.
fn reader(args: &[String]) {
    let c = client(&args[0]);
    let secs: f64 = args[1].parse().expect("seconds");
    let seed: u64 = args[2].parse().expect("seed");
    let (mut gets, mut hits) = (0u64, 0u64);
    paced(READ_RATE, secs, |n| {
        gets += 1;
        let k = format!("k{}", spread(seed.wrapping_add(n), KEYS));
        hits += u64::from(matches!(c.get(k), Ok(Some(_))));
    });
    println!(
        "{}",
        json!({"gets": gets, "hits": hits, "cpu_s": cpu_of(std::process::id())})
    );
}

/// The Redis under test: one server or a cluster.
enum Backend {
    Single(Redis),
    Cluster(RedisCluster),
}

impl Backend {
    fn nodes(&self) -> Vec<&Redis> {
        match self {
            Backend::Single(r) => vec![r],
            Backend::Cluster(c) => c.nodes().iter().collect(),
        }
    }

    fn flags(&self) -> Vec<String> {
        match self {
            Backend::Single(r) => vec!["--redis-url".into(), r.url()],
            Backend::Cluster(c) => vec![
                "--redis-url".into(),
                c.urls(),
                "--redis-cluster".into(),
                "true".into(),
            ],
        }
    }

    /// (CPU seconds user+sys, used_memory bytes), summed over the nodes.
    fn sample(&self) -> (f64, f64) {
        let mut cpu = 0.0;
        let mut mem = 0.0;
        for n in self.nodes() {
            let info: String = redis::cmd("INFO")
                .arg("everything")
                .query(&mut n.conn())
                .expect("INFO");
            let field = |name: &str| -> f64 {
                info.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0.0)
            };
            cpu += field("used_cpu_user:") + field("used_cpu_sys:");
            mem += field("used_memory:");
        }
        (cpu, mem)
    }
}

/// utime+stime of `pid` in seconds.
fn cpu_of(pid: u32) -> f64 {
    let (user, sys) = cachekit_benches::cpu_times(pid);
    user + sys
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p / 100.0).round() as usize]
}

/// One probe through host `i`: ms from the invalidation's acknowledgement to the key gone
/// from every other host's table; `None` if it could not be placed in every table.
fn probe(clients: &[Client], i: usize, seq: u64) -> Option<f64> {
    let key = format!("probe:{seq}");
    let tag = format!("probe/{seq}");
    let opts = SetOptions::new().ttl(Duration::from_secs(60)).tag(&tag);
    clients[i].set(&key, b"p", &opts).ok()?;
    let others: Vec<&Client> = (0..clients.len())
        .filter(|&j| j != i)
        .map(|j| &clients[j])
        .collect();
    for c in &others {
        // A fill from Redis. Under the storm most fills of the namespace are skipped (an
        // invalidation of the namespace arrived while the record was read: the fill rule
        // cannot tell whether it covers the key), so ask again until the table has it.
        let placed = (0..200).any(|_| {
            let _ = c.get(&key);
            matches!(c.get_local(&key), Ok(Some(_)))
        });
        if !placed {
            return None;
        }
    }
    clients[i].invalidate(&[&tag]).ok()?;
    let acked = Instant::now();
    while others
        .iter()
        .any(|c| matches!(c.get_local(&key), Ok(Some(_))))
    {
        if acked.elapsed() > PROBE_LIMIT {
            return Some(f64::INFINITY);
        }
        std::hint::spin_loop();
    }
    Some(acked.elapsed().as_secs_f64() * 1e3)
}

fn step(backend: &Backend, hosts: &[Daemon], clients: &[Client], rate: f64, secs: f64) -> Value {
    let exe = std::env::current_exe().expect("current exe");
    let (cpu0, mem0) = backend.sample();
    let dcpu0: f64 = hosts.iter().map(|h| cpu_of(h.pid())).sum();
    let (fills0, races0) = (sum_stat(clients, "fills"), sum_stat(clients, "fill_races"));
    let wall0 = Instant::now();
    let mut procs = Vec::new();
    for (i, h) in hosts.iter().enumerate() {
        let sock = h.socket().to_str().expect("utf-8 socket").to_owned();
        let per = format!("{}", rate / HOSTS as f64);
        for args in [
            vec![
                "writer".to_string(),
                sock.clone(),
                per,
                secs.to_string(),
                i.to_string(),
            ],
            vec![
                "reader".to_string(),
                sock,
                secs.to_string(),
                (i * 7919).to_string(),
            ],
        ] {
            procs.push(
                Command::new(&exe)
                    .args(&args)
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("spawning a worker"),
            );
        }
    }
    let mut lat = Vec::new();
    let mut skipped = 0;
    let mut seq = (rate as u64) << 20;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs_f64(secs - 0.3) {
        seq += 1;
        match probe(clients, (seq % HOSTS as u64) as usize, seq) {
            Some(ms) => lat.push(ms),
            None => skipped += 1,
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let (mut inv, mut sets, mut errors, mut gets, mut hits, mut wcpu) =
        (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for p in procs {
        let out = p.wait_with_output().expect("worker output");
        let line = out
            .stdout
            .lines()
            .next()
            .and_then(Result::ok)
            .unwrap_or_default();
        let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
        let f = |k: &str| v[k].as_f64().unwrap_or(0.0);
        inv += f("invalidations");
        sets += f("sets");
        errors += f("errors");
        gets += f("gets");
        hits += f("hits");
        wcpu += f("cpu_s");
    }
    let wall = wall0.elapsed().as_secs_f64();
    let (cpu1, mem1) = backend.sample();
    let dcpu1: f64 = hosts.iter().map(|h| cpu_of(h.pid())).sum();
    let (fills1, races1) = (sum_stat(clients, "fills"), sum_stat(clients, "fill_races"));
    lat.sort_by(f64::total_cmp);
    let lost = lat.iter().filter(|l| l.is_infinite()).count();
    let writes = inv + sets;
    json!({
        "target_per_s": rate,
        "invalidations_per_s": inv / secs,
        "sets_per_s": sets / secs,
        "write_errors": errors,
        "reader_gets_per_s": gets / secs,
        "reader_hit_ratio": if gets > 0.0 { hits / gets } else { 0.0 },
        "probes": lat.len(),
        "probes_skipped": skipped,
        "probes_lost": lost,
        "propagation_ms": {
            "p50": percentile(&lat, 50.0),
            "p99": percentile(&lat, 99.0),
            "max": lat.iter().copied().filter(|l| l.is_finite()).fold(0.0, f64::max),
        },
        "redis_cpu_pct": (cpu1 - cpu0) / wall * 100.0,
        "redis_cpu_us_per_write": if writes > 0.0 { (cpu1 - cpu0) * 1e6 / writes } else { 0.0 },
        "redis_mem_bytes_per_invalidation": if inv > 0.0 { (mem1 - mem0) / inv } else { 0.0 },
        "redis_used_memory": mem1,
        "daemons_cpu_pct": (dcpu1 - dcpu0) / wall * 100.0,
        "workers_cpu_pct": wcpu / wall * 100.0,
        "fills": fills1 - fills0,
        "fill_races": races1 - races0,
    })
}

fn sum_stat(clients: &[Client], name: &str) -> u64 {
    clients
        .iter()
        .filter_map(|c| c.stats().ok())
        .flat_map(|s| s.daemon.into_iter())
        .filter(|(n, _)| n == name)
        .map(|(_, v)| v)
        .sum()
}

fn run_backend(backend: Backend, rates: &[f64], secs: f64) -> Value {
    let mut flags = backend.flags();
    flags.extend(
        ["--memory", "32MiB", "--log", "warn"]
            .iter()
            .map(|s| s.to_string()),
    );
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let hosts: Vec<Daemon> = (0..HOSTS)
        .map(|i| Site::new(&format!("host{i}")).start(&flags))
        .collect();
    let clients: Vec<Client> = hosts
        .iter()
        .map(|h| client(h.socket().to_str().expect("utf-8")))
        .collect();
    let mut steps = Vec::new();
    for &rate in rates {
        let s = step(&backend, &hosts, &clients, rate, secs);
        eprintln!("{}", s);
        let writes = s["invalidations_per_s"].as_f64().unwrap_or(0.0)
            + s["sets_per_s"].as_f64().unwrap_or(0.0);
        let saturated = writes < 0.9 * rate
            || s["propagation_ms"]["p99"].as_f64().unwrap_or(f64::INFINITY) > 100.0;
        steps.push(s);
        if saturated {
            break;
        }
    }
    json!({
        "backend": match backend { Backend::Single(_) => "one redis-server", Backend::Cluster(_) => "3-node Redis Cluster" },
        "steps": steps,
        "flushes_for_gap": sum_stat(&clients, "flushes_for_gap"),
        "redis_events": sum_stat(&clients, "redis_events"),
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("writer") => return writer(&args[1..]),
        Some("reader") => return reader(&args[1..]),
        _ => {}
    }
    let quick = args.iter().any(|a| a == "--quick");
    let secs = if quick { 2.0 } else { 6.0 };
    let rates: Vec<f64> = if quick {
        vec![1_000.0, 4_000.0]
    } else {
        vec![1_000.0, 2_000.0, 4_000.0, 8_000.0, 16_000.0, 32_000.0]
    };
    let started = Instant::now();
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let single = run_backend(Backend::Single(Redis::start()), &rates, secs);
    let cluster = run_backend(Backend::Cluster(RedisCluster::start()), &rates, secs);
    println!(
        "{}",
        json!({
            "hosts": HOSTS,
            "tags": TAGS,
            "keys": KEYS,
            "reader_gets_per_s_per_host": READ_RATE,
            "step_secs": secs,
            "runs": [single, cluster],
            "elapsed_s": started.elapsed().as_secs_f64(),
            "load_before": load_before,
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        })
    );
}
