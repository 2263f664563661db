//! The cases (compiled with both stores only: see `main.rs`).

use cachekit_redis::event::{parse_entries, Event, EventKind};
use cachekit_redis::keys::NsKeys;
use cachekit_redis::{
    update_blocking, AsyncStore, CommitOp, Decision, Expected, Fetched, Record, SyncStore, Target,
    Updated, WriteContext, WriteOp, Written,
};
use cachekit_testkit::Redis;
use std::collections::BTreeSet;
use std::time::Duration;

fn ctx(origin: &str) -> WriteContext {
    WriteContext {
        origin: origin.as_bytes().to_vec(),
        stream_maxlen: 100_000,
    }
}

fn target(redis: &Redis) -> Target {
    Target::parse(&redis.url(), false, Duration::from_secs(5)).unwrap()
}

fn store(redis: &Redis, origin: &str) -> SyncStore {
    SyncStore::new(target(redis), ctx(origin))
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn record(tags: &[&str], value: &[u8]) -> Record {
    Record::new(
        now(),
        Some(60_000),
        1_000,
        tags.iter().map(|t| t.to_string()).collect(),
        value.to_vec(),
    )
}

fn set(s: &SyncStore, ns: &str, key: &[u8], tags: &[&str], value: &[u8]) -> Written {
    let op = WriteOp::Set {
        ns: ns.into(),
        key: key.to_vec(),
        record: record(tags, value),
    };
    s.write(&op, now()).unwrap()
}

/// The fetched record, which must be there and valid.
fn valid(s: &SyncStore, ns: &str, key: &[u8]) -> Fetched {
    let f = s.fetch(ns, key).unwrap().expect("the key is in Redis");
    f.check(now()).expect("the record is valid");
    f
}

fn commit(s: &SyncStore, ns: &str, key: &[u8], e: Expected<'_>, op: CommitOp) -> Option<Written> {
    s.commit(ns, key, e, &op, now()).unwrap()
}

fn events(redis: &Redis, ns: &str) -> Vec<Event> {
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(NsKeys::new(ns).stream())
        .arg("-")
        .arg("+")
        .query(&mut redis.conn())
        .unwrap();
    parse_entries(&v).unwrap()
}

fn value_keys(redis: &Redis, ns: &str) -> BTreeSet<Vec<u8>> {
    let prefix = NsKeys::new(ns).value(b"");
    let all: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(NsKeys::new(ns).value_pattern(b"*"))
        .query(&mut redis.conn())
        .unwrap();
    all.into_iter()
        .map(|k| k[prefix.len()..].to_vec())
        .collect()
}

#[test]
fn a_commit_succeeds_when_nothing_changed_and_conflicts_after_another_write() {
    let redis = Redis::start();
    let s = store(&redis, "A");
    let first = set(&s, "ns", b"k", &[], b"1");
    let f = valid(&s, "ns", b"k");
    assert_eq!(f.record.stamp, first.clock);
    assert_eq!(
        f.raw,
        redis::cmd("GET")
            .arg(NsKeys::new("ns").value(b"k"))
            .query::<Vec<u8>>(&mut redis.conn())
            .unwrap(),
        "raw is the stored bytes"
    );
    let w = commit(
        &s,
        "ns",
        b"k",
        Expected::of(Some(&f), true),
        CommitOp::Set(record(&[], b"2")),
    )
    .expect("nothing changed since the fetch");
    assert_eq!(w.clock, first.clock + 1);
    let now_there = valid(&s, "ns", b"k");
    assert_eq!(now_there.record.value, b"2");
    assert_eq!(
        now_there.record.stamp, w.clock,
        "the stamp is the commit's clock"
    );

    // The old expectation is stale now: a second commit against it writes nothing.
    let again = commit(
        &s,
        "ns",
        b"k",
        Expected::of(Some(&f), true),
        CommitOp::Set(record(&[], b"3")),
    );
    assert_eq!(again, None);
    // Another writer (another process, another origin) in between.
    let f = valid(&s, "ns", b"k");
    set(&store(&redis, "B"), "ns", b"k", &[], b"from B");
    let lost = commit(
        &s,
        "ns",
        b"k",
        Expected::of(Some(&f), true),
        CommitOp::Delete,
    );
    assert_eq!(lost, None);
    assert_eq!(valid(&s, "ns", b"k").record.value, b"from B");
    // A rewrite of identical bytes is a change too (the stamp differs).
    let f = valid(&s, "ns", b"k");
    set(&s, "ns", b"k", &[], b"from B");
    let lost = commit(
        &s,
        "ns",
        b"k",
        Expected::of(Some(&f), true),
        CommitOp::Delete,
    );
    assert_eq!(lost, None);
}

#[test]
fn a_commit_conflicts_when_an_invalidation_or_clear_covers_the_record() {
    let redis = Redis::start();
    let s = store(&redis, "A");
    let inv = |tags: &[&str], exact| WriteOp::Invalidate {
        ns: "ns".into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        exact,
    };
    let cases = [
        (inv(&["a"], false), true),
        (inv(&["a/b"], true), true),
        (inv(&["a/b"], false), true),
        (WriteOp::Clear { ns: "ns".into() }, true),
        (inv(&["a"], true), false),
        (inv(&["a/b/c"], false), false),
        (inv(&["z"], false), false),
    ];
    for (i, (between, covers)) in cases.into_iter().enumerate() {
        let key = format!("k{i}").into_bytes();
        set(&s, "ns", &key, &["a/b", "other"], b"v");
        let f = valid(&s, "ns", &key);
        s.write(&between, now()).unwrap();
        let out = commit(
            &s,
            "ns",
            &key,
            Expected::of(Some(&f), true),
            CommitOp::Set(record(&[], b"new")),
        );
        assert_eq!(out.is_none(), covers, "{between:?}");
    }
}

#[test]
fn absent_and_invalid_expectations() {
    let redis = Redis::start();
    let s = store(&redis, "A");
    assert!(s.fetch("ns", b"k").unwrap().is_none());
    let created = commit(
        &s,
        "ns",
        b"k",
        Expected::Absent,
        CommitOp::Set(record(&[], b"1")),
    );
    assert!(created.is_some());
    let second = commit(
        &s,
        "ns",
        b"k",
        Expected::Absent,
        CommitOp::Set(record(&[], b"2")),
    );
    assert_eq!(second, None, "created in between: no longer absent");
    assert_eq!(valid(&s, "ns", b"k").record.value, b"1");

    // An invalidated record is still in Redis: "absent" does not match it, its bytes do.
    set(&s, "ns", b"t", &["tag"], b"old");
    s.write(
        &WriteOp::Invalidate {
            ns: "ns".into(),
            tags: vec!["tag".into()],
            exact: false,
        },
        now(),
    )
    .unwrap();
    let f = s.fetch("ns", b"t").unwrap().unwrap();
    assert!(f.check(now()).is_err());
    let e = Expected::of(Some(&f), false);
    assert!(matches!(e, Expected::Invalid(_)));
    assert_eq!(
        commit(
            &s,
            "ns",
            b"t",
            Expected::Absent,
            CommitOp::Set(record(&[], b"x"))
        ),
        None
    );
    assert!(commit(&s, "ns", b"t", e, CommitOp::Set(record(&["tag"], b"new"))).is_some());
    assert_eq!(valid(&s, "ns", b"t").record.value, b"new");
}

#[test]
fn commits_write_events_and_deletes_like_the_other_scripts() {
    let redis = Redis::start();
    let s = store(&redis, "A");
    let gets = redis.calls("get");
    let w1 = commit(
        &s,
        "ns",
        b"k",
        Expected::Absent,
        CommitOp::Set(record(&[], b"1")),
    )
    .unwrap();
    assert!(!w1.existed);
    let f = valid(&s, "ns", b"k");
    let w2 = commit(
        &s,
        "ns",
        b"k",
        Expected::of(Some(&f), true),
        CommitOp::Delete,
    )
    .unwrap();
    assert!(w2.existed);
    assert!(s.fetch("ns", b"k").unwrap().is_none());
    // A record past its grace deadline is sent as a delete.
    set(&s, "ns", b"e", &[], b"1");
    let f = valid(&s, "ns", b"e");
    let gone = Record::new(now() - 10_000, Some(1), 1, vec![], b"2".to_vec());
    let w3 = commit(
        &s,
        "ns",
        b"e",
        Expected::of(Some(&f), true),
        CommitOp::Set(gone),
    )
    .unwrap();
    assert!(w3.existed);
    assert!(s.fetch("ns", b"e").unwrap().is_none());
    // A write without expiry is kept forever.
    commit(
        &s,
        "ns",
        b"p",
        Expected::Absent,
        CommitOp::Set(Record::new(now(), None, 0, vec![], b"p".to_vec())),
    )
    .unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(NsKeys::new("ns").value(b"p"))
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(ttl, -1);

    let ev = events(&redis, "ns");
    let seqs: Vec<u64> = ev.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=ev.len() as u64).collect::<Vec<_>>(),
        "consecutive clocks"
    );
    assert!(ev.iter().all(|e| e.origin == b"A"));
    assert_eq!(ev[0].kind, EventKind::Key(b"k".to_vec()));
    assert_eq!((ev[0].seq, ev[1].seq), (w1.clock, w2.clock));
    assert_eq!(ev[3].seq, w3.clock);
    // Four fetches; the commits themselves read with MGET: cmdstat_get counts fetches.
    assert_eq!(redis.calls("get"), gets + 4);
}

