//! Warm restart when things go wrong: a carry that panics or kills the daemon is not repeated
//! at every restart, a journal lock someone holds cannot stall a start (the start is bounded
//! and cold), the keeper lets the segment go after its linger with no daemon, and a snapshot is
//! loaded only when the journal of the writes that failed since it was kept.
//!
//! The faults are provoked through the daemon's test-only `CACHEKIT_TEST_*` variables
//! (`sidecar/src/testhook.rs`: honoured only in builds with debug assertions, as the `ci`
//! profile the tests use).
//!
//! Needs `cachekitd` built first: `cargo build -p cachekitd` (scripts/test does it).
#![forbid(unsafe_code)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cachekit_client::{Client, ClientOptions, SetOptions};
use cachekit_testkit::{poll, Site};

const FLAGS: &[&str] = &["--heartbeat-ms", "50", "--heartbeat-timeout-ms", "300"];

fn client(socket: &Path) -> Client {
    Client::connect(
        ClientOptions::new()
            .socket(socket.to_path_buf())
            .namespace("app")
            .request_timeout(Duration::from_secs(5)),
    )
    .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()))
}

/// A daemon with `k` set, then killed (-9): its segment is with the keeper.
fn killed_with_an_entry(site: &Site) {
    let mut d = site.start(FLAGS);
    client(&site.socket())
        .set("k", b"v", &SetOptions::new())
        .unwrap();
    d.kill_9();
}

#[test]
fn a_carry_that_panics_starts_empty_and_the_daemon_serves() {
    let site = Site::new("fault-panic");
    killed_with_an_entry(&site);
    let mut d = site.spawn(FLAGS, |c| {
        c.env("CACHEKIT_TEST_CARRY_PANIC", "1");
    });
    d.wait_ready();
    let log = d.log();
    assert!(
        log.contains("carrying the previous daemon's segment panicked (CACHEKIT_TEST_CARRY_PANIC is set): it is dropped; starting empty"),
        "{log}"
    );
    let c = client(&site.socket());
    assert!(
        c.get("k").unwrap().is_none(),
        "served from a dropped segment"
    );
    c.set("k2", b"v2", &SetOptions::new()).unwrap();
    // The next start carries the new segment as usual.
    d.restart();
    assert!(
        d.log().contains("warm restart: carried 1 of 1"),
        "{}",
        d.log()
    );
    assert_eq!(
        client(&site.socket()).get("k2").unwrap().unwrap().bytes,
        b"v2"
    );
}

#[test]
fn a_carry_that_kills_the_daemon_is_not_tried_again() {
    let site = Site::new("fault-abort");
    killed_with_an_entry(&site);
    // A crash no unwinding can catch (abort, as a double panic or an OOM kill would be).
    let mut d = site.spawn(FLAGS, |c| {
        c.env("CACHEKIT_TEST_CARRY_ABORT", "1");
    });
    let status = d.wait_exit(Duration::from_secs(20));
    assert!(!status.success(), "{status}; log:\n{}", d.log());
    // The next start (systemd's Restart=, say) does not meet that segment again.
    d.restart();
    let log = d.log();
    assert!(
        log.contains("died before it handed back its own"),
        "the reason is logged:\n{log}"
    );
    assert!(!log.contains("warm restart: carried"), "{log}");
    assert!(client(&site.socket()).get("k").unwrap().is_none());
}

#[test]
fn a_journal_lock_held_by_someone_makes_a_bounded_cold_start() {
    let site = Site::new("fault-lock");
    killed_with_an_entry(&site);
    let lock = site.path(&format!("{}.journal.lock", site.instance()));
    let held = std::fs::File::open(&lock).expect("the journal lock exists");
    rustix::fs::flock(&held, rustix::fs::FlockOperation::LockShared).unwrap();
    let started = Instant::now();
    let mut d = site.spawn(FLAGS, |c| {
        c.env("CACHEKIT_TEST_JOURNAL_LOCK_WAIT_MS", "300");
    });
    d.wait_ready();
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let log = d.log();
    assert!(log.contains("is still held after 300ms"), "{log}");
    assert!(log.contains("starting cold"), "{log}");
    assert!(
        client(&site.socket()).get("k").unwrap().is_none(),
        "a carried entry served without the journal lock"
    );
    drop(held);
}

