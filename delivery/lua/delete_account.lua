-- Deletes an account in one step: its account hash and whole queue, and writes its tombstone.
-- Returns the number of messages the queue held (expired but unswept ones included), or -1 when
-- the account hash is missing or holds another generation (nothing changes).
-- It announces the deletion on the account's sessions channel, so every process ends the account's
-- sockets at once.
-- UNLINK frees a large queue's memory in the background, so 100,000 messages do not stall Redis.

local queueKey     = KEYS[1] -- zset: message id -> receive sequence
local expiryKey    = KEYS[2] -- zset: message id -> expires_at (seconds)
local msgKey       = KEYS[3] -- hash: message id -> "<received_at>[|<sender>] <envelope bytes>"
local bytesKey     = KEYS[4] -- string: bytes of every record in msgKey
local accountKey   = KEYS[5] -- hash: the account (field `created` = its generation, ms)
local tombstoneKey = KEYS[6] -- string: the account's last deletion
local ackedKey     = KEYS[7] -- zset: recently acknowledged messages (ack.lua)
local seenKey      = KEYS[8] -- hash: message id -> devices that acked it (ack.lua)
local generation   = ARGV[1] -- [integer] `created` the caller read; another value means re-created
local tombstone    = ARGV[2] -- [string]  JSON {"deletedAt": ms, "profile": dm3Hash, "key": …}; no expiry
local sessions     = ARGV[3] -- [string]  pub/sub channel of the account's sessions ("" = none)

if redis.call('HGET', accountKey, 'created') ~= generation then
    return -1
end
local count = redis.call('ZCARD', queueKey)
redis.call('UNLINK', queueKey, expiryKey, msgKey, bytesKey, accountKey, ackedKey, seenKey)
redis.call('SET', tombstoneKey, tombstone)
if sessions ~= '' then
    redis.call('PUBLISH', sessions, 'deleted')
end
return count
