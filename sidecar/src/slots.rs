//! Client-area records: one per client process, from its first HELLO until it has exited
//! and closed its last connection.
//!
//! Every connection of one process (by `SO_PEERCRED` pid) shares its record, so a client's
//! pooled connections coming and going (the idle timeout closes them) never take away the
//! record its segment reader counts into. The record is freed when its last connection has
//! closed *and* the process has exited (its pidfd, opened at the first HELLO, turns
//! readable; checked on every heartbeat): until then the process may still be counting
//! hits into it. A peer whose pid is not visible (0: another pid namespace) gets no record;
//! when a pidfd cannot be opened the record is freed with the last connection, as before.
//! Past `CLIENT_RECORDS` processes a HELLO gets [`NO_RECORD`]: the connection works as any
//! other, its hits are just not counted host-wide.
//!
//! When a record is freed its counters are folded into [`Slots`]' own totals (read with a
//! swap to 0 each), so host-wide figures never go down when a client exits.
//!
//! Who owns which record is kept here, in the daemon's memory; the records themselves are in
//! the client area, which every client may write. So they are checked, never trusted: a
//! record whose pid word is not what the daemon wrote (the owner's pid, or 0 when free), or a
//! client-area header that changed, is counted in `client_area_damaged` and rewritten. The
//! counters are summed as untrusted numbers (saturating), so a client that scribbles over
//! its own record changes its own figures and nothing else.

use cachekit_shm::{ClientRecords, RecordTallies, Tallies};
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// `client_slot` of a HELLO_OK when every record is taken.
pub const NO_RECORD: u32 = u32::MAX;

/// Most distinct namespace tags kept for the records of exited clients. Tags are written
/// by clients, so a hostile one could invent any number of them; past this many, what
/// they counted is kept as unattributed (still in the host total).
const MAX_FOLDED_TAGS: usize = 4096;

struct Owner {
    pid: u64,
    /// Open connections of this process.
    conns: u32,
    /// Readable once the process has exited; `None` when it could not be opened.
    pidfd: Option<OwnedFd>,
}

impl Owner {
    /// Whether the process may still use its record.
    fn alive(&self) -> bool {
        let Some(fd) = &self.pidfd else {
            return false;
        };
        let mut poll = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let now = rustix::time::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // An error is not a sign of life: free the record.
        matches!(rustix::event::poll(&mut poll, Some(&now)), Ok(0))
    }
}

/// The counts of records already freed.
#[derive(Default)]
struct Folded {
    by_tag: HashMap<u64, Tallies>,
    unattributed: Tallies,
}

/// Host-wide hits, stale hits and misses: every live record plus what exited clients had
/// counted.
#[derive(Clone, Debug, Default)]
pub struct HostTallies {
    /// Per namespace tag (see `ClientRecords::namespace_tag`).
    pub by_tag: HashMap<u64, Tallies>,
    /// Counted by clients without naming a namespace (more namespaces than slots).
    pub unattributed: Tallies,
}

impl HostTallies {
    fn add(&mut self, tag: u64, t: Tallies) {
        let e = self.by_tag.entry(tag).or_default();
        *e = e.saturating_add(t);
    }

    fn add_record(&mut self, r: &RecordTallies) {
        for &(tag, t) in &r.namespaces {
            self.add(tag, t);
        }
        self.unattributed = self.unattributed.saturating_add(r.unattributed);
    }

    /// Every namespace's and the unattributed counts together.
    pub fn total(&self) -> Tallies {
        self.by_tag
            .values()
            .fold(self.unattributed, |a, &t| a.saturating_add(t))
    }
}

pub struct Slots {
    records: ClientRecords,
    /// The owner of each record; `None` when free.
    owners: Mutex<Vec<Option<Owner>>>,
    damaged: AtomicU64,
    folded: Mutex<Folded>,
}

/// A connection's hold on its process's record; dropping it lets the record go once the
/// process has no connection left and has exited.
pub struct Lease {
    slots: Arc<Slots>,
    record: u32,
}

impl Lease {
    pub fn record(&self) -> u32 {
        self.record
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slots.release(self.record);
    }
}

impl Slots {
    pub fn new(records: ClientRecords) -> Slots {
        let n = records.count() as usize;
        Slots {
            records,
            owners: Mutex::new((0..n).map(|_| None).collect()),
            damaged: AtomicU64::new(0),
            folded: Mutex::default(),
        }
    }

