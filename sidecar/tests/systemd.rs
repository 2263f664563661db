//! cachekitd under systemd's `Type=notify`: READY=1 once clients can connect, WATCHDOG=1
//! from the heartbeat when a watchdog is asked for, STOPPING=1 on SIGTERM. The "systemd" here
//! is a datagram socket the test binds, which is all the protocol is.

mod common;

use common::{Connect, Site, WATCHDOG};
use rustix::process::Signal;
use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

/// Receives notifications until one equals `want` (bounded by the watchdog).
fn expect(sock: &UnixDatagram, want: &str, seen: &mut Vec<String>) {
    let deadline = Instant::now() + WATCHDOG;
    let mut buf = [0u8; 512];
    while Instant::now() < deadline {
        sock.set_read_timeout(Some(
            deadline
                .saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1)),
        ))
        .unwrap();
        match sock.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                seen.push(msg.clone());
                if msg.lines().any(|l| l == want) {
                    return;
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                break
            }
            Err(e) => panic!("receiving notifications: {e}"),
        }
    }
    panic!("no {want:?} from cachekitd within {WATCHDOG:?}; got {seen:?}");
}

#[test]
fn ready_watchdog_and_stopping_reach_systemd() {
    let site = Site::new("sd-notify");
    let notify_path = site.dir().join("notify.sock");
    let sock = UnixDatagram::bind(&notify_path).expect("binding the notify socket");
    let mut d = site.spawn(&[], |cmd| {
        cmd.env("NOTIFY_SOCKET", &notify_path)
            .env("WATCHDOG_USEC", "200000");
    });
    let mut seen = Vec::new();

    expect(&sock, "READY=1", &mut seen);
    assert!(
        site.socket().exists(),
        "READY=1 came before the socket existed"
    );
    // WATCHDOG_USEC = 200 ms: pings at least every 100 ms, from the heartbeat thread.
    expect(&sock, "WATCHDOG=1", &mut seen);
    expect(&sock, "WATCHDOG=1", &mut seen);

    d.signal(Signal::TERM);
    expect(&sock, "STOPPING=1", &mut seen);
    let status = d.wait_exit(WATCHDOG);
    assert!(status.success(), "{status}");
}

#[test]
fn without_notify_socket_the_daemon_runs() {
    // The test kit strips NOTIFY_SOCKET and WATCHDOG_USEC; the daemon must simply run.
    let d = common::Daemon::start("no-systemd", &[]);
    let deadline = Instant::now() + WATCHDOG;
    while !d.log().contains("cachekitd ready") {
        assert!(Instant::now() < deadline, "{}", d.log());
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut c = d.client("after ready");
    assert!(c.ping() > 0);
}
