//! Corrupts a live table and checks that readers survive it.
//!
//! Every input builds the same small heap (or memfd) table, fills it with a fixed set of
//! entries (several namespaces, the empty namespace and the empty key, tags up to depth 8,
//! TTLs with and without grace, values from 0 to `max_value_bytes` bytes, overwrites, a
//! delete and a tag invalidation), then decodes a list of operations from the input:
//!
//! - raw writes (`Writer::raw_write`) of input bytes into one of: the fixed header words,
//!   the rest of the header page, the tag counters, the index, the entries at the start of
//!   each segment, anywhere in the arena, a segment header, anywhere at all, or the slot
//!   bucket of a known key. Where each of these is comes from `cachekit_shm::testing::
//!   TableLayout`, computed by the code the table itself uses;
//! - a slot redirect: the locator (low 48 bits) of a key's bucket slot set to an offset of
//!   the input's choosing, keeping the fingerprint, so the slot still matches the key;
//! - a forged header: one geometry word changed and, optionally, the geometry check
//!   recomputed so that validation gets past the check (what a hostile writer could do);
//! - writer operations: insert, delete, invalidate, clear a namespace, evict, expire, clear.
//!
//! Then `revalidate()` must not panic and must report the right error for what was done to
//! the header, and every key ever used plus some absent keys are read with `get`, and with
//! `get_into` into a small and a large buffer (with the memfd backing, also through a fresh
//! `Reader::attach`, which reads the possibly forged header). Checked on every read:
//!
//! - no panic, no hang (every loop of the reader is bounded; run with `-timeout=5`);
//! - `get` and `get_into` agree, the small buffer reports `BufferTooSmall` exactly when the
//!   value does not fit, lengths stay within `max_value_bytes`;
//! - with no corruption applied, the reader agrees exactly with a model of the table (a hit
//!   is the last value written, fresh/stale as the model says; dead keys miss);
//! - with corruption, a hit whose bytes are not any value ever written for that key is a
//!   *wrong value*. The entry check is 13 bits, so a corrupted entry passes it with
//!   probability 1/8192: a documented limitation (the client envelope carries a 64-bit
//!   xxh3), so wrong values are counted and printed, not fatal; `tests/corruption.rs`
//!   bounds their rate. A hit with an older value, or with a deleted or invalidated one
//!   ("resurrected", e.g. a tag counter lowered by the corruption) is counted separately.
//!
//! The writer trusts its own table (it reads slots and entry headers back), so a writer
//! operation after a corruption may panic: such panics are caught, counted and the writer
//! is not used again; reads still run. `CACHEKIT_FUZZ_STRICT_WRITER=1` makes them fatal.
//!
//! Counters are printed to stderr every 2^16 inputs (`cachekit-fuzz:` lines).

#![no_main]

use cachekit_shm::layout::{
    TableHeader, BUCKET_BYTES, HEADER_BYTES, LAYOUT_VERSION, PAGE, SEGMENT_HEADER_BYTES,
    TABLE_MAGIC,
};
use cachekit_shm::testing::{FixedHeader, TableLayout, FIXED_HEADER_BYTES};
use cachekit_shm::{
    AttachError, Backing, InsertOptions, InvalidateMode, Lookup, Reader, TableConfig, Writer,
};
use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use std::mem::offset_of;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock};

// ---------------------------------------------------------------------------------------
// The table, and its layout.

const ARENA_BYTES: u64 = 256 << 10;
const SEGMENT_BYTES: u64 = 16 << 10;
const MAX_VALUE: u64 = 4 << 10;
const TAG_COUNTERS: u64 = 256;
const EXPECTED_ENTRY: u64 = 128;
const SEED: u64 = 0x5EED_CAFE_F00D_1234;
/// Unix ms every write happens at (deterministic stamps and deadlines).
const T0: u64 = 1_800_000_000_000;

fn config() -> TableConfig {
    TableConfig {
        arena_bytes: ARENA_BYTES,
        segment_bytes: Some(SEGMENT_BYTES),
        max_value_bytes: MAX_VALUE,
        expected_entry_bytes: EXPECTED_ENTRY,
        tag_counters: TAG_COUNTERS,
        hash_seed: Some(SEED),
        epoch: Some(7),
    }
}

