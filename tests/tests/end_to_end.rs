//! End-to-end stories: a real `cachekitd` (own temp dir, own instance) and real client
//! processes (`cachekit-worker`, see `src/bin/cachekit-worker.rs`) acting step by step.
//!
//! No timing asserts: deadlines are checked against the wall clock each worker read around
//! its own call, and every wait is a bounded poll or a watchdog.
//!
//! Needs `cachekitd` built first: `cargo build -p cachekitd` (scripts/test does it).
#![forbid(unsafe_code)]

mod common;

use std::time::{Duration, Instant};

use cachekit_testkit::{poll, Site};
use common::{Get, Worker};

/// Daemon flags of most stories: small, and a fast heartbeat.
const FLAGS: &[&str] = &["--memory", "16MiB", "--heartbeat-ms", "50"];

#[test]
fn a_value_set_by_one_process_is_read_by_another_from_shared_memory_without_a_request() {
    let site = Site::new("hit");
    let _daemon = site.start(FLAGS);
    let mut a = Worker::connect("A", site.dir(), &site.socket(), "app");
    let mut b = Worker::connect("B", site.dir(), &site.socket(), "app");
    let attached = b.requests();
    assert_eq!(attached, 1, "connecting is one HELLO");

    a.set("user:1", "alice", "");
    for i in 0..1000 {
        let g = b.get("user:1");
        assert_eq!(g.value(), Some("alice"), "hit {i}: {g:?}");
        assert_eq!(g.source.as_deref(), Some("segment"), "hit {i}: {g:?}");
        assert_eq!(
            g.requests, attached,
            "hit {i} sent a request over the socket: {g:?}"
        );
    }

    // An overwrite in A is seen by B's very next read, still without a request.
    a.set("user:1", "bob", "");
    let g = b.get("user:1");
    assert_eq!(g.value(), Some("bob"));
    assert_eq!(g.requests, attached);
    assert_eq!(b.local("fetches"), 0, "B never asked the daemon");
    assert!(b.local("segment_hits") >= 1001);
}

#[test]
fn invalidating_a_tag_in_one_process_makes_the_next_read_in_another_miss() {
    let site = Site::new("invalidate");
    let _daemon = site.start(FLAGS);
    let mut a = Worker::connect("A", site.dir(), &site.socket(), "app");
    let mut b = Worker::connect("B", site.dir(), &site.socket(), "app");
    let entries = [
        ("post1", "posts/1"),
        ("comment9", "posts/1/comments/9"),
        ("post12", "posts/12"),
        ("post2", "posts/2"),
        ("index", "posts"),
        ("multi", "posts/7,users/3"),
    ];
    let set_all = |a: &mut Worker| {
        for (key, tags) in entries {
            a.set(key, &format!("v-{key}"), &format!("- - {tags}"));
        }
    };
    let hits = |a: &mut Worker| -> Vec<&'static str> {
        entries
            .iter()
            .filter(|(key, _)| {
                let g = a.get(key);
                if g.hit {
                    assert_eq!(g.value(), Some(format!("v-{key}").as_str()));
                }
                g.hit
            })
            .map(|(key, _)| *key)
            .collect()
    };
    set_all(&mut a);
    assert_eq!(hits(&mut a).len(), entries.len(), "all cached");

    // Hierarchical: posts/1 covers posts/1 and everything below it, not posts/12 (a string
    // prefix but another path), not posts/2, not the parent posts.
    b.ok("invalidate posts/1");
    assert_eq!(hits(&mut a), ["post12", "post2", "index", "multi"]);

    // Exact: only entries tagged exactly posts/1; the comment below it survives.
    set_all(&mut a);
    b.ok("invalidate posts/1 exact");
    assert_eq!(
        hits(&mut a),
        ["comment9", "post12", "post2", "index", "multi"]
    );
    b.ok("invalidate posts/1/comments/9 exact");
    assert_eq!(hits(&mut a), ["post12", "post2", "index", "multi"]);

    // A middle level, and one of several tags of an entry.
    set_all(&mut a);
    b.ok("invalidate posts/1/comments");
    assert_eq!(hits(&mut a), ["post1", "post12", "post2", "index", "multi"]);
    b.ok("invalidate users/3");
    assert_eq!(hits(&mut a), ["post1", "post12", "post2", "index"]);

    // The root covers everything under it.
    set_all(&mut a);
    b.ok("invalidate posts");
    assert_eq!(hits(&mut a), Vec::<&str>::new());
}

