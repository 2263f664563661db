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

/// KEYS: clock, stream, clear, the writer's sequence key (`ck:{ns}:seq:<origin>`), then each
/// write's keys in order (set, delete: the value key; invalidate: `x:<tag>` and, unless exact,
/// `p:<tag>` for each tag; clear: none). ARGV: origin, maxlen, channel, namespace, how long
/// the sequence key is kept (ms), then the writes in order, each a lane (`''`: not
/// sequenced), a sequence number, a kind and its fields: `S` record keep_ms key · `D` key ·
/// `I` exact(0/1) n tag×n · `C`.
///
/// Applies them one after the other exactly as one script per write would (one clock `INCR`
/// and one event each, so the clocks stay consecutive), rings the doorbell once, and answers
/// `{clock, existed}` for each write, flattened. A sequenced write whose number is at or
/// below the highest one its lane has applied in this namespace (the field `<lane>` of the
/// sequence key) is skipped and answers `{0, 0}`: an earlier send of it was applied (see
/// [`Sequence`]). The lanes' highest numbers are recorded for every write applied, also when
/// an error stops the batch part way (then the error is answered after recording them), and
/// the sequence key's expiry is renewed by every call carrying a sequenced write. A batch of
/// one is the ordinary write; the queue's drainer sends up to [`MAX_BATCH`] at once.
const WRITE: &str = concat!(
    store_record_lua!(),
    r"
local clock, stream, clear, seqkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local origin, maxlen = ARGV[1], ARGV[2]
local ki, ai = 5, 6
local out = {}
local seen, raised, sequenced = {}, {}, false
local function highest(lane)
  local h = seen[lane]
  if h == nil then
    h = tonumber(redis.call('HGET', seqkey, lane) or '0') or 0
    seen[lane] = h
  end
  return h
end
local function run()
  while ai <= #ARGV do
    local lane, q, kind = ARGV[ai], tonumber(ARGV[ai + 1]), ARGV[ai + 2]
    ai = ai + 3
    local skip = false
    if lane ~= '' then
      sequenced = true
      skip = q <= highest(lane)
    end
    local s, existed = 0, 0
    if kind == 'S' then
      if not skip then
        s = redis.call('INCR', clock)
        store_record(KEYS[ki], ARGV[ai], tonumber(ARGV[ai + 1]), s)
        redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 's', s, 'o', origin, 'k', ARGV[ai + 2])
      end
      ki, ai = ki + 1, ai + 3
    elseif kind == 'D' then
      if not skip then
        existed = redis.call('DEL', KEYS[ki])
        s = redis.call('INCR', clock)
        redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 's', s, 'o', origin, 'k', ARGV[ai])
      end
      ki, ai = ki + 1, ai + 1
    elseif kind == 'I' then
      local exact, n = ARGV[ai], tonumber(ARGV[ai + 1])
      if not skip then
        s = redis.call('INCR', clock)
        local args = {'MAXLEN', '~', maxlen, '*', 's', s, 'o', origin}
        local k = ki
        for i = 1, n do
          redis.call('SET', KEYS[k], s)
          k = k + 1
          if exact ~= '1' then
            redis.call('SET', KEYS[k], s)
            k = k + 1
          end
          args[#args + 1] = 't'
          args[#args + 1] = ARGV[ai + 1 + i]
        end
        args[#args + 1] = 'e'
        args[#args + 1] = exact
        redis.call('XADD', stream, unpack(args))
      end
      if exact == '1' then ki = ki + n else ki = ki + 2 * n end
      ai = ai + 2 + n
    elseif kind == 'C' then
      if not skip then
        s = redis.call('INCR', clock)
        redis.call('SET', clear, s)
        redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 's', s, 'o', origin, 'c', '1')
      end
    else
      error('cachekit write script: unknown write kind ' .. tostring(kind))
    end
    if lane ~= '' and not skip then
      seen[lane] = q
      raised[lane] = q
    end
    out[#out + 1] = s
    out[#out + 1] = existed
  end
end
local ok, err = pcall(run)
local fields = {}
for lane, q in pairs(raised) do
  fields[#fields + 1] = lane
  fields[#fields + 1] = q
end
if #fields > 0 then redis.call('HSET', seqkey, unpack(fields)) end
if sequenced then redis.call('PEXPIRE', seqkey, ARGV[5]) end
if not ok then
  if type(err) == 'table' and err.err then return redis.error_reply(err.err) end
  return redis.error_reply(tostring(err))
end
redis.call('PUBLISH', ARGV[3], ARGV[4])
return out
"
);

/// Where a write stands in its sender's order, so that sending it again is harmless.
///
/// **The rule.** A *lane* is a sender that numbers its writes in increasing order and sends
/// nothing numbered above an unanswered write until that write is answered: the daemon's
/// queue drainer (lane 0, numbers given in queue order, one batch in flight, applied in
/// order by one script, the batch sent again until Redis answers) and each write-through
/// send (a lane taken from a pool for the send, and kept by the write until the queue
/// resolves it if the send timed out). The write script keeps, per namespace, writer and
/// lane, the highest number h it applied, and skips a sequenced write numbered at or below
/// it. **Why that is safe**: a lower number of the lane was sent either in an earlier call,
/// answered before h was sent (applied, or refused and never sent again), or earlier in the
/// same call, applied before h (in order; an error part way records only what was applied).
/// So a number at or below h seen again is a write Redis already applied: skipping it is
/// exactly "applied once". Sets, deletes, invalidations and clears are all sequenced alike
/// (re-applying a delete, invalidation or clear could only remove more, but would still
/// undo another host's later set).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// The sender (0: the queue's drainer; others: write-through sends).
    pub lane: u32,
    /// Its number, increasing within the lane.
    pub seq: u64,
}

/// A write with its place in its sender's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequenced {
    /// The write.
    pub op: WriteOp,
    /// Its place.
    pub seq: Sequence,
}

/// How long Redis keeps a writer's sequence key after the writer's last write to the
/// namespace: twice [`RESEND_WINDOW`], so a write sent again within the window always finds
/// the number of its first send (Redis's and the daemon's clocks only have to agree on the
/// length of an hour, within a factor of two). One small hash per namespace and daemon start,
/// gone two hours after that daemon stopped writing to the namespace: bounded state.
pub const SEQUENCE_KEEP_MS: u64 = 2 * 3600 * 1000;

/// The longest a daemon sends a set again as it is after its first send: past this, a set
/// still unacknowledged is sent as a delete of its key (a miss on every host, never a value
/// older than a later write), because Redis may have dropped the number of its first send.
/// Only reached when Redis ran a write and then stayed unreachable from this daemon for an
/// hour.
pub const RESEND_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

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

/// The script call for `op` at time `now`, not sequenced.
pub(crate) fn write_invocation(
    op: &WriteOp,
    ctx: &WriteContext,
    now: u64,
) -> ScriptInvocation<'static> {
    write_batch_invocation(std::iter::once((op, None)), ctx, now)
}

/// One script call applying `ops` in order at time `now`, each with its place in its
/// sender's order (`None`: not sequenced, applied whatever was sent before). Every op must
/// be of one namespace (the script runs in its slot); the caller splits batches at namespace
/// changes.
pub(crate) fn write_batch_invocation<'a>(
    ops: impl Iterator<Item = (&'a WriteOp, Option<Sequence>)> + Clone,
    ctx: &WriteContext,
    now: u64,
) -> ScriptInvocation<'static> {
    let ns = ops.clone().next().map_or("", |(op, _)| op.namespace());
    debug_assert!(ops.clone().all(|(o, _)| o.namespace() == ns));
    let keys = NsKeys::new(ns);
    let mut inv = SCRIPTS.write.prepare_invoke();
    inv.key(keys.clock())
        .key(keys.stream())
        .key(keys.clear())
        .key(keys.sequence(&ctx.origin))
        .arg(ctx.origin.as_slice())
        .arg(ctx.stream_maxlen)
        .arg(DOORBELL_CHANNEL)
        .arg(ns)
        .arg(SEQUENCE_KEEP_MS);
    for (op, seq) in ops {
        match seq {
            Some(q) => inv.arg(q.lane).arg(q.seq),
            None => inv.arg("").arg(0),
        };
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
    /// The namespace clock value of the write; 0 for a sequenced write Redis skipped because
    /// an earlier send of it was applied (its clock is not known here).
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

/// `XRANGE ck:{ns}:inv <id> <id>`: the entry `id`, if the stream holds it.
pub(crate) fn entry_cmd(ns: &str, id: &str) -> redis::Cmd {
    let mut c = redis::cmd("XRANGE");
    c.arg(NsKeys::new(ns).stream()).arg(id).arg(id);
    c
}

pub(crate) fn parse_read(v: &Value) -> Result<Vec<Event>, StoreError> {
    parse_entries(v)
}
