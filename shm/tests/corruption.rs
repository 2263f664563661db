//! Deterministic corruption tests: a reader never trusts shared memory (the contract in
//! docs/ARCHITECTURE.md).
//!
//! A corrupted table must give misses and a corrupt counter, never a panic, a hang or a
//! wrong value. Corruption goes through `Writer::raw_write`. Where things are comes from
//! `cachekit_shm::testing::TableLayout`, computed by the code the table itself uses: header
//! words by name, the bucket of a key by its hash, an entry through the index slot that
//! points at it.
//!
//! The entry check is 13 bits: a random corruption of an entry passes it with probability
//! 1/8192 and returns a wrong value. That is a documented limitation (the client envelope
//! carries a 64-bit xxh3); `wrong_value_rate_of_random_single_byte_corruptions` measures it.

#![cfg(not(loom))]

use cachekit_shm::layout::{TableHeader, HEADER_BYTES, LAYOUT_VERSION, PAGE, SEGMENT_HEADER_BYTES};
use cachekit_shm::testing::{
    entry_fields, EntryHeader, EntrySpan, FixedHeader, TableLayout, FIXED_HEADER_BYTES,
};
use cachekit_shm::{
    AttachError, Backing, InsertOptions, InvalidateMode, Lookup, Reader, Stat, TableConfig, Writer,
};
use core::mem::offset_of;
use core::ops::Range;

const SEGMENT_BYTES: u64 = 16 << 10;
const MAX_VALUE: u64 = 4 << 10;
const TAG_COUNTERS: u64 = 256;
const SEED: u64 = 0x00C0_FFEE_D00D_F00D;
const T0: u64 = 1_800_000_000_000;

fn config(arena_bytes: u64) -> TableConfig {
    TableConfig {
        arena_bytes,
        segment_bytes: Some(SEGMENT_BYTES),
        max_value_bytes: MAX_VALUE,
        expected_entry_bytes: 128,
        tag_counters: TAG_COUNTERS,
        hash_seed: Some(SEED),
        epoch: Some(3),
    }
}

/// The default table of these tests: 16 segments of 16 KiB.
fn cfg() -> TableConfig {
    config(256 << 10)
}

/// The layout of every table built from `cfg` (the seed is fixed).
fn layout(cfg: &TableConfig) -> TableLayout {
    TableLayout::of_config(cfg).expect("a valid configuration")
}

/// The entry of `key` in `ns`, which the test just wrote.
fn entry(w: &Writer, ns: &str, key: &[u8]) -> EntrySpan {
    TableLayout::of(w)
        .entry(w, ns, key)
        .unwrap_or_else(|| panic!("no index slot points at {ns:?}/{key:?}"))
}

/// The packed word (lengths and check) of an entry header, as the entry holds it.
fn packed_word(h: EntryHeader) -> [u8; 8] {
    h.encode()[entry_fields::PACKED]
        .try_into()
        .expect("8 bytes")
}

/// Reads `range` of the table.
fn bytes(w: &Writer, range: Range<u64>) -> Vec<u8> {
    w.raw_read(range.start as usize, (range.end - range.start) as usize)
        .expect("inside the table")
}

fn opts(
    ttl_ms: Option<u64>,
    grace_ms: u64,
    tags: &'static [&'static str],
) -> InsertOptions<'static> {
    InsertOptions {
        ttl_ms,
        grace_ms,
        tags,
    }
}

/// Everything a read of one key can give, through every entry point.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    Right,
    Miss,
    /// A hit whose bytes are not the value written.
    Wrong(Vec<u8>),
}

/// Reads `key` with `get_at`, `get_into_at` (large and small buffers) and plain `get`;
/// checks that they agree and returns what they saw.
fn read(r: &Reader, ns: &str, key: &[u8], now: u64, value: &[u8]) -> Read {
    let got = r.get_at(ns, key, Some(now));
    let mut large = vec![0xA5; MAX_VALUE as usize + 8];
    let into = r.get_into_at(ns, key, &mut large, Some(now));
    let mut small = [0x5A; 4];
    let small_into = r.get_into_at(ns, key, &mut small, Some(now));
    let _ = r.get(ns, key); // the real clock: must merely not panic
    match (&got, into) {
        (None, Lookup::Miss) => {}
        (Some((v, m)), Lookup::Hit(m2)) => {
            assert_eq!(*m, m2);
            assert_eq!(m.value_len, v.len());
            assert_eq!(&large[..v.len()], &v[..]);
        }
        (g, i) => panic!("get and get_into disagree: {g:?} vs {i:?}"),
    }
    match small_into {
        Lookup::Hit(m) => assert_eq!(Some(&small[..m.value_len]), got.as_ref().map(|g| &g.0[..])),
        Lookup::BufferTooSmall { needed } => {
            assert!(
                needed > small.len() && needed <= MAX_VALUE as usize,
                "needed = {needed}"
            );
            if let Some((v, _)) = &got {
                assert_eq!(needed, v.len());
            }
        }
        Lookup::Miss => assert!(got.is_none(), "small buffer missed where get hit"),
    }
    match got {
        None => Read::Miss,
        Some((v, _)) if v == value => Read::Right,
        Some((v, _)) => Read::Wrong(v),
    }
}

