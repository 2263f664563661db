//! Client-side encryption against real processes: a real `cachekitd` (from the workspace test
//! kit) and a real `redis-server` on a free loopback port.
//!
//! - The marker test: a known plaintext marker written through an encrypting client appears
//!   nowhere in the daemon's memory (every readable mapping of `/proc/PID/mem`, the segment
//!   memfd among them), nor in Redis (every key name and value, and the redis-server's own
//!   memory); the same write without encryption is found there (the negative control, which
//!   also proves the scans see what they should).
//! - A ciphertext copied in Redis to another key or namespace fails to decrypt on another host.
//! - Two tenants on one daemon cannot read each other's values.
//! - Rotation: old values read after it, new writes carry the new key id.

mod support;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use cachekit_client::{Client, ClientOptions, Encryption, Error, MasterKey, SetOptions};
use cachekit_testkit::{watchdog, Daemon, Redis, Site};

fn key(n: u8) -> MasterKey {
    MasterKey::from_bytes(std::array::from_fn(|i| n.wrapping_mul(31) ^ i as u8))
}

fn options(socket: &Path, ns: &str) -> ClientOptions {
    ClientOptions::new()
        .socket(socket)
        .namespace(ns)
        .request_timeout(Duration::from_secs(2))
}

fn connect(opts: ClientOptions) -> Client {
    support::connect_eventually(opts)
}

/// A daemon attached to `redis`, write-through, with short intervals.
fn host(site: &Site, redis: &Redis) -> Daemon {
    site.start(&[
        "--redis-url",
        &redis.url(),
        "--redis-poll-ms",
        "200",
        "--redis-timeout-ms",
        "500",
        "--memory",
        "8MiB",
    ])
}

