-- Removes up to `batch` expired messages from one account's queue (expires_at <= now).
-- Returns how many it removed; fewer than `batch` means none expired remain.

local queueKey  = KEYS[1] -- zset: message id -> receive sequence
local expiryKey = KEYS[2] -- zset: message id -> expires_at (seconds)
local msgKey    = KEYS[3] -- hash: message id -> "<received_at>[|<sender>] <envelope bytes>"
local bytesKey  = KEYS[4] -- string: bytes of every record in msgKey
local seenKey   = KEYS[5] -- hash: message id -> devices that acked it (ack.lua); optional
local now       = ARGV[1] -- [number or ""] the caller's clock, seconds; "" = Redis TIME
local batch     = ARGV[2] -- [integer] most messages removed by this call

if now == '' then
    local t = redis.call('TIME')
    now = string.format('%.6f', tonumber(t[1]) + tonumber(t[2]) / 1000000)
end
local expired = redis.call('ZRANGEBYSCORE', expiryKey, '-inf', now, 'LIMIT', 0, batch)
if #expired == 0 then
    return 0
end
local freed = 0
for _, id in ipairs(expired) do
    freed = freed + redis.call('HSTRLEN', msgKey, id)
end
redis.call('ZREM', queueKey, unpack(expired))
redis.call('ZREM', expiryKey, unpack(expired))
redis.call('HDEL', msgKey, unpack(expired))
if seenKey then
    redis.call('HDEL', seenKey, unpack(expired))
end
if freed > 0 and redis.call('DECRBY', bytesKey, freed) <= 0 then
    redis.call('DEL', bytesKey)
end
return #expired
