//! Host-wide counters: a counters file (memfd) per client process, from its first HELLO
//! until it has exited and closed its last connection.
//!
//! Every connection of one process (by `SO_PEERCRED` pid) shares its file, so a client's
//! pooled connections coming and going (the idle timeout closes them) never take away the
//! file its segment reader counts into. The file is dropped (its descriptor closed, the
//! daemon's mapping unmapped) when its last connection has closed *and* the process has
//! exited (its pidfd, opened at the first HELLO, turns readable; checked on every heartbeat):
//! until then the process may still be counting hits into it. A peer whose pid is not
//! visible (0: another pid namespace) gets no file; when a pidfd cannot be opened (kernel
//! before 5.3, seccomp) its connections share the file as well, and it goes with the last
//! one. Past `CLIENT_RECORDS` processes (or when a memfd cannot be
//! made) a HELLO gets [`NO_RECORD`] and two descriptors: the connection works as any other,
//! its hits are just not counted host-wide. So the daemon holds at most `CLIENT_RECORDS`
//! files: two descriptors (memfd, pidfd) and a mapping of `COUNTERS_BYTES` each.
//!
//! When a file is dropped its counters are first folded into [`Slots`]' own totals, so
//! host-wide figures never go down when a client exits.
//!
//! Each file is sent to its own process only (with HELLO_OK, over that process's
//! connection), so what a client writes in it changes its own figures and nothing else: the
//! daemon sums its counters as untrusted numbers (saturating), never reads a length or an
//! offset from it (it maps the size it made, and the file is sealed against resizing), and
//! rewrites its header when it changed, counting that in `client_area_damaged` (as it does
//! for the shared client area's header, which every client may write).

use cachekit_shm::{ClientArea, CounterFile, RecordTallies, Tallies};
use std::collections::HashMap;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tracing::debug;

/// `client_slot` of a HELLO_OK that carries no counters file.
pub const NO_RECORD: u32 = u32::MAX;

/// Most counters files, one per client process.
const MAX_FILES: usize = cachekit_shm::layout::CLIENT_RECORDS as usize;

/// Most distinct namespace tags kept for the files of exited clients. Tags are written
/// by clients, so a hostile one could invent any number of them; past this many, what
/// they counted is kept as unattributed (still in the host total).
const MAX_FOLDED_TAGS: usize = 4096;

struct Owner {
    pid: u64,
    /// Open connections of this process.
    conns: u32,
    /// Readable once the process has exited; `None` when it could not be opened.
    pidfd: Option<OwnedFd>,
    file: Arc<CounterFile>,
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

    /// Whether the process may still count into its file: alive, or, when its exit cannot
    /// be seen (no pidfd: kernel before 5.3, or seccomp), while it has a connection open.
    /// Without the second case its next HELLO (a pooled connection) would get a new file
    /// while it keeps counting into the one it mapped first: those counts would be lost.
    fn holds_file(&self) -> bool {
        self.alive() || (self.pidfd.is_none() && self.conns > 0)
    }
}

/// The counts of records already freed.
#[derive(Default)]
struct Folded {
    by_tag: HashMap<u64, Tallies>,
    unattributed: Tallies,
}

/// Host-wide hits, stale hits and misses: every live file plus what exited clients had
/// counted.
#[derive(Clone, Debug, Default)]
pub struct HostTallies {
    /// Per namespace tag (see `ClientArea::namespace_tag`).
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
    area: ClientArea,
    /// The owner of each record number; `None` when free.
    owners: Mutex<Vec<Option<Owner>>>,
    damaged: AtomicU64,
    folded: Mutex<Folded>,
}

/// A connection's hold on its process's counters file; dropping it lets the file go once
/// the process has no connection left and has exited.
pub struct Lease {
    slots: Arc<Slots>,
    record: u32,
    file: Arc<CounterFile>,
}

impl Lease {
    pub fn record(&self) -> u32 {
        self.record
    }

    /// The counters file's descriptor, to send with HELLO_OK.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.fd()
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.slots.release(self.record, &self.file);
    }
}

