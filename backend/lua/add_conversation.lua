-- dm3 addConversation: creates the conversation (visible, updatedAt = now) or, when it exists,
-- replaces its encryptedProfileLocation only (dm3 keeps updatedAt and the hidden flag).
-- Returns 'created', 'updated' or 'quota'.

local convsKey   = KEYS[1] -- zset:   conversation id -> updatedAt (ms), every conversation
local visibleKey = KEYS[2] -- zset:   conversation id -> updatedAt (ms), the ones not hidden
local convKey    = KEYS[3] -- hash:   contact, location, hidden (0|1), updatedAt
local usageKey   = KEYS[4] -- string: bytes the account keeps
local cid        = ARGV[1]            -- [string]  conversation id: sha256 hex of the contact name
local contact    = ARGV[2]            -- [string]  encryptedContactName
local location   = ARGV[3]            -- [string]  encryptedProfileLocation ('' for none)
local now        = ARGV[4]            -- [integer] caller's clock, ms
local quota      = tonumber(ARGV[5])  -- [integer] bytes the account may keep

local old = redis.call('HGET', convKey, 'location')
local cost = #location
if old then
    cost = #location - #old
else
    cost = cost + #contact
end
local used = tonumber(redis.call('GET', usageKey) or '0')
if cost > 0 and used + cost > quota then
    return 'quota'
end
redis.call('INCRBY', usageKey, cost)
if old then
    redis.call('HSET', convKey, 'location', location)
    return 'updated'
end
redis.call('HSET', convKey, 'contact', contact, 'location', location, 'hidden', '0', 'updatedAt', now)
redis.call('ZADD', convsKey, now, cid)
redis.call('ZADD', visibleKey, now, cid)
return 'created'