#[test]
fn four_threads_increment_one_counter_exactly() {
    let redis = Redis::start();
    std::thread::scope(|sc| {
        for t in 0..4 {
            let redis = &redis;
            sc.spawn(move || {
                let s = store(redis, &format!("T{t}"));
                let mut most = 0;
                for _ in 0..500 {
                    let mut calls = 0;
                    let out = update_blocking(&s, "ns", b"n", &mut |cur, now| {
                        calls += 1;
                        let v: i64 = cur.map_or(0, |r| {
                            std::str::from_utf8(&r.value).unwrap().parse().unwrap()
                        });
                        Decision::Write(Record::new(
                            now,
                            None,
                            0,
                            vec![],
                            (v + 1).to_string().into_bytes(),
                        ))
                    })
                    .unwrap();
                    assert!(matches!(out, Updated::Written { .. }));
                    most = most.max(calls);
                }
                eprintln!("thread {t}: at most {most} attempts for one increment");
            });
        }
    });
    let s = store(&redis, "check");
    assert_eq!(valid(&s, "ns", b"n").record.value, b"2000");
    let ev = events(&redis, "ns");
    assert_eq!(
        ev.len(),
        2000,
        "one event per successful commit, none per conflict"
    );
    assert_eq!(ev.last().unwrap().seq, 2000);
}

