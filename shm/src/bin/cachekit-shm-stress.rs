//! `cachekit-shm-stress`: reader processes for the multi-process stories in
//! `shm/tests/multiprocess.rs`. The test process is the writer; it starts this binary
//! once per reader, with the role as the first argument:
//!
//! ```text
//! cachekit-shm-stress torn-reader --table-fd N --client-fd M --secs S [--until-eof true] [--seed X] [--report K]
//! cachekit-shm-stress inv-reader  --table-fd N --client-fd M --secs S [--until-eof true] [--report K]
//! cachekit-shm-stress check       --table-fd N --client-fd M
//! ```
//!
//! - `torn-reader` reads random keys written with [`codec`] values and verifies every hit
//!   (right key, length, checksum, filler, metadata, versions never going backwards).
//! - `inv-reader` follows the invalidation rounds of [`plan`]: it reads the published
//!   round R, then the keys tagged `posts/1...`; a hit carrying a round ≤ R is a stale read.
//! - `check` answers expectations sent on stdin, one line per batch:
//!   `<namespace> <key>=<value> <key>=- ...` (`-` = must miss) → `ok <n>` or `bad ...`.
//!
//! The two reader roles run for `--secs`, or with `--until-eof true` until their stdin
//! is closed (the writer decides when it has done enough; `--secs` is then a cap). They
//! print one line of flat JSON counts on stdout (the first `--report` bad values, default
//! 5, are described on stderr) and exit 0 whatever they found: the verdict is the test's.
//! Exit 2 = bad arguments or a segment that cannot be attached.
//!
//! File descriptors: the parent hands the table and client-area memfds over by
//! inheritance — it clears `FD_CLOEXEC` on duplicates made for this child and passes their
//! numbers in argv. The child checks that each number names an open memfd before it
//! borrows it. The test compiles this file as a module too (`#[path]`), so that writer
//! and readers share one definition of the values and keys.

#![cfg_attr(loom, allow(dead_code))]

/// Self-describing values for the torn-read stress, and the key and size mix both sides use.
///
/// ```text
/// byte  0..4   slot     u32  namespace index × KEYS + key id: which (namespace, key) this is
/// byte  4..8   version  u32  per-slot write counter of the writer, starting at 1
/// byte  8..10  len      u16  length of the whole value
/// byte 10..12  ttl_ms   u16  TTL the writer gave the entry (0 = none; grace = ttl / 2)
/// byte 12..16  check    u32  xxh3 of bytes 16.. seeded with bytes 0..12
/// byte 16..    filler        splitmix64 stream seeded with (slot, version)
/// ```
pub mod codec {
    use cachekit_shm::HitMeta;
    use xxhash_rust::xxh3::xxh3_64_with_seed;

    /// Bytes of the value header; also the smallest value.
    pub const HEADER: usize = 16;
    /// Keys per namespace: far more than the 1 MiB table of the test holds.
    pub const KEYS: u32 = 50_000;
    /// Keys `0..HOT_KEYS` get half of all writes and reads, so that hits are common.
    pub const HOT_KEYS: u32 = 128;
    /// Keys `HOT_KEYS..HOT_KEYS + TIMED_KEYS` always carry a short TTL and are written
    /// rarely, so readers see them fresh, stale (in grace) and gone.
    pub const TIMED_KEYS: u32 = 64;
    /// The namespaces, written with the same key bytes: a value from the wrong namespace
    /// carries the wrong slot.
    pub const NAMESPACES: [&str; 2] = ["stress-a", "stress-b"];
    /// Largest value written (the table's max_value_bytes must be at least this).
    pub const MAX_LEN: usize = 12 << 10;

    /// splitmix64: small, fast, good enough to pick keys and fill values.
    #[derive(Clone, Debug)]
    pub struct Rng(pub u64);

    impl Rng {
        /// The next 64 random bits.
        #[inline]
        pub fn next_u64(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }

        /// Uniform-ish in `0..n`.
        #[inline]
        pub fn below(&mut self, n: u64) -> u64 {
            self.next_u64() % n
        }
    }

