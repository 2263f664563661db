//! Fill leases and `Client::query` against the real `cachekitd`: one computation per key per
//! host however many callers miss it, stale-while-revalidate with exactly one refresh, a
//! failing computation that reaches its caller only, a lease that passes on when its holder
//! stalls, and a value computed across an invalidation that is not stored as fresh.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use cachekit_client::{
    Client, ClientOptions, LeaseOptions, LeaseOutcome, OnTimeout, QueryError, QueryOptions,
    SetOptions, Source,
};
use cachekit_testkit::{watchdog, Daemon};

fn connect(socket: &std::path::Path) -> Client {
    let opts = ClientOptions::new()
        .socket(socket)
        .namespace("query")
        .request_timeout(Duration::from_secs(5));
    support::connect_eventually(opts)
}

fn opts(ttl: Duration, grace: Duration) -> QueryOptions {
    QueryOptions {
        set: SetOptions::new().ttl(ttl).grace(grace).tag("q/1"),
        ..QueryOptions::default()
    }
}

#[test]
fn a_missing_key_is_computed_once_for_every_caller() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("query-once", &["--memory", "16MiB"]);
        let clients: Vec<Client> = (0..4).map(|_| connect(daemon.socket())).collect();
        let computed = AtomicU64::new(0);
        let barrier = Barrier::new(16);
        std::thread::scope(|s| {
            for t in 0..16 {
                let (c, computed, barrier) = (&clients[t % 4], &computed, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let o = opts(Duration::from_secs(60), Duration::ZERO);
                    let v = c
                        .query("k", &o, || {
                            computed.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(200));
                            Ok::<_, String>(b"value".to_vec())
                        })
                        .unwrap();
                    assert_eq!(v.bytes, b"value");
                });
            }
        });
        assert_eq!(
            computed.load(Ordering::SeqCst),
            1,
            "one computation for 16 callers"
        );
        let stats = clients[0].stats().unwrap();
        assert_eq!(stats.daemon_counter("leases_granted"), Some(1));
        assert_eq!(stats.daemon_counter("lease_fills"), Some(1));
        assert_eq!(stats.daemon_counter("leases_active"), Some(0));
    });
}

#[test]
fn a_stale_value_is_served_while_exactly_one_caller_refreshes_it() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("query-stale", &["--memory", "16MiB"]);
        let clients: Vec<Client> = (0..4).map(|_| connect(daemon.socket())).collect();
        let o = opts(Duration::from_millis(100), Duration::from_secs(60));
        clients[0]
            .query("k", &o, || Ok::<_, String>(b"old".to_vec()))
            .unwrap();
        std::thread::sleep(Duration::from_millis(150));
        let refreshes = AtomicU64::new(0);
        let barrier = Barrier::new(8);
        // Long enough that a stale caller descheduled on a loaded machine still returns
        // before the refresh ends (both checks below depend on it).
        let slow = Duration::from_secs(2);
        std::thread::scope(|s| {
            for t in 0..8 {
                let (c, refreshes, barrier, o) = (&clients[t % 4], &refreshes, &barrier, &o);
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let v = c
                        .query("k", o, || {
                            refreshes.fetch_add(1, Ordering::SeqCst);
                            std::thread::sleep(slow);
                            Ok::<_, String>(b"new".to_vec())
                        })
                        .unwrap();
                    if v.bytes == b"old" {
                        assert!(v.stale);
                        assert!(start.elapsed() < slow, "a stale caller does not wait");
                    } else {
                        assert_eq!(v.source, Source::Computed, "only the refresher gets new");
                    }
                });
            }
        });
        assert_eq!(refreshes.load(Ordering::SeqCst), 1, "exactly one refresh");
        let v = clients[1]
            .query("k", &o, || Err::<Vec<u8>, _>("must not run"))
            .unwrap();
        assert_eq!((v.bytes.as_slice(), v.stale), (&b"new"[..], false));
    });
}

#[test]
fn a_failing_computation_reaches_its_caller_only_and_caches_nothing() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("query-fail", &["--memory", "16MiB"]);
        let (a, b) = (connect(daemon.socket()), connect(daemon.socket()));
        let o = opts(Duration::from_secs(60), Duration::ZERO);
        let LeaseOutcome::Granted(lease) = a.lease("k", &o.lease).unwrap() else {
            panic!("the first caller holds the lease")
        };
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                b.query("k", &o, || Ok::<_, String>(b"from b".to_vec()))
                    .unwrap()
            });
            std::thread::sleep(Duration::from_millis(100));
            // The holder's computation fails: it releases; the waiter takes over and computes.
            lease.release().unwrap();
            let v = waiter.join().unwrap();
            assert_eq!(
                (v.bytes.as_slice(), v.source),
                (&b"from b"[..], Source::Computed)
            );
        });
        match a.query("other", &o, || Err::<Vec<u8>, _>("boom")) {
            Err(QueryError::Compute(e)) => assert_eq!(e, "boom"),
            other => panic!("the error goes to the caller: {other:?}"),
        }
        assert!(a.get("other").unwrap().is_none(), "nothing cached");
        assert_eq!(
            b.stats().unwrap().daemon_counter("lease_releases"),
            Some(2),
            "the explicit release and the failed computation's"
        );
    });
}

