//! The Lua scripts: one round trip per operation, atomic within the namespace's slot.
//!
//! Every write script increments the namespace clock, changes what it changes, appends one
//! event to the namespace stream (`XADD … MAXLEN ~ N`) and rings the doorbell
//! (`PUBLISH ck:doorbell <ns>`), all in one script, so the clock values in the stream are
//! consecutive. Every write script answers `{clock, existed}` (`existed` is 0 but for DEL).

// The stream-following helpers are used by the daemon's store only.
#![cfg_attr(not(feature = "async"), allow(dead_code))]

use crate::event::{parse_entries, Cursor, Event};
use crate::keys::{NsKeys, DOORBELL_CHANNEL};
use crate::record::{Fetched, Record};
use crate::StoreError;
use redis::{Script, ScriptInvocation, Value};
use std::sync::LazyLock;

/// KEYS: value, clock, stream. ARGV: record, keep_ms (0 = forever), origin, key, maxlen,
/// channel, namespace.
const SET: &str = concat!(
    store_record_lua!(),
    r"
local s = redis.call('INCR', KEYS[2])
store_record(KEYS[1], ARGV[1], tonumber(ARGV[2]), s)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[5], '*', 's', s, 'o', ARGV[3], 'k', ARGV[4])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return {s, 0}
"
);

/// KEYS: value, clock, stream. ARGV: origin, key, maxlen, channel, namespace.
const DELETE: &str = r"
local existed = redis.call('DEL', KEYS[1])
local s = redis.call('INCR', KEYS[2])
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 's', s, 'o', ARGV[1], 'k', ARGV[2])
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {s, existed}
";

/// KEYS: clock, stream, then the counters to set (x:tag, and p:tag unless exact). ARGV:
/// origin, exact (0/1), maxlen, channel, namespace, then the tags.
const INVALIDATE: &str = r"
local s = redis.call('INCR', KEYS[1])
for i = 3, #KEYS do redis.call('SET', KEYS[i], s) end
local args = {'MAXLEN', '~', ARGV[3], '*', 's', s, 'o', ARGV[1]}
for i = 6, #ARGV do
  args[#args + 1] = 't'
  args[#args + 1] = ARGV[i]
end
args[#args + 1] = 'e'
args[#args + 1] = ARGV[2]
redis.call('XADD', KEYS[2], unpack(args))
redis.call('PUBLISH', ARGV[4], ARGV[5])
return {s, 0}
";

/// KEYS: clock, stream, clear. ARGV: origin, maxlen, channel, namespace.
const CLEAR: &str = r"
local s = redis.call('INCR', KEYS[1])
redis.call('SET', KEYS[3], s)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 's', s, 'o', ARGV[1], 'c', '1')
redis.call('PUBLISH', ARGV[3], ARGV[4])
return {s, 0}
";

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
    set: Script,
    delete: Script,
    invalidate: Script,
    clear: Script,
    fetch: Script,
    follow_start: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    set: Script::new(SET),
    delete: Script::new(DELETE),
    invalidate: Script::new(INVALIDATE),
    clear: Script::new(CLEAR),
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
    let s = &*SCRIPTS;
    let keys = NsKeys::new(op.namespace());
    match op {
        WriteOp::Set { ns, key, record } => match record.keep_ms(now) {
            // Already past its grace deadline: storing it would only bring back nothing.
            Some(0) => write_invocation(
                &WriteOp::Delete {
                    ns: ns.clone(),
                    key: key.clone(),
                },
                ctx,
                now,
            ),
            keep => {
                let mut inv = s.set.prepare_invoke();
                inv.key(keys.value(key))
                    .key(keys.clock())
                    .key(keys.stream())
                    .arg(record.encode())
                    .arg(keep.unwrap_or(0))
                    .arg(ctx.origin.as_slice())
                    .arg(key.as_slice())
                    .arg(ctx.stream_maxlen)
                    .arg(DOORBELL_CHANNEL)
                    .arg(ns.as_str());
                inv
            }
        },
        WriteOp::Delete { ns, key } => {
            let mut inv = s.delete.prepare_invoke();
            inv.key(keys.value(key))
                .key(keys.clock())
                .key(keys.stream())
                .arg(ctx.origin.as_slice())
                .arg(key.as_slice())
                .arg(ctx.stream_maxlen)
                .arg(DOORBELL_CHANNEL)
                .arg(ns.as_str());
            inv
        }
        WriteOp::Invalidate { ns, tags, exact } => {
            let mut inv = s.invalidate.prepare_invoke();
            inv.key(keys.clock()).key(keys.stream());
            for t in tags {
                inv.key(keys.exact(t));
                if !exact {
                    inv.key(keys.below(t));
                }
            }
            inv.arg(ctx.origin.as_slice())
                .arg(if *exact { "1" } else { "0" })
                .arg(ctx.stream_maxlen)
                .arg(DOORBELL_CHANNEL)
                .arg(ns.as_str());
            for t in tags {
                inv.arg(t.as_str());
            }
            inv
        }
        WriteOp::Clear { ns } => {
            let mut inv = s.clear.prepare_invoke();
            inv.key(keys.clock())
                .key(keys.stream())
                .key(keys.clear())
                .arg(ctx.origin.as_slice())
                .arg(ctx.stream_maxlen)
                .arg(DOORBELL_CHANNEL)
                .arg(ns.as_str());
            inv
        }
    }
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
