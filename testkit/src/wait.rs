//! Bounded waits: a watchdog around a whole test, and polls for a condition.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::process;

/// Runs the test body `f` on a thread of its own, named after the test, and fails the test
/// if `f` has not returned within `limit`: a bound against hangs (a deadlocked client, a
/// daemon that stopped answering), not a timing assertion. On timeout it kills (SIGKILL) the
/// daemons and servers `f` started through the kit on its own thread, then panics with a
/// message naming the test. A panic of `f` is passed through as it is.
pub fn watchdog<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    static NEXT_SCOPE: AtomicU64 = AtomicU64::new(1);
    let scope = NEXT_SCOPE.fetch_add(1, Ordering::Relaxed);
    let test = test_name();
    let (tx, rx) = mpsc::channel();
    let body = std::thread::Builder::new()
        .name(std::thread::current().name().unwrap_or("test").to_string())
        .spawn(move || {
            process::enter_scope(scope);
            let _ = tx.send(f());
        })
        .unwrap_or_else(|e| panic!("watchdog: starting a thread for test {test}: {e}"));
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = body.join();
            v
        }
        // `f` panicked before sending: surface its panic.
        Err(RecvTimeoutError::Disconnected) => match body.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the test body returned without sending its result"),
        },
        Err(RecvTimeoutError::Timeout) => {
            let killed = process::kill_scope(scope);
            panic!(
                "watchdog: test {test} did not finish within {limit:?} (hung?); killed the \
                 {} process(es) it started: pids {killed:?}",
                killed.len()
            )
        }
    }
}

/// The running test as `<test binary>::<test function>`, e.g. `daemon::against_the_real_daemon`
/// (libtest and nextest name each test's thread after the test).
pub fn test_name() -> String {
    let binary = std::env::current_exe()
        .ok()
        .and_then(|e| e.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            // Cargo names test executables `<target>-<16 hex digits>`.
            Some((name, hash))
                if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                name.to_string()
            }
            _ => stem,
        })
        .unwrap_or_else(|| "?".into());
    let thread = std::thread::current();
    match thread.name() {
        Some("main") | None => binary,
        Some(test) => format!("{binary}::{test}"),
    }
}

/// Calls `probe` (every 5 ms) until it returns `Some`, for at most `bound`: the bounded poll
/// that replaces a timing assertion. `None` if it never did, after one last call at the
/// deadline.
pub fn poll<T>(bound: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + bound;
    loop {
        if let Some(t) = probe() {
            return Some(t);
        }
        if Instant::now() >= deadline {
            return probe();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether `cond` held (polled every 5 ms) within `bound`.
pub fn eventually(bound: Duration, mut cond: impl FnMut() -> bool) -> bool {
    poll(bound, || cond().then_some(())).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::Proc;
    use std::process::Command;

    #[test]
    fn a_hung_test_fails_naming_itself_and_its_processes_are_killed() {
        let (tx, rx) = mpsc::channel();
        let outcome = std::panic::catch_unwind(|| {
            watchdog(Duration::from_millis(300), move || {
                let p = Proc::spawn(Command::new("sleep").arg("600"), "sleep").unwrap();
                tx.send(p.pid()).unwrap();
                // Hangs, holding the process.
                std::thread::sleep(Duration::from_secs(600));
                drop(p);
            })
        });
        let message = *outcome.unwrap_err().downcast::<String>().unwrap();
        assert!(
            message.contains("a_hung_test_fails_naming_itself_and_its_processes_are_killed"),
            "{message}"
        );
        assert!(message.contains("did not finish within 300ms"), "{message}");
        let pid = rx.recv().unwrap();
        assert!(message.contains(&format!("pids [{pid}]")), "{message}");
        // Killed: a zombie (once the signal is handled) until its hung owner reaps it.
        let state = || {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
            stat.rsplit_once(") ").unwrap().1.to_string()
        };
        assert!(
            eventually(Duration::from_secs(10), || state().starts_with('Z')),
            "{}",
            state()
        );
    }

    #[test]
    fn a_finished_test_returns_its_value_and_a_panic_passes_through() {
        assert_eq!(watchdog(Duration::from_secs(10), || 7), 7);
        let outcome = std::panic::catch_unwind(|| {
            watchdog(Duration::from_secs(10), || panic!("the body's own message"))
        });
        let message = *outcome.unwrap_err().downcast::<&str>().unwrap();
        assert_eq!(message, "the body's own message");
    }

    #[test]
    fn polls_are_bounded() {
        let start = Instant::now();
        assert!(!eventually(Duration::from_millis(50), || false));
        assert!(start.elapsed() >= Duration::from_millis(50));
        let mut n = 0;
        assert_eq!(
            poll(Duration::from_secs(10), || {
                n += 1;
                (n == 3).then_some(n)
            }),
            Some(3)
        );
    }
}
