-- Deletes an account's whole queue (account deletion). UNLINK frees the memory in the background,
-- so a queue of 100,000 messages does not stall Redis.
-- Returns the number of messages the queue held (expired but unswept ones included).

local queueKey  = KEYS[1] -- zset: message id -> receive sequence
local expiryKey = KEYS[2] -- zset: message id -> expires_at (seconds)
local msgKey    = KEYS[3] -- hash: message id -> "<received_at>[|<sender>] <envelope bytes>"
local bytesKey  = KEYS[4] -- string: bytes of every record in msgKey
local ackedKey  = KEYS[5] -- zset: recently acknowledged messages (ack.lua)
local seenKey   = KEYS[6] -- hash: message id -> devices that acked it (ack.lua)

local count = redis.call('ZCARD', queueKey)
redis.call('UNLINK', queueKey, expiryKey, msgKey, bytesKey, ackedKey, seenKey)
return count
