//! The cross-host checker: writer processes on one host (daemon A), reader processes on
//! another (daemon B), both on one Redis, and a verdict on how old every value read on B was.
//!
//! Across hosts a read may return a value that was replaced a moment ago (the propagation
//! delay, see ARCHITECTURE "Bound on cross-host staleness"), so the same-host rule of
//! [`crate::checker`] (nothing older than an acknowledged write) does not apply. What is
//! judged instead is the **age** of each old value read: how long before the read started the
//! write or invalidation that replaced it had been acknowledged on A.
//!
//! - Every key has one writer thread. Before a set it announces the version (`hi`, as in the
//!   stress run); after an acknowledged set of version v it raises the key's floor to v, after
//!   an acknowledged invalidation of the key's tag to (latest version sent) + 1, and notes
//!   `(key, floor, time of the acknowledgement)` in its history ([`Superseded`]).
//! - A reader loads the floor before its get; a hit below it is an old read ([`OldRead`]:
//!   key, version, when the read started). Wrong bytes and a thread seeing a key go back to
//!   an older version are counted as in the stress run ([`crate::checker`]).
//! - [`ages`] joins the two: the age of an old read of version v is the read's start minus
//!   the time the first write or invalidation that superseded v was acknowledged.
//! - The writers also report the last acknowledged operation of every key, so a test can
//!   check at the end that none was lost (a fresh host reads exactly that from Redis).
//!
//! Operations are paced (`rate` per thread per second), so a test controls the write rate.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use cachekit_client::{Client, SetOptions};
use serde::{Deserialize, Serialize};

use crate::checker::{check, Read, Verdict};
use crate::floors::Floors;
use crate::stress::key_name;
use crate::{now_ms, value, Rng};

/// Old reads kept per reader thread (the counts go on past it).
const MAX_OLD_READS: usize = 200_000;
/// Examples of problems kept per thread.
const EXAMPLES: usize = 5;

/// What a worker process does in a cross-host run.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Writes its own keys (the writer threads of process `proc_id`).
    Writer,
    /// Reads every writer's keys.
    Reader,
}

/// What one worker process is asked to do.
#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct HostsParams {
    /// Writer or reader.
    pub role: Role,
    /// This process's number among the processes of its role.
    pub proc_id: u32,
    /// Writer processes in the run.
    pub writer_procs: u32,
    /// Threads of each writer process (every writer thread owns `keys_per_writer` keys).
    pub writer_threads: u32,
    /// Threads of this process.
    pub threads: u32,
    /// Keys each writer thread owns.
    pub keys_per_writer: u32,
    /// How long to run, in ms.
    pub millis: u64,
    /// Operations per second of each thread.
    pub rate: u32,
    /// The floors file ([`Floors::create`]d for every writer key).
    pub floors: PathBuf,
    /// Seed of the choices.
    pub seed: u64,
    /// TTL of the values written; `None`: no TTL (records live until replaced or swept).
    pub ttl_ms: Option<u64>,
    /// Tag every write with a tag never used before (`f/w<w>/k<n>/v<version>`), the workload
    /// that makes Redis's counter keys grow without a sweep; otherwise one tag per key.
    pub fresh_tags: bool,
    /// Percent of a writer's operations that invalidate the key's current tag.
    pub invalidate_pct: u32,
}

impl HostsParams {
    /// Writer threads in the run.
    pub fn writers(&self) -> u32 {
        self.writer_procs * self.writer_threads
    }

    /// Keys in the run.
    pub fn total_keys(&self) -> usize {
        self.writers() as usize * self.keys_per_writer as usize
    }
}

/// Versions of key `k` below `below` were replaced (or invalidated) from `at_ms` on.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superseded {
    /// Key index.
    pub k: u32,
    /// The floor after the acknowledgement.
    pub below: u64,
    /// Unix ms of the acknowledgement.
    pub at_ms: u64,
}

/// A read that returned a version below the floor loaded before it.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct OldRead {
    /// Key index.
    pub k: u32,
    /// The version returned.
    pub version: u64,
    /// Unix ms when the read started.
    pub at_ms: u64,
}

/// The last acknowledged operation of a key.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Last {
    /// Nothing acknowledged.
    Nothing,
    /// A set of this version.
    Set(u64),
    /// An invalidation (after the set of this version).
    Invalidated(u64),
}

/// What one process (or the whole run) did.
#[derive(Serialize, Deserialize, Clone, Debug, Default)]
pub struct HostsReport {
    /// Acknowledged sets.
    pub writes: u64,
    /// Acknowledged invalidations.
    pub invalidations: u64,
    /// Gets.
    pub reads: u64,
    /// Gets that returned a value.
    pub hits: u64,
    /// Hits below the floor loaded before them (judged by age, [`ages`]).
    pub old_reads: u64,
    /// Hits with bytes never written under that key.
    pub wrong_values: u64,
    /// Hits older than what the same thread had already seen.
    pub backwards_reads: u64,
    /// Operations that returned an error.
    pub errors: u64,
    /// Writers: when each version was superseded.
    pub history: Vec<Superseded>,
    /// Readers: the old reads (at most `MAX_OLD_READS` per thread).
    pub old: Vec<OldRead>,
    /// Writers: (key index, last acknowledged operation).
    pub last: Vec<(u32, Last)>,
    /// The first few problems, in words.
    pub examples: Vec<String>,
}

