//! Compute once per host: fill leases and the query API built on them.
//!
//! [`Client::query`] has t87s semantics: a fresh hit is returned from the segment; a stale hit
//! (past its TTL, within grace) is returned at once while exactly one caller of the host
//! refreshes it; a miss is computed by exactly one caller of the host (it holds the key's fill
//! lease, granted by the daemon) while every other caller, in any process, waits for its fill.
//! [`Client::lease`] is the two-step form underneath (the C ABI's `cachekit_lease_*`).

use std::fmt;
use std::time::Duration;

use cachekit_proto::{Lease, LeaseFill, Reply, Request, LEASE_GLOBAL, LEASE_REFRESH};

use crate::client::{unexpected, Client};
use crate::conn::Conn;
use crate::error::Error;
use crate::limits::check_key;
use crate::options::{duration_ms, set_ttl_ms, SetOptions};
use crate::value::{HitInfo, Source, Value};

/// How a lease may be held and waited for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseOptions {
    /// How long to wait for another holder's fill before giving up (default 10 s).
    pub wait_timeout: Duration,
    /// How long the holder may take to compute before the lease passes to a waiter
    /// (default 30 s). A holder that dies releases it at once.
    pub lease_timeout: Duration,
    /// Also take the lease in Redis, so one host of all computes (when the daemon has a Redis
    /// tier; it falls back to the host's lease when Redis is unreachable).
    pub global: bool,
}

impl Default for LeaseOptions {
    fn default() -> Self {
        LeaseOptions {
            wait_timeout: Duration::from_secs(10),
            lease_timeout: Duration::from_secs(30),
            global: false,
        }
    }
}

/// What a caller of [`Client::query`] wants when its wait for another holder's fill times out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum OnTimeout {
    /// Compute the value itself (and store it): the default; the wait only bounds the delay.
    #[default]
    Compute,
    /// Fail with [`QueryError::Timeout`].
    Error,
}

/// Options of [`Client::query`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QueryOptions {
    /// TTL, grace and tags of the value stored.
    pub set: SetOptions,
    /// The lease's timeouts and scope.
    pub lease: LeaseOptions,
    /// What to do when the wait for another holder times out.
    pub on_timeout: OnTimeout,
}

/// Why [`Client::query`] returned no value.
#[derive(Debug)]
pub enum QueryError<E> {
    /// The computation failed (only the caller that ran it gets this; nothing was cached).
    Compute(E),
    /// Waiting for another holder's fill timed out ([`OnTimeout::Error`]).
    Timeout {
        /// How long it waited.
        waited: Duration,
    },
    /// The cache failed in a way that makes computing pointless (a refused value, a bad key).
    Cache(Error),
}

impl<E: fmt::Display> fmt::Display for QueryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            QueryError::Compute(e) => write!(f, "the computation failed: {e}"),
            QueryError::Timeout { waited } => write!(
                f,
                "waited {waited:?} for another caller's computation of this key; raise wait_timeout or compute on timeout"
            ),
            QueryError::Cache(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for QueryError<E> {}

/// What [`Client::lease`] got.
pub enum LeaseOutcome {
    /// A value is there, or another holder's fill came: no computation.
    Hit(Value),
    /// This caller holds the key's lease: compute, then [`FillLease::fill`] or
    /// [`FillLease::release`] (dropping it releases it).
    Granted(FillLease),
    /// Another caller holds the lease and no value came within the wait.
    Busy,
}

/// The key's fill lease, held on a connection of its own: if this process dies the
/// connection closes and the daemon hands the lease to a waiter at once.
pub struct FillLease {
    client: Client,
    conn: Option<Conn>,
    key: Vec<u8>,
    token: u64,
}

impl fmt::Debug for FillLease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FillLease")
            .field("key", &String::from_utf8_lossy(&self.key))
            .field("token", &self.token)
            .finish_non_exhaustive()
    }
}

