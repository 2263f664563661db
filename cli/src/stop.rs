//! `cachekit stop`: stops one daemon instance, and only that one.
//!
//! The daemon writes its pid into `<dir>/<instance>.lock` (a `pid=N` line) once it holds the
//! lock. Before signalling, stop checks that the lock is held (a daemon is running that
//! instance: a file left by a dead one is not) and that the pid is a `cachekitd`
//! (`/proc/PID/comm`); then it sends SIGTERM and waits, at most `--timeout`, for the lock to
//! be released (the daemon's exit).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cachekit_client::Error;
use serde_json::json;

use crate::output::Outcome;
use crate::CliError;

/// The lock file of the instance: beside `--socket` when given, else in the first candidate
/// directory that holds one.
pub fn lock_path(socket: Option<&Path>, instance: &str) -> PathBuf {
    let name = format!("{instance}.lock");
    if let Some(s) = socket {
        return s
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("{}.lock", socket_instance(s, instance)));
    }
    let dirs = cachekit_proto::paths::candidate_dirs();
    dirs.iter()
        .map(|d| d.join(&name))
        .find(|p| p.exists())
        .unwrap_or_else(|| dirs[0].join(&name))
}

/// The instance a socket path names (`<dir>/<instance>.sock`), else `instance`.
fn socket_instance<'a>(socket: &'a Path, instance: &'a str) -> &'a str {
    socket
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_suffix(".sock"))
        .unwrap_or(instance)
}

fn unavailable(message: String) -> CliError {
    CliError::Client(Error::Unavailable { message })
}

/// Whether a process holds the lock on `f` (checked by trying to take it; a lock taken
/// here is released at once).
fn held(f: &File) -> bool {
    use rustix::fs::{flock, FlockOperation};
    match flock(f, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {
            let _ = flock(f, FlockOperation::Unlock);
            false
        }
        Err(_) => true,
    }
}

pub fn stop(socket: Option<&Path>, instance: &str, timeout: Duration) -> Result<Outcome, CliError> {
    let path = lock_path(socket, instance);
    // With --socket, the instance is the one it names, whatever --instance says.
    let instance = socket.map_or(instance, |s| socket_instance(s, instance));
    let shown = path.display();
    let f = File::open(&path).map_err(|e| {
        unavailable(format!(
            "no cachekitd instance {instance:?} here: cannot open {shown}: {e} (pass --instance, --socket or CACHEKIT_DIR)"
        ))
    })?;
    if !held(&f) {
        return Err(unavailable(format!(
            "cachekitd instance {instance:?} is not running ({shown} is not locked)"
        )));
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| unavailable(format!("cannot read {shown}: {e}")))?;
    let pid: i32 = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("pid="))
        .and_then(|p| p.parse().ok())
        .filter(|&p| p > 0)
        .ok_or_else(|| {
            unavailable(format!(
                "{shown} names no pid (a cachekitd older than `cachekit stop`): stop it with its service manager or by its pid"
            ))
        })?;
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if comm.trim() != "cachekitd" {
        return Err(unavailable(format!(
            "{shown} names pid {pid}, which is {} and not cachekitd: not signalling it",
            if comm.is_empty() {
                "not visible here".to_string()
            } else {
                format!("{:?}", comm.trim())
            }
        )));
    }
    let p = rustix::process::Pid::from_raw(pid).expect("checked above 0");
    rustix::process::kill_process(p, rustix::process::Signal::TERM).map_err(|e| {
        CliError::Client(Error::NotPermitted {
            message: format!("cannot signal cachekitd pid {pid}: {e} (run as its user or root)"),
        })
    })?;
    let deadline = Instant::now() + timeout;
    while held(&f) {
        if Instant::now() >= deadline {
            return Err(unavailable(format!(
                "sent SIGTERM to cachekitd pid {pid} (instance {instance:?}); it still runs after {timeout:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Outcome::done(
        json!({"ok": true, "instance": instance, "pid": pid}),
        format!("stopped cachekitd instance {instance} (pid {pid})"),
    ))
}
