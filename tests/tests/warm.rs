//! Warm restart stories: the cache survives its daemon (kill -9, SIGTERM, an upgrade to
//! another binary), through the instance's keeper process or systemd's fd store (here a test
//! double of the notify socket), and only what verifies is served afterwards.
//!
//! The restart stories run the multi-process stress load with its checker (`src/checker.rs`)
//! against the first daemon, stop it mid-run, start the next one, and judge a read of every
//! key of the run against the floors the writers published: never a wrong or torn value, never
//! a version older than an acknowledged write, delete or invalidation. They report the fraction
//! of acknowledged entries kept.
//!
//! Needs `cachekitd` built first: `cargo build -p cachekitd` (scripts/test does it).
#![forbid(unsafe_code)]

mod common;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cachekit_client::{Client, ClientOptions, SetOptions};
use cachekit_testkit::{poll, Site};
use cachekit_tests::checker::{check, Read, Verdict};
use cachekit_tests::floors::Floors;
use cachekit_tests::stress::{key_name, tag_of, Plant, StressParams, StressReport, GROUPS};
use cachekit_tests::value;
use common::Worker;

/// Large enough that nothing is evicted (the arena is a log: about 2 s of the stress load
/// writes 30 MB, so 32 MiB evicted the oldest writes): every key acknowledged before the stop
/// must be kept.
const FLAGS: &[&str] = &[
    "--memory",
    "256MiB",
    "--max-value-bytes",
    "64KiB",
    "--heartbeat-ms",
    "50",
    "--heartbeat-timeout-ms",
    "300",
];

fn client(socket: &Path, ns: &str) -> Client {
    Client::connect(
        ClientOptions::new()
            .socket(socket.to_path_buf())
            .namespace(ns)
            .request_timeout(Duration::from_secs(5)),
    )
    .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stop {
    Kill9,
    Term,
    /// SIGTERM, then another binary (a copy of cachekitd) started on the same instance.
    Upgrade,
}

/// A daemon this file starts itself (another binary, or under the fd-store double): killed and
/// reaped when dropped.
struct Spawned {
    child: Child,
    log: PathBuf,
}

impl Spawned {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_ready(&mut self, socket: &Path) {
        let up = poll(Duration::from_secs(20), || {
            if let Ok(Some(s)) = self.child.try_wait() {
                panic!("cachekitd exited at start ({s}); log:\n{}", self.log());
            }
            let ok = Client::connect(ClientOptions::new().socket(socket.to_path_buf()))
                .and_then(|c| c.ping())
                .is_ok();
            ok.then_some(())
        });
        up.unwrap_or_else(|| panic!("cachekitd did not come up; log:\n{}", self.log()));
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- cachekitd log ----\n{}", self.log());
        }
    }
}

/// Starts `program args… <site flags>` with its output in a log file of the site, under the
/// notify socket `notify` if given.
fn spawn(
    site: &Site,
    mut cmd: Command,
    flags: &[&str],
    log: &str,
    notify: Option<&Path>,
) -> Spawned {
    let log = site.path(log);
    let out = std::fs::File::create(&log).unwrap();
    cmd.arg("--dir")
        .arg(site.dir())
        .args(["--instance", site.instance(), "--log", "debug"])
        .args(flags)
        .env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out);
    if let Some(n) = notify {
        cmd.env("NOTIFY_SOCKET", n);
    }
    let child = cmd.spawn().expect("starting cachekitd");
    Spawned { child, log }
}

/// The fixed header of the table this process has mapped (a client attached to it), read from
/// this process's own memory: the hash seed and counter count tell which keys share a tag
/// counter.
fn mapped_table_header() -> cachekit_shm::testing::FixedHeader {
    use std::os::unix::fs::FileExt;
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let start = maps
        .lines()
        .find(|l| l.contains("memfd:cachekit-table"))
        .and_then(|l| u64::from_str_radix(l.split('-').next()?, 16).ok())
        .unwrap_or_else(|| panic!("no mapping of the table in /proc/self/maps:\n{maps}"));
    let mut b = [0u8; cachekit_shm::testing::FIXED_HEADER_BYTES];
    std::fs::File::open("/proc/self/mem")
        .unwrap()
        .read_exact_at(&mut b, start)
        .unwrap();
    let h = cachekit_shm::testing::FixedHeader::from_bytes(&b);
    assert_eq!(h.geometry_check, h.expected_check(), "not a table header");
    h
}

