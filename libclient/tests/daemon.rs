//! The client against the real `cachekitd` binary: the hit path, a stuck daemon (SIGSTOP), a
//! killed and restarted daemon (kill -9, new segment, new epoch).
//!
//! The daemons come from the workspace test kit (`cachekit-testkit`), which finds the binary
//! (`$CACHEKITD_BIN`, else `target/<profile>/cachekitd`) and fails, saying how to build it,
//! when there is none: these tests never pass without running.

mod support;

use support::noise;

use std::path::Path;
use std::time::Duration;

use cachekit_client::{Client, ClientOptions, Error, SetOptions, Source};
use cachekit_testkit::{eventually, watchdog, Daemon, Redis};

/// A daemon of the kit with a fast heartbeat (a stuck or dead one is noticed within 200 ms)
/// and `extra` flags.
fn start(story: &str, extra: &[&str]) -> Daemon {
    let mut flags = vec!["--heartbeat-ms", "50", "--heartbeat-timeout-ms", "200"];
    flags.extend_from_slice(extra);
    Daemon::start(story, &flags)
}

fn connect(socket: &Path) -> Client {
    let opts = ClientOptions::new()
        .socket(socket)
        .namespace("itest")
        .request_timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(300));
    support::connect_eventually(opts)
}

#[test]
fn against_the_real_daemon() {
    watchdog(Duration::from_secs(120), move || {
        let mut daemon = start("real-daemon", &["--memory", "8MiB"]);
        let client = connect(daemon.socket());

        // Hits: from the segment, no socket request.
        client
            .set(
                "k",
                b"v1",
                &SetOptions::new().ttl(Duration::from_secs(60)).tag("a/b"),
            )
            .unwrap();
        let before = client.request_count();
        for _ in 0..100 {
            let v = client.get("k").unwrap().unwrap();
            assert_eq!(
                (v.bytes.as_slice(), v.source),
                (&b"v1"[..], Source::Segment)
            );
        }
        assert_eq!(client.request_count(), before);
        // A miss of a daemon without a second tier is answered from the segment: the segment
        // is the whole cache (with Redis, `misses_ask_the_daemon_only_with_a_second_tier`).
        assert!(client.get("absent").unwrap().is_none());
        assert_eq!(client.request_count(), before);
        // Invalidation is immediate.
        client.invalidate(&["a"]).unwrap();
        assert!(client.get("k").unwrap().is_none());
        client.set("k", b"v1", &SetOptions::new()).unwrap();
        assert!(client.stats().unwrap().daemon_counter("sets").is_some());
        let first_epoch = client.ping().unwrap().epoch;

        // A stuck daemon: its heartbeat goes stale and its socket does not answer, so gets
        // miss (they must not serve a segment that may miss invalidations) and writes fail.
        daemon.pause();
        assert!(eventually(Duration::from_secs(10), || client
            .get("k")
            .unwrap()
            .is_none()));
        let e = client.set("k", b"v2", &SetOptions::new()).unwrap_err();
        assert!(e.is_unavailable(), "{e}");
        daemon.resume();
        assert!(eventually(Duration::from_secs(10), || client
            .get("k")
            .unwrap()
            .is_some_and(|v| v.source == Source::Segment)));

        // Killed and restarted: a new segment with a new epoch, picked up without any
        // reconnect code here.
        daemon.kill_9();
        assert!(eventually(Duration::from_secs(10), || client
            .get("k")
            .unwrap()
            .is_none()));
        let e = client.set("k", b"v3", &SetOptions::new()).unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e}");
        assert!(
            e.to_string().contains("start it with `cachekitd --dir"),
            "{e}"
        );

        daemon.restart();
        assert!(eventually(Duration::from_secs(10), || client
            .set("k", b"v3", &SetOptions::new())
            .is_ok()));
        let v = client.get("k").unwrap().unwrap();
        assert_eq!(
            (v.bytes.as_slice(), v.source),
            (&b"v3"[..], Source::Segment)
        );
        let segment = client.segment().unwrap();
        assert_ne!(segment.epoch, first_epoch);
        assert!(segment.live);
        assert!(client.local_stats().reattaches >= 1);
    });
}