    fn owners(&self) -> MutexGuard<'_, Vec<Option<Owner>>> {
        // A panic while holding this lock leaves the vector consistent (each change is one
        // assignment): go on with it.
        self.owners.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn folded(&self) -> MutexGuard<'_, Folded> {
        self.folded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The record of process `pid`: the one it already owns, else the lowest free one;
    /// `None` when all are taken or the pid is not visible (0).
    pub fn claim(self: &Arc<Self>, pid: u64) -> Option<Lease> {
        if pid == 0 {
            return None;
        }
        let mut owners = self.owners();
        if let Some(record) = owners
            .iter()
            .position(|o| o.as_ref().is_some_and(|o| o.pid == pid))
        {
            let o = owners[record].as_mut().expect("found above");
            if o.alive() {
                o.conns += 1;
                return Some(self.lease(record));
            }
            // Its process exited (a new one has its pid): fold what it counted first.
            self.free(&mut owners, record);
        }
        let record = owners.iter().position(Option::is_none)?;
        self.check(record as u32, 0);
        self.records.reset(record as u32, pid);
        let pidfd = i32::try_from(pid)
            .ok()
            .and_then(rustix::process::Pid::from_raw)
            .and_then(|p| {
                rustix::process::pidfd_open(p, rustix::process::PidfdFlags::empty()).ok()
            });
        owners[record] = Some(Owner {
            pid,
            conns: 1,
            pidfd,
        });
        Some(self.lease(record))
    }

    fn lease(self: &Arc<Self>, record: usize) -> Lease {
        Lease {
            slots: self.clone(),
            record: record as u32,
        }
    }

    fn release(&self, record: u32) {
        let mut owners = self.owners();
        let Some(o) = owners.get_mut(record as usize).and_then(Option::as_mut) else {
            return;
        };
        o.conns = o.conns.saturating_sub(1);
        if o.conns == 0 && !o.alive() {
            self.free(&mut owners, record as usize);
        }
    }

    /// Folds `record`'s counters into the totals and frees it.
    fn free(&self, owners: &mut [Option<Owner>], record: usize) {
        let pid = owners[record].as_ref().map_or(0, |o| o.pid);
        self.check(record as u32, pid);
        let t = self.records.tallies(record as u32, true);
        {
            let mut f = self.folded();
            for (tag, v) in t.namespaces {
                if f.by_tag.len() < MAX_FOLDED_TAGS || f.by_tag.contains_key(&tag) {
                    let e = f.by_tag.entry(tag).or_default();
                    *e = e.saturating_add(v);
                } else {
                    f.unattributed = f.unattributed.saturating_add(v);
                }
            }
            f.unattributed = f.unattributed.saturating_add(t.unattributed);
        }
        self.records.reset(record as u32, 0);
        owners[record] = None;
    }

