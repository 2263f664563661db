//! The [`Client`] handle and its operations.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use cachekit_envelope::{
    decode_into_with, decode_with, encode_with, Aad, DecodeError, EnvelopeConfig, Keyring,
};
use cachekit_proto::{FetchHit, Reply, Request, Set};

use crate::crypto::TenantCrypto;
use crate::direct::Direct;
use crate::error::Error;
use crate::journal::Outcome;
use crate::limits::{check_encoded_value, check_key, check_namespace};
use crate::options::{duration_ms, set_ttl_ms, ClientOptions, SetOptions};
use crate::shared::{LookupMode, SegmentOutcome, Shared};
use crate::stats::{bump, LocalStats, Pong, Stats};
use crate::value::{HitInfo, Value};
use cachekit_redis::WriteOp;

/// A cachekit client bound to one namespace.
///
/// `Send + Sync` and cheap to clone: clones, and handles made by
/// [`with_namespace`](Client::with_namespace), share the attached segment, the connection pool
/// and the counters. Use one per process (per daemon) and share it between threads.
///
/// - **Hits** are read from the shared segment: no syscall, no lock, no socket request, no
///   allocation beyond the returned value ([`get_into`](Client::get_into): none at all once the
///   buffers are warm). [`get_local`](Client::get_local) reads the segment only, and never
///   blocks: for event loops.
/// - **Misses** ask the daemon (FETCH), which fills from Redis and coalesces concurrent misses;
///   when the daemon has no second tier (HELLO_OK's flags), a miss of the live segment is the
///   whole cache's answer and returns without a request (unless the lookup ran out of retries
///   under concurrent writes: then it asks).
/// - **Writes** go to the daemon and are visible to every read on the host that starts after
///   they return.
/// - **Liveness**: while the daemon's heartbeat is stale, and from the moment this client
///   finds the daemon gone (socket refused, connection closed), the segment is not read (it
///   could miss invalidations); gets go to the daemon, and when it cannot be reached either a
///   get is a miss and a write fails with [`Error::Unavailable`]. Reconnecting and re-attaching
///   a restarted daemon's segment is automatic.
#[derive(Clone)]
pub struct Client {
    pub(crate) shared: Arc<Shared>,
    pub(crate) namespace: Arc<str>,
    /// This handle's tenant keys, when encryption is configured.
    pub(crate) crypto: Option<Arc<TenantCrypto>>,
}