/// The layout of every table of this target (the seed is fixed), computed once.
fn layout() -> TableLayout {
    static L: OnceLock<TableLayout> = OnceLock::new();
    *L.get_or_init(|| TableLayout::of_config(&config()).expect("config is valid"))
}

/// Offset of slot `slot` of the bucket of `key` in `ns`.
fn key_slot_off(lay: &TableLayout, ns: &str, key: &[u8], slot: usize) -> u64 {
    lay.slot_off(lay.bucket_of(ns, key), slot)
}

// ---------------------------------------------------------------------------------------
// The entries and the model of what the table should hold.

const NAMESPACES: [&str; 4] = ["app", "b", "", "a-namespace-with-a-rather-longer-name"];
const SIZES: [usize; 9] = [0, 1, 7, 8, 9, 64, 100, 1000, MAX_VALUE as usize];
const TAGSETS: [&[&str]; 6] = [
    &[],
    &["posts"],
    &["posts/1"],
    &["posts/1/comments", "users/7"],
    &["a/b/c/d/e/f/g/h"],
    &["users/7", "users/8", "posts/2"],
];
const TAGS: [&str; 8] = [
    "posts",
    "posts/1",
    "posts/1/comments",
    "users",
    "users/7",
    "users/8",
    "posts/2",
    "a/b/c",
];
/// (ttl, grace) in ms; the last one is stored as whole seconds.
const TTLS: [(Option<u64>, u64); 6] = [
    (None, 0),
    (Some(1_000), 0),
    (Some(1_000), 5_000),
    (Some(100_000), 0),
    (Some(10), 0),
    (Some(3_000_000_000), 1_000),
];
/// How long after T0 the reads happen.
const READ_DELAYS: [u64; 6] = [0, 5, 500, 1_500, 7_000, 200_000];
const INITIAL_KEYS: usize = 24;
const EXTRA_KEYS: usize = 8;
const SMALL_BUFS: [usize; 4] = [0, 1, 8, 100];
const MAX_OPS: usize = 48;

struct Cur {
    value: Vec<u8>,
    tags: &'static [&'static str],
    expires: Option<u64>,
    grace_until: Option<u64>,
}

struct Key {
    ns: &'static str,
    key: Vec<u8>,
    ever: Vec<Vec<u8>>,
    cur: Option<Cur>,
}

fn value_bytes(key: usize, version: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|j| (key as u32 * 31 + version * 97 + j as u32 * 13 + (j as u32 >> 8)) as u8)
        .collect()
}

fn universe() -> Vec<Key> {
    let mut keys = Vec::new();
    for i in 0..INITIAL_KEYS + EXTRA_KEYS {
        let key = match i {
            5 => Vec::new(),
            6 => vec![b'k'; 200],
            i if i >= INITIAL_KEYS => format!("extra-{i}").into_bytes(),
            i => format!("key-{i}").into_bytes(),
        };
        keys.push(Key {
            ns: NAMESPACES[i % NAMESPACES.len()],
            key,
            ever: Vec::new(),
            cur: None,
        });
    }
    keys
}

/// Keys that are never written: must always miss.
const ABSENT: [(&str, &[u8]); 5] = [
    ("app", b"absent-0"),
    ("", b"nokey"),
    ("zzz", b"key-0"),
    ("app", b"key-1"), // key-1 lives in namespace "b"
    ("app", b""),      // the empty key lives in namespace "b"
];

// ---------------------------------------------------------------------------------------
// Statistics, printed every 2^16 inputs.

struct Stats {
    execs: AtomicU64,
    corrupted_execs: AtomicU64,
    corruptions: AtomicU64,
    reads: AtomicU64,
    hits: AtomicU64,
    hits_under_corruption: AtomicU64,
    wrong_value: AtomicU64,
    resurrected: AtomicU64,
    writer_panics: AtomicU64,
    revalidate_err: AtomicU64,
    forged_valid: AtomicU64,
    fresh_attach_ok: AtomicU64,
    reader_corrupt: AtomicU64,
}

