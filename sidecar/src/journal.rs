//! The failed-write journal, daemon side: the writes clients could not deliver while no daemon
//! was running are applied to the table before any client can see it (the format, and why
//! every record is safe to apply, are in `cachekit_proto::journal`; the client side is
//! `libclient/src/journal.rs`).
//!
//! - [`prepare`] makes `<dir>/<instance>.journal/` (mode 1733: create-only for others, sticky,
//!   so nobody but this daemon lists or removes another's files).
//! - `main.rs` takes the lock exclusively ([`lock_exclusive`], which makes a new lock file
//!   each start, 0660 with a writer group or 0600: only the daemon's user and the writers can
//!   open it, so nobody else can stall a start) once the previous daemon's clients have been
//!   waited out, binds the socket, calls [`apply`], then releases the lock and only then
//!   accepts connections (HELLO, which hands out the table, comes after). Without the lock
//!   (held past [`LOCK_WAIT`]) the start goes cold ([`without_lock`]).
//! - Bounds: at most [`MAX_ENTRIES`] directory entries are examined and [`MAX_TOTAL_BYTES`]
//!   read; a journal larger than that empties the table (a start stays bounded whatever is
//!   planted in the directory).
//! - Who is trusted: a file is honoured only if its owner uid is a writer uid, its group a
//!   writer gid, or its owner a member of a writer gid (by `/etc/passwd` and `/etc/group`),
//!   all read with fstat on the opened file (the owner cannot be forged; a group can only be
//!   given by a member of it). Any other file is ignored, counted and removed. A writer's
//!   file that cannot be read, or that is damaged, empties the table (its records are unknown,
//!   and every record only drops).

use crate::table::SharedTable;
use cachekit_proto::journal::{
    decode_file, JournalEnd, JournalRecord, JOURNAL_DIR_SUFFIX, JOURNAL_LOCK_SUFFIX,
    MAX_RECORD_BODY,
};
use cachekit_shm::InvalidateMode;
use rustix::fs::{FileType, FlockOperation, Mode, OFlags};
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// The most a journal file is read: the client's hard cap and one more record, with room.
const MAX_FILE_BYTES: u64 = 4 << 20;
/// The most directory entries a start examines (files of writers and anything else): one
/// file per client process that failed a write while no daemon ran, far more than a host has;
/// past it the start is cold.
pub const MAX_ENTRIES: u64 = 16_384;
/// The most bytes of journal files a start reads (about 230 clients at their hard cap); past it
/// the start is cold.
pub const MAX_TOTAL_BYTES: u64 = 256 << 20;
/// How long a start spends removing entries past [`MAX_ENTRIES`] (those left are removed by
/// later starts).
const REMOVE_BUDGET: Duration = Duration::from_secs(2);
/// How long the daemon waits for clients holding the lock shared (each holds it for one
/// append and fsync) before it goes on without it.
pub const LOCK_WAIT: Duration = Duration::from_secs(10);

fn dir_of(dir: &Path, instance: &str) -> PathBuf {
    dir.join(format!("{instance}{JOURNAL_DIR_SUFFIX}"))
}

fn lock_of(dir: &Path, instance: &str) -> PathBuf {
    dir.join(format!("{instance}{JOURNAL_LOCK_SUFFIX}"))
}

/// Makes the journal directory of `instance` in `dir`. `Err`: the journal cannot be used (the
/// message says why); the daemon runs without it. The lock file is made by [`lock_exclusive`].
pub fn prepare(dir: &Path, instance: &str) -> Result<(), String> {
    let jdir = dir_of(dir, instance);
    let me = rustix::process::geteuid();
    match rustix::fs::lstat(&jdir) {
        Err(rustix::io::Errno::NOENT) => {
            rustix::fs::mkdir(&jdir, Mode::from_raw_mode(0o1733))
                .map_err(|e| format!("creating {}: {e}", jdir.display()))?;
        }
        Err(e) => return Err(format!("{}: {e}", jdir.display())),
        Ok(st) => {
            if FileType::from_raw_mode(st.st_mode) != FileType::Directory
                || st.st_uid != me.as_raw()
            {
                return Err(format!(
                    "{} is not a directory owned by this daemon's user (uid {}): failed writes cannot be journaled; remove it and restart",
                    jdir.display(),
                    me.as_raw()
                ));
            }
        }
    }
    // The mode exactly, whatever the umask.
    rustix::fs::chmod(&jdir, Mode::from_raw_mode(0o1733))
        .map_err(|e| format!("setting the mode of {}: {e}", jdir.display()))?;
    Ok(())
}

