//! The keeper: where the segment's memfds outlive the daemon without systemd.
//!
//! A small process (`cachekitd --keeper`, started by the first daemon of an instance, in a
//! session of its own, stdio on /dev/null, no other descriptors) that holds the memfds and maps
//! nothing. It listens on `<dir>/<instance>.keeper` (mode 0600) and answers peers of its own
//! uid only (SO_PEERCRED):
//!
//! - `G`: "give me the fds": it answers `F` with the table and client-area memfds attached
//!   (none if it holds none), and forgets them: a daemon that dies before it hands back its own
//!   (`P`), say while carrying a damaged segment, leaves nothing to carry, so a segment that
//!   kills the daemon is tried once and not at every restart. Asked again then, it answers
//!   `D` ("the last daemon took the segment and gave none back"), which the next daemon logs
//!   and starts empty on;
//! - `P` with two fds attached: "hold these instead"; it answers `K`;
//! - `Q`: it answers `K` and exits, dropping what it holds (nothing in the CLI sends it; the tests do, to stand for a reboot).
//!
//! The daemon keeps its connection open for its whole life: the keeper knows whether a daemon
//! is there. It exits when its socket file or runtime directory goes away (checked every
//! second, or a quarter of the linger if shorter), and after [`LINGER`] with no daemon
//! connected (`CACHEKIT_TEST_KEEPER_LINGER_MS` in a build with debug assertions: test-only), so a daemon stopped for good does
//! not hold its memory forever. One keeper per instance: `<dir>/<instance>.keeper.lock`
//! (flock) holds its pid.
//!
//! Why a process and not a file on tmpfs: a file cannot carry the memfd's seals (a tmpfs file
//! can be truncated under a reader, which turns its reads into SIGBUS), and a root client could
//! reopen it read-write through /proc/self/fd; the memfd the keeper holds keeps its seals.

use crate::fdpass;
use anyhow::{bail, Context, Result};
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a keeper waits with no daemon connected before it exits, dropping the segment: a
/// restart or an upgrade takes seconds; a daemon gone for this long is not coming back soon,
/// and its table should not hold the host's memory.
pub const LINGER: Duration = Duration::from_secs(15 * 60);

/// The keeper's socket.
pub fn socket_path(dir: &Path, instance: &str) -> PathBuf {
    dir.join(format!("{instance}.keeper"))
}

fn lock_path(dir: &Path, instance: &str) -> PathBuf {
    dir.join(format!("{instance}.keeper.lock"))
}

#[derive(Default)]
struct Held {
    fds: Option<(OwnedFd, OwnedFd)>,
    /// The last `G` took a segment and no `P` has followed.
    taken: bool,
    daemons: usize,
    alone_since: Option<Instant>,
}

/// [`LINGER`], or `CACHEKIT_TEST_KEEPER_LINGER_MS` (test-only, see `testhook.rs`).
fn linger() -> Duration {
    crate::testhook::millis("CACHEKIT_TEST_KEEPER_LINGER_MS").unwrap_or(LINGER)
}

/// Runs the keeper process (`cachekitd --keeper`); returns only on an error at start.
pub fn run(dir: &Path, instance: &str) -> Result<()> {
    let _ = rustix::process::setsid();
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(dir, instance))
        .context("opening the keeper lock")?;
    if rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive).is_err() {
        // Another keeper holds this instance's segment: it is the one daemons talk to.
        return Ok(());
    }
    lock.set_len(0)?;
    (&lock).write_all(format!("{}\n", std::process::id()).as_bytes())?;
    let path = socket_path(dir, instance);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).context("binding the keeper socket")?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    let ino = std::fs::metadata(&path)?.ino();
    let held = Arc::new(Mutex::new(Held {
        alone_since: Some(Instant::now()),
        ..Held::default()
    }));
    let h = held.clone();
    let linger = linger();
    let every = (linger / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    std::thread::spawn(move || loop {
        std::thread::sleep(every);
        let ours = std::fs::metadata(&path).is_ok_and(|m| m.ino() == ino);
        let lingered = h
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .alone_since
            .is_some_and(|t| t.elapsed() >= linger);
        if !ours || lingered {
            if ours {
                let _ = std::fs::remove_file(&path);
            }
            std::process::exit(0);
        }
    });
    let uid = rustix::process::getuid();
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        match rustix::net::sockopt::socket_peercred(&conn) {
            Ok(c) if c.uid == uid => {}
            _ => continue,
        }
        let held = held.clone();
        std::thread::spawn(move || serve(conn, &held));
    }
    bail!("the keeper's socket stopped accepting")
}

