//! The client area is writable by every client, so nothing in it may decide whether another
//! client attaches or what it reads; and each client process counts its hits in a counters
//! file (memfd) of its own, which no other client can reach, and which the daemon closes and
//! unmaps once the process is gone. Real daemon, raw protocol connections, the Rust client
//! and real child processes (this test binary run again, some under another uid with
//! `setpriv`, as `connections.rs` does: the tests run as root); every wait is bounded.

mod common;

use cachekit_client::{Client as App, ClientOptions, SetOptions};
use cachekit_shm::layout::{CountersHeader, COUNTERS_BYTES, COUNTERS_MAGIC};
use cachekit_testkit::eventually;
use common::{Conn, Connect, Daemon, Site, WATCHDOG};
use std::io::Write;
use std::mem::offset_of;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `client_slot` when every record is taken.
const NO_RECORD: u32 = u32::MAX;
/// The child's role, when this process is one.
const ROLE_VAR: &str = "CACHEKIT_AREA_TEST_ROLE";
/// The socket the child connects to.
const SOCKET_VAR: &str = "CACHEKIT_AREA_TEST_SOCKET";
/// A uid no test process runs as (`setpriv` takes any number).
const STRANGER: u32 = 65534;

fn app(d: &Daemon) -> App {
    let opts = ClientOptions::new().socket(d.socket()).namespace("area");
    App::connect(opts).expect("connecting the Rust client")
}

/// Word `field` (a byte offset) of the counters file a client was handed.
fn counters_word(file: &OwnedFd, field: usize) -> u64 {
    let mut word = [0u8; 8];
    rustix::io::pread(file, &mut word, field as u64).expect("reading the counters file");
    u64::from_le_bytes(word)
}

fn inode(fd: impl AsFd) -> u64 {
    rustix::fs::fstat(fd).expect("fstat").st_ino
}

/// Descriptors the process `pid` has open.
fn fds_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("listing the daemon's descriptors")
        .count()
}

/// Mappings of counters files in process `pid`.
fn counter_maps_of(pid: u32) -> usize {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .expect("reading the daemon's mappings")
        .lines()
        .filter(|l| l.contains("memfd:cachekit-counters"))
        .count()
}

/// If this process is a child started by [`child`], plays its role and exits.
///
/// - `hello`: one raw connection, HELLO, checks it got a counters file of its own, PING.
/// - `reach:PIDS`: tries to open the counters memfds of processes `PIDS` (comma-separated)
///   through `/proc/<pid>/fd`, as a hostile client would; prints `child: reached <path>`
///   for each it could open writable, then `child: done`.
fn play_child_role() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let socket = PathBuf::from(std::env::var(SOCKET_VAR).expect("the child's socket"));
    let mut out = std::io::stdout().lock();
    if role == "hello" {
        let mut c = common::Client::attach(Conn::open(&socket), "child");
        assert_eq!(c.fds.len(), 3, "a counters file for this process");
        assert_eq!(
            counters_word(&c.fds[2], offset_of!(CountersHeader, pid)),
            u64::from(std::process::id())
        );
        c.ping();
        writeln!(out, "child: ok").unwrap();
    } else if let Some(pids) = role.strip_prefix("reach:") {
        // Attached like any client first: it holds the fds HELLO gave it.
        let _me = common::Client::attach(Conn::open(&socket), "hostile");
        for pid in pids.split(',') {
            let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
                continue;
            };
            for e in dir.flatten() {
                let link = std::fs::read_link(e.path()).unwrap_or_default();
                if !link.to_string_lossy().contains("cachekit-counters") {
                    continue;
                }
                let writable = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(e.path());
                if writable.is_ok() {
                    writeln!(out, "child: reached {}", e.path().display()).unwrap();
                }
            }
        }
        writeln!(out, "child: done").unwrap();
    } else {
        panic!("unknown role {role:?}");
    }
    out.flush().unwrap();
    std::process::exit(0);
}