/// How long [`lock_exclusive`] waits for each lock: [`LOCK_WAIT`], or in a build with debug
/// assertions `CACHEKIT_TEST_JOURNAL_LOCK_WAIT_MS` (test-only, see `testhook.rs`).
fn lock_wait() -> Duration {
    crate::testhook::millis("CACHEKIT_TEST_JOURNAL_LOCK_WAIT_MS").unwrap_or(LOCK_WAIT)
}

/// `flock(LOCK_EX)` on `fd`, retried for at most `wait`.
fn flock_exclusive(fd: &OwnedFd, wait: Duration) -> Result<(), rustix::io::Errno> {
    let start = Instant::now();
    loop {
        match rustix::fs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(()),
            Err(_) if start.elapsed() < wait => std::thread::sleep(Duration::from_millis(2)),
            Err(e) => return Err(e),
        }
    }
}

/// The group and mode of a new journal lock: only the daemon's user and the writers open it
/// (anyone who can open a file can flock it, and a lock held by a stranger would stall starts).
/// Group access only through a writer gid this daemon can give the file (its own, or any when
/// root); without one, 0600. Writers that cannot open the lock journal without it (see
/// `libclient/src/journal.rs`: they append first and look for a daemon after).
fn lock_group(fd: &OwnedFd, writers: Writers<'_>) -> Mode {
    let mine = rustix::process::getegid().as_raw();
    // Set explicitly even for our own group: a set-group-ID runtime directory gives new files
    // its group, which need not be a writer group.
    let first = writers.gids.contains(&mine).then_some(mine);
    for g in first.into_iter().chain(writers.gids.iter().copied()) {
        if rustix::fs::fchown(fd, None, Some(rustix::fs::Gid::from_raw(g))).is_ok() {
            return Mode::from_raw_mode(0o660);
        }
    }
    Mode::from_raw_mode(0o600)
}

/// Takes the journal lock exclusively (clients appending hold it shared for an append and an
/// fsync), each wait bounded by [`LOCK_WAIT`]. The lock file is replaced by a new one each time
/// (made 0600, locked, then given its group and mode, renamed over the old), after the old one
/// is locked exclusively: a descriptor of the old file someone kept (opened while it had a
/// wider mode, or while its owner was a writer) locks nothing that matters any more, and a
/// client that locked the old file finds it replaced and takes the lockless path.
///
/// `Err(why)`: the lock could not be had (held past the wait, or not made). The caller must
/// then not serve a carried entry the journal may contradict: [`without_lock`].
pub fn lock_exclusive(dir: &Path, instance: &str, writers: Writers<'_>) -> Result<OwnedFd, String> {
    lock_within(dir, instance, writers, lock_wait())
}

