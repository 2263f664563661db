//! The failed-write journal, client side: a write this process could not deliver because its
//! daemon was gone is recorded in the instance's journal directory, and the next daemon applies
//! it to the table it carries over (warm restart) before any client can read that table. The
//! format and the directory are described in `cachekit_proto::journal`.
//!
//! Only the failure path comes here; hits and delivered writes never do.
//!
//! # The race with a starting daemon
//!
//! The daemon holds the journal lock exclusively from before it binds its socket until the
//! journal is applied. Here, under the lock shared, the socket is tried once more:
//! - nothing answers: no daemon is between "read the journal" and "serve" (it would hold the
//!   lock), so the record appended now is read by the next daemon;
//! - something answers and the failure was a lost connection: a new daemon is serving, with
//!   its journal applied: the write is sent to it instead ([`Outcome::Retry`]).
//!
//! A client that cannot take the lock (not allowed to open it: only the daemon's user and its
//! writer group may; or held past the request timeout) appends first and looks after: a
//! daemon that does not answer then has not bound yet, so it reads the record; one that
//! answers gets the write as well.
//!
//! After a timeout (a stuck daemon, which answers connects) the record is appended whatever
//! the socket says: a daemon that replaced the stuck one waited out the old one's heartbeat
//! timeout before taking the lock (see the daemon's `bind`), longer than the write was
//! outstanding in all but pathological configurations; the record then waits for the next
//! restart, where dropping it is still safe.
//!
//! # Bounds
//!
//! One file per process and instance (every [`Client`](crate::Client) of the instance in the
//! process appends to it), a new one only after a daemon removed it or an append failed, and at
//! most [`MAX_ABANDONED`] failed ones left behind; at most [`SOFT_CAP`] bytes of records; past it, each further namespace gets one "clear namespace"
//! record instead of its keys, and past [`HARD_CAP`] one "clear all" ends the file (every
//! record only drops, so a wider one is always safe).

use std::collections::HashSet;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cachekit_proto::journal::{paths_for_socket, JournalRecord, FILE_MAGIC};
use cachekit_proto::Request;
use rustix::fs::{FlockOperation, Mode, OFlags};

/// Bytes of records a journal file takes before namespaces are cleared instead.
pub(crate) const SOFT_CAP: u64 = 1 << 20;
/// Bytes past which one "clear all" ends a journal file.
pub(crate) const HARD_CAP: u64 = SOFT_CAP + (64 << 10);

/// What to do with a write the daemon did not take.
pub(crate) enum Outcome {
    /// A daemon answers now (a restarted one, its journal applied): send the write to it.
    Retry,
    /// Recorded in the journal (or nothing to record): return the original error.
    Done,
}

/// The failed-write journal of this process: one file per journal directory, shared by every
/// client of that instance in the process (so a process that connects many times still makes
/// one file), opened on first use.
pub(crate) struct Journal {
    files: &'static Mutex<Vec<DirFiles>>,
}

/// This process's files, all clients' together.
static FILES: Mutex<Vec<DirFiles>> = Mutex::new(Vec::new());

impl Default for Journal {
    fn default() -> Self {
        Journal { files: &FILES }
    }
}

/// At most this many files of one process that a failed append left behind (ENOSPC, EIO)
/// and no daemon has removed yet: past it the process records nothing more (counted as
/// `journal_failures`) instead of filling the directory.
pub(crate) const MAX_ABANDONED: usize = 8;

/// This process's files in one journal directory.
struct DirFiles {
    dir: std::path::PathBuf,
    /// The file records go to.
    open: Option<Open>,
    /// Files a failed append ended, kept open to see when a daemon has removed them.
    abandoned: Vec<(u32, File)>,
}

struct Open {
    file: File,
    /// The process that created it (a forked child makes its own).
    pid: u32,
    written: u64,
    /// Namespaces cleared in this file since it passed [`SOFT_CAP`].
    cleared: HashSet<String>,
    /// A "clear all" was written: nothing more is needed.
    saturated: bool,
}

