-- Raises the serving namespace's watermark (every event at or before it is in the views).
-- KEYS[1] pointer; ARGV[1] padded position; ARGV[2] "1" to also mark the namespace ready (after a
-- catch-up), ARGV[3] the namespace the caller caught up ("" = whichever serves).
-- A namespace not marked ready is still catching up, so a checkpoint says nothing about it.
local ns = redis.call('GET', KEYS[1])
if not ns then return 'reset' end
if ARGV[3] ~= '' and ARGV[3] ~= ns then return 'moved' end
local meta = ns .. KEY.meta
if ARGV[2] == '1' then
  redis.call('HSET', meta, META.ready, '1')
elseif redis.call('HGET', meta, META.ready) ~= '1' then
  return 'notready'
end
local mark = redis.call('HGET', meta, META.watermark)
if not mark or ARGV[1] > mark then redis.call('HSET', meta, META.watermark, ARGV[1]) end
return 'ok'