static STATS: Stats = Stats {
    execs: AtomicU64::new(0),
    corrupted_execs: AtomicU64::new(0),
    corruptions: AtomicU64::new(0),
    reads: AtomicU64::new(0),
    hits: AtomicU64::new(0),
    hits_under_corruption: AtomicU64::new(0),
    wrong_value: AtomicU64::new(0),
    resurrected: AtomicU64::new(0),
    writer_panics: AtomicU64::new(0),
    revalidate_err: AtomicU64::new(0),
    forged_valid: AtomicU64::new(0),
    fresh_attach_ok: AtomicU64::new(0),
    reader_corrupt: AtomicU64::new(0),
};

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn print_stats() {
    let l = |c: &AtomicU64| c.load(Ordering::Relaxed);
    let s = &STATS;
    eprintln!(
        "cachekit-fuzz: execs={} corrupted_execs={} corruptions={} reads={} hits={} hits_under_corruption={} \
         wrong_value={} resurrected={} writer_panics={} revalidate_err={} forged_valid={} fresh_attach_ok={} reader_corrupt={}",
        l(&s.execs),
        l(&s.corrupted_execs),
        l(&s.corruptions),
        l(&s.reads),
        l(&s.hits),
        l(&s.hits_under_corruption),
        l(&s.wrong_value),
        l(&s.resurrected),
        l(&s.writer_panics),
        l(&s.revalidate_err),
        l(&s.forged_valid),
        l(&s.fresh_attach_ok),
        l(&s.reader_corrupt),
    );
}

// ---------------------------------------------------------------------------------------
// Writer panics after a corruption: caught, not fatal (unless strict).

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

fn strict_writer() -> bool {
    static S: OnceLock<bool> = OnceLock::new();
    *S.get_or_init(|| std::env::var_os("CACHEKIT_FUZZ_STRICT_WRITER").is_some_and(|v| v == "1"))
}

/// Runs a writer operation on a table that may be corrupted. `None` if it panicked.
fn guarded<R>(f: impl FnOnce() -> R) -> Option<R> {
    if strict_writer() {
        return Some(f());
    }
    QUIET.with(|q| q.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    if r.is_err() {
        add(&STATS.writer_panics, 1);
    }
    r.ok()
}

fn init_once() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        // libFuzzer's hook aborts on any panic; let the guarded writer sections unwind.
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.with(|q| q.get()) {
                prev(info);
                return;
            }
            // A caught writer panic: print each place once.
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let msg = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_default();
            static SEEN: Mutex<Vec<String>> = Mutex::new(Vec::new());
            let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
            if !seen.contains(&at) {
                eprintln!("cachekit-fuzz: writer panic after corruption (caught) at {at}: {msg}");
                seen.push(at);
            }
        }));
    });
}

// ---------------------------------------------------------------------------------------
// Input decoding.

struct Input<'a> {
    d: &'a [u8],
}

