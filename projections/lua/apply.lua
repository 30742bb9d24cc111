-- Applies one order event to the views, atomically and idempotently.
-- KEYS[1] the pointer key, KEYS[2] the building key.
-- ARGV: target namespace ("" = live: the pointer's, and also the one a rebuild is building),
--       publish ("1"/"0"), order id, version, position (20-digit padded), occurredAt, kind, a1..a5.
-- Returns 'ok', 'dup' (version <= stored: skip), 'gap' (version > stored + 1: retry later),
-- 'invalid' (cannot follow the view) or 'reset' (no namespace: Redis lost its data).
local target, publish = ARGV[1], ARGV[2] == '1'
local id, version, pos, at, kind = ARGV[3], tonumber(ARGV[4]), ARGV[5], ARGV[6], ARGV[7]
local a1, a2, a3, a4, a5 = ARGV[8], ARGV[9], ARGV[10], ARGV[11], ARGV[12]

local function negate(units)
  if string.sub(units, 1, 1) == '-' then return string.sub(units, 2) end
  return '-' .. units
end

local function item_count(items)
  local n = 0
  for _, item in ipairs(items) do n = n + item.qty end
  return n
end

local function encode_items(items)
  -- cjson writes an empty table as an object
  if #items == 0 then return '[]' end
  return cjson.encode(items)
end

local function apply_to(ns)
  local okey = ns .. ':o:' .. id
  local stored = tonumber(redis.call('HGET', okey, 'version') or '0')
  if version <= stored then return 'dup' end
  if version > stored + 1 then return 'gap' end
  local stats = ns .. ':stats'
  local cust, ppos, old_status, old_units, old_scale, status, units, scale
  if stored == 0 then
    if kind ~= 'placed' then return 'invalid' end
    cust, ppos, status, units, scale = a1, pos, 'PENDING', a4, a5
    redis.call('HSET', okey, 'id', id, 'cust', cust, 'items', a2,
      'count', item_count(cjson.decode(a2)), 'total', a3, 'units', units, 'scale', scale,
      'created', at, 'ppos', pos)
    redis.call('HINCRBY', stats, 'orders', 1)
  else
    if kind == 'placed' then return 'invalid' end
    local h = redis.call('HMGET', okey, 'cust', 'ppos', 'status', 'units', 'scale')
    cust, ppos, old_status, old_units, old_scale = h[1], h[2], h[3], h[4], h[5]
    status, units, scale = old_status, old_units, old_scale
    if kind == 'status' then
      status = a1
    elseif kind == 'shipped' then
      status = 'SHIPPED'
      redis.call('HSET', okey, 'track', a1, 'carrier', a2)
    elseif kind == 'add' or kind == 'remove' then
      local items = cjson.decode(redis.call('HGET', okey, 'items'))
      if kind == 'add' then
        table.insert(items, cjson.decode(a1))
      else
        for i, item in ipairs(items) do
          if item.id == a1 then table.remove(items, i) break end
        end
      end
      units, scale = a3, a4
      redis.call('HSET', okey, 'items', encode_items(items), 'count', item_count(items),
        'total', a2, 'units', units, 'scale', scale)
    end
  end
  redis.call('HSET', okey, 'status', status, 'updated', at, 'version', version, 'pos', pos)

  if old_status ~= status then
    local member = ppos .. ':' .. id
    if old_status then
      redis.call('ZREM', ns .. ':i:s:' .. old_status, member)
      redis.call('ZREM', ns .. ':i:cs:' .. old_status .. ':' .. cust, member)
      redis.call('HINCRBY', stats, 'n:' .. old_status, -1)
    else
      redis.call('ZADD', ns .. ':i:all', 0, member)
      redis.call('ZADD', ns .. ':i:c:' .. cust, 0, member)
    end
    redis.call('ZADD', ns .. ':i:s:' .. status, 0, member)
    redis.call('ZADD', ns .. ':i:cs:' .. status .. ':' .. cust, 0, member)
    redis.call('HINCRBY', stats, 'n:' .. status, 1)
  end
  if old_status ~= status or old_units ~= units or old_scale ~= scale then
    -- revenue moves with the order between statuses, and with its total when amended
    if old_status and old_units ~= '0' then
      redis.call('HINCRBY', stats, 'r:' .. old_status .. ':' .. old_scale, negate(old_units))
    end
    if units ~= '0' then
      redis.call('HINCRBY', stats, 'r:' .. status .. ':' .. scale, units)
    end
  end
  local seen = redis.call('HGET', stats, 'pos')
  if not seen or pos > seen then redis.call('HSET', stats, 'pos', pos) end
  if publish then
    redis.call('PUBLISH', ns .. ':changes', cjson.encode(
      {ns = ns, id = id, version = version, customerId = cust, status = status, position = pos}))
  end
  return 'ok'
end

if target ~= '' then return apply_to(target) end
local current = redis.call('GET', KEYS[1])
if not current then return 'reset' end
local result = apply_to(current)
local building = redis.call('GET', KEYS[2])
if building and building ~= current then
  -- the rebuild is catching up: an event it cannot take yet is fetched again by the rebuild
  publish = false
  if apply_to(building) == 'gap' then redis.call('SADD', building .. ':dirty', id) end
end
return result