/// The bytes of the entry `span`, read from the table, after checking that it holds what
/// the insert at T0 wrote: a readable entry, stamp T0 << 20, the encoded TTL and grace, the
/// lengths, the reference to its namespace counter, the value bytes.
#[allow(clippy::too_many_arguments)]
fn entry_bytes(
    w: &Writer,
    r: &Reader,
    span: &EntrySpan,
    ns: &str,
    key: &[u8],
    value: &[u8],
    ttl: u32,
    grace: u32,
    now: u64,
) -> Vec<u8> {
    assert_eq!(read(r, ns, key, now, value), Read::Right);
    let h = span.header;
    assert_eq!(
        (h.stamp, h.ttl, h.grace),
        (T0 << 20, ttl, grace),
        "stamp, TTL and grace of {ns:?}/{key:?}"
    );
    assert_eq!(
        (h.ns_len as usize, h.key_len as usize, h.value_len as usize),
        (ns.len(), key.len(), value.len()),
        "lengths of {ns:?}/{key:?}"
    );
    assert!(
        h.ref_count >= 1,
        "every entry references its namespace counter"
    );
    assert_eq!(bytes(w, span.namespace()), ns.as_bytes());
    assert_eq!(bytes(w, span.key()), key);
    assert_eq!(bytes(w, span.value()), value);
    bytes(w, span.bytes())
}

// ---------------------------------------------------------------------------------------
// The header.

