//! Atomic operations across two hosts (two daemons, one Redis), through the Rust client:
//! incr never loses an update, exactly one add wins, a counter built on cas ends exact, and
//! take / touch / delete_matching keep their meaning on the other host. With Redis gone they
//! fail rather than decide on one host.

mod common;
mod redis_util;

use cachekit_client::{
    Client, ClientOptions, Error, IncrOptions, ScanOptions, SetOptions, Source, Ttl,
};
use common::Site;
use redis_util::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::Duration;

const NS: &str = "atomic";

fn client(host: &cachekit_testkit::Daemon) -> Client {
    let opts = ClientOptions::new()
        .socket(host.socket())
        .namespace(NS)
        .request_timeout(Duration::from_secs(10));
    let mut c = None;
    assert!(
        eventually(PATIENCE, || {
            c = Client::connect(opts.clone()).ok();
            c.is_some()
        }),
        "cachekitd did not come up"
    );
    c.unwrap()
}

/// Polls until `key` reads `want` (as an i64) through `c`.
fn reads(c: &Client, key: &str, want: i64) -> bool {
    eventually(PATIENCE, || {
        c.get(key).unwrap().and_then(|v| v.as_i64()) == Some(want)
    })
}

#[test]
fn counters_adds_and_cas_across_two_hosts() {
    cachekit_testkit::watchdog(Duration::from_secs(60), || {
        let redis = Redis::start();
        let (site_a, site_b) = (Site::new("atomic-a"), Site::new("atomic-b"));
        let host_a = start_host(&site_a, &redis.url(), &[]);
        let host_b = start_host(&site_b, &redis.url(), &[]);
        // Two clients (own connections) per host.
        let clients = [
            client(&host_a),
            client(&host_a),
            client(&host_b),
            client(&host_b),
        ];
        const EACH: i64 = 300;
        const KEYS: u64 = 60;
        let barrier = Barrier::new(clients.len());
        let add_wins = AtomicU64::new(0);
        std::thread::scope(|s| {
            for c in &clients {
                let (barrier, add_wins) = (&barrier, &add_wins);
                s.spawn(move || {
                    barrier.wait();
                    for i in 0..EACH {
                        c.incr("counter", 1, &IncrOptions::new().initial(0))
                            .unwrap();
                        if (i as u64) < KEYS
                            && c.add(format!("lock:{i}"), b"x", &SetOptions::new())
                                .unwrap()
                        {
                            add_wins.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    // A counter built on get + cas, with retries.
                    for _ in 0..100 {
                        loop {
                            let Some(v) = c.get("cas").unwrap() else {
                                c.add("cas", b"0", &SetOptions::new()).unwrap();
                                continue;
                            };
                            let next = (v.as_i64().unwrap() + 1).to_string();
                            if c.cas("cas", next.as_bytes(), v.version, &SetOptions::new())
                                .unwrap()
                            {
                                break;
                            }
                        }
                    }
                });
            }
        });
        let total = EACH * clients.len() as i64;
        for c in [&clients[0], &clients[2]] {
            assert!(
                reads(c, "counter", total),
                "counter on one host is not {total}"
            );
            assert!(reads(c, "cas", 400), "cas counter on one host is not 400");
        }
        assert_eq!(
            add_wins.load(Ordering::Relaxed),
            KEYS,
            "exactly one add per key"
        );
        let (a_ops, b_ops) = (
            clients[0]
                .stats()
                .unwrap()
                .daemon_counter("redis_atomic_ops"),
            clients[2]
                .stats()
                .unwrap()
                .daemon_counter("redis_atomic_ops"),
        );
        assert!(
            a_ops.unwrap() > 0 && b_ops.unwrap() > 0,
            "both hosts went through Redis"
        );
    });
}

#[test]
fn take_touch_and_delete_matching_reach_the_other_host() {
    cachekit_testkit::watchdog(Duration::from_secs(60), || {
        let mut redis = Redis::start();
        let (site_a, site_b) = (Site::new("atomic-meaning-a"), Site::new("atomic-meaning-b"));
        let host_a = start_host(&site_a, &redis.url(), &[]);
        let host_b = start_host(&site_b, &redis.url(), &[]);
        let (a, b) = (client(&host_a), client(&host_b));

        // TAKE on B removes what A wrote, on A too.
        a.set("once", b"v", &SetOptions::new()).unwrap();
        assert_eq!(a.get("once").unwrap().unwrap().source, Source::Segment);
        assert_eq!(b.get_and_delete("once").unwrap().unwrap().bytes, b"v");
        assert!(eventually(PATIENCE, || a.get("once").unwrap().is_none()));
        assert!(b.get_and_delete("once").unwrap().is_none());

        // TOUCH on B: A's copy goes, and A reads the new expiry from Redis.
        a.set("t", b"v", &SetOptions::new().ttl(Duration::from_secs(5)))
            .unwrap();
        assert!(b.touch("t", Some(Duration::from_secs(3600))).unwrap());
        assert!(eventually(PATIENCE, || matches!(
            a.ttl("t").unwrap(),
            Ttl::Remaining(d) if d > Duration::from_secs(3000)
        )));
        assert!(b.persist("t").unwrap());
        assert!(eventually(PATIENCE, || a.ttl("t").unwrap() == Ttl::Never));

        // Not an integer: refused on either host, value unchanged.
        a.set("text", b"hello", &SetOptions::new()).unwrap();
        assert!(matches!(
            b.incr("text", 1, &IncrOptions::new()),
            Err(Error::InvalidArgument { .. })
        ));
        assert_eq!(a.get("text").unwrap().unwrap().bytes, b"hello");

        // DELETE_MATCHING on A: B's copies and the records in Redis go.
        for i in 0..100 {
            a.set(
                format!("user:{i}"),
                b"u",
                &SetOptions::new().tag(format!("g/{}", i % 2)),
            )
            .unwrap();
            a.set(format!("item:{i}"), b"i", &SetOptions::new())
                .unwrap();
        }
        for i in 0..100 {
            assert!(b.get(format!("user:{i}")).unwrap().is_some());
        }
        let deleted = a
            .delete_matching(&ScanOptions::new().pattern("user:*").tag("g/1"))
            .unwrap();
        assert_eq!(deleted, 50 + 50, "50 from A's table, 50 records in Redis");
        assert!(eventually(PATIENCE, || {
            (0..100).all(|i| {
                let got = b.get(format!("user:{i}")).unwrap().is_some();
                got == (i % 2 == 0)
            })
        }));
        assert_eq!(
            b.scan(&ScanOptions::new().pattern("item:*")).count(),
            0,
            "B never read items"
        );
        assert!(b.get("item:3").unwrap().is_some());

        // Redis gone: atomic operations fail, they never decide on one host.
        redis.kill();
        match a.add("new", b"x", &SetOptions::new()) {
            Err(Error::Unavailable { message }) => {
                assert!(message.contains("Redis"), "{message}")
            }
            other => panic!("add with Redis down must fail: {other:?}"),
        }
        assert!(a.get("new").unwrap().is_none());
    });
}
