//! The atomic and management operations against the real `cachekitd` (no Redis): their
//! meanings one by one, then under contention from many connections at once.

mod support;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use cachekit_client::{Client, ClientOptions, Error, IncrOptions, ScanOptions, SetOptions, Ttl};
use cachekit_testkit::{watchdog, Daemon};

fn connect(socket: &std::path::Path, ns: &str) -> Client {
    let opts = ClientOptions::new()
        .socket(socket)
        .namespace(ns)
        .request_timeout(Duration::from_secs(5));
    support::connect_eventually(opts)
}

#[test]
fn each_operation_means_what_it_says() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("atomic-meanings", &["--memory", "16MiB"]);
        let c = connect(daemon.socket(), "atomic");
        let none = SetOptions::new();

        // add: only when absent; replace: only when present.
        assert!(c.add("a", b"1", &none).unwrap());
        assert!(!c.add("a", b"2", &none).unwrap());
        assert_eq!(c.get("a").unwrap().unwrap().bytes, b"1");
        assert!(!c.replace("absent", b"x", &none).unwrap());
        assert!(c.get("absent").unwrap().is_none());
        assert!(c.replace("a", b"3", &none).unwrap());
        assert_eq!(c.get("a").unwrap().unwrap().bytes, b"3");
        // An expired entry is absent to add.
        c.set(
            "short",
            b"old",
            &SetOptions::new().ttl(Duration::from_millis(30)),
        )
        .unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert!(c.add("short", b"new", &none).unwrap());
        // An invalidated one too.
        c.set("tagged", b"old", &SetOptions::new().tag("t/1"))
            .unwrap();
        c.invalidate(&["t"]).unwrap();
        assert!(c.add("tagged", b"new", &none).unwrap());

        // cas: the version a hit carries.
        let v = c.get("a").unwrap().unwrap();
        assert_ne!(v.version, 0);
        assert!(c.cas("a", b"4", v.version, &none).unwrap());
        assert!(
            !c.cas("a", b"5", v.version, &none).unwrap(),
            "an old version"
        );
        let v2 = c.get("a").unwrap().unwrap();
        assert_eq!(v2.bytes, b"4");
        assert!(v2.version > v.version);
        assert!(!c.cas("missing", b"x", v2.version, &none).unwrap());
        assert!(
            !c.cas("a", b"x", 0, &none).unwrap(),
            "version 0 never matches"
        );

        // incr / decr.
        assert_eq!(c.incr("n", 1, &IncrOptions::new()).unwrap(), None);
        assert!(c.get("n").unwrap().is_none(), "no initial: nothing stored");
        assert_eq!(
            c.incr("n", 5, &IncrOptions::new().initial(10)).unwrap(),
            Some(15)
        );
        assert_eq!(c.decr("n", 20, &IncrOptions::new()).unwrap(), Some(-5));
        let n = c.get("n").unwrap().unwrap();
        assert!(n.integer);
        assert_eq!((n.bytes.as_slice(), n.as_i64()), (&b"-5"[..], Some(-5)));
        c.set("digits", b"41", &none).unwrap();
        assert_eq!(c.incr("digits", 1, &IncrOptions::new()).unwrap(), Some(42));
        c.set_i64("big", i64::MAX, &none).unwrap();
        assert!(c.get("big").unwrap().unwrap().integer);
        match c.incr("big", 1, &IncrOptions::new()) {
            Err(Error::InvalidArgument { message }) => {
                assert!(message.contains("overflow"), "{message}")
            }
            other => panic!("overflow must be refused: {other:?}"),
        }
        assert_eq!(c.get("big").unwrap().unwrap().as_i64(), Some(i64::MAX));
        c.set("text", b"hello", &none).unwrap();
        match c.incr("text", 1, &IncrOptions::new()) {
            Err(Error::InvalidArgument { message }) => {
                assert!(message.contains("not an integer"), "{message}")
            }
            other => panic!("a non-integer must be refused: {other:?}"),
        }
        assert_eq!(c.get("text").unwrap().unwrap().bytes, b"hello");
        // A counter keeps its TTL and tags.
        c.set_i64(
            "kept",
            1,
            &SetOptions::new()
                .ttl(Duration::from_secs(60))
                .tag("keep/me"),
        )
        .unwrap();
        let before = c.get("kept").unwrap().unwrap().expires_ms;
        assert_eq!(c.incr("kept", 1, &IncrOptions::new()).unwrap(), Some(2));
        assert_eq!(c.get("kept").unwrap().unwrap().expires_ms, before);
        c.invalidate(&["keep"]).unwrap();
        assert!(
            c.get("kept").unwrap().is_none(),
            "the tag survived the incr"
        );

        // get_and_delete.
        c.set("once", b"v", &none).unwrap();
        assert_eq!(c.get_and_delete("once").unwrap().unwrap().bytes, b"v");
        assert!(c.get_and_delete("once").unwrap().is_none());
        assert!(c.get("once").unwrap().is_none());

        // touch / persist / ttl.
        c.set("t", b"v", &SetOptions::new().ttl(Duration::from_secs(5)))
            .unwrap();
        match c.ttl("t").unwrap() {
            Ttl::Remaining(d) => assert!(d <= Duration::from_secs(5) && d > Duration::ZERO),
            other => panic!("{other:?}"),
        }
        assert!(c.touch("t", Some(Duration::from_secs(600))).unwrap());
        match c.ttl("t").unwrap() {
            Ttl::Remaining(d) => assert!(d > Duration::from_secs(500), "{d:?}"),
            other => panic!("{other:?}"),
        }
        assert!(c.persist("t").unwrap());
        assert_eq!(c.ttl("t").unwrap(), Ttl::Never);
        assert_eq!(c.get("t").unwrap().unwrap().bytes, b"v");
        assert!(!c.touch("absent", None).unwrap());
        assert_eq!(c.ttl("absent").unwrap(), Ttl::Missing);
        assert!(c.touch("t", Some(Duration::from_millis(1))).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(c.ttl("t").unwrap(), Ttl::Missing);
    });
}