/// What `revalidate` / `attach` must say about a header.
#[derive(Debug)]
enum Want {
    Ok,
    BadMagic,
    Version(u64),
    Corrupt(&'static str),
}

fn matches_want(got: &Result<(), AttachError>, want: &Want) -> bool {
    match (got, want) {
        (Ok(()), Want::Ok) => true,
        (Err(AttachError::BadMagic), Want::BadMagic) => true,
        (Err(AttachError::UnsupportedVersion { found, expected }), Want::Version(v)) => {
            found == v && *expected == LAYOUT_VERSION
        }
        (Err(AttachError::Corrupt(m)), Want::Corrupt(s)) => m.contains(s),
        _ => false,
    }
}

/// A header word, by name.
type Field = fn(&mut FixedHeader) -> &mut u64;

/// Header cases: (what, byte offset, bytes to write, expected verdict).
fn header_cases(lay: &TableLayout) -> Vec<(String, usize, Vec<u8>, Want)> {
    let magic = offset_of!(TableHeader, magic);
    let version = offset_of!(TableHeader, layout_version);
    let mut cases: Vec<(String, usize, Vec<u8>, Want)> = vec![
        (
            "bad magic".into(),
            magic,
            b"NOTCKSHM".to_vec(),
            Want::BadMagic,
        ),
        ("zero magic".into(), magic, vec![0; 8], Want::BadMagic),
        (
            "one magic byte".into(),
            magic + 7,
            vec![b'2'],
            Want::BadMagic,
        ),
        (
            "version 2".into(),
            version,
            2u64.to_le_bytes().to_vec(),
            Want::Version(2),
        ),
        (
            "version 0".into(),
            version,
            0u64.to_le_bytes().to_vec(),
            Want::Version(0),
        ),
        (
            "version max".into(),
            version,
            u64::MAX.to_le_bytes().to_vec(),
            Want::Version(u64::MAX),
        ),
        (
            "garbage everywhere".into(),
            0,
            vec![0xEE; HEADER_BYTES as usize],
            Want::BadMagic,
        ),
        (
            "geometry check".into(),
            offset_of!(TableHeader, geometry_check),
            vec![0x11; 8],
            Want::Corrupt("geometry check mismatch"),
        ),
    ];
    // One geometry word changed, check left alone: the check must catch it.
    let h = lay.header();
    for (name, at, old) in [
        (
            "total_bytes",
            offset_of!(TableHeader, total_bytes),
            h.total_bytes,
        ),
        ("seed", offset_of!(TableHeader, hash_seed), h.hash_seed),
        ("tag_count", offset_of!(TableHeader, tag_count), h.tag_count),
        ("arena_off", offset_of!(TableHeader, arena_off), h.arena_off),
        (
            "max_value",
            offset_of!(TableHeader, max_value_bytes),
            h.max_value_bytes,
        ),
    ] {
        cases.push((
            format!("{name} without a matching check"),
            at,
            (old ^ 0x1000).to_le_bytes().to_vec(),
            Want::Corrupt("geometry check mismatch"),
        ));
    }
    // A forged header with a valid check: validation itself must catch every inconsistency.
    let forged: [(&str, Field, u64, Want); 21] = [
        (
            "table larger than its mapping",
            |h| &mut h.total_bytes,
            lay.total_bytes() + PAGE,
            Want::Corrupt("larger than its mapping"),
        ),
        (
            "tag count 0",
            |h| &mut h.tag_count,
            0,
            Want::Corrupt("tag counter count"),
        ),
        (
            "tag count 3",
            |h| &mut h.tag_count,
            3,
            Want::Corrupt("tag counter count"),
        ),
        (
            "tag count 2^33",
            |h| &mut h.tag_count,
            1 << 33,
            Want::Corrupt("tag counter count"),
        ),
        (
            "bucket count 4",
            |h| &mut h.bucket_count,
            4,
            Want::Corrupt("bucket count"),
        ),
        (
            "bucket count 1000",
            |h| &mut h.bucket_count,
            1000,
            Want::Corrupt("bucket count"),
        ),
        (
            "bucket count 2^63",
            |h| &mut h.bucket_count,
            1 << 63,
            Want::Corrupt("sections overlap"),
        ),
        (
            "segment 1000 bytes",
            |h| &mut h.segment_bytes,
            1000,
            Want::Corrupt("segment size"),
        ),
        (
            "segment 2 KiB",
            |h| &mut h.segment_bytes,
            2048,
            Want::Corrupt("segment size"),
        ),
        (
            "segment 2^40 bytes",
            |h| &mut h.segment_bytes,
            1 << 40,
            Want::Corrupt("segment size"),
        ),
        (
            "max value 0",
            |h| &mut h.max_value_bytes,
            0,
            Want::Corrupt("max value"),
        ),
        (
            "max value = segment",
            |h| &mut h.max_value_bytes,
            SEGMENT_BYTES,
            Want::Corrupt("max value"),
        ),
        (
            "max value 2^24",
            |h| &mut h.max_value_bytes,
            1 << 24,
            Want::Corrupt("max value"),
        ),
        (
            "tag_off inside the header",
            |h| &mut h.tag_off,
            0,
            Want::Corrupt("sections overlap"),
        ),
        (
            "index before the counters end",
            |h| &mut h.index_off,
            lay.tag_off(),
            Want::Corrupt("sections overlap"),
        ),
        (
            "arena misaligned",
            |h| &mut h.arena_off,
            lay.arena_off() + 8,
            Want::Corrupt("sections overlap"),
        ),
        (
            "one segment",
            |h| &mut h.segment_count,
            1,
            Want::Corrupt("sections overlap"),
        ),
        (
            "segment count overflows",
            |h| &mut h.segment_count,
            u64::MAX / 2,
            Want::Corrupt("sections overlap"),
        ),
        (
            "client area 0",
            |h| &mut h.client_area_bytes,
            0,
            Want::Corrupt("client area too small"),
        ),
        (
            "client area larger than mapped",
            |h| &mut h.client_area_bytes,
            lay.client_area_bytes() + PAGE,
            Want::Corrupt("client area smaller"),
        ),
        (
            "another seed (consistent)",
            |h| &mut h.hash_seed,
            42,
            Want::Ok,
        ),
    ];
    for (name, field, v, want) in forged {
        let mut h = lay.header();
        *field(&mut h) = v;
        let bytes = h.with_check().to_bytes().to_vec();
        cases.push((format!("forged: {name}"), 0, bytes, want));
    }
    // Consistent forgeries: a reader attached through them reads the real entries with the
    // wrong geometry (see the test below), which must give misses, never a panic.
    let consistent: [(&str, &[(Field, u64)]); 5] = [
        (
            "smaller arena",
            &[
                (|h| &mut h.segment_count, 2),
                (|h| &mut h.total_bytes, lay.arena_off() + 2 * SEGMENT_BYTES),
            ],
        ),
        (
            "8 KiB segments, 2 KiB values",
            &[
                (|h| &mut h.segment_bytes, 8192),
                (|h| &mut h.segment_count, 2 * lay.segment_count()),
                (|h| &mut h.max_value_bytes, 2048),
            ],
        ),
        ("smaller max value", &[(|h| &mut h.max_value_bytes, 100)]),
        ("8 buckets", &[(|h| &mut h.bucket_count, 8)]),
        // Counters 256..512 overlap the index: slots read as tag counters.
        (
            "tag counters over the index",
            &[(|h| &mut h.tag_count, 512)],
        ),
    ];
    for (name, changes) in consistent {
        let mut h = lay.header();
        for (field, v) in changes {
            *field(&mut h) = *v;
        }
        cases.push((
            format!("forged, consistent: {name}"),
            0,
            h.with_check().to_bytes().to_vec(),
            Want::Ok,
        ));
    }
    cases
}

type Entries = Vec<(&'static str, Vec<u8>, Vec<u8>)>;

fn fill(w: &mut Writer) -> Entries {
    let mut out = Vec::new();
    for i in 0..40u32 {
        let ns = ["app", "b", ""][i as usize % 3];
        let key = format!("key-{i}").into_bytes();
        let value: Vec<u8> = (0..(i as usize * 97) % 4097)
            .map(|j| (j as u32 ^ i) as u8)
            .collect();
        let tags: &[&str] = if i % 2 == 0 { &["posts/1"] } else { &[] };
        w.insert_at(ns, &key, &value, &opts(None, 0, tags), T0)
            .unwrap();
        out.push((ns, key, value));
    }
    out
}

#[test]
#[cfg_attr(
    miri,
    ignore = "minutes to hours under Miri: scripts/test --deep runs a subset"
)]
fn header_garbage_is_reported_and_gets_survive() {
    let lay = layout(&cfg());
    let original = lay.header().to_bytes();
    // Miri cannot create or map a memfd: the heap only under it.
    let backings: &[Backing] = if cfg!(miri) {
        &[Backing::Heap]
    } else {
        &[Backing::Heap, Backing::Memfd]
    };
    for &backing in backings {
        let mut w = Writer::create(&cfg(), backing).unwrap();
        assert_eq!(w.table_bytes() as u64, lay.total_bytes());
        let r = w.reader();
        let entries = fill(&mut w);
        // The helper's header is the writer's: writing it back changes nothing.
        assert_eq!(
            w.raw_read(0, FIXED_HEADER_BYTES).as_deref(),
            Some(&original[..])
        );
        w.raw_write(0, &original);
        r.revalidate().expect("the written header validates");

        for (name, off, bytes, want) in header_cases(&lay) {
            w.raw_write(off, &bytes);
            let got = r.revalidate();
            assert!(
                matches_want(&got, &want),
                "{backing:?} {name}: revalidate gave {got:?}, want {want:?}"
            );
            if let Some(fds) = w.fds() {
                let attached = Reader::attach(fds.table_fd(), Some(fds.client_fd()));
                assert!(
                    matches_want(&attached.as_ref().map(|_| ()).map_err(clone_err), &want),
                    "{backing:?} {name}: attach gave {:?}, want {want:?}",
                    attached.as_ref().err()
                );
                // A reader attached through a forged but consistent header reads whatever
                // it finds there: misses (another seed hashes elsewhere), never a panic
                // or a value that was not written.
                if let Ok(fresh) = attached {
                    for (ns, key, value) in &entries {
                        let got = read(&fresh, ns, key, T0, value);
                        assert!(!matches!(got, Read::Wrong(_)), "{name}: {got:?}");
                    }
                }
            }
            // The attached reader copied the geometry at attach and never reads it again:
            // its gets are unaffected.
            for (ns, key, value) in &entries {
                assert_eq!(
                    read(&r, ns, key, T0, value),
                    Read::Right,
                    "{backing:?} {name}: {ns:?}/{key:?}"
                );
            }
            w.raw_write(0, &original[..]);
            if bytes.len() > original.len() {
                // "garbage everywhere" also hit the epoch, heartbeat and statistics words.
                w.raw_write(original.len(), &vec![0; bytes.len() - original.len()]);
            }
            r.revalidate()
                .unwrap_or_else(|e| panic!("{name}: restored header fails: {e}"));
        }
        // And the writer still works on the restored table.
        w.insert_at("app", b"after", b"ok", &InsertOptions::default(), T0)
            .unwrap();
        assert_eq!(read(&r, "app", b"after", T0, b"ok"), Read::Right);
    }
}