/// [`lock_exclusive`], each wait bounded by `wait`.
fn lock_within(
    dir: &Path,
    instance: &str,
    writers: Writers<'_>,
    wait: Duration,
) -> Result<OwnedFd, String> {
    let lock = lock_of(dir, instance);
    let old = match rustix::fs::open(
        &lock,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Some(fd),
        Err(rustix::io::Errno::NOENT) => None,
        Err(e) => {
            return Err(format!(
                "cannot open the journal lock {} ({e})",
                lock.display()
            ))
        }
    };
    // Not returned at once when it fails: the new file is installed all the same, so a
    // descriptor of the old one kept by whoever holds it stalls this start only.
    let old_locked = match &old {
        Some(old) => flock_exclusive(old, wait).map_err(|e| {
            format!(
                "the journal lock {} is still held after {wait:?} ({e}): a client may be appending a failed write",
                lock.display()
            )
        }),
        None => Ok(()),
    };
    let fresh = dir.join(format!("{instance}{JOURNAL_LOCK_SUFFIX}.new"));
    let _ = rustix::fs::unlink(&fresh);
    let fd = rustix::fs::open(
        &fresh,
        OFlags::RDONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .map_err(|e| format!("creating the journal lock {} ({e})", fresh.display()))?;
    // Nobody else has it open yet (0600, just made): this cannot fail for long.
    flock_exclusive(&fd, wait)
        .map_err(|e| format!("locking the new journal lock {} ({e})", fresh.display()))?;
    let mode = lock_group(&fd, writers);
    rustix::fs::fchmod(&fd, mode)
        .and_then(|()| rustix::fs::rename(&fresh, &lock))
        .map_err(|e| format!("installing the journal lock {} ({e})", lock.display()))?;
    // Released only now: a client waiting on the old file gets it after the rename, sees that
    // the path names another file, and takes the lockless path.
    drop(old);
    old_locked.map(|()| fd)
}

/// Called when [`lock_exclusive`] failed (`why`), after [`apply`]: a client holding the lock
/// may still be appending a failed write that this start did not read, so no carried entry may
/// be served: every entry is dropped (the start is cold), unless there is no journal at all
/// (then no client could have journaled). Returns whether the table was emptied.
pub fn without_lock(dir: &Path, instance: &str, table: &SharedTable, why: &str) -> bool {
    if !exists(dir, instance) {
        return false;
    }
    warn!("{why}: starting cold (every carried entry is dropped; a write failing right now could otherwise be missed)");
    table.change(|t| t.clear_all());
    true
}

/// What applying the journal did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Files read and honoured.
    pub files: u64,
    /// Records applied.
    pub records: u64,
    /// Files ignored: not owned by a writer uid nor of a writer group.
    pub not_writer: u64,
    /// Files ignored: not regular files, or unreadable.
    pub unusable: u64,
    /// Files whose last record was torn (its write never returned success to its caller).
    pub torn: u64,
    /// Writers' files with a damaged record, not in the journal format, or too long: the
    /// records before the damage were applied, and then every entry dropped.
    pub damaged: u64,
    /// Entries past [`MAX_ENTRIES`] or [`MAX_TOTAL_BYTES`]: not read, removed (within
    /// [`REMOVE_BUDGET`]), and every entry dropped.
    pub over_limit: u64,
    /// Why every entry was dropped ("clear all"), when the journal could not be read whole:
    /// a failed write it may hold could otherwise be served stale.
    pub cleared: Option<String>,
    /// What was dropped, for the Redis tier to drop too (`tier/drops.rs`).
    pub drops: Drops,
}

/// Per namespace, the most keys and invalidations [`Drops`] keeps before it asks for a clear
/// of the namespace instead (wider, so still safe; it keeps the Redis queue short).
pub const MAX_DROPS_PER_NAMESPACE: usize = 1000;

/// What applying the journal dropped from the table, for a daemon with a Redis tier to drop
/// from Redis too: the clients that journaled these writes did not reach Redis either (unless
/// they have the direct fallback), so without it the read-through, and every other host, would
/// serve what the records removed. Every item only drops, so sending it late or twice is safe.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Drops {
    /// Per namespace named by a record, what to drop there.
    pub namespaces: std::collections::BTreeMap<String, NamespaceDrops>,
    /// Every namespace goes: a clear-all record, or the journal could not be read whole (its
    /// lost records could have dropped anything). The tier clears every namespace the table
    /// carried and every one named here.
    pub everything: bool,
}

/// What to drop in one namespace.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NamespaceDrops {
    /// The whole namespace (a clear record, or more than [`MAX_DROPS_PER_NAMESPACE`] items).
    pub clear: bool,
    /// Keys to delete (empty once `clear`).
    pub keys: std::collections::BTreeSet<Vec<u8>>,
    /// Invalidations: the tags and whether exactly (empty once `clear`).
    pub invalidations: Vec<(Vec<String>, bool)>,
}

impl NamespaceDrops {
    fn widen(&mut self) {
        self.clear = true;
        self.keys.clear();
        self.invalidations.clear();
    }

    fn too_many(&self) -> bool {
        self.keys.len() + self.invalidations.len() > MAX_DROPS_PER_NAMESPACE
    }
}

