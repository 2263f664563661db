//! Sending a sequenced write again applies it once: the write script skips what its lane
//! already applied, so a resent batch never overwrites a later write of another host.

use super::{ctx, now};
use cachekit_redis::keys::NsKeys;
use cachekit_redis::{
    AsyncStore, Record, Sequence, Sequenced, StoreError, SyncStore, Target, WriteOp, Written,
};
use cachekit_testkit::Redis;
use std::time::Duration;

fn set(ns: &str, key: &str, value: &str) -> WriteOp {
    WriteOp::Set {
        ns: ns.into(),
        key: key.as_bytes().to_vec(),
        record: Record::new(
            now(),
            None,
            0,
            vec!["t/a".into()],
            value.as_bytes().to_vec(),
        ),
    }
}

fn seq(lane: u32, seq: u64, op: WriteOp) -> Sequenced {
    Sequenced {
        op,
        seq: Sequence { lane, seq },
    }
}

/// The value of `key` if its record is valid.
fn value(s: &SyncStore, ns: &str, key: &str) -> Option<String> {
    let f = s.fetch(ns, key.as_bytes()).unwrap()?;
    f.validate(now())
        .ok()
        .map(|r| String::from_utf8(r.value).unwrap())
}

fn stream_len(redis: &Redis, ns: &str) -> u64 {
    redis::cmd("XLEN")
        .arg(NsKeys::new(ns).stream())
        .query(&mut redis.conn())
        .unwrap()
}

struct Host {
    rt: tokio::runtime::Runtime,
    store: AsyncStore,
}

impl Host {
    fn new(url: &str, origin: &str) -> Host {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let target = Target::parse(url, false, Duration::from_secs(5)).unwrap();
        let store = {
            let _enter = rt.enter();
            AsyncStore::new(&target, ctx(origin)).unwrap()
        };
        Host { rt, store }
    }

    fn send(&self, batch: &[Sequenced]) -> Result<Vec<Written>, StoreError> {
        self.rt.block_on(self.store.write_sequenced(batch, now()))
    }
}

