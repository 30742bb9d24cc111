-- Makes a rebuilt namespace the serving one, if nothing is left for it to fetch.
-- KEYS[1] pointer, KEYS[2] building, KEYS[3] switch channel; ARGV[1] new namespace, ARGV[2] its
-- watermark (padded). Returns the old namespace ('' if none), or 'dirty' / 'aborted'.
local ns = ARGV[1]
if redis.call('GET', KEYS[2]) ~= ns then return 'aborted' end
if redis.call('SCARD', ns .. KEY.dirty) > 0 then return 'dirty' end
local old = redis.call('GET', KEYS[1])
redis.call('HSET', ns .. KEY.meta, META.ready, '1', META.watermark, ARGV[2])
redis.call('SET', KEYS[1], ns)
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', KEYS[3], ns)
return old or ''
