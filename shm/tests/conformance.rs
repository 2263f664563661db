//! The table's behaviour, checked on both backings (heap and real sealed memfds).

mod common;

use cachekit_shm::*;
use common::{small, table, BACKINGS};

const T0: u64 = 1_700_000_000_000;

fn opts<'a>(ttl_ms: Option<u64>, grace_ms: u64, tags: &'a [&'a str]) -> InsertOptions<'a> {
    InsertOptions {
        ttl_ms,
        grace_ms,
        tags,
    }
}

fn get(r: &Reader, ns: &str, key: &str, now: u64) -> Option<Vec<u8>> {
    r.get_at(ns, key.as_bytes(), Some(now)).map(|(v, _)| v)
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a minute or more under Miri (its table alone is 1.8 MB): scripts/test --deep runs a subset"
)]
fn set_get_overwrite_delete() {
    for b in BACKINGS {
        let (mut w, r) = table(&small(), b);
        assert_eq!(get(&r, "n", "k", T0), None);
        w.insert_at("n", b"k", b"one", &InsertOptions::default(), T0)
            .unwrap();
        assert_eq!(get(&r, "n", "k", T0).as_deref(), Some(&b"one"[..]));
        w.insert_at("n", b"k", b"two", &InsertOptions::default(), T0)
            .unwrap();
        assert_eq!(get(&r, "n", "k", T0).as_deref(), Some(&b"two"[..]));
        assert_eq!(w.stat(Stat::LiveEntries), 1);
        assert_eq!(w.stat(Stat::Overwrites), 1);
        assert!(w.delete("n", b"k"));
        assert!(!w.delete("n", b"k"));
        assert_eq!(get(&r, "n", "k", T0), None);
        assert_eq!(w.stat(Stat::LiveEntries), 0);
        // Empty key and empty value are ordinary.
        w.insert_at("n", b"", b"", &InsertOptions::default(), T0)
            .unwrap();
        assert_eq!(get(&r, "n", "", T0).as_deref(), Some(&b""[..]));
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a minute or more under Miri (its table alone is 1.8 MB): scripts/test --deep runs a subset"
)]
fn ttl_and_grace() {
    for b in BACKINGS {
        let (mut w, r) = table(&small(), b);
        w.insert_at("n", b"k", b"v", &opts(Some(1_000), 500, &[]), T0)
            .unwrap();
        let (_, m) = r.get_at("n", b"k", Some(T0 + 999)).unwrap();
        assert!(!m.stale);
        assert_eq!(m.created_ms, T0);
        assert_eq!(m.expires_ms, Some(T0 + 1_000));
        assert_eq!(m.grace_until_ms, Some(T0 + 1_500));
        let (_, m) = r.get_at("n", b"k", Some(T0 + 1_000)).unwrap();
        assert!(m.stale, "inside the grace window a hit is flagged stale");
        assert!(
            r.get_at("n", b"k", Some(T0 + 1_500)).is_none(),
            "gone after grace"
        );
        // No TTL: never expires.
        w.insert_at("n", b"forever", b"v", &opts(None, 0, &[]), T0)
            .unwrap();
        let (_, m) = r.get_at("n", b"forever", Some(u64::MAX / 2)).unwrap();
        assert_eq!(
            (m.expires_ms, m.grace_until_ms, m.stale),
            (None, None, false)
        );
        // TTL over 24 days is kept in seconds, rounded up.
        w.insert_at(
            "n",
            b"long",
            b"v",
            &opts(Some(90 * 86_400_000 + 1), 0, &[]),
            T0,
        )
        .unwrap();
        let (_, m) = r.get_at("n", b"long", Some(T0)).unwrap();
        assert_eq!(m.expires_ms, Some(T0 + 90 * 86_400_000 + 1_000));
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a minute or more under Miri (its table alone is 1.8 MB): scripts/test --deep runs a subset"
)]
fn hierarchical_and_exact_invalidation() {
    for b in BACKINGS {
        let (mut w, r) = table(&small(), b);
        let put = |w: &mut Writer, k: &str, tag: &str| {
            w.insert_at("n", k.as_bytes(), k.as_bytes(), &opts(None, 0, &[tag]), T0)
                .unwrap()
        };
        for (k, t) in [
            ("p1", "posts/1"),
            ("p1c", "posts/1/comments"),
            ("p2", "posts/2"),
            ("p", "posts"),
            ("p10", "posts/10"),
        ] {
            put(&mut w, k, t);
        }
        w.invalidate_at("n", "posts/1", InvalidateMode::Hierarchical, T0)
            .unwrap();
        assert_eq!(get(&r, "n", "p1", T0), None);
        assert_eq!(get(&r, "n", "p1c", T0), None);
        assert!(get(&r, "n", "p2", T0).is_some(), "a sibling survives");
        assert!(get(&r, "n", "p", T0).is_some(), "the parent survives");
        assert!(
            get(&r, "n", "p10", T0).is_some(),
            "posts/10 is not under posts/1"
        );

        // Exact: only that path.
        put(&mut w, "p1", "posts/1");
        put(&mut w, "p1c", "posts/1/comments");
        w.invalidate_at("n", "posts/1", InvalidateMode::Exact, T0)
            .unwrap();
        assert_eq!(get(&r, "n", "p1", T0), None);
        assert!(get(&r, "n", "p1c", T0).is_some());

        // Writes after an invalidation are visible.
        put(&mut w, "p1", "posts/1");
        assert!(get(&r, "n", "p1", T0).is_some());

        // A tag in another namespace is another tag.
        w.insert_at("m", b"p2", b"x", &opts(None, 0, &["posts/2"]), T0)
            .unwrap();
        w.invalidate_at("m", "posts", InvalidateMode::Hierarchical, T0)
            .unwrap();
        assert!(get(&r, "m", "p2", T0).is_none());
        assert!(get(&r, "n", "p2", T0).is_some());

        // Several tags: any of them kills the entry.
        w.insert_at(
            "n",
            b"multi",
            b"x",
            &opts(None, 0, &["users/7", "posts/3"]),
            T0,
        )
        .unwrap();
        w.invalidate_at("n", "users", InvalidateMode::Hierarchical, T0)
            .unwrap();
        assert!(get(&r, "n", "multi", T0).is_none());
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a minute or more under Miri (its table alone is 1.8 MB): scripts/test --deep runs a subset"
)]
fn namespaces_are_isolated_and_clear_alone() {
    for b in BACKINGS {
        let (mut w, r) = table(&small(), b);
        w.insert_at("a", b"k", b"in a", &InsertOptions::default(), T0)
            .unwrap();
        w.insert_at("b", b"k", b"in b", &InsertOptions::default(), T0)
            .unwrap();
        assert_eq!(get(&r, "a", "k", T0).as_deref(), Some(&b"in a"[..]));
        assert_eq!(get(&r, "b", "k", T0).as_deref(), Some(&b"in b"[..]));
        w.clear_namespace_at("a", T0);
        assert_eq!(get(&r, "a", "k", T0), None);
        assert_eq!(get(&r, "b", "k", T0).as_deref(), Some(&b"in b"[..]));
        w.insert_at("a", b"k", b"again", &InsertOptions::default(), T0)
            .unwrap();
        assert_eq!(get(&r, "a", "k", T0).as_deref(), Some(&b"again"[..]));
        w.clear_all();
        assert_eq!(get(&r, "a", "k", T0), None);
        assert_eq!(get(&r, "b", "k", T0), None);
        assert_eq!(w.stat(Stat::LiveEntries), 0);
        assert_eq!(r.flush_generation(), 1);
        w.insert_at("b", b"k", b"after", &InsertOptions::default(), T0)
            .unwrap();
        assert_eq!(get(&r, "b", "k", T0).as_deref(), Some(&b"after"[..]));
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a minute or more under Miri (its table alone is 1.8 MB): scripts/test --deep runs a subset"
)]
fn limits_give_errors_that_name_the_setting() {
    for b in BACKINGS {
        let (mut w, _) = table(&small(), b);
        let d = InsertOptions::default();
        let e = w.insert("n", &[0; MAX_KEY_BYTES + 1], b"", &d).unwrap_err();
        assert!(matches!(
            e,
            InsertError::KeyTooLarge {
                len: 4097,
                max: 4096
            }
        ));
        assert!(
            w.insert("n", &[0; MAX_KEY_BYTES], b"", &d).is_ok(),
            "4 KiB keys are allowed"
        );
        let e = w
            .insert("n", b"k", &vec![0; (16 << 10) + 1], &d)
            .unwrap_err();
        assert!(e.to_string().contains("max_value_bytes = 16384"), "{e}");
        assert!(w.insert("n", b"k", &vec![0; 16 << 10], &d).is_ok());
        let long_ns = "x".repeat(MAX_NAMESPACE_BYTES + 1);
        assert!(matches!(
            w.insert(&long_ns, b"k", b"", &d),
            Err(InsertError::NamespaceTooLarge { .. })
        ));
        let nine = ["a"; 9];
        assert!(matches!(
            w.insert("n", b"k", b"", &opts(None, 0, &nine)),
            Err(InsertError::TooManyTags { count: 9, max: 8 })
        ));
        assert!(matches!(
            w.insert("n", b"k", b"", &opts(None, 0, &["a//b"])),
            Err(InsertError::Tag(TagError::EmptySegment { .. }))
        ));
        assert!(w.invalidate("n", "", InvalidateMode::Hierarchical).is_err());
        // Nothing was written by refused inserts.
        assert_eq!(w.stat(Stat::Inserts), 2);
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a minute or more under Miri (its table alone is 1.8 MB): scripts/test --deep runs a subset"
)]
fn buffer_too_small_reports_the_size() {
    for b in BACKINGS {
        let (mut w, r) = table(&small(), b);
        w.insert("n", b"k", &[7; 100], &InsertOptions::default())
            .unwrap();
        let mut small_buf = [0u8; 99];
        assert_eq!(
            r.get_into("n", b"k", &mut small_buf),
            Lookup::BufferTooSmall { needed: 100 }
        );
        let mut buf = [0u8; 100];
        assert!(matches!(r.get_into("n", b"k", &mut buf), Lookup::Hit(m) if m.value_len == 100));
        assert_eq!(buf, [7; 100]);
        assert_eq!(r.get_into("n", b"absent", &mut buf), Lookup::Miss);
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "minutes to hours under Miri: scripts/test --deep runs a subset"
)]
fn a_full_table_evicts_and_never_refuses() {
    for b in BACKINGS {
        let (mut w, r) = table(&small(), b);
        let value = [0xAB; 1000];
        for i in 0..10_000u32 {
            w.insert("n", &i.to_le_bytes(), &value, &InsertOptions::default())
                .expect("a full table evicts");
        }
        assert!(w.stat(Stat::Evictions) > 0);
        // The most recent writes are all there; nothing was wiped.
        let recent = (9_500..10_000u32)
            .filter(|i| r.get("n", &i.to_le_bytes()).is_some())
            .count();
        assert!(recent > 450, "recent entries survive, got {recent}/500");
        let live = w.stat(Stat::LiveEntries);
        assert!(live > 500, "the table stays mostly full, {live} live");
        // Largest allowed value still goes in.
        w.insert("n", b"big", &vec![1; 16 << 10], &InsertOptions::default())
            .unwrap();
        assert!(r.get("n", b"big").is_some());
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "minutes to hours under Miri: scripts/test --deep runs a subset"
)]
fn second_chance_keeps_read_entries() {
    for b in BACKINGS {
        let (mut w, r) = table(&small(), b);
        let value = [0xCD; 1000];
        w.insert("n", b"hot", &value, &InsertOptions::default())
            .unwrap();
        for i in 0..10_000u32 {
            // Read the hot key now and then: its access bit gets it copied forward
            // whenever its segment is evicted.
            if i % 50 == 0 {
                assert!(r.get("n", b"hot").is_some(), "hot key evicted at {i}");
            }
            w.insert("n", &i.to_le_bytes(), &value, &InsertOptions::default())
                .unwrap();
        }
        assert!(w.stat(Stat::SecondChances) > 0);
        assert!(r.get("n", b"hot").is_some());
        assert!(
            r.get("n", &0u32.to_le_bytes()).is_none(),
            "cold early keys are gone"
        );
    }
}