impl Drops {
    /// Notes record `r`.
    pub fn add(&mut self, r: &JournalRecord) {
        let Some(ns) = r.namespace() else {
            self.everything = true;
            return;
        };
        let d = self.namespaces.entry(ns.to_owned()).or_default();
        if d.clear {
            return;
        }
        match r {
            JournalRecord::DropKey { key, .. } => {
                d.keys.insert(key.clone());
            }
            JournalRecord::Invalidate { tags, exact, .. } => {
                if !d.invalidations.iter().any(|(t, e)| t == tags && e == exact) {
                    d.invalidations.push((tags.clone(), *exact));
                }
            }
            JournalRecord::ClearNamespace { .. } | JournalRecord::ClearAll => d.widen(),
        }
        if d.too_many() {
            d.widen();
        }
    }

    /// Whether there is nothing to drop.
    pub fn is_empty(&self) -> bool {
        !self.everything && self.namespaces.is_empty()
    }
}

/// Who may write: the daemon's `writer_uids` and `writer_gids`.
#[derive(Clone, Copy)]
pub struct Writers<'a> {
    pub uids: &'a [u32],
    pub gids: &'a [u32],
}

/// Whether something is at the journal directory's path of `instance` in `dir` (an error other
/// than "not found" counts as something: clients may have journaled there).
pub fn exists(dir: &Path, instance: &str) -> bool {
    !matches!(
        rustix::fs::lstat(dir_of(dir, instance)),
        Err(rustix::io::Errno::NOENT)
    )
}

/// Drops every entry of `table` because the journal could not be read whole (`why`), and
/// records it in `report`.
fn clear_all(table: &SharedTable, report: &mut Report, why: String) {
    warn!(
        "{why}: every entry is dropped (the journal may hold failed writes of entries it carried)"
    );
    table.change(|t| t.clear_all());
    report.drops.everything = true;
    report.cleared.get_or_insert(why);
}

/// Applies every honoured journal file of `instance` to `table` and removes the files. Never
/// fails: what cannot be read is counted and logged; a journal directory that exists but
/// cannot be opened or listed empties the table (its failed writes are unknown).
pub fn apply(dir: &Path, instance: &str, writers: Writers<'_>, table: &SharedTable) -> Report {
    apply_trusting(
        dir,
        instance,
        &mut Trust::new(writers),
        table,
        Limits::DEFAULT,
    )
}

/// How much of the journal a start reads.
#[derive(Clone, Copy)]
struct Limits {
    entries: u64,
    bytes: u64,
}

impl Limits {
    const DEFAULT: Limits = Limits {
        entries: MAX_ENTRIES,
        bytes: MAX_TOTAL_BYTES,
    };
}

