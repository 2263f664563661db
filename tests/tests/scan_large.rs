//! SCAN over a million entries while writers run: every entry present for the whole scan is
//! returned exactly once, and no request holds the daemon's writer for long (each page walks a
//! bounded slice of the index). Prints the per-page latency and the writers' worst set
//! latency during the scan: the figures in the closing note come from here.
//!
//! `CACHEKIT_SCAN_ENTRIES` changes the table size (default 1,000,000).
#![forbid(unsafe_code)]

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cachekit_client::{Client, ClientOptions, ScanOptions, SetOptions};
use cachekit_testkit::{eventually, watchdog, Daemon};

fn connect(socket: &std::path::Path) -> Client {
    let opts = ClientOptions::new()
        .socket(socket)
        .namespace("scan")
        .request_timeout(Duration::from_secs(10));
    let mut client = None;
    assert!(
        eventually(Duration::from_secs(10), || {
            client = Client::connect(opts.clone()).ok();
            client.is_some()
        }),
        "cachekitd did not come up within 10 s"
    );
    client.unwrap()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

#[test]
fn a_million_entries_scanned_under_writes_each_once() {
    let entries: u64 = std::env::var("CACHEKIT_SCAN_ENTRIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    watchdog(Duration::from_secs(600), move || {
        let daemon = Daemon::start("scan-large", &["--memory", "768MiB"]);
        let socket = daemon.socket().to_path_buf();
        // Half the keys match the pattern ("k:"), half do not ("x:").
        let fill = Instant::now();
        const FILLERS: u64 = 4;
        std::thread::scope(|s| {
            for t in 0..FILLERS {
                let c = connect(&socket);
                s.spawn(move || {
                    for i in (t..entries).step_by(FILLERS as usize) {
                        let key = match i % 2 {
                            0 => format!("k:{i}"),
                            _ => format!("x:{i}"),
                        };
                        c.set(key, i.to_le_bytes(), &SetOptions::new()).unwrap();
                    }
                });
            }
        });
        eprintln!("filled {entries} entries in {:?}", fill.elapsed());
        let c = connect(&socket);
        let stats = c.stats().unwrap();
        for evictions in ["table_evictions", "table_bucket_evictions"] {
            assert_eq!(
                stats.daemon_counter(evictions),
                Some(0),
                "{evictions}: the table must hold every entry for the test to mean anything"
            );
        }

        // Writers: overwrite non-matching keys, add and delete keys that match the pattern
        // ("k:new:…": present only part of the time, so they may or may not be returned).
        let stop = AtomicBool::new(false);
        let worst_set = AtomicU64::new(0);
        let sets = AtomicU64::new(0);
        let pages = std::thread::scope(|s| {
            for w in 0..2u64 {
                let c = connect(&socket);
                let (stop, worst_set, sets) = (&stop, &worst_set, &sets);
                s.spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let t = Instant::now();
                        if n.is_multiple_of(2) {
                            let i = ((n * 7919 + w) % entries) | 1;
                            c.set(format!("x:{i}"), n.to_le_bytes(), &SetOptions::new())
                                .unwrap();
                        } else {
                            let key = format!("k:new:{w}:{}", n % 1000);
                            c.set(&key, b"new", &SetOptions::new()).unwrap();
                            c.delete(format!("k:new:{w}:{}", (n + 500) % 1000)).unwrap();
                        }
                        worst_set.fetch_max(t.elapsed().as_micros() as u64, Ordering::Relaxed);
                        sets.fetch_add(1, Ordering::Relaxed);
                        n += 1;
                    }
                });
            }
            let opts = ScanOptions::new().pattern("k:*").page_size(1000);
            let (mut cursor, mut seen, mut pages) = (0, Vec::new(), Vec::new());
            let scan = Instant::now();
            loop {
                let t = Instant::now();
                let (next, items) = c.scan_page(cursor, &opts).unwrap();
                pages.push(t.elapsed());
                seen.extend(items.into_iter().map(|i| i.key));
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            stop.store(true, Ordering::Relaxed);
            eprintln!("scanned in {:?}", scan.elapsed());
            (seen, pages)
        });
        let (seen, mut pages) = pages;
        let mut stable = HashSet::new();
        for key in &seen {
            if key.starts_with(b"k:new:") {
                continue;
            }
            assert!(
                key.starts_with(b"k:"),
                "{:?} does not match",
                String::from_utf8_lossy(key)
            );
            assert!(
                stable.insert(key.clone()),
                "{} returned twice",
                String::from_utf8_lossy(key)
            );
        }
        assert_eq!(
            stable.len() as u64,
            entries.div_ceil(2),
            "every matching entry present for the whole scan is returned"
        );
        pages.sort();
        eprintln!(
            "{} pages; per page p50 {:?}, p99 {:?}, max {:?}; {} writes during the scan, the slowest {} µs",
            pages.len(),
            percentile(&pages, 0.5),
            percentile(&pages, 0.99),
            pages.last().unwrap(),
            sets.load(Ordering::Relaxed),
            worst_set.load(Ordering::Relaxed),
        );
        assert!(
            sets.load(Ordering::Relaxed) > 0,
            "the writers ran during the scan"
        );
    });
}
