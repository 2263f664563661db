//! The Rust client of cachekit, the per-host shared-memory cache.
//!
//! ```no_run
//! use cachekit_client::{Client, ClientOptions, SetOptions};
//! use std::time::Duration;
//!
//! let client = Client::connect(ClientOptions::new().namespace("sessions"))?;
//! client.set("user:1", b"alice", &SetOptions::new().ttl(Duration::from_secs(30)).tag("users/1"))?;
//! if let Some(v) = client.get("user:1")? {
//!     assert_eq!(v.bytes, b"alice");
//!     if v.stale {
//!         // within grace: serve it, and refresh it
//!     }
//! }
//! client.invalidate(&["users/1"])?; // and every tag below it
//! assert!(client.get("user:1")?.is_none());
//! # Ok::<(), cachekit_client::Error>(())
//! ```
//!
//! # How a get works
//!
//! 1. Load the attached segment (one `arc-swap` load: lock-free), check the daemon's heartbeat
//!    in it (one atomic load, one clock read).
//! 2. Heartbeat fresh: look the key up in the mapped table, copying the envelope into a
//!    per-thread buffer (no syscall, no lock, no socket), decode it (LZ4, xxh3 check) into the
//!    returned value. The only allocation is the returned `Vec`; [`Client::get_into`] reuses the
//!    caller's.
//! 3. Not in the segment: FETCH over the socket; the daemon fills from Redis, coalescing
//!    concurrent misses for one key on the host.
//! 4. Heartbeat stale (daemon dead or stuck), or this client found the daemon gone: the
//!    segment is not read, since it could miss invalidations; the get is a FETCH, and if the
//!    daemon cannot be reached it is a miss, or, with [`ClientOptions::redis_url`], a read
//!    from Redis directly (see below).
//!
//! [`Client::get_local`] is steps 1 and 2 alone: not in the segment, or the segment not usable,
//! is `None`, never a request. It never blocks, so an event loop can call it inline and hand
//! only its misses to a thread that may wait for the daemon.
//!
//! # Value sizes
//!
//! Values may be as large as the daemon's `--max-value-bytes`: the client adopts the limit the
//! daemon announces when it attaches, for encoding and decoding alike, unless
//! [`ClientOptions::envelope`] sets a smaller one ([`Client::max_value_bytes`] says which
//! applies).
//!
//! # Direct fallback to Redis
//!
//! With [`ClientOptions::redis_url`] set (and [`ClientOptions::redis_fallback`], on by
//! default), a client whose daemon is down (socket refused or gone, requests timing out, or a
//! stale heartbeat) keeps working against Redis directly: blocking calls, no async runtime,
//! each bounded by [`ClientOptions::redis_timeout`]. Gets are validated as the daemon validates
//! its fills (nothing covering the value was invalidated after it was written); sets, deletes,
//! invalidations and clears run the daemons' own Lua scripts, so they land in the invalidation
//! log and every host's daemon applies them. Once the client found its daemon gone it stops
//! reading that daemon's segment (a direct write never reaches it); it tries the daemon again
//! once a second ([`DAEMON_PROBE_INTERVAL_MS`]) and goes back to a new one by itself. When
//! Redis is down too, a get is a miss and a write fails with [`Error::Unavailable`].
//!
//! # Namespaces
//!
//! A [`Client`] is bound to one namespace ([`ClientOptions::namespace`]). For another one, call
//! [`Client::with_namespace`]: the new handle shares the connections, the segment and the
//! counters, and costs one `Arc` clone.
//!
//! # Connections, liveness, restarts
//!
//! Writes, misses, `stats` and `ping` use a small pool of Unix-socket connections
//! ([`ClientOptions::pool_size`]); each connection does its own HELLO. A restarted daemon
//! builds a new segment with a new epoch: the client notices when a pooled connection fails or
//! when the old segment's heartbeat goes stale, reconnects (at most every 100 ms after a
//! failure), and swaps the new segment in without blocking readers. Application code never
//! reconnects.
//!
//! While the daemon is down, gets miss and writes fail at once with [`Error::Unavailable`]
//! (after one failed attempt, connecting is retried at most every 100 ms). A killed daemon's
//! heartbeat stays fresh for up to its `heartbeat_timeout_ms`, but a client stops reading the
//! segment as soon as it finds the daemon gone (its socket refused or missing, a connection
//! closed or reset under a request): a write that failed that way is never followed, in that
//! process, by reads of the value it meant to replace or remove. Other processes stop at
//! their own first failed request, or when the heartbeat goes stale. The first HELLO that
//! succeeds again (a restarted daemon, or the same one) puts its segment back in use.
//!
//! While the daemon is stuck (alive but not answering, e.g. SIGSTOP), the segment is not read
//! once its heartbeat is stale, gets wait up to the timeouts and then miss, and writes fail
//! with [`Error::Timeout`]; [`Error::is_unavailable`] covers both.
//!
//! [`Client::connect`] fails when the daemon is not running (for tools that should say so at
//! once); [`Client::connect_lazy`] does not, and behaves as above until the daemon comes up:
//! use it wherever a process may start before its daemon (web workers, job runners).
//!
//! # Memory
//!
//! Besides the mapping of the segment, each thread that reads keeps one copy buffer, 4 KiB at
//! first, growing to the largest envelope it has read (at most the daemon's `max_value_bytes`).
//!
//! # Errors
//!
//! One [`Error`] enum; its messages name the limit or the command involved, e.g. "cachekitd is
//! not running at /run/cachekit/default.sock; start it with `cachekitd`". Keys, namespaces,
//! tags and values are checked against the daemon's limits (from HELLO_OK) before anything is
//! sent.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod batch;
mod client;
mod conn;
mod crypto;
mod direct;
mod error;
mod journal;
mod limits;
mod manage;
mod memo;
mod options;
mod pool;
mod query;
mod shared;
mod stats;
mod value;

pub use cachekit_envelope::{EnvelopeConfig, KeyError, MasterKey, MASTER_KEY_LEN};
pub use cachekit_proto::{ErrorCode, VerifyBad, VerifyReport, MAX_BATCH_ITEMS};
pub use client::Client;
pub use crypto::{Encryption, DEFAULT_MEMO_BYTES, MEMO_MAX_VALUE_BYTES};
pub use direct::DAEMON_PROBE_INTERVAL_MS;
pub use error::Error;
pub use manage::{IncrOptions, IntegerCondition, NamespaceInfo, Scan, ScanItem, ScanOptions, Ttl};
pub use options::{
    ClientOptions, SetOptions, DEFAULT_CONNECT_TIMEOUT, DEFAULT_NAMESPACE, DEFAULT_POOL_SIZE,
    DEFAULT_REDIS_TIMEOUT, DEFAULT_REQUEST_TIMEOUT,
};
pub use query::{FillLease, LeaseOptions, LeaseOutcome, OnTimeout, QueryError, QueryOptions};
pub use shared::{RECONNECT_INTERVAL_MS, REFRESH_INTERVAL_MS};
pub use stats::{LocalStats, Pong, SegmentInfo, Stats};
pub use value::{HitInfo, Source, Value};