    /// A (namespace index, key id): half hot keys, one in `1 << timed_shift` timed keys,
    /// the rest uniform over [`KEYS`]. Readers use `timed_shift` 4, the writer 8 (so a
    /// timed key lives long enough to expire).
    #[inline]
    pub fn pick(rng: &mut Rng, timed_shift: u32) -> (usize, u32) {
        let r = rng.next_u64();
        let ns = (r >> 63) as usize;
        let rest = (r >> 16) & ((1 << 40) - 1);
        let id = if r & 1 == 0 {
            rest % HOT_KEYS as u64
        } else if (r >> 1) & ((1 << (timed_shift - 1)) - 1) == 0 {
            HOT_KEYS as u64 + rest % TIMED_KEYS as u64
        } else {
            rest % KEYS as u64
        };
        (ns, id as u32)
    }

    /// The TTL of a write of key `id` (0 = none): 100 to 250 ms for the timed keys, 3 s
    /// (which never runs out during a run, but puts entries in another TTL class) for one
    /// write in eight of the others.
    pub fn pick_ttl(rng: &mut Rng, id: u32) -> u16 {
        let r = rng.next_u64();
        if (HOT_KEYS..HOT_KEYS + TIMED_KEYS).contains(&id) {
            100 + (r % 151) as u16
        } else if r & 7 == 0 {
            3_000
        } else {
            0
        }
    }

    /// Slot number of a (namespace, key id), as carried in the value.
    #[inline]
    pub fn slot(ns: usize, id: u32) -> u32 {
        ns as u32 * KEYS + id
    }

    /// Key bytes of `id`: `k`, the id, and 0..8 padding bytes so key lengths (and entry
    /// alignments) vary. Returns the buffer and the used length.
    #[inline]
    pub fn key(id: u32) -> ([u8; 13], usize) {
        let mut k = [0u8; 13];
        k[0] = b'k';
        k[1..5].copy_from_slice(&id.to_le_bytes());
        let pad = (id % 9) as usize;
        for (i, b) in k[5..5 + pad].iter_mut().enumerate() {
            *b = (id as u8).wrapping_add(i as u8);
        }
        (k, 5 + pad)
    }

    /// A value length: mostly small, some medium, a few large (16 B to 12 KiB).
    pub fn pick_len(rng: &mut Rng) -> usize {
        let r = rng.next_u64();
        let spread = (r >> 8) as usize;
        match r % 100 {
            0..=59 => HEADER + spread % 240,
            60..=89 => 256 + spread % 1792,
            _ => 2048 + spread % (MAX_LEN - 2048 + 1),
        }
    }

    fn filler_rng(slot: u32, version: u32) -> Rng {
        Rng(((slot as u64) << 32 | version as u64) ^ 0x5EED_F111_E4B1_75E5)
    }

    fn check_of(v: &[u8]) -> u32 {
        let a = u64::from_le_bytes(v[0..8].try_into().expect("8 bytes"));
        let b = u32::from_le_bytes(v[8..12].try_into().expect("4 bytes")) as u64;
        xxh3_64_with_seed(&v[HEADER..], a ^ b.rotate_left(40)) as u32
    }

    /// Writes the value of (`slot`, `version`) of `len` bytes into `out`.
    pub fn encode(slot: u32, version: u32, len: usize, ttl_ms: u16, out: &mut Vec<u8>) {
        assert!(
            (HEADER..=u16::MAX as usize).contains(&len),
            "value length {len} out of range"
        );
        out.clear();
        out.resize(len, 0);
        out[0..4].copy_from_slice(&slot.to_le_bytes());
        out[4..8].copy_from_slice(&version.to_le_bytes());
        out[8..10].copy_from_slice(&(len as u16).to_le_bytes());
        out[10..12].copy_from_slice(&ttl_ms.to_le_bytes());
        let mut rng = filler_rng(slot, version);
        for chunk in out[HEADER..].chunks_mut(8) {
            let w = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
        let c = check_of(out);
        out[12..16].copy_from_slice(&c.to_le_bytes());
    }

    /// What is wrong with a value.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Bad {
        /// Shorter than the header.
        Short,
        /// Another key's (or another namespace's) value.
        WrongKey,
        /// The length in the header is not the length returned.
        Length,
        /// The checksum does not match: bytes of two writes mixed, or garbage.
        Checksum,
        /// Checksum fine but the filler is not the one of (slot, version).
        Filler,
        /// TTL, grace or staleness reported by the reader disagree with the value.
        Meta,
    }