impl Input<'_> {
    fn is_empty(&self) -> bool {
        self.d.is_empty()
    }
    fn u8(&mut self) -> u8 {
        match self.d.split_first() {
            Some((b, rest)) => {
                self.d = rest;
                *b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    fn u64(&mut self) -> u64 {
        (self.u32() as u64) | (self.u32() as u64) << 32
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.u8()).collect()
    }
}

// ---------------------------------------------------------------------------------------
// The run.

struct Run {
    w: Writer,
    lay: TableLayout,
    keys: Vec<Key>,
    /// What the first FIXED_HEADER_BYTES of the header hold, raw writes included.
    header: [u8; FIXED_HEADER_BYTES],
    corrupted: bool,
    writer_dead: bool,
    version: u32,
}

impl Run {
    fn raw(&mut self, off: u64, bytes: &[u8]) {
        let total = self.w.table_bytes() as u64;
        if off >= total || bytes.is_empty() {
            return;
        }
        let n = bytes.len().min((total - off) as usize);
        let bytes = &bytes[..n];
        for (i, b) in bytes.iter().enumerate() {
            if let Some(h) = self.header.get_mut(off as usize + i) {
                *h = *b;
            }
        }
        self.w.raw_write(off as usize, bytes);
        self.corrupted = true;
        add(&STATS.corruptions, 1);
    }

    /// Runs a writer operation; `false` if the writer is (now) unusable.
    fn write_op(&mut self, f: impl FnOnce(&mut Writer)) -> bool {
        if self.writer_dead {
            return false;
        }
        if !self.corrupted {
            f(&mut self.w);
            return true;
        }
        let w = &mut self.w;
        if guarded(|| f(w)).is_none() {
            self.writer_dead = true;
            return false;
        }
        true
    }

    fn insert(
        &mut self,
        k: usize,
        size: usize,
        ttl: (Option<u64>, u64),
        tags: &'static [&'static str],
    ) {
        self.version += 1;
        let value = value_bytes(k, self.version, size);
        let (ns, key) = (self.keys[k].ns, self.keys[k].key.clone());
        let opts = InsertOptions {
            ttl_ms: ttl.0,
            grace_ms: ttl.1,
            tags,
        };
        // Recorded before the write: a panicking write may still have published it.
        self.keys[k].ever.push(value.clone());
        let v = value.clone();
        if self.write_op(|w| {
            w.insert_at(ns, &key, &v, &opts, T0).expect("valid insert");
        }) {
            let expires = ttl.0.map(|t| T0 + t);
            self.keys[k].cur = Some(Cur {
                value,
                tags,
                expires,
                grace_until: expires.map(|e| e + ttl.1),
            });
        }
    }

    fn kill(&mut self, pred: impl Fn(&Key, &Cur) -> bool) {
        for k in &mut self.keys {
            if k.cur.as_ref().is_some_and(|c| pred(k, c)) {
                k.cur = None;
            }
        }
    }

    fn op(&mut self, inp: &mut Input<'_>) {
        let op = inp.u8();
        let lay = self.lay;
        let nkeys = self.keys.len();
        match op % 16 {
            // Raw writes of input bytes into one region.
            0..=8 => {
                let region = op % 16;
                let len = 1 + (inp.u8() % 16) as usize;
                let segs = lay.segment_count();
                let off = match region {
                    0 => (inp.u8() as usize % FIXED_HEADER_BYTES) as u64,
                    1 => {
                        let rest = HEADER_BYTES - FIXED_HEADER_BYTES as u64;
                        FIXED_HEADER_BYTES as u64 + inp.u16() as u64 % rest
                    }
                    2 => lay.tag_off() + inp.u16() as u64 % (lay.tag_count() * 8),
                    3 => lay.index_off() + inp.u16() as u64 % (lay.bucket_count() * BUCKET_BYTES),
                    4 => {
                        let seg = inp.u8() as u64 % segs;
                        lay.segment_entries_off(seg) + inp.u16() as u64 % 4096
                    }
                    5 => lay.arena_off() + inp.u32() as u64 % (segs * lay.segment_bytes()),
                    6 => {
                        let seg = inp.u8() as u64 % segs;
                        lay.segment_off(seg) + inp.u8() as u64 % SEGMENT_HEADER_BYTES
                    }
                    7 => inp.u32() as u64 % lay.total_bytes(),
                    _ => {
                        let k = &self.keys[inp.u8() as usize % nkeys];
                        let slot = (inp.u8() % 8) as usize;
                        key_slot_off(&lay, k.ns, &k.key, slot) + (inp.u8() % 8) as u64
                    }
                };
                let bytes = inp.bytes(len);
                self.raw(off, &bytes);
            }
            // Slot redirect: a new locator under the key's fingerprint.
            9 => {
                let k = &self.keys[inp.u8() as usize % nkeys];
                let slot = (inp.u8() % 8) as usize;
                let at = key_slot_off(&lay, k.ns, &k.key, slot);
                let mode = inp.u8();
                let x = inp.u32() as u64;
                let (segs, seg_bytes) = (lay.segment_count(), lay.segment_bytes());
                let loc = match mode % 4 {
                    // Somewhere in the arena (entries start anywhere, unaligned).
                    0 => lay.arena_off() + x % (segs * seg_bytes),
                    // Near the start of a segment (inside its header, or its first entries).
                    1 => lay.segment_off((x >> 16) % segs) + (x & 0xFFFF) % 4160,
                    // Before the arena (header, counters, index) or past the table.
                    2 => x % lay.arena_off(),
                    _ => lay.total_bytes() - 64 + x % (1 << 20),
                } & ((1 << 48) - 1);
                self.raw(at, &loc.to_le_bytes()[..6]);
            }
            // Forge a geometry word, optionally with a valid check.
            10 => {
                let check_word = offset_of!(TableHeader, geometry_check) / 8;
                let checked: Vec<(usize, u64)> = FixedHeader::from_bytes(&self.header)
                    .words()
                    .into_iter()
                    .filter(|(word, _)| *word != check_word)
                    .collect();
                let (word, old) = checked[inp.u8() as usize % checked.len()];
                let mode = inp.u8();
                let x = inp.u64();
                let new = match mode % 8 {
                    0 => x,
                    1 => old.wrapping_add(x % 64),
                    2 => old.wrapping_sub(x % 64),
                    3 => old.wrapping_mul(2),
                    4 => old / 2,
                    5 => old.wrapping_add((x % 64) * PAGE),
                    6 => old.wrapping_sub((x % 64) * PAGE),
                    _ => 1u64.wrapping_shl(x as u32 % 64),
                };
                let mut h = self.header;
                h[word * 8..word * 8 + 8].copy_from_slice(&new.to_le_bytes());
                if mode & 8 == 0 {
                    h = FixedHeader::from_bytes(&h).with_check().to_bytes();
                }
                self.raw(0, &h);
            }
            11 | 12 => {
                let k = inp.u8() as usize % nkeys;
                let size = SIZES[inp.u8() as usize % SIZES.len()];
                let ttl = TTLS[inp.u8() as usize % TTLS.len()];
                let tags = TAGSETS[inp.u8() as usize % TAGSETS.len()];
                self.insert(k, size, ttl, tags);
            }
            13 => {
                let k = inp.u8() as usize % nkeys;
                let (ns, key) = (self.keys[k].ns, self.keys[k].key.clone());
                if self.write_op(|w| {
                    w.delete(ns, &key);
                }) {
                    self.keys[k].cur = None;
                }
            }
            14 => {
                let ns = NAMESPACES[inp.u8() as usize % NAMESPACES.len()];
                let sel = inp.u8();
                if sel % 8 == 7 {
                    if self.write_op(|w| w.clear_namespace_at(ns, T0)) {
                        self.kill(|k, _| k.ns == ns);
                    }
                } else {
                    let tag = TAGS[sel as usize % TAGS.len()];
                    let mode = if sel & 0x80 != 0 {
                        InvalidateMode::Exact
                    } else {
                        InvalidateMode::Hierarchical
                    };
                    if self.write_op(|w| w.invalidate_at(ns, tag, mode, T0).expect("valid tag")) {
                        let under = format!("{tag}/");
                        self.kill(|k, c| {
                            k.ns == ns
                                && c.tags.iter().any(|t| {
                                    *t == tag
                                        || (mode == InvalidateMode::Hierarchical
                                            && t.starts_with(&under))
                                })
                        });
                    }
                }
            }
            _ => {
                let sel = inp.u8();
                match sel % 8 {
                    0..=4 => {
                        self.write_op(|w| {
                            w.evict();
                        });
                    }
                    5 | 6 => {
                        let now = T0 + READ_DELAYS[sel as usize / 8 % READ_DELAYS.len()];
                        self.write_op(|w| {
                            w.expire_at(now);
                        });
                    }
                    _ => {
                        if self.write_op(|w| w.clear_all()) {
                            self.kill(|_, _| true);
                        }
                    }
                }
            }
        }
    }
}

