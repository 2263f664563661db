//! The client against an in-process stand-in for cachekitd (tests/common): the hit path, the
//! miss path, liveness and re-attach, told as stories. Each test runs under a watchdog.

mod common;
mod support;

use std::sync::Arc;
use std::time::Duration;

use cachekit_client::{Client, ClientOptions, Error, SetOptions, Source};
use cachekit_testkit::{eventually, watchdog};
use common::{socket_path, FakeDaemon, HEARTBEAT_TIMEOUT_MS};
use support::noise;

fn options(path: &std::path::Path) -> ClientOptions {
    ClientOptions::new()
        .socket(path)
        .namespace("test")
        .request_timeout(Duration::from_secs(5))
}

#[test]
fn hits_come_from_the_segment_without_socket_requests() {
    watchdog(Duration::from_secs(30), || {
        let (_dir, path) = socket_path();
        let daemon = FakeDaemon::start(&path);
        let client = Client::connect(options(&path)).unwrap();
        client
            .set(
                "k",
                b"hello",
                &SetOptions::new().ttl(Duration::from_secs(60)),
            )
            .unwrap();

        let requests = client.request_count();
        let daemon_requests = daemon.requests();
        let mut buf = Vec::new();
        for _ in 0..1000 {
            let v = client.get("k").unwrap().expect("hit");
            assert_eq!(v.bytes, b"hello");
            assert_eq!(v.source, Source::Segment);
            assert!(!v.stale);
            assert!(v.expires_ms.is_some());
            let info = client.get_into("k", &mut buf).unwrap().expect("hit");
            assert_eq!(buf, b"hello");
            assert_eq!(info.source, Source::Segment);
            assert_eq!(info.len, 5);
        }
        assert_eq!(
            client.request_count(),
            requests,
            "hits sent socket requests"
        );
        assert_eq!(daemon.requests(), daemon_requests);
        let local = client.local_stats();
        assert!(local.segment_hits >= 2000, "{local:?}");
        assert_eq!(local.fetches, 0);
    });
}

#[test]
fn a_miss_asks_the_daemon_once() {
    watchdog(Duration::from_secs(30), || {
        let (_dir, path) = socket_path();
        let _daemon = FakeDaemon::start(&path);
        let client = Client::connect(options(&path)).unwrap();
        let before = client.request_count();
        assert_eq!(client.get("absent").unwrap(), None);
        assert_eq!(client.request_count(), before + 1);
        let local = client.local_stats();
        assert_eq!((local.fetches, local.fetch_misses), (1, 1));
    });
}

#[test]
fn values_round_trip_raw_and_compressed() {
    watchdog(Duration::from_secs(30), || {
        let (_dir, path) = socket_path();
        let _daemon = FakeDaemon::start(&path);
        let client = Client::connect(options(&path)).unwrap();
        let big = "cachekit ".repeat(10_000).into_bytes(); // compresses well
        let binary: Vec<u8> = (0..=255u8).collect();
        client.set("big", &big, &SetOptions::new()).unwrap();
        client.set("bin", &binary, &SetOptions::new()).unwrap();
        client.set("empty", b"", &SetOptions::new()).unwrap();
        assert_eq!(client.get("big").unwrap().unwrap().bytes, big);
        assert_eq!(client.get("bin").unwrap().unwrap().bytes, binary);
        assert_eq!(client.get("empty").unwrap().unwrap().bytes, b"");
        let many = client.get_many(&["big", "nope", "bin"]).unwrap();
        assert_eq!(many.len(), 3);
        assert_eq!(many[0].as_ref().unwrap().bytes, big);
        assert!(many[1].is_none());
        assert_eq!(many[2].as_ref().unwrap().bytes, binary);
        // get_into reuses the caller's buffer; a miss leaves it empty.
        let mut buf = Vec::with_capacity(200_000);
        client.get_into("big", &mut buf).unwrap().unwrap();
        assert_eq!(buf, big);
        assert!(client.get_into("nope", &mut buf).unwrap().is_none());
        assert!(buf.is_empty());
    });
}