#[test]
fn misses_ask_the_daemon_only_with_a_second_tier() {
    watchdog(Duration::from_secs(120), move || {
        let gets = |client: &Client, keys: &[&str]| {
            let before = client.request_count();
            let mut out = Vec::new();
            for k in keys {
                assert!(client.get(k).unwrap().is_none(), "{k}");
                assert!(client.get_into(k, &mut out).unwrap().is_none(), "{k}");
            }
            let many = client.get_many(keys).unwrap();
            assert!(many.iter().all(Option::is_none));
            client.request_count() - before
        };
        let absent = ["absent-1", "absent-2", "absent-3"];

        // Without Redis the segment is the whole cache: no request for a miss, and a value
        // written by this process is read back at once (the daemon applies a write to the
        // table before it answers).
        let daemon = start("no-second-tier", &["--memory", "8MiB"]);
        let client = connect(daemon.socket());
        assert_eq!(gets(&client, &absent), 0, "misses sent requests");
        assert_eq!(client.local_stats().fetches, 0);
        for i in 0..100 {
            let k = format!("ryw-{i}");
            assert!(client.get(&k).unwrap().is_none());
            client.set(&k, b"v", &SetOptions::new()).unwrap();
            let v = client
                .get(&k)
                .unwrap()
                .expect("a write is read back at once");
            assert_eq!((v.bytes.as_slice(), v.source), (&b"v"[..], Source::Segment));
            client.delete(&k).unwrap();
            assert!(client.get(&k).unwrap().is_none());
        }
        // Another process's write (another client) is seen the same way.
        let other = connect(daemon.socket());
        other.set("from-other", b"w", &SetOptions::new()).unwrap();
        assert_eq!(client.get("from-other").unwrap().unwrap().bytes, b"w");

        // With Redis a key the segment lacks may be there: every miss asks the daemon, which
        // finds what another host (here, a direct write to Redis by a second daemon) stored.
        let redis = Redis::start();
        let flags = ["--memory", "8MiB", "--redis-url", &redis.url()];
        let with_tier = start("second-tier", &flags);
        let client = connect(with_tier.socket());
        assert_eq!(gets(&client, &absent), 9, "each miss is one FETCH");
        let elsewhere = start("second-tier-elsewhere", &flags);
        connect(elsewhere.socket())
            .set("shared", b"r", &SetOptions::new())
            .unwrap();
        assert!(eventually(Duration::from_secs(10), || client
            .get("shared")
            .unwrap()
            .is_some_and(|v| v.bytes == b"r")));
    });
}

#[test]
fn values_as_large_as_the_daemon_allows() {
    const MIB: usize = 1 << 20;
    watchdog(Duration::from_secs(120), move || {
        // cachekitd --max-value-bytes 4MiB: a 3 MiB value round-trips. 64 MiB of memory (the
        // daemon's default) holds the few values of up to 4 MiB.
        let big = start(
            "max-4mib",
            &["--max-value-bytes", "4MiB", "--memory", "64MiB"],
        );
        let client = connect(big.socket());
        assert_eq!(client.max_value_bytes(), 4 * MIB);
        let value = noise(3 * MIB, 0);
        client.set("3mib", &value, &SetOptions::new()).unwrap();
        let v = client.get("3mib").unwrap().unwrap();
        assert_eq!(v.source, Source::Segment);
        assert!(v.bytes == value, "3 MiB value came back different");
        let mut buf = Vec::new();
        let info = client.get_into("3mib", &mut buf).unwrap().unwrap();
        assert_eq!(info.len, value.len());
        assert!(buf == value);
        let before = client.request_count();
        assert!(client.get_local("3mib").unwrap().unwrap().bytes == value);
        assert_eq!(client.request_count(), before);
        // Up to the limit exactly, and not a byte more.
        client
            .set("4mib", noise(4 * MIB, 0), &SetOptions::new())
            .unwrap();
        assert_eq!(client.get("4mib").unwrap().unwrap().bytes.len(), 4 * MIB);
        let e = client
            .set("over", noise(4 * MIB + 1, 0), &SetOptions::new())
            .unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("max_value_bytes = 4194304"), "{e}");

        // A default daemon (1 MiB): a 2 MiB value is refused, naming the limit.
        let default = start("default-limits", &["--memory", "64MiB"]);
        let client = connect(default.socket());
        assert_eq!(client.max_value_bytes(), MIB);
        let e = client
            .set("2mib", noise(2 * MIB, 0), &SetOptions::new())
            .unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("max_value_bytes = 1048576"), "{e}");
        client
            .set("1mib", noise(MIB, 0), &SetOptions::new())
            .unwrap();
        assert_eq!(client.get("1mib").unwrap().unwrap().bytes.len(), MIB);
    });
}