/// Whether an invalidation that does not cover key `n` of writer `w` (by the tag grammar)
/// stores into a tag counter its entry references: a read of the table, old or new, misses it
/// after such an invalidation ("two paths that share a counter only cause extra misses",
/// docs/ARCHITECTURE.md), though nothing was sent for the key.
fn shares_a_counter(
    h: &cachekit_shm::testing::FixedHeader,
    writers: u32,
    keys: u32,
    w: u32,
    n: u32,
) -> bool {
    use cachekit_shm::testing::{entry_counters, invalidation_counters};
    use cachekit_shm::InvalidateMode::{Exact, Hierarchical};
    let (seed, count) = (h.hash_seed, h.tag_count);
    let own = tag_of(w, n);
    let refs = entry_counters(seed, count, "stress", &[&own]).unwrap();
    let covers = |path: &str, exact: bool| match exact {
        true => path == own,
        false => path == own || own.starts_with(&format!("{path}/")),
    };
    let paths = (0..writers).flat_map(|v| {
        let groups = (0..GROUPS).map(move |g| format!("w{v}/g{g}"));
        let keys = (0..keys).map(move |m| tag_of(v, m));
        std::iter::once(format!("w{v}")).chain(groups).chain(keys)
    });
    for path in paths {
        for (mode, exact) in [(Hierarchical, false), (Exact, true)] {
            if covers(&path, exact) {
                continue;
            }
            let bumps = invalidation_counters(seed, count, "stress", &path, mode).unwrap();
            if bumps.iter().any(|c| refs.contains(c)) {
                return true;
            }
        }
    }
    false
}

