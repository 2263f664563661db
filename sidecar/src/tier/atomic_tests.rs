//! [`Tier::update`] and [`Tier::delete_matching`] against a real redis-server.

use super::*;
use crate::config::{RedisConfig, WriteMode};
use crate::tier::breaker::State;
use crate::tier::WriteOutcome;
use cachekit_redis::{Expected, Fetched, Target, WriteOp};
use cachekit_testkit::Redis;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn tier(redis: &Redis, write_mode: WriteMode) -> Tier {
    Tier::new(RedisConfig {
        target: Target::parse(&redis.url(), false, Duration::from_millis(300)).unwrap(),
        write_mode,
        breaker_failures: 2,
        breaker_open: Duration::from_secs(60),
        queue: 100,
        stream_maxlen: 10_000,
        poll: Duration::from_secs(1),
        stale_bound: None,
        sweep: None,
    })
    .unwrap()
}

fn counter(r: Option<&Record>) -> i64 {
    r.map_or(0, |r| {
        std::str::from_utf8(&r.value).unwrap().parse().unwrap()
    })
}

fn incr(t: &Tier, ns: &str, key: &[u8]) -> UpdateOutcome {
    t.update(ns, key, &mut |cur, now| {
        let v = counter(cur) + 1;
        Decision::Write(Record::new(
            now,
            None,
            0,
            vec![],
            v.to_string().into_bytes(),
        ))
    })
}

fn fetch(t: &Tier, ns: &str, key: &[u8]) -> Option<Fetched> {
    t.block_on(t.store.fetch(ns, key)).unwrap()
}

#[test]
fn add_semantics_and_counters() {
    let redis = Redis::start();
    let t = tier(&redis, WriteMode::Through);
    let add = |value: &'static [u8]| {
        t.update("ns", b"k", &mut |cur, now| match cur {
            Some(_) => Decision::Keep,
            None => Decision::Write(Record::new(now, Some(60_000), 0, vec![], value.to_vec())),
        })
    };
    let UpdateOutcome::Written {
        clock,
        record,
        prev: None,
    } = add(b"first")
    else {
        panic!("the first add stores");
    };
    assert_eq!(record.stamp, clock);
    let UpdateOutcome::Kept(Some(kept)) = add(b"second") else {
        panic!("the second add keeps the first value");
    };
    assert_eq!(kept.value, b"first");
    assert_eq!(fetch(&t, "ns", b"k").unwrap().record, record);

    let refused = t.update("ns", b"k", &mut |_, _| {
        Decision::Fail("not an integer".into())
    });
    assert!(matches!(refused, UpdateOutcome::Refused(m) if m == "not an integer"));
    let UpdateOutcome::Deleted {
        clock: deleted_at,
        prev: Some(prev),
    } = t.update("ns", b"k", &mut |_, _| Decision::Delete)
    else {
        panic!("delete of a present key");
    };
    assert_eq!(prev.value, b"first");
    assert_eq!(deleted_at, clock + 1, "nothing else wrote the namespace");
    assert!(fetch(&t, "ns", b"k").is_none());
    assert_eq!(t.c.atomic_ops.load(Ordering::Relaxed), 4);
    assert_eq!(t.c.atomic_conflicts.load(Ordering::Relaxed), 0);
}

#[test]
fn an_invalidated_record_is_absent_and_may_be_replaced() {
    let redis = Redis::start();
    let t = tier(&redis, WriteMode::Through);
    let tagged = Record::new(1, None, 0, vec!["a/b".into()], b"7".to_vec());
    assert!(matches!(
        t.write(WriteOp::Set {
            ns: "ns".into(),
            key: b"k".to_vec(),
            record: tagged
        }),
        WriteOutcome::Done { .. }
    ));
    t.write(WriteOp::Invalidate {
        ns: "ns".into(),
        tags: vec!["a".into()],
        exact: false,
    });
    let mut saw = None;
    let out = t.update("ns", b"k", &mut |cur, now| {
        saw = Some(cur.cloned());
        Decision::Write(Record::new(now, None, 0, vec![], b"1".to_vec()))
    });
    assert_eq!(saw, Some(None), "f saw the invalidated record as absent");
    assert!(matches!(out, UpdateOutcome::Written { prev: None, .. }));
}

