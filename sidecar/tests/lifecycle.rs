//! The daemon's life as an operator sees it: restarts after a crash, signals, startup checks
//! and the messages they print.

mod common;

use cachekit_testkit::Signal;
use common::{Connect, Site};

/// The wait a successor logged before binding (`wait_ms=N` in its "previous daemon died"
/// line), or `None` if it did not wait.
fn logged_wait_ms(log: &str) -> Option<u64> {
    let line = log
        .lines()
        .find(|l| l.contains("a previous daemon died without stopping cleanly"))?;
    let at = line.find("wait_ms=")? + "wait_ms=".len();
    let digits: String = line[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    Some(
        digits
            .parse()
            .unwrap_or_else(|_| panic!("no number after wait_ms= in {line}")),
    )
}

/// After kill -9 the successor waits out the heartbeat timeout the dead daemon gave its
/// clients (published in the lock file), not only its own: here 3 s, though its own is 0.5 s.
/// And it publishes its own for the next one: the larger of the two is waited.
#[test]
fn after_kill_9_the_successor_waits_the_dead_daemons_heartbeat_timeout_if_larger() {
    let site = Site::new("hb-timeout");
    let mut first = site.start(&["--heartbeat-timeout-ms", "3000"]);
    assert_eq!(logged_wait_ms(&first.log()), None, "a fresh site: no wait");
    let _client = first.client("of the first");
    first.kill_9();

    let mut second = site.start(&["--heartbeat-timeout-ms", "500"]);
    assert_eq!(
        logged_wait_ms(&second.log()),
        Some(3000),
        "the first daemon's clients trusted its segment for 3 s: log:\n{}",
        second.log()
    );
    second.kill_9();

    let third = site.start(&["--heartbeat-timeout-ms", "1000"]);
    assert_eq!(
        logged_wait_ms(&third.log()),
        Some(1000),
        "the larger of the second's 500 ms and its own 1000 ms: log:\n{}",
        third.log()
    );
    let mut c = third.client("of the third");
    assert_eq!(c.ping(), c.hello.daemon_epoch);
}

/// SIGHUP (a closed terminal, a `systemctl reload`) used to kill the daemon with exit 129 and
/// leave its socket behind; it is logged and ignored.
#[test]
fn sighup_is_logged_and_ignored() {
    let mut d = cachekit_testkit::Daemon::start("sighup", &[]);
    let mut before = d.client("before");
    d.signal(Signal::HUP);
    assert!(
        cachekit_testkit::eventually(cachekit_testkit::PATIENCE, || d
            .log()
            .contains("SIGHUP ignored")),
        "the SIGHUP is logged; log:\n{}",
        d.log()
    );
    assert!(d.is_running(), "log:\n{}", d.log());
    assert_eq!(
        before.ping(),
        before.hello.daemon_epoch,
        "connections go on"
    );
    let mut after = d.client("after");
    assert_eq!(after.ping(), before.hello.daemon_epoch, "the same daemon");
    assert!(d.stop().success(), "and SIGTERM still stops it cleanly");
}

/// Physical memory, from /proc/meminfo.
fn mem_total() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: u64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .expect("MemTotal in /proc/meminfo");
    kib * 1024
}

/// A table larger than the host's memory is refused at startup with the figures (it would
/// start, and be killed once it filled).
#[test]
fn a_memory_larger_than_the_host_is_refused_with_the_figures() {
    let site = Site::new("memory-too-large");
    let too_much = format!("{}", (mem_total() * 2).div_ceil(1 << 20) << 20);
    let (status, log) = site.run_to_exit(&["--memory", &too_much]);
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains(&format!("--memory {too_much}")), "{log}");
    assert!(log.contains("MemTotal"), "{log}");
    assert!(!site.socket().exists(), "{log}");
}

/// A file where the socket goes is not a socket a dead daemon left: the daemon says what it
/// is and leaves it alone (it used to wait, delete it and start).
#[test]
fn a_file_where_the_socket_goes_is_named_and_left_alone() {
    let site = Site::new("not-a-socket");
    std::fs::write(site.socket(), b"precious").unwrap();
    let (status, log) = site.run_to_exit(&[]);
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(log.contains("is a regular file, not a socket"), "{log}");
    assert_eq!(std::fs::read(site.socket()).unwrap(), b"precious");
}

/// A bad setting is named as the user gave it: TOML key in its file, environment variable,
/// or flag.
#[test]
fn a_bad_setting_is_named_as_the_user_gave_it() {
    let site = Site::new("setting-names");
    let file = site.path("cachekitd.toml");
    // (The kit passes --memory itself: the file's `memory` is covered by config.rs's tests.)
    std::fs::write(&file, "max_value_bytes = \"abc\"\n").unwrap();
    let (status, log) = site.run_to_exit(&["--config", file.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(
        log.contains(&format!("max_value_bytes in {}", file.display())),
        "{log}"
    );
    assert!(!log.contains("--max-value-bytes"), "{log}");

    let mut d = site.spawn(&[], |c| {
        c.env("CACHEKIT_MAX_VALUE_BYTES", "lots");
    });
    let status = d.wait_exit(cachekit_testkit::PATIENCE);
    assert_eq!(status.code(), Some(2), "{}", d.log());
    assert!(d.log().contains("CACHEKIT_MAX_VALUE_BYTES"), "{}", d.log());
    assert!(!d.log().contains("--max-value-bytes"), "{}", d.log());

    let (status, log) = site.run_to_exit(&["--writer-uids", "root"]);
    assert_eq!(status.code(), Some(2), "{log}");
    assert!(log.contains("--writer-uids"), "{log}");
}

/// A startup error is printed once (it was printed through the log and again on stderr).
#[test]
fn a_startup_error_is_printed_once() {
    let site = Site::new("error-once");
    let _first = site.start(&[]);
    let (status, log) = site.run_to_exit(&[]);
    assert_eq!(status.code(), Some(1), "{log}");
    assert_eq!(
        log.matches("another cachekitd is already running").count(),
        1,
        "{log}"
    );
}
