//! The writer's own reads: entry views, rewrites that keep tags, and bounded walks of the index
//! (scan, delete by pattern or tag, namespace census), on a heap-backed table.

mod common;

use cachekit_shm::{Backing, Filter, InsertOptions, InvalidateMode, TableConfig, Writer};
use std::collections::{HashMap, HashSet};

const NOW: u64 = 1_700_000_000_000;

fn table() -> Writer {
    let cfg = TableConfig {
        arena_bytes: 8 << 20,
        ..common::small()
    };
    Writer::create(&cfg, Backing::Heap).expect("table")
}

fn put(w: &mut Writer, ns: &str, key: &str, tags: &[&str], ttl: Option<u64>) -> u64 {
    let opts = InsertOptions {
        ttl_ms: ttl,
        grace_ms: 0,
        tags,
    };
    w.insert_at(ns, key.as_bytes(), key.as_bytes(), &opts, NOW)
        .expect("insert")
}

fn scan_all(w: &Writer, f: &Filter<'_>, page: usize, slots: u64) -> Vec<Vec<u8>> {
    let (mut cursor, mut keys, mut pages) = (0, Vec::new(), 0);
    loop {
        let (next, items) = w.scan(f, cursor, page, slots, NOW).expect("scan");
        assert!(items.len() <= page.max(1));
        keys.extend(items.into_iter().map(|i| i.key));
        pages += 1;
        assert!(pages < 1_000_000, "a scan must end");
        if next == 0 {
            return keys;
        }
        assert!(next > cursor, "the cursor moves forward");
        cursor = next;
    }
}

#[test]
fn entry_rewrite_keeps_tags_and_versions_grow() {
    let mut w = table();
    let v1 = put(&mut w, "ns", "k", &["posts/1"], Some(60_000));
    let e = w.entry("ns", b"k", NOW).expect("live");
    assert_eq!((e.stamp, e.value.as_slice()), (v1, &b"k"[..]));
    assert_eq!(e.expires_ms, Some(NOW + 60_000));
    assert!(e.is_fresh(NOW) && !e.is_fresh(NOW + 60_000));
    let v2 = w.rewrite("ns", b"k", &e, Some(b"new"), None, NOW + 1);
    assert!(v2 > v1);
    let e2 = w.entry("ns", b"k", NOW + 1).expect("live");
    assert_eq!(
        (e2.stamp, e2.value.as_slice(), e2.expires_ms),
        (v2, &b"new"[..], None)
    );
    // The rewritten entry still carries the tag.
    w.invalidate_at("ns", "posts", InvalidateMode::Hierarchical, NOW + 2)
        .unwrap();
    assert!(w.entry("ns", b"k", NOW + 3).is_none());
    assert!(w.entry("other", b"k", NOW).is_none());
}

#[test]
fn scan_returns_every_match_once_and_only_its_namespace() {
    let mut w = table();
    let mut want = HashSet::new();
    for i in 0..3000 {
        let key = format!("user:{i}");
        put(&mut w, "a", &key, &[], None);
        if i % 3 == 0 {
            put(&mut w, "b", &key, &[], None);
        }
        put(&mut w, "a", &format!("item:{i}"), &[], None);
        want.insert(key.into_bytes());
    }
    let glob = |k: &[u8]| k.starts_with(b"user:");
    let f = Filter {
        namespace: "a",
        key: Some(&glob),
        tag: None,
    };
    for (page, slots) in [(1000, 1 << 30), (7, 64), (1, 1)] {
        let got = scan_all(&w, &f, page, slots);
        let set: HashSet<_> = got.iter().cloned().collect();
        assert_eq!(
            got.len(),
            set.len(),
            "no key twice (page {page}, slots {slots})"
        );
        assert_eq!(set, want, "page {page}, slots {slots}");
    }
}

#[test]
fn tag_filters_select_and_deleting_the_selection_frees_it() {
    let mut w = table();
    for i in 0..200 {
        let tag = format!("posts/{}", i % 4);
        let deep = format!("posts/{}/comments", i % 4);
        let tags: Vec<&str> = if i % 2 == 0 { vec![&tag] } else { vec![&deep] };
        put(&mut w, "ns", &format!("k{i}"), &tags, None);
    }
    fn tagged(w: &Writer, tag: &str, mode: InvalidateMode) -> usize {
        let f = Filter {
            namespace: "ns",
            key: None,
            tag: Some((tag, mode)),
        };
        scan_all(w, &f, 1000, 1 << 30).len()
    }
    assert_eq!(tagged(&w, "posts/1", InvalidateMode::Hierarchical), 50);
    assert_eq!(
        tagged(&w, "posts/1", InvalidateMode::Exact),
        0,
        "odd i carry posts/1/comments"
    );
    assert_eq!(tagged(&w, "posts/2", InvalidateMode::Exact), 50);
    assert_eq!(tagged(&w, "posts", InvalidateMode::Hierarchical), 200);
    let used = w.stat(cachekit_shm::Stat::LiveEntries);
    let f = Filter {
        namespace: "ns",
        key: None,
        tag: Some(("posts/3", InvalidateMode::Hierarchical)),
    };
    let (mut cursor, mut deleted) = (0, 0);
    loop {
        // A delete by tag, as the daemon does it: a page of the scan, each entry deleted.
        let (next, page) = w.scan(&f, cursor, usize::MAX, 100, NOW).unwrap();
        for e in page {
            deleted += u64::from(w.delete("ns", &e.key));
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
    assert_eq!(deleted, 50);
    assert_eq!(w.stat(cachekit_shm::Stat::LiveEntries), used - 50);
    assert_eq!(tagged(&w, "posts", InvalidateMode::Hierarchical), 150);
}

#[test]
fn census_counts_live_entries_per_namespace() {
    let mut w = table();
    for i in 0..100 {
        put(&mut w, "a", &format!("{i:03}"), &[], None);
    }
    for i in 0..10 {
        put(&mut w, "b", &format!("{i:03}"), &[], Some(1));
    }
    let mut seen: HashMap<Vec<u8>, (u64, u64)> = HashMap::new();
    let mut cursor = 0;
    loop {
        cursor = w.namespace_census(cursor, 50, NOW, |ns, bytes| {
            let e = seen.entry(ns.to_vec()).or_default();
            e.0 += 1;
            e.1 += bytes;
        });
        if cursor == 0 {
            break;
        }
    }
    // 24 header + 1 namespace + 3 key + 4 (one reference) + 3 value.
    assert_eq!(seen[&b"a".to_vec()], (100, 100 * 35));
    assert_eq!(seen[&b"b".to_vec()], (10, 10 * 35));
    let mut later = 0;
    w.namespace_census(0, u64::MAX, NOW + 10, |ns, _| {
        later += u64::from(ns == b"b")
    });
    assert_eq!(later, 0, "expired entries are not counted");
}