#[test]
fn writes_delete_invalidate_clear() {
    watchdog(Duration::from_secs(30), || {
        let (_dir, path) = socket_path();
        let _daemon = FakeDaemon::start(&path);
        let client = Client::connect(options(&path)).unwrap();
        let tagged = |t: &str| SetOptions::new().tag(t);
        client.set("a", b"1", &tagged("posts/1")).unwrap();
        client.set("b", b"2", &tagged("posts/1/comments")).unwrap();
        client.set("c", b"3", &tagged("posts/12")).unwrap();

        // Exact invalidation leaves the child tag alone.
        client.invalidate_exact(&["posts/1"]).unwrap();
        assert!(client.get("a").unwrap().is_none());
        assert!(client.get("b").unwrap().is_some());
        // Hierarchical covers children, not siblings that share a prefix of characters.
        client.set("a", b"1", &tagged("posts/1")).unwrap();
        client.invalidate(&["posts/1"]).unwrap();
        assert!(client.get("a").unwrap().is_none());
        assert!(client.get("b").unwrap().is_none());
        assert_eq!(client.get("c").unwrap().unwrap().bytes, b"3");

        assert!(client.delete("c").unwrap());
        assert!(!client.delete("c").unwrap());
        assert!(client.get("c").unwrap().is_none());

        // clear() is per namespace; with_namespace shares the connection state.
        let other = client.with_namespace("other").unwrap();
        assert_eq!(other.namespace(), "other");
        client.set("k", b"mine", &SetOptions::new()).unwrap();
        other.set("k", b"theirs", &SetOptions::new()).unwrap();
        assert_eq!(client.get("k").unwrap().unwrap().bytes, b"mine");
        client.clear().unwrap();
        assert!(client.get("k").unwrap().is_none());
        assert_eq!(other.get("k").unwrap().unwrap().bytes, b"theirs");
        assert_eq!(client.local_stats(), other.local_stats());
        assert_eq!(client.pool_connections().0, other.pool_connections().0);
    });
}

#[test]
fn a_stale_hit_is_marked_stale() {
    watchdog(Duration::from_secs(30), || {
        let (_dir, path) = socket_path();
        let _daemon = FakeDaemon::start(&path);
        let client = Client::connect(options(&path)).unwrap();
        let opts = SetOptions::new()
            .ttl(Duration::from_millis(50))
            .grace(Duration::from_secs(60));
        client.set("k", b"v", &opts).unwrap();
        assert!(eventually(Duration::from_secs(10), || client
            .get("k")
            .unwrap()
            .is_some_and(|v| v.stale)));
        let v = client.get("k").unwrap().unwrap();
        assert!(v.stale && !v.is_fresh());
        assert_eq!(v.source, Source::Segment);
        assert!(v.grace_until_ms.unwrap() > v.expires_ms.unwrap());
    });
}

#[test]
fn limits_are_checked_before_sending() {
    watchdog(Duration::from_secs(30), || {
        let (_dir, path) = socket_path();
        let _daemon = FakeDaemon::start(&path);
        let client = Client::connect(options(&path)).unwrap();
        let before = client.request_count();
        let long_key = vec![b'k'; 4097];
        let e = client.get(&long_key).unwrap_err();
        assert!(e.to_string().contains("max_key_bytes = 4096"), "{e}");
        let e = client.set(&long_key, b"v", &SetOptions::new()).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        let e = client
            .set("k", vec![7u8; 2 << 20], &SetOptions::new())
            .unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("max_value_bytes"), "{e}");
        let e = client
            .set("k", b"v", &SetOptions::new().tag("a//b"))
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        let nine: Vec<String> = (0..9).map(|i| format!("t{i}")).collect();
        let e = client.invalidate(&nine).unwrap_err();
        assert!(e.to_string().contains("max_tags = 8"), "{e}");
        assert!(client.with_namespace("").is_err());
        assert!(client.with_namespace(&"n".repeat(128)).is_err());
        assert_eq!(client.request_count(), before, "invalid requests were sent");
    });
}