impl FillLease {
    /// The lease's token, as the daemon granted it.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Stores the computed `value` and ends the lease; every waiter gets the value. Returns
    /// its version, or `None` when it was not stored as fresh: the key was written or deleted,
    /// or one of its tags invalidated, while it was computed (it would be stale), or the lease
    /// had passed to another caller (`lease_timeout`). The waiters then compete for a new lease.
    ///
    /// # Errors
    /// As [`Client::set`].
    pub fn fill(mut self, value: &[u8], options: &SetOptions) -> Result<Option<u64>, Error> {
        let set = self.client.set_body(&self.key, value, options)?;
        let req = Request::LeaseFill(LeaseFill {
            token: self.token,
            set,
        });
        let mut conn = self
            .conn
            .take()
            .expect("a lease keeps its connection until it ends");
        match conn.call(&req)? {
            Reply::Stored { stored, version } => Ok(stored.then_some(version)),
            Reply::Error { code, message } => Err(Error::from_daemon(code, message)),
            other => Err(unexpected("LEASE_FILL", &other)),
        }
    }

    /// Ends the lease without a value (the computation failed); one waiter takes it over.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the daemon cannot be reached (the lease then ends with
    /// the connection anyway).
    pub fn release(mut self) -> Result<(), Error> {
        self.release_inner()
    }

    fn release_inner(&mut self) -> Result<(), Error> {
        let Some(mut conn) = self.conn.take() else {
            return Ok(());
        };
        let req = Request::LeaseRelease {
            namespace: self.client.namespace.to_string(),
            key: self.client.wire_key(&self.key).into_owned(),
            token: self.token,
        };
        match conn.call(&req)? {
            Reply::Ok => Ok(()),
            Reply::Error { code, message } => Err(Error::from_daemon(code, message)),
            other => Err(unexpected("LEASE_RELEASE", &other)),
        }
    }
}

impl Drop for FillLease {
    fn drop(&mut self) {
        // Best effort: closing the connection releases it too.
        let _ = self.release_inner();
    }
}

impl Client {
    fn lease_request(
        &self,
        key: &[u8],
        options: &LeaseOptions,
        refresh: bool,
    ) -> Result<LeaseOutcome, Error> {
        let raw = key;
        let key = &*self.wire_key(raw);
        check_key(key, &self.shared.limits())?;
        let ms = |d: Duration| u32::try_from(duration_ms(d)).unwrap_or(u32::MAX);
        let wait = if refresh {
            Duration::ZERO
        } else {
            options.wait_timeout
        };
        let mut flags = 0;
        if options.global {
            flags |= LEASE_GLOBAL;
        }
        if refresh {
            flags |= LEASE_REFRESH;
        }
        let req = Request::Lease(Lease {
            namespace: self.namespace.to_string(),
            key: key.to_vec(),
            wait_ms: ms(wait),
            lease_ms: ms(options.lease_timeout).max(1),
            flags,
        });
        // A connection of its own: the lease lives as long as it, and a wait does not take
        // a pooled connection from the process's other requests.
        let mut conn = self.shared.open_conn()?;
        req.validate(conn.limits())
            .map_err(Error::from_validation)?;
        match conn.call_waiting(&req, wait)? {
            Reply::LeaseGranted { token } => Ok(LeaseOutcome::Granted(FillLease {
                client: self.clone(),
                conn: Some(conn),
                key: raw.to_vec(),
                token,
            })),
            Reply::LeaseBusy => Ok(LeaseOutcome::Busy),
            Reply::FetchHit(hit) => {
                let bytes =
                    self.decoded(self.decode_value(&self.shared.envelope(), key, &hit.value))?;
                let info = HitInfo::from_fetch(&hit, bytes.len());
                Ok(LeaseOutcome::Hit(Value::new(bytes, info)))
            }
            Reply::Error { code, message } => Err(Error::from_daemon(code, message)),
            other => Err(unexpected("LEASE", &other)),
        }
    }

    /// The fill lease of `key`, for a caller that missed it: a value if one is there (or
    /// another holder's fill comes within `wait_timeout`), else the lease (this caller
    /// computes), else [`LeaseOutcome::Busy`].
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the daemon cannot be reached; [`Error::NotPermitted`] for a
    /// peer that may not write.
    pub fn lease(
        &self,
        key: impl AsRef<[u8]>,
        options: &LeaseOptions,
    ) -> Result<LeaseOutcome, Error> {
        self.lease_request(key.as_ref(), options, false)
    }

