//! Fill leases across hosts (`LeaseOptions { global: true }`): two daemons as two hosts and
//! one Redis. Callers on both hosts query one missing key: it is computed once in all (the
//! count is kept outside the cache) and every caller gets the value; with Redis killed, each
//! host still computes once; a value computed across an invalidation (or a delete) made on
//! the other host is not served as fresh on either host, nor kept in Redis; a released lease
//! passes to the other host at once, not after its lease time.

mod common;
mod redis_util;

use cachekit_client::{
    Client, ClientOptions, LeaseOptions, LeaseOutcome, QueryOptions, SetOptions,
};
use cachekit_proto::{Lease, Reply, Request, LEASE_GLOBAL};
use common::Site;
use redis_util::*;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Barrier};
use std::time::{Duration, Instant};

const NS: &str = "leases";

fn connect(socket: &Path) -> Client {
    let opts = ClientOptions::new()
        .socket(socket)
        .namespace(NS)
        .request_timeout(Duration::from_secs(15));
    let mut client = None;
    assert!(
        eventually(PATIENCE, || {
            client = Client::connect(opts.clone()).ok();
            client.is_some()
        }),
        "cachekitd did not come up within {PATIENCE:?}"
    );
    client.unwrap()
}

fn global(tag: &str) -> QueryOptions {
    QueryOptions {
        set: SetOptions::new().ttl(Duration::from_secs(60)).tag(tag),
        lease: LeaseOptions {
            global: true,
            ..LeaseOptions::default()
        },
        ..QueryOptions::default()
    }
}

fn counter(c: &Client, name: &str) -> u64 {
    c.stats()
        .unwrap()
        .daemon_counter(name)
        .unwrap_or_else(|| panic!("STATS has no {name}"))
}

/// Two hosts on `redis`, each with `per_host` clients.
struct Hosts {
    _sites: (Site, Site),
    _daemons: (common::Daemon, common::Daemon),
    a: Vec<Client>,
    b: Vec<Client>,
}

fn two_hosts(redis: &Redis, story: &str, per_host: usize) -> Hosts {
    let sites = (
        Site::new(&format!("{story}-a")),
        Site::new(&format!("{story}-b")),
    );
    let da = start_host(&sites.0, &redis.url(), &[]);
    let db = start_host(&sites.1, &redis.url(), &[]);
    let a = (0..per_host).map(|_| connect(da.socket())).collect();
    let b = (0..per_host).map(|_| connect(db.socket())).collect();
    Hosts {
        _sites: sites,
        _daemons: (da, db),
        a,
        b,
    }
}

/// `threads` callers on each host query `key` at once; returns how many computations ran.
fn query_from_both(h: &Hosts, key: &str, threads: usize, compute_for: Duration) -> u64 {
    let computed = AtomicU64::new(0);
    let barrier = Barrier::new(2 * threads);
    std::thread::scope(|s| {
        for t in 0..2 * threads {
            let clients = if t % 2 == 0 { &h.a } else { &h.b };
            let c = &clients[(t / 2) % clients.len()];
            let (computed, barrier) = (&computed, &barrier);
            s.spawn(move || {
                barrier.wait();
                let v = c
                    .query(key, &global("t"), || {
                        computed.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(compute_for);
                        Ok::<_, String>(b"value".to_vec())
                    })
                    .unwrap();
                assert_eq!(v.bytes, b"value", "caller {t} got the value");
            });
        }
    });
    computed.load(Ordering::SeqCst)
}

