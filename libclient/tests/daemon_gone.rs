//! A client and a daemon that is not there: opened before the daemon starts, or finding it
//! killed (kill -9) under it. Against the real `cachekitd` (from the workspace test kit, which
//! fails saying how to build it when there is none).
//!
//! The daemons here keep a long heartbeat timeout (5 s): a killed daemon's segment then looks
//! alive for that long, so what stops a read is the client having found the daemon gone, not
//! the heartbeat going stale.

use std::path::Path;
use std::time::Duration;

use cachekit_client::{Client, ClientOptions, Error, SetOptions, Source};
use cachekit_testkit::{eventually, watchdog, Daemon, Redis, Site};

/// A heartbeat that stays fresh for 5 s after the daemon stops publishing it.
const FLAGS: &[&str] = &[
    "--memory",
    "8MiB",
    "--heartbeat-ms",
    "100",
    "--heartbeat-timeout-ms",
    "5000",
];

fn options(socket: &Path) -> ClientOptions {
    ClientOptions::new()
        .socket(socket)
        .namespace("gone")
        .request_timeout(Duration::from_millis(2000))
        .connect_timeout(Duration::from_millis(1000))
}

fn unavailable(r: Result<impl std::fmt::Debug, Error>) -> Error {
    match r {
        Err(e @ Error::Unavailable { .. }) => e,
        other => panic!("expected Error::Unavailable, got {other:?}"),
    }
}

/// `k` = `v1`, read back from the segment, so the client holds an attached, live segment.
fn set_and_read_from_the_segment(client: &Client) {
    let opts = SetOptions::new().ttl(Duration::from_secs(600)).tag("t/1");
    client.set("k", b"v1", &opts).unwrap();
    let v = client.get("k").unwrap().expect("k was just set");
    assert_eq!(
        (v.bytes.as_slice(), v.source),
        (&b"v1"[..], Source::Segment)
    );
}

/// No read of `k` in any form returns a value.
fn k_is_not_served(client: &Client) {
    assert!(client.get("k").unwrap().is_none(), "get served k");
    assert!(
        client.get_local("k").unwrap().is_none(),
        "get_local served k"
    );
    let mut out = Vec::new();
    assert!(
        client.get_into("k", &mut out).unwrap().is_none(),
        "get_into served k"
    );
    assert!(
        client.get_many(&["k"]).unwrap()[0].is_none(),
        "get_many served k"
    );
}

#[test]
fn a_client_opened_before_its_daemon_misses_then_attaches_by_itself() {
    watchdog(Duration::from_secs(120), || {
        let site = Site::new("opened-before-daemon");
        // The explicit way to fail fast: `connect` says the daemon is not running.
        let e = unavailable(Client::connect(options(&site.socket())));
        assert!(e.to_string().contains("start it with"), "{e}");

        let client = Client::connect_lazy(options(&site.socket())).unwrap();
        assert!(client.get("k").unwrap().is_none());
        assert!(client.get_local("k").unwrap().is_none());
        let e = unavailable(client.set("k", b"v", &SetOptions::new()));
        assert!(e.to_string().contains("start it with"), "{e}");
        unavailable(client.delete("k"));
        unavailable(client.invalidate(&["t"]));

        let _daemon = site.start(FLAGS);
        assert!(
            eventually(Duration::from_secs(10), || client
                .set("k", b"v", &SetOptions::new())
                .is_ok()),
            "the lazy client never reached the daemon that came up"
        );
        let v = client.get("k").unwrap().expect("k was just set");
        assert_eq!((v.bytes.as_slice(), v.source), (&b"v"[..], Source::Segment));
        assert!(client.segment().unwrap().live);
    });
}

#[test]
fn a_delete_that_found_the_daemon_dead_is_not_followed_by_the_old_value() {
    watchdog(Duration::from_secs(120), || {
        let mut daemon = Daemon::start("delete-after-kill", FLAGS);
        let client = Client::connect(options(daemon.socket())).unwrap();
        set_and_read_from_the_segment(&client);
        let epoch = client.segment().unwrap().epoch;

        daemon.kill_9();
        // The delete cannot reach the daemon: it says so...
        unavailable(client.delete("k"));
        // ...and this process, which now knows, no longer serves the dead daemon's segment
        // (its heartbeat still looks fresh for seconds).
        k_is_not_served(&client);
        assert!(client.local_stats().stale_heartbeat > 0);

        // Back by itself once the daemon is: the restarted daemon's segment is read.
        daemon.restart();
        assert!(
            eventually(Duration::from_secs(20), || client
                .set("k2", b"v2", &SetOptions::new())
                .is_ok()),
            "the client never reached the restarted daemon"
        );
        // Polled: a daemon started after a crash waits out the heartbeat timeout before it
        // binds, so until its heartbeat thread's first tick its segment's heartbeat (written
        // when the segment was made) is that old, and reads of it may go to the daemon.
        assert!(
            eventually(Duration::from_secs(10), || client
                .get("k2")
                .unwrap()
                .is_some_and(|v| v.bytes == b"v2" && v.source == Source::Segment)),
            "k2 is never read from the restarted daemon's segment"
        );
        assert_ne!(client.segment().unwrap().epoch, epoch);
    });
}

#[test]
fn a_get_that_found_the_daemon_dead_stops_the_segment_reads_too() {
    watchdog(Duration::from_secs(120), || {
        // A daemon with a second tier: a miss in its segment asks it (without one, the segment
        // answers misses itself, and a miss cannot find the daemon gone).
        let redis = Redis::start();
        let mut flags = FLAGS.to_vec();
        let url = redis.url();
        flags.extend(["--redis-url", url.as_str()]);
        let mut daemon = Daemon::start("fetch-after-kill", &flags);
        let client = Client::connect(options(daemon.socket())).unwrap();
        set_and_read_from_the_segment(&client);
        // Another handle of the same client: it shares what the first one learns.
        let other = client.with_namespace("gone").unwrap();

        daemon.kill_9();
        // A miss asks the daemon (FETCH), which is not there: a miss, and now it is known.
        assert!(client.get("absent").unwrap().is_none());
        k_is_not_served(&client);
        k_is_not_served(&other);
        // Tag invalidations fail the same way, and leave nothing readable either.
        unavailable(client.invalidate(&["t"]));
        k_is_not_served(&client);
    });
}
