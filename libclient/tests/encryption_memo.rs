//! The memo of opened values against real processes (a real `cachekitd`, a real
//! `redis-server`): it never hides a change of the stored bytes, never crosses tenants or
//! namespaces, stays within its budget, and is absent with a budget of 0.

mod support;

use std::path::Path;
use std::time::Duration;

use cachekit_client::{Client, ClientOptions, Encryption, Error, MasterKey, SetOptions};
use cachekit_testkit::{eventually, watchdog, Daemon, Redis, Site};

fn key(n: u8) -> MasterKey {
    MasterKey::from_bytes(std::array::from_fn(|i| n.wrapping_mul(29) ^ i as u8))
}

fn options(socket: &Path, ns: &str) -> ClientOptions {
    ClientOptions::new()
        .socket(socket)
        .namespace(ns)
        .request_timeout(Duration::from_secs(2))
}

fn connect(opts: ClientOptions) -> Client {
    support::connect_eventually(opts)
}

#[test]
fn repeated_hits_and_rewrites_through_the_memo() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("memo-hits", &[]);
        let c = connect(options(daemon.socket(), "m").encryption(Encryption::new(key(1))));
        let set = SetOptions::new();
        for i in 0..50u32 {
            c.set(format!("k{i}"), format!("value {i:04}"), &set)
                .unwrap();
        }
        let mut out = Vec::new();
        for round in 0..5 {
            for i in 0..50u32 {
                let want = format!("value {i:04}").into_bytes();
                assert_eq!(c.get(format!("k{i}")).unwrap().unwrap().bytes, want);
                c.get_into(format!("k{i}"), &mut out).unwrap().unwrap();
                assert_eq!(out, want, "round {round}");
            }
        }
        assert_eq!(c.memo_usage().unwrap().0, 50);
        // A rewrite of the same length is seen by the very next get.
        for i in 0..50u32 {
            c.set(format!("k{i}"), format!("VALUE {i:04}"), &set)
                .unwrap();
            assert_eq!(
                c.get(format!("k{i}")).unwrap().unwrap().bytes,
                format!("VALUE {i:04}").into_bytes()
            );
        }
        // Compressed values (LZ4 under the encryption) too.
        let big = vec![b'z'; 8000];
        c.set("big", &big, &set).unwrap();
        for _ in 0..3 {
            assert_eq!(c.get("big").unwrap().unwrap().bytes, big);
        }
        // Budget 0: no memo, same answers.
        let off = connect(
            options(daemon.socket(), "m").encryption(Encryption::new(key(1)).memo_bytes(0)),
        );
        assert_eq!(off.memo_usage(), None);
        assert_eq!(off.get("k7").unwrap().unwrap().bytes, b"VALUE 0007");
        // Without encryption there is nothing to remember.
        assert_eq!(connect(options(daemon.socket(), "m")).memo_usage(), None);
    });
}

#[test]
fn the_memo_holds_its_budget() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("memo-budget", &[]);
        let budget = 64 << 10;
        let c = connect(
            options(daemon.socket(), "b").encryption(Encryption::new(key(2)).memo_bytes(budget)),
        );
        let value = vec![7u8; 1000];
        for i in 0..300u32 {
            c.set(format!("k{i}"), &value, &SetOptions::new()).unwrap();
            assert_eq!(c.get(format!("k{i}")).unwrap().unwrap().bytes, value);
            let (_, bytes) = c.memo_usage().unwrap();
            assert!(bytes <= budget, "{bytes} bytes over a budget of {budget}");
        }
        let (entries, _) = c.memo_usage().unwrap();
        assert!(
            entries > 10 && entries < 64,
            "{entries} entries of ~1 KiB in 64 KiB"
        );
        // Values over the size cap are not kept.
        let huge = vec![1u8; cachekit_client::MEMO_MAX_VALUE_BYTES + 1];
        let big = connect(options(daemon.socket(), "b").encryption(Encryption::new(key(2))));
        big.set("huge", &huge, &SetOptions::new()).unwrap();
        assert_eq!(big.get("huge").unwrap().unwrap().bytes, huge);
        assert_eq!(big.memo_usage().unwrap().0, 0);
    });
}