#[test]
fn the_daemons_own_limits_apply() {
    watchdog(Duration::from_secs(30), || {
        let (_dir, path) = socket_path();
        // Announces 1000 bytes of encoded value: a daemon run with --max-value-bytes 936.
        let limits = cachekit_proto::Limits {
            max_value_bytes: 1000,
            ..cachekit_proto::Limits::DEFAULT
        };
        let _daemon = FakeDaemon::start_with(&path, limits);
        let client = Client::connect(options(&path)).unwrap();
        assert_eq!(client.max_value_bytes(), 936);
        let value = noise(1000, 0);
        let before = client.request_count();
        let e = client.set("k", &value, &SetOptions::new()).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("max_value_bytes = 936"), "{e}");
        assert!(e.to_string().contains("--max-value-bytes"), "{e}");
        assert_eq!(client.request_count(), before, "checked before sending");
        client.set("k", &value[..936], &SetOptions::new()).unwrap();
        assert_eq!(client.get("k").unwrap().unwrap().bytes, &value[..936]);
    });
}

#[test]
fn the_value_limit_follows_the_daemon_unless_capped() {
    watchdog(Duration::from_secs(60), || {
        const MIB: usize = 1 << 20;
        let (_dir, path) = socket_path();
        let daemon = FakeDaemon::start_with_max_value(&path, 3 * MIB);
        let big = noise(5 * MIB / 2, 0);

        // A lazy client starts with the configured default and adopts the daemon's limit on
        // its first write, before checking the value.
        let client = Client::connect_lazy(options(&path)).unwrap();
        assert_eq!(client.max_value_bytes(), MIB);
        client.set("big", &big, &SetOptions::new()).unwrap();
        assert_eq!(client.max_value_bytes(), 3 * MIB);
        let v = client.get("big").unwrap().unwrap();
        assert_eq!((v.bytes.len(), v.source), (big.len(), Source::Segment));
        assert!(v.bytes == big);
        let e = client
            .set("k", noise(3 * MIB + 1, 0), &SetOptions::new())
            .unwrap_err();
        assert!(e.to_string().contains("max_value_bytes = 3145728"), "{e}");

        // Decoding follows it too, on the FETCH path as well (the daemon fills from its
        // "Redis"): a fresh client's first get is a FETCH that attaches.
        let wide = cachekit_envelope::EnvelopeConfig {
            max_value_bytes: 3 * MIB,
            ..Default::default()
        };
        let envelope = cachekit_envelope::encode(&wide, &big).unwrap();
        daemon.insert_remote("test", b"remote", &envelope);
        let reader = Client::connect_lazy(options(&path)).unwrap();
        let v = reader.get("remote").unwrap().unwrap();
        assert_eq!((v.bytes.len(), v.source), (big.len(), Source::Daemon));
        assert!(v.bytes == big);
        let mut buf = Vec::new();
        let info = reader.get_local_into("remote", &mut buf).unwrap().unwrap();
        assert_eq!((info.len, info.source), (big.len(), Source::Segment));

        // An explicit envelope.max_value_bytes below the daemon's is a cap, for writes and
        // reads alike.
        let capped_opts = options(&path).envelope(cachekit_envelope::EnvelopeConfig {
            max_value_bytes: 2 * MIB,
            ..Default::default()
        });
        let capped = Client::connect(capped_opts).unwrap();
        assert_eq!(capped.max_value_bytes(), 2 * MIB);
        let e = capped
            .set("k", noise(2 * MIB + 1, 0), &SetOptions::new())
            .unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        assert!(e.to_string().contains("max_value_bytes = 2097152"), "{e}");
        assert!(e.to_string().contains("envelope.max_value_bytes"), "{e}");
        assert!(matches!(capped.get("big"), Err(Error::Envelope(_))));
        // A larger one cannot raise the daemon's.
        let wide_opts = options(&path).envelope(cachekit_envelope::EnvelopeConfig {
            max_value_bytes: 8 * MIB,
            ..Default::default()
        });
        assert_eq!(
            Client::connect(wide_opts).unwrap().max_value_bytes(),
            3 * MIB
        );
    });
}

