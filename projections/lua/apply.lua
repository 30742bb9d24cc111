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
-- Each change is checked and applied, in order, to its order's state held here (read from the
-- order's hash at its first change in the batch); what the batch did is written at the end: one
-- HSET per order, the index moves grouped into one ZREM / ZADD per index key (an order placed
-- and paid in one batch enters the PAID index only), the counters and revenue as one HINCRBY
-- per field, and the highest position. The script runs atomically: nobody sees the views
-- between two changes of a batch, and the position is stored with the changes it covers.
local target, publish = ARGV[1], ARGV[2] == '1'
local changes = cjson.decode(ARGV[3])
if ARGV[4] then
  local traceparents = cjson.decode(ARGV[4])
  for i, c in ipairs(changes) do
    if traceparents[i] ~= '' then c.traceparent = traceparents[i] end
  end
end

-- The names looked up once per call rather than once per change.
local F_ID, F_CUSTOMER, F_STATUS, F_ITEMS = ORDER.id, ORDER.customer, ORDER.status, ORDER.items
local F_COUNT, F_TOTAL, F_UNITS, F_SCALE = ORDER.item_count, ORDER.total, ORDER.units, ORDER.scale
local F_TRACKING, F_CARRIER, F_CREATED = ORDER.tracking_id, ORDER.carrier, ORDER.created
local F_UPDATED, F_VERSION, F_POSITION = ORDER.updated, ORDER.version, ORDER.position
local F_PLACED_POSITION = ORDER.placed_position
local K_PLACED, K_STATUS, K_SHIPPED, K_ADD = KIND.placed, KIND.status, KIND.shipped, KIND.add
local K_REMOVE = KIND.remove
local SEPARATOR, COUNT_PREFIX = KEY.separator, STATS.count_prefix