/// What the model says about a key at read time.
#[derive(Clone, Copy)]
enum Expect<'a> {
    /// Never written: any hit is a wrong value.
    Absent,
    Dead,
    Alive {
        value: &'a [u8],
        stale: bool,
    },
}

type Outcome = Option<(Vec<u8>, cachekit_shm::HitMeta)>;

/// Reads one key every way and checks the answers. Returns what `get` saw.
#[allow(clippy::too_many_arguments)]
fn check_key(
    r: &Reader,
    ns: &str,
    key: &[u8],
    ever: &[Vec<u8>],
    expect: Expect<'_>,
    exact: bool,
    now: u64,
    small: usize,
) -> Outcome {
    add(&STATS.reads, 1);
    let got = r.get_at(ns, key, Some(now));

    let mut large = vec![0xA5u8; MAX_VALUE as usize + 64];
    let into = r.get_into_at(ns, key, &mut large, Some(now));
    match (&got, into) {
        (None, Lookup::Miss) => {}
        (Some((v, m)), Lookup::Hit(m2)) => {
            assert_eq!(
                *m, m2,
                "get and get_into disagree on the metadata of {ns:?}/{key:?}"
            );
            assert_eq!(
                &large[..m2.value_len],
                &v[..],
                "get and get_into disagree on the value of {ns:?}/{key:?}"
            );
        }
        (g, i) => panic!(
            "get and get_into disagree on {ns:?}/{key:?}: {:?} vs {i:?}",
            g.as_ref().map(|x| x.1)
        ),
    }

    let mut small_buf = vec![0x5Au8; small];
    match r.get_into_at(ns, key, &mut small_buf, Some(now)) {
        Lookup::Hit(m) => {
            assert!(m.value_len <= small, "a hit longer than the buffer");
            let (v, _) = got.as_ref().expect("small buffer hit where get missed");
            assert_eq!(
                &small_buf[..m.value_len],
                &v[..],
                "small-buffer value differs"
            );
        }
        Lookup::BufferTooSmall { needed } => {
            assert!(
                needed > small && needed <= MAX_VALUE as usize,
                "needed {needed} with a buffer of {small}"
            );
            if let Some((v, _)) = &got {
                assert_eq!(
                    needed,
                    v.len(),
                    "BufferTooSmall reports a length other than the hit's"
                );
            }
        }
        Lookup::Miss => {
            if let Some((v, _)) = &got {
                assert!(
                    v.len() <= small,
                    "a miss with a small buffer where the value exists and does not fit"
                );
                panic!("small-buffer miss where get hit {ns:?}/{key:?}");
            }
        }
    }

    // The real clock: only the value can be checked.
    if let Some((v, _)) = r.get(ns, key) {
        if !ever.contains(&v) {
            assert!(
                !exact,
                "wrong value from get() (real clock) without corruption: {ns:?}/{key:?}"
            );
            add(&STATS.wrong_value, 1);
        }
    }

    if let Some((v, m)) = &got {
        add(&STATS.hits, 1);
        assert_eq!(m.value_len, v.len());
        assert!(v.len() <= MAX_VALUE as usize);
        let right = match expect {
            Expect::Alive { value, stale } => {
                if exact {
                    assert_eq!(m.stale, stale, "stale flag of {ns:?}/{key:?}");
                }
                &v[..] == value
            }
            _ => false,
        };
        if exact {
            assert!(
                right,
                "without corruption, {ns:?}/{key:?} returned a value that is not its current one"
            );
        } else {
            add(&STATS.hits_under_corruption, 1);
            if !ever.contains(v) {
                let n = STATS.wrong_value.fetch_add(1, Ordering::Relaxed);
                if n < 20 {
                    eprintln!(
                        "cachekit-fuzz: wrong value (passed the 13-bit entry check) for {ns:?}/{:?}: {} bytes, meta {m:?}",
                        String::from_utf8_lossy(key),
                        v.len()
                    );
                }
            } else if !right {
                add(&STATS.resurrected, 1);
            }
        }
    }
    got
}

