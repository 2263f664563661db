//! Sentinel failover with acknowledged writes the old primary never replicated.
//!
//! A primary, a replica and three sentinels (the test kit's `SentinelGroup`); two daemons as
//! two hosts reach them through one `redis+sentinel://` URL. On each host a writer sets and
//! invalidates its own keys (so each key's order of acknowledged operations is known
//! exactly; from the kill on, only half of them, so the new primary's old copies of the
//! other half stay to be read) and a reader reads every key of both writers the way an application does (the
//! mapped table, else FETCH). Then the hard case: replication to the replica is cut (the
//! replica frozen, the primary's link to it killed), the writers go on for 150 ms against the
//! primary alone (acknowledged, never replicated), the primary is killed (SIGKILL), and the
//! sentinels promote the replica, which lacks those writes and whose clocks are behind what
//! the hosts saw.
//!
//! The checker judges every read against the acknowledged operations: a value older than an
//! operation acknowledged `BOUND` before the read started is stale. It reports reads before,
//! during (kill → both hosts have handled the failover) and after; none may be stale after.

mod common;
mod redis_util;

use cachekit_proto::{Reply, Request, Set};
use cachekit_testkit::SentinelGroup;
use common::{Conn, Site};
use redis_util::*;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const NS: &str = "failover";
/// Keys per writer.
const KEYS: usize = 12;
/// The connected bound of the test's flags (`redis_poll_ms` 200 + `redis_timeout_ms` 500),
/// with room for the drain of writes queued during the failover: a read may miss an
/// operation acknowledged less than this before it started.
const BOUND: Duration = Duration::from_millis(1250);

/// What is known of one key: when each acknowledged operation raised its floor (a value
/// with a version below the floor is stale).
#[derive(Default)]
struct KeyLog {
    floors: Vec<(Instant, u64)>,
}

struct Model {
    start: Instant,
    /// `[writer][key]`.
    keys: Vec<Vec<Mutex<KeyLog>>>,
    reads: Mutex<Vec<ReadLog>>,
    /// Set at the kill: from then on the writers only set the first half of their keys, so
    /// what the new primary holds of the other half (older than what was acknowledged) stays
    /// there to be read.
    frozen: AtomicBool,
    stop: AtomicBool,
}

struct ReadLog {
    host: usize,
    at: Instant,
    /// The version read; `None`: a miss.
    version: Option<u64>,
    /// When the first operation that made it stale was acknowledged.
    stale_since: Option<Instant>,
}

fn key(w: usize, i: usize) -> String {
    format!("w{w}k{i}")
}

fn tag(w: usize, i: usize) -> String {
    format!("w{w}/{}", i % 4)
}

impl Model {
    fn raise(&self, w: usize, i: usize, floor: u64) {
        let mut k = self.keys[w][i].lock().unwrap();
        if k.floors.last().is_none_or(|&(_, f)| f < floor) {
            k.floors.push((Instant::now(), floor));
        }
    }

    /// When version `v` of key (w, i) became stale (an operation acknowledged before `at`).
    fn stale_since(&self, w: usize, i: usize, v: u64, at: Instant) -> Option<Instant> {
        let k = self.keys[w][i].lock().unwrap();
        k.floors
            .iter()
            .find(|&&(t, f)| f > v && t <= at)
            .map(|&(t, _)| t)
    }
}

fn try_set(c: &mut Conn, k: &str, value: &str, t: &str) -> bool {
    c.call(&Request::Set(Set {
        namespace: NS.into(),
        key: k.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
        ttl_ms: Some(60_000),
        grace_ms: 0,
        tags: vec![t.to_owned()],
    })) == Reply::Ok
}

fn try_invalidate(c: &mut Conn, t: &str) -> bool {
    c.call(&Request::Invalidate {
        namespace: NS.into(),
        tags: vec![t.to_owned()],
        exact: false,
    }) == Reply::Ok
}