    /// Counts `record` as damaged when its pid word is not `pid`.
    fn check(&self, record: u32, pid: u64) {
        if !self.records.holds(record, pid) {
            self.damaged.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Frees the records of processes that exited with no connection left, then checks the
    /// header and every record against what the daemon wrote, rewriting what differs;
    /// returns how many were damaged (each damage is counted once: it is repaired).
    pub fn audit(&self) -> u64 {
        let mut owners = self.owners();
        for record in 0..owners.len() {
            if owners[record]
                .as_ref()
                .is_some_and(|o| o.conns == 0 && !o.alive())
            {
                self.free(&mut owners, record);
            }
        }
        let mut bad = u64::from(!self.records.check_header());
        for (record, owner) in owners.iter().enumerate() {
            let pid = owner.as_ref().map_or(0, |o| o.pid);
            if !self.records.holds(record as u32, pid) {
                // Its counters go too: a record whose pid word is wrong is not believed.
                self.records.reset(record as u32, pid);
                bad += 1;
            }
        }
        self.damaged.fetch_add(bad, Ordering::Relaxed);
        bad
    }

    /// Records and headers found damaged since the start.
    pub fn damaged(&self) -> u64 {
        self.damaged.load(Ordering::Relaxed)
    }

    /// Records owned by a client process.
    pub fn in_use(&self) -> u64 {
        self.owners().iter().filter(|o| o.is_some()).count() as u64
    }

    /// Host-wide tallies: the live records, read as they are, plus the folded ones. Reads
    /// words only; never changes what a client sees.
    pub fn host(&self) -> HostTallies {
        let owners = self.owners();
        let mut out = HostTallies::default();
        {
            let f = self.folded();
            for (&tag, &t) in &f.by_tag {
                out.add(tag, t);
            }
            out.unattributed = f.unattributed;
        }
        for (record, owner) in owners.iter().enumerate() {
            if owner.is_some() {
                out.add_record(&self.records.tallies(record as u32, false));
            }
        }
        out
    }

    /// The tag clients write for namespace `ns`.
    pub fn namespace_tag(&self, ns: &str) -> u64 {
        self.records.namespace_tag(ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cachekit_shm::{Backing, InsertOptions, TableConfig, Writer};

    fn table() -> Writer {
        let cfg = TableConfig {
            arena_bytes: 4 << 20,
            ..TableConfig::default()
        };
        Writer::create(&cfg, Backing::Heap).expect("heap table")
    }

    /// A pid no process has (above the kernel's largest, 2^22): its pidfd cannot be opened,
    /// so its record goes with its last connection.
    fn gone(i: u64) -> u64 {
        (1 << 22) + 1 + i
    }

    #[test]
    fn one_record_per_process_none_past_the_count_and_a_live_process_keeps_its_own() {
        let w = table();
        let slots = Arc::new(Slots::new(w.client_records()));
        let n = w.client_records().count() as u64;
        let me = u64::from(std::process::id());
        let mine = slots.claim(me).expect("a record for this process");
        let again = slots.claim(me).expect("the same record again");
        assert_eq!(
            mine.record(),
            again.record(),
            "a process's connections share its record"
        );
        let others: Vec<Lease> = (0..n - 1)
            .map(|i| slots.claim(gone(i)).expect("a record per process"))
            .collect();
        let mut all: Vec<u32> = others.iter().map(Lease::record).collect();
        all.push(mine.record());
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len() as u64, n, "each process its own record");
        assert!(slots.claim(gone(n)).is_none(), "none past {n} processes");
        assert!(
            slots.claim(0).is_none(),
            "no record for a pid that is not visible"
        );

        // A process that is gone loses its record with its last connection; the lowest
        // free one is handed out next.
        drop(others);
        assert_eq!(slots.in_use(), 1);
        assert_eq!(slots.claim(gone(999)).map(|l| l.record()), Some(1));

        // This process is alive: its record stays when its connections close.
        drop(mine);
        drop(again);
        slots.audit();
        assert!(
            slots.owners()[0..].iter().flatten().any(|o| o.pid == me),
            "a live process keeps its record with no connection open"
        );
        assert_eq!(slots.damaged(), 0);
    }

    #[test]
    fn counts_survive_the_client_and_garbage_changes_only_its_own_figures() {
        let w = table();
        let slots = Arc::new(Slots::new(w.client_records()));
        let mut w = w;
        w.insert("a", b"k", b"v", &InsertOptions::default())
            .unwrap();
        w.insert("b", b"k", b"v", &InsertOptions::default())
            .unwrap();
        let tag_a = slots.namespace_tag("a");
        let tag_b = slots.namespace_tag("b");

        let one = slots.claim(gone(1)).unwrap();
        let two = slots.claim(gone(2)).unwrap();
        let mut r1 = w.reader();
        r1.count_into_record(one.record());
        let mut r2 = w.reader();
        r2.count_into_record(two.record());
        for _ in 0..3 {
            assert!(r1.get("a", b"k").is_some());
        }
        assert!(r1.get("a", b"missing").is_none());
        assert!(r2.get("b", b"k").is_some());
        let host = slots.host();
        assert_eq!(host.by_tag[&tag_a].hits, 3);
        assert_eq!(host.by_tag[&tag_a].misses, 1);
        assert_eq!(host.by_tag[&tag_b].hits, 1);

        // Client one scribbles the largest numbers over its counters: the sums saturate,
        // client two's figures stay what they were.
        let records = w.client_records();
        records.scribble_counters(one.record(), u64::MAX);
        let host = slots.host();
        assert_eq!(host.by_tag[&tag_b].hits, 1, "another client's figures");
        assert_eq!(host.total().hits, u64::MAX, "saturating, never wrapping");

        // Client two exits: what it counted stays in the host total.
        drop(two);
        drop(r2);
        assert_eq!(slots.host().by_tag[&tag_b].hits, 1);
        assert_eq!(slots.in_use(), 1);
    }
}