/// A stress run of `procs` processes stopped mid-run, the next daemon started warm, and every
/// key read once and judged.
fn survives(stop: Stop) {
    let site = Site::new(&format!("warm-{stop:?}"));
    let mut first = site.start(FLAGS);
    let floors = site.path("floors");
    let params = StressParams {
        proc_id: 0,
        procs: 4,
        threads: 2,
        keys_per_writer: 256,
        millis: 1_700,
        floors: floors.clone(),
        seed: 0x15_15,
        plant: Plant::None,
        // A thread stops at its first failure: after the stop, at most one operation per
        // thread is sent (and not settled), so the keys settled before it are still judged.
        stop_at_first_error: true,
    };
    Floors::create(&floors, params.total_keys()).unwrap();
    let mut workers: Vec<Worker> = (0..params.procs)
        .map(|p| Worker::connect(&format!("P{p}"), site.dir(), &site.socket(), "stress"))
        .collect();
    for (p, w) in workers.iter_mut().enumerate() {
        let ps = StressParams {
            proc_id: p as u32,
            ..params.clone()
        };
        w.send(&format!("stress {}", serde_json::to_string(&ps).unwrap()));
    }
    // Mid-run: writes, deletes and invalidations in flight.
    std::thread::sleep(Duration::from_millis(1_500));
    match stop {
        Stop::Kill9 => drop(first.kill_9()),
        Stop::Term | Stop::Upgrade => assert!(first.stop().success(), "{}", first.log()),
    }
    let mut before = StressReport::default();
    for w in &mut workers {
        let a = w.answer("stress", Duration::from_secs(60));
        assert_eq!(a["ok"], true, "worker {}: {a}", w.name);
        before.merge(&serde_json::from_value(a["report"].clone()).unwrap());
    }
    assert_eq!(
        before.violations() + before.wrong_values,
        0,
        "{:#?}",
        before.examples
    );
    assert!(before.writes > 500 && before.deletes > 0 && before.invalidations > 0);

    // The writes that failed while no daemon ran, as the next one will apply them.
    let dropped = journal_drops(&site, &params);

    // The next daemon, on the same instance.
    let (_kit, _spawned, log);
    if stop == Stop::Upgrade {
        let next = site.path("cachekitd-next");
        std::fs::copy(cachekit_testkit::cachekitd(), &next).unwrap();
        let mut d = spawn(&site, Command::new(&next), FLAGS, "next.log", None);
        d.wait_ready(&site.socket());
        log = d.log();
        _spawned = Some(d);
        _kit = None;
    } else {
        let d = site.start(FLAGS);
        log = d.log();
        _kit = Some(d);
        _spawned = None;
    }
    assert!(log.contains("warm restart: carried"), "{log}");
    let carry_line = log
        .lines()
        .find(|l| l.contains("warm restart: carried"))
        .unwrap_or_default()
        .to_string();
    eprintln!("{carry_line}");

    // Every key read once, judged against what was acknowledged before the stop.
    let c = client(&site.socket(), "stress");
    let f = Floors::open(&floors, params.total_keys()).unwrap();
    let (mut expected, mut kept, mut hits) = (0u64, 0u64, 0u64);
    let mut lost = Vec::new();
    let mut buf = Vec::new();
    for w in 0..params.writers() {
        for n in 0..params.keys_per_writer {
            let k = (w * params.keys_per_writer + n) as usize;
            let key = key_name(w, n);
            let (floor, hi) = (f.floor(k), f.hi(k));
            let got = c.get_into(&key, &mut buf).expect("a get");
            let verdict = check(&Read {
                key: &key,
                writer: w,
                floor_before: floor,
                hi_after: hi,
                last_seen: 0,
                hit: got.as_ref().map(|_| &buf[..]),
                stale: got.as_ref().is_some_and(|i| i.stale),
            });
            // Acknowledged last by a write, with nothing sent for the key after it (`settled`;
            // `floor == hi` cannot tell: see src/floors.rs): it must be there, since the daemon
            // applies a write to the table before it acknowledges it.
            let settled = f.settled(k);
            let present = settled > 0;
            if present {
                // Nothing sent after the write: neither a write (raises `hi`) nor an
                // acknowledged delete or invalidation (raises the floor).
                assert_eq!((floor, hi), (settled, settled), "{key}: settled {settled}");
            }
            // A set, delete or invalidation of it failed while the daemon was down: the
            // journal drops it, so it must not be served at all.
            let journaled = dropped.contains(&k);
            expected += u64::from(present);
            match verdict {
                Verdict::Hit(v) if journaled => panic!(
                    "after the restart ({stop:?}): {key} version {v} served although a write of it failed while the daemon was down"
                ),
                Verdict::Miss => {
                    if present {
                        lost.push((w, n, format!("{key} version {settled}")));
                    }
                }
                Verdict::Hit(v) => {
                    hits += 1;
                    kept += u64::from(present && v >= floor);
                }
                bad => panic!("after the restart ({stop:?}): {bad:?}"),
            }
        }
    }
    let fraction = kept as f64 / expected.max(1) as f64;
    eprintln!(
        "{stop:?}: {} writes, {} deletes, {} invalidations before the stop ({} failed); after the \
         restart {hits} hits, {kept} of {expected} entries acknowledged last by a write kept \
         ({:.1}%); {} keys dropped by the failed-write journal",
        before.writes,
        before.deletes,
        before.invalidations,
        before.errors,
        100.0 * fraction,
        dropped.len()
    );
    assert!(expected > 100, "{expected}");
    // A miss of a settled key is allowed only when an invalidation of another tag shares one
    // of its counters (the old table missed it too); anything else is a write the restart lost.
    let header = mapped_table_header();
    let (shared, lost): (Vec<_>, Vec<_>) = lost.into_iter().partition(|(w, n, _)| {
        shares_a_counter(&header, params.writers(), params.keys_per_writer, *w, *n)
    });
    eprintln!(
        "{} of the misses explained by a tag counter shared with another tag",
        shared.len()
    );
    assert!(
        lost.is_empty(),
        "acknowledged writes not carried (the first few): {:?}\n{carry_line}",
        lost.iter().take(10).map(|l| &l.2).collect::<Vec<_>>()
    );
    assert!(
        (shared.len() as u64) * 20 <= expected,
        "{} of {expected} settled keys missed through shared counters: more than the table's \
         2^18 counters explain",
        shared.len()
    );
    // And the new daemon takes writes that hide the carried versions.
    let key = key_name(0, 0);
    let k0 = value::encode(&key, 0, f.hi(0) + 1, 8);
    c.set(&key, &k0, &SetOptions::new()).unwrap();
    assert_eq!(c.get(&key).unwrap().unwrap().bytes, k0);
}

