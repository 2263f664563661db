//! The README's Rust example. Run with a daemon up (`scripts/run`):
//! `cargo run -p cachekit-client --example quickstart`. `tests/env_default.rs` runs it against a
//! daemon found through `CACHEKIT_SOCKET` (hence `pub`).

use cachekit_client::{Client, ClientOptions, SetOptions};
use std::time::Duration;

pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::connect(ClientOptions::default().namespace("app"))?;
    client.set(
        b"user:42",
        b"{\"name\":\"Ada\"}",
        &SetOptions::default()
            .ttl(Duration::from_secs(60))
            .tag("users/42"),
    )?;
    if let Some(v) = client.get(b"user:42")? {
        // Served from shared memory.
        println!("{}", String::from_utf8_lossy(&v.bytes));
    }
    client.invalidate(&["users/42"])?; // every entry tagged users/42/...
    assert!(client.get(b"user:42")?.is_none());
    Ok(())
}