fn apply_trusting(
    dir: &Path,
    instance: &str,
    trust: &mut Trust<'_>,
    table: &SharedTable,
    limits: Limits,
) -> Report {
    let mut report = Report::default();
    let jdir = dir_of(dir, instance);
    let dirfd = match rustix::fs::open(
        &jdir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        // No journal at all (it could not be made): no client could journal a failed write.
        Err(rustix::io::Errno::NOENT) => return report,
        Err(e) => {
            let why = format!("cannot open the journal {} ({e})", jdir.display());
            clear_all(table, &mut report, why);
            return report;
        }
    };
    let entries = match std::fs::read_dir(&jdir) {
        Ok(rd) => rd,
        Err(e) => {
            let why = format!("cannot list the journal {} ({e})", jdir.display());
            clear_all(table, &mut report, why);
            return report;
        }
    };
    let started = Instant::now();
    let mut examined = 0u64;
    let mut read_bytes = 0u64;
    for entry in entries {
        let name = match entry {
            Ok(e) => e.file_name(),
            Err(e) => {
                let why = format!("cannot list the journal {} ({e})", jdir.display());
                clear_all(table, &mut report, why);
                break;
            }
        };
        let name = name.as_os_str();
        examined += 1;
        if examined > limits.entries || read_bytes > limits.bytes {
            // More than any set of clients writes: nothing more is read (a start stays
            // bounded), and what was not read may have dropped anything.
            if report.over_limit == 0 {
                let why = format!(
                    "the journal {} holds more than {} entries or {} bytes",
                    jdir.display(),
                    limits.entries,
                    limits.bytes
                );
                clear_all(table, &mut report, why);
            }
            report.over_limit += 1;
            // Removed while the time allows; the rest waits for the next start (which will
            // be cold again if it is still too many).
            if started.elapsed() > REMOVE_BUDGET {
                break;
            }
            let _ = rustix::fs::unlinkat(&dirfd, name, rustix::fs::AtFlags::empty());
            continue;
        }
        match read_one(&dirfd, name, trust) {
            Ok(bytes) => {
                read_bytes += bytes.len() as u64;
                let (records, end) = match bytes.len() as u64 > MAX_FILE_BYTES {
                    // Larger than any client writes: what follows the cut is unknown.
                    true => (Vec::new(), JournalEnd::Bad),
                    false => decode_file(&bytes),
                };
                report.files += 1;
                report.records += records.len() as u64;
                table.change(|t| {
                    for r in &records {
                        apply_record(t, r);
                    }
                });
                for r in &records {
                    report.drops.add(r);
                }
                match end {
                    JournalEnd::Clean => {}
                    JournalEnd::Torn => report.torn += 1,
                    JournalEnd::Bad | JournalEnd::NotAJournal => {
                        // Records after the damage are unknown, and every record only drops:
                        // dropping everything is the reading that cannot serve a stale entry.
                        report.damaged += 1;
                        let why = format!(
                            "the journal file {name:?} of a writer is damaged after {} record(s)",
                            records.len()
                        );
                        clear_all(table, &mut report, why);
                    }
                }
            }
            Err(Skip::NotWriter { uid, gid }) => {
                report.not_writer += 1;
                warn!(file = ?name, uid, gid, "ignored a journal file whose owner is not a writer (writer_uids / writer_gids)");
            }
            Err(Skip::Unusable(why)) => {
                report.unusable += 1;
                warn!(file = ?name, "ignored a journal entry: {why}");
            }
            Err(Skip::Unreadable(why)) => {
                // A writer's records that cannot be read: as if the file were damaged.
                report.damaged += 1;
                let why = format!("the journal file {name:?} of a writer cannot be read ({why})");
                clear_all(table, &mut report, why);
            }
        }
        // Applied or not to be trusted: either way it is done with.
        let _ = rustix::fs::unlinkat(&dirfd, name, rustix::fs::AtFlags::empty());
    }
    report
}

enum Skip {
    NotWriter {
        uid: u32,
        gid: u32,
    },
    Unusable(String),
    /// A writer's regular file that cannot be opened or read: its records are unknown.
    Unreadable(String),
}

/// Who is honoured as a writer: owner uid a writer uid, group a writer gid, or owner uid a
/// member of a writer gid (a writer allowed through a supplementary group creates its files
/// with its primary group). Memberships come from `/etc/passwd` and `/etc/group`, read once
/// per start and only when a file needs them (users only in NSS sources such as LDAP are not
/// seen: their files must carry a writer gid, or their uid be a writer uid).
struct Trust<'a> {
    w: Writers<'a>,
    /// The text of the passwd and group databases, once read.
    db: Option<(String, String)>,
}

impl<'a> Trust<'a> {
    fn new(w: Writers<'a>) -> Self {
        Trust { w, db: None }
    }

    fn honours(&mut self, uid: u32, gid: u32) -> bool {
        if self.w.uids.contains(&uid) || self.w.gids.contains(&gid) {
            return true;
        }
        if self.w.gids.is_empty() {
            return false;
        }
        let (passwd, group) = self.db.get_or_insert_with(|| {
            let read = |p: &str| {
                std::fs::read_to_string(p).unwrap_or_else(|e| {
                    warn!("cannot read {p} ({e}): writers allowed only through a supplementary group are not recognized");
                    String::new()
                })
            };
            (read("/etc/passwd"), read("/etc/group"))
        });
        groups_of(uid, passwd, group)
            .iter()
            .any(|g| self.w.gids.contains(g))
    }
}

