//! SET_MANY and DELETE_MANY against the real daemon: every item applied and answered on its
//! own, malformed frames refused with an error naming the problem (the connection and the
//! daemon go on), and with Redis the items take the write path of single writes: they reach
//! the other hosts, and a client whose daemon is dead sends them to Redis directly.

mod common;
mod redis_util;

use cachekit_client::{Client as App, ClientOptions, SetOptions};
use cachekit_proto::{
    encode_request, DeleteMany, ErrorCode, ItemResult, Reply, Request, SetMany, MAX_BATCH_ITEMS,
};
use common::{assert_error, Client, Connect, Daemon, Site};
use redis_util::{eventually, start_host, Redis, PATIENCE};
use std::time::Duration;

fn set_many(ns: &str, items: &[(&str, &[u8])]) -> Request {
    Request::SetMany(SetMany {
        namespace: ns.into(),
        ttl_ms: Some(60_000),
        grace_ms: 0,
        tags: vec!["batch/1".into()],
        items: items
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.to_vec()))
            .collect(),
    })
}

fn delete_many(ns: &str, keys: &[&str]) -> Request {
    Request::DeleteMany(DeleteMany {
        namespace: ns.into(),
        keys: keys.iter().map(|k| k.as_bytes().to_vec()).collect(),
    })
}

fn in_memory(c: &Client, ns: &str, key: &str) -> Option<Vec<u8>> {
    c.reader.get(ns, key.as_bytes()).map(|(v, _)| v)
}

#[test]
fn every_item_is_applied_and_answered() {
    let d = Daemon::start("batch-apply", &[]);
    let mut c = d.client("app");
    let sets_before = c.stat("sets");
    let reply = c.call(&set_many("app", &[("a", b"1"), ("b", b"22"), ("a", b"3")]));
    assert_eq!(
        reply,
        Reply::BatchResults {
            results: vec![ItemResult::done(false); 3]
        }
    );
    assert_eq!(c.stat("sets") - sets_before, 3, "one set counted per item");
    // In order: the later item of a key wins; every process sees them in shared memory.
    let other = d.client("other process");
    assert_eq!(in_memory(&other, "app", "a").as_deref(), Some(&b"3"[..]));
    assert_eq!(in_memory(&other, "app", "b").as_deref(), Some(&b"22"[..]));
    // The shared tags apply to every item.
    assert_eq!(
        c.call(&Request::Invalidate {
            namespace: "app".into(),
            tags: vec!["batch".into()],
            exact: false
        }),
        Reply::Ok
    );
    assert_eq!(in_memory(&c, "app", "a"), None);
    assert_eq!(in_memory(&c, "app", "b"), None);

    let reply = c.call(&set_many("app", &[("x", b"1"), ("y", b"2")]));
    assert!(matches!(reply, Reply::BatchResults { .. }), "{reply:?}");
    let reply = c.call(&delete_many("app", &["x", "absent", "y", "x"]));
    let existed: Vec<bool> = match reply {
        Reply::BatchResults { results } => results
            .iter()
            .map(|r| {
                assert_eq!(r.error, None, "{r:?}");
                r.existed
            })
            .collect(),
        other => panic!("DELETE_MANY answered {other:?}"),
    };
    assert_eq!(existed, [true, false, true, false]);
    assert_eq!(in_memory(&c, "app", "x"), None);
    // An empty batch is answered with no results.
    assert_eq!(
        c.call(&delete_many("app", &[])),
        Reply::BatchResults { results: vec![] }
    );
}

