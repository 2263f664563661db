//! The Lua scripts: one round trip per operation, atomic within the namespace's slot.
//!
//! The write script applies one write, or a batch of writes of one namespace in order: each
//! increments the namespace clock, changes what it changes and appends one event to the
//! namespace stream (`XADD … MAXLEN ~ N`); the batch then rings the doorbell once
//! (`PUBLISH ck:doorbell <ns>`). All in one script, so the clock values in the stream are
//! consecutive. It answers `{clock, existed}` per write (`existed` is 0 but for DEL).

// The stream-following helpers are used by the daemon's store only.
#![cfg_attr(not(feature = "async"), allow(dead_code))]

use crate::event::{parse_entries, Cursor, Event};
use crate::keys::{NsKeys, DOORBELL_CHANNEL};
use crate::record::{Fetched, Record};
use crate::StoreError;
use redis::{Script, ScriptInvocation, Value};
use std::sync::LazyLock;

/// KEYS: clock, stream, clear, then each write's keys in order (set, delete: the value key;
/// invalidate: `x:<tag>` and, unless exact, `p:<tag>` for each tag; clear: none). ARGV:
/// origin, maxlen, channel, namespace, then the writes in order, each a kind and its fields:
/// `S` record keep_ms key · `D` key · `I` exact(0/1) n tag×n · `C`. Applies them one after
/// the other exactly as one script per write would (one clock `INCR` and one event each, so
/// the clocks stay consecutive), rings the doorbell once, and answers `{clock, existed}` for
/// each write, flattened. A batch of one is the ordinary write; the queue's drainer sends up
/// to [`MAX_BATCH`] at once.
const WRITE: &str = concat!(
    store_record_lua!(),
    r"
local clock, stream, clear = KEYS[1], KEYS[2], KEYS[3]
local origin, maxlen = ARGV[1], ARGV[2]
local ki, ai = 4, 5
local out = {}
while ai <= #ARGV do
  local kind = ARGV[ai]
  local s, existed = 0, 0
  if kind == 'S' then
    s = redis.call('INCR', clock)
    store_record(KEYS[ki], ARGV[ai + 1], tonumber(ARGV[ai + 2]), s)
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 's', s, 'o', origin, 'k', ARGV[ai + 3])
    ki, ai = ki + 1, ai + 4
  elseif kind == 'D' then
    existed = redis.call('DEL', KEYS[ki])
    s = redis.call('INCR', clock)
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 's', s, 'o', origin, 'k', ARGV[ai + 1])
    ki, ai = ki + 1, ai + 2
  elseif kind == 'I' then
    local exact, n = ARGV[ai + 1], tonumber(ARGV[ai + 2])
    s = redis.call('INCR', clock)
    local args = {'MAXLEN', '~', maxlen, '*', 's', s, 'o', origin}
    for i = 1, n do
      redis.call('SET', KEYS[ki], s)
      ki = ki + 1
      if exact ~= '1' then
        redis.call('SET', KEYS[ki], s)
        ki = ki + 1
      end
      args[#args + 1] = 't'
      args[#args + 1] = ARGV[ai + 2 + i]
    end
    args[#args + 1] = 'e'
    args[#args + 1] = exact
    redis.call('XADD', stream, unpack(args))
    ai = ai + 3 + n
  elseif kind == 'C' then
    s = redis.call('INCR', clock)
    redis.call('SET', clear, s)
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 's', s, 'o', origin, 'c', '1')
    ai = ai + 1
  else
    return redis.error_reply('cachekit write script: unknown write kind ' .. tostring(kind))
  end
  out[#out + 1] = s
  out[#out + 1] = existed
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return out
"
);

/// Most writes the drainer sends in one script call. 512 sets of small records run in about
/// 2 ms inside Redis: long enough to amortise the round trip (a batch drains about 100 times
/// faster than one script per write), short enough not to stall other clients of Redis.
pub const MAX_BATCH: usize = 512;

/// KEYS: value. ARGV: the namespace's key prefix `ck:{ns}:`. One GET, then one MGET of the
/// counters the record depends on (read from its tags): `{record, newest}` or nil.
const FETCH: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
if string.len(v) < 38 or string.sub(v, 1, 2) ~= 'CR' then return {v, 0} end
local keys = {ARGV[1] .. 'clear'}
local n = string.byte(v, 37) + 256 * string.byte(v, 38)
local pos = 39
for i = 1, n do
  if pos + 1 > string.len(v) then return {v, 0} end
  local len = string.byte(v, pos) + 256 * string.byte(v, pos + 1)
  local tag = string.sub(v, pos + 2, pos + 1 + len)
  pos = pos + 2 + len
  local from = 1
  while true do
    local j = string.find(tag, '/', from, true)
    if not j then break end
    keys[#keys + 1] = ARGV[1] .. 'p:' .. string.sub(tag, 1, j - 1)
    from = j + 1
  end
  keys[#keys + 1] = ARGV[1] .. 'x:' .. tag
end
local vals = redis.call('MGET', unpack(keys))
local m = 0
for i = 1, #vals do
  if vals[i] then
    local c = tonumber(vals[i])
    if c and c > m then m = c end
  end
end
return {v, m}
";

/// KEYS: stream, clock. The last entry's ID (`0-0` when empty) and the clock: where a new
/// follower starts.
const FOLLOW_START: &str = r"
local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
-- MGET, not GET: INFO commandstats' cmdstat_get counts fills only.
local c = tonumber(redis.call('MGET', KEYS[2])[1] or '0')
if #last == 0 then return {'0-0', c} end
return {last[1][1], c}
";

struct Scripts {
    write: Script,
    fetch: Script,
    follow_start: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    write: Script::new(WRITE),
    fetch: Script::new(FETCH),
    follow_start: Script::new(FOLLOW_START),
});

/// A write to send to Redis.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WriteOp {
    /// Store a record (an expired one becomes a delete).
    Set {
        /// Namespace.
        ns: String,
        /// Key.
        key: Vec<u8>,
        /// What to store (its stamp is filled in by the script).
        record: Record,
    },
    /// Delete a key.
    Delete {
        /// Namespace.
        ns: String,
        /// Key.
        key: Vec<u8>,
    },
    /// Invalidate tags.
    Invalidate {
        /// Namespace.
        ns: String,
        /// Tag paths.
        tags: Vec<String>,
        /// Only these exact paths.
        exact: bool,
    },
    /// Clear a namespace.
    Clear {
        /// Namespace.
        ns: String,
    },
}

impl WriteOp {
    /// The namespace it writes.
    pub fn namespace(&self) -> &str {
        match self {
            WriteOp::Set { ns, .. }
            | WriteOp::Delete { ns, .. }
            | WriteOp::Invalidate { ns, .. }
            | WriteOp::Clear { ns } => ns,
        }
    }

    /// A short name for messages.
    pub fn name(&self) -> &'static str {
        match self {
            WriteOp::Set { .. } => "SET",
            WriteOp::Delete { .. } => "DELETE",
            WriteOp::Invalidate { .. } => "INVALIDATE",
            WriteOp::Clear { .. } => "CLEAR",
        }
    }
}

/// Settings every write carries.
#[derive(Clone, Debug)]
pub struct WriteContext {
    /// Who writes (a random id per daemon or per client process), so a follower can skip
    /// its own events.
    pub origin: Vec<u8>,
    /// `MAXLEN ~` of the namespace streams.
    pub stream_maxlen: u64,
}

/// The script call for `op` at time `now`.
pub(crate) fn write_invocation(
    op: &WriteOp,
    ctx: &WriteContext,
    now: u64,
) -> ScriptInvocation<'static> {
    write_batch_invocation(std::slice::from_ref(op), ctx, now)
}

/// One script call applying `ops` in order at time `now`. Every op must be of one namespace
/// (the script runs in its slot); the caller splits batches at namespace changes.
pub(crate) fn write_batch_invocation(
    ops: &[WriteOp],
    ctx: &WriteContext,
    now: u64,
) -> ScriptInvocation<'static> {
    let ns = ops.first().map_or("", WriteOp::namespace);
    debug_assert!(ops.iter().all(|o| o.namespace() == ns));
    let keys = NsKeys::new(ns);
    let mut inv = SCRIPTS.write.prepare_invoke();
    inv.key(keys.clock())
        .key(keys.stream())
        .key(keys.clear())
        .arg(ctx.origin.as_slice())
        .arg(ctx.stream_maxlen)
        .arg(DOORBELL_CHANNEL)
        .arg(ns);
    for op in ops {
        match op {
            WriteOp::Set { key, record, .. } => match record.keep_ms(now) {
                // Already past its grace deadline: storing it would only bring back nothing.
                Some(0) => {
                    inv.key(keys.value(key)).arg("D").arg(key.as_slice());
                }
                keep => {
                    inv.key(keys.value(key))
                        .arg("S")
                        .arg(record.encode())
                        .arg(keep.unwrap_or(0))
                        .arg(key.as_slice());
                }
            },
            WriteOp::Delete { key, .. } => {
                inv.key(keys.value(key)).arg("D").arg(key.as_slice());
            }
            WriteOp::Invalidate { tags, exact, .. } => {
                for t in tags {
                    inv.key(keys.exact(t));
                    if !exact {
                        inv.key(keys.below(t));
                    }
                }
                inv.arg("I")
                    .arg(if *exact { "1" } else { "0" })
                    .arg(tags.len());
                for t in tags {
                    inv.arg(t.as_str());
                }
            }
            WriteOp::Clear { .. } => {
                inv.arg("C");
            }
        }
    }
    inv
}

/// What a write script answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Written {
    /// The namespace clock value of the write.
    pub clock: u64,
    /// For a delete: whether the key existed in Redis.
    pub existed: bool,
}

