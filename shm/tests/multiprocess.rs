//! Multi-process stories: this process is the writer (the daemon's role) on a sealed memfd
//! table; reader processes (`cachekit-shm-stress`) attach to it through inherited file
//! descriptors and check, while the writer works, what the contract promises them:
//!
//! - `torn_or_wrong_values_never_reach_readers`: under constant segment recycling, every
//!   hit is the complete value of the key asked for, and versions never go backwards;
//! - `invalidation_is_immediate_across_processes`: once `invalidate("posts/1")` returns,
//!   no reader returns an entry tagged `posts/1` or below, and other tags keep hitting;
//! - `mutations_are_seen_by_other_processes`: step by step, each mutation is visible to
//!   the other processes as soon as it returns;
//! - `expired_entries_are_never_served_late`: the deadline side of the contract, which the
//!   torn-value stress first caught being broken;
//! - negative controls (a writer publishing wrong values, a writer skipping the
//!   invalidation, torn and flipped values fed to the checker) show that the checkers
//!   catch what they look for.
//!
//! Each stress phase runs `CACHEKIT_STRESS_SECS` seconds (default 10); the torn-value
//! writer goes on past that, [`OVERTIME`] at most, until the arena has turned over enough
//! times. Every child has a watchdog that kills it after its longest possible run plus a
//! margin, so a hang fails the test instead of blocking CI.

#![cfg(not(loom))]
// Thread flags of this test process, not shared memory: std's atomics are fine here.
#![allow(clippy::disallowed_types)]

// One definition of the values and keys for both ends: the readers' binary, compiled here
// as a module. Its roles and `main` are unused on this side.
#[allow(dead_code)]
#[path = "../src/bin/cachekit-shm-stress.rs"]
mod stress;

use cachekit_shm::{
    now_ms, Backing, InsertOptions, InvalidateMode, Reader, Stat, TableConfig, Writer,
};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};
use stress::codec::{self, Rng};
use stress::plan;

const BIN: &str = env!("CARGO_BIN_EXE_cachekit-shm-stress");

/// How much longer than `CACHEKIT_STRESS_SECS` the torn-value writer may go on to reach
/// its quota of recycled segments (a slow debug build on a busy machine needs it).
const OVERTIME: Duration = Duration::from_secs(30);

/// How long a child may outlive its longest possible phase before its watchdog kills it.
const MARGIN: Duration = Duration::from_secs(15);

/// Seconds each stress phase runs: `CACHEKIT_STRESS_SECS`, default 10.
fn stress_secs() -> f64 {
    match std::env::var("CACHEKIT_STRESS_SECS") {
        Ok(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("CACHEKIT_STRESS_SECS={s:?} is not a number of seconds")),
        Err(_) => 10.0,
    }
}

fn seed() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.as_nanos() as u64 ^ (std::process::id() as u64) << 32
}

// ---------------------------------------------------------------------------------------
// Children
// ---------------------------------------------------------------------------------------

/// How a child ended.
#[derive(Debug)]
enum Exit {
    Status(ExitStatus),
    /// Killed by its watchdog.
    TimedOut,
}

/// A reader process, watched by a thread that owns its `Child`.
struct Kid {
    name: String,
    done: Arc<AtomicBool>,
    watchdog: JoinHandle<Exit>,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

/// Non-CLOEXEC descriptors exist only while this is held, so that no child spawned by
/// another test thread inherits the memfds meant for this one.
static SPAWN: Mutex<()> = Mutex::new(());

/// Starts `cachekit-shm-stress <role>` with the writer's memfds; kills it after `limit`.
fn spawn(w: &Writer, name: &str, role: &str, args: &[String], limit: Duration, stdin: bool) -> Kid {
    let fds = w.fds().expect("a memfd-backed writer");
    let mut child: Child = {
        let _only_us = SPAWN.lock().unwrap_or_else(|e| e.into_inner());
        // Duplicates (close-on-exec like every fd Rust makes), then cleared so that they,
        // and only they, survive the exec. Dropped once the child has its copies.
        let inherit = fds.try_clone().expect("dup the memfds");
        for fd in [&inherit.table, &inherit.client] {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).expect("clear FD_CLOEXEC");
        }
        Command::new(BIN)
            .arg(role)
            .args(["--table-fd", &inherit.table.as_raw_fd().to_string()])
            .args(["--client-fd", &inherit.client.as_raw_fd().to_string()])
            .args(args)
            .stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"))
    };
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    let stdin = child.stdin.take();
    let done = Arc::new(AtomicBool::new(false));
    let flag = done.clone();
    let who = name.to_owned();
    let watchdog = thread::spawn(move || {
        let deadline = Instant::now() + limit;
        let exit = loop {
            if let Some(st) = child.try_wait().expect("wait for a child") {
                break Exit::Status(st);
            }
            if Instant::now() >= deadline {
                // Not reaped yet (try_wait said so), so the pid is still this child's.
                eprintln!("watchdog: {who} still running after {limit:?}; killing it");
                let _ = child.kill();
                let _ = child.wait();
                break Exit::TimedOut;
            }
            thread::sleep(Duration::from_millis(10));
        };
        flag.store(true, Ordering::Release);
        exit
    });
    Kid {
        name: name.to_owned(),
        done,
        watchdog,
        stdin,
        stdout,
    }
}

