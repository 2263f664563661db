//! The daemon's store: tokio, a `ConnectionManager` (one multiplexed connection that
//! reconnects by itself) or a Redis Cluster connection; every call under a timeout.

use crate::atomic::{self, CommitOp, DeletedPage, Expected};
use crate::event::{Cursor, Event};
use crate::lease::{self, FillRefused, Taken};
use crate::record::{Fetched, Record};
use crate::scripts::{self, Sequenced, WriteContext, WriteOp, Written};
use crate::sentinel::{self, SentinelSpec};
use crate::target::Target;
use crate::StoreError;
use futures_util::StreamExt;
use redis::aio::ConnectionManager;
use redis::aio::MultiplexedConnection;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, RedisFuture, Value};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
    Sentinel(SentinelConn),
}

/// The primary of a Sentinel-managed service: found through the sentinels on first use and
/// again after any failure that may mean it moved (see [`sentinel::should_rediscover`]).
#[derive(Clone)]
struct SentinelConn(Arc<SentinelShared>);

struct SentinelShared {
    spec: SentinelSpec,
    timeout: Duration,
    state: tokio::sync::Mutex<Primary>,
    /// Bumped each time the primary found has another history than the one before.
    epoch: AtomicU64,
}

#[derive(Default)]
struct Primary {
    /// The connection in use, with its generation (so a failure forgets only its own).
    conn: Option<(u64, MultiplexedConnection)>,
    generation: u64,
    /// The history (`master_replid`) of the last primary found.
    identity: Option<String>,
    /// Set after a failed lookup: no new one for [`LOOKUP_RETRY_AFTER`].
    failed: Option<(Instant, redis::RedisError)>,
}

/// Least time between two lookups through the sentinels after a failed one.
const LOOKUP_RETRY_AFTER: Duration = Duration::from_millis(100);

impl SentinelConn {
    async fn current(&self) -> redis::RedisResult<(u64, MultiplexedConnection)> {
        let sh = &self.0;
        let mut p = sh.state.lock().await;
        if let Some((g, c)) = &p.conn {
            return Ok((*g, c.clone()));
        }
        if let Some((at, e)) = &p.failed {
            if at.elapsed() < LOOKUP_RETRY_AFTER {
                return Err(e.clone());
            }
        }
        match sentinel::connect_async(&sh.spec, sh.timeout).await {
            Ok(found) => {
                if p.identity.as_ref().is_some_and(|i| *i != found.identity) {
                    sh.epoch.fetch_add(1, Ordering::SeqCst);
                    tracing::warn!(primary = %crate::target::redact(&found.url), service = %sh.spec.service,
                        "the sentinels name a new primary (a failover): this host clears what it holds of the namespaces it follows");
                } else {
                    tracing::info!(primary = %crate::target::redact(&found.url), service = %sh.spec.service, "connected to the primary named by the sentinels");
                }
                p.identity = Some(found.identity);
                p.generation += 1;
                p.conn = Some((p.generation, found.conn.clone()));
                p.failed = None;
                Ok((p.generation, found.conn))
            }
            Err(e) => {
                let e = redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "primary not found through the sentinels",
                    e.to_string(),
                ));
                p.failed = Some((Instant::now(), e.clone()));
                Err(e)
            }
        }
    }

    /// Drops connection `generation` (if still current): the next call looks up again.
    async fn forget(&self, generation: u64) {
        let mut p = self.0.state.lock().await;
        if p.conn.as_ref().is_some_and(|(g, _)| *g == generation) {
            p.conn = None;
        }
    }

    async fn run<T>(
        &self,
        f: impl AsyncFnOnce(&mut MultiplexedConnection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        let (g, mut c) = self.current().await?;
        let r = f(&mut c).await;
        if let Err(e) = &r {
            if sentinel::should_rediscover(e) {
                self.forget(g).await;
            }
        }
        r
    }
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
            Conn::Sentinel(s) => Box::pin(s.run(async move |c| c.req_packed_command(cmd).await)),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Sentinel(s) => {
                Box::pin(s.run(async move |c| c.req_packed_commands(pipeline, offset, count).await))
            }
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
            Conn::Sentinel(s) => s.0.spec.db,
        }
    }
}

/// An async handle on Redis. Cheap to clone (clones share the connection).
#[derive(Clone)]
pub struct AsyncStore {
    conn: Conn,
    target: Target,
    ctx: WriteContext,
}

