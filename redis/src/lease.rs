//! Fill leases across hosts: the lease of a key in Redis, and the fill that may only land if
//! nothing covering the key changed since the lease was granted.
//!
//! - `take`: `ck:{ns}:lease:<key>` is set to the caller's token for `lease_ms` (`SET … PX`)
//!   when it is absent, or held by a token of the same host (its tokens share a prefix: one
//!   holder per host is the host's lease manager's job, so a new holder of the host takes over
//!   from a dead or expired one at once). Answers the namespace clock at the grant, or the
//!   lease's remaining time when another host holds it. With `check_record`, a key that has
//!   a record in Redis is reported first (the caller reads it rather than computing).
//! - `drop`: compare-and-delete, only the token that holds the lease deletes it.
//! - `fill`: the set script's write, made only if, since the clock `since` read at the
//!   grant, no invalidation covering the record (its tags' `p:`/`x:` counters, the
//!   namespace's `clear`) came in and no write or delete of the key did (the namespace
//!   stream's entries after `since` are scanned for the key, at most [`FILL_SCAN_MAX`]). It
//!   deletes the caller's lease either way. A refused fill writes nothing.
//!
//!   The floor (`clear`) above `since` refuses the fill only if one of those entries is an
//!   invalidation or a clear. The sweep raises the floor without an event, and deletes
//!   counters at or below it: a counter above `since` that the sweep deleted was set by an
//!   invalidation after the grant, whose entry the scan sees; a clear after the grant has its
//!   entry too. With neither among the entries, the floor rose by the sweep alone, which
//!   invalidates only records stamped at or below it, never the fill's (stamped now): so a
//!   sweep pass no longer refuses every leased fill granted before it.
//!
//! The record is stamped like any write (the clock of the fill itself), so followers and
//! fills on every host treat it as the ordinary write it is; the check against `since` is
//! what keeps a value computed across an invalidation out of Redis.
//!
//! Like the other scripts, these read keys with MGET, never GET: `cmdstat_get` counts
//! fetches only.

// Used by the daemon's store only.
#![cfg_attr(not(feature = "async"), allow(dead_code))]

use crate::keys::{dependencies, NsKeys, DOORBELL_CHANNEL};
use crate::record::Record;
use crate::scripts::{bad_reply, int, WriteContext, Written};
use crate::StoreError;
use redis::{Script, ScriptInvocation, Value};
use std::sync::LazyLock;
use std::time::Duration;

/// Most stream entries a fill scans for writes of its key since its grant. More writes to
/// the namespace than this while one value was computed (or entries trimmed before the
/// fill) and the fill is refused: it cannot tell whether one of them was its key. 4096
/// entries take Redis about a millisecond to read inside the script; a namespace written
/// that fast refuses fills whose computations take long, which costs recomputations, never
/// a stale value.
pub const FILL_SCAN_MAX: u64 = 4096;

/// KEYS: lease, clock, value. ARGV: token, lease_ms, this host's token prefix, check (0/1).
const TAKE: &str = r"
local v = redis.call('MGET', KEYS[1], KEYS[2])
local c = tonumber(v[2] or '0') or 0
if ARGV[4] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return {2, c} end
if (not v[1]) or string.sub(v[1], 1, string.len(ARGV[3])) == ARGV[3] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return {1, c}
end
return {0, redis.call('PTTL', KEYS[1])}
";

/// KEYS: lease. ARGV: token.
const DROP: &str = r"
if redis.call('MGET', KEYS[1])[1] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
";

/// KEYS: value, clock, stream, lease, the floor (`clear`), then the tags' counters. ARGV: record,
/// keep_ms (0 = forever), origin, key, maxlen, channel, namespace, since, token ('' = no
/// Redis lease), scan_max. Answers `{clock, 0}` when written, `{0, why}` when refused (1: an
/// invalidation, 2: cannot tell, 3: a write or delete of the key).
const FILL: &str = concat!(
    store_record_lua!(),
    r"
if ARGV[9] ~= '' and redis.call('MGET', KEYS[4])[1] == ARGV[9] then
  redis.call('DEL', KEYS[4])
end
local since = tonumber(ARGV[8])
local floor = tonumber(redis.call('MGET', KEYS[5])[1] or '0') or 0
if #KEYS > 5 then
  local vals = redis.call('MGET', unpack(KEYS, 6, #KEYS))
  for i = 1, #vals do
    local c = vals[i] and tonumber(vals[i])
    if c and c > since then return {0, 1} end
  end
end
local now = tonumber(redis.call('MGET', KEYS[2])[1] or '0') or 0
local n = now - since
local dropping = false
if n > 0 then
  if n > tonumber(ARGV[10]) then return {0, 2} end
  local es = redis.call('XREVRANGE', KEYS[3], '+', '-', 'COUNT', n)
  local seen = 0
  for i = 1, #es do
    local f = es[i][2]
    local s, k, drops = 0, nil, false
    for j = 1, #f, 2 do
      if f[j] == 's' then s = tonumber(f[j + 1]) or 0
      elseif f[j] == 'k' then k = f[j + 1]
      elseif f[j] == 't' or f[j] == 'c' then drops = true end
    end
    if s > since then
      seen = seen + 1
      if k == ARGV[4] then return {0, 3} end
      if drops then dropping = true end
    end
  end
  if seen < n then return {0, 2} end
end
if floor > since and (dropping or n <= 0) then return {0, 1} end
local s = redis.call('INCR', KEYS[2])
store_record(KEYS[1], ARGV[1], tonumber(ARGV[2]), s)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 's', s, 'o', ARGV[3], 'k', ARGV[4])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {s, 0}
"
);

struct Scripts {
    take: Script,
    drop: Script,
    fill: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    take: Script::new(TAKE),
    drop: Script::new(DROP),
    fill: Script::new(FILL),
});

