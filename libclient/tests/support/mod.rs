//! What several integration tests of the client share. Each test binary uses part of it.
#![allow(dead_code)]

use std::time::Duration;

use cachekit_client::{Client, ClientOptions};
use cachekit_testkit::eventually;

/// A client connected with `opts`, retrying for up to 10 s while the daemon comes up.
pub fn connect_eventually(opts: ClientOptions) -> Client {
    let mut client = None;
    assert!(
        eventually(Duration::from_secs(10), || {
            client = Client::connect(opts.clone()).ok();
            client.is_some()
        }),
        "cachekitd did not come up within 10 s"
    );
    client.unwrap()
}

/// Incompressible bytes (xorshift from `seed`), so the envelope does not shrink them.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64 ^ seed;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
