//! No invalidation is lost across a Redis disconnect or a daemon restart: host A keeps
//! writing and invalidating while host B's Redis connections are killed (CLIENT KILL USER),
//! and while daemon B is down (kill -9) and restarting. A checker then reads every key on B
//! and accepts only the latest value or a miss: never a value A replaced or invalidated.

mod common;
mod redis_util;

use common::{Client, Site};
use redis_util::*;

const NS: &str = "replay";
const KEYS: usize = 16;

/// What A last did to each key: `Some(value)` set, `None` invalidated.
struct Model {
    expected: Vec<Option<Vec<u8>>>,
}

impl Model {
    fn key(i: usize) -> String {
        format!("k{i}")
    }

    fn tag(i: usize) -> String {
        format!("g/{i}")
    }

    fn set(&mut self, a: &mut Client, i: usize, value: &str) {
        set(a, NS, &Self::key(i), value.as_bytes(), &[&Self::tag(i)]);
        self.expected[i] = Some(value.as_bytes().to_vec());
    }

    /// Invalidates the parent tag `g`: hierarchically, every key.
    fn invalidate_all(&mut self, a: &mut Client) {
        invalidate(a, NS, &["g"]);
        for e in &mut self.expected {
            *e = None;
        }
    }

    fn invalidate_one(&mut self, a: &mut Client, i: usize) {
        invalidate(a, NS, &[&Self::tag(i)]);
        self.expected[i] = None;
    }

    /// The keys B's table holds with a value other than the latest (stale reads).
    fn stale_in_table(&self, b: &Client) -> Vec<String> {
        (0..KEYS)
            .filter_map(|i| {
                let got = in_table(b, NS, &Self::key(i))?;
                (self.expected[i].as_deref() != Some(got.as_slice()))
                    .then(|| format!("{}={}", Self::key(i), String::from_utf8_lossy(&got)))
            })
            .collect()
    }

    /// Reads every key on B the way an application does (table, else FETCH): each must be
    /// the latest value. A miss where a value is expected is read again until the value comes
    /// (B's Redis connections were just killed: its first GET on a fresh connection may fail,
    /// and a failed GET is answered as a miss, which is never stale); any other value fails.
    fn check_reads(&self, b: &mut Client) {
        for i in 0..KEYS {
            let mut got = fetch(b, NS, &Self::key(i));
            if got.is_none() && self.expected[i].is_some() {
                eventually(PATIENCE, || {
                    got = fetch(b, NS, &Self::key(i));
                    got.is_some()
                });
            }
            assert_eq!(
                got.as_deref(),
                self.expected[i].as_deref(),
                "stale or wrong read of {} on B",
                Self::key(i)
            );
        }
    }
}

