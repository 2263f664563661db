//! The stress loop of one worker process: `threads` threads, each the only writer of its own
//! keys, reading everybody's, until the deadline; every read judged by [`crate::checker`].
//!
//! Keys: writer `w` (thread `t` of process `p`, `w = p * threads + t`) owns
//! `w<w>:k0 .. w<w>:k<keys_per_writer - 1>`, each tagged `w<w>/g<n % 8>/k<n>`, so one
//! invalidation can cover one key (`w3/g1/k9`, hierarchical or exact), a group of keys
//! (`w3/g1`) or all of a writer's keys (`w3`). An exact invalidation of a group covers none.
//!
//! Operations, per thread, drawn at random: 65 % get of anybody's key (half of them among the
//! 16 hottest keys of a writer), 26 % set of an own key (a quarter of them read back at once),
//! 5 % invalidation (one covered key read back at once: 45 % one key, 34 % one key in exact
//! mode, 15 % a group, 1 % all of the writer's keys, 5 % a group in exact mode, which covers
//! nothing), 4 % delete (read back).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cachekit_client::{Client, SetOptions, Source};
use serde::{Deserialize, Serialize};

use crate::checker::{check, Read, Verdict};
use crate::floors::Floors;
use crate::{value, Rng};

/// Tag groups per writer.
pub const GROUPS: u32 = 8;
/// Keys of each writer that half of the gets go to.
pub const HOT_KEYS: u32 = 16;
/// Examples of problems kept per thread.
const EXAMPLES: usize = 5;

/// A deliberate fault, for the negative controls: the checker must catch it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Plant {
    /// No fault: the real client's answers are judged.
    #[default]
    None,
    /// Now and then, answer a get with the first value this thread ever read for that key,
    /// as a client with a stale private cache would.
    Stale,
    /// Now and then, flip one byte of a value read.
    Wrong,
}

/// What one worker process is asked to do.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct StressParams {
    /// This process's number, `0..procs`.
    pub proc_id: u32,
    /// Processes in the run.
    pub procs: u32,
    /// Threads per process.
    pub threads: u32,
    /// Keys each thread owns.
    pub keys_per_writer: u32,
    /// How long to run, in ms.
    pub millis: u64,
    /// The floors file ([`Floors::create`]d by the test for `procs * threads *
    /// keys_per_writer` keys).
    pub floors: PathBuf,
    /// Seed of the operation mix (reported, so a failure can be rerun).
    pub seed: u64,
    /// A planted fault, for negative controls.
    #[serde(default)]
    pub plant: Plant,
    /// Each thread ends its run at its first failed operation: a test that stops the daemon
    /// mid-run then sees at most one operation per thread sent after the stop, instead of a
    /// stream of failed ones that leaves no key settled ([`Floors::settled`]).
    #[serde(default)]
    pub stop_at_first_error: bool,
}

impl StressParams {
    /// Writers (threads) in the whole run.
    pub fn writers(&self) -> u32 {
        self.procs * self.threads
    }

    /// Keys in the whole run.
    pub fn total_keys(&self) -> usize {
        self.writers() as usize * self.keys_per_writer as usize
    }
}

/// The counts of a run (one thread, one process, or all of them merged).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct StressReport {
    /// Gets.
    pub reads: u64,
    /// Gets that returned a value.
    pub hits: u64,
    /// Of those, served from the shared segment.
    pub segment_hits: u64,
    /// Of those, answered by the daemon (FETCH).
    pub daemon_hits: u64,
    /// Gets that missed.
    pub misses: u64,
    /// Acknowledged sets.
    pub writes: u64,
    /// Acknowledged deletes.
    pub deletes: u64,
    /// Acknowledged invalidations.
    pub invalidations: u64,
    /// Operations that returned an error.
    pub errors: u64,
    /// Hits older than an acknowledged write or invalidation.
    pub stale_reads: u64,
    /// Hits older than what the same thread had already seen.
    pub backwards_reads: u64,
    /// Hits with bytes never written under that key.
    pub wrong_values: u64,
    /// Faults planted (negative controls only).
    pub planted: u64,
    /// Request frames the process's client sent (HELLO included).
    pub requests: u64,
    /// The first few problems, in words.
    pub examples: Vec<String>,
}

impl StressReport {
    /// Stale plus backwards reads.
    pub fn violations(&self) -> u64 {
        self.stale_reads + self.backwards_reads
    }

    /// Adds `o`'s counts to these (keeping at most a few examples).
    pub fn merge(&mut self, o: &StressReport) {
        self.reads += o.reads;
        self.hits += o.hits;
        self.segment_hits += o.segment_hits;
        self.daemon_hits += o.daemon_hits;
        self.misses += o.misses;
        self.writes += o.writes;
        self.deletes += o.deletes;
        self.invalidations += o.invalidations;
        self.errors += o.errors;
        self.stale_reads += o.stale_reads;
        self.backwards_reads += o.backwards_reads;
        self.wrong_values += o.wrong_values;
        self.planted += o.planted;
        self.requests += o.requests;
        for e in &o.examples {
            if self.examples.len() < 4 * EXAMPLES {
                self.examples.push(e.clone());
            }
        }
    }

