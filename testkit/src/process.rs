//! Child processes of the kit: killed (SIGKILL) and reaped when dropped, and listed while
//! they run, so that a [`watchdog`](crate::watchdog()) that gives up on a hung test can kill
//! the processes that test started.
//!
//! A process is listed from its spawn until it is reaped, and is reaped only with the list
//! locked (or after it left the list): a listed pid is always our unreaped child, so killing
//! it can never hit an unrelated process that reused the pid.

use std::cell::Cell;
use std::io;
use std::process::{Child, Command, ExitStatus};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

/// A running child: its pid and the watchdog scope it was started in.
struct Listed {
    pid: u32,
    scope: u64,
}

static LIVE: Mutex<Vec<Listed>> = Mutex::new(Vec::new());

thread_local! {
    /// The watchdog scope of this thread; 0 outside any watchdog.
    static SCOPE: Cell<u64> = const { Cell::new(0) };
}

fn live() -> MutexGuard<'static, Vec<Listed>> {
    // A panic while the list was locked cannot leave it inconsistent (every change is one
    // push or one remove), so a poisoned lock is used as it is.
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Makes the processes this thread starts from now on belong to watchdog `scope`.
pub(crate) fn enter_scope(scope: u64) {
    SCOPE.with(|s| s.set(scope));
}

/// SIGKILLs every listed process started in watchdog `scope`; returns their pids. Their
/// owners still reap them.
pub(crate) fn kill_scope(scope: u64) -> Vec<u32> {
    let live = live();
    let mut killed = Vec::new();
    for l in live.iter().filter(|l| l.scope == scope) {
        if let Some(pid) = Pid::from_raw(l.pid as i32) {
            if kill_process(pid, Signal::KILL).is_ok() {
                killed.push(l.pid);
            }
        }
    }
    killed
}

/// One child process: running, or exited with a known status.
pub(crate) struct Proc {
    /// `None` once reaped.
    child: Option<Child>,
    pid: u32,
    status: Option<ExitStatus>,
    /// What it is, for messages: `cachekitd`, `redis-server`.
    what: &'static str,
}

impl Proc {
    /// Spawns `cmd` and lists the child.
    pub(crate) fn spawn(cmd: &mut Command, what: &'static str) -> io::Result<Proc> {
        let mut live = live();
        let child = cmd.spawn()?;
        let pid = child.id();
        live.push(Listed {
            pid,
            scope: SCOPE.with(Cell::get),
        });
        Ok(Proc {
            child: Some(child),
            pid,
            status: None,
            what,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// The exit status, if it exited (reaping it then).
    pub(crate) fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        let mut live = live();
        let child = self
            .child
            .as_mut()
            .expect("a process without status is not reaped");
        match child.try_wait() {
            Ok(Some(status)) => {
                live.retain(|l| l.pid != self.pid);
                self.child = None;
                self.status = Some(status);
                Some(status)
            }
            Ok(None) => None,
            Err(e) => panic!("waiting for {} (pid {}): {e}", self.what, self.pid),
        }
    }

    /// Waits up to `within` for it to exit; its status, or `None` if it still runs.
    pub(crate) fn wait_within(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends `sig`; an error if it already exited.
    pub(crate) fn signal(&mut self, sig: Signal) -> Result<(), String> {
        if let Some(status) = self.try_wait() {
            return Err(format!(
                "{} (pid {}) already exited ({status})",
                self.what, self.pid
            ));
        }
        let pid = Pid::from_raw(self.pid as i32).expect("a child's pid is positive");
        kill_process(pid, sig)
            .map_err(|e| format!("signalling {} (pid {}): {e}", self.what, self.pid))
    }

    /// SIGKILL (unless it already exited), and reap. Its exit status.
    pub(crate) fn kill(&mut self) -> ExitStatus {
        if let Some(status) = self.status {
            return status;
        }
        // Off the list first: it is reaped below without the lock.
        live().retain(|l| l.pid != self.pid);
        let mut child = self
            .child
            .take()
            .expect("a process without status is not reaped");
        // SIGKILL works on a stopped process too; an already exited one ignores it.
        let _ = child.kill();
        let status = child
            .wait()
            .unwrap_or_else(|e| panic!("reaping {} (pid {}): {e}", self.what, self.pid));
        self.status = Some(status);
        status
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.status.is_none() {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sleeper() -> Proc {
        Proc::spawn(Command::new("sleep").arg("600"), "sleep").expect("spawning sleep")
    }

    fn listed(pid: u32) -> bool {
        live().iter().any(|l| l.pid == pid)
    }

    #[test]
    fn a_process_is_listed_until_reaped_and_killed_on_drop() {
        let mut p = sleeper();
        let pid = p.pid();
        assert!(listed(pid));
        assert_eq!(p.try_wait(), None);
        p.signal(Signal::STOP).unwrap();
        p.signal(Signal::CONT).unwrap();
        drop(p);
        assert!(!listed(pid));
        // Reaped: no process (not even a zombie) has the pid now, unless it was reused.
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        assert!(!stat.starts_with(&format!("{pid} (sleep)")), "{stat}");
    }

    #[test]
    fn kill_reports_the_signal_and_signalling_an_exited_process_is_an_error() {
        use std::os::unix::process::ExitStatusExt;
        let mut p = sleeper();
        assert_eq!(p.kill().signal(), Some(9));
        assert_eq!(p.kill().signal(), Some(9), "kill is idempotent");
        let e = p.signal(Signal::TERM).unwrap_err();
        assert!(e.contains("already exited"), "{e}");
    }

    #[test]
    fn kill_scope_kills_only_that_scope() {
        enter_scope(u64::MAX - 1);
        let mut mine = sleeper();
        enter_scope(0);
        let mut other = sleeper();
        assert_eq!(kill_scope(u64::MAX - 1), [mine.pid()]);
        assert!(mine.wait_within(Duration::from_secs(5)).is_some());
        assert_eq!(other.try_wait(), None);
    }
}
