//! Section "writes": set throughput of 8 client processes (single sets and `set_many` batches)
//! beside Redis SET with 8 clients (`redis-benchmark`, same run), and hit latency while a
//! writer process sets at full rate into a full table, so the daemon evicts all along.
//!
//! The client processes are this benchmark's own binary run as `cachekit-bench write-worker`
//! ([`worker`]): each connects, says `ready`, waits for `go` on stdin, writes its own keys,
//! and prints how many it wrote. The parent times from `go` to the last process's answer.

use crate::daemon::Daemon;
use crate::data::{key16, value_for};
use crate::timing::Summary;
use cachekit_client::SetOptions;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Client processes of the throughput rows (the issue's figure: 8, beside Redis with 8 clients).
pub const PROCESSES: usize = 8;
/// Value size of every row, bytes.
pub const VALUE_BYTES: usize = 100;
/// Items per `set_many` request in the batch row.
pub const BATCH: usize = 100;

/// What one worker process does.
#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// One SET request per key.
    Set,
    /// `set_many` of [`BATCH`] keys per request.
    SetMany,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Set => "set",
            Mode::SetMany => "set_many",
        }
    }
}

/// `cachekit-bench write-worker SOCKET MODE ID OPS MILLIS`: writes OPS keys of its own (ID
/// picks them; 10,000 keys, rewritten in turn), or keeps writing new keys for MILLIS when OPS
/// is 0 (single sets only); prints the count written.
pub fn worker(args: &[String]) {
    let [socket, mode, id, ops, millis] = args else {
        panic!("usage: cachekit-bench write-worker SOCKET set|set_many ID OPS MILLIS");
    };
    let mode = match mode.as_str() {
        "set" => Mode::Set,
        "set_many" => Mode::SetMany,
        other => panic!("unknown mode {other}"),
    };
    let id: usize = id.parse().expect("ID");
    let ops: usize = ops.parse().expect("OPS");
    let until = Duration::from_millis(millis.parse().expect("MILLIS"));
    let client = crate::daemon::connect(Path::new(socket), "writes").expect("connecting");
    let opts = SetOptions::new();
    // Keys of this worker: a range of its own, values made in advance (not timed).
    let keys: Vec<Vec<u8>> = (0..BATCH * 100)
        .map(|i| key16(&format!("w{id}"), i))
        .collect();
    let values: Vec<Vec<u8>> = (0..keys.len()).map(|i| value_for(i, VALUE_BYTES)).collect();
    let mut out = std::io::stdout();
    writeln!(out, "ready").unwrap();
    out.flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    let start = Instant::now();
    let mut written = 0usize;
    let mut round = 0usize;
    let done = |written: usize| {
        if ops > 0 {
            written >= ops
        } else {
            start.elapsed() >= until
        }
    };
    while !done(written) {
        match mode {
            // Timed by duration (the eviction row): a new key every time, so the table stays
            // full and the daemon evicts all along.
            Mode::Set if ops == 0 => {
                let tag = format!("w{id}");
                for (j, v) in values.iter().take(BATCH).enumerate() {
                    client.set(key16(&tag, written + j), v, &opts).expect("set");
                }
            }
            Mode::Set => {
                for (k, v) in keys
                    .iter()
                    .zip(&values)
                    .skip(round % 100 * BATCH)
                    .take(BATCH)
                {
                    client.set(k, v, &opts).expect("set");
                }
            }
            Mode::SetMany => {
                let at = round % 100 * BATCH;
                let items: Vec<(&[u8], &[u8])> = keys[at..at + BATCH]
                    .iter()
                    .zip(&values[at..at + BATCH])
                    .map(|(k, v)| (k.as_slice(), v.as_slice()))
                    .collect();
                for r in client.set_many(&items, &opts).expect("set_many") {
                    r.expect("a set_many item");
                }
            }
        }
        written += BATCH;
        round += 1;
    }
    writeln!(out, "{written}").unwrap();
}

struct Worker {
    child: Child,
    lines: BufReader<std::process::ChildStdout>,
}