pub(crate) fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::BulkString(b) => std::str::from_utf8(b).ok()?.parse().ok(),
        Value::SimpleString(s) => s.parse().ok(),
        _ => None,
    }
}

pub(crate) fn parse_written(v: &Value) -> Result<Written, StoreError> {
    match v {
        Value::Array(a) if a.len() == 2 => match (int(&a[0]), int(&a[1])) {
            (Some(c), Some(e)) if c >= 0 => Ok(Written {
                clock: c as u64,
                existed: e != 0,
            }),
            _ => Err(bad_reply("write script", v)),
        },
        _ => Err(bad_reply("write script", v)),
    }
}

/// Parses the write script's answer for a batch of `n` writes.
pub(crate) fn parse_written_batch(v: &Value, n: usize) -> Result<Vec<Written>, StoreError> {
    match v {
        Value::Array(a) if a.len() == 2 * n => a
            .chunks(2)
            .map(|p| match (int(&p[0]), int(&p[1])) {
                (Some(c), Some(e)) if c >= 0 => Ok(Written {
                    clock: c as u64,
                    existed: e != 0,
                }),
                _ => Err(bad_reply("write script", v)),
            })
            .collect(),
        _ => Err(bad_reply("write script", v)),
    }
}

pub(crate) fn bad_reply(what: &str, v: &Value) -> StoreError {
    StoreError::BadReply {
        message: format!("{what} answered {v:?}"),
    }
}