/// Gets `key` in `w` until it misses (at most `bound`), returning every answer.
fn read_until_miss(w: &mut Worker, key: &str, bound: Duration) -> Vec<Get> {
    let mut seen = Vec::new();
    poll(bound, || {
        let g = w.get(key);
        let hit = g.hit;
        seen.push(g);
        (!hit).then_some(())
    })
    .unwrap_or_else(|| panic!("{key} was still served after {bound:?}: {:?}", seen.last()));
    seen
}

#[test]
fn a_value_with_a_ttl_is_served_until_it_expires_and_never_after() {
    let site = Site::new("ttl");
    let _daemon = site.start(FLAGS);
    let mut a = Worker::connect("A", site.dir(), &site.socket(), "app");
    let mut b = Worker::connect("B", site.dir(), &site.socket(), "app");

    // Long enough that B's first read comes before the deadline even on a loaded machine.
    a.set("session", "s1", "1000");
    let reads = read_until_miss(&mut b, "session", Duration::from_secs(10));
    let expires = reads[0]
        .expires_ms
        .unwrap_or_else(|| panic!("the first read hits, with a deadline: {:?}", reads[0]));
    let mut fresh = 0;
    for g in &reads {
        if g.after_ms < expires {
            // The whole call happened before the deadline: a fresh hit.
            assert!(g.hit && !g.stale, "missed before expiry: {g:?}");
            assert_eq!(g.value(), Some("s1"));
            fresh += 1;
        }
        if g.before_ms >= expires {
            assert!(!g.hit, "served after expiry at {expires}: {g:?}");
        }
    }
    assert!(fresh > 0, "no read finished before the deadline: {reads:?}");
    // And it stays gone.
    assert!(!b.get("session").hit);
}

#[test]
fn within_grace_a_hit_is_flagged_stale_and_after_grace_it_misses() {
    let site = Site::new("grace");
    let _daemon = site.start(FLAGS);
    let mut a = Worker::connect("A", site.dir(), &site.socket(), "app");
    let mut b = Worker::connect("B", site.dir(), &site.socket(), "app");

    a.set("feed", "f1", "1000 1500");
    let reads = read_until_miss(&mut b, "feed", Duration::from_secs(10));
    let first = &reads[0];
    let (expires, grace_until) = (
        first.expires_ms.expect("expires_ms"),
        first.grace_until_ms.expect("grace_until_ms"),
    );
    assert_eq!(grace_until, expires + 1500, "{first:?}");
    let (mut fresh, mut stale) = (0, 0);
    for g in &reads {
        if g.after_ms < expires {
            assert!(g.hit && !g.stale, "not fresh before expiry: {g:?}");
            fresh += 1;
        } else if g.before_ms >= expires && g.after_ms < grace_until {
            assert!(g.hit && g.stale, "not a stale hit within grace: {g:?}");
            assert_eq!(g.value(), Some("f1"));
            stale += 1;
        } else if g.before_ms >= grace_until {
            assert!(!g.hit, "served after grace: {g:?}");
        }
    }
    assert!(fresh > 0, "no read before expiry: {reads:?}");
    assert!(stale > 0, "no read within grace: {reads:?}");
    assert!(
        b.local("segment_stale_hits") > 0,
        "stale hits came from the segment"
    );
}

#[test]
fn clearing_one_namespace_leaves_another_intact() {
    let site = Site::new("namespaces");
    let _daemon = site.start(FLAGS);
    let mut a = Worker::connect("A", site.dir(), &site.socket(), "alpha");
    let mut b = Worker::connect("B", site.dir(), &site.socket(), "beta");

    // One key and one tag in both namespaces: they never collide.
    a.set("shared", "from-alpha", "- - t");
    b.set("shared", "from-beta", "- - t");
    a.set("other", "alpha-only", "");
    assert_eq!(a.get("shared").value(), Some("from-alpha"));
    assert_eq!(b.get("shared").value(), Some("from-beta"));
    assert!(!b.get("other").hit, "alpha's key is not in beta");

    // A tag invalidated in beta leaves alpha's entry with the same tag alone.
    b.ok("invalidate t");
    assert!(!b.get("shared").hit);
    assert_eq!(a.get("shared").value(), Some("from-alpha"));
    b.set("shared", "from-beta", "- - t");

    a.ok("clear");
    assert!(!a.get("shared").hit, "cleared");
    assert!(!a.get("other").hit, "cleared");
    let g = b.get("shared");
    assert_eq!(g.value(), Some("from-beta"), "beta survives alpha's clear");
    assert_eq!(g.source.as_deref(), Some("segment"));

    // The same process, through with_namespace: beta intact, alpha empty, and a write to
    // alpha after the clear is served again.
    a.ok("ns beta");
    assert_eq!(a.get("shared").value(), Some("from-beta"));
    a.ok("ns alpha");
    assert!(!a.get("shared").hit);
    a.set("shared", "alpha-again", "");
    assert_eq!(a.get("shared").value(), Some("alpha-again"));
    assert_eq!(b.get("shared").value(), Some("from-beta"));
}