#[test]
fn update_outcomes() {
    let redis = Redis::start();
    let s = store(&redis, "A");
    let out = update_blocking(&s, "ns", b"k", &mut |cur, _| {
        assert!(cur.is_none());
        Decision::Keep
    });
    assert_eq!(out.unwrap(), Updated::Kept(None));
    set(&s, "ns", b"k", &[], b"v");
    let out = update_blocking(&s, "ns", b"k", &mut |_, _| Decision::Fail("no".into()));
    assert_eq!(out.unwrap(), Updated::Refused("no".into()));
    let Updated::Deleted { prev: Some(p), .. } =
        update_blocking(&s, "ns", b"k", &mut |_, _| Decision::Delete).unwrap()
    else {
        panic!("deleted");
    };
    assert_eq!(p.value, b"v");
    // Redis down: an error, never a decision.
    let mut redis = redis;
    redis.kill();
    let e = update_blocking(&s, "ns", b"k", &mut |_, _| Decision::Keep).unwrap_err();
    assert!(e.is_outage(), "{e}");
}

fn delete_all(
    s: &SyncStore,
    ns: &str,
    pattern: &[u8],
    tag: Option<&str>,
    exact: bool,
) -> (Vec<(Vec<u8>, u64)>, usize) {
    let (mut cursor, mut keys, mut pages) = (0, Vec::new(), 0);
    loop {
        let page = s.delete_matching(ns, cursor, pattern, tag, exact).unwrap();
        keys.extend(page.keys);
        pages += 1;
        cursor = page.cursor;
        if cursor == 0 {
            return (keys, pages);
        }
    }
}