impl Worker {
    fn spawn(bin: &Path, socket: &Path, mode: Mode, id: usize, ops: usize, millis: u64) -> Worker {
        let mut child = Command::new(bin)
            .arg("write-worker")
            .arg(socket)
            .args([
                mode.name(),
                &id.to_string(),
                &ops.to_string(),
                &millis.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut lines = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        lines.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "ready", "worker {id} said {line:?}");
        Worker { child, lines }
    }

    fn go(&mut self) {
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
    }

    fn finish(mut self) -> usize {
        let mut line = String::new();
        self.lines.read_line(&mut line).unwrap();
        let n = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("worker said {line:?}"));
        assert!(self.child.wait().unwrap().success(), "a worker failed");
        n
    }
}

/// One throughput run: sets per second, and the server's CPU time per set (user, kernel),
/// in microseconds.
#[derive(Clone, Copy)]
struct Run {
    per_s: f64,
    user_us: f64,
    sys_us: f64,
}

impl Run {
    /// `sets` in `secs`, the server's CPU times `(user, kernel)` seconds before and after.
    fn new(sets: f64, secs: f64, before: (f64, f64), after: (f64, f64)) -> Run {
        Run {
            per_s: sets / secs,
            user_us: (after.0 - before.0) * 1e6 / sets,
            sys_us: (after.1 - before.1) * 1e6 / sets,
        }
    }

    fn best(a: Run, b: Run) -> Run {
        if b.per_s > a.per_s {
            b
        } else {
            a
        }
    }

    fn json(self) -> Value {
        json!({"per_s": self.per_s, "server_user_us_per_set": self.user_us,
               "server_kernel_us_per_set": self.sys_us})
    }
}

/// Sets per second of [`PROCESSES`] processes each writing `ops` keys in `mode`.
fn throughput(bin: &Path, daemon: &Daemon, mode: Mode, ops: usize) -> Run {
    let mut workers: Vec<Worker> = (0..PROCESSES)
        .map(|id| Worker::spawn(bin, daemon.socket(), mode, id, ops, 0))
        .collect();
    let before = crate::cpu_times(daemon.pid());
    let start = Instant::now();
    workers.iter_mut().for_each(Worker::go);
    let total: usize = workers.into_iter().map(Worker::finish).sum();
    let secs = start.elapsed().as_secs_f64();
    Run::new(total as f64, secs, before, crate::cpu_times(daemon.pid()))
}

/// The pid of the redis-server on `port` (`INFO server`'s `process_id`).
fn redis_pid(port: u16) -> Option<u32> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).ok()?;
    let mut conn = client.get_connection().ok()?;
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn).ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix("process_id:"))?
        .trim()
        .parse()
        .ok()
}

/// `redis-benchmark -c 8 -t set -d 100` against `port`: SETs per second, and redis-server's
/// CPU time per SET.
fn redis_set(port: u16, ops: usize) -> Option<Run> {
    let pid = redis_pid(port)?;
    let before = crate::cpu_times(pid);
    let out = Command::new("redis-benchmark")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-c", &PROCESSES.to_string(), "-t", "set", "-d"])
        .arg(VALUE_BYTES.to_string())
        .args(["-n", &ops.to_string(), "-r", "100000", "--csv"])
        .output()
        .ok()?;
    // "SET","123456.79",...
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("\"SET\""))?;
    let per_s: f64 = line.split(',').nth(1)?.trim_matches('"').parse().ok()?;
    // redis-benchmark's rate is over its own timing; the CPU per SET is over the SETs sent.
    let mut run = Run::new(ops as f64, 1.0, before, crate::cpu_times(pid));
    run.per_s = per_s;
    Some(run)
}

/// A redis-server of our own on a free port, when the run did not start one.
struct OwnRedis(Child, u16);

