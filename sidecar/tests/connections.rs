//! Who may hold the daemon's connections, and for how long: the per-uid cap, the connections
//! reserved for writers, the idle timeout, and what a refused client is told. Real daemons,
//! real clients (`cachekit-client`), and real other uids: a test runs part of itself again
//! as a child process under `setpriv --reuid=N --regid=N --clear-groups` (the tests run as
//! root), which opens connections as uid N and reports on stdout.

mod common;

use cachekit_client::{Client, ClientOptions, Error, SetOptions};
use common::{assert_error, Connect, Daemon, Site, WATCHDOG};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Clients under other uids

/// The child's role (`fill:N` or `connect`), when this process is one.
const ROLE_VAR: &str = "CACHEKIT_CONNS_TEST_ROLE";
/// The socket the child connects to.
const SOCKET_VAR: &str = "CACHEKIT_CONNS_TEST_SOCKET";
/// Uids for the stories: no such users are needed, `setpriv` takes any number.
const READER_A: u32 = 65534;
const READER_B: u32 = 65533;

fn options(socket: &Path) -> ClientOptions {
    ClientOptions::new()
        .socket(socket)
        .pool_size(1)
        .connect_timeout(WATCHDOG)
        .request_timeout(WATCHDOG)
}

/// One real client with one connection open (or why the daemon refused it).
fn connect(socket: &Path) -> Result<Client, Error> {
    Client::connect(options(socket))
}

/// If this process is a child started by [`Uid::start`], plays its role and exits.
///
/// - `fill:N`: opens clients (one connection each) until the daemon refuses one or N are
///   open; prints `child: held <count>` and `child: refused <message>` (or `none`); keeps
///   them open until its stdin closes.
/// - `connect`: opens one client and pings; prints `child: ok` or `child: refused <message>`.
fn play_child_role() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    let socket = PathBuf::from(std::env::var(SOCKET_VAR).expect("the child's socket"));
    let mut out = std::io::stdout().lock();
    if let Some(n) = role.strip_prefix("fill:") {
        let n: usize = n.parse().expect("fill:N");
        let mut held = Vec::new();
        let mut refused = "none".to_string();
        while held.len() < n {
            match connect(&socket) {
                Ok(c) => held.push(c),
                Err(e) => {
                    refused = e.to_string();
                    break;
                }
            }
        }
        writeln!(out, "child: held {}\nchild: refused {refused}", held.len()).unwrap();
        out.flush().unwrap();
        let mut rest = String::new();
        let _ = std::io::stdin().read_line(&mut rest);
    } else {
        assert_eq!(role, "connect");
        match connect(&socket).and_then(|c| c.ping()) {
            Ok(_) => writeln!(out, "child: ok").unwrap(),
            Err(e) => writeln!(out, "child: refused {e}").unwrap(),
        }
        out.flush().unwrap();
    }
    std::process::exit(0);
}

/// A child process of this test running as another uid; killed when dropped.
struct Uid {
    child: Child,
    out: BufReader<ChildStdout>,
    /// Closing it lets a `fill` child exit.
    stdin: Option<ChildStdin>,
}

impl Uid {
    /// Runs test `test` of this binary again as `uid` (and gid `uid`, no supplementary
    /// groups), in role `role` against `socket`.
    fn start(uid: u32, test: &str, role: &str, socket: &Path) -> Uid {
        let exe = std::env::current_exe().expect("this test's executable");
        let mut child = Command::new("setpriv")
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .arg("--clear-groups")
            .arg(&exe)
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, role)
            .env(SOCKET_VAR, socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("running setpriv (util-linux; install it) for a client as uid {uid}: {e}")
            });
        let out = BufReader::new(child.stdout.take().expect("piped"));
        let stdin = child.stdin.take();
        Uid { child, out, stdin }
    }

    /// The next line the child reports (without `child: `); panics if it exits first.
    fn report(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).expect("reading the child");
            assert!(
                n > 0,
                "the child exited without reporting (see its stderr above)"
            );
            // libtest may have started the line ("test <name> ... ").
            if let Some(at) = line.find("child: ") {
                return line[at + "child: ".len()..].trim_end().to_string();
            }
        }
    }

    /// `fill`'s report: how many it holds, and the refusal that stopped it.
    fn filled(&mut self) -> (usize, String) {
        let held = self.report();
        let held = held
            .strip_prefix("held ")
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("expected `held N`, got {held:?}"));
        let refused = self.report();
        let refused = refused
            .strip_prefix("refused ")
            .unwrap_or(&refused)
            .to_string();
        (held, refused)
    }
}