impl HostsReport {
    /// Adds `o` to this report.
    pub fn merge(&mut self, o: HostsReport) {
        self.writes += o.writes;
        self.invalidations += o.invalidations;
        self.reads += o.reads;
        self.hits += o.hits;
        self.old_reads += o.old_reads;
        self.wrong_values += o.wrong_values;
        self.backwards_reads += o.backwards_reads;
        self.errors += o.errors;
        self.history.extend(o.history);
        self.old.extend(o.old);
        self.last.extend(o.last);
        for e in o.examples {
            if self.examples.len() < 4 * EXAMPLES {
                self.examples.push(e);
            }
        }
    }

    fn note(&mut self, what: String) {
        if self.examples.len() < EXAMPLES {
            self.examples.push(what);
        }
    }
}

/// The age of every old read, `(read start, age)` in ms, sorted by read start: how long
/// before the read the value it returned had been replaced (its superseding write or
/// invalidation acknowledged). Reads the history cannot explain get `u64::MAX` (they were
/// older than anything the writers had superseded: a checker bug or a lost write).
pub fn ages(history: &[Superseded], old: &[OldRead]) -> Vec<(u64, u64)> {
    let mut by_key: HashMap<u32, Vec<(u64, u64)>> = HashMap::new();
    for s in history {
        by_key.entry(s.k).or_default().push((s.below, s.at_ms));
    }
    for v in by_key.values_mut() {
        v.sort_unstable();
    }
    let mut out: Vec<(u64, u64)> = old
        .iter()
        .map(|r| {
            // The first acknowledgement that raised the floor above the version read: floors
            // only rise, so in `below` order the times are in order too.
            let superseded = by_key.get(&r.k).and_then(|v| {
                let i = v.partition_point(|&(below, _)| below <= r.version);
                v.get(i).map(|&(_, at)| at)
            });
            match superseded {
                Some(at) => (r.at_ms, r.at_ms.saturating_sub(at)),
                None => (r.at_ms, u64::MAX),
            }
        })
        .collect();
    out.sort_unstable();
    out
}

/// Runs one process of a cross-host run with `client` (connected to its host's daemon).
///
/// # Errors
/// When the floors file cannot be opened.
pub fn run(client: &Client, p: &HostsParams) -> std::io::Result<HostsReport> {
    let floors = Floors::open(&p.floors, p.total_keys())?;
    let deadline = Instant::now() + Duration::from_millis(p.millis);
    let mut total = HostsReport::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..p.threads)
            .map(|t| {
                let floors = &floors;
                s.spawn(move || match p.role {
                    Role::Writer => Writer::new(client, p, floors, t).run(deadline),
                    Role::Reader => reader(client, p, floors, t, deadline),
                })
            })
            .collect();
        for h in handles {
            match h.join() {
                Ok(r) => total.merge(r),
                Err(_) => {
                    total.errors += 1;
                    total.note("a thread panicked".into());
                }
            }
        }
    });
    Ok(total)
}

/// Sleeps until the `i`-th tick of a `rate`-per-second schedule started at `start`; a thread
/// more than 100 ms behind skips the missed ticks instead of bursting.
fn pace(start: Instant, i: &mut u64, rate: u32) {
    let tick = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let due = start + tick.mul_f64(*i as f64);
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    } else if now - due > Duration::from_millis(100) {
        *i = ((now - start).as_secs_f64() / tick.as_secs_f64()) as u64;
    }
    *i += 1;
}

struct Writer<'a> {
    client: &'a Client,
    p: &'a HostsParams,
    floors: &'a Floors,
    me: u32,
    rng: Rng,
    sent: Vec<u64>,
    last: Vec<Last>,
    report: HostsReport,
}