/// Starts test `test` of this binary again in role `role` against `socket` (as uid `uid`
/// when given); [`reports`] collects what it printed.
fn child(test: &str, role: &str, socket: &Path, uid: Option<u32>) -> std::process::Child {
    let exe = std::env::current_exe().expect("this test's executable");
    let mut cmd = match uid {
        Some(uid) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={uid}"))
                .arg(format!("--regid={uid}"))
                .arg("--clear-groups")
                .arg(&exe);
            c
        }
        None => Command::new(&exe),
    };
    cmd.args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(SOCKET_VAR, socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("running a child of this test (setpriv: util-linux): {e}"))
}

/// The `child: ` lines of an exited child; panics unless it exited 0.
fn reports(c: std::process::Child) -> Vec<String> {
    let out = c.wait_with_output().expect("waiting for the child");
    assert!(out.status.success(), "the child failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.find("child: ").map(|at| l[at + 7..].to_string()))
        .collect()
}

#[test]
fn a_client_that_scribbles_over_the_whole_client_area_cannot_switch_off_the_fast_path() {
    play_child_role();
    let d = Daemon::start("area-garbage", &[]);
    let writer = app(&d);
    writer.set("k", b"v", &SetOptions::new()).expect("set k");

    // A hostile client (any uid that can open the socket) overwrites every byte of the
    // area it was handed (header, the unused records, the access bitmap) and of its own
    // counters file.
    let hostile = d.client("hostile");
    let len = hostile.hello.client_area_size as usize;
    let garbage: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(151) ^ 0xA5)
        .collect();
    let written = rustix::io::pwrite(&hostile.fds[1], &garbage, 0).expect("writing the area");
    assert_eq!(written, len, "the client area is writable by design");
    let written = rustix::io::pwrite(&hostile.fds[2], &garbage[..COUNTERS_BYTES as usize], 0)
        .expect("writing the counters file");
    assert_eq!(written, COUNTERS_BYTES as usize, "its own file is its own");

    // A client that attaches afterwards still serves hits from shared memory.
    let late = app(&d);
    let hit = late.get_local("k").expect("get_local");
    assert_eq!(
        hit.as_ref().map(|v| v.as_ref()),
        Some(&b"v"[..]),
        "a client attaching after the area was overwritten must hit in shared memory"
    );
    // So does one on the raw path (`Client::attach` maps and validates it).
    let raw = d.client("late-raw");
    assert_ne!(raw.hello.client_slot, NO_RECORD);

    // The daemon counts what was damaged, once each (it rewrites it): the area's header and
    // the counters file's.
    let mut probe = d.client("probe");
    assert!(
        eventually(WATCHDOG, || probe.stat("client_area_damaged") == 2),
        "client_area_damaged = {}, want 2 (the area's header and the counters file's)",
        probe.stat("client_area_damaged")
    );
    assert_eq!(
        counters_word(&raw.fds[2], offset_of!(CountersHeader, magic)),
        COUNTERS_MAGIC,
        "the counters file's header is rewritten"
    );
    assert_eq!(
        counters_word(&raw.fds[2], offset_of!(CountersHeader, pid)),
        u64::from(std::process::id())
    );
    drop(writer);
}