#[test]
fn concurrent_increments_through_the_tier_are_exact() {
    let redis = Redis::start();
    let t = tier(&redis, WriteMode::Through);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..100 {
                    assert!(matches!(
                        incr(&t, "ns", b"n"),
                        UpdateOutcome::Written { .. }
                    ));
                }
            });
        }
    });
    assert_eq!(counter(Some(&fetch(&t, "ns", b"n").unwrap().record)), 400);
    assert_eq!(t.c.atomic_ops.load(Ordering::Relaxed), 400);
    let conflicts = t.c.atomic_conflicts.load(Ordering::Relaxed);
    // One fetch per attempt: the successful ones plus one per conflict.
    assert_eq!(t.c.gets.load(Ordering::Relaxed), 400 + conflicts);
    assert_eq!(conflicts, 0, "this host's increments wait for each other");
}

#[test]
fn a_commit_that_loses_a_race_is_retried_and_counted() {
    let redis = Redis::start();
    let t = tier(&redis, WriteMode::Through);
    incr(&t, "ns", b"n");
    let mut calls = 0;
    let out = t.update("ns", b"n", &mut |cur, now| {
        calls += 1;
        if calls == 1 {
            // Another writer gets in between this attempt's fetch and its commit.
            let f = fetch(&t, "ns", b"n").unwrap();
            let other =
                cachekit_redis::CommitOp::Set(Record::new(now, None, 0, vec![], b"10".to_vec()));
            let raced =
                t.block_on(
                    t.store
                        .commit("ns", b"n", Expected::of(Some(&f), true), &other, now),
                );
            assert!(raced.unwrap().is_some());
        }
        let v = counter(cur) + 1;
        Decision::Write(Record::new(
            now,
            None,
            0,
            vec![],
            v.to_string().into_bytes(),
        ))
    });
    assert!(matches!(out, UpdateOutcome::Written { .. }));
    assert_eq!(calls, 2);
    assert_eq!(counter(Some(&fetch(&t, "ns", b"n").unwrap().record)), 11);
    assert_eq!(t.c.atomic_conflicts.load(Ordering::Relaxed), 1);
}

#[test]
fn without_redis_atomic_operations_fail_and_say_so() {
    let mut redis = Redis::start();
    let t = tier(&redis, WriteMode::Through);
    redis.kill();
    for _ in 0..3 {
        let UpdateOutcome::Failed(m) = incr(&t, "ns", b"n") else {
            panic!("an atomic operation without Redis must fail");
        };
        assert!(m.contains("Redis at") && m.contains("need"), "{m}");
    }
    assert_eq!(t.breaker.state(), State::Open);
    let UpdateOutcome::Failed(m) = incr(&t, "ns", b"n") else {
        panic!("an atomic operation with the breaker open must fail");
    };
    assert!(m.contains("circuit breaker is open"), "{m}");
    assert!(t.delete_matching("ns", 0, b"*", None, false).is_err());
}

#[test]
fn queued_writes_of_the_key_come_first() {
    let redis = Redis::start();
    // Write-behind, and the drainer is not started: the queued write never reaches Redis.
    let t = tier(&redis, WriteMode::Behind);
    assert!(matches!(
        t.write(WriteOp::Delete {
            ns: "ns".into(),
            key: b"n".to_vec()
        }),
        WriteOutcome::Queued
    ));
    let start = Instant::now();
    let UpdateOutcome::Failed(m) = incr(&t, "ns", b"n") else {
        panic!("an atomic operation may not overtake a queued write of its key");
    };
    assert!(m.contains("still queued"), "{m}");
    assert!(start.elapsed() >= Duration::from_millis(300));
    // Another key is not held up (unless its pending slot collides: not these two).
    assert!(matches!(
        incr(&t, "ns", b"other"),
        UpdateOutcome::Written { .. }
    ));
}