#[test]
fn invalidations_made_while_b_is_disconnected_or_restarting_are_not_lost() {
    let redis = Redis::start();
    redis.add_user("hostb", "secret-b");
    let (site_a, site_b) = (Site::new("replay-a"), Site::new("replay-b"));
    let host_a = start_host(&site_a, &redis.url(), &[]);
    let url_b = redis.url_as("hostb", "secret-b");
    let mut host_b = start_host(&site_b, &url_b, &[]);
    assert!(
        !host_b.log().contains("secret-b"),
        "the password must never be logged"
    );
    let mut a = host_a.client("writer");
    let mut b = host_b.client("reader");
    let mut m = Model {
        expected: vec![None; KEYS],
    };
    for i in 0..KEYS {
        m.set(&mut a, i, "v0");
    }
    m.check_reads(&mut b); // fills B's table
    assert_eq!(b.stat("fills"), KEYS as u64);

    // Phase 1: B's Redis connections are killed again and again while A writes.
    let mut killed = 0;
    for round in 1..=30 {
        killed += redis.kill_user("hostb");
        let i = round % KEYS;
        if round % 10 == 0 {
            m.invalidate_all(&mut a);
        } else {
            m.invalidate_one(&mut a, i);
        }
        m.set(&mut a, (i + 5) % KEYS, &format!("v{round}"));
        if round % 3 == 0 {
            std::thread::sleep(std::time::Duration::from_millis(15));
        }
    }
    assert!(killed > 0, "CLIENT KILL USER hostb found B's connections");
    assert!(
        eventually(PATIENCE, || m.stale_in_table(&b).is_empty()),
        "B's table still serves replaced or invalidated values after the disconnects: {:?}\n{:?}",
        m.stale_in_table(&b),
        b.stats()
    );
    m.check_reads(&mut b);
    let stats = b.stats();
    println!(
        "after {killed} killed connections: doorbell reconnects {}, events replayed from the stream {}, flushes for gaps {}",
        stats["redis_doorbell_reconnects"], stats["replayed"], stats["flushes_for_gap"]
    );
    assert!(stats["redis_doorbell_reconnects"] >= 1);
    assert!(
        stats["replayed"] >= 1,
        "events missed by the doorbell were replayed from the stream"
    );
    assert_eq!(
        stats["flushes_for_gap"], 0,
        "nothing was trimmed: replay, not a flush"
    );

    // Phase 2: daemon B dies; A writes and invalidates while it is down; B restarts.
    drop(b);
    host_b.kill_9();
    for i in 0..KEYS {
        if i % 2 == 0 {
            m.invalidate_one(&mut a, i);
        } else {
            m.set(&mut a, i, "while-b-was-down");
        }
    }
    let host_b = start_host(&site_b, &url_b, &[]);
    let mut b = host_b.client("reader-after-restart");
    m.check_reads(&mut b);
    assert!(m.stale_in_table(&b).is_empty());
    // And B follows again: A's next invalidation reaches B's new table.
    // (Across hosts, a write is seen after the propagation delay, not at once.)
    m.set(&mut a, 1, "after-restart");
    assert!(
        eventually(PATIENCE, || fetch(&mut b, NS, "k1").as_deref()
            == Some(&b"after-restart"[..])),
        "the restarted B does not follow A's writes"
    );
    m.invalidate_one(&mut a, 1);
    assert!(
        eventually(PATIENCE, || in_table(&b, NS, "k1").is_none()),
        "the restarted B does not follow A's invalidations"
    );
    m.check_reads(&mut b);
}

#[test]
fn events_trimmed_before_b_read_them_make_b_clear_the_namespace() {
    let redis = Redis::start();
    let (site_a, site_b) = (Site::new("gap-a"), Site::new("gap-b"));
    let flags = ["--redis-stream-maxlen", "10"];
    let host_a = start_host(&site_a, &redis.url(), &flags);
    let mut host_b = start_host(&site_b, &redis.url(), &flags);
    let mut a = host_a.client("writer");
    let mut b = host_b.client("reader");
    let mut m = Model {
        expected: vec![None; KEYS],
    };
    for i in 0..KEYS {
        m.set(&mut a, i, "v0");
    }
    m.check_reads(&mut b);
    // B stops reading (the whole daemon is frozen) while A writes far more events than the
    // stream keeps: the ones B needs are trimmed away.
    host_b.pause();
    m.invalidate_one(&mut a, 3);
    for round in 0..400 {
        m.set(&mut a, 7, &format!("v{round}"));
    }
    let len: u64 = redis::cmd("XLEN")
        .arg("ck:{replay}:inv")
        .query(&mut redis.conn())
        .expect("XLEN");
    assert!(len < 400, "the stream was trimmed ({len} entries left)");
    host_b.resume();
    assert!(
        eventually(PATIENCE, || b.stat("flushes_for_gap") >= 1),
        "B never noticed the gap: {:?}",
        b.stats()
    );
    assert!(
        m.stale_in_table(&b).is_empty(),
        "{:?}",
        m.stale_in_table(&b)
    );
    m.check_reads(&mut b);
}
