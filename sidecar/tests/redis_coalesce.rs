//! Many concurrent misses of one key, from several processes of one host, cost exactly one
//! Redis GET (counted by Redis itself: INFO commandstats, cmdstat_get).
//!
//! The processes are this test binary run again as children (`child_fetcher`), each with
//! several threads, all released at the same instant.

mod common;
mod redis_util;

use common::{Conn, Site};
use redis_util::*;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NS: &str = "coalesce";
const PROCESSES: usize = 4;
const THREADS: usize = 8;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as u64
}

#[test]
fn concurrent_misses_from_several_processes_cost_one_redis_get() {
    let redis = Redis::start();
    let (site_a, site_b) = (Site::new("co-writer"), Site::new("co-readers"));
    let host_a = start_host(&site_a, &redis.url(), &[]);
    let host_b = start_host(&site_b, &redis.url(), &[]);
    let mut a = host_a.client("writer");
    set(&mut a, NS, "hot", b"the hot value", &["hot"]);

    let gets_before = redis.calls("get");
    let start_at = unix_ms() + 400;
    let exe = std::env::current_exe().expect("the test binary");
    let children: Vec<_> = (0..PROCESSES)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "child_fetcher",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("CK_TEST_SOCKET", host_b.socket())
                .env("CK_TEST_START_AT", start_at.to_string())
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawning a child process")
        })
        .collect();
    let mut hits = 0;
    for c in children {
        let out = c.wait_with_output().expect("waiting for a child");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        hits += text.matches("HIT the hot value").count();
    }
    assert_eq!(hits, PROCESSES * THREADS, "every miss got the value");
    let gets = redis.calls("get") - gets_before;
    let mut b = host_b.client("observer");
    println!(
        "{} concurrent misses from {PROCESSES} processes: {gets} Redis GET, {} coalesced in the daemon, {} fills",
        PROCESSES * THREADS,
        b.stat("fetch_coalesced"),
        b.stat("fills")
    );
    assert_eq!(gets, 1, "exactly one Redis GET for the host");
    assert_eq!(b.stat("redis_gets"), 1);
}

/// Runs only as a child of the test above: `THREADS` connections FETCH the hot key at the
/// same instant and print what they got.
#[test]
fn child_fetcher() {
    let (Ok(socket), Ok(start_at)) = (
        std::env::var("CK_TEST_SOCKET"),
        std::env::var("CK_TEST_START_AT"),
    ) else {
        return; // not a child: nothing to do
    };
    let start_at: u64 = start_at.parse().expect("a time");
    let threads: Vec<_> = (0..THREADS)
        .map(|i| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut c = Conn::open(std::path::Path::new(&socket));
                let _ = c.hello(&format!("child-{i}"));
                let wait = start_at.saturating_sub(unix_ms());
                std::thread::sleep(Duration::from_millis(wait));
                fetch(&mut c, NS, "hot")
            })
        })
        .collect();
    for t in threads {
        match t.join().expect("a fetcher thread") {
            Some(v) => println!("HIT {}", String::from_utf8_lossy(&v)),
            None => println!("MISS"),
        }
    }
}
