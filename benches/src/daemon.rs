//! A private `cachekitd`: a temp dir of its own, a unique instance name, configured by its
//! flags alone (no `CACHEKIT_*` variable reaches it), killed and reaped on drop.

use cachekit_client::{Client, ClientOptions};
use std::fs::File;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The `cachekitd` to run: `$CACHEKITD_BIN`, else the one next to this executable (or in the
/// profile directory above `deps/`), else `target/release/cachekitd`.
pub fn daemon_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("CACHEKITD_BIN") {
        let p = PathBuf::from(p);
        assert!(p.is_file(), "CACHEKITD_BIN={} is not a file", p.display());
        return p;
    }
    let exe = std::env::current_exe().expect("locating this executable");
    let mut candidates = Vec::new();
    if let Some(dir) = exe.parent() {
        candidates.push(dir.join("cachekitd"));
        if let Some(up) = dir.parent() {
            candidates.push(up.join("cachekitd"));
            candidates.push(up.with_file_name("release").join("cachekitd"));
        }
    }
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!(
        "no cachekitd binary (looked in {candidates:?}): run `cargo build --release -p cachekitd` \
         first, or set CACHEKITD_BIN"
    );
}

/// A running `cachekitd`.
pub struct Daemon {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
    /// `--memory` as given.
    pub memory: String,
    // Last: the directory goes only after the daemon is dead.
    _dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts a daemon with `--memory memory` (e.g. `"256MiB"`) and `extra` flags, and waits
    /// until it accepts connections.
    pub fn start(memory: &str, extra: &[&str]) -> Daemon {
        let bin = daemon_binary();
        let dir = tempfile::Builder::new()
            .prefix("cachekit-bench-")
            .tempdir()
            .expect("creating a temp dir");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        let instance = format!("bench-{}-{nanos}", std::process::id());
        let socket = dir
            .path()
            .join(cachekit_proto::paths::socket_name(&instance));
        let log = dir.path().join("cachekitd.log");
        let out = File::create(&log).expect("creating the daemon log");
        let mut cmd = Command::new(&bin);
        cmd.arg("--dir")
            .arg(dir.path())
            .args(["--instance", &instance, "--memory", memory, "--log", "warn"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup the log"))
            .stderr(out);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("CACHEKIT_") || k == "NOTIFY_SOCKET" || k == "WATCHDOG_USEC" {
                cmd.env_remove(k);
            }
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut d = Daemon {
            child,
            socket,
            log,
            memory: memory.to_string(),
            _dir: dir,
        };
        d.wait_ready(&bin);
        d
    }

    fn wait_ready(&mut self, bin: &Path) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.child.try_wait().expect("waiting for cachekitd") {
                panic!(
                    "{} exited at start ({s}); log:\n{}",
                    bin.display(),
                    self.log()
                );
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "cachekitd did not accept connections on {} within 20 s; log:\n{}",
                self.socket.display(),
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The daemon's socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// A client of namespace `ns`.
    pub fn client(&self, ns: &str) -> Client {
        connect(&self.socket, ns)
            .unwrap_or_else(|e| panic!("connecting to the bench daemon: {e}; log:\n{}", self.log()))
    }

    /// Whether it is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Bytes of the table segment as mapped by the daemon (`memfd:cachekit-table` in
    /// `/proc/PID/maps`), and the daemon's resident shared memory (`RssShmem`, the pages of
    /// the segments actually touched), both in bytes.
    pub fn segment_memory(&self) -> (Option<u64>, Option<u64>) {
        let pid = self.pid();
        let mapped = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .ok()
            .and_then(|maps| {
                maps.lines()
                    .filter(|l| l.contains("memfd:cachekit-table"))
                    .filter_map(|l| {
                        let range = l.split_whitespace().next()?;
                        let (a, b) = range.split_once('-')?;
                        let a = u64::from_str_radix(a, 16).ok()?;
                        let b = u64::from_str_radix(b, 16).ok()?;
                        Some(b - a)
                    })
                    .max()
            });
        let shmem = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("RssShmem:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .map(|kib| kib * 1024)
            });
        (mapped, shmem)
    }
}

/// A client of the daemon at `socket`, namespace `ns`.
pub fn connect(socket: &Path, ns: &str) -> Result<Client, cachekit_client::Error> {
    Client::connect(
        ClientOptions::new()
            .socket(socket)
            .namespace(ns)
            .client_name("cachekit-bench"),
    )
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- cachekitd log ----\n{}", self.log());
        }
    }
}
