//! The cases (compiled with both stores only: see `main.rs`).

use super::{ctx, now};
use cachekit_redis::event::{parse_entries, EventKind};
use cachekit_redis::keys::NsKeys;
use cachekit_redis::{AsyncStore, Record, Rejected, Swept, SyncStore, Target, WriteOp, Written};
use cachekit_testkit::Redis;
use std::time::Duration;

fn target(redis: &Redis) -> Target {
    Target::parse(&redis.url(), false, Duration::from_secs(5)).unwrap()
}

fn set_op(ns: &str, key: &str, ttl_ms: Option<u64>, tags: &[&str], value: &str) -> WriteOp {
    WriteOp::Set {
        ns: ns.into(),
        key: key.as_bytes().to_vec(),
        record: Record::new(
            now(),
            ttl_ms,
            0,
            tags.iter().map(|t| t.to_string()).collect(),
            value.as_bytes().to_vec(),
        ),
    }
}

fn inv_op(ns: &str, tags: &[&str], exact: bool) -> WriteOp {
    WriteOp::Invalidate {
        ns: ns.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        exact,
    }
}

/// `Ok(value)` when the key's record is valid, else why not (`None`: no record).
fn read(s: &SyncStore, ns: &str, key: &str) -> Option<Result<String, Rejected>> {
    let f = s.fetch(ns, key.as_bytes()).unwrap()?;
    Some(
        f.validate(now())
            .map(|r| String::from_utf8(r.value).unwrap()),
    )
}

fn keys(redis: &Redis, pattern: &str) -> usize {
    let k: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(pattern)
        .query(&mut redis.conn())
        .unwrap();
    k.len()
}

/// Steps until a pass ends; the steps' sum.
fn pass(s: &SyncStore, ns: &str) -> Swept {
    let mut sum = Swept::default();
    for _ in 0..10_000 {
        let st = s.sweep_step(ns, 100).unwrap();
        sum.records_deleted += st.records_deleted;
        sum.records_restamped += st.records_restamped;
        sum.counters_deleted += st.counters_deleted;
        sum.floor_raised_to = sum.floor_raised_to.max(st.floor_raised_to);
        if st.pass_done {
            sum.pass_done = true;
            return sum;
        }
    }
    panic!("a sweep pass never ended");
}

