-- Removes messages from an account's queue by id; unknown ids are ignored. O(log n) per id.
-- Returns the number of ids that were queued (expired but unswept ones included).

local queueKey  = KEYS[1] -- zset: message id -> receive sequence
local expiryKey = KEYS[2] -- zset: message id -> expires_at (seconds)
local msgKey    = KEYS[3] -- hash: message id -> "<received_at> <envelope bytes>"
-- ARGV[1..n]      [string] message ids, at least one (the caller sends at most a few hundred)

local removed = redis.call('ZREM', queueKey, unpack(ARGV))
redis.call('ZREM', expiryKey, unpack(ARGV))
redis.call('HDEL', msgKey, unpack(ARGV))
return removed