fn clone_err(e: &AttachError) -> AttachError {
    match e {
        AttachError::BadMagic => AttachError::BadMagic,
        AttachError::UnsupportedVersion { found, expected } => AttachError::UnsupportedVersion {
            found: *found,
            expected: *expected,
        },
        AttachError::Corrupt(m) => AttachError::Corrupt(m),
        AttachError::Io(e) => AttachError::Io(std::io::Error::new(e.kind(), e.to_string())),
    }
}

#[test]
#[cfg_attr(
    miri,
    ignore = "minutes to hours under Miri: scripts/test --deep runs a subset"
)]
fn garbage_in_the_header_page_past_the_fixed_words_is_harmless() {
    let lay = layout(&cfg());
    let mut w = Writer::create(&cfg(), Backing::Heap).unwrap();
    let r = w.reader();
    let entries = fill(&mut w);
    // Epoch, heartbeat, flush generation, last stamp, statistics, and the rest of the page.
    w.raw_write(
        FIXED_HEADER_BYTES,
        &vec![0xFF; HEADER_BYTES as usize - FIXED_HEADER_BYTES],
    );
    r.revalidate().unwrap();
    let _ = (
        r.epoch(),
        r.heartbeat_ms(),
        r.flush_generation(),
        r.table_stat(Stat::LiveEntries),
    );
    for (ns, key, value) in &entries {
        assert_eq!(read(&r, ns, key, T0, value), Read::Right);
    }
    // Garbage in every segment header (generation, write offset, ...) is harmless to reads.
    for s in 0..lay.segment_count() {
        w.raw_write(
            lay.segment_off(s) as usize,
            &[0xFF; SEGMENT_HEADER_BYTES as usize],
        );
    }
    for (ns, key, value) in &entries {
        assert_eq!(read(&r, ns, key, T0, value), Read::Right);
    }
}

// ---------------------------------------------------------------------------------------
// Entries.

/// Where in an entry a byte is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Stamp,
    Ttl,
    Grace,
    Packed,
    Check,
    Namespace,
    Key,
    Refs,
    Value,
}

/// The part of the entry `span` that byte `i` of it holds, for a flip of the bits in `mask`.
fn part_of(i: usize, mask: u8, span: &EntrySpan) -> Part {
    let within = |r: Range<u64>| (r.start - span.loc) as usize..(r.end - span.loc) as usize;
    if entry_fields::STAMP.contains(&i) {
        Part::Stamp
    } else if entry_fields::TTL.contains(&i) {
        Part::Ttl
    } else if entry_fields::GRACE.contains(&i) {
        Part::Grace
    } else if entry_fields::PACKED.contains(&i) {
        // The check is the top bits of the packed word: a flip touching any of them is a
        // flip of the check.
        let first_bit = 8 * (i - entry_fields::PACKED.start) as u32;
        let touches_check = (0..8)
            .filter(|b| mask & 1 << b != 0)
            .any(|b| entry_fields::CHECK_BITS.contains(&(first_bit + b)));
        if touches_check {
            Part::Check
        } else {
            Part::Packed
        }
    } else if within(span.namespace()).contains(&i) {
        Part::Namespace
    } else if within(span.key()).contains(&i) {
        Part::Key
    } else if within(span.refs()).contains(&i) {
        Part::Refs
    } else {
        Part::Value
    }
}

struct FlipCase {
    ns: &'static str,
    key: &'static [u8],
    value: Vec<u8>,
    ttl: Option<u64>,
    grace: u64,
    tags: &'static [&'static str],
    now: u64,
}

/// Flips every byte of the only entry of a fresh table (xor 0xFF), and every bit of it,
/// one at a time, restoring it after each read.
fn flip_every_byte(case: &FlipCase) {
    let mut w = Writer::create(&cfg(), Backing::Heap).unwrap();
    let r = w.reader();
    let (ns, key, value, now) = (case.ns, case.key, &case.value[..], case.now);
    w.insert_at(ns, key, value, &opts(case.ttl, case.grace, case.tags), T0)
        .unwrap();
    let enc = |d: Option<u64>| d.map_or(u32::MAX, |d| d as u32);
    let span = entry(&w, ns, key);
    let orig = entry_bytes(
        &w,
        &r,
        &span,
        ns,
        key,
        value,
        enc(case.ttl),
        enc(Some(case.grace)),
        now,
    );
    let loc = span.loc as usize;

    let mut wrong = Vec::new();
    let (mut flips, mut misses, mut right, mut counted) = (0, 0, 0, 0);
    for (i, &byte) in orig.iter().enumerate() {
        for mask in [0xFFu8, 0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80] {
            let part = part_of(i, mask, &span);
            let before = r.stats().corrupt;
            w.raw_write(loc + i, &[byte ^ mask]);
            let got = read(&r, ns, key, now, value);
            let delta = r.stats().corrupt - before;
            w.raw_write(loc + i, &[byte]);
            flips += 1;
            counted += (delta > 0) as u32;
            match got {
                Read::Miss => {
                    misses += 1;
                    // Damage the check can see is counted. A namespace or key that no
                    // longer matches is another key (fingerprints collide legitimately);
                    // a header that says "expired" is a plain miss; lengths may do either.
                    // The stamp too, when the entry never expires (otherwise a flipped stamp
                    // may just move it past its grace deadline).
                    let must_count = matches!(part, Part::Check | Part::Refs | Part::Value)
                        || (part == Part::Stamp && case.ttl.is_none());
                    assert!(
                        !must_count || delta > 0,
                        "byte {i} ({part:?}) ^ {mask:#04x}: a miss not counted as corrupt"
                    );
                }
                // The check does not cover... nothing: a right value after a flip means the
                // 13-bit check collided on a byte that does not change the value (header).
                Read::Right => right += 1,
                Read::Wrong(v) => wrong.push((i, mask, part, v.len())),
            }
            assert_eq!(
                read(&r, ns, key, now, value),
                Read::Right,
                "restoring byte {i} failed"
            );
        }
    }
    println!(
        "{ns:?}/{:?}: {} entry bytes, {flips} flips: {misses} misses ({counted} counted corrupt), {right} right, {} wrong {wrong:?}",
        String::from_utf8_lossy(key),
        orig.len(),
        wrong.len()
    );
    // Each flip passes the 13-bit check with probability 1/8192 (about 0.1 expected per
    // entry here): the check is a truncated hash, not a CRC, so even a single-bit flip is
    // only caught with that probability. With this seed one flip of the tagged entry passes
    // (see `single_bit_flips_in_values_are_always_detected`). More than 2 would be far
    // beyond 1/8192 and points at a check that ignores part of the entry.
    assert!(wrong.len() <= 2, "wrong values returned: {wrong:?}");
    assert!(
        counted > flips / 2,
        "the corrupt counter barely moved: {counted} of {flips}"
    );
}