fn serve(mut conn: UnixStream, held: &Mutex<Held>) {
    let lock = || held.lock().unwrap_or_else(|p| p.into_inner());
    {
        let mut h = lock();
        h.daemons += 1;
        h.alone_since = None;
    }
    let mut buf = [0u8; 1];
    while let Ok((1, fds)) = fdpass::recv(&conn, &mut buf) {
        let ok = match buf[0] {
            b'G' => {
                let mut h = lock();
                match h.fds.take() {
                    Some((t, c)) => {
                        h.taken = true;
                        fdpass::send(&conn, b"F", &[t.as_fd(), c.as_fd()]).is_ok()
                    }
                    None if h.taken => fdpass::send(&conn, b"D", &[]).is_ok(),
                    None => fdpass::send(&conn, b"F", &[]).is_ok(),
                }
            }
            b'P' => {
                let mut fds = fds.into_iter();
                if let (Some(t), Some(c)) = (fds.next(), fds.next()) {
                    let mut h = lock();
                    h.fds = Some((t, c));
                    h.taken = false;
                }
                conn.write_all(b"K").is_ok()
            }
            b'Q' => {
                let _ = conn.write_all(b"K");
                std::process::exit(0);
            }
            _ => false,
        };
        if !ok {
            break;
        }
    }
    let mut h = lock();
    h.daemons -= 1;
    if h.daemons == 0 {
        h.alone_since = Some(Instant::now());
    }
}

/// A daemon's connection to its instance's keeper, held for the daemon's life.
pub struct Keeper {
    conn: UnixStream,
}

impl Keeper {
    /// Connects to the instance's keeper, starting one (this binary with `--keeper`) when none
    /// answers.
    pub fn connect_or_start(dir: &Path, instance: &str) -> Result<Keeper> {
        let path = socket_path(dir, instance);
        if let Ok(k) = Keeper::connect(&path) {
            return Ok(k);
        }
        let exe = std::env::current_exe().context("finding this program to start a keeper")?;
        let mut child = std::process::Command::new(exe)
            .arg("--keeper")
            .arg("--dir")
            .arg(dir)
            .arg("--instance")
            .arg(instance)
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("NOTIFY_SOCKET")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .context("starting the keeper")?;
        // Reaped by a thread of ours: it outlives us normally, but one that finds another
        // keeper exits at once.
        std::thread::spawn(move || child.wait());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match Keeper::connect(&path) {
                Ok(k) => return Ok(k),
                Err(e) if Instant::now() >= deadline => {
                    return Err(e.context("the keeper did not answer within 5 s"))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(5)),
            }
        }
    }

    fn connect(path: &Path) -> Result<Keeper> {
        let conn = UnixStream::connect(path)?;
        let cred = rustix::net::sockopt::socket_peercred(&conn)?;
        if cred.uid != rustix::process::getuid() {
            bail!(
                "{} belongs to uid {}, not ours: not trusting it with the segment",
                path.display(),
                cred.uid.as_raw()
            );
        }
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(Keeper { conn })
    }

    /// The memfds the keeper holds (table, client area), if any; the keeper no longer holds
    /// them after this (see `G`).
    pub fn take(&mut self) -> Result<Option<(OwnedFd, OwnedFd)>> {
        fdpass::send(&self.conn, b"G", &[])?;
        let mut buf = [0u8; 1];
        let (n, fds) = fdpass::recv(&self.conn, &mut buf)?;
        if n == 1 && buf[0] == b'D' {
            bail!("the previous daemon took the segment from the keeper and died before it handed back its own (a crash while carrying it, or a kill during the start): that segment is not tried again");
        }
        if n != 1 || buf[0] != b'F' {
            bail!("the keeper answered {:?} to G", &buf[..n]);
        }
        let mut fds = fds.into_iter();
        Ok(match (fds.next(), fds.next()) {
            (Some(t), Some(c)) => Some((t, c)),
            _ => None,
        })
    }

    /// Hands the keeper the new memfds (it drops the ones it held).
    pub fn hold(&mut self, table: impl AsFd, clients: impl AsFd) -> Result<()> {
        fdpass::send(&self.conn, b"P", &[table.as_fd(), clients.as_fd()])?;
        let mut k = [0u8; 1];
        self.conn.read_exact(&mut k)?;
        if k != *b"K" {
            bail!("the keeper answered {k:?} to P");
        }
        Ok(())
    }
}
