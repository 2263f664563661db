//! `set_many` and `delete_many` against the real `cachekitd`: one request per batch of up to
//! 1000 items (split beyond that, and before a frame would pass the daemon's limit), a result
//! per item, and an item over a limit refused on its own.

mod support;

use support::noise;

use std::path::Path;
use std::time::Duration;

use cachekit_client::{Client, ClientOptions, Error, SetOptions, MAX_BATCH_ITEMS};
use cachekit_testkit::{watchdog, Daemon, Site};

fn connect(socket: &Path) -> Client {
    let opts = ClientOptions::new()
        .socket(socket)
        .namespace("batch")
        .request_timeout(Duration::from_secs(2));
    support::connect_eventually(opts)
}

#[test]
fn one_request_per_thousand_items() {
    watchdog(Duration::from_secs(120), || {
        let daemon = Daemon::start("batch-split", &["--memory", "32MiB"]);
        let client = connect(daemon.socket());
        let items: Vec<(String, String)> = (0..2500)
            .map(|i| (format!("key:{i}"), format!("value {i}")))
            .collect();
        let before = client.request_count();
        let results = client.set_many(&items, &SetOptions::new()).unwrap();
        assert_eq!(results.len(), 2500);
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(
            client.request_count() - before,
            2500_u64.div_ceil(MAX_BATCH_ITEMS as u64),
            "1000 items per request"
        );
        for (k, v) in items.iter().step_by(97) {
            assert_eq!(client.get(k).unwrap().unwrap().bytes, v.as_bytes());
        }
        let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        let before = client.request_count();
        let existed = client.delete_many(&keys).unwrap();
        assert_eq!(client.request_count() - before, 3);
        assert!(existed.into_iter().all(|r| r.unwrap()));
        assert!(client.get("key:7").unwrap().is_none());
        let again = client.delete_many(&["key:7", "never"]).unwrap();
        assert!(again.into_iter().all(|r| !r.unwrap()));
        // Nothing to do: no request.
        let before = client.request_count();
        let empty: [(&str, &[u8]); 0] = [];
        assert!(client
            .set_many(&empty, &SetOptions::new())
            .unwrap()
            .is_empty());
        assert_eq!(client.request_count(), before);
    });
}

#[test]
fn large_values_split_by_frame_size_and_bad_items_fail_alone() {
    watchdog(Duration::from_secs(120), || {
        let daemon = Daemon::start("batch-frame", &["--memory", "64MiB"]);
        let client = connect(daemon.socket());
        // Five values of 400 KiB: a 1 MiB frame holds two of them.
        let mut items: Vec<(String, Vec<u8>)> = (0..5)
            .map(|i| (format!("big{i}"), noise(400 << 10, i)))
            .collect();
        // An item over max_value_bytes and one over max_key_bytes, among good ones.
        items.insert(2, ("too-big".into(), noise(2 << 20, 9)));
        items.insert(4, ("k".repeat(5000), b"v".to_vec()));
        let before = client.request_count();
        let results = client.set_many(&items, &SetOptions::new()).unwrap();
        assert_eq!(
            client.request_count() - before,
            3,
            "2 + 2 + 1 values a frame"
        );
        for (i, ((k, v), r)) in items.iter().zip(&results).enumerate() {
            match i {
                2 | 4 => assert!(matches!(r, Err(Error::TooLarge { .. })), "{i}: {r:?}"),
                _ => {
                    assert!(r.is_ok(), "{i}: {r:?}");
                    assert!(client.get(k).unwrap().unwrap().bytes == *v, "{k}");
                }
            }
        }
        assert!(client.get("too-big").unwrap().is_none());
        // A bad tag concerns every item: the whole batch is refused, nothing sent.
        let before = client.request_count();
        let e = client
            .set_many(&[("a", "1")], &SetOptions::new().tag("a//b"))
            .unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
        assert_eq!(client.request_count(), before);
        // A key over its limit in a delete fails alone.
        let long = "k".repeat(5000);
        let r = client.delete_many(&["big0", long.as_str()]).unwrap();
        assert!(r[0].as_ref().is_ok_and(|e| *e));
        assert!(matches!(r[1], Err(Error::TooLarge { .. })), "{:?}", r[1]);
    });
}

