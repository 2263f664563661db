//! The reader: serves hits straight from the mapped table with no syscall and no lock.
//!
//! A lookup hashes the key, scans one 64-byte bucket, and for a slot whose fingerprint
//! matches runs the seqlock protocol of [`Reader::probe`]. It never trusts the segment:
//! every offset and length is bounds-checked before use, every value is checked before it
//! is returned, and every loop is bounded. Corruption yields misses and a counter.

use crate::entry::{entry_check, fold_ref, EntryHeader, ENTRY_HEADER_BYTES, MAX_REFS};
use crate::error::AttachError;
use crate::geometry::{check_client_area, Geometry};
use crate::hash::{key_hash, namespace_hash};
use crate::index::{bucket_and_fp, slot_fp, slot_loc};
use crate::layout::{
    header_word, Stat, SEGMENT_HEADER_BYTES, SEG_GENERATION_WORD, SLOTS_PER_BUCKET,
};
use crate::region::Memory;
use crate::sync::{fence, AtomicU64, Claims, LocalCounter, Ordering};
use crate::time::now_ms;
use std::sync::Arc;

/// How many times a lookup restarts after seeing the table change under it before it
/// gives up and reports a miss.
pub const MAX_RETRIES: u32 = 8;

/// Bytes of entry header, namespace and key copied in one go (longer keys are compared in
/// place).
const META_COPY_BYTES: usize = 160;
/// Cache lines of an entry prefetched as soon as its slot matches: a 100-byte value with a
/// 16-byte key and its header spans three.
const PREFETCH_LINES: usize = 3;
/// References copied in one go (entries with more are read one by one).
const FEW_REFS: usize = 8;

/// What a hit carries besides the value bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HitMeta {
    /// Length of the value in bytes.
    pub value_len: usize,
    /// Unix ms at which the entry was written.
    pub created_ms: u64,
    /// Unix ms at which it stops being fresh; `None` = never.
    pub expires_ms: Option<u64>,
    /// Unix ms after which it is gone; `None` = never.
    pub grace_until_ms: Option<u64>,
    /// True inside the grace window (past `expires_ms`, before `grace_until_ms`).
    pub stale: bool,
    /// The entry's stamp: unique per write of this table and increasing, so it names one
    /// version of the key (compare-and-set uses it).
    pub version: u64,
}

/// Result of [`Reader::get_into`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookup {
    /// The value was copied to the front of the buffer.
    Hit(HitMeta),
    /// Not in the table (or expired, invalidated, unreadable).
    Miss,
    /// The value does not fit the buffer; nothing useful was written. `needed` is its
    /// length at the time of the lookup.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
}

/// Counters of one reader handle (process-local).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReaderStats {
    /// Hits (fresh and stale).
    pub hits: u64,
    /// Hits inside the grace window.
    pub stale_hits: u64,
    /// Misses.
    pub misses: u64,
    /// Restarts because the table changed during a read.
    pub retries: u64,
    /// Lookups that ran out of retries (counted as misses too).
    pub gave_up: u64,
    /// Entries that failed validation (bounds, check): a corrupted segment.
    pub corrupt: u64,
}

/// One stripe of counters, alone on its cache line(s).
#[derive(Default)]
#[repr(align(128))]
struct Counters {
    hits: LocalCounter,
    stale_hits: LocalCounter,
    misses: LocalCounter,
    retries: LocalCounter,
    gave_up: LocalCounter,
    corrupt: LocalCounter,
}

/// Counter stripes per reader that one thread at a time owns: its bumps are a load and a
/// store, with no read-modify-write. Threads past this many share [`SHARED_STRIPE`].
const OWNED_STRIPES: usize = 64;
/// The stripe of threads that found every owned stripe taken: bumped with `fetch_add`.
const SHARED_STRIPE: usize = OWNED_STRIPES;
const _: () = assert!(OWNED_STRIPES == 64, "Claims holds 64 indexes");
/// Stripes per reader: the owned ones and the shared one.
const STRIPES: usize = OWNED_STRIPES + 1;

/// Which owned stripes live threads hold, process-wide. A thread claims the lowest free one
/// the first time it reads, and frees it when it exits.
static CLAIMED: Claims = Claims::new();

/// A thread's claim on a stripe, freed when the thread exits.
struct Claim(usize);

