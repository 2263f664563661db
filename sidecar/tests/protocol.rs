//! cachekitd over its raw socket protocol, one story per test: the handshake and the segment it
//! hands over, the happy path, hostile and broken clients (each while a well-behaved client keeps
//! getting correct answers), write permissions, the daemon's lifecycle and its configuration.
//!
//! Every test runs its own daemon (see `common`); every wait is bounded by a watchdog.

mod common;

use cachekit_proto::{
    encode_request, ErrorCode, Header, Hello, Kind, Reply, Request, Set, HEADER_LEN,
    PROTOCOL_VERSION,
};
use common::{assert_error, Client, Connect, Daemon, Site, WATCHDOG};
use rustix::process::Signal;
use std::io::ErrorKind;
use std::net::Shutdown;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers

fn set_body(ns: &str, key: &str, value: &[u8], tags: &[&str]) -> Set {
    Set {
        namespace: ns.into(),
        key: key.as_bytes().to_vec(),
        value: value.to_vec(),
        ttl_ms: None,
        grace_ms: 0,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

fn set(ns: &str, key: &str, value: &[u8], tags: &[&str]) -> Request {
    Request::Set(set_body(ns, key, value, tags))
}

fn fetch(ns: &str, key: &str) -> Request {
    Request::Fetch {
        namespace: ns.into(),
        key: key.as_bytes().to_vec(),
    }
}

fn delete(ns: &str, key: &str) -> Request {
    Request::Delete {
        namespace: ns.into(),
        key: key.as_bytes().to_vec(),
    }
}

fn invalidate(ns: &str, tags: &[&str], exact: bool) -> Request {
    Request::Invalidate {
        namespace: ns.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        exact,
    }
}

fn clear(ns: &str) -> Request {
    Request::Clear {
        namespace: ns.into(),
    }
}

fn frame(req: &Request, id: u32) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_request(req, id, &mut buf).expect("encoding a request");
    buf
}

fn header(kind: Kind, body_len: u32, request_id: u32) -> [u8; HEADER_LEN] {
    Header {
        body_len,
        version: PROTOCOL_VERSION,
        kind,
        request_id,
    }
    .to_bytes()
}

/// The value of a FETCH reply: `Some` for FETCH_HIT, `None` for FETCH_MISS.
#[track_caller]
fn fetched(reply: Reply) -> Option<Vec<u8>> {
    match reply {
        Reply::FetchHit(hit) => Some(hit.value),
        Reply::FetchMiss => None,
        other => panic!("FETCH answered {other:?}"),
    }
}

/// What a client reads straight from shared memory, with no syscall.
fn in_memory(c: &Client, ns: &str, key: &str) -> Option<Vec<u8>> {
    c.reader.get(ns, key.as_bytes()).map(|(v, _)| v)
}

/// A counter of `/proc/<pid>/status` (`VmPeak` in KiB, `Threads`, ...).
fn proc_status(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("reading /proc");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// How many file descriptors process `pid` has open.
fn open_fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("reading /proc")
        .count() as u64
}

/// Polls `probe` until it returns at most `want`, for at most the watchdog.
#[track_caller]
fn eventually_at_most(what: &str, want: u64, mut probe: impl FnMut() -> u64) {
    let deadline = Instant::now() + WATCHDOG;
    loop {
        let got = probe();
        if got <= want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} is {got}, expected it to come back to {want} within {WATCHDOG:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A well-behaved client that must keep getting correct answers while another misbehaves. Each
/// check writes a fresh key, reads it back over the socket and straight from shared memory, and
/// pings.
struct Bystander {
    client: Client,
    round: u32,
}

impl Bystander {
    fn new(d: &Daemon) -> Bystander {
        let mut b = Bystander {
            client: d.client("bystander"),
            round: 0,
        };
        b.check("before");
        b
    }

    #[track_caller]
    fn check(&mut self, when: &str) {
        self.round += 1;
        let key = format!("k{}", self.round);
        let value = format!("round {} ({when})", self.round).into_bytes();
        let c = &mut self.client;
        assert_eq!(
            c.call(&set("bystander", &key, &value, &[])),
            Reply::Ok,
            "SET {when}"
        );
        assert_eq!(
            fetched(c.call(&fetch("bystander", &key))),
            Some(value.clone()),
            "FETCH {when}"
        );
        assert_eq!(
            in_memory(c, "bystander", &key),
            Some(value),
            "shared memory {when}"
        );
        let epoch = c.hello.daemon_epoch;
        assert_eq!(c.ping(), epoch, "PING {when}");
    }

    /// Waits until the daemon counts only the bystander's connection as open.
    #[track_caller]
    fn alone(&mut self) {
        self.alone_with(0);
    }

    /// Waits until the daemon counts the bystander's connection and `others` as open.
    #[track_caller]
    fn alone_with(&mut self, others: u64) {
        let c = &mut self.client;
        eventually_at_most("connections_open", 1 + others, || {
            c.stat("connections_open")
        });
        assert_eq!(
            c.stat("connections_open"),
            1 + others,
            "live clients stay counted"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 1. Handshake

#[test]
fn hello_ok_hands_over_the_table_the_client_area_and_the_counters_file_as_three_fds() {
    let d = Daemon::start("hello", &[]);
    let mut conn = d.connect();
    let (id, reply, fds) = conn.hello("handshake");
    assert_eq!(id, 1, "HELLO_OK echoes the request id");
    let Reply::HelloOk(ok) = reply else {
        panic!("HELLO answered {reply:?}")
    };
    assert_eq!(ok.version, PROTOCOL_VERSION);
    assert_eq!(
        (ok.fd_count, fds.len()),
        (3, 3),
        "table, client area and this process's counters file, by SCM_RIGHTS"
    );
    let size = |i: usize| rustix::fs::fstat(&fds[i]).unwrap().st_size as u64;
    assert_eq!(ok.segment_size, size(0), "the first fd is the table");
    assert_eq!(
        ok.client_area_size,
        size(1),
        "the second fd is the client area"
    );
    assert_eq!(
        size(2),
        cachekit_shm::layout::COUNTERS_BYTES,
        "the third fd is the counters file"
    );
    assert_ne!(ok.client_slot, u32::MAX, "with the record it is under");
    assert_eq!(
        ok.heartbeat_timeout_ms, 2000,
        "the default heartbeat timeout"
    );
    assert!(
        ok.limits.max_value_bytes >= 1 << 20,
        "the default 1 MiB values fit: {:?}",
        ok.limits
    );

    // The fds map as a cachekit table, of the daemon that answered.
    let reader = cachekit_shm::Reader::attach(fds[0].as_fd(), Some(fds[1].as_fd()))
        .expect("the fds map as a cachekit table");
    assert_eq!(reader.epoch(), ok.daemon_epoch);
    assert_eq!(
        conn.ping(),
        ok.daemon_epoch,
        "the connection goes on after HELLO_OK"
    );
}

#[test]
fn the_table_fd_cannot_be_mapped_writable_or_written() {
    let d = Daemon::start("readonly", &[]);
    let c = d.client("readonly");
    let table = std::fs::File::from(c.fds[0].try_clone().unwrap());
    let len = c.hello.segment_size as usize;

    let err = memmap2::MmapOptions::new()
        .len(len)
        .map_raw(&table)
        .expect_err("a writable mapping of the table must fail");
    assert_eq!(
        err.raw_os_error(),
        Some(rustix::io::Errno::PERM.raw_os_error()),
        "{err}"
    );
    let err = rustix::io::write(&table, b"x").expect_err("write(2) to the table must fail");
    assert_eq!(err, rustix::io::Errno::PERM);

    memmap2::MmapOptions::new()
        .len(len)
        .map_raw_read_only(&table)
        .expect("a read-only mapping works");
    // The client area, by contrast, is the client's to write.
    let area = std::fs::File::from(c.fds[1].try_clone().unwrap());
    memmap2::MmapOptions::new()
        .len(c.hello.client_area_size as usize)
        .map_raw(&area)
        .expect("the client area maps writable");
    // So is this process's counters file; it cannot be resized under the daemon.
    let counters = std::fs::File::from(c.fds[2].try_clone().unwrap());
    memmap2::MmapOptions::new()
        .len(cachekit_shm::layout::COUNTERS_BYTES as usize)
        .map_raw(&counters)
        .expect("the counters file maps writable");
    for len in [0, 1 << 20] {
        assert_eq!(
            rustix::fs::ftruncate(&counters, len),
            Err(rustix::io::Errno::PERM),
            "the counters file is sealed against resizing"
        );
    }
}

#[test]
fn a_request_before_hello_is_refused_and_the_connection_closed() {
    let d = Daemon::start("before-hello", &[]);
    let mut conn = d.connect();
    let id = conn.send(&Request::Ping);
    let (got, reply) = conn.reply();
    assert_eq!(got, id);
    assert_error(&reply, ErrorCode::UnexpectedMessage, &["HELLO"]);
    conn.expect_closed();
}

#[test]
fn a_second_hello_is_refused_and_the_connection_goes_on() {
    let d = Daemon::start("second-hello", &[]);
    let mut c = d.client("twice");
    let reply = c.call(&Request::Hello(Hello::new("twice")));
    assert_error(&reply, ErrorCode::UnexpectedMessage, &["HELLO"]);
    assert_eq!(c.ping(), c.hello.daemon_epoch);
}

#[test]
fn a_hello_with_no_common_version_is_refused_and_the_connection_closed() {
    let d = Daemon::start("no-version", &[]);
    let mut conn = d.connect();
    let hello = Hello {
        min_version: PROTOCOL_VERSION + 1,
        max_version: PROTOCOL_VERSION + 3,
        ..Hello::new("from the future")
    };
    let reply = conn.call(&Request::Hello(hello));
    assert_error(&reply, ErrorCode::UnsupportedVersion, &["upgrade"]);
    conn.expect_closed();
}

// ---------------------------------------------------------------------------------------------
// 2. The happy path, over the raw protocol

#[test]
fn a_set_is_fetched_back_and_seen_directly_in_shared_memory() {
    let d = Daemon::start("set-fetch", &[]);
    let mut c = d.client("app");
    assert_eq!(
        fetched(c.call(&fetch("app", "user:1"))),
        None,
        "nothing there yet"
    );
    assert_eq!(in_memory(&c, "app", "user:1"), None);

    let ttl = Request::Set(Set {
        ttl_ms: Some(60_000),
        ..set_body("app", "user:1", b"alice", &["users/1"])
    });
    assert_eq!(c.call(&ttl), Reply::Ok);
    let Reply::FetchHit(hit) = c.call(&fetch("app", "user:1")) else {
        panic!("FETCH after SET must hit")
    };
    assert_eq!(hit.value, b"alice");
    assert!(!hit.stale);
    let expires = hit.expires_ms.expect("a TTL was given");
    assert_eq!(expires - hit.created_ms, 60_000, "expiry is creation + TTL");
    assert_eq!(
        in_memory(&c, "app", "user:1").as_deref(),
        Some(&b"alice"[..])
    );

    // An overwrite is visible at once, to every process: here a second client's mapping.
    assert_eq!(c.call(&set("app", "user:1", b"alice v2", &[])), Reply::Ok);
    let other = d.client("other process");
    assert_eq!(
        in_memory(&other, "app", "user:1").as_deref(),
        Some(&b"alice v2"[..])
    );
    assert_eq!(
        in_memory(&c, "app", "user:1").as_deref(),
        Some(&b"alice v2"[..])
    );
}

#[test]
fn delete_reports_whether_the_key_existed() {
    let d = Daemon::start("delete", &[]);
    let mut c = d.client("app");
    assert_eq!(c.call(&set("app", "k", b"v", &[])), Reply::Ok);
    assert_eq!(
        c.call(&delete("app", "k")),
        Reply::Deleted { existed: true }
    );
    assert_eq!(in_memory(&c, "app", "k"), None, "gone from shared memory");
    assert_eq!(fetched(c.call(&fetch("app", "k"))), None);
    assert_eq!(
        c.call(&delete("app", "k")),
        Reply::Deleted { existed: false }
    );
}

#[test]
fn invalidating_a_tag_makes_readers_miss_exactly_the_tagged_entries() {
    let d = Daemon::start("invalidate", &[]);
    let mut c = d.client("app");
    for (key, tag) in [
        ("post1", "posts/1"),
        ("post2", "posts/2"),
        ("user1", "users/1"),
    ] {
        assert_eq!(c.call(&set("app", key, key.as_bytes(), &[tag])), Reply::Ok);
    }
    assert_eq!(
        c.call(&set("other", "post1", b"other ns", &["posts/1"])),
        Reply::Ok
    );

    // Exact: only entries tagged posts/1, only in this namespace.
    assert_eq!(c.call(&invalidate("app", &["posts/1"], true)), Reply::Ok);
    assert_eq!(
        in_memory(&c, "app", "post1"),
        None,
        "the reader misses at once"
    );
    assert_eq!(fetched(c.call(&fetch("app", "post1"))), None);
    assert!(in_memory(&c, "app", "post2").is_some());
    assert!(in_memory(&c, "app", "user1").is_some());
    assert!(
        in_memory(&c, "other", "post1").is_some(),
        "namespaces do not share tags"
    );

    // Hierarchical: posts and everything below it.
    assert_eq!(c.call(&invalidate("app", &["posts"], false)), Reply::Ok);
    assert_eq!(in_memory(&c, "app", "post2"), None);
    assert!(in_memory(&c, "app", "user1").is_some());

    // A SET after the invalidation is served again.
    assert_eq!(
        c.call(&set("app", "post1", b"fresh", &["posts/1"])),
        Reply::Ok
    );
    assert_eq!(
        in_memory(&c, "app", "post1").as_deref(),
        Some(&b"fresh"[..])
    );
}

#[test]
fn an_invalidate_with_one_bad_tag_changes_nothing() {
    let d = Daemon::start("invalidate-bad-tag", &[]);
    let mut c = d.client("app");
    assert_eq!(c.call(&set("app", "post1", b"v", &["posts/1"])), Reply::Ok);
    let reply = c.call(&invalidate("app", &["posts/1", "a//b"], false));
    assert_error(
        &reply,
        ErrorCode::InvalidArgument,
        &["a//b", "empty segment"],
    );
    assert!(
        in_memory(&c, "app", "post1").is_some(),
        "the good tag was not applied either"
    );
    assert_eq!(c.ping(), c.hello.daemon_epoch, "the connection goes on");
}

/// STATS `errors` counts ERROR answers to requests. An INVALIDATE refused for a bad tag returns
/// early from `Daemon::handle`, past the counter, while the same bad tag in a SET is counted.
#[test]
fn every_error_answer_to_a_request_is_counted_in_errors() {
    let d = Daemon::start("errors-counted", &[]);
    let mut c = d.client("app");
    let reply = c.call(&set("app", "k", b"v", &["a//b"]));
    assert_error(&reply, ErrorCode::InvalidArgument, &["a//b"]);
    assert_eq!(c.stat("errors"), 1, "a SET with a bad tag");
    let reply = c.call(&invalidate("app", &["a//b"], false));
    assert_error(&reply, ErrorCode::InvalidArgument, &["a//b"]);
    assert_eq!(c.stat("errors"), 2, "an INVALIDATE with a bad tag");
}

#[test]
fn clear_of_one_namespace_leaves_the_others() {
    let d = Daemon::start("clear", &[]);
    let mut c = d.client("app");
    for ns in ["a", "b"] {
        for k in ["1", "2"] {
            assert_eq!(c.call(&set(ns, k, ns.as_bytes(), &[])), Reply::Ok);
        }
    }
    assert_eq!(c.call(&clear("a")), Reply::Ok);
    for k in ["1", "2"] {
        assert_eq!(in_memory(&c, "a", k), None);
        assert_eq!(fetched(c.call(&fetch("a", k))), None);
        assert_eq!(in_memory(&c, "b", k).as_deref(), Some(&b"b"[..]));
    }
    assert_eq!(c.call(&set("a", "1", b"again", &[])), Reply::Ok);
    assert_eq!(in_memory(&c, "a", "1").as_deref(), Some(&b"again"[..]));
}

#[test]
fn stats_count_what_was_done() {
    let d = Daemon::start("stats", &[]);
    let mut c = d.client("app");
    assert_eq!(c.call(&set("app", "k", b"v", &["t"])), Reply::Ok);
    assert_eq!(c.call(&set("app", "j", b"w", &[])), Reply::Ok);
    assert!(fetched(c.call(&fetch("app", "k"))).is_some());
    assert!(fetched(c.call(&fetch("app", "nope"))).is_none());
    assert_eq!(
        c.call(&delete("app", "j")),
        Reply::Deleted { existed: true }
    );
    assert_eq!(c.call(&invalidate("app", &["t"], true)), Reply::Ok);
    assert_eq!(c.call(&clear("app")), Reply::Ok);

    let s = c.stats();
    let get = |k: &str| {
        *s.get(k)
            .unwrap_or_else(|| panic!("STATS has no {k:?}: {s:?}"))
    };
    assert_eq!(get("sets"), 2);
    assert_eq!(get("fetches"), 2);
    assert_eq!(get("fetch_hits"), 1);
    assert_eq!(get("deletes"), 1);
    assert_eq!(get("invalidates"), 1);
    assert_eq!(get("clears"), 1);
    assert_eq!(get("requests"), 8, "seven requests before STATS, and STATS");
    assert_eq!(get("bad_frames"), 0);
    assert_eq!(get("epoch"), c.hello.daemon_epoch);
    assert_eq!(get("memory_bytes"), 16 << 20);
    assert!(
        s.keys().any(|k| k.starts_with("table_")),
        "table counters too: {s:?}"
    );
    // The readiness probe's connection may still be closing on the daemon's side: wait for
    // it (bounded), then only this client is open.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let open = c.stats()["connections_open"];
        if open == 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "connections_open stayed at {open}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn ping_returns_the_epoch_of_hello_ok_and_a_live_heartbeat() {
    let d = Daemon::start("ping", &[]);
    let mut c = d.client("app");
    let Reply::Pong {
        epoch,
        heartbeat_ms,
    } = c.call(&Request::Ping)
    else {
        panic!("PING must answer PONG")
    };
    assert_eq!(epoch, c.hello.daemon_epoch);
    assert_eq!(epoch, c.reader.epoch());
    let age = cachekit_shm::now_ms().saturating_sub(heartbeat_ms);
    assert!(
        heartbeat_ms > 0 && age < 60_000,
        "heartbeat {heartbeat_ms} is {age} ms old"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. Robustness: each abuse while a bystander keeps working

#[test]
fn garbage_bytes_get_an_error_with_request_id_0_and_the_connection_closed() {
    let d = Daemon::start("garbage", &[]);
    let mut by = Bystander::new(&d);
    let mut garbage: Vec<u8> = b"GET / HTTP/1.1\r\nHost: cachekit\r\n\r\n".to_vec();
    let mut x = 0x9E37_79B9u32;
    garbage.extend((0..4096).map(|_| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x as u8
    }));
    let mut conn = d.connect();
    conn.send_raw(&garbage);
    by.check("during");
    let (id, reply) = conn.reply();
    assert_eq!(id, 0, "a connection-level error");
    assert_error(&reply, ErrorCode::BadFrame, &["magic"]);
    conn.expect_closed();
    by.check("after");
    assert_eq!(by.client.stat("bad_frames"), 1);
    by.alone();
}

#[test]
fn headers_the_daemon_cannot_trust_close_the_connection_after_an_error() {
    let d = Daemon::start("bad-headers", &[]);
    let mut by = Bystander::new(&d);
    let mut bad_version = header(Kind::Ping, 0, 3);
    bad_version[6] = PROTOCOL_VERSION + 1;
    let mut unknown_kind = header(Kind::Ping, 0, 3);
    unknown_kind[7] = 0x7E;
    let cases: [(&str, [u8; HEADER_LEN], ErrorCode, &[&str]); 2] = [
        (
            "a version not negotiated",
            bad_version,
            ErrorCode::UnsupportedVersion,
            &["version 2"],
        ),
        (
            "an unknown kind",
            unknown_kind,
            ErrorCode::BadFrame,
            &["kind 0x7e"],
        ),
    ];
    for (what, bytes, code, words) in cases {
        let mut c = d.client(what);
        c.send_raw(&bytes);
        let (id, reply) = c.reply();
        assert_eq!(id, 0, "{what}: a connection-level error");
        assert_error(&reply, code, words);
        c.expect_closed();
        by.check(what);
    }

    // A well-formed reply sent to the daemon: refused with its own request id.
    let mut c = d.client("sends a reply");
    let mut pong = Vec::new();
    cachekit_proto::encode_reply(
        &Reply::Pong {
            epoch: 1,
            heartbeat_ms: 2,
        },
        9,
        &mut pong,
    )
    .unwrap();
    c.send_raw(&pong);
    let (id, reply) = c.reply();
    assert_eq!(id, 9);
    assert_error(&reply, ErrorCode::UnexpectedMessage, &["reply"]);
    by.check("after");
    by.alone();
}

#[test]
fn a_truncated_frame_followed_by_close_leaves_the_daemon_serving() {
    let d = Daemon::start("truncated", &[]);
    let mut by = Bystander::new(&d);
    let whole = frame(&set("app", "key", &[7u8; 300], &["tag"]), 2);
    for cut in [
        1,
        5,
        HEADER_LEN - 1,
        HEADER_LEN,
        HEADER_LEN + 3,
        whole.len() / 2,
        whole.len() - 1,
    ] {
        for said_hello in [false, true] {
            let mut conn = d.connect();
            if said_hello {
                let (_, reply, _) = conn.hello("truncates");
                assert!(matches!(reply, Reply::HelloOk(_)));
            }
            conn.send_raw(&whole[..cut]);
            by.check(&format!("while {cut} bytes of a frame wait"));
            conn.stream.shutdown(Shutdown::Write).unwrap();
            // Nothing to answer: the daemon just closes its end.
            conn.expect_closed();
        }
    }
    by.check("after");
    by.alone();
}

#[test]
fn a_header_announcing_4_gib_is_refused_at_once_without_waiting_for_the_body() {
    let d = Daemon::start("huge-length", &[]);
    let mut by = Bystander::new(&d);
    let peak_before = proc_status(d.pid(), "VmPeak");

    // Before HELLO: a stranger announcing u32::MAX bytes of SET.
    let mut conn = d.connect();
    let t = Instant::now();
    conn.send_raw(&header(Kind::Set, u32::MAX, 7));
    let (id, reply) = conn.reply();
    let took = t.elapsed();
    assert!(took < Duration::from_secs(2), "the refusal took {took:?}");
    assert_eq!(id, 0, "a connection-level error");
    assert_error(
        &reply,
        ErrorCode::TooLarge,
        &["max_value_bytes", "4294967307", "--max-value-bytes"],
    );
    conn.expect_closed();
    by.check("after 4 GiB");

    // After HELLO: one byte over the frame limit the daemon announced.
    let mut c = d.client("one byte over");
    let max = c.hello.limits.max_frame_bytes;
    let t = Instant::now();
    c.send_raw(&header(Kind::Set, (max - HEADER_LEN + 1) as u32, 8));
    let (id, reply) = c.reply();
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "the refusal took {:?}",
        t.elapsed()
    );
    assert_eq!(id, 0);
    assert_error(
        &reply,
        ErrorCode::TooLarge,
        &["max_value_bytes", &(max + 1).to_string()],
    );
    c.expect_closed();
    by.check("after");

    // Nothing near 4 GiB was ever reserved for the body.
    let grew_kib = proc_status(d.pid(), "VmPeak").saturating_sub(peak_before);
    assert!(
        grew_kib < 1 << 20,
        "the daemon's VmPeak grew by {grew_kib} KiB"
    );
    by.alone();
}

#[test]
fn a_client_stalled_inside_a_frame_is_closed_after_the_frame_timeout_while_others_are_served() {
    let d = Daemon::start("slow", &["--frame-timeout-ms", "500"]);
    let mut by = Bystander::new(&d);
    let mut idle = d.client("idle between frames");
    let whole = frame(&set("app", "k", &[1u8; 100], &[]), 2);

    let mut in_header = d.client("stalls in the header");
    in_header.send_raw(&whole[..7]);
    let mut in_body = d.client("stalls in the body");
    in_body.send_raw(&whole[..HEADER_LEN + 20]);
    for i in 0..3 {
        by.check(&format!("during the stall, round {i}"));
    }

    // Closed without a word once the frame timeout passes (well within the watchdog).
    let t = Instant::now();
    in_header.expect_closed();
    in_body.expect_closed();
    assert!(t.elapsed() < WATCHDOG);
    by.check("after");

    // Both were closed at least 500 ms after their first byte; idle since before then, this
    // connection was not: waiting between frames is no stall.
    assert_eq!(idle.ping(), idle.hello.daemon_epoch);
    by.alone_with(1);
}

#[test]
fn malformed_bodies_get_an_error_naming_the_problem() {
    let d = Daemon::start("malformed", &[]);
    let mut by = Bystander::new(&d);

    let mut bad_utf8 = frame(&fetch("ab", "k"), 5);
    bad_utf8[HEADER_LEN + 4..HEADER_LEN + 6].copy_from_slice(&[0xFF, 0xFE]);
    let nine: Vec<String> = (0..9).map(|i| format!("t{i}")).collect();
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    let long_tag = "t".repeat(1025);
    let mut bad_flag = frame(&invalidate("app", &["t"], false), 5);
    *bad_flag.last_mut().unwrap() = 2;
    let mut truncated = header(Kind::Delete, 3, 5).to_vec();
    truncated.extend([0, 0, 0]);
    let mut trailing = header(Kind::Ping, 1, 5).to_vec();
    trailing.push(0);

    let cases: Vec<(&str, Vec<u8>, ErrorCode, &[&str])> = vec![
        (
            "namespace of bad UTF-8",
            bad_utf8,
            ErrorCode::BadFrame,
            &["namespace", "UTF-8"],
        ),
        (
            "key of 4097 bytes",
            frame(&fetch("app", &"k".repeat(4097)), 5),
            ErrorCode::TooLarge,
            &["key", "4097", "max_key_bytes = 4096"],
        ),
        (
            "SET with 9 tags",
            frame(&set("app", "k", b"v", &nine), 5),
            ErrorCode::TooLarge,
            &["9", "max_tags = 8"],
        ),
        (
            "INVALIDATE with 9 tags",
            frame(&invalidate("app", &nine, true), 5),
            ErrorCode::TooLarge,
            &["max_tags = 8"],
        ),
        (
            "tag of 1025 bytes",
            frame(&set("app", "k", b"v", &[&long_tag]), 5),
            ErrorCode::TooLarge,
            &["max_tag_bytes = 1024"],
        ),
        (
            "namespace of 128 bytes",
            frame(&clear(&"n".repeat(128)), 5),
            ErrorCode::TooLarge,
            &["max_namespace_bytes = 127"],
        ),
        (
            "bool that is 2",
            bad_flag,
            ErrorCode::BadFrame,
            &["exact", "0 or 1"],
        ),
        (
            "body shorter than its fields",
            truncated,
            ErrorCode::BadFrame,
            &["truncated"],
        ),
        (
            "bytes after the last field",
            trailing,
            ErrorCode::BadFrame,
            &["trailing"],
        ),
    ];
    let n = cases.len() as u64;
    for (what, bytes, code, words) in cases {
        let mut c = d.client(what);
        c.send_raw(&bytes);
        let (id, reply) = c.reply();
        assert_eq!(
            id, 5,
            "{what}: the frame boundary is intact, so the error carries its id"
        );
        assert_error(&reply, code, words);
        by.check(what);
    }
    assert_eq!(by.client.stat("bad_frames"), n);
}

/// The protocol (cachekit_proto docs, "Errors and framing"; `RecvError::Body`) says a bad body
/// inside a valid header leaves the stream at a frame boundary, so the daemon answers ERROR with
/// the frame's request id "and goes on".
#[test]
fn after_a_malformed_body_the_connection_goes_on() {
    let d = Daemon::start("malformed-goes-on", &[]);
    let mut c = d.client("over the key limit");
    let reply = c.call(&fetch("app", &"k".repeat(4097)));
    assert_error(&reply, ErrorCode::TooLarge, &["max_key_bytes"]);
    assert_eq!(
        c.call(&set("app", "k", b"v", &[])),
        Reply::Ok,
        "the next request is served"
    );
    assert_eq!(fetched(c.call(&fetch("app", "k"))), Some(b"v".to_vec()));
}

/// Every client API refuses an empty namespace; a raw frame with one is refused the same way,
/// at decode (INVALID_ARGUMENT, nothing changed, the connection goes on).
#[test]
fn an_empty_namespace_in_a_raw_frame_is_refused_at_decode() {
    let d = Daemon::start("empty-namespace", &[]);
    let mut c = d.client("empty namespace");
    assert_eq!(c.call(&set("app", "k", b"v", &[])), Reply::Ok);
    for req in [
        set("", "k", b"v", &[]),
        delete("", "k"),
        fetch("", "k"),
        invalidate("", &["t"], false),
        clear(""),
    ] {
        c.send_raw(&frame(&req, 7));
        let (id, reply) = c.reply();
        assert_eq!(id, 7, "{req:?}");
        assert_error(&reply, ErrorCode::InvalidArgument, &["namespace is empty"]);
    }
    assert_eq!(c.stat("sets"), 1, "only the first SET was applied");
    assert_eq!(c.stat("bad_frames"), 5);
    assert_eq!(fetched(c.call(&fetch("app", "k"))), Some(b"v".to_vec()));
}

#[test]
fn a_set_over_max_value_bytes_is_refused_naming_max_value_bytes() {
    let d = Daemon::start("max-value", &["--max-value-bytes", "64KiB"]);
    let mut by = Bystander::new(&d);
    let limit = by.client.hello.limits.max_value_bytes;
    assert!(
        limit >= 64 << 10,
        "HELLO_OK announces at least the configured limit: {limit}"
    );

    let mut c = d.client("at the limit");
    assert_eq!(
        c.call(&set("app", "big", &vec![b'x'; limit], &[])),
        Reply::Ok
    );
    assert_eq!(in_memory(&c, "app", "big").map(|v| v.len()), Some(limit));

    for len in [limit + 1, 2 * (64 << 10)] {
        let mut c = d.client("over the limit");
        let reply = c.call(&set("app", "too big", &vec![b'x'; len], &[]));
        assert_error(
            &reply,
            ErrorCode::TooLarge,
            &["max_value_bytes", &len.to_string()],
        );
        assert_eq!(in_memory(&c, "app", "too big"), None, "nothing was stored");
        by.check(&format!("after a {len}-byte value"));
    }
}

/// The contract: "values over the size limits get a clear error naming the limit and the setting
/// that raises it". A value big enough to push the frame over max_frame_bytes is refused from
/// the header, with a message about max_frame_bytes, which is no cachekitd setting.
#[test]
fn a_set_bigger_than_a_whole_frame_still_names_max_value_bytes() {
    let d = Daemon::start("huge-value", &[]);
    let mut c = d.client("2 MiB value");
    let bytes = frame(&set("app", "k", &vec![0u8; 2 << 20], &[]), 3);
    // The header alone is refused, so send only the start of the frame.
    c.send_raw(&bytes[..64 << 10]);
    let (_, reply) = c.reply();
    assert_error(&reply, ErrorCode::TooLarge, &["max_value_bytes"]);
}

#[test]
fn two_hundred_connections_dropped_mid_frame_leave_the_daemon_healthy() {
    let d = Daemon::start("churn", &[]);
    let mut by = Bystander::new(&d);
    let threads_before = proc_status(d.pid(), "Threads");
    let fds_before = open_fds(d.pid());
    let set_frame = frame(&set("app", "k", &[3u8; 1000], &["a/b"]), 2);
    let stats_frame = frame(&Request::Stats, 2);

    for i in 0..200usize {
        let mut conn = d.connect();
        match i % 5 {
            // Part of a header, before HELLO.
            0 => conn.send_raw(&set_frame[..1 + i % (HEADER_LEN - 1)]),
            // Part of a HELLO.
            1 => conn.send_raw(&frame(&Request::Hello(Hello::new("churn")), 1)[..HEADER_LEN + 3]),
            // HELLO, then gone before HELLO_OK is read.
            2 => conn.send_raw(&frame(&Request::Hello(Hello::new("churn")), 1)),
            // HELLO_OK, then half a SET.
            3 => {
                let (_, reply, _) = conn.hello("churn");
                assert!(matches!(reply, Reply::HelloOk(_)), "{reply:?}");
                conn.send_raw(&set_frame[..set_frame.len() / 2 + i]);
            }
            // A whole STATS, gone before the reply is written.
            _ => {
                let _ = conn.hello("churn");
                conn.send_raw(&stats_frame);
            }
        }
        drop(conn);
        if i % 40 == 39 {
            by.check(&format!("after {} dropped connections", i + 1));
        }
    }

    by.check("after");
    by.alone();
    assert!(by.client.stat("connections_total") >= 201);
    eventually_at_most("the daemon's thread count", threads_before, || {
        proc_status(d.pid(), "Threads")
    });
    eventually_at_most("the daemon's open fds", fds_before, || open_fds(d.pid()));
    let fresh = d.client("newcomer");
    assert_eq!(
        in_memory(&fresh, "bystander", "k1").as_deref(),
        Some(&b"round 1 (before)"[..])
    );
}

#[test]
fn a_client_over_max_connections_is_refused_and_the_slot_comes_back() {
    let d = Daemon::start("max-connections", &["--max-connections", "2"]);
    let mut by = Bystander::new(&d);
    by.alone();
    let second = d.client("second");

    let mut third = d.connect();
    let (id, reply) = third.reply();
    assert_eq!(id, 0, "refused before any request");
    assert_error(&reply, ErrorCode::Unavailable, &["max_connections", "2"]);
    third.expect_closed();
    by.check("while full");
    assert_eq!(by.client.stat("connections_refused"), 1);

    drop(second);
    by.alone();
    let mut again = d.client("after one left");
    assert_eq!(again.ping(), again.hello.daemon_epoch);
}

// ---------------------------------------------------------------------------------------------
// 4. Permissions

#[test]
fn a_peer_outside_writer_uids_and_gids_may_read_but_not_write() {
    let (uid, gid) = (
        rustix::process::getuid().as_raw(),
        rustix::process::getgid().as_raw(),
    );
    assert!(
        uid != 12345 && gid != 12345,
        "this story needs a test process that is not 12345"
    );
    let d = Daemon::start(
        "readers-only",
        &["--writer-uids", "12345", "--writer-gids", "12345"],
    );
    let mut c = d.client("a reader");

    let writes = [
        set("app", "k", b"v", &["t"]),
        delete("app", "k"),
        invalidate("app", &["t"], false),
        clear("app"),
    ];
    for w in &writes {
        let reply = c.call(w);
        assert_error(
            &reply,
            ErrorCode::NotPermitted,
            &["writer_uids", &format!("uid {uid}")],
        );
    }
    assert_eq!(in_memory(&c, "app", "k"), None);

    // Reading is for everyone who may connect.
    assert_eq!(fetched(c.call(&fetch("app", "k"))), None);
    assert_eq!(c.ping(), c.hello.daemon_epoch);
    let s = c.stats();
    assert_eq!(s["not_permitted"], writes.len() as u64);
    assert_eq!(
        (s["sets"], s["deletes"], s["invalidates"], s["clears"]),
        (0, 0, 0, 0)
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Lifecycle

#[test]
fn sigterm_stops_the_daemon_with_exit_0_and_removes_its_socket() {
    let site = Site::new("sigterm");
    let mut d = site.start(&[]);
    let mut c = d.client("watching");
    assert!(site.socket().exists());

    d.signal(Signal::TERM);
    let status = d.wait_exit(WATCHDOG);
    assert_eq!(status.code(), Some(0), "{status}; log:\n{}", d.log());
    assert!(!site.socket().exists(), "the socket is removed");
    c.expect_closed();
}

#[test]
fn a_second_daemon_on_the_same_dir_and_instance_refuses_to_start() {
    let site = Site::new("second");
    let first = site.start(&[]);
    let mut c = first.client("of the first");
    let epoch = c.hello.daemon_epoch;

    let (status, log) = site.run_to_exit(&[]);
    assert!(
        !status.success(),
        "the second daemon must fail; log:\n{log}"
    );
    assert!(log.contains("already running"), "{log}");
    assert!(
        log.contains(site.instance()),
        "the message names the instance: {log}"
    );

    // The first is untouched: its socket still reaches it, with its epoch.
    assert_eq!(c.ping(), epoch);
    let mut again = first.client("after the refusal");
    assert_eq!(again.ping(), epoch);

    // Another instance in the same directory is a different daemon, and may run.
    let other = site.start(&["--instance", &format!("{}-b", site.instance())]);
    assert_ne!(other.client("of the other").hello.daemon_epoch, epoch);
}

#[test]
fn after_kill_9_a_new_daemon_replaces_the_stale_socket_and_serves_a_new_epoch() {
    let site = Site::new("kill9");
    let mut first = site.start(&[]);
    let mut old = first.client("of the first");
    let old_epoch = old.hello.daemon_epoch;

    first.kill_9();
    assert!(
        site.socket().exists(),
        "kill -9 leaves the socket file behind"
    );
    let refused = std::os::unix::net::UnixStream::connect(site.socket()).unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused, "{refused}");
    old.expect_closed();

    let second = site.start(&[]);
    let mut new = second.client("of the second");
    let new_epoch = new.hello.daemon_epoch;
    assert_ne!(new_epoch, old_epoch, "a new daemon, a new epoch");
    assert_eq!(new.ping(), new_epoch);
    assert_eq!(
        new.reader.epoch(),
        new_epoch,
        "and a table of the new epoch"
    );
    assert_eq!(new.call(&set("app", "k", b"v", &[])), Reply::Ok);
    assert_eq!(in_memory(&new, "app", "k").as_deref(), Some(&b"v"[..]));
}

// ---------------------------------------------------------------------------------------------
// 6. Configuration

#[test]
fn a_config_file_with_a_typo_is_refused_with_exit_2_naming_the_key() {
    let site = Site::new("config-typo");
    let file = site.dir().join("cachekitd.toml");
    std::fs::write(&file, "max_value_bytes = \"64KiB\"\nmemroy = \"16MiB\"\n").unwrap();
    let (status, log) = site.run_to_exit(&["--config", file.to_str().unwrap()]);
    assert_eq!(status.code(), Some(2), "{status}; log:\n{log}");
    assert!(log.contains("memroy"), "the message names the key: {log}");
    assert!(!site.socket().exists(), "nothing was started");
}

#[test]
fn a_max_value_bytes_over_the_ceiling_is_refused_at_startup_naming_the_setting() {
    let site = Site::new("value-ceiling");
    let (status, log) = site.run_to_exit(&["--max-value-bytes", "32MiB"]);
    assert!(!status.success(), "{status}; log:\n{log}");
    assert!(
        log.contains("max_value_bytes"),
        "the message names the setting: {log}"
    );
    assert!(!site.socket().exists(), "nothing was started");
}

/// `cachekitd --help` says max_value_bytes is "at most 16MiB-65": the daemon stores encoded
/// values up to 64 bytes larger, and the table's length field ends at 16777215.
#[test]
fn the_documented_largest_max_value_bytes_starts() {
    let d = Daemon::start(
        "value-max",
        &["--max-value-bytes", "16777151", "--memory", "64MiB"],
    );
    let c = d.client("big values");
    assert!(
        c.hello.limits.max_value_bytes >= 16_777_151,
        "{:?}",
        c.hello.limits
    );
}

#[test]
fn an_unknown_memory_unit_is_refused_with_exit_2() {
    let site = Site::new("memory-unit");
    let (status, log) = site.run_to_exit(&["--memory", "16XB"]);
    assert_eq!(status.code(), Some(2), "{status}; log:\n{log}");
    for word in ["--memory", "16XB", "unknown unit", "MiB"] {
        assert!(
            log.contains(word),
            "the message should name {word:?}: {log}"
        );
    }
    assert!(!site.socket().exists(), "nothing was started");
}