#[test]
#[cfg_attr(
    miri,
    ignore = "minutes to hours under Miri: scripts/test --deep runs a subset"
)]
fn every_byte_of_an_untagged_entry_flipped() {
    flip_every_byte(&FlipCase {
        ns: "app",
        key: b"the-key",
        value: (0..40u8).collect(),
        ttl: None,
        grace: 0,
        tags: &[],
        now: T0,
    });
}

#[test]
#[cfg_attr(
    miri,
    ignore = "minutes to hours under Miri: scripts/test --deep runs a subset"
)]
fn every_byte_of_a_tagged_entry_with_ttl_and_grace_flipped() {
    flip_every_byte(&FlipCase {
        ns: "b",
        key: b"tagged",
        value: (0..33u8).map(|b| b.wrapping_mul(7)).collect(),
        ttl: Some(60_000),
        grace: 30_000,
        tags: &["posts/1/comments", "users/7"],
        // Inside the grace window: a stale hit.
        now: T0 + 70_000,
    });
}

#[test]
#[cfg_attr(
    miri,
    ignore = "minutes to hours under Miri: scripts/test --deep runs a subset"
)]
fn every_byte_of_an_empty_entry_flipped() {
    // Empty namespace, empty key, empty value.
    flip_every_byte(&FlipCase {
        ns: "",
        key: b"",
        value: Vec::new(),
        ttl: Some(5_000),
        grace: 0,
        tags: &["a"],
        now: T0,
    });
}

// ---------------------------------------------------------------------------------------
// Slots and lengths.

#[test]
fn slot_pointing_anywhere_wrong_is_a_miss_and_counted() {
    let cfg = cfg();
    let lay = layout(&cfg);
    let (ns, key, value) = ("app", &b"slot-key"[..], vec![0x42u8; 50]);
    let mut w = Writer::create(&cfg, Backing::Heap).unwrap();
    let r = w.reader();
    w.insert_at(ns, key, &value, &InsertOptions::default(), T0)
        .unwrap();
    let span = entry(&w, ns, key);
    let first = span.loc;
    // The cases below place the entry: the first one of a fresh table opens segment 0.
    assert_eq!(first, lay.segment_entries_off(0));
    let slot = lay.slot_off(span.bucket, span.slot) as usize;
    let set_loc = |loc: u64| w.raw_write(slot, &loc.to_le_bytes()[..6]); // keeps the fingerprint
    set_loc(first);
    assert_eq!(read(&r, ns, key, T0, &value), Read::Right);

    let seg = |s: u64| lay.segment_off(s);
    let total = lay.total_bytes();
    let counted: [(&str, u64); 13] = [
        ("the header", 1),
        ("the header, aligned", 64),
        ("the tag counters", lay.counter_off(1)),
        ("the index (its own slot)", slot as u64),
        ("the arena start (segment 0 header)", seg(0)),
        ("the middle of segment 0 header", seg(0) + 40),
        ("segment 5 header", seg(5)),
        ("the last segment header", seg(lay.segment_count() - 1) + 8),
        ("an entry header crossing its segment's end", seg(1) - 8),
        ("an entry header crossing the table's end", total - 16),
        ("just past the table", total),
        ("far past the table", total + (1 << 30)),
        ("the largest locator", (1 << 48) - 1),
    ];
    for (what, loc) in counted {
        let before = r.stats().corrupt;
        set_loc(loc);
        assert_eq!(
            read(&r, ns, key, T0, &value),
            Read::Miss,
            "slot into {what}"
        );
        assert!(
            r.stats().corrupt > before,
            "slot into {what} ({loc:#x}) not counted as corrupt"
        );
    }
    // Into the arena but not at an entry: another key as far as the reader can tell.
    for (what, loc) in [
        ("the entry, one byte in", first + 1),
        ("the entry's value", first + 40),
        ("zeroes after the entry", first + 4096),
        ("an empty segment", seg(7) + 64),
        ("the last bytes of the arena", total - 24),
    ] {
        set_loc(loc);
        assert_eq!(
            read(&r, ns, key, T0, &value),
            Read::Miss,
            "slot into {what}"
        );
    }
    set_loc(first);
    assert_eq!(read(&r, ns, key, T0, &value), Read::Right);

    // Lengths in the entry header (the packed word, check zeroed), one reference.
    let packed_at = (first as usize) + entry_fields::PACKED.start;
    let packed = |value_len: u64, key_len: usize, ns_len: usize, ref_count: u8| {
        packed_word(EntryHeader {
            value_len: value_len as u32,
            key_len: key_len as u16,
            ns_len: ns_len as u8,
            ref_count,
            check: 0,
            ..span.header
        })
    };
    let (nsl, kl, vl) = (ns.len(), key.len(), value.len() as u64);
    let lengths: [(&str, [u8; 8], bool); 8] = [
        ("value_len 2^24-1", packed(0xFF_FFFF, kl, nsl, 1), true),
        ("value_len max+1", packed(MAX_VALUE + 1, kl, nsl, 1), true),
        (
            "value_len max, check fails",
            packed(MAX_VALUE, kl, nsl, 1),
            true,
        ),
        ("value_len 0", packed(0, kl, nsl, 1), true),
        ("ref_count 127", packed(vl, kl, nsl, 127), true),
        ("ref_count 0", packed(vl, kl, nsl, 0), true),
        ("key_len 8191", packed(vl, 0x1FFF, nsl, 1), false),
        ("ns_len 127", packed(vl, kl, 0x7F, 1), false),
    ];
    for (what, packed, must_count) in lengths {
        let before = r.stats().corrupt;
        w.raw_write(packed_at, &packed);
        assert_eq!(read(&r, ns, key, T0, &value), Read::Miss, "{what}");
        if must_count {
            assert!(r.stats().corrupt > before, "{what}: not counted as corrupt");
        }
    }
    // An entry header whose lengths run past the end of its segment.
    let near_end = seg(1) - 64;
    w.raw_write(
        near_end as usize + entry_fields::PACKED.start,
        &packed(100, kl, nsl, 1),
    );
    let before = r.stats().corrupt;
    set_loc(near_end);
    assert_eq!(
        read(&r, ns, key, T0, &value),
        Read::Miss,
        "entry running past its segment"
    );
    assert!(
        r.stats().corrupt > before,
        "entry running past its segment: not counted"
    );
    // A segment full of 0xFF where an entry should be, and a slot pointing at it.
    w.raw_write(seg(3) as usize, &vec![0xFF; SEGMENT_BYTES as usize]);
    set_loc(seg(3) + 64);
    assert_eq!(read(&r, ns, key, T0, &value), Read::Miss);
}