impl OwnRedis {
    fn start() -> Option<OwnRedis> {
        let port = cachekit_testkit::free_port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--loglevel", "warning"])
            .stdout(Stdio::null())
            .spawn()
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Some(OwnRedis(child, port))
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Hit latency (p50, p99 of single gets of hot keys, for `millis` each) with no writer, then
/// while a writer process sets new keys at full rate into a full table. Every lookup is
/// timed; a hot key the eviction took is a local miss (no second tier), counted apart.
fn hits_while_evicting(bin: &Path, millis: u64) -> Value {
    let daemon = Daemon::start("16MiB", &[]);
    let client = daemon.client("writes");
    let hot: Vec<Vec<u8>> = (0..1000).map(|i| key16("hot", i)).collect();
    let fill: Vec<(Vec<u8>, Vec<u8>)> = (0..200_000)
        .map(|i| (key16("fill", i), value_for(i, VALUE_BYTES)))
        .collect();
    for chunk in fill.chunks(1000) {
        client.set_many(chunk, &SetOptions::new()).expect("filling");
    }
    let window = Duration::from_millis(millis);
    let measure = |client: &cachekit_client::Client| {
        for (i, k) in hot.iter().enumerate() {
            client
                .set(k, value_for(i, VALUE_BYTES), &SetOptions::new())
                .unwrap();
        }
        let mut ns = Vec::with_capacity(1 << 22);
        let mut misses = 0usize;
        let mut buf = Vec::new();
        let start = Instant::now();
        let mut i = 0;
        while start.elapsed() < window {
            for k in &hot {
                let t = Instant::now();
                let hit = client.get_into(k, &mut buf).unwrap();
                ns.push(t.elapsed().as_nanos() as u64);
                misses += usize::from(hit.is_none());
            }
            i += 1;
            if i % 4 == 0 {
                // Other processes get the cores too: this one reads as a busy app would.
                std::thread::yield_now();
            }
        }
        (Summary::of(ns), misses)
    };
    let evictions = |c: &cachekit_client::Client| {
        c.stats()
            .ok()
            .and_then(|s| s.daemon_counter("table_evictions"))
            .unwrap_or(0)
    };
    let (idle, idle_misses) = measure(&client);
    let before = evictions(&client);
    // The writer runs a little longer than the reads, so they all overlap it.
    let mut writer = Worker::spawn(bin, daemon.socket(), Mode::Set, 99, 0, millis + 300);
    writer.go();
    std::thread::sleep(Duration::from_millis(100));
    let (busy, busy_misses) = measure(&client);
    let writes = writer.finish();
    let evicted = evictions(&client) - before;
    json!({
        "memory": "16MiB", "hot_keys": hot.len(), "value_bytes": VALUE_BYTES,
        "idle": idle.json(), "idle_misses": idle_misses,
        "evicting": busy.json(), "evicting_misses": busy_misses,
        "writer_sets": writes, "writer_ms": millis + 300, "evictions": evicted,
        "writer_sets_per_s": writes as f64 / ((millis + 300) as f64 / 1000.0),
    })
}

/// The whole section. `bin`: this benchmark's binary (for the worker processes);
/// `redis_port`: the run's redis-server, else one of our own is started.
pub fn run(bin: &Path, quick: bool, redis_port: Option<u16>) -> Value {
    let ops = if quick { 20_000 } else { 100_000 };
    let daemon = Daemon::start("256MiB", &[]);
    let mut rows = serde_json::Map::new();
    let mut cpu = serde_json::Map::new();
    for mode in [Mode::Set, Mode::SetMany] {
        // Best of three: the machine is shared; the best run is the least disturbed.
        let best = (0..3)
            .map(|_| throughput(bin, &daemon, mode, ops))
            .reduce(Run::best)
            .expect("three runs");
        rows.insert(mode.name().into(), json!(best.per_s));
        cpu.insert(mode.name().into(), best.json());
    }
    let own = if redis_port.is_none() {
        OwnRedis::start()
    } else {
        None
    };
    let port = redis_port.or(own.as_ref().map(|r| r.1));
    let redis = port.and_then(|p| {
        (0..3)
            .filter_map(|_| redis_set(p, ops * PROCESSES / 2))
            .reduce(Run::best)
    });
    rows.insert("redis_set".into(), json!(redis.map(|r| r.per_s)));
    cpu.insert("redis_set".into(), redis.map_or(Value::Null, Run::json));
    let hits = hits_while_evicting(bin, if quick { 1000 } else { 3000 });
    json!({
        "processes": PROCESSES, "value_bytes": VALUE_BYTES, "batch": BATCH,
        "ops_per_process": ops, "sets_per_s": Value::Object(rows),
        "server_cpu": Value::Object(cpu),
        "hit_while_evicting": hits,
    })
}

/// This binary's path, for the worker processes.
pub fn self_exe() -> PathBuf {
    std::env::current_exe().expect("the benchmark's own path")
}