/// `cachekitd --keeper` on `site`, lingering `linger_ms` with no daemon.
fn keeper(site: &Site, linger_ms: u64) -> Child {
    let child = Command::new(cachekit_testkit::cachekitd())
        .arg("--keeper")
        .arg("--dir")
        .arg(site.dir())
        .args(["--instance", site.instance()])
        .env("CACHEKIT_TEST_KEEPER_LINGER_MS", linger_ms.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the keeper");
    let socket = site.path(&format!("{}.keeper", site.instance()));
    poll(Duration::from_secs(10), || socket.exists().then_some(()))
        .expect("the keeper's socket did not appear");
    child
}

/// Waits up to `within` for `child` to exit; whether it did.
fn exits_within(child: &mut Child, within: Duration) -> bool {
    poll(within, || child.try_wait().unwrap().map(|_| ())).is_some()
}

#[test]
fn a_keeper_with_no_daemon_exits_after_its_linger() {
    let site = Site::new("keeper-linger");
    let linger = Duration::from_millis(800);
    let t0 = Instant::now();
    let mut k = keeper(&site, linger.as_millis() as u64);
    assert!(
        exits_within(&mut k, Duration::from_secs(15)),
        "the keeper outlived its linger"
    );
    assert!(t0.elapsed() >= linger, "it left after {:?}", t0.elapsed());
    assert!(!site.path(&format!("{}.keeper", site.instance())).exists());
}

#[test]
fn a_daemon_connected_to_the_keeper_keeps_it_and_its_leaving_restarts_the_linger() {
    let site = Site::new("keeper-reset");
    let linger = Duration::from_millis(800);
    let mut k = keeper(&site, linger.as_millis() as u64);
    // A daemon's connection (a peer of the same uid), kept open past the linger.
    let conn =
        std::os::unix::net::UnixStream::connect(site.path(&format!("{}.keeper", site.instance())))
            .unwrap();
    std::thread::sleep(linger * 3);
    assert!(
        k.try_wait().unwrap().is_none(),
        "the keeper left while a daemon was connected"
    );
    let gone = Instant::now();
    drop(conn);
    assert!(
        exits_within(&mut k, Duration::from_secs(15)),
        "the keeper outlived its linger"
    );
    assert!(
        gone.elapsed() >= linger,
        "the linger did not start again when the daemon left: {:?}",
        gone.elapsed()
    );
}

#[test]
fn a_snapshot_is_not_loaded_after_a_reboot_that_emptied_the_runtime_directory() {
    let site = Site::new("snap-tmpfs-a");
    let snap = site.path("cache.snap");
    let flags = [FLAGS, &["--snapshot", snap.to_str().unwrap()]].concat();
    let mut d = site.start(&flags);
    client(&site.socket())
        .set("k", b"v", &SetOptions::new())
        .unwrap();
    assert!(d.stop().success(), "{}", d.log());
    assert!(snap.exists(), "no snapshot; log:\n{}", d.log());
    // The reboot: a fresh runtime directory (tmpfs), so the journal of the writes that failed
    // since the stop is gone with it; the snapshot (on disk) is still there.
    let rebooted = Site::new("snap-tmpfs-b");
    let d2 = rebooted.start(&flags);
    let log = d2.log();
    assert!(
        log.contains("the snapshot is not loaded: the journal of failed writes was not kept"),
        "{log}"
    );
    assert!(!snap.exists(), "the refused snapshot is retired as well");
    assert!(client(&rebooted.socket()).get("k").unwrap().is_none());
}

#[test]
fn a_write_that_failed_after_the_clean_stop_is_not_undone_by_the_snapshot() {
    let site = Site::new("snap-journal");
    let snap = site.path("cache.snap");
    let flags = [FLAGS, &["--snapshot", snap.to_str().unwrap()]].concat();
    let mut d = site.start(&flags);
    let c = client(&site.socket());
    for k in ["kept", "deleted"] {
        c.set(k, b"old", &SetOptions::new()).unwrap();
    }
    assert!(d.stop().success(), "{}", d.log());
    // While it is stopped: the application deletes, the delete fails and is journaled.
    let e = c.delete("deleted").expect_err("no daemon");
    assert!(
        matches!(e, cachekit_client::Error::Unavailable { .. }),
        "{e:?}"
    );
    assert_eq!(c.local_stats().journaled_writes, 1);
    // A reboot that kept the runtime directory (--dir on persistent storage).
    common::stop_keeper(&site);
    d.restart();
    let log = d.log();
    assert!(log.contains("loaded 2 of 2 snapshot entries"), "{log}");
    assert!(log.contains("applied 1 failed write(s)"), "{log}");
    let c = client(&site.socket());
    assert!(
        c.get("deleted").unwrap().is_none(),
        "a delete that failed after the snapshot was undone by it"
    );
    assert_eq!(c.get("kept").unwrap().unwrap().bytes, b"old");
}

#[test]
fn a_start_in_between_keeps_an_older_snapshot_from_loading() {
    let site = Site::new("snap-between");
    let snap = site.path("cache.snap");
    let with = [FLAGS, &["--snapshot", snap.to_str().unwrap()]].concat();
    let mut d = site.start(&with);
    client(&site.socket())
        .set("k", b"old", &SetOptions::new())
        .unwrap();
    assert!(d.stop().success(), "{}", d.log());
    // A daemon without --snapshot runs (and deletes) in between; the snapshot stays on disk.
    common::stop_keeper(&site);
    let mut between = site.start(FLAGS);
    client(&site.socket()).delete("k").unwrap();
    assert!(between.stop().success());
    assert!(snap.exists());
    common::stop_keeper(&site);
    let d = site.start(&with);
    assert!(
        d.log().contains("the snapshot is not loaded"),
        "{}",
        d.log()
    );
    assert!(
        client(&site.socket()).get("k").unwrap().is_none(),
        "the delete in between was undone"
    );
}
