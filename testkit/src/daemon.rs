//! A real `cachekitd` per test: [`Site`] (a private runtime dir and instance name) and
//! [`Daemon`] (one process started on it).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::process::Proc;
use crate::PATIENCE;

/// Flags every daemon of the kit gets unless its own flags name them: 16 MiB of memory (small,
/// so that the many daemons of a test run fit side by side), and debug logging (the log is a
/// file of the site, printed only when a test fails). `--dir` is always the site's and
/// `--instance` the site's unless given.
pub const DEFAULT_FLAGS: [(&str, &str); 2] = [("--memory", "16MiB"), ("--log", "debug")];

/// Environment variables the daemon must not inherit: it is configured by its flags alone,
/// and is not under the systemd that may run the tests.
fn inherited_config(name: &str) -> bool {
    name.starts_with("CACHEKIT_") || name == "NOTIFY_SOCKET" || name == "WATCHDOG_USEC"
}

/// A runtime directory and an instance name private to one test, so that its daemons never
/// meet another test's or one already running on the machine. Daemons can be started on it in
/// turn (restart stories) or side by side (other instance names). Cloning shares it; the
/// directory is removed when the last clone and the last daemon started on it are gone.
#[derive(Clone)]
pub struct Site(Arc<SiteInner>);

struct SiteInner {
    dir: tempfile::TempDir,
    instance: String,
    bin: PathBuf,
    /// Daemons started so far, numbering their log files.
    starts: AtomicUsize,
}

static NEXT_SITE: AtomicUsize = AtomicUsize::new(0);

impl Site {
    /// A fresh site; `story` goes into the directory and instance names, to make logs
    /// readable. Panics if there is no `cachekitd` to run (see [`crate::cachekitd`]).
    pub fn new(story: &str) -> Site {
        let bin = crate::cachekitd();
        let dir = crate::temp_dir(story);
        let n = NEXT_SITE.fetch_add(1, Ordering::Relaxed);
        // A pid has at most 7 digits (Linux's pid_max is at most 2^22): with fewer than a
        // million sites per process, at most 1 + 7 + 1 + 6 + 1 + 32 = 48 bytes, within the
        // daemon's 64 with room for a suffix naming a second instance.
        let instance = format!("t{}-{n}-{}", std::process::id(), crate::sanitize(story, 32));
        Site(Arc::new(SiteInner {
            dir,
            instance,
            bin,
            starts: AtomicUsize::new(0),
        }))
    }

    /// The runtime directory (`--dir`).
    pub fn dir(&self) -> &Path {
        self.0.dir.path()
    }

    /// The site's instance name (`--instance`, unless a daemon is given another).
    pub fn instance(&self) -> &str {
        &self.0.instance
    }

    /// Where a daemon of the site's instance listens.
    pub fn socket(&self) -> PathBuf {
        self.socket_of(self.instance())
    }

    fn socket_of(&self, instance: &str) -> PathBuf {
        self.dir()
            .join(cachekit_proto::paths::socket_name(instance))
    }