#[test]
#[cfg_attr(
    miri,
    ignore = "minutes to hours under Miri: scripts/test --deep runs a subset"
)]
fn index_and_tag_counters_full_of_garbage() {
    let cfg = cfg();
    let lay = layout(&cfg);
    for fillb in [0x00u8, 0xFF, 0x5A, 0x01] {
        let mut w = Writer::create(&cfg, Backing::Heap).unwrap();
        let r = w.reader();
        let entries = fill(&mut w);
        // The whole index: every slot of every bucket.
        w.raw_write(
            lay.index_off() as usize,
            &vec![fillb; (lay.bucket_off(lay.bucket_count()) - lay.index_off()) as usize],
        );
        for (ns, key, value) in &entries {
            let got = read(&r, ns, key, T0, value);
            assert_eq!(got, Read::Miss, "{fillb:#x}: {ns:?}/{key:?}");
        }
        // Counters at u64::MAX invalidate everything; zero counters are the fresh state.
        let mut w = Writer::create(&cfg, Backing::Heap).unwrap();
        let r = w.reader();
        let entries = fill(&mut w);
        w.raw_write(
            lay.tag_off() as usize,
            &vec![fillb; (lay.tag_count() * 8) as usize],
        );
        for (ns, key, value) in &entries {
            let got = read(&r, ns, key, T0, value);
            assert!(
                matches!(got, Read::Right | Read::Miss),
                "{fillb:#x}: {ns:?}/{key:?}: {got:?}"
            );
            if fillb == 0xFF || fillb == 0x5A {
                assert_eq!(
                    got,
                    Read::Miss,
                    "a counter above every stamp kills the entry"
                );
            }
        }
    }
}

/// Pure random garbage over the whole table after filling it: nothing may panic or hang.
/// Wrong values can only come from the 13-bit check's 1/8192 chance per damaged entry
/// read (about 0.3 expected over this test); they are counted and bounded.
#[test]
#[cfg_attr(
    miri,
    ignore = "minutes to hours under Miri: scripts/test --deep runs a subset"
)]
fn whole_table_random_garbage() {
    let cfg = cfg();
    let mut rng = SplitMix(7);
    let (mut wrong, mut misses, mut reads) = (0, 0, 0);
    for _round in 0..50 {
        let mut w = Writer::create(&cfg, Backing::Heap).unwrap();
        let r = w.reader();
        let entries = fill(&mut w);
        let total = w.table_bytes();
        for _ in 0..200 {
            let off = rng.below(total as u64) as usize;
            let len = 1 + rng.below(32) as usize;
            let bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            w.raw_write(off.min(total - len), &bytes);
        }
        let _ = r.revalidate();
        for (ns, key, value) in &entries {
            reads += 1;
            match read(&r, ns, key, T0, value) {
                Read::Wrong(_) => wrong += 1,
                Read::Miss => misses += 1,
                Read::Right => {}
            }
        }
        assert_eq!(read(&r, "nope", b"absent", T0, b""), Read::Miss);
    }
    println!("random garbage: {reads} reads, {misses} misses, {wrong} wrong values");
    assert!(misses > 0);
    assert!(
        wrong <= 3,
        "{wrong} wrong values: far more than the 13-bit check allows"
    );
}

// ---------------------------------------------------------------------------------------
// The rate of wrong values.

struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// 200k tables (release build), each filled with the same entries and hit by one random byte written at a
/// random offset *inside the entries* (the worst case: a corruption elsewhere cannot make
/// a wrong value). Every key is read after each corruption. The wrong-value rate must stay
/// near the 13-bit check's 1/8192 and below 1/2000.
#[test]
#[cfg_attr(
    miri,
    ignore = "minutes to hours under Miri: scripts/test --deep runs a subset"
)]
fn wrong_value_rate_of_random_single_byte_corruptions() {
    // 200k in release (about 2 s); fewer in a debug build, where each trial is 30x slower.
    const TRIALS: u64 = if cfg!(debug_assertions) {
        40_000
    } else {
        200_000
    };
    let cfg = config(2 * SEGMENT_BYTES); // two segments: a small table is quick to build
    let lay = layout(&cfg);
    let entries: Vec<(String, Vec<u8>, &'static [&'static str])> = (0..16u32)
        .map(|i| {
            let value = (0..[0usize, 1, 8, 33, 100, 250, 700, 64][i as usize % 8] + i as usize)
                .map(|j| (j as u32 * 7 + i) as u8)
                .collect();
            let tags: &'static [&'static str] =
                [&[][..], &["posts/1"][..], &["a/b", "c"][..]][i as usize % 3];
            (format!("k{i}"), value, tags)
        })
        .collect();
    let build = || {
        let mut w = Writer::create(&cfg, Backing::Heap).unwrap();
        for (k, v, tags) in &entries {
            w.insert_at("ns", k.as_bytes(), v, &opts(None, 0, tags), T0)
                .unwrap();
        }
        w
    };
    // Every entry has no TTL: one class, one segment, packed from the first entry on.
    let first = {
        let w = build();
        let first = entry(&w, "ns", entries[0].0.as_bytes()).loc;
        let last = entry(&w, "ns", entries[15].0.as_bytes()).bytes().end;
        assert_eq!(
            last - first,
            w.stat(Stat::UsedBytes),
            "entries packed from the first on"
        );
        first
    };
    let used = build().stat(Stat::UsedBytes);
    assert!(used > 0 && used < SEGMENT_BYTES - SEGMENT_HEADER_BYTES);
    let mut rng = SplitMix(0xC0C0);
    let (mut wrong, mut misses, mut right, mut corrupt) = (0u64, 0u64, 0u64, 0u64);
    let mut examples = Vec::new();
    for t in 0..TRIALS {
        let w = build();
        let r = w.reader();
        let off = first + rng.below(used);
        let byte = rng.next() as u8;
        w.raw_write(off as usize, &[byte]);
        for (k, v, _) in &entries {
            match read(&r, "ns", k.as_bytes(), T0, v) {
                Read::Right => right += 1,
                Read::Miss => misses += 1,
                Read::Wrong(got) => {
                    wrong += 1;
                    if examples.len() < 5 {
                        examples.push(format!(
                            "trial {t}: byte {byte:#04x} at arena+{} -> {k}: {} bytes instead of {}",
                            off - lay.arena_off(),
                            got.len(),
                            v.len()
                        ));
                    }
                }
            }
        }
        corrupt += r.stats().corrupt;
    }
    let rate = wrong as f64 / TRIALS as f64;
    println!(
        "{TRIALS} single-byte corruptions in {used} bytes of entries: {wrong} wrong values \
         (rate {rate:.2e} = 1/{:.0}; 13-bit check: 1/8192 = {:.2e}), {misses} misses, {right} right reads, \
         corrupt counter total {corrupt}",
        if wrong > 0 { 1.0 / rate } else { f64::INFINITY },
        1.0 / 8192.0
    );
    for e in &examples {
        println!("  {e}");
    }
    assert!(misses > TRIALS / 2, "most corruptions should cost a miss");
    assert!(
        rate < 1.0 / 2000.0,
        "wrong-value rate {rate:.2e} is above 1/2000"
    );
}

// ---------------------------------------------------------------------------------------
// Found by these tests; reported to the core owner. Ignored until fixed.

/// The writer trusts the slots it reads back from the table. A slot whose locator points
/// before the arena (here into the zeroed header page, which reads as an entry with an
/// empty namespace and an empty key) makes `delete` (and an overwrite, or a bucket
/// eviction) call `Writer::release` -> `segment_index(loc)`, which computes
/// `loc - arena_off` (src/writer.rs, `segment_index`): an overflow panic with overflow
/// checks, otherwise an out-of-bounds index into `arena.segs`. Readers are fine (they
/// count the slot as corrupt); the daemon dies, and would die again on a warm restart
/// that re-attaches the same segment.
#[test]
fn writer_survives_a_slot_pointing_before_the_arena() {
    let cfg = cfg();
    let lay = layout(&cfg);
    let mut w = Writer::create(&cfg, Backing::Heap).unwrap();
    let r = w.reader();
    w.insert_at("", b"", b"v", &InsertOptions::default(), T0)
        .unwrap();
    let span = entry(&w, "", b"");
    let slot = lay.slot_off(span.bucket, span.slot) as usize;
    w.raw_write(slot, &2048u64.to_le_bytes()[..6]); // inside the header page, all zeroes
    assert_eq!(read(&r, "", b"", T0, b"v"), Read::Miss);
    w.delete("", b""); // panics
    w.insert_at("", b"", b"v2", &InsertOptions::default(), T0)
        .unwrap();
    assert_eq!(read(&r, "", b"", T0, b"v2"), Read::Right);
}

/// Same root cause through an overwrite: a slot pointing past the arena at bytes that read
/// as the key's entry.
#[test]
fn writer_survives_an_overwrite_through_a_slot_before_the_arena() {
    let cfg = cfg();
    let lay = layout(&cfg);
    let mut w = Writer::create(&cfg, Backing::Heap).unwrap();
    w.insert_at("", b"", b"v", &InsertOptions::default(), T0)
        .unwrap();
    let span = entry(&w, "", b"");
    w.raw_write(
        lay.slot_off(span.bucket, span.slot) as usize,
        &2048u64.to_le_bytes()[..6],
    );
    w.insert_at("", b"", b"v2", &InsertOptions::default(), T0)
        .unwrap(); // panics
}