/// Writer `w`: sets and invalidates its own keys until stopped; `next[i]` is the version
/// the next set of key i writes.
fn writer(m: &Model, c: &mut Conn, w: usize) {
    let mut next = [1u64; KEYS];
    let mut n = 0u64;
    while !m.stop.load(Ordering::Relaxed) {
        n += 1;
        let frozen = m.frozen.load(Ordering::Relaxed);
        let i = (n.wrapping_mul(7) % KEYS as u64) as usize;
        let i = if frozen { i % (KEYS / 2) } else { i };
        if n.is_multiple_of(3) && !frozen {
            // Hierarchical: `w/<i%4>` covers every key with that remainder; now and then the
            // whole writer's tree.
            let all = n.is_multiple_of(30);
            let t = if all { format!("w{w}") } else { tag(w, i) };
            if try_invalidate(c, &t) {
                for (j, &v) in next.iter().enumerate() {
                    if all || j % 4 == i % 4 {
                        m.raise(w, j, v);
                    }
                }
            }
        } else {
            let v = next[i];
            next[i] += 1;
            if try_set(c, &key(w, i), &format!("v{v}"), &tag(w, i)) {
                m.raise(w, i, v);
            }
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn reader(m: &Model, c: &mut common::Client, host: usize) {
    while !m.stop.load(Ordering::Relaxed) {
        for w in 0..2 {
            for i in 0..KEYS {
                let k = key(w, i);
                let at = Instant::now();
                let got = in_table(c, NS, &k).or_else(|| fetch(c, NS, &k));
                let version = got.map(|v| {
                    std::str::from_utf8(&v[1..])
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok())
                        .unwrap_or_else(|| panic!("a value never written: {v:?}"))
                });
                let stale_since = version.and_then(|v| m.stale_since(w, i, v, at));
                m.reads.lock().unwrap().push(ReadLog {
                    host,
                    at,
                    version,
                    stale_since,
                });
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[derive(Default, Debug)]
struct Phase {
    reads: usize,
    misses: usize,
    /// Older than an operation acknowledged before the read started.
    stale: usize,
    /// Of those, older than one acknowledged more than `BOUND` before.
    beyond_bound: usize,
    /// The oldest staleness seen (read start − the acknowledgement that made it stale).
    max_age: Duration,
}

#[test]
fn a_failover_that_loses_acknowledged_writes_serves_nothing_stale_after_the_hosts_reconnect() {
    let mut group = SentinelGroup::start();
    let url = group.url();
    let first = group.server(0).port();
    let second = group.server(1).port();
    let (site_a, site_b) = (Site::new("sentinel-a"), Site::new("sentinel-b"));
    let host_a = start_host(&site_a, &url, &[]);
    let host_b = start_host(&site_b, &url, &[]);
    let hosts = [&host_a, &host_b];
    let m = Model {
        start: Instant::now(),
        keys: (0..2)
            .map(|_| (0..KEYS).map(|_| Mutex::default()).collect())
            .collect(),
        reads: Mutex::default(),
        frozen: AtomicBool::new(false),
        stop: AtomicBool::new(false),
    };
    let mut stats: Vec<common::Client> = hosts.iter().map(|h| h.client("stats")).collect();

    let (kill_at, promoted_at, reconnected_at) = std::thread::scope(|s| {
        for (h, host) in hosts.iter().enumerate() {
            let m = &m;
            s.spawn(move || writer(m, &mut host.client("writer"), h));
            s.spawn(move || reader(m, &mut host.client("reader"), h));
        }
        std::thread::sleep(Duration::from_secs(1));

        // Cut replication: freeze the replica, make the primary drop its link.
        group.server(1).pause();
        let cut: u64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("replica")
            .query(&mut group.server(0).conn())
            .expect("CLIENT KILL TYPE replica");
        assert_eq!(cut, 1, "the primary had one replica link");
        std::thread::sleep(Duration::from_millis(150));
        let kill_at = Instant::now();
        group.server(0).kill();
        m.frozen.store(true, Ordering::Relaxed);
        group.server(1).resume();
        group.wait_for_primary(second);
        let promoted_at = Instant::now();
        assert!(
            eventually(PATIENCE, || stats
                .iter_mut()
                .all(|c| c.stat("flushes_for_failover") >= 1)),
            "a host never handled the failover: {:?}",
            stats.iter_mut().map(|c| c.stats()).collect::<Vec<_>>()
        );
        let reconnected_at = Instant::now();
        std::thread::sleep(Duration::from_secs(3));
        m.stop.store(true, Ordering::Relaxed);
        (kill_at, promoted_at, reconnected_at)
    });

    let after_from = reconnected_at + BOUND;
    let mut phases = [Phase::default(), Phase::default(), Phase::default()];
    let mut shown = 0;
    for r in m.reads.lock().unwrap().iter() {
        let p = &mut phases[if r.at < kill_at {
            0
        } else if r.at < after_from {
            1
        } else {
            2
        }];
        p.reads += 1;
        p.misses += usize::from(r.version.is_none());
        if let Some(since) = r.stale_since {
            let age = r.at - since;
            p.stale += 1;
            p.beyond_bound += usize::from(age > BOUND);
            p.max_age = p.max_age.max(age);
            if age > BOUND && r.at >= after_from && shown < 10 {
                shown += 1;
                eprintln!(
                    "stale after the failover on host {}: version {:?} at +{:?}, stale for {age:?}",
                    r.host,
                    r.version,
                    r.at - m.start
                );
            }
        }
    }
    let host_stats: Vec<_> = stats.iter_mut().map(|c| c.stats()).collect();
    println!(
        "failover {first} -> {second}: promoted {:?} after the kill, both hosts handled it {:?} after the kill",
        promoted_at - kill_at,
        reconnected_at - kill_at
    );
    for (name, p) in ["before", "during", "after"].iter().zip(&phases) {
        println!("{name:>6}: {p:?}");
    }
    for (h, st) in host_stats.iter().enumerate() {
        println!(
            "host {h}: flushes_for_failover {}, redis_failover_clears {}, flushes_for_gap {}, redis_queued {}, redis_errors {}",
            st["flushes_for_failover"],
            st["redis_failover_clears"],
            st["flushes_for_gap"],
            st["redis_queued"],
            st["redis_errors"]
        );
    }
    assert_eq!(
        phases[2].beyond_bound, 0,
        "values replaced or invalidated by acknowledged operations served after the hosts reconnected"
    );
    assert!(
        host_stats.iter().any(|s| s["redis_failover_clears"] >= 1),
        "the new primary lacked no clock value a host had seen: the hard case did not happen"
    );
    assert!(
        phases[2].reads > 100 && phases[2].reads > phases[2].misses,
        "the hosts serve again after the failover"
    );
}

/// The client library's direct fallback (its daemon dead) finds the primary through the
/// sentinels and finds the new one after a failover.
#[test]
fn the_direct_fallback_follows_a_failover() {
    use cachekit_client::{Client, ClientOptions, SetOptions};
    let mut group = SentinelGroup::start();
    let url = group.url();
    let second = group.server(1).port();
    let site = Site::new("sentinel-direct");
    let mut host = start_host(&site, &url, &[]);
    let app = Client::connect(
        ClientOptions::new()
            .socket(host.socket())
            .namespace(NS)
            .redis_url(&url)
            .request_timeout(Duration::from_secs(2)),
    )
    .expect("client");
    let opts = SetOptions::new().ttl(Duration::from_secs(60)).tag("t");
    host.kill_9();
    app.set("k", b"v1", &opts)
        .expect("a direct set through the sentinels");
    assert_eq!(app.local_stats().redis_direct_writes, 1);
    let get = |k: &str| app.get(k).expect("get").map(|v| v.bytes);
    assert_eq!(get("k").as_deref(), Some(&b"v1"[..]));

    group.server(0).kill();
    group.wait_for_primary(second);
    // The first calls after the kill fail (the old primary is gone); then the client finds
    // the new one by itself.
    assert!(
        eventually(PATIENCE, || app.set("k2", b"v2", &opts).is_ok()),
        "the direct fallback never reached the new primary: {:?}",
        app.local_stats()
    );
    assert_eq!(get("k2").as_deref(), Some(&b"v2"[..]));
    let role: redis::Value = redis::cmd("ROLE")
        .query(&mut group.server(1).conn())
        .expect("ROLE");
    assert!(format!("{role:?}").contains("master"), "{role:?}");
    let on_new: i64 = redis::cmd("EXISTS")
        .arg(format!("ck:{{{NS}}}:v:k2"))
        .query(&mut group.server(1).conn())
        .expect("EXISTS");
    assert_eq!(on_new, 1, "k2 was written on the new primary");
    app.invalidate(&["t"]).expect("a direct invalidation");
    assert_eq!(get("k2"), None);
}