#[test]
fn get_local_reads_the_segment_and_nothing_else() {
    watchdog(Duration::from_secs(30), || {
        let (_dir, path) = socket_path();
        let daemon = FakeDaemon::start(&path);
        let client = Client::connect(options(&path)).unwrap();
        client
            .set(
                "k",
                b"hello",
                &SetOptions::new().ttl(Duration::from_secs(60)),
            )
            .unwrap();
        let envelope = cachekit_envelope::encode(&Default::default(), b"from redis").unwrap();
        daemon.insert_remote("test", b"remote", &envelope);

        let requests = client.request_count();
        let daemon_requests = daemon.requests();
        let mut buf = Vec::new();
        for _ in 0..100 {
            let v = client.get_local("k").unwrap().expect("hit");
            assert_eq!(
                (v.bytes.as_slice(), v.source),
                (&b"hello"[..], Source::Segment)
            );
            assert!(v.expires_ms.is_some() && !v.stale);
            let info = client.get_local_into("k", &mut buf).unwrap().expect("hit");
            assert_eq!(
                (buf.as_slice(), info.len, info.source),
                (&b"hello"[..], 5, Source::Segment)
            );
            // Not in the segment: None, whatever the daemon could answer.
            assert_eq!(client.get_local("absent").unwrap(), None);
            assert_eq!(client.get_local("remote").unwrap(), None);
            assert!(client.get_local_into("remote", &mut buf).unwrap().is_none());
            assert!(buf.is_empty());
        }
        assert_eq!(
            client.request_count(),
            requests,
            "get_local sent socket requests"
        );
        assert_eq!(daemon.requests(), daemon_requests);
        assert_eq!(client.local_stats().fetches, 0);

        // A full get asks the daemon, which fills the segment; then get_local sees it.
        let v = client.get("remote").unwrap().expect("the daemon has it");
        assert_eq!(
            (v.bytes.as_slice(), v.source),
            (&b"from redis"[..], Source::Daemon)
        );
        assert_eq!(client.request_count(), requests + 1);
        let v = client
            .get_local("remote")
            .unwrap()
            .expect("now in the segment");
        assert_eq!(v.source, Source::Segment);

        // Its errors are get's: a key over the limit, stored bytes that are not an envelope.
        let e = client.get_local(vec![b'k'; 4097]).unwrap_err();
        assert!(matches!(e, Error::TooLarge { .. }), "{e}");
        daemon.insert("test", b"raw", b"not an envelope at all");
        assert!(matches!(client.get_local("raw"), Err(Error::Envelope(_))));
        assert_eq!(client.request_count(), requests + 1);
    });
}