/// The groups of user `uid` by the text of `/etc/passwd` and `/etc/group`: its primary group
/// and every group that lists its name as a member. Empty when `uid` has no passwd line.
fn groups_of(uid: u32, passwd: &str, group: &str) -> Vec<u32> {
    let Some((name, primary)) = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        match (
            f.first(),
            f.get(2).and_then(|u| u.parse::<u32>().ok()),
            f.get(3).and_then(|g| g.parse::<u32>().ok()),
        ) {
            (Some(name), Some(u), Some(g)) if u == uid && !name.is_empty() => Some((*name, g)),
            _ => None,
        }
    }) else {
        return Vec::new();
    };
    let mut out = vec![primary];
    for l in group.lines() {
        let f: Vec<&str> = l.split(':').collect();
        let (Some(gid), Some(members)) = (f.get(2).and_then(|g| g.parse::<u32>().ok()), f.get(3))
        else {
            continue;
        };
        if members.split(',').any(|m| m.trim() == name) && !out.contains(&gid) {
            out.push(gid);
        }
    }
    out
}

/// The bytes of journal file `name`, if it is a regular file of a writer.
fn read_one(
    dirfd: &OwnedFd,
    name: &std::ffi::OsStr,
    trust: &mut Trust<'_>,
) -> Result<Vec<u8>, Skip> {
    // NONBLOCK: a FIFO planted here must not hang the start; NOFOLLOW: nor a link lead
    // elsewhere.
    let fd = match rustix::fs::openat(
        dirfd,
        name,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return Err(unopenable(dirfd, name, e, trust)),
    };
    let st = rustix::fs::fstat(&fd).map_err(|e| Skip::Unusable(format!("fstat: {e}")))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(Skip::Unusable("not a regular file".into()));
    }
    if !trust.honours(st.st_uid, st.st_gid) {
        return Err(Skip::NotWriter {
            uid: st.st_uid,
            gid: st.st_gid,
        });
    }
    let mut bytes = Vec::new();
    // One byte more than is read: a longer file is told apart (and treated as damaged).
    std::fs::File::from(fd)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Skip::Unreadable(format!("read: {e}")))?;
    Ok(bytes)
}

/// Why entry `name` could not be opened (`e`): a writer's regular file (by its metadata, read
/// without following a link) is [`Skip::Unreadable`] (e.g. a writer whose files keep a group
/// this daemon is not in); anything else is not to be trusted anyway.
fn unopenable(
    dirfd: &OwnedFd,
    name: &std::ffi::OsStr,
    e: rustix::io::Errno,
    trust: &mut Trust<'_>,
) -> Skip {
    match rustix::fs::statat(dirfd, name, rustix::fs::AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st)
            if FileType::from_raw_mode(st.st_mode) == FileType::RegularFile
                && trust.honours(st.st_uid, st.st_gid) =>
        {
            Skip::Unreadable(format!(
                "cannot open it ({e}); it is owned by uid {} group {}: run cachekitd in a group that can read it",
                st.st_uid, st.st_gid
            ))
        }
        _ => Skip::Unusable(format!("cannot open it ({e})")),
    }
}

/// One record, applied to the table as the write it stands for would have been (with a Redis
/// tier, [`Report::drops`] takes it to Redis as well: `tier/drops.rs`).
fn apply_record(t: &mut crate::table::Table, r: &JournalRecord) {
    match r {
        JournalRecord::DropKey { namespace, key } => {
            t.delete(namespace, key, None);
        }
        JournalRecord::Invalidate {
            namespace,
            tags,
            exact,
        } => {
            let mode = match exact {
                true => InvalidateMode::Exact,
                false => InvalidateMode::Hierarchical,
            };
            // A tag this table refuses: the namespace goes, which covers it.
            if t.invalidate(namespace, tags, mode, None).is_err() {
                t.clear(namespace, None);
            }
        }
        JournalRecord::ClearNamespace { namespace } => t.clear(namespace, None),
        JournalRecord::ClearAll => t.clear_all(),
    }
}

/// Logs what [`apply`] did (also when the journal was empty: "applied 0 failed write(s) from
/// 0 journal file(s)", which tests read).
pub fn log(r: &Report) {
    info!(
        files = r.files,
        records = r.records,
        not_writer = r.not_writer,
        unusable = r.unusable,
        torn = r.torn,
        damaged = r.damaged,
        over_limit = r.over_limit,
        "applied {} failed write(s) from {} journal file(s) before serving",
        r.records,
        r.files
    );
}

const _: () = assert!(MAX_FILE_BYTES as usize > (1 << 20) + (64 << 10) + MAX_RECORD_BODY);

#[cfg(test)]
mod tests;