/// A batch split by frame size keeps the order of a key's values: the key's later value,
/// in the later request, wins. (An item too large for any SET_MANY frame, sent as a SET,
/// is sent after the items before it too; no value the client accepts gets there: the
/// envelope adds at most 44 bytes, the daemon's limit allows 64 more than the value.)
#[test]
fn a_batch_split_by_frame_size_keeps_the_order_of_a_keys_values() {
    watchdog(Duration::from_secs(120), || {
        let daemon = Daemon::start("batch-order", &["--memory", "64MiB"]);
        // A namespace, key, tags and TTL at their limits, and the largest value: one item
        // a frame.
        let opts = ClientOptions::new()
            .socket(daemon.socket())
            .namespace("n".repeat(127))
            .request_timeout(Duration::from_secs(5));
        let client = support::connect_eventually(opts);
        let options = (0..8).fold(SetOptions::new().ttl(Duration::from_secs(600)), |o, i| {
            o.tag(format!("{i}").repeat(1024))
        });
        let key = "k".repeat(4096);
        let big = noise(client.max_value_bytes(), 7);
        let items: Vec<(&str, &[u8])> = vec![(&key, b"small"), (&key, &big)];
        let before = client.request_count();
        let results = client.set_many(&items, &options).unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(client.request_count() - before, 2, "split in two requests");
        assert!(
            client.get(&key).unwrap().unwrap().bytes == big,
            "the later value of the key wins"
        );
    });
}

#[test]
fn with_the_daemon_gone_each_item_says_so() {
    watchdog(Duration::from_secs(120), || {
        let mut daemon = Daemon::start("batch-gone", &["--memory", "8MiB"]);
        let client = connect(daemon.socket());
        client.set_many(&[("a", "1")], &SetOptions::new()).unwrap();
        daemon.kill_9();
        // No Redis to go to: every item fails as a single set would, the batch as a whole
        // does not.
        let results = client
            .set_many(&[("a", "2"), ("b", "3")], &SetOptions::new())
            .unwrap();
        assert_eq!(results.len(), 2);
        for r in &results {
            assert!(r.as_ref().is_err_and(Error::is_unavailable), "{r:?}");
        }
    });
}

#[test]
fn a_daemon_from_before_batch_writes_is_sent_single_writes() {
    watchdog(Duration::from_secs(60), || {
        // The daemon's test hook: no batch-writes bit in HELLO_OK, and SET_MANY / DELETE_MANY
        // refused, as a daemon from before them would.
        let site = Site::new("batch-older");
        let mut daemon = site.spawn(&["--memory", "16MiB"], |c| {
            c.env("CACHEKIT_TEST_NO_BATCH_WRITES", "1");
        });
        daemon.wait_ready();
        let client = connect(daemon.socket());
        let items: Vec<(String, String)> =
            (0..5).map(|i| (format!("k{i}"), format!("v{i}"))).collect();
        let before = client.request_count();
        let results = client.set_many(&items, &SetOptions::new()).unwrap();
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        assert_eq!(client.request_count() - before, 5, "one SET per item");
        for (k, v) in &items {
            assert_eq!(client.get(k).unwrap().unwrap().bytes, v.as_bytes());
        }
        let keys = ["k0", "k1", "absent"];
        let deleted = client.delete_many(&keys).unwrap();
        let existed: Vec<bool> = deleted.into_iter().map(Result::unwrap).collect();
        assert_eq!(existed, [true, true, false]);
        assert!(client.get("k0").unwrap().is_none());
    });
}