/// S3-FIFO: a key evicted unread from the small lane is remembered by the ghost; inserted
/// again, it goes to the main lane, where a flood of keys that are never read again (a scan)
/// does not reach it, although it is never read. Plain FIFO (with or without second chances)
/// evicts it with the flood.
#[test]
#[cfg_attr(
    miri,
    ignore = "minutes to hours under Miri: scripts/test --deep runs a subset"
)]
fn keys_back_from_the_ghost_outlive_a_scan() {
    for b in BACKINGS {
        let (mut w, r) = table(&small(), b);
        let value = [0xCD; 1000];
        let ins = |w: &mut Writer, k: &[u8]| {
            w.insert("n", k, &value, &InsertOptions::default()).unwrap();
        };
        ins(&mut w, b"returning");
        // Push it out unread (a read would set its access bit).
        for i in 0..2_000u32 {
            ins(&mut w, &i.to_le_bytes());
        }
        assert!(r.get("n", b"returning").is_none(), "not evicted yet");
        ins(&mut w, b"returning");
        // A scan of keys never read, several times the table's size.
        let capacity = w.stat(Stat::LiveEntries) as u32;
        for j in 0..capacity * 4 {
            ins(&mut w, &(1_000_000 + j).to_le_bytes());
        }
        assert!(
            r.get("n", b"returning").is_some(),
            "a key back from the ghost was evicted by a scan of {} keys",
            capacity * 4
        );
        // A new version of a key in main stays in main: updated, never read, it too
        // outlives another scan.
        ins(&mut w, b"returning");
        for j in 0..capacity * 4 {
            ins(&mut w, &(2_000_000 + j).to_le_bytes());
        }
        assert!(
            r.get("n", b"returning").is_some(),
            "an update demoted a key of the main lane"
        );
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a minute or more under Miri (its table alone is 1.8 MB): scripts/test --deep runs a subset"
)]
fn expired_segments_are_reclaimed_without_a_scan() {
    for b in BACKINGS {
        let (mut w, r) = table(&small(), b);
        // Enough short-lived entries to seal several segments of their TTL class.
        for i in 0..300u32 {
            w.insert_at(
                "n",
                &i.to_le_bytes(),
                &[1; 1000],
                &opts(Some(500), 0, &[]),
                T0,
            )
            .unwrap();
        }
        w.insert_at("n", b"keep", b"v", &opts(None, 0, &[]), T0)
            .unwrap();
        let free_before = w.stat(Stat::FreeSegments);
        assert_eq!(w.expire_at(T0 + 400), 0, "nothing has expired yet");
        let n = w.expire_at(T0 + 500);
        assert!(
            n >= 3,
            "sealed segments of expired entries are reclaimed, got {n}"
        );
        assert_eq!(w.stat(Stat::FreeSegments), free_before + n as u64);
        assert_eq!(w.stat(Stat::ExpiredSegments), n as u64);
        assert!(r.get_at("n", b"keep", Some(T0 + 500)).is_some());
    }
}