#[test]
fn tenants_and_namespaces_never_share_entries() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("memo-tenants", &[]);
        let t1 = connect(
            options(daemon.socket(), "shared").encryption(Encryption::new(key(1)).tenant("t1")),
        );
        let t2 = connect(
            options(daemon.socket(), "shared").encryption(Encryption::new(key(1)).tenant("t2")),
        );
        t1.set("k", b"t1's secret", &SetOptions::new()).unwrap();
        for _ in 0..3 {
            assert_eq!(t1.get("k").unwrap().unwrap().bytes, b"t1's secret");
        }
        // The same stored bytes, read by another tenant's client: never t1's memo.
        for _ in 0..3 {
            assert!(matches!(t2.get("k"), Err(Error::Decrypt { .. })));
        }
        assert_eq!(t2.memo_usage().unwrap().0, 0);
        // Two namespaces of one client (tenant = namespace), same key, same plaintext length.
        let a = connect(options(daemon.socket(), "ns-a").encryption(Encryption::new(key(1))));
        let b = a.with_namespace("ns-b").unwrap();
        a.set("k", b"AAAA", &SetOptions::new()).unwrap();
        b.set("k", b"BBBB", &SetOptions::new()).unwrap();
        for _ in 0..3 {
            assert_eq!(a.get("k").unwrap().unwrap().bytes, b"AAAA");
            assert_eq!(b.get("k").unwrap().unwrap().bytes, b"BBBB");
        }
        assert_eq!(a.memo_usage().unwrap().0, 2);
    });
}

/// A value memoised on host B; then its record in Redis is rewritten by host A and a byte of
/// the new record flipped before B reads it again: B fills the tampered bytes from Redis and
/// gets the decrypt error, not the memo's plaintext.
#[test]
fn a_tampered_record_fails_after_the_value_was_memoised() {
    watchdog(Duration::from_secs(120), || {
        let redis = Redis::start();
        let host = |site: &Site| {
            site.start(&[
                "--redis-url",
                &redis.url(),
                "--redis-poll-ms",
                "100",
                "--redis-timeout-ms",
                "500",
                "--memory",
                "8MiB",
            ])
        };
        let (site_a, site_b) = (Site::new("memo-a"), Site::new("memo-b"));
        let (host_a, host_b) = (host(&site_a), host(&site_b));
        let enc = Encryption::new(key(3));
        let a = connect(options(host_a.socket(), "shop").encryption(enc.clone()));
        let b = connect(options(host_b.socket(), "shop").encryption(enc));
        a.set("alice", b"card 4111", &SetOptions::new()).unwrap();
        for _ in 0..3 {
            assert_eq!(b.get("alice").unwrap().unwrap().bytes, b"card 4111");
        }
        assert_eq!(b.memo_usage().unwrap().0, 1, "B remembered the value");
        // The same plaintext again from A: new envelope bytes (a fresh nonce) in Redis, and an
        // invalidation that drops B's copy from B's segment.
        a.set("alice", b"card 4111", &SetOptions::new()).unwrap();
        let mut conn = redis.conn();
        let mut record: Vec<u8> = redis::cmd("GET")
            .arg("ck:{shop}:v:alice")
            .query(&mut conn)
            .unwrap();
        *record.last_mut().unwrap() ^= 1; // the last byte: the GCM tag
        let () = redis::cmd("SET")
            .arg("ck:{shop}:v:alice")
            .arg(&record)
            .query(&mut conn)
            .unwrap();
        assert!(
            eventually(Duration::from_secs(10), || b
                .get_local("alice")
                .unwrap()
                .is_none()),
            "B's daemon did not drop its copy after A's write"
        );
        for _ in 0..3 {
            match b.get("alice") {
                Err(Error::Decrypt { .. }) => {}
                other => panic!("the tampered record gave {other:?}, not a decrypt error"),
            }
        }
        // The fill put the tampered bytes in B's segment: the segment hit path (the memo's)
        // refuses them too.
        match b.get_local("alice") {
            Err(Error::Decrypt { .. }) => {}
            other => panic!("the tampered segment entry gave {other:?}, not a decrypt error"),
        }
    });
}
