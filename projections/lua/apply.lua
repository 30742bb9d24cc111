-- Applies a batch of order events to the views, each idempotently, the whole batch atomically.
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
--
-- Each change is checked and applied, in order, to the order's state held here (read from its
-- hash once per batch); what the batch did is written at the end: one HSET per order touched,
-- the index moves grouped into one ZREM / ZADD per index key (an order placed and paid in the
-- same batch enters the PAID index only), the counters and revenue as one HINCRBY per field,
-- and the highest position. The script runs atomically, so nobody sees the views between two
-- changes of a batch, and the position is stored with the changes it covers.
local target, publish = ARGV[1], ARGV[2] == '1'
local changes = cjson.decode(ARGV[3])
if ARGV[4] then
  local traceparents = cjson.decode(ARGV[4])
  for i, c in ipairs(changes) do
    if traceparents[i] ~= '' then c.traceparent = traceparents[i] end
  end
end

-- What an order's state is read for (without publishing; publishing needs the whole hash).
local NEEDED = {ORDER.version, ORDER.customer, ORDER.placed_position, ORDER.status, ORDER.units,
  ORDER.scale, ORDER.item_count, ORDER.items}
-- Revenue (exact integers that may exceed a Lua number's 2^53) is summed here as a number only
-- while every term has at most this many digits and the sum stays below REVENUE_SAFE; anything
-- larger goes to HINCRBY as the string it is.
local SAFE_DIGITS = 12
local REVENUE_SAFE = 2 ^ 52

local function revenue_field(status, scale)
  return STATS.revenue_prefix .. status .. STATS.revenue_separator .. scale
end

local function negate(units)
  if string.sub(units, 1, 1) == '-' then return string.sub(units, 2) end
  return '-' .. units
end

-- Per namespace: count deltas, revenue deltas, the highest position, and the orders touched
-- (their state, in first-touch order).
local pending = {}

local function batch_of(ns)
  local t = pending[ns]
  if not t then
    t = {ns = ns, stats = ns .. KEY.stats, counts = {}, revenue = {}, pos = nil, orders = {},
      touched = {}}
    pending[ns] = t
  end
  return t
end

local function add_revenue(t, field, units)
  local digits = #units
  if string.sub(units, 1, 1) == '-' then digits = digits - 1 end
  if digits > SAFE_DIGITS then
    redis.call('HINCRBY', t.stats, field, units)
    return
  end
  local sum, n = t.revenue[field] or 0, tonumber(units)
  if math.abs(sum) + math.abs(n) >= REVENUE_SAFE then
    redis.call('HINCRBY', t.stats, field, string.format('%.0f', sum))
    sum = 0
  end
  t.revenue[field] = sum + n
end

local function count(t, field, delta)
  t.counts[field] = (t.counts[field] or 0) + delta
end

local function order_of(t, id, full)
  local okey = t.ns .. KEY.order .. id
  local o = t.orders[okey]
  if o then return o end
  local h = {}
  if full then
    local flat = redis.call('HGETALL', okey)
    for n = 1, #flat, 2 do h[flat[n]] = flat[n + 1] end
  else
    local values = redis.call('HMGET', okey, unpack(NEEDED))
    for n, field in ipairs(NEEDED) do
      if values[n] then h[field] = values[n] end
    end
  end
  o = {key = okey, id = id, h = h, changed = {}, status = h[ORDER.status],
    units = h[ORDER.units], scale = h[ORDER.scale]}
  t.orders[okey] = o
  t.touched[#t.touched + 1] = o
  return o
end

local function set(o, field, value)
  o.h[field] = value
  o.changed[field] = true
end

local function set_total(o, total, units, scale)
  set(o, ORDER.total, total)
  set(o, ORDER.units, units)
  set(o, ORDER.scale, scale)
end

local function amend_items(o, kind, a1, a5)
  local h = o.h
  local items = h[ORDER.items]
  local n = tonumber(h[ORDER.item_count])
  if kind == KIND.add then
    -- append to the JSON array as text: no decode needed
    if items == '[]' then items = '[' .. a1 .. ']'
    else items = string.sub(items, 1, -2) .. ',' .. a1 .. ']' end
    n = n + tonumber(a5)
  else
    local list = cjson.decode(items)
    for k, item in ipairs(list) do
      if item.id == a1 then
        n = n - item.qty
        table.remove(list, k)
        break
      end
    end
    -- cjson writes an empty table as an object
    if #list == 0 then items = '[]' else items = cjson.encode(list) end
  end
  set(o, ORDER.items, items)
  set(o, ORDER.item_count, tostring(n))
end

local function apply_to(ns, c)
  local id, version, pos, at, kind = c[1], tonumber(c[2]), c[3], c[4], c[5]
  local a1, a2, a3, a4, a5, a6 = c[6], c[7], c[8], c[9], c[10], c[11]
  local t = batch_of(ns)
  local o = order_of(t, id, publish)
  local h = o.h
  local stored = tonumber(h[ORDER.version] or '0')
  if version <= stored then return 'd' end
  if version > stored + 1 then return 'g' end
  local old_status = h[ORDER.status]
  if stored == 0 then
    if kind ~= KIND.placed then return 'i' end
    set(o, ORDER.id, id)
    set(o, ORDER.customer, a1)
    set(o, ORDER.items, a2)
    set(o, ORDER.item_count, a6)
    set_total(o, a3, a4, a5)
    set(o, ORDER.created, at)
    set(o, ORDER.placed_position, pos)
    set(o, ORDER.status, 'PENDING')
    count(t, STATS.orders, 1)
  else
    if kind == KIND.placed then return 'i' end
    if kind == KIND.status then
      set(o, ORDER.status, a1)
    elseif kind == KIND.shipped then
      set(o, ORDER.status, 'SHIPPED')
      set(o, ORDER.tracking_id, a1)
      set(o, ORDER.carrier, a2)
    elseif kind == KIND.add or kind == KIND.remove then
      amend_items(o, kind, a1, a5)
      set_total(o, a2, a3, a4)
    end
  end
  set(o, ORDER.updated, at)
  set(o, ORDER.version, tostring(version))
  set(o, ORDER.position, pos)
  if not t.pos or pos > t.pos then t.pos = pos end
  if publish then
    -- The message carries the view this change made: a subscriber gets every version, even when
    -- one batch applies several changes to an order.
    redis.call('PUBLISH', ns .. KEY.changes, cjson.encode(
      {[CHANGE.namespace] = ns, [CHANGE.order_id] = id, [CHANGE.version] = version,
       [CHANGE.customer_id] = h[ORDER.customer], [CHANGE.status] = h[ORDER.status],
       [CHANGE.previous_status] = old_status, [CHANGE.position] = pos, [CHANGE.view] = h,
       [CHANGE.traceparent] = c.traceparent}))
  end
  return 'o'
end

local function add_member(moves, key, member)
  local members = moves[key]
  if not members then
    members = {}
    moves[key] = members
  end
  members[#members + 1] = member
end

-- One order's net effect on the batch: its hash, the index moves and the counters' deltas from
-- where it stood before the batch (o.status, o.units, o.scale) to where it stands now.
local function settle(t, o, removes, adds)
  local fields = {}
  for field in pairs(o.changed) do
    fields[#fields + 1] = field
    fields[#fields + 1] = o.h[field]
  end
  if #fields == 0 then return end
  redis.call('HSET', o.key, unpack(fields))
  local h, ns = o.h, t.ns
  local status, units, scale = h[ORDER.status], h[ORDER.units], h[ORDER.scale]
  if o.status ~= status then
    local member = h[ORDER.placed_position] .. KEY.separator .. o.id
    local cust = h[ORDER.customer]
    if o.status then
      add_member(removes, ns .. KEY.status_index .. o.status, member)
      add_member(removes, ns .. KEY.customer_status_index .. o.status .. KEY.separator .. cust,
        member)
      count(t, STATS.count_prefix .. o.status, -1)
    else
      add_member(adds, ns .. KEY.all_index, member)
      add_member(adds, ns .. KEY.customer_index .. cust, member)
    end
    add_member(adds, ns .. KEY.status_index .. status, member)
    add_member(adds, ns .. KEY.customer_status_index .. status .. KEY.separator .. cust, member)
    count(t, STATS.count_prefix .. status, 1)
  end
  if o.status ~= status or o.units ~= units or o.scale ~= scale then
    -- revenue moves with the order between statuses, and with its total when amended
    if o.status and o.units ~= '0' then
      add_revenue(t, revenue_field(o.status, o.scale), negate(o.units))
    end
    if units ~= '0' then add_revenue(t, revenue_field(status, scale), units) end
  end
end

local function flush()
  for _, t in pairs(pending) do
    local removes, adds = {}, {}
    for _, o in ipairs(t.touched) do settle(t, o, removes, adds) end
    -- every member moves at most once (one per order), so the removes and adds never overlap
    for key, members in pairs(removes) do redis.call('ZREM', key, unpack(members)) end
    for key, members in pairs(adds) do
      local scored = {}
      for _, member in ipairs(members) do
        scored[#scored + 1] = 0
        scored[#scored + 1] = member
      end
      redis.call('ZADD', key, unpack(scored))
    end
    for field, delta in pairs(t.counts) do
      if delta ~= 0 then redis.call('HINCRBY', t.stats, field, delta) end
    end
    for field, delta in pairs(t.revenue) do
      if delta ~= 0 then redis.call('HINCRBY', t.stats, field, string.format('%.0f', delta)) end
    end
    if t.pos then
      local seen = redis.call('HGET', t.stats, STATS.position)
      if not seen or t.pos > seen then redis.call('HSET', t.stats, STATS.position, t.pos) end
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
