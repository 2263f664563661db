//! Atomic operations across hosts: a read-modify-write decided against Redis, and deletes by
//! key pattern.
//!
//! - The `commit` script writes a key only if its bytes are still exactly those a fetch read
//!   (or it is still absent) and, when the caller judged the record valid, no invalidation
//!   covering it came in since. Otherwise it writes nothing and answers "conflict" (nil).
//!   [`update_with`] is the loop around it: fetch (the ordinary fetch script, one GET),
//!   validate, let the caller decide, commit, and start again on a conflict, at most
//!   [`MAX_ATTEMPTS`] times.
//! - The `delete_matching` script deletes one page of a namespace's records whose keys match
//!   a glob (`SCAN … MATCH … COUNT` [`SCAN_COUNT`] inside the script), optionally only those
//!   carrying a tag, with one clock increment and one `k` event per deleted key.
//!
//! Both scripts follow the rules of the other write scripts (see `scripts.rs`): clock values
//! in the stream stay consecutive, one PUBLISH per script that wrote. They read the value key
//! with MGET, never GET: `cmdstat_get` counts fetches only.

// The delete-matching helpers are used by the stores (features `async`/`sync`) only.
#![cfg_attr(not(any(feature = "async", feature = "sync")), allow(dead_code))]

use crate::keys::{dependencies, NsKeys, DOORBELL_CHANNEL};
use crate::record::{Fetched, Record};
use crate::scripts::{bad_reply, int, parse_written, WriteContext, Written};
use crate::StoreError;
use redis::{Script, ScriptInvocation, Value};
use std::sync::LazyLock;

/// Most fetch → decide → commit rounds of one atomic operation before it gives up with
/// [`StoreError::Contention`]. A round loses only to a write of the same key (or an
/// invalidation covering it) landing between its fetch and its commit, about one Redis round
/// trip; 64 in a row means dozens of writers hammering one key, where the caller should back
/// off rather than this loop spin.
pub const MAX_ATTEMPTS: u32 = 64;

/// `COUNT` of the `SCAN` in one delete-matching page: bounds the work of one script call
/// (Redis visits about this many hash buckets of the whole database, matching or not).
pub const SCAN_COUNT: u32 = 500;

/// KEYS: value, clock, stream, then (expected valid only) the counters the expected record
/// depends on. ARGV: `absent`|`bytes`, expected bytes, expected stamp, `set`|`del`, record,
/// keep_ms (0 = forever), origin, key, maxlen, channel, namespace.
const COMMIT: &str = concat!(
    store_record_lua!(),
    r"
local cur = redis.call('MGET', KEYS[1])[1]
if ARGV[1] == 'absent' then
  if cur then return false end
elseif cur ~= ARGV[2] then
  return false
elseif #KEYS > 3 then
  local stamp = tonumber(ARGV[3])
  local vals = redis.call('MGET', unpack(KEYS, 4))
  for i = 1, #vals do
    local c = vals[i] and tonumber(vals[i])
    if c and c >= stamp then return false end
  end
end
local s = redis.call('INCR', KEYS[2])
local existed = 0
if ARGV[4] == 'set' then
  store_record(KEYS[1], ARGV[5], tonumber(ARGV[6]), s)
else
  existed = redis.call('DEL', KEYS[1])
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[9], '*', 's', s, 'o', ARGV[7], 'k', ARGV[8])
redis.call('PUBLISH', ARGV[10], ARGV[11])
return {s, existed}
"
);

/// KEYS: clock, stream. ARGV: SCAN cursor, MATCH pattern, COUNT, the value-key prefix
/// `ck:{ns}:v:` (stripped from the keys in events), tag ('' = any), exact (`1`/`0`), origin,
/// maxlen, channel, namespace. Answers `{next cursor, key, clock, key, clock, …}`.
const DELETE_MATCHING: &str = r"
local function tagged(v, want, exact)
  if string.len(v) < 38 or string.sub(v, 1, 2) ~= 'CR' then return false end
  local n = string.byte(v, 37) + 256 * string.byte(v, 38)
  local below = want .. '/'
  local pos = 39
  for i = 1, n do
    if pos + 1 > string.len(v) then return false end
    local len = string.byte(v, pos) + 256 * string.byte(v, pos + 1)
    local t = string.sub(v, pos + 2, pos + 1 + len)
    if t == want then return true end
    if not exact and string.sub(t, 1, string.len(below)) == below then return true end
    pos = pos + 2 + len
  end
  return false
