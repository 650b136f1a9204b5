-- Stores one message in an account's queue unless its sender already queued it, then announces it.
-- Returns 1 when stored (and published), 0 when the sender's message is queued and not expired
-- (nothing changes, its expiry included) or was acknowledged recently (KEYS[5], written by
-- ack.lua: a late retry of a delivered message), -1 when max_queued live messages are queued, -3
-- when the queued bytes would pass max_bytes (nothing stored), -2 when the account hash KEYS[6] is
-- given and
-- does not exist (nothing stored, nothing published), -4 when ARGV[12] is not empty and the
-- account's state differs from it (nothing stored).

local queueKey   = KEYS[1] -- zset: message id -> receive sequence
local expiryKey  = KEYS[2] -- zset: message id -> expires_at (seconds)
local msgKey     = KEYS[3] -- hash: message id -> "<received_at>[|<sender>] <envelope bytes>"
local bytesKey   = KEYS[4] -- string: bytes of every record in msgKey
local ackedKey   = KEYS[5] -- zset: "<id>|<sender>" of an acknowledged message -> forget_at (ack.lua)
local accountKey = KEYS[6] -- hash: the account; optional: when given, store only while it exists
local seenKey    = KEYS[7] -- hash: message id -> devices that acked it (ack.lua); optional, with KEYS[6]
local id         = ARGV[1] -- [string]  message id (the dm3 message hash)
local envelope   = ARGV[2] -- [bytes]   the envelope
local nowArg     = ARGV[3] -- [number or ""] the caller's clock, seconds; "" = Redis TIME
local ttl        = tonumber(ARGV[4]) -- [integer] seconds this message lives
local maxQueued  = tonumber(ARGV[5]) -- [integer] most live messages allowed, 0 = no limit
local purgeBatch = tonumber(ARGV[6]) -- [integer] most expired messages dropped here when at a limit
local keyTtl     = tonumber(ARGV[7]) -- [integer] seconds: backstop EXPIRE of the queue's keys
local channel    = ARGV[8] -- [string]  pub/sub channel of the account; the payload is the id
local maxBytes   = tonumber(ARGV[9]) -- [integer] most bytes queued, 0 = no limit
local sender     = ARGV[10] -- [string] the sender ("" = unscoped): dedup is per sender
local scopedId   = ARGV[11] -- [string] id used when another sender already holds `id`
local state      = ARGV[12] -- [string] the account's state as the caller checked it, or '':
                            --          settings, notify and (suspended and '1') joined by newlines

local now
if nowArg == '' then
    local t = redis.call('TIME')
    now = tonumber(t[1]) + tonumber(t[2]) / 1000000
else
    now = tonumber(nowArg)
end
local nowText = string.format('%.6f', now)

-- In the same script as the write: a deletion (delete_account.lua) runs wholly before or after
-- this, so a message is either deleted with the queue or refused here, never left behind. The
-- state is compared here too: the caller's checks (suspension, size and spam rules, made on a copy
-- it may have read a while ago) hold for what is stored.
if accountKey then
    if state and state ~= '' then
        local fields = redis.call('HMGET', accountKey, 'settings', 'notify', 'suspended')
        if not fields[1] then
            return -2
        end
        local current = fields[1] .. '\n' .. (fields[2] or '') .. '\n' .. (fields[3] and '1' or '')
        if current ~= state then
            return -4
        end
    elseif redis.call('EXISTS', accountKey) == 0 then
        return -2
    end
end

local function drop(ids)
    local freed = 0
    for _, each in ipairs(ids) do
        freed = freed + redis.call('HSTRLEN', msgKey, each)
    end
    redis.call('ZREM', queueKey, unpack(ids))
    redis.call('ZREM', expiryKey, unpack(ids))
    redis.call('HDEL', msgKey, unpack(ids))
    if seenKey then
        redis.call('HDEL', seenKey, unpack(ids))
    end
    if freed > 0 and redis.call('DECRBY', bytesKey, freed) <= 0 then
        redis.call('DEL', bytesKey)
    end
end

local current = redis.call('ZSCORE', expiryKey, id)
if current and tonumber(current) > now and sender ~= '' then
    -- Queued already: a resubmission when the same sender queued it; otherwise another sender
    -- holds this id (a source-form messageHash is chosen by its sender and cannot be checked
    -- here), and this message goes under its own scoped id instead of being shadowed.
    local head = string.match(redis.call('HGET', msgKey, id) or '', '^[^ ]*')
    if head == nil or string.sub(head, -(#sender + 1)) ~= '|' .. sender then
        id = scopedId
        current = redis.call('ZSCORE', expiryKey, id)
    end
end
-- Acknowledged recently by the receiver: a retry of a delivered message, not a new one.
local function remembered(member)
    local forgetAt = redis.call('ZSCORE', ackedKey, member)
    return forgetAt and tonumber(forgetAt) > now
end
if not current and (remembered(id .. '|' .. sender) or (scopedId ~= '' and remembered(scopedId .. '|' .. sender))) then
    return 0
end
if current then
    if tonumber(current) > now then
        return 0
    end
    -- Expired but not swept yet: readers no longer see it, so this submission is a new delivery.
    drop({id})
end

local record = nowText .. (sender ~= '' and ('|' .. sender) or '') .. ' ' .. envelope

local function over()
    if maxQueued > 0 and redis.call('ZCARD', expiryKey) >= maxQueued then
        return true
    end
    return maxBytes > 0 and (tonumber(redis.call('GET', bytesKey)) or 0) + #record > maxBytes
end

if over() then
    local expired = redis.call('ZRANGEBYSCORE', expiryKey, '-inf', nowText, 'LIMIT', 0, purgeBatch)
    if #expired > 0 then
        drop(expired)
    end
    -- Expired messages beyond purgeBatch still count here; the sweeper drops them.
    if maxQueued > 0 and redis.call('ZCOUNT', expiryKey, '(' .. nowText, '+inf') >= maxQueued then
        return -1
    end
    if maxBytes > 0 and (tonumber(redis.call('GET', bytesKey)) or 0) + #record > maxBytes then
        return -3
    end
end

-- Receive order: microseconds of the clock, but always after the newest queued message, so order
-- and cursors hold when two processes' clocks disagree or a clock steps back.
local seq = math.floor(now * 1000000)
local newest = redis.call('ZRANGE', queueKey, -1, -1, 'WITHSCORES')
if newest[2] and tonumber(newest[2]) >= seq then
    seq = tonumber(newest[2]) + 1
end

redis.call('ZADD', queueKey, seq, id)
redis.call('ZADD', expiryKey, now + ttl, id)
redis.call('HSET', msgKey, id, record)
redis.call('INCRBY', bytesKey, #record)

-- Backstop only (per-message expiry is the rule): never shorten, so a queue outlives its
-- longest-lived message. TTL answers -1 for a key without expiry.
if redis.call('TTL', queueKey) < keyTtl then
    redis.call('EXPIRE', queueKey, keyTtl)
    redis.call('EXPIRE', expiryKey, keyTtl)
    redis.call('EXPIRE', msgKey, keyTtl)
end
if redis.call('TTL', bytesKey) < keyTtl then
    redis.call('EXPIRE', bytesKey, keyTtl)
end

redis.call('PUBLISH', channel, id)
return 1