    /// A file in the site (removed with it).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir().join(name)
    }

    /// Starts `cachekitd --dir <site> --instance <site> <DEFAULT_FLAGS> <flags>` (a default
    /// is left out when `flags` name it) and waits (bounded by [`PATIENCE`]) until it answers
    /// on its socket (see [`Daemon::wait_ready`]).
    pub fn start(&self, flags: &[&str]) -> Daemon {
        let mut d = self.spawn(flags, |_| {});
        d.wait_ready();
        d
    }

    /// Starts a daemon as [`start`](Self::start) does, but lets `configure` change its
    /// command first (say, set `NOTIFY_SOCKET`), and does not wait for it to be ready.
    pub fn spawn(&self, flags: &[&str], configure: impl FnOnce(&mut Command)) -> Daemon {
        let flags: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
        let instance = flags
            .iter()
            .position(|f| f == "--instance")
            .and_then(|i| flags.get(i + 1))
            .map_or_else(|| self.instance().to_string(), String::clone);
        let (proc, log) = self.launch(&flags, configure);
        Daemon {
            proc,
            socket: self.socket_of(&instance),
            instance,
            flags,
            log,
            site: self.clone(),
        }
    }

    /// Runs a daemon that is expected to refuse to start: its exit status and its output.
    /// Panics (killing it) if it still runs after [`PATIENCE`].
    pub fn run_to_exit(&self, flags: &[&str]) -> (ExitStatus, String) {
        let mut d = self.spawn(flags, |_| {});
        let status = d.proc.wait_within(PATIENCE).unwrap_or_else(|| {
            d.proc.kill();
            panic!(
                "cachekitd {flags:?} was expected to exit but still ran after {PATIENCE:?}; log:\n{}",
                d.log()
            )
        });
        (status, d.log())
    }

    /// Spawns the daemon with its output going to a fresh log file of the site.
    fn launch(&self, flags: &[String], configure: impl FnOnce(&mut Command)) -> (Proc, PathBuf) {
        let n = self.0.starts.fetch_add(1, Ordering::Relaxed);
        let log = self.path(&format!("cachekitd-{n}.log"));
        let out = File::create(&log).expect("creating the daemon log");
        let mut cmd = Command::new(&self.0.bin);
        cmd.arg("--dir").arg(self.dir());
        for (flag, value) in [("--instance", self.instance())]
            .into_iter()
            .chain(DEFAULT_FLAGS)
        {
            if !flags.iter().any(|f| f == flag) {
                cmd.args([flag, value]);
            }
        }
        cmd.args(flags)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup the daemon log"))
            .stderr(out);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if inherited_config(&name) {
                cmd.env_remove(name.as_ref());
            }
        }
        configure(&mut cmd);
        let proc = Proc::spawn(&mut cmd, "cachekitd")
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.0.bin.display()));
        (proc, log)
    }
}

/// Whether a daemon answers on `socket`: it replies to a PING sent before HELLO (with an
/// error, and closes; nothing is counted in its STATS). Being able to connect is not enough:
/// the daemon binds its socket before it installs its signal handlers and serves, so a
/// SIGTERM sent then would kill it uncleanly. A socket file left by a killed daemon refuses
/// connections until the new one binds.
fn answers(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let mut ping = Vec::new();
    cachekit_proto::encode_request(&cachekit_proto::Request::Ping, 1, &mut ping)
        .expect("PING always encodes");
    let mut reply = [0u8; 64];
    stream
        .set_read_timeout(Some(Duration::from_secs(1)))
        .is_ok()
        && stream.write_all(&ping).is_ok()
        && matches!(stream.read(&mut reply), Ok(n) if n > 0)
}

/// A `cachekitd` started by the kit; SIGKILLed and reaped when dropped, and its log printed
/// if the test is failing.
pub struct Daemon {
    proc: Proc,
    socket: PathBuf,
    instance: String,
    /// The flags it was started with, for [`restart`](Self::restart).
    flags: Vec<String>,
    log: PathBuf,
    // Last: the site (its directory) goes only after the daemon.
    site: Site,
}

impl Daemon {
    /// A daemon on a site of its own (see [`Site::start`]).
    pub fn start(story: &str, flags: &[&str]) -> Daemon {
        Site::new(story).start(flags)
    }