impl Slots {
    pub fn new(area: ClientArea) -> Slots {
        Slots {
            area,
            owners: Mutex::new((0..MAX_FILES).map(|_| None).collect()),
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

    /// The counters file of process `pid`: the one it already has, else a new one under
    /// the lowest free record number; `None` when all are taken, the pid is not visible
    /// (0) or no memfd could be made.
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
            if o.holds_file() {
                o.conns += 1;
                let file = o.file.clone();
                return Some(self.lease(record, file));
            }
            // Its process exited (a new one has its pid, or a pid without pidfd came back
            // after its last connection closed): fold what it counted first.
            self.free(&mut owners, record);
        }
        let record = owners.iter().position(Option::is_none)?;
        let file = match CounterFile::create(pid, record as u32) {
            Ok(f) => Arc::new(f),
            Err(e) => {
                debug!(pid, error = %e, "no counters file for this client (its hits are not counted host-wide)");
                return None;
            }
        };
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
            file: file.clone(),
        });
        Some(self.lease(record, file))
    }

    fn lease(self: &Arc<Self>, record: usize, file: Arc<CounterFile>) -> Lease {
        Lease {
            slots: self.clone(),
            record: record as u32,
            file,
        }
    }

    fn release(&self, record: u32, file: &Arc<CounterFile>) {
        let mut owners = self.owners();
        // The record may have gone to another process meanwhile (this one exited and its
        // pid was reused): then this lease holds nothing of it.
        let Some(o) = owners
            .get_mut(record as usize)
            .and_then(Option::as_mut)
            .filter(|o| Arc::ptr_eq(&o.file, file))
        else {
            return;
        };
        o.conns = o.conns.saturating_sub(1);
        if !o.holds_file() {
            self.free(&mut owners, record as usize);
        }
    }

    /// Folds `record`'s counters into the totals and drops its file.
    fn free(&self, owners: &mut [Option<Owner>], record: usize) {
        let Some(o) = owners[record].take() else {
            return;
        };
        self.check(&o.file);
        let t = o.file.tallies();
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

    /// Counts `file` as damaged when its header is not what the daemon wrote (rewriting it).
    fn check(&self, file: &CounterFile) -> u64 {
        let bad = u64::from(!file.check_header());
        self.damaged.fetch_add(bad, Ordering::Relaxed);
        bad
    }

    /// Drops the files of processes that exited with no connection left, then checks the
    /// client area's header and every file's against what the daemon wrote, rewriting what
    /// differs; returns how many were damaged (each damage is counted once: it is repaired).
    pub fn audit(&self) -> u64 {
        let mut owners = self.owners();
        for record in 0..owners.len() {
            if owners[record]
                .as_ref()
                .is_some_and(|o| o.conns == 0 && !o.holds_file())
            {
                self.free(&mut owners, record);
            }
        }
        let area = u64::from(!self.area.check_header());
        self.damaged.fetch_add(area, Ordering::Relaxed);
        owners
            .iter()
            .flatten()
            .fold(area, |bad, o| bad + self.check(&o.file))
    }

    /// Headers found damaged since the start (the client area's and the counters files').
    pub fn damaged(&self) -> u64 {
        self.damaged.load(Ordering::Relaxed)
    }

    /// Client processes holding a counters file.
    pub fn in_use(&self) -> u64 {
        self.owners().iter().filter(|o| o.is_some()).count() as u64
    }

    /// Host-wide tallies: the live files, read as they are, plus the folded ones. Reads
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
        for o in owners.iter().flatten() {
            out.add_record(&o.file.tallies());
        }
        out
    }

    /// The tag clients count namespace `ns` under.
    pub fn namespace_tag(&self, ns: &str) -> u64 {
        self.area.namespace_tag(ns)
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
    /// so its file goes with its last connection.
    fn gone(i: u64) -> u64 {
        (1 << 22) + 1 + i
    }

    /// The inode of a lease's counters file.
    fn inode(l: &Lease) -> u64 {
        rustix::fs::fstat(l.fd()).expect("fstat").st_ino
    }

    /// Descriptors open in this process.
    fn open_fds() -> usize {
        std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .count()
    }

    /// Mappings of counters files in this process.
    fn counter_maps() -> usize {
        std::fs::read_to_string("/proc/self/maps")
            .expect("/proc/self/maps")
            .lines()
            .filter(|l| l.contains("memfd:cachekit-counters"))
            .count()
    }

    #[test]
    fn one_file_per_process_none_past_the_count_and_a_live_process_keeps_its_own() {
        let w = table();
        let slots = Arc::new(Slots::new(w.client_area()));
        let n = MAX_FILES as u64;
        let me = u64::from(std::process::id());
        let mine = slots.claim(me).expect("a file for this process");
        let again = slots.claim(me).expect("the same file again");
        assert_eq!(mine.record(), again.record());
        assert_eq!(
            inode(&mine),
            inode(&again),
            "a process's connections share its file"
        );
        let others: Vec<Lease> = (0..n - 1)
            .map(|i| slots.claim(gone(i)).expect("a file per process"))
            .collect();
        let mut all: Vec<u64> = others.iter().map(inode).collect();
        all.push(inode(&mine));
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len() as u64, n, "each process a file of its own");
        assert!(slots.claim(gone(n)).is_none(), "none past {n} processes");
        assert!(
            slots.claim(0).is_none(),
            "no file for a pid that is not visible"
        );

        // A process that is gone loses its file with its last connection; the lowest
        // free record number is handed out next.
        drop(others);
        assert_eq!(slots.in_use(), 1);
        assert_eq!(slots.claim(gone(999)).map(|l| l.record()), Some(1));

        // This process is alive: its file stays when its connections close.
        drop(mine);
        drop(again);
        slots.audit();
        assert!(
            slots.owners().iter().flatten().any(|o| o.pid == me),
            "a live process keeps its file with no connection open"
        );
        assert_eq!(slots.damaged(), 0);
    }

    /// A process whose pidfd cannot be opened (kernel before 5.3, seccomp) keeps its file
    /// while it has a connection open: a second connection gets the same file, not a new
    /// one (the client keeps counting into the file it mapped first).
    #[test]
    fn a_process_without_pidfd_keeps_its_file_while_connected() {
        let w = table();
        let slots = Arc::new(Slots::new(w.client_area()));
        let mut w = w;
        w.insert("a", b"k", b"v", &InsertOptions::default())
            .unwrap();
        let tag = slots.namespace_tag("a");
        let pid = gone(7);
        let first = slots.claim(pid).expect("a file");
        assert!(
            slots.owners()[first.record() as usize]
                .as_ref()
                .is_some_and(|o| o.pidfd.is_none()),
            "no pidfd for a pid no process has"
        );
        let mut r = w.reader();
        r.count_into(first.fd()).unwrap();
        assert!(r.get("a", b"k").is_some());

        let second = slots.claim(pid).expect("the same file again");
        assert_eq!(second.record(), first.record());
        assert_eq!(
            inode(&second),
            inode(&first),
            "a second connection shares the file the process counts into"
        );
        slots.audit();
        assert_eq!(slots.in_use(), 1, "kept while a connection is open");
        drop(first);
        slots.audit();
        assert_eq!(slots.in_use(), 1, "kept while a connection is open");
        assert!(r.get("a", b"k").is_some());
        assert_eq!(slots.host().by_tag[&tag].hits, 2, "no count lost");

        // Its last connection closes: the file goes, what it counted stays.
        drop(second);
        assert_eq!(slots.in_use(), 0);
        assert_eq!(slots.host().by_tag[&tag].hits, 2);
    }

    #[test]
    fn files_are_closed_and_unmapped_when_their_processes_are_gone() {
        let w = table();
        let slots = Arc::new(Slots::new(w.client_area()));
        let (fds, maps) = (open_fds(), counter_maps());
        for round in 0..20 {
            let leases: Vec<Lease> = (0..MAX_FILES as u64)
                .map(|i| slots.claim(gone(round * 1000 + i)).expect("a file"))
                .collect();
            assert_eq!(counter_maps(), maps + MAX_FILES);
            drop(leases);
            assert_eq!(slots.in_use(), 0);
        }
        assert_eq!(open_fds(), fds, "no descriptor left behind");
        assert_eq!(counter_maps(), maps, "no mapping left behind");
    }

    #[test]
    fn counts_survive_the_client_and_garbage_changes_only_its_own_figures() {
        let w = table();
        let slots = Arc::new(Slots::new(w.client_area()));
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
        r1.count_into(one.fd()).unwrap();
        let mut r2 = w.reader();
        r2.count_into(two.fd()).unwrap();
        for _ in 0..3 {
            assert!(r1.get("a", b"k").is_some());
        }
        assert!(r1.get("a", b"missing").is_none());
        assert!(r2.get("b", b"k").is_some());
        let host = slots.host();
        assert_eq!(host.by_tag[&tag_a].hits, 3);
        assert_eq!(host.by_tag[&tag_a].misses, 1);
        assert_eq!(host.by_tag[&tag_b].hits, 1);

        // Client one writes 0xff over every byte of its file (what its descriptor allows):
        // the sums saturate, client two's figures stay what they were, and the damaged
        // header is counted and rewritten.
        let garbage = vec![0xffu8; cachekit_shm::layout::COUNTERS_BYTES as usize];
        assert_eq!(
            rustix::io::pwrite(one.fd(), &garbage, 0).unwrap(),
            garbage.len()
        );
        let host = slots.host();
        assert_eq!(host.by_tag[&tag_b].hits, 1, "another client's figures");
        assert_eq!(host.total().hits, u64::MAX, "saturating, never wrapping");
        assert_eq!(slots.audit(), 1, "its header, rewritten");
        assert_eq!(slots.audit(), 0, "once");

        // Client two exits: what it counted stays in the host total.
        drop(two);
        drop(r2);
        assert_eq!(slots.host().by_tag[&tag_b].hits, 1);
        assert_eq!(slots.in_use(), 1);
    }
}