    /// The lease to refresh `key`'s stale value, if nobody else is refreshing it: never waits.
    ///
    /// # Errors
    /// As [`lease`](Client::lease).
    pub fn refresh_lease(
        &self,
        key: impl AsRef<[u8]>,
        options: &LeaseOptions,
    ) -> Result<Option<FillLease>, Error> {
        match self.lease_request(key.as_ref(), options, true)? {
            LeaseOutcome::Granted(l) => Ok(Some(l)),
            LeaseOutcome::Hit(_) | LeaseOutcome::Busy => Ok(None),
        }
    }

    /// The value of `key`, computed by `compute` at most once per host at a time:
    ///
    /// 1. a fresh hit is returned from the segment (no request);
    /// 2. a stale hit (past its TTL, within grace) is returned at once, unless this caller is
    ///    the one of the host that gets to refresh it: then it computes, stores and returns the
    ///    new value (a refresh that fails leaves the stale value, which is returned);
    /// 3. on a miss exactly one caller of the host computes (it holds the key's fill lease);
    ///    every other caller, in any process, waits up to `wait_timeout` for its value. A
    ///    computation that fails releases the lease: its caller gets the error, the waiters go
    ///    on waiting for the next holder. On a timeout the caller computes itself or fails
    ///    ([`OnTimeout`]).
    ///
    /// A value computed while one of its tags was invalidated, or the key written or deleted,
    /// is returned to its caller but not stored as fresh (t87s: created before the
    /// invalidation is stale). With the daemon unreachable, the caller computes (nothing is
    /// cached).
    ///
    /// # Errors
    /// [`QueryError::Compute`] with the computation's error; [`QueryError::Timeout`];
    /// [`QueryError::Cache`] for a key or value the cache refuses.
    pub fn query<E>(
        &self,
        key: impl AsRef<[u8]>,
        options: &QueryOptions,
        compute: impl FnOnce() -> Result<Vec<u8>, E>,
    ) -> Result<Value, QueryError<E>> {
        let key = key.as_ref();
        let mut compute = Some(compute);
        let mut run = || (compute.take().expect("computed at most once"))();
        match self.get_local(key) {
            Ok(Some(v)) if v.is_fresh() => return Ok(v),
            Ok(Some(stale)) => {
                let Ok(Some(lease)) = self.refresh_lease(key, &options.lease) else {
                    return Ok(stale);
                };
                return Ok(match run() {
                    Ok(bytes) => match lease.fill(&bytes, &options.set) {
                        Ok(version) => computed(bytes, version.unwrap_or(0), &options.set),
                        Err(_) => stale,
                    },
                    Err(_) => stale,
                });
            }
            Ok(None) | Err(_) => {}
        }
        let set = &options.set;
        match self.lease(key, &options.lease) {
            Ok(LeaseOutcome::Hit(v)) => Ok(v),
            Ok(LeaseOutcome::Granted(lease)) => match run() {
                Ok(bytes) => {
                    let version = lease.fill(&bytes, set).ok().flatten().unwrap_or(0);
                    Ok(computed(bytes, version, set))
                }
                Err(e) => {
                    let _ = lease.release();
                    Err(QueryError::Compute(e))
                }
            },
            Ok(LeaseOutcome::Busy) => match options.on_timeout {
                OnTimeout::Error => Err(QueryError::Timeout {
                    waited: options.lease.wait_timeout,
                }),
                OnTimeout::Compute => {
                    let bytes = run().map_err(QueryError::Compute)?;
                    let _ = self.set(key, &bytes, set);
                    Ok(computed(bytes, 0, set))
                }
            },
            Err(e) if e.is_unavailable() || matches!(e, Error::Timeout { .. }) => {
                // No daemon to coordinate with: compute, cache nothing.
                run()
                    .map(|b| computed(b, 0, set))
                    .map_err(QueryError::Compute)
            }
            Err(e) => Err(QueryError::Cache(e)),
        }
    }
}

/// A value this caller computed (not read from the cache), with the times it was stored with.
fn computed(bytes: Vec<u8>, version: u64, set: &SetOptions) -> Value {
    let now = cachekit_shm::now_ms();
    let expires_ms = set_ttl_ms(set)
        .ok()
        .flatten()
        .map(|t| now.saturating_add(t));
    Value::new(
        bytes,
        HitInfo {
            len: 0,
            created_ms: now,
            expires_ms,
            grace_until_ms: expires_ms.map(|e| e.saturating_add(duration_ms(set.grace))),
            stale: false,
            source: Source::Computed,
            version,
            integer: false,
        },
    )
}