    /// Checks a value read for `want_slot`, returns its version. `[t0, t1]` bounds the
    /// clock reading the lookup judged deadlines with (read just before and just after).
    pub fn verify(v: &[u8], want_slot: u32, meta: &HitMeta, t0: u64, t1: u64) -> Result<u32, Bad> {
        if v.len() < HEADER {
            return Err(Bad::Short);
        }
        let word = |r: core::ops::Range<usize>| {
            let mut b = [0u8; 4];
            b[..r.len()].copy_from_slice(&v[r]);
            u32::from_le_bytes(b)
        };
        let (slot, version, len, ttl, check) = (
            word(0..4),
            word(4..8),
            word(8..10),
            word(10..12),
            word(12..16),
        );
        if slot != want_slot {
            return Err(Bad::WrongKey);
        }
        if len as usize != v.len() || meta.value_len != v.len() {
            return Err(Bad::Length);
        }
        if check_of(v) != check {
            return Err(Bad::Checksum);
        }
        let mut rng = filler_rng(slot, version);
        for chunk in v[HEADER..].chunks(8) {
            if chunk != &rng.next_u64().to_le_bytes()[..chunk.len()] {
                return Err(Bad::Filler);
            }
        }
        if !meta_ok(meta, ttl as u64, t0, t1) {
            return Err(Bad::Meta);
        }
        Ok(version)
    }

    /// The reader's metadata agrees with the TTL the writer put in the value, and the
    /// entry was not past its grace deadline when the read started.
    fn meta_ok(m: &HitMeta, ttl: u64, t0: u64, t1: u64) -> bool {
        if ttl == 0 {
            return m.expires_ms.is_none() && m.grace_until_ms.is_none() && !m.stale;
        }
        let (Some(exp), Some(grace_until)) = (m.expires_ms, m.grace_until_ms) else {
            return false;
        };
        // The lookup's clock reading lies in [t0, t1]: a hit means it was before
        // grace_until; `stale` means it was at or after `expires`.
        exp == m.created_ms + ttl
            && grace_until == exp + ttl / 2
            && grace_until > t0
            && if m.stale { exp <= t1 } else { exp > t0 }
    }
}

/// Keys of the invalidation story, shared by the writer (the test) and `inv-reader`.
///
/// Every round r the writer overwrites the [`CHURN`](plan::CHURN) keys with r, invalidates
/// `posts/1` hierarchically, and only after that returns publishes r under
/// [`ROUND_KEY`](plan::ROUND_KEY) (untagged). The [`STEADY`](plan::STEADY) keys are written
/// once, before the readers start, and must always hit.
pub mod plan {
    /// Namespace of the story.
    pub const NS: &str = "inv";
    /// Untagged key holding the last round whose invalidation has returned (u64 LE).
    pub const ROUND_KEY: &[u8] = b"round";
    /// The tag invalidated every round.
    pub const TAG: &str = "posts/1";
    /// Keys overwritten every round and killed by invalidating `posts/1`: (key, tags).
    pub const CHURN: [(&str, &[&str]); 9] = [
        ("p1/0", &["posts/1"]),
        ("p1/1", &["posts/1"]),
        ("p1/2", &["posts/1"]),
        ("p1/3", &["posts/1"]),
        ("p1x/0", &["posts/1/x"]),
        ("p1x/1", &["posts/1/x"]),
        ("p1x/2", &["posts/1/x/deeper"]),
        // Any one dead tag kills an entry, whatever its other tags.
        ("p1m/0", &["posts/2", "posts/1/x"]),
        ("p1m/1", &["posts/1", "users/7"]),
    ];
    /// Keys written once and never invalidated: (namespace, key, tag or "" for none).
    /// `posts/10` and `posts/1x` share a string prefix with `posts/1`, not a path prefix.
    pub const STEADY: [(&str, &str, &str); 9] = [
        ("inv", "p2/0", "posts/2"),
        ("inv", "p2/1", "posts/2/x"),
        ("inv", "p10/0", "posts/10"),
        ("inv", "p1x-str/0", "posts/1x"),
        ("inv", "parent/0", "posts"),
        ("inv", "users/0", "users/7"),
        ("inv", "plain/0", ""),
        ("inv-other", "p1/0", "posts/1"),
        ("inv-other", "p1x/0", "posts/1/x"),
    ];