    fn note(&mut self, what: String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(what);
        }
    }
}

/// Runs the stress loop of one process with `client` and returns its merged report.
///
/// # Errors
/// When the floors file cannot be opened.
pub fn run(client: &Client, p: &StressParams) -> std::io::Result<StressReport> {
    let floors = Floors::open(&p.floors, p.total_keys())?;
    // The worker's own watchdog: a thread stuck in the client must not leave this process
    // running forever, whatever the test that drives it does.
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let limit = Duration::from_millis(p.millis) + Duration::from_secs(60);
    std::thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = done_rx.recv_timeout(limit) {
            eprintln!("cachekit-worker: the stress run did not end within {limit:?}; aborting");
            std::process::exit(3);
        }
    });
    let deadline = Instant::now() + Duration::from_millis(p.millis);
    let mut total = StressReport::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..p.threads)
            .map(|t| {
                let floors = &floors;
                s.spawn(move || Thread::new(client, p, floors, t).run(deadline))
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(r) => total.merge(&r),
                Err(_) => {
                    total.errors += 1;
                    total.note("a stress thread panicked".into());
                }
            }
        }
    });
    drop(done_tx);
    total.requests = client.request_count();
    Ok(total)
}

/// One thread: the only writer of its keys.
struct Thread<'a> {
    client: &'a Client,
    p: &'a StressParams,
    floors: &'a Floors,
    /// This thread's writer id.
    me: u32,
    rng: Rng,
    /// Newest version of each key this thread has seen (all keys of the run).
    last_seen: Vec<u64>,
    /// Newest version of each own key sent (acknowledged or not).
    sent: Vec<u64>,
    /// Plant::Stale: the first value read of each hot key.
    first_hits: HashMap<usize, Vec<u8>>,
    buf: Vec<u8>,
    report: StressReport,
}