/// The record a write request stands for, `None` for requests that change nothing a restart
/// could bring back (leases, verify).
pub(crate) fn record_of(req: &Request) -> Option<JournalRecord> {
    let drop = |namespace: &str, key: &[u8]| JournalRecord::DropKey {
        namespace: namespace.to_string(),
        key: key.to_vec(),
    };
    Some(match req {
        Request::Set(s) => drop(&s.namespace, &s.key),
        Request::SetIf(s) => drop(&s.set.namespace, &s.set.key),
        Request::Incr(i) => drop(&i.namespace, &i.key),
        Request::Delete { namespace, key }
        | Request::Take { namespace, key }
        | Request::Touch { namespace, key, .. } => drop(namespace, key),
        Request::Invalidate {
            namespace,
            tags,
            exact,
        } => JournalRecord::Invalidate {
            namespace: namespace.clone(),
            tags: tags.clone(),
            exact: *exact,
        },
        // A delete by pattern or tag: the whole namespace, which covers it.
        Request::Clear { namespace }
        | Request::DeleteMatching(cachekit_proto::ScanRequest { namespace, .. }) => {
            JournalRecord::ClearNamespace {
                namespace: namespace.clone(),
            }
        }
        _ => return None,
    })
}

/// Whether something accepts connections at `socket` now (no HELLO: a connect only).
fn answers(socket: &Path) -> bool {
    std::os::unix::net::UnixStream::connect(socket).is_ok()
}