impl Drop for Uid {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A daemon whose socket every uid may open: the site's directory searchable, the socket
/// mode 0666.
fn open_daemon(story: &str, flags: &[&str]) -> Daemon {
    let site = Site::new(story);
    std::fs::set_permissions(site.dir(), std::fs::Permissions::from_mode(0o755))
        .expect("opening the site's directory to other uids");
    let mut all = vec!["--socket-mode", "0666"];
    all.extend_from_slice(flags);
    site.start(&all)
}

#[track_caller]
fn assert_mentions(text: &str, words: &[&str]) {
    for w in words {
        assert!(text.contains(w), "expected {w:?} in: {text}");
    }
}

// ---------------------------------------------------------------------------------------------
// Limits

#[test]
fn a_uid_at_its_cap_cannot_stop_another_uid() {
    play_child_role();
    let d = open_daemon(
        "per-uid",
        &[
            "--max-connections",
            "12",
            "--max-connections-per-uid",
            "3",
            "--writer-reserved-connections",
            "2",
        ],
    );
    let socket = d.socket();
    let test = "a_uid_at_its_cap_cannot_stop_another_uid";
    // A read-only uid tries to take every connection.
    let mut hog = Uid::start(READER_A, test, "fill:12", socket);
    let (held, refused) = hog.filled();
    assert_eq!(
        held, 3,
        "a read-only uid holds its cap, no more ({refused})"
    );
    assert_mentions(
        &refused,
        &[
            "uid 65534",
            "max_connections_per_uid = 3",
            "--max-connections-per-uid",
        ],
    );
    // Another read-only uid, and a writer, still get in.
    let mut other = Uid::start(READER_B, test, "connect", socket);
    assert_eq!(other.report(), "ok");
    let writer = connect(socket).expect("a writer connects");
    writer
        .set("k", "v", &SetOptions::default())
        .expect("and writes");
    // The hog's places come back when it goes.
    drop(hog);
    let mut by = d.client("counter");
    assert!(
        cachekit_testkit::eventually(WATCHDOG, || by.stat("connections_open") <= 2),
        "the hog's 3 connections are closed with it"
    );
    let mut again = Uid::start(READER_A, test, "fill:2", socket);
    assert_eq!(again.filled().0, 2);
}

#[test]
fn a_writer_still_connects_when_readers_filled_all_but_the_reserved_connections() {
    play_child_role();
    let d = open_daemon(
        "reserved",
        &[
            "--max-connections",
            "6",
            "--max-connections-per-uid",
            "6",
            "--writer-reserved-connections",
            "2",
        ],
    );
    let socket = d.socket();
    let test = "a_writer_still_connects_when_readers_filled_all_but_the_reserved_connections";
    // A writer's connection, open throughout (once the kit's readiness probe is gone).
    let mut by = d.client("counter");
    assert!(cachekit_testkit::eventually(WATCHDOG, || by
        .stat("connections_open")
        == 1));
    let mut hog = Uid::start(READER_A, test, "fill:6", socket);
    let (held, refused) = hog.filled();
    assert_eq!(held, 3, "readers get all but the 2 reserved ({refused})");
    assert_mentions(
        &refused,
        &[
            "4 of its 6",
            "writer_reserved_connections",
            "uid 65534",
            "--max-connections",
        ],
    );
    let mut other = Uid::start(READER_B, test, "connect", socket);
    assert_mentions(&other.report(), &["refused", "writer_reserved_connections"]);
    // Root may write: both reserved connections are its own.
    let w1 = connect(socket).expect("a writer gets a reserved connection");
    w1.set("k", "from root", &SetOptions::default())
        .expect("and writes");
    let w2 = connect(socket).expect("and the second");
    w2.ping().expect("ping");
    let full = connect(socket).expect_err("then the daemon is full");
    assert_mentions(
        &full.to_string(),
        &["6 connections open, its max_connections"],
    );
    assert_eq!(by.stat("connections_open"), 6);
}

// ---------------------------------------------------------------------------------------------
// What a refused client is told

#[test]
fn a_client_refused_at_the_limit_gets_the_daemons_reason_every_time() {
    let d = Daemon::start("refused-reason", &["--max-connections", "2"]);
    // The kit's readiness probe may not be closed yet: fill the daemon once it is.
    let mut holder = d.client("holder");
    assert!(cachekit_testkit::eventually(WATCHDOG, || holder
        .stat("connections_open")
        == 1));
    let _second = d.client("second");
    // The daemon answers a refused connection at accept and closes it, often before the
    // client's HELLO is sent: whichever comes first, the client must report the daemon's
    // reason, never a lost connection.
    for attempt in 0..200 {
        let e = connect(d.socket()).expect_err("the daemon is full");
        assert!(e.is_unavailable(), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("2 connections open, its max_connections")
                && text.contains("--max-connections"),
            "attempt {attempt}: the client reported {text:?} instead of the daemon's reason"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Idle connections

#[test]
fn an_idle_connection_is_closed_with_a_reason() {
    let d = Daemon::start("idle-raw", &["--idle-timeout-ms", "300"]);
    let mut idle = d.client("idle");
    idle.ping();
    // Nothing sent: closed after the idle timeout, with an ERROR on request id 0 first.
    let (id, reply) = idle.reply();
    assert_eq!(id, 0, "a connection-level error");
    assert_error(
        &reply,
        cachekit_proto::ErrorCode::Unavailable,
        &["idle_timeout_ms = 300", "--idle-timeout-ms"],
    );
    idle.expect_closed();
    // So is a connection that never said HELLO.
    let mut silent = d.connect();
    let (id, _) = silent.reply();
    assert_eq!(id, 0);
    silent.expect_closed();
    let mut by = d.client("counter");
    assert!(by.stat("connections_idle_closed") >= 2);
}

#[test]
fn a_pooled_client_outlives_the_idle_timeout_without_an_error() {
    let d = Daemon::start("idle-pool", &["--idle-timeout-ms", "200"]);
    let c = connect(d.socket()).expect("connect");
    c.set("k", "before", &SetOptions::default()).expect("set");
    let mut by = d.client("counter");
    for round in 0..3 {
        // Wait until the daemon closed the client's idle connection...
        let closed = by.stat("connections_idle_closed");
        assert!(
            cachekit_testkit::eventually(WATCHDOG, || by.stat("connections_idle_closed") > closed),
            "round {round}: the idle connection was not closed"
        );
        // ...then every call still succeeds, with no error and no retry.
        let value = format!("round {round}");
        c.set("k", &value, &SetOptions::default())
            .unwrap_or_else(|e| panic!("round {round}: set after an idle close: {e}"));
        assert_eq!(
            c.get("k").expect("get").map(|v| v.into_bytes()),
            Some(value.into_bytes())
        );
        c.ping()
            .unwrap_or_else(|e| panic!("round {round}: ping: {e}"));
    }
    let local = c.local_stats();
    assert_eq!(
        (local.retries, local.connect_failures),
        (0, 0),
        "an idle close is not a failure: {local:?}"
    );
    assert!(local.connects >= 4, "it reconnected each round: {local:?}");
}

#[test]
fn idle_timeout_zero_keeps_idle_connections() {
    let d = Daemon::start("idle-never", &["--idle-timeout-ms", "0"]);
    let mut c = d.client("patient");
    std::thread::sleep(Duration::from_millis(400));
    c.ping();
    assert_eq!(c.stat("connections_idle_closed"), 0);
}