pub(crate) fn fetch_invocation(ns: &str, key: &[u8]) -> ScriptInvocation<'static> {
    let keys = NsKeys::new(ns);
    let mut inv = SCRIPTS.fetch.prepare_invoke();
    inv.key(keys.value(key)).arg(keys.prefix());
    inv
}

/// Parses the fetch script's answer, moving the record's bytes out of it (no copy).
pub(crate) fn parse_fetched(v: Value) -> Result<Option<Fetched>, StoreError> {
    match v {
        Value::Nil | Value::Boolean(false) => Ok(None),
        Value::Array(mut a) if a.len() == 2 => {
            let newest = int(&a[1]);
            match (a.swap_remove(0), newest) {
                (Value::BulkString(raw), Some(newest)) => Ok(Some(Fetched {
                    record: Record::decode(&raw)?,
                    newest_invalidation: newest.max(0) as u64,
                    raw,
                })),
                (first, _) => Err(bad_reply(
                    "fetch script",
                    &Value::Array(vec![first, a.pop().unwrap_or(Value::Nil)]),
                )),
            }
        }
        v => Err(bad_reply("fetch script", &v)),
    }
}

pub(crate) fn follow_start_invocation(ns: &str) -> ScriptInvocation<'static> {
    let keys = NsKeys::new(ns);
    let mut inv = SCRIPTS.follow_start.prepare_invoke();
    inv.key(keys.stream()).key(keys.clock());
    inv
}

pub(crate) fn parse_cursor(v: &Value) -> Result<Cursor, StoreError> {
    match v {
        Value::Array(a) if a.len() == 2 => {
            let id = match &a[0] {
                Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
                Value::SimpleString(s) => Some(s.clone()),
                _ => None,
            };
            match (id, int(&a[1])) {
                (Some(id), Some(seq)) if seq >= 0 => Ok(Cursor {
                    id,
                    seq: seq as u64,
                }),
                _ => Err(bad_reply("follow-start script", v)),
            }
        }
        _ => Err(bad_reply("follow-start script", v)),
    }
}

/// `XRANGE ck:{ns}:inv (<cursor> + COUNT <count>`: the entries after the cursor.
pub(crate) fn read_cmd(ns: &str, cursor: &Cursor, count: usize) -> redis::Cmd {
    let mut c = redis::cmd("XRANGE");
    c.arg(NsKeys::new(ns).stream())
        .arg(format!("({}", cursor.id))
        .arg("+")
        .arg("COUNT")
        .arg(count);
    c
}

pub(crate) fn parse_read(v: &Value) -> Result<Vec<Event>, StoreError> {
    parse_entries(v)
}