#[test]
fn after_kill_9_clients_stop_trusting_the_segment_and_recover_on_restart() {
    let flags = &[
        "--memory",
        "16MiB",
        "--heartbeat-ms",
        "50",
        "--heartbeat-timeout-ms",
        "300",
    ];
    let site = Site::new("kill9");
    let mut daemon = site.start(flags);
    let mut a = Worker::connect("A", site.dir(), &site.socket(), "app");
    let mut b = Worker::connect("B", site.dir(), &site.socket(), "app");
    a.set("k", "v1", "");
    assert_eq!(b.get("k").value(), Some("v1"));

    daemon.kill_9();
    let killed = Instant::now();
    // The dead daemon's segment still holds v1, but with its heartbeat stale B must stop
    // serving from it (it could miss invalidations): its get turns into a miss.
    let stopped = poll(Duration::from_secs(3), || {
        (!b.get("k").hit).then(|| killed.elapsed())
    });
    let stopped = stopped.expect("B kept serving from the dead daemon's segment for 3 s");
    eprintln!("B stopped serving from the segment {stopped:?} after kill -9 (timeout 300 ms)");
    assert!(b.local("stale_heartbeat") > 0);

    // Writes fail with a clear "unavailable", reads miss.
    let w = a.cmd("set k v2");
    assert_eq!(w["ok"], false, "{w}");
    assert_eq!(w["error"], "unavailable", "{w}");
    assert!(!a.get("k").hit);
    assert!(!b.get("k").hit);

    // Restarted on the same dir and instance: the same processes work again, with no
    // reconnect from the test (the client reconnects at most every 100 ms).
    let _daemon = site.start(flags);
    let set = poll(Duration::from_secs(5), || {
        let w = a.cmd("set k v3");
        (w["ok"] == true).then_some(())
    });
    set.expect("A's writes still failed 5 s after the restart");
    let g = poll(Duration::from_secs(5), || {
        let g = b.get("k");
        (g.hit).then_some(g)
    })
    .expect("B did not see A's write after the restart");
    assert_eq!(g.value(), Some("v3"));
    // And B reads the new segment again (not only through the daemon).
    let g = poll(Duration::from_secs(5), || {
        let g = b.get("k");
        (g.source.as_deref() == Some("segment")).then_some(g)
    })
    .expect("B did not re-attach to the new daemon's segment");
    assert_eq!(g.value(), Some("v3"));
    assert!(b.local("reattaches") >= 1);
    let before = b.requests();
    for _ in 0..100 {
        assert_eq!(b.get("k").value(), Some("v3"));
    }
    assert_eq!(
        b.requests(),
        before,
        "hits from the new segment send no request"
    );
}

/// A daemon restarted faster than the heartbeat timeout: the old segment still looks alive
/// to a client that has not talked to the new daemon yet.
fn restart_within_heartbeat_timeout(clean_stop: bool) {
    let flags = &[
        "--memory",
        "16MiB",
        "--heartbeat-ms",
        "50",
        "--heartbeat-timeout-ms",
        "2000",
    ];
    let site = Site::new(if clean_stop {
        "quick-term"
    } else {
        "quick-kill"
    });
    let mut daemon = site.start(flags);
    let mut a = Worker::connect("A", site.dir(), &site.socket(), "app");
    let mut b = Worker::connect("B", site.dir(), &site.socket(), "app");
    a.set("price", "old", "");
    assert_eq!(b.get("price").value(), Some("old"));

    if clean_stop {
        daemon.stop();
    } else {
        daemon.kill_9();
    }
    let _daemon = site.start(flags);
    poll(Duration::from_secs(5), || {
        (a.cmd("set price new")["ok"] == true).then_some(())
    })
    .expect("A's write failed 5 s after the restart");

    // The write returned: no read that starts afterwards may return the old value.
    let g = b.get("price");
    assert_ne!(
        g.value(),
        Some("old"),
        "B read the value overwritten on the restarted daemon, from the old segment: {g:?}"
    );
}

#[test]
fn a_write_after_a_quick_restart_hides_the_old_value_kill_9() {
    restart_within_heartbeat_timeout(false);
}

#[test]
fn a_write_after_a_quick_restart_hides_the_old_value_sigterm() {
    restart_within_heartbeat_timeout(true);
}