    /// Waits (bounded by [`PATIENCE`]) until the daemon answers on its socket; panics with its
    /// log if it exits or does not come up.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(s) = self.proc.try_wait() {
                panic!("cachekitd exited at start ({s}); log:\n{}", self.log());
            }
            if answers(&self.socket) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "cachekitd did not answer on {} within {PATIENCE:?}; log:\n{}",
                    self.socket.display(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn site(&self) -> &Site {
        &self.site
    }

    /// The runtime directory.
    pub fn dir(&self) -> &Path {
        self.site.dir()
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Where it listens.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// Its pid (the last one, once it exited).
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Its output since it was (re)started.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_else(|e| format!("(no log: {e})"))
    }

    /// The file of [`log`](Self::log).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Whether it still runs (reaping it if it exited).
    pub fn is_running(&mut self) -> bool {
        self.proc.try_wait().is_none()
    }

    /// Sends `sig`; panics if it already exited.
    pub fn signal(&mut self, sig: Signal) {
        if let Err(e) = self.proc.signal(sig) {
            panic!("{e}; log:\n{}", self.log());
        }
    }

    /// SIGSTOP: a daemon that hangs (no heartbeat, no answers) without dying.
    pub fn pause(&mut self) {
        self.signal(Signal::STOP);
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&mut self) {
        self.signal(Signal::CONT);
    }

    /// SIGKILL, and reap: the daemon gets no chance to clean up (its socket file stays).
    /// Its exit status (its earlier one if it had already exited).
    pub fn kill_9(&mut self) -> ExitStatus {
        self.proc.kill()
    }

    /// SIGTERM, a clean stop, and waits (bounded by [`PATIENCE`]) for it to exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(Signal::TERM);
        self.wait_exit(PATIENCE)
    }

    /// Waits up to `within` for it to exit on its own (after a signal, say); panics with its
    /// log, killing it, if it still runs then.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        match self.proc.wait_within(within) {
            Some(s) => s,
            None => {
                self.proc.kill();
                panic!(
                    "cachekitd did not exit within {within:?}; log:\n{}",
                    self.log()
                )
            }
        }
    }

    /// Starts it again in the same directory with the same flags (a fresh log file; not the
    /// `configure` step of [`Site::spawn`]), after killing it (SIGKILL) if it still runs, and
    /// waits until it answers on its socket.
    pub fn restart(&mut self) {
        self.proc.kill();
        let (proc, log) = self.site.launch(&self.flags, |_| {});
        self.proc = proc;
        self.log = log;
        self.wait_ready();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.proc.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- cachekitd log ({}) ----\n{}",
                self.log.display(),
                self.log()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_starts_in_its_site_and_goes_when_dropped() {
        let site = Site::new("kit: start/stop");
        assert!(site.instance().len() <= 64 - 2, "{}", site.instance());
        let mut d = site.start(&[]);
        assert_eq!(d.socket(), site.socket());
        assert!(d.socket().starts_with(site.dir()));
        assert!(d.is_running());
        let pid = d.pid();
        let status = d.stop();
        assert!(status.success(), "{status}; log:\n{}", d.log());
        assert!(!site.socket().exists(), "a clean stop removes the socket");
        d.restart();
        assert_ne!(d.pid(), pid);
        drop(d);
        let dir = site.dir().to_path_buf();
        drop(site);
        assert!(!dir.exists(), "the site's directory is removed with it");
    }

    #[test]
    fn kill_9_leaves_the_socket_and_a_restart_replaces_it() {
        use std::os::unix::process::ExitStatusExt;
        let mut d = Daemon::start("kit-kill9", &[]);
        let socket = d.socket().to_path_buf();
        assert_eq!(d.kill_9().signal(), Some(9));
        assert!(socket.exists());
        assert!(!d.is_running());
        d.restart();
        UnixStream::connect(&socket).expect("the restarted daemon listens");
        let log = d.log();
        assert!(
            log.contains(d.instance()),
            "the log is the new daemon's: {log}"
        );
    }

    #[test]
    fn the_defaults_give_way_to_flags() {
        let site = Site::new("kit-flags");
        let (status, log) = site.run_to_exit(&["--memory", "16XB"]);
        assert_eq!(status.code(), Some(2), "{log}");
        assert!(log.contains("16XB"), "{log}");
        let other = format!("{}-b", site.instance());
        let d = site.start(&["--instance", &other]);
        assert_eq!(d.socket(), site.dir().join(format!("{other}.sock")));
    }
}
