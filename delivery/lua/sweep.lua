-- Removes up to `batch` expired messages from one account's queue (expires_at <= now).
-- Returns how many it removed; fewer than `batch` means none expired remain.

local queueKey  = KEYS[1] -- zset: message id -> receive sequence
local expiryKey = KEYS[2] -- zset: message id -> expires_at (seconds)
local msgKey    = KEYS[3] -- hash: message id -> "<received_at> <envelope bytes>"
local now       = ARGV[1] -- [number]  caller's clock, seconds
local batch     = ARGV[2] -- [integer] most messages removed by this call

local expired = redis.call('ZRANGEBYSCORE', expiryKey, '-inf', now, 'LIMIT', 0, batch)
if #expired == 0 then
    return 0
end
redis.call('ZREM', queueKey, unpack(expired))
redis.call('ZREM', expiryKey, unpack(expired))
redis.call('HDEL', msgKey, unpack(expired))
return #expired
