//! The client library's store: blocking connections, no async runtime. Used only while the
//! daemon is down, so one connection behind a mutex is enough; every call has a connect and
//! a read/write timeout, and after a failure no new connection is tried for
//! [`RETRY_AFTER`], so a client whose daemon and Redis are both down fails fast.

use crate::atomic::{self, CommitOp, DeletedPage, Expected};
use crate::record::Fetched;
use crate::scripts::{self, WriteContext, WriteOp, Written};
use crate::target::Target;
use crate::StoreError;
use redis::Value;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Least time between two connection attempts after a failure.
pub const RETRY_AFTER: Duration = Duration::from_millis(100);

enum SyncConn {
    Single(redis::Connection),
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl SyncConn {
    fn as_dyn(&mut self) -> &mut dyn redis::ConnectionLike {
        match self {
            SyncConn::Single(c) => c,
            SyncConn::Cluster(c) => c.as_mut(),
        }
    }
}

#[derive(Default)]
struct State {
    conn: Option<SyncConn>,
    failed_at: Option<Instant>,
    last_error: Option<StoreError>,
}

/// A blocking handle on Redis.
pub struct SyncStore {
    target: Target,
    ctx: WriteContext,
    state: Mutex<State>,
}

impl std::fmt::Debug for SyncStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SyncStore")
            .field("target", &self.target.shown)
            .finish_non_exhaustive()
    }
}

impl SyncStore {
    /// A store for `target`; connects on first use.
    pub fn new(target: Target, ctx: WriteContext) -> SyncStore {
        SyncStore {
            target,
            ctx,
            state: Mutex::new(State::default()),
        }
    }

    /// The target, for messages.
    pub fn target(&self) -> &Target {
        &self.target
    }

    fn connect(&self) -> Result<SyncConn, StoreError> {
        let t = self.target.timeout;
        let err = |e: redis::RedisError| StoreError::from_redis(&e, &self.target.shown, "CONNECT");
        if self.target.cluster {
            let client = redis::cluster::ClusterClient::builder(self.target.urls.clone())
                .connection_timeout(t)
                .response_timeout(t)
                .retries(1)
                .build()
                .map_err(err)?;
            Ok(SyncConn::Cluster(Box::new(
                client.get_connection().map_err(err)?,
            )))
        } else if let Some(spec) = &self.target.sentinel {
            // Asked again after every failure: a failover moves the primary.
            Ok(SyncConn::Single(crate::sentinel::connect_blocking(
                spec, t,
            )?))
        } else {
            let client = redis::Client::open(self.target.urls[0].as_str()).map_err(err)?;
            let c = client.get_connection_with_timeout(t).map_err(err)?;
            c.set_read_timeout(Some(t)).map_err(err)?;
            c.set_write_timeout(Some(t)).map_err(err)?;
            Ok(SyncConn::Single(c))
        }
    }

    /// Runs `f` on the connection, connecting first if needed. A failure drops the
    /// connection and holds off reconnecting for [`RETRY_AFTER`].
    fn with_conn<T>(
        &self,
        operation: &'static str,
        f: impl FnOnce(&mut dyn redis::ConnectionLike) -> redis::RedisResult<T>,
    ) -> Result<T, StoreError> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if st.conn.is_none() {
            if let (Some(at), Some(e)) = (st.failed_at, &st.last_error) {
                if at.elapsed() < RETRY_AFTER {
                    return Err(e.clone());
                }
            }
            match self.connect() {
                Ok(c) => st.conn = Some(c),
                Err(e) => {
                    st.failed_at = Some(Instant::now());
                    st.last_error = Some(e.clone());
                    return Err(e);
                }
            }
        }
        let conn = st.conn.as_mut().expect("connected above");
        match f(conn.as_dyn()) {
            Ok(v) => {
                st.failed_at = None;
                Ok(v)
            }
            Err(e) => {
                let mapped = match StoreError::from_redis(&e, &self.target.shown, operation) {
                    StoreError::Timeout { target, .. } => StoreError::Timeout {
                        target,
                        operation,
                        after: self.target.timeout,
                    },
                    other => other,
                };
                if mapped.is_outage() || !matches!(mapped, StoreError::Server { .. }) {
                    // The connection may be out of step: drop it.
                    st.conn = None;
                    st.failed_at = Some(Instant::now());
                    st.last_error = Some(mapped.clone());
                }
                Err(mapped)
            }
        }
    }

    /// The record of `key` and the newest invalidation covering it.
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub fn fetch(&self, ns: &str, key: &[u8]) -> Result<Option<Fetched>, StoreError> {
        let inv = scripts::fetch_invocation(ns, key);
        let v: Value = self.with_conn("FETCH", |c| inv.invoke(c))?;
        scripts::parse_fetched(v)
    }

    /// Runs a write script at time `now` (Unix ms).
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub fn write(&self, op: &WriteOp, now: u64) -> Result<Written, StoreError> {
        let inv = scripts::write_invocation(op, &self.ctx, now);
        let v: Value = self.with_conn(op.name(), |c| inv.invoke(c))?;
        scripts::parse_written(&v)
    }

    /// Writes `op` to `key` at time `now` (Unix ms) if the key still holds exactly what
    /// `expected` says; `Ok(None)` on a conflict. As [`crate::AsyncStore::commit`].
    ///
    /// # Errors
    /// Any [`StoreError`] (after a timeout the commit may or may not have been applied).
    pub fn commit(
        &self,
        ns: &str,
        key: &[u8],
        expected: Expected<'_>,
        op: &CommitOp,
        now: u64,
    ) -> Result<Option<Written>, StoreError> {
        let inv = atomic::commit_invocation(ns, key, expected, op, &self.ctx, now);
        let v: Value = self.with_conn("COMMIT", |c| inv.invoke(c))?;
        atomic::parse_commit(&v)
    }

    /// One page of a delete by pattern (and tag). As [`crate::AsyncStore::delete_matching`].
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub fn delete_matching(
        &self,
        ns: &str,
        cursor: u64,
        pattern: &[u8],
        tag: Option<&str>,
        exact: bool,
    ) -> Result<DeletedPage, StoreError> {
        let inv = atomic::delete_matching_invocation(ns, cursor, pattern, tag, exact, &self.ctx);
        let v: Value = self.with_conn("DELETE_MATCHING", |c| inv.invoke(c))?;
        atomic::parse_deleted_page(v)
    }

    /// One step of `ns`'s sweep. As [`crate::AsyncStore::sweep_step`] (the daemon sweeps;
    /// this one is for tests and tools).
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub fn sweep_step(&self, ns: &str, count: u64) -> Result<crate::Swept, StoreError> {
        let inv = crate::sweep::sweep_invocation(ns, count);
        let v: Value = self.with_conn("SWEEP", |c| inv.invoke(c))?;
        crate::sweep::parse_swept(&v)
    }
}
