-- Apply a batch of events to the online store atomically, each event at most once.
--
-- Redis runs a script to completion before anything else, but it does not undo what a failing
-- script wrote. So the script works in two phases: the first only reads, and computes every
-- event's effects in memory, rejecting an event whose effects could not be stored (a sum that
-- overflows to Inf, a key of the wrong type fails here too, before any write); the second writes
-- the effects and then the dedupe marks of the applied events. Every key the second phase writes
-- has its type checked in the first: a per-user or per-item key of the wrong type rejects the
-- events that would write it (the reason names the key), a global one refuses the batch. A worker that dies at any point
-- either applied the whole batch or nothing of it, and a redelivered event finds its mark and is
-- skipped; a failed script leaves no mark without its effects (the partial-batch loss of
-- issue 12: marks written, the rest of the batch's effects never).
-- Feature semantics (flags, weights, affinity increments) are computed in Python from the one
-- declaration in shared/event_semantics.py (shared/online_store/effects.py); this script names
-- no event type and only applies them, aggregated per key. The flag bits below are the ones
-- effects.py sets (a unit test compares the two).
--
-- Returns {applied, duplicates, mask, reasons}: the mask has one character per event (1 applied,
-- 0 duplicate, 2 rejected) and reasons one text per rejected event, in order.
-- Bounded state: every per-user key expires user_ttl after the user's last event; counters of an
-- item outside the catalog expire unknown_item_ttl after its last event; the seen window, the
-- trending set and each segment's popularity keep only their top seen_cap / trend_cap / seg_cap,
-- and trending and segment popularity decay (half-lives trend_half_life and seg_half_life).
-- Parts (Redis Cluster, shared/online_store/ingest_calls.py): on one Redis a call applies
-- every effect of its events (mode 'all', one mark ev:<id> per event). On a cluster a script
-- may touch one slot only, so an event's effects are applied in two parts, each with its own
-- mark inside its slot: mode 'user' applies the user keys of the users of one slot (marks
-- {u:<user>}:ev:<id>), mode 'item' the item-side keys, all under the tag {i} (counters,
-- trending, segment popularity; marks {i}:ev:<id>; each event's user segment comes with it,
-- read by the user part's check). With check = '1' a call only runs the first phase and
-- returns what it would do (and, in mode 'user', the segment of each of its users).
-- ARGV: the store's knobs as one JSON array [dedupe_ttl, hist_cap, trend_half_life, imp_ttl,
--       user_ttl, unknown_item_ttl, seen_cap, trend_cap, seg_cap, seg_half_life, sf_blocks,
--       sf_hashes, sf_capacity, n_rings, then per ring granularity, slots, head_word, offset]
--       (one argument, not 22: a cluster batch is
--       thousands of calls and redis-py packs each argument in Python), then mode, check,
--       then one JSON array of events, each [event_id, user_id, item_id, ts, flags, weight,
--       rating, affinity_increment, genre_cols(, segment: mode 'item' only)]
-- Returns {applied, duplicates, mask, reasons, segments} (segments: user id, segment, ...).
local h = cjson.decode(ARGV[1])
local ttl, hist_cap, trend_h, imp_ttl = h[1], h[2], h[3], h[4]
local user_ttl, unknown_item_ttl, seen_cap, trend_cap, seg_cap = h[5], h[6], h[7], h[8], h[9]
local seg_h, sf_blocks, sf_k, sf_cap = h[10], h[11], h[12], h[13]
local rings, p = {}, 15
for r = 1, h[14] do
  rings[r] = {gran = h[p], n = h[p + 1], head = h[p + 2], off = h[p + 3]}
  p = p + 4
end
local mode, check = ARGV[2], ARGV[3] == '1'
local events = cjson.decode(ARGV[4])
local do_user, do_item = mode ~= 'item', mode ~= 'user'
local I = '{i}:'  -- the tag of every item-side key (shared/online_store/keys.py)
local function mark_key(e)
  if mode == 'user' then return '{u:' .. e[2] .. '}:ev:' .. e[1] end
  if mode == 'item' then return I .. 'ev:' .. e[1] end
  return 'ev:' .. e[1]
end
local INTERACTION, LIKE, IMPRESSION, CLICK, BLOCK, RATING = 1, 2, 4, 8, 16, 32
local function has(flags, bit_) return bit.band(flags, bit_) ~= 0 end
local function finite(x) return x == x and x ~= math.huge and x ~= -math.huge end

-- Trending scores are stored as w * 2^((ts - ref) / h); move ref forward (rescaling the whole
-- set once) before the exponent could overflow.
local max_ts = 0
for _, e in ipairs(events) do
  if e[4] > max_ts then max_ts = e[4] end
end
-- Global keys of the wrong type would fail every batch: refuse it whole, before any write.
local old_ref, ref
if do_item then
  for key, want in pairs({trending = 'zset', ['trending:ref'] = 'string', segref = 'hash',
                          ['catalog:ids'] = 'set', ['segpop:all'] = 'zset'}) do
    local got = redis.call('TYPE', I .. key)['ok']
    if got ~= 'none' and got ~= want then
      return redis.error_reply('key ' .. I .. key .. ' holds a ' .. got .. ', not a ' .. want)
    end
  end
  old_ref = tonumber(redis.call('GET', I .. 'trending:ref'))
  ref = old_ref
  if ref == nil or max_ts - ref > 64 * trend_h then ref = math.floor(max_ts / 3600) * 3600 end
end

local items, users, segpop, marks = {}, {}, {}, {}
local applied, dups, mask = 0, 0, {}

-- The type each key the second phase writes must have (or 'none': not there yet). A key of
-- another type would fail a write halfway through the batch, after other effects were written;
-- checked here, it rejects the events that would write it instead.
local USER_TYPES = {h = 'hash', histz = 'zset', seenz = 'zset', blk = 'set', imp = 'hash',
                    sf = 'string'}
local function wrong_type(key, want)
  local got = redis.call('TYPE', key)['ok']
  if got ~= 'none' and got ~= want then return 'key ' .. key .. ' holds a ' .. got .. ', not a ' .. want end
  return nil
end

local function item_state(iid)
  local it = items[iid]
  if it == nil then
    local why = wrong_type(I .. 'ictr:' .. iid, 'string')
    if why then
      items[iid] = {bad = why}
      return items[iid]
    end
    it = {tot = {0, 0, 0, 0}, buckets = {}, trend = 0}
    for r = 1, #rings do it.buckets[r] = {} end
    items[iid] = it
  end
  return it
end

local function user_state(uid)
  local u = users[uid]
  if u == nil then
    local key = '{u:' .. uid .. '}:'
    for suffix, want in pairs(USER_TYPES) do
      local why = wrong_type(key .. suffix, want)
      if why then
        u = {bad = why}
        users[uid] = u
        return u
      end
    end
    local old = redis.call('HMGET', key .. 'h', 'seg', 'rs', 'sfg', 'sfn')
    u = {key = key, n = 0, nr = 0, rs = 0, last = 0, aff = {}, hist = false,
         seg = old[1] or 'unknown', old_rs = tonumber(old[2]) or 0, histz = {}, imp = {}, blk = {},
         sfg = tonumber(old[3]) or 0, sfn = tonumber(old[4]) or 0}
    users[uid] = u
  end
  return u
end

-- A segment's popularity set of the wrong type rejects the events of its users.
local seg_checked = {}
local function bad_segment(seg)
  if seg_checked[seg] == nil then
    seg_checked[seg] = wrong_type(I .. 'segpop:' .. seg, 'zset') or false
  end
  return seg_checked[seg] or nil
end

-- Segment popularity decays as trending does: each segment's zset holds
-- Σ w · 2^((ts - ref_s) / seg_h) with its own reference time ref_s (hash {i}:segref), moved
-- forward (its set rescaled once) by the same rule as trending's ref.
local seg_refs = {}
local function seg_ref(seg)
  local r = seg_refs[seg]
  if r == nil then
    local old = tonumber(redis.call('HGET', I .. 'segref', seg))
    local new = old
    if new == nil or max_ts - new > 64 * seg_h then new = math.floor(max_ts / 3600) * 3600 end
    r = {old = old, new = new}
    seg_refs[seg] = r
  end
  return r.new
end

local function add_popularity(seg, iid, w, ts)
  for _, s in ipairs({seg, 'all'}) do
    local t = segpop[s] or {}
    t[iid] = (t[iid] or 0) + w * math.pow(2, (ts - seg_ref(s)) / seg_h)
    segpop[s] = t
  end
end

-- Why an event's effects could not be stored (nil: they can). The rating is the one value a
-- producer controls (two ratings of 1e308 sum to Inf, which HINCRBYFLOAT refuses); weights and
-- affinity increments are declared, and the trending exponent is kept below 64 by the ref.
-- u (it) is nil when this call does not apply the user (item) part.
local function unstorable(e, u, it, seg)
  if u and u.bad then return u.bad end
  if it and it.bad then return it.bad end
  if it and bad_segment(seg) then return bad_segment(seg) end
  if u and has(e[5], RATING) and not finite(u.old_rs + u.rs + e[7]) then
    return 'rating sum of user ' .. e[2] .. ' would overflow'
  end
  return nil
end

-- An event's effects on the user's keys, in memory only (phase 1).
local function apply_user(e, u)
  local iid, ts, flags = e[3], e[4], e[5]
  local rating, aff, genres = e[7], e[8], e[9]
  if has(flags, INTERACTION) then
    u.n = u.n + 1
    if ts > u.last then u.last = ts end
    if u.histz[iid] == nil or ts < u.histz[iid] then u.histz[iid] = ts end
  end
  if has(flags, IMPRESSION) then u.imp[iid] = (u.imp[iid] or 0) + 1 end
  if has(flags, BLOCK) then u.blk[iid] = true end
  if has(flags, RATING) then
    u.nr = u.nr + 1
    u.rs = u.rs + rating
  end
  if aff > 0 then
    for _, g in ipairs(genres) do u.aff[g] = (u.aff[g] or 0) + aff end
  end
end

-- An event's effects on the item-side keys, in memory only (phase 1).
local function apply_item(e, it, seg)
  local iid, ts, flags, w = e[3], e[4], e[5], e[6]
  if has(flags, INTERACTION) then
    it.tot[1] = it.tot[1] + 1
    for r, ring in ipairs(rings) do
      local b = math.floor(ts / ring.gran)
      it.buckets[r][b] = (it.buckets[r][b] or 0) + 1
    end
  end
  if has(flags, LIKE) then it.tot[2] = it.tot[2] + 1 end
  if has(flags, IMPRESSION) then it.tot[3] = it.tot[3] + 1 end
  if has(flags, CLICK) then it.tot[4] = it.tot[4] + 1 end
  if w > 0 then
    it.trend = it.trend + w * math.pow(2, (ts - ref) / trend_h)
    add_popularity(seg, iid, w, ts)
  end
end

-- Phase 1: reads only. An event is a duplicate (its mark exists, or it came earlier in this
-- batch), rejected (with the reason, returned), or applied in memory.
local reasons, marked = {}, {}
for from = 1, #events, 1000 do  -- MGET in chunks: one call instead of one per event
  local ks = {}
  for k = from, math.min(from + 999, #events) do ks[#ks + 1] = mark_key(events[k]) end
  for k, v in ipairs(redis.call('MGET', unpack(ks))) do marked[from + k - 1] = v end
end
for k, e in ipairs(events) do
  if marks[e[1]] or marked[k] then
    dups = dups + 1
    mask[#mask + 1] = '0'
  else
    local u = do_user and user_state(e[2]) or nil
    local it = do_item and item_state(e[3]) or nil
    local seg = e[10] or (u and u.seg)
    local why = unstorable(e, u, it, seg)
    if why then
      reasons[#reasons + 1] = why
      mask[#mask + 1] = '2'
    else
      if u then apply_user(e, u) end
      if it then apply_item(e, it, seg) end
      marks[e[1]] = mark_key(e)
      applied = applied + 1
      mask[#mask + 1] = '1'
    end
  end
end
if check then
  local segs = {}
  if mode == 'user' then  -- every user's segment, for the item part of the same events
    for _, e in ipairs(events) do
      local u = users[e[2]] or user_state(e[2])
      if not u.listed then
        u.listed = true
        segs[#segs + 1] = e[2]
        segs[#segs + 1] = u.seg or 'unknown'
      end
    end
  end
  return {applied, dups, table.concat(mask), reasons, segs}
end

-- Phase 2: writes, the effects first, the dedupe marks last.
if do_item and ref ~= old_ref then
  if old_ref ~= nil then
    redis.call('ZUNIONSTORE', I .. 'trending', 1, I .. 'trending', 'WEIGHTS',
               tostring(math.pow(2, (old_ref - ref) / trend_h)))
  end
  redis.call('SET', I .. 'trending:ref', tostring(ref))
end

-- Item counters: move each ring's head (zeroing the slots it passes), then add the counts.
local function flush_item(iid, it)
  local key = I .. 'ictr:' .. iid
  local ops = {}
  local function op(kind, word, v)
    ops[#ops + 1] = kind; ops[#ops + 1] = 'u32'; ops[#ops + 1] = '#' .. word
    ops[#ops + 1] = tostring(v)
  end
  local heads = {}
  if it.tot[1] > 0 then  -- only interactions enter the rings
    local get = {}
    for _, ring in ipairs(rings) do
      get[#get + 1] = 'GET'; get[#get + 1] = 'u32'; get[#get + 1] = '#' .. ring.head
    end
    heads = redis.call('BITFIELD', key, unpack(get))
  end
  for r, ring in ipairs(it.tot[1] > 0 and rings or {}) do
    local head, new_head = heads[r], heads[r]
    for b, _ in pairs(it.buckets[r]) do if b > new_head then new_head = b end end
    if new_head > head then
      if head > 0 then
        local from = math.max(head + 1, new_head - ring.n + 1)
        for b = from, new_head do op('SET', ring.off + b % ring.n, 0) end
      end
      op('SET', ring.head, new_head)
    end
    for b, c in pairs(it.buckets[r]) do
      if b > new_head - ring.n then op('INCRBY', ring.off + b % ring.n, c) end
    end
  end
  for k = 1, 4 do
    if it.tot[k] > 0 then op('INCRBY', k - 1, it.tot[k]) end
  end
  if #ops > 0 then
    redis.call('BITFIELD', key, unpack(ops))
    -- a catalog item's counters stay (the catalog bounds them); any other id's expire
    if redis.call('SISMEMBER', I .. 'catalog:ids', iid) == 0 then
      redis.call('EXPIRE', key, unknown_item_ttl)
    end
  end
  if it.trend > 0 then redis.call('ZINCRBY', I .. 'trending', tostring(it.trend), iid) end
end

-- The items pushed out of the seen window go to the user's filter (shared/online_store/
-- seen_filter.py: the layout, and the reader's side of the same hashing): block = SHA-1's first
-- two bytes mod sf_blocks, sf_k bits of the current generation's 64-bit word from the next
-- bytes. A full generation hands over to the other one, cleared first.
local ZERO8 = string.rep('\0', 8)
local function remember(u, gone)
  local key = u.key .. 'sf'
  if redis.call('EXISTS', key) == 0 then  -- allocated whole: every block reads 16 bytes
    redis.call('SETRANGE', key, sf_blocks * 16 - 1, '\0')
  end
  local gen, n = u.sfg, u.sfn
  for _, iid in ipairs(gone) do
    if n >= sf_cap then
      gen, n = 1 - gen, 0
      for b = 0, sf_blocks - 1 do redis.call('SETRANGE', key, b * 16 + gen * 8, ZERO8) end
    end
    local d = redis.sha1hex(iid)
    local base = (tonumber(string.sub(d, 1, 4), 16) % sf_blocks) * 128 + gen * 64
    for j = 0, sf_k - 1 do
      redis.call('SETBIT', key, base + tonumber(string.sub(d, 5 + 2 * j, 6 + 2 * j), 16) % 64, 1)
    end
    n = n + 1
  end
  redis.call('HSET', u.key .. 'h', 'sfg', gen, 'sfn', n)
end

local function flush_user(u)
  local h = u.key .. 'h'
  if u.n > 0 then redis.call('HINCRBY', h, 'n', u.n) end
  if u.nr > 0 then
    redis.call('HINCRBY', h, 'nr', u.nr)
    redis.call('HINCRBYFLOAT', h, 'rs', tostring(u.rs))
  end
  if u.last > 0 then
    local old = tonumber(redis.call('HGET', h, 'last'))
    if old == nil or u.last > old then redis.call('HSET', h, 'last', string.format('%.17g', u.last)) end
  end
  for g, v in pairs(u.aff) do
    redis.call('HINCRBYFLOAT', h, 'a' .. g, string.format('%.17g', v))
  end
  -- History: a sorted set of items by the time of their first interaction, so a late event
  -- lands where it happened (the offline log's order), not where it arrived. An item seen
  -- before only moves back to an earlier time (XX LT); one trimmed off stays off.
  -- seenz holds the same (item, first time) pairs for the latest seen_cap items: new to it means
  -- new to the history as well (an item trimmed off both comes back as new).
  local seen = false
  for iid, ts in pairs(u.histz) do
    local score = string.format('%.17g', ts)
    if redis.call('ZADD', u.key .. 'seenz', 'NX', score, iid) == 1 then
      redis.call('ZADD', u.key .. 'histz', score, iid)
      u.hist = true
    else
      redis.call('ZADD', u.key .. 'seenz', 'XX', 'LT', score, iid)
      redis.call('ZADD', u.key .. 'histz', 'XX', 'LT', score, iid)
    end
    seen = true
  end
  if u.hist then redis.call('ZREMRANGEBYRANK', u.key .. 'histz', 0, -hist_cap - 1) end
  if seen then
    local gone = redis.call('ZRANGE', u.key .. 'seenz', 0, -seen_cap - 1)
    if #gone > 0 then
      remember(u, gone)
      redis.call('ZREMRANGEBYRANK', u.key .. 'seenz', 0, -seen_cap - 1)
    end
  end
  local imp = false
  for iid, c in pairs(u.imp) do
    redis.call('HINCRBY', u.key .. 'imp', iid, c)
    imp = true
  end
  if imp then redis.call('EXPIRE', u.key .. 'imp', imp_ttl) end
  for iid, _ in pairs(u.blk) do redis.call('SADD', u.key .. 'blk', iid) end
  -- every key of a user lives user_ttl after the user's last event (EXPIRE on a missing key
  -- does nothing; the fatigue counts keep their own, shorter TTL)
  for _, suffix in ipairs({'h', 'histz', 'seenz', 'blk', 'sf'}) do
    redis.call('EXPIRE', u.key .. suffix, user_ttl)
  end
end

for iid, it in pairs(items) do if not it.bad then flush_item(iid, it) end end
for _, u in pairs(users) do if not u.bad then flush_user(u) end end
for seg, t in pairs(segpop) do
  local key = I .. 'segpop:' .. seg
  local r = seg_refs[seg]
  if r.new ~= r.old then  -- as trending's ref: rescale the set once, then keep the new ref
    if r.old ~= nil then
      redis.call('ZUNIONSTORE', key, 1, key, 'WEIGHTS', tostring(math.pow(2, (r.old - r.new) / seg_h)))
    end
    redis.call('HSET', I .. 'segref', seg, tostring(r.new))
  end
  for iid, w in pairs(t) do redis.call('ZINCRBY', key, string.format('%.17g', w), iid) end
  redis.call('ZREMRANGEBYRANK', key, 0, -seg_cap - 1)
end
if next(items) ~= nil then redis.call('ZREMRANGEBYRANK', I .. 'trending', 0, -trend_cap - 1) end
for _, key in pairs(marks) do redis.call('SET', key, '1', 'EX', ttl) end
return {applied, dups, table.concat(mask), reasons, {}}