#[test]
fn delete_matching_pages_through_the_tier() {
    let redis = Redis::start();
    let t = tier(&redis, WriteMode::Through);
    for i in 0..50 {
        incr(&t, "ns", format!("user:{i}").as_bytes());
        incr(&t, "ns", format!("item:{i}").as_bytes());
    }
    let (mut cursor, mut deleted) = (0, 0);
    loop {
        let page = t
            .delete_matching("ns", cursor, b"user:*", None, false)
            .unwrap();
        deleted += page.keys.len();
        assert!(page.keys.iter().all(|(k, _)| k.starts_with(b"user:")));
        cursor = page.cursor;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!(deleted, 50);
    assert!(fetch(&t, "ns", b"user:3").is_none());
    assert!(fetch(&t, "ns", b"item:3").is_some());
}

#[test]
fn two_hosts_increment_one_counter_exactly() {
    let redis = Redis::start();
    let hosts = [
        tier(&redis, WriteMode::Through),
        tier(&redis, WriteMode::Through),
    ];
    std::thread::scope(|s| {
        for t in hosts.iter().chain(hosts.iter()) {
            s.spawn(move || {
                for _ in 0..150 {
                    assert!(matches!(incr(t, "ns", b"n"), UpdateOutcome::Written { .. }));
                }
            });
        }
    });
    assert_eq!(
        counter(Some(&fetch(&hosts[0], "ns", b"n").unwrap().record)),
        600
    );
    let ops: u64 = hosts
        .iter()
        .map(|t| t.c.atomic_ops.load(Ordering::Relaxed))
        .sum();
    assert_eq!(ops, 600);
}

#[test]
fn a_commit_that_times_out_says_its_result_is_unknown() {
    let mut redis = Redis::start();
    let t = tier(&redis, WriteMode::Through);
    incr(&t, "ns", b"n");
    let out = t.update("ns", b"n", &mut |_, now| {
        // Redis stops answering between the fetch and the commit.
        redis.pause();
        Decision::Write(Record::new(now, None, 0, vec![], b"5".to_vec()))
    });
    redis.resume();
    let UpdateOutcome::Failed(m) = out else {
        panic!("a commit without an answer cannot succeed");
    };
    assert!(m.contains("may or may not have been applied"), "{m}");
}

#[test]
fn a_foreign_value_fails_with_what_to_do() {
    let redis = Redis::start();
    let t = tier(&redis, WriteMode::Through);
    let _: () = ::redis::cmd("SET")
        .arg(cachekit_redis::keys::NsKeys::new("ns").value(b"k"))
        .arg("not a record")
        .query(&mut redis.conn())
        .unwrap();
    let UpdateOutcome::Failed(m) = incr(&t, "ns", b"k") else {
        panic!("a value cachekit cannot read is not overwritten");
    };
    assert!(
        m.contains("bad cachekit record") && m.contains("delete it"),
        "{m}"
    );
}

#[test]
fn outcomes_are_applied_in_the_order_redis_took_them() {
    let redis = Redis::start();
    let t = tier(&redis, WriteMode::Through);
    let applied = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..100 {
                    let mut f = |cur: Option<&Record>, now| {
                        let v = counter(cur) + 1;
                        Decision::Write(Record::new(
                            now,
                            None,
                            0,
                            vec![],
                            v.to_string().into_bytes(),
                        ))
                    };
                    t.update_then("ns", b"n", &mut f, |o| match o {
                        UpdateOutcome::Written { clock, record, .. } => {
                            applied
                                .lock()
                                .unwrap()
                                .push((clock, counter(Some(&record))));
                        }
                        other => panic!("{other:?}"),
                    });
                }
            });
        }
    });
    let applied = applied.into_inner().unwrap();
    assert_eq!(applied.len(), 400);
    assert!(applied
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 + 1 == w[1].1));
    assert_eq!(applied.last().unwrap().1, 400);
}