fn run(data: &[u8]) {
    init_once();
    let n = STATS.execs.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_multiple_of(1 << 16) {
        print_stats();
    }

    let mut inp = Input { d: data };
    let flags = inp.u8();
    let memfd = flags & 1 != 0;
    let now = T0 + READ_DELAYS[(flags >> 1) as usize % READ_DELAYS.len()];
    let small = SMALL_BUFS[(flags >> 4) as usize % SMALL_BUFS.len()];

    let backing = if memfd { Backing::Memfd } else { Backing::Heap };
    let w = Writer::create(&config(), backing).expect("valid config");
    let reader = w.reader();
    let lay = layout();
    let mut run = Run {
        w,
        lay,
        keys: universe(),
        header: lay.header().to_bytes(),
        corrupted: false,
        writer_dead: false,
        version: 0,
    };

    // The fixed contents: every shape of entry, overwrites, a delete, an invalidation.
    for i in 0..INITIAL_KEYS {
        run.insert(
            i,
            SIZES[i % SIZES.len()],
            TTLS[i % TTLS.len()],
            TAGSETS[i % TAGSETS.len()],
        );
    }
    for i in [0, 3, 7, 12] {
        run.insert(
            i,
            SIZES[(i + 4) % SIZES.len()],
            TTLS[i % TTLS.len()],
            TAGSETS[i % TAGSETS.len()],
        );
    }
    run.w.delete(run.keys[9].ns, &run.keys[9].key.clone());
    run.keys[9].cur = None;
    run.w
        .invalidate_at("app", "users/7", InvalidateMode::Hierarchical, T0)
        .unwrap();
    run.kill(|k, c| {
        k.ns == "app"
            && c.tags
                .iter()
                .any(|t| *t == "users/7" || t.starts_with("users/7/"))
    });

    let mut ops = 0;
    while !inp.is_empty() && ops < MAX_OPS {
        run.op(&mut inp);
        ops += 1;
    }
    if run.corrupted {
        add(&STATS.corrupted_execs, 1);
    }
    let exact = !run.corrupted && !run.writer_dead;

    // Header validation must match what was done to the header.
    let original = lay.header().to_bytes();
    let h = &run.header;
    let fixed = FixedHeader::from_bytes(h);
    let revalidated = reader.revalidate();
    let version = fixed.layout_version;
    match &revalidated {
        _ if fixed.magic != TABLE_MAGIC => assert!(
            matches!(revalidated, Err(AttachError::BadMagic)),
            "{revalidated:?}"
        ),
        _ if version != LAYOUT_VERSION => assert!(
            matches!(revalidated, Err(AttachError::UnsupportedVersion { found, expected })
                if found == version && expected == LAYOUT_VERSION),
            "{revalidated:?}"
        ),
        _ if fixed.geometry_check != fixed.expected_check() => assert!(
            matches!(revalidated, Err(AttachError::Corrupt(m)) if m.contains("geometry check")),
            "{revalidated:?}"
        ),
        _ if *h == original => assert!(
            revalidated.is_ok(),
            "untouched header fails validation: {revalidated:?}"
        ),
        Ok(()) => add(&STATS.forged_valid, 1),
        Err(_) => {}
    }
    if revalidated.is_err() {
        add(&STATS.revalidate_err, 1);
    }

    // A fresh reader attaches through the (possibly forged) header.
    let fresh = run
        .w
        .fds()
        .map(|f| Reader::attach(f.table_fd(), Some(f.client_fd())));
    if let Some(a) = &fresh {
        assert_eq!(
            a.is_ok(),
            revalidated.is_ok(),
            "attach and revalidate disagree: {:?} vs {revalidated:?}",
            a.as_ref().err()
        );
        if a.is_ok() {
            add(&STATS.fresh_attach_ok, 1);
        }
    }
    let fresh = fresh.and_then(Result::ok);
    let same_geometry = *h == original;

    let check = |ns: &str, key: &[u8], ever: &[Vec<u8>], expect: Expect<'_>| {
        let a = check_key(&reader, ns, key, ever, expect, exact, now, small);
        if let Some(f) = &fresh {
            let b = check_key(f, ns, key, ever, expect, exact && same_geometry, now, small);
            if same_geometry {
                assert_eq!(
                    a, b,
                    "two readers of the same table disagree on {ns:?}/{key:?}"
                );
            }
        }
    };
    for k in &run.keys {
        let expect = match &k.cur {
            None if k.ever.is_empty() => Expect::Absent,
            None => Expect::Dead,
            Some(c) if c.grace_until.is_some_and(|g| now >= g) => Expect::Dead,
            Some(c) => Expect::Alive {
                value: &c.value,
                stale: c.expires.is_some_and(|e| now >= e),
            },
        };
        check(k.ns, &k.key, &k.ever, expect);
    }
    for (ns, key) in ABSENT {
        debug_assert!(!run.keys.iter().any(|k| k.ns == ns && k.key == key));
        check(ns, key, &[], Expect::Absent);
    }
    add(&STATS.reader_corrupt, reader.stats().corrupt);
}

fuzz_target!(|data: &[u8]| run(data));