#[test]
fn delete_matching_deletes_exactly_the_matches_page_by_page() {
    let redis = Redis::start();
    let s = store(&redis, "A");
    // "a*" as a namespace: its prefix must not match the keys of namespace "ab".
    for i in 0..1200 {
        set(&s, "a*", format!("user:{i}").as_bytes(), &[], b"v");
    }
    for i in 0..100 {
        set(&s, "a*", format!("item:{i}").as_bytes(), &[], b"v");
        set(&s, "ab", format!("user:{i}").as_bytes(), &[], b"v");
    }
    set(&s, "a*", b"lit*x", &[], b"v");
    set(&s, "a*", b"litAx", &[], b"v");
    let before = events(&redis, "a*").last().unwrap().seq;

    let (deleted, pages) = delete_all(&s, "a*", b"user:*", None, false);
    assert!(pages > 1, "1400 keys at COUNT 500 take several pages");
    let names: BTreeSet<Vec<u8>> = deleted.iter().map(|(k, _)| k.clone()).collect();
    let want: BTreeSet<Vec<u8>> = (0..1200)
        .map(|i| format!("user:{i}").into_bytes())
        .collect();
    assert_eq!(deleted.len(), 1200, "each match once");
    assert_eq!(names, want);
    let left = value_keys(&redis, "a*");
    assert_eq!(left.len(), 102);
    assert!(left.iter().all(|k| !k.starts_with(b"user:")));
    assert_eq!(
        value_keys(&redis, "ab").len(),
        100,
        "namespace ab untouched"
    );

    // Events: one per deleted key, consecutive clocks, the clocks the pages reported.
    let ev: Vec<Event> = events(&redis, "a*")
        .into_iter()
        .filter(|e| e.seq > before)
        .collect();
    assert_eq!(ev.len(), 1200);
    for (e, (k, clock)) in ev.iter().zip(&deleted) {
        assert_eq!(e.kind, EventKind::Key(k.clone()));
        assert_eq!(e.seq, *clock);
        assert_eq!(e.origin, b"A");
    }
    assert!(ev.windows(2).all(|w| w[1].seq == w[0].seq + 1));

    // The user's pattern is Redis glob syntax: `\*` is a literal star.
    let (deleted, _) = delete_all(&s, "a*", br"lit\*x", None, false);
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0].0, b"lit*x");
    assert!(value_keys(&redis, "a*").contains(b"litAx".as_slice()));
    // Nothing matches: no event, no clock increment.
    let last = events(&redis, "a*").last().unwrap().seq;
    assert!(delete_all(&s, "a*", b"nothing*", None, false).0.is_empty());
    assert_eq!(events(&redis, "a*").last().unwrap().seq, last);
}