/// What taking a key's lease in Redis gave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// The caller holds it; `since` is the namespace clock at the grant (what its fill is
    /// checked against).
    Mine {
        /// The namespace clock when the lease was taken.
        since: u64,
    },
    /// Another host holds it, for at most `left` more.
    Held {
        /// Its remaining time (`PTTL`).
        left: Duration,
    },
    /// Asked to check first: the key has a record in Redis (valid or not: read it, then ask
    /// again without the check if it is not servable). The lease was not taken.
    Recorded,
}

/// Why a leased fill was not written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FillRefused {
    /// An invalidation covering the record came in since the grant.
    Invalidated,
    /// The key was written or deleted since the grant.
    Written,
    /// More writes to the namespace since the grant than the fill may scan
    /// ([`FILL_SCAN_MAX`]), or some of them trimmed from the stream.
    Unknown,
}

pub(crate) fn take_invocation(
    ns: &str,
    key: &[u8],
    token: &[u8],
    prefix: &[u8],
    lease_ms: u64,
    check_record: bool,
) -> ScriptInvocation<'static> {
    let keys = NsKeys::new(ns);
    let mut inv = SCRIPTS.take.prepare_invoke();
    inv.key(keys.lease(key))
        .key(keys.clock())
        .key(keys.value(key))
        .arg(token)
        .arg(lease_ms.max(1))
        .arg(prefix)
        .arg(if check_record { "1" } else { "0" });
    inv
}

pub(crate) fn parse_taken(v: &Value) -> Result<Taken, StoreError> {
    match v {
        Value::Array(a) if a.len() == 2 => match (int(&a[0]), int(&a[1])) {
            (Some(1), Some(c)) if c >= 0 => Ok(Taken::Mine { since: c as u64 }),
            (Some(2), Some(_)) => Ok(Taken::Recorded),
            // PTTL: -1 (no expiry) and -2 (gone since) cannot happen inside the script;
            // read as "expires at once" so the caller asks again.
            (Some(0), Some(left)) => Ok(Taken::Held {
                left: Duration::from_millis(left.max(0) as u64),
            }),
            _ => Err(bad_reply("lease take script", v)),
        },
        _ => Err(bad_reply("lease take script", v)),
    }
}

pub(crate) fn drop_invocation(ns: &str, key: &[u8], token: &[u8]) -> ScriptInvocation<'static> {
    let mut inv = SCRIPTS.drop.prepare_invoke();
    inv.key(NsKeys::new(ns).lease(key)).arg(token);
    inv
}

pub(crate) fn parse_dropped(v: &Value) -> Result<bool, StoreError> {
    int(v)
        .map(|n| n > 0)
        .ok_or_else(|| bad_reply("lease drop script", v))
}

/// The fill script's call: `record` for `key`, checked against `since`; `token` is the
/// caller's Redis lease (deleted by the script), if it holds one.
pub(crate) fn fill_invocation(
    ns: &str,
    key: &[u8],
    record: &Record,
    since: u64,
    token: Option<&[u8]>,
    ctx: &WriteContext,
    now: u64,
) -> ScriptInvocation<'static> {
    let keys = NsKeys::new(ns);
    let mut inv = SCRIPTS.fill.prepare_invoke();
    inv.key(keys.value(key))
        .key(keys.clock())
        .key(keys.stream())
        .key(keys.lease(key))
        .key(keys.clear());
    for (kind, path) in dependencies(&record.tags) {
        inv.key(match kind {
            "p" => keys.below(&path),
            _ => keys.exact(&path),
        });
    }
    inv.arg(record.encode())
        // 0 is "forever" to the script: a record already past its grace keeps 1 ms.
        .arg(record.keep_ms(now).map_or(0, |k| k.max(1)))
        .arg(ctx.origin.as_slice())
        .arg(key)
        .arg(ctx.stream_maxlen)
        .arg(DOORBELL_CHANNEL)
        .arg(ns)
        .arg(since)
        .arg(token.unwrap_or(b""))
        .arg(FILL_SCAN_MAX);
    inv
}

pub(crate) fn parse_filled(v: &Value) -> Result<Result<Written, FillRefused>, StoreError> {
    match v {
        Value::Array(a) if a.len() == 2 => match (int(&a[0]), int(&a[1])) {
            (Some(c), Some(0)) if c > 0 => Ok(Ok(Written {
                clock: c as u64,
                existed: false,
            })),
            (Some(0), Some(1)) => Ok(Err(FillRefused::Invalidated)),
            (Some(0), Some(2)) => Ok(Err(FillRefused::Unknown)),
            (Some(0), Some(3)) => Ok(Err(FillRefused::Written)),
            _ => Err(bad_reply("lease fill script", v)),
        },
        _ => Err(bad_reply("lease fill script", v)),
    }
}