end
local page = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local keys = page[2]
if ARGV[5] ~= '' then
  local kept = {}
  for from = 1, #keys, 1000 do
    local chunk = {}
    for i = from, math.min(from + 999, #keys) do chunk[#chunk + 1] = keys[i] end
    local vals = redis.call('MGET', unpack(chunk))
    for i = 1, #chunk do
      if vals[i] and tagged(vals[i], ARGV[5], ARGV[6] == '1') then kept[#kept + 1] = chunk[i] end
    end
  end
  keys = kept
end
local out = {page[1]}
local plen = string.len(ARGV[4])
for i = 1, #keys do
  if redis.call('DEL', keys[i]) == 1 then
    local s = redis.call('INCR', KEYS[1])
    local k = string.sub(keys[i], plen + 1)
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[8], '*', 's', s, 'o', ARGV[7], 'k', k)
    out[#out + 1] = k
    out[#out + 1] = s
  end
end
if #out > 1 then redis.call('PUBLISH', ARGV[9], ARGV[10]) end
return out
";

struct Scripts {
    commit: Script,
    delete_matching: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    commit: Script::new(COMMIT),
    delete_matching: Script::new(DELETE_MATCHING),
});

/// What a commit expects the key to hold: what a fetch found there.
#[derive(Clone, Copy, Debug)]
pub enum Expected<'a> {
    /// No key (the fetch script answered nil).
    Absent,
    /// Exactly these bytes, a record the caller found invalid (invalidated, past its grace
    /// deadline): only the bytes are compared (an invalid record never becomes valid again).
    Invalid(&'a [u8]),
    /// Exactly these bytes, the record the caller found valid: the counters its tags depend
    /// on (and the namespace's `clear`) must also still be below its stamp.
    Valid {
        /// The bytes as read.
        raw: &'a [u8],
        /// Their decoded record (its stamp and tags).
        record: &'a Record,
    },
}

impl<'a> Expected<'a> {
    /// What a commit must find after `fetched` was read and judged valid or not.
    pub fn of(fetched: Option<&'a Fetched>, valid: bool) -> Expected<'a> {
        match fetched {
            None => Expected::Absent,
            Some(f) if valid => Expected::Valid {
                raw: &f.raw,
                record: &f.record,
            },
            Some(f) => Expected::Invalid(&f.raw),
        }
    }
}

/// The write a commit makes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CommitOp {
    /// Store this record (its stamp is filled in by the script). One already past its grace
    /// deadline at the commit's `now` is sent as a delete, like [`crate::WriteOp::Set`].
    Set(Record),
    /// Delete the key.
    Delete,
}

impl CommitOp {
    /// Whether it deletes the key when committed at `now`.
    pub fn deletes_at(&self, now: u64) -> bool {
        match self {
            CommitOp::Set(r) => r.keep_ms(now) == Some(0),
            CommitOp::Delete => true,
        }
    }
}

pub(crate) fn commit_invocation(
    ns: &str,
    key: &[u8],
    expected: Expected<'_>,
    op: &CommitOp,
    ctx: &WriteContext,
    now: u64,
) -> ScriptInvocation<'static> {
    let keys = NsKeys::new(ns);
    let mut inv = SCRIPTS.commit.prepare_invoke();
    inv.key(keys.value(key))
        .key(keys.clock())
        .key(keys.stream());
    match expected {
        Expected::Absent => inv.arg("absent").arg("").arg(0),
        Expected::Invalid(raw) => inv.arg("bytes").arg(raw).arg(0),
        Expected::Valid { raw, record } => {
            inv.key(keys.clear());
            for (kind, path) in dependencies(&record.tags) {
                inv.key(match kind {
                    "p" => keys.below(&path),
                    _ => keys.exact(&path),
                });
            }
            inv.arg("bytes").arg(raw).arg(record.stamp)
        }
    };
    match op {
        CommitOp::Set(r) if !op.deletes_at(now) => inv
            .arg("set")
            .arg(r.encode())
            .arg(r.keep_ms(now).unwrap_or(0)),
        _ => inv.arg("del").arg("").arg(0),
    };
    inv.arg(ctx.origin.as_slice())
        .arg(key)
        .arg(ctx.stream_maxlen)
        .arg(DOORBELL_CHANNEL)
        .arg(ns);
    inv
}

/// `None`: conflict.
pub(crate) fn parse_commit(v: &Value) -> Result<Option<Written>, StoreError> {
    match v {
        Value::Nil | Value::Boolean(false) => Ok(None),
        v => parse_written(v).map(Some),
    }
}

/// One page of a delete by pattern.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeletedPage {
    /// Redis's SCAN cursor to pass for the next page; 0 = done.
    pub cursor: u64,
    /// The keys deleted (without the namespace's prefix), each with the namespace clock of
    /// its delete event, in order.
    pub keys: Vec<(Vec<u8>, u64)>,
}