#[test]
#[cfg_attr(miri, ignore = "memfd: Miri cannot create or map one")]
fn readers_cannot_write_the_table() {
    use std::fs::File;
    let w = Writer::create(&small(), Backing::Memfd).unwrap();
    let fds = w.fds().unwrap();
    let file = File::from(fds.table.try_clone().unwrap());
    let err = memmap2::MmapOptions::new()
        .len(4096)
        .map_raw(&file)
        .unwrap_err();
    assert_eq!(
        err.raw_os_error(),
        Some(libc_eperm()),
        "a writable mapping of the table is refused: {err}"
    );
    // The client area stays writable for access bits.
    let cfile = File::from(fds.client.try_clone().unwrap());
    assert!(memmap2::MmapOptions::new()
        .len(4096)
        .map_raw(&cfile)
        .is_ok());
    // Nobody can shrink the table under a reader.
    assert!(file.set_len(4096).is_err());
}

fn libc_eperm() -> i32 {
    1
}

#[test]
#[cfg_attr(miri, ignore = "memfd: Miri cannot create or map one")]
fn attach_rejects_what_is_not_a_table() {
    let w = Writer::create(&small(), Backing::Memfd).unwrap();
    let fds = w.fds().unwrap();
    // The client area is sealed, but it is not a table.
    assert!(matches!(
        Reader::attach(fds.client_fd(), None),
        Err(AttachError::BadMagic)
    ));
    // An unsealed file is refused before it is mapped.
    let f = tempfile::tempfile().unwrap();
    f.set_len(1 << 20).unwrap();
    use std::os::fd::AsFd;
    let e = Reader::attach(f.as_fd(), None)
        .err()
        .expect("unsealed file refused");
    assert!(e.to_string().contains("not sealed"), "{e}");
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a minute or more under Miri (its table alone is 1.8 MB): scripts/test --deep runs a subset"
)]
fn metadata_overhead_is_32_bytes() {
    // Per entry: the 24-byte entry header plus one 8-byte index slot, beyond the key,
    // namespace, value and 4 bytes per tag-counter reference. No padding.
    assert_eq!(ENTRY_HEADER_BYTES + 8, 32);
    for b in BACKINGS {
        let (mut w, _) = table(&small(), b);
        w.insert("ns", b"key", &[0; 100], &InsertOptions::default())
            .unwrap();
        // 24 header + 2 ns + 3 key + 4 (namespace reference) + 100 value.
        assert_eq!(w.stat(Stat::UsedBytes), 24 + 2 + 3 + 4 + 100);
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "a minute or more under Miri (its table alone is 1.8 MB): scripts/test --deep runs a subset"
)]
fn heartbeat_and_epoch_are_published() {
    for b in BACKINGS {
        let cfg = TableConfig {
            epoch: Some(42),
            ..small()
        };
        let (w, r) = table(&cfg, b);
        assert_eq!(r.epoch(), 42);
        w.heartbeat_at(T0 + 5);
        assert_eq!(r.heartbeat_ms(), T0 + 5);
    }
}