/// The keys of the stress run (indices) that the journal left by failed writes drops: read from
/// the journal files before the next daemon applies and removes them.
fn journal_drops(site: &Site, params: &StressParams) -> std::collections::HashSet<usize> {
    use cachekit_proto::journal::{decode_file, JournalRecord};
    use cachekit_tests::stress::tag_of;
    let dir = site.path(format!("{}.journal", site.instance()).as_str());
    let all = (0..params.writers()).flat_map(|w| (0..params.keys_per_writer).map(move |n| (w, n)));
    let index = |w: u32, n: u32| (w * params.keys_per_writer + n) as usize;
    let mut dropped = std::collections::HashSet::new();
    let files = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for f in files {
        let (records, _) = decode_file(&std::fs::read(f.unwrap().path()).unwrap());
        for r in records {
            match r {
                JournalRecord::DropKey { key, .. } => {
                    dropped.extend(
                        all.clone()
                            .filter(|&(w, n)| key_name(w, n).as_bytes() == key)
                            .map(|(w, n)| index(w, n)),
                    );
                }
                JournalRecord::Invalidate { tags, exact, .. } => {
                    let covers = |t: &str, mine: &str| {
                        mine == t || (!exact && mine.starts_with(&format!("{t}/")))
                    };
                    dropped.extend(
                        all.clone()
                            .filter(|&(w, n)| tags.iter().any(|t| covers(t, &tag_of(w, n))))
                            .map(|(w, n)| index(w, n)),
                    );
                }
                JournalRecord::ClearNamespace { .. } | JournalRecord::ClearAll => {
                    dropped.extend(all.clone().map(|(w, n)| index(w, n)));
                }
            }
        }
    }
    dropped
}

#[test]
fn warm_restart_after_kill_9_under_a_write_load() {
    survives(Stop::Kill9);
}

#[test]
fn warm_restart_after_sigterm_under_a_write_load() {
    survives(Stop::Term);
}

#[test]
fn warm_restart_into_another_binary_under_a_write_load() {
    survives(Stop::Upgrade);
}

#[test]
fn warm_keeper_survives_kill_9_and_cold_starts_empty() {
    let site = Site::new("warm-keeper");
    let mut d = site.start(FLAGS);
    let c = client(&site.socket(), "app");
    c.set("k", b"v", &SetOptions::new().tag("t/1")).unwrap();
    c.set("gone", b"x", &SetOptions::new().tag("t/2")).unwrap();
    c.invalidate(&["t/2"]).unwrap();
    let keeper = site.path(format!("{}.keeper", site.instance()).as_str());
    assert!(keeper.exists(), "no keeper socket at {}", keeper.display());
    d.kill_9();
    assert!(keeper.exists(), "the keeper went with the daemon");
    d.restart();
    let c = client(&site.socket(), "app");
    let v = c.get("k").unwrap().expect("k carried through the keeper");
    assert_eq!(v.bytes, b"v");
    assert!(
        c.get("gone").unwrap().is_none(),
        "an invalidated entry came back"
    );
    // VERIFY walks the carried table: the entry checks, nothing is damaged.
    let (mut cursor, mut examined, mut damaged) = (0, 0, 0);
    loop {
        let page = c.verify_page(cursor, false).unwrap();
        examined += page.examined;
        damaged += page
            .counts
            .iter()
            .filter(|(n, _)| n != "expired" && n != "invalidated")
            .map(|(_, n)| n)
            .sum::<u64>();
        cursor = page.next;
        if cursor == 0 {
            break;
        }
    }
    assert_eq!((examined, damaged), (1, 0));
    // Its tag still works in the new table.
    c.invalidate(&["t"]).unwrap();
    assert!(c.get("k").unwrap().is_none());
    c.set("k2", b"v2", &SetOptions::new()).unwrap();
    drop(d);
    let cold = site.start(&[FLAGS, &["--cold"]].concat());
    assert!(cold.log().contains("--cold"), "{}", cold.log());
    let c = client(&site.socket(), "app");
    assert!(c.get("k2").unwrap().is_none(), "--cold kept an entry");
}