#[test]
fn delete_matching_by_tag_hierarchical_or_exact() {
    let redis = Redis::start();
    let s = store(&redis, "A");
    let items: [(&[u8], &[&str]); 6] = [
        (b"k1", &["t"]),
        (b"k2", &["t/x"]),
        (b"k3", &["tx"]),
        (b"k4", &["u", "t/y/z"]),
        (b"k5", &[]),
        (b"j1", &["t"]),
    ];
    for (k, tags) in items {
        set(&s, "ns", k, tags, b"v");
    }
    let names = |d: Vec<(Vec<u8>, u64)>| d.into_iter().map(|(k, _)| k).collect::<BTreeSet<_>>();
    let (d, _) = delete_all(&s, "ns", b"k*", Some("t"), true);
    assert_eq!(names(d), BTreeSet::from([b"k1".to_vec()]));
    let (d, _) = delete_all(&s, "ns", b"k*", Some("t"), false);
    assert_eq!(names(d), BTreeSet::from([b"k2".to_vec(), b"k4".to_vec()]));
    assert_eq!(
        value_keys(&redis, "ns"),
        BTreeSet::from([b"k3".to_vec(), b"k5".to_vec(), b"j1".to_vec()])
    );
    let (d, _) = delete_all(&s, "ns", b"", Some("t"), false);
    assert_eq!(
        names(d),
        BTreeSet::from([b"j1".to_vec()]),
        "empty pattern = every key"
    );
}

#[test]
fn the_async_store_commits_and_deletes_by_pattern() {
    let redis = Redis::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = AsyncStore::new(&target(&redis), ctx("async")).unwrap();
        let op = CommitOp::Set(record(&[], b"1"));
        let w = s
            .commit("ns", b"k", Expected::Absent, &op, now())
            .await
            .unwrap();
        assert!(w.is_some());
        let again = s
            .commit("ns", b"k", Expected::Absent, &op, now())
            .await
            .unwrap();
        assert_eq!(again, None);
        let f = s.fetch("ns", b"k").await.unwrap().unwrap();
        let del = s
            .commit(
                "ns",
                b"k",
                Expected::of(Some(&f), true),
                &CommitOp::Delete,
                now(),
            )
            .await
            .unwrap();
        assert!(del.unwrap().existed);
        s.commit("ns", b"x1", Expected::Absent, &op, now())
            .await
            .unwrap();
        s.commit("ns", b"x2", Expected::Absent, &op, now())
            .await
            .unwrap();
        let mut cursor = 0;
        let mut n = 0;
        loop {
            let page = s
                .delete_matching("ns", cursor, b"x?", None, false)
                .await
                .unwrap();
            n += page.keys.len();
            cursor = page.cursor;
            if cursor == 0 {
                break;
            }
        }
        assert_eq!(n, 2);
    });
}

#[test]
fn commit_and_delete_matching_work_in_a_cluster() {
    let cluster = cachekit_testkit::RedisCluster::start();
    let target = Target::parse(&cluster.urls(), true, Duration::from_secs(5)).unwrap();
    let s = SyncStore::new(target, ctx("A"));
    // Namespaces whose slots land on different nodes; SCAN in a script sees its node only,
    // and every key of a namespace is on that node.
    let namespaces: Vec<String> = (0..6).map(|i| format!("ns{i}")).collect();
    for ns in &namespaces {
        for i in 0..20 {
            let out = update_blocking(&s, ns, format!("k{i}").as_bytes(), &mut |cur, now| {
                assert!(cur.is_none());
                Decision::Write(Record::new(now, None, 0, vec![], b"1".to_vec()))
            })
            .unwrap();
            assert!(matches!(out, Updated::Written { .. }));
        }
        let f = s.fetch(ns, b"k0").unwrap().unwrap();
        assert!(s
            .commit(ns, b"k0", Expected::Absent, &CommitOp::Delete, now())
            .unwrap()
            .is_none());
        assert!(s
            .commit(
                ns,
                b"k0",
                Expected::of(Some(&f), true),
                &CommitOp::Delete,
                now()
            )
            .unwrap()
            .is_some());
    }
    let (deleted, _) = delete_all(&s, "ns0", b"k1*", None, false);
    assert_eq!(deleted.len(), 11, "k1 and k10..k19");
    for ns in &namespaces[1..] {
        assert!(s.fetch(ns, b"k1").unwrap().is_some(), "{ns} untouched");
    }
    assert!(s.fetch("ns0", b"k2").unwrap().is_some());
    assert!(s.fetch("ns0", b"k15").unwrap().is_none());
}