pub(crate) fn delete_matching_invocation(
    ns: &str,
    cursor: u64,
    pattern: &[u8],
    tag: Option<&str>,
    exact: bool,
    ctx: &WriteContext,
) -> ScriptInvocation<'static> {
    let keys = NsKeys::new(ns);
    let mut inv = SCRIPTS.delete_matching.prepare_invoke();
    inv.key(keys.clock())
        .key(keys.stream())
        .arg(cursor)
        .arg(keys.value_pattern(pattern))
        .arg(SCAN_COUNT)
        .arg(keys.value(b""))
        .arg(tag.unwrap_or(""))
        .arg(if exact { "1" } else { "0" })
        .arg(ctx.origin.as_slice())
        .arg(ctx.stream_maxlen)
        .arg(DOORBELL_CHANNEL)
        .arg(ns);
    inv
}

pub(crate) fn parse_deleted_page(v: Value) -> Result<DeletedPage, StoreError> {
    let Value::Array(items) = v else {
        return Err(bad_reply("delete-matching script", &v));
    };
    let bad = |items: &[Value]| bad_reply("delete-matching script", &Value::Array(items.to_vec()));
    let cursor = match items.first().and_then(int) {
        Some(c) if c >= 0 => c as u64,
        // A cursor above i64::MAX (SCAN cursors are unsigned).
        _ => match items.first() {
            Some(Value::BulkString(b)) => std::str::from_utf8(b)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(&items))?,
            _ => return Err(bad(&items)),
        },
    };
    if items.len() % 2 != 1 {
        return Err(bad(&items));
    }
    let mut keys = Vec::with_capacity(items.len() / 2);
    for pair in items[1..].chunks(2) {
        match (&pair[0], int(&pair[1])) {
            (Value::BulkString(k), Some(s)) if s >= 0 => keys.push((k.clone(), s as u64)),
            _ => return Err(bad(&items)),
        }
    }
    Ok(DeletedPage { cursor, keys })
}

/// What the caller of a read-modify-write decides, given the valid record (`None` when the
/// key is absent, invalidated, cleared or past its grace deadline) and the time (Unix ms).
/// Whether a record in grace counts as present is the caller's business (`expires_ms`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Change nothing (e.g. `add` of a present key).
    Keep,
    /// Store this record (stamp filled in by the commit).
    Write(Record),
    /// Delete the key.
    Delete,
    /// Refuse (e.g. `incr` of a value that is not an integer): nothing is written, the
    /// message goes back to the caller.
    Fail(String),
}

/// How a read-modify-write ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Updated {
    /// The record was committed at namespace clock `clock` (`record.stamp == clock`).
    Written {
        /// The namespace clock of the write.
        clock: u64,
        /// What is stored now.
        record: Record,
        /// The valid record it replaced.
        prev: Option<Record>,
    },
    /// The key was deleted at namespace clock `clock` ([`Decision::Delete`], or a
    /// [`Decision::Write`] of a record already past its grace deadline).
    Deleted {
        /// The namespace clock of the delete.
        clock: u64,
        /// The valid record it removed.
        prev: Option<Record>,
    },
    /// [`Decision::Keep`]: nothing written; the valid record as read.
    Kept(Option<Record>),
    /// [`Decision::Fail`]: nothing written; the caller's message.
    Refused(String),
}

