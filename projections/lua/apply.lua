-- Applies a batch of order events to the views, each atomically and idempotently.
-- KEYS[1] the pointer key, KEYS[2] the building key.
-- ARGV[1] target namespace ("" = live: the pointer's, and also the one a rebuild is building),
-- ARGV[2] publish ("1"/"0"), ARGV[3] a JSON array of changes (one argument, decoded here in C
-- rather than packed as thousands of arguments by the client), each an array of strings:
--   order id, version, position (20-digit padded), occurredAt, kind, a1..a6 (by kind:
--   placed: customer, items JSON, total, units, scale, item count;  status: new status;
--   shipped: tracking id, carrier;  add: item JSON, total, units, scale, qty;
--   remove: product id, total, units, scale;  touch: nothing).
-- ARGV[4] (when tracing is on) a JSON array of traceparents, one per change ("" for none): each
-- published change carries its own, so the websocket push joins the projector's trace.
-- Returns one letter per change: 'o' applied, 'd' duplicate (version <= stored: skip),
-- 'g' gap (version > stored + 1: retry later), 'i' invalid (can never follow the view);
-- or 'R' alone when there is no namespace (Redis lost its data: recover, then apply again).
-- Field names and kinds come from the tables ORDER, STATS, CHANGE and KIND, which Python
-- prepends (projections/lua_scripts.py).
local target, publish = ARGV[1], ARGV[2] == '1'
local changes = cjson.decode(ARGV[3])
if ARGV[4] then
  local traceparents = cjson.decode(ARGV[4])
  for i, c in ipairs(changes) do
    if traceparents[i] ~= '' then c.traceparent = traceparents[i] end
  end
end

local function revenue_field(status, scale)
  return STATS.revenue_prefix .. status .. STATS.revenue_separator .. scale
end

local function negate(units)
  if string.sub(units, 1, 1) == '-' then return string.sub(units, 2) end
  return '-' .. units
end

-- Count deltas and the highest position are summed over the batch and written once per namespace;
-- revenue (exact integers that may exceed a Lua number's 2^53) is written per change as strings.
local pending = {}

local function totals(ns)
  local t = pending[ns]
  if not t then
    t = {counts = {}, pos = nil}
    pending[ns] = t
  end
  return t
end

local function apply_to(ns, c)
  local id, version, pos, at, kind = c[1], tonumber(c[2]), c[3], c[4], c[5]
  local a1, a2, a3, a4, a5, a6 = c[6], c[7], c[8], c[9], c[10], c[11]
  local okey = ns .. KEY.order .. id
  local h = redis.call('HMGET', okey, ORDER.version, ORDER.customer, ORDER.placed_position,
    ORDER.status, ORDER.units, ORDER.scale, ORDER.item_count)
  local stored = tonumber(h[1] or '0')
  if version <= stored then return 'd' end
  if version > stored + 1 then return 'g' end
  local t = totals(ns)
  local counts = t.counts
  local cust, ppos, old_status, old_units, old_scale
  local status, units, scale
  local fields = {ORDER.updated, at, ORDER.version, version, ORDER.position, pos}
  if stored == 0 then
    if kind ~= KIND.placed then return 'i' end
    cust, ppos, status, units, scale = a1, pos, 'PENDING', a4, a5
    for _, v in ipairs({ORDER.id, id, ORDER.customer, cust, ORDER.items, a2, ORDER.item_count, a6,
        ORDER.total, a3, ORDER.units, units, ORDER.scale, scale, ORDER.created, at,
        ORDER.placed_position, pos}) do
      fields[#fields + 1] = v
    end
    counts[STATS.orders] = (counts[STATS.orders] or 0) + 1
  else
    if kind == KIND.placed then return 'i' end
    cust, ppos, old_status, old_units, old_scale = h[2], h[3], h[4], h[5], h[6]
    status, units, scale = old_status, old_units, old_scale
    if kind == KIND.status then
      status = a1
    elseif kind == KIND.shipped then
      status = 'SHIPPED'
      for _, v in ipairs({ORDER.tracking_id, a1, ORDER.carrier, a2}) do
        fields[#fields + 1] = v
      end
    elseif kind == KIND.add or kind == KIND.remove then
      local items = redis.call('HGET', okey, ORDER.items)
      local count = tonumber(h[7])
      if kind == KIND.add then
        -- append to the JSON array as text: no decode needed
        if items == '[]' then items = '[' .. a1 .. ']'
        else items = string.sub(items, 1, -2) .. ',' .. a1 .. ']' end
        count = count + tonumber(a5)
      else
        local list = cjson.decode(items)
        for n, item in ipairs(list) do
          if item.id == a1 then
            count = count - item.qty
            table.remove(list, n)
            break
          end
        end
        -- cjson writes an empty table as an object
        if #list == 0 then items = '[]' else items = cjson.encode(list) end
      end
      units, scale = a3, a4
      for _, v in ipairs({ORDER.items, items, ORDER.item_count, count, ORDER.total, a2,
          ORDER.units, units, ORDER.scale, scale}) do
        fields[#fields + 1] = v
      end
    end
  end
  fields[#fields + 1] = ORDER.status
  fields[#fields + 1] = status
  redis.call('HSET', okey, unpack(fields))

  if old_status ~= status then
    local member = ppos .. KEY.separator .. id
    if old_status then
      redis.call('ZREM', ns .. KEY.status_index .. old_status, member)
      redis.call('ZREM', ns .. KEY.customer_status_index .. old_status .. KEY.separator .. cust,
        member)
      local was = STATS.count_prefix .. old_status
      counts[was] = (counts[was] or 0) - 1
    else
      redis.call('ZADD', ns .. KEY.all_index, 0, member)
      redis.call('ZADD', ns .. KEY.customer_index .. cust, 0, member)
    end
    redis.call('ZADD', ns .. KEY.status_index .. status, 0, member)
    redis.call('ZADD', ns .. KEY.customer_status_index .. status .. KEY.separator .. cust, 0,
      member)
    local now = STATS.count_prefix .. status
    counts[now] = (counts[now] or 0) + 1
  end
  if old_status ~= status or old_units ~= units or old_scale ~= scale then
    -- revenue moves with the order between statuses, and with its total when amended
    local stats = ns .. KEY.stats
    if old_status and old_units ~= '0' then
      redis.call('HINCRBY', stats, revenue_field(old_status, old_scale), negate(old_units))
    end
    if units ~= '0' then
      redis.call('HINCRBY', stats, revenue_field(status, scale), units)
    end
  end
  if not t.pos or pos > t.pos then t.pos = pos end
  if publish then
    -- The message carries the view this change made: a subscriber gets every version, even when
    -- one batch applies several changes to an order before it could re-read the hash.
    local flat = redis.call('HGETALL', okey)
    local view = {}
    for n = 1, #flat, 2 do view[flat[n]] = flat[n + 1] end
    redis.call('PUBLISH', ns .. KEY.changes, cjson.encode(
      {[CHANGE.namespace] = ns, [CHANGE.order_id] = id, [CHANGE.version] = version,
       [CHANGE.customer_id] = cust, [CHANGE.status] = status,
       [CHANGE.previous_status] = old_status, [CHANGE.position] = pos, [CHANGE.view] = view,
       [CHANGE.traceparent] = c.traceparent}))
  end
  return 'o'
end

local function flush()
  for ns, t in pairs(pending) do
    local stats = ns .. KEY.stats
    for field, delta in pairs(t.counts) do
      if delta ~= 0 then redis.call('HINCRBY', stats, field, delta) end
    end
    if t.pos then
      local seen = redis.call('HGET', stats, STATS.position)
      if not seen or t.pos > seen then redis.call('HSET', stats, STATS.position, t.pos) end
    end
  end
end

local out = {}
if target ~= '' then
  for _, c in ipairs(changes) do out[#out + 1] = apply_to(target, c) end
else
  local current = redis.call('GET', KEYS[1])
  if not current then return 'R' end
  local building = redis.call('GET', KEYS[2])
  if building == current then building = nil end
  for _, c in ipairs(changes) do
    out[#out + 1] = apply_to(current, c)
    if building then
      -- the rebuild is catching up: an event it cannot take yet is fetched again by the rebuild
      local live = publish
      publish = false
      if apply_to(building, c) == 'g' then redis.call('SADD', building .. KEY.dirty, c[1]) end
      publish = live
    end
  end
end
flush()
return table.concat(out)