#[test]
fn a_stalled_holder_loses_the_lease_and_waits_end_on_time() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("query-stall", &["--memory", "16MiB"]);
        let (a, b) = (connect(daemon.socket()), connect(daemon.socket()));
        let short = LeaseOptions {
            lease_timeout: Duration::from_millis(200),
            wait_timeout: Duration::from_secs(5),
            global: false,
        };
        let LeaseOutcome::Granted(stalled) = a.lease("k", &short).unwrap() else {
            panic!()
        };
        let start = Instant::now();
        let LeaseOutcome::Granted(next) = b.lease("k", &short).unwrap() else {
            panic!("the waiter takes over once the holder's lease time is up")
        };
        assert!(start.elapsed() >= Duration::from_millis(150));
        assert_eq!(
            stalled.fill(b"late", &SetOptions::new()).unwrap(),
            None,
            "refused"
        );
        assert!(next.fill(b"on time", &SetOptions::new()).unwrap().is_some());
        assert_eq!(a.get("k").unwrap().unwrap().bytes, b"on time");

        // A waiter whose wait ends first: busy, or (query) an error or its own computation.
        let LeaseOutcome::Granted(_held) = a.lease("w", &LeaseOptions::default()).unwrap() else {
            panic!()
        };
        let quick = QueryOptions {
            lease: LeaseOptions {
                wait_timeout: Duration::from_millis(100),
                ..LeaseOptions::default()
            },
            on_timeout: OnTimeout::Error,
            ..QueryOptions::default()
        };
        let start = Instant::now();
        assert!(matches!(
            b.query("w", &quick, || Ok::<_, String>(b"x".to_vec())),
            Err(QueryError::Timeout { .. })
        ));
        assert!(start.elapsed() < Duration::from_secs(2));
        let own = QueryOptions {
            on_timeout: OnTimeout::Compute,
            ..quick
        };
        let v = b
            .query("w", &own, || Ok::<_, String>(b"mine".to_vec()))
            .unwrap();
        assert_eq!(v.bytes, b"mine");
    });
}

#[test]
fn a_value_computed_across_an_invalidation_is_not_stored_as_fresh() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("query-race", &["--memory", "16MiB"]);
        let c = connect(daemon.socket());
        let o = opts(Duration::from_secs(60), Duration::ZERO);
        let LeaseOutcome::Granted(lease) = c.lease("k", &o.lease).unwrap() else {
            panic!()
        };
        // The database row changes and the write invalidates, while the old row is computed.
        c.invalidate(&["q/1"]).unwrap();
        assert_eq!(lease.fill(b"old row", &o.set).unwrap(), None);
        assert!(c.get("k").unwrap().is_none(), "not served");
        // A delete of the key does the same.
        let LeaseOutcome::Granted(lease) = c.lease("k", &o.lease).unwrap() else {
            panic!()
        };
        c.delete("k").unwrap();
        assert_eq!(lease.fill(b"old row", &o.set).unwrap(), None);
        // Nor does a delete by pattern that takes the key.
        let LeaseOutcome::Granted(lease) = c.lease("k", &o.lease).unwrap() else {
            panic!()
        };
        c.delete_matching(&cachekit_client::ScanOptions::new().pattern("k*"))
            .unwrap();
        assert_eq!(lease.fill(b"old row", &o.set).unwrap(), None);
        assert!(c.get("k").unwrap().is_none());
        // An invalidation of another tag does not.
        let LeaseOutcome::Granted(lease) = c.lease("k", &o.lease).unwrap() else {
            panic!()
        };
        c.invalidate(&["q/2"]).unwrap();
        assert!(lease.fill(b"row", &o.set).unwrap().is_some());
        assert_eq!(c.get("k").unwrap().unwrap().bytes, b"row");
    });
}

#[test]
fn query_with_encryption_and_hashed_keys() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("query-crypt", &["--memory", "16MiB"]);
        let opts = ClientOptions::new()
            .socket(daemon.socket())
            .namespace("query")
            .encryption(
                cachekit_client::Encryption::new(cachekit_client::MasterKey::from_bytes([7u8; 32]))
                    .hash_keys(true),
            );
        let a = Client::connect(opts.clone()).unwrap();
        let b = Client::connect(opts).unwrap();
        let o = opts_default();
        let LeaseOutcome::Granted(lease) = a.lease("secret", &o.lease).unwrap() else {
            panic!()
        };
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                b.query("secret", &o, || Err::<Vec<u8>, _>("not me"))
                    .unwrap()
            });
            std::thread::sleep(Duration::from_millis(50));
            assert!(lease.fill(b"sealed", &o.set).unwrap().is_some());
            assert_eq!(
                waiter.join().unwrap().bytes,
                b"sealed",
                "the waiter decrypts the fill"
            );
        });
        assert_eq!(a.get("secret").unwrap().unwrap().bytes, b"sealed");
        let plain = connect(daemon.socket());
        assert!(
            plain.get("secret").unwrap().is_none(),
            "the key itself is hashed"
        );
    });
}

fn opts_default() -> QueryOptions {
    opts(Duration::from_secs(60), Duration::ZERO)
}