impl Kid {
    fn finished(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Waits for the child (bounded by its watchdog); returns its stdout. Panics unless it
    /// exited 0.
    fn finish(mut self) -> String {
        drop(self.stdin.take());
        let mut out = String::new();
        self.stdout
            .read_to_string(&mut out)
            .expect("read child stdout");
        let exit = self.watchdog.join().expect("watchdog thread");
        match exit {
            Exit::Status(s) if s.success() => out,
            other => panic!("{} ended with {other:?}; stdout: {out}", self.name),
        }
    }

    /// Sends one line, returns the one-line answer (EOF, e.g. after a watchdog kill, panics).
    fn ask(&mut self, line: &str) -> String {
        let stdin = self.stdin.as_mut().expect("piped stdin");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .expect("write to child");
        let mut reply = String::new();
        let n = self.stdout.read_line(&mut reply).expect("read child reply");
        assert!(
            n > 0,
            "{} closed its stdout before answering {line:?}",
            self.name
        );
        reply.trim_end().to_owned()
    }
}

/// The counters of a child's flat JSON line (`"name":number` pairs; others ignored).
fn counts(out: &str) -> BTreeMap<String, u64> {
    let line = out
        .lines()
        .rfind(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON line in {out:?}"));
    line.trim_matches(|c| c == '{' || c == '}')
        .split(',')
        .filter_map(|kv| {
            let (k, v) = kv.split_once(':')?;
            Some((k.trim_matches('"').to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn get(c: &BTreeMap<String, u64>, k: &str) -> u64 {
    *c.get(k).unwrap_or_else(|| panic!("no {k:?} in {c:?}"))
}

/// Starts a stress reader that reads until its stdin is closed (by [`Kid::finish`]),
/// capped at the longest possible phase, and watched a margin beyond that.
fn spawn_reader(w: &Writer, name: &str, role: &str, secs: f64, extra: &[String]) -> Kid {
    let cap = Duration::from_secs_f64(secs) + OVERTIME;
    let mut args = vec![
        "--secs".into(),
        cap.as_secs_f64().to_string(),
        "--until-eof".into(),
        "true".into(),
    ];
    args.extend_from_slice(extra);
    spawn(w, name, role, &args, cap + MARGIN, true)
}

/// Closes every reader's stdin (they stop), then collects their counts.
fn finish_all(mut kids: Vec<Kid>) -> Vec<BTreeMap<String, u64>> {
    for k in &mut kids {
        drop(k.stdin.take());
    }
    kids.into_iter().map(|k| counts(&k.finish())).collect()
}

/// A reader that ended before the writer closed its stdin crashed (or hit its cap).
fn any_finished(kids: &[Kid]) -> bool {
    kids.iter().any(Kid::finished)
}

fn print_writer_stats(label: &str, w: &Writer) {
    let s: Vec<String> = w.stats().iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("{label} writer: {}", s.join(" "));
}

// ---------------------------------------------------------------------------------------
// Torn or wrong values
// ---------------------------------------------------------------------------------------

/// A 1 MiB arena of 16 segments: the writer's working set is hundreds of times larger,
/// so segments are recycled all the time while the readers copy out of them.
fn small_table() -> TableConfig {
    TableConfig {
        arena_bytes: 1 << 20,
        segment_bytes: Some(64 << 10),
        max_value_bytes: 16 << 10,
        ..Default::default()
    }
}

/// A torn-value phase: `readers` readers; the writer goes on for at least `secs` and
/// until `min_recycles` segments were recycled by memory pressure (flushes not counted),
/// [`OVERTIME`] at most. With `sabotage`, one insert in 64 publishes a value encoded for
/// the neighbouring key (the negative control).
struct TornRun {
    readers: usize,
    secs: f64,
    min_recycles: u64,
    sabotage: bool,
}

struct TornResult {
    readers: Vec<BTreeMap<String, u64>>,
    pressure_recycles: u64,
}

fn torn_run(w: &mut Writer, run: &TornRun) -> TornResult {
    let seed = seed();
    println!(
        "torn: seed {seed:#x}, {} readers, {} s",
        run.readers, run.secs
    );
    let kids: Vec<Kid> = (0..run.readers)
        .map(|i| {
            let seed = seed ^ (i as u64 + 1).wrapping_mul(0x1234_5678_9ABC);
            // The negative control's readers are expected to find bad values: count them
            // without describing them.
            let report = if run.sabotage { "0" } else { "5" };
            spawn_reader(
                w,
                &format!("torn-reader {i}"),
                "torn-reader",
                run.secs,
                &[
                    "--seed".into(),
                    seed.to_string(),
                    "--report".into(),
                    report.into(),
                ],
            )
        })
        .collect();

    let mut rng = Rng(seed);
    let mut versions = vec![0u32; codec::NAMESPACES.len() * codec::KEYS as usize];
    let mut value = Vec::new();
    let mut tag_a = String::new();
    let mut tag_b = String::new();
    let start = Instant::now();
    let mut next_flush = start + Duration::from_millis(2_500);
    let (min_end, max_end) = (
        start + Duration::from_secs_f64(run.secs),
        start + Duration::from_secs_f64(run.secs) + OVERTIME,
    );
    let mut flush_recycles = 0;
    let mut ops = 0u64;
    loop {
        let now = Instant::now();
        let pressure = w.stat(Stat::Recycles) - flush_recycles;
        if any_finished(&kids) || now >= max_end || (now >= min_end && pressure >= run.min_recycles)
        {
            break;
        }
        for _ in 0..64 {
            ops += 1;
            let (ns, id) = codec::pick(&mut rng, 8);
            let slot = codec::slot(ns, id);
            let v = &mut versions[slot as usize];
            *v += 1;
            let len = codec::pick_len(&mut rng);
            // Grace is half the TTL.
            let ttl = codec::pick_ttl(&mut rng, id);
            let encoded_slot = if run.sabotage && ops & 63 == 0 {
                codec::slot(ns, (id + 1) % codec::KEYS)
            } else {
                slot
            };
            codec::encode(encoded_slot, *v, len, ttl, &mut value);
            // Tags on half of the keys, two levels deep for some.
            tag_a.clear();
            tag_b.clear();
            let n_tags = match id % 4 {
                0 => {
                    let _ = write!(tag_a, "grp/{}", id % 64);
                    1
                }
                1 => {
                    let _ = write!(tag_a, "grp/{}/sub/{}", id % 64, id % 3);
                    let _ = write!(tag_b, "all/{}", id % 2);
                    2
                }
                _ => 0,
            };
            let tag_list = [tag_a.as_str(), tag_b.as_str()];
            let tags = &tag_list[..n_tags];
            let opts = InsertOptions {
                ttl_ms: (ttl > 0).then_some(ttl as u64),
                grace_ms: ttl as u64 / 2,
                tags,
            };
            let (k, kl) = codec::key(id);
            w.insert(codec::NAMESPACES[ns], &k[..kl], &value, &opts)
                .expect("insert");
            match ops % 1024 {
                0 => {
                    let mode = if rng.below(2) == 0 {
                        InvalidateMode::Hierarchical
                    } else {
                        InvalidateMode::Exact
                    };
                    let tag = format!("grp/{}", rng.below(64));
                    w.invalidate(codec::NAMESPACES[ns], &tag, mode)
                        .expect("invalidate");
                }
                512 => {
                    w.expire();
                }
                n if n % 97 == 0 => {
                    let (dns, did) = codec::pick(&mut rng, 8);
                    let (k, kl) = codec::key(did);
                    w.delete(codec::NAMESPACES[dns], &k[..kl]);
                }
                _ => {}
            }
        }
        w.heartbeat();
        if Instant::now() >= next_flush {
            // Every segment recycled at once, under the readers' feet.
            let before = w.stat(Stat::Recycles);
            w.clear_all();
            flush_recycles += w.stat(Stat::Recycles) - before;
            next_flush += Duration::from_millis(2_500);
        }
    }
    let pressure = w.stat(Stat::Recycles) - flush_recycles;
    println!(
        "torn: writer did {ops} inserts in {:.1} s; {pressure} segments recycled by memory pressure, {flush_recycles} by flushes",
        start.elapsed().as_secs_f64()
    );
    TornResult {
        readers: finish_all(kids),
        pressure_recycles: pressure,
    }
}

const TORN_KEYS: [&str; 13] = [
    "reads",
    "hits",
    "stale_hits",
    "misses",
    "retries",
    "gave_up",
    "corrupt",
    "checked",
    "bad",
    "wrong_key",
    "bad_checksum",
    "bad_filler",
    "backwards",
];

fn print_counts(label: &str, keys: &[&str], c: &BTreeMap<String, u64>) {
    let s: Vec<String> = keys.iter().map(|k| format!("{k}={}", get(c, k))).collect();
    println!("{label}: {}", s.join(" "));
}

#[test]
#[cfg_attr(miri, ignore = "processes and memfds: Miri runs neither")]
fn torn_or_wrong_values_never_reach_readers() {
    let cfg = small_table();
    let mut w = Writer::create(&cfg, Backing::Memfd).expect("create table");
    assert!(w.max_value_bytes() >= codec::MAX_LEN);
    // Memory pressure: the arena goes round at least 20 times while the readers read.
    let segments = cfg.arena_bytes / cfg.segment_bytes.unwrap();
    let run = TornRun {
        readers: 2,
        secs: stress_secs(),
        min_recycles: 20 * segments,
        sabotage: false,
    };
    let TornResult {
        readers,
        pressure_recycles,
    } = torn_run(&mut w, &run);
    print_writer_stats("torn", &w);
    for (i, c) in readers.iter().enumerate() {
        print_counts(&format!("torn reader {i}"), &TORN_KEYS, c);
    }
    for (i, c) in readers.iter().enumerate() {
        assert_eq!(get(c, "bad"), 0, "reader {i} got bad values: {c:?}");
        assert_eq!(
            get(c, "corrupt"),
            0,
            "reader {i} saw entries failing the table's own check: {c:?}"
        );
        assert!(
            get(c, "hits") > 0,
            "reader {i} never hit: the test checked nothing: {c:?}"
        );
        assert_eq!(
            get(c, "checked"),
            get(c, "hits"),
            "reader {i}: every hit must be verified: {c:?}"
        );
        assert_eq!(get(c, "too_small"), 0, "reader {i}: {c:?}");
    }
    assert!(
        pressure_recycles >= run.min_recycles,
        "only {pressure_recycles} segments recycled by memory pressure in {OVERTIME:?} overtime (wanted {})",
        run.min_recycles
    );
    assert!(w.stat(Stat::Evictions) > 0, "nothing was evicted");
}

/// Negative control: a writer that publishes wrong values is caught by the readers.
#[test]
#[cfg_attr(miri, ignore = "processes and memfds: Miri runs neither")]
fn torn_reader_catches_wrong_values() {
    let mut w = Writer::create(&small_table(), Backing::Memfd).expect("create table");
    let run = TornRun {
        readers: 1,
        secs: stress_secs().min(1.5),
        min_recycles: 0,
        sabotage: true,
    };
    let c = &torn_run(&mut w, &run).readers[0];
    print_counts("sabotaged torn reader", &TORN_KEYS, c);
    assert!(
        get(c, "wrong_key") > 0,
        "a writer publishing other keys' values went unnoticed: {c:?}"
    );
    assert_eq!(get(c, "bad"), get(c, "wrong_key"), "{c:?}");
}

/// The value checker itself: splices of two versions, foreign keys and flipped bytes are
/// all rejected.
#[test]
#[cfg_attr(miri, ignore = "processes and memfds: Miri runs neither")]
fn value_checker_rejects_torn_values() {
    use cachekit_shm::HitMeta;
    use codec::Bad;
    let meta = |len| HitMeta {
        value_len: len,
        created_ms: 1_000,
        expires_ms: None,
        grace_until_ms: None,
        stale: false,
        version: 1_000 << 20,
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for len in [16, 17, 100, 4096, codec::MAX_LEN] {
        codec::encode(7, 1, len, 0, &mut a);
        codec::encode(7, 2, len, 0, &mut b);
        assert_eq!(codec::verify(&a, 7, &meta(len), 5, 5), Ok(1));
        assert_eq!(codec::verify(&a, 8, &meta(len), 5, 5), Err(Bad::WrongKey));
        // Version 2's first half with version 1's second half: what a torn copy looks like.
        let mut torn = b.clone();
        torn[len / 2..].copy_from_slice(&a[len / 2..]);
        assert!(
            matches!(
                codec::verify(&torn, 7, &meta(len), 5, 5),
                Err(Bad::Checksum | Bad::Filler)
            ),
            "len {len}"
        );
        for at in [0, 4, 8, 12, len / 2, len - 1] {
            let mut flipped = a.clone();
            flipped[at] ^= 0x10;
            assert!(
                codec::verify(&flipped, 7, &meta(len), 5, 5).is_err(),
                "flip at {at} of {len}"
            );
        }
    }
    // TTL metadata must match the value's, and an entry past grace is never a valid hit.
    codec::encode(7, 1, 40, 300, &mut a);
    let timed = |grace_until| HitMeta {
        value_len: 40,
        created_ms: 1_000,
        expires_ms: Some(1_300),
        grace_until_ms: Some(grace_until),
        stale: false,
        version: 1_000 << 20,
    };
    assert_eq!(codec::verify(&a, 7, &timed(1_450), 1_200, 1_200), Ok(1));
    assert_eq!(
        codec::verify(&a, 7, &timed(1_451), 1_200, 1_200),
        Err(Bad::Meta)
    );
    assert_eq!(
        codec::verify(&a, 7, &meta(40), 1_200, 1_200),
        Err(Bad::Meta)
    );
    let mut late = timed(1_450);
    late.stale = true;
    assert_eq!(codec::verify(&a, 7, &late, 1_400, 1_400), Ok(1));
    assert_eq!(codec::verify(&a, 7, &late, 1_450, 1_450), Err(Bad::Meta));
}

/// Found by the torn-value stress: the contract says an entry is gone after its
/// `grace_until` (Unix ms, the clock the writer stamps entries with), and the reader's
/// deadline clock is documented to judge deadlines early, never late. Checked directly
/// here: entries with a 1 to 3 ms TTL and no grace, read in a loop until they miss; a hit
/// whose deadline had passed before the read began is served late.
#[test]
#[cfg_attr(miri, ignore = "processes and memfds: Miri runs neither")]
fn expired_entries_are_never_served_late() {
    let mut w = Writer::create(&small_table(), Backing::Memfd).expect("create table");
    let fds = w.fds().expect("memfd backing");
    let r = Reader::attach(fds.table_fd(), Some(fds.client_fd())).expect("attach");
    let mut late = Vec::new();
    let (mut entries, mut hits) = (0u64, 0u64);
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end && late.len() < 5 {
        entries += 1;
        let key = entries.to_le_bytes();
        let opts = InsertOptions {
            ttl_ms: Some(1 + entries % 3),
            grace_ms: 0,
            tags: &[],
        };
        w.insert("t", &key, b"v", &opts).expect("insert");
        loop {
            let t0 = now_ms();
            let Some((_, m)) = r.get("t", &key) else {
                break;
            };
            hits += 1;
            let gone_at = m
                .grace_until_ms
                .expect("a TTL'd entry has a grace deadline");
            if gone_at <= t0 {
                late.push(format!(
                    "served at {t0} or later, gone at {gone_at} (created {})",
                    m.created_ms
                ));
                break;
            }
        }
    }
    println!(
        "deadlines: {entries} entries, {hits} hits, {} served late",
        late.len()
    );
    assert!(
        late.is_empty(),
        "{} of {entries} entries were served after their grace deadline (by now_ms()): {late:#?}",
        late.len()
    );
}

// ---------------------------------------------------------------------------------------
// Invalidation
// ---------------------------------------------------------------------------------------

/// Room for the churn of the rounds without any eviction: the steady keys must never be
/// evicted, so that a steady miss can only be a bug.
fn inv_table() -> TableConfig {
    TableConfig {
        arena_bytes: 2 << 20,
        segment_bytes: Some(64 << 10),
        max_value_bytes: 16 << 10,
        ..Default::default()
    }
}

fn insert_steady(w: &mut Writer) {
    for (ns, key, tag) in plan::STEADY {
        let tags: &[&str] = if tag.is_empty() { &[] } else { &[tag] };
        let opts = InsertOptions {
            tags,
            ..Default::default()
        };
        w.insert(ns, key.as_bytes(), &plan::steady_value(ns, key), &opts)
            .expect("insert steady key");
    }
}

/// Runs invalidation rounds for `secs`, then stops the readers; `skip_invalidate` is the
/// negative control. Returns the readers' counts.
fn inv_run(
    w: &mut Writer,
    readers: usize,
    secs: f64,
    skip_invalidate: bool,
) -> Vec<BTreeMap<String, u64>> {
    insert_steady(w);
    // Without invalidation (the negative control) violations are expected: count them
    // without describing them.
    let report = if skip_invalidate { "0" } else { "5" };
    let kids: Vec<Kid> = (0..readers)
        .map(|i| {
            spawn_reader(
                w,
                &format!("inv-reader {i}"),
                "inv-reader",
                secs,
                &["--report".into(), report.into()],
            )
        })
        .collect();
    let end = Instant::now() + Duration::from_secs_f64(secs);
    let mut round = 0u64;
    while !any_finished(&kids) && Instant::now() < end {
        round += 1;
        for (key, tags) in plan::CHURN {
            let opts = InsertOptions {
                tags,
                ..Default::default()
            };
            w.insert(plan::NS, key.as_bytes(), &round.to_le_bytes(), &opts)
                .expect("insert churn key");
        }
        if round % 8 == 2 {
            // Pauses keep each window open for a while, for the readers to fall in:
            // here, live `posts/1` entries of a round not yet published (fresh hits, so
            // the check is not vacuous)...
            thread::sleep(Duration::from_millis(1));
        }
        if !skip_invalidate {
            w.invalidate(plan::NS, plan::TAG, InvalidateMode::Hierarchical)
                .expect("invalidate");
        }
        // Published only after the invalidation returned.
        w.insert(
            plan::NS,
            plan::ROUND_KEY,
            &round.to_le_bytes(),
            &InsertOptions::default(),
        )
        .expect("publish round");
        if round % 8 == 6 {
            // ... and here, the window that matters: the round is published, its entries
            // are invalidated but still in the index, and every read of them must miss.
            thread::sleep(Duration::from_millis(1));
        }
    }
    println!("inv: writer ran {round} rounds");
    finish_all(kids)
}

const INV_KEYS: [&str; 12] = [
    "loops",
    "max_round",
    "violations",
    "fresh_hits",
    "churn_misses",
    "steady_hits",
    "steady_misses",
    "bad_value",
    "hits",
    "misses",
    "retries",
    "gave_up",
];

#[test]
#[cfg_attr(miri, ignore = "processes and memfds: Miri runs neither")]
fn invalidation_is_immediate_across_processes() {
    let mut w = Writer::create(&inv_table(), Backing::Memfd).expect("create table");
    let readers = inv_run(&mut w, 2, stress_secs(), false);
    print_writer_stats("inv", &w);
    for (i, c) in readers.iter().enumerate() {
        print_counts(&format!("inv reader {i}"), &INV_KEYS, c);
    }
    // Preconditions of "steady keys always hit": nothing was evicted.
    assert_eq!(
        w.stat(Stat::Evictions),
        0,
        "the table is too small for this test"
    );
    assert_eq!(
        w.stat(Stat::BucketEvictions),
        0,
        "the table is too small for this test"
    );
    assert!(
        w.stat(Stat::Recycles) > 0,
        "the rounds should recycle segments"
    );
    for (i, c) in readers.iter().enumerate() {
        assert_eq!(
            get(c, "violations"),
            0,
            "reader {i} read invalidated entries: {c:?}"
        );
        assert_eq!(
            get(c, "steady_misses"),
            0,
            "reader {i} missed keys that were never invalidated: {c:?}"
        );
        assert_eq!(get(c, "bad_value"), 0, "reader {i}: {c:?}");
        assert_eq!(get(c, "corrupt"), 0, "reader {i}: {c:?}");
        assert!(
            get(c, "max_round") > 0,
            "reader {i} never saw a round: {c:?}"
        );
        assert!(get(c, "steady_hits") > 0, "reader {i}: {c:?}");
    }
    let fresh: u64 = readers.iter().map(|c| get(c, "fresh_hits")).sum();
    assert!(
        fresh > 0,
        "no reader ever found a live posts/1 entry: the check was vacuous"
    );
}

/// Negative control: without the invalidation, readers see the stale rounds.
#[test]
#[cfg_attr(miri, ignore = "processes and memfds: Miri runs neither")]
fn invalidation_checker_catches_a_missing_invalidation() {
    let mut w = Writer::create(&inv_table(), Backing::Memfd).expect("create table");
    let c = &inv_run(&mut w, 1, stress_secs().min(1.5), true)[0];
    print_counts("inv reader without invalidation", &INV_KEYS, c);
    assert!(
        get(c, "violations") > 0,
        "stale posts/1 entries went unnoticed: {c:?}"
    );
}

/// Each mutation, as soon as it returns, is what every other process reads.
#[test]
#[cfg_attr(miri, ignore = "processes and memfds: Miri runs neither")]
fn mutations_are_seen_by_other_processes() {
    let mut w = Writer::create(&inv_table(), Backing::Memfd).expect("create table");
    let none = InsertOptions::default();
    let tagged = |tags: &'static [&'static str]| InsertOptions {
        tags,
        ..Default::default()
    };
    w.insert("h", b"a", b"a1", &tagged(&["posts/1"])).unwrap();
    w.insert("h", b"b", b"b1", &tagged(&["posts/1/x"])).unwrap();
    w.insert("h", b"c", b"c1", &tagged(&["posts/2"])).unwrap();
    w.insert("h", b"d", b"d1", &tagged(&["posts/10"])).unwrap();
    w.insert("h", b"e", b"e1", &tagged(&["posts"])).unwrap();
    w.insert("h", b"f", b"f1", &none).unwrap();
    w.insert("h2", b"a", b"other", &tagged(&["posts/1"]))
        .unwrap();

    let limit = Duration::from_secs(30);
    let mut kids: Vec<Kid> = (0..2)
        .map(|i| spawn(&w, &format!("check {i}"), "check", &[], limit, true))
        .collect();
    let mut expect = |step: &str, lines: &[&str]| {
        for kid in &mut kids {
            for line in lines {
                let reply = kid.ask(line);
                assert!(
                    reply.starts_with("ok"),
                    "{step}: {} answered {reply:?} to {line:?}",
                    kid.name
                );
            }
        }
    };

    expect("before", &["h a=a1 b=b1 c=c1 d=d1 e=e1 f=f1", "h2 a=other"]);
    w.invalidate("h", "posts/1", InvalidateMode::Hierarchical)
        .unwrap();
    expect(
        "invalidate posts/1",
        &["h a=- b=- c=c1 d=d1 e=e1 f=f1", "h2 a=other"],
    );
    w.insert("h", b"a", b"a2", &tagged(&["posts/1"])).unwrap();
    expect("re-insert after invalidation", &["h a=a2 b=-"]);
    w.invalidate("h", "posts", InvalidateMode::Exact).unwrap();
    expect("exact invalidation of posts", &["h a=a2 c=c1 d=d1 e=-"]);
    w.insert("h", b"f", b"f2", &none).unwrap();
    expect("overwrite", &["h f=f2"]);
    assert!(w.delete("h", b"c"));
    expect("delete", &["h c=- d=d1"]);
    w.clear_namespace("h");
    expect("clear namespace", &["h a=- d=- f=-", "h2 a=other"]);
    w.insert("h", b"g", b"g1", &none).unwrap();
    expect("insert after clear", &["h g=g1"]);
    w.clear_all();
    expect("clear all", &["h g=-", "h2 a=-"]);

    for kid in kids {
        let c = counts(&kid.finish());
        assert_eq!(get(&c, "corrupt"), 0, "{c:?}");
    }
}