#[test]
fn get_local_never_connects_refreshes_or_waits() {
    watchdog(Duration::from_secs(30), || {
        // A lazy client that has not reached the daemon: None, and no connection attempt.
        let (_dir, path) = socket_path();
        let lazy = Client::connect_lazy(options(&path)).unwrap();
        assert_eq!(lazy.get_local("k").unwrap(), None);
        let l = lazy.local_stats();
        assert_eq!((l.requests, l.connects, l.connect_failures), (0, 0, 0));

        let daemon = FakeDaemon::start(&path);
        let client = Client::connect(options(&path)).unwrap();
        client.set("k", b"v", &SetOptions::new()).unwrap();
        assert!(client.get_local("k").unwrap().is_some());
        // The daemon is up now, but get_local does not attach it...
        assert_eq!(lazy.get_local("k").unwrap(), None);
        assert_eq!(lazy.local_stats().connects, 0);
        // ...a full get does, and from then on get_local hits.
        assert!(lazy.get("k").unwrap().is_some());
        assert_eq!(lazy.get_local("k").unwrap().unwrap().bytes, b"v");

        // Stale heartbeat: the segment is not trusted, so get_local is None, with no request
        // and no refresh (the idle pooled connection is not dropped).
        daemon.pause_heartbeat();
        let requests = client.request_count();
        let (open, _) = client.pool_connections();
        assert!(open >= 1);
        assert!(eventually(Duration::from_secs(10), || client
            .get_local("k")
            .unwrap()
            .is_none()));
        for _ in 0..100 {
            assert!(client.get_local("k").unwrap().is_none());
        }
        assert_eq!(client.request_count(), requests);
        assert_eq!(client.pool_connections().0, open);
        assert!(client.local_stats().stale_heartbeat > 0);
        // The full get still answers, from the daemon.
        assert_eq!(client.get("k").unwrap().unwrap().source, Source::Daemon);
        daemon.resume_heartbeat();
        assert!(eventually(Duration::from_secs(10), || client
            .get_local("k")
            .unwrap()
            .is_some()));
    });
}

#[test]
fn stale_heartbeat_bypasses_the_segment() {
    watchdog(Duration::from_secs(30), || {
        let (_dir, path) = socket_path();
        let daemon = FakeDaemon::start(&path);
        let client = Client::connect(options(&path)).unwrap();
        client.set("k", b"v", &SetOptions::new()).unwrap();
        assert_eq!(client.get("k").unwrap().unwrap().source, Source::Segment);

        daemon.pause_heartbeat();
        // Once the heartbeat is older than heartbeat_timeout_ms, gets go to the daemon.
        assert!(eventually(Duration::from_secs(10), || client
            .get("k")
            .unwrap()
            .is_some_and(|v| v.source == Source::Daemon)));
        assert!(!client.segment().unwrap().live);
        assert!(client.local_stats().stale_heartbeat > 0);

        daemon.resume_heartbeat();
        assert!(eventually(Duration::from_secs(10), || client
            .get("k")
            .unwrap()
            .is_some_and(|v| v.source == Source::Segment)));
        assert!(client.segment().unwrap().live);
        let _ = HEARTBEAT_TIMEOUT_MS;
    });
}