impl Drop for Claim {
    fn drop(&mut self) {
        if self.0 < OWNED_STRIPES {
            CLAIMED.release(self.0);
        }
    }
}

/// This thread's stripe: an owned one, or the shared one (also while the thread is exiting).
#[inline]
fn stripe() -> usize {
    std::thread_local! {
        static MINE: Claim = Claim(CLAIMED.claim().unwrap_or(SHARED_STRIPE));
    }
    MINE.try_with(|m| m.0).unwrap_or(SHARED_STRIPE)
}

/// Adds one to counter `f` of stripe `i`.
#[inline]
fn bump(counters: &[Counters; STRIPES], i: usize, f: fn(&Counters) -> &LocalCounter) {
    let c = f(&counters[i]);
    if i == SHARED_STRIPE {
        c.bump();
    } else {
        c.bump_owned();
    }
}

/// Somewhere to put a value of a length learnt during the lookup.
pub(crate) trait ValueSink {
    fn slot(&mut self, len: usize) -> Option<&mut [u8]>;
}

impl ValueSink for [u8] {
    #[inline]
    fn slot(&mut self, len: usize) -> Option<&mut [u8]> {
        self.get_mut(..len)
    }
}

impl ValueSink for Vec<u8> {
    #[inline]
    fn slot(&mut self, len: usize) -> Option<&mut [u8]> {
        self.resize(len, 0);
        Some(&mut self[..])
    }
}

enum Probe {
    Hit(HitMeta),
    /// The key's entry, but expired or invalidated: a definitive miss.
    Dead,
    TooSmall(usize),
    /// A fingerprint collision with another key: keep scanning.
    OtherKey,
    /// The table changed under us: restart.
    Retry,
    Corrupt,
}

/// Which counter of a stripe a lookup adds to (the order of [`CounterStripe::counts`]).
///
/// [`CounterStripe::counts`]: crate::layout::CounterStripe
#[derive(Clone, Copy)]
enum Tally {
    Hit = 0,
    Stale = 1,
    Miss = 2,
}

/// A read-only handle on a table. `Send + Sync`: share one between threads.
pub struct Reader {
    table: Arc<Memory>,
    client: Option<Arc<Memory>>,
    geo: Geometry,
    counters: [Counters; STRIPES],
    /// This process's counters file (host-wide counters), once HELLO_OK handed it over.
    host: Option<Memory>,
}

impl Reader {
    pub(crate) fn from_parts(
        table: Arc<Memory>,
        client: Option<Arc<Memory>>,
        geo: Geometry,
    ) -> Reader {
        Reader {
            table,
            client,
            geo,
            counters: std::array::from_fn(|_| Counters::default()),
            host: None,
        }
    }

    /// From now on, adds this reader's hits, stale hits and misses to the counters file
    /// `fd` (the third descriptor of HELLO_OK: this process's own), per namespace. Maps it
    /// read-write; refused (and nothing counted) when it is not a memfd sealed against
    /// shrinking or is shorter than [`COUNTERS_BYTES`](crate::layout::COUNTERS_BYTES).
    #[cfg(not(loom))]
    pub fn count_into(&mut self, fd: std::os::fd::BorrowedFd<'_>) -> Result<(), AttachError> {
        self.host = None;
        let m = crate::shared::map(fd, true)?;
        if (m.region().len_bytes() as u64) < crate::layout::COUNTERS_BYTES {
            return Err(AttachError::Corrupt(
                "counters file smaller than this build's layout",
            ));
        }
        self.host = Some(m);
        Ok(())
    }

