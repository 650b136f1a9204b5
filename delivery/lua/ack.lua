-- Removes messages from an account's queue by id; unknown ids are ignored. O(log n) per id.
-- Returns the number of ids that were queued (expired but unswept ones included).

local queueKey  = KEYS[1] -- zset: message id -> receive sequence
local expiryKey = KEYS[2] -- zset: message id -> expires_at (seconds)
local msgKey    = KEYS[3] -- hash: message id -> "<received_at>[|<sender>] <envelope bytes>"
local bytesKey  = KEYS[4] -- string: bytes of every record in msgKey
-- ARGV[1..n]      [string] message ids, at least one (the caller sends at most a few hundred)

local freed = 0
for _, id in ipairs(ARGV) do
    freed = freed + redis.call('HSTRLEN', msgKey, id)
end
local removed = redis.call('ZREM', queueKey, unpack(ARGV))
redis.call('ZREM', expiryKey, unpack(ARGV))
redis.call('HDEL', msgKey, unpack(ARGV))
if freed > 0 and redis.call('DECRBY', bytesKey, freed) <= 0 then
    redis.call('DEL', bytesKey)
end
return removed