/// The one TTL rule of every binding and the CLI: a TTL of zero, like no TTL, means "never
/// expires" in set, add, cas, set_i64, incr and touch; an entry written expired (a
/// compare-and-delete) is asked for by name, `SetOptions::expired`.
#[test]
fn a_zero_ttl_never_expires() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("ttl-rule", &["--memory", "16MiB"]);
        let c = connect(daemon.socket(), "ttl-rule");
        let zero = SetOptions::new().ttl(Duration::ZERO);
        c.set("set", b"v", &zero).unwrap();
        assert!(c.add("add", b"v", &zero).unwrap());
        c.set_i64("i64", 7, &zero).unwrap();
        c.incr(
            "incr",
            1,
            &IncrOptions::new().initial(0).ttl(Duration::ZERO),
        )
        .unwrap();
        c.set("cas", b"v", &SetOptions::new()).unwrap();
        let v = c.get("cas").unwrap().unwrap().version;
        assert!(c.cas("cas", b"w", v, &zero).unwrap());
        c.set(
            "touch",
            b"v",
            &SetOptions::new().ttl(Duration::from_secs(60)),
        )
        .unwrap();
        assert!(c.touch("touch", Some(Duration::ZERO)).unwrap());
        for key in ["set", "add", "i64", "incr", "cas", "touch"] {
            assert_eq!(c.ttl(key).unwrap(), Ttl::Never, "{key}");
        }

        // A compare-and-delete: expired, over the version read only.
        let v = c.get("cas").unwrap().unwrap().version;
        let expired = SetOptions::new().expired();
        assert!(!c.cas("cas", b"", v + 1, &expired).unwrap());
        assert!(c.cas("cas", b"", v, &expired).unwrap());
        assert_eq!(c.ttl("cas").unwrap(), Ttl::Missing);
        let both = SetOptions::new().expired().ttl(Duration::from_secs(1));
        let e = c.set("x", b"v", &both).unwrap_err();
        assert!(matches!(e, Error::InvalidArgument { .. }), "{e}");
    });
}