/// The test double of systemd's notify socket: receives the daemon's datagrams and the
/// descriptors sent with `FDSTORE=1`, keeps them by `FDNAME` as systemd's fd store does, and
/// hands them to the next daemon as fds 3, 4, … with `LISTEN_PID`, `LISTEN_FDS` and
/// `LISTEN_FDNAMES`.
struct FdStoreDouble {
    sock: UnixDatagram,
    path: PathBuf,
    stored: Vec<(String, OwnedFd)>,
    messages: Vec<String>,
}

impl FdStoreDouble {
    fn new(site: &Site) -> FdStoreDouble {
        let path = site.path("notify");
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        FdStoreDouble {
            sock,
            path,
            stored: Vec::new(),
            messages: Vec::new(),
        }
    }

    /// Receives until `done` holds of the messages so far (bounded).
    fn receive_until(&mut self, what: &str, done: impl Fn(&FdStoreDouble) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(Instant::now() < deadline, "no {what}: {:?}", self.messages);
            let mut buf = [0u8; 512];
            let mut space =
                [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
            let mut anc = rustix::net::RecvAncillaryBuffer::new(&mut space);
            let Ok(r) = rustix::net::recvmsg(
                &self.sock,
                &mut [std::io::IoSliceMut::new(&mut buf)],
                &mut anc,
                rustix::net::RecvFlags::CMSG_CLOEXEC,
            ) else {
                continue;
            };
            let mut fds = Vec::new();
            for m in anc.drain() {
                if let rustix::net::RecvAncillaryMessage::ScmRights(r) = m {
                    fds.extend(r);
                }
            }
            let text = String::from_utf8_lossy(&buf[..r.bytes]).into_owned();
            let field = |k: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(k))
                    .map(str::to_string)
            };
            let name = field("FDNAME=").unwrap_or_else(|| "stored".into());
            if field("FDSTOREREMOVE=").as_deref() == Some("1") {
                self.stored.retain(|(n, _)| *n != name);
            }
            if field("FDSTORE=").as_deref() == Some("1") {
                for fd in fds {
                    self.stored.push((name.clone(), fd));
                }
            }
            self.messages.push(text);
        }
    }

    fn has(&self, name: &str) -> bool {
        self.stored.iter().any(|(n, _)| n == name)
    }

    /// Starts `cachekitd` as systemd would with the stored descriptors: through `bash`, which
    /// moves them to 3, 4, … and execs the daemon with its own pid in LISTEN_PID.
    fn start(&self, site: &Site, flags: &[&str], log: &str) -> Spawned {
        // Out of the way of 3, 4, …, and inherited (no close-on-exec) by the shell only.
        let high: Vec<OwnedFd> = self
            .stored
            .iter()
            .map(|(_, fd)| rustix::io::fcntl_dupfd_cloexec(fd, 100).unwrap())
            .collect();
        let mut script = String::from("exec");
        for (i, fd) in high.iter().enumerate() {
            rustix::io::fcntl_setfd(fd, rustix::io::FdFlags::empty()).unwrap();
            script += &format!(" {}<&{} {}<&-", 3 + i, fd.as_raw_fd(), fd.as_raw_fd());
        }
        let names: Vec<&str> = self.stored.iter().map(|(n, _)| n.as_str()).collect();
        script += &format!(
            "; export LISTEN_PID=$$ LISTEN_FDS={} LISTEN_FDNAMES={}; exec \"$0\" \"$@\"",
            names.len(),
            names.join(":")
        );
        // bash: dash takes only one-digit descriptors in redirections.
        let mut cmd = Command::new("bash");
        cmd.arg("-c").arg(script).arg(cachekit_testkit::cachekitd());
        let d = spawn(site, cmd, flags, log, Some(&self.path));
        drop(high);
        d
    }
}

/// A memfd sealed as the daemon seals its table, holding `bytes`.
fn sealed_memfd(bytes: &[u8]) -> OwnedFd {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = rustix::fs::memfd_create(
        "fake-table",
        MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING,
    )
    .unwrap();
    let f = std::fs::File::from(fd);
    f.set_len(64 << 10).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, bytes, 0).unwrap();
    rustix::fs::fcntl_add_seals(
        &f,
        SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL,
    )
    .unwrap();
    f.into()
}

