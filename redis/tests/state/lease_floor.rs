//! A sweep pass raises the namespace's floor without an event: a leased fill granted before
//! it lands unless an invalidation or a clear came in since the grant.

use super::{ctx, now};
use cachekit_redis::{AsyncStore, FillRefused, Record, SyncStore, Taken, Target, WriteOp};
use cachekit_testkit::Redis;
use std::time::Duration;

fn record(tag: &str, value: &str) -> Record {
    Record::new(now(), None, 0, vec![tag.into()], value.as_bytes().to_vec())
}

fn set(ns: &str, key: &str, tag: &str) -> WriteOp {
    WriteOp::Set {
        ns: ns.into(),
        key: key.as_bytes().to_vec(),
        record: record(tag, "v"),
    }
}

/// Grants the lease of `key`, runs `between` (writes, sweeps), then fills: what Redis said.
fn fill_after(
    redis: &Redis,
    ns: &str,
    between: impl FnOnce(&SyncStore),
) -> Result<u64, FillRefused> {
    let target = Target::parse(&redis.url(), false, Duration::from_secs(5)).unwrap();
    let sync = SyncStore::new(target.clone(), ctx("floor-test"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let store = {
        let _enter = rt.enter();
        AsyncStore::new(&target, ctx("floor-test")).unwrap()
    };
    let taken = rt
        .block_on(store.take_lease(ns, b"leased", b"h1:1", b"h1:", 60_000, false))
        .unwrap();
    let Taken::Mine { since } = taken else {
        panic!("the lease was not granted: {taken:?}")
    };
    between(&sync);
    let floor: Option<u64> = redis::cmd("GET")
        .arg(cachekit_redis::keys::NsKeys::new(ns).clear())
        .query(&mut redis.conn())
        .unwrap();
    assert!(
        floor.unwrap_or(0) > since,
        "the floor ({floor:?}) must have risen past the grant ({since})"
    );
    rt.block_on(store.fill_leased(
        ns,
        b"leased",
        &record("a/b", "computed"),
        since,
        Some(b"h1:1"),
        now(),
    ))
    .unwrap()
    .map(|w| w.clock)
}

/// Writes to other keys, then sweep passes until the floor passed them.
fn writes_and_passes(s: &SyncStore, ns: &str) {
    for i in 0..5 {
        s.write(&set(ns, &format!("other{i}"), "z"), now()).unwrap();
    }
    for _ in 0..3 {
        while !s.sweep_step(ns, 1000).unwrap().pass_done {}
    }
}

#[test]
fn a_floor_raised_by_the_sweep_alone_does_not_refuse_a_leased_fill() {
    let redis = Redis::start();
    let landed = fill_after(&redis, "f1", |s| writes_and_passes(s, "f1"));
    assert!(landed.is_ok(), "refused: {landed:?}");
}

#[test]
fn with_an_invalidation_or_a_clear_since_the_grant_a_raised_floor_still_refuses() {
    let redis = Redis::start();
    let refused = fill_after(&redis, "f2", |s| {
        // An invalidation of a tag the record does not carry: its counter is swept below the
        // floor, so the fill cannot tell it apart from one that covered it.
        s.write(
            &WriteOp::Invalidate {
                ns: "f2".into(),
                tags: vec!["unrelated".into()],
                exact: false,
            },
            now(),
        )
        .unwrap();
        writes_and_passes(s, "f2");
    });
    assert_eq!(refused, Err(FillRefused::Invalidated));
    let refused = fill_after(&redis, "f3", |s| {
        s.write(&WriteOp::Clear { ns: "f3".into() }, now()).unwrap();
        s.write(&set("f3", "after", "z"), now()).unwrap();
    });
    assert_eq!(refused, Err(FillRefused::Invalidated));
}