const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Client>();
};

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("namespace", &self.namespace)
            .field("socket", &self.shared.opts.resolve_socket())
            .field("segment", &self.shared.segment_info())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connects to the daemon (HELLO) and maps its segment.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] / [`Error::TooLarge`] for bad options;
    /// [`Error::Unavailable`] when the daemon is not running (the message says how to start
    /// it); [`Error::NotPermitted`] when the socket or the daemon refuses this user.
    pub fn connect(options: ClientOptions) -> Result<Client, Error> {
        let client = Client::connect_lazy(options)?;
        client.shared.warm_up()?;
        Ok(client)
    }

    /// Like [`connect`](Client::connect), but connects on first use: a missing daemon is not
    /// an error here, and until it comes up gets miss and writes fail with
    /// [`Error::Unavailable`]. For services that must start whether or not the daemon is up.
    ///
    /// # Errors
    /// Only bad options.
    pub fn connect_lazy(options: ClientOptions) -> Result<Client, Error> {
        options.validate()?;
        let namespace: Arc<str> = Arc::from(options.namespace.as_str());
        let shared = Arc::new(Shared::new(options));
        let crypto = shared.crypto.as_ref().map(|c| c.for_namespace(&namespace));
        Ok(Client {
            shared,
            namespace,
            crypto,
        })
    }

    /// A handle on another namespace sharing this one's connections, segment and counters.
    /// Cheap: no connection, no mapping.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for an empty namespace, [`Error::TooLarge`] over
    /// `max_namespace_bytes`.
    pub fn with_namespace(&self, namespace: &str) -> Result<Client, Error> {
        check_namespace(namespace, &self.shared.limits())?;
        Ok(Client {
            shared: self.shared.clone(),
            namespace: Arc::from(namespace),
            crypto: self
                .shared
                .crypto
                .as_ref()
                .map(|c| c.for_namespace(namespace)),
        })
    }

    /// This handle's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The options the client was made with.
    pub fn options(&self) -> &ClientOptions {
        &self.shared.opts
    }

    /// The key as sent to the daemon: `key` itself, or its keyed hash when
    /// [`Encryption::hash_keys`](crate::Encryption::hash_keys) is on.
    pub(crate) fn wire_key<'k>(&self, key: &'k [u8]) -> Cow<'k, [u8]> {
        match self.crypto.as_deref().and_then(|c| c.hasher.as_ref()) {
            Some(h) => Cow::Owned(h.hash(key)),
            None => Cow::Borrowed(key),
        }
    }

    /// The keyring values are encrypted and decrypted with, when encryption is configured.
    pub(crate) fn keyring(&self) -> Option<&Keyring> {
        self.crypto.as_deref().map(|c| &c.keyring)
    }

    /// Decodes (and decrypts) a stored value of `key` (the wire key) into a new [`Value`].
    pub(crate) fn decode_value(
        &self,
        cfg: &EnvelopeConfig,
        key: &[u8],
        stored: &[u8],
    ) -> Result<Vec<u8>, DecodeError> {
        decode_with(cfg, self.keyring(), Aad::new(&self.namespace, key), stored)
    }

    /// (entries, bytes) held by the memo of opened values, `None` when it is off (no
    /// encryption, or [`Encryption::memo_bytes`](crate::Encryption::memo_bytes) 0). For tests and
    /// diagnostics; waits for the memo's locks.
    #[doc(hidden)]
    pub fn memo_usage(&self) -> Option<(usize, usize)> {
        self.shared.memo.as_ref().map(crate::memo::Memo::usage)
    }

    /// The value of `key`, or `None` on a miss (and when neither the segment nor the daemon can
    /// answer). A stale hit (within grace) has [`Value::stale`] set.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a key over `max_key_bytes`; [`Error::Envelope`] when the stored
    /// bytes are not a valid envelope; [`Error::NotPermitted`], [`Error::Protocol`] from the
    /// daemon.
    pub fn get(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>, Error> {
        let key = self.wire_key(key.as_ref());
        let key = &*key;
        match self.segment_value(key, LookupMode::BeforeFetch)? {
            SegmentOutcome::Hit(r) => return self.decoded(r).map(Some),
            SegmentOutcome::Absent => return Ok(None),
            SegmentOutcome::Miss | SegmentOutcome::Unusable => {}
        }
        self.fetch(key, |cfg, hit| {
            let bytes = self.decode_value(cfg, key, &hit.value)?;
            let info = HitInfo::from_fetch(&hit, bytes.len());
            Ok(Value::new(bytes, info))
        })
    }

    /// Like [`get`](Client::get), but decodes the value into `out` (replacing its contents,
    /// reusing its capacity). Returns the metadata on a hit; on a miss `out` is left empty.
    ///
    /// # Errors
    /// As [`get`](Client::get).
    pub fn get_into(
        &self,
        key: impl AsRef<[u8]>,
        out: &mut Vec<u8>,
    ) -> Result<Option<HitInfo>, Error> {
        let key = self.wire_key(key.as_ref());
        let key = &*key;
        match self.segment_value_into(key, out, LookupMode::BeforeFetch)? {
            SegmentOutcome::Hit(r) => return self.decoded(r).map(Some),
            SegmentOutcome::Absent => return Ok(None),
            SegmentOutcome::Miss | SegmentOutcome::Unusable => {}
        }
        let keys = self.keyring();
        let aad = Aad::new(&self.namespace, key);
        self.fetch(key, |cfg, hit| {
            decode_into_with(cfg, keys, aad, &hit.value, out)?;
            Ok(HitInfo::from_fetch(&hit, out.len()))
        })
    }

    /// The value of `key` if the attached shared segment holds it, without ever leaving this
    /// process: no socket request, no Redis, no reconnect, no lock. For callers that must not
    /// block (an async event loop): try this first, and do a full [`get`](Client::get) (on a
    /// thread that may block) only when it returns `None`.
    ///
    /// A hit is exactly a segment hit of [`get`](Client::get) (same liveness check, same
    /// decoding; [`Value::source`] is [`Source::Segment`](crate::Source::Segment)). `None`
    /// when the key is not in the segment, and when the segment cannot be used: none attached
    /// yet (a [`connect_lazy`](Client::connect_lazy) client that has not reached the daemon),
    /// the daemon's heartbeat is stale, or the daemon was found gone. A key the daemon could
    /// fill from Redis is `None` here until a full get or a write brings it into the segment.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a key over `max_key_bytes`; [`Error::Envelope`] when the stored
    /// bytes are not a valid envelope.
    pub fn get_local(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>, Error> {
        match self.segment_value(&self.wire_key(key.as_ref()), LookupMode::LocalOnly)? {
            SegmentOutcome::Hit(r) => self.decoded(r).map(Some),
            SegmentOutcome::Miss | SegmentOutcome::Absent | SegmentOutcome::Unusable => Ok(None),
        }
    }

    /// Like [`get_local`](Client::get_local), but decodes the value into `out` (replacing its
    /// contents, reusing its capacity). Returns the metadata on a hit; otherwise `out` is left
    /// empty.
    ///
    /// # Errors
    /// As [`get_local`](Client::get_local).
    pub fn get_local_into(
        &self,
        key: impl AsRef<[u8]>,
        out: &mut Vec<u8>,
    ) -> Result<Option<HitInfo>, Error> {
        match self.segment_value_into(&self.wire_key(key.as_ref()), out, LookupMode::LocalOnly)? {
            SegmentOutcome::Hit(r) => self.decoded(r).map(Some),
            SegmentOutcome::Miss | SegmentOutcome::Absent | SegmentOutcome::Unusable => Ok(None),
        }
    }

    /// The values of `keys`, in order. Hits come from the segment; the misses are then fetched
    /// from the daemon one after the other.
    ///
    /// # Errors
    /// As [`get`](Client::get), for the first key that fails.
    pub fn get_many<K: AsRef<[u8]>>(&self, keys: &[K]) -> Result<Vec<Option<Value>>, Error> {
        let mut out = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        let keys: Vec<Cow<'_, [u8]>> = keys.iter().map(|k| self.wire_key(k.as_ref())).collect();
        for (i, key) in keys.iter().enumerate() {
            match self.segment_value(key, LookupMode::BeforeFetch)? {
                SegmentOutcome::Hit(r) => out.push(Some(self.decoded(r)?)),
                SegmentOutcome::Absent => out.push(None),
                SegmentOutcome::Miss | SegmentOutcome::Unusable => {
                    out.push(None);
                    missing.push(i);
                }
            }
        }
        for i in missing {
            let key = &*keys[i];
            out[i] = self.fetch(key, |cfg, hit| {
                let bytes = self.decode_value(cfg, key, &hit.value)?;
                let info = HitInfo::from_fetch(&hit, bytes.len());
                Ok(Value::new(bytes, info))
            })?;
        }
        Ok(out)
    }

    /// Decodes the envelope `raw` of `key` (the wire key), just read from the segment, into
    /// `out`. An encrypted one is first looked up in the memo of opened values: the same
    /// namespace, key and envelope bytes, byte for byte, give the plaintext opened before, with
    /// no AES; otherwise it is opened (and, when that succeeds, remembered).
    fn decode_segment_into(
        &self,
        cfg: &EnvelopeConfig,
        key: &[u8],
        raw: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), DecodeError> {
        let keys = self.keyring();
        let aad = Aad::new(&self.namespace, key);
        let memo = match (&self.shared.memo, keys) {
            (Some(memo), Some(_)) if is_sealed(raw) => memo,
            _ => return decode_into_with(cfg, keys, aad, raw, out),
        };
        if memo.get_into(&self.namespace, key, raw, cfg.max_value_bytes, out) {
            return Ok(());
        }
        decode_into_with(cfg, keys, aad, raw, out)?;
        memo.insert(&self.namespace, key, raw, out);
        Ok(())
    }

    /// The segment's answer for `key`, decoded into a new [`Value`] on a hit.
    fn segment_value(
        &self,
        key: &[u8],
        mode: LookupMode,
    ) -> Result<SegmentOutcome<Result<Value, DecodeError>>, Error> {
        self.shared
            .segment_get(&self.namespace, key, mode, |raw, meta, cfg| {
                let mut bytes = Vec::new();
                self.decode_segment_into(cfg, key, raw, &mut bytes)
                    .map(|()| {
                        let info = HitInfo::from_segment(meta, bytes.len(), raw);
                        Value::new(bytes, info)
                    })
            })
    }

    /// The segment's answer for `key`, decoded into `out` on a hit (`out` is emptied first).
    fn segment_value_into(
        &self,
        key: &[u8],
        out: &mut Vec<u8>,
        mode: LookupMode,
    ) -> Result<SegmentOutcome<Result<HitInfo, DecodeError>>, Error> {
        out.clear();
        self.shared
            .segment_get(&self.namespace, key, mode, |raw, meta, cfg| {
                self.decode_segment_into(cfg, key, raw, out)
                    .map(|()| HitInfo::from_segment(meta, out.len(), raw))
            })
    }

    pub(crate) fn decoded<T>(&self, r: Result<T, DecodeError>) -> Result<T, Error> {
        r.map_err(|e| {
            bump(&self.shared.counters.decode_errors);
            Error::from_decode(e)
        })
    }

    /// FETCH over the socket; a daemon that cannot be reached makes it a miss, or a read from
    /// Redis directly when the fallback is on. `on_hit` decodes with the envelope configuration
    /// in force once the reply is in (the HELLO of a fresh connection may have just attached
    /// a daemon with other limits).
    fn fetch<T>(
        &self,
        key: &[u8],
        on_hit: impl FnOnce(&EnvelopeConfig, FetchHit) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, Error> {
        let c = &self.shared.counters;
        if let (true, Some(direct)) = (self.shared.direct_first(), &self.shared.direct) {
            return self.direct_fetch(direct, key, on_hit);
        }
        bump(&c.fetches);
        let req = Request::Fetch {
            namespace: self.namespace.to_string(),
            key: key.to_vec(),
        };
        match self.shared.request(&req) {
            Ok(Reply::FetchHit(hit)) => {
                bump(&c.fetch_hits);
                self.decoded(on_hit(&self.shared.envelope(), hit)).map(Some)
            }
            Ok(Reply::FetchMiss) => {
                bump(&c.fetch_misses);
                Ok(None)
            }
            Ok(other) => Err(unexpected("FETCH", &other)),
            Err(e) if e.is_unavailable() => match &self.shared.direct {
                Some(direct) if e.is_daemon_gone() => {
                    self.shared.daemon_gone();
                    self.direct_fetch(direct, key, on_hit)
                }
                _ => {
                    bump(&c.unavailable_misses);
                    Ok(None)
                }
            },
            Err(e) => Err(e),
        }
    }

    fn direct_fetch<T>(
        &self,
        direct: &Direct,
        key: &[u8],
        on_hit: impl FnOnce(&EnvelopeConfig, FetchHit) -> Result<T, DecodeError>,
    ) -> Result<Option<T>, Error> {
        match direct.get(&self.namespace, key, &self.shared.counters) {
            Some(hit) => self.decoded(on_hit(&self.shared.envelope(), hit)).map(Some),
            None => Ok(None),
        }
    }

    /// Sends a write to the daemon; while the daemon is down and the fallback is on, runs it in
    /// Redis directly instead (and answers as the daemon would have).
    pub(crate) fn write(&self, req: &Request) -> Result<Reply, Error> {
        // The protocol's checks (tag count, length and grammar among them) for both routes:
        // the daemon's decoder would refuse what fails here, and a write that goes to Redis
        // directly must not store what a daemon would refuse.
        req.validate(&self.shared.limits())
            .map_err(Error::from_validation)?;
        let direct_first = self.shared.direct_first();
        let daemon = if direct_first {
            Err(Error::Unavailable {
                message: "cachekitd's heartbeat is stale (the daemon is stopped or stuck)".into(),
            })
        } else {
            self.shared.request(req)
        };
        // Not delivered because the daemon is gone: journaled (or sent to a daemon that has
        // just come up), so a warm restart cannot undo it. See `journal.rs`.
        let daemon = match daemon {
            Err(e) if e.is_daemon_gone() => self.undelivered(req, e, !direct_first),
            other => other,
        };
        let (Err(e), Some(direct)) = (&daemon, &self.shared.direct) else {
            return daemon;
        };
        if !e.is_daemon_gone() {
            return daemon;
        }
        self.shared.daemon_gone();
        if let Some(reply) = direct.atomic(req, e, &self.shared.counters) {
            return reply;
        }
        let Some(op) = write_op(req) else {
            return daemon;
        };
        let w = direct.write(&op, e, &self.shared.counters)?;
        Ok(match op {
            WriteOp::Delete { .. } => Reply::Deleted { existed: w.existed },
            _ => Reply::Ok,
        })
    }

    /// A write the daemon was gone for (`e`): recorded in the failed-write journal, unless a
    /// daemon answers by now (`may_retry`: then it is sent there once).
    fn undelivered(&self, req: &Request, e: Error, may_retry: bool) -> Result<Reply, Error> {
        let socket = self.shared.opts.resolve_socket();
        let wait = self.shared.opts.request_timeout;
        let journal = &self.shared.journal;
        let count = |recorded: Option<bool>| match recorded {
            Some(true) => bump(&self.shared.counters.journaled_writes),
            Some(false) => bump(&self.shared.counters.journal_failures),
            None => {}
        };
        let (outcome, recorded) =
            journal.failed_write(&socket, req, e.is_connection_lost(), may_retry, wait);
        count(recorded);
        if let Outcome::Done = outcome {
            return Err(e);
        }
        self.shared.allow_connect_now();
        match self.shared.request(req) {
            Err(e) if e.is_daemon_gone() => {
                let (_, recorded) = journal.failed_write(&socket, req, false, false, wait);
                count(recorded);
                Err(e)
            }
            other => other,
        }
    }

    /// Stores `value` under `key`, encoded in an envelope (LZ4 from 256 bytes). When this
    /// returns, no read on the host that starts afterwards sees an older value.
    ///
    /// Values may be as large as the daemon allows (its `--max-value-bytes`), unless
    /// [`ClientOptions::envelope`] sets a smaller limit: see
    /// [`max_value_bytes`](Client::max_value_bytes).
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a key, value or tag over its limit (checked before sending);
    /// [`Error::InvalidArgument`] for a malformed tag; [`Error::Unavailable`] when the daemon
    /// cannot be reached.
    pub fn set(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: &SetOptions,
    ) -> Result<(), Error> {
        let req = Request::Set(self.set_body(key.as_ref(), value.as_ref(), options)?);
        match self.write(&req)? {
            Reply::Ok => Ok(()),
            other => Err(unexpected("SET", &other)),
        }
    }

    /// The body of a SET of `value` (encoded in an envelope), checked against the limits.
    pub(crate) fn set_body(
        &self,
        key: &[u8],
        value: &[u8],
        options: &SetOptions,
    ) -> Result<Set, Error> {
        if !self.shared.attached() {
            // A write needs the daemon anyway: reach it first, so the value is checked against
            // its limits rather than the defaults. If it is down, the write below says so
            // (reconnects are rate-limited: this makes no extra attempt).
            let _ = self.shared.warm_up();
        }
        let limits = self.shared.limits();
        let key = &*self.wire_key(key);
        check_key(key, &limits)?;
        self.shared.value_limit().check(value.len())?;
        let aad = Aad::new(&self.namespace, key);
        let envelope = encode_with(&self.shared.envelope(), self.keyring(), aad, value).map_err(
            |e| match e {
                cachekit_envelope::EncodeError::Random => Error::Io(std::io::Error::other(e)),
                e => Error::TooLarge {
                    message: e.to_string(),
                },
            },
        )?;
        check_encoded_value(value.len(), envelope.len(), &limits)?;
        Ok(Set {
            namespace: self.namespace.to_string(),
            key: key.to_vec(),
            value: envelope,
            ttl_ms: set_ttl_ms(options)?,
            grace_ms: duration_ms(options.grace),
            tags: options.tags.clone(),
        })
    }

    /// Removes `key`; returns whether it was present.
    ///
    /// # Errors
    /// [`Error::TooLarge`] for a key over `max_key_bytes`; [`Error::Unavailable`].
    pub fn delete(&self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
        let key = &*self.wire_key(key.as_ref());
        check_key(key, &self.shared.limits())?;
        let req = Request::Delete {
            namespace: self.namespace.to_string(),
            key: key.to_vec(),
        };
        match self.write(&req)? {
            Reply::Deleted { existed } => Ok(existed),
            other => Err(unexpected("DELETE", &other)),
        }
    }

    /// Invalidates every entry of this namespace tagged with one of `tags` or with a tag below
    /// one (`posts/123` also covers `posts/123/comments`, not `posts/1234`). An empty list does
    /// nothing.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] / [`Error::TooLarge`] for a bad tag list;
    /// [`Error::Unavailable`].
    pub fn invalidate<T: AsRef<str>>(&self, tags: &[T]) -> Result<(), Error> {
        self.invalidate_mode(tags, false)
    }

    /// Invalidates only the entries tagged with exactly one of `tags`.
    ///
    /// # Errors
    /// As [`invalidate`](Client::invalidate).
    pub fn invalidate_exact<T: AsRef<str>>(&self, tags: &[T]) -> Result<(), Error> {
        self.invalidate_mode(tags, true)
    }

    fn invalidate_mode<T: AsRef<str>>(&self, tags: &[T], exact: bool) -> Result<(), Error> {
        if tags.is_empty() {
            return Ok(());
        }
        let tags: Vec<String> = tags.iter().map(|t| t.as_ref().to_string()).collect();
        let req = Request::Invalidate {
            namespace: self.namespace.to_string(),
            tags,
            exact,
        };
        match self.write(&req)? {
            Reply::Ok => Ok(()),
            other => Err(unexpected("INVALIDATE", &other)),
        }
    }

    /// Drops every entry of this handle's namespace (other namespaces are untouched).
    ///
    /// # Errors
    /// [`Error::Unavailable`], [`Error::NotPermitted`].
    pub fn clear(&self) -> Result<(), Error> {
        let req = Request::Clear {
            namespace: self.namespace.to_string(),
        };
        match self.write(&req)? {
            Reply::Ok => Ok(()),
            other => Err(unexpected("CLEAR", &other)),
        }
    }

    /// The daemon's counters (STATS) and this client's own.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when the daemon cannot be reached (the local counters alone are in
    /// [`local_stats`](Client::local_stats)).
    pub fn stats(&self) -> Result<Stats, Error> {
        let daemon = match self.shared.request(&Request::Stats)? {
            Reply::Stats { counters } => counters,
            other => return Err(unexpected("STATS", &other)),
        };
        Ok(Stats {
            daemon,
            local: self.shared.local_stats(),
            segment: self.shared.segment_info(),
        })
    }

    /// This client's counters, without asking the daemon.
    pub fn local_stats(&self) -> LocalStats {
        self.shared.local_stats()
    }

    /// The largest value, in bytes, that [`set`](Client::set) accepts and gets decode now:
    /// once a daemon is attached, its `--max-value-bytes` (or the smaller
    /// `envelope.max_value_bytes` of [`ClientOptions`] when one was set); before that, the
    /// configured `envelope.max_value_bytes`. See [`ClientOptions::envelope`].
    pub fn max_value_bytes(&self) -> usize {
        self.shared.value_limit().max
    }

    /// Request frames sent over the socket so far (HELLO included); hits send none.
    pub fn request_count(&self) -> u64 {
        self.local_stats().requests
    }

    /// The attached segment's epoch, liveness and heartbeat, if one is attached.
    pub fn segment(&self) -> Option<crate::stats::SegmentInfo> {
        self.shared.segment_info()
    }

    /// (open, idle) connections in the pool, for diagnostics.
    pub fn pool_connections(&self) -> (usize, usize) {
        self.shared.pool_counts()
    }

    /// Round trip to the daemon.
    ///
    /// # Errors
    /// [`Error::Unavailable`] when it cannot be reached, [`Error::Timeout`] when it does not
    /// answer.
    pub fn ping(&self) -> Result<Pong, Error> {
        let start = Instant::now();
        match self.shared.request(&Request::Ping)? {
            Reply::Pong {
                epoch,
                heartbeat_ms,
            } => Ok(Pong {
                epoch,
                heartbeat_ms,
                rtt: start.elapsed(),
            }),
            other => Err(unexpected("PING", &other)),
        }
    }
}

/// The Redis write a write request stands for.
fn write_op(req: &Request) -> Option<WriteOp> {
    Some(match req {
        Request::Set(s) => WriteOp::Set {
            ns: s.namespace.clone(),
            key: s.key.clone(),
            record: cachekit_redis::Record::new(
                cachekit_shm::now_ms(),
                s.ttl_ms,
                s.grace_ms,
                s.tags.clone(),
                s.value.clone(),
            ),
        },
        Request::Delete { namespace, key } => WriteOp::Delete {
            ns: namespace.clone(),
            key: key.clone(),
        },
        Request::Invalidate {
            namespace,
            tags,
            exact,
        } => WriteOp::Invalidate {
            ns: namespace.clone(),
            tags: tags.clone(),
            exact: *exact,
        },
        Request::Clear { namespace } => WriteOp::Clear {
            ns: namespace.clone(),
        },
        _ => return None,
    })
}

/// Whether `raw` claims to be an encrypted envelope (flag bit 1); the decoder checks the rest.
fn is_sealed(raw: &[u8]) -> bool {
    raw.get(3)
        .is_some_and(|f| f & cachekit_envelope::FLAG_AES_256_GCM != 0)
}

pub(crate) fn unexpected(operation: &str, reply: &Reply) -> Error {
    Error::Protocol {
        message: format!("cachekitd answered {operation} with {}", reply.kind()),
    }
}