#[test]
fn warm_restart_through_the_systemd_fd_store_double() {
    let site = Site::new("warm-fdstore");
    let mut store = FdStoreDouble::new(&site);
    let mut d = spawn(
        &site,
        Command::new(cachekit_testkit::cachekitd()),
        FLAGS,
        "first.log",
        Some(&store.path),
    );
    d.wait_ready(&site.socket());
    store.receive_until("FDSTORE of both memfds", |s| {
        s.has("cachekit-table") && s.has("cachekit-clients")
    });
    assert!(
        !site
            .path(format!("{}.keeper", site.instance()).as_str())
            .exists(),
        "a keeper under systemd"
    );
    let c = client(&site.socket(), "app");
    c.set("k", b"through the store", &SetOptions::new())
        .unwrap();
    drop(d); // kill -9
    let mut next = store.start(&site, FLAGS, "second.log");
    next.wait_ready(&site.socket());
    assert!(
        next.log().contains("warm restart: carried 1 of 1"),
        "{}",
        next.log()
    );
    let c = client(&site.socket(), "app");
    assert_eq!(c.get("k").unwrap().unwrap().bytes, b"through the store");
    // The new memfds replaced the old ones in the store.
    let seen = store.messages.len();
    store.receive_until("the new memfds", |s| {
        s.messages[seen..]
            .iter()
            .filter(|m| m.starts_with("FDSTORE=1"))
            .count()
            == 2
    });
    assert!(store.messages[seen..]
        .iter()
        .any(|m| m.starts_with("FDSTOREREMOVE=1")));
    assert_eq!(store.stored.len(), 2, "{:?}", store.messages);
}

#[test]
fn warm_a_segment_of_another_format_version_starts_empty_with_the_reason() {
    let site = Site::new("warm-format");
    let mut store = FdStoreDouble::new(&site);
    let mut header = Vec::new();
    header.extend_from_slice(b"CKSHMTB1");
    header.extend_from_slice(&99u64.to_le_bytes());
    store
        .stored
        .push(("cachekit-table".into(), sealed_memfd(&header)));
    store
        .stored
        .push(("cachekit-clients".into(), sealed_memfd(&[])));
    let mut d = store.start(&site, FLAGS, "daemon.log");
    d.wait_ready(&site.socket());
    let log = d.log();
    assert!(
        log.contains("format 99, this build reads 1: starting empty"),
        "{log}"
    );
    let c = client(&site.socket(), "app");
    c.set("k", b"v", &SetOptions::new()).unwrap();
    assert_eq!(c.get("k").unwrap().unwrap().bytes, b"v");
}

/// `cmd` fails with Unavailable (the daemon is gone).
#[track_caller]
fn unavailable(w: &mut Worker, cmd: &str) {
    let v = w.cmd(cmd);
    assert_eq!(
        (v["ok"].as_bool(), v["error"].as_str()),
        (Some(false), Some("unavailable")),
        "worker {}: `{cmd}` while the daemon is down: {v}",
        w.name
    );
}