/// Whether `needle` occurs in any readable mapping of process `pid` (read through
/// /proc/PID/mem; the test runs as the daemon's parent, or root). Returns (found, the names of
/// the mappings read), so callers can check that what they meant to scan was scanned.
fn in_process_memory(pid: u32, needle: &[u8]) -> (bool, Vec<String>) {
    let maps = BufReader::new(File::open(format!("/proc/{pid}/maps")).expect("read maps"));
    let mem = File::open(format!("/proc/{pid}/mem"))
        .expect("open /proc/PID/mem (run as root or as the parent)");
    let mut scanned = Vec::new();
    let mut found = false;
    for line in maps.lines() {
        let line = line.unwrap();
        let mut fields = line.split_whitespace();
        let (range, perms) = (fields.next().unwrap(), fields.next().unwrap());
        let name = fields.nth(3).unwrap_or("").to_string();
        if !perms.starts_with('r')
            || name == "[vvar]"
            || name == "[vsyscall]"
            || name == "[vvar_vclock]"
        {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut buf = vec![0u8; (end - start) as usize];
        // Some mappings (guard pages, device memory) refuse reads: they hold no data of ours.
        if mem.read_exact_at(&mut buf, start).is_err() {
            continue;
        }
        found |= buf.windows(needle.len()).any(|w| w == needle);
        scanned.push(name);
    }
    (found, scanned)
}

/// Every key name and every value in Redis (strings, streams, hashes, sets, lists), as bytes.
fn redis_contents(redis: &Redis) -> Vec<Vec<u8>> {
    let mut conn = redis.conn();
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(&mut conn).unwrap();
    let mut out = Vec::new();
    for k in keys {
        let kind: String = redis::cmd("TYPE").arg(&k).query(&mut conn).unwrap();
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![redis::cmd("GET").arg(&k).query(&mut conn).unwrap()],
            "hash" => redis::cmd("HGETALL").arg(&k).query(&mut conn).unwrap(),
            "set" => redis::cmd("SMEMBERS").arg(&k).query(&mut conn).unwrap(),
            "list" => redis::cmd("LRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .query(&mut conn)
                .unwrap(),
            "stream" => {
                let v: redis::Value = redis::cmd("XRANGE")
                    .arg(&k)
                    .arg("-")
                    .arg("+")
                    .query(&mut conn)
                    .unwrap();
                let mut flat = Vec::new();
                flatten(&v, &mut flat);
                flat
            }
            other => panic!("Redis key of type {other}: teach redis_contents to read it"),
        };
        out.push(k);
        out.extend(values);
    }
    out
}

fn flatten(v: &redis::Value, out: &mut Vec<Vec<u8>>) {
    match v {
        redis::Value::BulkString(b) => out.push(b.clone()),
        redis::Value::SimpleString(s) => out.push(s.clone().into_bytes()),
        redis::Value::Array(items) => items.iter().for_each(|i| flatten(i, out)),
        _ => {}
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Where the marker is found after an app writes it (value, and a second marker in the key
/// name) through a client with `encryption`, and reads it back (from the segment and, through
/// a second client, via the daemon).
fn where_is_the_marker(story: &str, encryption: Option<Encryption>) -> Vec<&'static str> {
    let marker = format!(
        "MARKER-{story}-{:016x}",
        std::process::id() as u64 * 0x9E37_79B9
    );
    let key_marker = format!("KEYMARK-{story}-{:08x}", std::process::id());
    let redis = Redis::start();
    let site = Site::new(story);
    let daemon = host(&site, &redis);
    let mut opts = options(daemon.socket(), "secrets");
    if let Some(e) = encryption {
        opts = opts.encryption(e);
    }
    let app = connect(opts.clone());
    let value = format!("{marker} card=4111-1111-1111-1111");
    let k = format!("{key_marker}:user");
    app.set(&k, &value, &SetOptions::new().tag("users"))
        .unwrap();
    app.add(format!("{key_marker}:added"), &value, &SetOptions::new())
        .unwrap();
    assert_eq!(app.get(&k).unwrap().unwrap().bytes, value.as_bytes());
    // A second process-like client: its first read of a key it has not seen goes through the
    // daemon (FETCH) when the segment misses; here the segment hits, so drop the daemon's
    // copy first to force a fill from Redis through the daemon.
    let other = connect(opts);
    assert_eq!(other.get(&k).unwrap().unwrap().bytes, value.as_bytes());

    let mut places = Vec::new();
    let (in_daemon, mappings) = in_process_memory(daemon.pid(), marker.as_bytes());
    assert!(
        mappings.iter().any(|m| m.contains("memfd")),
        "the daemon's segment memfd was not among its scanned mappings: {mappings:?}"
    );
    if in_daemon {
        places.push("daemon memory");
    }
    if in_process_memory(daemon.pid(), key_marker.as_bytes()).0 {
        places.push("key in daemon memory");
    }
    let contents = redis_contents(&redis);
    assert!(!contents.is_empty(), "Redis holds the writes");
    if contents.iter().any(|c| contains(c, marker.as_bytes())) {
        places.push("redis values");
    }
    if contents.iter().any(|c| contains(c, key_marker.as_bytes())) {
        places.push("key in redis");
    }
    if in_process_memory(redis.pid(), marker.as_bytes()).0 {
        places.push("redis-server memory");
    }
    places
}

#[test]
fn the_marker_is_nowhere_with_encryption_and_everywhere_without() {
    watchdog(Duration::from_secs(120), || {
        // Negative control: without encryption the scans find the marker in every place.
        let plain = where_is_the_marker("plain", None);
        for place in [
            "daemon memory",
            "key in daemon memory",
            "redis values",
            "key in redis",
            "redis-server memory",
        ] {
            assert!(
                plain.contains(&place),
                "the plaintext marker was not found in {place}: the scan is broken ({plain:?})"
            );
        }
        // Encrypted values: the value marker is nowhere; keys stay plaintext by design.
        let sealed = where_is_the_marker("sealed", Some(Encryption::new(key(1))));
        assert_eq!(
            sealed,
            ["key in daemon memory", "key in redis"],
            "the encrypted marker leaked"
        );
        // With hashed keys, the key names are gone too.
        let hashed = where_is_the_marker("hashed", Some(Encryption::new(key(1)).hash_keys(true)));
        assert!(hashed.is_empty(), "marker found in {hashed:?}");
    });
}

/// Two hosts on one Redis, `ns` clients with `enc` on each.
#[test]
fn a_ciphertext_moved_in_redis_fails_to_decrypt_on_another_host() {
    watchdog(Duration::from_secs(120), || {
        let redis = Redis::start();
        let (site_a, site_b) = (Site::new("move-a"), Site::new("move-b"));
        let (host_a, host_b) = (host(&site_a, &redis), host(&site_b, &redis));
        for (label, enc) in [
            ("tenant = namespace", Encryption::new(key(3))),
            (
                "one tenant for every namespace",
                Encryption::new(key(3)).tenant("acme"),
            ),
        ] {
            let a = connect(options(host_a.socket(), "shop").encryption(enc.clone()));
            let b = connect(options(host_b.socket(), "shop").encryption(enc));
            let a2 = a.with_namespace("shop2").unwrap();
            a.set("alice", b"card 4111", &SetOptions::new()).unwrap();
            a2.set("x", b"filler", &SetOptions::new()).unwrap();
            // The honest path first: B reads A's value through Redis.
            assert_eq!(
                b.get("alice").unwrap().unwrap().bytes,
                b"card 4111",
                "{label}"
            );
            let mut conn = redis.conn();
            let record: Vec<u8> = redis::cmd("GET")
                .arg("ck:{shop}:v:alice")
                .query(&mut conn)
                .unwrap();
            for target in ["ck:{shop}:v:mallory", "ck:{shop2}:v:alice"] {
                let () = redis::cmd("SET")
                    .arg(target)
                    .arg(&record)
                    .query(&mut conn)
                    .unwrap();
            }
            let b2 = b.with_namespace("shop2").unwrap();
            for (what, r) in [
                ("another key", b.get("mallory")),
                ("another namespace", b2.get("alice")),
            ] {
                match r {
                    Err(Error::Decrypt { message }) => assert!(!message.is_empty()),
                    other => panic!("{label}: the ciphertext moved to {what} gave {other:?}, not a decrypt error"),
                }
            }
            // A single flipped byte in the stored record (its last byte: the GCM tag).
            let mut tampered = record.clone();
            *tampered.last_mut().unwrap() ^= 1;
            let () = redis::cmd("SET")
                .arg("ck:{shop}:v:tampered")
                .arg(&tampered)
                .query(&mut conn)
                .unwrap();
            assert!(
                matches!(b.get("tampered"), Err(Error::Decrypt { .. })),
                "{label}: tampered"
            );
            let () = redis::cmd("FLUSHALL").query(&mut conn).unwrap();
            a.clear().unwrap();
            b.clear().unwrap();
            a2.clear().unwrap();
        }
    });
}

#[test]
fn two_tenants_on_one_daemon_cannot_read_each_other() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("tenants", &[]);
        let t1 = connect(
            options(daemon.socket(), "shared").encryption(Encryption::new(key(1)).tenant("t1")),
        );
        let t2 = connect(
            options(daemon.socket(), "shared").encryption(Encryption::new(key(1)).tenant("t2")),
        );
        let stranger =
            connect(options(daemon.socket(), "shared").encryption(Encryption::new(key(9))));
        let keyless = connect(options(daemon.socket(), "shared"));
        t1.set("k", b"t1's secret", &SetOptions::new()).unwrap();
        t2.set("j", b"t2's secret", &SetOptions::new()).unwrap();
        assert_eq!(t1.get("k").unwrap().unwrap().bytes, b"t1's secret");
        assert_eq!(t2.get("j").unwrap().unwrap().bytes, b"t2's secret");
        for (who, r) in [
            ("t2", t2.get("k")),
            ("t1", t1.get("j")),
            ("another master key", stranger.get("k")),
        ] {
            assert!(
                matches!(r, Err(Error::Decrypt { .. })),
                "{who} read another tenant's value: {r:?}"
            );
        }
        // get_local and get_into decrypt (and refuse) the same way.
        assert!(matches!(t2.get_local("k"), Err(Error::Decrypt { .. })));
        let mut out = Vec::new();
        assert!(matches!(
            t2.get_into("k", &mut out),
            Err(Error::Decrypt { .. })
        ));
        assert!(out.is_empty());
        match keyless.get("k") {
            Err(Error::Encrypted { message }) => {
                assert!(message.contains("CACHEKIT_MASTER_KEY"), "{message}")
            }
            other => panic!("a keyless client got {other:?}"),
        }
        // A plaintext value: accepted by default, refused with require_encryption.
        keyless.set("plain", b"hello", &SetOptions::new()).unwrap();
        assert_eq!(t1.get("plain").unwrap().unwrap().bytes, b"hello");
        let strict = connect(
            options(daemon.socket(), "shared").encryption(
                Encryption::new(key(1))
                    .tenant("t1")
                    .require_encryption(true),
            ),
        );
        assert!(matches!(strict.get("plain"), Err(Error::Plaintext { .. })));
        assert_eq!(strict.get("k").unwrap().unwrap().bytes, b"t1's secret");
    });
}

