//! Atomic and management operations: add, replace, cas, incr/decr, get_and_delete, touch,
//! persist, ttl, scan, delete_matching, namespaces. Each write is one request that the daemon
//! applies atomically (with Redis: decided in Redis, see docs/ARCHITECTURE.md).

use std::time::Duration;

use cachekit_envelope::encode_integer;
use cachekit_proto::{
    Condition, Incr, Reply, Request, ScanRequest, Selection, SetIf, MAX_SCAN_PAGE,
};

use crate::client::{unexpected, Client};
use crate::error::Error;
use crate::limits::check_key;
use crate::options::{duration_ms, SetOptions};
use crate::value::{HitInfo, Value};

/// Options of [`Client::incr`] and [`Client::decr`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IncrOptions {
    /// When the key has no fresh entry: the value before the delta (the counter is created as
    /// `initial + delta`). `None`: the call answers `None` and stores nothing.
    pub initial: Option<i64>,
    /// Time to live of a counter the call creates; an existing counter keeps its expiry.
    pub ttl: Option<Duration>,
}

impl IncrOptions {
    /// No initial value (a missing key stays missing), no TTL.
    pub fn new() -> Self {
        Self::default()
    }

    /// Creates a missing counter from `initial`.
    pub fn initial(mut self, initial: i64) -> Self {
        self.initial = Some(initial);
        self
    }

    /// Time to live of a counter the call creates.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// When [`Client::set_i64_if`] stores.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IntegerCondition {
    /// The key has no fresh entry (as [`Client::add`]).
    Absent,
    /// The key has a fresh entry (as [`Client::replace`]).
    Present,
    /// The key's fresh entry has this version (as [`Client::cas`]).
    Version(u64),
}

/// What [`Client::ttl`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ttl {
    /// No such key (or it expired, or was invalidated).
    Missing,
    /// The key never expires.
    Never,
    /// Time left until it expires; zero for a stale entry still served within its grace period.
    Remaining(Duration),
}

/// Which entries [`Client::scan`] and [`Client::delete_matching`] select.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanOptions {
    /// A glob over the key bytes, as Redis's `SCAN MATCH` (`*`, `?`, `[a-z]`, `[^a]`, `\`
    /// escapes); `None` selects every key.
    pub pattern: Option<Vec<u8>>,
    /// Only entries with this tag or (unless `exact`) a tag below it.
    pub tag: Option<String>,
    /// With a tag: exactly that tag path.
    pub exact: bool,
    /// Items per request, 1 to 1000 (0: the daemon's default, 100).
    pub page_size: u32,
}

impl ScanOptions {
    /// Every key of the namespace.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keys matching a glob.
    pub fn pattern(mut self, pattern: impl AsRef<[u8]>) -> Self {
        self.pattern = Some(pattern.as_ref().to_vec());
        self
    }

    /// Entries with this tag or a tag below it.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Entries with exactly this tag.
    pub fn exact_tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self.exact = true;
        self
    }

    /// Items per request.
    pub fn page_size(mut self, n: u32) -> Self {
        self.page_size = n;
        self
    }

    /// An empty pattern would select every key (the protocol's "no pattern"), which a caller
    /// who built it from an empty variable did not mean: refused, `None` says "every key".
    fn check(&self) -> Result<(), Error> {
        match &self.pattern {
            Some(p) if p.is_empty() => Err(Error::InvalidArgument {
                message: "the key pattern is empty; to select every key, give no pattern (None), or \"*\"".into(),
            }),
            _ => Ok(()),
        }
    }

    fn selection(&self) -> Selection {
        Selection {
            pattern: self.pattern.clone().unwrap_or_default(),
            tag: self.tag.clone().unwrap_or_default(),
            exact: self.exact,
        }
    }
}

/// One entry found by [`Client::scan`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScanItem {
    /// The key.
    pub key: Vec<u8>,
    /// Bytes the entry's value takes in the table (its envelope).
    pub stored_len: usize,
    /// When it was written, Unix ms.
    pub created_ms: u64,
    /// When it stops being fresh, Unix ms; `None` = never.
    pub expires_ms: Option<u64>,
    /// When it stops being servable stale, Unix ms; `None` = no grace.
    pub grace_until_ms: Option<u64>,
    /// Its version on this host.
    pub version: u64,
}

/// One namespace of [`Client::namespaces`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NamespaceInfo {
    /// The namespace.
    pub name: String,
    /// Entries the host's table holds for it.
    pub entries: u64,
    /// Bytes those entries take in the table.
    pub bytes: u64,
}