#[test]
fn malformed_batches_get_an_error_and_the_connection_goes_on() {
    let d = Daemon::start("batch-malformed", &[]);
    let mut c = d.client("app");
    let frame = |req: &Request| {
        let mut out = Vec::new();
        encode_request(req, 9, &mut out).unwrap();
        out
    };
    let good = frame(&set_many("app", &[("k", b"v"), ("k2", b"v2")]));
    // The item count says 5, the body holds 2. The count sits right before the items: "k",
    // "v", "k2", "v2" with their 4-byte lengths, 22 bytes.
    let count_at = good.len() - 22 - 2;
    let mut lying = good.clone();
    lying[count_at..count_at + 2].copy_from_slice(&5u16.to_le_bytes());
    // A value length far past the end of the body (the last field's length prefix).
    let mut long_value = good.clone();
    let at = long_value.len() - 6;
    long_value[at..at + 4].copy_from_slice(&1_000_000u32.to_le_bytes());
    let over = delete_many("app", &vec!["k"; MAX_BATCH_ITEMS + 1]);
    let mut over_bytes = Vec::new();
    // `encode_request` refuses more than MAX_BATCH_ITEMS: build the frame of 1000 keys and
    // patch its count, as a lying client would.
    let Request::DeleteMany(mut d1000) = over else {
        unreachable!()
    };
    d1000.keys.truncate(MAX_BATCH_ITEMS);
    encode_request(&Request::DeleteMany(d1000), 9, &mut over_bytes).unwrap();
    let at = 12 + 4 + 3;
    over_bytes[at..at + 2].copy_from_slice(&((MAX_BATCH_ITEMS + 1) as u16).to_le_bytes());

    let cases: Vec<(&str, Vec<u8>, ErrorCode, &[&str])> = vec![
        (
            "lying count",
            lying,
            ErrorCode::BadFrame,
            &["SET_MANY", "truncated"],
        ),
        (
            "long value",
            long_value,
            ErrorCode::BadFrame,
            &["truncated", "value"],
        ),
        (
            "1001 keys",
            over_bytes,
            ErrorCode::TooLarge,
            &["1001", "MAX_BATCH_ITEMS = 1000"],
        ),
    ];
    for (what, bytes, code, words) in cases {
        c.send_raw(&bytes);
        let (id, reply) = c.reply();
        assert_eq!(id, 9, "{what}: the error carries the frame's id");
        assert_error(&reply, code, words);
        assert_eq!(in_memory(&c, "app", "k"), None, "{what}: nothing applied");
        // The connection goes on.
        assert!(c.ping() > 0, "{what}");
    }
    // A truncated frame (the header announces more than is sent) and a close: the daemon
    // goes on serving.
    let mut cut = d.client("cut");
    cut.send_raw(&good[..good.len() - 3]);
    drop(cut);
    c.send_raw(&good);
    let (_, reply) = c.reply();
    assert!(matches!(reply, Reply::BatchResults { .. }), "{reply:?}");
    assert_eq!(in_memory(&c, "app", "k2").as_deref(), Some(&b"v2"[..]));
}

fn app(socket: &std::path::Path, redis_url: Option<&str>) -> App {
    let mut opts = ClientOptions::new()
        .socket(socket)
        .namespace("batch")
        .request_timeout(Duration::from_secs(2));
    if let Some(url) = redis_url {
        opts = opts.redis_url(url);
    }
    App::connect(opts).expect("connecting the client")
}

#[test]
fn with_redis_the_items_take_the_path_of_single_writes() {
    let redis = Redis::start();
    let (site_a, site_b) = (Site::new("batch-a"), Site::new("batch-b"));
    let mut host_a = start_host(&site_a, &redis.url(), &[]);
    let host_b = start_host(&site_b, &redis.url(), &[]);
    let app_a = app(host_a.socket(), Some(&redis.url()));
    let app_b = app(host_b.socket(), None);
    let opts = SetOptions::new().ttl(Duration::from_secs(60)).tag("t");
    let items: Vec<(String, Vec<u8>)> = (0..50)
        .map(|i| (format!("k{i}"), format!("v{i}").into_bytes()))
        .collect();
    let before = app_a.request_count();
    let results = app_a.set_many(&items, &opts).expect("set_many");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(
        app_a.request_count() - before,
        1,
        "one request for 50 items"
    );
    // Host B reads them from Redis.
    for (k, v) in &items {
        let got = app_b.get(k).expect("get").map(|v| v.bytes);
        assert_eq!(got.as_ref(), Some(v), "{k} from Redis via host B");
    }
    // Deleted everywhere: B's table and Redis.
    let existed = app_a
        .delete_many(&["k0", "k1", "absent"])
        .expect("delete_many");
    let existed: Vec<bool> = existed.into_iter().map(Result::unwrap).collect();
    assert_eq!(existed, [true, true, false]);
    assert!(eventually(PATIENCE, || app_b.get("k0").unwrap().is_none()));

    // The daemon of A dies: the items go to Redis directly, as single sets would.
    host_a.kill_9();
    let later = [("late0", b"x"), ("late1", b"y")];
    let results = app_a
        .set_many(&later, &opts)
        .expect("set_many, daemon dead");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert_eq!(app_a.local_stats().redis_direct_writes, 2);
    assert!(eventually(PATIENCE, || app_b
        .get("late1")
        .unwrap()
        .is_some_and(|v| v.bytes == b"y")));
}
