"""The Lua scripts of the Redis backend. Each runs atomically in Redis.

Keys (under the prefix):

- ``rl:{rpm|tpm}:{scope}:{match}:{value}``: hash, second -> count; expires after 62 s idle.
- ``budget:{scope}:{match}:{period}:{value}``: hash with ``spent`` and ``reserved``
  (nano-USD), ``soft`` (the soft warning was logged) and ``seeded`` (when the counter was
  built from the store's spend, epoch ms); expires a day after its period.
- ``budget-res:{scope}:{match}:{period}:{value}``: sorted set of live reservations,
  member ``{amount}:{request id}``, score = expiry (ms). Expired members are purged (and
  their amount given back) by the next script that touches the budget.
- ``budget-seeded:{scope}:{match}:{period}``: every instance of the rule that had spend
  was seeded from the store (epoch ms); lets a ``*`` rule's status list them all.

A budget hash without ``seeded`` is a counter Redis lost (a restart without persistence,
an eviction, a failover to an empty replica) or one never built: ``ADMIT`` counts nothing
against it and answers "needs seed", and the caller rebuilds it from the store with
``SEED`` before admitting.
"""

from __future__ import annotations

from keel.limits.backend import WINDOW_S

# Purge expired reservations of budget B/Z (reserved total `res`); returns the live total.
# A reservation set that is gone (evicted) holds nothing live: its total drops to 0.
# Numbers written back go through string.format: Lua would print large ones as 1e+14.
_PURGE = """
local function purge(B, Z, res, nowms)
  if res == 0 then return 0 end
  local gone = redis.call('ZRANGEBYSCORE', Z, '-inf', nowms)
  if #gone > 0 or res < 0 then
    for _, mm in ipairs(gone) do res = res - tonumber(string.match(mm, '^%d+')) end
    if #gone > 0 then redis.call('ZREMRANGEBYSCORE', Z, '-inf', nowms) end
    if res < 0 or redis.call('ZCARD', Z) == 0 then res = 0 end
    redis.call('HSET', B, 'reserved', string.format('%d', res))
  elseif redis.call('ZCARD', Z) == 0 then
    res = 0
    redis.call('HSET', B, 'reserved', '0')
  end
  return res
end
"""

# KEYS: n rate-limit hashes, then m pairs (budget hash, reservation set).
# ARGV: now_s, now_ms, n, m, member, amount, expiry_ms,
#       then per limit: kind ('r'/'t'), limit; then per budget: limit, key ttl (0: none).
# Returns {0} admitted; {1, i, free_at_s} limit i refused; {2, k, spent, reserved} budget k
# refused; {3, k1, k2, ...} budgets k1, k2... have no seeded counter (rebuild, then retry).
# Nothing is counted unless every limit and budget admits.
ADMIT = _PURGE + f"local WINDOW = {WINDOW_S}\n" + """
local now = tonumber(ARGV[1])
local n = tonumber(ARGV[3])
local m = tonumber(ARGV[4])
local amt = tonumber(ARGV[6])
local floor = now - WINDOW
local a = 8
for i = 1, n do
  local lim = tonumber(ARGV[a + 1])
  local h = redis.call('HGETALL', KEYS[i])
  local total, old = 0, nil
  for j = 1, #h, 2 do
    if tonumber(h[j]) <= floor then
      old = old or {}
      old[#old + 1] = h[j]
    else
      total = total + tonumber(h[j + 1])
    end
  end
  if old then redis.call('HDEL', KEYS[i], unpack(old)) end
  if total >= lim then
    local secs, cnt = {}, {}
    for j = 1, #h, 2 do
      local s = tonumber(h[j])
      if s > floor then secs[#secs + 1] = s; cnt[s] = tonumber(h[j + 1]) end
    end
    table.sort(secs)
    for _, s in ipairs(secs) do
      total = total - cnt[s]
      if total < lim then return {1, i, s + WINDOW} end
    end
    return {1, i, now + WINDOW}
  end
  a = a + 2
end
local b = a
local unseeded = nil
for k = 1, m do
  local B, Z = KEYS[n + 2 * k - 1], KEYS[n + 2 * k]
  local v = redis.call('HMGET', B, 'spent', 'reserved', 'seeded')
  if not v[3] then
    unseeded = unseeded or {3}
    unseeded[#unseeded + 1] = k
  else
    local spent = tonumber(v[1]) or 0
    local res = purge(B, Z, tonumber(v[2]) or 0, ARGV[2])
    if spent + res + amt > tonumber(ARGV[b]) then return {2, k, spent, res} end
  end
  b = b + 2
end
if unseeded then return unseeded end
a = 8
for i = 1, n do
  if ARGV[a] == 'r' then
    redis.call('HINCRBY', KEYS[i], ARGV[1], 1)
    redis.call('EXPIRE', KEYS[i], WINDOW + 2)
  end
  a = a + 2
end
for k = 1, m do
  local B, Z = KEYS[n + 2 * k - 1], KEYS[n + 2 * k]
  if redis.call('ZADD', Z, 'NX', ARGV[7], ARGV[5]) == 1 then
    redis.call('HINCRBY', B, 'reserved', ARGV[6])
  end
  local ttl = tonumber(ARGV[a + 1])
  if ttl > 0 then
    redis.call('EXPIRE', B, ttl)
    redis.call('EXPIRE', Z, ttl)
  end
  a = a + 2
end
return {0}
"""

