//! A real `cachekitd` and real client processes (`cachekit-worker`) for the end-to-end and
//! stress stories.
//!
//! - Every daemon runs in a temp dir of its own under an instance name of its own, so tests
//!   never meet each other or a daemon already running on the machine. It is SIGKILLed and
//!   reaped when dropped; a failing test prints its log.
//! - Every worker is a child process answering one JSON line per command; every answer is
//!   awaited with a watchdog ([`WATCHDOG`] unless said otherwise), so a hung worker or daemon
//!   fails the test instead of blocking it. Workers are killed when dropped, and exit by
//!   themselves when their stdin closes.
//! - `cachekitd` is not a dependency (binaries of other packages are not exposed to tests): it
//!   is looked up in `$CACHEKITD_BIN`, else next to the test executable, and must be built
//!   first (`cargo build -p cachekitd`; `scripts/test` builds every workspace binary).

#![allow(dead_code)] // each test file uses its own part of these helpers

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

/// The longest a test waits for one answer, one daemon start, one process exit. Generous:
/// CI machines have two cores and run many tests at once.
pub const WATCHDOG: Duration = Duration::from_secs(20);

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// The `cachekitd` binary, checked to exist and to be newer than its sources.
pub fn cachekitd_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CACHEKITD_BIN") {
        return PathBuf::from(p);
    }
    // Tests run as target/<profile>/deps/<test>-<hash>; binaries are in target/<profile>.
    let exe = std::env::current_exe().expect("the test executable's path");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let profile = profile_dir
        .file_name()
        .map_or("debug".into(), |n| n.to_string_lossy().into_owned());
    let build = match profile.as_str() {
        "debug" => "cargo build -p cachekitd".to_string(),
        "release" => "cargo build -p cachekitd --release".to_string(),
        p => format!("cargo build -p cachekitd --profile {p}"),
    };
    let bin = profile_dir.join("cachekitd");
    let Ok(meta) = bin.metadata() else {
        panic!(
            "cachekitd is not built: {} does not exist. These tests run the real daemon, \
             which Cargo does not build for another package's tests; build it first with \
             `{build}` (or point $CACHEKITD_BIN at a binary). scripts/test builds it.",
            bin.display()
        );
    };
    // A binary older than the daemon's sources would test yesterday's daemon.
    let built = meta.modified().expect("mtime of cachekitd");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let newest = ["sidecar/src", "shm/src", "proto/src"]
        .iter()
        .filter_map(|d| newest_mtime(&root.join(d)))
        .max();
    if let Some((when, path)) = newest {
        assert!(
            when <= built,
            "cachekitd at {} is older than {}: rebuild it with `{build}`",
            bin.display(),
            path.display()
        );
    }
    bin
}

fn newest_mtime(dir: &Path) -> Option<(SystemTime, PathBuf)> {
    let mut newest: Option<(SystemTime, PathBuf)> = None;
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let path = e.path();
        let found = if path.is_dir() {
            newest_mtime(&path)
        } else {
            e.metadata()
                .and_then(|m| m.modified())
                .ok()
                .map(|t| (t, path))
        };
        if let Some(f) = found {
            if newest.as_ref().is_none_or(|n| f.0 > n.0) {
                newest = Some(f);
            }
        }
    }
    newest
}

/// A runtime directory and an instance name private to one test. Daemons are started on it
/// in turn (restart stories); it outlives them.
pub struct Site {
    dir: tempfile::TempDir,
    pub instance: String,
    bin: PathBuf,
    starts: AtomicUsize,
}

impl Site {
    /// A fresh site; `story` goes into the instance name, to make logs readable.
    pub fn new(story: &str) -> Site {
        let bin = cachekitd_bin();
        let dir = tempfile::Builder::new()
            .prefix("cachekit-e2e-")
            .tempdir()
            .expect("creating a temp dir");
        let story: String = story
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(24)
            .collect();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Site {
            instance: format!("e{}-{n}-{story}", std::process::id()),
            dir,
            bin,
            starts: AtomicUsize::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where this site's daemon listens.
    pub fn socket(&self) -> PathBuf {
        self.dir().join(format!("{}.sock", self.instance))
    }

    /// A file in the site (removed with it).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Starts `cachekitd --dir <site> --instance <site> <flags>`, with no `CACHEKIT_*` or
    /// systemd variables inherited, and waits (bounded) until it accepts connections.
    pub fn start(&self, flags: &[&str]) -> Daemon {
        let n = self.starts.fetch_add(1, Ordering::Relaxed);
        let log = self.path(&format!("cachekitd-{n}.log"));
        let out = File::create(&log).expect("creating the daemon log");
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--dir")
            .arg(self.dir())
            .args(["--instance", &self.instance, "--log", "info"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup the log"))
            .stderr(out);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("CACHEKIT_") || k == "NOTIFY_SOCKET" || k == "WATCHDOG_USEC" {
                cmd.env_remove(k);
            }
        }
        let child = cmd.spawn().expect("spawning cachekitd");
        let mut d = Daemon {
            child: Some(child),
            socket: self.socket(),
            log,
        };
        d.wait_ready();
        d
    }
}

/// A running `cachekitd`; SIGKILLed and reaped on drop.
pub struct Daemon {
    child: Option<Child>,
    pub socket: PathBuf,
    log: PathBuf,
}

impl Daemon {
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WATCHDOG;
        loop {
            let child = self.child.as_mut().expect("running");
            if let Some(s) = child.try_wait().expect("waiting for cachekitd") {
                panic!("cachekitd exited at start ({s}); log:\n{}", self.log());
            }
            // A socket file left by a killed daemon refuses connections: wait for the new one.
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cachekitd did not accept connections on {} within {WATCHDOG:?}; log:\n{}",
                self.socket.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// SIGKILL, and reap: the daemon gets no chance to clean up.
    pub fn kill_9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("kill -9 cachekitd");
            c.wait().expect("reaping cachekitd");
        }
    }

    /// SIGTERM (a clean stop), and reap (bounded).
    pub fn stop(&mut self) {
        let Some(mut c) = self.child.take() else {
            return;
        };
        let ok = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status()
            .expect("running kill")
            .success();
        assert!(ok, "kill -TERM cachekitd failed");
        let deadline = Instant::now() + WATCHDOG;
        while c.try_wait().expect("waiting for cachekitd").is_none() {
            if Instant::now() >= deadline {
                let _ = c.kill();
                let _ = c.wait();
                panic!("cachekitd ignored SIGTERM for {WATCHDOG:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- cachekitd log ({}) ----\n{}",
                self.log.display(),
                self.log()
            );
        }
    }
}

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

/// Calls `probe` until it returns `Some`, at most until `bound` has passed: the bounded poll
/// that replaces a timing assert. `None` if it never did.
pub fn poll<T>(bound: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(t) = probe() {
            return Some(t);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
