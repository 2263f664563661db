//! hit.rs - latency of a 100-byte get hit from the Rust client, for scripts/bench-hit (which
//! builds it as a one-file crate depending on cachekit-client by path, with the workspace's
//! Cargo.lock, offline).
//!
//! The setup of libclient/benches/client.rs (`client/get_hit/100B`: `Client::get_into`), of
//! hit.c and of the Go TestHitLatency: 10 000 keys of 100 random bytes (splitmix64), each
//! checked to hit from the segment with its own bytes; reads in a shuffled order; n/10 untimed
//! reads, then n reads timed one by one with `Instant` (clock_gettime(CLOCK_MONOTONIC)), then
//! n reads timed as one loop. Prints one line:
//!   LATENCY lang=rust call=get_into ops=N p50=.. p90=.. p99=.. p999=.. max=.. mean=.. timer=..
//!
//! Usage: hit SOCKET [OPS]

use cachekit_client::{Client, ClientOptions, SetOptions, Source};
use std::hint::black_box;
use std::time::{Duration, Instant};

const KEYS: usize = 10_000;
const SIZE: usize = 100;

fn splitmix(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn q(ns: &[u64], p: f64) -> u64 {
    ns[((ns.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let socket = args.get(1).expect("usage: hit SOCKET [OPS]");
    let ops: usize = args.get(2).map_or(200_000, |s| s.parse().expect("OPS"));
    let client = Client::connect(ClientOptions::new().socket(socket).namespace("rust-latency"))
        .expect("connecting");

    let mut r = SIZE as u64;
    let opts = SetOptions::new().ttl(Duration::from_secs(3600));
    let mut out = Vec::with_capacity(SIZE);
    let keys: Vec<Vec<u8>> = (0..KEYS).map(|i| format!("hit-{i}").into_bytes()).collect();
    for k in &keys {
        let v: Vec<u8> = (0..SIZE).map(|_| splitmix(&mut r) as u8).collect();
        client.set(k, &v, &opts).expect("pre-setting a key");
        let info = client
            .get_into(k, &mut out)
            .expect("reading a pre-set key")
            .expect("a pre-set key missed");
        assert!(info.source == Source::Segment && out == v, "pre-set key does not hit from the segment");
    }
    let mut order: Vec<usize> = (0..KEYS).collect();
    let mut s = !(SIZE as u64);
    for i in (1..KEYS).rev() {
        let j = (splitmix(&mut s) % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }

    let mut ns: Vec<u64> = (0..ops)
        .map(|_| {
            let t = Instant::now();
            t.elapsed().as_nanos() as u64
        })
        .collect();
    ns.sort_unstable();
    let timer = ns[ops / 2];

    let mut k = 0;
    let mut missed = 0;
    let mut one_get = || {
        let key = &keys[order[k]];
        if !matches!(client.get_into(black_box(key), &mut out), Ok(Some(_))) {
            missed += 1;
        }
        k += 1;
        if k == KEYS {
            k = 0;
        }
    };
    for _ in 0..ops / 10 {
        one_get();
    }
    for slot in ns.iter_mut() {
        let t = Instant::now();
        one_get();
        *slot = t.elapsed().as_nanos() as u64;
    }
    let start = Instant::now();
    for _ in 0..ops {
        one_get();
    }
    let mean = start.elapsed().as_nanos() as f64 / ops as f64;
    assert_eq!(missed, 0, "timed gets missed");
    ns.sort_unstable();
    println!(
        "LATENCY lang=rust call=get_into ops={ops} p50={} p90={} p99={} p999={} max={} mean={mean:.0} timer={timer}",
        q(&ns, 0.5),
        q(&ns, 0.9),
        q(&ns, 0.99),
        q(&ns, 0.999),
        ns[ns.len() - 1]
    );
}