/// The 13-bit entry check is a truncated hash: a single-bit flip in a value passes it with
/// probability 1/8192 instead of always failing (a CRC of that width catches every
/// single-bit error and every burst up to its width). Found by
/// `every_byte_of_a_tagged_entry_with_ttl_and_grace_flipped` (with the check of commit
/// 554a6b3, flipping bit 5 of the first value byte of that entry returned the flipped value
/// as a hit). Here: every bit of three 4 KiB values flipped one at a time, ~98k flips,
/// about 12 false passes expected with any 13-bit hash. Expected under the documented
/// limitation; ignored until the check changes (src/entry.rs, `entry_check`).
#[test]
#[ignore = "limitation: the 13-bit entry check lets single-bit flips of values through (src/entry.rs entry_check)"]
fn single_bit_flips_in_values_are_always_detected() {
    let mut passed = Vec::new();
    for k in 0..3u8 {
        let mut w = Writer::create(&cfg(), Backing::Heap).unwrap();
        let r = w.reader();
        let key = [b'k', k];
        let value: Vec<u8> = (0..MAX_VALUE as usize)
            .map(|i| (i * 31 + k as usize) as u8)
            .collect();
        w.insert_at("ns", &key, &value, &InsertOptions::default(), T0)
            .unwrap();
        let at = entry(&w, "ns", &key).value().start as usize;
        for (i, &b) in value.iter().enumerate() {
            for bit in 0..8 {
                w.raw_write(at + i, &[b ^ 1 << bit]);
                if let Some((got, _)) = r.get_at("ns", &key, Some(T0)) {
                    assert_ne!(
                        got, value,
                        "the flip did not land in the value: layout drifted"
                    );
                    passed.push((k, i, bit));
                }
                w.raw_write(at + i, &[b]);
            }
        }
        assert_eq!(r.get_at("ns", &key, Some(T0)).map(|g| g.0), Some(value));
    }
    assert!(
        passed.is_empty(),
        "{} single-bit flips passed the entry check: {passed:?}",
        passed.len()
    );
}

/// A limitation rather than a bug of the code, but a breach of "never a wrong value":
/// tag counters carry no check, so a corruption that lowers one brings back every entry
/// invalidated through it. Reported; ignored until the design answers it.
#[test]
#[ignore = "limitation: a lowered tag counter resurrects invalidated entries (no integrity check on counters)"]
fn lowered_tag_counter_does_not_resurrect_an_invalidated_entry() {
    let cfg = cfg();
    let lay = layout(&cfg);
    let mut w = Writer::create(&cfg, Backing::Heap).unwrap();
    let r = w.reader();
    w.insert_at("app", b"k", b"old", &opts(None, 0, &["posts/1"]), T0)
        .unwrap();
    w.invalidate_at("app", "posts", InvalidateMode::Hierarchical, T0)
        .unwrap();
    assert_eq!(read(&r, "app", b"k", T0, b"old"), Read::Miss);
    w.raw_write(
        lay.tag_off() as usize,
        &vec![0; (lay.tag_count() * 8) as usize],
    );
    assert_eq!(
        read(&r, "app", b"k", T0, b"old"),
        Read::Miss,
        "an invalidated value came back"
    );
}

/// Second chance copies an entry forward using the length in its (possibly corrupted)
/// header: `Writer::evict_segment` -> `alloc(class, len, now, false)` with `len` up to
/// 16 MiB. With debug assertions, `debug_assert!(len <= self.geo.segment_payload())` in
/// `Writer::alloc` (src/writer.rs) panics; without them, `alloc` activates and seals every
/// free segment looking for room, then gives up (the free list collapses until eviction
/// walks those empty segments again). Needs: an entry read since the last eviction (access
/// bit set), its value_len corrupted, then `evict()`.
#[test]
fn eviction_survives_an_entry_with_a_corrupted_length() {
    let cfg = cfg();
    let mut w = Writer::create(&cfg, Backing::Heap).unwrap();
    let r = w.reader();
    let value = vec![7u8; 100];
    w.insert_at("app", b"hot", &value, &InsertOptions::default(), T0)
        .unwrap();
    // Sets the access bit.
    assert_eq!(read(&r, "app", b"hot", T0, &value), Read::Right);
    // value_len = 2^24 - 1; the rest as written: key_len 3, ns_len 3, one reference; the
    // check does not matter to the writer.
    let span = entry(&w, "app", b"hot");
    assert_eq!(span.header.ref_count, 1);
    let packed = packed_word(EntryHeader {
        value_len: 0xFF_FFFF,
        check: 0,
        ..span.header
    });
    w.raw_write(span.loc as usize + entry_fields::PACKED.start, &packed);
    let free_before = w.stat(Stat::FreeSegments);
    assert!(w.evict()); // panics with debug assertions
    let free_after = w.stat(Stat::FreeSegments);
    assert!(
        free_after >= free_before,
        "evicting one segment left fewer free segments: {free_before} -> {free_after}"
    );
    assert_eq!(read(&r, "app", b"hot", T0, &value), Read::Miss);
}

/// `Writer::clear_all` bumps the flush generation it reads back from the header with
/// `fg + 1` (src/writer.rs, `clear_all`): a header word corrupted to u64::MAX makes it
/// panic with overflow checks (debug builds, the fuzz build); release wraps to 0. Found by
/// the corrupt_segment fuzz target. Fails only where overflow checks are on.
#[test]
fn clear_all_survives_a_corrupted_flush_generation() {
    let mut w = Writer::create(&cfg(), Backing::Heap).unwrap();
    let r = w.reader();
    let at = core::mem::offset_of!(cachekit_shm::layout::TableHeader, flush_generation);
    w.raw_write(at, &u64::MAX.to_le_bytes());
    w.clear_all(); // panics with overflow checks
    assert_ne!(
        r.flush_generation(),
        u64::MAX,
        "the flush generation did not move"
    );
}
