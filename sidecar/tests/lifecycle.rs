//! The daemon's life as an operator sees it: restarts after a crash, signals, startup checks
//! and the messages they print.

mod common;

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
