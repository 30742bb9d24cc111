-- The serving namespace, created (not ready, no watermark) when Redis has none.
-- KEYS[1] pointer, KEYS[2] namespace sequence; ARGV[1] the projection's tag (`{prefix}`, the start
-- of every key). Returns {namespace, created 0/1}.
local current = redis.call('GET', KEYS[1])
if current then return {current, 0} end
local ns = ARGV[1] .. KEY.namespace .. redis.call('INCR', KEYS[2])
redis.call('HSET', ns .. KEY.meta, META.ready, '0')
redis.call('SET', KEYS[1], ns)
return {ns, 1}