/// The read-modify-write loop: `fetch` (the fetch script), validate at `now()`, ask `f`,
/// `commit` what it decided against exactly what was read; on a conflict start again, at
/// most [`MAX_ATTEMPTS`] times. The stores' `fetch` and `commit`, wrapped by the caller
/// (the daemon counts and guards them; [`update_blocking`] is the plain use).
///
/// # Errors
/// The first [`StoreError`] of `fetch` or `commit` (nothing was written if it came from
/// `fetch`; a commit that timed out may have been applied), or
/// [`StoreError::Contention`] after [`MAX_ATTEMPTS`] conflicts.
pub fn update_with(
    mut fetch: impl FnMut() -> Result<Option<Fetched>, StoreError>,
    mut commit: impl FnMut(Expected<'_>, &CommitOp, u64) -> Result<Option<Written>, StoreError>,
    mut now: impl FnMut() -> u64,
    f: &mut dyn FnMut(Option<&Record>, u64) -> Decision,
) -> Result<Updated, StoreError> {
    let mut jitter = Jitter::new();
    for attempt in 0..MAX_ATTEMPTS {
        if attempt > 0 {
            std::thread::sleep(jitter.backoff(attempt));
        }
        let now = now();
        let fetched = fetch()?;
        let valid = fetched.as_ref().is_some_and(|x| x.check(now).is_ok());
        let current = fetched.as_ref().filter(|_| valid).map(|x| &x.record);
        let op = match f(current, now) {
            Decision::Keep => return Ok(Updated::Kept(current.cloned())),
            Decision::Fail(m) => return Ok(Updated::Refused(m)),
            Decision::Write(r) => CommitOp::Set(r),
            Decision::Delete => CommitOp::Delete,
        };
        let Some(w) = commit(Expected::of(fetched.as_ref(), valid), &op, now)? else {
            continue;
        };
        let prev = fetched.filter(|_| valid).map(|x| x.record);
        let deleted = op.deletes_at(now);
        return Ok(match op {
            CommitOp::Set(mut record) if !deleted => {
                record.stamp = w.clock;
                Updated::Written {
                    clock: w.clock,
                    record,
                    prev,
                }
            }
            _ => Updated::Deleted {
                clock: w.clock,
                prev,
            },
        });
    }
    Err(StoreError::Contention {
        attempts: MAX_ATTEMPTS,
    })
}

/// Backoff after a conflict of a read-modify-write: before attempt n (n ≥ 1) a random pause
/// of up to [`BACKOFF_UNIT`] × 2^(n − 1), the doubling capped at [`BACKOFF_UNIT`] × 128
/// (12.8 ms). Without it the writer that just won is the first to read again and wins
/// again while the others starve (4 threads in tight loops on one key ran out of 64
/// attempts); with it, 8 threads on one key needed at most about 20 attempts in tests on 2
/// cores. The worst case over [`MAX_ATTEMPTS`] is about 0.73 s of pauses.
pub const BACKOFF_UNIT: std::time::Duration = std::time::Duration::from_micros(100);

/// A small xorshift generator for backoff pauses (no need for good randomness, only for
/// writers not to retry in lockstep).
struct Jitter(u64);

impl Jitter {
    fn new() -> Jitter {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        Jitter(h.finish() | 1)
    }

    fn backoff(&mut self, attempt: u32) -> std::time::Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let max = BACKOFF_UNIT.as_micros() as u64 * (1u64 << (attempt.clamp(1, 8) - 1));
        std::time::Duration::from_micros(self.0 % (max + 1))
    }
}

/// Unix time in ms (0 if the clock is before 1970).
#[cfg(feature = "sync")]
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// [`update_with`] on a [`crate::SyncStore`] (the client library's direct fallback while the
/// daemon is down), with the system clock.
///
/// # Errors
/// As [`update_with`].
#[cfg(feature = "sync")]
pub fn update_blocking(
    store: &crate::SyncStore,
    ns: &str,
    key: &[u8],
    f: &mut dyn FnMut(Option<&Record>, u64) -> Decision,
) -> Result<Updated, StoreError> {
    update_with(
        || store.fetch(ns, key),
        |expected, op, now| store.commit(ns, key, expected, op, now),
        unix_ms,
        f,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_varies() {
        let mut j = Jitter::new();
        let unit = BACKOFF_UNIT.as_micros() as u64;
        let mut seen = std::collections::BTreeSet::new();
        for attempt in 1..MAX_ATTEMPTS {
            let d = j.backoff(attempt).as_micros() as u64;
            assert!(
                d <= unit << (attempt.min(8) - 1),
                "attempt {attempt}: {d} µs"
            );
            seen.insert(d);
        }
        assert!(seen.len() > 10, "pauses vary: {seen:?}");
    }
}
