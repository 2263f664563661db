//! A real `cachekitd` for the integration tests, and raw protocol connections to it.
//!
//! Every daemon runs from the binary Cargo built (`CARGO_BIN_EXE_cachekitd`) in a temp dir of
//! its own, under an instance name of its own, so tests never meet each other or a daemon
//! already running on the machine. It is killed (SIGKILL) when dropped; a failing test prints
//! its log. Every wait is bounded by [`WATCHDOG`]: a broken daemon fails a test, never hangs it.

#![allow(dead_code)] // each test file uses its own part of these helpers

use cachekit_proto::fdpass::recv_with_fds;
use cachekit_proto::{
    encode_request, read_reply, ErrorCode, Hello, HelloOk, Limits, Message, RecvError, Reply,
    Request,
};
use cachekit_shm::Reader;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The longest any test waits for anything: a reply, a socket, a process exit.
pub const WATCHDOG: Duration = Duration::from_secs(5);

/// The memory every test daemon gets: small, so many can run side by side.
pub const MEMORY: &str = "16MiB";

static NEXT: AtomicUsize = AtomicUsize::new(0);

/// A runtime directory and an instance name, both private to one test. Several daemons can be
/// started on one site in turn (restart stories); it must outlive them.
pub struct Site {
    dir: tempfile::TempDir,
    pub instance: String,
    starts: AtomicUsize,
}

impl Site {
    /// A fresh site; `story` goes into the instance name, to make logs readable.
    pub fn new(story: &str) -> Site {
        let dir = tempfile::Builder::new()
            .prefix("cachekitd-test-")
            .tempdir()
            .expect("creating a temp dir");
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let story: String = story
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        let instance = format!("t{}-{n}-{story}", std::process::id());
        Site {
            dir,
            instance,
            starts: AtomicUsize::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Where the daemon of this site listens.
    pub fn socket(&self) -> PathBuf {
        self.dir()
            .join(cachekit_proto::paths::socket_name(&self.instance))
    }

    /// `cachekitd --dir <site> --instance <site> --memory 16MiB --log debug <extra>`, with no
    /// `CACHEKIT_*` or systemd variables inherited, and its output going to a fresh log file in
    /// the site.
    pub fn command(&self, extra: &[&str]) -> (Command, PathBuf) {
        let n = self.starts.fetch_add(1, Ordering::Relaxed);
        let log = self.dir().join(format!("cachekitd-{n}.log"));
        let out = File::create(&log).expect("creating the daemon log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cachekitd"));
        cmd.arg("--dir").arg(self.dir());
        // The site's settings, unless the test gives its own (a flag may appear only once).
        for (flag, value) in [
            ("--instance", self.instance.as_str()),
            ("--memory", MEMORY),
            ("--log", "debug"),
        ] {
            if !extra.contains(&flag) {
                cmd.args([flag, value]);
            }
        }
        cmd.args(extra)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("dup the log"))
            .stderr(out);
        for (k, _) in std::env::vars_os() {
            let k = k.to_string_lossy().into_owned();
            if k.starts_with("CACHEKIT_") || k == "NOTIFY_SOCKET" || k == "WATCHDOG_USEC" {
                cmd.env_remove(k);
            }
        }
        (cmd, log)
    }

    /// Starts a daemon on this site and waits (bounded) until it accepts connections.
    pub fn start(&self, extra: &[&str]) -> Daemon {
        let (mut cmd, log) = self.command(extra);
        let child = cmd.spawn().expect("spawning cachekitd");
        let instance = extra
            .iter()
            .position(|a| *a == "--instance")
            .map_or(self.instance.as_str(), |i| extra[i + 1]);
        let mut d = Daemon {
            child: Some(child),
            socket: self
                .dir()
                .join(cachekit_proto::paths::socket_name(instance)),
            log,
            site: None,
        };
        d.wait_ready();
        d
    }