    /// Adds one lookup of the namespace hashed `ns_hash` to this process's counters file,
    /// in the stripe of the calling thread (`stripe`, see [`stripe()`]): the namespace's
    /// slot (claimed on first use), else the stripe's unattributed counters. The first
    /// `COUNTER_STRIPES - 1` stripes have one writing thread each, so the add is a plain
    /// load and store; the last is shared, with `fetch_add`. Every word is bounds-checked
    /// against the mapping. Only this process maps the file (and the daemon reads it), so
    /// whatever is in it changes this process's figures only.
    #[inline]
    fn tally(&self, ns_hash: u64, what: Tally, stripe: usize) {
        use crate::clients::{stripe_word, tag_word};
        use crate::layout::{CounterStripe, COUNTER_STRIPES, NAMESPACE_SLOTS};
        use core::mem::offset_of;
        let Some(host) = &self.host else {
            return;
        };
        let r = host.region();
        let tag = ns_hash | 1;
        let (fs, owned) = if stripe < COUNTER_STRIPES - 1 {
            (stripe, true)
        } else {
            (COUNTER_STRIPES - 1, false)
        };
        let mut field = offset_of!(CounterStripe, unattributed);
        for i in 0..NAMESPACE_SLOTS {
            let Some(t) = r.word(tag_word(i)) else {
                break;
            };
            let mut seen = t.load(Ordering::Relaxed);
            if seen == 0 {
                // Relaxed: the tag only names the slot; the counts need no ordering with it.
                seen = match t.compare_exchange(0, tag, Ordering::Relaxed, Ordering::Relaxed) {
                    Ok(_) => tag,
                    Err(now) => now,
                };
            }
            if seen == tag {
                field = offset_of!(CounterStripe, counts) + i * core::mem::size_of::<[u64; 3]>();
                break;
            }
        }
        if let Some(w) = r.word(stripe_word(fs, field) + what as usize) {
            if owned {
                // One thread of this process writes this stripe (its claim is the reader's
                // counter stripe); the daemon only reads it. Wrapping: the words may hold
                // anything this process wrote.
                let v = w.load(Ordering::Relaxed);
                w.store(v.wrapping_add(1), Ordering::Relaxed);
            } else {
                w.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Maps a table handed over as a file descriptor (read-only) and, optionally, the
    /// client area (read-write, for access bits). Validates the header.
    #[cfg(not(loom))]
    pub fn attach(
        table: std::os::fd::BorrowedFd<'_>,
        client: Option<std::os::fd::BorrowedFd<'_>>,
    ) -> Result<Reader, AttachError> {
        let table = crate::shared::map(table, false)?;
        let geo = Geometry::read_header(table.region())?;
        let client = match client {
            Some(fd) => {
                let c = crate::shared::map(fd, true)?;
                check_client_area(&geo, c.region())?;
                Some(Arc::new(c))
            }
            None => None,
        };
        Ok(Reader::from_parts(Arc::new(table), client, geo))
    }

    /// Validates the header of this reader's table as [`Reader::attach`] would (it reads the
    /// header again; the reader itself keeps the geometry it copied when it was made).
    #[cfg(feature = "testing")]
    pub fn revalidate(&self) -> Result<(), AttachError> {
        let g = Geometry::read_header(self.table.region())?;
        if let Some(c) = &self.client {
            check_client_area(&g, c.region())?;
        }
        Ok(())
    }

    /// The daemon epoch in the header (changes when a new daemon builds the segment).
    pub fn epoch(&self) -> u64 {
        self.table
            .region()
            .load(header_word!(epoch), Ordering::Relaxed)
            .unwrap_or(0)
    }

    /// The daemon's last heartbeat, Unix ms.
    pub fn heartbeat_ms(&self) -> u64 {
        // Acquire: pairs with the Release store in Writer::heartbeat_at.
        self.table
            .region()
            .load(header_word!(heartbeat_ms), Ordering::Acquire)
            .unwrap_or(0)
    }

    /// Bumped by every full flush.
    pub fn flush_generation(&self) -> u64 {
        self.table
            .region()
            .load(header_word!(flush_generation), Ordering::Acquire)
            .unwrap_or(0)
    }

    /// The largest value the table holds.
    pub fn max_value_bytes(&self) -> usize {
        self.geo.max_value_bytes as usize
    }

    /// One of the writer's statistics, as published in the header.
    pub fn table_stat(&self, s: Stat) -> u64 {
        self.table
            .region()
            .load(s.word(), Ordering::Relaxed)
            .unwrap_or(0)
    }

    /// This handle's counters.
    pub fn stats(&self) -> ReaderStats {
        let sum =
            |f: fn(&Counters) -> &LocalCounter| self.counters.iter().map(|c| f(c).get()).sum();
        ReaderStats {
            hits: sum(|c| &c.hits),
            stale_hits: sum(|c| &c.stale_hits),
            misses: sum(|c| &c.misses),
            retries: sum(|c| &c.retries),
            gave_up: sum(|c| &c.gave_up),
            corrupt: sum(|c| &c.corrupt),
        }
    }

    /// Copies the value of `key` in `ns` into `buf`.
    #[inline]
    pub fn get_into(&self, ns: &str, key: &[u8], buf: &mut [u8]) -> Lookup {
        self.get_into_at(ns, key, buf, None)
    }

    /// [`Reader::get_into`] as if the time were `now` (Unix ms; `None` = the clock).
    pub fn get_into_at(&self, ns: &str, key: &[u8], buf: &mut [u8], now: Option<u64>) -> Lookup {
        self.lookup(ns, key, buf, now).0
    }

    /// [`Reader::get_into_at`], and whether its answer is settled: `false` for a miss of a
    /// lookup that ran out of retries (the table kept changing under it, so only its writer
    /// knows), `true` otherwise.
    pub fn get_into_settled(
        &self,
        ns: &str,
        key: &[u8],
        buf: &mut [u8],
        now: Option<u64>,
    ) -> (Lookup, bool) {
        self.lookup(ns, key, buf, now)
    }

    /// The value of `key` in `ns`, in a new vector.
    #[inline]
    pub fn get(&self, ns: &str, key: &[u8]) -> Option<(Vec<u8>, HitMeta)> {
        self.get_at(ns, key, None)
    }

    /// [`Reader::get`] as if the time were `now` (Unix ms; `None` = the clock).
    pub fn get_at(&self, ns: &str, key: &[u8], now: Option<u64>) -> Option<(Vec<u8>, HitMeta)> {
        let mut v = Vec::new();
        match self.lookup(ns, key, &mut v, now).0 {
            Lookup::Hit(m) => {
                v.truncate(m.value_len);
                Some((v, m))
            }
            _ => None,
        }
    }

    fn lookup<S: ValueSink + ?Sized>(
        &self,
        ns: &str,
        key: &[u8],
        sink: &mut S,
        now: Option<u64>,
    ) -> (Lookup, bool) {
        let seed = self.geo.seed;
        let nsh = namespace_hash(seed, ns.as_bytes());
        let kh = key_hash(seed, nsh, key);
        let (bucket, fp) = bucket_and_fp(kh, self.geo.bucket_count);
        // Threads bump stripes of their own (no cache line shared between cores, no locked
        // instruction on the hit path).
        let (cs, st) = (&self.counters, stripe());
        for _attempt in 0..MAX_RETRIES {
            let mut retry = false;
            for i in 0..SLOTS_PER_BUCKET {
                let Some(slot) = self.table.region().word(self.geo.slot_word(bucket, i)) else {
                    bump(cs, st, |c| &c.corrupt);
                    break;
                };
                // Acquire: pairs with the Release slot store in Writer::publish; the entry
                // bytes written before it are visible to the copy below.
                let s = slot.load(Ordering::Acquire);
                if s == 0 || slot_fp(s) != fp {
                    continue;
                }
                self.prefetch(s, bucket * SLOTS_PER_BUCKET as u64 + i as u64);
                match self.probe(slot, s, kh, ns, key, sink, now) {
                    Probe::Hit(m) => {
                        bump(cs, st, |c| &c.hits);
                        self.tally(nsh, Tally::Hit, st);
                        if m.stale {
                            bump(cs, st, |c| &c.stale_hits);
                            self.tally(nsh, Tally::Stale, st);
                        }
                        self.touch(bucket * SLOTS_PER_BUCKET as u64 + i as u64);
                        return (Lookup::Hit(m), true);
                    }
                    Probe::TooSmall(needed) => return (Lookup::BufferTooSmall { needed }, true),
                    Probe::OtherKey => continue,
                    Probe::Dead => {
                        bump(cs, st, |c| &c.misses);
                        self.tally(nsh, Tally::Miss, st);
                        return (Lookup::Miss, true);
                    }
                    Probe::Corrupt => {
                        bump(cs, st, |c| &c.corrupt);
                        continue;
                    }
                    Probe::Retry => {
                        bump(cs, st, |c| &c.retries);
                        retry = true;
                        break;
                    }
                }
            }
            if !retry {
                bump(cs, st, |c| &c.misses);
                self.tally(nsh, Tally::Miss, st);
                return (Lookup::Miss, true);
            }
        }
        bump(cs, st, |c| &c.gave_up);
        bump(cs, st, |c| &c.misses);
        self.tally(nsh, Tally::Miss, st);
        (Lookup::Miss, false)
    }

    /// The seqlock read of one candidate entry.
    ///
    /// 1. load the segment generation (Acquire);
    /// 2. re-load the slot: if it changed, the locator may be stale → retry;
    /// 3. copy what is needed with relaxed word loads, bounds-checking every offset;
    /// 4. Acquire fence, re-load the generation: if it changed, the segment was recycled
    ///    during the copy → retry;
    /// 5. only then trust the copy: check, times, tag counters.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn probe<S: ValueSink + ?Sized>(
        &self,
        slot: &AtomicU64,
        s: u64,
        kh: u64,
        ns: &str,
        key: &[u8],
        sink: &mut S,
        now: Option<u64>,
    ) -> Probe {
        let g = &self.geo;
        let r = self.table.region();
        let loc = slot_loc(s);
        // Bounds: the entry header must lie inside one segment, after its header.
        let Some(rel) = loc.checked_sub(g.arena_off) else {
            return Probe::Corrupt;
        };
        let seg = rel / g.segment_bytes;
        if seg >= g.segment_count {
            return Probe::Corrupt;
        }
        let seg_off = g.arena_off + seg * g.segment_bytes;
        let seg_end = seg_off + g.segment_bytes;
        if loc < seg_off + SEGMENT_HEADER_BYTES || loc + ENTRY_HEADER_BYTES as u64 > seg_end {
            return Probe::Corrupt;
        }
        let gen_word = (seg_off / 8) as usize + SEG_GENERATION_WORD;
        // Acquire: pairs with the Release store of the generation in Writer::recycle: if we
        // see a recycled generation we also see the slot clears that came before it.
        let Some(g1) = r.load(gen_word, Ordering::Acquire) else {
            return Probe::Corrupt;
        };
        // Acquire: as the first slot load; if the slot still holds `s`, the locator was
        // current when the generation above was read.
        if slot.load(Ordering::Acquire) != s {
            return Probe::Retry;
        }
        // Settles a decision that depends on bytes read so far: if the segment changed
        // under us the bytes meant nothing (retry); otherwise the decision stands.
        let stable = || {
            // Acquire fence: pairs with the Release fence in Writer::recycle. If any byte we
            // copied was written after a recycle, the generation load below sees it.
            #[cfg(loom)]
            let skip = crate::sync::weaken::skips(crate::sync::weaken::Fence::Reader);
            #[cfg(not(loom))]
            let skip = false;
            if !skip {
                fence(Ordering::Acquire);
            }
            r.load(gen_word, Ordering::Relaxed) == Some(g1)
        };
        let settle = |p: Probe| if stable() { p } else { Probe::Retry };

        // The header, and with it the namespace and key it should hold when they are short:
        // one copy, then plain slice compares.
        let mut meta = [0u8; META_COPY_BYTES];
        let want = ENTRY_HEADER_BYTES + ns.len() + key.len();
        let whole = want <= META_COPY_BYTES && loc + want as u64 <= seg_end;
        let n = if whole { want } else { ENTRY_HEADER_BYTES };
        if !r.read_bytes(loc as usize, &mut meta[..n]) {
            return settle(Probe::Corrupt);
        }
        let hb: [u8; ENTRY_HEADER_BYTES] =
            meta[..ENTRY_HEADER_BYTES].try_into().expect("header bytes");
        let h = EntryHeader::decode(&hb);
        let total = h.total_len() as u64;
        if loc + total > seg_end
            || h.value_len as u64 > g.max_value_bytes
            || h.ref_count as usize > MAX_REFS
        {
            return settle(Probe::Corrupt);
        }
        if h.ns_len as usize != ns.len() || h.key_len as usize != key.len() {
            return settle(Probe::OtherKey);
        }
        let ns_at = loc as usize + ENTRY_HEADER_BYTES;
        let key_at = ns_at + ns.len();
        let same = if whole {
            meta[ENTRY_HEADER_BYTES..key_at - loc as usize] == *ns.as_bytes()
                && meta[key_at - loc as usize..want] == *key
        } else {
            r.eq_bytes(ns_at, ns.as_bytes()) == Some(true) && r.eq_bytes(key_at, key) == Some(true)
        };
        if !same {
            return settle(Probe::OtherKey);
        }

        // Tag counters: read inside the window so a torn reference is caught by the
        // generation check rather than mistaken for corruption.
        let refs_at = key_at + key.len();
        let mut refs_fold = 0;
        let mut bad_ref = false;
        let mut invalidated = false;
        // Few references (the namespace's, a tag's path): one copy of them all.
        let mut few = [0u8; 4 * FEW_REFS];
        let n_refs = h.ref_count as usize;
        if n_refs <= FEW_REFS {
            r.read_bytes(refs_at, &mut few[..4 * n_refs]);
        }
        for k in 0..n_refs {
            let idx = if n_refs <= FEW_REFS {
                u32::from_le_bytes(few[4 * k..4 * k + 4].try_into().expect("4 bytes"))
            } else {
                let mut b = [0u8; 4];
                r.read_bytes(refs_at + 4 * k, &mut b);
                u32::from_le_bytes(b)
            };
            refs_fold = fold_ref(refs_fold, idx);
            if idx as u64 >= g.tag_count {
                bad_ref = true;
                continue;
            }
            // Acquire: pairs with the Release store in Writer::bump_counter.
            let c = r
                .load(g.counter_word(idx), Ordering::Acquire)
                .unwrap_or(u64::MAX);
            invalidated |= c >= h.stamp;
        }
        let now = if h.ttl == crate::entry::DURATION_NEVER {
            0
        } else {
            // The precise clock: the coarse one lags it by more than its resolution on some
            // machines, which would serve entries past their deadline.
            now.unwrap_or_else(now_ms)
        };
        let expires = h.expires_ms();
        let grace_until = h.grace_until_ms();
        if invalidated || grace_until.is_some_and(|gu| now >= gu) {
            return settle(if bad_ref { Probe::Corrupt } else { Probe::Dead });
        }
        let value_at = refs_at + 4 * h.ref_count as usize;
        let len = h.value_len as usize;
        let Some(dst) = sink.slot(len) else {
            return settle(Probe::TooSmall(len));
        };
        if !r.read_bytes(value_at, dst) {
            return settle(Probe::Corrupt);
        }
        if !stable() {
            return Probe::Retry;
        }
        // The copy is consistent: anything wrong now is corruption.
        if bad_ref || entry_check(g.seed, &hb, kh, refs_fold, dst) != h.check {
            return Probe::Corrupt;
        }
        Probe::Hit(HitMeta {
            value_len: len,
            created_ms: h.created_ms(),
            expires_ms: expires,
            grace_until_ms: grace_until,
            stale: expires.is_some_and(|e| now >= e),
            version: h.stamp,
        })
    }

    /// Starts loading, all at once, the cache lines a hit of slot value `s` (slot number
    /// `slot_index`) reads one after the other: the entry's first lines (header, key, the
    /// start of the value), its segment's generation word and the slot's access bit, so that
    /// their misses overlap instead of each waiting behind the copy and check before it (the
    /// access bit is read only after the value is checked). Hints only: an out-of-range
    /// locator prefetches nothing, and [`Reader::probe`] checks everything as before.
    #[inline(always)]
    fn prefetch(&self, s: u64, slot_index: u64) {
        let g = &self.geo;
        let r = self.table.region();
        let loc = slot_loc(s);
        if let Some(rel) = loc.checked_sub(g.arena_off) {
            let seg = rel / g.segment_bytes;
            if seg < g.segment_count {
                r.prefetch(
                    (g.arena_off + seg * g.segment_bytes) as usize + 8 * SEG_GENERATION_WORD,
                );
                for line in 0..PREFETCH_LINES {
                    r.prefetch(loc as usize + 64 * line);
                }
            }
        }
        if let Some(c) = &self.client {
            c.region().prefetch(8 * self.geo.access_bit(slot_index).0);
        }
    }

    /// Sets the access bit of a slot, at most once: no store when it is set already, so
    /// hot keys cause no cache-line ping-pong between readers.
    #[inline]
    fn touch(&self, slot_index: u64) {
        if let Some(c) = &self.client {
            let (w, mask) = self.geo.access_bit(slot_index);
            if let Some(word) = c.region().word(w) {
                if word.load(Ordering::Relaxed) & mask == 0 {
                    word.fetch_or(mask, Ordering::Relaxed);
                }
            }
        }
    }
}
