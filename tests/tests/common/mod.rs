//! Real client processes (`cachekit-worker`) for the end-to-end and stress stories; the real
//! `cachekitd` comes from the workspace test kit (`cachekit-testkit`).
//!
//! - Every daemon runs in a temp dir of its own under an instance name of its own, so tests
//!   never meet each other or a daemon already running on the machine. It is SIGKILLed and
//!   reaped when dropped; a failing test prints its log. The kit finds the binary
//!   (`$CACHEKITD_BIN`, else `target/<profile>/cachekitd`) and fails with the command to run
//!   when it is missing or older than its sources (`cargo build -p cachekitd`, with the
//!   profile of the tests; `scripts/test` builds every workspace binary).
//! - Every worker is a child process answering one JSON line per command; every answer is
//!   awaited with a watchdog ([`WATCHDOG`] unless said otherwise), so a hung worker or daemon
//!   fails the test instead of blocking it. Workers are killed when dropped, and exit by
//!   themselves when their stdin closes.

#![allow(dead_code)] // each test file uses its own part of these helpers

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

use serde_json::Value;

/// The longest a test waits for one answer of a worker. Generous: CI machines have two cores
/// and run many tests at once.
pub const WATCHDOG: Duration = Duration::from_secs(20);

/// The worker binary of this package.
pub fn worker_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cachekit-worker")
}

/// A `cachekit-worker` process: a real client, driven one command at a time.
pub struct Worker {
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: PathBuf,
}

impl Worker {
    /// Starts a worker (stderr to `<dir>/<name>.stderr`) without connecting it.
    pub fn spawn(name: &str, dir: &Path) -> Worker {
        let stderr = dir.join(format!("{name}.stderr"));
        let mut child = Command::new(worker_bin())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(File::create(&stderr).expect("creating the worker's stderr file"))
            .spawn()
            .expect("spawning cachekit-worker");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Worker {
            name: name.to_string(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
        }
    }

    /// A worker connected to `socket` with `namespace`.
    pub fn connect(name: &str, dir: &Path, socket: &Path, namespace: &str) -> Worker {
        let mut w = Worker::spawn(name, dir);
        w.ok(&format!("connect {} {namespace}", socket.display()));
        w
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends `line` without waiting for the answer.
    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}")
            .and_then(|()| stdin.flush())
            .unwrap_or_else(|e| panic!("worker {}: sending {line:?}: {e}", self.name));
    }

    /// The next answer, waiting at most `timeout`.
    pub fn answer(&mut self, what: &str, timeout: Duration) -> Value {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => serde_json::from_str(&line).unwrap_or_else(|e| {
                panic!(
                    "worker {}: answer to {what:?} is not JSON ({e}): {line}",
                    self.name
                )
            }),
            Err(RecvTimeoutError::Timeout) => panic!(
                "worker {} did not answer {what:?} within {timeout:?} (hung client?); stderr:\n{}",
                self.name,
                self.stderr()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().ok();
                panic!(
                    "worker {} died while answering {what:?} (status {status:?}); stderr:\n{}",
                    self.name,
                    self.stderr()
                )
            }
        }
    }

    /// Sends `line` and returns its answer, whether it succeeded or not.
    pub fn cmd(&mut self, line: &str) -> Value {
        self.send(line);
        self.answer(line, WATCHDOG)
    }

    /// Sends `line`, asserts it succeeded, returns the answer.
    #[track_caller]
    pub fn ok(&mut self, line: &str) -> Value {
        let v = self.cmd(line);
        assert_eq!(v["ok"], true, "worker {}: `{line}` failed: {v}", self.name);
        v
    }

    /// `get KEY`.
    #[track_caller]
    pub fn get(&mut self, key: &str) -> Get {
        let v = self.ok(&format!("get {key}"));
        Get::from(&v)
    }

    /// `set KEY VALUE [...]`, asserted to succeed.
    #[track_caller]
    pub fn set(&mut self, key: &str, value: &str, extra: &str) {
        self.ok(&format!("set {key} {value} {extra}"));
    }

    /// The client's `request_count()` (no request is sent to ask).
    pub fn requests(&mut self) -> u64 {
        self.ok("local")["local"]["requests"]
            .as_u64()
            .expect("requests")
    }

    /// One of the client's local counters.
    pub fn local(&mut self, name: &str) -> u64 {
        self.ok("local")["local"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no local counter {name}"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let err = self.stderr();
            if !err.is_empty() {
                eprintln!("---- worker {} stderr ----\n{err}", self.name);
            }
        }
    }
}

/// The answer to `get`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Get {
    pub hit: bool,
    pub value: Option<String>,
    pub stale: bool,
    /// `"segment"` or `"daemon"` on a hit.
    pub source: Option<String>,
    pub expires_ms: Option<u64>,
    pub grace_until_ms: Option<u64>,
    /// Wall clock (Unix ms) just before and just after the call.
    pub before_ms: u64,
    pub after_ms: u64,
    /// `request_count()` after the call.
    pub requests: u64,
}

impl From<&Value> for Get {
    fn from(v: &Value) -> Get {
        Get {
            hit: v["hit"].as_bool().expect("hit"),
            value: v["value"].as_str().map(str::to_string),
            stale: v["stale"].as_bool().unwrap_or(false),
            source: v["source"].as_str().map(str::to_string),
            expires_ms: v["expires_ms"].as_u64(),
            grace_until_ms: v["grace_until_ms"].as_u64(),
            before_ms: v["before_ms"].as_u64().expect("before_ms"),
            after_ms: v["after_ms"].as_u64().expect("after_ms"),
            requests: v["requests"].as_u64().expect("requests"),
        }
    }
}

impl Get {
    /// The value of a hit, `None` on a miss.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }
}

/// Stops the keeper of `site` (as a reboot would), and waits until it is gone.
pub fn stop_keeper(site: &cachekit_testkit::Site) {
    use std::io::Read;
    let path = site.path(format!("{}.keeper", site.instance()).as_str());
    let mut k = std::os::unix::net::UnixStream::connect(&path).expect("the keeper answers");
    k.write_all(b"Q").unwrap();
    let mut ok = [0u8; 1];
    k.read_exact(&mut ok).unwrap();
    cachekit_testkit::poll(Duration::from_secs(10), || {
        std::os::unix::net::UnixStream::connect(&path)
            .is_err()
            .then_some(())
    })
    .expect("the keeper did not go");
}