    /// The value of a steady key.
    pub fn steady_value(ns: &str, key: &str) -> Vec<u8> {
        format!("steady {ns} {key}").into_bytes()
    }
}

// A thread flag of this process, not shared memory: std's atomics are fine here.
#[allow(clippy::disallowed_types)]
#[cfg(not(loom))]
mod roles {
    use super::{codec, plan};
    use cachekit_shm::{now_ms, Lookup, Reader, ReaderStats};
    use std::collections::HashMap;
    use std::fmt::Write as _;
    use std::io::{BufRead, Read, Write};
    use std::os::fd::{BorrowedFd, RawFd};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    /// How many bad values a reader describes on stderr by default (`--report`); all are
    /// counted.
    const REPORT_FIRST: u64 = 5;

    /// Bounds of the clock a lookup judges deadlines with, read just before it
    /// ([`DeadlineClock::before`]) and just after it ([`DeadlineClock::after`]). Its clock is the coarse real-time clock plus
    /// one tick of it (`deadline_now_ms`), which can lag the precise clock `now_ms()` by
    /// more than its tick (see `expired_entries_are_never_served_late` in the test), so the
    /// window admits both: the timing check here is that the reader applied its own clock
    /// to the right deadlines; whether that clock is late is the dedicated test's business.
    struct DeadlineClock {
        tick_ms: u64,
    }

    impl DeadlineClock {
        fn new() -> DeadlineClock {
            let r = rustix::time::clock_getres(rustix::time::ClockId::RealtimeCoarse);
            let tick_ms =
                (r.tv_sec as u64 * 1000 + (r.tv_nsec as u64).div_ceil(1_000_000)).clamp(1, 100);
            DeadlineClock { tick_ms }
        }

        fn coarse_ms(&self) -> u64 {
            let t = rustix::time::clock_gettime(rustix::time::ClockId::RealtimeCoarse);
            t.tv_sec as u64 * 1000 + t.tv_nsec as u64 / 1_000_000 + self.tick_ms
        }

        /// A lower bound of any clock reading the lookup about to start may make.
        fn before(&self) -> u64 {
            now_ms().min(self.coarse_ms())
        }

        /// An upper bound of any clock reading the lookup that just ended made.
        fn after(&self) -> u64 {
            now_ms().max(self.coarse_ms())
        }
    }

    /// `--name value` pairs.
    pub struct Args(HashMap<String, String>);

    impl Args {
        pub fn parse(args: impl Iterator<Item = String>) -> Result<Args, String> {
            let mut m = HashMap::new();
            let mut it = args;
            while let Some(name) = it.next() {
                let Some(name) = name.strip_prefix("--") else {
                    return Err(format!("unexpected argument {name:?}"));
                };
                let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
                m.insert(name.to_owned(), value);
            }
            Ok(Args(m))
        }

        pub fn get<T: std::str::FromStr>(&self, name: &str) -> Result<T, String> {
            let v = self
                .0
                .get(name)
                .ok_or_else(|| format!("missing --{name}"))?;
            v.parse().map_err(|_| format!("bad --{name} {v:?}"))
        }

