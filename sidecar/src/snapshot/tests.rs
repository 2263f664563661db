//! Snapshots written from a table and loaded into a new one: the same answers; truncation at
//! every offset and random byte flips never crash the loader and never yield a damaged value.

use super::*;
use crate::table::SharedTable;
use cachekit_shm::{now_ms, Backing, InsertOptions, TableConfig};
use proptest::prelude::*;
use std::os::unix::fs::PermissionsExt;

fn config(seed: Option<u64>) -> TableConfig {
    TableConfig {
        arena_bytes: 4 << 20,
        tag_counters: 1024,
        hash_seed: seed,
        ..TableConfig::default()
    }
}

fn value(i: usize) -> String {
    format!("value-{i}-").repeat(1 + i % 5)
}

/// A table with `n` entries (`k{i}` = [`value`]), tagged `even/t` (every third) or `odd` (the
/// others, then invalidated), one with a TTL; and the snapshot bytes of it.
fn source(n: usize) -> (SharedTable, Vec<u8>) {
    let t = SharedTable::new(Writer::create(&config(None), Backing::Heap).unwrap());
    t.change(|t| {
        for i in 0..n {
            let tags: &[&str] = if i % 3 == 0 { &["even/t"] } else { &["odd"] };
            let opts = InsertOptions {
                ttl_ms: (i == 3).then_some(3_600_000),
                grace_ms: 0,
                tags,
            };
            t.set(
                "app",
                format!("k{i}").as_bytes(),
                value(i).as_bytes(),
                &opts,
                None,
            )
            .unwrap();
        }
        t.invalidate(
            "app",
            &["odd".to_string()],
            cachekit_shm::InvalidateMode::Exact,
            None,
        )
        .unwrap();
    });
    let mut bytes = Vec::new();
    t.read(|t| dump(t, &mut bytes, now_ms(), true)).unwrap();
    (t, bytes)
}

type Live = Vec<(Vec<u8>, Vec<u8>)>;

/// Loads `bytes` into a new table: the outcome and the live key → value pairs.
fn load_bytes(bytes: &[u8]) -> (Result<Loaded, String>, Live) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap");
    std::fs::write(&path, bytes).unwrap();
    let seed = read_header(&path).map(|h| h.space.hash_seed).ok();
    let mut w = Writer::create(&config(seed), Backing::Heap).unwrap();
    let r = load(&path, &mut w, now_ms(), 1 << 20);
    (r, live_of(&SharedTable::new(w)))
}

/// Every value loaded is the one the source held for that key, byte for byte, and only keys
/// the source served.
fn judge(live: &Live) {
    for (k, v) in live {
        let i: usize = std::str::from_utf8(&k[1..]).unwrap().parse().unwrap();
        assert_eq!(i % 3, 0, "k{i} was invalidated in the source");
        assert_eq!(v, value(i).as_bytes(), "k{i} loaded with a damaged value");
    }
}

/// The live key → value pairs of `t`, as a whole-table walk (and so a read) sees them.
fn live_of(t: &SharedTable) -> Live {
    let mut live = Vec::new();
    t.read(|t| {
        t.as_source()
            .entries(now_ms(), |e| live.push((e.key.clone(), e.value.clone())));
    });
    live.sort();
    live
}

#[test]
fn a_clean_snapshot_loads_exactly_the_live_entries() {
    let (t, bytes) = source(30);
    let (r, live) = load_bytes(&bytes);
    let r = r.unwrap();
    assert!(r.stopped.is_none(), "{:?}", r.stopped);
    assert_eq!(r.dropped.total(), 0, "{:?}", r.dropped.named());
    let want = live_of(&t);
    assert!(want.len() >= 8, "{}", want.len());
    judge(&want);
    assert_eq!(live, want);
    assert_eq!(r.loaded as usize, want.len());
}