    /// Runs a daemon that is expected to refuse to start: its exit status and its output.
    pub fn run_to_exit(&self, extra: &[&str]) -> (ExitStatus, String) {
        let (mut cmd, log) = self.command(extra);
        let mut child = cmd.spawn().expect("spawning cachekitd");
        let status = wait_bounded(&mut child).unwrap_or_else(|| {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "cachekitd {extra:?} was expected to exit but still ran after {WATCHDOG:?}; log:\n{}",
                read_log(&log)
            )
        });
        (status, read_log(&log))
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(no log: {e})"))
}

/// Waits up to [`WATCHDOG`] for `child` to exit.
fn wait_bounded(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        if let Some(s) = child.try_wait().expect("waiting for cachekitd") {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A running `cachekitd`; SIGKILLed and reaped on drop.
pub struct Daemon {
    child: Option<Child>,
    pub socket: PathBuf,
    log: PathBuf,
    // Last: the site (and its temp dir) goes only after the daemon is dead.
    site: Option<Site>,
}

impl Daemon {
    /// A daemon on a site of its own.
    pub fn start(story: &str, extra: &[&str]) -> Daemon {
        let site = Site::new(story);
        let mut d = site.start(extra);
        d.site = Some(site);
        d
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + WATCHDOG;
        loop {
            if let Some(s) = self.child_mut().try_wait().expect("waiting for cachekitd") {
                panic!("cachekitd exited at start ({s}); log:\n{}", self.log());
            }
            // A socket file left by a killed daemon refuses connections: wait for the new one.
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "cachekitd did not accept connections on {} within {WATCHDOG:?}; log:\n{}",
                    self.socket.display(),
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("the daemon was already reaped")
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .expect("the daemon was already reaped")
            .id()
    }

    pub fn log(&self) -> String {
        read_log(&self.log)
    }

    /// A raw connection, before HELLO.
    pub fn connect(&self) -> Conn {
        Conn::open(&self.socket)
    }

    /// A connection that said HELLO and mapped the table it was handed.
    pub fn client(&self, name: &str) -> Client {
        Client::attach(self.connect(), name)
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_child(self.child.as_ref().expect("running"));
        rustix::process::kill_process(pid, sig).expect("signalling cachekitd");
    }

    /// Waits (bounded) for the daemon to exit on its own, and reaps it.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let status = wait_bounded(self.child_mut());
        match status {
            Some(s) => {
                self.child = None;
                s
            }
            None => panic!(
                "cachekitd did not exit within {WATCHDOG:?}; log:\n{}",
                self.log()
            ),
        }
    }

    /// SIGKILL, and reap.
    pub fn kill_9(&mut self) -> ExitStatus {
        self.signal(rustix::process::Signal::KILL);
        self.wait_exit()
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

/// One raw protocol connection, with read and write timeouts of [`WATCHDOG`].
pub struct Conn {
    pub stream: UnixStream,
    /// Limits for decoding replies: the defaults until HELLO_OK brings the daemon's own.
    pub limits: Limits,
    next_id: u32,
}

impl Conn {
    pub fn open(socket: &Path) -> Conn {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", socket.display()));
        stream.set_read_timeout(Some(WATCHDOG)).unwrap();
        stream.set_write_timeout(Some(WATCHDOG)).unwrap();
        Conn {
            stream,
            limits: Limits::DEFAULT,
            next_id: 1,
        }
    }

    /// The next request id (clients number from 1; 0 is the daemon's connection-level id).
    pub fn next_id(&mut self) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Encodes and sends `req` without checking any limit; returns its request id.
    pub fn send(&mut self, req: &Request) -> u32 {
        let id = self.next_id();
        let mut buf = Vec::new();
        encode_request(req, id, &mut buf).expect("encoding a request");
        self.send_raw(&buf);
        id
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("writing to cachekitd");
    }

    /// The next reply, or why there is none.
    pub fn try_reply(&mut self) -> Result<(u32, Reply), RecvError> {
        read_reply(&mut self.stream, &self.limits)
    }

    /// The next reply (panics if none arrives within the watchdog).
    pub fn reply(&mut self) -> (u32, Reply) {
        self.try_reply()
            .unwrap_or_else(|e| panic!("no reply from cachekitd: {e}"))
    }

    /// One request, one reply, with the request id echoed.
    pub fn call(&mut self, req: &Request) -> Reply {
        let id = self.send(req);
        let (got, reply) = self.reply();
        assert_eq!(
            got, id,
            "the reply to {req:?} carries another request id: {reply:?}"
        );
        reply
    }

    /// HELLO, answered by HELLO_OK with its file descriptors (received with `recvmsg`).
    pub fn hello(&mut self, name: &str) -> (u32, Reply, Vec<OwnedFd>) {
        let id = self.send(&Request::Hello(Hello::new(name)));
        let (frame, fds) = recv_with_fds(&self.stream, &self.limits)
            .unwrap_or_else(|e| panic!("no reply to HELLO: {e}"));
        let reply = match frame.message {
            Message::Reply(r) => r,
            Message::Request(r) => panic!("the daemon sent a request: {r:?}"),
        };
        assert_eq!(
            frame.request_id, id,
            "the reply to HELLO carries another request id"
        );
        if let Reply::HelloOk(ok) = &reply {
            self.limits = ok.limits;
        }
        (frame.request_id, reply, fds)
    }

    /// Asserts that the daemon closed this connection, without sending anything more: the
    /// next read sees end of stream (or a reset, when bytes we sent were left unread).
    pub fn expect_closed(&mut self) {
        let mut b = [0u8; 64];
        match self.stream.read(&mut b) {
            Ok(0) => {}
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
            Ok(n) => panic!(
                "expected the daemon to close the connection; it sent {:?}",
                &b[..n]
            ),
            Err(e) => {
                panic!("expected the daemon to close the connection within {WATCHDOG:?}: {e}")
            }
        }
    }

    /// Every counter of STATS.
    pub fn stats(&mut self) -> HashMap<String, u64> {
        match self.call(&Request::Stats) {
            Reply::Stats { counters } => counters.into_iter().collect(),
            other => panic!("STATS answered {other:?}"),
        }
    }

    /// One counter of STATS.
    pub fn stat(&mut self, name: &str) -> u64 {
        let stats = self.stats();
        *stats
            .get(name)
            .unwrap_or_else(|| panic!("STATS has no {name:?}: {stats:?}"))
    }

    /// PONG's epoch.
    pub fn ping(&mut self) -> u64 {
        match self.call(&Request::Ping) {
            Reply::Pong { epoch, .. } => epoch,
            other => panic!("PING answered {other:?}"),
        }
    }
}

/// A connection after HELLO_OK, with the table mapped the way a client maps it.
pub struct Client {
    pub conn: Conn,
    pub hello: HelloOk,
    pub reader: Reader,
    pub fds: Vec<OwnedFd>,
}

impl Client {
    pub fn attach(mut conn: Conn, name: &str) -> Client {
        let (_, reply, fds) = conn.hello(name);
        let Reply::HelloOk(hello) = reply else {
            panic!("HELLO answered {reply:?}")
        };
        assert_eq!(
            fds.len(),
            2,
            "HELLO_OK carries the table and the client area"
        );
        let reader = Reader::attach(fds[0].as_fd(), Some(fds[1].as_fd()))
            .expect("mapping the table handed over in HELLO_OK");
        Client {
            conn,
            hello,
            reader,
            fds,
        }
    }
}

impl std::ops::Deref for Client {
    type Target = Conn;
    fn deref(&self) -> &Conn {
        &self.conn
    }
}

impl std::ops::DerefMut for Client {
    fn deref_mut(&mut self) -> &mut Conn {
        &mut self.conn
    }
}

/// Asserts `reply` is an ERROR with `code` whose message mentions every one of `words`.
#[track_caller]
pub fn assert_error(reply: &Reply, code: ErrorCode, words: &[&str]) {
    match reply {
        Reply::Error { code: c, message } => {
            assert_eq!(*c, code, "wrong code; message: {message}");
            for w in words {
                assert!(
                    message.contains(w),
                    "the message should name {w:?}: {message}"
                );
            }
        }
        other => panic!("expected ERROR {code:?}, got {other:?}"),
    }
}