        pub fn get_or<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, String> {
            if self.0.contains_key(name) {
                self.get(name)
            } else {
                Ok(default)
            }
        }
    }

    /// Checks that `fd` names an open memfd of this process.
    fn check_memfd(fd: RawFd) -> Result<(), String> {
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}"))
            .map_err(|e| format!("fd {fd}: {e}"))?;
        if link.to_string_lossy().starts_with("/memfd:") {
            Ok(())
        } else {
            Err(format!("fd {fd} is {}, not a memfd", link.display()))
        }
    }

    /// Attaches to the memfds whose numbers are in `--table-fd` and `--client-fd`.
    pub fn attach(args: &Args) -> Result<Reader, String> {
        let table: RawFd = args.get("table-fd")?;
        let client: RawFd = args.get("client-fd")?;
        check_memfd(table)?;
        check_memfd(client)?;
        // SAFETY: `borrow_raw` requires each fd to stay open for as long as the borrow is
        // used:
        // - both are open now: `check_memfd` resolved /proc/self/fd/<n> to a memfd above
        //   (inherited from the parent, which cleared FD_CLOEXEC on them for this child);
        // - nothing closes them while borrowed: this process never makes an OwnedFd, File
        //   or any other owner from these numbers, and the borrows end when `attach`
        //   returns (the mappings it makes do not need the fds afterwards).
        let (table, client) = unsafe {
            (
                BorrowedFd::borrow_raw(table),
                BorrowedFd::borrow_raw(client),
            )
        };
        Reader::attach(table, Some(client)).map_err(|e| format!("attach: {e}"))
    }

    /// Flat JSON of counters, in order.
    fn json(role: &str, fields: &[(&str, u64)], stats: &ReaderStats) -> String {
        let mut s = format!("{{\"role\":\"{role}\"");
        let all = fields.iter().copied().chain([
            ("hits", stats.hits),
            ("stale_hits", stats.stale_hits),
            ("misses", stats.misses),
            ("retries", stats.retries),
            ("gave_up", stats.gave_up),
            ("corrupt", stats.corrupt),
        ]);
        for (k, v) in all {
            let _ = write!(s, ",\"{k}\":{v}");
        }
        s.push('}');
        s
    }

    /// When a reader loop stops: at `--secs`, or (`--until-eof true`) when stdin closes.
    struct Stop {
        end: Instant,
        eof: Arc<AtomicBool>,
    }

    impl Stop {
        fn new(args: &Args) -> Result<Stop, String> {
            let secs: f64 = args.get("secs")?;
            if !(0.0..=86_400.0).contains(&secs) {
                return Err(format!("--secs {secs} out of range"));
            }
            let eof = Arc::new(AtomicBool::new(false));
            if args.get_or("until-eof", false)? {
                let flag = eof.clone();
                std::thread::spawn(move || {
                    let mut sink = [0u8; 64];
                    let mut stdin = std::io::stdin().lock();
                    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
                    flag.store(true, Ordering::Relaxed);
                });
            }
            Ok(Stop {
                end: Instant::now() + Duration::from_secs_f64(secs),
                eof,
            })
        }

        fn reached(&self) -> bool {
            self.eof.load(Ordering::Relaxed) || Instant::now() >= self.end
        }
    }

    /// Reads random keys until told to stop and verifies every hit.
    pub fn torn_reader(args: &Args) -> Result<String, String> {
        use codec::{Bad, NAMESPACES};
        let reader = attach(args)?;
        let stop = Stop::new(args)?;
        let report = args.get_or("report", REPORT_FIRST)?;
        let mut rng = codec::Rng(args.get_or("seed", 1)?);
        let clock = DeadlineClock::new();
        let mut last = vec![0u32; NAMESPACES.len() * codec::KEYS as usize];
        let mut buf = vec![0u8; reader.max_value_bytes()];
        let (mut reads, mut checked, mut backwards, mut too_small) = (0u64, 0u64, 0u64, 0u64);
        let mut bad = [0u64; 6];
        let mut reported = 0;
        loop {
            if reads % 256 == 0 && stop.reached() {
                break;
            }
            reads += 1;
            let (ns, id) = codec::pick(&mut rng, 4);
            let (k, kl) = codec::key(id);
            let key = &k[..kl];
            let slot = codec::slot(ns, id);
            let t0 = clock.before();
            // Mostly the zero-allocation path; every 16th read through `get`.
            let owned;
            let (value, meta) = if reads % 16 == 0 {
                match reader.get(NAMESPACES[ns], key) {
                    Some((v, m)) => {
                        owned = v;
                        (&owned[..], m)
                    }
                    None => continue,
                }
            } else {
                match reader.get_into(NAMESPACES[ns], key, &mut buf) {
                    Lookup::Hit(m) => (&buf[..m.value_len.min(buf.len())], m),
                    Lookup::Miss => continue,
                    Lookup::BufferTooSmall { .. } => {
                        too_small += 1;
                        continue;
                    }
                }
            };
            let t1 = clock.after();
            checked += 1;
            let problem = match codec::verify(value, slot, &meta, t0, t1) {
                Ok(version) => {
                    let seen = &mut last[slot as usize];
                    if version < *seen {
                        backwards += 1;
                        Some(format!("version {version} after {seen}"))
                    } else {
                        *seen = version;
                        None
                    }
                }
                Err(b) => {
                    bad[b as usize] += 1;
                    Some(format!("{b:?}"))
                }
            };
            if let Some(p) = problem {
                if reported < report {
                    reported += 1;
                    let head = &value[..value.len().min(codec::HEADER)];
                    eprintln!(
                        "torn-reader: {} key {id}: {p}; value of {} bytes starting {head:02x?}; {meta:?}; read within [{t0}, {t1}]",
                        NAMESPACES[ns],
                        value.len()
                    );
                }
            }
        }
        let bad_total = bad.iter().sum::<u64>() + backwards;
        let b = |x: Bad| bad[x as usize];
        Ok(json(
            "torn-reader",
            &[
                ("reads", reads),
                ("checked", checked),
                ("bad", bad_total),
                ("wrong_key", b(Bad::WrongKey)),
                ("short", b(Bad::Short)),
                ("bad_length", b(Bad::Length)),
                ("bad_checksum", b(Bad::Checksum)),
                ("bad_filler", b(Bad::Filler)),
                ("bad_meta", b(Bad::Meta)),
                ("backwards", backwards),
                ("too_small", too_small),
            ],
            &reader.stats(),
        ))
    }

    fn round_of(v: &[u8]) -> Option<u64> {
        Some(u64::from_le_bytes(v.try_into().ok()?))
    }

    /// Follows the invalidation rounds of [`plan`] until told to stop.
    pub fn inv_reader(args: &Args) -> Result<String, String> {
        let reader = attach(args)?;
        let stop = Stop::new(args)?;
        let report = args.get_or("report", REPORT_FIRST)?;
        let steady: Vec<(&str, &str, Vec<u8>)> = plan::STEADY
            .iter()
            .map(|(ns, k, _)| (*ns, *k, plan::steady_value(ns, k)))
            .collect();
        let (mut loops, mut max_round, mut violations, mut fresh_hits, mut churn_misses) =
            (0u64, 0u64, 0u64, 0u64, 0u64);
        let (mut steady_hits, mut steady_misses, mut steady_gave_up, mut bad_value) =
            (0u64, 0u64, 0u64, 0u64);
        let mut reported = 0;
        while loops % 64 != 0 || !stop.reached() {
            loops += 1;
            // Acquire of the round slot (inside get): every invalidation that returned
            // before round R was published is visible to the reads below.
            let round = match reader.get(plan::NS, plan::ROUND_KEY) {
                Some((v, _)) => round_of(&v).unwrap_or_else(|| {
                    bad_value += 1;
                    0
                }),
                None => 0,
            };
            max_round = max_round.max(round);
            for (key, _) in plan::CHURN {
                match reader.get(plan::NS, key.as_bytes()) {
                    None => churn_misses += 1,
                    Some((v, _)) => match round_of(&v) {
                        None => bad_value += 1,
                        Some(r) if r <= round => {
                            violations += 1;
                            if reported < report {
                                reported += 1;
                                eprintln!(
                                    "inv-reader: {key} returned round {r} after round {round} was published, i.e. after its invalidation returned"
                                );
                            }
                        }
                        Some(_) => fresh_hits += 1,
                    },
                }
            }
            for (ns, key, want) in &steady {
                let gave_up = reader.stats().gave_up;
                match reader.get(ns, key.as_bytes()) {
                    Some((v, _)) if v == *want => steady_hits += 1,
                    Some(_) => bad_value += 1,
                    None => {
                        steady_misses += 1;
                        if reader.stats().gave_up > gave_up {
                            steady_gave_up += 1;
                        }
                        if reported < report {
                            reported += 1;
                            eprintln!("inv-reader: steady key {ns}/{key} missed (round {round})");
                        }
                    }
                }
            }
        }
        Ok(json(
            "inv-reader",
            &[
                ("loops", loops),
                ("max_round", max_round),
                ("violations", violations),
                ("fresh_hits", fresh_hits),
                ("churn_misses", churn_misses),
                ("steady_hits", steady_hits),
                ("steady_misses", steady_misses),
                ("steady_gave_up", steady_gave_up),
                ("bad_value", bad_value),
            ],
            &reader.stats(),
        ))
    }

    /// Answers expectation lines from stdin until EOF.
    pub fn check(args: &Args) -> Result<String, String> {
        let reader = attach(args)?;
        let stdin = std::io::stdin();
        let mut out = std::io::stdout().lock();
        for line in stdin.lock().lines() {
            let line = line.map_err(|e| format!("stdin: {e}"))?;
            let mut words = line.split_ascii_whitespace();
            let Some(ns) = words.next() else { continue };
            let mut n = 0;
            let mut wrong = Vec::new();
            for w in words {
                let Some((key, want)) = w.split_once('=') else {
                    return Err(format!("bad expectation {w:?}"));
                };
                let got = reader
                    .get(ns, key.as_bytes())
                    .map(|(v, _)| String::from_utf8_lossy(&v).into_owned());
                let want = (want != "-").then(|| want.to_owned());
                if got != want {
                    wrong.push(format!("{key}: got {got:?}, want {want:?}"));
                }
                n += 1;
            }
            let reply = if wrong.is_empty() {
                format!("ok {n}")
            } else {
                format!("bad {ns}: {}", wrong.join("; "))
            };
            writeln!(out, "{reply}")
                .and_then(|()| out.flush())
                .map_err(|e| format!("stdout: {e}"))?;
        }
        Ok(json("check", &[], &reader.stats()))
    }
}

#[cfg(not(loom))]
fn main() {
    // If the test process dies, so do its readers (belt and braces: they also stop on
    // their own at --secs, or at EOF on stdin).
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    let mut argv = std::env::args().skip(1);
    let role = argv.next().unwrap_or_default();
    let result = roles::Args::parse(argv).and_then(|args| match role.as_str() {
        "torn-reader" => roles::torn_reader(&args),
        "inv-reader" => roles::inv_reader(&args),
        "check" => roles::check(&args),
        _ => Err(format!(
            "unknown role {role:?}; roles: torn-reader, inv-reader, check (see the file's docs)"
        )),
    });
    match result {
        Ok(line) => {
            use std::io::Write;
            // A writer that has gone away (closed pipe) is no reason to panic.
            let _ = writeln!(std::io::stdout(), "{line}");
        }
        Err(e) => {
            eprintln!("cachekit-shm-stress {role}: {e}");
            std::process::exit(2);
        }
    }
}

#[cfg(loom)]
fn main() {
    eprintln!("cachekit-shm-stress needs real shared memory; it does nothing in a loom build");
    std::process::exit(2);
}