# KEYS: n tpm hashes, then m pairs (budget hash, reservation set).
# ARGV: now_s, n, m, tokens, member, amount, actual, then per budget: soft (-1: none), ttl.
# Returns {k1, spent1, k2, spent2, ...}: budgets whose spend crossed the soft threshold for
# the first time in their period.
SETTLE = f"local WINDOW = {WINDOW_S}\n" + """
local n = tonumber(ARGV[2])
local m = tonumber(ARGV[3])
if tonumber(ARGV[4]) > 0 then
  for i = 1, n do
    redis.call('HINCRBY', KEYS[i], ARGV[1], ARGV[4])
    redis.call('EXPIRE', KEYS[i], WINDOW + 2)
  end
end
local out = {}
local a = 8
for k = 1, m do
  local B, Z = KEYS[n + 2 * k - 1], KEYS[n + 2 * k]
  if redis.call('ZREM', Z, ARGV[5]) == 1 then
    redis.call('HINCRBY', B, 'reserved', '-' .. ARGV[6])
  end
  if tonumber(ARGV[7]) > 0 then
    local spent = redis.call('HINCRBY', B, 'spent', ARGV[7])
    local soft = tonumber(ARGV[a])
    if soft >= 0 and spent >= soft and redis.call('HSETNX', B, 'soft', 1) == 1 then
      out[#out + 1] = k
      out[#out + 1] = spent
    end
    local ttl = tonumber(ARGV[a + 1])
    if ttl > 0 then redis.call('EXPIRE', B, ttl) end
  end
  a = a + 2
end
return out
"""

# KEYS: pairs (budget hash, reservation set). ARGV: now_ms.
# Returns {spent, reserved, seeded (0/1), ...}.
PEEK = _PURGE + """
local out = {}
for k = 1, #KEYS / 2 do
  local B, Z = KEYS[2 * k - 1], KEYS[2 * k]
  local v = redis.call('HMGET', B, 'spent', 'reserved', 'seeded')
  out[#out + 1] = tonumber(v[1]) or 0
  if v[3] then
    out[#out + 1] = purge(B, Z, tonumber(v[2]) or 0, ARGV[1])
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
    out[#out + 1] = 0
  end
end
return out
"""

# KEYS: pairs (budget hash, reservation set). ARGV: now_ms, stamp (epoch ms), then per
# budget: the store's spend in its period (nano-USD), key ttl (0: none).
# Builds each counter that is not seeded yet (HSETNX on `seeded`, so two replicas seeding
# at once, or one seeding a counter another already rebuilt, change nothing): spent becomes
# the store's spend, or what settlements added since the loss if that is more (they may not
# be stored yet; taking the larger never counts a request twice); reserved becomes the live
# reservations left in the set (all of them if only the hash was lost). Returns how many
# counters it built.
SEED = """
local done = 0
for k = 1, #KEYS / 2 do
  local B, Z = KEYS[2 * k - 1], KEYS[2 * k]
  if redis.call('HSETNX', B, 'seeded', ARGV[2]) == 1 then
    done = done + 1
    local stored = tonumber(ARGV[2 * k + 1])
    if stored > (tonumber(redis.call('HGET', B, 'spent')) or 0) then
      redis.call('HSET', B, 'spent', ARGV[2 * k + 1])
    end
    redis.call('ZREMRANGEBYSCORE', Z, '-inf', ARGV[1])
    local res = 0
    for _, mm in ipairs(redis.call('ZRANGE', Z, 0, -1)) do
      res = res + tonumber(string.match(mm, '^%d+'))
    end
    redis.call('HSET', B, 'reserved', string.format('%d', res))
    local ttl = tonumber(ARGV[2 * k + 2])
    if ttl > 0 then
      redis.call('EXPIRE', B, ttl)
      redis.call('EXPIRE', Z, ttl)
    end
  end
end
return done
"""

# KEYS: pairs (budget hash, reservation set). ARGV: per pair a settlement Redis did not
# take when it was made: reservation member ('' if nothing was reserved), amount reserved,
# spent (nano-USD), and when it was made (epoch ms).
# Drops the reservation if it is still there, and adds the spend if the reservation was
# still there or the counter was seeded no later than the settlement: Redis kept its
# counters (and a trace submitted then was not stored when the seed read the store). A
# counter seeded later (or not at all) is rebuilt from the store, which has these
# requests' traces. Returns how many spends were added.
REPAY = """
local added = 0
for k = 1, #KEYS / 2 do
  local B, Z = KEYS[2 * k - 1], KEYS[2 * k]
  local i = 4 * (k - 1)
  local held = false
  if ARGV[i + 1] ~= '' and redis.call('ZREM', Z, ARGV[i + 1]) == 1 then
    held = true
    redis.call('HINCRBY', B, 'reserved', '-' .. ARGV[i + 2])
  end
  if tonumber(ARGV[i + 3]) > 0 then
    local s = tonumber(redis.call('HGET', B, 'seeded'))
    if held or (s and s <= tonumber(ARGV[i + 4])) then
      redis.call('HINCRBY', B, 'spent', ARGV[i + 3])
      added = added + 1
    end
  end
end
return added
"""