-- Revenue (exact integers that may exceed a Lua number's 2^53) is summed here as a number only
-- while every term has at most SAFE_DIGITS digits and the sum stays below REVENUE_SAFE; anything
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

-- Per namespace: count and revenue deltas, the highest position, and the orders touched (their
-- state by key, and in first-touch order).
local pending = {}

local function batch_of(ns)
  local t = pending[ns]
  if not t then
    t = {ns = ns, stats = ns .. KEY.stats, counts = {}, revenue = {}, pos = false, orders = {},
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

-- An order's state, an array (cheaper to build than a table of named fields, once per order and
-- batch) indexed by these: what its hash holds now (as of the changes applied so far), what it
-- held before the batch (STATUS0, UNITS0, SCALE0) and which groups of fields the batch changed.
local VERSION, CUSTOMER, PPOS, STATUS, UNITS, SCALE, COUNT, ITEMS = 1, 2, 3, 4, 5, 6, 7, 8
local OKEY, ID, STATUS0, UNITS0, SCALE0, APPLIED, PLACED, AMENDED = 9, 10, 11, 12, 13, 14, 15, 16
local SHIPPED, TOTAL, CREATED, TRACKING, CARRIER, AT, POS, VIEW = 17, 18, 19, 20, 21, 22, 23, 24

local function order_of(t, id)
  local okey = t.ns .. KEY.order .. id
  local o = t.orders[okey]
  if o then return o end
  local h = redis.call('HMGET', okey, F_VERSION, F_CUSTOMER, F_PLACED_POSITION, F_STATUS, F_UNITS,
    F_SCALE, F_COUNT, F_ITEMS)
  -- a missing field reads as false: nil is what it means
  local status, units, scale = h[4] or nil, h[5] or nil, h[6] or nil
  o = {tonumber(h[1] or '0'), h[2] or nil, h[3] or nil, status, units, scale, h[7] or nil,
    h[8] or nil, okey, id, status, units, scale, false, false, false,
    false, false, false, false, false, false, false, false}
  if publish then
    -- a published change carries the whole view: the fields this script does not track too
    local flat = redis.call('HGETALL', okey)
    local view = {}
    for n = 1, #flat, 2 do view[flat[n]] = flat[n + 1] end
    o[VIEW] = view
  end
  t.orders[okey] = o
  t.touched[#t.touched + 1] = o
  return o
end

local function amend_items(o, kind, a1, a5)
  local items, n = o[ITEMS], tonumber(o[COUNT])
  if kind == K_ADD then
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
  o[ITEMS], o[COUNT] = items, tostring(n)
end

local function append(list, ...)
  local n = #list
  for k = 1, select('#', ...) do list[n + k] = select(k, ...) end
end

-- The fields of the order's hash the batch wrote, as HSET takes them.
local function written(o)
  local fields = {F_UPDATED, o[AT], F_VERSION, tostring(o[VERSION]), F_POSITION, o[POS],
    F_STATUS, o[STATUS]}
  if o[PLACED] then
    append(fields, F_ID, o[ID], F_CUSTOMER, o[CUSTOMER], F_CREATED, o[CREATED], F_PLACED_POSITION,
      o[PPOS])
  end
  if o[PLACED] or o[AMENDED] then
    append(fields, F_ITEMS, o[ITEMS], F_COUNT, o[COUNT], F_TOTAL, o[TOTAL], F_UNITS, o[UNITS])
    append(fields, F_SCALE, o[SCALE])
  end
  if o[SHIPPED] then append(fields, F_TRACKING, o[TRACKING], F_CARRIER, o[CARRIER]) end
  return fields
end

local function publish_change(ns, o, old_status, traceparent)
  -- The message carries the view this change made: a subscriber gets every version, even when
  -- one batch applies several changes to an order.
  local fields = written(o)
  for n = 1, #fields, 2 do o[VIEW][fields[n]] = fields[n + 1] end
  redis.call('PUBLISH', ns .. KEY.changes, cjson.encode(
    {[CHANGE.namespace] = ns, [CHANGE.order_id] = o[ID], [CHANGE.version] = o[VERSION],
     [CHANGE.customer_id] = o[CUSTOMER], [CHANGE.status] = o[STATUS],
     [CHANGE.previous_status] = old_status, [CHANGE.position] = o[POS], [CHANGE.view] = o[VIEW],
     [CHANGE.traceparent] = traceparent}))
end

local function apply_to(ns, c)
  local version, kind = tonumber(c[2]), c[5]
  local t = batch_of(ns)
  local o = order_of(t, c[1])
  if version <= o[VERSION] then return 'd' end
  if version > o[VERSION] + 1 then return 'g' end
  local a1, a2 = c[6], c[7]
  local old_status = o[STATUS]
  if o[VERSION] == 0 then
    if kind ~= K_PLACED then return 'i' end
    o[PLACED], o[CUSTOMER], o[ITEMS], o[COUNT], o[TOTAL], o[UNITS], o[SCALE] =
      true, a1, a2, c[11], c[8], c[9], c[10]
    o[CREATED], o[PPOS], o[STATUS] = c[4], c[3], 'PENDING'
    count(t, STATS.orders, 1)
  elseif kind == K_PLACED then
    return 'i'
  elseif kind == K_STATUS then
    o[STATUS] = a1
  elseif kind == K_SHIPPED then
    o[SHIPPED], o[STATUS], o[TRACKING], o[CARRIER] = true, 'SHIPPED', a1, a2
  elseif kind == K_ADD or kind == K_REMOVE then
    amend_items(o, kind, a1, c[10])
    o[AMENDED], o[TOTAL], o[UNITS], o[SCALE] = true, a2, c[8], c[9]
  end
  local pos = c[3]
  o[APPLIED], o[VERSION], o[AT], o[POS] = true, version, c[4], pos
  if not t.pos or pos > t.pos then t.pos = pos end
  if publish then publish_change(ns, o, old_status, c.traceparent) end
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

-- One order's net effect on the batch: its hash, and the index moves and counter deltas from
-- where it stood before the batch to where it stands now.
local function settle(t, o, removes, adds)
  if not o[APPLIED] then return end
  redis.call('HSET', o[OKEY], unpack(written(o)))
  local ns, status, was = t.ns, o[STATUS], o[STATUS0]
  if was ~= status then
    local member = o[PPOS] .. SEPARATOR .. o[ID]
    local customer = o[CUSTOMER]
    if was then
      add_member(removes, ns .. KEY.status_index .. was, member)
      add_member(removes, ns .. KEY.customer_status_index .. was .. SEPARATOR .. customer, member)
      count(t, COUNT_PREFIX .. was, -1)
    else
      add_member(adds, ns .. KEY.all_index, member)
      add_member(adds, ns .. KEY.customer_index .. customer, member)
    end
    add_member(adds, ns .. KEY.status_index .. status, member)
    add_member(adds, ns .. KEY.customer_status_index .. status .. SEPARATOR .. customer, member)
    count(t, COUNT_PREFIX .. status, 1)
  end
  if was ~= status or o[UNITS0] ~= o[UNITS] or o[SCALE0] ~= o[SCALE] then
    -- revenue moves with the order between statuses, and with its total when amended
    if was and o[UNITS0] ~= '0' then
      add_revenue(t, revenue_field(was, o[SCALE0]), negate(o[UNITS0]))
    end
    if o[UNITS] ~= '0' then add_revenue(t, revenue_field(status, o[SCALE]), o[UNITS]) end
  end
end

local function flush()
  for _, t in pairs(pending) do
    local removes, adds = {}, {}
    for _, o in ipairs(t.touched) do settle(t, o, removes, adds) end
    -- each order moves at most once, so no member is both removed and added
    for key, members in pairs(removes) do redis.call('ZREM', key, unpack(members)) end
    for key, members in pairs(adds) do
      local scored = {}
      for n, member in ipairs(members) do
        scored[2 * n - 1] = 0
        scored[2 * n] = member
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