impl AsyncStore {
    /// A store for `target`. Connects lazily: a Redis that is down now is not an error here
    /// (the first calls fail instead, and the connection is retried in the background).
    /// Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// [`StoreError::Config`] when the target cannot be used.
    pub fn new(target: &Target, ctx: WriteContext) -> Result<AsyncStore, StoreError> {
        let config_err = |e: redis::RedisError| StoreError::Config {
            url: target.shown.clone(),
            message: e.to_string(),
        };
        let conn = if target.cluster {
            let client = redis::cluster::ClusterClient::builder(target.urls.clone())
                .connection_timeout(target.timeout)
                .response_timeout(target.timeout)
                .retries(1)
                .build()
                .map_err(config_err)?;
            let cfg = redis::cluster::ClusterConfig::new()
                .set_connection_timeout(target.timeout)
                .set_response_timeout(target.timeout);
            Conn::Cluster(client.get_pending_async_connection_with_config(cfg))
        } else if let Some(spec) = &target.sentinel {
            Conn::Sentinel(SentinelConn(Arc::new(SentinelShared {
                spec: spec.clone(),
                timeout: target.timeout,
                state: tokio::sync::Mutex::new(Primary::default()),
                epoch: AtomicU64::new(0),
            })))
        } else {
            let client = redis::Client::open(target.urls[0].as_str()).map_err(config_err)?;
            let cfg = redis::aio::ConnectionManagerConfig::new()
                .set_connection_timeout(Some(target.timeout))
                .set_response_timeout(Some(target.timeout))
                .set_number_of_retries(2)
                .set_min_delay(Duration::from_millis(10))
                .set_max_delay(Duration::from_millis(500));
            Conn::Single(
                client
                    .get_connection_manager_lazy(cfg)
                    .map_err(config_err)?,
            )
        };
        Ok(AsyncStore {
            conn,
            target: target.clone(),
            ctx,
        })
    }