/// `flock(LOCK_SH)` on `lock`, waiting at most `limit` (a daemon holds it exclusively only
/// while it binds and applies the journal). `None`: no lock file (a daemon without the journal
/// never made one), not allowed to open it (only the daemon's user and writer groups may), not
/// taken in time, or replaced while waiting (each daemon start installs a new one): the caller
/// then takes the lockless path.
fn lock_shared(lock: &Path, limit: Duration) -> Option<OwnedFd> {
    let fd = rustix::fs::open(
        lock,
        OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
    .ok()?;
    let start = Instant::now();
    loop {
        match rustix::fs::flock(&fd, FlockOperation::NonBlockingLockShared) {
            Ok(()) => break,
            Err(_) if start.elapsed() < limit => std::thread::sleep(Duration::from_millis(2)),
            Err(_) => return None,
        }
    }
    // The lock that counts is the file at the path now.
    let held = rustix::fs::fstat(&fd).ok()?;
    let now = rustix::fs::lstat(lock).ok()?;
    (held.st_dev == now.st_dev && held.st_ino == now.st_ino).then_some(fd)
}

impl Journal {
    /// Handles a write that failed because the daemon at `socket` is gone (`lost`: the
    /// connection was lost or refused; otherwise a timeout or a stale heartbeat). `retry`:
    /// whether a [`Outcome::Retry`] may be answered (once per write). Returns whether the
    /// record is in the journal (`None`: nothing to record), with the outcome.
    pub(crate) fn failed_write(
        &self,
        socket: &Path,
        req: &Request,
        lost: bool,
        retry: bool,
        wait: Duration,
    ) -> (Outcome, Option<bool>) {
        let Some(rec) = record_of(req) else {
            return (Outcome::Done, None);
        };
        let (dir, lock) = paths_for_socket(socket);
        if !dir.is_dir() {
            // No daemon with a journal ever ran here: nothing to carry, nothing to record.
            return (Outcome::Done, None);
        }
        // Held until this function returns (dropping the fd releases the lock).
        let Some(_held) = lock_shared(&lock, wait) else {
            // Without the lock, the other order: the record first, then the look. A daemon
            // that does not answer after the record is on file binds, and so reads the
            // journal, after it; one that answers may have read it before: the write goes to
            // it too (the record stays for a later start, where dropping is still safe).
            let recorded = self.append(&dir, &rec).is_ok();
            let outcome = match retry && lost && answers(socket) {
                true => Outcome::Retry,
                false => Outcome::Done,
            };
            return (outcome, Some(recorded));
        };
        if retry && lost && answers(socket) {
            return (Outcome::Retry, None);
        }
        (Outcome::Done, Some(self.append(&dir, &rec).is_ok()))
    }

    /// Appends `rec` (or the wider record the caps call for) and syncs it to the file.
    fn append(&self, dir: &Path, rec: &JournalRecord) -> std::io::Result<()> {
        let mut all = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let at = match all.iter().position(|d| d.dir == dir) {
            Some(at) => at,
            None => {
                all.push(DirFiles {
                    dir: dir.to_path_buf(),
                    open: None,
                    abandoned: Vec::new(),
                });
                all.len() - 1
            }
        };
        let d = &mut all[at];
        let pid = std::process::id();
        let gone = |f: &File| rustix::fs::fstat(f).map_or(true, |s| s.st_nlink == 0);
        let reopen = match d.open.as_ref() {
            None => true,
            // Removed by a daemon that applied it, or inherited over fork: a new file.
            Some(o) => o.pid != pid || gone(&o.file),
        };
        if reopen {
            // Files of a parent process are its own; removed ones no longer count.
            d.abandoned.retain(|(p, f)| *p == pid && !gone(f));
            if d.abandoned.len() >= MAX_ABANDONED {
                return Err(std::io::Error::other(format!(
                    "{} journal files of this process failed an append and are still there: no more are made until a daemon removes them",
                    d.abandoned.len()
                )));
            }
            d.open = Some(create(dir, pid)?);
        }
        let o = d.open.as_mut().expect("opened above");
        let written = Self::append_to(o, rec);
        if written.is_err() {
            // The file may now end in part of a record (ENOSPC, EIO): the daemon stops reading
            // a file there, so nothing more goes into it; the next record starts a new file.
            if let Some(o) = d.open.take() {
                d.abandoned.push((o.pid, o.file));
            }
        }
        written
    }

    /// Appends `rec` (or the wider record the caps call for) to `o` and syncs it.
    fn append_to(o: &mut Open, rec: &JournalRecord) -> std::io::Result<()> {
        if o.saturated {
            return Ok(());
        }
        let rec = if o.written >= HARD_CAP {
            o.saturated = true;
            JournalRecord::ClearAll
        } else if o.written >= SOFT_CAP {
            match rec.namespace() {
                Some(ns) if o.cleared.contains(ns) => return Ok(()),
                Some(ns) => {
                    o.cleared.insert(ns.to_string());
                    JournalRecord::ClearNamespace {
                        namespace: ns.to_string(),
                    }
                }
                None => JournalRecord::ClearAll,
            }
        } else {
            rec.clone()
        };
        let mut bytes = Vec::with_capacity(64);
        rec.encode(&mut bytes);
        // One write with O_APPEND: records of one file never interleave.
        o.file.write_all(&bytes)?;
        o.written += bytes.len() as u64;
        o.file.sync_data()
    }
}

/// A new journal file in `dir`: `<pid>-<random>`, created exclusively, 0640, given the
/// directory's group (the daemon's) when this user may: the daemon, running as another user in
/// that group, can then read it, and honours it if that group is a writer group or this user a
/// writer uid.
fn create(dir: &Path, pid: u32) -> std::io::Result<Open> {
    // O_PATH: the directory is 1733, so a user other than the daemon's may not open it for
    // reading; a path descriptor needs no permission and serves openat and fstat.
    let dirfd = rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let dir_gid = rustix::fs::fstat(&dirfd)?.st_gid;
    let mut attempt = 0u64;
    let fd = loop {
        let name = format!("{pid}-{:016x}.j", unique(attempt));
        match rustix::fs::openat(
            &dirfd,
            name.as_str(),
            OFlags::WRONLY
                | OFlags::CREATE
                | OFlags::EXCL
                | OFlags::APPEND
                | OFlags::NOFOLLOW
                | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o640),
        ) {
            Ok(fd) => break fd,
            Err(rustix::io::Errno::EXIST) if attempt < 16 => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    };
    if rustix::fs::fstat(&fd)?.st_gid != dir_gid {
        // Not a member of the daemon's group: the file keeps this user's group, and the daemon
        // reads it only if it runs as this user or as root.
        let _ = rustix::fs::fchown(fd.as_fd(), None, Some(rustix::fs::Gid::from_raw(dir_gid)));
    }
    let mut file = File::from(fd);
    file.write_all(FILE_MAGIC)?;
    Ok(Open {
        file,
        pid,
        written: 0,
        cleared: HashSet::new(),
        saturated: false,
    })
}

/// A name part unlikely to repeat: the clock, the thread and the attempt, through the std's
/// randomly keyed hasher.
fn unique(attempt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(attempt);
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(dir: &Path) -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").path())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_failed_append_sends_the_next_record_to_a_new_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let j = Journal {
            files: Box::leak(Box::new(Mutex::new(Vec::new()))),
        };
        let rec = JournalRecord::ClearNamespace {
            namespace: "app".into(),
        };
        j.append(d.path(), &rec).expect("first append");
        let first = files(d.path());
        assert_eq!(first.len(), 1);
        // The open file can no longer be written (as after ENOSPC or EIO).
        {
            let mut g = j.files.lock().unwrap();
            g[0].open.as_mut().unwrap().file = File::open(&first[0]).expect("reopen read-only");
        }
        j.append(d.path(), &rec).expect_err("the write fails");
        j.append(d.path(), &rec)
            .expect("the record after a failure goes to a new file");
        let now = files(d.path());
        assert_eq!(now.len(), 2, "{now:?}");
        let (recs, end) = cachekit_proto::journal::decode_file(&std::fs::read(&first[0]).unwrap());
        assert_eq!(
            (recs.len(), end),
            (1, cachekit_proto::journal::JournalEnd::Clean)
        );
    }

    fn leaked() -> Journal {
        Journal {
            files: Box::leak(Box::new(Mutex::new(Vec::new()))),
        }
    }

    fn ns_rec() -> JournalRecord {
        JournalRecord::ClearNamespace {
            namespace: "app".into(),
        }
    }

    #[test]
    fn every_client_of_a_process_appends_to_one_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let state: &'static Mutex<Vec<DirFiles>> = Box::leak(Box::new(Mutex::new(Vec::new())));
        for _ in 0..5 {
            // A client of its own each time, as after a new Client::connect.
            let j = Journal { files: state };
            j.append(d.path(), &ns_rec()).expect("append");
        }
        assert_eq!(files(d.path()).len(), 1);
    }

    #[test]
    fn failed_appends_leave_at_most_max_abandoned_files() {
        let d = tempfile::tempdir().expect("tempdir");
        let j = leaked();
        let spoil = |j: &Journal| {
            let mut g = j.files.lock().unwrap();
            let o = g[0].open.as_mut().unwrap();
            let path = files(d.path())
                .into_iter()
                .find(|p| {
                    std::fs::metadata(p).unwrap().ino()
                        == rustix::fs::fstat(&o.file).unwrap().st_ino
                })
                .unwrap();
            o.file = File::open(path).expect("reopen read-only");
        };
        use std::os::unix::fs::MetadataExt;
        for _ in 0..MAX_ABANDONED {
            j.append(d.path(), &ns_rec()).expect("a new file");
            spoil(&j);
            j.append(d.path(), &ns_rec())
                .expect_err("the spoiled file fails");
        }
        assert_eq!(files(d.path()).len(), MAX_ABANDONED);
        let e = j.append(d.path(), &ns_rec()).expect_err("no more files");
        assert!(e.to_string().contains("no more are made"), "{e}");
        assert_eq!(files(d.path()).len(), MAX_ABANDONED);
        // A daemon applied and removed them: files are made again.
        for f in files(d.path()) {
            std::fs::remove_file(f).unwrap();
        }
        j.append(d.path(), &ns_rec())
            .expect("a new file after the removal");
        assert_eq!(files(d.path()).len(), 1);
    }

    fn delete_req() -> Request {
        Request::Delete {
            namespace: "app".into(),
            key: b"k".to_vec(),
        }
    }

    #[test]
    fn without_the_lock_the_record_is_written_before_the_socket_is_tried() {
        let d = tempfile::tempdir().expect("tempdir");
        let socket = d.path().join("x.sock");
        let (dir, lock) = paths_for_socket(&socket);
        std::fs::create_dir(&dir).unwrap();
        assert!(!lock.exists());
        let j = leaked();
        // Nothing answers: recorded, nothing to retry.
        let (o, rec) = j.failed_write(&socket, &delete_req(), true, true, Duration::ZERO);
        assert!(matches!(o, Outcome::Done) && rec == Some(true));
        // A daemon answers: recorded as well (it may have read the journal before), and the
        // write goes to it.
        let _l = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let (o, rec) = j.failed_write(&socket, &delete_req(), true, true, Duration::ZERO);
        assert!(matches!(o, Outcome::Retry) && rec == Some(true));
        let (recs, _) =
            cachekit_proto::journal::decode_file(&std::fs::read(&files(&dir)[0]).unwrap());
        assert_eq!(recs.len(), 2);
    }

    #[test]
    fn with_the_lock_a_daemon_that_answers_gets_the_write_instead() {
        let d = tempfile::tempdir().expect("tempdir");
        let socket = d.path().join("x.sock");
        let (dir, lock) = paths_for_socket(&socket);
        std::fs::create_dir(&dir).unwrap();
        std::fs::write(&lock, b"").unwrap();
        let j = leaked();
        let _l = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        let (o, rec) = j.failed_write(&socket, &delete_req(), true, true, Duration::ZERO);
        assert!(matches!(o, Outcome::Retry) && rec.is_none());
        assert!(files(&dir).is_empty());
    }

    #[test]
    fn a_lock_replaced_while_waiting_is_not_held() {
        let d = tempfile::tempdir().expect("tempdir");
        let lock = d.path().join("x.journal.lock");
        std::fs::write(&lock, b"").unwrap();
        assert!(lock_shared(&lock, Duration::ZERO).is_some());
        // As a starting daemon does: held exclusively, then a new file renamed over it.
        let old = File::open(&lock).unwrap();
        rustix::fs::flock(&old, FlockOperation::LockExclusive).unwrap();
        let fresh = d.path().join("new");
        std::fs::write(&fresh, b"").unwrap();
        let waiter = {
            let lock = lock.clone();
            std::thread::spawn(move || lock_shared(&lock, Duration::from_secs(5)).is_some())
        };
        std::thread::sleep(Duration::from_millis(50));
        std::fs::rename(&fresh, &lock).unwrap();
        drop(old);
        assert!(
            !waiter.join().unwrap(),
            "a lock on the replaced file was taken as held"
        );
    }

    const CHILD_DIR: &str = "CACHEKIT_JOURNAL_TEST_CHILD_DIR";

    #[test]
    fn another_user_can_journal_into_the_daemons_directory() {
        if let Some(dir) = std::env::var_os(CHILD_DIR) {
            // The child, running as another user than the directory's owner.
            leaked()
                .append(Path::new(&dir), &ns_rec())
                .expect("appending as a user other than the daemon's");
            return;
        }
        assert_eq!(
            rustix::process::geteuid().as_raw(),
            0,
            "this test runs as root (it journals as another user); run the client's unit tests as root"
        );
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        use std::os::unix::process::CommandExt;
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        // The journal directory as the daemon makes it: the daemon's, 1733.
        let jdir = d.path().join("x.journal");
        std::fs::create_dir(&jdir).unwrap();
        std::fs::set_permissions(&jdir, std::fs::Permissions::from_mode(0o1733)).unwrap();
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "journal::tests::another_user_can_journal_into_the_daemons_directory",
                "--nocapture",
            ])
            .env(CHILD_DIR, &jdir)
            .uid(65534)
            .gid(65534)
            .output()
            .expect("running the child");
        assert!(
            out.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let made = files(&jdir);
        assert_eq!(made.len(), 1, "{made:?}");
        assert_eq!(std::fs::metadata(&made[0]).unwrap().uid(), 65534);
    }
}