#[test]
fn stream_positions_are_written_and_loaded_and_version_1_still_loads() {
    let (t, _) = source(6);
    t.record_stream_position("app", 1700, 2, 41);
    t.record_stream_position("other", 1800, 0, 7);
    let mut bytes = Vec::new();
    t.read(|t| dump(t, &mut bytes, now_ms(), true)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap");
    std::fs::write(&path, &bytes).unwrap();
    let seed = read_header(&path).unwrap().space.hash_seed;
    let mut w = Writer::create(&config(Some(seed)), Backing::Heap).unwrap();
    let r = load(&path, &mut w, now_ms(), 1 << 20).unwrap();
    assert_eq!(r.positions, 2);
    let mut got = w.stream_positions();
    got.sort_by_key(|p| p.id_ms);
    let app = cachekit_shm::StreamPosition::namespace_hash("app");
    assert_eq!(
        got.iter()
            .map(|p| (p.namespace_hash == app, p.id_ms, p.id_seq, p.clock))
            .collect::<Vec<_>>(),
        [(true, 1700, 2, 41), (false, 1800, 0, 7)]
    );
    assert_eq!(live_of(&SharedTable::new(w)), live_of(&t));
    // The same file as version 1 wrote it (no position records): still loaded, no positions.
    let (t1, _) = source(6);
    let mut v1 = Vec::new();
    t1.read(|t| dump(t, &mut v1, now_ms(), true)).unwrap();
    let mut h: [u8; HEADER] = v1[..HEADER].try_into().unwrap();
    h[8..12].copy_from_slice(&1u32.to_le_bytes());
    let sum = xxh3_64(&h[..56]);
    h[56..64].copy_from_slice(&sum.to_le_bytes());
    v1[..HEADER].copy_from_slice(&h);
    let (r, live) = load_bytes(&v1);
    let r = r.unwrap();
    assert_eq!((r.positions, r.stopped.is_none()), (0, true), "{r:?}");
    assert_eq!(live, live_of(&t1));
    // A version-1 file cannot hold a position record: one there is damage.
    let (r, _) = load_bytes(&[&v1[..], &bytes[HEADER..HEADER + 45]].concat());
    assert!(r.unwrap().stopped.is_some());
}

#[test]
fn a_snapshot_written_while_running_is_not_loaded() {
    let (t, _) = source(3);
    let mut bytes = Vec::new();
    t.read(|t| dump(t, &mut bytes, now_ms(), false)).unwrap();
    let (r, live) = load_bytes(&bytes);
    assert!(r.unwrap_err().contains("not at a clean stop"));
    assert!(live.is_empty());
}

#[test]
fn truncation_at_every_offset_loads_whole_records_only() {
    let (_t, bytes) = source(30);
    let (_, full) = load_bytes(&bytes);
    assert!(full.len() >= 2, "{}", full.len());
    for cut in 0..bytes.len() {
        let (r, live) = load_bytes(&bytes[..cut]);
        judge(&live);
        if cut < HEADER {
            assert!(r.is_err() && live.is_empty(), "cut at {cut}");
        } else {
            let r = r.unwrap();
            assert_eq!(r.loaded as usize, live.len(), "cut at {cut}");
            assert!(live.len() < full.len(), "cut at {cut}: every entry loaded");
            assert!(r.stopped.is_some() || r.bytes == cut as u64, "cut at {cut}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]
    #[test]
    fn random_byte_flips_never_crash_and_never_yield_a_damaged_value(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4)
    ) {
        let (_t, mut bytes) = source(12);
        for (at, x) in flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        let (_, live) = load_bytes(&bytes);
        judge(&live);
    }
}

/// Figures for the note: `cargo test --profile ci -p cachekitd deep_snapshot_throughput --
/// --ignored --nocapture` (200k entries of 1 KiB through a file in the temp dir).
#[test]
#[ignore]
fn deep_snapshot_throughput() {
    let n = 200_000usize;
    let cfg = TableConfig {
        arena_bytes: 512 << 20,
        tag_counters: 1 << 16,
        ..TableConfig::default()
    };
    let t = SharedTable::new(Writer::create(&cfg, Backing::Heap).unwrap());
    let v = vec![7u8; 1024];
    t.change(|t| {
        for i in 0..n {
            let tag = format!("t/{}", i % 1000);
            let opts = InsertOptions {
                ttl_ms: None,
                grace_ms: 0,
                tags: &[&tag],
            };
            t.set("bench", format!("key:{i}").as_bytes(), &v, &opts, None)
                .unwrap();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap");
    let now = now_ms();
    let w = write(&path, "stop", |w| t.read(|t| dump(t, w, now, true))).unwrap();
    let secs = w.elapsed.as_secs_f64();
    println!(
        "write: {} entries, {:.1} MB in {:?} (lock held {:?}): {:.0} entries/s, {:.0} MB/s",
        w.entries,
        w.bytes as f64 / 1e6,
        w.elapsed,
        w.locked,
        w.entries as f64 / secs,
        w.bytes as f64 / secs / 1e6
    );
    let seed = read_header(&path).unwrap().space.hash_seed;
    let mut new = Writer::create(
        &TableConfig {
            hash_seed: Some(seed),
            ..cfg
        },
        Backing::Heap,
    )
    .unwrap();
    let l = load(&path, &mut new, now_ms(), 1 << 20).unwrap();
    let secs = l.elapsed.as_secs_f64();
    println!(
        "load: {} of {} entries, {:.1} MB in {:?}: {:.0} entries/s, {:.0} MB/s",
        l.loaded,
        l.records,
        l.bytes as f64 / 1e6,
        l.elapsed,
        l.records as f64 / secs,
        l.bytes as f64 / secs / 1e6
    );
    assert_eq!(l.loaded, w.entries);
}

#[test]
fn a_snapshot_writable_by_others_or_not_a_file_is_not_loaded() {
    let (_t, bytes) = source(10);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap");
    std::fs::write(&path, &bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(read_header(&path).is_ok());
    for mode in [0o620, 0o602] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let e = read_header(&path).unwrap_err();
        assert!(
            e.contains("not writable by group or others"),
            "{mode:o}: {e}"
        );
        let mut w = Writer::create(&config(None), Backing::Heap).unwrap();
        assert!(load(&path, &mut w, now_ms(), 1 << 20).is_err(), "{mode:o}");
    }
    if rustix::process::geteuid().is_root() {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        rustix::fs::chown(&path, Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
        let e = read_header(&path).unwrap_err();
        assert!(e.contains("owned by uid 65534"), "{e}");
    }
    let fifo = dir.path().join("fifo");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    assert!(read_header(&fifo)
        .unwrap_err()
        .contains("not a regular file"));
}

#[test]
fn the_temporary_is_private_and_a_planted_link_is_not_followed() {
    let (t, _bytes) = source(10);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap");
    let victim = dir.path().join("victim");
    std::fs::write(&victim, b"keep").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("snap.stop.tmp")).unwrap();
    write(&path, "stop", |w| t.read(|t| dump(t, w, now_ms(), true))).unwrap();
    assert_eq!(
        std::fs::read(&victim).unwrap(),
        b"keep",
        "written through the link"
    );
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert!(read_header(&path).is_ok());
}
