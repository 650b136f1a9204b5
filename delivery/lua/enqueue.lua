-- Stores one message in an account's queue unless its id is already queued, then announces it.
-- Returns 1 when stored (and published), 0 when the id is queued and not expired (nothing changes,
-- its expiry included), -1 when max_queued live messages are queued (nothing stored), -2 when the
-- account hash KEYS[4] is given and does not exist (nothing stored, nothing published), -3 when
-- ARGV[9] is not empty and the account's state differs from it (nothing stored).

local queueKey   = KEYS[1] -- zset: message id -> receive sequence
local expiryKey  = KEYS[2] -- zset: message id -> expires_at (seconds, caller's clock)
local msgKey     = KEYS[3] -- hash: message id -> "<received_at> <envelope bytes>"
local accountKey = KEYS[4] -- hash: the account; optional: when given, store only while it exists
local id         = ARGV[1] -- [string]  message id (the dm3 message hash)
local record     = ARGV[2] -- [bytes]   "<received_at> " followed by the envelope
local nowArg     = ARGV[3] -- [number]  caller's clock, seconds (may have a fraction)
local expiresAt  = ARGV[4] -- [number]  now + ttl, seconds
local maxQueued  = tonumber(ARGV[5]) -- [integer] most live messages allowed, 0 = no limit
local purgeBatch = tonumber(ARGV[6]) -- [integer] most expired messages dropped here when at the limit
local keyTtl     = tonumber(ARGV[7]) -- [integer] seconds: backstop EXPIRE of all three keys
local channel    = ARGV[8] -- [string]  pub/sub channel of the account; the payload is the id
local state      = ARGV[9] -- [string]  the account's state as the caller checked it, or '':
                           --           settings, notify and (suspended and '1') joined by newlines

local now = tonumber(nowArg)

-- In the same script as the write: a deletion (delete_account.lua) runs wholly before or after
-- this, so a message is either deleted with the queue or refused here, never left behind.
-- The state compared in the same script: the caller's checks (suspension, size and spam rules,
-- made on a copy it may have read a while ago) hold for what is stored.
if accountKey then
    if state and state ~= '' then
        local fields = redis.call('HMGET', accountKey, 'settings', 'notify', 'suspended')
        if not fields[1] then
            return -2
        end
        local current = fields[1] .. '\n' .. (fields[2] or '') .. '\n' .. (fields[3] and '1' or '')
        if current ~= state then
            return -3
        end
    elseif redis.call('EXISTS', accountKey) == 0 then
        return -2
    end
end

local function drop(ids)
    redis.call('ZREM', queueKey, unpack(ids))
    redis.call('ZREM', expiryKey, unpack(ids))
    redis.call('HDEL', msgKey, unpack(ids))
end

local current = redis.call('ZSCORE', expiryKey, id)
if current then
    if tonumber(current) > now then
        return 0
    end
    -- Expired but not swept yet: readers no longer see it, so this submission is a new delivery.
    drop({id})
end

if maxQueued > 0 and redis.call('ZCARD', expiryKey) >= maxQueued then
    local expired = redis.call('ZRANGEBYSCORE', expiryKey, '-inf', nowArg, 'LIMIT', 0, purgeBatch)
    if #expired > 0 then
        drop(expired)
    end
    -- Expired messages beyond purgeBatch do not count against the limit; the sweeper drops them.
    if redis.call('ZCOUNT', expiryKey, '(' .. nowArg, '+inf') >= maxQueued then
        return -1
    end
end

-- Receive order: microseconds of the caller's clock, but always after the newest queued message,
-- so order and cursors hold when two processes' clocks disagree or a clock steps back.
local seq = math.floor(now * 1000000)
local newest = redis.call('ZRANGE', queueKey, -1, -1, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) >= seq then
    seq = tonumber(newest[2]) + 1
end

redis.call('ZADD', queueKey, seq, id)
redis.call('ZADD', expiryKey, expiresAt, id)
redis.call('HSET', msgKey, id, record)

-- Backstop only (per-message expiry is the rule): never shorten, so a queue outlives its
-- longest-lived message. TTL answers -1 for a key without expiry.
if redis.call('TTL', queueKey) < keyTtl then
    redis.call('EXPIRE', queueKey, keyTtl)
    redis.call('EXPIRE', expiryKey, keyTtl)
    redis.call('EXPIRE', msgKey, keyTtl)
end

redis.call('PUBLISH', channel, id)
return 1
