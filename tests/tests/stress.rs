//! Stress under a checker: 8 client processes × 4 threads set, get, invalidate and delete for
//! 30 s (`CACHEKIT_STRESS_SECS` overrides) against one real daemon with a small arena (8 MiB,
//! so eviction runs all along), and every read is judged (`src/checker.rs`):
//!
//! - no read returns a version older than a write or an invalidation of that key that had
//!   been acknowledged when the read started (each key has one writer thread, which publishes
//!   its acknowledged versions in a shared file, `src/floors.rs`);
//! - no thread sees a key go back to an older version;
//! - no read returns bytes never written under that key (values are self-describing and
//!   checksummed, `src/value.rs`).
//!
//! A negative control plants a stale read and a wrong value in some workers and checks that
//! the checker reports exactly those, so this test cannot pass vacuously.
//!
//! Needs `cachekitd` built first: `cargo build -p cachekitd` (scripts/test does it).
#![forbid(unsafe_code)]

mod common;

use std::time::{Duration, Instant};

use cachekit_testkit::Site;
use cachekit_tests::floors::Floors;
use cachekit_tests::stress::{Plant, StressParams, StressReport};
use common::Worker;
use serde_json::Value;

const THREADS: u32 = 4;
const KEYS_PER_WRITER: u32 = 512;
/// 8 MiB of arena in 1 MiB segments (values up to 64 KiB): the 16k keys of the run, about
/// 1.5 KiB each, do not fit, so the daemon evicts all along.
const DAEMON: &[&str] = &[
    "--memory",
    "8MiB",
    "--max-value-bytes",
    "64KiB",
    "--heartbeat-ms",
    "50",
];

fn stress_millis() -> u64 {
    let secs: f64 = std::env::var("CACHEKIT_STRESS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30.0);
    (secs * 1000.0) as u64
}

fn seed() -> u64 {
    std::env::var("CACHEKIT_STRESS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}

struct Outcome {
    per_process: Vec<StressReport>,
    total: StressReport,
    daemon: Value,
    seed: u64,
}

/// Runs one worker process per entry of `plants` (with that planted fault) for `millis`.
fn run(story: &str, plants: &[Plant], millis: u64) -> Outcome {
    let site = Site::new(story);
    let _daemon = site.start(DAEMON);
    let procs = plants.len() as u32;
    let floors = site.path("floors");
    let seed = seed();
    let base = StressParams {
        proc_id: 0,
        procs,
        threads: THREADS,
        keys_per_writer: KEYS_PER_WRITER,
        millis,
        floors: floors.clone(),
        seed,
        plant: Plant::None,
        stop_at_first_error: false,
    };
    Floors::create(&floors, base.total_keys()).expect("creating the floors file");
    let mut workers: Vec<Worker> = (0..procs)
        .map(|p| Worker::connect(&format!("P{p}"), site.dir(), &site.socket(), "stress"))
        .collect();
    let started = Instant::now();
    for (p, w) in workers.iter_mut().enumerate() {
        let params = StressParams {
            proc_id: p as u32,
            plant: plants[p],
            ..base.clone()
        };
        w.send(&format!(
            "stress {}",
            serde_json::to_string(&params).unwrap()
        ));
    }
    // The watchdog: the run's length, plus a generous margin for a loaded machine.
    let watchdog = Duration::from_millis(millis) + Duration::from_secs(90);
    let mut per_process = Vec::new();
    let mut total = StressReport::default();
    for w in &mut workers {
        let answer = w.answer("stress", watchdog.saturating_sub(started.elapsed()));
        assert_eq!(answer["ok"], true, "worker {}: {answer}", w.name);
        let r: StressReport =
            serde_json::from_value(answer["report"].clone()).expect("a stress report");
        total.merge(&r);
        per_process.push(r);
    }
    let daemon = workers[0].ok("stats")["daemon"].clone();
    eprintln!(
        "{story}: {procs} processes x {THREADS} threads for {:.1} s (seed {seed}, \
         CACHEKIT_STRESS_SEED to rerun), finished after {:.1} s\n  \
         reads {} (hits {}: segment {}, daemon {}; misses {}), writes {}, deletes {}, \
         invalidations {}, errors {}\n  \
         stale reads {}, backwards reads {}, wrong values {}, planted {}\n  \
         daemon: evictions {}, bucket evictions {}, recycles {}, inserts {}, fetches {}\n  \
         examples: {:#?}",
        millis as f64 / 1000.0,
        started.elapsed().as_secs_f64(),
        total.reads,
        total.hits,
        total.segment_hits,
        total.daemon_hits,
        total.misses,
        total.writes,
        total.deletes,
        total.invalidations,
        total.errors,
        total.stale_reads,
        total.backwards_reads,
        total.wrong_values,
        total.planted,
        daemon["table_evictions"],
        daemon["table_bucket_evictions"],
        daemon["table_recycles"],
        daemon["table_inserts"],
        daemon["fetches"],
        total.examples,
    );
    Outcome {
        per_process,
        total,
        daemon,
        seed,
    }
}

#[test]
fn eight_processes_of_four_threads_never_read_a_stale_or_wrong_value() {
    let o = run("stress", &[Plant::None; 8], stress_millis());
    let t = &o.total;
    let seed = o.seed;
    assert_eq!(
        t.wrong_values, 0,
        "wrong values (seed {seed}): {:#?}",
        t.examples
    );
    assert_eq!(
        t.stale_reads, 0,
        "stale reads (seed {seed}): {:#?}",
        t.examples
    );
    assert_eq!(
        t.backwards_reads, 0,
        "backwards reads (seed {seed}): {:#?}",
        t.examples
    );
    assert_eq!(
        t.errors, 0,
        "failed operations (seed {seed}): {:#?}",
        t.examples
    );
    // The run did what it claims to check.
    assert!(t.reads > 0 && t.writes > 0 && t.invalidations > 0 && t.deletes > 0);
    assert!(t.segment_hits > 0, "hits from the shared segment");
    assert!(t.misses > 0);
    let evicted = o.daemon["table_evictions"].as_u64().unwrap_or(0)
        + o.daemon["table_bucket_evictions"].as_u64().unwrap_or(0);
    assert!(evicted > 0, "the daemon never evicted: {}", o.daemon);
    for (p, r) in o.per_process.iter().enumerate() {
        assert!(r.hits > 0, "process {p} never hit: {r:?}");
    }
}

#[test]
fn the_checker_catches_a_planted_stale_read_and_a_planted_wrong_value() {
    let millis = stress_millis().min(3000);
    let o = run(
        "stress-negative-control",
        &[Plant::Stale, Plant::Wrong, Plant::None],
        millis,
    );
    let [stale, wrong, honest] = &o.per_process[..] else {
        unreachable!()
    };
    assert!(stale.planted > 0, "no stale read was planted: {stale:?}");
    assert!(
        stale.violations() > 0,
        "the checker let {} planted stale reads through: {stale:?}",
        stale.planted
    );
    assert_eq!(stale.wrong_values, 0, "{stale:?}");
    assert!(wrong.planted > 0, "no wrong value was planted: {wrong:?}");
    assert_eq!(
        wrong.wrong_values, wrong.planted,
        "every planted wrong value is caught, and nothing else: {wrong:?}"
    );
    assert_eq!(wrong.violations(), 0, "{wrong:?}");
    assert_eq!(honest.violations() + honest.wrong_values, 0, "{honest:?}");
}