    /// The target, for messages.
    pub fn target(&self) -> &Target {
        &self.target
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        f: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.target.timeout, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(
                match StoreError::from_redis(&e, &self.target.shown, operation) {
                    StoreError::Timeout { target, .. } => StoreError::Timeout {
                        target,
                        operation,
                        after: self.target.timeout,
                    },
                    other => other,
                },
            ),
            Err(_) => {
                if let Conn::Sentinel(s) = &self.conn {
                    // A hung primary may have been replaced: look it up again next time.
                    let mut p = s.0.state.lock().await;
                    p.conn = None;
                }
                Err(StoreError::Timeout {
                    target: self.target.shown.clone(),
                    operation,
                    after: self.target.timeout,
                })
            }
        }
    }

    /// How many times the primary changed history since this store started (a Sentinel
    /// failover, or a primary restarted); always 0 without Sentinel. Whoever keeps
    /// state derived from Redis (the daemon's table, its stream cursors) must drop it when
    /// this moves: the new primary may lack writes the old one acknowledged, and its clocks
    /// may repeat values already seen.
    pub fn epoch(&self) -> u64 {
        match &self.conn {
            Conn::Sentinel(s) => s.0.epoch.load(Ordering::SeqCst),
            _ => 0,
        }
    }

    /// The record of `key` and the newest invalidation covering it (one GET, one MGET, one
    /// round trip); `None` when Redis has no such key.
    ///
    /// # Errors
    /// Any [`StoreError`]; none of them panics.
    pub async fn fetch(&self, ns: &str, key: &[u8]) -> Result<Option<Fetched>, StoreError> {
        let inv = scripts::fetch_invocation(ns, key);
        let mut c = self.conn.clone();
        let v: Value = self.timed("FETCH", inv.invoke_async(&mut c)).await?;
        scripts::parse_fetched(v)
    }

    /// Runs a write script at time `now` (Unix ms).
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub async fn write(&self, op: &WriteOp, now: u64) -> Result<Written, StoreError> {
        let inv = scripts::write_invocation(op, &self.ctx, now);
        let mut c = self.conn.clone();
        let v: Value = self.timed(op.name(), inv.invoke_async(&mut c)).await?;
        scripts::parse_written(&v)
    }

    /// Applies `ops` (all of one namespace) in order in one script call at time `now` (Unix
    /// ms): one round trip for up to [`crate::MAX_BATCH`] writes. The script is atomic: after
    /// an error or a timeout either every write of the batch was applied or none (but a
    /// script error, such as an ACL refusal, stops it part way: the writes before it stay).
    /// Not sequenced: sending it again applies it again (see [`Self::write_sequenced`]).
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub async fn write_batch(&self, ops: &[WriteOp], now: u64) -> Result<Vec<Written>, StoreError> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let inv = scripts::write_batch_invocation(ops.iter().map(|o| (o, None)), &self.ctx, now);
        let mut c = self.conn.clone();
        let v: Value = self.timed("WRITE_BATCH", inv.invoke_async(&mut c)).await?;
        scripts::parse_written_batch(&v, ops.len())
    }

    /// As [`Self::write_batch`], each write with its place in its sender's order: a write
    /// an earlier send already applied is skipped and answers clock 0 (see
    /// [`crate::Sequence`]), so a batch (or a part of one) may be sent again after a timeout
    /// or an error without applying anything twice.
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub async fn write_sequenced(
        &self,
        batch: &[Sequenced],
        now: u64,
    ) -> Result<Vec<Written>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let inv = scripts::write_batch_invocation(
            batch.iter().map(|w| (&w.op, Some(w.seq))),
            &self.ctx,
            now,
        );
        let mut c = self.conn.clone();
        let operation = match batch {
            [one] => one.op.name(),
            _ => "WRITE_BATCH",
        };
        let v: Value = self.timed(operation, inv.invoke_async(&mut c)).await?;
        scripts::parse_written_batch(&v, batch.len())
    }

    /// Writes `op` to `key` at time `now` (Unix ms) if the key still holds exactly what
    /// `expected` says (see [`Expected`]); one round trip. `Ok(None)`: it did not (a
    /// conflict), nothing was written.
    ///
    /// # Errors
    /// Any [`StoreError`] (after a timeout the commit may or may not have been applied).
    pub async fn commit(
        &self,
        ns: &str,
        key: &[u8],
        expected: Expected<'_>,
        op: &CommitOp,
        now: u64,
    ) -> Result<Option<Written>, StoreError> {
        let inv = atomic::commit_invocation(ns, key, expected, op, &self.ctx, now);
        let mut c = self.conn.clone();
        let v: Value = self.timed("COMMIT", inv.invoke_async(&mut c)).await?;
        atomic::parse_commit(&v)
    }

    /// Deletes one page of the records of `ns` whose keys match the glob `pattern` (Redis
    /// `SCAN MATCH` syntax; empty = all) and, if `tag` is given, that carry it (or, unless
    /// `exact`, a tag below it). Start with `cursor` 0, pass each answer's cursor back, stop
    /// at 0. A page may delete nothing and still not be the last.
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub async fn delete_matching(
        &self,
        ns: &str,
        cursor: u64,
        pattern: &[u8],
        tag: Option<&str>,
        exact: bool,
    ) -> Result<DeletedPage, StoreError> {
        let inv = atomic::delete_matching_invocation(ns, cursor, pattern, tag, exact, &self.ctx);
        let mut c = self.conn.clone();
        let v: Value = self
            .timed("DELETE_MATCHING", inv.invoke_async(&mut c))
            .await?;
        atomic::parse_deleted_page(v)
    }

    /// Takes the fill lease of `key` for `token` (see [`crate::lease`]): when it is free or
    /// held by a token starting with `prefix` (this host's). With `check_record`, answers
    /// [`Taken::Recorded`] instead when the key has a record.
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub async fn take_lease(
        &self,
        ns: &str,
        key: &[u8],
        token: &[u8],
        prefix: &[u8],
        lease_ms: u64,
        check_record: bool,
    ) -> Result<Taken, StoreError> {
        let inv = lease::take_invocation(ns, key, token, prefix, lease_ms, check_record);
        let mut c = self.conn.clone();
        let v: Value = self.timed("LEASE", inv.invoke_async(&mut c)).await?;
        lease::parse_taken(&v)
    }

    /// Deletes the fill lease of `key` if `token` holds it; whether it did.
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub async fn drop_lease(&self, ns: &str, key: &[u8], token: &[u8]) -> Result<bool, StoreError> {
        let inv = lease::drop_invocation(ns, key, token);
        let mut c = self.conn.clone();
        let v: Value = self
            .timed("LEASE_RELEASE", inv.invoke_async(&mut c))
            .await?;
        lease::parse_dropped(&v)
    }

    /// Writes `record` for `key` at `now` unless an invalidation covering it, or a write or
    /// delete of the key, came in after namespace clock `since`; deletes the lease `token`
    /// holds either way. `Ok(Err(why))`: refused, nothing written.
    ///
    /// # Errors
    /// Any [`StoreError`] (after a timeout the fill may or may not have been applied).
    pub async fn fill_leased(
        &self,
        ns: &str,
        key: &[u8],
        record: &Record,
        since: u64,
        token: Option<&[u8]>,
        now: u64,
    ) -> Result<Result<Written, FillRefused>, StoreError> {
        let inv = lease::fill_invocation(ns, key, record, since, token, &self.ctx, now);
        let mut c = self.conn.clone();
        let v: Value = self.timed("LEASE_FILL", inv.invoke_async(&mut c)).await?;
        lease::parse_filled(&v)
    }

    /// One step of `ns`'s sweep (see [`crate::sweep`]): up to `count` keys visited.
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub async fn sweep_step(&self, ns: &str, count: u64) -> Result<crate::Swept, StoreError> {
        let inv = crate::sweep::sweep_invocation(ns, count);
        let mut c = self.conn.clone();
        let v: Value = self.timed("SWEEP", inv.invoke_async(&mut c)).await?;
        crate::sweep::parse_swept(&v)
    }

    /// Where a new follower of `ns` starts: after the stream's last entry.
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub async fn follow_start(&self, ns: &str) -> Result<Cursor, StoreError> {
        let inv = scripts::follow_start_invocation(ns);
        let mut c = self.conn.clone();
        let v: Value = self.timed("FOLLOW", inv.invoke_async(&mut c)).await?;
        scripts::parse_cursor(&v)
    }

    /// Raises the clock of `ns` to `known` if it is below; answers the clock as it was (see
    /// [`crate::sentinel`]: after a failover, new writes must not reuse clock values a host
    /// already applied).
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub async fn raise_clock(&self, ns: &str, known: u64) -> Result<u64, StoreError> {
        let inv = sentinel::raise_clock_invocation(ns, known);
        let mut c = self.conn.clone();
        let v: i64 = self.timed("RAISE_CLOCK", inv.invoke_async(&mut c)).await?;
        Ok(v.max(0) as u64)
    }

    /// Up to `count` events of `ns` after `cursor`.
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub async fn read_since(
        &self,
        ns: &str,
        cursor: &Cursor,
        count: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let cmd = scripts::read_cmd(ns, cursor, count);
        let mut c = self.conn.clone();
        let v: Value = self.timed("XRANGE", cmd.query_async(&mut c)).await?;
        scripts::parse_read(&v)
    }

    /// The entry `id` of the stream of `ns`, `None` when the stream does not hold it (a warm
    /// restart checks that its recorded position is still where it was: `resume.rs`).
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub async fn entry_at(&self, ns: &str, id: &str) -> Result<Option<Event>, StoreError> {
        let cmd = scripts::entry_cmd(ns, id);
        let mut c = self.conn.clone();
        let v: Value = self.timed("XRANGE", cmd.query_async(&mut c)).await?;
        Ok(scripts::parse_read(&v)?.into_iter().find(|e| e.id == id))
    }

    /// PING (for the circuit breaker's probe).
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut c = self.conn.clone();
        let _: Value = self
            .timed("PING", redis::cmd("PING").query_async(&mut c))
            .await?;
        Ok(())
    }

    /// Subscribes to the doorbell channel on a dedicated connection (for a cluster: the
    /// first seed node that answers; classic pub/sub reaches every node). Yields the
    /// namespace names rung; ends when the connection is lost.
    ///
    /// # Errors
    /// Any [`StoreError`].
    pub async fn doorbell(
        &self,
    ) -> Result<impl futures_util::Stream<Item = String> + Send + 'static, StoreError> {
        let mut last = None;
        let urls = match &self.target.sentinel {
            Some(spec) => match self
                .timed("SENTINEL", async {
                    sentinel::connect_async(spec, self.target.timeout)
                        .await
                        .map_err(|e| {
                            redis::RedisError::from((
                                redis::ErrorKind::Io,
                                "primary not found through the sentinels",
                                e.to_string(),
                            ))
                        })
                })
                .await
            {
                Ok(found) => vec![found.url],
                Err(e) => return Err(e),
            },
            None => self.target.urls.clone(),
        };
        for url in &urls {
            let attempt = async {
                let client = redis::Client::open(url.as_str())?;
                let mut ps = client.get_async_pubsub().await?;
                ps.subscribe(crate::keys::DOORBELL_CHANNEL).await?;
                Ok::<_, redis::RedisError>(ps)
            };
            match self.timed("SUBSCRIBE", attempt).await {
                Ok(ps) => {
                    return Ok(ps
                        .into_on_message()
                        .map(|m| String::from_utf8_lossy(m.get_payload_bytes()).into_owned()))
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| StoreError::Config {
            url: self.target.shown.clone(),
            message: "no URL".into(),
        }))
    }
}
