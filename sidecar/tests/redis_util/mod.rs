//! Hosts (daemons attached to a Redis server) and raw-protocol helpers for the Redis-tier
//! tests. The `redis-server`s themselves come from the workspace test kit
//! (`cachekit-testkit`): free loopback ports, no persistence, killed when dropped, a failure
//! (never a skip) when `redis-server` is not installed.

#![allow(dead_code, unused_imports)] // each test file uses its own part of these helpers

use crate::common::{Client, Conn, Daemon, Site};
use cachekit_proto::{Reply, Request, Set};
use std::time::Duration;

pub use crate::common::Connect;
pub use cachekit_testkit::{eventually, free_port, Redis, RedisCluster};

/// The longest a test waits for Redis-tier propagation before failing.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The flags that attach a daemon to Redis, with short intervals for tests (except those
/// `extra` sets itself).
pub fn redis_flags(url: &str, extra: &[&str]) -> Vec<String> {
    let defaults = [
        "--redis-url",
        url,
        "--redis-poll-ms",
        "200",
        "--redis-timeout-ms",
        "500",
        "--redis-breaker-open-ms",
        "300",
        "--log",
        "info",
    ];
    let mut out: Vec<String> = defaults
        .chunks(2)
        .filter(|kv| !extra.contains(&kv[0]))
        .flat_map(|kv| [kv[0].to_string(), kv[1].to_string()])
        .collect();
    out.extend(extra.iter().map(|s| s.to_string()));
    out
}

/// Starts a host: a daemon on `site` attached to `url`, with `extra` flags.
pub fn start_host(site: &Site, url: &str, extra: &[&str]) -> Daemon {
    let args = redis_flags(url, extra);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    site.start(&args)
}

/// SET over the raw protocol; panics unless OK.
pub fn set(conn: &mut Conn, ns: &str, key: &str, value: &[u8], tags: &[&str]) {
    let reply = conn.call(&Request::Set(Set {
        namespace: ns.into(),
        key: key.as_bytes().to_vec(),
        value: value.to_vec(),
        ttl_ms: Some(60_000),
        grace_ms: 0,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }));
    assert_eq!(reply, Reply::Ok, "SET {key}");
}

/// INVALIDATE (hierarchical) over the raw protocol; panics unless OK.
pub fn invalidate(conn: &mut Conn, ns: &str, tags: &[&str]) {
    let reply = conn.call(&Request::Invalidate {
        namespace: ns.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        exact: false,
    });
    assert_eq!(reply, Reply::Ok, "INVALIDATE {tags:?}");
}

/// FETCH over the raw protocol: the value, or `None` on a miss.
pub fn fetch(conn: &mut Conn, ns: &str, key: &str) -> Option<Vec<u8>> {
    match conn.call(&Request::Fetch {
        namespace: ns.into(),
        key: key.as_bytes().to_vec(),
    }) {
        Reply::FetchHit(h) => Some(h.value),
        Reply::FetchMiss => None,
        other => panic!("FETCH {key} answered {other:?}"),
    }
}

/// The value in the host's table, read from the mapped segment as any client would.
pub fn in_table(client: &Client, ns: &str, key: &str) -> Option<Vec<u8>> {
    client.reader.get(ns, key.as_bytes()).map(|(v, _)| v)
}

/// p-th percentile (0..=100) of `samples` (sorted in place).
pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let i = ((samples.len() as f64 - 1.0) * p / 100.0).round() as usize;
    samples[i.min(samples.len() - 1)]
}