#[test]
fn callers_on_two_hosts_compute_a_missing_key_once() {
    let redis = Redis::start();
    let h = two_hosts(&redis, "glease-once", 2);
    for round in 0..3 {
        let key = format!("k{round}");
        let n = query_from_both(&h, &key, 16, Duration::from_millis(300));
        assert_eq!(
            n, 1,
            "round {round}: one computation for 32 callers on two hosts"
        );
        // Both hosts now serve it from their own table, without a computation.
        for c in [&h.a[0], &h.b[0]] {
            let v = c
                .query(&key, &global("t"), || Err::<Vec<u8>, _>("must not run"))
                .unwrap();
            assert_eq!(v.bytes, b"value");
        }
    }
    let (la, lb) = (
        counter(&h.a[0], "redis_leases"),
        counter(&h.b[0], "redis_leases"),
    );
    assert_eq!(la + lb, 3, "one Redis lease per key");
    let waits = counter(&h.a[0], "redis_lease_waits") + counter(&h.b[0], "redis_lease_waits");
    assert_eq!(waits, 3, "the other host's holder waited for each key");
    assert_eq!(counter(&h.a[0], "redis_lease_fallbacks"), 0);
    for c in [&h.a[0], &h.b[0]] {
        assert_eq!(counter(c, "leases_active"), 0, "nothing left behind");
    }
    let mut r = redis.conn();
    let leases: Vec<String> = redis::cmd("KEYS")
        .arg("ck:*:lease:*")
        .query(&mut r)
        .unwrap();
    assert!(
        leases.is_empty(),
        "fills released the Redis leases: {leases:?}"
    );
}

#[test]
fn with_redis_killed_each_host_computes_once() {
    let mut redis = Redis::start();
    let h = two_hosts(&redis, "glease-dead", 2);
    redis.kill();
    let started = Instant::now();
    let n = query_from_both(&h, "k", 16, Duration::from_millis(300));
    assert_eq!(n, 2, "one computation per host (the host's lease alone)");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "a dead Redis never blocks the lease: took {:?}",
        started.elapsed()
    );
    assert!(counter(&h.a[0], "redis_lease_fallbacks") >= 1);
    assert!(counter(&h.b[0], "redis_lease_fallbacks") >= 1);
}

/// Host A's caller computes `k` (tagged `t`, global or host scope) while host B runs
/// `meddle`; the value computed must not be served as fresh on either host, nor stored in
/// Redis.
fn computed_across(story: &str, global_scope: bool, meddle: impl FnOnce(&Client)) {
    let redis = Redis::start();
    let h = two_hosts(&redis, story, 1);
    let (a, b) = (&h.a[0], &h.b[0]);
    // B has used the namespace: it follows its stream.
    assert!(b.get("other").unwrap().is_none());
    let mut o = global("t");
    o.lease.global = global_scope;
    let (started_tx, started_rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let o = &o;
        let holder = s.spawn(move || {
            a.query("k", o, || {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                Ok::<_, String>(b"old".to_vec())
            })
            .unwrap()
        });
        started_rx.recv().unwrap();
        meddle(b);
        go_tx.send(()).unwrap();
        let v = holder.join().unwrap();
        assert_eq!(v.bytes, b"old", "the caller gets what it computed");
        assert_eq!(v.version, 0, "not stored");
    });
    for (host, c) in [("A", a), ("B", b)] {
        if let Some(v) = c.get("k").unwrap() {
            assert!(
                v.bytes != b"old" || v.stale,
                "host {host} serves the value computed across the change as fresh"
            );
        }
    }
    let mut r = redis.conn();
    let kept: Option<Vec<u8>> = redis::cmd("GET")
        .arg(format!("ck:{{{NS}}}:v:k"))
        .query(&mut r)
        .unwrap();
    assert_eq!(kept, None, "Redis does not keep the value");
    assert!(counter(a, "redis_lease_fills_refused") >= 1);
    // The next query computes afresh, and that value is kept.
    let v = b
        .query("k", &o, || Ok::<_, String>(b"new".to_vec()))
        .unwrap();
    assert_eq!(v.bytes, b"new");
    assert!(
        eventually(PATIENCE, || a
            .get("k")
            .unwrap()
            .is_some_and(|v| v.bytes == b"new")),
        "host A reads the new value"
    );
}