#[test]
fn rotation_reads_old_values_and_writes_under_the_new_key() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("rotation", &[]);
        let old = connect(options(daemon.socket(), "app").encryption(Encryption::new(key(1))));
        old.set("before", b"written under key 1", &SetOptions::new())
            .unwrap();
        let rotated = connect(
            options(daemon.socket(), "app")
                .encryption(Encryption::new(key(2)).previous_key(key(1))),
        );
        assert_eq!(
            rotated.get("before").unwrap().unwrap().bytes,
            b"written under key 1"
        );
        rotated
            .set("after", b"written under key 2", &SetOptions::new())
            .unwrap();
        // The new write carries key 2's id: a client with key 1 alone names it and refuses.
        let new_id = format!("{:08x}", key(2).key_id(b"app"));
        match old.get("after") {
            Err(Error::Decrypt { message }) => assert!(message.contains(&new_id), "{message}"),
            other => panic!("{other:?}"),
        }
        // And every operation that stores a value encrypts: add/replace/cas/get_and_delete.
        assert!(rotated.add("added", b"a", &SetOptions::new()).unwrap());
        assert!(rotated.replace("added", b"b", &SetOptions::new()).unwrap());
        let v = rotated.get("added").unwrap().unwrap();
        assert!(rotated
            .cas("added", b"c", v.info().version, &SetOptions::new())
            .unwrap());
        assert!(matches!(old.get("added"), Err(Error::Decrypt { .. })));
        assert_eq!(
            rotated.get_and_delete("added").unwrap().unwrap().bytes,
            b"c"
        );
        // Counters stay plaintext (the daemon adds to them): any client reads them.
        assert_eq!(rotated.incr("hits", 2, &Default::default()).unwrap(), None);
        rotated.set_i64("hits", 40, &SetOptions::new()).unwrap();
        assert_eq!(
            rotated.incr("hits", 2, &Default::default()).unwrap(),
            Some(42)
        );
        let keyless = connect(options(daemon.socket(), "app"));
        assert_eq!(keyless.get("hits").unwrap().unwrap().bytes, b"42");
    });
}

#[test]
fn hashed_keys_hide_names_and_every_call_uses_them() {
    watchdog(Duration::from_secs(60), || {
        let daemon = Daemon::start("hashed", &[]);
        let enc = Encryption::new(key(4)).hash_keys(true);
        let c = connect(options(daemon.socket(), "h").encryption(enc));
        c.set("user:1", b"alice", &SetOptions::new()).unwrap();
        let keys: Vec<Vec<u8>> = c
            .scan(&Default::default())
            .map(|i| i.unwrap().key)
            .collect();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].len(), 64, "a hex HMAC-SHA256");
        assert!(!contains(&keys[0], b"user"));
        assert_eq!(c.get("user:1").unwrap().unwrap().bytes, b"alice");
        assert!(c.touch("user:1", Some(Duration::from_secs(60))).unwrap());
        assert!(c.delete("user:1").unwrap());
        assert!(c.get("user:1").unwrap().is_none());
        c.set_i64("n", 1, &SetOptions::new()).unwrap();
        assert_eq!(c.incr("n", 1, &Default::default()).unwrap(), Some(2));
    });
}
