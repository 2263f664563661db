//! A write Redis applied but whose answer this host never got is sent again by the queue's
//! drainer. The resend must not apply it a second time: by then another host may have
//! written the key, and applying the older write again would overwrite that later write in
//! Redis (and every host would then serve the older value).
//!
//! Host A reaches Redis through a TCP forwarder that can hold what flows each way: the
//! answer to A's write is held (A times out), A's resends are held until host B has written
//! the key, then everything flows again.

mod common;
mod redis_util;

use common::Site;
use redis_util::*;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

const NS: &str = "resend";

/// A TCP forwarder to a Redis port; `requests` and `answers` hold each direction while set.
struct Forwarder {
    port: u16,
    requests: Arc<AtomicBool>,
    answers: Arc<AtomicBool>,
}

impl Forwarder {
    fn start(to: u16) -> Forwarder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding the forwarder");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(AtomicBool::new(false));
        let (up_hold, down_hold) = (requests.clone(), answers.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                pump(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    up_hold.clone(),
                );
                pump(server, client, down_hold.clone());
            }
        });
        Forwarder {
            port,
            requests,
            answers,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Copies `from` to `to`; while `hold` is set, what was read waits.
fn pump(mut from: TcpStream, mut to: TcpStream, hold: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            while hold.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            if to.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

/// The value of `key`'s record in Redis, read directly (not through a host).
fn in_redis(redis: &Redis, key: &str) -> Option<Vec<u8>> {
    let raw: Option<Vec<u8>> = redis::cmd("GET")
        .arg(cachekit_redis::keys::NsKeys::new(NS).value(key.as_bytes()))
        .query(&mut redis.conn())
        .expect("GET");
    raw.map(|r| cachekit_redis::Record::decode(&r).expect("a record").value)
}

fn resent_write_keeps_the_later_write_of_another_host(mode: &str) {
    let redis = Redis::start();
    let forwarder = Forwarder::start(redis.port());
    let (site_a, site_b) = (Site::new("resend-a"), Site::new("resend-b"));
    let host_a = start_host(
        &site_a,
        &forwarder.url(),
        &[
            "--redis-write-mode",
            mode,
            "--redis-timeout-ms",
            "300",
            "--redis-sweep-ms",
            "0",
        ],
    );
    let host_b = start_host(&site_b, &redis.url(), &["--redis-sweep-ms", "0"]);
    let mut a = host_a.client("a");
    let mut b = host_b.client("b");

    set(&mut a, NS, "k", b"first", &[]);
    assert!(
        eventually(PATIENCE, || in_redis(&redis, "k").as_deref()
            == Some(b"first")),
        "A's first write never reached Redis"
    );

    // A's next write reaches Redis and is applied, but its answer is held: A times out.
    forwarder.answers.store(true, Ordering::SeqCst);
    set(&mut a, NS, "k", b"a-old", &[]);
    assert!(
        eventually(PATIENCE, || in_redis(&redis, "k").as_deref()
            == Some(b"a-old")),
        "A's write never reached Redis"
    );
    // From now on A's sends wait (A will send the write again after its timeout).
    forwarder.requests.store(true, Ordering::SeqCst);
    // B writes the key after A's write was applied.
    set(&mut b, NS, "k", b"b-new", &[]);
    assert_eq!(in_redis(&redis, "k").as_deref(), Some(&b"b-new"[..]));
    assert!(
        eventually(PATIENCE, || a.stat("redis_timeouts") >= 1),
        "A never timed out"
    );
    std::thread::sleep(Duration::from_millis(100)); // a resend waits in the forwarder
    forwarder.requests.store(false, Ordering::SeqCst);
    forwarder.answers.store(false, Ordering::SeqCst);

    assert!(
        eventually(PATIENCE, || a.stat("redis_queue_len") == 0),
        "A's queue never drained"
    );
    assert_eq!(
        in_redis(&redis, "k").as_deref(),
        Some(&b"b-new"[..]),
        "A's resend overwrote B's later write in Redis ({mode})"
    );
    assert!(
        a.stat("redis_resends_skipped") >= 1,
        "the resend was skipped"
    );
    for (name, host) in [("A", &mut a), ("B", &mut b)] {
        assert!(
            eventually(PATIENCE, || fetch(host, NS, "k").as_deref()
                == Some(b"b-new")),
            "host {name} does not serve B's later write ({mode})"
        );
    }
}

#[test]
fn a_queued_batch_sent_again_keeps_another_hosts_later_write() {
    resent_write_keeps_the_later_write_of_another_host("behind");
}

#[test]
fn a_write_through_write_sent_again_keeps_another_hosts_later_write() {
    resent_write_keeps_the_later_write_of_another_host("through");
}
