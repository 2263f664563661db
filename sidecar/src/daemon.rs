//! The daemon's state and what it does with each request.

use crate::config::Config;
use crate::fetch::Coalescer;
use crate::tiered::check_tags;
use cachekit_proto::{ErrorCode, FetchHit, HelloOk, Limits, Reply, Request, PROTOCOL_VERSION};
use cachekit_shm::{
    Backing, InsertError, InsertOptions, InvalidateMode, Reader, SegmentFds, TableConfig, Writer,
};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Bytes a stored value may exceed the configured `max_value_bytes` by: room for the
/// client-side envelope header (16 bytes) and, later, an AES-GCM nonce and tag.
pub const ENVELOPE_HEADROOM: u64 = 64;

/// Who is on the other end of a connection (from SO_PEERCRED).
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub may_write: bool,
}

#[derive(Default)]
pub struct Counters {
    pub connections_total: AtomicU64,
    pub connections_open: AtomicUsize,
    pub connections_refused: AtomicU64,
    pub requests: AtomicU64,
    pub sets: AtomicU64,
    pub deletes: AtomicU64,
    pub invalidates: AtomicU64,
    pub clears: AtomicU64,
    pub fetches: AtomicU64,
    pub fetch_hits: AtomicU64,
    pub fetch_coalesced: AtomicU64,
    pub bad_frames: AtomicU64,
    pub not_permitted: AtomicU64,
    pub errors: AtomicU64,
}