/// The pages of a scan, as an iterator of entries; see [`Client::scan`].
pub struct Scan<'a> {
    client: &'a Client,
    options: ScanOptions,
    cursor: u64,
    page: std::vec::IntoIter<ScanItem>,
    done: bool,
}

impl Iterator for Scan<'_> {
    type Item = Result<ScanItem, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.page.next() {
                return Some(Ok(item));
            }
            if self.done {
                return None;
            }
            match self.client.scan_page(self.cursor, &self.options) {
                Ok((next, items)) => {
                    self.cursor = next;
                    self.done = next == 0;
                    self.page = items.into_iter();
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

impl Client {
    /// With hashed keys, the daemon holds hashes: a pattern could match none of them, and
    /// sending it would show the key names hashing hides. Only "every key" is allowed.
    fn check_pattern_hashing(&self, options: &ScanOptions) -> Result<(), Error> {
        let hashed = self.wire_key(b"k").as_ref() != b"k";
        match &options.pattern {
            Some(p) if hashed && p.as_slice() != b"*" => Err(Error::InvalidArgument {
                message: "keys are hashed (hash_keys): a key pattern cannot match them and would show key names to the daemon; scan or delete by tag, or every key".into(),
            }),
            _ => Ok(()),
        }
    }

    fn set_if(
        &self,
        key: &[u8],
        value: &[u8],
        options: &SetOptions,
        condition: Condition,
    ) -> Result<bool, Error> {
        let set = self.set_body(key, value, options)?;
        self.set_if_body(set, condition)
    }

    fn set_if_body(&self, set: cachekit_proto::Set, condition: Condition) -> Result<bool, Error> {
        let req = Request::SetIf(SetIf { set, condition });
        match self.write(&req)? {
            Reply::Stored { stored, .. } => Ok(stored),
            other => Err(unexpected("SET_IF", &other)),
        }
    }

    /// Stores `value` only if `key` has no fresh entry (an expired or invalidated one counts as
    /// none). Returns whether it stored. Atomic on the host, and across hosts with Redis: of
    /// any number of concurrent `add`s of one key, exactly one returns true.
    ///
    /// # Errors
    /// As [`set`](Client::set).
    pub fn add(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: &SetOptions,
    ) -> Result<bool, Error> {
        self.set_if(key.as_ref(), value.as_ref(), options, Condition::Absent)
    }

    /// Stores `value` only if `key` has a fresh entry. Returns whether it stored.
    ///
    /// # Errors
    /// As [`set`](Client::set).
    pub fn replace(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        options: &SetOptions,
    ) -> Result<bool, Error> {
        self.set_if(key.as_ref(), value.as_ref(), options, Condition::Present)
    }

    /// Compare and set: stores `value` only if `key`'s fresh entry is still the one whose
    /// [`Value::version`] the caller read. Returns whether it stored; on false, read again
    /// and retry. Versions are per host: with Redis, a cas also fails when another host wrote
    /// the key since, unless it wrote the very same bytes.
    ///
    /// # Errors
    /// As [`set`](Client::set).
    pub fn cas(
        &self,
        key: impl AsRef<[u8]>,
        value: impl AsRef<[u8]>,
        version: u64,
        options: &SetOptions,
    ) -> Result<bool, Error> {
        self.set_if(
            key.as_ref(),
            value.as_ref(),
            options,
            Condition::Version(version),
        )
    }

    /// Stores the integer `value` as a counter (what [`incr`](Client::incr) writes), so every
    /// binding reads it back as an integer and `incr` can add to it.
    ///
    /// # Errors
    /// As [`set`](Client::set).
    pub fn set_i64(
        &self,
        key: impl AsRef<[u8]>,
        value: i64,
        options: &SetOptions,
    ) -> Result<(), Error> {
        let mut set = self.set_body(key.as_ref(), b"", options)?;
        set.value = encode_integer(value);
        match self.write(&Request::Set(set))? {
            Reply::Ok => Ok(()),
            other => Err(unexpected("SET", &other)),
        }
    }

    /// [`add`](Client::add), [`replace`](Client::replace) or [`cas`](Client::cas) (`version`
    /// `Some`) of an integer stored as a counter, as [`set_i64`](Client::set_i64) stores it:
    /// so `add(key, 0)` then `incr(key)` works, and every binding reads it as an integer.
    /// Returns whether it stored.
    ///
    /// # Errors
    /// As [`set`](Client::set).
    pub fn set_i64_if(
        &self,
        key: impl AsRef<[u8]>,
        value: i64,
        condition: IntegerCondition,
        options: &SetOptions,
    ) -> Result<bool, Error> {
        let mut set = self.set_body(key.as_ref(), b"", options)?;
        set.value = encode_integer(value);
        let condition = match condition {
            IntegerCondition::Absent => Condition::Absent,
            IntegerCondition::Present => Condition::Present,
            IntegerCondition::Version(v) => Condition::Version(v),
        };
        self.set_if_body(set, condition)
    }

    /// Adds `delta` to the counter at `key` and returns the result; `None` when the key has no
    /// fresh entry and `options.initial` is `None` (nothing is stored then). Atomic: concurrent
    /// `incr`s from any number of processes (and hosts, with Redis) never lose an update.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the value is not an integer or the result would
    /// overflow an i64 (the value is left unchanged); as [`set`](Client::set) otherwise.
    pub fn incr(
        &self,
        key: impl AsRef<[u8]>,
        delta: i64,
        options: &IncrOptions,
    ) -> Result<Option<i64>, Error> {
        let key = &*self.wire_key(key.as_ref());
        check_key(key, &self.shared.limits())?;
        let req = Request::Incr(Incr {
            namespace: self.namespace.to_string(),
            key: key.to_vec(),
            delta,
            initial: options.initial,
            ttl_ms: options.ttl.map(duration_ms),
        });
        match self.write(&req)? {
            Reply::Counter {
                present: true,
                value,
                ..
            } => Ok(Some(value)),
            Reply::Counter { present: false, .. } => Ok(None),
            other => Err(unexpected("INCR", &other)),
        }
    }

    /// Subtracts `delta`: [`incr`](Client::incr) of `-delta`.
    ///
    /// # Errors
    /// As [`incr`](Client::incr); [`Error::InvalidArgument`] for `i64::MIN`.
    pub fn decr(
        &self,
        key: impl AsRef<[u8]>,
        delta: i64,
        options: &IncrOptions,
    ) -> Result<Option<i64>, Error> {
        let negated = delta.checked_neg().ok_or_else(|| Error::InvalidArgument {
            message: "decr by i64::MIN cannot be negated; use incr with a positive delta".into(),
        })?;
        self.incr(key, negated, options)
    }

    /// Removes `key` and returns the value it had, if it had a fresh one; atomic (of
    /// concurrent `get_and_delete`s of one key, one gets the value).
    ///
    /// # Errors
    /// As [`delete`](Client::delete); a value that fails to decode.
    pub fn get_and_delete(&self, key: impl AsRef<[u8]>) -> Result<Option<Value>, Error> {
        let key = &*self.wire_key(key.as_ref());
        check_key(key, &self.shared.limits())?;
        let req = Request::Take {
            namespace: self.namespace.to_string(),
            key: key.to_vec(),
        };
        match self.write(&req)? {
            Reply::FetchHit(hit) => {
                let decoded = self
                    .decode_value(&self.shared.envelope(), key, &hit.value)
                    .map(|bytes| {
                        let info = HitInfo::from_fetch(&hit, bytes.len());
                        Value::new(bytes, info)
                    });
                self.decoded(decoded).map(Some)
            }
            Reply::FetchMiss => Ok(None),
            other => Err(unexpected("TAKE", &other)),
        }
    }

    /// Gives `key`'s fresh entry a new time to live from now (`None` = never expires); its
    /// value, tags and grace length stay. Returns whether the key had a fresh entry.
    ///
    /// # Errors
    /// As [`delete`](Client::delete).
    pub fn touch(&self, key: impl AsRef<[u8]>, ttl: Option<Duration>) -> Result<bool, Error> {
        let key = &*self.wire_key(key.as_ref());
        check_key(key, &self.shared.limits())?;
        let req = Request::Touch {
            namespace: self.namespace.to_string(),
            key: key.to_vec(),
            ttl_ms: ttl.map(duration_ms),
        };
        match self.write(&req)? {
            Reply::Found { found } => Ok(found),
            other => Err(unexpected("TOUCH", &other)),
        }
    }

    /// Makes `key` never expire: [`touch`](Client::touch) with no TTL.
    ///
    /// # Errors
    /// As [`touch`](Client::touch).
    pub fn persist(&self, key: impl AsRef<[u8]>) -> Result<bool, Error> {
        self.touch(key, None)
    }

    /// How long `key` stays fresh, read like a get (from the segment on a hit).
    ///
    /// # Errors
    /// As [`get`](Client::get).
    pub fn ttl(&self, key: impl AsRef<[u8]>) -> Result<Ttl, Error> {
        let Some(v) = self.get(key)? else {
            return Ok(Ttl::Missing);
        };
        Ok(match v.expires_ms {
            None => Ttl::Never,
            Some(e) => Ttl::Remaining(Duration::from_millis(
                e.saturating_sub(cachekit_shm::now_ms()),
            )),
        })
    }

    /// One page of a scan of this namespace on this host: the entries and the cursor of the
    /// next page (0 = done). Start with cursor 0.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad tag or page size; [`Error::Unavailable`].
    pub fn scan_page(
        &self,
        cursor: u64,
        options: &ScanOptions,
    ) -> Result<(u64, Vec<ScanItem>), Error> {
        options.check()?;
        self.check_pattern_hashing(options)?;
        if options.page_size as usize > MAX_SCAN_PAGE {
            return Err(Error::InvalidArgument {
                message: format!(
                    "page_size {} is over the protocol's {MAX_SCAN_PAGE} items per page",
                    options.page_size
                ),
            });
        }
        let req = Request::Scan(ScanRequest {
            namespace: self.namespace.to_string(),
            cursor,
            selection: options.selection(),
            count: options.page_size,
        });
        req.validate(&self.shared.limits())
            .map_err(Error::from_validation)?;
        match self.shared.request(&req)? {
            Reply::ScanPage { cursor, items } => Ok((
                cursor,
                items
                    .into_iter()
                    .map(|i| ScanItem {
                        key: i.key,
                        stored_len: i.value_len as usize,
                        created_ms: i.created_ms,
                        expires_ms: i.expires_ms,
                        grace_until_ms: i.grace_until_ms,
                        version: i.version,
                    })
                    .collect(),
            )),
            other => Err(unexpected("SCAN", &other)),
        }
    }

    /// Every entry of this namespace on this host that `options` selects, a page per request
    /// (the daemon walks a bounded slice of its index per request, so writers are never held
    /// up for long). An entry present for the whole scan is returned exactly once.
    pub fn scan(&self, options: &ScanOptions) -> Scan<'_> {
        Scan {
            client: self,
            options: options.clone(),
            cursor: 0,
            page: Vec::new().into_iter(),
            done: false,
        }
    }

    /// Deletes every entry of this namespace that `options` selects (a pattern and/or a tag),
    /// on this host and, with Redis, in Redis (so other hosts drop them too), a page per
    /// request. Unlike [`invalidate`](Client::invalidate) it frees the memory. Returns how
    /// many entries were deleted (this host's table and Redis records counted separately).
    ///
    /// # Errors
    /// As [`scan_page`](Client::scan_page); [`Error::NotPermitted`].
    pub fn delete_matching(&self, options: &ScanOptions) -> Result<u64, Error> {
        options.check()?;
        self.check_pattern_hashing(options)?;
        let (mut cursor, mut deleted) = (0, 0);
        loop {
            let req = Request::DeleteMatching(ScanRequest {
                namespace: self.namespace.to_string(),
                cursor,
                selection: options.selection(),
                count: 0,
            });
            match self.write(&req)? {
                Reply::DeletedMany {
                    cursor: next,
                    deleted: n,
                } => {
                    deleted += n;
                    if next == 0 {
                        return Ok(deleted);
                    }
                    cursor = next;
                }
                other => return Err(unexpected("DELETE_MATCHING", &other)),
            }
        }
    }

    /// The namespaces this host's table holds entries of, with their entry counts and bytes,
    /// largest first.
    ///
    /// # Errors
    /// [`Error::Unavailable`].
    pub fn namespaces(&self) -> Result<Vec<NamespaceInfo>, Error> {
        match self.shared.request(&Request::Namespaces)? {
            Reply::NamespaceList { namespaces } => Ok(namespaces
                .into_iter()
                .map(|n| NamespaceInfo {
                    name: n.namespace,
                    entries: n.entries,
                    bytes: n.bytes,
                })
                .collect()),
            other => Err(unexpected("NAMESPACES", &other)),
        }
    }

    /// One page of an integrity walk of this host's table: start at cursor 0, go on with the
    /// report's `next` until it is 0. With `repair` (writers only) the damaged entries found are
    /// dropped.
    ///
    /// # Errors
    /// [`Error::Unavailable`]; [`Error::NotPermitted`] for `repair` without the permission.
    pub fn verify_page(
        &self,
        cursor: u64,
        repair: bool,
    ) -> Result<cachekit_proto::VerifyReport, Error> {
        let req = Request::Verify(cachekit_proto::VerifyRequest {
            cursor,
            max_slots: 0,
            repair,
        });
        match self.shared.request(&req)? {
            Reply::VerifyReport(r) => Ok(r),
            other => Err(unexpected("VERIFY", &other)),
        }
    }
}
