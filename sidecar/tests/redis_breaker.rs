//! Redis sick, then gone, then back: hits go on being served from the table, misses answer
//! within a bounded time (at once while the breaker is open), the breaker opens and closes
//! again, and a write made while Redis was down reaches it once it is back.

mod common;
mod redis_util;

use common::Site;
use redis_util::*;
use std::time::{Duration, Instant};

const NS: &str = "breaker";

#[test]
fn hits_go_on_misses_fail_fast_and_the_breaker_opens_and_closes() {
    let mut redis = Redis::start();
    let site = Site::new("breaker");
    let host = start_host(
        &site,
        &redis.url(),
        &[
            "--redis-timeout-ms",
            "200",
            "--redis-breaker-failures",
            "3",
            "--redis-breaker-open-ms",
            "300",
        ],
    );
    let mut c = host.client("app");
    set(&mut c, NS, "k", b"v", &["t"]);
    assert_eq!(c.stat("redis_state"), 0);

    // Redis hangs (SIGSTOP): every call must give up after its timeout.
    redis.pause();
    let mut slowest = Duration::ZERO;
    for i in 0..10 {
        assert_eq!(in_table(&c, NS, "k").as_deref(), Some(&b"v"[..]), "hit {i}");
        let t0 = Instant::now();
        assert_eq!(fetch(&mut c, NS, &format!("absent-{i}")), None);
        slowest = slowest.max(t0.elapsed());
    }
    println!("slowest miss while Redis hung: {slowest:?} (redis_timeout_ms = 200)");
    assert!(
        slowest < Duration::from_secs(2),
        "a miss took {slowest:?} while Redis hung: calls are not bounded by redis_timeout_ms"
    );
    assert!(c.stat("redis_breaker_opens") >= 1, "the breaker opened");
    assert!(c.stat("redis_timeouts") >= 1);
    let fast = c.stat("redis_fast_misses");
    assert!(fast >= 1, "misses while open are answered at once");
    assert_ne!(c.stat("redis_state"), 0);

    // Back: the follower's probe closes the breaker without any traffic.
    redis.resume();
    assert!(
        eventually(PATIENCE, || c.stat("redis_state") == 0),
        "the breaker never closed after Redis came back"
    );

    // Gone (SIGKILL): a write is applied here, acknowledged and queued.
    redis.kill();
    set(&mut c, NS, "written-while-down", b"w", &["t"]);
    assert_eq!(
        in_table(&c, NS, "written-while-down").as_deref(),
        Some(&b"w"[..]),
        "applied on this host at once"
    );
    assert!(c.stat("redis_queued") >= 1);
    assert_eq!(
        in_table(&c, NS, "k").as_deref(),
        Some(&b"v"[..]),
        "hits go on"
    );
    assert!(eventually(PATIENCE, || c.stat("redis_state") != 0));
    let t0 = Instant::now();
    assert_eq!(fetch(&mut c, NS, "absent-while-down"), None);
    assert!(
        t0.elapsed() < Duration::from_secs(1),
        "a miss while open took {:?}",
        t0.elapsed()
    );

    // Back again (empty: no persistence): the queued write reaches it, the breaker closes.
    redis.restart();
    assert!(
        eventually(PATIENCE, || c.stat("redis_state") == 0
            && c.stat("redis_queue_len") == 0),
        "the queue never drained: {:?}",
        c.stats()
    );
    let exists: u64 = redis::cmd("EXISTS")
        .arg("ck:{breaker}:v:written-while-down")
        .query(&mut redis.conn())
        .expect("EXISTS");
    assert_eq!(exists, 1, "the write made while Redis was down reached it");
    // Redis came back empty: its stream numbering restarted, which this host must take as a
    // gap (it cannot know what other hosts wrote meanwhile) and clear the namespace.
    assert!(
        eventually(PATIENCE, || c.stat("flushes_for_gap") >= 1),
        "{:?}",
        c.stats()
    );
}