#[test]
fn daemon_down_means_misses_and_unavailable_writes() {
    watchdog(Duration::from_secs(30), || {
        let (_dir, path) = socket_path();
        let daemon = FakeDaemon::start(&path);
        let client = Client::connect(options(&path)).unwrap();
        client.set("k", b"v", &SetOptions::new()).unwrap();
        daemon.stop();

        // Until the heartbeat goes stale the segment may still answer; after that, misses.
        assert!(eventually(Duration::from_secs(10), || client
            .get("k")
            .unwrap()
            .is_none()));
        assert!(client.local_stats().unavailable_misses > 0);
        let e = client.set("k", b"v2", &SetOptions::new()).unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains("cachekitd is not running at"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(msg.contains("start it"), "{msg}");
        assert!(client.delete("k").unwrap_err().is_unavailable());
        assert!(client.ping().unwrap_err().is_unavailable());
    });
}

#[test]
fn connect_reports_a_missing_daemon_and_connect_lazy_waits_for_it() {
    watchdog(Duration::from_secs(30), || {
        let (_dir, path) = socket_path();
        let e = Client::connect(options(&path)).unwrap_err();
        assert!(matches!(e, Error::Unavailable { .. }), "{e}");

        let client = Client::connect_lazy(options(&path)).unwrap();
        assert_eq!(client.get("k").unwrap(), None);
        assert!(client.set("k", b"v", &SetOptions::new()).is_err());

        let daemon = FakeDaemon::start(&path);
        // Reconnects are rate-limited (100 ms), not blocked.
        assert!(eventually(Duration::from_secs(10), || client
            .set("k", b"v", &SetOptions::new())
            .is_ok()));
        assert_eq!(client.get("k").unwrap().unwrap().source, Source::Segment);
        assert_eq!(client.segment().unwrap().epoch, daemon.epoch());
    });
}

#[test]
fn a_restarted_daemon_is_reattached_transparently() {
    watchdog(Duration::from_secs(60), || {
        let (_dir, path) = socket_path();
        let first = FakeDaemon::start(&path);
        let first_epoch = first.epoch();
        let client = Client::connect(options(&path)).unwrap();
        client.set("k", b"old", &SetOptions::new()).unwrap();
        assert_eq!(client.segment().unwrap().epoch, first_epoch);
        first.stop();

        let second = FakeDaemon::start(&path);
        assert_ne!(second.epoch(), first_epoch);
        // A write notices at once (its pooled connection is dead: one retry, fresh HELLO).
        client.set("k", b"new", &SetOptions::new()).unwrap();
        assert_eq!(client.segment().unwrap().epoch, second.epoch());
        let v = client.get("k").unwrap().unwrap();
        assert_eq!(
            (v.bytes.as_slice(), v.source),
            (&b"new"[..], Source::Segment)
        );
        assert!(client.local_stats().reattaches >= 1);
        second.stop();

        // A client that only reads notices through the stale heartbeat.
        let third = FakeDaemon::start(&path);
        third.insert(
            "test",
            b"r",
            &cachekit_envelope::encode(&Default::default(), b"third").unwrap(),
        );
        assert!(eventually(Duration::from_secs(10), || client
            .get("r")
            .unwrap()
            .is_some_and(
                |v| v.bytes == b"third" && v.source == Source::Segment
            )));
        assert_eq!(client.segment().unwrap().epoch, third.epoch());
    });
}

#[test]
fn many_threads_share_one_client() {
    watchdog(Duration::from_secs(60), || {
        let (_dir, path) = socket_path();
        let _daemon = FakeDaemon::start(&path);
        let client = Arc::new(Client::connect(options(&path).pool_size(2)).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let c = client.clone();
                std::thread::spawn(move || {
                    for i in 0..200 {
                        let key = format!("t{t}-{}", i % 20);
                        let value = format!("v{t}-{i}");
                        c.set(&key, &value, &SetOptions::new()).unwrap();
                        let got = c.get(&key).unwrap().expect("own write visible");
                        assert_eq!(got.bytes, value.as_bytes());
                        let _ = c.get("missing").unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let (open, idle) = client.pool_connections();
        assert!(open <= 2 && idle <= open, "{open} {idle}");
    });
}

#[test]
fn stats_and_ping() {
    watchdog(Duration::from_secs(30), || {
        let (_dir, path) = socket_path();
        let daemon = FakeDaemon::start(&path);
        let client = Client::connect(options(&path)).unwrap();
        let pong = client.ping().unwrap();
        assert_eq!(pong.epoch, daemon.epoch());
        let stats = client.stats().unwrap();
        assert!(stats.daemon_counter("requests").is_some());
        assert_eq!(stats.local.requests, client.request_count());
        assert_eq!(stats.segment.unwrap().epoch, daemon.epoch());
    });
}

#[test]
fn a_value_that_is_not_an_envelope_is_an_error() {
    watchdog(Duration::from_secs(30), || {
        let (_dir, path) = socket_path();
        let daemon = FakeDaemon::start(&path);
        let client = Client::connect(options(&path)).unwrap();
        daemon.insert("test", b"raw", b"not an envelope at all");
        let e = client.get("raw").unwrap_err();
        assert!(matches!(e, Error::Envelope(_)), "{e}");
        assert_eq!(client.local_stats().decode_errors, 1);
    });
}
