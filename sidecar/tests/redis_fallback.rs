//! The daemon of host A is killed: a client process on A keeps working against Redis
//! directly (gets, sets, deletes, invalidations), its invalidations reach host B's table, and
//! it goes back to the daemon once a new one is up.

mod common;
mod redis_util;

use cachekit_client::{Client, ClientOptions, SetOptions};
use common::Site;
use redis_util::*;
use std::time::Duration;

const NS: &str = "fallback";

fn client(socket: &std::path::Path, redis_url: Option<&str>) -> Client {
    let mut opts = ClientOptions::new()
        .socket(socket)
        .namespace(NS)
        .request_timeout(Duration::from_secs(2));
    if let Some(url) = redis_url {
        opts = opts.redis_url(url);
    }
    Client::connect(opts).expect("connecting the client")
}

fn get(c: &Client, key: &str) -> Option<Vec<u8>> {
    c.get(key).expect("get").map(|v| v.bytes)
}

#[test]
fn a_client_keeps_working_against_redis_while_its_daemon_is_dead() {
    let redis = Redis::start();
    let (site_a, site_b) = (Site::new("fb-a"), Site::new("fb-b"));
    let mut host_a = start_host(&site_a, &redis.url(), &[]);
    let host_b = start_host(&site_b, &redis.url(), &[]);
    let app_a = client(host_a.socket(), Some(&redis.url()));
    let app_b = client(host_b.socket(), None);
    let tagged = |t: &str| SetOptions::new().ttl(Duration::from_secs(60)).tag(t);

    app_a
        .set("k", b"v", &tagged("t"))
        .expect("set through the daemon");
    assert_eq!(
        get(&app_b, "k").as_deref(),
        Some(&b"v"[..]),
        "B reads k from Redis"
    );
    let raw_b = host_b.client("raw-b");
    assert!(in_table(&raw_b, NS, "k").is_some(), "B filled k");

    host_a.kill_9();

    // Writes go to Redis directly (the daemon's socket refuses), and the dead daemon's
    // segment is no longer read.
    app_a
        .set("k2", b"v2", &tagged("t2"))
        .expect("set with the daemon dead");
    assert_eq!(app_a.local_stats().redis_direct_writes, 1);
    assert_eq!(get(&app_a, "k2").as_deref(), Some(&b"v2"[..]));
    assert_eq!(get(&app_a, "k").as_deref(), Some(&b"v"[..]));
    assert!(
        app_a.local_stats().redis_direct_hits >= 2,
        "{:?}",
        app_a.local_stats()
    );
    assert_eq!(
        get(&app_b, "k2").as_deref(),
        Some(&b"v2"[..]),
        "B sees A's direct write"
    );

    // A's invalidation, made directly in Redis, reaches B's table.
    app_a
        .invalidate(&["t"])
        .expect("invalidate with the daemon dead");
    assert!(
        eventually(PATIENCE, || in_table(&raw_b, NS, "k").is_none()),
        "the direct invalidation never reached B"
    );
    assert_eq!(get(&app_b, "k"), None);
    assert_eq!(
        get(&app_a, "k"),
        None,
        "A's own reads validate against Redis"
    );

    assert!(app_a.delete("k2").expect("delete with the daemon dead"));
    assert!(
        eventually(PATIENCE, || in_table(&raw_b, NS, "k2").is_none()),
        "the direct delete never reached B"
    );
    app_a.clear().expect("clear with the daemon dead");

    // A new daemon comes up: the client goes back to it (and to its segment).
    let host_a2 = start_host(&site_a, &redis.url(), &[]);
    assert!(
        eventually(PATIENCE, || {
            let _ = app_a.get("probe");
            app_a.segment().is_some_and(|s| s.live)
        }),
        "the client never re-attached to the new daemon"
    );
    let direct = app_a.local_stats().redis_direct_writes;
    app_a.set("k3", b"v3", &tagged("t3")).expect("set");
    assert_eq!(
        app_a.local_stats().redis_direct_writes,
        direct,
        "through the daemon again"
    );
    let raw_a2 = host_a2.client("raw-a2");
    assert!(in_table(&raw_a2, NS, "k3").is_some());
}

#[test]
fn with_redis_down_too_gets_miss_and_writes_say_unavailable() {
    let mut redis = Redis::start();
    let site = Site::new("fb-both-down");
    let mut host = start_host(&site, &redis.url(), &[]);
    let app = client(host.socket(), Some(&redis.url()));
    app.set("k", b"v", &SetOptions::new()).expect("set");
    host.kill_9();
    redis.kill();
    let t0 = std::time::Instant::now();
    let e = app.set("k", b"v", &SetOptions::new()).unwrap_err();
    assert!(e.is_unavailable(), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("cachekitd") && text.contains("Redis"),
        "{text}"
    );
    // The write found the daemon gone: its segment is not read any more, and Redis cannot
    // answer either.
    assert_eq!(get(&app, "k"), None, "a get is a miss");
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
}

/// With its daemon dead, a client's atomic operations run in Redis directly with the daemon's
/// meaning, and host B sees their results; a cas, whose version only the daemon can name,
/// says so instead of spinning.
#[test]
fn atomic_operations_keep_working_against_redis_while_the_daemon_is_dead() {
    use cachekit_client::{Error, IncrOptions};
    let redis = Redis::start();
    let (site_a, site_b) = (Site::new("fb-atomic-a"), Site::new("fb-atomic-b"));
    let mut host_a = start_host(&site_a, &redis.url(), &[]);
    let host_b = start_host(&site_b, &redis.url(), &[]);
    let app_a = client(host_a.socket(), Some(&redis.url()));
    let app_b = client(host_b.socket(), None);
    assert_eq!(
        app_a.incr("n", 1, &IncrOptions::new().initial(0)).unwrap(),
        Some(1)
    );
    let v = app_a.get("n").unwrap().unwrap();
    host_a.kill_9();

    assert_eq!(app_a.incr("n", 2, &IncrOptions::new()).unwrap(), Some(3));
    assert_eq!(app_b.incr("n", 4, &IncrOptions::new()).unwrap(), Some(7));
    assert_eq!(app_a.incr("n", 1, &IncrOptions::new()).unwrap(), Some(8));
    assert!(app_a.add("lock", b"a", &SetOptions::new()).unwrap());
    assert!(!app_b.add("lock", b"b", &SetOptions::new()).unwrap());
    assert!(app_a.replace("lock", b"a2", &SetOptions::new()).unwrap());
    assert!(app_a.touch("lock", Some(Duration::from_secs(60))).unwrap());
    assert_eq!(app_a.get_and_delete("lock").unwrap().unwrap().bytes, b"a2");
    assert!(
        app_b.add("lock", b"b", &SetOptions::new()).unwrap(),
        "taken, so free"
    );
    match app_a.cas("n", b"0", v.version, &SetOptions::new()) {
        Err(Error::Unavailable { message }) => assert!(message.contains("cas"), "{message}"),
        other => panic!("a cas without the daemon must say so: {other:?}"),
    }
    app_a.set("text", b"x", &SetOptions::new()).unwrap();
    assert!(matches!(
        app_a.incr("text", 1, &IncrOptions::new()),
        Err(Error::InvalidArgument { .. })
    ));
    assert!(app_a.local_stats().redis_direct_writes >= 6);
    assert!(
        eventually(PATIENCE, || {
            app_b.get("n").unwrap().and_then(|v| v.as_i64()) == Some(8)
        }),
        "B reads the counter the direct increments left"
    );
}