impl<'a> Thread<'a> {
    fn new(client: &'a Client, p: &'a StressParams, floors: &'a Floors, t: u32) -> Thread<'a> {
        let me = p.proc_id * p.threads + t;
        Thread {
            client,
            p,
            floors,
            me,
            rng: Rng::new(p.seed ^ u64::from(me + 1).wrapping_mul(0xD6E8_FEB8_6659_FD93)),
            last_seen: vec![0; p.total_keys()],
            sent: vec![0; p.keys_per_writer as usize],
            first_hits: HashMap::new(),
            buf: Vec::new(),
            report: StressReport::default(),
        }
    }

    fn run(mut self, deadline: Instant) -> StressReport {
        while Instant::now() < deadline {
            if self.p.stop_at_first_error && self.report.errors > 0 {
                break;
            }
            let r = self.rng.below(100);
            if r < 65 {
                let w = self.rng.below(u64::from(self.p.writers())) as u32;
                let n = self.pick_key();
                self.read(w, n);
            } else if r < 91 {
                let n = self.pick_key();
                if self.write(n) && self.rng.one_in(4) {
                    self.read(self.me, n);
                }
            } else if r < 96 {
                self.invalidate();
            } else {
                let n = self.pick_key();
                self.delete(n);
            }
        }
        self.report
    }

    fn pick_key(&mut self) -> u32 {
        let keys = self.p.keys_per_writer;
        if self.rng.one_in(2) {
            self.rng.below(u64::from(keys.min(HOT_KEYS))) as u32
        } else {
            self.rng.below(u64::from(keys)) as u32
        }
    }

    fn index(&self, w: u32, n: u32) -> usize {
        w as usize * self.p.keys_per_writer as usize + n as usize
    }

    fn error(&mut self, what: String) {
        self.report.errors += 1;
        self.report.note(what);
    }

    fn read(&mut self, w: u32, n: u32) {
        let k = self.index(w, n);
        let key = key_name(w, n);
        let floor_before = self.floors.floor(k);
        let got = self.client.get_into(&key, &mut self.buf);
        let hi_after = self.floors.hi(k);
        self.report.reads += 1;
        let info = match got {
            Ok(Some(info)) => info,
            Ok(None) => {
                self.report.misses += 1;
                return;
            }
            Err(e) => return self.error(format!("get {key}: {e}")),
        };
        let mut bytes = std::mem::take(&mut self.buf);
        self.plant(k, n, &mut bytes);
        let verdict = check(&Read {
            key: &key,
            writer: w,
            floor_before,
            hi_after,
            last_seen: self.last_seen[k],
            hit: Some(&bytes),
            stale: info.stale,
        });
        self.buf = bytes;
        self.report.hits += 1;
        match info.source {
            Source::Segment => self.report.segment_hits += 1,
            Source::Daemon => self.report.daemon_hits += 1,
            Source::Computed => unreachable!("a get never computes"),
        }
        match verdict {
            Verdict::Hit(v) => self.last_seen[k] = self.last_seen[k].max(v),
            Verdict::Miss => unreachable!("a hit was judged"),
            Verdict::Wrong(e) => {
                self.report.wrong_values += 1;
                self.report.note(format!("wrong value: {e}"));
            }
            Verdict::Stale(e) => {
                self.report.stale_reads += 1;
                self.report
                    .note(format!("stale read ({:?}): {e}", info.source));
            }
            Verdict::Backwards(e) => {
                self.report.backwards_reads += 1;
                self.report
                    .note(format!("backwards read ({:?}): {e}", info.source));
            }
        }
    }

    /// The negative controls' faults, applied to what the client returned.
    fn plant(&mut self, k: usize, n: u32, bytes: &mut Vec<u8>) {
        match self.p.plant {
            Plant::None => {}
            Plant::Stale => {
                if n >= HOT_KEYS {
                    return;
                }
                match self.first_hits.get(&k) {
                    None => {
                        self.first_hits.insert(k, bytes.clone());
                    }
                    Some(old) if self.rng.one_in(8) => {
                        bytes.clone_from(old);
                        self.report.planted += 1;
                    }
                    Some(_) => {}
                }
            }
            Plant::Wrong => {
                if self.rng.one_in(200) && !bytes.is_empty() {
                    let i = bytes.len() / 2;
                    bytes[i] ^= 0x04;
                    self.report.planted += 1;
                }
            }
        }
    }

    fn write(&mut self, n: u32) -> bool {
        let k = self.index(self.me, n);
        let key = key_name(self.me, n);
        let version = self.sent[n as usize] + 1;
        self.sent[n as usize] = version;
        // Announce the version before it can be seen, so no reader takes it for a forgery.
        self.floors.raise_hi(k, version);
        self.floors.unsettle(k);
        let pad = match self.rng.below(100) {
            0..60 => 32 + self.rng.below(480),
            60..95 => 512 + self.rng.below(3584),
            _ => 4096 + self.rng.below(12288),
        } as usize;
        let v = value::encode(&key, self.me, version, pad);
        let opts = SetOptions::new().tag(tag_of(self.me, n));
        match self.client.set(&key, &v, &opts) {
            Ok(()) => {
                self.floors.raise_floor(k, version);
                self.floors.settle(k, version);
                self.report.writes += 1;
                true
            }
            Err(e) => {
                self.error(format!("set {key} version {version}: {e}"));
                false
            }
        }
    }

    fn invalidate(&mut self) {
        let n = self.pick_key();
        let g = n % GROUPS;
        let me = self.me;
        let group: Vec<u32> = (0..self.p.keys_per_writer)
            .filter(|m| m % GROUPS == g)
            .collect();
        let all: Vec<u32> = (0..self.p.keys_per_writer).collect();
        let (tag, exact, covered) = match self.rng.below(100) {
            0..45 => (tag_of(me, n), false, vec![n]),
            45..60 => (format!("w{me}/g{g}"), false, group),
            60..61 => (format!("w{me}"), false, all),
            61..95 => (tag_of(me, n), true, vec![n]),
            // Exact mode on a group tag: no entry carries exactly it, nothing is covered.
            _ => (format!("w{me}/g{g}"), true, Vec::new()),
        };
        for &m in &covered {
            self.floors.unsettle(self.index(me, m));
        }
        let r = if exact {
            self.client.invalidate_exact(&[&tag])
        } else {
            self.client.invalidate(&[&tag])
        };
        if let Err(e) = r {
            return self.error(format!("invalidate {tag} (exact: {exact}): {e}"));
        }
        self.report.invalidations += 1;
        for &m in &covered {
            // Every version sent so far is covered: a read from now on misses or sees a newer one.
            let k = self.index(me, m);
            self.floors.raise_floor(k, self.sent[m as usize] + 1);
        }
        let back = covered
            .get(self.rng.below(covered.len().max(1) as u64) as usize)
            .copied()
            .unwrap_or(n);
        self.read(me, back);
    }

    fn delete(&mut self, n: u32) {
        let k = self.index(self.me, n);
        let key = key_name(self.me, n);
        self.floors.unsettle(k);
        match self.client.delete(&key) {
            Ok(_) => {
                self.report.deletes += 1;
                self.floors.raise_floor(k, self.sent[n as usize] + 1);
                self.read(self.me, n);
            }
            Err(e) => self.error(format!("delete {key}: {e}")),
        }
    }
}

/// The name of key `n` of writer `w`.
pub fn key_name(w: u32, n: u32) -> String {
    format!("w{w}:k{n}")
}

/// The tag of key `n` of writer `w`.
pub fn tag_of(w: u32, n: u32) -> String {
    format!("w{w}/g{}/k{n}", n % GROUPS)
}