#[test]
fn a_batch_sent_again_after_another_hosts_write_changes_nothing() {
    let redis = Redis::start();
    let a = Host::new(&redis.url(), "host-a");
    let b = SyncStore::new(
        Target::parse(&redis.url(), false, Duration::from_secs(5)).unwrap(),
        ctx("host-b"),
    );
    let ns = "r";
    let batch = vec![
        seq(0, 1, WriteOp::Clear { ns: ns.into() }),
        seq(0, 2, set(ns, "k", "a-old")),
        seq(0, 3, set(ns, "other", "a")),
        seq(
            0,
            4,
            WriteOp::Invalidate {
                ns: ns.into(),
                tags: vec!["u".into()],
                exact: false,
            },
        ),
        seq(
            0,
            5,
            WriteOp::Delete {
                ns: ns.into(),
                key: b"gone".to_vec(),
            },
        ),
    ];
    let first = a.send(&batch).unwrap();
    assert_eq!(
        first.iter().map(|w| w.clock).collect::<Vec<_>>(),
        [1, 2, 3, 4, 5]
    );
    // The answer was lost (a timeout): meanwhile host B writes k, after A's batch.
    b.write(&set(ns, "k", "b-new"), now()).unwrap();
    assert_eq!(value(&b, ns, "k").as_deref(), Some("b-new"));
    let events = stream_len(&redis, ns);

    let again = a.send(&batch).unwrap();
    assert!(
        again.iter().all(|w| w.clock == 0),
        "every write of the resent batch is skipped: {again:?}"
    );
    assert_eq!(
        value(&b, ns, "k").as_deref(),
        Some("b-new"),
        "the resend must not overwrite B's later write"
    );
    assert_eq!(
        stream_len(&redis, ns),
        events,
        "no event for skipped writes"
    );

    // A part of it again (the drainer's one-by-one retry), and a batch mixing old and new
    // numbers: only the new ones are applied.
    assert_eq!(a.send(&batch[1..2]).unwrap()[0].clock, 0);
    let mixed = a
        .send(&[
            seq(0, 3, set(ns, "other", "again")),
            seq(0, 6, set(ns, "k", "a-newer")),
        ])
        .unwrap();
    assert_eq!(mixed[0].clock, 0);
    assert!(mixed[1].clock > 6);
    assert_eq!(value(&b, ns, "k").as_deref(), Some("a-newer"));
    assert_eq!(value(&b, ns, "other").as_deref(), Some("a"));

    // Lanes are independent, and unsequenced writes are always applied.
    assert!(a.send(&[seq(7, 1, set(ns, "k", "lane-7"))]).unwrap()[0].clock > 0);
    assert_eq!(value(&b, ns, "k").as_deref(), Some("lane-7"));
    b.write(&set(ns, "k", "b-again"), now()).unwrap();
    b.write(&set(ns, "k", "b-again-2"), now()).unwrap();
    assert_eq!(value(&b, ns, "k").as_deref(), Some("b-again-2"));

    // The sequence key is one hash per writer and namespace, with an expiry.
    let key = NsKeys::new(ns).sequence(b"host-a");
    let mut c = redis.conn();
    let fields: Vec<(String, u64)> = redis::cmd("HGETALL").arg(&key).query(&mut c).unwrap();
    let mut fields = fields;
    fields.sort();
    assert_eq!(fields, [("0".to_string(), 6), ("7".to_string(), 1)]);
    let ttl: i64 = redis::cmd("PTTL").arg(&key).query(&mut c).unwrap();
    assert!(
        ttl > 0 && ttl as u64 <= cachekit_redis::SEQUENCE_KEEP_MS,
        "PTTL {ttl}"
    );
    let unsequenced: i64 = redis::cmd("EXISTS")
        .arg(NsKeys::new(ns).sequence(b"host-b"))
        .query(&mut c)
        .unwrap();
    assert_eq!(unsequenced, 0, "unsequenced writes keep no sequence key");
}

#[test]
fn writes_before_an_error_part_way_are_recorded_and_not_applied_again() {
    let redis = Redis::start();
    // A user that may not DEL: a batch stops at its delete, after the set before it.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("nodel")
        .arg("on")
        .arg(">pw")
        .arg("~*")
        .arg("&*")
        .arg("+@all")
        .arg("-del")
        .query(&mut redis.conn())
        .unwrap();
    let a = Host::new(&redis.url_as("nodel", "pw"), "host-a");
    let b = SyncStore::new(
        Target::parse(&redis.url(), false, Duration::from_secs(5)).unwrap(),
        ctx("host-b"),
    );
    let ns = "p";
    let batch = vec![
        seq(0, 10, set(ns, "k", "a-old")),
        seq(
            0,
            11,
            WriteOp::Delete {
                ns: ns.into(),
                key: b"d".to_vec(),
            },
        ),
        seq(0, 12, set(ns, "k2", "a")),
    ];
    let err = a.send(&batch).unwrap_err();
    assert!(!err.is_outage(), "a refusal, not an outage: {err}");
    assert_eq!(
        value(&b, ns, "k").as_deref(),
        Some("a-old"),
        "the set before the error stays"
    );
    assert_eq!(value(&b, ns, "k2"), None, "nothing after the error");
    b.write(&set(ns, "k", "b-new"), now()).unwrap();
    // The drainer's retry, one write at a time: the first is skipped, the refused one is
    // refused again, the last is applied.
    assert_eq!(a.send(&batch[..1]).unwrap()[0].clock, 0);
    assert!(a.send(&batch[1..2]).is_err());
    assert!(a.send(&batch[2..]).unwrap()[0].clock > 0);
    assert_eq!(value(&b, ns, "k").as_deref(), Some("b-new"));
    assert_eq!(value(&b, ns, "k2").as_deref(), Some("a"));
}