#[test]
fn writes_that_failed_while_the_daemon_was_down_are_not_undone_by_a_warm_restart() {
    let site = Site::new("warm-journal");
    let mut d = site.start(FLAGS);
    let journal = site.path(format!("{}.journal", site.instance()).as_str());
    let mut a = Worker::connect("A", site.dir(), &site.socket(), "app");
    let mut b = Worker::connect("B", site.dir(), &site.socket(), "app");
    for k in ["del1", "del2", "replaced", "keep"] {
        a.set(k, "old", "");
    }
    a.set("post1", "old", "- - posts/1");
    a.set("post2", "old", "- - posts/2/comments");
    a.set("user", "old", "- - users/1");
    b.ok("ns other");
    b.set("o1", "old", "");
    b.set("o2", "old", "- - posts/1");
    b.ok("ns kept");
    b.set("k1", "old", "");
    b.ok("ns app");
    // The segment in use, so the kill leaves readers that trusted it.
    assert!(a.get("keep").hit);

    d.kill_9();
    unavailable(&mut a, "delete del1");
    unavailable(&mut a, "delete del2");
    unavailable(&mut a, "set replaced new");
    unavailable(&mut b, "invalidate posts");
    b.ok("ns other");
    unavailable(&mut b, "clear");
    assert_eq!(a.local("journaled_writes"), 3);
    assert_eq!(b.local("journaled_writes"), 2);
    assert_eq!(a.local("journal_failures") + b.local("journal_failures"), 0);
    let files = std::fs::read_dir(&journal).map(|d| d.count()).unwrap_or(0);
    assert_eq!(files, 2, "one journal file per client process");

    d.restart();
    assert!(
        d.log()
            .contains("applied 5 failed write(s) from 2 journal file(s)"),
        "{}",
        d.log()
    );
    assert!(d.log().contains("warm restart: carried"), "{}", d.log());
    assert_eq!(
        std::fs::read_dir(&journal).unwrap().count(),
        0,
        "applied files are removed"
    );
    let mut fresh = Worker::connect("C", site.dir(), &site.socket(), "app");
    let gone = [
        ("app", "del1"),
        ("app", "del2"),
        ("app", "replaced"),
        ("app", "post1"),
        ("app", "post2"),
        ("other", "o1"),
        ("other", "o2"),
    ];
    let kept = [("app", "keep"), ("app", "user"), ("kept", "k1")];
    for w in [&mut fresh, &mut a, &mut b] {
        for (ns, k) in gone {
            w.ok(&format!("ns {ns}"));
            let g = w.get(k);
            assert!(
                !g.hit,
                "worker {}: {ns}/{k} served after the restart: {g:?}",
                w.name
            );
        }
        for (ns, k) in kept {
            w.ok(&format!("ns {ns}"));
            let g = w.get(k);
            assert_eq!(
                g.value.as_deref(),
                Some("old"),
                "worker {}: {ns}/{k} not carried",
                w.name
            );
            assert_eq!(
                g.source.as_deref(),
                Some("segment"),
                "worker {}: {ns}/{k}",
                w.name
            );
        }
    }
}

#[test]
fn a_snapshot_written_at_a_clean_stop_is_loaded_after_a_reboot_that_kept_the_runtime_directory() {
    let site = Site::new("snap-a");
    let snap = site.path("cache.snap");
    let flags = [FLAGS, &["--snapshot", snap.to_str().unwrap()]].concat();
    let mut d = site.start(&flags);
    let c = client(&site.socket(), "app");
    c.set("k", b"v", &SetOptions::new().tag("t/1")).unwrap();
    c.set(
        "ttl",
        b"x",
        &SetOptions::new().ttl(Duration::from_secs(3600)),
    )
    .unwrap();
    c.set("gone", b"x", &SetOptions::new().tag("t/2")).unwrap();
    c.invalidate(&["t/2"]).unwrap();
    let expires = c.get("ttl").unwrap().unwrap().expires_ms;
    assert!(d.stop().success(), "{}", d.log());
    assert!(
        snap.exists(),
        "no snapshot at {}; log:\n{}",
        snap.display(),
        d.log()
    );
    // A reboot with the runtime directory on persistent storage: no keeper and no fd store
    // hold a segment, the journal (and its mark for the snapshot) are still there. (A reboot
    // that empties it: `warm_faults.rs`.)
    common::stop_keeper(&site);
    d.restart();
    assert!(
        d.log().contains("loaded 2 of 2 snapshot entries"),
        "{}",
        d.log()
    );
    assert!(
        !snap.exists(),
        "the loaded snapshot must be retired at start"
    );
    let c = client(&site.socket(), "app");
    assert_eq!(
        c.get("k").unwrap().expect("k from the snapshot").bytes,
        b"v"
    );
    let t = c.get("ttl").unwrap().expect("ttl from the snapshot");
    assert_eq!(t.expires_ms, expires, "the absolute expiry is kept");
    assert!(
        c.get("gone").unwrap().is_none(),
        "an invalidated entry came back"
    );
    // Its tags still work in the loaded table.
    c.invalidate(&["t"]).unwrap();
    assert!(c.get("k").unwrap().is_none());
}