pub struct Daemon {
    pub cfg: Config,
    writer: Mutex<Writer>,
    reader: Reader,
    pub fds: SegmentFds,
    pub limits: Limits,
    epoch: u64,
    table_bytes: u64,
    client_area_bytes: u64,
    next_slot: AtomicU32,
    fetches: Coalescer,
    /// Bumped after every write, so a FETCH never joins a lookup older than a write that
    /// returned before the FETCH arrived.
    pub(crate) write_gen: AtomicU64,
    pub counters: Counters,
    /// Bumped under the writer lock by every change, so a fill from Redis can tell that a
    /// write or an invalidation raced it.
    pub(crate) gens: crate::gens::Gens,
    /// The Redis tier, when `redis_url` is configured.
    pub(crate) tier: Option<crate::tier::Tier>,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl Daemon {
    pub fn new(cfg: Config) -> anyhow::Result<Daemon> {
        let stored_max = cfg.max_value_bytes + ENVELOPE_HEADROOM;
        let table_cfg = TableConfig {
            arena_bytes: cfg.memory_bytes,
            max_value_bytes: stored_max,
            tag_counters: cfg.tag_counters,
            ..TableConfig::default()
        };
        let tier = match &cfg.redis {
            Some(r) => Some(crate::tier::Tier::new(r.clone())?),
            None => None,
        };
        let writer = Writer::create(&table_cfg, Backing::Memfd)?;
        let fds = writer.fds().expect("memfd backing").try_clone()?;
        let reader = writer.reader();
        let stat_len = |fd| rustix::fs::fstat(fd).map(|s| s.st_size as u64);
        let limits = Limits {
            max_value_bytes: stored_max as usize,
            ..Limits::DEFAULT
        };
        let limits = Limits {
            max_frame_bytes: limits.largest_frame().min(u32::MAX as u64) as usize,
            ..limits
        };
        Ok(Daemon {
            epoch: writer.epoch(),
            table_bytes: stat_len(fds.table_fd())?,
            client_area_bytes: stat_len(fds.client_fd())?,
            cfg,
            writer: Mutex::new(writer),
            reader,
            fds,
            limits,
            next_slot: AtomicU32::new(0),
            fetches: Coalescer::default(),
            write_gen: AtomicU64::new(0),
            counters: Counters::default(),
            gens: crate::gens::Gens::default(),
            tier,
        })
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The writer. A panic while holding it cannot leave the table inconsistent for
    /// readers (they validate everything), so a poisoned lock is taken over.
    pub(crate) fn writer(&self) -> MutexGuard<'_, Writer> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Heartbeat plus housekeeping, called every heartbeat interval.
    pub fn tick(&self) {
        let mut w = self.writer();
        w.heartbeat();
        w.expire();
    }

    /// Marks the segment dead for good, at once: heartbeat 0, and the writer lock is held
    /// until the process exits so no tick can publish a fresh one. Clients stop reading it
    /// immediately instead of after the heartbeat timeout, so a daemon restarted right away
    /// cannot acknowledge a write that a client of the old segment would not see.
    pub fn shut_down(&self) -> MutexGuard<'_, Writer> {
        let w = self.writer();
        w.heartbeat_at(0);
        w
    }

    pub fn peer_may_write(&self, uid: u32, gid: u32) -> bool {
        self.cfg.writer_uids.contains(&uid) || self.cfg.writer_gids.contains(&gid)
    }

    pub fn hello_ok(&self, min: u8, max: u8) -> Result<HelloOk, Reply> {
        if !(min..=max).contains(&PROTOCOL_VERSION) {
            return Err(Reply::error(
                ErrorCode::UnsupportedVersion,
                format!("client speaks protocol versions {min}..={max}, this cachekitd speaks {PROTOCOL_VERSION}; upgrade the older side"),
            ));
        }
        Ok(HelloOk {
            version: PROTOCOL_VERSION,
            daemon_epoch: self.epoch,
            layout_version: cachekit_shm::layout::LAYOUT_VERSION as u32,
            segment_size: self.table_bytes,
            client_area_size: self.client_area_bytes,
            client_slot: self.next_slot.fetch_add(1, Ordering::Relaxed)
                % cachekit_shm::layout::CLIENT_RECORDS as u32,
            heartbeat_timeout_ms: self.cfg.heartbeat_timeout.as_millis() as u32,
            fd_count: 2,
            limits: self.limits,
        })
    }

    /// Answers one request (anything but HELLO).
    pub fn handle(&self, peer: &Peer, req: Request) -> Reply {
        let c = &self.counters;
        bump(&c.requests);
        let write = matches!(
            req,
            Request::Set(_)
                | Request::Delete { .. }
                | Request::Invalidate { .. }
                | Request::Clear { .. }
        );
        if write && !peer.may_write {
            bump(&c.not_permitted);
            return Reply::error(
                ErrorCode::NotPermitted,
                format!(
                    "uid {} gid {} may not write to this cache; add it to writer_uids or writer_gids in the cachekitd configuration",
                    peer.uid, peer.gid
                ),
            );
        }
        let reply = match req {
            Request::Hello(_) => Reply::error(
                ErrorCode::UnexpectedMessage,
                "HELLO was already sent on this connection",
            ),
            Request::Set(s) => {
                bump(&c.sets);
                self.set(&s)
            }
            Request::Delete { namespace, key } => {
                bump(&c.deletes);
                let remote = self.redis_write(cachekit_redis::WriteOp::Delete {
                    ns: namespace.clone(),
                    key: key.clone(),
                });
                let mut w = self.writer();
                let existed = w.delete(&namespace, &key);
                let clock = remote.as_ref().ok().and_then(|r| r.1);
                self.gens.hold(&namespace, &key, None);
                self.gens.bump_key(&namespace, &key, clock);
                drop(w);
                self.write_gen.fetch_add(1, Ordering::Release);
                match remote {
                    Ok((in_redis, _)) => Reply::Deleted {
                        existed: existed || in_redis,
                    },
                    Err(message) => Reply::error(ErrorCode::Unavailable, message),
                }
            }
            Request::Invalidate {
                namespace,
                tags,
                exact,
            } => {
                bump(&c.invalidates);
                // Check every tag first, so an invalid one leaves nothing half done.
                match tags
                    .iter()
                    .find_map(|t| cachekit_shm::validate_tag(t).err())
                {
                    Some(e) => Reply::error(ErrorCode::InvalidArgument, e.to_string()),
                    None => {
                        let mode = if exact {
                            InvalidateMode::Exact
                        } else {
                            InvalidateMode::Hierarchical
                        };
                        let remote = match tags.is_empty() {
                            true => Ok((false, None)),
                            false => self.redis_write(cachekit_redis::WriteOp::Invalidate {
                                ns: namespace.clone(),
                                tags: tags.clone(),
                                exact,
                            }),
                        };
                        let mut w = self.writer();
                        for t in &tags {
                            w.invalidate(&namespace, t, mode).expect("validated above");
                        }
                        self.gens
                            .bump_ns(&namespace, remote.as_ref().ok().and_then(|r| r.1));
                        drop(w);
                        self.write_gen.fetch_add(1, Ordering::Release);
                        match remote {
                            Ok(_) => Reply::Ok,
                            Err(message) => Reply::error(ErrorCode::Unavailable, message),
                        }
                    }
                }
            }
            Request::Clear { namespace } => {
                bump(&c.clears);
                let remote = self.redis_write(cachekit_redis::WriteOp::Clear {
                    ns: namespace.clone(),
                });
                let mut w = self.writer();
                w.clear_namespace(&namespace);
                self.gens
                    .bump_ns(&namespace, remote.as_ref().ok().and_then(|r| r.1));
                drop(w);
                self.write_gen.fetch_add(1, Ordering::Release);
                match remote {
                    Ok(_) => Reply::Ok,
                    Err(message) => Reply::error(ErrorCode::Unavailable, message),
                }
            }
            Request::Fetch { namespace, key } => {
                bump(&c.fetches);
                // A lookup started before the latest write may have missed it: join only
                // lookups that started after it.
                let gen = self.write_gen.load(Ordering::Acquire);
                let (reply, coalesced) = self
                    .fetches
                    .fetch(&namespace, &key, gen, || self.lookup(&namespace, &key));
                if coalesced {
                    bump(&c.fetch_coalesced);
                }
                if matches!(reply, Reply::FetchHit(_)) {
                    bump(&c.fetch_hits);
                }
                reply
            }
            Request::Stats => Reply::Stats {
                counters: self.stats(),
            },
            Request::Ping => Reply::Pong {
                epoch: self.epoch,
                heartbeat_ms: self.reader.heartbeat_ms(),
            },
        };
        if matches!(reply, Reply::Error { .. }) {
            bump(&c.errors);
        }
        reply
    }

    /// SET: to Redis first (write-through), then the table.
    fn set(&self, s: &cachekit_proto::Set) -> Reply {
        if let Some(bad) = self.tier.as_ref().and_then(|_| check_tags(&s.tags)) {
            return bad;
        }
        let remote = self.redis_set(s);
        let tags: Vec<&str> = s.tags.iter().map(String::as_str).collect();
        let opts = InsertOptions {
            ttl_ms: s.ttl_ms,
            grace_ms: s.grace_ms,
            tags: &tags,
        };
        let mut w = self.writer();
        let r = match &remote {
            // Not in Redis: keep neither the old value nor the new one on this host.
            Err(_) => {
                w.delete(&s.namespace, &s.key);
                Ok(())
            }
            Ok(_) => w.insert(&s.namespace, &s.key, &s.value, &opts),
        };
        let clock = remote.as_ref().ok().copied().flatten();
        self.gens
            .hold(&s.namespace, &s.key, clock.filter(|_| r.is_ok()));
        self.gens.bump_key(&s.namespace, &s.key, clock);
        drop(w);
        self.write_gen.fetch_add(1, Ordering::Release);
        match (r, remote) {
            (Err(e), _) => self.insert_error(e),
            (Ok(()), Err(message)) => Reply::error(ErrorCode::Unavailable, message),
            (Ok(()), Ok(_)) => Reply::Ok,
        }
    }

    /// The miss path: the table, then Redis when it is configured.
    fn lookup(&self, ns: &str, key: &[u8]) -> Reply {
        match self.reader.get(ns, key) {
            Some((value, m)) => Reply::FetchHit(FetchHit {
                value,
                created_ms: m.created_ms,
                expires_ms: m.expires_ms,
                grace_until_ms: m.grace_until_ms,
                stale: m.stale,
            }),
            None => self.lookup_redis(ns, key),
        }
    }

    pub fn stats(&self) -> Vec<(String, u64)> {
        let c = &self.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut out: Vec<(String, u64)> = self
            .writer()
            .stats()
            .into_iter()
            .map(|(k, v)| (format!("table_{k}"), v))
            .collect();
        out.extend([
            ("epoch".into(), self.epoch),
            ("memory_bytes".into(), self.cfg.memory_bytes),
            ("max_value_bytes".into(), self.cfg.max_value_bytes),
            ("heartbeat_ms".into(), self.reader.heartbeat_ms()),
            ("connections_total".into(), l(&c.connections_total)),
            (
                "connections_open".into(),
                c.connections_open.load(Ordering::Relaxed) as u64,
            ),
            ("connections_refused".into(), l(&c.connections_refused)),
            ("requests".into(), l(&c.requests)),
            ("sets".into(), l(&c.sets)),
            ("deletes".into(), l(&c.deletes)),
            ("invalidates".into(), l(&c.invalidates)),
            ("clears".into(), l(&c.clears)),
            ("fetches".into(), l(&c.fetches)),
            ("fetch_hits".into(), l(&c.fetch_hits)),
            ("fetch_coalesced".into(), l(&c.fetch_coalesced)),
            ("bad_frames".into(), l(&c.bad_frames)),
            ("not_permitted".into(), l(&c.not_permitted)),
            ("errors".into(), l(&c.errors)),
        ]);
        if let Some(t) = &self.tier {
            t.stats(&mut out);
        }
        out
    }
}

impl Daemon {
    fn insert_error(&self, e: InsertError) -> Reply {
        let code = match e {
            InsertError::ValueTooLarge { len, .. } => {
                return Reply::error(
                    ErrorCode::TooLarge,
                    format!(
                        "value of {len} bytes (encoded) is over max_value_bytes = {}; raise it with cachekitd --max-value-bytes",
                        self.cfg.max_value_bytes
                    ),
                )
            }
            InsertError::KeyTooLarge { .. } | InsertError::NamespaceTooLarge { .. } => ErrorCode::TooLarge,
            InsertError::Tag(_) | InsertError::TooManyTags { .. } => ErrorCode::InvalidArgument,
        };
        Reply::error(code, e.to_string())
    }
}