#[test]
fn a_batch_applies_its_writes_in_order_like_one_script_each() {
    let redis = Redis::start();
    let sync = SyncStore::new(target(&redis), ctx("test"));
    sync.write(&set_op("b", "old", None, &[], "x"), now())
        .unwrap();
    let batch = vec![
        set_op("b", "k1", Some(60_000), &["a/b"], "v1"),
        set_op("b", "k2", None, &["c"], "v2"),
        inv_op("b", &["a"], false),
        WriteOp::Delete {
            ns: "b".into(),
            key: b"old".to_vec(),
        },
        WriteOp::Delete {
            ns: "b".into(),
            key: b"never".to_vec(),
        },
        set_op("b", "k1", Some(60_000), &["a/b"], "v1-again"),
        inv_op("b", &["c"], true),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let written: Vec<Written> = rt.block_on(async {
        let s = AsyncStore::new(&target(&redis), ctx("test")).unwrap();
        s.write_batch(&batch, now()).await.unwrap()
    });
    let clocks: Vec<u64> = written.iter().map(|w| w.clock).collect();
    assert_eq!(
        clocks,
        [2, 3, 4, 5, 6, 7, 8],
        "one consecutive clock per write"
    );
    let existed: Vec<bool> = written.iter().map(|w| w.existed).collect();
    assert_eq!(existed, [false, false, false, true, false, false, false]);
    assert_eq!(read(&sync, "b", "k1"), Some(Ok("v1-again".into())));
    assert_eq!(read(&sync, "b", "k2"), Some(Err(Rejected::Invalidated)));
    assert_eq!(read(&sync, "b", "old"), None);
    let v: redis::Value = redis::cmd("XRANGE")
        .arg(NsKeys::new("b").stream())
        .arg("-")
        .arg("+")
        .query(&mut redis.conn())
        .unwrap();
    let events = parse_entries(&v).unwrap();
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, [1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(
        events[3].kind,
        EventKind::Tags {
            tags: vec!["a".into()],
            exact: false
        }
    );
    assert_eq!(events[4].kind, EventKind::Key(b"old".to_vec()));
}

#[test]
fn the_sweep_never_brings_back_an_invalidated_record_and_keeps_the_live_ones() {
    let redis = Redis::start();
    let s = SyncStore::new(target(&redis), ctx("test"));
    let ns = "sw";
    // Live records with and without TTL, records invalidated by a tag (exact and below), a
    // cleared namespace's worth of records, and counters of tags nobody uses.
    for i in 0..50 {
        s.write(
            &set_op(ns, &format!("live{i}"), None, &[&format!("l/{i}")], "live"),
            now(),
        )
        .unwrap();
        s.write(
            &set_op(ns, &format!("ttl{i}"), Some(600_000), &[], "ttl"),
            now(),
        )
        .unwrap();
        s.write(
            &set_op(ns, &format!("dead{i}"), None, &[&format!("d/{i}")], "dead"),
            now(),
        )
        .unwrap();
        s.write(&inv_op(ns, &[&format!("d/{i}")], i % 2 == 0), now())
            .unwrap();
        s.write(&inv_op(ns, &[&format!("unused/{i}")], false), now())
            .unwrap();
    }
    let invalid = |s: &SyncStore| {
        (0..50).all(|i| {
            matches!(
                read(s, ns, &format!("dead{i}")),
                None | Some(Err(Rejected::Invalidated))
            )
        })
    };
    let live = |s: &SyncStore| {
        (0..50).all(|i| {
            read(s, ns, &format!("live{i}")) == Some(Ok("live".into()))
                && read(s, ns, &format!("ttl{i}")) == Some(Ok("ttl".into()))
        })
    };
    let counters = || keys(&redis, "ck:{sw}:[px]:*");
    // x: for each of the 100 tags invalidated, p: for the 75 invalidated hierarchically.
    assert_eq!(counters(), 175);
    // Step by step over three passes: after every step, nothing invalid became valid and
    // nothing live was lost.
    let mut passes = Vec::new();
    let mut sum = Swept::default();
    while passes.len() < 3 {
        let st = s.sweep_step(ns, 20).unwrap();
        assert!(invalid(&s), "an invalidated record came back after {st:?}");
        assert!(live(&s), "a live record was lost after {st:?}");
        sum.records_deleted += st.records_deleted;
        sum.records_restamped += st.records_restamped;
        sum.counters_deleted += st.counters_deleted;
        if st.pass_done {
            passes.push(st.floor_raised_to);
        }
    }
    assert_eq!(sum.records_deleted, 50, "the invalidated records are gone");
    // The first pass began at clock 250 (the last write): the floor rose to 249. Nothing was
    // written since, so the later passes had nothing to raise it past.
    assert_eq!(passes, [249, 0, 0]);
    assert_eq!(
        counters(),
        2,
        "every counter at or below the floor is gone; the last invalidation's two (clock 250) stay"
    );
    assert!(sum.records_restamped >= 100, "{sum:?}");
    let pttl: i64 = redis::cmd("PTTL")
        .arg(NsKeys::new(ns).value(b"ttl0"))
        .query(&mut redis.conn())
        .unwrap();
    assert!(pttl > 500_000, "the restamp kept the TTL ({pttl} ms left)");
    // The floor now stands in for the deleted counters: a record written before an
    // invalidation whose counter is gone stays invalid, and new writes work as before.
    s.write(&set_op(ns, "new", None, &["l/0"], "new"), now())
        .unwrap();
    assert_eq!(read(&s, ns, "new"), Some(Ok("new".into())));
    s.write(&inv_op(ns, &["l"], false), now()).unwrap();
    assert_eq!(read(&s, ns, "new"), Some(Err(Rejected::Invalidated)));
    assert_eq!(read(&s, ns, "live0"), Some(Err(Rejected::Invalidated)));
}

#[test]
fn a_clear_leaves_nothing_behind_after_one_pass() {
    let redis = Redis::start();
    let s = SyncStore::new(target(&redis), ctx("test"));
    for i in 0..300 {
        s.write(&set_op("c", &format!("k{i}"), None, &["t/1"], "v"), now())
            .unwrap();
    }
    s.write(&WriteOp::Clear { ns: "c".into() }, now()).unwrap();
    s.write(&set_op("c", "after", None, &["t/1"], "kept"), now())
        .unwrap();
    let sum = pass(&s, "c");
    assert_eq!(sum.records_deleted, 300, "{sum:?}");
    assert_eq!(keys(&redis, "ck:{c}:v:*"), 1);
    assert_eq!(read(&s, "c", "after"), Some(Ok("kept".into())));
}

#[test]
fn ever_new_tags_leave_at_most_two_passes_of_counters() {
    let redis = Redis::start();
    let s = SyncStore::new(target(&redis), ctx("test"));
    let mut most = 0;
    for round in 0..10 {
        for i in 0..200 {
            let tag = format!("posts/{round}/{i}");
            s.write(&set_op("e", &format!("k{i}"), None, &[&tag], "v"), now())
                .unwrap();
            s.write(&inv_op("e", &[&tag], false), now()).unwrap();
        }
        pass(&s, "e");
        most = most.max(keys(&redis, "ck:{e}:[px]:*"));
    }
    // Each round sets 400 counters (x: and p: of 200 tags). A pass's horizon is the clock
    // when the pass before it ended, the floor it raises one below that, and the next pass
    // deletes what is at or below it: the counters of the last two rounds stay, and the two
    // of the invalidation that was the previous round's last write (at the horizon itself).
    assert!(most <= 2 * 400 + 2, "counters kept: {most}");
    assert!(keys(&redis, "ck:{e}:v:*") <= 200);
}