impl<'a> Writer<'a> {
    fn new(client: &'a Client, p: &'a HostsParams, floors: &'a Floors, t: u32) -> Writer<'a> {
        let me = p.proc_id * p.writer_threads + t;
        Writer {
            client,
            p,
            floors,
            me,
            rng: Rng::new(p.seed ^ u64::from(me + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            sent: vec![0; p.keys_per_writer as usize],
            last: vec![Last::Nothing; p.keys_per_writer as usize],
            report: HostsReport::default(),
        }
    }

    fn tag(&self, n: u32, version: u64) -> String {
        if self.p.fresh_tags {
            format!("f/w{}/k{n}/v{version}", self.me)
        } else {
            format!("w{}/k{n}", self.me)
        }
    }

    fn run(mut self, deadline: Instant) -> HostsReport {
        let start = Instant::now();
        let mut tick = 0;
        let mut n = 0;
        while Instant::now() < deadline {
            pace(start, &mut tick, self.p.rate);
            n = (n + 1) % self.p.keys_per_writer;
            let invalidate =
                self.sent[n as usize] > 0 && self.rng.below(100) < u64::from(self.p.invalidate_pct);
            if invalidate {
                self.invalidate(n);
            } else {
                self.set(n);
            }
        }
        let base = self.me * self.p.keys_per_writer;
        self.report.last = self
            .last
            .iter()
            .enumerate()
            .map(|(n, l)| (base + n as u32, *l))
            .collect();
        self.report
    }

    fn set(&mut self, n: u32) {
        let k = (self.me * self.p.keys_per_writer + n) as usize;
        let key = key_name(self.me, n);
        let version = self.sent[n as usize] + 1;
        self.sent[n as usize] = version;
        self.floors.raise_hi(k, version);
        let v = value::encode(&key, self.me, version, 64);
        let mut opts = SetOptions::new().tag(self.tag(n, version));
        if let Some(ttl) = self.p.ttl_ms {
            opts = opts.ttl(Duration::from_millis(ttl));
        }
        match self.client.set(&key, &v, &opts) {
            Ok(()) => {
                let at_ms = now_ms();
                self.floors.raise_floor(k, version);
                self.report.writes += 1;
                self.report.history.push(Superseded {
                    k: k as u32,
                    below: version,
                    at_ms,
                });
                self.last[n as usize] = Last::Set(version);
            }
            Err(e) => {
                self.report.errors += 1;
                self.report
                    .note(format!("set {key} version {version}: {e}"));
            }
        }
    }

    fn invalidate(&mut self, n: u32) {
        let k = (self.me * self.p.keys_per_writer + n) as usize;
        let version = self.sent[n as usize];
        let tag = self.tag(n, version);
        match self.client.invalidate(&[&tag]) {
            Ok(()) => {
                let at_ms = now_ms();
                self.floors.raise_floor(k, version + 1);
                self.report.invalidations += 1;
                self.report.history.push(Superseded {
                    k: k as u32,
                    below: version + 1,
                    at_ms,
                });
                // An invalidation after an unacknowledged set covers it too.
                self.last[n as usize] = Last::Invalidated(version);
            }
            Err(e) => {
                self.report.errors += 1;
                self.report.note(format!("invalidate {tag}: {e}"));
            }
        }
    }
}

fn reader(
    client: &Client,
    p: &HostsParams,
    floors: &Floors,
    t: u32,
    deadline: Instant,
) -> HostsReport {
    let mut report = HostsReport::default();
    let mut rng = Rng::new(p.seed ^ u64::from(1000 + p.proc_id * p.threads + t));
    let mut last_seen = vec![0u64; p.total_keys()];
    let mut buf = Vec::new();
    let start = Instant::now();
    let mut tick = 0;
    while Instant::now() < deadline {
        pace(start, &mut tick, p.rate);
        let w = rng.below(u64::from(p.writers())) as u32;
        let n = rng.below(u64::from(p.keys_per_writer)) as u32;
        let k = (w * p.keys_per_writer + n) as usize;
        let key = key_name(w, n);
        let floor_before = floors.floor(k);
        let at_ms = now_ms();
        let got = client.get_into(&key, &mut buf);
        let hi_after = floors.hi(k);
        report.reads += 1;
        let info = match got {
            Ok(Some(info)) => info,
            Ok(None) => continue,
            Err(e) => {
                report.errors += 1;
                report.note(format!("get {key}: {e}"));
                continue;
            }
        };
        report.hits += 1;
        // Judged without the floor (old reads are measured by age, not refused).
        let verdict = check(&Read {
            key: &key,
            writer: w,
            floor_before: 0,
            hi_after,
            last_seen: last_seen[k],
            hit: Some(&buf),
            stale: info.stale && p.ttl_ms.is_none(),
        });
        match verdict {
            Verdict::Hit(v) => {
                last_seen[k] = last_seen[k].max(v);
                if v < floor_before {
                    report.old_reads += 1;
                    if report.old.len() < MAX_OLD_READS {
                        report.old.push(OldRead {
                            k: k as u32,
                            version: v,
                            at_ms,
                        });
                    }
                }
            }
            Verdict::Wrong(e) => {
                report.wrong_values += 1;
                report.note(format!("wrong value: {e}"));
            }
            Verdict::Backwards(e) => {
                report.backwards_reads += 1;
                report.note(format!("backwards read ({:?}): {e}", info.source));
            }
            Verdict::Miss | Verdict::Stale(_) => unreachable!("a hit judged without a floor"),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_age_of_an_old_read_is_counted_from_the_first_write_that_replaced_it() {
        let history = [
            Superseded {
                k: 1,
                below: 2,
                at_ms: 1000,
            },
            Superseded {
                k: 1,
                below: 3,
                at_ms: 1500,
            },
            Superseded {
                k: 2,
                below: 5,
                at_ms: 900,
            },
        ];
        let old = [
            OldRead {
                k: 1,
                version: 1,
                at_ms: 2000,
            },
            OldRead {
                k: 1,
                version: 2,
                at_ms: 1600,
            },
            OldRead {
                k: 2,
                version: 5,
                at_ms: 950,
            },
        ];
        assert_eq!(
            ages(&history, &old),
            vec![(950, u64::MAX), (1600, 100), (2000, 1000)]
        );
    }
}
