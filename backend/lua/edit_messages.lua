-- dm3 editMessageBatch: replaces the container of each message by id, and stores the ones that
-- do not exist yet in the conversation (created when missing), as dm3 upserts. updatedAt is kept.
-- Returns {'edited', n} or {'quota', bytes used}.

local convsKey   = KEYS[1] -- zset:   conversation id -> updatedAt (ms)
local visibleKey = KEYS[2] -- zset:   the conversations not hidden
local convKey    = KEYS[3] -- hash:   contact, location, hidden, updatedAt
local msgsKey    = KEYS[4] -- zset:   message id -> createdAt (ms)
local usageKey   = KEYS[5] -- string: bytes the account keeps
-- KEYS[6..]: hash per message
local cid        = ARGV[1]            -- [string]  conversation id
local contact    = ARGV[2]            -- [string]  encryptedContactName
local now        = ARGV[3]            -- [integer] caller's clock, ms
local quota      = tonumber(ARGV[4])  -- [integer] bytes the account may keep
-- ARGV[5..]: three per message: id, createdAt (ms), container

local count = #KEYS - 5
local cost = 0
local exists = redis.call('EXISTS', convKey) == 1
if not exists then
    cost = #contact
end
for i = 1, count do
    local old = redis.call('HGET', KEYS[5 + i], 'container')
    cost = cost + #ARGV[3 * i + 4] - (old and #old or 0)
end
local used = tonumber(redis.call('GET', usageKey) or '0')
if cost > 0 and used + cost > quota then
    return {'quota', tostring(used)}
end
redis.call('INCRBY', usageKey, cost)
if not exists then
    redis.call('HSET', convKey, 'contact', contact, 'location', '', 'hidden', '0', 'updatedAt', now)
    redis.call('ZADD', convsKey, now, cid)
    redis.call('ZADD', visibleKey, now, cid)
end
for i = 1, count do
    local id, createdAt, container = ARGV[3 * i + 2], ARGV[3 * i + 3], ARGV[3 * i + 4]
    if redis.call('EXISTS', KEYS[5 + i]) == 1 then
        redis.call('HSET', KEYS[5 + i], 'container', container)
    else
        redis.call('HSET', KEYS[5 + i], 'cid', cid, 'contact', contact, 'container', container,
            'createdAt', createdAt, 'halted', '0')
        redis.call('ZADD', msgsKey, createdAt, id)
    end
end
return {'edited', tostring(count)}
