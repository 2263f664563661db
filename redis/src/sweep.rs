//! The sweep: what keeps a namespace's Redis state bounded under ever-new tags, `clear`s and
//! records without TTL, without ever losing an invalidation.
//!
//! **The floor.** The namespace's `clear` key holds the *floor* F: every record whose stamp is
//! at most F is invalid. A `clear(ns)` sets it (to its own clock); the sweep raises it. Every
//! reader already treats it so (the fetch, commit and leased-fill scripts put `clear` among
//! the counters a record is checked against).
//!
//! **The rule.** A counter (`p:<tag>`, `x:<tag>`) whose value c is at most F may be deleted:
//! the records it invalidates have stamps ≤ c ≤ F, so the floor invalidates them anyway, and
//! it never invalidated a record with a later stamp. So for every record the highest of
//! {F, its counters} never goes down, which is the whole of validity: no invalidation is
//! lost, whatever the sweep deletes and whenever.
//!
//! **Raising F** would invalidate live records, records without TTL included, so it only
//! passes records that were restamped first. A *pass* walks every key of the namespace
//! (`SCAN MATCH ck:{ns}:*`, one page per step, its cursor and horizon kept in
//! `ck:{ns}:sweep`, so every host's steps advance one shared pass). The horizon H is the
//! clock when the pass began. On each record it finds, a step:
//! - deletes it if it is invalid (a counter or F at or above its stamp): nobody can accept it;
//! - else, if its stamp is below H, rewrites its stamp in place (`SETRANGE`, the TTL kept) to
//!   the current clock: it was valid against every counter up to now, so it is valid as of
//!   now; nothing else changes (no clock increment, no event: it is not a write);
//! - deletes each counter at or below F.
//!
//! When the cursor comes back to 0, every record that was there for the whole pass has a
//! stamp ≥ H (restamped, or written after H), so F rises to H − 1 and a new pass starts. A
//! record the pass missed (SCAN's guarantee broken by a failover to a replica with another
//! hash seed) becomes invalid: a miss, never a stale value.
//!
//! Memory: a counter lives until the end of the pass after the one in which it was set (at
//! most two passes); an invalidated or cleared record until the next step reaches it.

use crate::keys::NsKeys;
use crate::scripts::{bad_reply, int};
use crate::StoreError;
use redis::{Script, ScriptInvocation, Value};
use std::sync::LazyLock;

/// Keys a sweep step visits (`SCAN … COUNT`): about a millisecond of Redis time.
pub const SWEEP_COUNT: u64 = 1000;

/// KEYS: clock, clear (the floor), sweep. ARGV: the namespace's key prefix, the SCAN pattern
/// of its keys, count. Answers `{done, deleted records, restamped records, deleted counters,
/// new floor (0 = not raised)}`.
const SWEEP: &str = r"
local st = redis.call('MGET', KEYS[3], KEYS[1], KEYS[2])
local clock = tonumber(st[2] or '0') or 0
local floor = tonumber(st[3] or '0') or 0
local cursor, horizon = '0', clock
if st[1] then
  local c, h = string.match(st[1], '^(%d+) (%d+)$')
  if c then cursor, horizon = c, tonumber(h) end
end
local x = clock
local b = {}
for i = 1, 8 do
  local byte = x % 256
  b[i] = string.char(byte)
  x = (x - byte) / 256
end
local now_stamp = table.concat(b)
local prefix = ARGV[1]
local plen = string.len(prefix)
local r = redis.call('SCAN', cursor, 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local deleted, restamped, counters = 0, 0, 0
for _, key in ipairs(r[2]) do
  local kind = string.sub(key, plen + 1, plen + 2)
  if kind == 'v:' then
    local v = redis.call('MGET', key)[1]
    if v and string.len(v) >= 38 and string.sub(v, 1, 2) == 'CR' then
      local stamp = 0
      for i = 12, 5, -1 do stamp = stamp * 256 + string.byte(v, i) end
      local deps = {KEYS[2]}
      local n = string.byte(v, 37) + 256 * string.byte(v, 38)
      local pos, ok = 39, true
      for i = 1, n do
        if pos + 1 > string.len(v) then ok = false break end
        local len = string.byte(v, pos) + 256 * string.byte(v, pos + 1)
        local tag = string.sub(v, pos + 2, pos + 1 + len)
        pos = pos + 2 + len
        local from = 1
        while true do
          local j = string.find(tag, '/', from, true)
          if not j then break end
          deps[#deps + 1] = prefix .. 'p:' .. string.sub(tag, 1, j - 1)
          from = j + 1
        end
        deps[#deps + 1] = prefix .. 'x:' .. tag
      end
      if ok then
        local newest = 0
        local vals = redis.call('MGET', unpack(deps))
        for i = 1, #vals do
          local c = vals[i] and tonumber(vals[i])
          if c and c > newest then newest = c end
        end
        if newest >= stamp then
          redis.call('DEL', key)
          deleted = deleted + 1
        elseif stamp < horizon then
          redis.call('SETRANGE', key, 4, now_stamp)
          restamped = restamped + 1
        end
      end
    end
  elseif kind == 'p:' or kind == 'x:' then
    local c = tonumber(redis.call('MGET', key)[1] or '')
    if c and c <= floor then
      redis.call('DEL', key)
      counters = counters + 1
    end
  end
end
local raised = 0
if r[1] == '0' then
  if horizon - 1 > floor then
    raised = horizon - 1
    redis.call('SET', KEYS[2], string.format('%d', raised))
  end
  redis.call('SET', KEYS[3], '0 ' .. string.format('%d', clock))
  return {1, deleted, restamped, counters, raised}
end
redis.call('SET', KEYS[3], r[1] .. ' ' .. string.format('%d', horizon))
return {0, deleted, restamped, counters, raised}
";

static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SWEEP));

/// What one sweep step did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// The step ended a pass.
    pub pass_done: bool,
    /// Invalid records deleted.
    pub records_deleted: u64,
    /// Valid records older than the pass's horizon given the current clock as their stamp.
    pub records_restamped: u64,
    /// Counters at or below the floor deleted.
    pub counters_deleted: u64,
    /// The floor the pass raised (0: not raised).
    pub floor_raised_to: u64,
}

pub(crate) fn sweep_invocation(ns: &str, count: u64) -> ScriptInvocation<'static> {
    let keys = NsKeys::new(ns);
    let mut inv = SCRIPT.prepare_invoke();
    inv.key(keys.clock())
        .key(keys.clear())
        .key(keys.sweep())
        .arg(keys.prefix())
        .arg(keys.key_pattern())
        .arg(count);
    inv
}

pub(crate) fn parse_swept(v: &Value) -> Result<Swept, StoreError> {
    let Value::Array(a) = v else {
        return Err(bad_reply("sweep script", v));
    };
    let n: Vec<u64> = a
        .iter()
        .map(|x| int(x).and_then(|i| u64::try_from(i).ok()))
        .collect::<Option<_>>()
        .ok_or_else(|| bad_reply("sweep script", v))?;
    match n[..] {
        [done, deleted, restamped, counters, raised] => Ok(Swept {
            pass_done: done == 1,
            records_deleted: deleted,
            records_restamped: restamped,
            counters_deleted: counters,
            floor_raised_to: raised,
        }),
        _ => Err(bad_reply("sweep script", v)),
    }
}