#[test]
fn scan_delete_matching_and_namespaces() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("atomic-scan", &["--memory", "32MiB"]);
        let c = connect(daemon.socket(), "scan");
        let other = c.with_namespace("other").unwrap();
        for i in 0..500 {
            let tag = format!("group/{}", i % 5);
            c.set(format!("user:{i}"), b"u", &SetOptions::new().tag(tag))
                .unwrap();
            c.set(format!("item:{i}"), b"i", &SetOptions::new())
                .unwrap();
        }
        for i in 0..50 {
            other
                .set(format!("user:{i}"), b"o", &SetOptions::new())
                .unwrap();
        }
        let keys =
            |o: &ScanOptions| -> Vec<Vec<u8>> { c.scan(o).map(|r| r.unwrap().key).collect() };
        let users = keys(&ScanOptions::new().pattern("user:*").page_size(7));
        let set: HashSet<_> = users.iter().cloned().collect();
        assert_eq!((users.len(), set.len()), (500, 500));
        assert!(set.iter().all(|k| k.starts_with(b"user:")));
        assert_eq!(keys(&ScanOptions::new()).len(), 1000);
        assert_eq!(keys(&ScanOptions::new().pattern("user:1?")).len(), 10);
        assert_eq!(keys(&ScanOptions::new().tag("group/2")).len(), 100);
        assert_eq!(keys(&ScanOptions::new().tag("group")).len(), 500);
        assert_eq!(keys(&ScanOptions::new().exact_tag("group")).len(), 0);
        let item = c
            .scan(&ScanOptions::new().pattern("item:7"))
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(item.key, b"item:7");
        assert_eq!(item.version, c.get("item:7").unwrap().unwrap().version);
        assert_eq!(item.expires_ms, None);

        let ns = c.namespaces().unwrap();
        let find = |name: &str| ns.iter().find(|n| n.name == name).cloned();
        assert_eq!(find("scan").unwrap().entries, 1000);
        assert_eq!(find("other").unwrap().entries, 50);
        assert!(find("scan").unwrap().bytes > find("other").unwrap().bytes);

        assert_eq!(
            c.delete_matching(&ScanOptions::new().tag("group/3"))
                .unwrap(),
            100
        );
        assert_eq!(
            c.delete_matching(&ScanOptions::new().pattern("item:*"))
                .unwrap(),
            500
        );
        assert_eq!(keys(&ScanOptions::new()).len(), 400);
        assert!(c.get("user:3").unwrap().is_none());
        assert!(c.get("user:4").unwrap().is_some());
        assert_eq!(
            other.get("user:3").unwrap().unwrap().bytes,
            b"o",
            "other namespaces stay"
        );
        assert!(matches!(
            c.delete_matching(&ScanOptions::new().pattern("")),
            Err(Error::InvalidArgument { .. })
        ));
        match c.scan_page(0, &ScanOptions::new().tag("bad//tag")) {
            Err(Error::InvalidArgument { .. }) => {}
            other => panic!("a bad tag is refused: {other:?}"),
        }
    });
}

/// Many connections at once: incr never loses an update, exactly one add wins, a counter built
/// on cas ends exact.
#[test]
fn contention_loses_nothing() {
    watchdog(Duration::from_secs(120), || {
        let daemon = Daemon::start("atomic-contention", &["--memory", "16MiB"]);
        let socket = daemon.socket().to_path_buf();
        const THREADS: usize = 8;
        const EACH: i64 = 500;
        let clients: Vec<Client> = (0..THREADS).map(|_| connect(&socket, "race")).collect();
        let barrier = Arc::new(Barrier::new(THREADS));
        let add_wins = Arc::new(AtomicU64::new(0));
        let cas_retries = Arc::new(AtomicU64::new(0));
        std::thread::scope(|s| {
            for c in &clients {
                let (barrier, add_wins, cas_retries) =
                    (barrier.clone(), add_wins.clone(), cas_retries.clone());
                s.spawn(move || {
                    barrier.wait();
                    for round in 0..EACH {
                        c.incr("counter", 1, &IncrOptions::new().initial(0))
                            .unwrap();
                        if c.add(format!("lock:{round}"), b"mine", &SetOptions::new())
                            .unwrap()
                        {
                            add_wins.fetch_add(1, Ordering::Relaxed);
                        }
                        // Read, add one, compare-and-set; retry on a lost race.
                        loop {
                            let (n, version) = match c.get("cas").unwrap() {
                                Some(v) => (v.as_i64().unwrap(), v.version),
                                None => {
                                    // The first to come creates it; the others read it.
                                    c.add("cas", b"0", &SetOptions::new()).unwrap();
                                    continue;
                                }
                            };
                            let next = (n + 1).to_string();
                            if c.cas("cas", next.as_bytes(), version, &SetOptions::new())
                                .unwrap()
                            {
                                break;
                            }
                            cas_retries.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                });
            }
        });
        let c = &clients[0];
        let total = THREADS as i64 * EACH;
        assert_eq!(c.get("counter").unwrap().unwrap().as_i64(), Some(total));
        assert_eq!(
            add_wins.load(Ordering::Relaxed),
            EACH as u64,
            "one add per key wins"
        );
        assert_eq!(c.get("cas").unwrap().unwrap().as_i64(), Some(total));
        eprintln!(
            "cas retries under contention: {}",
            cas_retries.load(Ordering::Relaxed)
        );
    });
}