#[test]
fn bad_configurations_are_refused_with_the_fix() {
    let e = Writer::create(
        &TableConfig {
            arena_bytes: 1 << 20,
            ..TableConfig::default()
        },
        Backing::Heap,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("fewer than 2 segments"), "{e}");
    let e = Writer::create(
        &TableConfig {
            segment_bytes: Some(4096),
            ..small()
        },
        Backing::Heap,
    )
    .err()
    .unwrap();
    assert!(e.to_string().contains("raise segment_bytes"), "{e}");
}

/// Reader threads sharing one `Reader` while the writer overwrites, evicts and recycles
/// segments: every hit is a whole value of the key asked for. Under Miri this is also the
/// check of the table's `Send`/`Sync` claims and of its atomics for data races.
#[test]
fn reader_threads_see_whole_values_while_segments_recycle() {
    // Four segments of 8 KiB, 16 keys of 100 to 380 bytes overwritten round after round:
    // a segment is recycled every few dozen writes.
    let cfg = TableConfig {
        arena_bytes: 32 << 10,
        segment_bytes: Some(8 << 10),
        max_value_bytes: 1 << 10,
        expected_entry_bytes: 256,
        tag_counters: 64,
        hash_seed: Some(9),
        ..TableConfig::default()
    };
    // Under Miri: enough writes to recycle segments (the third of four fills after about
    // 90), few reads (each costs a lot with the race detector on).
    let (writes, reads) = if cfg!(miri) {
        (150, 50)
    } else {
        (50_000, 20_000)
    };
    let len = |k: u8| 100 + 40 * (k as usize % 8);
    for b in BACKINGS {
        let (mut w, r) = table(&cfg, b);
        let hits = std::thread::scope(|s| {
            let readers: Vec<_> = (0..2u64)
                .map(|t| {
                    let r = &r;
                    s.spawn(move || {
                        let mut hits = 0;
                        for i in 0..reads {
                            let k = ((i * 7 + t * 3) % 16) as u8;
                            if let Some((v, _)) = r.get("n", &[k]) {
                                assert_eq!(v.len(), len(k), "length of key {k}");
                                assert!(v.iter().all(|&x| x == k), "bytes of key {k}");
                                hits += 1;
                            }
                        }
                        hits
                    })
                })
                .collect();
            for i in 0..writes {
                let k = (i % 16) as u8;
                w.insert("n", &[k], &vec![k; len(k)], &InsertOptions::default())
                    .unwrap();
            }
            readers.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        assert!(w.stat(Stat::Recycles) > 0, "{b:?}: no segment was recycled");
        // The writer is done: every key is there now, whole.
        for k in 0..16u8 {
            assert_eq!(r.get("n", &[k]).map(|(v, _)| v), Some(vec![k; len(k)]));
        }
        println!("{b:?}: {hits} hits of {} reads", 2 * reads);
    }
}

#[test]
#[cfg_attr(miri, ignore = "memfd: Miri cannot create or map one")]
fn a_client_area_full_of_garbage_still_attaches_serves_hits_and_is_reported_repaired() {
    let mut w = Writer::create(&small(), Backing::Memfd).unwrap();
    w.insert("ns", b"k", b"v", &InsertOptions::default())
        .unwrap();
    let fds = w.fds().unwrap();
    // Any client may write every byte of the client area: header, records, bitmap.
    let len = rustix::fs::fstat(fds.client_fd()).unwrap().st_size as usize;
    let garbage: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(151) ^ 0x5A)
        .collect();
    assert_eq!(
        rustix::io::pwrite(fds.client_fd(), &garbage, 0).unwrap(),
        len
    );

    // Nothing in it decides whether a reader attaches or what it reads.
    let r = Reader::attach(fds.table_fd(), Some(fds.client_fd()))
        .expect("a reader attaches whatever the client area holds");
    assert_eq!(r.get("ns", b"k").map(|(v, _)| v), Some(b"v".to_vec()));

    // The daemon's handle sees the damage and repairs it: once.
    let area = w.client_area();
    assert!(!area.check_header(), "a garbled header is reported");
    assert!(area.check_header(), "and rewritten");
}

#[test]
#[cfg_attr(miri, ignore = "memfd: Miri cannot create or map one")]
fn a_counters_file_counts_per_namespace_and_garbage_in_it_is_summed_saturating_and_repaired() {
    use cachekit_shm::{CounterFile, Tallies};
    use std::os::fd::AsFd;
    let mut w = Writer::create(&small(), Backing::Memfd).unwrap();
    for ns in ["a", "b"] {
        w.insert(ns, b"k", b"v", &InsertOptions::default()).unwrap();
    }
    let fds = w.fds().unwrap();
    let file = CounterFile::create(7, 3).expect("counters memfd");
    let mut r = Reader::attach(fds.table_fd(), Some(fds.client_fd())).unwrap();
    r.count_into(file.fd()).expect("a counters file maps");
    for _ in 0..3 {
        assert!(r.get("a", b"k").is_some());
    }
    assert!(r.get("a", b"nope").is_none());
    assert!(r.get("b", b"k").is_some());
    // Lookups from other threads land in stripes of their own: all summed.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..10 {
                    assert!(r.get("b", b"k").is_some());
                }
            });
        }
    });
    let area = w.client_area();
    let t = file.tallies();
    let of = |ns: &str| {
        t.namespaces
            .iter()
            .find(|(tag, _)| *tag == area.namespace_tag(ns))
            .map(|(_, t)| *t)
    };
    assert_eq!(
        of("a"),
        Some(Tallies {
            hits: 3,
            stale_hits: 0,
            misses: 1
        })
    );
    assert_eq!(of("b").map(|t| t.hits), Some(41));
    assert_eq!(t.unattributed, Tallies::default());
    assert!(file.check_header(), "untouched");

    // The file is sealed: it cannot be grown or shrunk under the daemon's mapping.
    assert!(rustix::fs::ftruncate(file.fd(), 0).is_err());
    assert!(rustix::fs::ftruncate(file.fd(), 1 << 20).is_err());

    // Its process writes the largest numbers everywhere: the daemon's sums saturate, the
    // header is reported and rewritten, and the reader keeps serving (and counting).
    file.scribble(u64::MAX);
    let t = file.tallies();
    assert_eq!(t.unattributed.hits, u64::MAX, "saturating, never wrapping");
    assert!(!file.check_header(), "a garbled header is reported");
    assert!(file.check_header(), "and rewritten");
    assert_eq!(r.get("a", b"k").map(|(v, _)| v), Some(b"v".to_vec()));
    let _ = file.tallies();

    // A descriptor that is not a sealed counters file is refused.
    assert!(
        r.count_into(fds.table_fd()).is_err(),
        "the table cannot be mapped writable"
    );
    let small = rustix::fs::memfd_create("short", rustix::fs::MemfdFlags::ALLOW_SEALING).unwrap();
    rustix::fs::ftruncate(&small, 4096).unwrap();
    rustix::fs::fcntl_add_seals(&small, rustix::fs::SealFlags::SHRINK).unwrap();
    assert!(
        r.count_into(small.as_fd()).is_err(),
        "shorter than a counters file"
    );
    let unsealed = rustix::fs::memfd_create("unsealed", rustix::fs::MemfdFlags::empty()).unwrap();
    rustix::fs::ftruncate(&unsealed, 8192).unwrap();
    assert!(
        r.count_into(unsealed.as_fd()).is_err(),
        "not sealed against shrinking"
    );
}