#[test]
fn every_connection_of_a_process_shares_its_counters_file_which_outlives_them_while_it_lives() {
    play_child_role();
    // Files are per process (`sidecar/src/slots.rs`): its segment reader counts into the
    // file of the connection that attached it, and pooled connections come and go (the
    // idle timeout closes them), so the file must not go with a connection. Distinct
    // processes and the count limit are covered by the unit tests of `slots.rs` (fake
    // pids), by the test below and by python/tests/test_metrics.py.
    let d = Site::new("area-slots").start(&[]);
    let mut conns: Vec<common::Client> = (0..300).map(|i| d.client(&format!("c{i}"))).collect();
    let slot = conns[0].hello.client_slot;
    assert_ne!(slot, NO_RECORD, "a process gets a counters file");
    let file = inode(&conns[0].fds[2]);
    assert!(
        conns
            .iter()
            .all(|c| c.hello.client_slot == slot && inode(&c.fds[2]) == file),
        "every connection of one process is handed the same file"
    );
    let me = u64::from(std::process::id());
    let counters = conns[0].fds[2].try_clone().unwrap();
    let pid_word = offset_of!(CountersHeader, pid);
    assert_eq!(
        counters_word(&counters, pid_word),
        me,
        "the file names its owner"
    );
    let last = conns.last_mut().unwrap();
    assert_eq!(last.ping(), last.hello.daemon_epoch);
    assert_eq!(last.stat("client_records_in_use"), 1);

    // Every connection closes; this process still lives, so it keeps its file (checked
    // past a few heartbeats' audits), and its next connection is handed the same one.
    drop(conns);
    let mut probe = d.client("probe");
    assert_eq!(probe.hello.client_slot, slot, "the same record again");
    assert_eq!(inode(&probe.fds[2]), file, "the same file again");
    std::thread::sleep(std::time::Duration::from_millis(600));
    assert_eq!(
        counters_word(&counters, pid_word),
        me,
        "kept while the process lives"
    );
    assert_eq!(probe.stat("client_records_in_use"), 1);
    assert_eq!(probe.stat("client_area_damaged"), 0, "nothing was damaged");
}

#[test]
fn counters_files_of_exited_clients_are_closed_and_unmapped_by_the_daemon() {
    play_child_role();
    const TEST: &str = "counters_files_of_exited_clients_are_closed_and_unmapped_by_the_daemon";
    let d = Daemon::start("area-cycles", &[]);
    let mut probe = d.client("probe");
    let pid = d.pid();
    let (fds, maps) = (fds_of(pid), counter_maps_of(pid));
    assert_eq!(maps, 1, "this process's file");
    // 8 rounds of 40 client processes at once: 320 processes, more than the 256 files the
    // daemon holds at most, each connecting, saying HELLO and exiting.
    for _ in 0..8 {
        let kids: Vec<_> = (0..40)
            .map(|_| child(TEST, "hello", d.socket(), None))
            .collect();
        for k in kids {
            assert_eq!(reports(k), ["ok"]);
        }
    }
    assert!(
        eventually(WATCHDOG, || probe.stat("client_records_in_use") == 1
            && counter_maps_of(pid) == maps
            && fds_of(pid) == fds),
        "after the clients exited the daemon holds {} files, {} counters mappings (was {maps}) and {} descriptors (was {fds})",
        probe.stat("client_records_in_use"),
        counter_maps_of(pid),
        fds_of(pid)
    );
}

#[test]
fn a_client_under_another_uid_cannot_reach_other_processes_counters_files() {
    play_child_role();
    const TEST: &str = "a_client_under_another_uid_cannot_reach_other_processes_counters_files";
    let site = Site::new("area-reach");
    std::fs::set_permissions(site.dir(), std::fs::Permissions::from_mode(0o755))
        .expect("opening the site's directory to other uids");
    let d = site.start(&["--socket-mode", "0666"]);
    // A victim client: this process, holding its counters file.
    let victim = d.client("victim");
    assert_eq!(victim.fds.len(), 3);
    let targets = format!("{},{}", d.pid(), std::process::id());
    // The hostile client, attached as another uid, tries to open the daemon's copy and the
    // victim's through /proc: the only ways to a file the daemon did not send it.
    let got = reports(child(
        TEST,
        &format!("reach:{targets}"),
        d.socket(),
        Some(STRANGER),
    ));
    assert_eq!(got, ["done"], "the hostile client reached: {got:?}");
    // The same child as this uid (root) does reach them: the check can see a file.
    let got = reports(child(TEST, &format!("reach:{targets}"), d.socket(), None));
    assert!(
        got.len() >= 3 && got.last().map(String::as_str) == Some("done"),
        "as root the files are reachable (so the check above looked at them): {got:?}"
    );
}