#[test]
fn an_invalidation_on_another_host_during_a_global_computation_is_not_lost() {
    computed_across("glease-inv", true, |b| b.invalidate(&["t"]).unwrap());
}

#[test]
fn an_invalidation_on_another_host_during_a_host_computation_is_not_lost() {
    computed_across("hlease-inv", false, |b| b.invalidate(&["t"]).unwrap());
}

#[test]
fn a_delete_on_another_host_during_a_global_computation_is_not_lost() {
    computed_across("glease-del", true, |b| {
        b.delete("k").unwrap();
    });
}

#[test]
fn a_released_lease_passes_to_the_other_host_at_once() {
    let redis = Redis::start();
    let h = two_hosts(&redis, "glease-pass", 1);
    let (a, b) = (&h.a[0], &h.b[0]);
    let o = global("t");
    let LeaseOutcome::Granted(lease) = a.lease("k", &o.lease).unwrap() else {
        panic!("host A's caller holds the lease")
    };
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let started = Instant::now();
            let v = b
                .query("k", &o, || Ok::<_, String>(b"from b".to_vec()))
                .unwrap();
            (v, started.elapsed())
        });
        assert!(
            eventually(PATIENCE, || counter(b, "redis_lease_waits") == 1),
            "host B's holder waits for host A"
        );
        let released = Instant::now();
        lease.release().unwrap();
        let (v, _) = waiter.join().unwrap();
        assert_eq!(v.bytes, b"from b", "host B computed once A released");
        let handover = released.elapsed();
        println!("global lease hand-over after a release: {handover:?}");
        assert!(
            handover < Duration::from_secs(2),
            "took {handover:?}; the lease time is {:?}",
            o.lease.lease_timeout
        );
    });
    // A holder whose connection closes without a release (its process died) releases its
    // Redis lease too: host A does not wait out the lease time.
    let mut holder = h._daemons.1.client("holder");
    let granted = holder.call(&Request::Lease(Lease {
        namespace: NS.into(),
        key: b"k2".to_vec(),
        wait_ms: 0,
        lease_ms: 30_000,
        flags: LEASE_GLOBAL,
    }));
    assert!(
        matches!(granted, Reply::LeaseGranted { .. }),
        "host B's raw caller holds the lease of k2: {granted:?}"
    );
    std::thread::scope(|s| {
        let waiter = s.spawn(|| {
            let started = Instant::now();
            let v = a
                .query("k2", &o, || Ok::<_, String>(b"from a".to_vec()))
                .unwrap();
            (v, started.elapsed())
        });
        assert!(
            eventually(PATIENCE, || counter(a, "redis_lease_waits") == 1),
            "host A's holder waits for host B"
        );
        let closed = Instant::now();
        drop(holder);
        let (v, _) = waiter.join().unwrap();
        assert_eq!(v.bytes, b"from a");
        let handover = closed.elapsed();
        println!("global lease hand-over after the holder's connection closed: {handover:?}");
        assert!(handover < Duration::from_secs(2), "took {handover:?}");
    });
}

#[test]
fn this_hosts_own_write_just_before_the_lease_does_not_refuse_its_fill() {
    let redis = Redis::start();
    let h = two_hosts(&redis, "lease-own", 1);
    let a = &h.a[0];
    for global_scope in [false, true] {
        let mut o = global("t");
        o.lease.global = global_scope;
        for i in 0..50 {
            let key = format!("k{i}-{global_scope}");
            a.set(&key, b"before", &SetOptions::new().tag("t")).unwrap();
            a.delete(&key).unwrap();
            let v = a
                .query(&key, &o, || Ok::<_, String>(b"value".to_vec()))
                .unwrap();
            assert_ne!(
                v.version, 0,
                "{key}: the fill was refused for a delete made before its lease"
            );
            assert_eq!(a.get(&key).unwrap().unwrap().bytes, b"value");
        }
    }
    assert_eq!(counter(a, "redis_lease_fills_refused"), 0);
}
